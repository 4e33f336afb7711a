//! The story tests every backend must pass (filled in below).

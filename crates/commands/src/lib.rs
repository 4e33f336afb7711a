//! The application commands of motcua: submit a dossier, take an action of
//! its lifecycle, open and verify an account, sign in, and what each user
//! may see. They know nothing of HTTP: the web crate parses a request,
//! calls a command and renders its answer (mapping [`CommandError`] to
//! `application/problem+json` in one place), and background workers call
//! the same commands directly.
#![forbid(unsafe_code)]

pub mod accounts;
mod app;
pub mod catalogue;
pub mod crypto;
pub mod dossiers;
mod error;
pub mod files;
pub mod prefill;
pub mod throttle;

pub use app::{App, Catalogue, Clock, Observer, PROVINCE_OVERRIDES_META_KEY};
pub use error::{CommandError, CommandResult, FieldProblem};

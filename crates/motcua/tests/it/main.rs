//! End-to-end tests over real HTTP on 127.0.0.1:0, a fresh database each.
//! All integration tests live in this one binary (link time matters).
// Tests read top to bottom as stories; the length limit is for code.
#![allow(clippy::too_many_lines)]

mod admin;
mod cluster;
mod crash;
mod exchange;
mod helpers;
mod operations;
mod pages;
mod s3;
mod scale;
mod security;
mod stories;
mod tamper;

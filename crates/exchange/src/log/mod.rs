//! The message log: one record per exchange, hash-chained, signed in
//! batches, durable before the response leaves the gateway.
//!
//! # Files
//!
//! The live log is a directory of segment files `000000000001.log`,
//! `000000000002.log`, … (a `LOCK` file keeps a second process out). Exports
//! and archives are single files of the same grammar. Every file is JSON
//! lines, in this order:
//!
//! ```text
//! {"kind":"header","format":"motcua-exchange-log/1","file":"segment","first_seq":1,"prev":"00…","last_seq":null,"created":"…","from":null,"to":null,"key":"<ed25519 public key hex>","sig":"<hex>"}
//! {"kind":"record","seq":1, …record fields…,"prev":"<hex>","hash":"<hex>"}
//! {"kind":"record","seq":2, …}
//! {"kind":"batch","first_seq":1,"last_seq":2,"prev":"<prev of record 1>","last_hash":"<hash of record 2>","sig":"<hex>"}
//! …
//! ```
//!
//! * A record's `hash` is the SHA-256 of the line's bytes up to (not
//!   including) `,"hash":"` — so it covers every field, the sequence number
//!   and `prev`, the hash of the record before (64 zeros before record 1).
//!   Any changed byte breaks it, and the chain links each record to the one
//!   before.
//! * A batch line closes every group of records written together; its `sig`
//!   is Ed25519 over `motcua-exchange-log/1 batch\n{first_seq}\n{last_seq}\n
//!   {prev}\n{last_hash}`, which (through the chain) covers every record of
//!   the batch and where it hangs in the chain.
//! * The header's `sig` covers `motcua-exchange-log/1 header\n{file}\n
//!   {first_seq}\n{prev}\n{last_seq or -}\n{created}\n{from or -}\n{to or -}`:
//!   it says where the file starts (so a missing first record is seen) and,
//!   for exports and archives, where it ends (so a missing last record is
//!   seen).
//!
//! # Durability
//!
//! [`MessageLog::append`] queues its record and returns once the record is
//! on disk (group commit). The first record queued while no flush is
//! pending starts a flush task on the caller's runtime; the task runs after
//! the tasks already ready there, so every exchange of that turn of the
//! event loop joins the batch. It takes every record waiting (up to
//! `max_batch`), writes them and their batch line with one `write`, calls
//! `fdatasync` once on that thread, and only then answers every waiter —
//! no hand-off to another thread and back, which on a busy machine costs
//! more than the write. When a batch write was slow (the disk is busy), the
//! next ones go to a blocking thread until one is fast again, so that the
//! event loop keeps serving exchanges meanwhile. After a crash, [`MessageLog::open`] cuts the last
//! segment after its last complete, valid batch line; records after it
//! were never acknowledged.

use std::io;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The format tag in every header and signed message.
pub const FORMAT: &str = "motcua-exchange-log/1";
/// Secret signing key file (hex of the 32-byte Ed25519 seed, mode 0600).
pub const KEY_FILE: &str = "exchange-signing.key";
/// Public key file (hex of the 32-byte Ed25519 public key).
pub const PUB_FILE: &str = "exchange-signing.pub";

const ZERO_HASH: [u8; 32] = [0; 32];
const HASH_SUFFIX_LEN: usize = 75; // ,"hash":"<64 hex>"}

/// One exchange as the caller describes it; the log adds `seq`, `prev` and
/// `hash`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExchangeRecord {
    /// X-Road-Id of the exchange (the client's or a generated one).
    pub x_road_id: String,
    /// When the request arrived and when the response was ready.
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// The client subsystem (`INSTANCE/CLASS/MEMBER/SUBSYSTEM`), when known:
    /// the authenticated one, or the claimed one when authentication failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// The service, when the request named a registered one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issue: Option<String>,
    pub method: String,
    /// The request target as received: `/r1/…` path and query.
    pub path: String,
    /// HTTP status returned to the client.
    pub status: u16,
    /// X-Road error type when the gateway answered with an error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Time spent waiting for the upstream, microseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_us: Option<u64>,
    /// Time from request to response ready, microseconds.
    pub total_us: u64,
    /// The `X-Road-Request-Hash` returned to the client, when one was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_hash: Option<String>,
    /// SHA-256 (hex) and length of the request body forwarded upstream;
    /// absent when the body was not read (refused before forwarding).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_sha256: Option<String>,
    #[serde(default)]
    pub request_bytes: u64,
    /// SHA-256 (hex) and length of the response body sent to the client.
    pub response_sha256: String,
    #[serde(default)]
    pub response_bytes: u64,
    /// Captured bodies (base64), at most the service's capture limit; the
    /// hashes above are always over the full bodies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_body: Option<String>,
}

/// A record read back from the log.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct LoggedRecord {
    pub seq: u64,
    #[serde(flatten)]
    pub record: ExchangeRecord,
    pub prev: String,
    pub hash: String,
}

/// Errors of the live log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogError {
    #[error("{context}: {message}")]
    Io { context: String, message: String },
    #[error("the message log in {0} is used by another process")]
    Locked(PathBuf),
    #[error("the message log is damaged: {0}")]
    Corrupt(String),
    #[error("signing key: {0}")]
    Key(String),
    #[error("the message log is closed")]
    Closed,
    #[error("the message log stopped after a write failure: {0}")]
    Failed(String),
    #[error("cannot serialise the record: {0}")]
    Serialize(String),
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> LogError {
    let context = context.into();
    move |e| LogError::Io {
        context,
        message: e.to_string(),
    }
}

mod keys;
mod lines;
mod segments;
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
mod verify;
mod writer;

use keys::*;
pub use keys::{load_or_create_signing_key, read_public_key};
pub use lines::Header;
use lines::*;
pub use segments::list_segments;
use segments::*;
use verify::*;
pub use verify::{VerifyError, VerifyProblem, VerifySummary, verify_dir, verify_file};
pub use writer::{ExportSummary, LogConfig, MessageLog, TimeRange, export_dir, read_records};

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

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;

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

// ------------------------------------------------------------------ keys

/// Loads the gateway's signing key from `key_dir`, creating it (32 bytes
/// from the OS random source, file mode 0600) on first start; also writes
/// the public key file when it is missing.
pub fn load_or_create_signing_key(key_dir: &Path) -> Result<SigningKey, LogError> {
    fs::create_dir_all(key_dir).map_err(io_err(format!("creating {}", key_dir.display())))?;
    let path = key_dir.join(KEY_FILE);
    let key = match fs::read_to_string(&path) {
        Ok(text) => {
            let mut seed = [0u8; 32];
            hex::decode_to_slice(text.trim(), &mut seed)
                .map_err(|e| LogError::Key(format!("{}: {e}", path.display())))?;
            SigningKey::from_bytes(&seed)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let mut seed = [0u8; 32];
            getrandom::fill(&mut seed)
                .map_err(|e| LogError::Key(format!("no random numbers: {e}")))?;
            let tmp = key_dir.join(format!(".{KEY_FILE}.tmp"));
            let mut opts = OpenOptions::new();
            opts.write(true).create(true).truncate(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                opts.mode(0o600);
            }
            let mut f = opts
                .open(&tmp)
                .map_err(io_err(format!("creating {}", tmp.display())))?;
            f.write_all(format!("{}\n", hex::encode(seed)).as_bytes())
                .and_then(|_| f.sync_all())
                .map_err(io_err(format!("writing {}", tmp.display())))?;
            fs::rename(&tmp, &path).map_err(io_err(format!("creating {}", path.display())))?;
            sync_dir(key_dir)?;
            SigningKey::from_bytes(&seed)
        }
        Err(e) => return Err(io_err(format!("reading {}", path.display()))(e)),
    };
    let pub_path = key_dir.join(PUB_FILE);
    let pub_hex = format!("{}\n", hex::encode(key.verifying_key().to_bytes()));
    if fs::read_to_string(&pub_path).ok().as_deref() != Some(pub_hex.as_str()) {
        fs::write(&pub_path, pub_hex).map_err(io_err(format!("writing {}", pub_path.display())))?;
    }
    Ok(key)
}

/// Reads a public key given as 64 hex digits or as the path of a file that
/// holds them (such as `exchange-signing.pub`).
pub fn read_public_key(hex_or_path: &str) -> Result<VerifyingKey, LogError> {
    let text = if hex_or_path.len() == 64 && hex_or_path.chars().all(|c| c.is_ascii_hexdigit()) {
        hex_or_path.to_owned()
    } else {
        fs::read_to_string(hex_or_path).map_err(io_err(format!("reading {hex_or_path}")))?
    };
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut bytes)
        .map_err(|e| LogError::Key(format!("{hex_or_path}: {e}")))?;
    VerifyingKey::from_bytes(&bytes).map_err(|e| LogError::Key(format!("{hex_or_path}: {e}")))
}

fn sync_dir(dir: &Path) -> Result<(), LogError> {
    #[cfg(unix)]
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(format!("syncing {}", dir.display())))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

// ------------------------------------------------------------------ lines

fn now_text() -> String {
    Utc::now().format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

fn time_text(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// The signed header that opens every log file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub kind: String,
    pub format: String,
    /// `segment`, `export` or `archive`.
    pub file: String,
    pub first_seq: u64,
    pub prev: String,
    /// The last record of an export or archive; `null` for live segments.
    pub last_seq: Option<u64>,
    pub created: String,
    /// The time range of an export (`[from, to)` on record start times).
    pub from: Option<String>,
    pub to: Option<String>,
    pub key: String,
    pub sig: String,
}

impl Header {
    fn message(&self) -> String {
        format!(
            "{FORMAT} header\n{}\n{}\n{}\n{}\n{}\n{}\n{}",
            self.file,
            self.first_seq,
            self.prev,
            self.last_seq.map_or("-".to_owned(), |s| s.to_string()),
            self.created,
            self.from.as_deref().unwrap_or("-"),
            self.to.as_deref().unwrap_or("-"),
        )
    }

    fn signed(
        key: &SigningKey,
        file: &str,
        first_seq: u64,
        prev: &[u8; 32],
        last_seq: Option<u64>,
        from: Option<String>,
        to: Option<String>,
    ) -> Header {
        let mut h = Header {
            kind: "header".into(),
            format: FORMAT.into(),
            file: file.into(),
            first_seq,
            prev: hex::encode(prev),
            last_seq,
            created: now_text(),
            from,
            to,
            key: hex::encode(key.verifying_key().to_bytes()),
            sig: String::new(),
        };
        h.sig = hex::encode(key.sign(h.message().as_bytes()).to_bytes());
        h
    }

    fn line(&self) -> Result<Vec<u8>, LogError> {
        let mut v = serde_json::to_vec(self).map_err(|e| LogError::Serialize(e.to_string()))?;
        v.push(b'\n');
        Ok(v)
    }
}

#[derive(Debug, Deserialize)]
struct BatchLine {
    first_seq: u64,
    last_seq: u64,
    prev: String,
    last_hash: String,
    sig: String,
}

fn batch_message(first_seq: u64, last_seq: u64, prev: &str, last_hash: &str) -> String {
    format!("{FORMAT} batch\n{first_seq}\n{last_seq}\n{prev}\n{last_hash}")
}

#[derive(Debug, Deserialize)]
struct RecordHead {
    seq: u64,
    start: DateTime<Utc>,
    prev: String,
    hash: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LineKind {
    Header,
    Record,
    Batch,
    Other,
}

fn line_kind(line: &[u8]) -> LineKind {
    if line.starts_with(br#"{"kind":"record","#) {
        LineKind::Record
    } else if line.starts_with(br#"{"kind":"batch","#) {
        LineKind::Batch
    } else if line.starts_with(br#"{"kind":"header","#) {
        LineKind::Header
    } else {
        LineKind::Other
    }
}

fn decode32(s: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out).ok()?;
    Some(out)
}

/// Splits a record line (without `\n`) into the hashed prefix and the hash
/// it claims; `None` when the line does not end with a hash field.
fn split_record_line(line: &[u8]) -> Option<(&[u8], [u8; 32])> {
    if line.len() < HASH_SUFFIX_LEN {
        return None;
    }
    let (prefix, suffix) = line.split_at(line.len() - HASH_SUFFIX_LEN);
    let hex_part = suffix
        .strip_prefix(br#","hash":""#)?
        .strip_suffix(br#""}"#)?;
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_part, &mut out).ok()?;
    Some((prefix, out))
}

/// Reads lines with their byte offsets; the last line may lack `\n`.
/// Reading stops at a zero byte where a line would start: the live
/// segment's preallocated, not yet written space (see [`Writer`]).
struct LineReader<R> {
    r: BufReader<R>,
    pos: u64,
    buf: Vec<u8>,
    /// Where zero padding was met, if it was.
    padding_at: Option<u64>,
}

impl<R: Read> LineReader<R> {
    fn new(r: R) -> Self {
        LineReader {
            r: BufReader::with_capacity(1 << 16, r),
            pos: 0,
            buf: Vec::with_capacity(1024),
            padding_at: None,
        }
    }

    /// `(offset, line without \n, complete)`; `None` at the end of the
    /// data or at zero padding.
    fn next_line(&mut self) -> io::Result<Option<(u64, &[u8], bool)>> {
        self.buf.clear();
        match self.r.fill_buf()?.first() {
            None => return Ok(None),
            Some(0) => {
                self.padding_at.get_or_insert(self.pos);
                return Ok(None);
            }
            Some(_) => {}
        }
        let n = self.r.read_until(b'\n', &mut self.buf)?;
        if n == 0 {
            return Ok(None);
        }
        let offset = self.pos;
        self.pos += n as u64;
        let complete = self.buf.last() == Some(&b'\n');
        let line = if complete {
            &self.buf[..n - 1]
        } else {
            &self.buf[..]
        };
        Ok(Some((offset, line, complete)))
    }

    /// Skips zero bytes; true when data follows them.
    fn skip_padding(&mut self) -> io::Result<bool> {
        loop {
            let buf = self.r.fill_buf()?;
            if buf.is_empty() {
                return Ok(false);
            }
            let (n, more) = match buf.iter().position(|&b| b != 0) {
                Some(i) => (i, true),
                None => (buf.len(), false),
            };
            self.r.consume(n);
            self.pos += n as u64;
            if more {
                return Ok(true);
            }
        }
    }
}

/// The error of zero bytes where the file (an export, an archive, a closed
/// segment) has none.
fn padding_error(v: &Verifier, at: u64) -> VerifyError {
    v.err(
        None,
        VerifyProblem::Malformed,
        format!("zero bytes from byte {at} on, where records should be"),
    )
}

// ------------------------------------------------------------------ verification

/// What is wrong with a log, at the first problem found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyProblem {
    /// The record's hash does not match its bytes: it was altered.
    Altered,
    /// The record does not link to the record before it (`prev` differs):
    /// the one before was altered and re-hashed, or replaced.
    ChainBroken,
    /// The record is not where the sequence expects it and appears nowhere
    /// else: it was deleted.
    Missing,
    /// The record appears elsewhere in the file: records were reordered.
    Reordered,
    /// A batch signature is invalid or does not match its records.
    BadSignature,
    /// Records at the end are covered by no batch signature.
    Unsigned,
    /// The file does not start with a valid signed header, or a segment
    /// header does not continue the chain.
    BadHeader,
    /// A line cannot be read as a record, batch or header.
    Malformed,
    /// The file cannot be read.
    Io,
}

/// The first problem in a log: which record (by sequence number, when it is
/// known), where (file and line), and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{}line {}: {:?}: {}", .seq.map(|s| format!("record {s}, ")).unwrap_or_default(), .file.as_ref().map(|f| format!("{}, ", f.display())).unwrap_or_default(), .line, .problem, .detail)]
pub struct VerifyError {
    pub seq: Option<u64>,
    pub file: Option<PathBuf>,
    /// 1-based line number (0 when not about a line).
    pub line: u64,
    pub problem: VerifyProblem,
    pub detail: String,
}

/// The result of a successful verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifySummary {
    pub records: u64,
    pub batches: u64,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    /// Hash of the last record (the chain head), hex.
    pub last_hash: String,
    /// Records of a live log not (yet) covered by a signature; always 0 for
    /// files.
    pub unsigned_tail: u64,
    /// The public key (hex) the log verified against.
    pub key: String,
}

struct Verifier<'a> {
    key: &'a VerifyingKey,
    expect_seq: u64,
    expect_prev: [u8; 32],
    pending_first: Option<(u64, [u8; 32])>,
    pending_count: u64,
    records: u64,
    batches: u64,
    first_seq: Option<u64>,
    file: Option<PathBuf>,
    line: u64,
    started: bool,
}

impl<'a> Verifier<'a> {
    fn new(key: &'a VerifyingKey) -> Self {
        Verifier {
            key,
            expect_seq: 0,
            expect_prev: ZERO_HASH,
            pending_first: None,
            pending_count: 0,
            records: 0,
            batches: 0,
            first_seq: None,
            file: None,
            line: 0,
            started: false,
        }
    }

    fn err(
        &self,
        seq: Option<u64>,
        problem: VerifyProblem,
        detail: impl Into<String>,
    ) -> VerifyError {
        VerifyError {
            seq,
            file: self.file.clone(),
            line: self.line,
            problem,
            detail: detail.into(),
        }
    }

    /// A header line. The first one sets where the chain starts; a later one
    /// (the next segment of a live log) must continue the chain.
    fn header(&mut self, line: &[u8]) -> Result<Header, VerifyError> {
        let h: Header = serde_json::from_slice(line).map_err(|e| {
            self.err(
                None,
                VerifyProblem::BadHeader,
                format!("not a log header: {e}"),
            )
        })?;
        if h.kind != "header" || h.format != FORMAT {
            return Err(self.err(
                None,
                VerifyProblem::BadHeader,
                format!("unknown format {:?}", h.format),
            ));
        }
        if h.key != hex::encode(self.key.to_bytes()) {
            return Err(self.err(
                None,
                VerifyProblem::BadHeader,
                format!("signed with key {}, not the key given", h.key),
            ));
        }
        let sig = decode_sig(&h.sig).ok_or_else(|| {
            self.err(
                None,
                VerifyProblem::BadHeader,
                "the header signature is not 64 hex bytes",
            )
        })?;
        self.key
            .verify_strict(h.message().as_bytes(), &sig)
            .map_err(|_| {
                self.err(
                    None,
                    VerifyProblem::BadHeader,
                    "the header signature is invalid",
                )
            })?;
        let prev = decode32(&h.prev)
            .ok_or_else(|| self.err(None, VerifyProblem::BadHeader, "bad prev hash"))?;
        if self.started {
            if self.pending_count > 0 {
                return Err(self.err(
                    self.pending_first.map(|p| p.0),
                    VerifyProblem::Unsigned,
                    "records before this segment are covered by no signature",
                ));
            }
            if h.first_seq != self.expect_seq || prev != self.expect_prev {
                let problem = if h.first_seq > self.expect_seq {
                    VerifyProblem::Missing
                } else {
                    VerifyProblem::BadHeader
                };
                return Err(self.err(
                    Some(self.expect_seq),
                    problem,
                    format!(
                        "the segment starts at record {} but the chain continues at record {}",
                        h.first_seq, self.expect_seq
                    ),
                ));
            }
        } else {
            self.expect_seq = h.first_seq;
            self.expect_prev = prev;
            self.started = true;
        }
        Ok(h)
    }

    fn record(&mut self, line: &[u8]) -> Result<(), VerifyError> {
        let expect = self.expect_seq;
        let (prefix, claimed) = split_record_line(line).ok_or_else(|| {
            self.err(
                Some(expect),
                VerifyProblem::Malformed,
                "the line does not end with a record hash",
            )
        })?;
        let head: RecordHead = serde_json::from_slice(line).map_err(|e| {
            self.err(
                Some(expect),
                VerifyProblem::Malformed,
                format!("not a record: {e}"),
            )
        })?;
        if head.seq != expect {
            let problem = if head.seq > expect {
                VerifyProblem::Missing
            } else {
                VerifyProblem::Reordered
            };
            return Err(self.err(
                Some(expect),
                problem,
                format!("expected record {expect} here, found record {}", head.seq),
            ));
        }
        let actual: [u8; 32] = Sha256::digest(prefix).into();
        if actual != claimed || head.hash != hex::encode(claimed) {
            return Err(self.err(
                Some(expect),
                VerifyProblem::Altered,
                "the record's hash does not match its content",
            ));
        }
        if decode32(&head.prev) != Some(self.expect_prev) {
            return Err(self.err(
                Some(expect),
                VerifyProblem::ChainBroken,
                format!(
                    "the record does not link to record {}: that record was altered or replaced",
                    expect.saturating_sub(1)
                ),
            ));
        }
        if self.pending_first.is_none() {
            self.pending_first = Some((expect, self.expect_prev));
        }
        self.pending_count += 1;
        self.records += 1;
        self.first_seq.get_or_insert(expect);
        self.expect_seq = expect + 1;
        self.expect_prev = actual;
        Ok(())
    }

    fn batch(&mut self, line: &[u8]) -> Result<(), VerifyError> {
        let b: BatchLine = serde_json::from_slice(line).map_err(|e| {
            self.err(
                self.pending_first.map(|p| p.0),
                VerifyProblem::Malformed,
                format!("not a batch line: {e}"),
            )
        })?;
        let Some((first, first_prev)) = self.pending_first else {
            return Err(self.err(
                Some(b.first_seq),
                VerifyProblem::Missing,
                format!(
                    "the batch of records {}..{} has no records before it",
                    b.first_seq, b.last_seq
                ),
            ));
        };
        let last = self.expect_seq - 1;
        if b.first_seq != first {
            let problem = if b.first_seq < first {
                VerifyProblem::Missing
            } else {
                VerifyProblem::BadSignature
            };
            return Err(self.err(
                Some(b.first_seq.min(first)),
                problem,
                format!(
                    "the batch signs records {}..{} but records {first}..{last} precede it",
                    b.first_seq, b.last_seq
                ),
            ));
        }
        if b.last_seq != last {
            let problem = if b.last_seq > last {
                VerifyProblem::Missing
            } else {
                VerifyProblem::BadSignature
            };
            return Err(self.err(
                Some(last.min(b.last_seq) + 1),
                problem,
                format!(
                    "the batch signs records {}..{} but records {first}..{last} precede it",
                    b.first_seq, b.last_seq
                ),
            ));
        }
        let prev_hex = hex::encode(first_prev);
        let last_hex = hex::encode(self.expect_prev);
        if b.prev != prev_hex || b.last_hash != last_hex {
            return Err(self.err(
                Some(first),
                VerifyProblem::BadSignature,
                "the batch line does not match the hashes of its records",
            ));
        }
        let sig = decode_sig(&b.sig).ok_or_else(|| {
            self.err(
                Some(first),
                VerifyProblem::BadSignature,
                "the signature is not 64 hex bytes",
            )
        })?;
        self.key
            .verify_strict(
                batch_message(first, last, &prev_hex, &last_hex).as_bytes(),
                &sig,
            )
            .map_err(|_| {
                self.err(
                    Some(first),
                    VerifyProblem::BadSignature,
                    "the batch signature is invalid",
                )
            })?;
        self.pending_first = None;
        self.pending_count = 0;
        self.batches += 1;
        Ok(())
    }

    fn line(&mut self, line: &[u8]) -> Result<(), VerifyError> {
        match line_kind(line) {
            LineKind::Record => self.record(line),
            LineKind::Batch => self.batch(line),
            LineKind::Header => Err(self.err(
                Some(self.expect_seq),
                VerifyProblem::Malformed,
                "a header in the middle of a file",
            )),
            LineKind::Other => Err(self.err(
                Some(self.expect_seq),
                VerifyProblem::Malformed,
                "the line is neither a record nor a batch signature",
            )),
        }
    }

    fn summary(&self) -> VerifySummary {
        VerifySummary {
            records: self.records,
            batches: self.batches,
            first_seq: self.first_seq,
            last_seq: self.first_seq.map(|_| self.expect_seq - 1),
            last_hash: hex::encode(self.expect_prev),
            unsigned_tail: self.pending_count,
            key: hex::encode(self.key.to_bytes()),
        }
    }
}

fn decode_sig(s: &str) -> Option<Signature> {
    let mut out = [0u8; 64];
    hex::decode_to_slice(s, &mut out).ok()?;
    Some(Signature::from_bytes(&out))
}

/// Turns a `Missing` into `Reordered` when the record appears elsewhere.
fn refine_missing(mut e: VerifyError, files: &[PathBuf]) -> VerifyError {
    let (VerifyProblem::Missing, Some(seq)) = (&e.problem, e.seq) else {
        return e;
    };
    for path in files {
        let Ok(f) = File::open(path) else { continue };
        let mut r = LineReader::new(f);
        let mut n = 0u64;
        while let Ok(Some((_, line, _))) = r.next_line() {
            n += 1;
            if line_kind(line) == LineKind::Record
                && let Ok(h) = serde_json::from_slice::<RecordHead>(line)
                && h.seq == seq
            {
                e.problem = VerifyProblem::Reordered;
                e.detail = format!(
                    "{}; record {seq} is at {}, line {n}",
                    e.detail,
                    path.display()
                );
                return e;
            }
        }
    }
    e
}

/// Verifies one log file (an export, an archive or a single segment) with
/// nothing but the public key. Names the first broken, missing or reordered
/// record.
pub fn verify_file(path: &Path, key: &VerifyingKey) -> Result<VerifySummary, VerifyError> {
    verify_one(path, key).map_err(|e| refine_missing(e, &[path.to_path_buf()]))
}

fn verify_one(path: &Path, key: &VerifyingKey) -> Result<VerifySummary, VerifyError> {
    let mut v = Verifier::new(key);
    v.file = Some(path.to_path_buf());
    let io = |v: &Verifier, e: io::Error| v.err(None, VerifyProblem::Io, e.to_string());
    let f = File::open(path).map_err(|e| io(&v, e))?;
    let mut r = LineReader::new(f);
    let header = match r.next_line().map_err(|e| io(&v, e))? {
        Some((_, line, _)) => {
            v.line = 1;
            v.header(line)?
        }
        None => return Err(v.err(None, VerifyProblem::BadHeader, "the file is empty")),
    };
    while let Some((_, line, _)) = r.next_line().map_err(|e| io(&v, e))? {
        v.line += 1;
        if line.is_empty() {
            continue;
        }
        v.line(line)?;
    }
    if let Some(at) = r.padding_at {
        return Err(padding_error(&v, at));
    }
    if let Some((first, _)) = v.pending_first {
        return Err(v.err(
            Some(first),
            VerifyProblem::Unsigned,
            format!(
                "records {first}..{} are covered by no batch signature",
                v.expect_seq - 1
            ),
        ));
    }
    if let Some(last) = header.last_seq {
        let seen = v.expect_seq - 1;
        if seen < last {
            return Err(v.err(
                Some(seen + 1),
                VerifyProblem::Missing,
                format!(
                    "the file ends at record {seen} but its header says it ends at record {last}"
                ),
            ));
        }
        if seen > last {
            return Err(v.err(
                Some(last + 1),
                VerifyProblem::Malformed,
                format!(
                    "the header says the file ends at record {last} but it goes on to record {seen}"
                ),
            ));
        }
    }
    Ok(v.summary())
}

/// Verifies the live log directory: every segment in order, each one
/// continuing the chain of the one before. The last segment may end in a
/// line being written or records not yet signed (reported as
/// `unsigned_tail`). A live log cannot show whether records were cut from
/// its end: compare the chain head with an export for that.
pub fn verify_dir(dir: &Path, key: &VerifyingKey) -> Result<VerifySummary, VerifyError> {
    let segments = list_segments(dir).map_err(|e| VerifyError {
        seq: None,
        file: Some(dir.to_path_buf()),
        line: 0,
        problem: VerifyProblem::Io,
        detail: e.to_string(),
    })?;
    let files: Vec<PathBuf> = segments.iter().map(|(_, p)| p.clone()).collect();
    let mut v = Verifier::new(key);
    let n = files.len();
    for (i, path) in files.iter().enumerate() {
        let last_segment = i + 1 == n;
        v.file = Some(path.clone());
        v.line = 0;
        let f = File::open(path).map_err(|e| v.err(None, VerifyProblem::Io, e.to_string()))?;
        let mut r = LineReader::new(f);
        while let Some((_, line, complete)) = r
            .next_line()
            .map_err(|e| v.err(None, VerifyProblem::Io, e.to_string()))?
        {
            v.line += 1;
            if v.line == 1 {
                v.header(line).map_err(|e| refine_missing(e, &files))?;
                continue;
            }
            if !complete && last_segment {
                break; // a line being written
            }
            v.line(line).map_err(|e| refine_missing(e, &files))?;
        }
        // Only the live segment has unwritten (zero) space at its end.
        if let Some(at) = r.padding_at
            && !last_segment
        {
            return Err(padding_error(&v, at));
        }
        if v.line == 0 {
            return Err(v.err(None, VerifyProblem::BadHeader, "the segment is empty"));
        }
        if !last_segment && v.pending_count > 0 {
            return Err(v.err(
                v.pending_first.map(|p| p.0),
                VerifyProblem::Unsigned,
                "records at the end of the segment are covered by no batch signature",
            ));
        }
    }
    Ok(v.summary())
}

// ------------------------------------------------------------------ segments

fn segment_name(no: u64) -> String {
    format!("{no:012}.log")
}

/// The segment files of a live log directory, in order.
pub fn list_segments(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(stem) = name.strip_suffix(".log")
            && stem.len() == 12
            && stem.bytes().all(|b| b.is_ascii_digit())
            && let Ok(no) = stem.parse()
        {
            out.push((no, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// Writes `content` to `path` atomically: temporary file, fsync, rename,
/// fsync of the directory.
fn write_atomic(
    dir: &Path,
    path: &Path,
    write: impl FnOnce(&mut File) -> io::Result<()>,
) -> Result<(), LogError> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut f = File::create(&tmp).map_err(io_err(format!("creating {}", tmp.display())))?;
    write(&mut f)
        .and_then(|_| f.sync_all())
        .map_err(io_err(format!("writing {}", tmp.display())))?;
    drop(f);
    fs::rename(&tmp, path).map_err(io_err(format!("renaming to {}", path.display())))?;
    sync_dir(dir)
}

fn create_segment(
    dir: &Path,
    no: u64,
    first_seq: u64,
    prev: &[u8; 32],
    key: &SigningKey,
) -> Result<(File, u64), LogError> {
    let path = dir.join(segment_name(no));
    let header = Header::signed(key, "segment", first_seq, prev, None, None, None).line()?;
    write_atomic(dir, &path, |f| f.write_all(&header))?;
    let file = OpenOptions::new()
        .write(true)
        .open(&path)
        .map_err(io_err(format!("opening {}", path.display())))?;
    Ok((file, header.len() as u64))
}

/// State recovered from the last segment.
struct Tail {
    next_seq: u64,
    last_hash: [u8; 32],
    good_len: u64,
    header_len: u64,
    /// Where written data ends: the start of the zero padding when only
    /// zeros follow it, else the file's length.
    data_end: Option<u64>,
}

/// Reads the last segment, checks its chain and signatures, and finds where
/// its last valid batch ends. Lines after it that are not followed by a
/// valid batch line were never acknowledged and may be cut; a valid batch
/// line after a damaged line means acknowledged records are damaged, which
/// is an error.
fn recover_tail(path: &Path, key: &VerifyingKey) -> Result<Tail, LogError> {
    let f = File::open(path).map_err(io_err(format!("opening {}", path.display())))?;
    let mut r = LineReader::new(f);
    let mut v = Verifier::new(key);
    v.file = Some(path.to_path_buf());
    let header_len = match r
        .next_line()
        .map_err(io_err(format!("reading {}", path.display())))?
    {
        Some((_, line, true)) => {
            v.line = 1;
            v.header(line)
                .map_err(|e| LogError::Corrupt(e.to_string()))?;
            line.len() as u64 + 1
        }
        _ => {
            return Err(LogError::Corrupt(format!(
                "{} has no complete header",
                path.display()
            )));
        }
    };
    let mut tail = Tail {
        next_seq: v.expect_seq,
        last_hash: v.expect_prev,
        good_len: header_len,
        header_len,
        data_end: None,
    };
    let read_err = || io_err(format!("reading {}", path.display()));
    let mut damaged: Option<VerifyError> = None;
    loop {
        let Some((offset, line, complete)) = r.next_line().map_err(read_err())? else {
            let Some(at) = r.padding_at else { break };
            if r.skip_padding().map_err(read_err())? {
                // Data after zeros: a torn, never acknowledged write, unless
                // a signed batch follows.
                damaged.get_or_insert_with(|| padding_error(&v, at));
                r.padding_at = None;
                continue;
            }
            tail.data_end = Some(at);
            break;
        };
        v.line += 1;
        if let Some(e) = &damaged {
            // Past the damage: is anything acknowledged (a batch line) here?
            if complete
                && line_kind(line) == LineKind::Batch
                && let Ok(b) = serde_json::from_slice::<BatchLine>(line)
                && b.last_seq >= tail.next_seq
            {
                return Err(LogError::Corrupt(format!("{e}; signed records follow it")));
            }
            continue;
        }
        if !complete {
            break;
        }
        let kind = line_kind(line);
        match v.line(line) {
            Ok(()) if kind == LineKind::Batch => {
                tail.next_seq = v.expect_seq;
                tail.last_hash = v.expect_prev;
                tail.good_len = offset + line.len() as u64 + 1;
            }
            Ok(()) => {}
            Err(e) => damaged = Some(e),
        }
    }
    Ok(tail)
}

// ------------------------------------------------------------------ writer

/// Settings of the live log.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// Directory of the segment files.
    pub dir: PathBuf,
    /// Directory of `exchange-signing.key` and `exchange-signing.pub`.
    pub key_dir: PathBuf,
    /// A new segment starts once the current one is this large.
    pub segment_max_bytes: u64,
    /// Most records written (and fsynced) together.
    pub max_batch: usize,
}

impl LogConfig {
    /// Segments in `DATA_DIR/exchange-log`, keys in `DATA_DIR`.
    pub fn new(data_dir: &Path) -> Self {
        LogConfig {
            dir: data_dir.join("exchange-log"),
            key_dir: data_dir.to_path_buf(),
            segment_max_bytes: 64 << 20,
            max_batch: 1024,
        }
    }
}

type Waiter = oneshot::Sender<Result<u64, LogError>>;

/// Records waiting for the next flush.
struct Queue {
    items: Vec<(String, Waiter)>,
    /// A flush task is scheduled or running.
    flushing: bool,
    /// Shut down: appends fail.
    closed: bool,
}

struct Writer {
    dir: PathBuf,
    key: Arc<SigningKey>,
    file: File,
    seg_no: u64,
    seg_len: u64,
    header_len: u64,
    next_seq: u64,
    last_hash: [u8; 32],
    segment_max: u64,
    /// Length of the segment file: `seg_len` plus zeros written ahead.
    allocated: u64,
    failed: Option<String>,
    healthy: Arc<AtomicBool>,
    buf: Vec<u8>,
    _lock: File,
}

/// The live segment grows by this much zeroed space at a time. Records are
/// then written over zeros without changing the file's length, so the
/// `fdatasync` after each batch flushes the data alone, not the inode as
/// well (about a third less time per batch on the disks measured).
const PREALLOCATE: u64 = 1 << 20;
static ZEROS: [u8; 1 << 16] = [0; 1 << 16];

impl Drop for Writer {
    /// Gives the segment back its exact length (a crash leaves the zeros;
    /// the next open cuts them).
    fn drop(&mut self) {
        if self.allocated > self.seg_len {
            let _ = self.trim();
        }
    }
}

impl Writer {
    /// Cuts the segment file to its records (zeros ahead and anything
    /// written after the last batch go) and syncs it.
    fn trim(&mut self) -> io::Result<()> {
        self.file.set_len(self.seg_len)?;
        self.file.sync_all()?;
        self.allocated = self.seg_len;
        Ok(())
    }

    /// Makes room for `n` more bytes after `seg_len`, writing zeros ahead.
    fn reserve(&mut self, n: u64) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        let need = self.seg_len + n;
        if need <= self.allocated {
            return Ok(());
        }
        let target = need.div_ceil(PREALLOCATE) * PREALLOCATE;
        let mut at = self.allocated.max(self.seg_len);
        while at < target {
            let len = (target - at).min(ZEROS.len() as u64) as usize;
            self.file.write_all_at(&ZEROS[..len], at)?;
            at += len as u64;
        }
        self.allocated = target;
        Ok(())
    }

    fn write_batch(&mut self, batch: &mut Vec<(String, Waiter)>) {
        if let Some(f) = &self.failed {
            let e = LogError::Failed(f.clone());
            for (_, ack) in batch.drain(..) {
                let _ = ack.send(Err(e.clone()));
            }
            return;
        }
        let mut buf = std::mem::take(&mut self.buf);
        self.write_records(batch, &mut buf);
        self.buf = buf;
    }

    fn write_records(&mut self, batch: &mut Vec<(String, Waiter)>, buf: &mut Vec<u8>) {
        buf.clear();
        let first_seq = self.next_seq;
        let first_prev = hex::encode(self.last_hash);
        let mut seq = self.next_seq;
        let mut prev = self.last_hash;
        for (body, _) in batch.iter() {
            let start = buf.len();
            buf.extend_from_slice(br#"{"kind":"record","seq":"#);
            buf.extend_from_slice(seq.to_string().as_bytes());
            buf.push(b',');
            buf.extend_from_slice(body.as_bytes());
            buf.extend_from_slice(br#","prev":""#);
            buf.extend_from_slice(hex::encode(prev).as_bytes());
            buf.push(b'"');
            prev = Sha256::digest(&buf[start..]).into();
            buf.extend_from_slice(br#","hash":""#);
            buf.extend_from_slice(hex::encode(prev).as_bytes());
            buf.extend_from_slice(b"\"}\n");
            seq += 1;
        }
        let last_seq = seq - 1;
        let last_hash = hex::encode(prev);
        let sig = self
            .key
            .sign(batch_message(first_seq, last_seq, &first_prev, &last_hash).as_bytes());
        buf.extend_from_slice(
            format!(
                r#"{{"kind":"batch","first_seq":{first_seq},"last_seq":{last_seq},"prev":"{first_prev}","last_hash":"{last_hash}","sig":"{}"}}"#,
                hex::encode(sig.to_bytes())
            )
            .as_bytes(),
        );
        buf.push(b'\n');
        let written = self
            .reserve(buf.len() as u64)
            .and_then(|_| {
                use std::os::unix::fs::FileExt;
                self.file.write_all_at(buf, self.seg_len)
            })
            .and_then(|_| self.file.sync_data());
        match written {
            Ok(()) => {
                self.seg_len += buf.len() as u64;
                self.next_seq = seq;
                self.last_hash = prev;
                for (i, (_, ack)) in batch.drain(..).enumerate() {
                    let _ = ack.send(Ok(first_seq + i as u64));
                }
                if self.seg_len >= self.segment_max
                    && let Err(e) = self.rotate()
                {
                    tracing::error!(error = %e, "exchange log: cannot start a new segment");
                }
            }
            Err(e) => {
                let message = format!("writing segment {}: {e}", self.seg_no);
                tracing::error!(error = %message, "exchange log write failed");
                // Cut what may have been written so the segment stays valid;
                // if even that fails, refuse further records.
                if let Err(e2) = self.trim() {
                    self.failed = Some(format!("{message}; then {e2}"));
                    self.healthy.store(false, Ordering::Relaxed);
                }
                let err = LogError::Io {
                    context: "exchange log".into(),
                    message,
                };
                for (_, ack) in batch.drain(..) {
                    let _ = ack.send(Err(err.clone()));
                }
            }
        }
    }

    /// Starts a new segment unless the current one has no records yet;
    /// returns the number of the active segment.
    fn rotate(&mut self) -> Result<u64, LogError> {
        if self.seg_len <= self.header_len {
            return Ok(self.seg_no);
        }
        let no = self.seg_no + 1;
        // A closed segment has no zeros at its end (verification says so).
        if self.allocated > self.seg_len {
            let closing = format!("closing segment {}", self.seg_no);
            self.trim().map_err(io_err(closing))?;
        }
        let (file, len) = create_segment(&self.dir, no, self.next_seq, &self.last_hash, &self.key)?;
        self.file = file;
        self.seg_no = no;
        self.seg_len = len;
        self.header_len = len;
        self.allocated = len;
        Ok(no)
    }
}

/// Time range of an export: record start times in `[from, to)`; `None`
/// is open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeRange {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

impl TimeRange {
    pub fn all() -> Self {
        TimeRange::default()
    }
    fn contains(&self, t: &DateTime<Utc>) -> bool {
        self.from.is_none_or(|f| *t >= f) && self.to.is_none_or(|to| *t < to)
    }
}

/// What an export or archive wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExportSummary {
    pub file: PathBuf,
    pub records: u64,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
}

/// The live message log: appends, group commit, export and archiving.
pub struct MessageLog {
    shared: Arc<Shared>,
    key: Arc<SigningKey>,
    public: VerifyingKey,
    dir: PathBuf,
    healthy: Arc<AtomicBool>,
    maintenance: tokio::sync::Mutex<()>,
}

/// What appenders and flush tasks share.
struct Shared {
    queue: Mutex<Queue>,
    /// `None` once shut down.
    writer: Mutex<Option<Writer>>,
    max_batch: usize,
    /// The last batch write was slow (see [`SLOW_WRITE`]).
    slow: AtomicBool,
}

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    /// Writes every queued record, a batch at a time, yielding to the
    /// runtime's other tasks between batches; clears `flushing` once the
    /// queue is empty.
    async fn flush_task(self: Arc<Self>) {
        /// A flush task dropped before it finished (its runtime shut down)
        /// hands the queue over to the next append.
        struct Handover(Arc<Shared>, bool);
        impl Drop for Handover {
            fn drop(&mut self) {
                if !self.1 {
                    locked(&self.0.queue).flushing = false;
                }
            }
        }
        let mut h = Handover(self, false);
        loop {
            let Some(batch) = h.0.take_batch() else {
                h.1 = true;
                return;
            };
            if h.0.slow.load(Ordering::Relaxed) {
                // The disk is slow now: write from a blocking thread, so
                // that this event loop goes on with other exchanges (whose
                // records make the next batch) instead of waiting with it.
                let s = h.0.clone();
                if tokio::task::spawn_blocking(move || s.write(batch))
                    .await
                    .is_err()
                {
                    tracing::error!("exchange log: a batch write panicked");
                }
            } else {
                h.0.write(batch);
            }
            tokio::task::yield_now().await;
        }
    }

    /// The next batch; `None` (and `flushing` cleared) when nothing waits.
    fn take_batch(&self) -> Option<Vec<(String, Waiter)>> {
        let mut q = locked(&self.queue);
        if q.items.is_empty() {
            q.flushing = false;
            return None;
        }
        let n = q.items.len().min(self.max_batch);
        Some(q.items.drain(..n).collect())
    }

    /// Writes one batch and notes whether the disk was slow.
    fn write(&self, mut batch: Vec<(String, Waiter)>) {
        let started = std::time::Instant::now();
        match locked(&self.writer).as_mut() {
            Some(w) => w.write_batch(&mut batch),
            None => {
                for (_, ack) in batch.drain(..) {
                    let _ = ack.send(Err(LogError::Closed));
                }
            }
        }
        self.slow
            .store(started.elapsed() > SLOW_WRITE, Ordering::Relaxed);
    }

    /// Writes one batch; false (and `flushing` cleared) when nothing waits.
    fn flush_once(&self) -> bool {
        match self.take_batch() {
            Some(batch) => {
                self.write(batch);
                true
            }
            None => false,
        }
    }
}

/// A batch write (with its `fdatasync`) slower than this moves the next
/// batches off the event loop until one is fast again. A fast disk syncs in
/// a fraction of a millisecond, and a full batch under load takes a few
/// milliseconds: writing on the event loop then saves two thread hand-offs
/// per batch (measured: with a 2 ms threshold, batches of a saturated
/// gateway went off the loop and it carried about a fifth less). A disk
/// busy with other writes may stall for tens or hundreds of milliseconds,
/// which the event loop must not wait out again and again.
const SLOW_WRITE: std::time::Duration = std::time::Duration::from_millis(10);

impl std::fmt::Debug for MessageLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageLog")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl MessageLog {
    /// Opens (or creates) the live log: takes the directory lock, loads or
    /// creates the signing key, recovers the chain from the last segment
    /// (cutting records that were never acknowledged) and opens the last
    /// segment for writing.
    pub fn open(config: &LogConfig) -> Result<MessageLog, LogError> {
        let dir = &config.dir;
        fs::create_dir_all(dir).map_err(io_err(format!("creating {}", dir.display())))?;
        let lock_path = dir.join("LOCK");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_err(format!("opening {}", lock_path.display())))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Err(LogError::Locked(dir.clone())),
            Err(fs::TryLockError::Error(e)) => {
                return Err(io_err(format!("locking {}", lock_path.display()))(e));
            }
        }
        let key = Arc::new(load_or_create_signing_key(&config.key_dir)?);
        let public = key.verifying_key();
        // Leftovers of an interrupted atomic write.
        if let Ok(entries) = fs::read_dir(dir) {
            for e in entries.flatten() {
                if e.file_name()
                    .to_str()
                    .is_some_and(|n| n.starts_with('.') && n.ends_with(".tmp"))
                {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
        let segments = list_segments(dir).map_err(io_err(format!("listing {}", dir.display())))?;
        let (file, seg_no, seg_len, header_len, next_seq, last_hash) = match segments.last() {
            None => {
                let (file, len) = create_segment(dir, 1, 1, &ZERO_HASH, &key)?;
                (file, 1, len, len, 1, ZERO_HASH)
            }
            Some((no, path)) => {
                let tail = recover_tail(path, &public)?;
                let file = OpenOptions::new()
                    .write(true)
                    .open(path)
                    .map_err(io_err(format!("opening {}", path.display())))?;
                let len = file
                    .metadata()
                    .map_err(io_err(format!("reading {}", path.display())))?
                    .len();
                if len != tail.good_len {
                    let data_end = tail.data_end.unwrap_or(len);
                    if data_end > tail.good_len {
                        tracing::warn!(
                            segment = %path.display(),
                            cut_bytes = data_end - tail.good_len,
                            "exchange log: cutting records that were never acknowledged"
                        );
                    }
                    file.set_len(tail.good_len)
                        .and_then(|_| file.sync_all())
                        .map_err(io_err(format!("truncating {}", path.display())))?;
                }
                (
                    file,
                    *no,
                    tail.good_len,
                    tail.header_len,
                    tail.next_seq,
                    tail.last_hash,
                )
            }
        };
        let healthy = Arc::new(AtomicBool::new(true));
        let writer = Writer {
            dir: dir.clone(),
            key: key.clone(),
            file,
            seg_no,
            seg_len,
            header_len,
            next_seq,
            last_hash,
            segment_max: config.segment_max_bytes.max(4096),
            allocated: seg_len,
            failed: None,
            healthy: healthy.clone(),
            buf: Vec::with_capacity(1 << 16),
            _lock: lock,
        };
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                items: Vec::new(),
                flushing: false,
                closed: false,
            }),
            writer: Mutex::new(Some(writer)),
            max_batch: config.max_batch.max(1),
            slow: AtomicBool::new(false),
        });
        Ok(MessageLog {
            shared,
            key,
            public,
            dir: dir.clone(),
            healthy,
            maintenance: tokio::sync::Mutex::new(()),
        })
    }

    /// Appends a record; returns its sequence number once it is durable
    /// (written and fdatasynced together with its batch signature).
    pub async fn append(&self, record: &ExchangeRecord) -> Result<u64, LogError> {
        let json = serde_json::to_string(record).map_err(|e| LogError::Serialize(e.to_string()))?;
        let body = json
            .strip_prefix('{')
            .and_then(|s| s.strip_suffix('}'))
            .filter(|s| !s.is_empty())
            .ok_or_else(|| LogError::Serialize("a record must be a non-empty JSON object".into()))?
            .to_owned();
        let (ack, done) = oneshot::channel();
        let start_flush = {
            let mut q = locked(&self.shared.queue);
            if q.closed {
                return Err(LogError::Closed);
            }
            q.items.push((body, ack));
            !std::mem::replace(&mut q.flushing, true)
        };
        if start_flush {
            // A task of its own: it runs after the tasks already ready on
            // this runtime (their records join the batch), and an exchange
            // that is dropped meanwhile does not strand the others.
            tokio::spawn(self.shared.clone().flush_task());
        }
        done.await.map_err(|_| LogError::Closed)?
    }

    /// The public key that verifies this log.
    pub fn public_key(&self) -> VerifyingKey {
        self.public
    }

    pub fn public_key_hex(&self) -> String {
        hex::encode(self.public.to_bytes())
    }

    /// The segment directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether the writer runs and can write (for health checks).
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed) && !locked(&self.shared.queue).closed
    }

    /// Stops the writer after the records already queued, and releases the
    /// directory lock. Later appends fail with [`LogError::Closed`].
    pub async fn shutdown(&self) {
        let shared = self.shared.clone();
        let healthy = self.healthy.clone();
        let _ = tokio::task::spawn_blocking(move || {
            locked(&shared.queue).closed = true;
            while shared.flush_once() {}
            healthy.store(false, Ordering::Relaxed);
            // Dropping the writer closes the segment and the LOCK file.
            locked(&shared.writer).take();
        })
        .await;
    }

    /// Exports the records that started in `range` (whole batches, so every
    /// signature verifies) to `out`, with a signed header naming the first
    /// and last record.
    pub async fn export(&self, range: TimeRange, out: &Path) -> Result<ExportSummary, LogError> {
        let _guard = self.maintenance.lock().await;
        let dir = self.dir.clone();
        let key = self.key.clone();
        let out = out.to_path_buf();
        tokio::task::spawn_blocking(move || export_dir(&dir, &key, range, &out))
            .await
            .map_err(|e| LogError::Failed(e.to_string()))?
    }

    /// Archives the records that started before `before` to `out` (a signed
    /// file that verifies on its own) and removes them from the live log,
    /// which stays verifiable: its first remaining segment gets a new signed
    /// header. Records are archived in whole batches, from the start of the
    /// log up to the first batch holding a record that started at or after
    /// `before`. Returns `records: 0` (and writes nothing) when there is
    /// nothing to archive.
    pub async fn archive_before(
        &self,
        before: DateTime<Utc>,
        out: &Path,
    ) -> Result<ExportSummary, LogError> {
        let _guard = self.maintenance.lock().await;
        let shared = self.shared.clone();
        let active = tokio::task::spawn_blocking(move || match locked(&shared.writer).as_mut() {
            Some(w) => w.rotate(),
            None => Err(LogError::Closed),
        })
        .await
        .map_err(|e| LogError::Failed(e.to_string()))??;
        let dir = self.dir.clone();
        let key = self.key.clone();
        let out = out.to_path_buf();
        tokio::task::spawn_blocking(move || archive_dir(&dir, &key, active, before, &out))
            .await
            .map_err(|e| LogError::Failed(e.to_string()))?
    }
}

/// A batch's position in a segment.
#[derive(Debug, Clone, Copy)]
struct BatchPos {
    seg: usize,
    start: u64,
    end: u64,
    first_seq: u64,
    last_seq: u64,
    prev: [u8; 32],
    last_hash: [u8; 32],
    /// Earliest and latest record start in the batch.
    min_start: Option<DateTime<Utc>>,
    max_start: Option<DateTime<Utc>>,
    any_in_range: bool,
}

/// Scans segment files and calls `each` for every complete batch, in order;
/// stops early when `each` returns false.
fn scan_batches(
    files: &mut [File],
    range: TimeRange,
    mut each: impl FnMut(&BatchPos) -> bool,
) -> Result<(), LogError> {
    for (seg, f) in files.iter_mut().enumerate() {
        f.seek(SeekFrom::Start(0))
            .map_err(io_err("reading the exchange log"))?;
        let mut r = LineReader::new(&mut *f);
        let mut cur: Option<BatchPos> = None;
        while let Some((offset, line, complete)) =
            r.next_line().map_err(io_err("reading the exchange log"))?
        {
            if !complete {
                break;
            }
            match line_kind(line) {
                LineKind::Record => {
                    let h: RecordHead = serde_json::from_slice(line).map_err(|e| {
                        LogError::Corrupt(format!("unreadable record at byte {offset}: {e}"))
                    })?;
                    let b = cur.get_or_insert(BatchPos {
                        seg,
                        start: offset,
                        end: offset,
                        first_seq: h.seq,
                        last_seq: h.seq,
                        prev: decode32(&h.prev).unwrap_or(ZERO_HASH),
                        last_hash: ZERO_HASH,
                        min_start: None,
                        max_start: None,
                        any_in_range: false,
                    });
                    b.last_seq = h.seq;
                    b.last_hash = decode32(&h.hash).unwrap_or(ZERO_HASH);
                    b.min_start = Some(b.min_start.map_or(h.start, |m| m.min(h.start)));
                    b.max_start = Some(b.max_start.map_or(h.start, |m| m.max(h.start)));
                    b.any_in_range |= range.contains(&h.start);
                }
                LineKind::Batch => {
                    if let Some(mut b) = cur.take() {
                        b.end = offset + line.len() as u64 + 1;
                        if !each(&b) {
                            return Ok(());
                        }
                    }
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// Copies batches `from..=to` (byte ranges of the segment files) after a
/// header into `out`, atomically.
fn write_log_file(
    out: &Path,
    header: &Header,
    files: &mut [File],
    parts: &[(usize, u64, u64)],
) -> Result<(), LogError> {
    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let header = header.line()?;
    write_atomic(&dir, out, |w| {
        w.write_all(&header)?;
        for (seg, start, end) in parts {
            let f = &mut files[*seg];
            f.seek(SeekFrom::Start(*start))?;
            let copied = io::copy(&mut (&mut *f).take(end - start), w)?;
            if copied != end - start {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "segment shorter than scanned",
                ));
            }
        }
        Ok(())
    })
}

/// Byte ranges (per segment) covering batches `first..=last` of a scan.
fn byte_ranges(batches: &[BatchPos]) -> Vec<(usize, u64, u64)> {
    let mut parts: Vec<(usize, u64, u64)> = Vec::new();
    for b in batches {
        match parts.last_mut() {
            Some((seg, _, end)) if *seg == b.seg && *end == b.start => *end = b.end,
            _ => parts.push((b.seg, b.start, b.end)),
        }
    }
    parts
}

fn open_segments(dir: &Path) -> Result<Vec<(u64, PathBuf, File)>, LogError> {
    let mut out = Vec::new();
    for (no, path) in list_segments(dir).map_err(io_err(format!("listing {}", dir.display())))? {
        let f = File::open(&path).map_err(io_err(format!("opening {}", path.display())))?;
        out.push((no, path, f));
    }
    Ok(out)
}

/// Exports records of `range` from a live log directory to `out` (see
/// [`MessageLog::export`]); safe while the gateway writes, for the CLI.
pub fn export_dir(
    dir: &Path,
    key: &SigningKey,
    range: TimeRange,
    out: &Path,
) -> Result<ExportSummary, LogError> {
    let segs = open_segments(dir)?;
    let mut files: Vec<File> = segs.into_iter().map(|(_, _, f)| f).collect();
    // The contiguous run of batches from the first to the last one that has
    // a record in range (records finish out of order, so a batch in the
    // middle may have none and is still exported: the chain must be whole).
    let mut run: Vec<BatchPos> = Vec::new();
    let mut last_in_range = 0usize;
    scan_batches(&mut files, range, |b| {
        if b.any_in_range || !run.is_empty() {
            run.push(*b);
            if b.any_in_range {
                last_in_range = run.len();
            }
        }
        // Past the range end with a margin: starts are nearly ordered.
        range.to.is_none_or(|to| {
            b.min_start
                .is_none_or(|m| m < to + chrono::Duration::hours(1))
        })
    })?;
    run.truncate(last_in_range);
    let (first_seq, prev, last_seq) = match (run.first(), run.last()) {
        (Some(f), Some(l)) => (f.first_seq, f.prev, l.last_seq),
        _ => (1, ZERO_HASH, 0),
    };
    let header = Header::signed(
        key,
        "export",
        first_seq,
        &prev,
        Some(last_seq),
        range.from.as_ref().map(time_text),
        range.to.as_ref().map(time_text),
    );
    write_log_file(out, &header, &mut files, &byte_ranges(&run))?;
    Ok(ExportSummary {
        file: out.to_path_buf(),
        records: run.iter().map(|b| b.last_seq - b.first_seq + 1).sum(),
        first_seq: run.first().map(|b| b.first_seq),
        last_seq: run.last().map(|b| b.last_seq),
    })
}

fn archive_dir(
    dir: &Path,
    key: &SigningKey,
    active: u64,
    before: DateTime<Utc>,
    out: &Path,
) -> Result<ExportSummary, LogError> {
    let segs: Vec<(u64, PathBuf, File)> = open_segments(dir)?
        .into_iter()
        .filter(|(no, _, _)| *no < active)
        .collect();
    let mut files: Vec<File> = Vec::with_capacity(segs.len());
    let mut names: Vec<(u64, PathBuf)> = Vec::with_capacity(segs.len());
    for (no, path, f) in segs {
        files.push(f);
        names.push((no, path));
    }
    let mut run: Vec<BatchPos> = Vec::new();
    scan_batches(&mut files, TimeRange::all(), |b| {
        if b.max_start.is_some_and(|m| m < before) {
            run.push(*b);
            true
        } else {
            false
        }
    })?;
    let (Some(first), Some(last)) = (run.first().copied(), run.last().copied()) else {
        return Ok(ExportSummary {
            file: out.to_path_buf(),
            records: 0,
            first_seq: None,
            last_seq: None,
        });
    };
    // 1. The archive, durable before anything is removed.
    let header = Header::signed(
        key,
        "archive",
        first.first_seq,
        &first.prev,
        Some(last.last_seq),
        None,
        Some(time_text(&before)),
    );
    write_log_file(out, &header, &mut files, &byte_ranges(&run))?;
    // 2. Segments wholly archived go.
    let seg_len = |i: usize| files[i].metadata().map(|m| m.len()).unwrap_or(0);
    let cut_seg = last.seg;
    let cut_whole = last.end >= seg_len(cut_seg);
    let remove_upto = if cut_whole { cut_seg + 1 } else { cut_seg };
    for (_, path) in &names[..remove_upto] {
        fs::remove_file(path).map_err(io_err(format!("removing {}", path.display())))?;
    }
    sync_dir(dir)?;
    // 3. A partly archived segment is rewritten from the cut, with a new
    //    signed header, and atomically replaces the old one.
    if !cut_whole {
        let (_, path) = &names[cut_seg];
        let len = seg_len(cut_seg);
        let header = Header::signed(
            key,
            "segment",
            last.last_seq + 1,
            &last.last_hash,
            None,
            None,
            None,
        )
        .line()?;
        let f = &mut files[cut_seg];
        write_atomic(dir, path, |w| {
            w.write_all(&header)?;
            f.seek(SeekFrom::Start(last.end))?;
            io::copy(&mut (&mut *f).take(len - last.end), w)?;
            Ok(())
        })?;
    }
    Ok(ExportSummary {
        file: out.to_path_buf(),
        records: last.last_seq - first.first_seq + 1,
        first_seq: Some(first.first_seq),
        last_seq: Some(last.last_seq),
    })
}

/// Reads every record of a log file or of a live log directory (for admin
/// pages and tests; does not verify).
pub fn read_records(path: &Path) -> Result<Vec<LoggedRecord>, LogError> {
    let files: Vec<PathBuf> = if path.is_dir() {
        list_segments(path)
            .map_err(io_err(format!("listing {}", path.display())))?
            .into_iter()
            .map(|(_, p)| p)
            .collect()
    } else {
        vec![path.to_path_buf()]
    };
    let mut out = Vec::new();
    for p in files {
        let f = File::open(&p).map_err(io_err(format!("opening {}", p.display())))?;
        let mut r = LineReader::new(f);
        while let Some((_, line, complete)) = r
            .next_line()
            .map_err(io_err(format!("reading {}", p.display())))?
        {
            if complete && line_kind(line) == LineKind::Record {
                out.push(
                    serde_json::from_slice(line)
                        .map_err(|e| LogError::Corrupt(format!("{}: {e}", p.display())))?,
                );
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn record(i: u64) -> ExchangeRecord {
        let t = DateTime::from_timestamp(1_750_000_000 + i as i64, 0).unwrap();
        ExchangeRecord {
            x_road_id: format!("id-{i}"),
            start: t,
            end: t,
            client: Some("VN/GOV/H26/MOTCUA".into()),
            service: Some("VN/GOV/BCA/DANCU/citizen".into()),
            user_id: Some("VN001".into()),
            issue: None,
            method: "GET".into(),
            path: format!("/r1/VN/GOV/BCA/DANCU/citizen/people/{i}"),
            status: 200,
            error: None,
            upstream_us: Some(100),
            total_us: 150,
            request_hash: None,
            request_sha256: Some(hex::encode(Sha256::digest(b""))),
            request_bytes: 0,
            response_sha256: hex::encode(Sha256::digest(b"{}")),
            response_bytes: 2,
            request_body: None,
            response_body: None,
        }
    }

    #[tokio::test]
    async fn append_verify_reopen_and_key_files() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = LogConfig::new(tmp.path());
        let log = MessageLog::open(&cfg).unwrap();
        assert!(matches!(MessageLog::open(&cfg), Err(LogError::Locked(_))));
        for i in 1..=5 {
            assert_eq!(log.append(&record(i)).await.unwrap(), i);
        }
        let key = read_public_key(tmp.path().join(PUB_FILE).to_str().unwrap()).unwrap();
        assert_eq!(key, log.public_key());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(tmp.path().join(KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let s = verify_dir(&cfg.dir, &key).unwrap();
        assert_eq!((s.records, s.last_seq), (5, Some(5)));
        log.shutdown().await;
        assert_eq!(log.append(&record(6)).await, Err(LogError::Closed));
        let log = MessageLog::open(&cfg).unwrap();
        assert_eq!(log.public_key(), key);
        assert_eq!(log.append(&record(6)).await.unwrap(), 6);
        let s = verify_dir(&cfg.dir, &key).unwrap();
        assert_eq!((s.records, s.last_seq), (6, Some(6)));
        let recs = read_records(&cfg.dir).unwrap();
        assert_eq!(recs.len(), 6);
        assert_eq!(recs[5].record, record(6));
    }

    #[tokio::test]
    async fn a_torn_tail_is_cut_on_open_but_signed_records_stay() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = LogConfig::new(tmp.path());
        let log = MessageLog::open(&cfg).unwrap();
        for i in 1..=3 {
            log.append(&record(i)).await.unwrap();
        }
        log.shutdown().await;
        let seg = list_segments(&cfg.dir).unwrap().pop().unwrap().1;
        // An unacknowledged record and half a line, as after a crash.
        let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
        f.write_all(b"{\"kind\":\"record\",\"seq\":4,\"x_road_id\":\"x\"}\n{\"kind\":\"rec")
            .unwrap();
        drop(f);
        let log = MessageLog::open(&cfg).unwrap();
        assert_eq!(log.append(&record(4)).await.unwrap(), 4);
        let key = log.public_key();
        assert_eq!(verify_dir(&cfg.dir, &key).unwrap().records, 4);
        log.shutdown().await;
        // Damage inside signed records is not "cut": opening refuses.
        let text = fs::read_to_string(&seg).unwrap().replace("id-2", "id-X");
        fs::write(&seg, text).unwrap();
        assert!(matches!(MessageLog::open(&cfg), Err(LogError::Corrupt(_))));
    }

    #[tokio::test]
    async fn segments_rotate_and_verify_as_one_chain() {
        let tmp = tempfile::tempdir().unwrap();
        let mut cfg = LogConfig::new(tmp.path());
        cfg.segment_max_bytes = 4096;
        let log = MessageLog::open(&cfg).unwrap();
        for i in 1..=40 {
            log.append(&record(i)).await.unwrap();
        }
        assert!(list_segments(&cfg.dir).unwrap().len() > 3);
        let s = verify_dir(&cfg.dir, &log.public_key()).unwrap();
        assert_eq!(s.records, 40);
        let out = tmp.path().join("export.log");
        let e = log
            .export(
                TimeRange {
                    from: Some(record(10).start),
                    to: Some(record(20).start),
                },
                &out,
            )
            .await
            .unwrap();
        assert!(
            e.first_seq.unwrap() <= 10 && e.last_seq.unwrap() >= 19,
            "{e:?}"
        );
        let v = verify_file(&out, &log.public_key()).unwrap();
        assert_eq!(v.records, e.records);
    }

    #[tokio::test]
    async fn zeros_written_ahead_are_cut_after_a_crash_and_refused_elsewhere() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = LogConfig::new(tmp.path());
        let log = MessageLog::open(&cfg).unwrap();
        for i in 1..=3 {
            log.append(&record(i)).await.unwrap();
        }
        let key = log.public_key();
        let seg = list_segments(&cfg.dir).unwrap().pop().unwrap().1;
        // The live segment carries zeroed space ahead of its records.
        let live_len = fs::metadata(&seg).unwrap().len();
        assert_eq!(live_len, PREALLOCATE);
        assert_eq!(verify_dir(&cfg.dir, &key).unwrap().records, 3);
        // A copy taken now is what a crash leaves behind.
        let crashed = tmp.path().join("crashed");
        let crashed_log = crashed.join("exchange-log");
        fs::create_dir_all(&crashed_log).unwrap();
        for f in [KEY_FILE, PUB_FILE] {
            fs::copy(tmp.path().join(f), crashed.join(f)).unwrap();
        }
        let seg_name = seg.file_name().unwrap();
        fs::copy(&seg, crashed_log.join(seg_name)).unwrap();
        log.shutdown().await;
        // A clean stop gives the segment its exact length back.
        let closed_len = fs::metadata(&seg).unwrap().len();
        assert!(closed_len < 4096, "{closed_len}");
        let text = fs::read(&seg).unwrap();
        assert!(!text.contains(&0), "no zeros in a closed segment");

        // Reopening the crashed copy cuts the zeros and goes on with the chain.
        let cfg2 = LogConfig::new(&crashed);
        let log2 = MessageLog::open(&cfg2).unwrap();
        assert_eq!(
            fs::metadata(crashed_log.join(seg_name)).unwrap().len(),
            closed_len
        );
        assert_eq!(log2.append(&record(4)).await.unwrap(), 4);
        assert_eq!(verify_dir(&cfg2.dir, &key).unwrap().records, 4);
        log2.shutdown().await;

        // Zeros are not accepted where records belong: in an exported file,
        let out = tmp.path().join("export.log");
        let log = MessageLog::open(&cfg).unwrap();
        log.export(TimeRange::all(), &out).await.unwrap();
        log.shutdown().await;
        assert_eq!(verify_file(&out, &key).unwrap().records, 3);
        let mut f = OpenOptions::new().append(true).open(&out).unwrap();
        f.write_all(&[0u8; 100]).unwrap();
        drop(f);
        let e = verify_file(&out, &key).unwrap_err();
        assert_eq!(e.problem, VerifyProblem::Malformed, "{e}");
        // nor over signed records of the live segment (opening refuses).
        let mut bytes = fs::read(&seg).unwrap();
        let first = bytes
            .windows(14)
            .position(|w| w == b"\"kind\":\"record")
            .unwrap();
        let line_end = first + bytes[first..].iter().position(|&b| b == b'\n').unwrap();
        for b in &mut bytes[first - 1..=line_end] {
            *b = 0;
        }
        fs::write(&seg, &bytes).unwrap();
        assert!(matches!(MessageLog::open(&cfg), Err(LogError::Corrupt(_))));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn after_a_slow_write_batches_are_written_off_the_event_loop() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = LogConfig::new(tmp.path());
        let log = Arc::new(MessageLog::open(&cfg).unwrap());
        // As after a write that took longer than SLOW_WRITE.
        log.shared.slow.store(true, Ordering::Relaxed);
        let mut tasks = Vec::new();
        for i in 1..=40 {
            let log = log.clone();
            tasks.push(tokio::spawn(async move { log.append(&record(i)).await }));
        }
        let mut seqs = Vec::new();
        for t in tasks {
            seqs.push(t.await.unwrap().unwrap());
        }
        seqs.sort();
        assert_eq!(seqs, (1..=40).collect::<Vec<u64>>());
        let s = verify_dir(&cfg.dir, &log.public_key()).unwrap();
        assert_eq!(s.records, 40);
        log.shutdown().await;
    }
}

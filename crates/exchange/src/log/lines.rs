//! The lines of a log file: headers, records and batch lines, and their
//! hashes and signatures.

use std::io::{self, BufRead, BufReader, Read};

use chrono::{DateTime, Utc};
use ed25519_dalek::{Signer, SigningKey};
use serde::{Deserialize, Serialize};

use super::*;

// ------------------------------------------------------------------ lines

pub(super) fn now_text() -> String {
    Utc::now().format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

pub(super) fn time_text(t: &DateTime<Utc>) -> String {
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
    pub(super) fn message(&self) -> String {
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

    pub(super) fn signed(
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

    pub(super) fn line(&self) -> Result<Vec<u8>, LogError> {
        let mut v = serde_json::to_vec(self).map_err(|e| LogError::Serialize(e.to_string()))?;
        v.push(b'\n');
        Ok(v)
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct BatchLine {
    pub(super) first_seq: u64,
    pub(super) last_seq: u64,
    pub(super) prev: String,
    pub(super) last_hash: String,
    pub(super) sig: String,
}

pub(super) fn batch_message(first_seq: u64, last_seq: u64, prev: &str, last_hash: &str) -> String {
    format!("{FORMAT} batch\n{first_seq}\n{last_seq}\n{prev}\n{last_hash}")
}

#[derive(Debug, Deserialize)]
pub(super) struct RecordHead {
    pub(super) seq: u64,
    pub(super) start: DateTime<Utc>,
    pub(super) prev: String,
    pub(super) hash: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LineKind {
    Header,
    Record,
    Batch,
    Other,
}

pub(super) fn line_kind(line: &[u8]) -> LineKind {
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

pub(super) fn decode32(s: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out).ok()?;
    Some(out)
}

/// Splits a record line (without `\n`) into the hashed prefix and the hash
/// it claims; `None` when the line does not end with a hash field.
pub(super) fn split_record_line(line: &[u8]) -> Option<(&[u8], [u8; 32])> {
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
pub(super) struct LineReader<R> {
    pub(super) r: BufReader<R>,
    pub(super) pos: u64,
    pub(super) buf: Vec<u8>,
    /// Where zero padding was met, if it was.
    pub(super) padding_at: Option<u64>,
}

impl<R: Read> LineReader<R> {
    pub(super) fn new(r: R) -> Self {
        LineReader {
            r: BufReader::with_capacity(1 << 16, r),
            pos: 0,
            buf: Vec::with_capacity(1024),
            padding_at: None,
        }
    }

    /// `(offset, line without \n, complete)`; `None` at the end of the
    /// data or at zero padding.
    pub(super) fn next_line(&mut self) -> io::Result<Option<(u64, &[u8], bool)>> {
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
    pub(super) fn skip_padding(&mut self) -> io::Result<bool> {
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
pub(super) fn padding_error(v: &Verifier, at: u64) -> VerifyError {
    v.err(
        None,
        VerifyProblem::Malformed,
        format!("zero bytes from byte {at} on, where records should be"),
    )
}

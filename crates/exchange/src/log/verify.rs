//! Checking a log file or directory offline, record by record.

use std::fs::File;
use std::io::{self};
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, VerifyingKey};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::*;

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

pub(super) struct Verifier<'a> {
    pub(super) key: &'a VerifyingKey,
    pub(super) expect_seq: u64,
    pub(super) expect_prev: [u8; 32],
    pub(super) pending_first: Option<(u64, [u8; 32])>,
    pub(super) pending_count: u64,
    pub(super) records: u64,
    pub(super) batches: u64,
    pub(super) first_seq: Option<u64>,
    pub(super) file: Option<PathBuf>,
    pub(super) line: u64,
    pub(super) started: bool,
}

impl<'a> Verifier<'a> {
    pub(super) fn new(key: &'a VerifyingKey) -> Self {
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

    pub(super) fn err(
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
    pub(super) fn header(&mut self, line: &[u8]) -> Result<Header, VerifyError> {
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

    pub(super) fn record(&mut self, line: &[u8]) -> Result<(), VerifyError> {
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

    pub(super) fn batch(&mut self, line: &[u8]) -> Result<(), VerifyError> {
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

    pub(super) fn line(&mut self, line: &[u8]) -> Result<(), VerifyError> {
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

    pub(super) fn summary(&self) -> VerifySummary {
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

pub(super) fn decode_sig(s: &str) -> Option<Signature> {
    let mut out = [0u8; 64];
    hex::decode_to_slice(s, &mut out).ok()?;
    Some(Signature::from_bytes(&out))
}

/// Turns a `Missing` into `Reordered` when the record appears elsewhere.
pub(super) fn refine_missing(mut e: VerifyError, files: &[PathBuf]) -> VerifyError {
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

pub(super) fn verify_one(path: &Path, key: &VerifyingKey) -> Result<VerifySummary, VerifyError> {
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

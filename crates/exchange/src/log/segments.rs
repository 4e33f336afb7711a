//! The segment files of the live log.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use ed25519_dalek::{SigningKey, VerifyingKey};

use super::*;

// ------------------------------------------------------------------ segments

pub(super) fn segment_name(no: u64) -> String {
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
pub(super) fn write_atomic(
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

pub(super) fn create_segment(
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
pub(super) struct Tail {
    pub(super) next_seq: u64,
    pub(super) last_hash: [u8; 32],
    pub(super) good_len: u64,
    pub(super) header_len: u64,
    /// Where written data ends: the start of the zero padding when only
    /// zeros follow it, else the file's length.
    pub(super) data_end: Option<u64>,
}

/// Reads the last segment, checks its chain and signatures, and finds where
/// its last valid batch ends. Lines after it that are not followed by a
/// valid batch line were never acknowledged and may be cut; a valid batch
/// line after a damaged line means acknowledged records are damaged, which
/// is an error.
pub(super) fn recover_tail(path: &Path, key: &VerifyingKey) -> Result<Tail, LogError> {
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

//! The live log: opening (and recovering) it, group commit, rotation,
//! export and archive.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;

use super::*;

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

pub(super) type Waiter = oneshot::Sender<Result<u64, LogError>>;

/// Records waiting for the next flush.
pub(super) struct Queue {
    pub(super) items: Vec<(String, Waiter)>,
    /// A flush task is scheduled or running.
    pub(super) flushing: bool,
    /// Shut down: appends fail.
    pub(super) closed: bool,
}

pub(super) struct Writer {
    pub(super) dir: PathBuf,
    pub(super) key: Arc<SigningKey>,
    pub(super) file: File,
    pub(super) seg_no: u64,
    pub(super) seg_len: u64,
    pub(super) header_len: u64,
    pub(super) next_seq: u64,
    pub(super) last_hash: [u8; 32],
    pub(super) segment_max: u64,
    /// Length of the segment file: `seg_len` plus zeros written ahead.
    pub(super) allocated: u64,
    pub(super) failed: Option<String>,
    pub(super) healthy: Arc<AtomicBool>,
    pub(super) buf: Vec<u8>,
    pub(super) _lock: File,
}

/// The live segment grows by this much zeroed space at a time. Records are
/// then written over zeros without changing the file's length, so the
/// `fdatasync` after each batch flushes the data alone, not the inode as
/// well (about a third less time per batch on the disks measured).
pub(super) const PREALLOCATE: u64 = 1 << 20;
pub(super) static ZEROS: [u8; 1 << 16] = [0; 1 << 16];

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
    pub(super) fn trim(&mut self) -> io::Result<()> {
        self.file.set_len(self.seg_len)?;
        self.file.sync_all()?;
        self.allocated = self.seg_len;
        Ok(())
    }

    /// Makes room for `n` more bytes after `seg_len`, writing zeros ahead.
    pub(super) fn reserve(&mut self, n: u64) -> io::Result<()> {
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

    pub(super) fn write_batch(&mut self, batch: &mut Vec<(String, Waiter)>) {
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

    pub(super) fn write_records(&mut self, batch: &mut Vec<(String, Waiter)>, buf: &mut Vec<u8>) {
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
    pub(super) fn rotate(&mut self) -> Result<u64, LogError> {
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
    pub(super) fn contains(&self, t: &DateTime<Utc>) -> bool {
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
    pub(super) shared: Arc<Shared>,
    pub(super) key: Arc<SigningKey>,
    pub(super) public: VerifyingKey,
    pub(super) dir: PathBuf,
    pub(super) healthy: Arc<AtomicBool>,
    pub(super) maintenance: tokio::sync::Mutex<()>,
}

/// What appenders and flush tasks share.
pub(super) struct Shared {
    pub(super) queue: Mutex<Queue>,
    /// `None` once shut down.
    pub(super) writer: Mutex<Option<Writer>>,
    pub(super) max_batch: usize,
    /// The last batch write was slow (see [`SLOW_WRITE`]).
    pub(super) slow: AtomicBool,
}

pub(super) fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    /// Writes every queued record, a batch at a time, yielding to the
    /// runtime's other tasks between batches; clears `flushing` once the
    /// queue is empty.
    pub(super) async fn flush_task(self: Arc<Self>) {
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
    pub(super) fn take_batch(&self) -> Option<Vec<(String, Waiter)>> {
        let mut q = locked(&self.queue);
        if q.items.is_empty() {
            q.flushing = false;
            return None;
        }
        let n = q.items.len().min(self.max_batch);
        Some(q.items.drain(..n).collect())
    }

    /// Writes one batch and notes whether the disk was slow.
    pub(super) fn write(&self, mut batch: Vec<(String, Waiter)>) {
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
    pub(super) fn flush_once(&self) -> bool {
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
pub(super) const SLOW_WRITE: std::time::Duration = std::time::Duration::from_millis(10);

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
pub(super) struct BatchPos {
    pub(super) seg: usize,
    pub(super) start: u64,
    pub(super) end: u64,
    pub(super) first_seq: u64,
    pub(super) last_seq: u64,
    pub(super) prev: [u8; 32],
    pub(super) last_hash: [u8; 32],
    /// Earliest and latest record start in the batch.
    pub(super) min_start: Option<DateTime<Utc>>,
    pub(super) max_start: Option<DateTime<Utc>>,
    pub(super) any_in_range: bool,
}

/// Scans segment files and calls `each` for every complete batch, in order;
/// stops early when `each` returns false.
pub(super) fn scan_batches(
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
pub(super) fn write_log_file(
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
pub(super) fn byte_ranges(batches: &[BatchPos]) -> Vec<(usize, u64, u64)> {
    let mut parts: Vec<(usize, u64, u64)> = Vec::new();
    for b in batches {
        match parts.last_mut() {
            Some((seg, _, end)) if *seg == b.seg && *end == b.start => *end = b.end,
            _ => parts.push((b.seg, b.start, b.end)),
        }
    }
    parts
}

pub(super) fn open_segments(dir: &Path) -> Result<Vec<(u64, PathBuf, File)>, LogError> {
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

pub(super) fn archive_dir(
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

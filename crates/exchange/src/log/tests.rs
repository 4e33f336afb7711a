use std::fs::{self, OpenOptions};
use std::io::Write;

use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::segments::*;
use super::verify::*;
use super::writer::*;
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

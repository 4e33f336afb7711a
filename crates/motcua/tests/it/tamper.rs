//! Attackers at work. (A) Someone with write access to the database (and
//! perhaps to the data directory) covers their tracks: `motcua audit
//! verify` must still say `AUDIT CHAIN BROKEN` (exit 2), and must not cry
//! wolf over an installation that only did its work. (B) A province
//! administrator's catalogue decisions reach their own province only.
//!
//! The PostgreSQL variants run only when `MOTCUA_TEST_POSTGRES_URL` is set
//! (see cluster.rs); without it they print SKIPPED and pass.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use motcua::Config;
use motcua_domain::audit::Checkpoint;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};
use sqlx::Connection;

use crate::cluster::{PgDb, run_motcua};
use crate::helpers::*;

// ---------------------------------------------------------------------------
// A. The audit chain against an attacker with access to the database
// ---------------------------------------------------------------------------

/// `motcua audit verify` on the installation of `cfg`, with `env` added:
/// (exit code, stdout and stderr).
fn verify_with(cfg: &Config, env: &[(&str, &Path)]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_motcua"))
        .current_dir(workspace())
        .arg("--database-url")
        .arg(cfg.database_url())
        .arg("--data-dir")
        .arg(&cfg.data_dir)
        .args(["audit", "verify"])
        .envs(env.iter().copied())
        .env("RUST_LOG", "warn")
        .output()
        .expect("run motcua audit verify");
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Verifies; the chain must be intact and anchored at its newest record.
fn assert_intact(cfg: &Config, head: i64) {
    let (code, out) = verify_with(cfg, &[]);
    assert_eq!(code, 0, "an untouched installation verifies: {out}");
    assert!(out.contains("Audit chain intact"), "{out}");
    assert!(
        out.contains(&format!("the head signed at record {head}.")),
        "anchored at the newest record {head}: {out}"
    );
}

/// Verifies with `env`; the chain must be reported broken (exit code 2).
/// Returns the report.
fn assert_broken_with(cfg: &Config, env: &[(&str, &Path)], what: &str) -> String {
    let (code, out) = verify_with(cfg, env);
    assert_eq!(code, 2, "{what} must be caught: {out}");
    assert!(out.contains("AUDIT CHAIN BROKEN at "), "{what}: {out}");
    out
}

fn assert_broken(cfg: &Config, what: &str) -> String {
    assert_broken_with(cfg, &[], what)
}

/// A raw connection to the database of an installation, around the
/// application: what an attacker with the database password (or the
/// file) has.
enum Raw {
    Lite(sqlx::SqliteConnection),
    Pg(sqlx::PgConnection),
}

impl Raw {
    async fn open(cfg: &Config) -> Raw {
        let url = cfg.database_url();
        if url.starts_with("sqlite:") {
            Raw::Lite(
                sqlx::SqliteConnection::connect(&url)
                    .await
                    .expect("open the database file"),
            )
        } else {
            Raw::Pg(
                sqlx::PgConnection::connect(&url)
                    .await
                    .expect("connect to the database"),
            )
        }
    }

    async fn exec(&mut self, sql: &str) {
        let q = sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()));
        match self {
            Raw::Lite(c) => q.execute(c).await.map(|_| ()),
            Raw::Pg(c) => q.execute(c).await.map(|_| ()),
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    async fn int(&mut self, sql: &str) -> i64 {
        let stmt = || sqlx::AssertSqlSafe(sql.to_string());
        match self {
            Raw::Lite(c) => sqlx::query_scalar(stmt()).fetch_one(c).await,
            Raw::Pg(c) => sqlx::query_scalar(stmt()).fetch_one(c).await,
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    async fn text(&mut self, sql: &str) -> String {
        let stmt = || sqlx::AssertSqlSafe(sql.to_string());
        match self {
            Raw::Lite(c) => sqlx::query_scalar(stmt()).fetch_one(c).await,
            Raw::Pg(c) => sqlx::query_scalar(stmt()).fetch_one(c).await,
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    async fn close(self) {
        match self {
            Raw::Lite(c) => c.close().await,
            Raw::Pg(c) => c.close().await,
        }
        .expect("close the connection");
    }
}

/// Runs the attacker's `sql` on the database of `cfg`.
async fn tamper(cfg: &Config, sql: &str) {
    let mut c = Raw::open(cfg).await;
    c.exec(sql).await;
    c.close().await;
}

async fn newest_seq(cfg: &Config) -> i64 {
    let mut c = Raw::open(cfg).await;
    let seq = c.int("SELECT MAX(seq) FROM audit").await;
    c.close().await;
    seq
}

/// Writes `cp` into the database's head row, as an attacker would.
async fn put_head_row(cfg: &Config, cp: &Checkpoint) {
    tamper(
        cfg,
        &format!(
            "DELETE FROM audit_head; INSERT INTO audit_head (id, seq, hash, at, signer, signature) VALUES (1, {}, '{}', {}, '{}', '{}')",
            cp.seq,
            cp.hash,
            cp.at.timestamp_micros(),
            cp.key,
            cp.signature
        ),
    )
    .await;
}

fn checkpoint_file(cfg: &Config) -> PathBuf {
    cfg.audit.checkpoint_path(&cfg.data_dir)
}

fn file_checkpoint(cfg: &Config) -> Checkpoint {
    motcua::audit::read_checkpoint_file(cfg)
        .expect("a readable checkpoint file")
        .expect("the checkpoint was copied out")
}

/// Stops the application as `serve` stops: the newest checkpoint copied
/// out of the database first (the in-process application has no copier).
async fn stop_like_serve(app: TestApp) -> (PathBuf, Config) {
    motcua::audit::copy_checkpoint(app.state.store.as_ref(), &app.config)
        .await
        .expect("copy the checkpoint out");
    app.stop().await
}

/// The work of a commune's day: `n` birth registrations by the citizen,
/// each opened by the officer (an audited access to personal data); of
/// every three the officer accepts the first, refuses the second and
/// accepts and forwards the third. Then `searches` searches by name (each
/// audited). Returns the codes with their statuses.
async fn work(app: &TestApp, n: usize, searches: usize) -> Vec<(String, String)> {
    let citizen = app.token("citizen").await;
    let officer = app.token("officer").await;
    let mut out = Vec::new();
    for i in 0..n {
        let code = app.submit_birth(&citizen).await;
        let (s, v) = app
            .get(Some(&officer), &format!("/api/v1/dossiers/{code}"))
            .await;
        assert_eq!(s, 200, "{v}");
        let mut actions = vec![json!({ "action": "accept" })];
        match i % 3 {
            0 => {}
            1 => actions = vec![json!({ "action": "refuse", "note": "Thiếu giấy chứng sinh" })],
            _ => actions.push(json!({ "action": "forward" })),
        }
        let mut status = String::new();
        for a in actions {
            let (s, v) = app.act(&officer, &code, a).await;
            assert_eq!(s, 200, "{v}");
            status = v["status"].as_str().expect("status").to_string();
        }
        out.push((code, status));
    }
    for _ in 0..searches {
        let (s, v) = app
            .get(Some(&officer), "/api/v1/dossiers?q=Nguy%E1%BB%85n")
            .await;
        assert_eq!(s, 200, "{v}");
    }
    out
}

/// An installation after real work, stopped as `serve` stops.
struct Worked {
    dir: PathBuf,
    cfg: Config,
    dossiers: Vec<(String, String)>,
    /// A genuine checkpoint of an earlier time (just after the demo data
    /// was seeded), as an attacker who once read the head row kept it.
    early: Checkpoint,
}

/// Demo data, then six dossiers in several states and 90 searches, on
/// SQLite or on `database_url`.
async fn worked_installation(database_url: Option<String>) -> Worked {
    let dir = temp_dir("tamper");
    let cfg = app_config(&dir, database_url);
    let app = start_app(dir, cfg, false).await;
    let early = app
        .state
        .store
        .audit_checkpoint()
        .await
        .expect("read the head row")
        .expect("the seeded chain's head is signed");
    let dossiers = work(&app, 6, 90).await;
    let (dir, cfg) = stop_like_serve(app).await;
    Worked {
        dir,
        cfg,
        dossiers,
        early,
    }
}

/// Closes an installation opened in the test.
async fn close(inst: motcua::Installation) {
    if let Some(s) = inst.sqlite {
        s.close().await;
    }
    if let Some(p) = inst.postgres {
        p.close().await;
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create the copy");
    for e in std::fs::read_dir(from).expect("read the data directory") {
        let e = e.expect("entry");
        let target = to.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).expect("copy a file");
        }
    }
}

/// A fresh copy of a SQLite installation (database, key, checkpoint file,
/// attachments) to tamper with.
fn sqlite_copy(w: &Worked) -> Config {
    let dir = temp_dir("tamper-copy");
    copy_dir(&w.cfg.data_dir, &dir.join("data"));
    app_config(&dir, None)
}

/// Deletes the `n` newest records; then, step by step, also covers the
/// head row: re-pointed at the new last record, replaced by a genuine but
/// older checkpoint, deleted. Every state is caught, naming the first
/// missing record where the chain's length is the tell.
async fn truncation_is_caught(cfg: &Config, early: &Checkpoint, n: i64) {
    let head = newest_seq(cfg).await;
    assert!(
        head - n >= early.seq,
        "the work after the saved checkpoint exceeds {n} records ({} .. {head})",
        early.seq
    );
    assert_intact(cfg, head);
    let first_gone = head - n + 1;
    tamper(
        cfg,
        &format!("DELETE FROM audit WHERE seq > (SELECT MAX(seq) FROM audit) - {n}"),
    )
    .await;
    assert_eq!(newest_seq(cfg).await, head - n, "{n} records deleted");
    let out = assert_broken(cfg, &format!("deleting the {n} newest records"));
    assert!(
        out.contains(&format!(
            "BROKEN at record {first_gone}: records {first_gone} to {head} are missing"
        )),
        "{out}"
    );

    tamper(
        cfg,
        "UPDATE audit_head SET seq = (SELECT MAX(seq) FROM audit), hash = (SELECT hash FROM audit WHERE seq = (SELECT MAX(seq) FROM audit))",
    )
    .await;
    let out = assert_broken(
        cfg,
        &format!("{n} records deleted and the head row re-pointed"),
    );
    assert!(out.contains("checkpoint in the database"), "{out}");
    assert!(out.contains("altered"), "{out}");

    put_head_row(cfg, early).await;
    let out = assert_broken(
        cfg,
        &format!("{n} records deleted and an older genuine head row put back"),
    );
    assert!(
        out.contains(&format!(
            "BROKEN at record {first_gone}: records {first_gone} to {head} are missing"
        )),
        "the copy outside the database names the gap: {out}"
    );

    tamper(cfg, "DELETE FROM audit_head").await;
    let out = assert_broken(cfg, &format!("{n} records and the head row deleted"));
    assert!(out.contains("missing from the database (deleted)"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_deleting_the_newest_audit_records_is_caught() {
    let w = worked_installation(None).await;
    for n in [1, 3, 100] {
        truncation_is_caught(&sqlite_copy(&w), &w.early, n).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_deleting_the_newest_audit_records_is_caught() {
    let Some(db) = PgDb::create("tamper_truncate").await else {
        return;
    };
    let w = worked_installation(Some(db.url.clone())).await;
    truncation_is_caught(&w.cfg, &w.early, 3).await;
}

/// The status of a refused dossier set to `accepted` in the database,
/// in the status column or in the lifecycle the dossier's page shows:
/// caught, naming the dossier.
async fn status_change_is_caught(w: &Worked, cfg: &Config, column: &str) {
    let head = newest_seq(cfg).await;
    assert_intact(cfg, head);
    let (code, status) = w
        .dossiers
        .iter()
        .find(|(_, s)| s == "not_accepted")
        .expect("a refused dossier");
    let set = match column {
        "status" => "status = 'accepted'".to_string(),
        _ => format!(
            "lifecycle = REPLACE(lifecycle, '\"status\":\"{status}\"', '\"status\":\"accepted\"')"
        ),
    };
    tamper(
        cfg,
        &format!("UPDATE dossiers SET {set} WHERE code = '{code}'"),
    )
    .await;
    // The application shows the forged status: in lists (the column) or
    // on the dossier's page (the lifecycle).
    let inst = motcua::open(cfg).await.expect("open");
    let d = inst
        .store
        .dossier(&motcua_domain::DossierCode::parse(code).expect("code"))
        .await
        .expect("read")
        .expect("the dossier");
    let listed = inst
        .store
        .find_dossiers(&motcua_store::DossierQuery {
            applicant_user_id: d.applicant.user_id,
            limit: 200,
            ..Default::default()
        })
        .await
        .expect("list")
        .into_iter()
        .find(|s| s.code == d.code)
        .expect("listed");
    let shown = match column {
        "status" => listed.status,
        _ => d.lifecycle.status,
    };
    assert_eq!(
        shown.as_str(),
        "accepted",
        "the forged {column} is in force"
    );
    close(inst).await;
    let out = assert_broken(
        cfg,
        &format!("a dossier's {column} changed in the database"),
    );
    assert!(
        out.contains(&format!("BROKEN at dossier {code}:")),
        "the dossier is named: {out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_status_changed_in_the_database_is_caught_naming_the_dossier() {
    let w = worked_installation(None).await;
    status_change_is_caught(&w, &sqlite_copy(&w), "status").await;
    status_change_is_caught(&w, &sqlite_copy(&w), "lifecycle").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_status_changed_in_the_database_is_caught_naming_the_dossier() {
    let Some(db) = PgDb::create("tamper_status").await else {
        return;
    };
    let w = worked_installation(Some(db.url.clone())).await;
    let copy = db.copy("tamper_status_copy").await;
    let mut cfg = w.cfg.clone();
    cfg.database_url = Some(copy.url.clone());
    status_change_is_caught(&w, &w.cfg, "status").await;
    status_change_is_caught(&w, &cfg, "lifecycle").await;
}

/// Checkpoints signed with a key that is not the installation's, in the
/// head row and in the file, after deleting the three newest records:
/// caught whether they name the forger's key or claim the installation's.
async fn forgery_is_caught(cfg: &Config) {
    let head = newest_seq(cfg).await;
    assert_intact(cfg, head);
    let real = motcua::audit::load_or_create_key(cfg).expect("the installation's key");
    let forger = ed25519_dalek::SigningKey::from_bytes(&[0x42; 32]);

    // Only the file replaced, the database untouched.
    let good = file_checkpoint(cfg);
    let forged = Checkpoint::sign(&forger, good.seq, &good.hash, good.at);
    std::fs::write(
        checkpoint_file(cfg),
        serde_json::to_vec_pretty(&forged).expect("json"),
    )
    .expect("write the file");
    let out = assert_broken(cfg, "a checkpoint file signed with another key");
    assert!(
        out.contains("checkpoint copied outside the database"),
        "{out}"
    );
    assert!(out.contains("not with this installation's key"), "{out}");

    // The newest records deleted, head row and file re-signed.
    tamper(
        cfg,
        "DELETE FROM audit WHERE seq > (SELECT MAX(seq) FROM audit) - 3",
    )
    .await;
    let mut c = Raw::open(cfg).await;
    let seq = c.int("SELECT MAX(seq) FROM audit").await;
    let hash = c
        .text("SELECT hash FROM audit WHERE seq = (SELECT MAX(seq) FROM audit)")
        .await;
    c.close().await;
    let now = chrono::Utc::now();
    let forged = Checkpoint::sign(&forger, seq, &hash, now);
    put_head_row(cfg, &forged).await;
    std::fs::write(
        checkpoint_file(cfg),
        serde_json::to_vec_pretty(&forged).expect("json"),
    )
    .expect("write the file");
    let out = assert_broken(cfg, "a head signed with another key");
    assert!(out.contains("not with this installation's key"), "{out}");

    // The same, claiming the installation's public key.
    let mut claimed = forged.clone();
    claimed.key = hex::encode(real.verifying_key().to_bytes());
    put_head_row(cfg, &claimed).await;
    std::fs::write(
        checkpoint_file(cfg),
        serde_json::to_vec_pretty(&claimed).expect("json"),
    )
    .expect("write the file");
    let out = assert_broken(
        cfg,
        "a head signed with another key claiming the installation's",
    );
    assert!(out.contains("its signature does not match"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_checkpoint_signed_with_another_key_is_caught() {
    let w = worked_installation(None).await;
    forgery_is_caught(&sqlite_copy(&w)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_checkpoint_signed_with_another_key_is_caught() {
    let Some(db) = PgDb::create("tamper_forge").await else {
        return;
    };
    let w = worked_installation(Some(db.url.clone())).await;
    forgery_is_caught(&w.cfg).await;
}

/// A backup taken early, more work, then the old database put back: the
/// checkpoint copied out is ahead of it. Also when the file beside the
/// database goes too (the copy kept apart says so), and after the
/// restored installation has worked on past the old head.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_restoring_an_older_copy_of_the_database_is_caught() {
    let w = worked_installation(None).await;
    let data = w.cfg.data_dir.display().to_string();
    let old = w.dir.join("early-backup.db");
    let (ok, out) = run_motcua(&["--data-dir", &data, "backup", &old.display().to_string()]);
    assert!(ok, "{out}");
    let before = newest_seq(&w.cfg).await;

    // More work: three more dossiers.
    let app = start_app(w.dir.clone(), w.cfg.clone(), false).await;
    work(&app, 3, 0).await;
    let (dir, cfg) = stop_like_serve(app).await;
    let head = newest_seq(&cfg).await;
    assert!(head > before);
    assert_intact(&cfg, head);
    let kept = dir.join("kept-audit-checkpoint.json");
    std::fs::copy(checkpoint_file(&cfg), &kept).expect("keep a copy apart");

    // The attacker puts the early copy back.
    let db = cfg.data_dir.join("motcua.db");
    for ext in ["motcua.db-wal", "motcua.db-shm"] {
        let _ = std::fs::remove_file(cfg.data_dir.join(ext));
    }
    std::fs::copy(&old, &db).expect("restore the early copy");
    assert_eq!(newest_seq(&cfg).await, before);
    let out = assert_broken(&cfg, "an older copy of the database restored");
    assert!(
        out.contains(&format!(
            "BROKEN at record {}: records {} to {head} are missing",
            before + 1,
            before + 1
        )),
        "{out}"
    );
    assert!(out.contains("older copy of the database restored"), "{out}");

    // ... and removes the checkpoint file beside it: the copy kept apart
    // (`[audit] checkpoint_file`) still tells.
    std::fs::remove_file(checkpoint_file(&cfg)).expect("remove the file");
    let out = assert_broken_with(
        &cfg,
        &[("MOTCUA_AUDIT__CHECKPOINT_FILE", kept.as_path())],
        "a restored database with the file beside it removed",
    );
    assert!(out.contains("are missing"), "{out}");
    std::fs::copy(&kept, checkpoint_file(&cfg)).expect("the file is back");

    // The restored installation is started and works on until its chain
    // is longer than the one the checkpoint signed: the copier must not
    // overwrite the evidence with the new chain's head.
    let app = start_app(dir, cfg, false).await;
    let mut more = 0;
    while app
        .state
        .store
        .audit_head()
        .await
        .expect("head")
        .map(|h| h.0)
        <= Some(head)
    {
        work(&app, 1, 0).await;
        more += 1;
        assert!(more < 20, "the chain grows");
    }
    let copied = motcua::audit::copy_checkpoint(app.state.store.as_ref(), &app.config).await;
    assert!(
        copied.is_err(),
        "the copier refuses to replace a checkpoint the chain does not contain: {copied:?}"
    );
    let (_, cfg) = app.stop().await;
    assert_eq!(file_checkpoint(&cfg).seq, head, "the evidence is kept");
    let out = assert_broken(&cfg, "a restored database that worked on");
    assert!(out.contains(&format!("record {head}")), "{out}");
    assert!(out.contains("rewritten"), "{out}");
}

/// No false alarms: an installation that works, stops, starts again,
/// works on and gets a user from the command line verifies intact each
/// time, its checkpoint file following the chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_an_installation_that_only_worked_verifies_intact() {
    let w = worked_installation(None).await;
    let head = newest_seq(&w.cfg).await;
    assert_eq!(file_checkpoint(&w.cfg).seq, head);
    assert_intact(&w.cfg, head);

    let app = start_app(w.dir.clone(), w.cfg.clone(), false).await;
    let officer = app.token("officer").await;
    // Earlier dossiers move on, new ones come in.
    for (code, status) in &w.dossiers {
        if *status == "accepted" {
            let (s, v) = app
                .act(&officer, code, json!({ "action": "forward" }))
                .await;
            assert_eq!(s, 200, "{v}");
        }
    }
    work(&app, 4, 5).await;
    let (_, cfg) = stop_like_serve(app).await;
    let head2 = newest_seq(&cfg).await;
    assert!(head2 > head);
    assert_eq!(file_checkpoint(&cfg).seq, head2);
    assert_intact(&cfg, head2);

    // A write from the command line copies the checkpoint out too.
    let data = cfg.data_dir.display().to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_motcua"))
        .current_dir(workspace())
        .args(["--data-dir", &data, "users", "create", "--username"])
        .args([
            "officer.new",
            "--full-name",
            "Lý Thị Ngọc",
            "--role",
            "officer",
        ])
        .args(["--agency", "UB00073"])
        .env("MOTCUA_NEW_PASSWORD", "mot-mat-khau-dai")
        .env("RUST_LOG", "warn")
        .output()
        .expect("run users create");
    assert!(out.status.success(), "{out:?}");
    let head3 = newest_seq(&cfg).await;
    assert!(head3 > head2);
    assert_eq!(file_checkpoint(&cfg).seq, head3, "copied by the command");
    assert_intact(&cfg, head3);
}

/// `motcua serve --demo` copies the checkpoint out while it runs and when
/// SIGTERM stops it; `audit verify` afterwards says intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_demo_stopped_with_sigterm_verifies_intact() {
    let dir = temp_dir("tamper-serve");
    let data = dir.join("data");
    let cfg = Config {
        data_dir: data.clone(),
        ..Config::default()
    };
    let mut child = serve_demo_command(&data, &[])
        .stderr(Stdio::null())
        .spawn()
        .expect("start motcua");
    let base = wait_listening(&mut child).base;
    let client = reqwest::Client::new();
    let token = crate::cluster::login(&client, &base, "citizen").await;
    crate::cluster::submit(&client, &base, &token, "serve")
        .await
        .expect("submitted");
    // The copier catches up within a few seconds.
    let head = newest_seq(&cfg).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let seq = motcua::audit::read_checkpoint_file(&cfg)
            .ok()
            .flatten()
            .map(|c| c.seq);
        if seq >= Some(head) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the running server copied no checkpoint of record {head}: {seq:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // One more write just before the signal: copied at shutdown.
    crate::cluster::submit(&client, &base, &token, "serve-2")
        .await
        .expect("submitted");
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(ok.success());
    let status = child.wait().expect("wait");
    assert!(status.success(), "motcua exited with {status:?}");
    let head = newest_seq(&cfg).await;
    assert_eq!(file_checkpoint(&cfg).seq, head, "copied at shutdown");
    assert_intact(&cfg, head);
}

// ---------------------------------------------------------------------------
// B. A province administrator's catalogue decisions
// ---------------------------------------------------------------------------

/// Hà Nội's communes with a People's Committee in the demo, and Cao Bằng's.
const CUA_NAM: &str = "00073";
const HOAN_KIEM: &str = "00070";
const THUC_PHAN: &str = "01273";

/// A citizen's birth registration for `unit`: (status, content type, body).
async fn submit_for(app: &TestApp, token: &str, unit: &str) -> (u16, String, Value) {
    let form = Form::new()
        .text(
            "application",
            json!({ "procedure_code": BIRTH, "unit_code": unit, "fields": birth_fields() })
                .to_string(),
        )
        .part(
            "document:birth-notice",
            Part::bytes(pdf(unit)).file_name("giay-chung-sinh.pdf"),
        );
    let r = app
        .client
        .post(app.url("/api/v1/dossiers"))
        .bearer_auth(token)
        .header("accept-language", "en")
        .multipart(form)
        .send()
        .await
        .expect("submit");
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    (status, ct, r.json().await.unwrap_or(Value::Null))
}

/// Submits for `unit`; it must be accepted (201). Returns the code.
async fn files_in(app: &TestApp, token: &str, unit: &str) -> String {
    let (s, _, v) = submit_for(app, token, unit).await;
    assert_eq!(s, 201, "filing in {unit} is open: {v}");
    v["code"].as_str().expect("code").to_string()
}

/// Submits for `unit`; it must be refused as not available there, with
/// nothing created (no dossier, no audit record).
async fn refused_in(app: &TestApp, token: &str, unit: &str) {
    let mine = |v: &Value| v["items"].as_array().map_or(0, Vec::len);
    let (_, before) = app.get(Some(token), "/api/v1/dossiers?mine=true").await;
    let head = app.state.store.audit_head().await.expect("head");
    let (s, ct, v) = submit_for(app, token, unit).await;
    assert_eq!(s, 422, "filing in {unit} is paused: {v}");
    assert!(ct.starts_with("application/problem+json"), "{ct}");
    let errors = v["errors"].as_array().expect("field errors");
    assert!(
        errors
            .iter()
            .any(|e| e["field"] == "unit_code" && e["code"] == "procedure-not-available"),
        "{v}"
    );
    let (_, after) = app.get(Some(token), "/api/v1/dossiers?mine=true").await;
    assert_eq!(mine(&after), mine(&before), "no dossier was created");
    assert_eq!(
        app.state.store.audit_head().await.expect("head"),
        head,
        "nothing was recorded"
    );
}

/// The units the citizen's apply page for birth registration offers.
async fn offered_units(citizen: &mut Browser) -> Vec<&'static str> {
    let page = citizen.get(&format!("/thu-tuc/{BIRTH}/nop-ho-so")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    [CUA_NAM, HOAN_KIEM, THUC_PHAN]
        .into_iter()
        .filter(|u| page.body.contains(&format!("<option value=\"{u}\"")))
        .collect()
}

/// The province admin's decision through the procedure's admin page form.
async fn decide(admin: &mut Browser, csrf: Option<&str>, decision: &str, unit: &str) -> Page {
    let form = match csrf {
        Some(c) => text_form(c, &[("decision", decision), ("unit", unit)]),
        None => Form::new()
            .text("decision", decision.to_string())
            .text("unit", unit.to_string()),
    };
    admin
        .post_multipart(&format!("/quan-tri/thu-tuc/{BIRTH}/ap-dung"), form)
        .await
}

/// The newest audit record: (action, actor, note).
async fn last_audit(app: &TestApp) -> (String, String, Option<String>) {
    let (seq, _) = app
        .state
        .store
        .audit_head()
        .await
        .expect("head")
        .expect("a chain");
    let r = app
        .state
        .store
        .audit_record(seq)
        .await
        .expect("read")
        .expect("the record");
    (r.entry.action, r.entry.actor, r.entry.note)
}

async fn assert_decided(app: &TestApp, page: &Page, action: &str, unit: &str) {
    assert_eq!(page.status, 303, "{}", page.body);
    assert!(
        page.location().contains("availability-saved"),
        "{}",
        page.location()
    );
    assert_eq!(
        last_audit(app).await,
        (
            action.to_string(),
            "province.admin".to_string(),
            Some(format!("{BIRTH} @ {unit}"))
        ),
        "the decision is in the audit chain"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_province_admins_catalogue_decisions_stay_in_their_province() {
    let app = spawn_app().await;
    let citizen = app.token("citizen").await;
    let caobang = app.token("officer.caobang").await;
    let mut citizen_page = Browser::new(&app, "vi");
    citizen_page.login("citizen").await;
    let mut admin = Browser::new(&app, "en");
    admin.login("province.admin").await;
    let page = admin.get(&format!("/quan-tri/thu-tuc/{BIRTH}")).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("/ap-dung"), "the availability form");
    let csrf = page.csrf();
    assert_eq!(
        offered_units(&mut citizen_page).await,
        [CUA_NAM, HOAN_KIEM, THUC_PHAN]
    );

    // Birth registration paused in the whole of Hà Nội.
    let p = decide(&mut admin, Some(&csrf), "unavailable", "").await;
    assert_decided(&app, &p, "procedure.unavailable", "01").await;
    refused_in(&app, &citizen, CUA_NAM).await;
    refused_in(&app, &citizen, HOAN_KIEM).await;
    assert_eq!(offered_units(&mut citizen_page).await, [THUC_PHAN]);

    // Cao Bằng goes on taking it, and its officer sees the dossier.
    let code = files_in(&app, &citizen, THUC_PHAN).await;
    let (s, q) = app.get(Some(&caobang), "/api/v1/workqueue").await;
    assert_eq!(s, 200, "{q}");
    assert!(
        q["items"]
            .as_array()
            .expect("items")
            .iter()
            .any(|i| i["code"] == code.as_str()),
        "{code} in Thục Phán's queue: {q}"
    );
    let (s, v) = app
        .get(Some(&caobang), &format!("/api/v1/dossiers/{code}"))
        .await;
    assert_eq!(s, 200, "{v}");

    // Hà Nội's admin cannot decide for Cao Bằng (a commune or the whole
    // province), and an agency admin or a form without its CSRF token
    // cannot decide at all: nothing changes.
    let head = app.state.store.audit_head().await.expect("head");
    for unit in [THUC_PHAN, "04"] {
        let p = decide(&mut admin, Some(&csrf), "unavailable", unit).await;
        assert_eq!(p.status, 403, "deciding for {unit}: {}", p.body);
    }
    let p = decide(&mut admin, None, "reset", "").await;
    assert_eq!(p.status, 403, "without CSRF: {}", p.body);
    let p = decide(&mut admin, Some("not-the-token"), "reset", "").await;
    assert_eq!(p.status, 403, "with a wrong CSRF token: {}", p.body);
    let mut agency_admin = Browser::new(&app, "en");
    agency_admin.login("admin").await;
    let own = agency_admin
        .get(&format!("/quan-tri/thu-tuc/{BIRTH}"))
        .await
        .csrf();
    let p = decide(&mut agency_admin, Some(&own), "reset", "").await;
    assert_eq!(p.status, 403, "an agency admin: {}", p.body);
    assert_eq!(
        app.state.store.audit_head().await.expect("head"),
        head,
        "no refused decision was recorded"
    );
    files_in(&app, &citizen, THUC_PHAN).await;
    refused_in(&app, &citizen, CUA_NAM).await;
    assert_eq!(offered_units(&mut citizen_page).await, [THUC_PHAN]);

    // A commune's own decision overrides the province's.
    let p = decide(&mut admin, Some(&csrf), "available", CUA_NAM).await;
    assert_decided(&app, &p, "procedure.available", CUA_NAM).await;
    files_in(&app, &citizen, CUA_NAM).await;
    refused_in(&app, &citizen, HOAN_KIEM).await;
    assert_eq!(offered_units(&mut citizen_page).await, [CUA_NAM, THUC_PHAN]);

    // Reset: Hà Nội takes it again; a commune may still pause it alone.
    let p = decide(&mut admin, Some(&csrf), "reset", "").await;
    assert_decided(&app, &p, "procedure.availability_reset", "01").await;
    files_in(&app, &citizen, HOAN_KIEM).await;
    assert_eq!(
        offered_units(&mut citizen_page).await,
        [CUA_NAM, HOAN_KIEM, THUC_PHAN]
    );
    let p = decide(&mut admin, Some(&csrf), "unavailable", HOAN_KIEM).await;
    assert_decided(&app, &p, "procedure.unavailable", HOAN_KIEM).await;
    refused_in(&app, &citizen, HOAN_KIEM).await;
    files_in(&app, &citizen, CUA_NAM).await;
    assert_eq!(offered_units(&mut citizen_page).await, [CUA_NAM, THUC_PHAN]);
}

//! Several nodes on one PostgreSQL behave as one system, and a whole
//! installation moves between backends with `migrate-data`. These tests
//! run the real binary against a real server only when
//! `MOTCUA_TEST_POSTGRES_URL` is set (e.g.
//! `postgres://postgres@127.0.0.1:5432/postgres`); each creates its own
//! database through that URL and drops it at the end (also on failure).
//! Without the variable they print SKIPPED and pass.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};
use sqlx::Connection;

use crate::helpers::*;

pub const URL_VAR: &str = "MOTCUA_TEST_POSTGRES_URL";

/// A database of its own on the test server, dropped when this goes out
/// of scope (terminating the connections still open to it).
pub struct PgDb {
    admin: String,
    name: String,
    pub url: String,
}

impl PgDb {
    /// `None` (after printing SKIPPED) when the variable is not set.
    pub async fn create(test: &str) -> Option<Self> {
        let Ok(admin) = std::env::var(URL_VAR) else {
            eprintln!("SKIPPED {test}: {URL_VAR} is not set (no PostgreSQL to test against)");
            return None;
        };
        Some(Self::make(admin, test, "").await)
    }

    /// A new database on the server of `admin`, created with `CREATE
    /// DATABASE <name> <options>`.
    async fn make(admin: String, test: &str, options: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "motcua_it_{}_{}_{}",
            test,
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let (base, _) = admin.rsplit_once('/').expect("database URL with a path");
        let url = format!("{base}/{name}");
        let mut c = sqlx::PgConnection::connect(&admin)
            .await
            .expect("connect to the test server");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "CREATE DATABASE {name} {options}"
        )))
        .execute(&mut c)
        .await
        .expect("create database");
        let _ = c.close().await;
        Self { admin, name, url }
    }

    /// A database of its own holding a copy of this one, dropped like it.
    /// The connections still open to this one are ended first (a template
    /// must have none).
    pub async fn copy(&self, test: &str) -> Self {
        let mut c = sqlx::PgConnection::connect(&self.admin)
            .await
            .expect("connect to the test server");
        sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()")
            .bind(&self.name)
            .execute(&mut c)
            .await
            .expect("end the connections to the database copied");
        let _ = c.close().await;
        Self::make(self.admin.clone(), test, &format!("TEMPLATE {}", self.name)).await
    }

    pub async fn connect(&self) -> sqlx::PgConnection {
        sqlx::PgConnection::connect(&self.url)
            .await
            .expect("connect to the test database")
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let admin = self.admin.clone();
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        // Drop runs inside the test's runtime: use a thread of its own.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                if let Ok(mut c) = sqlx::PgConnection::connect(&admin).await {
                    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                        .execute(&mut c)
                        .await;
                    let _ = c.close().await;
                }
            });
        })
        .join();
    }
}

/// A `motcua serve` process; killed (SIGKILL) when dropped.
pub struct Node {
    child: Child,
    pub base: String,
}

impl Node {
    /// Starts `motcua serve [--demo]` on a free loopback port.
    pub fn start(db: &str, data: &Path, demo: bool) -> Node {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_motcua"));
        cmd.current_dir(workspace())
            .args(["serve", "--listen", "127.0.0.1:0", "--database-url", db])
            // The nodes share one data directory here, so not one message
            // log: the exchange gateway is tested in exchange.rs.
            .args(["--exchange-listen", ""])
            .arg("--data-dir")
            .arg(data)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if demo {
            cmd.arg("--demo");
        }
        let mut child = cmd.spawn().expect("start motcua");
        let base = wait_listening(&mut child).base;
        Node { child, base }
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

pub async fn login(client: &reqwest::Client, base: &str, user: &str) -> String {
    let r = client
        .post(format!("{base}/api/v1/auth/token"))
        .json(&json!({ "username": user, "password": "motcua-demo" }))
        .send()
        .await
        .expect("login");
    assert_eq!(r.status(), 200, "login {user} at {base}");
    let v: Value = r.json().await.expect("json");
    v["token"].as_str().expect("token").to_string()
}

/// Submits a birth registration; the code if acknowledged (201).
pub async fn submit(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    tag: &str,
) -> Result<String, String> {
    let form = Form::new()
        .text(
            "application",
            json!({ "procedure_code": BIRTH, "unit_code": "00073", "fields": birth_fields() })
                .to_string(),
        )
        .part(
            "document:birth-notice",
            Part::bytes(pdf(tag)).file_name("giay-chung-sinh.pdf"),
        );
    let r = client
        .post(format!("{base}/api/v1/dossiers"))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = r.status().as_u16();
    let v: Value = r.json().await.map_err(|e| e.to_string())?;
    if status == 201 {
        v["code"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("no code in {v}"))
    } else {
        Err(format!("{status}: {v}"))
    }
}

pub async fn act(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    code: &str,
    body: Value,
) -> (u16, Value) {
    let r = client
        .post(format!("{base}/api/v1/dossiers/{code}/actions"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("act");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

pub async fn get(client: &reqwest::Client, base: &str, token: &str, path: &str) -> (u16, Value) {
    let r = client
        .get(format!("{base}{path}"))
        .bearer_auth(token)
        .send()
        .await
        .expect("get");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Runs the binary with `args`; (success, stdout + stderr).
pub fn run_motcua(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_motcua"))
        .current_dir(workspace())
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run motcua");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Dossier sequence numbers per (agency, day part of the code).
async fn sequences(c: &mut sqlx::PgConnection) -> BTreeMap<String, Vec<u32>> {
    let codes: Vec<String> = sqlx::query_scalar("SELECT code FROM dossiers")
        .fetch_all(&mut *c)
        .await
        .expect("codes");
    let mut by: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for code in codes {
        let (prefix, n) = code.rsplit_once('-').expect("code");
        by.entry(prefix.to_string())
            .or_default()
            .push(n.parse().expect("number"));
    }
    for v in by.values_mut() {
        v.sort();
    }
    by
}

fn assert_gap_free(seqs: &BTreeMap<String, Vec<u32>>) {
    for (prefix, v) in seqs {
        let want: Vec<u32> = (1..=v.len() as u32).collect();
        assert_eq!(v, &want, "codes of {prefix} are unique and gap-free");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_on_one_postgres_behave_as_one_system() {
    let Some(db) = PgDb::create("cluster").await else {
        return;
    };
    let dir = temp_dir("cluster");
    let data = dir.join("data");
    // Three nodes start at once on an empty database: migrations, units and
    // demo seeding race, and every node must come up.
    let starters: Vec<_> = (0..3)
        .map(|_| {
            let url = db.url.clone();
            let data = data.clone();
            std::thread::spawn(move || Node::start(&url, &data, true))
        })
        .collect();
    let mut nodes: Vec<Node> = starters
        .into_iter()
        .map(|t| t.join().expect("node started"))
        .collect();
    let bases: Vec<String> = nodes.iter().map(|n| n.base.clone()).collect();
    let client = reqwest::Client::new();

    // A token issued by node 1 works on nodes 2 and 3.
    let citizen = login(&client, &bases[0], "citizen").await;
    let officer = login(&client, &bases[1], "officer").await;
    for b in &bases {
        let (s, _) = get(&client, b, &citizen, "/api/v1/dossiers?mine=true").await;
        assert_eq!(s, 200, "citizen token from node 1 on {b}");
        let (s, _) = get(&client, b, &officer, "/api/v1/workqueue").await;
        assert_eq!(s, 200, "officer token from node 2 on {b}");
    }

    // Concurrent submissions spread over the three nodes.
    let mut tasks = Vec::new();
    for w in 0..9 {
        let client = client.clone();
        let base = bases[w % 3].clone();
        let token = citizen.clone();
        tasks.push(tokio::spawn(async move {
            let mut codes = Vec::new();
            for i in 0..8 {
                codes.push(
                    submit(&client, &base, &token, &format!("c{w}-{i}"))
                        .await
                        .expect("submission acknowledged"),
                );
            }
            codes
        }));
    }
    let mut codes = Vec::new();
    for t in tasks {
        codes.extend(t.await.expect("task"));
    }
    assert_eq!(codes.len(), 72);
    let unique: BTreeSet<_> = codes.iter().collect();
    assert_eq!(unique.len(), codes.len(), "every code is unique");
    let mut pg = db.connect().await;
    assert_gap_free(&sequences(&mut pg).await);

    // The same `accept` sent to two nodes at once is applied once.
    let mut races = Vec::new();
    for (i, code) in codes.iter().take(12).enumerate() {
        let (a, b) = (bases[i % 3].clone(), bases[(i + 1) % 3].clone());
        let client = client.clone();
        let token = officer.clone();
        let code = code.clone();
        races.push(tokio::spawn(async move {
            let body = json!({ "action": "accept", "note": "race" });
            let (x, y) = tokio::join!(
                act(&client, &a, &token, &code, body.clone()),
                act(&client, &b, &token, &code, body)
            );
            (code, x.0, y.0)
        }));
    }
    for r in races {
        let (code, x, y) = r.await.expect("race");
        let mut got = [x, y];
        got.sort();
        assert_eq!(
            got,
            [200, 409],
            "{code}: one accept applied, the other refused"
        );
        let accepts: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM audit WHERE dossier_code = $1 AND action LIKE '%accept%'",
        )
        .bind(&code)
        .fetch_one(&mut pg)
        .await
        .expect("audit");
        assert_eq!(accepts, 1, "{code}: one accept in the audit trail");
    }
    // Further actions land on whichever node: forward on node 3.
    for code in codes.iter().take(3) {
        let (s, v) = act(
            &client,
            &bases[2],
            &officer,
            code,
            json!({ "action": "forward" }),
        )
        .await;
        assert_eq!(s, 200, "forward {code}: {v}");
    }

    // The outbox is drained by the three nodes' workers, each event once.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let pending: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE done_at IS NULL")
            .fetch_one(&mut pg)
            .await
            .expect("pending");
        if pending == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{pending} events still pending");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (events, done, min_claims, max_claims): (i64, i64, i64, i64) =
        sqlx::query_as("SELECT COUNT(*), COUNT(done_at), MIN(claims), MAX(claims) FROM outbox")
            .fetch_one(&mut pg)
            .await
            .expect("outbox");
    assert!(events >= 72 + 12 + 3, "an event per write: {events}");
    assert_eq!(done, events, "every event completed");
    assert_eq!(
        (min_claims, max_claims),
        (1, 1),
        "every event was handed out exactly once across the nodes"
    );

    // SIGKILL node 3 in the middle of a load: nothing it acknowledged is lost.
    let mut load = Vec::new();
    for w in 0..6 {
        let client = client.clone();
        let base = bases[2].clone();
        let token = citizen.clone();
        load.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 0..300 {
                match submit(&client, &base, &token, &format!("k{w}-{i}")).await {
                    Ok(code) => acked.push(code),
                    Err(_) => break,
                }
            }
            acked
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    nodes[2].kill();
    let mut acked = Vec::new();
    for t in load {
        acked.extend(t.await.expect("load task"));
    }
    assert!(
        acked.len() > 5,
        "the load ran before the kill: {}",
        acked.len()
    );
    let found: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM dossiers WHERE code = ANY($1)")
        .bind(&acked)
        .fetch_one(&mut pg)
        .await
        .expect("found");
    assert_eq!(
        found as usize,
        acked.len(),
        "every acknowledged dossier is stored"
    );
    // The survivors go on serving, numbering on without a gap.
    let after = submit(&client, &bases[0], &citizen, "after-kill")
        .await
        .expect("node 1 still serves");
    assert_gap_free(&sequences(&mut pg).await);
    let cfg = motcua::Config {
        data_dir: data.clone(),
        database_url: Some(db.url.clone()),
        ..motcua::Config::default()
    };
    let inst = motcua::open(&cfg).await.expect("open");
    for code in acked.iter().chain([&after]) {
        let c = motcua_domain::DossierCode::parse(code).expect("code");
        let d = inst.store.dossier(&c).await.expect("read").expect("stored");
        assert!(
            inst.objects
                .exists(&d.documents[0].sha256)
                .await
                .expect("exists"),
            "{code}'s attachment is in the shared directory"
        );
    }
    if let Some(p) = inst.postgres {
        p.close().await;
    }
    drop(nodes);
    let _ = pg.close().await;

    // One chain for the whole cluster, verified by the operator's command.
    let data_arg = data.display().to_string();
    let (ok, out) = run_motcua(&[
        "--database-url",
        &db.url,
        "--data-dir",
        &data_arg,
        "audit",
        "verify",
    ]);
    assert!(ok && out.contains("Audit chain intact"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_commune_moves_from_sqlite_to_postgres_and_back() {
    let Some(db) = PgDb::create("migrate").await else {
        return;
    };
    // A commune's embedded installation with dossiers in several states.
    let app = spawn_app().await;
    let citizen = app.token("citizen").await;
    let officer = app.token("officer").await;
    let fresh = app.submit_birth(&citizen).await;
    let accepted = app.submit_birth(&citizen).await;
    let refused = app.submit_birth(&citizen).await;
    let forwarded = app.submit_birth(&citizen).await;
    let (s, _) = app
        .act(&officer, &accepted, json!({ "action": "accept" }))
        .await;
    assert_eq!(s, 200);
    let (s, _) = app
        .act(
            &officer,
            &refused,
            json!({ "action": "refuse", "note": "Thiếu giấy chứng sinh" }),
        )
        .await;
    assert_eq!(s, 200);
    let (s, _) = app
        .act(&officer, &forwarded, json!({ "action": "accept" }))
        .await;
    assert_eq!(s, 200);
    let (s, v) = app
        .act(&officer, &forwarded, json!({ "action": "forward" }))
        .await;
    assert_eq!(s, 200, "{v}");
    let (_, before) = app
        .get(Some(&citizen), &format!("/api/v1/dossiers/{forwarded}"))
        .await;
    let (dir, config) = app.stop().await;
    let sqlite_url = config.database_url();
    let data = config.data_dir.display().to_string();

    // Up to the province.
    // Run as the installation (its data directory holds the audit key).
    let migrate = |extra: &[&str]| {
        let mut args = vec!["--data-dir", &data, "migrate-data"];
        args.extend_from_slice(extra);
        run_motcua(&args)
    };
    let (ok, out) = migrate(&["--from", &sqlite_url, "--to", &db.url]);
    assert!(ok && out.contains("Copy complete and verified"), "{out}");
    assert!(out.contains("dossiers") && out.contains("audit"), "{out}");
    // A second run refuses the now non-empty target, and --force redoes it.
    let (ok, out) = migrate(&["--from", &sqlite_url, "--to", &db.url]);
    assert!(!ok && out.contains("not empty"), "{out}");
    let (ok, out) = migrate(&["--from", &sqlite_url, "--to", &db.url, "--force"]);
    assert!(ok, "{out}");

    // A node on PostgreSQL serves the moved installation.
    let node = Node::start(&db.url, &config.data_dir, false);
    let client = reqwest::Client::new();
    let citizen = login(&client, &node.base, "citizen").await;
    let officer = login(&client, &node.base, "officer").await;
    let (s, after) = get(
        &client,
        &node.base,
        &citizen,
        &format!("/api/v1/dossiers/{forwarded}"),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(after["status"], before["status"], "{after}");
    assert_eq!(after["code"], before["code"]);
    let (s, v) = get(
        &client,
        &node.base,
        &citizen,
        &format!("/api/v1/dossiers/{refused}"),
    )
    .await;
    assert_eq!(
        (s, v["status"].as_str()),
        (200, Some("not_accepted")),
        "{v}"
    );
    // Life goes on: actions, the next code of the day, the chain.
    let (s, v) = act(
        &client,
        &node.base,
        &officer,
        &fresh,
        json!({ "action": "accept" }),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let next = submit(&client, &node.base, &citizen, "after-move")
        .await
        .expect("submission after the move");
    assert!(next.ends_with("-0005"), "numbering goes on: {next}");
    drop(node);
    let (ok, out) = run_motcua(&[
        "--database-url",
        &db.url,
        "--data-dir",
        &data,
        "audit",
        "verify",
    ]);
    assert!(ok && out.contains("Audit chain intact"), "{out}");

    // And back down to a new SQLite file.
    let back = format!("sqlite://{}", dir.join("back.db").display());
    let (ok, out) = migrate(&["--from", &db.url, "--to", &back]);
    assert!(ok && out.contains("Copy complete and verified"), "{out}");
    let (ok, out) = run_motcua(&[
        "--database-url",
        &back,
        "--data-dir",
        &data,
        "audit",
        "verify",
    ]);
    assert!(ok && out.contains("Audit chain intact"), "{out}");
}

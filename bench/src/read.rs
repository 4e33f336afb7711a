//! `read-bench`: how fast a node answers the reads that officers and
//! citizens make all day — the workqueue, tracking by code, staff search
//! and "my dossiers" — on a large generated data set, on either backend.
//!
//! The data set is made once by `motcua generate` and kept for the next
//! run (SQLite: a directory under `--work-dir`; PostgreSQL: a database
//! named `motcua_read_bench_<N>`); `--regenerate` starts again. Requests are
//! sent one at a time over HTTP on loopback, so each figure is the latency
//! of one request on an otherwise idle node; `/healthz` measured in the same
//! run is the baseline (what HTTP alone costs). See `bench/README.md`.
#![forbid(unsafe_code)]

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use clap::Parser;
use motcua_bench::*;
use motcua_store_sqlite::Durability;
use serde_json::{Value, json};

/// p95 target of the workqueue, tracking and search (issue: scale-out).
const TARGET_P95_MS: f64 = 20.0;
const PASSWORD: &str = "motcua-demo";
const BENCH_USER: &str = "bench.officer";
const BENCH_PASSWORD: &str = "motcua-bench-officer";

#[derive(Debug, Parser)]
#[command(
    name = "read-bench",
    about = "Workqueue, tracking, search and my-dossiers latency on a large data set"
)]
struct Args {
    #[arg(long, value_enum, default_value_t = Backend::Sqlite)]
    backend: Backend,
    /// PostgreSQL server for `--backend postgres` (default:
    /// MOTCUA_TEST_POSTGRES_URL, else postgres://postgres@127.0.0.1:5432/postgres).
    #[arg(long)]
    postgres_url: Option<String>,
    /// Size of the data set.
    #[arg(long, default_value_t = 1_000_000)]
    dossiers: u64,
    /// Measured requests per read path (after 10 unmeasured ones).
    #[arg(long, default_value_t = 300)]
    requests: usize,
    /// Where SQLite data sets are kept between runs (default: the system
    /// temporary directory).
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Throw the kept data set away and generate it again.
    #[arg(long)]
    regenerate: bool,
    /// The release `motcua` binary (default: $CARGO_TARGET_DIR/release/motcua,
    /// then next to this binary, then target/release/motcua).
    #[arg(long)]
    motcua: Option<PathBuf>,
    /// Do not write bench/results/read-<backend>-<N>-<timestamp>.json.
    #[arg(long)]
    no_json: bool,
}

/// One read path's requests: (label, token, paths).
struct ReadPath {
    key: &'static str,
    label: String,
    token: Option<String>,
    paths: Vec<String>,
    /// Whether the p95 target applies.
    target: bool,
}

struct Measured {
    key: &'static str,
    label: String,
    latency: Latency,
    mean_items: f64,
    errors: usize,
    target: bool,
}

/// What the data set holds, read straight from the database.
struct Sample {
    total: u64,
    busiest: (String, u64),
    codes: Vec<String>,
    /// (code, national id, name) of dossiers of the busiest agency.
    busiest_rows: Vec<(String, String, String)>,
    citizen_dossiers: u64,
}

async fn sample(url: &str, n: usize) -> anyhow::Result<Sample> {
    // Plain SQL that both backends accept; numbers only are formatted in.
    let mut conn = SampleDb::connect(url).await?;
    let total: u64 = conn
        .rows("SELECT COUNT(*) FROM dossiers".into())
        .await?
        .first()
        .and_then(|r| r[0].parse().ok())
        .unwrap_or(0);
    let busiest = conn.rows(
        "SELECT agency_code, COUNT(*) AS n FROM dossiers GROUP BY agency_code ORDER BY n DESC LIMIT 1"
            .into(),
    )
    .await?
    .first()
    .map(|r| (r[0].clone(), r[1].parse().unwrap_or(0)))
    .context("the data set has no dossiers")?;
    let max_id: u64 = conn
        .rows("SELECT MAX(id) FROM dossiers".into())
        .await?
        .first()
        .and_then(|r| r[0].parse().ok())
        .unwrap_or(0);
    let mut rng = 0x2545_F491_4F6C_DD1D_u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut codes = Vec::new();
    let mut busiest_rows = Vec::new();
    while codes.len() < n || busiest_rows.len() < n {
        let ids: Vec<String> = (0..200)
            .map(|_| (1 + next() % max_id.max(1)).to_string())
            .collect();
        for r in conn.rows(
            format!(
                "SELECT code, applicant_national_id, applicant_name, agency_code FROM dossiers WHERE id IN ({})",
                ids.join(",")
            ),
        )
        .await?
        {
            if codes.len() < n {
                codes.push(r[0].clone());
            }
            if r[3] == busiest.0 && busiest_rows.len() < n {
                busiest_rows.push((r[0].clone(), r[1].clone(), r[2].clone()));
            }
        }
    }
    let citizen_dossiers: u64 = conn.rows(
        "SELECT COUNT(*) FROM dossiers d JOIN users u ON u.id = d.applicant_user_id WHERE u.username = 'citizen'"
            .into(),
    )
    .await?
    .first()
    .and_then(|r| r[0].parse().ok())
    .unwrap_or(0);
    conn.close().await;
    Ok(Sample {
        total,
        busiest,
        codes,
        busiest_rows,
        citizen_dossiers,
    })
}

/// A raw connection to either backend, for sampling only.
enum SampleDb {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

impl SampleDb {
    async fn connect(url: &str) -> anyhow::Result<Self> {
        use sqlx::Connection as _;
        if url.starts_with("postgres") {
            Ok(Self::Postgres(sqlx::PgConnection::connect(url).await?))
        } else {
            Ok(Self::Sqlite(sqlx::SqliteConnection::connect(url).await?))
        }
    }

    async fn close(self) {
        use sqlx::Connection as _;
        let _ = match self {
            Self::Sqlite(c) => c.close().await,
            Self::Postgres(c) => c.close().await,
        };
    }
}

/// Every column as text (integers formatted).
macro_rules! text_rows {
    ($rows:expr) => {
        $rows
            .iter()
            .map(|r| {
                (0..sqlx::Row::columns(r).len())
                    .map(|i| {
                        sqlx::Row::try_get::<String, _>(r, i)
                            .or_else(|_| sqlx::Row::try_get::<i64, _>(r, i).map(|v| v.to_string()))
                            .unwrap_or_default()
                    })
                    .collect()
            })
            .collect()
    };
}

impl SampleDb {
    async fn rows(&mut self, sql: String) -> anyhow::Result<Vec<Vec<String>>> {
        let q = sqlx::AssertSqlSafe(sql);
        Ok(match self {
            Self::Sqlite(c) => text_rows!(sqlx::query(q).fetch_all(&mut *c).await?),
            Self::Postgres(c) => text_rows!(sqlx::query(q).fetch_all(&mut *c).await?),
        })
    }
}

async fn token(
    client: &reqwest::Client,
    base: &str,
    user: &str,
    pw: &str,
) -> anyhow::Result<String> {
    let r = client
        .post(format!("{base}/api/v1/auth/token"))
        .json(&json!({ "username": user, "password": pw }))
        .send()
        .await?;
    let status = r.status();
    let v: Value = r.json().await?;
    v["token"]
        .as_str()
        .map(str::to_string)
        .with_context(|| format!("login as {user}: {status} {v}"))
}

async fn measure(client: &reqwest::Client, base: &str, p: &ReadPath) -> Measured {
    let mut samples = Vec::with_capacity(p.paths.len());
    let mut items = 0usize;
    let mut errors = 0;
    for (i, path) in p.paths.iter().enumerate() {
        let mut req = client.get(format!("{base}{path}"));
        if let Some(t) = &p.token {
            req = req.bearer_auth(t);
        }
        let t0 = Instant::now();
        let res = req.send().await;
        let body = match res {
            Ok(r) if r.status().is_success() => r.bytes().await.ok(),
            _ => None,
        };
        let elapsed = t0.elapsed();
        let Some(body) = body else {
            errors += 1;
            continue;
        };
        // The first ten warm the caches and connections.
        if i >= 10 {
            samples.push(elapsed);
            if let Ok(v) = serde_json::from_slice::<Value>(&body) {
                items += v["items"].as_array().map_or(1, Vec::len);
            }
        }
    }
    let n = samples.len().max(1);
    Measured {
        key: p.key,
        label: p.label.clone(),
        latency: latency(samples),
        mean_items: items as f64 / n as f64,
        errors,
        target: p.target,
    }
}

fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `n` paths cycling over `xs`, preceded by ten warm-up ones.
fn cycle(xs: &[String], n: usize, f: impl Fn(&str) -> String) -> Vec<String> {
    (0..n + 10).map(|i| f(&xs[i % xs.len().max(1)])).collect()
}

/// Where the run works: the binary, the kept data set and its database.
struct Setup {
    repo: PathBuf,
    bin: PathBuf,
    work: PathBuf,
    url: String,
    env: Vec<(String, String)>,
    machine: Machine,
    stamp: DateTime<Utc>,
}

/// The data set as this run found or made it.
struct DataSet {
    sample: Sample,
    /// Dossiers generated by this run, and how long that took.
    generated: Option<(u64, Duration)>,
}

/// The logins the read paths are measured with.
struct Tokens {
    /// Staff with the three processing roles at the busiest agency.
    busy: String,
    /// The demo officer of commune UB00073.
    officer: String,
    citizen: String,
}

/// The printed report and its verdict.
struct Report {
    text: String,
    all_pass: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.dossiers == 0 || args.requests == 0 {
        bail!("--dossiers and --requests must be at least 1");
    }
    let setup = prepare(&args).await?;
    let data = data_set(&args, &setup).await?;
    let results = measure_paths(&args, &setup, &data.sample).await?;
    let report = report(&args, &setup, &data, &results);
    print!("{}", report.text);
    std::io::stdout().flush()?;
    if !args.no_json {
        write_json(&args, &setup, &data, &results, &report)?;
    }
    Ok(())
}

/// Finds the binary, makes the work directory and the database (a kept
/// PostgreSQL database is reused unless `--regenerate`).
async fn prepare(args: &Args) -> anyhow::Result<Setup> {
    let bench_dir = Path::new(BENCH_DIR);
    let repo = bench_dir
        .parent()
        .context("bench crate has no parent directory")?
        .to_path_buf();
    let bin = find_motcua(args.motcua.as_deref(), &repo)?;
    let work = args
        .work_dir
        .clone()
        .unwrap_or_else(std::env::temp_dir)
        .join(format!(
            "motcua-read-bench-{}-{}",
            args.backend.as_str(),
            args.dossiers
        ));
    if args.regenerate && work.exists() {
        std::fs::remove_dir_all(&work)?;
    }
    std::fs::create_dir_all(&work)?;
    let url = match args.backend {
        Backend::Sqlite => format!("sqlite://{}", work.join("motcua.db").display()),
        Backend::Postgres => {
            let admin = postgres_admin_url(args.postgres_url.as_deref());
            create_postgres_db(
                &admin,
                &format!("motcua_read_bench_{}", args.dossiers),
                args.regenerate,
            )
            .await?
        }
    };
    let env = vec![("MOTCUA_DATABASE_URL".to_string(), url.clone())];
    let machine = machine(&work);
    let stamp = Utc::now();
    Ok(Setup {
        repo,
        bin,
        work,
        url,
        env,
        machine,
        stamp,
    })
}

/// Migrates, generates what is missing, samples the data set and makes
/// sure the bench's staff account exists.
async fn data_set(args: &Args, s: &Setup) -> anyhow::Result<DataSet> {
    run_motcua(&s.bin, &s.repo, &s.work, &s.env, &["migrate"])?;
    let generated = generate_missing(args, s).await?;
    let sample = sample(&s.url, args.requests.max(50)).await?;
    eprintln!(
        "{} dossiers; busiest agency {} with {}",
        sample.total, sample.busiest.0, sample.busiest.1
    );
    ensure_bench_user(s, &sample.busiest.0).await?;
    Ok(DataSet { sample, generated })
}

/// `motcua generate --demo` for the dossiers the kept data set lacks.
async fn generate_missing(args: &Args, s: &Setup) -> anyhow::Result<Option<(u64, Duration)>> {
    let have = {
        let store = AnyStore::open(&s.url, Durability::Normal).await?;
        let n = store.store().bulk_count("dossiers").await?;
        store.close().await;
        n
    };
    if have >= args.dossiers {
        // Demo accounts and procedures exist from the generating run.
        eprintln!("reusing the data set in {}", redact(&s.url));
        return Ok(None);
    }
    let missing = args.dossiers - have;
    eprintln!(
        "generating {missing} dossiers into {} (kept for later runs) …",
        redact(&s.url)
    );
    let t = Instant::now();
    let status = motcua_cmd(&s.bin, &s.repo, &s.work, &s.env)
        .args(["generate", "--demo", "--dossiers", &missing.to_string()])
        .args(["--seed", &(have + 1).to_string()])
        .stdin(Stdio::null())
        .status()
        .context("cannot run motcua generate")?;
    if !status.success() {
        bail!("motcua generate failed ({status})");
    }
    Ok(Some((missing, t.elapsed())))
}

/// Creates the staff account with the three processing roles at `agency`
/// unless it exists.
async fn ensure_bench_user(s: &Setup, agency: &str) -> anyhow::Result<()> {
    let store = AnyStore::open(&s.url, Durability::Normal).await?;
    let exists = store.store().user_by_name(BENCH_USER).await?.is_some();
    store.close().await;
    if exists {
        return Ok(());
    }
    let mut cmd = motcua_cmd(&s.bin, &s.repo, &s.work, &s.env);
    cmd.args(["users", "create", "--username", BENCH_USER])
        .args(["--full-name", "Cán bộ đo hiệu năng"])
        .args([
            "--role",
            "officer",
            "--role",
            "specialist",
            "--role",
            "leader",
        ])
        .args(["--agency", agency])
        .env("MOTCUA_NEW_PASSWORD", BENCH_PASSWORD);
    let out = cmd.output()?;
    if !out.status.success() {
        bail!(
            "cannot create {BENCH_USER}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// Starts the node on the data set and measures every read path, one
/// after the other.
async fn measure_paths(args: &Args, s: &Setup, sample: &Sample) -> anyhow::Result<Vec<Measured>> {
    let server = start_server(&s.bin, &s.repo, &s.work, &s.env).await?;
    let base = server.base.clone();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()?;
    let tokens = Tokens {
        busy: token(&client, &base, BENCH_USER, BENCH_PASSWORD).await?,
        officer: token(&client, &base, "officer", PASSWORD).await?,
        citizen: token(&client, &base, "citizen", PASSWORD).await?,
    };
    let paths = read_paths(sample, args.requests, &tokens);
    let mut results = Vec::new();
    for p in &paths {
        eprintln!("measuring: {} …", p.label);
        results.push(measure(&client, &base, p).await);
    }
    drop(server);
    Ok(results)
}

/// The read paths of a working day, `r` measured requests each.
fn read_paths(sample: &Sample, r: usize, tokens: &Tokens) -> Vec<ReadPath> {
    let codes = &sample.codes;
    let own_codes: Vec<String> = sample.busiest_rows.iter().map(|x| x.0.clone()).collect();
    let nids: Vec<String> = sample.busiest_rows.iter().map(|x| x.1.clone()).collect();
    let names: Vec<String> = sample.busiest_rows.iter().map(|x| x.2.clone()).collect();
    let folded: Vec<String> = names.iter().map(|n| motcua_domain::text::fold(n)).collect();
    let given: Vec<String> = names
        .iter()
        .filter_map(|n| n.split_whitespace().last().map(str::to_string))
        .collect();
    let b = &sample.busiest;
    let search = |xs: &[String]| cycle(xs, r, |c| format!("/api/v1/dossiers?q={}", enc(c)));
    let staff_search = |key, label: &str, xs: &[String]| ReadPath {
        key,
        label: label.into(),
        token: Some(tokens.busy.clone()),
        paths: search(xs),
        target: true,
    };
    vec![
        ReadPath {
            key: "healthz",
            label: "GET /healthz (baseline: HTTP alone)".into(),
            token: None,
            paths: vec!["/healthz".to_string(); r + 10],
            target: false,
        },
        ReadPath {
            key: "workqueue_busiest",
            label: format!("workqueue, busiest agency ({}, {} dossiers)", b.0, b.1),
            token: Some(tokens.busy.clone()),
            paths: vec!["/api/v1/workqueue".to_string(); r + 10],
            target: true,
        },
        ReadPath {
            key: "workqueue_commune",
            label: "workqueue, commune UB00073 (officer)".into(),
            token: Some(tokens.officer.clone()),
            paths: vec!["/api/v1/workqueue".to_string(); r + 10],
            target: true,
        },
        ReadPath {
            key: "tracking",
            label: "tracking by code (random dossiers)".into(),
            token: None,
            paths: cycle(codes, r, |c| format!("/api/v1/track/{c}")),
            target: true,
        },
        staff_search("search_code", "staff search by dossier code", &own_codes),
        staff_search(
            "search_national_id",
            "staff search by national ID number",
            &nids,
        ),
        staff_search(
            "search_full_name",
            "staff search by full name (\"Nguyễn Văn An\")",
            &names,
        ),
        staff_search(
            "search_folded_name",
            "staff search by name typed without diacritics (\"nguyen van an\")",
            &folded,
        ),
        staff_search(
            "search_given_name",
            "staff search by given name only (\"An\")",
            &given,
        ),
        ReadPath {
            key: "my_dossiers",
            label: format!(
                "my dossiers (citizen with {} dossiers)",
                sample.citizen_dossiers
            ),
            token: Some(tokens.citizen.clone()),
            paths: vec!["/api/v1/dossiers?mine=true".to_string(); r + 10],
            target: false,
        },
    ]
}

/// The verdict of one read path: "-" where the target does not apply, and
/// whether it counts against the overall target.
fn verdict(x: &Measured) -> (&'static str, bool) {
    if !x.target {
        ("-", true)
    } else if x.errors > 0 {
        ("ERR", false)
    } else if x.latency.p95 <= TARGET_P95_MS {
        ("PASS", true)
    } else {
        ("MISS", false)
    }
}

fn report(args: &Args, s: &Setup, data: &DataSet, results: &[Measured]) -> Report {
    use std::fmt::Write as _;
    let mut out = String::new();
    let w = &mut out;
    let m = &s.machine;
    let b = &data.sample.busiest;
    let _ = writeln!(w, "motcua read benchmark");
    let _ = writeln!(w, "=====================");
    let _ = writeln!(w, "date:      {}", s.stamp.format("%Y-%m-%d %H:%M:%S UTC"));
    let _ = writeln!(w, "machine:   {}", m.summary());
    let _ = writeln!(
        w,
        "backend:   {} ({})",
        args.backend.as_str(),
        redact(&s.url)
    );
    let _ = writeln!(
        w,
        "data set:  {} dossiers (motcua generate); busiest agency {} holds {}",
        data.sample.total, b.0, b.1
    );
    if let Some((n, t)) = data.generated {
        let _ = writeln!(
            w,
            "generated: {n} dossiers in {:.0} s this run ({:.0} dossiers/s)",
            t.as_secs_f64(),
            n as f64 / t.as_secs_f64().max(1e-9)
        );
    }
    let _ = writeln!(
        w,
        "method:    {} requests per path, one at a time over HTTP on loopback, after 10 unmeasured ones",
        args.requests
    );
    let _ = writeln!(w);
    let _ = writeln!(
        w,
        "{:<72} {:>8} {:>8} {:>8} {:>9} {:>6}",
        "read path", "p50 ms", "p95 ms", "max ms", "items", "target"
    );
    let mut all_pass = true;
    for x in results {
        let (verdict, pass) = verdict(x);
        all_pass &= pass;
        let _ = writeln!(
            w,
            "{:<72} {:>8.2} {:>8.2} {:>8.2} {:>9.1} {:>6}{}",
            x.label,
            x.latency.p50,
            x.latency.p95,
            x.latency.max,
            x.mean_items,
            verdict,
            if x.errors > 0 {
                format!("  ({} errors)", x.errors)
            } else {
                String::new()
            }
        );
    }
    let _ = writeln!(w);
    let _ = writeln!(
        w,
        "target: p95 <= {TARGET_P95_MS} ms for the workqueue, tracking and search: {}",
        if all_pass { "PASS" } else { "MISS" }
    );
    Report {
        text: out,
        all_pass,
    }
}

/// bench/results/read-<backend>-<N>-<timestamp>.json: the figures and the
/// printed report.
fn write_json(
    args: &Args,
    s: &Setup,
    data: &DataSet,
    results: &[Measured],
    report: &Report,
) -> anyhow::Result<()> {
    let m = &s.machine;
    let b = &data.sample.busiest;
    let v = json!({
        "date": s.stamp.to_rfc3339(),
        "machine": { "nproc": m.nproc, "cpu_model": m.cpu_model, "kernel": m.kernel, "memory": m.memory },
        "backend": args.backend.as_str(),
        "dossiers": data.sample.total,
        "busiest_agency": { "code": b.0, "dossiers": b.1 },
        "generated": data.generated.map(|(n, t)| json!({ "dossiers": n, "secs": round(t.as_secs_f64()) })),
        "requests_per_path": args.requests,
        "results": results.iter().map(|x| json!({
            "path": x.key, "label": x.label, "latency_ms": latency_json(&x.latency),
            "mean_items": round(x.mean_items), "errors": x.errors, "target_applies": x.target,
        })).collect::<Vec<_>>(),
        "target_p95_ms": TARGET_P95_MS,
        "pass": report.all_pass,
        "report": report.text,
    });
    let dir = Path::new(BENCH_DIR).join("results");
    std::fs::create_dir_all(&dir)?;
    let file = dir.join(format!(
        "read-{}-{}-{}.json",
        args.backend.as_str(),
        args.dossiers,
        s.stamp.format("%Y%m%dT%H%M%SZ")
    ));
    std::fs::write(&file, serde_json::to_string_pretty(&v)?)?;
    println!("\nwritten: {}", file.display());
    Ok(())
}

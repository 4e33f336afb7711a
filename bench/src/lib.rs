//! Shared parts of the benchmarks: the machine description, CPU probes,
//! latency percentiles and the `motcua` server under test.
#![forbid(unsafe_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

/// The repository root's `bench` directory.
pub const BENCH_DIR: &str = env!("CARGO_MANIFEST_DIR");

// ---------------------------------------------------------------------------
// Machine description.
// ---------------------------------------------------------------------------

pub struct Machine {
    pub nproc: usize,
    pub cpu_model: String,
    pub kernel: String,
    pub memory: String,
    pub work_fs: String,
}

impl Machine {
    /// "2 CPU(s), <model>, 23.5 GiB RAM, Linux <release>", the `machine:`
    /// line of every report.
    pub fn summary(&self) -> String {
        format!(
            "{} CPU(s), {}, {} RAM, Linux {}",
            self.nproc, self.cpu_model, self.memory, self.kernel
        )
    }
}

pub fn machine(work_dir: &Path) -> Machine {
    let nproc = Command::new("nproc")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .or_else(|| std::thread::available_parallelism().ok().map(|n| n.get()))
        .unwrap_or(0);
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map(|kb| format!("{:.1} GiB", kb as f64 / 1024.0 / 1024.0))
        .unwrap_or_else(|| "unknown".into());
    Machine {
        nproc,
        cpu_model,
        kernel,
        memory,
        work_fs: filesystem_of(work_dir),
    }
}

/// "ext4 on /dev/vda (mounted at /)" for the mount that holds `path`.
pub fn filesystem_of(path: &Path) -> String {
    let path = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let mut best: Option<(usize, String)> = None;
    for line in mounts.lines() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        let [dev, mnt, fstype, ..] = cols[..] else {
            continue;
        };
        let mnt = mnt.replace("\\040", " ");
        if path.starts_with(&mnt) && best.as_ref().is_none_or(|(len, _)| mnt.len() > *len) {
            best = Some((mnt.len(), format!("{fstype} on {dev} (mounted at {mnt})")));
        }
    }
    best.map(|(_, s)| s).unwrap_or_else(|| "unknown".into())
}

pub fn clk_tck() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .unwrap_or(100.0)
}

/// CPU seconds (user + system) used so far by process `pid`.
pub fn cpu_seconds(pid: u32, hz: f64) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); utime is field 14, stime field 15.
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) / hz)
}

/// Whole-machine CPU seconds so far: (busy, steal), from /proc/stat.
pub fn machine_cpu(hz: f64) -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let v: Vec<f64> = line
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest is inside user)
    let get = |i: usize| v.get(i).copied().unwrap_or(0.0);
    let busy = get(0) + get(1) + get(2) + get(5) + get(6);
    Some((busy / hz, get(7) / hz))
}

/// CPU used during a measured interval.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuUse {
    /// The process under test (the server, or this process for the ceiling).
    pub subject: f64,
    /// This process (the load generator), when it is not the subject.
    pub loadgen: f64,
    /// Every other process of the machine: noise.
    pub others: f64,
    /// Time the hypervisor gave to other guests.
    pub steal: f64,
}

pub struct CpuProbe {
    hz: f64,
    subject: u32,
    start: (Option<f64>, Option<f64>, Option<(f64, f64)>),
}

impl CpuProbe {
    pub fn start(subject: u32) -> Self {
        let hz = clk_tck();
        let me = std::process::id();
        Self {
            hz,
            subject,
            start: (
                cpu_seconds(subject, hz),
                cpu_seconds(me, hz),
                machine_cpu(hz),
            ),
        }
    }

    pub fn stop(&self) -> Option<CpuUse> {
        let me = std::process::id();
        let (s0, m0, a0) = self.start;
        let (s1, m1, a1) = (
            cpu_seconds(self.subject, self.hz),
            cpu_seconds(me, self.hz),
            machine_cpu(self.hz),
        );
        let subject = s1? - s0?;
        let loadgen = if self.subject == me { 0.0 } else { m1? - m0? };
        let ((b0, st0), (b1, st1)) = (a0?, a1?);
        Some(CpuUse {
            subject,
            loadgen,
            others: ((b1 - b0) - subject - loadgen).max(0.0),
            steal: st1 - st0,
        })
    }
}

pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

// ---------------------------------------------------------------------------
// Latency statistics.
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, Default)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

/// Nearest-rank percentiles in milliseconds.
pub fn latency(mut samples: Vec<Duration>) -> Latency {
    if samples.is_empty() {
        return Latency::default();
    }
    samples.sort_unstable();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let pct = |p: f64| {
        let rank = ((p / 100.0) * samples.len() as f64).ceil() as usize;
        ms(samples[rank.clamp(1, samples.len()) - 1])
    };
    let sum: f64 = samples.iter().map(|d| ms(*d)).sum();
    Latency {
        p50: pct(50.0),
        p90: pct(90.0),
        p95: pct(95.0),
        p99: pct(99.0),
        max: ms(samples[samples.len() - 1]),
        mean: sum / samples.len() as f64,
    }
}

pub fn latency_json(l: &Latency) -> Value {
    json!({ "p50": round(l.p50), "p90": round(l.p90), "p95": round(l.p95), "p99": round(l.p99), "max": round(l.max), "mean": round(l.mean) })
}

pub fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

// ---------------------------------------------------------------------------
// The server under test.
// ---------------------------------------------------------------------------

/// Kills the server when dropped (early errors included).
pub struct Server {
    pub child: Option<Child>,
    pub base: String,
    pub log: PathBuf,
}

impl Server {
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL, the abrupt end: nothing is flushed after the last response.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut c) = self.child.take() {
            c.kill().context("cannot kill the server")?;
            c.wait().context("cannot reap the server")?;
        }
        Ok(())
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub fn find_motcua(explicit: Option<&Path>, repo: &Path) -> anyhow::Result<PathBuf> {
    if let Some(p) = explicit {
        if p.is_file() {
            return Ok(p.to_path_buf());
        }
        bail!("--motcua {}: no such file", p.display());
    }
    let mut candidates = Vec::new();
    if let Some(t) = std::env::var_os("CARGO_TARGET_DIR") {
        let t = PathBuf::from(t);
        let t = if t.is_relative() { repo.join(t) } else { t };
        candidates.push(t.join("release").join("motcua"));
    }
    if let Ok(me) = std::env::current_exe()
        && let Some(dir) = me.parent()
        && dir.file_name().is_some_and(|n| n == "release")
    {
        candidates.push(dir.join("motcua"));
    }
    candidates.push(repo.join("target").join("release").join("motcua"));
    for c in &candidates {
        if c.is_file() {
            return Ok(c.clone());
        }
    }
    bail!(
        "the release binary of motcua was not found (looked at {}).\n\
         Build it first:  cargo build --release   (or pass --motcua PATH)",
        candidates
            .iter()
            .map(|c| c.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// Settings passed to every `motcua` command as `MOTCUA_*` variables
/// (e.g. `("MOTCUA_DURABILITY", "full")`, `("MOTCUA_DATABASE_URL", url)`).
pub type Env = [(String, String)];

/// A `motcua` command isolated from the caller's configuration: no
/// `motcua.toml` of the checkout, no `MOTCUA_*` variables but `env`.
pub fn motcua_cmd(bin: &Path, repo: &Path, data_dir: &Path, env: &Env) -> Command {
    let mut cmd = Command::new(bin);
    cmd.current_dir(repo);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("MOTCUA_") {
            cmd.env_remove(&k);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.arg("--config")
        .arg(data_dir.join("no-such-motcua.toml"))
        .arg("--data-dir")
        .arg(data_dir);
    cmd
}

pub fn free_port() -> anyhow::Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("cannot find a free port")?;
    Ok(l.local_addr()?.port())
}

/// Runs a `motcua` command to completion; its output is the error if it fails.
pub fn run_motcua(
    bin: &Path,
    repo: &Path,
    data_dir: &Path,
    env: &Env,
    args: &[&str],
) -> anyhow::Result<String> {
    let out = motcua_cmd(bin, repo, data_dir, env)
        .args(args)
        .output()
        .with_context(|| format!("cannot run motcua {}", args.join(" ")))?;
    if !out.status.success() {
        bail!(
            "motcua {} failed:\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Starts `motcua serve --demo` on a free loopback port and waits until it
/// is ready.
pub async fn start_server(
    bin: &Path,
    repo: &Path,
    data_dir: &Path,
    env: &Env,
) -> anyhow::Result<Server> {
    let port = free_port()?;
    let listen = format!("127.0.0.1:{port}");
    let log = data_dir.join("server.log");
    let out = std::fs::File::create(&log).context("cannot create server.log")?;
    let err = out.try_clone()?;
    let child = motcua_cmd(bin, repo, data_dir, env)
        // The exchange gateway on a port of its own, never a fixed one.
        .args([
            "serve",
            "--demo",
            "--listen",
            &listen,
            "--exchange-listen",
            "127.0.0.1:0",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .spawn()
        .context("cannot start motcua serve")?;
    let mut server = Server {
        child: Some(child),
        base: format!("http://{listen}"),
        log,
    };
    let probe = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(c) = server.child.as_mut()
            && let Some(status) = c.try_wait()?
        {
            server.child = None;
            bail!(
                "motcua serve exited ({status}) before it was ready:\n{}",
                server.log_tail()
            );
        }
        if let Ok(r) = probe.get(format!("{}/readyz", server.base)).send().await
            && r.status().is_success()
        {
            return Ok(server);
        }
        if Instant::now() > deadline {
            bail!(
                "motcua serve was not ready after 60 s:\n{}",
                server.log_tail()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------------------
// The database under test.
// ---------------------------------------------------------------------------

/// Which backend a bench runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// The embedded default: SQLite in the data directory.
    Sqlite,
    /// PostgreSQL: a database of its own on the server of `--postgres-url`.
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

/// The PostgreSQL server to use: `--postgres-url`, else
/// `MOTCUA_TEST_POSTGRES_URL`, else the local server.
pub fn postgres_admin_url(explicit: Option<&str>) -> String {
    explicit
        .map(str::to_string)
        .or_else(|| std::env::var("MOTCUA_TEST_POSTGRES_URL").ok())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// The URL of database `name` on the server of `admin`.
pub fn postgres_db_url(admin: &str, name: &str) -> anyhow::Result<String> {
    let (base, _) = admin.rsplit_once('/').context(
        "the PostgreSQL URL needs a database path, e.g. postgres://user@host:5432/postgres",
    )?;
    Ok(format!("{base}/{name}"))
}

fn valid_db_name(name: &str) -> anyhow::Result<()> {
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        bail!("bad database name {name:?}");
    }
    Ok(())
}

/// Creates database `name` (dropping an older one of that name when
/// `replace`); returns its URL.
pub async fn create_postgres_db(admin: &str, name: &str, replace: bool) -> anyhow::Result<String> {
    use sqlx::Connection as _;
    valid_db_name(name)?;
    let mut c = sqlx::PgConnection::connect(admin)
        .await
        .with_context(|| format!("cannot connect to PostgreSQL at {admin}"))?;
    if replace {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .execute(&mut c)
        .await?;
    }
    let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(name)
        .fetch_optional(&mut c)
        .await?;
    if exists.is_none() {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut c)
            .await?;
    }
    let _ = c.close().await;
    postgres_db_url(admin, name)
}

pub async fn drop_postgres_db(admin: &str, name: &str) -> anyhow::Result<()> {
    use sqlx::Connection as _;
    valid_db_name(name)?;
    let mut c = sqlx::PgConnection::connect(admin).await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut c)
    .await?;
    let _ = c.close().await;
    Ok(())
}

/// An opened store of either backend.
pub enum AnyStore {
    Sqlite(motcua_store_sqlite::SqliteStore),
    Postgres(motcua_store_postgres::PostgresStore),
}

impl AnyStore {
    pub async fn open(
        url: &str,
        durability: motcua_store_sqlite::Durability,
    ) -> anyhow::Result<Self> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres(motcua_store_postgres::connect(url).await?))
        } else {
            Ok(Self::Sqlite(
                motcua_store_sqlite::open(url, durability).await?,
            ))
        }
    }

    pub fn store(&self) -> &dyn motcua_store::Store {
        match self {
            Self::Sqlite(s) => s,
            Self::Postgres(p) => p,
        }
    }

    pub async fn close(&self) {
        match self {
            Self::Sqlite(s) => s.close().await,
            Self::Postgres(p) => p.close().await,
        }
    }
}

/// A database URL without its password.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

// ---------------------------------------------------------------------------
// The disk.
// ---------------------------------------------------------------------------

/// Latency of one small append followed by `fdatasync`, in a scratch file
/// of `dir` (removed afterwards): the floor under anything that makes a
/// write durable before it answers. `samples` rounds after 5 unmeasured.
pub fn fsync_latency(dir: &Path, samples: usize, preallocated: bool) -> anyhow::Result<Latency> {
    use std::os::unix::fs::FileExt as _;
    let path = dir.join(format!("fsync-probe-{}.tmp", std::process::id()));
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    let line = [b'x'; 255];
    let mut times = Vec::with_capacity(samples);
    let mut result = Ok(());
    if preallocated {
        // Zeros written ahead, as the exchange log does: the appends then
        // leave the file's length alone.
        let zeros = vec![0u8; (samples + 5) * line.len()];
        result = f.write_all_at(&zeros, 0).and_then(|_| f.sync_all());
    }
    for i in 0..samples + 5 {
        if result.is_err() {
            break;
        }
        let t = Instant::now();
        if let Err(e) = f
            .write_all_at(&line, (i * line.len()) as u64)
            .and_then(|_| f.sync_data())
        {
            result = Err(e);
            break;
        }
        if i >= 5 {
            times.push(t.elapsed());
        }
    }
    drop(f);
    let _ = std::fs::remove_file(&path);
    result.with_context(|| format!("write and fdatasync {}", path.display()))?;
    Ok(latency(times))
}

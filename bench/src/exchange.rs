//! `exchange-bench`: what one exchange through the gateway costs, measured
//! against nginx as the reference for one proxy hop on the same machine.
//!
//! One run sends the same closed-loop load (`--clients` concurrent clients,
//! keep-alive, `GET` of a citizen by national ID, a small JSON answer) for a
//! fixed time to three targets, one after the other:
//!
//! * (a) the demo population provider directly (a real lookup in its SQLite
//!   database);
//! * (b) nginx (the Debian package) as a plain reverse proxy to it, with an
//!   upstream keep-alive pool;
//! * (c) the exchange gateway, with API-key authentication, the access
//!   check, and the message log (hash chain, Ed25519-signed batches,
//!   `fdatasync` before the answer) — as deployed.
//!
//! It prints requests/s, p50 and p99 of each, the ratios c/b and c/a, the
//! p50 latency that the gateway adds over the provider, the disk's
//! `fdatasync` latency (the floor of (c)) and the CPU use. See
//! `bench/README.md`.
#![forbid(unsafe_code)]

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use clap::Parser;
use motcua_bench::*;
use serde_json::{Value, json};

/// c/b: the gateway against nginx (issue 5, point 9).
const TARGET_RATIO_CB: f64 = 0.7;
/// p50 that (c) may add over (a), milliseconds.
const TARGET_ADDED_P50_MS: f64 = 1.0;
/// A run where other processes took more than this share of the machine.
const NOISY_PCT: f64 = 10.0;
const SHOWN_ERRORS: usize = 5;

/// The demo exchange entries (docs/exchange-demo.json).
const DEMO_CLIENT: &str = "VN/GOV/UBND-HN/MOTCUA";
const DEMO_SERVICE: &str = "VN/GOV/BCA/POPULATION/citizens";
const DEMO_API_KEY: &str = "xrk_demo_motcua_not_a_secret";
/// The province administrator of the demo, who may read the registry.
const ADMIN_USER: &str = "province.admin";
const ADMIN_PASSWORD: &str = "motcua-demo";

#[derive(Debug, Parser)]
#[command(
    name = "exchange-bench",
    about = "Exchange gateway vs nginx vs the provider directly: requests/s, p50, p99"
)]
struct Args {
    /// Concurrent clients (closed loop, each with a keep-alive connection).
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Measured seconds per target.
    #[arg(long, default_value_t = 10)]
    duration_secs: u64,
    /// Unmeasured seconds per target before the measurement.
    #[arg(long, default_value_t = 2)]
    warmup_secs: u64,
    /// Seconds per target with one client (latency on an idle machine,
    /// without queueing); 0 skips this pass.
    #[arg(long, default_value_t = 3)]
    serial_secs: u64,
    /// Rounds of (a), (b), (c) one after the other; each target's figures
    /// are over all its rounds (interleaving spreads outside noise fairly).
    #[arg(long, default_value_t = 1)]
    rounds: u32,
    /// Seconds per target and round of the open-loop pass: `--clients`
    /// clients offering `--rate` requests/s together, latency measured from
    /// each request's scheduled time; 0 skips this pass.
    #[arg(long, default_value_t = 5)]
    paced_secs: u64,
    /// Requests/s of the open-loop pass; 0: half the lowest closed-loop
    /// throughput of (a), (b) and (c) in this run, so that every target has
    /// room and the latencies are those of a hop, not of a queue.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// nginx `worker_processes`.
    #[arg(long, default_value = "auto")]
    nginx_workers: String,
    /// The nginx binary (default: `nginx` on PATH, then /usr/sbin/nginx).
    #[arg(long)]
    nginx: Option<PathBuf>,
    /// The release `motcua` binary (default: $CARGO_TARGET_DIR/release/motcua,
    /// then next to this binary, then target/release/motcua).
    #[arg(long)]
    motcua: Option<PathBuf>,
    /// Where the throw-away data directory goes (default: the system temp
    /// directory); must be a real disk, the message log fsyncs there.
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// `fdatasync` rounds of the disk probe.
    #[arg(long, default_value_t = 200)]
    fsync_samples: usize,
    /// Keep the data directory and the nginx directory.
    #[arg(long)]
    keep_data: bool,
    /// Do not write bench/results/exchange-<timestamp>.json.
    #[arg(long)]
    no_json: bool,
}

// ---------------------------------------------------------------------------
// nginx.
// ---------------------------------------------------------------------------

fn find_nginx(explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return p.is_file().then(|| p.to_path_buf());
    }
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    // Debian installs it in sbin, which a user's PATH may lack.
    dirs.extend(["/usr/sbin", "/usr/local/sbin", "/usr/local/nginx/sbin"].map(PathBuf::from));
    dirs.into_iter()
        .map(|d| d.join("nginx"))
        .find(|p| p.is_file())
}

fn nginx_version(bin: &Path) -> String {
    // `nginx -v` writes to stderr.
    Command::new(bin)
        .arg("-v")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stderr).trim().to_string())
        .and_then(|s| s.strip_prefix("nginx version: ").map(str::to_string))
        .unwrap_or_else(|| "unknown".into())
}

/// A plain, well-configured reverse proxy: HTTP/1.1 and a keep-alive pool
/// to the upstream, keep-alive to the clients, no access log, no buffering
/// to disk (the answers are small).
fn nginx_conf(dir: &Path, workers: &str, listen: SocketAddr, upstream: SocketAddr) -> String {
    let d = dir.display();
    format!(
        r#"# Generated by exchange-bench.
worker_processes {workers};
daemon off;
master_process on;
pid {d}/nginx.pid;
error_log {d}/error.log warn;

events {{
    worker_connections 4096;
}}

http {{
    access_log off;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    keepalive_timeout 75s;
    keepalive_requests 1000000;

    upstream population {{
        server {upstream};
        keepalive 128;
        keepalive_requests 1000000;
        keepalive_timeout 75s;
    }}

    server {{
        listen {listen};
        location / {{
            proxy_pass http://population;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
        }}
    }}
}}
"#
    )
}

/// nginx in a directory of its own (`-p DIR -c DIR/nginx.conf`, pid and
/// logs there); stopped when dropped.
struct Nginx {
    child: Option<Child>,
    bin: PathBuf,
    dir: PathBuf,
    addr: SocketAddr,
}

impl Nginx {
    fn args(&self) -> Vec<std::ffi::OsString> {
        nginx_args(&self.dir)
    }

    fn error_log(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// The master and its workers.
    fn pids(&self) -> Vec<u32> {
        match &self.child {
            Some(c) => {
                let mut p = vec![c.id()];
                p.extend(children_of(c.id()));
                p
            }
            None => Vec::new(),
        }
    }

    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let workers = children_of(child.id());
        // Fast shutdown (SIGTERM to the master through its pid file).
        let _ = Command::new(&self.bin)
            .args(self.args())
            .args(["-s", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        for w in workers {
            let _ = Command::new("kill")
                .args(["-KILL", &w.to_string()])
                .status();
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.stop();
    }
}

fn nginx_args(dir: &Path) -> Vec<std::ffi::OsString> {
    vec![
        "-p".into(),
        dir.as_os_str().to_owned(),
        "-c".into(),
        dir.join("nginx.conf").into_os_string(),
        // The error log before the configuration is read (else the
        // compiled-in /var/log/nginx/error.log).
        "-e".into(),
        dir.join("error.log").into_os_string(),
    ]
}

/// Process ids whose parent is `pid`.
fn children_of(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/stat"))
                .ok()
                .and_then(|s| {
                    let rest = s.rsplit_once(')')?.1.to_string();
                    rest.split_whitespace().nth(1)?.parse::<u32>().ok()
                })
                == Some(pid)
        })
        .collect()
}

async fn start_nginx(
    bin: &Path,
    dir: &Path,
    workers: &str,
    upstream: SocketAddr,
    probe_path: &str,
) -> anyhow::Result<Nginx> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let listen: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
    std::fs::write(
        dir.join("nginx.conf"),
        nginx_conf(dir, workers, listen, upstream),
    )?;
    let test = Command::new(bin)
        .args(nginx_args(dir))
        .arg("-t")
        .output()
        .context("cannot run nginx -t")?;
    if !test.status.success() {
        bail!(
            "nginx -t rejects the generated configuration ({}):\n{}",
            dir.join("nginx.conf").display(),
            String::from_utf8_lossy(&test.stderr)
        );
    }
    let child = Command::new(bin)
        .args(nginx_args(dir))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start nginx")?;
    let mut nginx = Nginx {
        child: Some(child),
        bin: bin.to_path_buf(),
        dir: dir.to_path_buf(),
        addr: listen,
    };
    let probe = plain_client(1)?;
    let url = format!("http://{}{probe_path}", nginx.addr);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(c) = nginx.child.as_mut()
            && let Some(status) = c.try_wait()?
        {
            nginx.child = None;
            bail!(
                "nginx exited ({status}) before it answered:\n{}",
                nginx.error_log()
            );
        }
        if let Ok(r) = probe.get(&url).send().await
            && r.status().is_success()
        {
            return Ok(nginx);
        }
        if Instant::now() > deadline {
            bail!(
                "nginx did not answer {url} within 10 s:\n{}",
                nginx.error_log()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------------------
// The node under test.
// ---------------------------------------------------------------------------

/// The gateway's address from `Exchange gateway at http://ADDR/r1/`.
fn gateway_base(server: &Server) -> anyhow::Result<String> {
    let log = std::fs::read_to_string(&server.log).context("cannot read server.log")?;
    log.lines()
        .find_map(|l| {
            let rest = l.strip_prefix("Exchange gateway at ")?;
            let url = rest.split_whitespace().next()?;
            url.strip_suffix("/r1/").map(str::to_string)
        })
        .with_context(|| {
            format!(
                "serve did not print `Exchange gateway at …`:\n{}",
                server.log_tail()
            )
        })
}

/// The provider's address, from the upstream of the demo service in the
/// exchange registry (read as the province administrator): serve starts
/// the provider on a new loopback port every time and does not print it.
async fn provider_addr(base: &str) -> anyhow::Result<SocketAddr> {
    let client = plain_client(1)?;
    let r = client
        .post(format!("{base}/api/v1/auth/token"))
        .json(&json!({ "username": ADMIN_USER, "password": ADMIN_PASSWORD }))
        .send()
        .await?;
    let status = r.status();
    let v: Value = r.json().await?;
    let token = v["token"]
        .as_str()
        .with_context(|| format!("login as {ADMIN_USER}: {status} {v}"))?;
    let r = client
        .get(format!("{base}/api/v1/exchange/registry"))
        .bearer_auth(token)
        .send()
        .await?;
    let status = r.status();
    let reg: Value = r.json().await?;
    let upstream = reg["services"]
        .as_array()
        .and_then(|s| {
            s.iter()
                .find(|s| s["id"].as_str() == Some(DEMO_SERVICE))
                .and_then(|s| s["upstream"].as_str())
        })
        .with_context(|| format!("no service {DEMO_SERVICE} in the registry ({status})"))?;
    // http://127.0.0.1:PORT/citizens
    let host = upstream
        .strip_prefix("http://")
        .and_then(|r| r.strip_suffix("/citizens"))
        .with_context(|| format!("unexpected upstream {upstream:?} of {DEMO_SERVICE}"))?;
    host.parse()
        .with_context(|| format!("upstream {upstream:?} is not IP:port"))
}

/// The national IDs of the provider's citizens, from its own database.
async fn national_ids(data_dir: &Path) -> anyhow::Result<Vec<String>> {
    use sqlx::Connection as _;
    let path = data_dir.join("population-demo.db");
    let opts = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&path)
        .read_only(true);
    let mut c = sqlx::SqliteConnection::connect_with(&opts)
        .await
        .with_context(|| format!("cannot open {}", path.display()))?;
    let ids: Vec<String> =
        sqlx::query_scalar("SELECT national_id FROM citizens ORDER BY national_id")
            .fetch_all(&mut c)
            .await?;
    let _ = c.close().await;
    if ids.is_empty() {
        bail!("{} has no citizens", path.display());
    }
    Ok(ids)
}

/// (records, batches) in the live message log.
fn log_counts(dir: &Path) -> (u64, u64) {
    let mut records = 0;
    let mut batches = 0;
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.path().extension().is_some_and(|x| x == "log")
            && let Ok(text) = std::fs::read(e.path())
        {
            for line in text.split(|b| *b == b'\n') {
                if line.starts_with(br#"{"kind":"record","#) {
                    records += 1;
                } else if line.starts_with(br#"{"kind":"batch","#) {
                    batches += 1;
                }
            }
        }
    }
    (records, batches)
}

// ---------------------------------------------------------------------------
// The load.
// ---------------------------------------------------------------------------

fn plain_client(pool: usize) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(pool)
        .timeout(Duration::from_secs(10))
        .build()?)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Direct,
    Nginx,
    Gateway,
}

#[derive(Clone)]
struct Target {
    kind: Kind,
    key: &'static str,
    label: &'static str,
    /// Up to the national ID: `http://ADDR/citizens`.
    base: String,
}

#[derive(Default)]
struct RunResult {
    ok: u64,
    /// Every non-200 or unexpected answer, warm-up included.
    errors: u64,
    error_samples: Vec<String>,
    latencies: Vec<Duration>,
    secs: f64,
    cpu: Option<CpuUse>,
    /// CPU seconds of nginx's master and workers.
    nginx_cpu: Option<f64>,
}

impl RunResult {
    /// Adds another run of the same target.
    fn merge(&mut self, r: RunResult) {
        let first = self.secs == 0.0;
        self.ok += r.ok;
        self.errors += r.errors;
        self.error_samples.extend(r.error_samples);
        self.error_samples.truncate(SHOWN_ERRORS);
        self.latencies.extend(r.latencies);
        self.secs += r.secs;
        self.cpu = match (first, self.cpu, r.cpu) {
            (true, _, c) => c,
            (false, Some(a), Some(b)) => Some(CpuUse {
                subject: a.subject + b.subject,
                loadgen: a.loadgen + b.loadgen,
                others: a.others + b.others,
                steal: a.steal + b.steal,
            }),
            _ => None,
        };
        self.nginx_cpu = match (first, self.nginx_cpu, r.nginx_cpu) {
            (true, _, c) => c,
            (false, Some(a), Some(b)) => Some(a + b),
            _ => None,
        };
    }

    fn per_sec(&self) -> f64 {
        if self.secs > 0.0 {
            self.ok as f64 / self.secs
        } else {
            0.0
        }
    }
}

/// One exchange; `Err` says what was wrong with it.
async fn one(
    client: &reqwest::Client,
    t: &Target,
    id: &str,
    n: u64,
    auth: &str,
) -> Result<(), String> {
    let mut req = client.get(format!("{}/{id}", t.base));
    if t.kind == Kind::Gateway {
        req = req
            .header("X-Road-Client", DEMO_CLIENT)
            .header(reqwest::header::AUTHORIZATION, auth)
            .header("X-Road-Id", format!("bench-{n}"));
    }
    let r = req.send().await.map_err(|e| format!("{e:#}"))?;
    let status = r.status();
    let json_type = r
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let body = r.bytes().await.map_err(|e| format!("body: {e:#}"))?;
    if status != reqwest::StatusCode::OK {
        return Err(format!(
            "{status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(300)])
        ));
    }
    if !json_type {
        return Err("200 without Content-Type: application/json".into());
    }
    let v: Value = serde_json::from_slice(&body).map_err(|e| format!("200, not JSON: {e}"))?;
    if v["national_id"].as_str() != Some(id) {
        return Err(format!("200 with another citizen: {v}"));
    }
    Ok(())
}

struct Load {
    clients: usize,
    warmup: Duration,
    duration: Duration,
    /// Open loop: requests per second offered by all clients together,
    /// evenly spaced. A client that falls behind (its previous answer came
    /// after the next request's time) sends at once and its latency runs
    /// from the scheduled time, so a slow target's queue counts; otherwise
    /// from when the client's timer woke it (tokio's timer may fire up to a
    /// millisecond late, a delay of the load generator, not of the target).
    /// `None`: closed loop, each client sends as soon as its answer is in.
    rate: Option<f64>,
}

async fn run_load(
    t: &Target,
    ids: &Arc<Vec<String>>,
    load: &Load,
    server_pid: u32,
    nginx: Option<&Nginx>,
) -> anyhow::Result<RunResult> {
    let client = plain_client(load.clients)?;
    let counter = Arc::new(AtomicU64::new(0));
    let samples = Arc::new(tokio::sync::Mutex::new(Vec::<String>::new()));
    let auth: Arc<str> = format!("X-Road-ApiKey token={DEMO_API_KEY}").into();
    let t0 = Instant::now();
    let measure_from = t0 + load.warmup;
    let end = measure_from + load.duration;
    let mut tasks = Vec::with_capacity(load.clients);
    let target = Arc::new(t.clone());
    let (clients, rate) = (load.clients, load.rate);
    for slot in 0..load.clients {
        let (client, counter, samples, auth, ids, target) = (
            client.clone(),
            counter.clone(),
            samples.clone(),
            auth.clone(),
            ids.clone(),
            target.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut r = RunResult::default();
            let mut k: u64 = 0;
            loop {
                let start = match rate {
                    Some(rate) => {
                        let at = t0
                            + Duration::from_secs_f64(
                                (k * clients as u64 + slot as u64) as f64 / rate,
                            );
                        k += 1;
                        if Instant::now() >= at {
                            // Behind schedule because the last answer was
                            // late: that wait is the target's and counts.
                            at
                        } else {
                            // The timer wakes up to a millisecond late: that
                            // delay is the load generator's, not the target's.
                            tokio::time::sleep_until(at.into()).await;
                            Instant::now()
                        }
                    }
                    None => Instant::now(),
                };
                if start >= end {
                    break;
                }
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let id = &ids[(n % ids.len() as u64) as usize];
                let res = one(&client, &target, id, n, &auth).await;
                let done = Instant::now();
                match res {
                    Ok(()) => {
                        // Open loop: every request scheduled in the window
                        // counts, however late its answer.
                        if start >= measure_from && (rate.is_some() || done <= end) {
                            r.ok += 1;
                            r.latencies.push(done - start);
                        }
                    }
                    Err(e) => {
                        r.errors += 1;
                        let mut s = samples.lock().await;
                        if s.len() < SHOWN_ERRORS {
                            s.push(e);
                        }
                    }
                }
            }
            r
        }));
    }
    tokio::time::sleep_until(measure_from.into()).await;
    let probe = CpuProbe::start(server_pid);
    let hz = clk_tck();
    let nginx_cpu =
        |n: &Nginx| -> f64 { n.pids().iter().filter_map(|p| cpu_seconds(*p, hz)).sum() };
    let nginx0 = nginx.map(nginx_cpu);
    tokio::time::sleep_until(end.into()).await;
    let cpu = probe.stop();
    let nginx1 = nginx.map(nginx_cpu);
    let mut total = RunResult {
        secs: load.duration.as_secs_f64(),
        cpu,
        nginx_cpu: nginx0.zip(nginx1).map(|(a, b)| (b - a).max(0.0)),
        ..RunResult::default()
    };
    for task in tasks {
        match task.await {
            Ok(r) => {
                total.ok += r.ok;
                total.errors += r.errors;
                total.latencies.extend(r.latencies);
            }
            Err(e) => {
                total.errors += 1;
                total.error_samples.push(format!("client task failed: {e}"));
            }
        }
    }
    total.error_samples.extend(samples.lock().await.drain(..));
    Ok(total)
}

// ---------------------------------------------------------------------------
// Report.
// ---------------------------------------------------------------------------

fn pass(ok: bool) -> &'static str {
    if ok { "PASS" } else { "MISS" }
}

fn write_table(w: &mut String, targets: &[Target], runs: &[RunResult], lats: &[Latency]) {
    let _ = writeln!(
        w,
        "  {:<28} {:>10} {:>9} {:>9} {:>9} {:>7} {:>14}",
        "target", "requests/s", "p50 ms", "p99 ms", "max ms", "errors", "motcua CPU/req"
    );
    for ((t, r), l) in targets.iter().zip(runs).zip(lats) {
        let cpu_req = r
            .cpu
            .filter(|_| r.ok > 0)
            .map(|c| format!("{:.3} ms", c.subject * 1000.0 / r.ok as f64))
            .unwrap_or_else(|| "-".into());
        let _ = writeln!(
            w,
            "  {:<28} {:>10.0} {:>9.2} {:>9.2} {:>9.2} {:>7} {:>14}",
            t.label,
            r.per_sec(),
            l.p50,
            l.p99,
            l.max,
            r.errors,
            cpu_req
        );
    }
}

fn run_json(t: &Target, r: &RunResult, l: &Latency) -> Value {
    json!({
        "target": t.key,
        "requests": r.ok,
        "requests_per_sec": round(r.per_sec()),
        "errors": r.errors,
        "error_samples": r.error_samples,
        "latency_ms": latency_json(l),
        "cpu_seconds": r.cpu.map(|c| json!({
            "motcua": round(c.subject),
            "nginx": r.nginx_cpu.map(round),
            "loadgen": round(c.loadgen),
            "others": round((c.others - r.nginx_cpu.unwrap_or(0.0)).max(0.0)),
            "steal": round(c.steal),
        })),
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<ExitCode> {
    let args = Args::parse();
    if args.clients == 0 || args.duration_secs == 0 || args.rounds == 0 {
        bail!("--clients, --duration-secs and --rounds must be at least 1");
    }
    let Some(nginx_bin) = find_nginx(args.nginx.as_deref()) else {
        eprintln!(
            "nginx is not installed (it is the reference proxy of this benchmark).\n\
             Install the Debian package, then run the benchmark again:\n\
             \n    sudo apt-get install -y nginx-light\n\
             \n(or `sudo apt-get install -y nginx`; or pass --nginx PATH)"
        );
        return Ok(ExitCode::from(2));
    };
    let bench_dir = Path::new(BENCH_DIR);
    let repo = bench_dir
        .parent()
        .context("bench crate has no parent directory")?
        .to_path_buf();
    let bin = find_motcua(args.motcua.as_deref(), &repo)?;

    let stamp = Utc::now();
    let work_root = args.work_dir.clone().unwrap_or_else(std::env::temp_dir);
    let run_dir = work_root.join(format!(
        "motcua-exchange-bench-{}-{}",
        stamp.format("%Y%m%dT%H%M%SZ"),
        std::process::id()
    ));
    let data_dir = run_dir.join("data");
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    let m = machine(&data_dir);
    if m.work_fs.starts_with("tmpfs") || m.work_fs.starts_with("ramfs") {
        eprintln!(
            "WARNING: {} is on {}: fsync costs nothing there; use --work-dir on a real disk",
            run_dir.display(),
            m.work_fs
        );
    }
    eprintln!("motcua binary: {}", bin.display());
    eprintln!("nginx binary:  {}", nginx_bin.display());
    eprintln!("data under:    {}", run_dir.display());

    let cx = Ctx {
        args: &args,
        bin: &bin,
        nginx_bin: &nginx_bin,
        repo: &repo,
        run_dir: &run_dir,
        data_dir: &data_dir,
        machine: &m,
        stamp,
    };
    let result = bench(&cx).await;
    if !args.keep_data {
        let _ = std::fs::remove_dir_all(&run_dir);
    }
    result
}

// ---------------------------------------------------------------------------
// The run.
// ---------------------------------------------------------------------------

/// What the run knows before it starts anything.
struct Ctx<'a> {
    args: &'a Args,
    bin: &'a Path,
    nginx_bin: &'a Path,
    repo: &'a Path,
    run_dir: &'a Path,
    data_dir: &'a Path,
    machine: &'a Machine,
    stamp: DateTime<Utc>,
}

/// The machine and the disk before the load.
struct Probes {
    load_at_start: String,
    /// `fdatasync` of appends that grow the file, and of appends over
    /// zeros written ahead (as the message log writes).
    fsync: Latency,
    fsync_pre: Latency,
}

/// What every load run shares: the citizens asked for, the server whose
/// CPU is measured, and nginx.
struct Rig<'a> {
    ids: &'a Arc<Vec<String>>,
    server_pid: u32,
    nginx: &'a Nginx,
}

impl Rig<'_> {
    /// One load run against `t` (nginx's CPU counted when it is in the path).
    async fn run(&self, t: &Target, load: &Load) -> anyhow::Result<RunResult> {
        let nginx = (t.kind == Kind::Nginx).then_some(self.nginx);
        run_load(t, self.ids, load, self.server_pid, nginx).await
    }

    /// `rounds` rounds of every target one after the other, each target's
    /// runs merged; `announce` says what starts.
    async fn rounds(
        &self,
        targets: &[Target],
        rounds: u32,
        load: &Load,
        announce: impl Fn(u32, &Target),
    ) -> anyhow::Result<Vec<RunResult>> {
        let mut totals: Vec<RunResult> = targets.iter().map(|_| RunResult::default()).collect();
        for round in 1..=rounds {
            for (t, total) in targets.iter().zip(totals.iter_mut()) {
                announce(round, t);
                total.merge(self.run(t, load).await?);
            }
        }
        Ok(totals)
    }
}

/// The measurements of the three passes, each in the order of the targets.
struct Passes {
    /// One client (empty with `--serial-secs 0`).
    serial: Vec<RunResult>,
    /// The closed loop, over all rounds.
    runs: Vec<RunResult>,
    /// The open loop at `rate` (empty with `--paced-secs 0`).
    paced: Vec<RunResult>,
    rate: f64,
}

/// Everything the report is made of.
struct Outcome {
    targets: [Target; 3],
    probes: Probes,
    nginx_version: String,
    /// nginx's worker processes (its master not counted).
    nginx_workers: usize,
    citizens: usize,
    passes: Passes,
    /// Records and batches in the message log at the end.
    records: u64,
    batches: u64,
}

async fn bench(cx: &Ctx<'_>) -> anyhow::Result<ExitCode> {
    let args = cx.args;
    let probes = Probes {
        load_at_start: load_average(),
        fsync: fsync_latency(cx.data_dir, args.fsync_samples, false)?,
        fsync_pre: fsync_latency(cx.data_dir, args.fsync_samples, true)?,
    };

    let mut server = start_server(cx.bin, cx.repo, cx.data_dir, &[]).await?;
    let server_pid = server.pid().context("the server is not running")?;
    let gateway = gateway_base(&server)?;
    let provider = provider_addr(&server.base).await?;
    let ids = Arc::new(national_ids(cx.data_dir).await?);
    let nginx = start_nginx(
        cx.nginx_bin,
        &cx.run_dir.join("nginx"),
        &args.nginx_workers,
        provider,
        &format!("/citizens/{}", ids[0]),
    )
    .await?;
    let nginx_workers = nginx.pids().len().saturating_sub(1);
    eprintln!("provider:      http://{provider}/citizens");
    eprintln!("nginx:         http://{}/citizens", nginx.addr);
    eprintln!("gateway:       {gateway}/r1/{DEMO_SERVICE}");
    eprintln!("citizens:      {}", ids.len());

    let targets = targets(provider, nginx.addr, &gateway);
    let rig = Rig {
        ids: &ids,
        server_pid,
        nginx: &nginx,
    };
    let passes = run_passes(args, &targets, &rig).await?;
    let (records, batches) = log_counts(&cx.data_dir.join("exchange-log"));
    let nginx_version = nginx_version(cx.nginx_bin);
    drop(nginx);
    server.kill()?;

    let outcome = Outcome {
        targets,
        probes,
        nginx_version,
        nginx_workers,
        citizens: ids.len(),
        passes,
        records,
        batches,
    };
    let figures = Figures::of(&outcome.passes);
    let report = report(cx, &outcome, &figures);
    print!("{}", report.text);
    if !args.no_json {
        write_json(cx, &outcome, &figures, &report)?;
    }

    if figures.errors > 0 {
        bail!(
            "{} request(s) failed: the figures are not valid",
            figures.errors
        );
    }
    if outcome.passes.runs.iter().any(|r| r.ok == 0) {
        bail!("a target answered no request in the measured time");
    }
    Ok(ExitCode::SUCCESS)
}

fn targets(provider: SocketAddr, nginx: SocketAddr, gateway: &str) -> [Target; 3] {
    [
        Target {
            kind: Kind::Direct,
            key: "a_direct",
            label: "(a) provider directly",
            base: format!("http://{provider}/citizens"),
        },
        Target {
            kind: Kind::Nginx,
            key: "b_nginx",
            label: "(b) nginx -> provider",
            base: format!("http://{nginx}/citizens"),
        },
        Target {
            kind: Kind::Gateway,
            key: "c_gateway",
            label: "(c) gateway -> provider",
            base: format!("{gateway}/r1/{DEMO_SERVICE}"),
        },
    ]
}

/// One client per target, then the closed loop, then the open loop.
async fn run_passes(args: &Args, targets: &[Target], rig: &Rig<'_>) -> anyhow::Result<Passes> {
    // One client first: the cost of each hop without queueing.
    let mut serial = Vec::new();
    if args.serial_secs > 0 {
        let load = Load {
            clients: 1,
            warmup: Duration::from_millis(500),
            duration: Duration::from_secs(args.serial_secs),
            rate: None,
        };
        for t in targets {
            eprintln!("1 client, {}: {} s …", t.label, args.serial_secs);
            serial.push(rig.run(t, &load).await?);
        }
    }
    let load = Load {
        clients: args.clients,
        warmup: Duration::from_secs(args.warmup_secs),
        duration: Duration::from_secs(args.duration_secs),
        rate: None,
    };
    let runs = rig
        .rounds(targets, args.rounds, &load, |round, t| {
            eprintln!(
                "round {round}/{}: {} clients, {}: {} s warm-up + {} s …",
                args.rounds, args.clients, t.label, args.warmup_secs, args.duration_secs
            );
        })
        .await?;
    // Open loop at the same offered rate for every target: what a hop adds
    // to the latency when no target is saturated.
    let lowest = runs
        .iter()
        .map(RunResult::per_sec)
        .fold(f64::INFINITY, f64::min);
    let rate = if args.rate > 0.0 {
        args.rate
    } else {
        (lowest / 2.0).floor().max(1.0)
    };
    let mut paced: Vec<RunResult> = Vec::new();
    if args.paced_secs > 0 {
        let load = Load {
            clients: args.clients,
            warmup: Duration::from_secs(1),
            duration: Duration::from_secs(args.paced_secs),
            rate: Some(rate),
        };
        paced = rig
            .rounds(targets, args.rounds, &load, |round, t| {
                eprintln!(
                    "round {round}/{}: {} clients at {rate:.0} requests/s, {}: 1 s warm-up + {} s …",
                    args.rounds, args.clients, t.label, args.paced_secs
                );
            })
            .await?;
    }
    Ok(Passes {
        serial,
        runs,
        paced,
        rate,
    })
}

// ---------------------------------------------------------------------------
// Figures.
// ---------------------------------------------------------------------------

fn ratio(x: f64, y: f64) -> f64 {
    if y > 0.0 { x / y } else { 0.0 }
}

/// What the report and the JSON give, computed from the passes.
struct Figures {
    lat: Vec<Latency>,
    serial_lat: Vec<Latency>,
    paced_lat: Vec<Latency>,
    c_b: f64,
    c_a: f64,
    b_a: f64,
    /// p50 added over (a) in the closed loop.
    saturated_added_p50: f64,
    saturated_nginx_p50: f64,
    /// p50 added over (a) at the same offered load below saturation when
    /// the open loop ran, else in the closed loop: what the target judges.
    added_p50: f64,
    nginx_added_p50: f64,
    /// Failed requests of every pass.
    errors: u64,
}

impl Figures {
    fn of(p: &Passes) -> Self {
        let lats = |runs: &[RunResult]| -> Vec<Latency> {
            runs.iter().map(|r| latency(r.latencies.clone())).collect()
        };
        let lat = lats(&p.runs);
        let serial_lat = lats(&p.serial);
        let (a, b, c) = (&p.runs[0], &p.runs[1], &p.runs[2]);
        let c_b = ratio(c.per_sec(), b.per_sec());
        let c_a = ratio(c.per_sec(), a.per_sec());
        let b_a = ratio(b.per_sec(), a.per_sec());
        // At saturation a closed loop's p50 is about clients / throughput
        // (Little's law): this difference follows the throughput.
        let saturated_added_p50 = lat[2].p50 - lat[0].p50;
        let saturated_nginx_p50 = lat[1].p50 - lat[0].p50;
        let paced_lat = lats(&p.paced);
        // The latency target is judged at the same offered load below
        // saturation when that pass ran.
        let (added_p50, nginx_added_p50) = match paced_lat.as_slice() {
            [a, b, c] => (c.p50 - a.p50, b.p50 - a.p50),
            _ => (saturated_added_p50, saturated_nginx_p50),
        };
        let errors: u64 = p
            .runs
            .iter()
            .chain(&p.serial)
            .chain(&p.paced)
            .map(|r| r.errors)
            .sum();
        Self {
            lat,
            serial_lat,
            paced_lat,
            c_b,
            c_a,
            b_a,
            saturated_added_p50,
            saturated_nginx_p50,
            added_p50,
            nginx_added_p50,
            errors,
        }
    }
}

// ---------------------------------------------------------------------------
// The printed report and the JSON.
// ---------------------------------------------------------------------------

struct Report {
    text: String,
    /// Other processes took more than `NOISY_PCT` of the machine.
    noisy: bool,
}

fn report(cx: &Ctx<'_>, o: &Outcome, f: &Figures) -> Report {
    let mut out = String::new();
    write_header(&mut out, cx, o);
    write_serial(&mut out, cx, o, f);
    write_closed_loop(&mut out, cx, o, f);
    write_open_loop(&mut out, cx, o, f);
    let noisy = write_cpu(&mut out, cx, o);
    write_errors(&mut out, o);
    Report { text: out, noisy }
}

/// The machine, the disk, nginx, the load and the gateway's settings.
fn write_header(w: &mut String, cx: &Ctx<'_>, o: &Outcome) {
    let (args, m) = (cx.args, cx.machine);
    let (fsync, fsync_pre) = (&o.probes.fsync, &o.probes.fsync_pre);
    let _ = writeln!(w, "motcua exchange benchmark");
    let _ = writeln!(w, "=========================");
    let _ = writeln!(
        w,
        "date:        {}",
        cx.stamp.format("%Y-%m-%d %H:%M:%S UTC")
    );
    let _ = writeln!(w, "machine:     {}", m.summary());
    let _ = writeln!(w, "disk:        {}", m.work_fs);
    let _ = writeln!(
        w,
        "fdatasync:   p50 {:.3} ms, p99 {:.3} ms, mean {:.3} ms ({} appends of 255 B in the data directory); \
         over zeros written ahead (as the message log writes) p50 {:.3} ms, p99 {:.3} ms",
        fsync.p50, fsync.p99, fsync.mean, args.fsync_samples, fsync_pre.p50, fsync_pre.p99
    );
    let _ = writeln!(w, "load avg:    {} (at start)", o.probes.load_at_start);
    let _ = writeln!(
        w,
        "nginx:       {}, worker_processes {} ({} workers), upstream keepalive 128, HTTP/1.1",
        o.nginx_version, args.nginx_workers, o.nginx_workers
    );
    let _ = writeln!(
        w,
        "load:        {} clients, closed loop, keep-alive, GET a citizen by national ID ({} cycling), \
         {} s warm-up + {} s per target and round, {} round(s) of a, b, c one after the other",
        args.clients, o.citizens, args.warmup_secs, args.duration_secs, args.rounds
    );
    let _ = writeln!(
        w,
        "gateway:     API key + X-Road-Client, access check, message log (hash chain, Ed25519-signed batch, fdatasync) before each answer"
    );
}

/// The one-client pass, when it ran.
fn write_serial(w: &mut String, cx: &Ctx<'_>, o: &Outcome, f: &Figures) {
    if o.passes.serial.is_empty() {
        return;
    }
    let _ = writeln!(
        w,
        "\nOne client ({} s each): the cost of a hop without queueing",
        cx.args.serial_secs
    );
    write_table(w, &o.targets, &o.passes.serial, &f.serial_lat);
    let _ = writeln!(
        w,
        "  added p50 over (a): nginx {:+.3} ms, gateway {:+.3} ms",
        f.serial_lat[1].p50 - f.serial_lat[0].p50,
        f.serial_lat[2].p50 - f.serial_lat[0].p50
    );
}

/// The closed loop and the throughput ratios.
fn write_closed_loop(w: &mut String, cx: &Ctx<'_>, o: &Outcome, f: &Figures) {
    let args = cx.args;
    let _ = writeln!(
        w,
        "\n{} clients, closed loop ({} s per target): each client sends again as soon as its answer is in",
        args.clients,
        args.duration_secs * u64::from(args.rounds)
    );
    write_table(w, &o.targets, &o.passes.runs, &f.lat);
    let _ = writeln!(w);
    let _ = writeln!(w, "  b/a (nginx vs direct):      {:.3}", f.b_a);
    let _ = writeln!(w, "  c/a (gateway vs direct):    {:.3}", f.c_a);
    let _ = writeln!(
        w,
        "  c/b (gateway vs nginx):     {:.3}   target >= {TARGET_RATIO_CB}   {}",
        f.c_b,
        pass(f.c_b >= TARGET_RATIO_CB)
    );
    let _ = writeln!(
        w,
        "  p50 added at saturation:    gateway {:+.3} ms (c - a), nginx {:+.3} ms (b - a); \
         a saturated closed loop's p50 is about clients / throughput, so this follows the throughput",
        f.saturated_added_p50, f.saturated_nginx_p50
    );
}

/// The open loop when it ran, the latency target and the message log.
fn write_open_loop(w: &mut String, cx: &Ctx<'_>, o: &Outcome, f: &Figures) {
    let args = cx.args;
    let paced = &o.passes.paced;
    if !paced.is_empty() {
        let _ = writeln!(
            w,
            "\n{} clients, open loop at {:.0} requests/s ({} s per target): the same offered load for each target, \
             latency from each request's scheduled send time",
            args.clients,
            o.passes.rate,
            args.paced_secs * u64::from(args.rounds)
        );
        write_table(w, &o.targets, paced, &f.paced_lat);
    }
    let _ = writeln!(
        w,
        "\n  p50 added by the gateway:   {:+.3} ms (c - a{})   target <= {TARGET_ADDED_P50_MS} ms   {}",
        f.added_p50,
        if paced.is_empty() {
            ", closed loop"
        } else {
            ", open loop"
        },
        pass(f.added_p50 <= TARGET_ADDED_P50_MS)
    );
    let _ = writeln!(
        w,
        "  p50 added by nginx:         {:+.3} ms (b - a)",
        f.nginx_added_p50
    );
    let _ = writeln!(
        w,
        "  message log:                {} records in {} fsynced batches ({:.1} per batch, warm-up and 1-client pass included)",
        o.records,
        o.batches,
        ratio(o.records as f64, o.batches as f64)
    );
}

/// The CPU shares of the closed loop; true if other processes took more
/// than `NOISY_PCT` of the machine during one of them.
fn write_cpu(w: &mut String, cx: &Ctx<'_>, o: &Outcome) -> bool {
    let (args, m) = (cx.args, cx.machine);
    let _ = writeln!(
        w,
        "\nCPU during the measured runs (share of {} CPU(s) x {} s per target):",
        m.nproc,
        args.duration_secs * u64::from(args.rounds)
    );
    let mut noisy = false;
    for (t, r) in o.targets.iter().zip(&o.passes.runs) {
        let capacity = m.nproc as f64 * r.secs;
        let pct = |s: f64| {
            if capacity > 0.0 {
                100.0 * s / capacity
            } else {
                0.0
            }
        };
        match r.cpu {
            Some(cu) => {
                let ng = r.nginx_cpu.unwrap_or(0.0);
                let others = (cu.others - ng).max(0.0);
                noisy |= pct(others) > NOISY_PCT;
                let _ = writeln!(
                    w,
                    "  {:<28} motcua {:>5.1} %  nginx {:>5.1} %  load generator {:>5.1} %  others {:>5.1} %  steal {:>4.1} %{}",
                    t.label,
                    pct(cu.subject),
                    pct(ng),
                    pct(cu.loadgen),
                    pct(others),
                    pct(cu.steal),
                    if pct(others) > NOISY_PCT {
                        "  <- NOISY"
                    } else {
                        ""
                    }
                );
            }
            None => {
                let _ = writeln!(w, "  {:<28} (no CPU figures)", t.label);
            }
        }
    }
    if noisy {
        let _ = writeln!(
            w,
            "  NOISY: other processes used more than {NOISY_PCT} % of the machine; rerun on a quiet machine"
        );
    }
    noisy
}

/// The first error answers of each pass.
fn write_errors(w: &mut String, o: &Outcome) {
    let passes = [
        (&o.passes.runs, ""),
        (&o.passes.serial, ", 1 client"),
        (&o.passes.paced, ", open loop"),
    ];
    for (runs, which) in passes {
        for (t, r) in o.targets.iter().zip(runs) {
            for e in &r.error_samples {
                let _ = writeln!(w, "  error ({}{which}): {e}", t.label);
            }
        }
    }
}

/// bench/results/exchange-<timestamp>.json: the figures and the printed
/// report.
fn write_json(cx: &Ctx<'_>, o: &Outcome, f: &Figures, report: &Report) -> anyhow::Result<()> {
    let (args, m, p) = (cx.args, cx.machine, &o.passes);
    let runs_json = |runs: &[RunResult], lats: &[Latency]| -> Vec<Value> {
        o.targets
            .iter()
            .zip(runs)
            .zip(lats)
            .map(|((t, r), l)| run_json(t, r, l))
            .collect()
    };
    let json_out = json!({
        "bench": "exchange",
        "date": cx.stamp.to_rfc3339(),
        "machine": {
            "nproc": m.nproc, "cpu": m.cpu_model, "memory": m.memory,
            "kernel": m.kernel, "filesystem": m.work_fs,
        },
        "fdatasync_ms": latency_json(&o.probes.fsync),
        "fdatasync_preallocated_ms": latency_json(&o.probes.fsync_pre),
        "nginx": { "version": o.nginx_version, "worker_processes": args.nginx_workers, "workers": o.nginx_workers },
        "clients": args.clients,
        "warmup_secs": args.warmup_secs,
        "duration_secs": args.duration_secs,
        "rounds": args.rounds,
        "citizens": o.citizens,
        "runs": runs_json(&p.runs, &f.lat),
        "serial": runs_json(&p.serial, &f.serial_lat),
        "ratios": { "b_a": round(f.b_a), "c_a": round(f.c_a), "c_b": round(f.c_b) },
        "added_p50_ms": { "gateway": round(f.added_p50), "nginx": round(f.nginx_added_p50) },
        "saturated_added_p50_ms": { "gateway": round(f.saturated_added_p50), "nginx": round(f.saturated_nginx_p50) },
        "open_loop": {
            "rate": p.rate,
            "secs_per_round": args.paced_secs,
            "runs": runs_json(&p.paced, &f.paced_lat),
        },
        "message_log": { "records": o.records, "batches": o.batches },
        "targets": {
            "c_b": { "target": TARGET_RATIO_CB, "pass": f.c_b >= TARGET_RATIO_CB },
            "added_p50_ms": { "target": TARGET_ADDED_P50_MS, "pass": f.added_p50 <= TARGET_ADDED_P50_MS },
        },
        "noisy": report.noisy,
        "report": report.text,
    });
    let dir = Path::new(BENCH_DIR).join("results");
    std::fs::create_dir_all(&dir)?;
    let file = dir.join(format!(
        "exchange-{}.json",
        cx.stamp.format("%Y%m%dT%H%M%SZ")
    ));
    std::fs::write(&file, serde_json::to_string_pretty(&json_out)?)?;
    println!("\nwritten: {}", file.display());
    Ok(())
}

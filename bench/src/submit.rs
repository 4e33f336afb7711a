//! `submit-bench`: how many dossier submissions per second one `motcua serve`
//! node acknowledges durably, compared with the ceiling of the same database
//! writes done in-process without HTTP.
//!
//! See `bench/README.md`. Run it with
//! `cargo build --release && cargo run --release -p motcua-bench --bin submit-bench`.
#![forbid(unsafe_code)]

use std::collections::HashSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use clap::{Parser, ValueEnum};
use motcua_bench::*;
use motcua_domain::audit::{AuditEntry, payload_hash};
use motcua_domain::dossier::{Channel, Lifecycle, Role, Status};
use motcua_domain::procedure::{Procedure, parse_procedure};
use motcua_domain::units::{Agency, AgencyKind, BUILTIN_UNITS_CSV, parse_units_csv};
use motcua_domain::{AgencyCode, DossierCode, UnitCode};
use motcua_store::{Applicant, LocalObjectStore, NewDossier, NewUser, ObjectStore, StoredDocument};
use motcua_store_sqlite::Durability;
use serde_json::{Map, Value, json};
use tokio::sync::Mutex;

const PROCEDURE_FILE: &str = "procedures/bench-submission.yaml";
const PROCEDURE_CODE: &str = "9.900001";
const DOCUMENT_ID: &str = "guardianship-papers";
/// Unit 00073 (Phường Cửa Nam, Hà Nội), handled by the demo agency UB00073.
const UNIT: &str = "00073";
const AGENCY: &str = "UB00073";
const USERNAME: &str = "citizen";
const PASSWORD: &str = "motcua-demo";
/// Size of the PDF attached to every submission.
const PDF_BYTES: usize = 100 * 1024;
/// How many error bodies are printed.
const SHOWN_ERRORS: usize = 5;
const TARGET_PER_SEC: f64 = 500.0;
const TARGET_RATIO: f64 = 0.5;
/// Other processes using more than this share of the machine during a run
/// make its figures untrustworthy.
const NOISY_PCT: f64 = 10.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum DurabilityArg {
    /// `synchronous=FULL`: every commit is fsynced (survives power loss).
    Full,
    /// `synchronous=NORMAL`: survives a process kill, not a power loss.
    Normal,
}

impl DurabilityArg {
    fn as_str(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::Normal => "normal",
        }
    }
    fn store(self) -> Durability {
        match self {
            Self::Full => Durability::Full,
            Self::Normal => Durability::Normal,
        }
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "submit-bench",
    about = "Durable dossier submissions per second: motcua serve vs. the in-process ceiling"
)]
struct Args {
    /// Concurrent HTTP clients (tokio tasks sharing one reqwest client).
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Length of the measured server run, and of the ceiling run.
    #[arg(long, default_value_t = 20)]
    duration_secs: u64,
    /// Stop earlier after this many measured requests (each run).
    #[arg(long, default_value_t = 20_000)]
    max_requests: u64,
    /// Database backend of both the server and the ceiling.
    #[arg(long, value_enum, default_value_t = Backend::Sqlite)]
    backend: Backend,
    /// PostgreSQL server for `--backend postgres` (a database per run is
    /// created there and dropped afterwards; default:
    /// MOTCUA_TEST_POSTGRES_URL, else postgres://postgres@127.0.0.1:5432/postgres).
    #[arg(long)]
    postgres_url: Option<String>,
    /// SQLite durability of both the server and the ceiling.
    #[arg(long, value_enum, default_value_t = DurabilityArg::Full)]
    durability: DurabilityArg,
    /// The release `motcua` binary (default: $CARGO_TARGET_DIR/release/motcua,
    /// then next to this binary, then target/release/motcua).
    #[arg(long)]
    motcua: Option<PathBuf>,
    /// Submissions before the measurement, not counted in the figures.
    #[arg(long, default_value_t = 50)]
    warmup: u64,
    /// Where the throw-away data directories are made (default: the system
    /// temporary directory). Must be a real disk: fsync on tmpfs is free.
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Keep the data directories after the run.
    #[arg(long)]
    keep_data: bool,
    /// Measure the server only (for sweeps over --concurrency).
    #[arg(long)]
    skip_ceiling: bool,
    /// Do not write bench/results/submit-<timestamp>.json.
    #[arg(long)]
    no_json: bool,
}

impl Args {
    /// The database of one part of the run: a file in `dir` (SQLite) or a
    /// fresh database named after `tag` (PostgreSQL).
    async fn database(&self, dir: &Path, tag: &str) -> anyhow::Result<Database> {
        match self.backend {
            Backend::Sqlite => Ok(Database {
                url: format!("sqlite://{}", dir.join("motcua.db").display()),
                pg: None,
            }),
            Backend::Postgres => {
                let admin = postgres_admin_url(self.postgres_url.as_deref());
                let name = format!("motcua_submit_bench_{}_{tag}", std::process::id());
                let url = create_postgres_db(&admin, &name, true).await?;
                Ok(Database {
                    url,
                    pg: Some((admin, name)),
                })
            }
        }
    }

    fn server_env(&self, db: &Database) -> Vec<(String, String)> {
        vec![
            ("MOTCUA_DURABILITY".into(), self.durability.as_str().into()),
            ("MOTCUA_DATABASE_URL".into(), db.url.clone()),
        ]
    }
}

/// A database made for the run; PostgreSQL ones are dropped by `drop_db`.
struct Database {
    url: String,
    pg: Option<(String, String)>,
}

impl Database {
    async fn drop_db(&self, keep: bool) {
        if let (Some((admin, name)), false) = (&self.pg, keep)
            && let Err(e) = drop_postgres_db(admin, name).await
        {
            eprintln!("warning: cannot drop database {name}: {e}");
        }
    }
}

// ---------------------------------------------------------------------------
// The submission: ten valid field values and one 100 KB PDF.
// ---------------------------------------------------------------------------

/// The form as the citizen fills it in (all valid for the bench procedure).
fn field_values() -> Map<String, Value> {
    let v = json!({
        "ward_full_name": "Nguyễn Minh Khôi",
        "ward_birth_date": "2015-03-14",
        "ward_national_id": "001215012345",
        "ward_residence": "Số 12 phố Hàng Bông, Phường Cửa Nam, Hà Nội",
        "guardian_relationship": "grandparent",
        "guardianship_reason": "Cha mẹ của cháu đều đã mất; ông nội nhận giám hộ theo Điều 52 Bộ luật Dân sự.",
        "guardian_residence": "Số 12 phố Hàng Bông, Phường Cửa Nam, Hà Nội",
        "guardian_phone": "0912 345 678",
        "guardian_email": "citizen@example.vn",
        "extract_copies": 2
    });
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// A 100 KB PDF-looking file whose bytes differ for every `n`, so that the
/// content-addressed object store writes a new file for every submission.
struct PdfFactory {
    base: Vec<u8>,
}

impl PdfFactory {
    const HEADER: &'static [u8] = b"%PDF-1.4\n";
    /// `%` + 20 digits + newline, right after the header.
    const COUNTER_LEN: usize = 22;

    fn new() -> Self {
        let mut base = Vec::with_capacity(PDF_BYTES);
        base.extend_from_slice(Self::HEADER);
        base.resize(Self::HEADER.len() + Self::COUNTER_LEN, b'\n');
        // xorshift64*: random-looking, incompressible content.
        let mut s: u64 = 0x9E37_79B9_7F4A_7C15;
        while base.len() < PDF_BYTES - 6 {
            s ^= s >> 12;
            s ^= s << 25;
            s ^= s >> 27;
            let r = s.wrapping_mul(0x2545_F491_4F6C_DD1D);
            base.extend_from_slice(&r.to_le_bytes());
        }
        base.truncate(PDF_BYTES - 6);
        base.extend_from_slice(b"%%EOF\n");
        Self { base }
    }

    fn make(&self, n: u64) -> Vec<u8> {
        let mut v = self.base.clone();
        let tag = format!("%{n:020}\n");
        let at = Self::HEADER.len();
        v[at..at + Self::COUNTER_LEN].copy_from_slice(tag.as_bytes());
        v
    }
}

async fn login(client: &reqwest::Client, base: &str) -> anyhow::Result<String> {
    let r = client
        .post(format!("{base}/api/v1/auth/token"))
        .json(&json!({ "username": USERNAME, "password": PASSWORD }))
        .send()
        .await
        .context("login request")?;
    let status = r.status();
    let body: Value = r.json().await.context("login response")?;
    if !status.is_success() {
        bail!("login as {USERNAME} failed: {status} {body}");
    }
    body["token"]
        .as_str()
        .map(str::to_string)
        .context("no token in the login response")
}

// ---------------------------------------------------------------------------
// Load generation.
// ---------------------------------------------------------------------------

struct Shared {
    client: reqwest::Client,
    url: String,
    token: String,
    application: String,
    pdf: PdfFactory,
    /// Numbers every file (warm-up and measured) so that none repeats.
    file_counter: AtomicU64,
}

#[derive(Default)]
struct PhaseResult {
    successes: u64,
    errors: u64,
    latencies: Vec<Duration>,
    codes: Vec<String>,
    error_samples: Vec<String>,
    elapsed: Duration,
}

async fn submit_once(sh: &Shared) -> Result<String, String> {
    let n = sh.file_counter.fetch_add(1, Ordering::Relaxed);
    let pdf = reqwest::multipart::Part::bytes(sh.pdf.make(n))
        .file_name(format!("to-khai-giam-ho-{n}.pdf"))
        .mime_str("application/pdf")
        .map_err(|e| e.to_string())?;
    let app = reqwest::multipart::Part::text(sh.application.clone())
        .mime_str("application/json")
        .map_err(|e| e.to_string())?;
    let form = reqwest::multipart::Form::new()
        .part("application", app)
        .part(format!("document:{DOCUMENT_ID}"), pdf);
    let r = sh
        .client
        .post(&sh.url)
        .bearer_auth(&sh.token)
        .multipart(form)
        .send()
        .await
        .map_err(|e| format!("transport error: {e}"))?;
    let status = r.status();
    let body = r
        .text()
        .await
        .map_err(|e| format!("{status}: cannot read body: {e}"))?;
    if status != reqwest::StatusCode::CREATED {
        return Err(format!("{status}: {body}"));
    }
    let v: Value =
        serde_json::from_str(&body).map_err(|e| format!("201 with bad JSON ({e}): {body}"))?;
    v["code"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("201 without code: {body}"))
}

/// `concurrency` workers submit until `limit` requests were started or the
/// deadline passed; requests in flight at the deadline are completed.
async fn run_phase(
    sh: Arc<Shared>,
    concurrency: usize,
    limit: u64,
    duration: Option<Duration>,
) -> PhaseResult {
    let started = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(Mutex::new(Vec::<String>::new()));
    let t0 = Instant::now();
    let deadline = duration.map(|d| t0 + d);
    let mut tasks = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let sh = sh.clone();
        let started = started.clone();
        let errors = errors.clone();
        tasks.push(tokio::spawn(async move {
            let mut r = PhaseResult::default();
            loop {
                if deadline.is_some_and(|d| Instant::now() >= d)
                    || started.fetch_add(1, Ordering::Relaxed) >= limit
                {
                    break;
                }
                let t = Instant::now();
                match submit_once(&sh).await {
                    Ok(code) => {
                        r.latencies.push(t.elapsed());
                        r.successes += 1;
                        r.codes.push(code);
                    }
                    Err(e) => {
                        r.errors += 1;
                        let mut es = errors.lock().await;
                        if es.len() < SHOWN_ERRORS {
                            es.push(e);
                        }
                    }
                }
            }
            r
        }));
    }
    let mut total = PhaseResult::default();
    for t in tasks {
        match t.await {
            Ok(r) => {
                total.successes += r.successes;
                total.errors += r.errors;
                total.latencies.extend(r.latencies);
                total.codes.extend(r.codes);
            }
            Err(e) => {
                total.errors += 1;
                total.error_samples.push(format!("worker panicked: {e}"));
            }
        }
    }
    total.elapsed = t0.elapsed();
    total.error_samples.extend(errors.lock().await.drain(..));
    total
}

struct ServerRun {
    warmup: PhaseResult,
    measured: PhaseResult,
    latency: Latency,
    cpu: Option<CpuUse>,
    stored_dossiers: u64,
    /// Outbox events not yet handled by the server's worker when it was killed.
    outbox_pending: u64,
    missing: Vec<String>,
    missing_files: u64,
    duplicate_codes: u64,
}

async fn server_run(
    args: &Args,
    bin: &Path,
    repo: &Path,
    data_dir: &Path,
) -> anyhow::Result<ServerRun> {
    let db = args.database(data_dir, "server").await?;
    let result = server_run_on(args, bin, repo, data_dir, &db).await;
    db.drop_db(args.keep_data).await;
    result
}

async fn server_run_on(
    args: &Args,
    bin: &Path,
    repo: &Path,
    data_dir: &Path,
    db: &Database,
) -> anyhow::Result<ServerRun> {
    let env = args.server_env(db);
    let procedures = Path::new(BENCH_DIR).join("procedures");
    run_motcua(
        bin,
        repo,
        data_dir,
        &env,
        &["procedures", "import", &procedures.display().to_string()],
    )?;
    let mut server = start_server(bin, repo, data_dir, &env).await?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .pool_max_idle_per_host(args.concurrency.max(1))
        .build()?;
    let token = login(&client, &server.base).await?;
    let application =
        json!({ "procedure_code": PROCEDURE_CODE, "unit_code": UNIT, "fields": field_values() })
            .to_string();
    let sh = Arc::new(Shared {
        client,
        url: format!("{}/api/v1/dossiers", server.base),
        token,
        application,
        pdf: PdfFactory::new(),
        file_counter: AtomicU64::new(0),
    });

    eprintln!("warm-up: {} submissions …", args.warmup);
    let warmup = run_phase(
        sh.clone(),
        args.concurrency.min(args.warmup.max(1) as usize),
        args.warmup,
        None,
    )
    .await;
    if warmup.successes == 0 && args.warmup > 0 {
        bail!(
            "every warm-up submission failed; first errors:\n  {}\nserver log:\n{}",
            warmup.error_samples.join("\n  "),
            server.log_tail()
        );
    }

    eprintln!(
        "measuring: {} clients for {} s or {} submissions …",
        args.concurrency, args.duration_secs, args.max_requests
    );
    let pid = server.pid().context("the server is gone")?;
    let probe = CpuProbe::start(pid);
    let measured = run_phase(
        sh.clone(),
        args.concurrency,
        args.max_requests,
        Some(Duration::from_secs(args.duration_secs)),
    )
    .await;
    let cpu = probe.stop();
    let lat = latency(measured.latencies.clone());

    // The durability check: kill the process abruptly, then look in the
    // database for every acknowledged dossier and its file.
    server.kill()?;
    eprintln!("server killed (SIGKILL); checking the database …");
    let opened = AnyStore::open(&db.url, args.durability.store()).await?;
    let store = opened.store();
    let stored_dossiers: u64 = store.count_by_status().await?.values().sum();
    let outbox_pending = store.pending_events().await?;
    let objects_root = data_dir.join("objects");
    let mut missing = Vec::new();
    let mut missing_files = 0;
    let mut seen = HashSet::new();
    let mut duplicate_codes = 0;
    for code in warmup.codes.iter().chain(&measured.codes) {
        if !seen.insert(code.as_str()) {
            duplicate_codes += 1;
            continue;
        }
        let parsed = DossierCode::parse(code)
            .map_err(|e| anyhow::anyhow!("bad dossier code {code}: {e}"))?;
        match store.dossier(&parsed).await? {
            None => missing.push(code.clone()),
            Some(d) => {
                for doc in &d.documents {
                    let p = objects_root.join(&doc.sha256[..2]).join(&doc.sha256);
                    if std::fs::metadata(&p).map(|m| m.len()).ok() != Some(doc.size) {
                        missing_files += 1;
                    }
                }
                if d.documents.is_empty() {
                    missing_files += 1;
                }
            }
        }
    }
    opened.close().await;
    Ok(ServerRun {
        warmup,
        measured,
        latency: lat,
        cpu,
        stored_dossiers,
        outbox_pending,
        missing,
        missing_files,
        duplicate_codes,
    })
}

// ---------------------------------------------------------------------------
// The ceiling: the same writes, in-process, one after the other.
// ---------------------------------------------------------------------------

struct CeilingRun {
    iterations: u64,
    elapsed: Duration,
    latency: Latency,
    /// Mean milliseconds in `objects.put` and in `create_dossier`.
    put_ms: f64,
    create_ms: f64,
    cpu: Option<CpuUse>,
    /// PostgreSQL only: the same rows inserted by pgbench.
    raw: Option<RawRun>,
}

/// pgbench inserting the rows of a submission (sequence counter, dossier,
/// document, audit record under the chain's lock, outbox event) in one
/// transaction each: the database's own ceiling, without motcua.
struct RawRun {
    clients: usize,
    transactions: u64,
    tps: f64,
    latency_avg_ms: f64,
}

/// SQL string literal.
fn lit(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

async fn pgbench_run(
    args: &Args,
    url: &str,
    dir: &Path,
    clients: usize,
    ctx: &CeilingCtx,
) -> anyhow::Result<RawRun> {
    let user_id = ctx.applicant.user_id.unwrap_or(0);
    let fields = serde_json::to_string(&ctx.fields)?;
    let lifecycle = serde_json::to_string(&Lifecycle::new())?;
    let day = motcua_store::vietnam_day(Utc::now())
        .format("%Y-%m-%d")
        .to_string();
    let now_ms = "(extract(epoch from clock_timestamp()) * 1000)::bigint";
    let script = format!(
        "BEGIN;\n\
INSERT INTO dossier_seq (agency_code, day, last) VALUES ({agency}, {day}, 1) ON CONFLICT (agency_code, day) DO UPDATE SET last = dossier_seq.last + 1 RETURNING last \\gset\n\
INSERT INTO dossiers (code, procedure_code, procedure_version, agency_code, unit_code, channel, applicant_user_id, applicant_name, applicant_national_id, applicant_phone, applicant_email, fields, submitted_at, status, holder, due_at, appointment_at, lifecycle, version, updated_at) VALUES ('RAW-' || :last, {proc}, {version}, {agency}, {unit}, 'online', {user_id}, {name}, {nid}, {phone}, {email}, {fields}, {now_ms}, 'newly_registered', 'officer', NULL, NULL, {lifecycle}, 1, {now_ms}) RETURNING id \\gset\n\
INSERT INTO dossier_documents (dossier_id, position, document_id, filename, content_type, size, sha256, uploaded_at, stage) VALUES (:id, 0, {doc}, 'to-khai-giam-ho.pdf', 'application/pdf', {size}, md5(random()::text) || md5(random()::text), {now_ms}, 'initial');\n\
SELECT pg_advisory_xact_lock({lock});\n\
INSERT INTO audit (seq, at, actor, actor_role, agency_code, action, dossier_code, from_status, to_status, note, payload_hash, prev_hash, hash) SELECT COALESCE(MAX(seq), 0) + 1, (extract(epoch from clock_timestamp()) * 1000000)::bigint, {actor}, 'citizen', {agency}, 'dossier.submit', 'RAW-' || :last, NULL, 'newly_registered', NULL, md5(random()::text) || md5(random()::text), md5(random()::text) || md5(random()::text), md5(random()::text) || md5(random()::text) FROM audit;\n\
INSERT INTO outbox (topic, payload, created_at) VALUES ('dossier.submitted', '{{\"code\":\"RAW-' || :last || '\",\"agency\":\"UB00073\",\"status\":\"newly_registered\"}}', {now_ms});\n\
COMMIT;\n",
        agency = lit(AGENCY),
        day = lit(&day),
        proc = lit(PROCEDURE_CODE),
        version = ctx.procedure.version,
        unit = lit(UNIT),
        name = lit(&ctx.applicant.full_name),
        nid = lit(&ctx.applicant.national_id),
        phone = lit(ctx.applicant.phone.as_deref().unwrap_or("")),
        email = lit(ctx.applicant.email.as_deref().unwrap_or("")),
        fields = lit(&fields),
        lifecycle = lit(&lifecycle),
        doc = lit(DOCUMENT_ID),
        size = PDF_BYTES,
        lock = motcua_store::sql::AUDIT_LOCK,
        actor = lit(&ctx.username),
    );
    let file = dir.join("pgbench-submission.sql");
    std::fs::write(&file, script)?;
    eprintln!(
        "ceiling (raw rows): pgbench, {clients} clients for {} s …",
        args.duration_secs
    );
    let out = Command::new("pgbench")
        .args([
            "-n",
            "-j",
            "2",
            "-c",
            &clients.to_string(),
            "-T",
            &args.duration_secs.to_string(),
            "-f",
        ])
        .arg(&file)
        .arg(url)
        .output()
        .context("cannot run pgbench (Debian package postgresql-client)")?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!(
            "pgbench failed:\n{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let field = |prefix: &str| -> Option<f64> {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix))
            .and_then(|r| r.split_whitespace().next())
            .and_then(|v| v.parse().ok())
    };
    Ok(RawRun {
        clients,
        transactions: field("number of transactions actually processed:").unwrap_or(0.0) as u64,
        tps: field("tps =").context("pgbench printed no tps")?,
        latency_avg_ms: field("latency average =").unwrap_or(0.0),
    })
}

fn system_audit(action: &str) -> AuditEntry {
    AuditEntry {
        at: Utc::now(),
        actor: "system".into(),
        actor_role: "system".into(),
        agency_code: None,
        action: action.into(),
        dossier_code: None,
        from_status: None,
        to_status: None,
        note: None,
        payload_hash: payload_hash(&json!({ "bench": action })),
    }
}

/// What every ceiling iteration needs.
struct CeilingCtx {
    opened: AnyStore,
    objects: LocalObjectStore,
    procedure: Procedure,
    agency: Agency,
    applicant: Applicant,
    username: String,
    fields: Map<String, Value>,
    pdf: PdfFactory,
}

impl CeilingCtx {
    async fn open(
        durability: Durability,
        url: &str,
        procedure: &Procedure,
        dir: &Path,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let opened = AnyStore::open(url, durability).await?;
        let store = opened.store();
        store.migrate().await?;
        let units = parse_units_csv(BUILTIN_UNITS_CSV)?;
        store.load_units(&units, system_audit("units.load")).await?;
        let agency = Agency {
            code: AgencyCode::parse(AGENCY)?,
            name_vi: "Ủy ban nhân dân Phường Cửa Nam".into(),
            name_en: "People's Committee of Cua Nam Ward".into(),
            kind: AgencyKind::CommunePeoplesCommittee,
            unit_code: UnitCode::parse(UNIT)?,
            address: "Bộ phận Một cửa, Phường Cửa Nam, Hà Nội".into(),
        };
        store
            .put_agency(&agency, system_audit("agency.put"))
            .await?;
        store
            .put_procedure(procedure, system_audit("procedure.import"))
            .await?;
        let user = store
            .create_user(
                &NewUser {
                    username: USERNAME.into(),
                    password_hash: "not-used-by-the-ceiling".into(),
                    full_name: "Nguyễn Văn An".into(),
                    national_id: Some("001090012345".into()),
                    phone: Some("0912345678".into()),
                    email: Some("citizen@example.vn".into()),
                    roles: vec![Role::Citizen],
                    agency_code: None,
                },
                system_audit("user.create"),
            )
            .await?;
        let objects = LocalObjectStore::open(dir.join("objects"))?;
        // The fields exactly as the server stores them (validated once, here).
        let fields = procedure
            .validate_fields(&field_values(), motcua_store::vietnam_day(Utc::now()))
            .map_err(|e| anyhow::anyhow!("the bench field values do not validate: {e:?}"))?;
        let applicant = Applicant {
            user_id: Some(user.id),
            full_name: user.full_name.clone(),
            national_id: user.national_id.clone().unwrap_or_default(),
            phone: user.phone.clone(),
            email: user.email.clone(),
        };
        Ok(Self {
            opened,
            objects,
            procedure: procedure.clone(),
            agency,
            applicant,
            username: user.username,
            fields,
            pdf: PdfFactory::new(),
        })
    }

    /// One submission's writes; returns the time in (object put, create_dossier).
    async fn iteration(&self, n: u64) -> anyhow::Result<(Duration, Duration)> {
        let t = Instant::now();
        let bytes = self.pdf.make(n);
        let size = bytes.len() as u64;
        let obj = self.objects.put(bytes).await?;
        let in_put = t.elapsed();
        let now = Utc::now();
        let documents = vec![StoredDocument {
            document_id: DOCUMENT_ID.into(),
            filename: format!("to-khai-giam-ho-{n}.pdf"),
            content_type: "application/pdf".into(),
            size,
            sha256: obj.sha256.clone(),
            uploaded_at: now,
            stage: "initial".into(),
        }];
        let audit = AuditEntry {
            at: now,
            actor: self.username.clone(),
            actor_role: Role::Citizen.as_str().into(),
            agency_code: Some(AGENCY.into()),
            action: "dossier.submit".into(),
            dossier_code: None,
            from_status: None,
            to_status: Some(Status::NewlyRegistered.as_str().into()),
            note: None,
            payload_hash: payload_hash(
                &json!({ "fields": self.fields, "documents": [obj.sha256] }),
            ),
        };
        let t_create = Instant::now();
        self.opened
            .store()
            .create_dossier(NewDossier {
                procedure_code: self.procedure.code.clone(),
                procedure_version: self.procedure.version,
                agency_code: self.agency.code.clone(),
                unit_code: self.agency.unit_code.clone(),
                channel: Channel::Online,
                applicant: self.applicant.clone(),
                fields: self.fields.clone(),
                documents,
                submitted_at: now,
                lifecycle: Lifecycle::new(),
                audit,
                event: "dossier.submitted".into(),
                access_code: motcua_store::new_access_code()?,
            })
            .await?;
        Ok((in_put, t_create.elapsed()))
    }
}

/// The ceiling with `workers` tasks: 1 is the ceiling proper (a minimal
/// sequential loop); more tasks show what the storage layer does when
/// submissions overlap, as they do in the server.
async fn ceiling_run(
    args: &Args,
    procedure: &Procedure,
    dir: &Path,
    workers: usize,
) -> anyhow::Result<CeilingRun> {
    let db = args.database(dir, &format!("ceiling{workers}")).await?;
    let result = ceiling_run_on(args, procedure, dir, workers, &db).await;
    db.drop_db(args.keep_data).await;
    result
}

async fn ceiling_run_on(
    args: &Args,
    procedure: &Procedure,
    dir: &Path,
    workers: usize,
    db: &Database,
) -> anyhow::Result<CeilingRun> {
    let ctx = Arc::new(CeilingCtx::open(args.durability.store(), &db.url, procedure, dir).await?);
    let counter = Arc::new(AtomicU64::new(0));
    let probe = CpuProbe::start(std::process::id());
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs(args.duration_secs);
    let max = args.max_requests;
    let mut tasks = Vec::with_capacity(workers);
    for _ in 0..workers.max(1) {
        let ctx = ctx.clone();
        let counter = counter.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let (mut in_put, mut in_create) = (Duration::ZERO, Duration::ZERO);
            while Instant::now() < deadline {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                if n >= max {
                    break;
                }
                let t = Instant::now();
                let (p, c) = ctx.iteration(n).await?;
                latencies.push(t.elapsed());
                in_put += p;
                in_create += c;
            }
            anyhow::Ok((latencies, in_put, in_create))
        }));
    }
    let mut latencies = Vec::new();
    let (mut in_put, mut in_create) = (Duration::ZERO, Duration::ZERO);
    for t in tasks {
        let (l, p, c) = t.await??;
        latencies.extend(l);
        in_put += p;
        in_create += c;
    }
    let elapsed = t0.elapsed();
    let cpu = probe.stop();
    let raw = if args.backend == Backend::Postgres && workers > 1 {
        Some(pgbench_run(args, &db.url, dir, workers, &ctx).await?)
    } else {
        None
    };
    ctx.opened.close().await;
    let n = latencies.len() as u64;
    let per = |d: Duration| {
        if n == 0 {
            0.0
        } else {
            d.as_secs_f64() * 1000.0 / n as f64
        }
    };
    Ok(CeilingRun {
        iterations: n,
        elapsed,
        latency: latency(latencies),
        put_ms: per(in_put),
        create_ms: per(in_create),
        cpu,
        raw,
    })
}

// ---------------------------------------------------------------------------
// Report.
// ---------------------------------------------------------------------------

impl CeilingRun {
    fn per_sec(&self) -> f64 {
        self.iterations as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

fn write_ceiling(w: &mut String, title: &str, c: &CeilingRun, nproc: usize) {
    use std::fmt::Write as _;
    let _ = writeln!(w, "{title}");
    let _ = writeln!(
        w,
        "  iterations:       {} in {:.2} s",
        c.iterations,
        c.elapsed.as_secs_f64()
    );
    let _ = writeln!(w, "  iterations/s:     {:.1}", c.per_sec());
    let _ = writeln!(
        w,
        "  per iteration ms: p50 {:.2}  p99 {:.2}  max {:.2}  (mean: object put {:.2} + create_dossier {:.2})",
        c.latency.p50, c.latency.p99, c.latency.max, c.put_ms, c.create_ms
    );
    if let Some(u) = c.cpu {
        let cap = nproc as f64 * c.elapsed.as_secs_f64();
        let pct = |x: f64| 100.0 * x / cap.max(1e-9);
        let _ = writeln!(
            w,
            "  CPU:              bench process {:.1} s ({:.0}%); other processes {:.1} s ({:.0}%){}; steal {:.1} s ({:.0}%)",
            u.subject,
            pct(u.subject),
            u.others,
            pct(u.others),
            if pct(u.others) > NOISY_PCT {
                "  <- NOISY"
            } else {
                ""
            },
            u.steal,
            pct(u.steal),
        );
    }
    if let Some(r) = &c.raw {
        let _ = writeln!(
            w,
            "  raw rows (pgbench, {} clients, same rows, no HTTP, no hashing, no file): {:.1} transactions/s, latency avg {:.2} ms ({} transactions)",
            r.clients, r.tps, r.latency_avg_ms, r.transactions
        );
    }
}

fn ceiling_json(c: &CeilingRun, workers: usize) -> Value {
    json!({
        "workers": workers,
        "iterations": c.iterations,
        "elapsed_secs": round(c.elapsed.as_secs_f64()),
        "iterations_per_sec": round(c.per_sec()),
        "latency_ms": latency_json(&c.latency),
        "mean_object_put_ms": round(c.put_ms),
        "mean_create_dossier_ms": round(c.create_ms),
        "cpu_secs": c.cpu.map(|u| round(u.subject)),
        "other_processes_cpu_secs": c.cpu.map(|u| round(u.others)),
        "steal_secs": c.cpu.map(|u| round(u.steal)),
        "raw_pgbench": c.raw.as_ref().map(|r| json!({
            "clients": r.clients, "transactions": r.transactions,
            "transactions_per_sec": round(r.tps), "latency_avg_ms": round(r.latency_avg_ms),
        })),
    })
}

fn pass(ok: bool) -> &'static str {
    if ok { "PASS" } else { "MISS" }
}

/// What the run knows before it starts anything.
struct Setup {
    repo: PathBuf,
    bin: PathBuf,
    procedure: Procedure,
    stamp: DateTime<Utc>,
    /// The throw-away data directories of this run.
    run_dir: PathBuf,
    machine: Machine,
    load_at_start: String,
}

/// The measurements of the run.
struct Results {
    srv: ServerRun,
    /// (sequential, concurrent); `None` with `--skip-ceiling`.
    ceiling: Option<(CeilingRun, CeilingRun)>,
}

/// What the report and the JSON give, computed from the measurements.
struct Figures {
    /// Length of the measured server run.
    secs: f64,
    per_sec: f64,
    /// Server / ceiling; `None` without a ceiling.
    ratio: Option<f64>,
    /// Submissions answered with `201`, warm-up included.
    acknowledged: u64,
    /// Every acknowledged dossier and its file are in the database.
    durable: bool,
    count_matches: bool,
    /// CPU seconds the machine had during the measured server run.
    cpu_capacity: f64,
}

impl Figures {
    fn of(r: &Results, m: &Machine) -> Self {
        let (srv, measured) = (&r.srv, &r.srv.measured);
        let secs = measured.elapsed.as_secs_f64();
        let per_sec = if secs > 0.0 {
            measured.successes as f64 / secs
        } else {
            0.0
        };
        // PostgreSQL: the ceiling is pgbench inserting the same rows; SQLite:
        // the sequential in-process loop.
        let ceiling_per_sec = r.ceiling.as_ref().map(|(seq, conc)| match &conc.raw {
            Some(r) => r.tps,
            None => seq.per_sec(),
        });
        let ratio = ceiling_per_sec.map(|c| if c > 0.0 { per_sec / c } else { 0.0 });
        let acknowledged = srv.warmup.successes + measured.successes;
        Self {
            secs,
            per_sec,
            ratio,
            acknowledged,
            durable: srv.missing.is_empty() && srv.missing_files == 0,
            count_matches: srv.stored_dossiers == acknowledged,
            cpu_capacity: m.nproc as f64 * secs,
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.concurrency == 0 {
        bail!("--concurrency must be at least 1");
    }
    let setup = prepare(&args)?;
    let result = run_all(
        &args,
        &setup.bin,
        &setup.repo,
        &setup.procedure,
        &setup.run_dir,
    )
    .await;
    if !args.keep_data {
        let _ = std::fs::remove_dir_all(&setup.run_dir);
    }
    let results = result?;
    let figures = Figures::of(&results, &setup.machine);
    let out = report(&args, &setup, &results, &figures);
    print!("{out}");
    std::io::stdout().flush()?;
    if !args.no_json {
        write_json(&args, &setup, &results, &figures, &out)?;
    }

    if !figures.durable || results.srv.duplicate_codes > 0 {
        bail!("an acknowledged submission is missing after the kill, or a code was given twice");
    }
    if results.srv.measured.successes == 0 {
        bail!("no submission succeeded");
    }
    Ok(())
}

/// Finds the binary, reads the bench procedure and makes the run's
/// directory.
fn prepare(args: &Args) -> anyhow::Result<Setup> {
    let bench_dir = Path::new(BENCH_DIR);
    let repo = bench_dir
        .parent()
        .context("bench crate has no parent directory")?
        .to_path_buf();
    let bin = find_motcua(args.motcua.as_deref(), &repo)?;
    let procedure = bench_procedure(bench_dir)?;

    let work_root = args.work_dir.clone().unwrap_or_else(std::env::temp_dir);
    let stamp = Utc::now();
    let run_dir = work_root.join(format!(
        "motcua-submit-bench-{}-{}",
        stamp.format("%Y%m%dT%H%M%SZ"),
        std::process::id()
    ));
    std::fs::create_dir_all(&run_dir)
        .with_context(|| format!("cannot create {}", run_dir.display()))?;
    let machine = machine(&run_dir);
    let load_at_start = load_average();
    if machine.work_fs.starts_with("tmpfs") || machine.work_fs.starts_with("ramfs") {
        eprintln!(
            "WARNING: {} is on {}: fsync costs nothing there; use --work-dir on a real disk",
            run_dir.display(),
            machine.work_fs
        );
    }
    eprintln!("motcua binary: {}", bin.display());
    eprintln!("data under:    {}", run_dir.display());
    Ok(Setup {
        repo,
        bin,
        procedure,
        stamp,
        run_dir,
        machine,
        load_at_start,
    })
}

/// The bench procedure, which must lint clean.
fn bench_procedure(bench_dir: &Path) -> anyhow::Result<Procedure> {
    let yaml_path = bench_dir.join(PROCEDURE_FILE);
    let yaml = std::fs::read_to_string(&yaml_path)
        .with_context(|| format!("cannot read {}", yaml_path.display()))?;
    parse_procedure(&yaml_path.display().to_string(), &yaml).map_err(|issues| {
        anyhow::anyhow!(
            "{} does not lint clean:\n{}",
            yaml_path.display(),
            issues
                .iter()
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        )
    })
}

/// The printed report.
fn report(args: &Args, s: &Setup, r: &Results, f: &Figures) -> String {
    let mut out = String::new();
    write_header(&mut out, args, s);
    write_server(&mut out, s, r, f);
    write_durability(&mut out, r, f);
    write_ceilings(&mut out, args, s, r, f);
    write_targets(&mut out, args, f);
    out
}

/// The machine, the database and the workload.
fn write_header(w: &mut String, args: &Args, s: &Setup) {
    use std::fmt::Write as _;
    let m = &s.machine;
    let _ = writeln!(w, "motcua submission benchmark");
    let _ = writeln!(w, "===========================");
    let _ = writeln!(
        w,
        "date:        {}",
        s.stamp.format("%Y-%m-%d %H:%M:%S UTC")
    );
    let _ = writeln!(w, "machine:     {}", m.summary());
    let _ = writeln!(w, "data dir:    {}", m.work_fs);
    let _ = writeln!(w, "load avg:    {} (at start)", s.load_at_start);
    match args.backend {
        Backend::Sqlite => {
            let _ = writeln!(
                w,
                "database:    SQLite, durability {} (WAL, synchronous={}; attachments fsynced before the commit)",
                args.durability.as_str(),
                args.durability.as_str().to_uppercase()
            );
        }
        Backend::Postgres => {
            let _ = writeln!(
                w,
                "database:    PostgreSQL on {} (server's synchronous_commit; attachments fsynced before the commit)",
                redact(&postgres_admin_url(args.postgres_url.as_deref()))
            );
        }
    }
    let _ = writeln!(
        w,
        "workload:    POST /api/v1/dossiers, 10 fields + one {} KB PDF (distinct bytes each), {} clients, {} s or {} requests, {} warm-up excluded",
        PDF_BYTES / 1024,
        args.concurrency,
        args.duration_secs,
        args.max_requests,
        args.warmup
    );
    let _ = writeln!(w);
}

/// The server run: successes, errors, throughput, latency and CPU.
fn write_server(w: &mut String, s: &Setup, r: &Results, f: &Figures) {
    use std::fmt::Write as _;
    let (srv, measured) = (&r.srv, &r.srv.measured);
    let _ = writeln!(w, "server (motcua serve, HTTP on loopback)");
    let _ = writeln!(w, "  successes (201):  {}", measured.successes);
    let _ = writeln!(
        w,
        "  errors:           {}",
        measured.errors + srv.warmup.errors
    );
    for e in srv
        .warmup
        .error_samples
        .iter()
        .chain(&measured.error_samples)
        .take(SHOWN_ERRORS)
    {
        let short: String = e.chars().take(400).collect();
        let _ = writeln!(w, "    - {short}");
    }
    let _ = writeln!(w, "  elapsed:          {:.2} s", f.secs);
    let _ = writeln!(w, "  submissions/s:    {:.1}", f.per_sec);
    let l = &srv.latency;
    let _ = writeln!(
        w,
        "  latency ms:       p50 {:.1}  p90 {:.1}  p99 {:.1}  max {:.1}  (mean {:.1})",
        l.p50, l.p90, l.p99, l.max, l.mean
    );
    if let Some(c) = srv.cpu {
        let pct = |x: f64| 100.0 * x / f.cpu_capacity.max(1e-9);
        let _ = writeln!(
            w,
            "  CPU:              server {:.1} s ({:.0}% of {} cores), {:.2} ms per submission; load generator {:.1} s ({:.0}%)",
            c.subject,
            pct(c.subject),
            s.machine.nproc,
            1000.0 * c.subject / (measured.successes.max(1) as f64),
            c.loadgen,
            pct(c.loadgen),
        );
        let _ = writeln!(
            w,
            "  other load:       other processes {:.1} s ({:.0}%){}; hypervisor steal {:.1} s ({:.0}%)",
            c.others,
            pct(c.others),
            if pct(c.others) > NOISY_PCT {
                "  <- NOISY: rerun on a quiet machine"
            } else {
                ""
            },
            c.steal,
            pct(c.steal),
        );
    }
}

/// The durability check after the kill, and the outbox.
fn write_durability(w: &mut String, r: &Results, f: &Figures) {
    use std::fmt::Write as _;
    let srv = &r.srv;
    let _ = writeln!(
        w,
        "  durability check: server killed with SIGKILL; {} dossiers in the database, {} acknowledged ({} warm-up + {} measured): {}",
        srv.stored_dossiers,
        f.acknowledged,
        srv.warmup.successes,
        srv.measured.successes,
        if f.count_matches {
            "equal"
        } else {
            "DIFFERENT"
        }
    );
    let _ = writeln!(
        w,
        "                    every acknowledged code present with its file: {}{}{}",
        if f.durable { "yes" } else { "NO" },
        if srv.missing.is_empty() {
            String::new()
        } else {
            format!(" ({} missing, e.g. {})", srv.missing.len(), srv.missing[0])
        },
        if srv.duplicate_codes > 0 {
            format!("; {} DUPLICATE codes acknowledged", srv.duplicate_codes)
        } else {
            String::new()
        }
    );
    let _ = writeln!(
        w,
        "  outbox:           {} of {} events still pending when the server was killed",
        srv.outbox_pending, srv.stored_dossiers
    );
    if srv.missing_files > 0 {
        let _ = writeln!(
            w,
            "                    {} attachment file(s) missing or truncated",
            srv.missing_files
        );
    }
    let _ = writeln!(w);
}

/// Both ceilings, or that they were skipped.
fn write_ceilings(w: &mut String, args: &Args, s: &Setup, r: &Results, f: &Figures) {
    use std::fmt::Write as _;
    let nproc = s.machine.nproc;
    match &r.ceiling {
        Some((seq, conc)) => {
            write_ceiling(
                w,
                "ceiling (in-process, sequential: object put + create_dossier, same durability)",
                seq,
                nproc,
            );
            let _ = writeln!(w);
            write_ceiling(
                w,
                &format!(
                    "for information: the same writes from {} concurrent tasks (what the storage layer sustains)",
                    args.concurrency
                ),
                conc,
                nproc,
            );
            let _ = writeln!(
                w,
                "  server / this:    {:.2}",
                f.per_sec / conc.per_sec().max(1e-9)
            );
        }
        None => {
            let _ = writeln!(w, "ceiling: skipped (--skip-ceiling)");
        }
    }
    let _ = writeln!(w);
}

/// The ratio to the ceiling and the targets.
fn write_targets(w: &mut String, args: &Args, f: &Figures) {
    use std::fmt::Write as _;
    let _ = writeln!(
        w,
        "ratio server/ceiling ({}): {}",
        if args.backend == Backend::Postgres {
            "pgbench raw rows"
        } else {
            "in-process sequential"
        },
        f.ratio
            .map(|r| format!("{r:.2}"))
            .unwrap_or_else(|| "n/a".into())
    );
    let _ = writeln!(w, "targets:");
    let _ = writeln!(
        w,
        "  >= {TARGET_PER_SEC:.0} submissions/s:      {:.1}  {}",
        f.per_sec,
        pass(f.per_sec >= TARGET_PER_SEC)
    );
    match f.ratio {
        Some(r) => {
            let _ = writeln!(
                w,
                "  >= {TARGET_RATIO} of the ceiling:       {r:.2}  {}",
                pass(r >= TARGET_RATIO)
            );
        }
        None => {
            let _ = writeln!(
                w,
                "  >= {TARGET_RATIO} of the ceiling:       n/a (ceiling skipped)"
            );
        }
    }
    let _ = writeln!(
        w,
        "  durable acknowledgements:    {}",
        if f.durable { "PASS" } else { "FAIL" }
    );
}

/// bench/results/submit-<timestamp>.json: the figures and the printed
/// report `out`.
fn write_json(args: &Args, s: &Setup, r: &Results, f: &Figures, out: &str) -> anyhow::Result<()> {
    let (m, srv, measured) = (&s.machine, &r.srv, &r.srv.measured);
    let json_out = json!({
        "date": s.stamp.to_rfc3339(),
        "load_average_at_start": s.load_at_start,
        "machine": { "nproc": m.nproc, "cpu_model": m.cpu_model, "kernel": m.kernel, "memory": m.memory, "data_dir_filesystem": m.work_fs },
        "motcua_binary": s.bin.display().to_string(),
        "backend": args.backend.as_str(),
        "durability": args.durability.as_str(),
        "workload": {
            "concurrency": args.concurrency, "duration_secs": args.duration_secs, "max_requests": args.max_requests,
            "warmup": args.warmup, "fields": 10, "pdf_bytes": PDF_BYTES, "procedure_code": PROCEDURE_CODE, "unit_code": UNIT,
        },
        "server": {
            "successes": measured.successes,
            "errors": measured.errors + srv.warmup.errors,
            "error_samples": srv.warmup.error_samples.iter().chain(&measured.error_samples).take(SHOWN_ERRORS).collect::<Vec<_>>(),
            "elapsed_secs": round(f.secs),
            "submissions_per_sec": round(f.per_sec),
            "latency_ms": latency_json(&srv.latency),
            "server_cpu_secs": srv.cpu.map(|c| round(c.subject)),
            "loadgen_cpu_secs": srv.cpu.map(|c| round(c.loadgen)),
            "other_processes_cpu_secs": srv.cpu.map(|c| round(c.others)),
            "steal_secs": srv.cpu.map(|c| round(c.steal)),
            "warmup_successes": srv.warmup.successes,
            "stored_dossiers_after_kill": srv.stored_dossiers,
            "outbox_pending_after_kill": srv.outbox_pending,
            "acknowledged": f.acknowledged,
            "count_matches": f.count_matches,
            "missing_acknowledged": srv.missing.len(),
            "missing_files": srv.missing_files,
            "duplicate_codes": srv.duplicate_codes,
        },
        "ceiling": r.ceiling.as_ref().map(|(c, _)| ceiling_json(c, 1)),
        "ceiling_concurrent": r.ceiling.as_ref().map(|(_, c)| ceiling_json(c, args.concurrency)),
        "ratio": f.ratio.map(|r| (r * 1000.0).round() / 1000.0),
        "targets": {
            "submissions_per_sec": { "target": TARGET_PER_SEC, "pass": f.per_sec >= TARGET_PER_SEC },
            "ratio": { "target": TARGET_RATIO, "pass": f.ratio.map(|r| r >= TARGET_RATIO) },
            "durable": f.durable,
        },
        "report": out,
    });
    let dir = Path::new(BENCH_DIR).join("results");
    std::fs::create_dir_all(&dir)?;
    let file = dir.join(format!("submit-{}.json", s.stamp.format("%Y%m%dT%H%M%SZ")));
    std::fs::write(&file, serde_json::to_string_pretty(&json_out)?)?;
    println!("\nwritten: {}", file.display());
    Ok(())
}

async fn run_all(
    args: &Args,
    bin: &Path,
    repo: &Path,
    procedure: &Procedure,
    run_dir: &Path,
) -> anyhow::Result<Results> {
    let server_dir = run_dir.join("server");
    std::fs::create_dir_all(&server_dir)?;
    let srv = server_run(args, bin, repo, &server_dir).await?;
    // The server's files are deleted only at the end: on ext4 without a
    // journal, inodes freed in the last minutes make every file creation
    // scan past them, which would slow the ceiling down.
    let ceiling = if args.skip_ceiling {
        None
    } else {
        eprintln!(
            "ceiling: in-process sequential writes for {} s …",
            args.duration_secs
        );
        let sequential = ceiling_run(args, procedure, &run_dir.join("ceiling"), 1).await?;
        eprintln!(
            "ceiling, for information: the same writes from {} tasks for {} s …",
            args.concurrency, args.duration_secs
        );
        let concurrent = ceiling_run(
            args,
            procedure,
            &run_dir.join("ceiling-concurrent"),
            args.concurrency,
        )
        .await?;
        Some((sequential, concurrent))
    };
    Ok(Results { srv, ceiling })
}

//! The `motcua` command line.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use motcua::{Config, demo};
use motcua_domain::AgencyCode;
use motcua_domain::dossier::Role;
use motcua_domain::ids::NationalId;
use motcua_store::NewUser;

#[derive(Parser)]
#[command(
    name = "motcua",
    version,
    about = "One-stop digital government platform"
)]
struct Cli {
    /// Configuration file (default: motcua.toml if present).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Directory for the database and attachments (default ./data).
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// Database URL: sqlite://path or postgres://user@host/db.
    #[arg(long, global = true)]
    database_url: Option<String>,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the portal, back office and API.
    Serve {
        /// Address to listen on (default 127.0.0.1:8080).
        #[arg(long)]
        listen: Option<String>,
        /// Address of the data exchange gateway (default 127.0.0.1:8081;
        /// an empty value disables it).
        #[arg(long)]
        exchange_listen: Option<String>,
        /// Seed demo agencies, accounts and procedures on first start, and
        /// start the demo population database provider behind the gateway.
        #[arg(long)]
        demo: bool,
    },
    /// The data exchange gateway's message log.
    Exchange {
        #[command(subcommand)]
        command: ExchangeCmd,
    },
    /// Apply database migrations.
    Migrate,
    /// Procedure definitions.
    Procedures {
        #[command(subcommand)]
        command: ProcCmd,
    },
    /// The tamper-evident audit chain.
    Audit {
        #[command(subcommand)]
        command: AuditCmd,
    },
    /// Accounts.
    Users {
        #[command(subcommand)]
        command: UserCmd,
    },
    /// Show the effective configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCmd,
    },
    /// Write a consistent copy of the database (SQLite VACUUM INTO).
    Backup {
        /// Target file; must not exist.
        out: PathBuf,
    },
    /// Delete attachments that no dossier refers to (older than an hour).
    Sweep,
    /// Rebuild the search terms of every dossier (e.g. after a rolling
    /// upgrade during which nodes of an older release took submissions).
    Reindex,
    /// Copy a whole installation to another database (e.g. a commune's
    /// SQLite to the province's PostgreSQL), verifying counts and the audit
    /// chain. Stop the nodes using the source first.
    MigrateData {
        /// Source database URL (sqlite://… or postgres://…).
        #[arg(long)]
        from: String,
        /// Target database URL; must be empty unless --force.
        #[arg(long)]
        to: String,
        /// Delete everything in a non-empty target before copying.
        #[arg(long)]
        force: bool,
    },
    /// Fill the database with synthetic dossiers (load tests, query plans).
    Generate {
        /// How many dossiers.
        #[arg(long)]
        dossiers: u64,
        /// Seed of the pseudo-random choices (same seed, same data).
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Dossiers per transaction.
        #[arg(long, default_value_t = 10_000)]
        batch: usize,
        /// Seed the demo agencies, accounts and procedures first.
        #[arg(long)]
        demo: bool,
    },
}

#[derive(Subcommand)]
enum ProcCmd {
    /// Check every procedure file in DIR; prints each problem with file and line.
    Lint { dir: PathBuf },
    /// Lint, then import every procedure in DIR (new versions only).
    Import { dir: PathBuf },
}

#[derive(Subcommand)]
enum AuditCmd {
    /// Verify the whole chain; exits non-zero naming the first broken record.
    Verify,
}

#[derive(Subcommand)]
enum ExchangeCmd {
    /// Write the live message log, or the records that started in
    /// [--from, --to), to a signed file that verifies on its own.
    Export {
        /// Target file; must not exist.
        #[arg(long)]
        out: PathBuf,
        /// RFC 3339 time, e.g. 2026-01-01T00:00:00+07:00.
        #[arg(long)]
        from: Option<String>,
        /// RFC 3339 time (exclusive).
        #[arg(long)]
        to: Option<String>,
    },
    /// Verify an exported or archived log file (or a live log directory)
    /// offline; exits non-zero naming the first broken or missing record.
    Verify {
        /// The file (or directory) to verify.
        #[arg(long)]
        log: PathBuf,
        /// Public key: 64 hex digits or a file holding them (default:
        /// exchange-signing.pub in the data directory).
        #[arg(long)]
        key: Option<String>,
    },
    /// Move the records that started before a time to a signed archive file
    /// and remove them from the live log. Stop `serve` first (or set
    /// [exchange] retention_days and let it archive daily).
    Archive {
        /// RFC 3339 time.
        #[arg(long)]
        before: String,
        /// Target file; must not exist.
        #[arg(long)]
        out: PathBuf,
    },
    /// Print the public key (hex) that verifies the log.
    PublicKey,
}

#[derive(Subcommand)]
enum UserCmd {
    /// Create an account. The password is read from MOTCUA_NEW_PASSWORD or --password.
    Create {
        #[arg(long)]
        username: String,
        #[arg(long)]
        full_name: String,
        /// Repeat for several roles: citizen, officer, specialist, leader,
        /// agency_admin, province_admin, ioc_viewer.
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
        /// Agency code for staff, e.g. UB00073.
        #[arg(long)]
        agency: Option<String>,
        #[arg(long)]
        national_id: Option<String>,
        #[arg(long, env = "MOTCUA_NEW_PASSWORD", hide_env_values = true)]
        password: String,
    },
}

#[derive(Subcommand)]
enum ConfigCmd {
    /// Print the configuration after defaults, file, environment and flags.
    Print,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(cfg: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if cfg.log_format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let mut cfg = Config::load(cli.config.as_deref()).context("configuration")?;
    if let Some(d) = cli.data_dir {
        cfg.data_dir = d;
    }
    if let Some(u) = cli.database_url {
        cfg.database_url = Some(u);
    }
    let cfg = &mut cfg;
    match cli.command {
        Cmd::Serve {
            listen,
            exchange_listen,
            demo,
        } => {
            if let Some(l) = listen {
                cfg.listen = l;
            }
            if let Some(l) = exchange_listen {
                cfg.exchange.listen = l;
            }
            serve(cfg, demo).await
        }
        Cmd::Exchange { command } => exchange_command(cfg, command).await,
        Cmd::Migrate => migrate(cfg).await,
        Cmd::Procedures {
            command: ProcCmd::Lint { dir },
        } => procedures_lint(&dir),
        Cmd::Procedures {
            command: ProcCmd::Import { dir },
        } => procedures_import(cfg, &dir).await,
        Cmd::Audit {
            command: AuditCmd::Verify,
        } => audit_verify(cfg).await,
        Cmd::Users { command } => users(cfg, command).await,
        Cmd::Config {
            command: ConfigCmd::Print,
        } => {
            println!("{}", toml::to_string_pretty(cfg)?);
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Backup { out } => backup(cfg, &out).await,
        Cmd::MigrateData { from, to, force } => migrate_data(cfg, &from, &to, force).await,
        Cmd::Generate {
            dossiers,
            seed,
            batch,
            demo,
        } => generate(cfg, dossiers, seed, batch, demo).await,
        Cmd::Sweep => sweep(cfg).await,
        Cmd::Reindex => reindex(cfg).await,
    }
}

/// Closes the database: SQLite checkpoints its WAL, PostgreSQL's pool ends.
async fn close(inst: motcua::Installation) {
    if let Some(s) = inst.sqlite {
        s.close().await;
    }
    if let Some(p) = inst.postgres {
        p.close().await;
    }
}

/// `serve`: the portal, the API and the exchange gateway until a signal.
async fn serve(cfg: &Config, with_demo: bool) -> anyhow::Result<ExitCode> {
    init_logging(cfg);
    let inst = motcua::open(cfg).await?;
    if with_demo && demo::seed(inst.store.as_ref(), cfg).await? {
        println!("Demo data seeded.");
    }
    let mut state = motcua::app_state(&inst, cfg);
    let gateway = motcua::exchange::open(cfg, inst.store.as_ref()).await?;
    let handle = motcua::exchange::handle(cfg, gateway.as_ref().map(|(g, _)| g.clone()));
    state.exchange = Some(handle.clone());
    state.portal = motcua::exchange::portal_client(cfg, with_demo)?;
    if with_demo && gateway.is_some() {
        let provider = motcua::population::start(&cfg.data_dir).await?;
        motcua::exchange::register_demo(&handle, inst.store.as_ref(), provider).await?;
    }
    motcua::spawn_workers(&state);
    motcua::audit::spawn_checkpoint_copier(inst.store.clone(), cfg.clone());
    motcua::pubsub::spawn_workers(
        inst.store.clone(),
        gateway.as_ref().map(|(g, _)| g.clone()),
        &cfg.pubsub,
    )?;
    motcua::exchange::spawn_workers(handle, inst.store.clone(), cfg);
    let listener = tokio::net::TcpListener::bind(&cfg.listen)
        .await
        .with_context(|| format!("cannot listen on {}", cfg.listen))?;
    let addr = listener.local_addr()?;
    println!("motcua is running at http://{addr}/  (API docs: http://{addr}/api/docs)");
    // One signal stops both listeners.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    let exchange_task = match gateway {
        Some((gw, l)) => {
            let gw_addr = l.local_addr()?;
            println!(
                "Exchange gateway at {}://{gw_addr}/r1/  (health: {}://{gw_addr}/healthz)",
                l.scheme(),
                l.scheme()
            );
            let pull = motcua_web::exchange::pubsub::pull_router(inst.store.clone(), gw.clone());
            Some(motcua::exchange::spawn_serve(
                gw,
                l,
                pull,
                stop_rx.clone(),
                cfg.exchange.threads(),
            )?)
        }
        None => {
            println!("Exchange gateway disabled ([exchange] listen is empty).");
            None
        }
    };
    if with_demo {
        print!("{}", demo::logins());
    }
    let served = motcua::serve(state, listener, motcua::stopped(stop_rx)).await;
    if let Some(t) = exchange_task {
        match t.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "exchange gateway"),
            Err(_) => tracing::warn!("exchange gateway stopped without a result"),
        }
    }
    served?;
    // Closed first, so that a refused copy (the chain no longer holds the
    // copied head) leaves the database shut cleanly.
    let copied = motcua::audit::copy_checkpoint(inst.store.as_ref(), cfg).await;
    close(inst).await;
    copied?;
    Ok(ExitCode::SUCCESS)
}

async fn migrate(cfg: &Config) -> anyhow::Result<ExitCode> {
    let inst = motcua::open(cfg).await?;
    println!(
        "Database at {} is up to date.",
        motcua_store_postgres::redact_url(&cfg.database_url())
    );
    drop(inst);
    Ok(ExitCode::SUCCESS)
}

fn procedures_lint(dir: &std::path::Path) -> anyhow::Result<ExitCode> {
    let (procs, issues) = motcua::read_procedures(dir)?;
    for i in &issues {
        println!("{i}");
    }
    if issues.is_empty() {
        println!("{} procedures, no problems.", procs.len());
        Ok(ExitCode::SUCCESS)
    } else {
        println!("{} problem(s).", issues.len());
        Ok(ExitCode::FAILURE)
    }
}

async fn procedures_import(cfg: &Config, dir: &std::path::Path) -> anyhow::Result<ExitCode> {
    let (procs, issues) = motcua::read_procedures(dir)?;
    if !issues.is_empty() {
        for i in &issues {
            println!("{i}");
        }
        println!("{} problem(s); nothing imported.", issues.len());
        return Ok(ExitCode::FAILURE);
    }
    let inst = motcua::open(cfg).await?;
    let (added, unchanged) = motcua::import_procedures(inst.store.as_ref(), &procs).await?;
    println!("{added} procedure version(s) added, {unchanged} unchanged.");
    motcua::audit::copy_checkpoint(inst.store.as_ref(), cfg).await?;
    Ok(ExitCode::SUCCESS)
}

async fn audit_verify(cfg: &Config) -> anyhow::Result<ExitCode> {
    let inst = motcua::open(cfg).await?;
    match motcua::audit::verify(inst.store.as_ref(), cfg).await? {
        motcua::audit::Verdict::Intact {
            records,
            anchored_at,
        } => {
            match anchored_at {
                Some(seq) => println!(
                    "Audit chain intact: {records} records verified, the head signed at record {seq}."
                ),
                None => println!("Audit chain intact: {records} records verified."),
            }
            Ok(ExitCode::SUCCESS)
        }
        motcua::audit::Verdict::Broken { at, reason } => {
            println!("AUDIT CHAIN BROKEN at {at}: {reason}");
            Ok(ExitCode::from(2))
        }
    }
}

async fn users(cfg: &Config, command: UserCmd) -> anyhow::Result<ExitCode> {
    let UserCmd::Create {
        username,
        full_name,
        roles,
        agency,
        national_id,
        password,
    } = command;
    let roles: Vec<Role> = roles
        .iter()
        .map(|r| Role::parse(r).with_context(|| format!("unknown role '{r}'")))
        .collect::<anyhow::Result<_>>()?;
    let agency = agency.map(|a| AgencyCode::parse(&a)).transpose()?;
    if roles.iter().any(|r| r.is_staff()) && agency.is_none() {
        anyhow::bail!("staff accounts need --agency");
    }
    let national_id = national_id
        .map(|n| NationalId::parse(&n))
        .transpose()?
        .map(|n| n.to_string());
    if password.chars().count() < 8 {
        anyhow::bail!("the password needs at least 8 characters");
    }
    let inst = motcua::open(cfg).await?;
    if let Some(a) = &agency
        && inst.store.agency(a).await?.is_none()
    {
        anyhow::bail!("no agency with code {a}");
    }
    let hash = motcua_commands::accounts::hash_password(&password).map_err(anyhow::Error::msg)?;
    let user = inst
        .store
        .create_user(
            &NewUser {
                username: username.clone(),
                password_hash: hash,
                full_name,
                national_id,
                phone: None,
                email: None,
                roles,
                agency_code: agency,
            },
            motcua::system_audit("user.create", &serde_json::json!({ "username": username })),
        )
        .await?;
    println!("Created user {} (id {}).", user.username, user.id);
    motcua::audit::copy_checkpoint(inst.store.as_ref(), cfg).await?;
    Ok(ExitCode::SUCCESS)
}

async fn backup(cfg: &Config, out: &std::path::Path) -> anyhow::Result<ExitCode> {
    if out.exists() {
        anyhow::bail!("{} already exists", out.display());
    }
    let inst = motcua::open(cfg).await?;
    let sqlite = inst.sqlite.context(
        "motcua backup copies the embedded SQLite database; back up PostgreSQL with pg_dump",
    )?;
    sqlite.backend().backup(&out.display().to_string()).await?;
    println!("Backup written to {}.", out.display());
    Ok(ExitCode::SUCCESS)
}

async fn migrate_data(cfg: &Config, from: &str, to: &str, force: bool) -> anyhow::Result<ExitCode> {
    use motcua::migrate_data::Bare;
    let key = motcua::audit::load_or_create_key(cfg)?;
    let source = Bare::open(from, None).await?;
    let target = Bare::open(to, Some(key)).await?;
    println!(
        "Copying {} -> {}",
        motcua_store_postgres::redact_url(from),
        motcua_store_postgres::redact_url(to)
    );
    let result = motcua::migrate_data::migrate_data(
        source.store().as_ref(),
        target.store().as_ref(),
        force,
        std::io::IsTerminal::is_terminal(&std::io::stderr()),
    )
    .await;
    source.close().await;
    target.close().await;
    let summary = result?;
    print!("{summary}");
    println!("Copy complete and verified.");
    Ok(ExitCode::SUCCESS)
}

async fn generate(
    cfg: &Config,
    dossiers: u64,
    seed: u64,
    batch: usize,
    with_demo: bool,
) -> anyhow::Result<ExitCode> {
    let inst = motcua::open(cfg).await?;
    if with_demo && demo::seed(inst.store.as_ref(), cfg).await? {
        println!("Demo data seeded.");
    }
    let report = motcua::generate::generate(
        inst.store.as_ref(),
        &motcua::generate::Options {
            dossiers,
            seed,
            batch,
            defer_indexes: dossiers >= motcua::generate::DEFER_INDEXES_FROM,
            progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
        },
    )
    .await?;
    println!(
        "Generated {} dossiers and {} audit records in {:.1} s: {:.0} dossiers/s, {:.0} rows/s ({} agencies created).",
        report.dossiers,
        report.audit_records,
        report.seconds,
        report.dossiers_per_second(),
        report.rows_per_second(),
        report.agencies_created
    );
    close(inst).await;
    Ok(ExitCode::SUCCESS)
}

async fn sweep(cfg: &Config) -> anyhow::Result<ExitCode> {
    let inst = motcua::open(cfg).await?;
    let n = motcua::sweep(
        inst.store.as_ref(),
        inst.objects.as_ref(),
        std::time::Duration::from_secs(3600),
    )
    .await?;
    println!("{n} orphaned file(s) removed.");
    Ok(ExitCode::SUCCESS)
}

async fn reindex(cfg: &Config) -> anyhow::Result<ExitCode> {
    let inst = motcua::open(cfg).await?;
    let t = std::time::Instant::now();
    // An empty list of deferred indexes: only the terms are rebuilt.
    if inst
        .store
        .meta(motcua_store::bulk::DEFERRED_INDEXES)
        .await?
        .is_none()
    {
        inst.store
            .set_meta(motcua_store::bulk::DEFERRED_INDEXES, "[]")
            .await?;
    }
    inst.store.bulk_restore_indexes().await?;
    println!(
        "Search terms of every dossier rebuilt in {:.1} s.",
        t.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}

fn rfc3339(s: &str) -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&chrono::Utc))
        .with_context(|| format!("'{s}' is not an RFC 3339 time (e.g. 2026-01-01T00:00:00+07:00)"))
}

async fn exchange_command(cfg: &Config, command: ExchangeCmd) -> anyhow::Result<ExitCode> {
    use motcua_exchange::log as xlog;
    match command {
        ExchangeCmd::Export { out, from, to } => {
            if out.exists() {
                anyhow::bail!("{} already exists", out.display());
            }
            let range = xlog::TimeRange {
                from: from.as_deref().map(rfc3339).transpose()?,
                to: to.as_deref().map(rfc3339).transpose()?,
            };
            let key = motcua::exchange::signing_key(cfg)?;
            let dir = cfg.exchange.log_dir(&cfg.data_dir);
            if !dir.is_dir() {
                anyhow::bail!("no exchange message log at {}", dir.display());
            }
            let s = tokio::task::spawn_blocking(move || xlog::export_dir(&dir, &key, range, &out))
                .await??;
            match (s.first_seq, s.last_seq) {
                (Some(a), Some(b)) => println!(
                    "Exported {} record(s), {a} to {b}, to {}.",
                    s.records,
                    s.file.display()
                ),
                _ => println!("Exported 0 records to {}.", s.file.display()),
            }
            Ok(ExitCode::SUCCESS)
        }
        ExchangeCmd::Verify { log, key } => {
            let key_src = key.unwrap_or_else(|| {
                motcua::exchange::default_public_key(cfg)
                    .display()
                    .to_string()
            });
            let key =
                xlog::read_public_key(&key_src).with_context(|| format!("public key {key_src}"))?;
            let result = tokio::task::spawn_blocking(move || {
                if log.is_dir() {
                    xlog::verify_dir(&log, &key)
                } else {
                    xlog::verify_file(&log, &key)
                }
            })
            .await?;
            match result {
                Ok(s) => {
                    let range = match (s.first_seq, s.last_seq) {
                        (Some(a), Some(b)) => format!(", records {a} to {b}"),
                        _ => String::new(),
                    };
                    println!(
                        "Exchange log intact: {} record(s){range} in {} signed batch(es), key {}.",
                        s.records, s.batches, s.key
                    );
                    if s.unsigned_tail > 0 {
                        println!(
                            "{} record(s) at the end are not signed yet (being written).",
                            s.unsigned_tail
                        );
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    println!("EXCHANGE LOG BROKEN at {e}");
                    Ok(ExitCode::from(2))
                }
            }
        }
        ExchangeCmd::Archive { before, out } => {
            if out.exists() {
                anyhow::bail!("{} already exists", out.display());
            }
            let before = rfc3339(&before)?;
            let lc = motcua::exchange::log_config(cfg);
            let log = motcua_exchange::MessageLog::open(&lc).with_context(|| {
                format!(
                    "cannot open the exchange log in {} (stop `motcua serve` first)",
                    lc.dir.display()
                )
            })?;
            let result = log.archive_before(before, &out).await;
            log.shutdown().await;
            let s = result?;
            if s.records == 0 {
                println!(
                    "Nothing started before {}; nothing archived.",
                    before.to_rfc3339()
                );
            } else {
                println!(
                    "Archived {} record(s), {} to {}, to {} and removed them from the live log.",
                    s.records,
                    s.first_seq.unwrap_or_default(),
                    s.last_seq.unwrap_or_default(),
                    s.file.display()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        ExchangeCmd::PublicKey => {
            println!("{}", motcua::exchange::public_key_hex(cfg)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

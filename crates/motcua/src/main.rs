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
        /// Seed demo agencies, accounts and procedures on first start.
        #[arg(long)]
        demo: bool,
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
    match cli.command {
        Cmd::Serve {
            listen,
            demo: with_demo,
        } => {
            if let Some(l) = listen {
                cfg.listen = l;
            }
            init_logging(&cfg);
            let inst = motcua::open(&cfg).await?;
            if with_demo && demo::seed(inst.store.as_ref(), &cfg).await? {
                println!("Demo data seeded.");
            }
            let state = motcua::app_state(&inst, &cfg);
            motcua::spawn_workers(&state);
            let listener = tokio::net::TcpListener::bind(&cfg.listen)
                .await
                .with_context(|| format!("cannot listen on {}", cfg.listen))?;
            let addr = listener.local_addr()?;
            println!("motcua is running at http://{addr}/  (API docs: http://{addr}/api/docs)");
            if with_demo {
                print!("{}", demo::logins());
            }
            motcua::serve(state, listener, shutdown_signal()).await?;
            if let Some(s) = inst.sqlite {
                s.close().await;
            }
            if let Some(p) = inst.postgres {
                p.close().await;
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Migrate => {
            let inst = motcua::open(&cfg).await?;
            println!(
                "Database at {} is up to date.",
                motcua_store_postgres::redact_url(&cfg.database_url())
            );
            drop(inst);
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Procedures {
            command: ProcCmd::Lint { dir },
        } => {
            let (procs, issues) = motcua::read_procedures(&dir)?;
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
        Cmd::Procedures {
            command: ProcCmd::Import { dir },
        } => {
            let (procs, issues) = motcua::read_procedures(&dir)?;
            if !issues.is_empty() {
                for i in &issues {
                    println!("{i}");
                }
                println!("{} problem(s); nothing imported.", issues.len());
                return Ok(ExitCode::FAILURE);
            }
            let inst = motcua::open(&cfg).await?;
            let (added, unchanged) = motcua::import_procedures(inst.store.as_ref(), &procs).await?;
            println!("{added} procedure version(s) added, {unchanged} unchanged.");
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Audit {
            command: AuditCmd::Verify,
        } => {
            let inst = motcua::open(&cfg).await?;
            match motcua::verify_audit(inst.store.as_ref()).await? {
                Ok(n) => {
                    println!("Audit chain intact: {n} records verified.");
                    Ok(ExitCode::SUCCESS)
                }
                Err(broken) => {
                    println!(
                        "AUDIT CHAIN BROKEN at record {}: {}",
                        broken.seq, broken.reason
                    );
                    Ok(ExitCode::from(2))
                }
            }
        }
        Cmd::Users {
            command:
                UserCmd::Create {
                    username,
                    full_name,
                    roles,
                    agency,
                    national_id,
                    password,
                },
        } => {
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
            let inst = motcua::open(&cfg).await?;
            if let Some(a) = &agency
                && inst.store.agency(a).await?.is_none()
            {
                anyhow::bail!("no agency with code {a}");
            }
            let hash = motcua_web::auth::hash_password(&password).map_err(anyhow::Error::msg)?;
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
                    motcua::system_audit(
                        "user.create",
                        &serde_json::json!({ "username": username }),
                    ),
                )
                .await?;
            println!("Created user {} (id {}).", user.username, user.id);
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Config {
            command: ConfigCmd::Print,
        } => {
            println!("{}", toml::to_string_pretty(&cfg)?);
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Backup { out } => {
            if out.exists() {
                anyhow::bail!("{} already exists", out.display());
            }
            let inst = motcua::open(&cfg).await?;
            let sqlite = inst.sqlite.context(
                "motcua backup copies the embedded SQLite database; back up PostgreSQL with pg_dump",
            )?;
            sqlite.backup(&out.display().to_string()).await?;
            println!("Backup written to {}.", out.display());
            Ok(ExitCode::SUCCESS)
        }
        Cmd::MigrateData { from, to, force } => {
            use motcua::migrate_data::{Bare, migrate_data};
            let source = Bare::open(&from).await?;
            let target = Bare::open(&to).await?;
            println!(
                "Copying {} -> {}",
                motcua_store_postgres::redact_url(&from),
                motcua_store_postgres::redact_url(&to)
            );
            let result = migrate_data(
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
        Cmd::Generate {
            dossiers,
            seed,
            batch,
            demo: with_demo,
        } => {
            let inst = motcua::open(&cfg).await?;
            if with_demo && demo::seed(inst.store.as_ref(), &cfg).await? {
                println!("Demo data seeded.");
            }
            let report = motcua::generate::generate(
                inst.store.as_ref(),
                &motcua::generate::Options {
                    dossiers,
                    seed,
                    batch,
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
            if let Some(s) = inst.sqlite {
                s.close().await;
            }
            if let Some(p) = inst.postgres {
                p.close().await;
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Sweep => {
            let inst = motcua::open(&cfg).await?;
            let n = motcua::sweep(
                inst.store.as_ref(),
                inst.objects.as_ref(),
                std::time::Duration::from_secs(3600),
            )
            .await?;
            println!("{n} orphaned file(s) removed.");
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

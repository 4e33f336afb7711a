//! Wiring of the motcua binary: configuration, store, demo data, server
//! and background work. `main.rs` is only the command line.
#![forbid(unsafe_code)]

pub mod audit;
pub mod config;
pub mod demo;
pub mod exchange;
pub mod exchange_tls;
pub mod generate;
pub mod migrate_data;
pub mod population;
pub mod pubsub;

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use chrono::Utc;
use motcua_domain::audit::{AuditEntry, ChainVerifier};
use motcua_domain::calendar::WorkingCalendar;
use motcua_domain::procedure::{LintIssue, Procedure, lint_set, parse_procedure};
use motcua_domain::units::{BUILTIN_UNITS_CSV, parse_units_csv};
use motcua_store::prelude::*;
use motcua_store::{ImportOutcome, ObjectStore, Store};
use motcua_store_postgres::{PostgresStore, redact_url};
use motcua_store_sqlite::{Durability, SqliteStore};
use motcua_web::{AppState, WebConfig};

pub use config::Config;

/// An opened installation: store, attachments and calendar.
pub struct Installation {
    pub store: Arc<dyn Store>,
    /// Set when the database is SQLite (backup, WAL checkpoint on close).
    pub sqlite: Option<SqliteStore>,
    /// Set when the database is PostgreSQL (closing the pool).
    pub postgres: Option<PostgresStore>,
    pub objects: Arc<dyn ObjectStore>,
    pub calendar: WorkingCalendar,
}

/// Opens the database named by the configuration (`sqlite://…`, or
/// `postgres://…` / `postgresql://…`), applies migrations and loads the
/// built-in administrative units into an empty database.
pub async fn open(cfg: &Config) -> anyhow::Result<Installation> {
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("cannot create data directory {}", cfg.data_dir.display()))?;
    let url = cfg.database_url();
    let durability = match cfg.durability.as_str() {
        "full" => Durability::Full,
        "normal" => Durability::Normal,
        other => bail!("durability must be 'full' or 'normal', not '{other}'"),
    };
    let units_audit = |n: usize| system_audit("units.load", &serde_json::json!({ "count": n }));
    let key = audit::load_or_create_key(cfg)?;
    let (store, sqlite, postgres): (Arc<dyn Store>, _, _) = if url.starts_with("sqlite:") {
        let sqlite = motcua_store_sqlite::open(&url, durability)
            .await
            .with_context(|| format!("cannot open {url}"))?
            .with_audit_key(key);
        sqlite.migrate().await?;
        let (provinces, _) = sqlite.count_units().await?;
        if provinces == 0 {
            let units = parse_units_csv(BUILTIN_UNITS_CSV)?;
            sqlite.load_units(&units, units_audit(units.len())).await?;
        }
        (Arc::new(sqlite.clone()), Some(sqlite), None)
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        // Durability is the server's (synchronous_commit); `durability`
        // applies to SQLite only.
        let pg = motcua_store_postgres::connect(&url)
            .await
            .with_context(|| format!("cannot connect to {}", redact_url(&url)))?
            .with_audit_key(key);
        // Safe when several nodes start at once: migrations and the first
        // load of the units each take an advisory lock.
        pg.migrate().await?;
        let (provinces, _) = pg.count_units().await?;
        if provinces == 0 {
            let units = parse_units_csv(BUILTIN_UNITS_CSV)?;
            pg.load_units_if_empty(&units, units_audit(units.len()))
                .await?;
        }
        (Arc::new(pg.clone()), None, Some(pg))
    } else {
        bail!(
            "unsupported database URL '{}': use sqlite://… or postgres://…",
            redact_url(&url)
        );
    };
    audit::adopt_head(store.as_ref(), cfg).await?;
    let objects = cfg.objects.open(&cfg.data_dir).await?;
    let calendar = WorkingCalendar::from_config(&cfg.calendar)
        .map_err(|e| anyhow::anyhow!("calendar configuration: {e}"))?;
    Ok(Installation {
        store,
        sqlite,
        postgres,
        objects,
        calendar,
    })
}

/// The application state. The exchange registry can be read and changed
/// through the admin API; the gateway itself is added by `serve` (see
/// [`exchange::open`]).
pub fn app_state(inst: &Installation, cfg: &Config) -> AppState {
    let mut state = AppState::new(
        inst.store.clone(),
        inst.objects.clone(),
        inst.calendar.clone(),
        cfg.calendar.clone(),
        WebConfig {
            token_ttl: chrono::Duration::hours(cfg.token_ttl_hours.max(1)),
            max_file_bytes: cfg.max_file_mb.max(1) * 1_000_000,
            trust_forwarded_for: cfg.trust_forwarded_for,
            ..WebConfig::default()
        },
    );
    state.exchange = Some(exchange::handle(cfg, None));
    state
}

/// Parsed procedures with their file names, and every lint problem found.
pub type ProcedureFiles = (Vec<(String, Procedure)>, Vec<LintIssue>);

/// Reads and lints every `*.yaml` procedure in `dir`.
pub fn read_procedures(dir: &Path) -> anyhow::Result<ProcedureFiles> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    let mut procs = Vec::new();
    let mut issues = Vec::new();
    for f in files {
        let name = f.display().to_string();
        let text = std::fs::read_to_string(&f).with_context(|| format!("cannot read {name}"))?;
        match parse_procedure(&name, &text) {
            Ok(p) => procs.push((name, p)),
            Err(mut es) => issues.append(&mut es),
        }
    }
    issues.extend(lint_set(&procs));
    Ok((procs, issues))
}

pub fn system_audit(action: &str, payload: &serde_json::Value) -> AuditEntry {
    AuditEntry::system(Utc::now(), action, payload)
}

/// Imports procedures after a clean lint; returns (added, unchanged).
pub async fn import_procedures(
    store: &dyn Store,
    procs: &[(String, Procedure)],
) -> anyhow::Result<(usize, usize)> {
    let (mut added, mut unchanged) = (0, 0);
    for (file, p) in procs {
        let entry = system_audit(
            "procedure.import",
            &serde_json::json!({ "code": p.code, "version": p.version }),
        );
        match store
            .put_procedure(p, entry)
            .await
            .with_context(|| format!("{file}: cannot import"))?
        {
            ImportOutcome::Added => added += 1,
            ImportOutcome::Unchanged => unchanged += 1,
        }
    }
    Ok((added, unchanged))
}

/// Verifies the whole audit chain; returns the number of records.
pub async fn verify_audit(
    store: &dyn Store,
) -> anyhow::Result<Result<u64, motcua_domain::audit::ChainBroken>> {
    let mut v = ChainVerifier::new();
    let mut after = 0;
    loop {
        let batch = store.audit_records(after, 5000).await?;
        let Some(last) = batch.last() else { break };
        after = last.seq;
        for r in &batch {
            if let Err(e) = v.push(r) {
                return Ok(Err(e));
            }
        }
    }
    Ok(Ok(v.count()))
}

/// Background work: outbox events are claimed, logged and published to
/// pub/sub ([`pubsub`]), orphaned attachments swept every hour, the
/// calendar overrides reloaded every minute.
pub fn spawn_workers(state: &AppState) {
    // Calendar changes made on other nodes: follow them within a minute.
    let st = state.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(60)).await;
            if let Err(e) = st.reload_calendar().await {
                tracing::warn!(error = ?e, "calendar reload");
            }
        }
    });
    let store = state.store.clone();
    tokio::spawn(async move {
        let types = motcua_exchange::pubsub::EventTypes::builtin();
        loop {
            match store.claim_events(100).await {
                Ok(events) if !events.is_empty() => {
                    for e in &events {
                        tracing::info!(topic = %e.topic, code = %e.payload["code"], "event");
                    }
                    // Published to pub/sub before the batch is completed
                    // (once per outbox id); on error the batch comes back
                    // when its lease runs out.
                    if let Err(err) = pubsub::publish_outbox(store.as_ref(), &types, &events).await
                    {
                        tracing::warn!(error = %err, "cannot publish events");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        continue;
                    }
                    // One transaction for the whole batch. Completion is
                    // idempotent: fewer than claimed means another worker
                    // completed some first (our lease ran out).
                    let ids: Vec<i64> = events.iter().map(|e| e.id).collect();
                    match store.complete_events(&ids).await {
                        Ok(n) if n as usize == ids.len() => {}
                        Ok(n) => tracing::warn!(
                            completed = n,
                            claimed = ids.len(),
                            "some events were completed by another worker"
                        ),
                        Err(err) => tracing::warn!(error = %err, "cannot complete events"),
                    }
                    continue;
                }
                Ok(_) => {}
                Err(err) => tracing::warn!(error = %err, "outbox"),
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
    let store = state.store.clone();
    let objects = state.objects.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            if let Err(e) = sweep(store.as_ref(), objects.as_ref(), Duration::from_secs(3600)).await
            {
                tracing::warn!(error = %e, "orphan sweep");
            }
        }
    });
}

/// Removes attachments no dossier refers to, older than `grace`.
pub async fn sweep(
    store: &dyn Store,
    objects: &dyn ObjectStore,
    grace: Duration,
) -> anyhow::Result<u64> {
    let referenced: HashSet<String> = store.referenced_objects().await?.into_iter().collect();
    Ok(objects.sweep_orphans(&referenced, grace).await?)
}

/// Resolves once `rx` says stop: the shutdown future of the listeners.
pub async fn stopped(mut rx: tokio::sync::watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

/// Serves on `listener` until `shutdown` resolves.
pub async fn serve(
    state: AppState,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    // The administrators' calendar overrides, before the first request.
    if let Err(e) = state.reload_calendar().await {
        bail!("cannot load the calendar overrides: {e:?}");
    }
    let app =
        motcua_web::router(state).into_make_service_with_connect_info::<motcua_web::ClientAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

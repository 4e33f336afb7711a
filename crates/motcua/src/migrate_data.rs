//! `motcua migrate-data --from URL --to URL [--force]`: copies a whole
//! installation between backends (SQLite → PostgreSQL when a commune moves
//! up to the province, or back), table by table, row by row with the same
//! keys: units, agencies, users (password hashes included), API tokens,
//! procedures (every version, enabled flags), dossier counters, dossiers
//! (same codes, lifecycle, documents' references), the audit chain (same
//! sequence numbers and hashes), the outbox and settings. Attachments'
//! bytes are not copied: they stay content-addressed under the data
//! directory, which the target installation uses as it is.
//!
//! Stop the nodes writing to the source first: the copy reads it page by
//! page, and the final check (counts per table and the audit chain of the
//! target) fails if the source changed meanwhile.

use std::sync::Arc;

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use motcua_store::prelude::*;
use motcua_store::{Cell, Store, TABLES, TableRows};
use motcua_store_postgres::{PostgresStore, redact_url};
use motcua_store_sqlite::{Durability, SqliteStore};

/// Rows per page read from the source and per transaction in the target.
pub const PAGE: u32 = 10_000;

/// A database opened for bulk copying: migrated, nothing loaded into it.
pub enum Bare {
    Sqlite(SqliteStore),
    Postgres(PostgresStore),
}

impl Bare {
    /// Opens `url` (`sqlite://…` or `postgres://…`) and applies migrations,
    /// without loading the built-in units (unlike [`crate::open`]). A
    /// target is given the installation's audit key, so that the head of
    /// the copied chain is signed.
    pub async fn open(url: &str, key: Option<ed25519_dalek::SigningKey>) -> anyhow::Result<Self> {
        if url.starts_with("sqlite:") {
            let s = motcua_store_sqlite::open(url, Durability::Full)
                .await
                .with_context(|| format!("cannot open {url}"))?;
            let s = match key {
                Some(k) => s.with_audit_key(k),
                None => s,
            };
            s.migrate().await?;
            Ok(Self::Sqlite(s))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let p = motcua_store_postgres::connect(url)
                .await
                .with_context(|| format!("cannot connect to {}", redact_url(url)))?;
            let p = match key {
                Some(k) => p.with_audit_key(k),
                None => p,
            };
            p.migrate().await?;
            Ok(Self::Postgres(p))
        } else {
            bail!(
                "unsupported database URL '{}': use sqlite://… or postgres://…",
                redact_url(url)
            )
        }
    }

    pub fn store(&self) -> Arc<dyn Store> {
        match self {
            Self::Sqlite(s) => Arc::new(s.clone()),
            Self::Postgres(p) => Arc::new(p.clone()),
        }
    }

    pub async fn close(&self) {
        match self {
            Self::Sqlite(s) => s.close().await,
            Self::Postgres(p) => p.close().await,
        }
    }
}

/// What was copied, per table: (table, rows in source, rows in target).
#[derive(Debug, Clone)]
pub struct Summary {
    pub tables: Vec<(&'static str, u64, u64)>,
    pub audit_records: u64,
    pub seconds: f64,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{:<20} {:>12} {:>12}", "table", "source", "target")?;
        for (t, s, d) in &self.tables {
            writeln!(
                f,
                "{t:<20} {s:>12} {d:>12}{}",
                if s == d { "" } else { "  MISMATCH" }
            )?;
        }
        writeln!(
            f,
            "audit chain verified in the target: {} records; {:.1} s",
            self.audit_records, self.seconds
        )
    }
}

/// Rows in every table.
async fn counts(store: &dyn Store) -> anyhow::Result<Vec<(&'static str, u64)>> {
    let mut out = Vec::new();
    for t in TABLES {
        out.push((t.name, store.bulk_count(t.name).await?));
    }
    Ok(out)
}

/// Copies everything from `from` into `to`. Refuses a target that holds
/// any row unless `force`, which first deletes everything in the target.
pub async fn migrate_data(
    from: &dyn Store,
    to: &dyn Store,
    force: bool,
    progress: bool,
) -> anyhow::Result<Summary> {
    let started = std::time::Instant::now();
    let existing: u64 = counts(to).await?.iter().map(|(_, n)| n).sum();
    if existing > 0 {
        if !force {
            bail!(
                "the target database is not empty ({existing} rows); nothing was written. \
                 Use --force to delete everything in the target and copy anyway"
            );
        }
        to.bulk_clear().await.context("clearing the target")?;
    }
    let source_counts = counts(from).await?;
    for (t, (name, total)) in TABLES.iter().zip(&source_counts) {
        let bar = if progress {
            ProgressBar::new(*total)
        } else {
            ProgressBar::hidden()
        };
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix:>18} [{bar:40}] {pos:>10}/{len:<10} {per_sec:>12} {elapsed}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_prefix(*name);
        let mut after: Option<Vec<Cell>> = None;
        loop {
            let rows = from
                .bulk_export(t.name, after.as_deref(), PAGE)
                .await
                .with_context(|| format!("reading {name}"))?;
            let Some(last) = rows.last() else { break };
            after = Some(last[..t.key].to_vec());
            let n = rows.len() as u64;
            to.bulk_import(&[TableRows {
                table: t.name,
                rows,
            }])
            .await
            .with_context(|| format!("writing {name}"))?;
            bar.inc(n);
        }
        bar.finish();
    }
    let target_counts = counts(to).await?;
    let tables: Vec<_> = source_counts
        .iter()
        .zip(&target_counts)
        .map(|((t, s), (_, d))| (*t, *s, *d))
        .collect();
    let mismatched: Vec<_> = tables
        .iter()
        .filter(|(_, s, d)| s != d)
        .map(|(t, s, d)| format!("{t}: {s} in the source, {d} in the target"))
        .collect();
    if !mismatched.is_empty() {
        bail!(
            "counts differ after the copy (was the source written meanwhile?): {}",
            mismatched.join("; ")
        );
    }
    let audit_records = match crate::verify_audit(to).await? {
        Ok(n) => n,
        Err(broken) => bail!(
            "the audit chain does not verify in the target at record {}: {}",
            broken.seq,
            broken.reason
        ),
    };
    Ok(Summary {
        tables,
        audit_records,
        seconds: started.elapsed().as_secs_f64(),
    })
}

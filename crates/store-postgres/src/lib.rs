//! PostgreSQL backend: several stateless `motcua serve` nodes on one
//! database behave as one system.
//!
//! Same tables, columns and semantics as the SQLite backend, and the same
//! statements: every command is the shared SQL of [`motcua_store::sql`]
//! (the conformance suite in `motcua_store::conformance` is the contract).
//! What keeps several nodes consistent, each inside the writing
//! transaction:
//!
//! - **Audit chain**: one chain for the installation. Every append first
//!   takes a transaction-level advisory lock
//!   ([`motcua_store::sql::AUDIT_LOCK`]), then reads the last record and
//!   links the new one after it. The lock is held until commit, so appends
//!   from every connection of every node are serialised; the primary key on
//!   `seq` would refuse a fork anyway. Row locks are always taken before the
//!   audit lock (it is the last thing a transaction locks), so no lock cycle
//!   is possible.
//! - **Dossier codes**: `INSERT … ON CONFLICT (agency_code, day) DO UPDATE
//!   SET last = dossier_seq.last + 1 RETURNING last` in the creating
//!   transaction. The row stays locked until commit: numbers are unique and
//!   gap-free; a rolled-back transaction gives its number back.
//! - **Dossier updates** are optimistic (`WHERE code = $1 AND version = $2`);
//!   under READ COMMITTED a concurrent second writer re-checks the version
//!   after the first commits and finds nothing to update: a conflict.
//! - **Outbox**: events are claimed with `FOR UPDATE SKIP LOCKED` and a
//!   lease (`claimed_until`, 60 s); an event whose worker died is handed out
//!   again once its lease runs out.
//! - **Migrations** run in one transaction under an advisory lock: two
//!   nodes starting at once apply each migration once.
//!
//! Durability is the server's (`synchronous_commit = on` by default: an
//! acknowledged commit is on the primary's disk).
//!
//! Connections are plain TCP (or a Unix socket): this build has no TLS to
//! the database, so run it on loopback or a trusted network. TLS
//! (`sslmode=require`) is future work; such a URL fails to connect.
#![forbid(unsafe_code)]

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use motcua_store::bulk::{self, ColKind, TABLES, TableRows};
use motcua_store::sql::{
    self, AUDIT_LOCK, AuditSigner, Backend, Conn, Dialect, SETUP_LOCK, SqlStore, Tx, db_error as db,
};
use motcua_store::{Dossier, NewDossier, StoreError, StoreResult};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::{Connection, Postgres, Transaction};

const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("schema.sql")),
    (2, include_str!("migration_2.sql")),
    (3, include_str!("migration_3.sql")),
    (4, include_str!("migration_4.sql")),
    (5, include_str!("migration_5.sql")),
    (6, include_str!("migration_6.sql")),
];

/// The migrations after which every dossier's search terms are written
/// again (3 brought the terms, 5 the runs of three words).
const TERMS_REBUILT_BY: [i64; 2] = [3, 5];

/// Advisory lock serialising migrations.
pub const MIGRATE_LOCK: i64 = 0x6d6f_7463_7561_0002;

/// Default size of the connection pool of one node.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 16;

/// The PostgreSQL store.
pub type PostgresStore = SqlStore<PostgresBackend>;

#[derive(Debug)]
pub struct PostgresBackend {
    pool: PgPool,
}

fn json_err(e: serde_json::Error) -> StoreError {
    StoreError::Backend(format!("corrupt JSON in database: {e}"))
}

/// `url` with any password replaced by `***`, for messages and logs.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

/// Connects a pool of [`DEFAULT_MAX_CONNECTIONS`] to `url`
/// (`postgres://user[:password]@host[:port]/database`). Does not migrate.
pub async fn connect(url: &str) -> StoreResult<PostgresStore> {
    let options = PgConnectOptions::from_str(url)
        .map_err(|e| StoreError::Invalid(format!("database URL {}: {e}", redact_url(url))))?;
    connect_with(options, DEFAULT_MAX_CONNECTIONS).await
}

pub async fn connect_with(
    options: PgConnectOptions,
    max_connections: u32,
) -> StoreResult<PostgresStore> {
    let options = options.application_name("motcua");
    // One direct connection first: an unreachable server or a refused
    // login is reported at once and by its real cause, not as a pool
    // timeout.
    PgConnection::connect_with(&options)
        .await
        .map_err(db)?
        .close()
        .await
        .map_err(db)?;
    let pool = PgPoolOptions::new()
        .max_connections(max_connections.max(1))
        .acquire_timeout(Duration::from_secs(30))
        .connect_with(options)
        .await
        .map_err(db)?;
    Ok(SqlStore::new(PostgresBackend { pool }))
}

impl PostgresBackend {
    /// The connection pool (for operators' tools and tests).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// Writes every dossier's search terms again: one pass over the table,
/// the terms sorted in memory and written without their key and foreign
/// key, which are then added back in one sort and one check instead of one
/// probe per row (migration 3 and the end of a bulk load).
async fn rebuild_terms(tx: &mut Transaction<'_, Postgres>) -> StoreResult<()> {
    sqlx::raw_sql("TRUNCATE dossier_terms; ALTER TABLE dossier_terms DROP CONSTRAINT IF EXISTS dossier_terms_pkey, DROP CONSTRAINT IF EXISTS dossier_terms_dossier_id_fkey")
        .execute(&mut **tx)
        .await
        .map_err(db)?;
    let mut builder = bulk::TermBuilder::default();
    let mut after = 0i64;
    loop {
        let batch: Vec<(i64, String, String)> = sqlx::query_as(
            "SELECT id, agency_code, applicant_name FROM dossiers WHERE id > $1 ORDER BY id LIMIT 50000",
        )
        .bind(after)
        .fetch_all(&mut **tx)
        .await
        .map_err(db)?;
        let Some(last) = batch.last() else { break };
        after = last.0;
        for (id, agency, name) in &batch {
            builder.add(agency, name, *id);
        }
    }
    for chunk in builder.sorted().chunks(50_000) {
        let (mut a, mut t, mut i) = (Vec::new(), Vec::new(), Vec::new());
        for (x, y, z) in chunk {
            a.push(x);
            t.push(y);
            i.push(z);
        }
        sqlx::query("INSERT INTO dossier_terms (agency_code, term, dossier_id) SELECT * FROM UNNEST($1::text[], $2::text[], $3::bigint[])")
            .bind(a)
            .bind(t)
            .bind(i)
            .execute(&mut **tx)
            .await
            .map_err(db)?;
    }
    sqlx::raw_sql("ALTER TABLE dossier_terms ADD CONSTRAINT dossier_terms_pkey PRIMARY KEY (agency_code, term, dossier_id), ADD CONSTRAINT dossier_terms_dossier_id_fkey FOREIGN KEY (dossier_id) REFERENCES dossiers(id)")
        .execute(&mut **tx)
        .await
        .map_err(db)?;
    Ok(())
}

#[async_trait]
impl Backend for PostgresBackend {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    async fn begin(&self) -> StoreResult<Box<dyn Tx>> {
        Ok(Box::new(self.pool.begin().await.map_err(db)?))
    }

    async fn read(&self) -> StoreResult<Box<dyn Conn>> {
        Ok(Box::new(self.pool.acquire().await.map_err(db)?))
    }

    async fn write(&self) -> StoreResult<Box<dyn Conn>> {
        Ok(Box::new(self.pool.acquire().await.map_err(db)?))
    }

    async fn migrate(&self) -> StoreResult<usize> {
        // One transaction under an advisory lock: a second node starting at
        // the same time waits, then finds everything applied.
        let mut tx = self.pool.begin().await.map_err(db)?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(MIGRATE_LOCK)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        let exists: bool =
            sqlx::query_scalar("SELECT to_regclass('schema_migrations') IS NOT NULL")
                .fetch_one(&mut *tx)
                .await
                .map_err(db)?;
        if !exists {
            sqlx::query("CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)")
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        let mut applied = 0;
        for (version, sql) in MIGRATIONS {
            let done: Option<i64> =
                sqlx::query_scalar("SELECT version FROM schema_migrations WHERE version = $1")
                    .bind(version)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db)?;
            if done.is_some() {
                continue;
            }
            sqlx::raw_sql(*sql).execute(&mut *tx).await.map_err(db)?;
            if TERMS_REBUILT_BY.contains(version) {
                rebuild_terms(&mut tx).await?;
            }
            sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)")
                .bind(version)
                .bind(Utc::now().timestamp_millis())
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            tracing::info!(version, "applied PostgreSQL migration");
            applied += 1;
        }
        tx.commit().await.map_err(db)?;
        // A bulk load that was interrupted left its indexes dropped.
        self.bulk_restore_indexes().await?;
        Ok(applied)
    }

    async fn create_dossier(&self, d: NewDossier, signer: AuditSigner) -> StoreResult<Dossier> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        let dossier = sql::insert_dossier(&mut tx, &signer, d).await?;
        tx.commit().await.map_err(db)?;
        Ok(dossier)
    }

    async fn bulk_import(&self, parts: &[TableRows], signer: AuditSigner) -> StoreResult<u64> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        let deferred: Option<String> = sqlx::query_scalar("SELECT value FROM meta WHERE key = $1")
            .bind(bulk::DEFERRED_INDEXES)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
        let deferred = deferred.is_some();
        let mut written = 0;
        for part in parts {
            let t = bulk::table(part.table)?;
            bulk::check_rows(t, &part.rows)?;
            if part.rows.is_empty() {
                continue;
            }
            if t.name == "audit" {
                // Same lock as every append: the chain cannot fork.
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(AUDIT_LOCK)
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?;
                let last: Option<(i64, String)> =
                    sqlx::query_as("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(db)?;
                bulk::check_chain_continues(last, &part.rows)?;
            }
            let names = sql::tables::quoted(&t.column_names());
            // One statement per 10,000 rows: one array parameter per column.
            let arrays: Vec<String> = t
                .columns
                .iter()
                .enumerate()
                .map(|(i, (_, kind))| match kind {
                    ColKind::Text => format!("${}::text[]", i + 1),
                    _ => format!("${}::int8[]", i + 1),
                })
                .collect();
            let selects: Vec<String> = t
                .columns
                .iter()
                .zip(&names)
                .map(|((_, kind), n)| match kind {
                    ColKind::Bool => format!("(u.{n} <> 0)"),
                    _ => format!("u.{n}"),
                })
                .collect();
            let conflict = if t.name == "dossier_seq" {
                " ON CONFLICT (agency_code, day) DO UPDATE SET last = GREATEST(dossier_seq.last, excluded.last)"
            } else {
                ""
            };
            let sql = format!(
                "INSERT INTO {} ({}) SELECT {} FROM UNNEST({}) AS u({}){conflict}",
                t.name,
                names.join(", "),
                selects.join(", "),
                arrays.join(", "),
                names.join(", ")
            );
            for chunk in part.rows.chunks(10_000) {
                let mut query = sqlx::query(sqlx::AssertSqlSafe(sql.clone()));
                for (i, (_, kind)) in t.columns.iter().enumerate() {
                    query = match kind {
                        ColKind::Text => query.bind(
                            chunk
                                .iter()
                                .map(|r| r[i].text().map(str::to_string))
                                .collect::<Vec<Option<String>>>(),
                        ),
                        _ => query.bind(
                            chunk
                                .iter()
                                .map(|r| r[i].int())
                                .collect::<Vec<Option<i64>>>(),
                        ),
                    };
                }
                query.execute(&mut *tx).await.map_err(db)?;
                written += chunk.len() as u64;
            }
            if t.name == "dossiers" && !deferred {
                sql::insert_terms(&mut tx, &bulk::dossier_term_sources(&part.rows)?).await?;
            }
            if t.identity {
                // Rows came with their ids: the next generated id follows them.
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT setval(pg_get_serial_sequence('{0}', 'id'), (SELECT MAX(id) FROM {0}))",
                    t.name
                )))
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            }
        }
        if parts
            .iter()
            .any(|p| p.table == "audit" && !p.rows.is_empty())
        {
            sql::checkpoint_head(&mut tx, &signer).await?;
        }
        tx.commit().await.map_err(db)?;
        Ok(written)
    }

    async fn bulk_clear(&self) -> StoreResult<()> {
        let mut names: Vec<&str> = TABLES.iter().map(|t| t.name).collect();
        names.push("dossier_terms");
        names.push("audit_head");
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "TRUNCATE {} RESTART IDENTITY",
            names.join(", ")
        )))
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn close(&self) {
        self.pool.close().await;
    }

    async fn bulk_defer_indexes(&self) -> StoreResult<usize> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(SETUP_LOCK)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        // Plain indexes only: primary keys and unique constraints stay.
        let indexes: Vec<(String, String)> = sqlx::query_as(
            "SELECT i.indexname::text, i.indexdef FROM pg_indexes i WHERE i.schemaname = current_schema() AND i.tablename IN ('dossiers', 'audit') AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname) ORDER BY 1",
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?;
        let had: Option<String> = sqlx::query_scalar("SELECT value FROM meta WHERE key = $1")
            .bind(bulk::DEFERRED_INDEXES)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
        let mut all: Vec<(String, String)> = match had {
            Some(v) => serde_json::from_str(&v).map_err(json_err)?,
            None => Vec::new(),
        };
        for (name, sql) in &indexes {
            sqlx::query(sqlx::AssertSqlSafe(format!("DROP INDEX \"{name}\"")))
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            all.push((name.clone(), sql.clone()));
        }
        // Unique and foreign-key constraints too (not the primary keys,
        // which grow in order): checked row by row, the code's unique index
        // takes random inserts and every row runs three foreign-key lookups;
        // added back, each is one sort or one join over the loaded table,
        // as `pg_restore` does.
        let constraints: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT c.conname::text, t.relname::text, format('ALTER TABLE %I ADD CONSTRAINT %I %s', t.relname, c.conname, pg_get_constraintdef(c.oid)) FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid WHERE t.relnamespace = current_schema()::regnamespace AND t.relname IN ('dossiers', 'audit') AND c.contype IN ('u', 'f') ORDER BY 1",
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?;
        for (name, table, sql) in &constraints {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "ALTER TABLE \"{table}\" DROP CONSTRAINT \"{name}\""
            )))
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            all.push((name.clone(), sql.clone()));
        }
        sqlx::query("INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value")
            .bind(bulk::DEFERRED_INDEXES)
            .bind(serde_json::to_string(&all).map_err(json_err)?)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(indexes.len() + constraints.len())
    }

    async fn bulk_restore_indexes(&self) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(SETUP_LOCK)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        let Some(v): Option<String> = sqlx::query_scalar("SELECT value FROM meta WHERE key = $1")
            .bind(bulk::DEFERRED_INDEXES)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?
        else {
            return Ok(());
        };
        let indexes: Vec<(String, String)> = serde_json::from_str(&v).map_err(json_err)?;
        sqlx::query("SET LOCAL maintenance_work_mem = '512MB'")
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        for (_, sql) in &indexes {
            sqlx::query(sqlx::AssertSqlSafe(bulk::create_if_missing(sql)))
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        rebuild_terms(&mut tx).await?;
        sqlx::query("DELETE FROM meta WHERE key = $1")
            .bind(bulk::DEFERRED_INDEXES)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        // Statistics for the planner and the visibility map for index-only
        // scans, as autovacuum would leave them some time after the load.
        sqlx::raw_sql("VACUUM (ANALYZE) dossiers, dossier_terms, audit")
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::too_many_lines)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    use motcua_domain::dossier::{Role, Status};
    use motcua_domain::{AgencyCode, DossierCode};
    use motcua_store::prelude::*;
    use motcua_store::{DossierQuery, DossierUpdate, Store};
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU32, Ordering};

    use motcua_domain::audit::verify_chain;
    use motcua_store::conformance::{self, entry, new_dossier};
    use sqlx::Executor;

    const URL_VAR: &str = "MOTCUA_TEST_POSTGRES_URL";

    /// The databases of one test, dropped when it goes out of scope.
    struct TestDbs {
        admin: PgConnectOptions,
        names: Mutex<Vec<String>>,
    }

    impl TestDbs {
        /// `None` (after saying so) when no server is configured.
        fn new(test: &str) -> Option<Self> {
            let url = std::env::var(URL_VAR).ok().filter(|u| !u.trim().is_empty());
            let Some(url) = url else {
                // Straight to stderr, past the test harness's capture, so
                // that a run without PostgreSQL says so in its log.
                use std::io::Write;
                let _ = writeln!(
                    std::io::stderr(),
                    "SKIPPED: {URL_VAR} is not set; PostgreSQL conformance tests not run ({test})"
                );
                return None;
            };
            let admin = PgConnectOptions::from_str(&url).expect("MOTCUA_TEST_POSTGRES_URL");
            Some(Self {
                admin,
                names: Mutex::new(Vec::new()),
            })
        }

        /// A new empty database; its connect options.
        async fn database(&self) -> PgConnectOptions {
            static N: AtomicU32 = AtomicU32::new(0);
            let name = format!(
                "motcua_test_{}_{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            );
            let mut c = PgConnection::connect_with(&self.admin)
                .await
                .expect("connect to MOTCUA_TEST_POSTGRES_URL");
            c.execute(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .await
            .expect("drop old test database");
            c.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .await
                .expect("create test database");
            let _ = c.close().await;
            self.names.lock().unwrap().push(name.clone());
            self.admin.clone().database(&name)
        }

        async fn store_on(&self, db: &PgConnectOptions) -> PostgresStore {
            connect_with(db.clone(), 8)
                .await
                .expect("connect")
                .with_audit_key(conformance::test_key())
        }

        /// A fresh, migrated store on its own database.
        async fn fresh(&self) -> PostgresStore {
            let s = self.store_on(&self.database().await).await;
            assert_eq!(s.migrate().await.expect("migrate"), MIGRATIONS.len());
            assert_eq!(
                s.migrate().await.expect("migrate again"),
                0,
                "migrations apply once"
            );
            s
        }
    }

    impl Drop for TestDbs {
        fn drop(&mut self) {
            let names = std::mem::take(&mut *self.names.lock().unwrap_or_else(|e| e.into_inner()));
            if names.is_empty() {
                return;
            }
            let admin = self.admin.clone();
            // Drop may run inside the test's runtime (or while unwinding):
            // use a runtime of our own on a thread of our own.
            let done = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(async move {
                    let mut c = PgConnection::connect_with(&admin).await?;
                    for name in names {
                        c.execute(sqlx::AssertSqlSafe(format!(
                            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                        )))
                        .await?;
                    }
                    c.close().await
                })
            })
            .join();
            if !matches!(done, Ok(Ok(()))) {
                eprintln!("warning: could not drop every test database: {done:?}");
            }
        }
    }

    fn seq_of(code: &DossierCode) -> u32 {
        code.as_str()
            .rsplit('-')
            .next()
            .and_then(|x| x.parse::<u32>().ok())
            .expect("sequence")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn conformance_suite() {
        let Some(dbs) = TestDbs::new("conformance_suite") else {
            return;
        };
        if let Err(e) = conformance::run_all(|| dbs.fresh()).await {
            panic!("{e}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn nodes_starting_together_migrate_once() {
        let Some(dbs) = TestDbs::new("nodes_starting_together_migrate_once") else {
            return;
        };
        let db = dbs.database().await;
        let (a, b, c) = (
            dbs.store_on(&db).await,
            dbs.store_on(&db).await,
            dbs.store_on(&db).await,
        );
        let (x, y, z) = tokio::join!(a.migrate(), b.migrate(), c.migrate());
        assert_eq!(
            x.expect("a") + y.expect("b") + z.expect("c"),
            MIGRATIONS.len(),
            "each migration applied exactly once"
        );
        assert_eq!(a.migrate().await.expect("again"), 0);
        // First start on several nodes: the built-in units load once.
        let units = motcua_domain::units::parse_units_csv(motcua_domain::units::BUILTIN_UNITS_CSV)
            .expect("units");
        let (x, y) = tokio::join!(
            a.load_units_if_empty(&units, entry("units.load", Utc::now())),
            b.load_units_if_empty(&units, entry("units.load", Utc::now()))
        );
        assert_eq!(
            [x.expect("a"), y.expect("b")]
                .iter()
                .filter(|l| **l)
                .count(),
            1,
            "units loaded by one node only"
        );
        let (provinces, communes) = a.count_units().await.expect("count");
        assert!(provinces > 0 && communes > 0);
        assert_eq!(a.audit_records(0, 100).await.expect("audit").len(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_creates_get_gap_free_codes() {
        let Some(dbs) = TestDbs::new("concurrent_creates_get_gap_free_codes") else {
            return;
        };
        let s = dbs.fresh().await;
        conformance::seed(&s).await.expect("seed");
        let now = Utc::now();
        let mut tasks = Vec::new();
        for i in 0..50 {
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                let d =
                    new_dossier("UB00073", "00073", None, &format!("N{i}"), now).expect("fixture");
                s.create_dossier(d).await.expect("create").code
            }));
        }
        let mut seqs = Vec::new();
        for t in tasks {
            seqs.push(seq_of(&t.await.expect("task")));
        }
        seqs.sort();
        assert_eq!(seqs, (1..=50).collect::<Vec<_>>());
        let chain = s.audit_records(0, 10_000).await.expect("audit");
        assert!(verify_chain(&chain).is_ok(), "chain verifies");
        assert_eq!(chain.len(), 5 + 50);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_create_gives_its_number_back() {
        let Some(dbs) = TestDbs::new("a_failed_create_gives_its_number_back") else {
            return;
        };
        let s = dbs.fresh().await;
        conformance::seed(&s).await.expect("seed");
        let now = Utc::now();
        let mut bad = new_dossier("UB00073", "00073", None, "X", now).expect("fixture");
        bad.procedure_version = 99; // no such procedure version: foreign key fails
        assert!(s.create_dossier(bad).await.is_err());
        let ok = s
            .create_dossier(new_dossier("UB00073", "00073", None, "Y", now).expect("fixture"))
            .await
            .expect("create");
        assert_eq!(seq_of(&ok.code), 1, "the rolled-back number is reused");
        assert!(verify_chain(&s.audit_records(0, 100).await.expect("audit")).is_ok());
    }

    /// Two pools on one database, as two nodes: one chain, unique gap-free
    /// codes, no update applied twice, every event claimed exactly once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_nodes_behave_as_one_system() {
        let Some(dbs) = TestDbs::new("two_nodes_behave_as_one_system") else {
            return;
        };
        let db = dbs.database().await;
        let a = dbs.store_on(&db).await;
        let b = dbs.store_on(&db).await;
        let (x, y) = tokio::join!(a.migrate(), b.migrate());
        assert_eq!(x.expect("a") + y.expect("b"), MIGRATIONS.len());
        conformance::seed(&a).await.expect("seed");
        let now = Utc::now();
        const N: usize = 40;
        let mut tasks = Vec::new();
        for i in 0..N {
            let node = if i % 2 == 0 { a.clone() } else { b.clone() };
            let agency = if i % 4 < 3 { "UB00073" } else { "UB00070" };
            let unit = agency[2..].to_string(); // UB00073 → unit 00073
            tasks.push(tokio::spawn(async move {
                let d = new_dossier(agency, &unit, None, &format!("N{i}"), now).expect("fixture");
                let created = node.create_dossier(d).await.expect("create");
                node.append_audit(entry("dossier.view_personal_data", Utc::now()))
                    .await
                    .expect("append");
                created
            }));
        }
        let mut created = Vec::new();
        for t in tasks {
            created.push(t.await.expect("task"));
        }
        for agency in ["UB00073", "UB00070"] {
            let mut seqs: Vec<u32> = created
                .iter()
                .filter(|d| d.agency_code.as_str() == agency)
                .map(|d| seq_of(&d.code))
                .collect();
            seqs.sort();
            let n = seqs.len() as u32;
            assert_eq!(seqs, (1..=n).collect::<Vec<_>>(), "{agency} gap-free");
        }

        // The same action sent to both nodes at once is applied once.
        let target = &created[0];
        let mut l = target.lifecycle.clone();
        l.status = Status::Accepted;
        let upd = DossierUpdate {
            code: target.code.clone(),
            expected_version: target.version,
            lifecycle: l,
            new_documents: vec![],
            audit: entry("dossier.accept", now),
            event: "dossier.accepted".into(),
            at: now,
        };
        let (x, y) = tokio::join!(a.update_dossier(upd.clone()), b.update_dossier(upd));
        let oks = [&x, &y].iter().filter(|r| r.is_ok()).count();
        let conflicts = [&x, &y]
            .iter()
            .filter(|r| matches!(r, Err(StoreError::Conflict)))
            .count();
        assert_eq!((oks, conflicts), (1, 1), "one applies, one conflicts");

        let chain = b.audit_records(0, 100_000).await.expect("audit");
        assert!(verify_chain(&chain).is_ok(), "one valid chain");
        assert_eq!(chain.len(), 5 + 2 * N + 1, "nothing lost, nothing doubled");
        let seqs: Vec<i64> = chain.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, (1..=chain.len() as i64).collect::<Vec<_>>());

        // Both nodes drain the outbox at once: every event exactly once.
        let drain = |s: PostgresStore| async move {
            let mut got = Vec::new();
            loop {
                let batch = s.claim_events(3).await.expect("claim");
                if batch.is_empty() {
                    break;
                }
                for e in batch {
                    s.complete_event(e.id).await.expect("complete");
                    got.push(e.id);
                }
            }
            got
        };
        let (ga, gb) = tokio::join!(drain(a.clone()), drain(b.clone()));
        let all: Vec<i64> = ga.iter().chain(gb.iter()).copied().collect();
        let unique: BTreeSet<i64> = all.iter().copied().collect();
        assert_eq!(all.len(), unique.len(), "no event claimed twice");
        assert_eq!(all.len(), N + 1, "every event claimed");
        assert_eq!(a.pending_events().await.expect("pending"), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_expired_lease_is_claimed_again() {
        let Some(dbs) = TestDbs::new("an_expired_lease_is_claimed_again") else {
            return;
        };
        let s = dbs.fresh().await;
        conformance::seed(&s).await.expect("seed");
        s.create_dossier(new_dossier("UB00073", "00073", None, "A", Utc::now()).expect("f"))
            .await
            .expect("create");
        let first = s.claim_events(10).await.expect("claim");
        assert_eq!(first.len(), 1);
        assert!(s.claim_events(10).await.expect("claim").is_empty());
        // The worker died; its lease runs out.
        sqlx::query("UPDATE outbox SET claimed_until = $1")
            .bind(Utc::now().timestamp_millis() - 1)
            .execute(s.backend().pool())
            .await
            .expect("expire");
        let again = s.claim_events(10).await.expect("claim");
        assert_eq!(again, first);
    }

    /// Searches, lists and orders give the same answers as on SQLite.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn same_answers_as_sqlite() {
        let Some(dbs) = TestDbs::new("same_answers_as_sqlite") else {
            return;
        };
        let pg = dbs.fresh().await;
        let dir = std::env::temp_dir().join(format!("motcua-pg-diff-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let lite = motcua_store_sqlite::open(
            &format!("sqlite://{}/t.db", dir.display()),
            motcua_store_sqlite::Durability::Normal,
        )
        .await
        .expect("sqlite");
        lite.migrate().await.expect("migrate");
        let stores: [&dyn Store; 2] = [&lite, &pg];
        let t = Utc::now();
        let names = [
            "Nguyễn Văn An",
            "Trần Thị Bình",
            "Lê 100%_Cường",
            "ĐẶNG THỊ HOA",
            "back\\slash",
            "Nguye\u{0302}\u{0303}n Decomposed",
            "an ninh",
        ];
        for s in stores {
            let uid = conformance::seed(s).await.expect("seed");
            for (i, n) in names.iter().enumerate() {
                let user = (i % 2 == 0).then_some(uid);
                s.create_dossier(new_dossier("UB00073", "00073", user, n, t).expect("fixture"))
                    .await
                    .expect("create");
            }
        }
        let queries = [
            "thị bình",
            "THỊ",
            "Thị",
            "trần",
            "TRẦN",
            "đặng",
            "Đặng",
            "ĐẶNG",
            "%",
            "_",
            "100%",
            "%_",
            "\\",
            "\\s",
            "nguyen",
            "Nguye\u{0302}\u{0303}n",
            "Nguyễn",
            "AN",
            "an",
            "001090012345",
            "ub00073-",
        ];
        let agency = Some(AgencyCode::parse("UB00073").expect("code"));
        let first = &pg
            .find_dossiers(&DossierQuery {
                limit: 1,
                ..Default::default()
            })
            .await
            .expect("first")[0];
        let by_code = first.code.as_str().to_ascii_lowercase();
        for text in queries.iter().copied().chain([by_code.as_str()]) {
            let q = DossierQuery {
                agency: agency.clone(),
                text: Some(text.to_string()),
                limit: 100,
                ..Default::default()
            };
            let mut answers = Vec::new();
            for s in stores {
                let mut codes: Vec<String> = s
                    .find_dossiers(&q)
                    .await
                    .expect("find")
                    .into_iter()
                    .map(|d| d.code.as_str().to_string())
                    .collect();
                codes.sort();
                answers.push(codes);
            }
            assert_eq!(
                answers[0], answers[1],
                "search {text:?}: SQLite vs PostgreSQL"
            );
            // Whole words, diacritics and case ignored, on both backends.
            let expected = match text {
                "thị bình" | "trần" | "TRẦN" | "đặng" | "Đặng" | "ĐẶNG" | "100%" => {
                    Some(1)
                }
                "THỊ" | "Thị" | "nguyen" | "Nguyễn" | "Nguye\u{0302}\u{0303}n" | "an" | "AN" => {
                    Some(2)
                }
                "%" | "_" | "%_" | "\\" | "\\s" | "ub00073-" => Some(0),
                "001090012345" => Some(names.len()),
                _ => None,
            };
            if let Some(n) = expected {
                assert_eq!(answers[1].len(), n, "search {text:?}");
            }
        }
        // My dossiers and the officer's queue: the same dossiers.
        let mut lists = Vec::new();
        for s in stores {
            let uid = s.user_by_name("citizen").await.expect("u").expect("u").id;
            let mut row = Vec::new();
            for q in [
                DossierQuery {
                    applicant_user_id: Some(uid),
                    limit: 100,
                    ..Default::default()
                },
                DossierQuery {
                    agency: agency.clone(),
                    holders: vec![Role::Officer],
                    statuses: vec![Status::NewlyRegistered],
                    limit: 100,
                    ..Default::default()
                },
            ] {
                let mut codes: Vec<String> = s
                    .find_dossiers(&q)
                    .await
                    .expect("list")
                    .into_iter()
                    .map(|d| d.code.as_str().to_string())
                    .collect();
                codes.sort();
                row.push(codes);
            }
            lists.push(row);
        }
        assert_eq!(lists[0], lists[1], "lists: SQLite vs PostgreSQL");
        assert_eq!(lists[1][0].len(), 4, "my dossiers");
        assert_eq!(lists[1][1].len(), names.len(), "officer queue");
        let la: Vec<_> = lite.agencies().await.expect("a");
        let pa: Vec<_> = pg.agencies().await.expect("a");
        assert_eq!(la, pa, "agencies in the same order");
        assert_eq!(
            lite.count_units().await.expect("c"),
            pg.count_units().await.expect("c")
        );
        assert_eq!(
            lite.count_by_status().await.expect("c"),
            pg.count_by_status().await.expect("c")
        );
        let lp: Vec<_> = lite
            .current_procedures()
            .await
            .expect("p")
            .into_iter()
            .map(|p| p.definition)
            .collect();
        let pp: Vec<_> = pg
            .current_procedures()
            .await
            .expect("p")
            .into_iter()
            .map(|p| p.definition)
            .collect();
        assert_eq!(lp, pp, "procedures round-trip alike");
        lite.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// PostgreSQL text cannot hold U+0000; the store says so as `Invalid`
    /// (not as a storage failure). SQLite stores it: see the crate report.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn nul_in_text_is_invalid() {
        let Some(dbs) = TestDbs::new("nul_in_text_is_invalid") else {
            return;
        };
        let s = dbs.fresh().await;
        let r = s.set_meta("k", "a\u{0}b").await;
        assert!(matches!(r, Err(StoreError::Invalid(_))), "{r:?}");
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://u:secret@h:5432/db?x=1"),
            "postgres://u:***@h:5432/db?x=1"
        );
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("postgresql://h/db"), "postgresql://h/db");
    }
}

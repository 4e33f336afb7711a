//! Embedded SQLite backend (WAL).
//!
//! Durability: `journal_mode=WAL` with `synchronous=FULL` by default — every
//! commit is synced to disk before it returns, so an acknowledged write
//! survives a process kill and a power loss. `synchronous=NORMAL` (option)
//! survives a process kill but may lose the last commits on power loss.
//!
//! Writes go through a pool of one connection, so transactions never fight
//! for the write lock; reads use a separate pool and see committed data.
//! Every statement is the shared SQL of [`motcua_store::sql`]; this crate
//! holds only what is SQLite's own: the pools, the group commit of new
//! dossiers, migrations and bulk loads.
#![forbid(unsafe_code)]

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use motcua_store::bulk::{self, Cell, TABLES, TableRows};
use motcua_store::sql::{self, AuditSigner, Backend, Conn, Dialect, SqlStore, Tx, db_error as db};
use motcua_store::{Dossier, NewDossier, StoreError, StoreResult};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Sqlite, Transaction};
use tokio::sync::{mpsc, oneshot};

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

/// The migrations that rebuild a table (5: the dossier code's uniqueness
/// as a named index), run with foreign keys off.
const TABLES_REBUILT_BY: [i64; 1] = [5];

/// How commits reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// `synchronous=FULL`: survives power loss.
    Full,
    /// `synchronous=NORMAL`: survives a process crash, not a power loss.
    Normal,
}

/// A submission waiting for the group commit, with where to answer.
type Pending = (
    NewDossier,
    AuditSigner,
    oneshot::Sender<StoreResult<Dossier>>,
);

/// Most submissions written in one transaction.
const GROUP_COMMIT_MAX: usize = 64;

/// The SQLite store.
pub type SqliteStore = SqlStore<SqliteBackend>;

#[derive(Debug)]
pub struct SqliteBackend {
    write: SqlitePool,
    read: SqlitePool,
    /// New dossiers go through one task that writes every submission
    /// waiting at that moment in one transaction (group commit): one sync
    /// to disk for many acknowledgements, each answered only after it.
    submissions: mpsc::Sender<Pending>,
}

/// Opens (creating if missing) the database at `url` (`sqlite://path`).
pub async fn open(url: &str, durability: Durability) -> StoreResult<SqliteStore> {
    let base = SqliteConnectOptions::from_str(url)
        .map_err(db)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(match durability {
            Durability::Full => SqliteSynchronous::Full,
            Durability::Normal => SqliteSynchronous::Normal,
        })
        .busy_timeout(Duration::from_secs(10))
        .foreign_keys(true);
    let write = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(base.clone())
        .await
        .map_err(db)?;
    let read = SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(base.read_only(true))
        .await
        .map_err(db)?;
    let (submissions, queue) = mpsc::channel(4 * GROUP_COMMIT_MAX);
    tokio::spawn(group_commit(write.clone(), queue));
    Ok(SqlStore::new(SqliteBackend {
        write,
        read,
        submissions,
    }))
}

impl SqliteBackend {
    /// Writes a consistent copy of the database to `path` (`VACUUM INTO`).
    pub async fn backup(&self, path: &str) -> StoreResult<()> {
        sqlx::query("VACUUM INTO ?")
            .bind(path)
            .execute(&self.write)
            .await
            .map_err(db)?;
        Ok(())
    }

    /// Applies one migration in its own transaction, unless it was.
    async fn migrate_one(&self, version: i64, sql: &str) -> StoreResult<bool> {
        let rebuilds = TABLES_REBUILT_BY.contains(&version);
        let mut conn = self.write.acquire().await.map_err(db)?;
        if rebuilds {
            // SQLite's procedure for changing a table: foreign keys off
            // (only outside a transaction), rebuild, check, on. The
            // connection is not given back with them off, whatever happens.
            conn.close_on_drop();
            sqlx::query("PRAGMA foreign_keys = OFF")
                .execute(&mut *conn)
                .await
                .map_err(db)?;
        }
        let mut tx = sqlx::Connection::begin(&mut *conn).await.map_err(db)?;
        let done: Option<i64> =
            sqlx::query_scalar("SELECT version FROM schema_migrations WHERE version = ?")
                .bind(version)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db)?;
        if done.is_some() {
            return Ok(false);
        }
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        if TERMS_REBUILT_BY.contains(&version) {
            rebuild_terms(&mut tx).await?;
        }
        if rebuilds {
            let broken: Vec<SqliteRow> = sqlx::query("PRAGMA foreign_key_check")
                .fetch_all(&mut *tx)
                .await
                .map_err(db)?;
            if !broken.is_empty() {
                return Err(StoreError::Backend(format!(
                    "migration {version}: {} row(s) refer to missing rows after the rebuild; nothing was changed",
                    broken.len()
                )));
            }
        }
        sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)")
            .bind(version)
            .bind(Utc::now().timestamp_millis())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(true)
    }
}

/// The group-commit loop: takes every submission waiting, writes them in
/// one transaction (each in its own savepoint, so one bad submission does
/// not fail the others), commits once, then answers each.
async fn group_commit(pool: SqlitePool, mut queue: mpsc::Receiver<Pending>) {
    while let Some(first) = queue.recv().await {
        let mut batch = vec![first];
        while batch.len() < GROUP_COMMIT_MAX {
            match queue.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        write_batch(&pool, batch).await;
    }
}

/// One submission inside the batch's transaction, in a savepoint.
async fn write_one(
    tx: &mut Transaction<'static, Sqlite>,
    d: NewDossier,
    signer: &AuditSigner,
) -> StoreResult<Dossier> {
    tx.exec("SAVEPOINT submission", vec![]).await?;
    match sql::insert_dossier(tx, signer, d).await {
        Ok(dossier) => {
            tx.exec("RELEASE submission", vec![]).await?;
            Ok(dossier)
        }
        Err(e) => {
            tx.exec("ROLLBACK TO submission", vec![]).await?;
            tx.exec("RELEASE submission", vec![]).await?;
            Err(e)
        }
    }
}

async fn write_batch(pool: &SqlitePool, batch: Vec<Pending>) {
    let mut tx = match pool.begin().await {
        Ok(tx) => tx,
        Err(e) => {
            let msg = e.to_string();
            for (_, _, answer) in batch {
                let _ = answer.send(Err(StoreError::Backend(msg.clone())));
            }
            return;
        }
    };
    let mut done = Vec::with_capacity(batch.len());
    for (d, signer, answer) in batch {
        let result = write_one(&mut tx, d, &signer).await;
        done.push((answer, result));
    }
    match tx.commit().await {
        Ok(()) => {
            for (answer, result) in done {
                let _ = answer.send(result);
            }
        }
        Err(e) => {
            let msg = e.to_string();
            for (answer, _) in done {
                let _ = answer.send(Err(StoreError::Backend(msg.clone())));
            }
        }
    }
}

/// Writes every dossier's search terms again in one transaction (migration
/// 3): see [`collect_terms`] and [`sql::append_terms`].
async fn rebuild_terms(tx: &mut Transaction<'_, Sqlite>) -> StoreResult<()> {
    sqlx::query("DELETE FROM dossier_terms")
        .execute(&mut **tx)
        .await
        .map_err(db)?;
    let terms = collect_terms(tx).await?;
    for chunk in terms.chunks(5000) {
        sql::append_terms(tx, chunk.into_iter()).await?;
    }
    Ok(())
}

/// Every dossier's search terms, from one pass over the table, sorted in
/// memory so that they are appended in key order.
async fn collect_terms(conn: &mut sqlx::SqliteConnection) -> StoreResult<bulk::SortedTerms> {
    let mut builder = bulk::TermBuilder::default();
    let mut after = 0i64;
    loop {
        let batch: Vec<(i64, String, String)> = sqlx::query_as(
            "SELECT id, agency_code, applicant_name FROM dossiers WHERE id > ? ORDER BY id LIMIT 50000",
        )
        .bind(after)
        .fetch_all(&mut *conn)
        .await
        .map_err(db)?;
        let Some(last) = batch.last() else { break };
        after = last.0;
        for (id, agency, name) in &batch {
            builder.add(agency, name, *id);
        }
    }
    Ok(builder.sorted())
}

/// Copies the WAL into the database file and empties it.
async fn checkpoint<'e, E: sqlx::Executor<'e, Database = Sqlite>>(e: E) -> StoreResult<()> {
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(e)
        .await
        .map_err(db)?;
    Ok(())
}

type SqliteQuery<'q> = sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments>;

fn bind_cell<'q>(query: SqliteQuery<'q>, c: &'q Cell) -> SqliteQuery<'q> {
    match c {
        Cell::Null => query.bind(None::<i64>),
        Cell::Int(i) => query.bind(*i),
        // Borrowed: bulk rows are not copied once more to be bound.
        Cell::Text(t) => query.bind(t.as_str()),
    }
}

#[async_trait]
impl Backend for SqliteBackend {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    async fn begin(&self) -> StoreResult<Box<dyn Tx>> {
        Ok(Box::new(self.write.begin().await.map_err(db)?))
    }

    async fn read(&self) -> StoreResult<Box<dyn Conn>> {
        Ok(Box::new(self.read.acquire().await.map_err(db)?))
    }

    async fn write(&self) -> StoreResult<Box<dyn Conn>> {
        Ok(Box::new(self.write.acquire().await.map_err(db)?))
    }

    async fn migrate(&self) -> StoreResult<usize> {
        sqlx::query("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)")
            .execute(&self.write)
            .await
            .map_err(db)?;
        let mut applied = 0;
        for (version, sql) in MIGRATIONS {
            if self.migrate_one(*version, sql).await? {
                applied += 1;
            }
        }
        // A bulk load that was interrupted left its indexes dropped.
        self.bulk_restore_indexes().await?;
        Ok(applied)
    }

    async fn create_dossier(&self, d: NewDossier, signer: AuditSigner) -> StoreResult<Dossier> {
        let (answer, answered) = oneshot::channel();
        let stopped = || StoreError::Backend("the database writer has stopped".into());
        self.submissions
            .send((d, signer, answer))
            .await
            .map_err(|_| stopped())?;
        answered.await.map_err(|_| stopped())?
    }

    async fn bulk_import(&self, parts: &[TableRows], signer: AuditSigner) -> StoreResult<u64> {
        // Bulk loads insert into every index at random places: a page cache
        // of 256 MiB (instead of 2 MiB) keeps the indexes' upper levels in
        // memory. Set on the writer connection of the process doing the
        // bulk work (`migrate-data`, `generate`), not on a serving node.
        // Statement journals (kept while a multi-row INSERT runs) stay in
        // memory instead of a temporary file.
        sqlx::raw_sql("PRAGMA cache_size = -262144; PRAGMA temp_store = MEMORY")
            .execute(&self.write)
            .await
            .map_err(db)?;
        let mut tx = self.write.begin().await.map_err(db)?;
        let deferred: Option<String> = sqlx::query_scalar("SELECT value FROM meta WHERE key = ?")
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
                let last: Option<(i64, String)> =
                    sqlx::query_as("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(db)?;
                bulk::check_chain_continues(last, &part.rows)?;
            }
            let names = t.column_names();
            // SQLite allows 32,766 parameters per statement.
            let per_statement = (32_000 / names.len()).min(1000);
            let conflict = if t.name == "dossier_seq" {
                " ON CONFLICT(agency_code, day) DO UPDATE SET last = MAX(last, excluded.last)"
            } else {
                ""
            };
            let row_marks = format!("({})", vec!["?"; names.len()].join(","));
            for chunk in part.rows.chunks(per_statement) {
                let sql = format!(
                    "INSERT INTO {} ({}) VALUES {}{conflict}",
                    t.name,
                    names.join(", "),
                    vec![row_marks.as_str(); chunk.len()].join(",")
                );
                let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
                for row in chunk {
                    for c in row {
                        query = bind_cell(query, c);
                    }
                }
                query.execute(&mut *tx).await.map_err(db)?;
                written += chunk.len() as u64;
            }
            if t.name == "dossiers" && !deferred {
                sql::insert_terms(&mut tx, &bulk::dossier_term_sources(&part.rows)?).await?;
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
        let mut tx = self.write.begin().await.map_err(db)?;
        sqlx::raw_sql("DELETE FROM dossier_terms; DELETE FROM audit_head")
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        for t in TABLES.iter().rev() {
            sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {}", t.name)))
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        tx.commit().await.map_err(db)?;
        Ok(())
    }

    /// Closes both pools, checkpointing the WAL into the database file
    /// (the writer closes last: read-only connections cannot checkpoint).
    async fn close(&self) {
        self.read.close().await;
        let _ = checkpoint(&self.write).await;
        self.write.close().await;
    }

    async fn bulk_defer_indexes(&self) -> StoreResult<usize> {
        let mut tx = self.write.begin().await.map_err(db)?;
        let indexes: Vec<(String, String)> = sqlx::query_as(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name IN ('dossiers', 'audit') AND sql IS NOT NULL ORDER BY name",
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?;
        let had: Option<String> = sqlx::query_scalar("SELECT value FROM meta WHERE key = ?")
            .bind(bulk::DEFERRED_INDEXES)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
        let mut all: Vec<(String, String)> = match had {
            Some(v) => serde_json::from_str(&v).map_err(|e| StoreError::Backend(e.to_string()))?,
            None => Vec::new(),
        };
        for (name, sql) in &indexes {
            sqlx::query(sqlx::AssertSqlSafe(format!("DROP INDEX \"{name}\"")))
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            all.push((name.clone(), sql.clone()));
        }
        sqlx::query("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value")
            .bind(bulk::DEFERRED_INDEXES)
            .bind(serde_json::to_string(&all).map_err(|e| StoreError::Backend(e.to_string()))?)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(indexes.len())
    }

    async fn bulk_restore_indexes(&self) -> StoreResult<()> {
        let v: Option<String> = sqlx::query_scalar("SELECT value FROM meta WHERE key = ?")
            .bind(bulk::DEFERRED_INDEXES)
            .fetch_optional(&self.read)
            .await
            .map_err(db)?;
        let Some(v) = v else {
            return Ok(());
        };
        let indexes: Vec<(String, String)> =
            serde_json::from_str(&v).map_err(|e| StoreError::Backend(e.to_string()))?;
        // Index builds sort with helper threads, one per CPU.
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "PRAGMA cache_size = -262144; PRAGMA temp_store = MEMORY; PRAGMA threads = {threads}"
        )))
        .execute(&self.write)
        .await
        .map_err(db)?;
        // Every step is idempotent and the marker goes last, so the work is
        // committed step by step: one transaction for all of it would grow
        // the WAL by gigabytes at 10 million dossiers, and every page read
        // would search it (an interrupted run is redone by `migrate`).
        sqlx::query("DELETE FROM dossier_terms")
            .execute(&self.write)
            .await
            .map_err(db)?;
        // The indexes are built on the writer while the terms are read and
        // folded on a reader (one CPU each). A dossier written meanwhile
        // by a node writes its own terms too: appending skips those.
        let build = async {
            for (_, sql) in &indexes {
                sqlx::query(sqlx::AssertSqlSafe(bulk::create_if_missing(sql)))
                    .execute(&self.write)
                    .await
                    .map_err(db)?;
                checkpoint(&self.write).await?;
            }
            Ok::<_, StoreError>(())
        };
        let collect = async {
            let mut reader = self.read.acquire().await.map_err(db)?;
            collect_terms(&mut reader).await
        };
        let (built, terms) = tokio::join!(build, collect);
        built?;
        let terms = terms?;
        // The terms come from dossiers that exist, so their foreign key
        // cannot fail, and checking it costs a lookup in `dossiers` per
        // term (half of the build's time). Off on this connection only,
        // which is closed afterwards rather than given back.
        let mut conn = self.write.acquire().await.map_err(db)?;
        conn.close_on_drop();
        sqlx::query("PRAGMA foreign_keys = OFF")
            .execute(&mut *conn)
            .await
            .map_err(db)?;
        let mut tx = sqlx::Connection::begin(&mut *conn).await.map_err(db)?;
        for (n, chunk) in terms.chunks(5000).enumerate() {
            sql::append_terms(&mut tx, chunk.into_iter()).await?;
            if n % 200 == 199 {
                tx.commit().await.map_err(db)?;
                checkpoint(&mut *conn).await?;
                tx = sqlx::Connection::begin(&mut *conn).await.map_err(db)?;
            }
        }
        sqlx::query("DELETE FROM meta WHERE key = ?")
            .bind(bulk::DEFERRED_INDEXES)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        checkpoint(&mut *conn).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use motcua_store::prelude::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    async fn fresh() -> SqliteStore {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "motcua-sqlite-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let s = open(
            &format!("sqlite://{}/t.db", dir.display()),
            Durability::Full,
        )
        .await
        .expect("open")
        .with_audit_key(motcua_store::conformance::test_key());
        assert_eq!(s.migrate().await.expect("migrate"), MIGRATIONS.len());
        assert_eq!(
            s.migrate().await.expect("migrate again"),
            0,
            "migrations apply once"
        );
        s
    }

    #[tokio::test]
    async fn conformance_suite() {
        if let Err(e) = motcua_store::conformance::run_all(fresh).await {
            panic!("{e}");
        }
    }

    #[tokio::test]
    async fn concurrent_creates_get_gap_free_codes() {
        let s = fresh().await;
        motcua_store::conformance::seed(&s).await.expect("seed");
        let now = Utc::now();
        let mut tasks = Vec::new();
        for i in 0..50 {
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                let d = motcua_store::conformance::new_dossier(
                    "UB00073",
                    "00073",
                    None,
                    &format!("N{i}"),
                    now,
                )
                .expect("fixture");
                s.create_dossier(d).await.expect("create").code
            }));
        }
        let mut seqs = Vec::new();
        for t in tasks {
            let code = t.await.expect("task");
            seqs.push(
                code.as_str()
                    .rsplit('-')
                    .next()
                    .and_then(|x| x.parse::<u32>().ok())
                    .expect("seq"),
            );
        }
        seqs.sort();
        assert_eq!(seqs, (1..=50).collect::<Vec<_>>());
    }
}

//! Embedded SQLite backend (WAL).
//!
//! Durability: `journal_mode=WAL` with `synchronous=FULL` by default — every
//! commit is synced to disk before it returns, so an acknowledged write
//! survives a process kill and a power loss. `synchronous=NORMAL` (option)
//! survives a process kill but may lose the last commits on power loss.
//!
//! Writes go through a pool of one connection, so transactions never fight
//! for the write lock; reads use a separate pool and see committed data.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use motcua_domain::audit::{self, AuditEntry, AuditRecord};
use motcua_domain::dossier::{Channel, Lifecycle, Role, Status};
use motcua_domain::procedure::Procedure;
use motcua_domain::units::{AdminUnit, Agency, AgencyKind, UnitLevel};
use motcua_domain::{AgencyCode, DossierCode, UnitCode};
use motcua_store::bulk::{self, Cell, ColKind, ExplainTarget, TABLES, TableDef, TableRows};
use motcua_store::query::{self, Arg, Dialect};
use motcua_store::{
    Applicant, AttemptResult, Delivery, DeliveryMode, DeliveryQuery, DeliveryState, Dossier,
    DossierQuery, DossierSummary, DossierUpdate, ImportOutcome, LateDossier, NewDossier,
    NewPubEvent, NewSubscription, NewUser, OutboxEvent, PubEvent, QueueCount, Store, StoreError,
    StoreResult, StoredDocument, StoredProcedure, Subscription, User, vietnam_day,
};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Row, Sqlite, Transaction};
use tokio::sync::{mpsc, oneshot};

const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("schema.sql")),
    (2, include_str!("migration_2.sql")),
    (3, include_str!("migration_3.sql")),
    (4, include_str!("migration_4.sql")),
    (5, include_str!("migration_5.sql")),
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
type Pending = (NewDossier, oneshot::Sender<StoreResult<Dossier>>);

/// Most submissions written in one transaction.
const GROUP_COMMIT_MAX: usize = 64;

#[derive(Debug, Clone)]
pub struct SqliteStore {
    write: SqlitePool,
    read: SqlitePool,
    /// New dossiers go through one task that writes every submission
    /// waiting at that moment in one transaction (group commit): one sync
    /// to disk for many acknowledgements, each answered only after it.
    submissions: mpsc::Sender<Pending>,
}

fn db(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => {
            StoreError::Duplicate(d.message().to_string())
        }
        sqlx::Error::RowNotFound => StoreError::NotFound,
        _ => StoreError::Backend(e.to_string()),
    }
}

fn json_err(e: serde_json::Error) -> StoreError {
    StoreError::Backend(format!("corrupt JSON in database: {e}"))
}

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn from_ms(v: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(v).unwrap_or_default()
}

fn from_ms_opt(v: Option<i64>) -> Option<DateTime<Utc>> {
    v.map(from_ms)
}

fn parse_code<T>(
    s: String,
    f: fn(&str) -> Result<T, motcua_domain::ids::ParseError>,
) -> StoreResult<T> {
    f(&s).map_err(|e| StoreError::Backend(format!("corrupt code {s:?} in database: {e}")))
}

fn roles_to_text(roles: &[Role]) -> String {
    roles
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

fn roles_from_text(s: &str) -> Vec<Role> {
    s.split(',').filter_map(Role::parse).collect()
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `url` (`sqlite://path`).
    pub async fn open(url: &str, durability: Durability) -> StoreResult<Self> {
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
        Ok(Self {
            write,
            read,
            submissions,
        })
    }

    /// Writes a consistent copy of the database to `path` (`VACUUM INTO`).
    pub async fn backup(&self, path: &str) -> StoreResult<()> {
        sqlx::query("VACUUM INTO ?")
            .bind(path)
            .execute(&self.write)
            .await
            .map_err(db)?;
        Ok(())
    }

    /// The rows of a name search: the matching ids first (from the
    /// postings), then the rows by id in up to [`query::ROW_READERS`]
    /// chunks read side by side on the read connections (each reads on a
    /// thread of its own), newest first.
    async fn name_search_rows(
        &self,
        ids_sql: &str,
        args: Vec<Arg>,
    ) -> StoreResult<Vec<DossierSummary>> {
        // Only placeholders and fixed fragments are formatted into the text.
        let ids: Vec<i64> = bind_all(sqlx::query(sqlx::AssertSqlSafe(ids_sql.to_string())), args)
            .fetch_all(&self.read)
            .await
            .map_err(db)?
            .iter()
            .map(|r| r.try_get::<i64, _>(0).map_err(db))
            .collect::<StoreResult<_>>()?;
        query::read_side_by_side(&ids, |chunk| {
            let pool = self.read.clone();
            async move {
                let sql = query::rows_by_id(chunk.len(), Dialect::Sqlite);
                let args = chunk.into_iter().map(Arg::Int).collect();
                let rows = bind_all(sqlx::query(sqlx::AssertSqlSafe(sql)), args)
                    .fetch_all(&pool)
                    .await
                    .map_err(db)?;
                rows.iter()
                    .map(|r| Ok((r.try_get::<i64, _>("id").map_err(db)?, summary_from_row(r)?)))
                    .collect()
            }
        })
        .await
    }

    /// `EXPLAIN QUERY PLAN` of one statement, one line per step.
    async fn explain_one(&self, sql: String, args: Vec<Arg>) -> StoreResult<String> {
        // Only placeholders and fixed fragments are formatted into the text.
        let query = bind_all(
            sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}"))),
            args,
        );
        let mut out = String::new();
        for r in query.fetch_all(&self.read).await.map_err(db)? {
            let detail: String = r.try_get("detail").map_err(db)?;
            out.push_str(&detail);
            out.push('\n');
        }
        Ok(out)
    }

    /// Closes both pools, checkpointing the WAL into the database file
    /// (the writer closes last: read-only connections cannot checkpoint).
    pub async fn close(&self) {
        self.read.close().await;
        let _ = checkpoint(&self.write).await;
        self.write.close().await;
    }

    async fn append_audit_tx(
        tx: &mut Transaction<'_, Sqlite>,
        entry: AuditEntry,
    ) -> StoreResult<AuditRecord> {
        let last: Option<(i64, String)> =
            sqlx::query_as("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
                .fetch_optional(&mut **tx)
                .await
                .map_err(db)?;
        let rec = audit::link(last.as_ref().map(|(s, h)| (*s, h.as_str())), entry);
        let e = &rec.entry;
        sqlx::query(
            "INSERT INTO audit (seq, at, actor, actor_role, agency_code, action, dossier_code, from_status, to_status, note, payload_hash, prev_hash, hash) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
        )
        .bind(rec.seq)
        .bind(e.at.timestamp_micros())
        .bind(&e.actor)
        .bind(&e.actor_role)
        .bind(&e.agency_code)
        .bind(&e.action)
        .bind(&e.dossier_code)
        .bind(&e.from_status)
        .bind(&e.to_status)
        .bind(&e.note)
        .bind(&e.payload_hash)
        .bind(&rec.prev_hash)
        .bind(&rec.hash)
        .execute(&mut **tx)
        .await
        .map_err(db)?;
        Ok(rec)
    }

    async fn outbox_tx(
        tx: &mut Transaction<'_, Sqlite>,
        topic: &str,
        payload: &serde_json::Value,
        at: DateTime<Utc>,
    ) -> StoreResult<()> {
        sqlx::query("INSERT INTO outbox (topic, payload, created_at) VALUES (?,?,?)")
            .bind(topic)
            .bind(payload.to_string())
            .bind(ms(at))
            .execute(&mut **tx)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn insert_documents(
        tx: &mut Transaction<'_, Sqlite>,
        dossier_id: i64,
        first: i64,
        docs: &[StoredDocument],
    ) -> StoreResult<()> {
        for (i, d) in docs.iter().enumerate() {
            sqlx::query(
                "INSERT INTO dossier_documents (dossier_id, position, document_id, filename, content_type, size, sha256, uploaded_at, stage) VALUES (?,?,?,?,?,?,?,?,?)",
            )
            .bind(dossier_id)
            .bind(first + i as i64)
            .bind(&d.document_id)
            .bind(&d.filename)
            .bind(&d.content_type)
            .bind(d.size as i64)
            .bind(&d.sha256)
            .bind(ms(d.uploaded_at))
            .bind(&d.stage)
            .execute(&mut **tx)
            .await
            .map_err(db)?;
        }
        Ok(())
    }

    async fn documents(&self, dossier_id: i64) -> StoreResult<Vec<StoredDocument>> {
        let rows = sqlx::query("SELECT document_id, filename, content_type, size, sha256, uploaded_at, stage FROM dossier_documents WHERE dossier_id = ? ORDER BY position")
            .bind(dossier_id)
            .fetch_all(&self.read)
            .await
            .map_err(db)?;
        rows.iter()
            .map(|r| {
                Ok(StoredDocument {
                    document_id: r.try_get("document_id").map_err(db)?,
                    filename: r.try_get("filename").map_err(db)?,
                    content_type: r.try_get("content_type").map_err(db)?,
                    size: r.try_get::<i64, _>("size").map_err(db)? as u64,
                    sha256: r.try_get("sha256").map_err(db)?,
                    uploaded_at: from_ms(r.try_get("uploaded_at").map_err(db)?),
                    stage: r.try_get("stage").map_err(db)?,
                })
            })
            .collect()
    }

    async fn dossier_by(
        &self,
        pool: &SqlitePool,
        code: &DossierCode,
    ) -> StoreResult<Option<Dossier>> {
        let row = sqlx::query("SELECT * FROM dossiers WHERE code = ?")
            .bind(code.as_str())
            .fetch_optional(pool)
            .await
            .map_err(db)?;
        let Some(row) = row else { return Ok(None) };
        let mut d = dossier_from_row(&row)?;
        d.documents = self.documents(d.id).await?;
        Ok(Some(d))
    }
}

/// Writes one new dossier inside `tx`: its code, rows, audit record and
/// outbox event.
async fn insert_dossier_tx(
    tx: &mut Transaction<'_, Sqlite>,
    d: NewDossier,
) -> StoreResult<Dossier> {
    let day = vietnam_day(d.submitted_at);
    let day_key = day.format("%Y-%m-%d").to_string();
    let fields = serde_json::to_string(&d.fields).map_err(json_err)?;
    let lifecycle = serde_json::to_string(&d.lifecycle).map_err(json_err)?;
    let seq: i64 = sqlx::query_scalar("INSERT INTO dossier_seq (agency_code, day, last) VALUES (?, ?, 1) ON CONFLICT(agency_code, day) DO UPDATE SET last = last + 1 RETURNING last")
        .bind(d.agency_code.as_str())
        .bind(&day_key)
        .fetch_one(&mut **tx)
        .await
        .map_err(db)?;
    let code = DossierCode::new(&d.agency_code, day, seq as u32);
    let id: i64 = sqlx::query_scalar("INSERT INTO dossiers (code, procedure_code, procedure_version, agency_code, unit_code, channel, applicant_user_id, applicant_name, applicant_national_id, applicant_phone, applicant_email, fields, submitted_at, status, holder, due_at, appointment_at, lifecycle, version, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,1,?) RETURNING id")
        .bind(code.as_str())
        .bind(&d.procedure_code)
        .bind(i64::from(d.procedure_version))
        .bind(d.agency_code.as_str())
        .bind(d.unit_code.as_str())
        .bind(d.channel.as_str())
        .bind(d.applicant.user_id)
        .bind(&d.applicant.full_name)
        .bind(&d.applicant.national_id)
        .bind(&d.applicant.phone)
        .bind(&d.applicant.email)
        .bind(fields)
        .bind(ms(d.submitted_at))
        .bind(d.lifecycle.status.as_str())
        .bind(d.lifecycle.holder().map(|r| r.as_str()))
        .bind(d.lifecycle.due_at.map(ms))
        .bind(d.lifecycle.appointment_at.map(ms))
        .bind(lifecycle)
        .bind(ms(d.submitted_at))
        .fetch_one(&mut **tx)
        .await
        .map_err(db)?;
    SqliteStore::insert_documents(tx, id, 0, &d.documents).await?;
    insert_terms(
        tx,
        &[(
            d.agency_code.as_str().to_string(),
            d.applicant.full_name.clone(),
            id,
        )],
    )
    .await?;
    let mut entry = d.audit;
    entry.dossier_code = Some(code.as_str().to_string());
    SqliteStore::append_audit_tx(tx, entry).await?;
    let payload = event_payload(&code, &d.agency_code, None, &d.lifecycle, d.submitted_at);
    SqliteStore::outbox_tx(tx, &d.event, &payload, d.submitted_at).await?;
    Ok(Dossier {
        id,
        code,
        procedure_code: d.procedure_code,
        procedure_version: d.procedure_version,
        agency_code: d.agency_code,
        unit_code: d.unit_code,
        channel: d.channel,
        applicant: d.applicant,
        fields: d.fields,
        documents: d.documents,
        submitted_at: d.submitted_at,
        lifecycle: d.lifecycle,
        version: 1,
        updated_at: d.submitted_at,
    })
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

async fn write_batch(pool: &SqlitePool, batch: Vec<Pending>) {
    let mut tx = match pool.begin().await {
        Ok(tx) => tx,
        Err(e) => {
            let msg = e.to_string();
            for (_, answer) in batch {
                let _ = answer.send(Err(StoreError::Backend(msg.clone())));
            }
            return;
        }
    };
    let mut done = Vec::with_capacity(batch.len());
    for (d, answer) in batch {
        let result = async {
            sqlx::query("SAVEPOINT submission")
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            match insert_dossier_tx(&mut tx, d).await {
                Ok(dossier) => {
                    sqlx::query("RELEASE submission")
                        .execute(&mut *tx)
                        .await
                        .map_err(db)?;
                    Ok(dossier)
                }
                Err(e) => {
                    sqlx::query("ROLLBACK TO submission")
                        .execute(&mut *tx)
                        .await
                        .map_err(db)?;
                    sqlx::query("RELEASE submission")
                        .execute(&mut *tx)
                        .await
                        .map_err(db)?;
                    Err(e)
                }
            }
        }
        .await;
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

fn user_from_row(r: &SqliteRow) -> StoreResult<User> {
    let agency: Option<String> = r.try_get("agency_code").map_err(db)?;
    Ok(User {
        id: r.try_get("id").map_err(db)?,
        username: r.try_get("username").map_err(db)?,
        password_hash: r.try_get("password_hash").map_err(db)?,
        full_name: r.try_get("full_name").map_err(db)?,
        national_id: r.try_get("national_id").map_err(db)?,
        phone: r.try_get("phone").map_err(db)?,
        email: r.try_get("email").map_err(db)?,
        roles: roles_from_text(&r.try_get::<String, _>("roles").map_err(db)?),
        agency_code: agency
            .map(|a| parse_code(a, AgencyCode::parse))
            .transpose()?,
        disabled: r.try_get::<i64, _>("disabled").map_err(db)? != 0,
        created_at: from_ms(r.try_get("created_at").map_err(db)?),
    })
}

fn agency_from_row(r: &SqliteRow) -> StoreResult<Agency> {
    let kind: String = r.try_get("kind").map_err(db)?;
    Ok(Agency {
        code: parse_code(r.try_get("code").map_err(db)?, AgencyCode::parse)?,
        name_vi: r.try_get("name_vi").map_err(db)?,
        name_en: r.try_get("name_en").map_err(db)?,
        kind: AgencyKind::parse(&kind)
            .ok_or_else(|| StoreError::Backend(format!("unknown agency kind {kind}")))?,
        unit_code: parse_code(r.try_get("unit_code").map_err(db)?, UnitCode::parse)?,
        address: r.try_get("address").map_err(db)?,
    })
}

fn procedure_from_row(r: &SqliteRow) -> StoreResult<StoredProcedure> {
    let def: String = r.try_get("definition").map_err(db)?;
    Ok(StoredProcedure {
        definition: serde_json::from_str(&def).map_err(json_err)?,
        enabled: r.try_get::<i64, _>("enabled").map_err(db)? != 0,
        imported_at: from_ms(r.try_get("imported_at").map_err(db)?),
    })
}

fn status_of(s: &str) -> StoreResult<Status> {
    Status::parse(s).ok_or_else(|| StoreError::Backend(format!("unknown status {s}")))
}

fn channel_of(s: &str) -> StoreResult<Channel> {
    Channel::parse(s).ok_or_else(|| StoreError::Backend(format!("unknown channel {s}")))
}

fn dossier_from_row(r: &SqliteRow) -> StoreResult<Dossier> {
    let fields: String = r.try_get("fields").map_err(db)?;
    let lifecycle: String = r.try_get("lifecycle").map_err(db)?;
    Ok(Dossier {
        id: r.try_get("id").map_err(db)?,
        code: parse_code(r.try_get("code").map_err(db)?, DossierCode::parse)?,
        procedure_code: r.try_get("procedure_code").map_err(db)?,
        procedure_version: r.try_get::<i64, _>("procedure_version").map_err(db)? as u32,
        agency_code: parse_code(r.try_get("agency_code").map_err(db)?, AgencyCode::parse)?,
        unit_code: parse_code(r.try_get("unit_code").map_err(db)?, UnitCode::parse)?,
        channel: channel_of(&r.try_get::<String, _>("channel").map_err(db)?)?,
        applicant: Applicant {
            user_id: r.try_get("applicant_user_id").map_err(db)?,
            full_name: r.try_get("applicant_name").map_err(db)?,
            national_id: r.try_get("applicant_national_id").map_err(db)?,
            phone: r.try_get("applicant_phone").map_err(db)?,
            email: r.try_get("applicant_email").map_err(db)?,
        },
        fields: serde_json::from_str(&fields).map_err(json_err)?,
        documents: Vec::new(),
        submitted_at: from_ms(r.try_get("submitted_at").map_err(db)?),
        lifecycle: serde_json::from_str::<Lifecycle>(&lifecycle).map_err(json_err)?,
        version: r.try_get("version").map_err(db)?,
        updated_at: from_ms(r.try_get("updated_at").map_err(db)?),
    })
}

fn summary_from_row(r: &SqliteRow) -> StoreResult<DossierSummary> {
    let holder: Option<String> = r.try_get("holder").map_err(db)?;
    Ok(DossierSummary {
        code: parse_code(r.try_get("code").map_err(db)?, DossierCode::parse)?,
        procedure_code: r.try_get("procedure_code").map_err(db)?,
        agency_code: parse_code(r.try_get("agency_code").map_err(db)?, AgencyCode::parse)?,
        applicant_name: r.try_get("applicant_name").map_err(db)?,
        status: status_of(&r.try_get::<String, _>("status").map_err(db)?)?,
        holder: holder.as_deref().and_then(Role::parse),
        channel: channel_of(&r.try_get::<String, _>("channel").map_err(db)?)?,
        submitted_at: from_ms(r.try_get("submitted_at").map_err(db)?),
        due_at: from_ms_opt(r.try_get("due_at").map_err(db)?),
        appointment_at: from_ms_opt(r.try_get("appointment_at").map_err(db)?),
    })
}

fn audit_from_row(r: &SqliteRow) -> StoreResult<AuditRecord> {
    Ok(AuditRecord {
        seq: r.try_get("seq").map_err(db)?,
        entry: AuditEntry {
            at: DateTime::from_timestamp_micros(r.try_get("at").map_err(db)?).unwrap_or_default(),
            actor: r.try_get("actor").map_err(db)?,
            actor_role: r.try_get("actor_role").map_err(db)?,
            agency_code: r.try_get("agency_code").map_err(db)?,
            action: r.try_get("action").map_err(db)?,
            dossier_code: r.try_get("dossier_code").map_err(db)?,
            from_status: r.try_get("from_status").map_err(db)?,
            to_status: r.try_get("to_status").map_err(db)?,
            note: r.try_get("note").map_err(db)?,
            payload_hash: r.try_get("payload_hash").map_err(db)?,
        },
        prev_hash: r.try_get("prev_hash").map_err(db)?,
        hash: r.try_get("hash").map_err(db)?,
    })
}

type SqliteQuery<'q> = sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments>;

fn bind_all(mut query: SqliteQuery<'_>, args: Vec<Arg>) -> SqliteQuery<'_> {
    for a in args {
        query = match a {
            Arg::Text(t) => query.bind(t),
            Arg::Int(i) => query.bind(i),
        };
    }
    query
}

/// Writes every dossier's search terms again in one transaction (migration
/// 3): see [`collect_terms`] and [`append_terms`].
async fn rebuild_terms(tx: &mut Transaction<'_, Sqlite>) -> StoreResult<()> {
    sqlx::query("DELETE FROM dossier_terms")
        .execute(&mut **tx)
        .await
        .map_err(db)?;
    let terms = collect_terms(tx).await?;
    for chunk in terms.chunks(5000) {
        append_terms(tx, &chunk).await?;
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

/// Appends sorted terms (at most a few thousand: one statement).
async fn append_terms(
    tx: &mut Transaction<'_, Sqlite>,
    chunk: &[(&str, &str, i64)],
) -> StoreResult<()> {
    let sql = format!(
        "INSERT OR IGNORE INTO dossier_terms (agency_code, term, dossier_id) VALUES {}",
        vec!["(?,?,?)"; chunk.len()].join(",")
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for (a, t, id) in chunk {
        q = q.bind(*a).bind(*t).bind(*id);
    }
    q.execute(&mut **tx).await.map_err(db)?;
    Ok(())
}

/// Writes the search terms of dossiers: (agency, applicant name, id).
async fn insert_terms(
    tx: &mut Transaction<'_, Sqlite>,
    dossiers: &[(String, String, i64)],
) -> StoreResult<()> {
    let rows: Vec<(String, String, i64)> = dossiers
        .iter()
        .flat_map(|(agency, name, id)| query::terms_of(agency, name, *id))
        .collect();
    for chunk in rows.chunks(5000) {
        let sql = format!(
            "INSERT OR IGNORE INTO dossier_terms (agency_code, term, dossier_id) VALUES {}",
            vec!["(?,?,?)"; chunk.len()].join(",")
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (a, t, id) in chunk {
            q = q.bind(a.as_str()).bind(t.as_str()).bind(*id);
        }
        q.execute(&mut **tx).await.map_err(db)?;
    }
    Ok(())
}

fn bind_cell<'q>(query: SqliteQuery<'q>, c: &'q Cell) -> SqliteQuery<'q> {
    match c {
        Cell::Null => query.bind(None::<i64>),
        Cell::Int(i) => query.bind(*i),
        // Borrowed: bulk rows are not copied once more to be bound.
        Cell::Text(t) => query.bind(t.as_str()),
    }
}

fn cells_of(t: &TableDef, r: &SqliteRow) -> StoreResult<Vec<Cell>> {
    t.columns
        .iter()
        .enumerate()
        .map(|(i, (_, kind))| {
            Ok(match kind {
                ColKind::Int | ColKind::Bool => {
                    Cell::opt_int(r.try_get::<Option<i64>, _>(i).map_err(db)?)
                }
                ColKind::Text => Cell::opt_text(r.try_get::<Option<String>, _>(i).map_err(db)?),
            })
        })
        .collect()
}

fn event_payload(
    code: &DossierCode,
    agency: &AgencyCode,
    from: Option<Status>,
    lifecycle: &Lifecycle,
    at: DateTime<Utc>,
) -> serde_json::Value {
    serde_json::json!({
        "code": code.as_str(),
        "agency": agency.as_str(),
        "from": from.map(|s| s.as_str()),
        "status": lifecycle.status.as_str(),
        "due_at": lifecycle.due_at,
        "at": at,
    })
}

#[async_trait]
impl Store for SqliteStore {
    async fn migrate(&self) -> StoreResult<usize> {
        sqlx::query("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)")
            .execute(&self.write)
            .await
            .map_err(db)?;
        let mut applied = 0;
        for (version, sql) in MIGRATIONS {
            let rebuilds = TABLES_REBUILT_BY.contains(version);
            let mut conn = self.write.acquire().await.map_err(db)?;
            if rebuilds {
                // SQLite's procedure for changing a table: foreign keys
                // off (only outside a transaction), rebuild, check, on. The
                // connection is not given back with them off, whatever
                // happens.
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
                continue;
            }
            sqlx::raw_sql(*sql).execute(&mut *tx).await.map_err(db)?;
            if TERMS_REBUILT_BY.contains(version) {
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
                .bind(ms(Utc::now()))
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            tx.commit().await.map_err(db)?;
            applied += 1;
        }
        // A bulk load that was interrupted left its indexes dropped.
        self.bulk_restore_indexes().await?;
        Ok(applied)
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.read)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn load_units(&self, units: &[AdminUnit], audit_entry: AuditEntry) -> StoreResult<usize> {
        let mut tx = self.write.begin().await.map_err(db)?;
        for u in units {
            sqlx::query("INSERT INTO units (code, name, division_type, level, parent_code) VALUES (?,?,?,?,?) ON CONFLICT(code) DO UPDATE SET name = excluded.name, division_type = excluded.division_type, level = excluded.level, parent_code = excluded.parent_code")
                .bind(u.code.as_str())
                .bind(&u.name)
                .bind(&u.division_type)
                .bind(u.level.as_str())
                .bind(u.parent_code.as_ref().map(|c| c.as_str()))
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        Self::append_audit_tx(&mut tx, audit_entry).await?;
        tx.commit().await.map_err(db)?;
        Ok(units.len())
    }

    async fn unit(&self, code: &UnitCode) -> StoreResult<Option<AdminUnit>> {
        let row = sqlx::query("SELECT * FROM units WHERE code = ?")
            .bind(code.as_str())
            .fetch_optional(&self.read)
            .await
            .map_err(db)?;
        row.map(|r| {
            let parent: Option<String> = r.try_get("parent_code").map_err(db)?;
            let level: String = r.try_get("level").map_err(db)?;
            Ok(AdminUnit {
                code: parse_code(r.try_get("code").map_err(db)?, UnitCode::parse)?,
                name: r.try_get("name").map_err(db)?,
                division_type: r.try_get("division_type").map_err(db)?,
                level: UnitLevel::parse(&level)
                    .ok_or_else(|| StoreError::Backend(format!("level {level}")))?,
                parent_code: parent.map(|p| parse_code(p, UnitCode::parse)).transpose()?,
            })
        })
        .transpose()
    }

    async fn count_units(&self) -> StoreResult<(u64, u64)> {
        let (p, c): (i64, i64) = sqlx::query_as("SELECT COALESCE(SUM(level = 'province'), 0), COALESCE(SUM(level = 'commune'), 0) FROM units")
            .fetch_one(&self.read)
            .await
            .map_err(db)?;
        Ok((p as u64, c as u64))
    }

    async fn put_agency(&self, a: &Agency, audit_entry: AuditEntry) -> StoreResult<()> {
        let mut tx = self.write.begin().await.map_err(db)?;
        sqlx::query("INSERT INTO agencies (code, name_vi, name_en, kind, unit_code, address) VALUES (?,?,?,?,?,?) ON CONFLICT(code) DO UPDATE SET name_vi = excluded.name_vi, name_en = excluded.name_en, kind = excluded.kind, unit_code = excluded.unit_code, address = excluded.address")
            .bind(a.code.as_str())
            .bind(&a.name_vi)
            .bind(&a.name_en)
            .bind(a.kind.as_str())
            .bind(a.unit_code.as_str())
            .bind(&a.address)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        Self::append_audit_tx(&mut tx, audit_entry).await?;
        tx.commit().await.map_err(db)?;
        Ok(())
    }

    async fn agency(&self, code: &AgencyCode) -> StoreResult<Option<Agency>> {
        sqlx::query("SELECT * FROM agencies WHERE code = ?")
            .bind(code.as_str())
            .fetch_optional(&self.read)
            .await
            .map_err(db)?
            .map(|r| agency_from_row(&r))
            .transpose()
    }

    async fn agencies(&self) -> StoreResult<Vec<Agency>> {
        sqlx::query("SELECT * FROM agencies ORDER BY code")
            .fetch_all(&self.read)
            .await
            .map_err(db)?
            .iter()
            .map(agency_from_row)
            .collect()
    }

    async fn agency_for(&self, kind: AgencyKind, unit: &UnitCode) -> StoreResult<Option<Agency>> {
        sqlx::query("SELECT * FROM agencies WHERE kind = ? AND unit_code = ?")
            .bind(kind.as_str())
            .bind(unit.as_str())
            .fetch_optional(&self.read)
            .await
            .map_err(db)?
            .map(|r| agency_from_row(&r))
            .transpose()
    }

    async fn create_user(&self, u: &NewUser, audit_entry: AuditEntry) -> StoreResult<User> {
        let mut tx = self.write.begin().await.map_err(db)?;
        let now = audit_entry.at;
        let id: i64 = sqlx::query_scalar("INSERT INTO users (username, password_hash, full_name, national_id, phone, email, roles, agency_code, created_at) VALUES (?,?,?,?,?,?,?,?,?) RETURNING id")
            .bind(&u.username)
            .bind(&u.password_hash)
            .bind(&u.full_name)
            .bind(&u.national_id)
            .bind(&u.phone)
            .bind(&u.email)
            .bind(roles_to_text(&u.roles))
            .bind(u.agency_code.as_ref().map(|a| a.as_str()))
            .bind(ms(now))
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
        Self::append_audit_tx(&mut tx, audit_entry).await?;
        tx.commit().await.map_err(db)?;
        self.user(id).await?.ok_or(StoreError::NotFound)
    }

    async fn user_by_name(&self, username: &str) -> StoreResult<Option<User>> {
        sqlx::query("SELECT * FROM users WHERE username = ?")
            .bind(username)
            .fetch_optional(&self.read)
            .await
            .map_err(db)?
            .map(|r| user_from_row(&r))
            .transpose()
    }

    async fn user(&self, id: i64) -> StoreResult<Option<User>> {
        sqlx::query("SELECT * FROM users WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.read)
            .await
            .map_err(db)?
            .map(|r| user_from_row(&r))
            .transpose()
    }

    async fn user_by_national_id(&self, national_id: &str) -> StoreResult<Option<User>> {
        sqlx::query("SELECT * FROM users WHERE national_id = ?")
            .bind(national_id)
            .fetch_optional(&self.read)
            .await
            .map_err(db)?
            .map(|r| user_from_row(&r))
            .transpose()
    }

    async fn users(&self) -> StoreResult<Vec<User>> {
        sqlx::query("SELECT * FROM users ORDER BY id")
            .fetch_all(&self.read)
            .await
            .map_err(db)?
            .iter()
            .map(user_from_row)
            .collect()
    }

    async fn set_user_disabled(
        &self,
        id: i64,
        disabled: bool,
        audit_entry: AuditEntry,
    ) -> StoreResult<()> {
        let mut tx = self.write.begin().await.map_err(db)?;
        let n = sqlx::query("UPDATE users SET disabled = ? WHERE id = ?")
            .bind(i64::from(disabled))
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db)?
            .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        if disabled {
            sqlx::query("UPDATE tokens SET revoked = 1 WHERE user_id = ?")
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        Self::append_audit_tx(&mut tx, audit_entry).await?;
        tx.commit().await.map_err(db)?;
        Ok(())
    }

    async fn set_password(
        &self,
        id: i64,
        password_hash: &str,
        audit_entry: AuditEntry,
    ) -> StoreResult<()> {
        let mut tx = self.write.begin().await.map_err(db)?;
        let n = sqlx::query("UPDATE users SET password_hash = ? WHERE id = ?")
            .bind(password_hash)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db)?
            .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        sqlx::query("UPDATE tokens SET revoked = 1 WHERE user_id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        Self::append_audit_tx(&mut tx, audit_entry).await?;
        tx.commit().await.map_err(db)?;
        Ok(())
    }

    async fn create_token(
        &self,
        token_hash: &str,
        user_id: i64,
        expires_at: DateTime<Utc>,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO tokens (token_hash, user_id, created_at, expires_at) VALUES (?,?,?,?)",
        )
        .bind(token_hash)
        .bind(user_id)
        .bind(ms(Utc::now()))
        .bind(ms(expires_at))
        .execute(&self.write)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn token_user(&self, token_hash: &str, now: DateTime<Utc>) -> StoreResult<Option<User>> {
        sqlx::query("SELECT u.* FROM tokens t JOIN users u ON u.id = t.user_id WHERE t.token_hash = ? AND t.revoked = 0 AND t.expires_at > ? AND u.disabled = 0")
            .bind(token_hash)
            .bind(ms(now))
            .fetch_optional(&self.read)
            .await
            .map_err(db)?
            .map(|r| user_from_row(&r))
            .transpose()
    }

    async fn revoke_token(&self, token_hash: &str) -> StoreResult<bool> {
        let n = sqlx::query("UPDATE tokens SET revoked = 1 WHERE token_hash = ? AND revoked = 0")
            .bind(token_hash)
            .execute(&self.write)
            .await
            .map_err(db)?
            .rows_affected();
        Ok(n > 0)
    }

    async fn revoke_user_tokens(&self, user_id: i64) -> StoreResult<u64> {
        Ok(
            sqlx::query("UPDATE tokens SET revoked = 1 WHERE user_id = ? AND revoked = 0")
                .bind(user_id)
                .execute(&self.write)
                .await
                .map_err(db)?
                .rows_affected(),
        )
    }

    async fn put_procedure(
        &self,
        p: &Procedure,
        audit_entry: AuditEntry,
    ) -> StoreResult<ImportOutcome> {
        let def = serde_json::to_string(p).map_err(json_err)?;
        let mut tx = self.write.begin().await.map_err(db)?;
        let existing: Option<String> =
            sqlx::query_scalar("SELECT definition FROM procedures WHERE code = ? AND version = ?")
                .bind(&p.code)
                .bind(i64::from(p.version))
                .fetch_optional(&mut *tx)
                .await
                .map_err(db)?;
        if let Some(existing) = existing {
            let same = serde_json::from_str::<Procedure>(&existing).map_err(json_err)? == *p;
            return if same {
                Ok(ImportOutcome::Unchanged)
            } else {
                Err(StoreError::Duplicate(format!(
                    "procedure {} version {} already exists with different content; raise the version",
                    p.code, p.version
                )))
            };
        }
        let newest: Option<i64> =
            sqlx::query_scalar("SELECT MAX(version) FROM procedures WHERE code = ?")
                .bind(&p.code)
                .fetch_one(&mut *tx)
                .await
                .map_err(db)?;
        if newest.is_some_and(|v| v > i64::from(p.version)) {
            return Err(StoreError::Invalid(format!(
                "procedure {} already has a newer version than {}",
                p.code, p.version
            )));
        }
        sqlx::query("INSERT INTO procedures (code, version, definition, enabled, imported_at) VALUES (?,?,?,1,?)")
            .bind(&p.code)
            .bind(i64::from(p.version))
            .bind(def)
            .bind(ms(audit_entry.at))
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        Self::append_audit_tx(&mut tx, audit_entry).await?;
        tx.commit().await.map_err(db)?;
        Ok(ImportOutcome::Added)
    }

    async fn procedure(&self, code: &str, version: u32) -> StoreResult<Option<StoredProcedure>> {
        sqlx::query("SELECT * FROM procedures WHERE code = ? AND version = ?")
            .bind(code)
            .bind(i64::from(version))
            .fetch_optional(&self.read)
            .await
            .map_err(db)?
            .map(|r| procedure_from_row(&r))
            .transpose()
    }

    async fn current_procedure(&self, code: &str) -> StoreResult<Option<StoredProcedure>> {
        sqlx::query(
            "SELECT * FROM procedures WHERE code = ? AND enabled = 1 ORDER BY version DESC LIMIT 1",
        )
        .bind(code)
        .fetch_optional(&self.read)
        .await
        .map_err(db)?
        .map(|r| procedure_from_row(&r))
        .transpose()
    }

    async fn current_procedures(&self) -> StoreResult<Vec<StoredProcedure>> {
        sqlx::query("SELECT p.* FROM procedures p WHERE p.enabled = 1 AND p.version = (SELECT MAX(q.version) FROM procedures q WHERE q.code = p.code AND q.enabled = 1) ORDER BY p.code")
            .fetch_all(&self.read)
            .await
            .map_err(db)?
            .iter()
            .map(procedure_from_row)
            .collect()
    }

    async fn procedure_versions(&self, code: &str) -> StoreResult<Vec<StoredProcedure>> {
        sqlx::query("SELECT * FROM procedures WHERE code = ? ORDER BY version")
            .bind(code)
            .fetch_all(&self.read)
            .await
            .map_err(db)?
            .iter()
            .map(procedure_from_row)
            .collect()
    }

    async fn set_procedure_enabled(
        &self,
        code: &str,
        version: u32,
        enabled: bool,
        audit_entry: AuditEntry,
    ) -> StoreResult<()> {
        let mut tx = self.write.begin().await.map_err(db)?;
        let n = sqlx::query("UPDATE procedures SET enabled = ? WHERE code = ? AND version = ?")
            .bind(i64::from(enabled))
            .bind(code)
            .bind(i64::from(version))
            .execute(&mut *tx)
            .await
            .map_err(db)?
            .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        Self::append_audit_tx(&mut tx, audit_entry).await?;
        tx.commit().await.map_err(db)?;
        Ok(())
    }

    async fn create_dossier(&self, d: NewDossier) -> StoreResult<Dossier> {
        let (answer, answered) = oneshot::channel();
        let stopped = || StoreError::Backend("the database writer has stopped".into());
        self.submissions
            .send((d, answer))
            .await
            .map_err(|_| stopped())?;
        answered.await.map_err(|_| stopped())?
    }

    async fn dossier(&self, code: &DossierCode) -> StoreResult<Option<Dossier>> {
        self.dossier_by(&self.read, code).await
    }

    async fn update_dossier(&self, u: DossierUpdate) -> StoreResult<Dossier> {
        let lifecycle = serde_json::to_string(&u.lifecycle).map_err(json_err)?;
        let mut tx = self.write.begin().await.map_err(db)?;
        let row: Option<(i64, String)> = sqlx::query_as("UPDATE dossiers SET status = ?, holder = ?, due_at = ?, appointment_at = ?, lifecycle = ?, version = version + 1, updated_at = ? WHERE code = ? AND version = ? RETURNING id, agency_code")
            .bind(u.lifecycle.status.as_str())
            .bind(u.lifecycle.holder().map(|r| r.as_str()))
            .bind(u.lifecycle.due_at.map(ms))
            .bind(u.lifecycle.appointment_at.map(ms))
            .bind(lifecycle)
            .bind(ms(u.at))
            .bind(u.code.as_str())
            .bind(u.expected_version)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
        let Some((id, agency)) = row else {
            let exists: Option<i64> = sqlx::query_scalar("SELECT id FROM dossiers WHERE code = ?")
                .bind(u.code.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(db)?;
            return Err(if exists.is_some() {
                StoreError::Conflict
            } else {
                StoreError::NotFound
            });
        };
        if !u.new_documents.is_empty() {
            let next: i64 = sqlx::query_scalar(
                "SELECT COALESCE(MAX(position) + 1, 0) FROM dossier_documents WHERE dossier_id = ?",
            )
            .bind(id)
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
            Self::insert_documents(&mut tx, id, next, &u.new_documents).await?;
        }
        let from = u.audit.from_status.as_deref().and_then(Status::parse);
        Self::append_audit_tx(&mut tx, u.audit).await?;
        let agency = parse_code(agency, AgencyCode::parse)?;
        let payload = event_payload(&u.code, &agency, from, &u.lifecycle, u.at);
        Self::outbox_tx(&mut tx, &u.event, &payload, u.at).await?;
        tx.commit().await.map_err(db)?;
        // Read back through the writer so the caller sees its own write.
        self.dossier_by(&self.write, &u.code)
            .await?
            .ok_or(StoreError::NotFound)
    }

    async fn find_dossiers(&self, q: &DossierQuery) -> StoreResult<Vec<DossierSummary>> {
        let f = query::find_dossiers(q, Dialect::Sqlite);
        let summaries = if f.ids_first {
            self.name_search_rows(&f.sql, f.args.clone()).await?
        } else {
            // Only placeholders and fixed fragments are formatted into the text.
            bind_all(
                sqlx::query(sqlx::AssertSqlSafe(f.sql.clone())),
                f.args.clone(),
            )
            .fetch_all(&self.read)
            .await
            .map_err(db)?
            .iter()
            .map(summary_from_row)
            .collect::<StoreResult<Vec<_>>>()?
        };
        Ok(f.kept(summaries))
    }

    async fn queue_counts(
        &self,
        agency: &AgencyCode,
        holders: &[Role],
        now: DateTime<Utc>,
        soon: DateTime<Utc>,
    ) -> StoreResult<Vec<QueueCount>> {
        if holders.is_empty() {
            return Ok(Vec::new());
        }
        let (sql, args) =
            query::queue_counts(agency.as_str(), holders, ms(now), ms(soon), Dialect::Sqlite);
        bind_all(sqlx::query(sqlx::AssertSqlSafe(sql)), args)
            .fetch_all(&self.read)
            .await
            .map_err(db)?
            .iter()
            .map(|r| {
                QueueCount::from_row(
                    &r.try_get::<String, _>(0).map_err(db)?,
                    &r.try_get::<String, _>(1).map_err(db)?,
                    r.try_get(2).map_err(db)?,
                    r.try_get(3).map_err(db)?,
                    r.try_get(4).map_err(db)?,
                )
            })
            .collect()
    }

    async fn count_by_status(&self) -> StoreResult<BTreeMap<String, u64>> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT status, COUNT(*) FROM dossiers GROUP BY status")
                .fetch_all(&self.read)
                .await
                .map_err(db)?;
        Ok(rows.into_iter().map(|(s, n)| (s, n as u64)).collect())
    }

    async fn referenced_objects(&self) -> StoreResult<Vec<String>> {
        sqlx::query_scalar("SELECT DISTINCT sha256 FROM dossier_documents")
            .fetch_all(&self.read)
            .await
            .map_err(db)
    }

    async fn append_audit(&self, entry: AuditEntry) -> StoreResult<AuditRecord> {
        let mut tx = self.write.begin().await.map_err(db)?;
        let rec = Self::append_audit_tx(&mut tx, entry).await?;
        tx.commit().await.map_err(db)?;
        Ok(rec)
    }

    async fn audit_records(&self, after: i64, limit: u32) -> StoreResult<Vec<AuditRecord>> {
        sqlx::query("SELECT * FROM audit WHERE seq > ? ORDER BY seq LIMIT ?")
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(&self.read)
            .await
            .map_err(db)?
            .iter()
            .map(audit_from_row)
            .collect()
    }

    async fn dossier_audit(&self, code: &DossierCode) -> StoreResult<Vec<AuditRecord>> {
        sqlx::query("SELECT * FROM audit WHERE dossier_code = ? ORDER BY seq")
            .bind(code.as_str())
            .fetch_all(&self.read)
            .await
            .map_err(db)?
            .iter()
            .map(audit_from_row)
            .collect()
    }

    async fn claim_events(&self, limit: u32) -> StoreResult<Vec<OutboxEvent>> {
        let now = Utc::now();
        let rows: Vec<(i64, String, String, i64)> = sqlx::query_as("UPDATE outbox SET claimed_until = ?, claims = claims + 1 WHERE id IN (SELECT id FROM outbox WHERE done_at IS NULL AND (claimed_until IS NULL OR claimed_until < ?) ORDER BY id LIMIT ?) RETURNING id, topic, payload, created_at")
            .bind(ms(now + chrono::Duration::seconds(60)))
            .bind(ms(now))
            .bind(i64::from(limit))
            .fetch_all(&self.write)
            .await
            .map_err(db)?;
        let mut out: Vec<OutboxEvent> = rows
            .into_iter()
            .map(|(id, topic, payload, created)| {
                Ok(OutboxEvent {
                    id,
                    topic,
                    payload: serde_json::from_str(&payload).map_err(json_err)?,
                    created_at: from_ms(created),
                })
            })
            .collect::<StoreResult<_>>()?;
        out.sort_by_key(|e| e.id);
        Ok(out)
    }

    async fn complete_event(&self, id: i64) -> StoreResult<bool> {
        let n = sqlx::query("UPDATE outbox SET done_at = ? WHERE id = ? AND done_at IS NULL")
            .bind(ms(Utc::now()))
            .bind(id)
            .execute(&self.write)
            .await
            .map_err(db)?
            .rows_affected();
        Ok(n == 1)
    }

    async fn complete_events(&self, ids: &[i64]) -> StoreResult<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        // Only placeholders are formatted into the text.
        let sql = format!(
            "UPDATE outbox SET done_at = ? WHERE done_at IS NULL AND id IN ({})",
            vec!["?"; ids.len()].join(",")
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(ms(Utc::now()));
        for id in ids {
            q = q.bind(*id);
        }
        Ok(q.execute(&self.write).await.map_err(db)?.rows_affected())
    }

    async fn pending_events(&self) -> StoreResult<u64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE done_at IS NULL")
            .fetch_one(&self.read)
            .await
            .map_err(db)?;
        Ok(n as u64)
    }

    async fn meta(&self, key: &str) -> StoreResult<Option<String>> {
        sqlx::query_scalar("SELECT value FROM meta WHERE key = ?")
            .bind(key)
            .fetch_optional(&self.read)
            .await
            .map_err(db)
    }

    async fn set_meta(&self, key: &str, value: &str) -> StoreResult<()> {
        sqlx::query("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value")
            .bind(key)
            .bind(value)
            .execute(&self.write)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn set_meta_audited(
        &self,
        key: &str,
        value: &str,
        audit_entry: AuditEntry,
    ) -> StoreResult<()> {
        let mut tx = self.write.begin().await.map_err(db)?;
        sqlx::query("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value")
            .bind(key)
            .bind(value)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        Self::append_audit_tx(&mut tx, audit_entry).await?;
        tx.commit().await.map_err(db)?;
        Ok(())
    }

    async fn set_meta_if(
        &self,
        key: &str,
        expected: Option<&str>,
        value: &str,
        audit_entry: AuditEntry,
    ) -> StoreResult<bool> {
        let mut tx = self.write.begin().await.map_err(db)?;
        // One statement decides: a concurrent writer that changed the row
        // first makes this one match nothing.
        let written = match expected {
            Some(old) => sqlx::query("UPDATE meta SET value = ? WHERE key = ? AND value = ?")
                .bind(value)
                .bind(key)
                .bind(old)
                .execute(&mut *tx)
                .await
                .map_err(db)?
                .rows_affected(),
            None => sqlx::query(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO NOTHING",
            )
            .bind(key)
            .bind(value)
            .execute(&mut *tx)
            .await
            .map_err(db)?
            .rows_affected(),
        };
        if written != 1 {
            tx.rollback().await.map_err(db)?;
            return Ok(false);
        }
        Self::append_audit_tx(&mut tx, audit_entry).await?;
        tx.commit().await.map_err(db)?;
        Ok(true)
    }

    async fn bulk_count(&self, table: &str) -> StoreResult<u64> {
        let t = bulk::table(table)?;
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM {}",
            t.name
        )))
        .fetch_one(&self.read)
        .await
        .map_err(db)?;
        Ok(n as u64)
    }

    async fn bulk_export(
        &self,
        table: &str,
        after: Option<&[Cell]>,
        limit: u32,
    ) -> StoreResult<Vec<Vec<Cell>>> {
        let t = bulk::table(table)?;
        let names = t.column_names();
        let keys = &names[..t.key];
        let mut sql = format!("SELECT {} FROM {}", names.join(", "), t.name);
        if after.is_some() {
            sql.push_str(&format!(
                " WHERE ({}) > ({})",
                keys.join(", "),
                vec!["?"; keys.len()].join(", ")
            ));
        }
        sql.push_str(&format!(
            " ORDER BY {} LIMIT {}",
            keys.join(", "),
            limit.max(1)
        ));
        // Only names from the fixed table definitions are formatted in.
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        if let Some(after) = after {
            if after.len() != t.key {
                return Err(StoreError::Invalid(format!(
                    "{}: key of {} cells",
                    t.name, t.key
                )));
            }
            for c in after {
                query = bind_cell(query, c);
            }
        }
        let rows = query.fetch_all(&self.read).await.map_err(db)?;
        rows.iter().map(|r| cells_of(t, r)).collect()
    }

    async fn bulk_last(&self, table: &str) -> StoreResult<Option<Vec<Cell>>> {
        let t = bulk::table(table)?;
        let names = t.column_names();
        let order: Vec<String> = names[..t.key].iter().map(|k| format!("{k} DESC")).collect();
        let sql = format!(
            "SELECT {} FROM {} ORDER BY {} LIMIT 1",
            names.join(", "),
            t.name,
            order.join(", ")
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_optional(&self.read)
            .await
            .map_err(db)?;
        row.map(|r| cells_of(t, &r)).transpose()
    }

    async fn bulk_import(&self, parts: &[TableRows]) -> StoreResult<u64> {
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
                insert_terms(&mut tx, &bulk::dossier_term_sources(&part.rows)?).await?;
            }
        }
        tx.commit().await.map_err(db)?;
        Ok(written)
    }

    async fn bulk_clear(&self) -> StoreResult<()> {
        let mut tx = self.write.begin().await.map_err(db)?;
        sqlx::query("DELETE FROM dossier_terms")
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
        sqlx::query("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value")
            .bind(bulk::DEFERRED_INDEXES)
            .bind(serde_json::to_string(&all).map_err(json_err)?)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(indexes.len())
    }

    async fn bulk_restore_indexes(&self) -> StoreResult<()> {
        let Some(v) = self.meta(bulk::DEFERRED_INDEXES).await? else {
            return Ok(());
        };
        let indexes: Vec<(String, String)> = serde_json::from_str(&v).map_err(json_err)?;
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
            append_terms(&mut tx, &chunk).await?;
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

    async fn explain(&self, target: &ExplainTarget) -> StoreResult<String> {
        let (sql, binds) = match target {
            ExplainTarget::Find(q) => {
                let f = query::find_dossiers(q, Dialect::Sqlite);
                // A name search runs in two statements: both plans, the
                // second for one reader's chunk of ids.
                if f.ids_first {
                    let ids = self.explain_one(f.sql, f.args).await?;
                    let chunk = (1..=13).map(Arg::Int).collect();
                    let rows = self
                        .explain_one(query::rows_by_id(13, Dialect::Sqlite), chunk)
                        .await?;
                    return Ok(format!("{ids}{rows}"));
                }
                (f.sql, f.args)
            }
            ExplainTarget::Dossier(code) => (
                "SELECT * FROM dossiers WHERE code = ?".to_string(),
                vec![Arg::Text(code.as_str().to_string())],
            ),
        };
        self.explain_one(sql, binds).await
    }

    async fn publish_event(&self, event: &NewPubEvent) -> StoreResult<Option<PubEvent>> {
        let mut tx = self.write.begin().await.map_err(db)?;
        let at = ms(event.published_at);
        let id: Option<i64> = sqlx::query_scalar("INSERT INTO pubsub_events (event_id, event_type, source_key, payload, published_at) VALUES (?,?,?,?,?) ON CONFLICT (source_key) DO NOTHING RETURNING id")
            .bind(&event.event_id)
            .bind(&event.event_type)
            .bind(&event.source_key)
            .bind(event.payload.to_string())
            .bind(at)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
        let Some(id) = id else {
            return Ok(None);
        };
        sqlx::query("INSERT INTO pubsub_deliveries (subscription_id, event_pk, state, attempts, next_attempt_at, updated_at) SELECT id, ?, 'pending', 0, ?, ? FROM pubsub_subscriptions WHERE event_type = ? AND deleted_at IS NULL")
            .bind(id)
            .bind(at)
            .bind(at)
            .bind(&event.event_type)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(Some(PubEvent {
            id,
            event_id: event.event_id.clone(),
            event_type: event.event_type.clone(),
            source_key: event.source_key.clone(),
            payload: event.payload.clone(),
            published_at: from_ms(at),
        }))
    }

    async fn create_subscription(
        &self,
        sub: &NewSubscription,
        audit_entry: AuditEntry,
    ) -> StoreResult<Subscription> {
        let mut tx = self.write.begin().await.map_err(db)?;
        let row = sqlx::query("INSERT INTO pubsub_subscriptions (client, event_type, mode, url, created_by, created_at) VALUES (?,?,?,?,?,?) RETURNING *")
            .bind(&sub.client)
            .bind(&sub.event_type)
            .bind(sub.mode.as_str())
            .bind(&sub.url)
            .bind(&sub.created_by)
            .bind(ms(sub.created_at))
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
        let s = subscription_from_row(&row)?;
        Self::append_audit_tx(&mut tx, audit_entry).await?;
        tx.commit().await.map_err(db)?;
        Ok(s)
    }

    async fn delete_subscription(
        &self,
        id: i64,
        at: DateTime<Utc>,
        audit_entry: AuditEntry,
    ) -> StoreResult<Subscription> {
        let mut tx = self.write.begin().await.map_err(db)?;
        let row = sqlx::query(
            "UPDATE pubsub_subscriptions SET deleted_at = ? WHERE id = ? AND deleted_at IS NULL RETURNING *",
        )
        .bind(ms(at))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?
        .ok_or(StoreError::NotFound)?;
        let s = subscription_from_row(&row)?;
        Self::append_audit_tx(&mut tx, audit_entry).await?;
        tx.commit().await.map_err(db)?;
        Ok(s)
    }

    async fn subscriptions(&self) -> StoreResult<Vec<Subscription>> {
        sqlx::query("SELECT * FROM pubsub_subscriptions ORDER BY id")
            .fetch_all(&self.read)
            .await
            .map_err(db)?
            .iter()
            .map(subscription_from_row)
            .collect()
    }

    async fn claim_push_deliveries(
        &self,
        now: DateTime<Utc>,
        lease: chrono::Duration,
        limit: u32,
    ) -> StoreResult<Vec<Delivery>> {
        // One writer connection: the claim is a single statement, so two
        // workers of this process never claim the same row.
        let ids: Vec<i64> = sqlx::query_scalar("UPDATE pubsub_deliveries SET claimed_until = ? WHERE id IN (SELECT d.id FROM pubsub_deliveries d JOIN pubsub_subscriptions s ON s.id = d.subscription_id WHERE d.state = 'pending' AND s.mode = 'push' AND s.deleted_at IS NULL AND d.next_attempt_at <= ? AND (d.claimed_until IS NULL OR d.claimed_until < ?) ORDER BY d.next_attempt_at, d.id LIMIT ?) RETURNING id")
            .bind(ms(now + lease))
            .bind(ms(now))
            .bind(ms(now))
            .bind(i64::from(limit))
            .fetch_all(&self.write)
            .await
            .map_err(db)?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        // Only placeholders are formatted into the text.
        let sql = format!(
            "{DELIVERY_SELECT} WHERE d.id IN ({}) ORDER BY d.next_attempt_at, d.id",
            vec!["?"; ids.len()].join(",")
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for id in &ids {
            q = q.bind(*id);
        }
        q.fetch_all(&self.write)
            .await
            .map_err(db)?
            .iter()
            .map(delivery_from_row)
            .collect()
    }

    async fn finish_push_delivery(
        &self,
        id: i64,
        result: &AttemptResult,
        at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let (state, next, status, error, done) = match result {
            AttemptResult::Delivered { status } => (
                "delivered",
                None,
                Some(i64::from(*status)),
                None,
                Some(ms(at)),
            ),
            AttemptResult::Retry {
                next_attempt_at,
                status,
                error,
            } => (
                "pending",
                Some(ms(*next_attempt_at)),
                status.map(i64::from),
                Some(error.clone()),
                None,
            ),
            AttemptResult::Failed { status, error } => (
                "failed",
                None,
                status.map(i64::from),
                Some(error.clone()),
                Some(ms(at)),
            ),
        };
        let n = sqlx::query("UPDATE pubsub_deliveries SET state = ?, attempts = attempts + 1, next_attempt_at = COALESCE(?, next_attempt_at), last_status = ?, last_error = ?, claimed_until = NULL, updated_at = ?, done_at = ? WHERE id = ? AND state = 'pending'")
            .bind(state)
            .bind(next)
            .bind(status)
            .bind(error)
            .bind(ms(at))
            .bind(done)
            .bind(id)
            .execute(&self.write)
            .await
            .map_err(db)?
            .rows_affected();
        Ok(n == 1)
    }

    async fn pull_deliveries(&self, client: &str, limit: u32) -> StoreResult<Vec<Delivery>> {
        let sql = format!(
            "{DELIVERY_SELECT} WHERE s.client = ? AND s.mode = 'pull' AND s.deleted_at IS NULL AND d.state = 'pending' ORDER BY d.event_pk, d.id LIMIT ?"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(client)
            .bind(i64::from(limit))
            .fetch_all(&self.read)
            .await
            .map_err(db)?
            .iter()
            .map(delivery_from_row)
            .collect()
    }

    async fn ack_deliveries(
        &self,
        client: &str,
        event_ids: &[String],
        at: DateTime<Utc>,
    ) -> StoreResult<Vec<String>> {
        if event_ids.is_empty() {
            return Ok(Vec::new());
        }
        // Only placeholders are formatted into the text.
        let sql = format!(
            "UPDATE pubsub_deliveries SET state = 'acked', updated_at = ?, done_at = ? WHERE state = 'pending' AND subscription_id IN (SELECT id FROM pubsub_subscriptions WHERE client = ? AND mode = 'pull' AND deleted_at IS NULL) AND event_pk IN (SELECT id FROM pubsub_events WHERE event_id IN ({})) RETURNING event_pk",
            vec!["?"; event_ids.len()].join(",")
        );
        let mut q = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql))
            .bind(ms(at))
            .bind(ms(at))
            .bind(client);
        for e in event_ids {
            q = q.bind(e);
        }
        let pks: Vec<i64> = q.fetch_all(&self.write).await.map_err(db)?;
        if pks.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT event_id FROM pubsub_events WHERE id IN ({}) ORDER BY id",
            vec!["?"; pks.len()].join(",")
        );
        let mut q = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql));
        for pk in &pks {
            q = q.bind(*pk);
        }
        q.fetch_all(&self.write).await.map_err(db)
    }

    async fn deliveries(&self, q: &DeliveryQuery) -> StoreResult<Vec<Delivery>> {
        let sql = format!(
            "{DELIVERY_SELECT} WHERE (? IS NULL OR d.subscription_id = ?) AND (? IS NULL OR d.state = ?) ORDER BY d.id DESC LIMIT ?"
        );
        let state = q.state.map(|s| s.as_str());
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(q.subscription)
            .bind(q.subscription)
            .bind(state)
            .bind(state)
            .bind(i64::from(q.limit.max(1)))
            .fetch_all(&self.read)
            .await
            .map_err(db)?
            .iter()
            .map(delivery_from_row)
            .collect()
    }

    async fn late_dossiers(
        &self,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<LateDossier>> {
        let rows: Vec<(String, String, String, i64)> = sqlx::query_as("SELECT d.code, d.agency_code, d.status, d.due_at FROM dossiers d WHERE d.status IN ('accepted', 'processing') AND d.due_at >= ? AND d.due_at <= ? AND NOT EXISTS (SELECT 1 FROM pubsub_events e WHERE e.source_key = 'dossier.late:' || d.code) ORDER BY d.due_at LIMIT ?")
            .bind(ms(since))
            .bind(ms(now))
            .bind(i64::from(limit))
            .fetch_all(&self.read)
            .await
            .map_err(db)?;
        rows.into_iter()
            .map(|(code, agency, status, due)| {
                Ok(LateDossier {
                    code: parse_code(code, DossierCode::parse)?,
                    agency: parse_code(agency, AgencyCode::parse)?,
                    status: Status::parse(&status)
                        .ok_or_else(|| StoreError::Backend(format!("unknown status {status}")))?,
                    due_at: from_ms(due),
                })
            })
            .collect()
    }
}

/// A delivery with its subscription and event (`WHERE …` follows).
const DELIVERY_SELECT: &str = "SELECT d.id, d.subscription_id, s.client, s.mode, s.url, d.state, d.attempts, d.next_attempt_at, d.last_status, d.last_error, d.updated_at, d.done_at, e.id AS e_id, e.event_id, e.event_type, e.source_key, e.payload, e.published_at FROM pubsub_deliveries d JOIN pubsub_subscriptions s ON s.id = d.subscription_id JOIN pubsub_events e ON e.id = d.event_pk";

fn subscription_from_row(r: &SqliteRow) -> StoreResult<Subscription> {
    let mode: String = r.try_get("mode").map_err(db)?;
    Ok(Subscription {
        id: r.try_get("id").map_err(db)?,
        client: r.try_get("client").map_err(db)?,
        event_type: r.try_get("event_type").map_err(db)?,
        mode: DeliveryMode::parse(&mode)
            .ok_or_else(|| StoreError::Backend(format!("unknown delivery mode {mode}")))?,
        url: r.try_get("url").map_err(db)?,
        created_by: r.try_get("created_by").map_err(db)?,
        created_at: from_ms(r.try_get("created_at").map_err(db)?),
        deleted_at: from_ms_opt(r.try_get("deleted_at").map_err(db)?),
    })
}

fn delivery_from_row(r: &SqliteRow) -> StoreResult<Delivery> {
    let mode: String = r.try_get("mode").map_err(db)?;
    let state: String = r.try_get("state").map_err(db)?;
    let payload: String = r.try_get("payload").map_err(db)?;
    Ok(Delivery {
        id: r.try_get("id").map_err(db)?,
        subscription_id: r.try_get("subscription_id").map_err(db)?,
        client: r.try_get("client").map_err(db)?,
        mode: DeliveryMode::parse(&mode)
            .ok_or_else(|| StoreError::Backend(format!("unknown delivery mode {mode}")))?,
        url: r.try_get("url").map_err(db)?,
        event: PubEvent {
            id: r.try_get("e_id").map_err(db)?,
            event_id: r.try_get("event_id").map_err(db)?,
            event_type: r.try_get("event_type").map_err(db)?,
            source_key: r.try_get("source_key").map_err(db)?,
            payload: serde_json::from_str(&payload).map_err(json_err)?,
            published_at: from_ms(r.try_get("published_at").map_err(db)?),
        },
        state: DeliveryState::parse(&state)
            .ok_or_else(|| StoreError::Backend(format!("unknown delivery state {state}")))?,
        attempts: u32::try_from(r.try_get::<i64, _>("attempts").map_err(db)?).unwrap_or(0),
        next_attempt_at: from_ms(r.try_get("next_attempt_at").map_err(db)?),
        last_status: r
            .try_get::<Option<i64>, _>("last_status")
            .map_err(db)?
            .and_then(|s| u16::try_from(s).ok()),
        last_error: r.try_get("last_error").map_err(db)?,
        updated_at: from_ms(r.try_get("updated_at").map_err(db)?),
        done_at: from_ms_opt(r.try_get("done_at").map_err(db)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
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
        let s = SqliteStore::open(
            &format!("sqlite://{}/t.db", dir.display()),
            Durability::Full,
        )
        .await
        .expect("open");
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

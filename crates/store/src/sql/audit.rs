//! The audit chain: appends (under one lock on PostgreSQL), reads, and the
//! signed checkpoint of its head.

use std::sync::Arc;

use async_trait::async_trait;
use motcua_domain::DossierCode;
use motcua_domain::audit::{self, AuditEntry, AuditRecord, Checkpoint};

use super::{Backend, Conn, Dialect, SqlStore, args, rows};
use crate::{AuditStore, StateProblem, StoreResult};

/// Advisory lock serialising audit-chain appends on PostgreSQL ("motcua" + 1).
pub const AUDIT_LOCK: i64 = 0x6d6f_7463_7561_0001;

/// Signs the chain's head (a [`Checkpoint`]) in every transaction that
/// appends; without a key nothing is signed.
#[derive(Clone, Default)]
pub struct AuditSigner(Option<Arc<ed25519_dalek::SigningKey>>);

impl AuditSigner {
    pub fn new(key: ed25519_dalek::SigningKey) -> Self {
        Self(Some(Arc::new(key)))
    }

    /// The checkpoint of `rec` as the new head, if there is a key.
    pub fn checkpoint(&self, rec: &AuditRecord) -> Option<Checkpoint> {
        self.0
            .as_ref()
            .map(|k| Checkpoint::sign(k, rec.seq, &rec.hash, rec.entry.at))
    }
}

/// Takes the chain's lock (PostgreSQL: until the transaction ends; SQLite
/// has one writer).
pub async fn lock(c: &mut dyn Conn) -> StoreResult<()> {
    if c.dialect() == Dialect::Postgres {
        c.exec("SELECT pg_advisory_xact_lock($1)", args![AUDIT_LOCK])
            .await?;
    }
    Ok(())
}

/// The last record's (seq, hash).
pub async fn head(c: &mut dyn Conn) -> StoreResult<Option<(i64, String)>> {
    match c
        .first(
            "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
            vec![],
        )
        .await?
    {
        Some(r) => Ok(Some((r.int("seq")?, r.text("hash")?))),
        None => Ok(None),
    }
}

/// Links `entry` after the last record, inside the caller's transaction,
/// and writes the signed checkpoint of the new head in the same one.
pub async fn append_audit(
    c: &mut dyn Conn,
    signer: &AuditSigner,
    entry: AuditEntry,
) -> StoreResult<AuditRecord> {
    lock(c).await?;
    let last = head(c).await?;
    let rec = audit::link(last.as_ref().map(|(s, h)| (*s, h.as_str())), entry);
    let e = &rec.entry;
    c.exec(
        "INSERT INTO audit (seq, at, actor, actor_role, agency_code, action, dossier_code, from_status, to_status, note, payload_hash, prev_hash, hash) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13)",
        args![
            rec.seq,
            e.at.timestamp_micros(),
            &e.actor,
            &e.actor_role,
            &e.agency_code,
            &e.action,
            &e.dossier_code,
            &e.from_status,
            &e.to_status,
            &e.note,
            &e.payload_hash,
            &rec.prev_hash,
            &rec.hash,
        ],
    )
    .await?;
    if let Some(cp) = signer.checkpoint(&rec) {
        write_checkpoint(c, &cp).await?;
    }
    Ok(rec)
}

/// Replaces the stored checkpoint (one row).
pub async fn write_checkpoint(c: &mut dyn Conn, cp: &Checkpoint) -> StoreResult<()> {
    c.exec(
        "INSERT INTO audit_head (id, seq, hash, at, signer, signature) VALUES (1, $1, $2, $3, $4, $5) ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, at = excluded.at, signer = excluded.signer, signature = excluded.signature",
        args![cp.seq, &cp.hash, cp.at.timestamp_micros(), &cp.key, &cp.signature],
    )
    .await?;
    Ok(())
}

pub async fn records(c: &mut dyn Conn, after: i64, limit: u32) -> StoreResult<Vec<AuditRecord>> {
    let rows = c
        .fetch(
            "SELECT * FROM audit WHERE seq > $1 ORDER BY seq LIMIT $2",
            args![after, i64::from(limit)],
        )
        .await?;
    rows::all(rows, rows::audit)
}

pub async fn of_dossier(c: &mut dyn Conn, code: &DossierCode) -> StoreResult<Vec<AuditRecord>> {
    let rows = c
        .fetch(
            "SELECT * FROM audit WHERE dossier_code = $1 ORDER BY seq",
            args![code.as_str()],
        )
        .await?;
    rows::all(rows, rows::audit)
}

pub async fn record(c: &mut dyn Conn, seq: i64) -> StoreResult<Option<AuditRecord>> {
    let row = c
        .first("SELECT * FROM audit WHERE seq = $1", args![seq])
        .await?;
    rows::first(row, rows::audit)
}

pub async fn checkpoint(c: &mut dyn Conn) -> StoreResult<Option<Checkpoint>> {
    let Some(r) = c
        .first(
            "SELECT seq, hash, at, signer, signature FROM audit_head WHERE id = 1",
            vec![],
        )
        .await?
    else {
        return Ok(None);
    };
    Ok(Some(Checkpoint {
        seq: r.int("seq")?,
        hash: r.text("hash")?,
        at: r.micros("at")?,
        key: r.text("signer")?,
        signature: r.text("signature")?,
    }))
}

/// After a bulk load of audit rows: the signed checkpoint of the new head.
pub async fn checkpoint_head(c: &mut dyn Conn, signer: &AuditSigner) -> StoreResult<()> {
    let Some((seq, _)) = head(c).await? else {
        return Ok(());
    };
    if let Some(rec) = record(c, seq).await?
        && let Some(cp) = signer.checkpoint(&rec)
    {
        write_checkpoint(c, &cp).await?;
    }
    Ok(())
}

/// Dossiers whose status is not the one their newest audit record set, in
/// the status column (what lists show) or in the lifecycle (what the
/// dossier's page shows and its rules act on).
pub(super) async fn state_problems(
    c: &mut dyn Conn,
    limit: u32,
) -> StoreResult<Vec<crate::StateProblem>> {
    // The lifecycle's own status. A lifecycle that is not JSON gives NULL
    // on SQLite (reported as unreadable); on PostgreSQL the cast fails the
    // query, and with it `audit verify`.
    let lifecycle_status = match c.dialect() {
        Dialect::Sqlite => {
            "CASE WHEN json_valid(d.lifecycle) THEN json_extract(d.lifecycle, '$.status') END"
        }
        Dialect::Postgres => "((d.lifecycle::jsonb ->> 'status') COLLATE \"C\")",
    };
    let rows = c
        .fetch(
            &format!("SELECT code, status, l_status, audit_seq, a_seq, a_code, a_status, newest FROM (SELECT d.code, d.status, {lifecycle_status} AS l_status, d.audit_seq, a.seq AS a_seq, a.dossier_code AS a_code, a.to_status AS a_status, (SELECT MAX(b.seq) FROM audit b WHERE b.dossier_code = d.code AND b.to_status IS NOT NULL) AS newest FROM dossiers d LEFT JOIN audit a ON a.seq = d.audit_seq) x WHERE a_seq IS NULL OR a_code IS DISTINCT FROM code OR a_status IS DISTINCT FROM status OR l_status IS DISTINCT FROM status OR newest IS DISTINCT FROM audit_seq ORDER BY code LIMIT $1"),
            args![i64::from(limit)],
        )
        .await?;
    rows.iter()
        .map(|r| {
            let status = r.text("status")?;
            let audit_seq = r.opt_int("audit_seq")?;
            let lifecycle = r.opt_text("l_status")?;
            let reason = match (audit_seq, r.opt_int("a_seq")?) {
                (None, _) => "it names no audit record".to_string(),
                (Some(s), None) => format!("its audit record {s} is missing"),
                (Some(s), Some(_)) if r.opt_text("a_code")?.as_deref() != Some(&r.text("code")?) => {
                    format!("its audit record {s} is about another dossier")
                }
                (Some(s), Some(_)) if r.opt_text("a_status")?.as_deref() != Some(&status) => format!(
                    "its status {status} is not the {} set by its audit record {s} (changed outside the application)",
                    r.opt_text("a_status")?.unwrap_or_default()
                ),
                (Some(s), Some(_)) if lifecycle.as_deref() != Some(&status) => format!(
                    "its lifecycle's status {} is not the {status} set by its audit record {s} (changed outside the application)",
                    lifecycle.as_deref().unwrap_or("(unreadable)")
                ),
                (Some(s), Some(_)) => format!(
                    "its audit record {s} is not its newest ({})",
                    r.opt_int("newest")?.unwrap_or_default()
                ),
            };
            Ok(crate::StateProblem {
                code: r.parsed("code", DossierCode::parse)?,
                status,
                audit_seq,
                reason,
            })
        })
        .collect()
}

#[async_trait]
impl<B: Backend> AuditStore for SqlStore<B> {
    async fn append_audit(&self, entry: AuditEntry) -> StoreResult<AuditRecord> {
        let mut tx = self.begin().await?;
        let rec = append_audit(tx.conn(), &self.signer, entry).await?;
        tx.commit().await?;
        Ok(rec)
    }

    async fn audit_records(&self, after: i64, limit: u32) -> StoreResult<Vec<AuditRecord>> {
        records(self.read().await?.as_mut(), after, limit).await
    }

    async fn dossier_audit(&self, code: &DossierCode) -> StoreResult<Vec<AuditRecord>> {
        of_dossier(self.read().await?.as_mut(), code).await
    }

    async fn audit_record(&self, seq: i64) -> StoreResult<Option<AuditRecord>> {
        record(self.read().await?.as_mut(), seq).await
    }

    async fn audit_head(&self) -> StoreResult<Option<(i64, String)>> {
        head(self.read().await?.as_mut()).await
    }

    async fn sign_audit_head(&self) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        lock(tx.conn()).await?;
        checkpoint_head(tx.conn(), &self.signer).await?;
        tx.commit().await
    }

    async fn audit_checkpoint(&self) -> StoreResult<Option<motcua_domain::audit::Checkpoint>> {
        checkpoint(self.read().await?.as_mut()).await
    }

    async fn dossier_state_problems(&self, limit: u32) -> StoreResult<Vec<StateProblem>> {
        state_problems(self.read().await?.as_mut(), limit).await
    }
}

//! The audit chain: appends (under one lock on PostgreSQL), reads, and the
//! signed checkpoint of its head.

use std::sync::Arc;

use motcua_domain::DossierCode;
use motcua_domain::audit::{self, AuditEntry, AuditRecord, Checkpoint};

use super::{Conn, Dialect, args, rows};
use crate::StoreResult;

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

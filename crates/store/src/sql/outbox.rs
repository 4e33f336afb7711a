//! The outbox: events written with the changes that caused them, claimed
//! by workers with a lease.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{Arg, Backend, Conn, Dialect, SqlStore, args, marks, rows};
use crate::{OutboxEvent, OutboxStore, StoreResult};

/// How long a claimed event stays with its claimer.
pub const OUTBOX_LEASE_SECONDS: i64 = 60;

pub(super) async fn claim(
    c: &mut dyn Conn,
    now: DateTime<Utc>,
    limit: u32,
) -> StoreResult<Vec<OutboxEvent>> {
    let sql = match c.dialect() {
        // One writer: the claim is a single statement.
        Dialect::Sqlite => {
            "UPDATE outbox SET claimed_until = $1, claims = claims + 1 WHERE id IN (SELECT id FROM outbox WHERE done_at IS NULL AND (claimed_until IS NULL OR claimed_until < $2) ORDER BY id LIMIT $3) RETURNING id, topic, payload, created_at"
        }
        // Rows another claimer has locked are skipped; a row it claimed
        // and committed is re-checked (READ COMMITTED) and has a live lease.
        Dialect::Postgres => {
            "WITH c AS (SELECT id FROM outbox WHERE done_at IS NULL AND (claimed_until IS NULL OR claimed_until < $2) ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED) UPDATE outbox o SET claimed_until = $1, claims = o.claims + 1 FROM c WHERE o.id = c.id RETURNING o.id, o.topic, o.payload, o.created_at"
        }
    };
    let rows = c
        .fetch(
            sql,
            args![
                now + chrono::Duration::seconds(OUTBOX_LEASE_SECONDS),
                now,
                i64::from(limit),
            ],
        )
        .await?;
    let mut out = rows::all(rows, rows::outbox_event)?;
    out.sort_by_key(|e| e.id);
    Ok(out)
}

/// Completes the events `ids` not completed before; returns how many.
pub(super) async fn complete(
    c: &mut dyn Conn,
    ids: &[i64],
    now: DateTime<Utc>,
) -> StoreResult<u64> {
    if ids.is_empty() {
        return Ok(0);
    }
    let sql = format!(
        "UPDATE outbox SET done_at = $1 WHERE done_at IS NULL AND id IN ({})",
        marks(2, ids.len())
    );
    let mut a = args![now];
    a.extend(ids.iter().copied().map(Arg::Int));
    c.exec(&sql, a).await
}

pub(super) async fn pending(c: &mut dyn Conn) -> StoreResult<u64> {
    Ok(
        c.int("SELECT COUNT(*) FROM outbox WHERE done_at IS NULL", vec![])
            .await?
            .unwrap_or(0)
            .max(0) as u64,
    )
}

#[async_trait]
impl<B: Backend> OutboxStore for SqlStore<B> {
    async fn claim_events(&self, limit: u32) -> StoreResult<Vec<OutboxEvent>> {
        claim(self.write().await?.as_mut(), Utc::now(), limit).await
    }

    async fn complete_event(&self, id: i64) -> StoreResult<bool> {
        Ok(complete(self.write().await?.as_mut(), &[id], Utc::now()).await? == 1)
    }

    async fn complete_events(&self, ids: &[i64]) -> StoreResult<u64> {
        complete(self.write().await?.as_mut(), ids, Utc::now()).await
    }

    async fn pending_events(&self) -> StoreResult<u64> {
        pending(self.read().await?.as_mut()).await
    }
}

//! Publish / subscribe of the exchange: events, subscriptions, deliveries.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use motcua_domain::audit::AuditEntry;
use motcua_domain::dossier::Status;
use motcua_domain::{AgencyCode, DossierCode};

use super::{Arg, Backend, Conn, Dialect, SqlStore, args, marks, rows};
use crate::{
    AttemptResult, Delivery, DeliveryQuery, LateDossier, NewPubEvent, NewSubscription, PubEvent,
    PubSubStore, StoreError, StoreResult, Subscription,
};

/// A delivery with its subscription and event (`WHERE …` follows).
const DELIVERY_SELECT: &str = "SELECT d.id, d.subscription_id, s.client, s.mode, s.url, d.state, d.attempts, d.next_attempt_at, d.last_status, d.last_error, d.updated_at, d.done_at, e.id AS e_id, e.event_id, e.event_type, e.source_key, e.payload, e.published_at FROM pubsub_deliveries d JOIN pubsub_subscriptions s ON s.id = d.subscription_id JOIN pubsub_events e ON e.id = d.event_pk";

pub(super) async fn publish(
    c: &mut dyn Conn,
    event: &NewPubEvent,
) -> StoreResult<Option<PubEvent>> {
    let id = c
        .int(
            "INSERT INTO pubsub_events (event_id, event_type, source_key, payload, published_at) VALUES ($1,$2,$3,$4,$5) ON CONFLICT (source_key) DO NOTHING RETURNING id",
            args![
                &event.event_id,
                &event.event_type,
                &event.source_key,
                event.payload.to_string(),
                event.published_at,
            ],
        )
        .await?;
    let Some(id) = id else {
        return Ok(None);
    };
    c.exec(
        "INSERT INTO pubsub_deliveries (subscription_id, event_pk, state, attempts, next_attempt_at, updated_at) SELECT id, $1, 'pending', 0, $2, $3 FROM pubsub_subscriptions WHERE event_type = $4 AND deleted_at IS NULL",
        args![id, event.published_at, event.published_at, &event.event_type],
    )
    .await?;
    let published_at = DateTime::from_timestamp_millis(event.published_at.timestamp_millis())
        .unwrap_or(event.published_at);
    Ok(Some(PubEvent {
        id,
        event_id: event.event_id.clone(),
        event_type: event.event_type.clone(),
        source_key: event.source_key.clone(),
        payload: event.payload.clone(),
        published_at,
    }))
}

pub(super) async fn subscribe(
    c: &mut dyn Conn,
    sub: &NewSubscription,
) -> StoreResult<Subscription> {
    let row = c
        .first(
            "INSERT INTO pubsub_subscriptions (client, event_type, mode, url, created_by, created_at) VALUES ($1,$2,$3,$4,$5,$6) RETURNING *",
            args![
                &sub.client,
                &sub.event_type,
                sub.mode.as_str(),
                &sub.url,
                &sub.created_by,
                sub.created_at,
            ],
        )
        .await?
        .ok_or(StoreError::NotFound)?;
    rows::subscription(&row)
}

pub(super) async fn unsubscribe(
    c: &mut dyn Conn,
    id: i64,
    at: DateTime<Utc>,
) -> StoreResult<Subscription> {
    let row = c
        .first(
            "UPDATE pubsub_subscriptions SET deleted_at = $1 WHERE id = $2 AND deleted_at IS NULL RETURNING *",
            args![at, id],
        )
        .await?
        .ok_or(StoreError::NotFound)?;
    rows::subscription(&row)
}

pub(super) async fn subscriptions(c: &mut dyn Conn) -> StoreResult<Vec<Subscription>> {
    let rows = c
        .fetch("SELECT * FROM pubsub_subscriptions ORDER BY id", vec![])
        .await?;
    rows::all(rows, rows::subscription)
}

/// The deliveries `ids`, in `order`.
async fn deliveries_by_id(
    c: &mut dyn Conn,
    ids: &[i64],
    order: &str,
) -> StoreResult<Vec<Delivery>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "{DELIVERY_SELECT} WHERE d.id IN ({}) ORDER BY {order}",
        marks(1, ids.len())
    );
    let rows = c
        .fetch(&sql, ids.iter().copied().map(Arg::Int).collect())
        .await?;
    rows::all(rows, rows::delivery)
}

pub(super) async fn claim_push(
    c: &mut dyn Conn,
    now: DateTime<Utc>,
    lease: chrono::Duration,
    limit: u32,
) -> StoreResult<Vec<Delivery>> {
    let sql = match c.dialect() {
        // One writer connection: the claim is a single statement, so two
        // workers of this process never claim the same row.
        Dialect::Sqlite => {
            "UPDATE pubsub_deliveries SET claimed_until = $1 WHERE id IN (SELECT d.id FROM pubsub_deliveries d JOIN pubsub_subscriptions s ON s.id = d.subscription_id WHERE d.state = 'pending' AND s.mode = 'push' AND s.deleted_at IS NULL AND d.next_attempt_at <= $2 AND (d.claimed_until IS NULL OR d.claimed_until < $3) ORDER BY d.next_attempt_at, d.id LIMIT $4) RETURNING id"
        }
        // Rows another claimer has locked are skipped; a row it claimed
        // and committed is re-checked (READ COMMITTED) and has a live lease.
        Dialect::Postgres => {
            "WITH c AS (SELECT d.id FROM pubsub_deliveries d JOIN pubsub_subscriptions s ON s.id = d.subscription_id WHERE d.state = 'pending' AND s.mode = 'push' AND s.deleted_at IS NULL AND d.next_attempt_at <= $2 AND (d.claimed_until IS NULL OR d.claimed_until < $3) ORDER BY d.next_attempt_at, d.id LIMIT $4 FOR UPDATE OF d SKIP LOCKED) UPDATE pubsub_deliveries d SET claimed_until = $1 FROM c WHERE d.id = c.id RETURNING d.id"
        }
    };
    let ids: Vec<i64> = c
        .fetch(sql, args![now + lease, now, now, i64::from(limit)])
        .await?
        .iter()
        .map(|r| r.int("id"))
        .collect::<StoreResult<_>>()?;
    deliveries_by_id(c, &ids, "d.next_attempt_at, d.id").await
}

pub(super) async fn finish_push(
    c: &mut dyn Conn,
    id: i64,
    result: &AttemptResult,
    at: DateTime<Utc>,
) -> StoreResult<bool> {
    let (state, next, status, error, done): (&str, Option<DateTime<Utc>>, _, _, _) = match result {
        AttemptResult::Delivered { status } => {
            ("delivered", None, Some(i64::from(*status)), None, Some(at))
        }
        AttemptResult::Retry {
            next_attempt_at,
            status,
            error,
        } => (
            "pending",
            Some(*next_attempt_at),
            status.map(i64::from),
            Some(error.clone()),
            None,
        ),
        AttemptResult::Failed { status, error } => (
            "failed",
            None,
            status.map(i64::from),
            Some(error.clone()),
            Some(at),
        ),
    };
    let n = c
        .exec(
            "UPDATE pubsub_deliveries SET state = $1, attempts = attempts + 1, next_attempt_at = COALESCE($2, next_attempt_at), last_status = $3, last_error = $4, claimed_until = NULL, updated_at = $5, done_at = $6 WHERE id = $7 AND state = 'pending'",
            args![state, next, status, error, at, done, id],
        )
        .await?;
    Ok(n == 1)
}

pub(super) async fn pull(c: &mut dyn Conn, client: &str, limit: u32) -> StoreResult<Vec<Delivery>> {
    let sql = format!(
        "{DELIVERY_SELECT} WHERE s.client = $1 AND s.mode = 'pull' AND s.deleted_at IS NULL AND d.state = 'pending' ORDER BY d.event_pk, d.id LIMIT $2"
    );
    let rows = c.fetch(&sql, args![client, i64::from(limit)]).await?;
    rows::all(rows, rows::delivery)
}

pub(super) async fn ack(
    c: &mut dyn Conn,
    client: &str,
    event_ids: &[String],
    at: DateTime<Utc>,
) -> StoreResult<Vec<String>> {
    if event_ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "UPDATE pubsub_deliveries SET state = 'acked', updated_at = $1, done_at = $2 WHERE state = 'pending' AND subscription_id IN (SELECT id FROM pubsub_subscriptions WHERE client = $3 AND mode = 'pull' AND deleted_at IS NULL) AND event_pk IN (SELECT id FROM pubsub_events WHERE event_id IN ({})) RETURNING event_pk",
        marks(4, event_ids.len())
    );
    let mut a = args![at, at, client];
    a.extend(event_ids.iter().map(Arg::from));
    let pks: Vec<i64> = c
        .fetch(&sql, a)
        .await?
        .iter()
        .map(|r| r.int("event_pk"))
        .collect::<StoreResult<_>>()?;
    if pks.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT event_id FROM pubsub_events WHERE id IN ({}) ORDER BY id",
        marks(1, pks.len())
    );
    c.fetch(&sql, pks.into_iter().map(Arg::Int).collect())
        .await?
        .iter()
        .map(|r| r.text("event_id"))
        .collect()
}

pub(super) async fn deliveries(c: &mut dyn Conn, q: &DeliveryQuery) -> StoreResult<Vec<Delivery>> {
    let sql = format!(
        "{DELIVERY_SELECT} WHERE ($1 IS NULL OR d.subscription_id = $2) AND ($3 IS NULL OR d.state = $4) ORDER BY d.id DESC LIMIT $5"
    );
    let state = q.state.map(|s| s.as_str());
    let rows = c
        .fetch(
            &sql,
            args![
                q.subscription,
                q.subscription,
                state,
                state,
                i64::from(q.limit.max(1)),
            ],
        )
        .await?;
    rows::all(rows, rows::delivery)
}

pub(super) async fn late(
    c: &mut dyn Conn,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
    limit: u32,
) -> StoreResult<Vec<LateDossier>> {
    c.fetch(
        "SELECT d.code, d.agency_code, d.status, d.due_at FROM dossiers d WHERE d.status IN ('accepted', 'processing') AND d.due_at >= $1 AND d.due_at <= $2 AND NOT EXISTS (SELECT 1 FROM pubsub_events e WHERE e.source_key = 'dossier.late:' || d.code) ORDER BY d.due_at LIMIT $3",
        args![since, now, i64::from(limit)],
    )
    .await?
    .iter()
    .map(|r| {
        let status = r.text("status")?;
        Ok(LateDossier {
            code: r.parsed("code", DossierCode::parse)?,
            agency: r.parsed("agency_code", AgencyCode::parse)?,
            status: Status::parse(&status)
                .ok_or_else(|| StoreError::Backend(format!("unknown status {status}")))?,
            due_at: r.time("due_at")?,
        })
    })
    .collect()
}

#[async_trait]
impl<B: Backend> PubSubStore for SqlStore<B> {
    async fn publish_event(&self, event: &NewPubEvent) -> StoreResult<Option<PubEvent>> {
        let mut tx = self.begin().await?;
        let e = publish(tx.conn(), event).await?;
        tx.commit().await?;
        Ok(e)
    }

    async fn create_subscription(
        &self,
        sub: &NewSubscription,
        entry: AuditEntry,
    ) -> StoreResult<Subscription> {
        let mut tx = self.begin().await?;
        let s = subscribe(tx.conn(), sub).await?;
        self.finish(tx, entry).await?;
        Ok(s)
    }

    async fn delete_subscription(
        &self,
        id: i64,
        at: DateTime<Utc>,
        entry: AuditEntry,
    ) -> StoreResult<Subscription> {
        let mut tx = self.begin().await?;
        let s = unsubscribe(tx.conn(), id, at).await?;
        self.finish(tx, entry).await?;
        Ok(s)
    }

    async fn subscriptions(&self) -> StoreResult<Vec<Subscription>> {
        subscriptions(self.read().await?.as_mut()).await
    }

    async fn claim_push_deliveries(
        &self,
        now: DateTime<Utc>,
        lease: chrono::Duration,
        limit: u32,
    ) -> StoreResult<Vec<Delivery>> {
        claim_push(self.write().await?.as_mut(), now, lease, limit).await
    }

    async fn finish_push_delivery(
        &self,
        id: i64,
        result: &AttemptResult,
        at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        finish_push(self.write().await?.as_mut(), id, result, at).await
    }

    async fn pull_deliveries(&self, client: &str, limit: u32) -> StoreResult<Vec<Delivery>> {
        pull(self.read().await?.as_mut(), client, limit).await
    }

    async fn ack_deliveries(
        &self,
        client: &str,
        event_ids: &[String],
        at: DateTime<Utc>,
    ) -> StoreResult<Vec<String>> {
        ack(self.write().await?.as_mut(), client, event_ids, at).await
    }

    async fn deliveries(&self, q: &DeliveryQuery) -> StoreResult<Vec<Delivery>> {
        deliveries(self.read().await?.as_mut(), q).await
    }

    async fn late_dossiers(
        &self,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<LateDossier>> {
        late(self.read().await?.as_mut(), since, now, limit).await
    }
}

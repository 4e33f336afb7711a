//! Publish and subscribe in the binary: the dossier events of the outbox
//! and `dossier.late` are published (validated against their event type's
//! schema, once per source), and pending push deliveries are POSTed to
//! their subscribers with retries and exponential back-off, every attempt
//! recorded in the exchange message log. Pull deliveries are served on the
//! gateway's listener (`motcua_web::exchange::pubsub::pull_router`).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::body::Bytes;
use chrono::{DateTime, Utc};
use motcua_exchange::Gateway;
use motcua_exchange::pubsub::{
    Backoff, DOSSIER_LATE, EventTypes, PushClient, envelope, new_event_id, push_record,
};
use motcua_store::{AttemptResult, Delivery, NewPubEvent, OutboxEvent, Store, late_source_key};
use serde::{Deserialize, Serialize};

/// The `[pubsub]` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PubSubConfig {
    /// Wait after the first failed push attempt, milliseconds; doubled
    /// after each further failure.
    pub retry_base_ms: u64,
    /// Longest wait between two attempts, milliseconds.
    pub retry_max_ms: u64,
    /// Failed attempts after which a push delivery is marked failed.
    pub max_attempts: u32,
    /// Seconds a subscriber has to answer a push.
    pub push_timeout_secs: u64,
    /// How often the push worker looks for due deliveries, milliseconds.
    pub poll_ms: u64,
    /// How often dossiers are checked for lateness, seconds.
    pub late_check_secs: u64,
    /// PEM file of extra root certificates that `https://` receivers may
    /// chain to (a province's own CA), beside the system's roots.
    pub push_ca_file: Option<std::path::PathBuf>,
}

impl Default for PubSubConfig {
    fn default() -> Self {
        Self {
            retry_base_ms: 5_000,
            retry_max_ms: 3_600_000,
            max_attempts: 12,
            push_timeout_secs: 10,
            poll_ms: 1_000,
            late_check_secs: 60,
            push_ca_file: None,
        }
    }
}

impl PubSubConfig {
    pub fn backoff(&self) -> Backoff {
        Backoff {
            base: Duration::from_millis(self.retry_base_ms.max(1)),
            max: Duration::from_millis(self.retry_max_ms.max(self.retry_base_ms).max(1)),
            max_attempts: self.max_attempts.max(1),
        }
    }
}

/// How long a claimed push delivery stays with its worker: longer than an
/// attempt can take.
fn lease(cfg: &PubSubConfig) -> chrono::Duration {
    chrono::Duration::seconds(cfg.push_timeout_secs.max(1) as i64 * 2 + 30)
}

/// Publishes the outbox events whose topic is a known event type, each
/// once (keyed by the outbox id: a batch claimed again after a crash does
/// not publish twice). A payload that does not match its schema is not
/// published (and said so); a store error stops the batch, which is then
/// not completed and comes back.
pub async fn publish_outbox(
    store: &dyn Store,
    types: &EventTypes,
    events: &[OutboxEvent],
) -> anyhow::Result<usize> {
    let mut published = 0;
    for e in events {
        let Some(t) = types.get(&e.topic) else {
            continue;
        };
        if let Err(err) = t.validate(&e.payload) {
            tracing::warn!(outbox = e.id, error = %err, "event not published");
            continue;
        }
        let event = NewPubEvent {
            event_id: new_event_id()?,
            event_type: e.topic.clone(),
            source_key: format!("outbox:{}", e.id),
            payload: e.payload.clone(),
            published_at: Utc::now(),
        };
        if store.publish_event(&event).await?.is_some() {
            published += 1;
        }
    }
    Ok(published)
}

/// Publishes `dossier.late` for every dossier being processed whose due
/// time is in `[since, now]` and that was not reported yet; returns how
/// many were published and where the next run starts.
pub async fn publish_late(
    store: &dyn Store,
    types: &EventTypes,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
) -> anyhow::Result<(usize, DateTime<Utc>)> {
    const BATCH: u32 = 500;
    let mut since = since;
    let mut published = 0;
    loop {
        let late = store.late_dossiers(since, now, BATCH).await?;
        for d in &late {
            let payload = serde_json::json!({
                "code": d.code.as_str(),
                "agency": d.agency.as_str(),
                "status": d.status.as_str(),
                "due_at": d.due_at,
                "at": now,
            });
            types.validate(DOSSIER_LATE, &payload)?;
            let event = NewPubEvent {
                event_id: new_event_id()?,
                event_type: DOSSIER_LATE.into(),
                source_key: late_source_key(&d.code),
                payload,
                published_at: now,
            };
            if store.publish_event(&event).await?.is_some() {
                published += 1;
            }
        }
        match late.last() {
            // A full batch: go on from the last due time (the ones reported
            // are left out by the query).
            Some(last) if late.len() as u32 == BATCH => since = last.due_at,
            _ => return Ok((published, now)),
        }
    }
}

/// Publishes the lateness events periodically. The first run looks at
/// every dossier; later runs at the due times since the run before (less a
/// margin, for clocks of nodes that differ a little).
pub fn spawn_late_worker(store: Arc<dyn Store>, every: Duration) {
    tokio::spawn(async move {
        let types = EventTypes::builtin();
        let mut since = DateTime::<Utc>::UNIX_EPOCH;
        loop {
            let now = Utc::now();
            match publish_late(store.as_ref(), &types, since, now).await {
                Ok((n, next)) => {
                    if n > 0 {
                        tracing::info!(published = n, "dossier.late events published");
                    }
                    since = next - chrono::Duration::minutes(5);
                }
                Err(e) => tracing::warn!(error = %e, "dossier.late"),
            }
            tokio::time::sleep(every).await;
        }
    });
}

/// Attempts one push delivery: POST, log record, result in the store.
pub async fn push_one(
    store: &dyn Store,
    gateway: &Gateway,
    client: &PushClient,
    backoff: &Backoff,
    d: &Delivery,
) -> anyhow::Result<AttemptResult> {
    let instance = gateway.registry().instance().to_string();
    let url = d.url.clone().unwrap_or_default();
    let body = envelope(
        &d.event.event_id,
        &d.event.event_type,
        &format!("/{instance}/motcua"),
        d.event.published_at,
        &d.event.payload,
    );
    let body = Bytes::from(serde_json::to_vec(&body)?);
    let start = Utc::now();
    let attempt = d.attempts + 1;
    let outcome = client
        .push(&url, &d.event.event_id, &d.event.event_type, body.clone())
        .await;
    let record = push_record(
        &instance,
        &d.event.event_id,
        &d.event.event_type,
        &d.client,
        d.subscription_id,
        attempt,
        &url,
        &body,
        start,
        &outcome,
    );
    // The attempt is in the message log before its result is in the store
    // (a crash in between makes one more attempt, never a lost one).
    if let Err(e) = gateway.log().append(&record).await {
        tracing::warn!(error = %e, event = %d.event.event_id, "push attempt not logged");
    }
    let now = Utc::now();
    let result = match (&outcome.error, outcome.status) {
        (None, Some(status)) => AttemptResult::Delivered { status },
        (None, None) => AttemptResult::Delivered { status: 200 },
        (Some(error), status) if backoff.exhausted(attempt) => AttemptResult::Failed {
            status,
            error: error.clone(),
        },
        (Some(error), status) => AttemptResult::Retry {
            next_attempt_at: now
                + chrono::Duration::from_std(backoff.delay(attempt))
                    .unwrap_or(chrono::Duration::hours(1)),
            status,
            error: error.clone(),
        },
    };
    store.finish_push_delivery(d.id, &result, now).await?;
    Ok(result)
}

/// The client of push deliveries with the configured extra roots; an
/// unreadable or empty CA file is an error at start, not at the first push.
pub fn push_client(cfg: &PubSubConfig) -> anyhow::Result<PushClient> {
    let roots = match &cfg.push_ca_file {
        Some(path) => {
            let pem = std::fs::read(path)
                .with_context(|| format!("[pubsub] push_ca_file {}", path.display()))?;
            motcua_exchange::pubsub::read_pem_roots(&pem)
                .map_err(|e| anyhow::anyhow!("[pubsub] push_ca_file {}: {e}", path.display()))?
        }
        None => Vec::new(),
    };
    PushClient::new(
        Duration::from_secs(5),
        Duration::from_secs(cfg.push_timeout_secs.max(1)),
        &roots,
    )
    .map_err(|e| anyhow::anyhow!(e))
}

/// The push worker: claims due deliveries (shared with the other nodes
/// through the store) and attempts them concurrently.
pub fn spawn_push_worker(
    store: Arc<dyn Store>,
    gateway: Gateway,
    cfg: &PubSubConfig,
) -> anyhow::Result<()> {
    let cfg = cfg.clone();
    let client = push_client(&cfg)?;
    tokio::spawn(async move {
        let backoff = cfg.backoff();
        let poll = Duration::from_millis(cfg.poll_ms.max(10));
        loop {
            match store
                .claim_push_deliveries(Utc::now(), lease(&cfg), 32)
                .await
            {
                Ok(batch) if !batch.is_empty() => {
                    let mut tasks = tokio::task::JoinSet::new();
                    for d in batch {
                        let (store, gateway, client) =
                            (store.clone(), gateway.clone(), client.clone());
                        tasks.spawn(async move {
                            match push_one(store.as_ref(), &gateway, &client, &backoff, &d).await {
                                Ok(AttemptResult::Failed { error, .. }) => tracing::warn!(
                                    event = %d.event.event_id, subscription = d.subscription_id,
                                    error = %error, "push delivery failed for good"
                                ),
                                Ok(_) => {}
                                Err(e) => tracing::warn!(error = %e, "push delivery"),
                            }
                        });
                    }
                    while tasks.join_next().await.is_some() {}
                    continue;
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "claiming push deliveries"),
            }
            tokio::time::sleep(poll).await;
        }
    });
    Ok(())
}

/// Starts the publish/subscribe work of a node: lateness events always,
/// push deliveries where the gateway runs (they are logged in its log).
pub fn spawn_workers(
    store: Arc<dyn Store>,
    gateway: Option<Gateway>,
    cfg: &PubSubConfig,
) -> anyhow::Result<()> {
    if let Some(gw) = gateway {
        spawn_push_worker(store.clone(), gw, cfg)?;
    }
    spawn_late_worker(store, Duration::from_secs(cfg.late_check_secs.max(1)));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use motcua_domain::dossier::Status;
    use motcua_store::conformance::{entry, new_dossier, seed};
    use motcua_store::prelude::*;
    use motcua_store::{DeliveryMode, DeliveryQuery, DossierUpdate, NewSubscription};
    use motcua_store_sqlite::{Durability, SqliteStore};

    async fn store() -> SqliteStore {
        let dir = std::env::temp_dir().join(format!("motcua-pubsub-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let s = motcua_store_sqlite::open(
            &format!("sqlite://{}/t.db", dir.display()),
            Durability::Normal,
        )
        .await
        .expect("open");
        s.migrate().await.expect("migrate");
        s
    }

    #[tokio::test]
    async fn outbox_events_and_lateness_are_published_once_and_validated() {
        let s = store().await;
        seed(&s).await.expect("seed");
        let types = EventTypes::builtin();
        let now = Utc::now();
        for event_type in ["dossier.accepted", DOSSIER_LATE] {
            s.create_subscription(
                &NewSubscription {
                    client: "VN/GOV/A/B".into(),
                    event_type: event_type.into(),
                    mode: DeliveryMode::Pull,
                    url: None,
                    created_by: "admin".into(),
                    created_at: now,
                },
                entry("exchange.pubsub.subscribe", now),
            )
            .await
            .expect("subscribe");
        }
        // A dossier accepted with its due time already past.
        let d = s
            .create_dossier(new_dossier("UB00073", "00073", None, "An", now).expect("fixture"))
            .await
            .expect("create");
        let mut l = d.lifecycle.clone();
        l.status = Status::Accepted;
        l.accepted_at = Some(now);
        l.due_at = Some(now - chrono::Duration::minutes(1));
        s.update_dossier(DossierUpdate {
            code: d.code.clone(),
            expected_version: d.version,
            lifecycle: l,
            new_documents: vec![],
            audit: entry("dossier.accept", now),
            event: "dossier.accepted".into(),
            at: now,
        })
        .await
        .expect("accept");
        let mut events = s.claim_events(100).await.expect("claim");
        assert_eq!(events.len(), 2, "submitted and accepted");
        // A payload that does not match its schema is not published.
        let mut bad = events[1].clone();
        bad.id = 999;
        bad.payload["status"] = "flying".into();
        events.push(bad);
        assert_eq!(
            publish_outbox(&s, &types, &events).await.expect("publish"),
            2
        );
        assert_eq!(
            publish_outbox(&s, &types, &events).await.expect("again"),
            0,
            "a batch claimed again is not published twice"
        );
        let pulled = s.pull_deliveries("VN/GOV/A/B", 10).await.expect("pull");
        assert_eq!(pulled.len(), 1, "only the subscribed type");
        assert_eq!(pulled[0].event.event_type, "dossier.accepted");
        assert_eq!(pulled[0].event.payload["code"], d.code.as_str());

        let (n, next) = publish_late(&s, &types, DateTime::<Utc>::UNIX_EPOCH, now)
            .await
            .expect("late");
        assert_eq!((n, next), (1, now));
        let (n, _) = publish_late(&s, &types, DateTime::<Utc>::UNIX_EPOCH, now)
            .await
            .expect("late again");
        assert_eq!(n, 0, "once per dossier");
        let all = s
            .deliveries(&DeliveryQuery {
                limit: 10,
                ..Default::default()
            })
            .await
            .expect("deliveries");
        let late: Vec<_> = all
            .iter()
            .filter(|x| x.event.event_type == DOSSIER_LATE)
            .collect();
        assert_eq!(late.len(), 1);
        assert_eq!(late[0].event.payload["code"], d.code.as_str());
        assert_eq!(late[0].event.payload["status"], "accepted");
    }

    #[test]
    fn backoff_from_the_configuration() {
        let c = PubSubConfig {
            retry_base_ms: 100,
            retry_max_ms: 50,
            max_attempts: 0,
            ..PubSubConfig::default()
        };
        let b = c.backoff();
        assert_eq!(b.delay(1), Duration::from_millis(100), "max below base");
        assert_eq!(b.max_attempts, 1);
    }
}

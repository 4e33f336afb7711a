//! Publish / subscribe of the exchange (see `docs/exchange.md`): events
//! published once per source, subscriptions, and their push and pull
//! deliveries; and the late dossiers whose events the platform publishes.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use motcua_domain::audit::AuditEntry;
use motcua_domain::dossier::Status;
use motcua_domain::{AgencyCode, DossierCode};
use serde::{Deserialize, Serialize};

use crate::StoreResult;

/// Events, subscriptions and deliveries of the exchange (SQL:
/// `sql/pubsub.rs`; stories: `conformance/pubsub.rs`).
#[async_trait]
pub trait PubSubStore: Send + Sync {
    /// Publishes an event once per `source_key`: stores it and a pending
    /// delivery for every live subscription to its type, in one
    /// transaction. `None` (nothing written) when an event with that source
    /// key was published before — so a retried publication is harmless.
    async fn publish_event(&self, event: &NewPubEvent) -> StoreResult<Option<PubEvent>>;
    /// Creates a subscription and its audit record in one transaction.
    async fn create_subscription(
        &self,
        sub: &NewSubscription,
        audit: AuditEntry,
    ) -> StoreResult<Subscription>;
    /// Ends a live subscription (kept, with `deleted_at`; its pending
    /// deliveries are no longer offered) and writes its audit record;
    /// `NotFound` when there is no live subscription `id`.
    async fn delete_subscription(
        &self,
        id: i64,
        at: DateTime<Utc>,
        audit: AuditEntry,
    ) -> StoreResult<Subscription>;
    /// Every subscription, ended ones included, by id.
    async fn subscriptions(&self) -> StoreResult<Vec<Subscription>>;
    /// Claims at most `limit` pending push deliveries due at `now` (of live
    /// subscriptions) for `lease`; a delivery claimed by another node
    /// whose lease runs is skipped.
    async fn claim_push_deliveries(
        &self,
        now: DateTime<Utc>,
        lease: chrono::Duration,
        limit: u32,
    ) -> StoreResult<Vec<Delivery>>;
    /// Records the result of a push attempt on a pending delivery; returns
    /// `false` when the delivery was not pending any more (nothing
    /// written).
    async fn finish_push_delivery(
        &self,
        id: i64,
        result: &AttemptResult,
        at: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// The pending deliveries of `client`'s live pull subscriptions, oldest
    /// event first, at most `limit`. Reading does not change them: they are
    /// offered again until acknowledged (at-least-once).
    async fn pull_deliveries(&self, client: &str, limit: u32) -> StoreResult<Vec<Delivery>>;
    /// Acknowledges the pending deliveries of `event_ids` to `client`'s live
    /// pull subscriptions; returns the event ids acknowledged by this call
    /// (already acknowledged or unknown ids are left out).
    async fn ack_deliveries(
        &self,
        client: &str,
        event_ids: &[String],
        at: DateTime<Utc>,
    ) -> StoreResult<Vec<String>>;
    /// Deliveries for the administrators' view, newest first.
    async fn deliveries(&self, q: &DeliveryQuery) -> StoreResult<Vec<Delivery>>;
    /// Dossiers being processed (accepted or processing) whose due time is
    /// in `[since, now]` and for which no `dossier.late` event was published
    /// ([`late_source_key`]), earliest due first, at most `limit`.
    async fn late_dossiers(
        &self,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<LateDossier>>;
}

/// How a subscriber receives events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryMode {
    /// The platform POSTs each event to the subscriber's URL.
    Push,
    /// The subscriber fetches pending events and acknowledges them.
    Pull,
}

motcua_domain::string_forms!(DeliveryMode {
    Push => "push",
    Pull => "pull",
});

/// Where a delivery is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryState {
    /// Not yet delivered (push: waiting for its next attempt; pull: not
    /// yet acknowledged).
    Pending,
    /// Pushed: the subscriber answered 2xx.
    Delivered,
    /// Pulled and acknowledged by the subscriber.
    Acked,
    /// Pushed without success `max_attempts` times; given up.
    Failed,
}

motcua_domain::string_forms!(DeliveryState {
    Pending => "pending",
    Delivered => "delivered",
    Acked => "acked",
    Failed => "failed",
});

/// An event to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPubEvent {
    /// Unique across nodes (a random UUID).
    pub event_id: String,
    pub event_type: String,
    /// What the event comes from, unique: an event is published once per
    /// key (`outbox:<id>`, [`late_source_key`]).
    pub source_key: String,
    pub payload: serde_json::Value,
    pub published_at: DateTime<Utc>,
}

/// A published event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PubEvent {
    #[serde(skip)]
    pub id: i64,
    pub event_id: String,
    pub event_type: String,
    pub source_key: String,
    pub payload: serde_json::Value,
    pub published_at: DateTime<Utc>,
}

/// A subscription to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSubscription {
    /// The subscriber: a client subsystem of the exchange registry.
    pub client: String,
    pub event_type: String,
    pub mode: DeliveryMode,
    /// Push only: where to POST.
    pub url: Option<String>,
    /// The administrator who granted it.
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Subscription {
    pub id: i64,
    pub client: String,
    pub event_type: String,
    pub mode: DeliveryMode,
    pub url: Option<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
}

/// One event for one subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Delivery {
    pub id: i64,
    pub subscription_id: i64,
    pub client: String,
    pub mode: DeliveryMode,
    pub url: Option<String>,
    pub event: PubEvent,
    pub state: DeliveryState,
    /// Push attempts made so far.
    pub attempts: u32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub updated_at: DateTime<Utc>,
    /// Delivered, acknowledged or failed at.
    pub done_at: Option<DateTime<Utc>>,
}

/// The result of one push attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptResult {
    Delivered {
        status: u16,
    },
    /// Failed; try again at `next_attempt_at`.
    Retry {
        next_attempt_at: DateTime<Utc>,
        status: Option<u16>,
        error: String,
    },
    /// Failed for the last time.
    Failed {
        status: Option<u16>,
        error: String,
    },
}

#[derive(Debug, Clone, Default)]
pub struct DeliveryQuery {
    pub subscription: Option<i64>,
    pub state: Option<DeliveryState>,
    pub limit: u32,
}

/// A dossier whose due time passed while it was being processed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LateDossier {
    pub code: DossierCode,
    pub agency: AgencyCode,
    pub status: Status,
    pub due_at: DateTime<Utc>,
}

/// The source key of a dossier's `dossier.late` event (once per dossier).
pub fn late_source_key(code: &DossierCode) -> String {
    format!("dossier.late:{}", code.as_str())
}

/// The statuses in which a dossier's clock runs (lateness is reported).
pub const LATE_STATUSES: [Status; 2] = [Status::Accepted, Status::Processing];

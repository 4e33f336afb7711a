//! The outbox: events written with the changes that caused them, claimed
//! by workers with a lease and completed once.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::StoreResult;

/// Claiming and completing outbox events (SQL: `sql/outbox.rs`; stories:
/// `conformance/outbox.rs`).
#[async_trait]
pub trait OutboxStore: Send + Sync {
    async fn claim_events(&self, limit: u32) -> StoreResult<Vec<OutboxEvent>>;
    /// Marks a claimed event done. Idempotent: returns `true` if this call
    /// completed it, `false` if it was already done (by another worker whose
    /// lease had run out, say) — the caller then knows it processed twice.
    async fn complete_event(&self, id: i64) -> StoreResult<bool>;
    /// Completes several events in one transaction; returns how many were
    /// not completed before.
    async fn complete_events(&self, ids: &[i64]) -> StoreResult<u64>;
    async fn pending_events(&self) -> StoreResult<u64>;
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEvent {
    pub id: i64,
    pub topic: String,
    pub payload: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

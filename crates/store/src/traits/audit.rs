//! The audit chain: appends, reads, the signed checkpoint of its head, and
//! the dossiers whose status the chain does not explain.

use async_trait::async_trait;
use motcua_domain::DossierCode;
use motcua_domain::audit::{AuditEntry, AuditRecord};

use crate::StoreResult;

/// The hash-chained audit records and their signed head (SQL:
/// `sql/audit.rs`; stories: `conformance/audit.rs`).
#[async_trait]
pub trait AuditStore: Send + Sync {
    async fn append_audit(&self, entry: AuditEntry) -> StoreResult<AuditRecord>;
    /// Records with `seq > after`, in order, at most `limit`.
    async fn audit_records(&self, after: i64, limit: u32) -> StoreResult<Vec<AuditRecord>>;
    async fn dossier_audit(&self, code: &DossierCode) -> StoreResult<Vec<AuditRecord>>;
    /// The record `seq`.
    async fn audit_record(&self, seq: i64) -> StoreResult<Option<AuditRecord>>;
    /// The last record's (seq, hash).
    async fn audit_head(&self) -> StoreResult<Option<(i64, String)>>;
    /// Signs the current head (an installation of an earlier release has
    /// none); nothing without a key or a record.
    async fn sign_audit_head(&self) -> StoreResult<()>;
    /// The signed head of the chain written by the last append.
    async fn audit_checkpoint(&self) -> StoreResult<Option<motcua_domain::audit::Checkpoint>>;
    /// Dossiers whose status is not the one set by the newest of their
    /// audit records (changed outside the application, or a record lost),
    /// at most `limit`.
    async fn dossier_state_problems(&self, limit: u32) -> StoreResult<Vec<StateProblem>>;
}

/// A dossier whose stored status is not what its audit records say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateProblem {
    pub code: DossierCode,
    pub status: String,
    /// The sequence number the row names as its latest record.
    pub audit_seq: Option<i64>,
    pub reason: String,
}

//! Key-value settings (e.g. "demo seeded", the exchange registry, calendar
//! overrides), plain, audited or compare-and-set.

use async_trait::async_trait;
use motcua_domain::audit::AuditEntry;

use crate::StoreResult;

/// Key-value settings (SQL: `sql/settings.rs`; stories:
/// `conformance/settings.rs`).
#[async_trait]
pub trait SettingsStore: Send + Sync {
    async fn meta(&self, key: &str) -> StoreResult<Option<String>>;
    async fn set_meta(&self, key: &str, value: &str) -> StoreResult<()>;
    /// Upserts a setting and appends its audit record in one transaction.
    async fn set_meta_audited(&self, key: &str, value: &str, audit: AuditEntry) -> StoreResult<()>;
    /// Compare-and-set of a setting: writes `value`, and appends `audit` in
    /// the same transaction, only if the current value is `expected`
    /// (`None`: the key is absent). Returns whether it wrote; on `false`
    /// neither the setting nor the audit chain changed. Two writers that
    /// read the same value cannot both win, on any number of nodes.
    async fn set_meta_if(
        &self,
        key: &str,
        expected: Option<&str>,
        value: &str,
        audit: AuditEntry,
    ) -> StoreResult<bool>;
}

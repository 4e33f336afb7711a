//! Repository traits of motcua. Each backend (SQLite, PostgreSQL) lives in
//! its own crate and must pass the [`conformance`] suite.
//!
//! [`Store`] is made of one sub-trait per module ([`AccountStore`],
//! [`CatalogueStore`], [`DossierStore`], [`AuditStore`], [`OutboxStore`],
//! [`SettingsStore`], [`PubSubStore`], [`MaintenanceStore`]), implemented
//! once for every backend over the shared SQL ([`sql::SqlStore`]). A new
//! module adds its sub-trait (in `traits/`), its SQL and implementation (in
//! `sql/`) and its stories (in `conformance/`). Callers bring the
//! sub-traits' methods into scope with `use motcua_store::prelude::*;`.
//!
//! Every command is one transaction: the new state, its audit record
//! (linked into the hash chain) and its outbox event are written together
//! or not at all.
#![forbid(unsafe_code)]

pub mod bulk;
pub mod conformance;
pub mod objects;
mod objects_s3;
pub mod query;
pub mod sql;
mod traits;

pub use bulk::{Cell, ColKind, ExplainTarget, TABLES, TableDef, TableRows};
pub use objects::{LocalObjectStore, ObjectRef, ObjectStore};
pub use objects_s3::{S3ObjectStore, S3Options};
pub use traits::accounts::{
    AccountStore, LinkReview, NewUser, ThrottleState, User, Verification, VerificationMethod,
};
pub use traits::audit::{AuditStore, StateProblem};
pub use traits::catalogue::{Availability, CatalogueStore, ImportOutcome, StoredProcedure};
pub use traits::dossiers::{
    Applicant, Dossier, DossierQuery, DossierStore, DossierSummary, DossierUpdate, NewDossier,
    QueueCount, StoredDocument, new_access_code, vietnam_day,
};
pub use traits::maintenance::MaintenanceStore;
pub use traits::outbox::{OutboxEvent, OutboxStore};
pub use traits::pubsub::{
    AttemptResult, Delivery, DeliveryMode, DeliveryQuery, DeliveryState, LATE_STATUSES,
    LateDossier, NewPubEvent, NewSubscription, PubEvent, PubSubStore, Subscription,
    late_source_key,
};
pub use traits::settings::SettingsStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// Someone else changed the record first; nothing was written.
    #[error("the record was changed by someone else")]
    Conflict,
    #[error("already exists: {0}")]
    Duplicate(String),
    #[error("invalid: {0}")]
    Invalid(String),
    #[error("storage error: {0}")]
    Backend(String),
    /// The database or its driver failed; its error is the source.
    #[error("database error: {0}")]
    Database(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl StoreError {
    /// A failure of the database, keeping the driver's error as the source.
    pub fn backend(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        StoreError::Database(Box::new(e))
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Everything motcua stores: every module's sub-trait together. Anything
/// that implements them all is a `Store` (see the blanket implementation),
/// so code keeps one `Arc<dyn Store>` and calls any module's methods on it
/// with [`prelude`] in scope.
pub trait Store:
    AccountStore
    + CatalogueStore
    + DossierStore
    + AuditStore
    + OutboxStore
    + SettingsStore
    + PubSubStore
    + MaintenanceStore
    + Send
    + Sync
    + 'static
{
}

impl<T> Store for T where
    T: AccountStore
        + CatalogueStore
        + DossierStore
        + AuditStore
        + OutboxStore
        + SettingsStore
        + PubSubStore
        + MaintenanceStore
        + Send
        + Sync
        + 'static
{
}

/// The sub-traits of [`Store`], whose methods a caller needs in scope:
/// `use motcua_store::prelude::*;`.
pub mod prelude {
    pub use crate::{
        AccountStore, AuditStore, CatalogueStore, DossierStore, MaintenanceStore, OutboxStore,
        PubSubStore, SettingsStore,
    };
}

#[cfg(test)]
mod tests {
    use super::{DeliveryMode, DeliveryState, VerificationMethod};
    use motcua_domain::strings::check_serde_names;

    #[test]
    fn serde_names_are_the_string_forms() {
        check_serde_names(&VerificationMethod::ALL, VerificationMethod::as_str);
        check_serde_names(&DeliveryMode::ALL, DeliveryMode::as_str);
        check_serde_names(&DeliveryState::ALL, DeliveryState::as_str);
    }
}

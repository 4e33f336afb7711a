//! Repository traits of motcua. Each backend (SQLite, PostgreSQL) lives in
//! its own crate and must pass the [`conformance`] suite.
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

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use motcua_domain::audit::{AuditEntry, AuditRecord};
use motcua_domain::dossier::{Channel, Lifecycle, Role, Status};
use motcua_domain::procedure::Procedure;
use motcua_domain::units::{AdminUnit, Agency, AgencyKind};
use motcua_domain::{AgencyCode, DossierCode, UnitCode};
use serde::{Deserialize, Serialize};

pub use bulk::{Cell, ColKind, ExplainTarget, TABLES, TableDef, TableRows};
pub use objects::{LocalObjectStore, ObjectRef, ObjectStore};
pub use objects_s3::{S3ObjectStore, S3Options};

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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub password_hash: String,
    pub full_name: String,
    pub national_id: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub roles: Vec<Role>,
    pub agency_code: Option<AgencyCode>,
    pub disabled: bool,
    pub created_at: DateTime<Utc>,
    /// How `national_id` was checked; `None`: typed by the user, unchecked.
    pub national_id_verified: Option<Verification>,
}

impl User {
    /// The national ID number if, and only if, it has been verified: the
    /// one rule that decides whether a number may grant anything (counter
    /// dossiers under "my dossiers", data read from national registries).
    pub fn verified_national_id(&self) -> Option<&str> {
        self.national_id_verified
            .as_ref()
            .and(self.national_id.as_deref())
    }
}

/// How a national ID number was verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerificationMethod {
    /// At the counter, by an officer who saw the identity card.
    Counter,
    /// By a trusted identity provider (sign-in with the national identity).
    IdentityProvider,
    /// Seeded as verified by `serve --demo`, without any check.
    Demo,
}

motcua_domain::string_forms!(VerificationMethod {
    Counter => "counter",
    IdentityProvider => "identity_provider",
    Demo => "demo",
});

/// Who verified a national ID number, how and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verification {
    pub at: DateTime<Utc>,
    /// The officer's user name, the identity provider, or `demo`.
    pub by: String,
    pub method: VerificationMethod,
}

/// A counter dossier that was linked to an account by an unverified
/// national ID number before verification existed: unlinked by the
/// upgrade and waiting for staff to keep or remove the link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LinkReview {
    pub id: i64,
    pub dossier_code: DossierCode,
    pub agency_code: AgencyCode,
    pub applicant_name: String,
    pub applicant_national_id: String,
    pub user_id: i64,
    pub username: String,
    /// The account's national ID number if it is verified now.
    pub user_verified_national_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub resolved_by: Option<String>,
    /// `kept` or `removed`.
    pub resolution: Option<String>,
}

/// Failures counted under one key in the current window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThrottleState {
    pub key: String,
    pub failures: u32,
    pub window_start: DateTime<Utc>,
    pub last_at: DateTime<Utc>,
}

/// Whether a procedure may be filed in a unit (a province or a commune),
/// as decided by the province; absent: the default (national procedures
/// everywhere, a province's own procedures in that province).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Availability {
    pub unit_code: UnitCode,
    pub procedure_code: String,
    pub available: bool,
    pub changed_at: DateTime<Utc>,
    pub changed_by: String,
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

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUser {
    pub username: String,
    pub password_hash: String,
    pub full_name: String,
    pub national_id: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub roles: Vec<Role>,
    pub agency_code: Option<AgencyCode>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StoredProcedure {
    pub definition: Procedure,
    pub enabled: bool,
    pub imported_at: DateTime<Utc>,
    /// The province that imported it; `None`: the national catalogue.
    pub home_province: Option<UnitCode>,
}

/// What happened to a procedure on import.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportOutcome {
    Added,
    Unchanged,
}

/// A document attached to a dossier; the bytes live in the object store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredDocument {
    pub document_id: String,
    pub filename: String,
    pub content_type: String,
    pub size: u64,
    pub sha256: String,
    pub uploaded_at: DateTime<Utc>,
    /// `initial` or `supplement`.
    pub stage: String,
}

/// The applicant as written on the dossier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applicant {
    pub user_id: Option<i64>,
    pub full_name: String,
    pub national_id: String,
    pub phone: Option<String>,
    pub email: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewDossier {
    pub procedure_code: String,
    pub procedure_version: u32,
    pub agency_code: AgencyCode,
    pub unit_code: UnitCode,
    pub channel: Channel,
    pub applicant: Applicant,
    pub fields: serde_json::Map<String, serde_json::Value>,
    pub documents: Vec<StoredDocument>,
    pub submitted_at: DateTime<Utc>,
    pub lifecycle: Lifecycle,
    /// Audit entry of the submission; the store fills in the dossier code.
    pub audit: AuditEntry,
    pub event: String,
    /// The secret printed on the receipt (see [`Dossier::access_code`]).
    pub access_code: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Dossier {
    pub id: i64,
    pub code: DossierCode,
    pub procedure_code: String,
    pub procedure_version: u32,
    pub agency_code: AgencyCode,
    pub unit_code: UnitCode,
    pub channel: Channel,
    pub applicant: Applicant,
    pub fields: serde_json::Map<String, serde_json::Value>,
    pub documents: Vec<StoredDocument>,
    pub submitted_at: DateTime<Utc>,
    pub lifecycle: Lifecycle,
    /// Optimistic-concurrency version, bumped by every update.
    pub version: i64,
    pub updated_at: DateTime<Utc>,
    /// The secret printed on the receipt (Form 01): with the code, it
    /// shows the dossier to whoever holds the paper.
    pub access_code: String,
}

/// A change decided by the domain, to be written in one transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct DossierUpdate {
    pub code: DossierCode,
    pub expected_version: i64,
    pub lifecycle: Lifecycle,
    pub new_documents: Vec<StoredDocument>,
    pub audit: AuditEntry,
    pub event: String,
    pub at: DateTime<Utc>,
}

/// A row of a list (workqueue, my dossiers, search): no form data.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DossierSummary {
    pub code: DossierCode,
    pub procedure_code: String,
    pub agency_code: AgencyCode,
    pub applicant_name: String,
    pub status: Status,
    pub holder: Option<Role>,
    pub channel: Channel,
    pub submitted_at: DateTime<Utc>,
    pub due_at: Option<DateTime<Utc>>,
    pub appointment_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Default)]
pub struct DossierQuery {
    pub agency: Option<AgencyCode>,
    /// Only dossiers held by one of these roles.
    pub holders: Vec<Role>,
    pub statuses: Vec<Status>,
    pub applicant_user_id: Option<i64>,
    /// Staff search: a whole dossier code, a national ID number, or a run
    /// of whole words of the applicant's name (diacritics ignored).
    pub text: Option<String>,
    pub limit: u32,
}

/// One line of a workqueue's counts: dossiers of an agency held by `holder`
/// in `status`; of them, how many open ones are past their due time and
/// how many fall due soon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueueCount {
    pub holder: Role,
    pub status: Status,
    pub total: u64,
    pub overdue: u64,
    pub due_soon: u64,
}

impl QueueCount {
    /// From a row of [`query::queue_counts`].
    pub fn from_row(
        holder: &str,
        status: &str,
        total: i64,
        overdue: Option<i64>,
        due_soon: Option<i64>,
    ) -> StoreResult<Self> {
        let holder = Role::parse(holder)
            .ok_or_else(|| StoreError::Backend(format!("unknown holder {holder}")))?;
        let status = Status::parse(status)
            .ok_or_else(|| StoreError::Backend(format!("unknown status {status}")))?;
        let open = status.is_open();
        let n = |x: Option<i64>| {
            if open {
                x.unwrap_or(0).max(0) as u64
            } else {
                0
            }
        };
        Ok(Self {
            holder,
            status,
            total: total.max(0) as u64,
            overdue: n(overdue),
            due_soon: n(due_soon),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEvent {
    pub id: i64,
    pub topic: String,
    pub payload: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Applies pending schema migrations; returns how many were applied.
    async fn migrate(&self) -> StoreResult<usize>;
    async fn ping(&self) -> StoreResult<()>;

    // Reference data.
    async fn load_units(&self, units: &[AdminUnit], audit: AuditEntry) -> StoreResult<usize>;
    /// Loads `units` if the database has no province yet; nodes starting
    /// together load them once. Returns whether it loaded them.
    async fn load_units_if_empty(
        &self,
        units: &[AdminUnit],
        audit: AuditEntry,
    ) -> StoreResult<bool>;
    async fn unit(&self, code: &UnitCode) -> StoreResult<Option<AdminUnit>>;
    /// Every administrative unit, by code.
    async fn units(&self) -> StoreResult<Vec<AdminUnit>>;
    async fn count_units(&self) -> StoreResult<(u64, u64)>;
    async fn put_agency(&self, agency: &Agency, audit: AuditEntry) -> StoreResult<()>;
    async fn agency(&self, code: &AgencyCode) -> StoreResult<Option<Agency>>;
    async fn agencies(&self) -> StoreResult<Vec<Agency>>;
    /// The agency of `kind` in `unit`.
    async fn agency_for(&self, kind: AgencyKind, unit: &UnitCode) -> StoreResult<Option<Agency>>;

    // Accounts.
    async fn create_user(&self, user: &NewUser, audit: AuditEntry) -> StoreResult<User>;
    async fn user_by_name(&self, username: &str) -> StoreResult<Option<User>>;
    async fn user(&self, id: i64) -> StoreResult<Option<User>>;
    async fn user_by_national_id(&self, national_id: &str) -> StoreResult<Option<User>>;
    async fn users(&self) -> StoreResult<Vec<User>>;
    /// The account whose *verified* national ID number is `national_id`.
    async fn user_by_verified_national_id(&self, national_id: &str) -> StoreResult<Option<User>>;
    /// Records that `user_id` holds `national_id` (checked as `v` says),
    /// and links to the account, in the same transaction, every dossier of
    /// that applicant number that has no account. `Duplicate` when another
    /// account holds the number verified. Returns the dossiers linked.
    async fn verify_national_id(
        &self,
        user_id: i64,
        national_id: &str,
        v: &Verification,
        audit: AuditEntry,
    ) -> StoreResult<Vec<DossierCode>>;
    /// Links waiting for review (`open_only`) or all of them, oldest first.
    async fn link_reviews(&self, open_only: bool) -> StoreResult<Vec<LinkReview>>;
    /// Keeps (links the dossier to the account again) or removes an open
    /// review's link; `Conflict` when it was resolved already.
    async fn resolve_link_review(
        &self,
        id: i64,
        keep: bool,
        by: &str,
        at: DateTime<Utc>,
        audit: AuditEntry,
    ) -> StoreResult<()>;
    /// The counters of `keys` (absent keys are left out).
    async fn throttle_read(&self, keys: &[String]) -> StoreResult<Vec<ThrottleState>>;
    /// Counts one failure under each key; a counter whose window (of
    /// `window`) has passed starts again at one.
    async fn throttle_hit(
        &self,
        keys: &[String],
        now: DateTime<Utc>,
        window: chrono::Duration,
    ) -> StoreResult<()>;
    /// Forgets the counters of `keys`, and every counter idle since before
    /// `idle_before`.
    async fn throttle_clear(&self, keys: &[String], idle_before: DateTime<Utc>) -> StoreResult<()>;
    async fn set_user_disabled(
        &self,
        id: i64,
        disabled: bool,
        audit: AuditEntry,
    ) -> StoreResult<()>;
    async fn set_password(
        &self,
        id: i64,
        password_hash: &str,
        audit: AuditEntry,
    ) -> StoreResult<()>;
    async fn create_token(
        &self,
        token_hash: &str,
        user_id: i64,
        expires_at: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// The user of a live token (not expired, not revoked, user enabled).
    async fn token_user(&self, token_hash: &str, now: DateTime<Utc>) -> StoreResult<Option<User>>;
    async fn revoke_token(&self, token_hash: &str) -> StoreResult<bool>;
    async fn revoke_user_tokens(&self, user_id: i64) -> StoreResult<u64>;

    // Procedures.
    async fn put_procedure(&self, p: &Procedure, audit: AuditEntry) -> StoreResult<ImportOutcome>;
    /// Imports a procedure of a province's own (available there only);
    /// `Invalid` when the code belongs to the national catalogue or to
    /// another province.
    async fn put_province_procedure(
        &self,
        p: &Procedure,
        province: &UnitCode,
        audit: AuditEntry,
    ) -> StoreResult<ImportOutcome>;
    /// Sets (`Some`) or removes (`None`) the availability of a procedure in
    /// a unit, with its audit record.
    async fn set_availability(
        &self,
        unit: &UnitCode,
        procedure_code: &str,
        available: Option<bool>,
        by: &str,
        at: DateTime<Utc>,
        audit: AuditEntry,
    ) -> StoreResult<()>;
    /// The availability decisions for `procedure_code` in any of `units`
    /// (a commune and its province, say), or in every unit if `units` is
    /// empty.
    async fn availability(
        &self,
        procedure_code: &str,
        units: &[UnitCode],
    ) -> StoreResult<Vec<Availability>>;
    /// Every availability decision in any of `units`.
    async fn availability_in(&self, units: &[UnitCode]) -> StoreResult<Vec<Availability>>;
    async fn procedure(&self, code: &str, version: u32) -> StoreResult<Option<StoredProcedure>>;
    /// The newest enabled version of a procedure.
    async fn current_procedure(&self, code: &str) -> StoreResult<Option<StoredProcedure>>;
    /// The newest enabled version of every procedure.
    async fn current_procedures(&self) -> StoreResult<Vec<StoredProcedure>>;
    async fn procedure_versions(&self, code: &str) -> StoreResult<Vec<StoredProcedure>>;
    async fn set_procedure_enabled(
        &self,
        code: &str,
        version: u32,
        enabled: bool,
        audit: AuditEntry,
    ) -> StoreResult<()>;

    // Dossiers.
    /// Creates a dossier with the next code of its agency for the day of
    /// `submitted_at` (Vietnam time), its audit record and outbox event.
    async fn create_dossier(&self, d: NewDossier) -> StoreResult<Dossier>;
    async fn dossier(&self, code: &DossierCode) -> StoreResult<Option<Dossier>>;
    /// Writes a decided change if the dossier is still at `expected_version`.
    async fn update_dossier(&self, u: DossierUpdate) -> StoreResult<Dossier>;
    async fn find_dossiers(&self, q: &DossierQuery) -> StoreResult<Vec<DossierSummary>>;
    /// Counts of an agency's workqueue by holder and status (all of it,
    /// not only the rows a list shows).
    async fn queue_counts(
        &self,
        agency: &AgencyCode,
        holders: &[Role],
        now: DateTime<Utc>,
        soon: DateTime<Utc>,
    ) -> StoreResult<Vec<QueueCount>>;
    async fn count_by_status(&self) -> StoreResult<BTreeMap<String, u64>>;
    async fn referenced_objects(&self) -> StoreResult<Vec<String>>;

    // Audit chain.
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

    // Outbox.
    async fn claim_events(&self, limit: u32) -> StoreResult<Vec<OutboxEvent>>;
    /// Marks a claimed event done. Idempotent: returns `true` if this call
    /// completed it, `false` if it was already done (by another worker whose
    /// lease had run out, say) — the caller then knows it processed twice.
    async fn complete_event(&self, id: i64) -> StoreResult<bool>;
    /// Completes several events in one transaction; returns how many were
    /// not completed before.
    async fn complete_events(&self, ids: &[i64]) -> StoreResult<u64>;
    async fn pending_events(&self) -> StoreResult<u64>;

    // Key-value settings (e.g. "demo seeded").
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

    // Bulk access for `migrate-data` and `generate` (see [`bulk`]).
    /// Number of rows in `table` (one of [`TABLES`]).
    async fn bulk_count(&self, table: &str) -> StoreResult<u64>;
    /// At most `limit` rows of `table` in key order, starting after the key
    /// `after` (the first `key` cells of the last row of the previous page).
    async fn bulk_export(
        &self,
        table: &str,
        after: Option<&[Cell]>,
        limit: u32,
    ) -> StoreResult<Vec<Vec<Cell>>>;
    /// The last row of `table` in key order.
    async fn bulk_last(&self, table: &str) -> StoreResult<Option<Vec<Cell>>>;
    /// Inserts every part's rows, keys as given, in ONE transaction and in
    /// the order given. `dossier_seq` rows merge with existing ones (the
    /// larger counter wins); audit rows must continue the chain exactly
    /// (first seq = last + 1, prev_hash = last hash) or nothing is written
    /// (`Conflict`); identity sequences move past imported ids. Returns the
    /// number of rows written.
    async fn bulk_import(&self, parts: &[TableRows]) -> StoreResult<u64>;
    /// Deletes every row of every table (`migrate-data --force`).
    async fn bulk_clear(&self) -> StoreResult<()>;
    /// Before a large load into an installation no node is serving: drops
    /// the secondary indexes of `dossiers` and `audit` and stops writing
    /// search terms row by row; both are rebuilt, in key order, by
    /// [`Store::bulk_restore_indexes`]. What was dropped is recorded in
    /// `meta` ([`bulk::DEFERRED_INDEXES`]) in the same transaction, and
    /// `migrate` finishes an interrupted load, so a crash never leaves an
    /// installation without its indexes. Returns how many were dropped.
    async fn bulk_defer_indexes(&self) -> StoreResult<usize>;
    /// Re-creates what [`Store::bulk_defer_indexes`] dropped and every
    /// dossier's search terms; does nothing when nothing was deferred.
    async fn bulk_restore_indexes(&self) -> StoreResult<()>;
    /// The database's query plan for a read path (`EXPLAIN QUERY PLAN` on
    /// SQLite, `EXPLAIN` on PostgreSQL), one line per plan node.
    async fn explain(&self, target: &ExplainTarget) -> StoreResult<String>;

    // Publish / subscribe of the exchange (see `docs/exchange.md`).
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

/// The local calendar day (Asia/Ho_Chi_Minh, UTC+7 without daylight
/// saving) of an instant, as used in dossier codes.
pub fn vietnam_day(at: DateTime<Utc>) -> chrono::NaiveDate {
    (at + chrono::Duration::hours(7)).date_naive()
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

/// A new secret for a receipt: ten random digits (the citizen types them on
/// a phone's number pad; guessing is throttled per address and dossier).
pub fn new_access_code() -> StoreResult<String> {
    let mut raw = [0u8; 8];
    getrandom::fill(&mut raw).map_err(|e| StoreError::Backend(format!("no randomness: {e}")))?;
    Ok(format!("{:010}", u64::from_le_bytes(raw) % 10_000_000_000))
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

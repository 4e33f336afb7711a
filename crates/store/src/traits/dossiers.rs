//! Dossiers: their codes and rows, documents, the receipt's secret, the
//! workqueue and searches, and counts.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use motcua_domain::audit::AuditEntry;
use motcua_domain::dossier::{Channel, Lifecycle, Role, Status};
use motcua_domain::{AgencyCode, DossierCode, UnitCode};
use serde::{Deserialize, Serialize};

use crate::{StoreError, StoreResult};

/// Dossiers, their documents, lists, searches and counts (SQL:
/// `sql/dossiers.rs`; stories: `conformance/dossiers.rs`).
#[async_trait]
pub trait DossierStore: Send + Sync {
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
    /// From a row of [`crate::query::queue_counts`].
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

/// The local calendar day (Asia/Ho_Chi_Minh, UTC+7 without daylight
/// saving) of an instant, as used in dossier codes.
pub fn vietnam_day(at: DateTime<Utc>) -> chrono::NaiveDate {
    (at + chrono::Duration::hours(7)).date_naive()
}

/// A new secret for a receipt: ten random digits (the citizen types them on
/// a phone's number pad; guessing is throttled per address and dossier).
pub fn new_access_code() -> StoreResult<String> {
    let mut raw = [0u8; 8];
    getrandom::fill(&mut raw).map_err(|e| StoreError::Backend(format!("no randomness: {e}")))?;
    Ok(format!("{:010}", u64::from_le_bytes(raw) % 10_000_000_000))
}

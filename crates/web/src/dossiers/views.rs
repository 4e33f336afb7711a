//! JSON shapes of the dossiers API (also in the OpenAPI document), and
//! the workqueue's limits and counts.

use chrono::{DateTime, Utc};
use motcua_domain::dossier::{Apology, Status};
use motcua_store::{Dossier, DossierSummary, StoredDocument};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

mod erased {
    /// serde's snake_case name of a unit enum variant.
    pub trait AsSnake {
        fn snake(&self) -> String;
    }
    impl<T: serde::Serialize> AsSnake for T {
        fn snake(&self) -> String {
            serde_json::to_value(self)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default()
        }
    }
}

pub use erased::AsSnake;

/// The JSON part `application` of a submission.
#[derive(Debug, Deserialize, ToSchema)]
pub struct Application {
    pub procedure_code: String,
    /// The commune (or province) where the dossier is filed.
    pub unit_code: String,
    #[schema(value_type = Object)]
    pub fields: serde_json::Map<String, serde_json::Value>,
    /// `online` (default for citizens), `in_person` or `post` (counter reception by an officer).
    pub channel: Option<String>,
    /// Counter reception: who the dossier is for.
    pub applicant: Option<ApplicantInput>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ApplicantInput {
    pub full_name: String,
    pub national_id: String,
    pub phone: Option<String>,
    pub email: Option<String>,
}

/// Multipart form of `POST /api/v1/dossiers` (for the OpenAPI document).
#[allow(dead_code)]
#[derive(ToSchema)]
pub struct SubmissionForm {
    /// JSON text of [`Application`].
    pub application: String,
    /// One file part per document, named `document:<document id>`.
    #[schema(value_type = String, format = Binary)]
    #[schema(rename = "document:<id>")]
    pub document: Vec<u8>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SubmitResponse {
    pub code: String,
    pub status: String,
    pub due_at: Option<DateTime<Utc>>,
}

/// The actions of a dossier's lifecycle (the names of
/// `motcua_domain::dossier::Action`), for the OpenAPI document.
#[allow(dead_code)]
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActionName {
    Accept,
    Refuse,
    RequestSupplement,
    Supplement,
    Forward,
    Approve,
    Reject,
    ReturnResult,
    Withdraw,
    Apologize,
    Stop,
    Evaluate,
    RequestPayment,
    ConfirmPayment,
}

/// How satisfied the applicant is, for the OpenAPI document.
#[allow(dead_code)]
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SatisfactionLevelName {
    Dissatisfied,
    Satisfied,
    VerySatisfied,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ActionRequest {
    /// The action; who may take which, and when, is the lifecycle's rule
    /// (403 or 409 otherwise).
    #[schema(value_type = ActionName)]
    pub action: String,
    pub note: Option<String>,
    /// `apologize`: the new appointment, RFC 3339 or `YYYY-MM-DD`
    /// (end of that office day).
    pub new_due_at: Option<String>,
    /// `evaluate`: dissatisfied, satisfied or very_satisfied.
    #[schema(value_type = Option<SatisfactionLevelName>)]
    pub level: Option<String>,
    /// `evaluate`: criterion → 0..2 points.
    #[serde(default)]
    pub scores: std::collections::BTreeMap<String, u8>,
}

/// Multipart form of `POST /api/v1/dossiers/{code}/actions` (for the
/// OpenAPI document): the `supplement` action with its files.
#[allow(dead_code)]
#[derive(ToSchema)]
pub struct ActionForm {
    /// JSON text of [`ActionRequest`].
    pub action: String,
    /// One file part per document, named `document:<document id>`.
    #[schema(value_type = Option<String>, format = Binary)]
    #[schema(rename = "document:<id>")]
    pub document: Option<Vec<u8>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DocumentView {
    pub index: usize,
    pub document_id: String,
    pub filename: String,
    pub content_type: String,
    pub size: u64,
    pub sha256: String,
    pub uploaded_at: DateTime<Utc>,
    pub stage: String,
}

impl DocumentView {
    pub fn of(index: usize, d: &StoredDocument) -> Self {
        Self {
            index,
            document_id: d.document_id.clone(),
            filename: d.filename.clone(),
            content_type: d.content_type.clone(),
            size: d.size,
            sha256: d.sha256.clone(),
            uploaded_at: d.uploaded_at,
            stage: d.stage.clone(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TimelineEntry {
    pub at: DateTime<Utc>,
    pub action: String,
    pub actor_role: String,
    pub from_status: Option<String>,
    pub to_status: Option<String>,
    pub note: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DossierView {
    pub code: String,
    pub status: String,
    /// Status code of provincial systems, 1–10.
    pub status_number: u8,
    pub procedure_code: String,
    pub procedure_version: u32,
    pub procedure_name: String,
    pub agency_code: String,
    pub agency_name: String,
    pub unit_code: String,
    pub channel: String,
    #[schema(value_type = Object)]
    pub applicant: serde_json::Value,
    #[schema(value_type = Object)]
    pub fields: serde_json::Map<String, serde_json::Value>,
    pub documents: Vec<DocumentView>,
    pub submitted_at: DateTime<Utc>,
    pub accepted_at: Option<DateTime<Utc>>,
    pub due_at: Option<DateTime<Utc>>,
    pub appointment_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub returned_at: Option<DateTime<Utc>>,
    pub outcome: Option<String>,
    /// early, on_time or late (when completed).
    pub timeliness: Option<String>,
    pub current_step: Option<String>,
    pub holder: Option<String>,
    #[schema(value_type = Vec<Object>)]
    pub steps: serde_json::Value,
    #[schema(value_type = Vec<Object>)]
    pub apologies: Vec<serde_json::Value>,
    /// The applicant's evaluation, `null` until they gave one.
    #[schema(value_type = Option<Object>)]
    pub evaluation: Option<serde_json::Value>,
    pub last_note: Option<String>,
    pub version: i64,
    pub timeline: Vec<TimelineEntry>,
}

impl DossierView {
    pub fn of(
        d: &Dossier,
        procedure_name: String,
        agency_name: String,
        timeline: Vec<TimelineEntry>,
    ) -> Self {
        let l = &d.lifecycle;
        Self {
            code: d.code.to_string(),
            status: l.status.as_str().into(),
            status_number: l.status.number(),
            procedure_code: d.procedure_code.clone(),
            procedure_version: d.procedure_version,
            procedure_name,
            agency_code: d.agency_code.to_string(),
            agency_name,
            unit_code: d.unit_code.to_string(),
            channel: d.channel.as_str().into(),
            applicant: serde_json::to_value(&d.applicant).unwrap_or_default(),
            fields: d.fields.clone(),
            documents: d
                .documents
                .iter()
                .enumerate()
                .map(|(i, x)| DocumentView::of(i, x))
                .collect(),
            submitted_at: d.submitted_at,
            accepted_at: l.accepted_at,
            due_at: l.due_at,
            appointment_at: l.appointment_at,
            completed_at: l.completed_at,
            returned_at: l.returned_at,
            outcome: l.outcome.map(|o| o.snake()),
            timeliness: l.timeliness.map(|t| t.snake()),
            current_step: match l.status {
                Status::Accepted | Status::Processing => l.steps.get(l.step).map(|s| s.id.clone()),
                _ => None,
            },
            holder: l.holder().map(|r| r.as_str().to_string()),
            steps: serde_json::to_value(&l.steps).unwrap_or_default(),
            apologies: l.apologies.iter().map(apology_json).collect(),
            evaluation: l
                .evaluation
                .as_ref()
                .and_then(|e| serde_json::to_value(e).ok()),
            last_note: l.last_note.clone(),
            version: d.version,
            timeline,
        }
    }
}

fn apology_json(a: &Apology) -> serde_json::Value {
    serde_json::json!({
        "at": a.at,
        "reason": a.reason,
        "previous_due_at": a.previous_due_at,
        "new_due_at": a.new_due_at,
    })
}

/// Public tracking: status and dates, never personal data.
#[derive(Debug, Serialize, ToSchema)]
pub struct TrackView {
    pub code: String,
    pub procedure_code: String,
    pub procedure_name_vi: String,
    pub procedure_name_en: String,
    pub agency_name: String,
    pub status: String,
    pub status_number: u8,
    pub submitted_at: DateTime<Utc>,
    pub accepted_at: Option<DateTime<Utc>>,
    pub due_at: Option<DateTime<Utc>>,
    pub appointment_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub returned_at: Option<DateTime<Utc>>,
    pub outcome: Option<String>,
    /// Set when the agency apologised for lateness and set a new date (Form 04).
    pub apology_new_due_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QueueItem {
    pub code: String,
    pub procedure_code: String,
    pub applicant_name: String,
    pub status: String,
    pub holder: Option<String>,
    pub channel: String,
    pub submitted_at: DateTime<Utc>,
    pub due_at: Option<DateTime<Utc>>,
    pub appointment_at: Option<DateTime<Utc>>,
    pub overdue: bool,
    pub due_soon: bool,
}

impl QueueItem {
    pub fn of(s: &DossierSummary, now: DateTime<Utc>, due_soon_by: DateTime<Utc>) -> Self {
        // Only an open dossier can be late or fall due.
        let open = s.status.is_open();
        let overdue = open && s.due_at.is_some_and(|d| d < now);
        Self {
            code: s.code.to_string(),
            procedure_code: s.procedure_code.clone(),
            applicant_name: s.applicant_name.clone(),
            status: s.status.as_str().into(),
            holder: s.holder.map(|r| r.as_str().into()),
            channel: s.channel.as_str().into(),
            submitted_at: s.submitted_at,
            due_at: s.due_at,
            appointment_at: s.appointment_at,
            overdue,
            due_soon: open && !overdue && s.due_at.is_some_and(|d| d <= due_soon_by),
        }
    }
}

/// How long a node reuses the whole-queue counts of an agency (by the
/// application clock). Its own writes to the agency's dossiers drop them at
/// once; another node's writes show within this time.
pub const QUEUE_COUNTS_TTL_SECS: i64 = 5;

/// The whole-queue counts of the workqueues read recently on this node,
/// per agency and holders. At a busy agency the counts read every queued
/// dossier's index entry (tens of milliseconds at a hundred thousand),
/// while officers reload their queue all day.
#[derive(Default)]
pub struct QueueCountsCache {
    #[allow(clippy::type_complexity)]
    lines: std::sync::Mutex<
        std::collections::HashMap<
            (String, Vec<motcua_domain::dossier::Role>),
            (DateTime<Utc>, Vec<motcua_store::QueueCount>),
        >,
    >,
}

impl QueueCountsCache {
    /// The counts of `holders` at `agency` read at most
    /// [`QUEUE_COUNTS_TTL_SECS`] before `now`, if any.
    pub fn get(
        &self,
        agency: &str,
        holders: &[motcua_domain::dossier::Role],
        now: DateTime<Utc>,
    ) -> Option<Vec<motcua_store::QueueCount>> {
        let map = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        let (at, lines) = map.get(&(agency.to_string(), holders.to_vec()))?;
        let age = now - *at;
        (age >= chrono::Duration::zero() && age < chrono::Duration::seconds(QUEUE_COUNTS_TTL_SECS))
            .then(|| lines.clone())
    }

    pub fn put(
        &self,
        agency: &str,
        holders: &[motcua_domain::dossier::Role],
        at: DateTime<Utc>,
        lines: Vec<motcua_store::QueueCount>,
    ) {
        let mut map = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        // Stale entries of every agency go when the map grows.
        if map.len() > 1000 {
            map.retain(|_, (t, _)| at - *t < chrono::Duration::seconds(QUEUE_COUNTS_TTL_SECS));
        }
        map.insert((agency.to_string(), holders.to_vec()), (at, lines));
    }

    /// Drops the counts of `agency` (a dossier of it changed on this node).
    pub fn forget(&self, agency: &str) {
        let mut map = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|(a, _), _| a != agency);
    }
}

/// How many dossiers a workqueue lists by default (the most urgent); the
/// counts always cover the whole queue.
pub const QUEUE_LIMIT: u32 = 100;
/// The most a workqueue lists.
pub const QUEUE_LIMIT_MAX: u32 = 500;

/// How many dossiers a staff search lists by default: the newest matches
/// (a common name matches thousands at a busy agency; more words, the
/// national ID number or the code narrow it down). Each listed dossier is a
/// row read from the table, so the page stays fast however many match.
pub const SEARCH_LIMIT: u32 = 50;
/// The most a search lists through the API (`?limit=`).
pub const SEARCH_LIMIT_MAX: u32 = 200;

/// The tabs of the workqueue, in order.
pub const QUEUE_TABS: [&str; 5] = ["all", "receive", "appraise", "approve", "return"];

/// The query of one tab of the workqueue of `holders` at `agency` (the
/// same split as [`queue_tab`]), the `limit` most urgent first; `None` when
/// none of the holders has dossiers in that tab.
pub fn queue_query(
    agency: &motcua_domain::AgencyCode,
    holders: &[motcua_domain::dossier::Role],
    tab: &str,
    limit: u32,
) -> Option<motcua_store::DossierQuery> {
    use motcua_domain::dossier::{Role, Status};
    let working: Vec<Status> = Status::ALL
        .into_iter()
        .filter(|s| !matches!(s, Status::NewlyRegistered | Status::Completed))
        .collect();
    let (roles, statuses): (Vec<Role>, Vec<Status>) = match tab {
        "receive" => (holders.to_vec(), vec![Status::NewlyRegistered]),
        "return" => (holders.to_vec(), vec![Status::Completed]),
        "approve" => (
            holders
                .iter()
                .copied()
                .filter(|r| *r == Role::Leader)
                .collect(),
            working,
        ),
        "appraise" => (
            holders
                .iter()
                .copied()
                .filter(|r| *r != Role::Leader)
                .collect(),
            working,
        ),
        _ => (holders.to_vec(), Vec::new()),
    };
    (!roles.is_empty()).then(|| motcua_store::DossierQuery {
        agency: Some(agency.clone()),
        holders: roles,
        statuses,
        limit: limit.clamp(1, QUEUE_LIMIT_MAX),
        ..Default::default()
    })
}

/// Which tab of the workqueue a dossier belongs to.
pub fn queue_tab(
    status: motcua_domain::dossier::Status,
    holder: Option<motcua_domain::dossier::Role>,
) -> &'static str {
    use motcua_domain::dossier::{Role, Status};
    match (status, holder) {
        (Status::NewlyRegistered, _) => "receive",
        (Status::Completed, _) => "return",
        (_, Some(Role::Leader)) => "approve",
        (_, Some(_)) => "appraise",
        _ => "other",
    }
}

impl QueueCounts {
    /// The whole queue's counts, from the store's per-(holder, status) lines.
    pub fn of(lines: &[motcua_store::QueueCount]) -> Self {
        let mut c = Self::default();
        for l in lines {
            let n = l.total as usize;
            c.total += n;
            c.overdue += l.overdue as usize;
            c.due_soon += l.due_soon as usize;
            match queue_tab(l.status, Some(l.holder)) {
                "receive" => c.to_receive += n,
                "return" => c.to_return += n,
                "approve" => c.to_approve += n,
                "appraise" => c.to_appraise += n,
                _ => {}
            }
        }
        c
    }

    /// The count shown on a tab.
    pub fn tab(&self, tab: &str) -> usize {
        match tab {
            "receive" => self.to_receive,
            "return" => self.to_return,
            "approve" => self.to_approve,
            "appraise" => self.to_appraise,
            _ => self.total,
        }
    }
}

#[derive(Debug, Serialize, ToSchema, Default)]
pub struct QueueCounts {
    pub total: usize,
    pub overdue: usize,
    pub due_soon: usize,
    pub to_receive: usize,
    pub to_appraise: usize,
    pub to_approve: usize,
    pub to_return: usize,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Workqueue {
    /// The whole queue's counts.
    pub counts: QueueCounts,
    /// The tab listed.
    pub tab: String,
    /// The most urgent dossiers of the tab (up to the limit asked).
    pub items: Vec<QueueItem>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DossierList {
    pub items: Vec<QueueItem>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use motcua_domain::dossier::Role;
    use motcua_store::QueueCount;

    fn line(total: u64) -> Vec<QueueCount> {
        vec![QueueCount {
            holder: Role::Officer,
            status: Status::NewlyRegistered,
            total,
            overdue: 0,
            due_soon: 0,
        }]
    }

    #[test]
    fn queue_counts_are_reused_briefly_and_dropped_on_a_local_change() {
        let cache = QueueCountsCache::default();
        let t0 = DateTime::<Utc>::from_timestamp(1_800_000_000, 0).expect("time");
        let officer = [Role::Officer];
        cache.put("UB00073", &officer, t0, line(3));
        let at = |s: i64| t0 + chrono::Duration::seconds(s);
        assert_eq!(cache.get("UB00073", &officer, at(4)), Some(line(3)));
        assert_eq!(
            cache.get("UB00073", &officer, at(QUEUE_COUNTS_TTL_SECS)),
            None
        );
        assert_eq!(
            cache.get("UB00073", &officer, at(-1)),
            None,
            "clock went back"
        );
        assert_eq!(cache.get("UB00073", &[Role::Leader], at(1)), None);
        assert_eq!(cache.get("UB00070", &officer, at(1)), None);
        cache.put("UB00070", &officer, t0, line(7));
        cache.forget("UB00073");
        assert_eq!(cache.get("UB00073", &officer, at(1)), None);
        assert_eq!(cache.get("UB00070", &officer, at(1)), Some(line(7)));
    }
}

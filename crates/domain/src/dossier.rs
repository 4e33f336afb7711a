//! The dossier (hồ sơ) and its lifecycle as an explicit state machine.
//!
//! [`decide`] is the one place that says which action may happen in which
//! status, by whom, and what it does to the dossier and its clock. It takes
//! plain values and returns the new state; the store writes it, the audit
//! record and the outbox event in one transaction.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::calendar::{Timeliness, WorkingCalendar};
use crate::ids::AgencyCode;
use crate::procedure::{StepRole, WorkflowStep};

/// Trạng thái hồ sơ, with the numeric codes used by provincial systems.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// 1 — Mới đăng ký: submitted online, awaiting reception.
    NewlyRegistered,
    /// 2 — Đã tiếp nhận: accepted, at the reception step.
    Accepted,
    /// 3 — Không tiếp nhận: refused with a reason (Form 03).
    NotAccepted,
    /// 4 — Đang xử lý: at a workflow step after reception.
    Processing,
    /// 5 — Yêu cầu bổ sung: supplement requested (Form 02); clock paused.
    SupplementRequested,
    /// 6 — Yêu cầu thực hiện nghĩa vụ tài chính; clock paused.
    FinancialObligation,
    /// 7 — Công dân rút hồ sơ.
    Withdrawn,
    /// 8 — Dừng xử lý.
    Stopped,
    /// 9 — Đã xử lý xong (approved with a result, or rejected with a reason).
    Completed,
    /// 10 — Đã trả kết quả.
    ResultReturned,
}

crate::string_forms!(Status {
    NewlyRegistered => "newly_registered",
    Accepted => "accepted",
    NotAccepted => "not_accepted",
    Processing => "processing",
    SupplementRequested => "supplement_requested",
    FinancialObligation => "financial_obligation",
    Withdrawn => "withdrawn",
    Stopped => "stopped",
    Completed => "completed",
    ResultReturned => "result_returned",
});

impl Status {
    /// The numeric code of provincial systems (1–10).
    pub fn number(self) -> u8 {
        match self {
            Status::NewlyRegistered => 1,
            Status::Accepted => 2,
            Status::NotAccepted => 3,
            Status::Processing => 4,
            Status::SupplementRequested => 5,
            Status::FinancialObligation => 6,
            Status::Withdrawn => 7,
            Status::Stopped => 8,
            Status::Completed => 9,
            Status::ResultReturned => 10,
        }
    }

    /// Still in the hands of the administration (not finished).
    pub fn is_open(self) -> bool {
        matches!(
            self,
            Status::NewlyRegistered
                | Status::Accepted
                | Status::Processing
                | Status::SupplementRequested
                | Status::FinancialObligation
        )
    }

    /// Statuses in which the processing clock is paused.
    pub fn is_paused(self) -> bool {
        matches!(
            self,
            Status::SupplementRequested | Status::FinancialObligation
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Approved,
    Rejected,
}

/// How the dossier reached the agency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Online,
    InPerson,
    Post,
}

crate::string_forms!(Channel {
    Online => "online",
    InPerson => "in_person",
    Post => "post",
});

/// Roles of users. Staff roles are scoped to an agency (and its unit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Citizen,
    /// Cán bộ một cửa.
    Officer,
    /// Chuyên viên.
    Specialist,
    /// Lãnh đạo (người phê duyệt).
    Leader,
    AgencyAdmin,
    ProvinceAdmin,
    /// Operations-centre viewer.
    IocViewer,
}

crate::string_forms!(Role {
    Citizen => "citizen",
    Officer => "officer",
    Specialist => "specialist",
    Leader => "leader",
    AgencyAdmin => "agency_admin",
    ProvinceAdmin => "province_admin",
    IocViewer => "ioc_viewer",
});

impl Role {
    pub fn is_staff(self) -> bool {
        self != Role::Citizen
    }
}

impl From<StepRole> for Role {
    fn from(r: StepRole) -> Self {
        match r {
            StepRole::Officer => Role::Officer,
            StepRole::Specialist => Role::Specialist,
            StepRole::Leader => Role::Leader,
        }
    }
}

/// Who is acting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub user_id: i64,
    pub username: String,
    pub roles: Vec<Role>,
    /// The agency a staff member works for.
    pub agency: Option<AgencyCode>,
}

impl Actor {
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
    pub fn is_staff(&self) -> bool {
        self.roles.iter().any(|r| r.is_staff())
    }
    /// The role recorded in the audit chain for an action.
    pub fn primary_role(&self) -> Role {
        self.roles.first().copied().unwrap_or(Role::Citizen)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
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

crate::string_forms!(Action {
    Accept => "accept",
    Refuse => "refuse",
    RequestSupplement => "request_supplement",
    Supplement => "supplement",
    Forward => "forward",
    Approve => "approve",
    Reject => "reject",
    ReturnResult => "return_result",
    Withdraw => "withdraw",
    Apologize => "apologize",
    Stop => "stop",
    Evaluate => "evaluate",
    RequestPayment => "request_payment",
    ConfirmPayment => "confirm_payment",
});

impl Action {
    /// Roles that may ever take this action (before scope and state).
    pub fn roles(self) -> &'static [Role] {
        use Role::*;
        match self {
            Action::Accept | Action::Refuse | Action::ReturnResult | Action::ConfirmPayment => {
                &[Officer]
            }
            Action::RequestSupplement | Action::RequestPayment => &[Officer, Specialist],
            Action::Supplement | Action::Withdraw => &[Citizen, Officer],
            Action::Forward => &[Officer, Specialist, Leader],
            Action::Approve | Action::Reject | Action::Stop => &[Leader],
            Action::Apologize => &[Officer, Leader],
            Action::Evaluate => &[Citizen],
        }
    }

    /// Actions whose note (reason) is mandatory.
    pub fn needs_note(self) -> bool {
        matches!(
            self,
            Action::Refuse
                | Action::RequestSupplement
                | Action::Reject
                | Action::Withdraw
                | Action::Apologize
                | Action::Stop
                | Action::RequestPayment
        )
    }
}

/// Target status of `action` from `status`, or `None` when the action is
/// not allowed there. `at_last_step` tells whether the dossier is at the
/// final (approval) step of its workflow. The whole lifecycle is this table.
pub fn transition(status: Status, action: Action, at_last_step: bool) -> Option<Status> {
    use Action as A;
    use Status as S;
    match (status, action) {
        (S::NewlyRegistered, A::Accept) => Some(S::Accepted),
        (S::NewlyRegistered, A::Refuse) => Some(S::NotAccepted),
        (S::NewlyRegistered | S::Accepted | S::Processing, A::RequestSupplement) => {
            Some(S::SupplementRequested)
        }
        // Back to where it was paused; the caller resolves the exact status.
        (S::SupplementRequested, A::Supplement) => Some(S::Processing),
        (S::Accepted | S::Processing, A::Forward) if !at_last_step => Some(S::Processing),
        (S::Processing, A::Approve | A::Reject) if at_last_step => Some(S::Completed),
        (S::Accepted | S::Processing, A::RequestPayment) => Some(S::FinancialObligation),
        (S::FinancialObligation, A::ConfirmPayment) => Some(S::Processing),
        (S::Completed, A::ReturnResult) => Some(S::ResultReturned),
        (s, A::Withdraw) if s.is_open() => Some(S::Withdrawn),
        (
            S::Accepted | S::Processing | S::SupplementRequested | S::FinancialObligation,
            A::Stop,
        ) => Some(S::Stopped),
        (s, A::Apologize) if s.is_open() && s != S::NewlyRegistered => Some(s),
        (S::Completed | S::ResultReturned, A::Evaluate) => Some(status),
        _ => None,
    }
}

/// Progress of one workflow step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepProgress {
    pub id: String,
    pub role: StepRole,
    pub due_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub timeliness: Option<Timeliness>,
    /// User name of whoever finished the step.
    pub handled_by: Option<String>,
}

/// Phiếu xin lỗi và hẹn lại ngày trả kết quả (Form 04).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Apology {
    pub at: DateTime<Utc>,
    pub by: String,
    pub reason: String,
    pub previous_due_at: DateTime<Utc>,
    pub new_due_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SatisfactionLevel {
    Dissatisfied,
    Satisfied,
    VerySatisfied,
}

/// The nine criteria of citizen evaluation, 2 points each.
pub const EVALUATION_CRITERIA: [&str; 9] = [
    "total_time",
    "agency_time",
    "contacts",
    "agencies_contacted",
    "one_stop_only",
    "publicity",
    "staff_attitude",
    "feedback_handling",
    "online_quality",
];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evaluation {
    pub level: SatisfactionLevel,
    /// Criterion id → 0, 1 or 2 points.
    #[serde(default)]
    pub scores: std::collections::BTreeMap<String, u8>,
    pub at: DateTime<Utc>,
}

/// Everything about a dossier that its rules look at. The store keeps it
/// (as columns and one JSON document) next to the applicant's data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lifecycle {
    pub status: Status,
    /// Index of the current workflow step (0 = reception).
    pub step: usize,
    /// Status to resume to when a pause ends.
    pub paused_from: Option<Status>,
    pub paused_at: Option<DateTime<Utc>>,
    pub accepted_at: Option<DateTime<Utc>>,
    /// Legal due time (hạn xử lý), shifted by paused time.
    pub due_at: Option<DateTime<Utc>>,
    /// The appointment promised to the citizen; moves with an apology.
    pub appointment_at: Option<DateTime<Utc>>,
    pub steps: Vec<StepProgress>,
    pub outcome: Option<Outcome>,
    pub completed_at: Option<DateTime<Utc>>,
    pub returned_at: Option<DateTime<Utc>>,
    pub timeliness: Option<Timeliness>,
    pub apologies: Vec<Apology>,
    pub evaluation: Option<Evaluation>,
    /// Reason given for refusal, rejection, stop, withdrawal or the pending request.
    pub last_note: Option<String>,
}

impl Lifecycle {
    pub fn new() -> Self {
        Self {
            status: Status::NewlyRegistered,
            step: 0,
            paused_from: None,
            paused_at: None,
            accepted_at: None,
            due_at: None,
            appointment_at: None,
            steps: Vec::new(),
            outcome: None,
            completed_at: None,
            returned_at: None,
            timeliness: None,
            apologies: Vec::new(),
            evaluation: None,
            last_note: None,
        }
    }

    /// The role that holds the dossier now, if any.
    pub fn holder(&self) -> Option<Role> {
        match self.status {
            Status::NewlyRegistered | Status::Completed => Some(Role::Officer),
            Status::Accepted | Status::Processing => {
                self.steps.get(self.step).map(|s| Role::from(s.role))
            }
            _ => None,
        }
    }
}

impl Default for Lifecycle {
    fn default() -> Self {
        Self::new()
    }
}

/// The facts about a dossier that decide who may touch it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ownership {
    pub agency: AgencyCode,
    pub applicant_user_id: Option<i64>,
}

/// What the actor asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    pub action: Action,
    pub note: Option<String>,
    /// `apologize`: the new appointment.
    pub new_due_at: Option<DateTime<Utc>>,
    /// `evaluate`.
    pub level: Option<SatisfactionLevel>,
    pub scores: std::collections::BTreeMap<String, u8>,
}

impl Command {
    pub fn new(action: Action) -> Self {
        Self {
            action,
            note: None,
            new_due_at: None,
            level: None,
            scores: Default::default(),
        }
    }
    pub fn with_note(mut self, note: &str) -> Self {
        self.note = Some(note.to_string());
        self
    }
}

/// Why an action was not taken. The web layer maps these to 403/409/422.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// The actor's role or scope does not allow it (403).
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    /// Not allowed in the dossier's current status or step (409).
    #[error("action {} is not allowed when the dossier is {}", action.as_str(), status.as_str())]
    NotAllowed { action: Action, status: Status },
    /// The dossier is at a step held by another role (409).
    #[error("the dossier is at a step held by {holder:?}")]
    NotYourStep { holder: Role },
    /// A required or malformed input (422), with a message key.
    #[error("invalid {field}: {key}")]
    Invalid {
        field: &'static str,
        key: &'static str,
    },
}

/// The result of a decision: the new lifecycle and what to record.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub from: Status,
    pub to: Status,
    pub lifecycle: Lifecycle,
    /// Outbox topic, e.g. `dossier.accepted`.
    pub event: &'static str,
}

/// Plans per-step due times from the moment of acceptance.
pub fn plan_steps(
    workflow: &[WorkflowStep],
    accepted_at: DateTime<Utc>,
    total_minutes: i64,
    calendar: &WorkingCalendar,
) -> Vec<StepProgress> {
    let mut cumulative = 0i64;
    workflow
        .iter()
        .map(|s| {
            cumulative += i64::from(s.share);
            StepProgress {
                id: s.id.clone(),
                role: s.role,
                due_at: calendar.add_working_minutes(accepted_at, total_minutes * cumulative / 100),
                started_at: None,
                finished_at: None,
                timeliness: None,
                handled_by: None,
            }
        })
        .collect()
}

/// Checks role and scope of `actor` for `action` on a dossier.
fn authorise(actor: &Actor, own: &Ownership, action: Action) -> Result<Role, DomainError> {
    let role = action
        .roles()
        .iter()
        .copied()
        .find(|r| actor.has(*r))
        .ok_or(DomainError::Forbidden("role"))?;
    if role == Role::Citizen {
        if own.applicant_user_id != Some(actor.user_id) {
            return Err(DomainError::Forbidden("not-applicant"));
        }
    } else if actor.agency.as_ref() != Some(&own.agency) {
        return Err(DomainError::Forbidden("other-agency"));
    }
    Ok(role)
}

fn note_of(cmd: &Command) -> Option<String> {
    cmd.note
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(crate::text::nfc)
}

/// What the rules need to know of the procedure and the clock.
#[derive(Debug, Clone, Copy)]
pub struct Rules<'a> {
    /// The steps of the procedure version the dossier was filed under.
    pub workflow: &'a [WorkflowStep],
    /// The procedure's processing time in working minutes.
    pub total_minutes: i64,
    pub calendar: &'a WorkingCalendar,
}

/// The command's note, checked: present when the action needs one, text,
/// at most 2,000 characters.
fn checked_note(cmd: &Command) -> Result<Option<String>, DomainError> {
    let note = note_of(cmd);
    let invalid = |key| Err(DomainError::Invalid { field: "note", key });
    if cmd.action.needs_note() && note.is_none() {
        return invalid("note-required");
    }
    if note.as_deref().is_some_and(crate::text::has_control) {
        return invalid("not-text");
    }
    if note.as_ref().is_some_and(|n| n.chars().count() > 2000) {
        return invalid("note-too-long");
    }
    Ok(note)
}

/// An apology with a new appointment, later than the one it replaces.
fn apologize(
    next: &mut Lifecycle,
    current: &Lifecycle,
    actor: &Actor,
    cmd: &Command,
    note: Option<String>,
    now: DateTime<Utc>,
) -> Result<(), DomainError> {
    let Some(new_due) = cmd.new_due_at else {
        return Err(DomainError::Invalid {
            field: "new_due_at",
            key: "new-due-required",
        });
    };
    let previous = current.appointment_at.or(current.due_at).unwrap_or(now);
    if new_due <= previous || new_due <= now {
        return Err(DomainError::Invalid {
            field: "new_due_at",
            key: "new-due-not-later",
        });
    }
    next.apologies.push(Apology {
        at: now,
        by: actor.username.clone(),
        reason: note.unwrap_or_default(),
        previous_due_at: previous,
        new_due_at: new_due,
    });
    next.appointment_at = Some(new_due);
    Ok(())
}

/// The citizen's evaluation: once, with a level and known criteria.
fn evaluate(
    next: &mut Lifecycle,
    current: &Lifecycle,
    cmd: &Command,
    now: DateTime<Utc>,
) -> Result<(), DomainError> {
    if current.evaluation.is_some() {
        return Err(DomainError::Invalid {
            field: "level",
            key: "already-evaluated",
        });
    }
    let Some(level) = cmd.level else {
        return Err(DomainError::Invalid {
            field: "level",
            key: "level-required",
        });
    };
    for (k, v) in &cmd.scores {
        if !EVALUATION_CRITERIA.contains(&k.as_str()) || *v > 2 {
            return Err(DomainError::Invalid {
                field: "scores",
                key: "invalid-score",
            });
        }
    }
    next.evaluation = Some(Evaluation {
        level,
        scores: cmd.scores.clone(),
        at: now,
    });
    Ok(())
}

/// Decides an action on a dossier: the one function every handler calls.
pub fn decide(
    current: &Lifecycle,
    own: &Ownership,
    rules: Rules<'_>,
    actor: &Actor,
    cmd: &Command,
    now: DateTime<Utc>,
) -> Result<Decision, DomainError> {
    let Rules {
        workflow,
        total_minutes,
        calendar,
    } = rules;
    authorise(actor, own, cmd.action)?;
    let at_last_step = current.step + 1 >= workflow.len().max(1)
        && matches!(current.status, Status::Accepted | Status::Processing);
    let Some(mut to) = transition(current.status, cmd.action, at_last_step) else {
        return Err(DomainError::NotAllowed {
            action: cmd.action,
            status: current.status,
        });
    };
    let note = checked_note(cmd)?;

    let mut next = current.clone();
    let from = current.status;
    let event;
    match cmd.action {
        Action::Accept => {
            let steps = plan_steps(workflow, now, total_minutes, calendar);
            next.accepted_at = Some(now);
            next.due_at = Some(calendar.add_working_minutes(now, total_minutes));
            next.appointment_at = next.due_at;
            next.steps = steps;
            next.step = 0;
            if let Some(s) = next.steps.first_mut() {
                s.started_at = Some(now);
            }
            event = "dossier.accepted";
        }
        Action::Refuse => {
            next.completed_at = Some(now);
            event = "dossier.refused";
        }
        Action::Forward => {
            require_holder(current, actor)?;
            finish_step(&mut next, now, &actor.username, calendar);
            next.step += 1;
            if let Some(s) = next.steps.get_mut(next.step) {
                s.started_at = Some(now);
            }
            event = "dossier.forwarded";
        }
        Action::Approve | Action::Reject => {
            require_holder(current, actor)?;
            finish_step(&mut next, now, &actor.username, calendar);
            next.outcome = Some(if cmd.action == Action::Approve {
                Outcome::Approved
            } else {
                Outcome::Rejected
            });
            next.completed_at = Some(now);
            next.timeliness = next.due_at.map(|due| calendar.classify(now, due));
            event = "dossier.completed";
        }
        Action::RequestSupplement | Action::RequestPayment => {
            if current.status != Status::NewlyRegistered {
                require_holder(current, actor)?;
            }
            next.paused_from = Some(current.status);
            if current.accepted_at.is_some() {
                next.paused_at = Some(now);
            }
            event = if cmd.action == Action::RequestSupplement {
                "dossier.supplement_requested"
            } else {
                "dossier.payment_requested"
            };
        }
        Action::Supplement | Action::ConfirmPayment => {
            to = current.paused_from.unwrap_or(Status::Processing);
            resume_clock(&mut next, now, calendar);
            next.paused_from = None;
            event = if cmd.action == Action::Supplement {
                "dossier.supplemented"
            } else {
                "dossier.payment_confirmed"
            };
        }
        Action::ReturnResult => {
            next.returned_at = Some(now);
            event = "dossier.result_returned";
        }
        Action::Withdraw => {
            next.completed_at = Some(now);
            event = "dossier.withdrawn";
        }
        Action::Stop => {
            next.completed_at = Some(now);
            event = "dossier.stopped";
        }
        Action::Apologize => {
            apologize(&mut next, current, actor, cmd, note.clone(), now)?;
            event = "dossier.apologized";
        }
        Action::Evaluate => {
            evaluate(&mut next, current, cmd, now)?;
            event = "dossier.evaluated";
        }
    }
    if note.is_some() && cmd.action != Action::Evaluate {
        next.last_note = note;
    }
    next.status = to;
    Ok(Decision {
        from,
        to,
        lifecycle: next,
        event,
    })
}

/// Forward/approve/reject only by the role that holds the current step.
fn require_holder(current: &Lifecycle, actor: &Actor) -> Result<(), DomainError> {
    match current.holder() {
        Some(holder) if actor.has(holder) => Ok(()),
        Some(holder) => Err(DomainError::NotYourStep { holder }),
        None => Err(DomainError::NotAllowed {
            action: Action::Forward,
            status: current.status,
        }),
    }
}

fn finish_step(next: &mut Lifecycle, now: DateTime<Utc>, by: &str, calendar: &WorkingCalendar) {
    if let Some(s) = next.steps.get_mut(next.step) {
        s.finished_at = Some(now);
        s.timeliness = Some(calendar.classify(now, s.due_at));
        s.handled_by = Some(by.to_string());
    }
}

/// Ends a pause: every deadline not yet passed when the pause began moves
/// later by the working time the pause lasted.
fn resume_clock(next: &mut Lifecycle, now: DateTime<Utc>, calendar: &WorkingCalendar) {
    let Some(paused_at) = next.paused_at.take() else {
        return;
    };
    let shift = calendar.working_minutes_between(paused_at, now);
    if shift <= 0 {
        return;
    }
    let move_later = |t: DateTime<Utc>| calendar.add_working_minutes(t, shift);
    next.due_at = next.due_at.map(move_later);
    next.appointment_at = next.appointment_at.map(move_later);
    for s in next.steps.iter_mut().filter(|s| s.finished_at.is_none()) {
        s.due_at = move_later(s.due_at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::procedure::Localized;
    use chrono::TimeZone;

    fn workflow() -> Vec<WorkflowStep> {
        [
            ("reception", StepRole::Officer, 10),
            ("appraisal", StepRole::Specialist, 60),
            ("approval", StepRole::Leader, 30),
        ]
        .into_iter()
        .map(|(id, role, share)| WorkflowStep {
            id: id.into(),
            name: Localized::default(),
            role,
            share,
        })
        .collect()
    }

    fn agency() -> AgencyCode {
        AgencyCode::parse("UB00073").expect("agency")
    }

    fn actor(id: i64, role: Role, agency_code: Option<&str>) -> Actor {
        Actor {
            user_id: id,
            username: role.as_str().into(),
            roles: vec![role],
            agency: agency_code.map(|a| AgencyCode::parse(a).expect("agency")),
        }
    }

    struct World {
        cal: WorkingCalendar,
        wf: Vec<WorkflowStep>,
        own: Ownership,
        citizen: Actor,
        officer: Actor,
        specialist: Actor,
        leader: Actor,
    }

    impl World {
        fn new() -> Self {
            Self {
                cal: WorkingCalendar::vietnam(),
                wf: workflow(),
                own: Ownership {
                    agency: agency(),
                    applicant_user_id: Some(1),
                },
                citizen: actor(1, Role::Citizen, None),
                officer: actor(2, Role::Officer, Some("UB00073")),
                specialist: actor(3, Role::Specialist, Some("UB00073")),
                leader: actor(4, Role::Leader, Some("UB00073")),
            }
        }
        fn rules(&self) -> Rules<'_> {
            Rules {
                workflow: &self.wf,
                total_minutes: 5 * 8 * 60,
                calendar: &self.cal,
            }
        }
        fn act(
            &self,
            l: &Lifecycle,
            who: &Actor,
            cmd: Command,
            now: DateTime<Utc>,
        ) -> Result<Lifecycle, DomainError> {
            decide(l, &self.own, self.rules(), who, &cmd, now).map(|d| d.lifecycle)
        }
    }

    /// Monday 3 November 2025, 09:00 in Hà Nội.
    fn monday_9am() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 11, 3, 2, 0, 0)
            .single()
            .expect("time")
    }

    fn hours(h: i64) -> chrono::Duration {
        chrono::Duration::hours(h)
    }

    #[test]
    fn happy_path_through_every_step() {
        let w = World::new();
        let t0 = monday_9am();
        let l = Lifecycle::new();
        let l = w
            .act(&l, &w.officer, Command::new(Action::Accept), t0)
            .expect("accept");
        assert_eq!(l.status, Status::Accepted);
        assert_eq!(l.steps.len(), 3);
        // 5 working days from Monday 09:00 → next Monday 09:00.
        let due = l.due_at.expect("due");
        assert_eq!(due, t0 + chrono::Duration::days(7));
        assert_eq!(l.steps[2].due_at, due);
        assert!(l.steps[0].due_at < l.steps[1].due_at);

        // The specialist cannot forward the officer's step.
        let err = w
            .act(&l, &w.specialist, Command::new(Action::Forward), t0)
            .expect_err("not their step");
        assert_eq!(
            err,
            DomainError::NotYourStep {
                holder: Role::Officer
            }
        );

        let l = w
            .act(&l, &w.officer, Command::new(Action::Forward), t0 + hours(1))
            .expect("forward");
        assert_eq!((l.status, l.step), (Status::Processing, 1));
        // Reception was due the same day (10 % of 40 h), so it is on time.
        assert_eq!(l.steps[0].timeliness, Some(Timeliness::OnTime));
        let l = w
            .act(
                &l,
                &w.specialist,
                Command::new(Action::Forward),
                t0 + hours(2),
            )
            .expect("forward");
        assert_eq!(l.step, 2);
        // At the approval step, forward is no longer possible.
        assert!(matches!(
            w.act(&l, &w.leader, Command::new(Action::Forward), t0 + hours(3)),
            Err(DomainError::NotAllowed { .. })
        ));
        let l = w
            .act(&l, &w.leader, Command::new(Action::Approve), t0 + hours(3))
            .expect("approve");
        assert_eq!(l.status, Status::Completed);
        assert_eq!(l.outcome, Some(Outcome::Approved));
        assert_eq!(l.timeliness, Some(Timeliness::Early));
        let l = w
            .act(
                &l,
                &w.officer,
                Command::new(Action::ReturnResult),
                t0 + hours(4),
            )
            .expect("return");
        assert_eq!(l.status, Status::ResultReturned);
        let mut eval = Command::new(Action::Evaluate);
        eval.level = Some(SatisfactionLevel::VerySatisfied);
        eval.scores.insert("staff_attitude".into(), 2);
        let l = w
            .act(&l, &w.citizen, eval.clone(), t0 + hours(5))
            .expect("evaluate");
        assert_eq!(l.status, Status::ResultReturned);
        assert!(l.evaluation.is_some());
        assert!(w.act(&l, &w.citizen, eval, t0 + hours(6)).is_err());
    }

    #[test]
    fn supplement_pauses_and_resumes_the_clock() {
        let w = World::new();
        let t0 = monday_9am();
        let l = w
            .act(
                &Lifecycle::new(),
                &w.officer,
                Command::new(Action::Accept),
                t0,
            )
            .expect("accept");
        let due = l.due_at.expect("due");
        assert!(
            w.act(&l, &w.officer, Command::new(Action::RequestSupplement), t0)
                .is_err(),
            "a supplement request needs a reason"
        );
        let l = w
            .act(
                &l,
                &w.officer,
                Command::new(Action::RequestSupplement).with_note("Thiếu giấy chứng sinh"),
                t0 + hours(1),
            )
            .expect("request");
        assert_eq!(l.status, Status::SupplementRequested);
        // The citizen supplies it two working days later (Wednesday 10:00).
        let later = t0 + hours(49);
        let l = w
            .act(&l, &w.citizen, Command::new(Action::Supplement), later)
            .expect("supplement");
        assert_eq!(l.status, Status::Accepted);
        let paused = w.cal.working_minutes_between(t0 + hours(1), later);
        assert_eq!(paused, 2 * 8 * 60);
        assert_eq!(l.due_at, Some(w.cal.add_working_minutes(due, paused)));
        assert!(l.due_at > Some(due));
    }

    #[test]
    fn apology_moves_the_appointment_not_the_legal_deadline() {
        let w = World::new();
        let t0 = monday_9am();
        let l = w
            .act(
                &Lifecycle::new(),
                &w.officer,
                Command::new(Action::Accept),
                t0,
            )
            .expect("accept");
        let due = l.due_at.expect("due");
        let mut cmd = Command::new(Action::Apologize).with_note("Chờ xác minh");
        cmd.new_due_at = Some(due - hours(1));
        assert!(
            w.act(&l, &w.officer, cmd.clone(), t0).is_err(),
            "must be later"
        );
        cmd.new_due_at = Some(due + chrono::Duration::days(3));
        let l = w.act(&l, &w.officer, cmd, t0).expect("apologize");
        assert_eq!(l.appointment_at, Some(due + chrono::Duration::days(3)));
        assert_eq!(l.due_at, Some(due));
        assert_eq!(l.apologies.len(), 1);
        assert_eq!(l.status, Status::Accepted);
    }

    #[test]
    fn scope_is_checked_before_state() {
        let w = World::new();
        let t0 = monday_9am();
        let other = actor(9, Role::Officer, Some("UB00076"));
        assert_eq!(
            w.act(&Lifecycle::new(), &other, Command::new(Action::Accept), t0),
            Err(DomainError::Forbidden("other-agency"))
        );
        let stranger = actor(8, Role::Citizen, None);
        assert_eq!(
            w.act(
                &Lifecycle::new(),
                &stranger,
                Command::new(Action::Withdraw).with_note("x"),
                t0
            ),
            Err(DomainError::Forbidden("not-applicant"))
        );
        assert_eq!(
            w.act(
                &Lifecycle::new(),
                &w.citizen,
                Command::new(Action::Approve),
                t0
            ),
            Err(DomainError::Forbidden("role"))
        );
    }

    /// Every (status, action) pair: allowed exactly as the table says and
    /// otherwise refused without a change.
    #[test]
    fn every_transition_legal_and_illegal() {
        use Action as A;
        use Status as S;
        let expected: &[(S, A, bool, Option<S>)] = &[
            (S::NewlyRegistered, A::Accept, false, Some(S::Accepted)),
            (S::NewlyRegistered, A::Refuse, false, Some(S::NotAccepted)),
            (
                S::NewlyRegistered,
                A::RequestSupplement,
                false,
                Some(S::SupplementRequested),
            ),
            (
                S::Accepted,
                A::RequestSupplement,
                false,
                Some(S::SupplementRequested),
            ),
            (
                S::Processing,
                A::RequestSupplement,
                false,
                Some(S::SupplementRequested),
            ),
            (
                S::SupplementRequested,
                A::Supplement,
                false,
                Some(S::Processing),
            ),
            (S::Accepted, A::Forward, false, Some(S::Processing)),
            (S::Processing, A::Forward, false, Some(S::Processing)),
            (S::Processing, A::Approve, true, Some(S::Completed)),
            (S::Processing, A::Reject, true, Some(S::Completed)),
            (
                S::Accepted,
                A::RequestPayment,
                false,
                Some(S::FinancialObligation),
            ),
            (
                S::Processing,
                A::RequestPayment,
                false,
                Some(S::FinancialObligation),
            ),
            (
                S::FinancialObligation,
                A::ConfirmPayment,
                false,
                Some(S::Processing),
            ),
            (
                S::Completed,
                A::ReturnResult,
                false,
                Some(S::ResultReturned),
            ),
            (S::Completed, A::Evaluate, false, Some(S::Completed)),
            (
                S::ResultReturned,
                A::Evaluate,
                false,
                Some(S::ResultReturned),
            ),
        ];
        for status in S::ALL {
            for action in A::ALL {
                for last in [false, true] {
                    let got = transition(status, action, last);
                    let want = expected
                        .iter()
                        .find(|(s, a, l, _)| {
                            *s == status
                                && *a == action
                                && (*l == last
                                    || matches!(
                                        action,
                                        A::RequestSupplement
                                            | A::Supplement
                                            | A::RequestPayment
                                            | A::ConfirmPayment
                                            | A::ReturnResult
                                            | A::Evaluate
                                            | A::Accept
                                            | A::Refuse
                                    ))
                        })
                        .and_then(|e| e.3);
                    let want = match action {
                        A::Withdraw if status.is_open() => Some(S::Withdrawn),
                        A::Stop if status.is_open() && status != S::NewlyRegistered => {
                            Some(S::Stopped)
                        }
                        A::Apologize if status.is_open() && status != S::NewlyRegistered => {
                            Some(status)
                        }
                        _ => want,
                    };
                    assert_eq!(got, want, "{status:?} {action:?} last={last}");
                }
            }
        }
    }

    #[test]
    fn refused_actions_change_nothing() {
        let w = World::new();
        let t0 = monday_9am();
        let l = Lifecycle::new();
        let before = l.clone();
        for a in [
            A::ReturnResult,
            A::Supplement,
            A::ConfirmPayment,
            A::Forward,
        ] {
            let who = if a == A::Supplement {
                &w.citizen
            } else {
                &w.officer
            };
            assert!(
                matches!(
                    w.act(&l, who, Command::new(a), t0),
                    Err(DomainError::NotAllowed { .. })
                ),
                "{a:?}"
            );
        }
        assert_eq!(l, before);
        use Action as A;
    }

    #[test]
    fn late_completion_is_classified_late() {
        let w = World::new();
        let t0 = monday_9am();
        let mut l = w
            .act(
                &Lifecycle::new(),
                &w.officer,
                Command::new(Action::Accept),
                t0,
            )
            .expect("accept");
        let late = t0 + chrono::Duration::days(10);
        for who in [&w.officer, &w.specialist] {
            l = w
                .act(&l, who, Command::new(Action::Forward), late)
                .expect("forward");
        }
        let l = w
            .act(
                &l,
                &w.leader,
                Command::new(Action::Reject).with_note("Không đủ điều kiện"),
                late,
            )
            .expect("reject");
        assert_eq!(l.outcome, Some(Outcome::Rejected));
        assert_eq!(l.timeliness, Some(Timeliness::Late));
        assert_eq!(l.steps[1].timeliness, Some(Timeliness::Late));
        assert_eq!(l.last_note.as_deref(), Some("Không đủ điều kiện"));
    }
}

//! The commands of a dossier: submit it (online or at the counter), take
//! an action of its lifecycle, who may see it, and what its applicant sees
//! of its history. The domain decides; the store writes the new state, its
//! audit record and its event in one transaction.

use chrono::{DateTime, NaiveDate, Utc};
use motcua_domain::audit::AuditEntry;
use motcua_domain::calendar::WorkingCalendar;
use motcua_domain::dossier::{
    Action, Channel, Command, Lifecycle, Ownership, Role, Rules, SatisfactionLevel, Status, decide,
};
use motcua_domain::procedure::{OnlineLevel, Procedure};
use motcua_domain::units::{Agency, UnitLevel};
use motcua_domain::{DossierCode, UnitCode};
use motcua_store::{Applicant, Dossier, DossierUpdate, NewDossier, StoredDocument, User};

use crate::App;
use crate::accounts::{actor_of, has, is_staff};
use crate::error::{CommandError, CommandResult};
use crate::prefill::{SOURCES_KEY, SourceResult};

pub fn audit_entry(
    st: &App,
    user: &User,
    role: Role,
    action: &str,
    payload: &serde_json::Value,
) -> AuditEntry {
    let mut e = AuditEntry::new(
        st.clock.now(),
        &user.username,
        role.as_str(),
        action,
        payload,
    );
    e.agency_code = user.agency_code.as_ref().map(|a| a.to_string());
    e
}

/// The agency that handles procedure `p` filed in `unit`: the agency of the
/// procedure's kind in that commune, or in its province for a
/// province-level procedure.
pub async fn agency_for(st: &App, p: &Procedure, unit: &UnitCode) -> CommandResult<Option<Agency>> {
    let Some(unit) = st.store.unit(unit).await? else {
        return Ok(None);
    };
    let agency_unit = match (p.level, unit.level) {
        (UnitLevel::Commune, UnitLevel::Commune) | (UnitLevel::Province, UnitLevel::Province) => {
            unit.code.clone()
        }
        (UnitLevel::Province, UnitLevel::Commune) => {
            unit.parent_code.clone().unwrap_or(unit.code.clone())
        }
        (UnitLevel::Commune, UnitLevel::Province) => return Ok(None),
    };
    Ok(st.store.agency_for(p.agency_kind, &agency_unit).await?)
}

/// Writes a new dossier: filed online by the citizen, or received at the
/// counter (accepted at once, Form 01) by an officer.
#[allow(clippy::too_many_arguments)]
pub async fn create_dossier(
    st: &App,
    user: &User,
    p: &Procedure,
    agency: &Agency,
    unit: UnitCode,
    channel: Channel,
    applicant: Applicant,
    fields: serde_json::Map<String, serde_json::Value>,
    documents: Vec<StoredDocument>,
    sources: Vec<SourceResult>,
) -> CommandResult<Dossier> {
    if channel == Channel::Online && p.online == OnlineLevel::None {
        return Err(CommandError::Refused("not-online"));
    }
    let mut fields = fields;
    if !sources.is_empty() {
        // Where the data came from (registry through the exchange, with its
        // X-Road-Id, or typed and why) stays with the dossier's fields; the
        // key cannot be a field id (ids start with a letter).
        fields.insert(
            SOURCES_KEY.into(),
            serde_json::to_value(&sources).map_err(CommandError::internal)?,
        );
    }
    let now = st.clock.now();
    let cal = st.calendar_for(&unit).await?;
    let mut lifecycle = Lifecycle::new();
    let mut event = "dossier.submitted".to_string();
    let mut action = "dossier.submit";
    let mut to = Status::NewlyRegistered;
    if channel != Channel::Online {
        let own = Ownership {
            agency: agency.code.clone(),
            applicant_user_id: applicant.user_id,
        };
        let d = decide(
            &lifecycle,
            &own,
            rules(&cal, p),
            &actor_of(user),
            &Command::new(Action::Accept),
            now,
        )?;
        lifecycle = d.lifecycle;
        event = d.event.to_string();
        action = "dossier.receive_at_counter";
        to = d.to;
    }
    let role = if channel == Channel::Online {
        Role::Citizen
    } else {
        Role::Officer
    };
    let mut entry = audit_entry(
        st,
        user,
        role,
        action,
        &serde_json::json!({ "fields": fields, "documents": documents.iter().map(|d| &d.sha256).collect::<Vec<_>>() }),
    );
    entry.to_status = Some(to.as_str().into());
    entry.agency_code = Some(agency.code.to_string());
    let d = st
        .store
        .create_dossier(NewDossier {
            procedure_code: p.code.clone(),
            procedure_version: p.version,
            agency_code: agency.code.clone(),
            unit_code: unit,
            channel,
            applicant,
            fields,
            documents,
            submitted_at: now,
            lifecycle,
            audit: entry,
            event,
            access_code: motcua_store::new_access_code()?,
        })
        .await?;
    st.dossier_written(&d.agency_code, true);
    Ok(d)
}

/// The rules `decide` applies to a dossier of `p`, on the calendar `cal`
/// (take it once with [`App::calendar_for`]).
pub fn rules<'a>(cal: &'a WorkingCalendar, p: &'a Procedure) -> Rules<'a> {
    Rules {
        workflow: &p.workflow,
        total_minutes: p.processing_time.working_minutes(cal.hours_per_day()),
        calendar: cal,
    }
}

/// The pinned procedure version of a dossier.
pub async fn procedure_of(st: &App, d: &Dossier) -> CommandResult<Procedure> {
    Ok(st
        .store
        .procedure(&d.procedure_code, d.procedure_version)
        .await?
        .ok_or_else(|| CommandError::internal("pinned procedure version missing"))?
        .definition)
}

/// Takes one action of the lifecycle: the domain decides, the store writes
/// the new state, its audit record and its event together.
pub async fn take_action(
    st: &App,
    user: &User,
    d: &Dossier,
    p: &Procedure,
    cmd: Command,
    documents: Vec<StoredDocument>,
) -> CommandResult<Dossier> {
    let own = Ownership {
        agency: d.agency_code.clone(),
        applicant_user_id: d.applicant.user_id,
    };
    let now = st.clock.now();
    let actor = actor_of(user);
    let cal = st.calendar_for(&d.unit_code).await?;
    let decision = decide(&d.lifecycle, &own, rules(&cal, p), &actor, &cmd, now)?;
    let action = cmd.action;
    let role = action
        .roles()
        .iter()
        .copied()
        .find(|r| actor.has(*r))
        .unwrap_or(Role::Citizen);
    let level = cmd.level.map(|l| match l {
        SatisfactionLevel::Dissatisfied => "dissatisfied",
        SatisfactionLevel::Satisfied => "satisfied",
        SatisfactionLevel::VerySatisfied => "very_satisfied",
    });
    let payload = serde_json::json!({
        "action": action.as_str(),
        "note": cmd.note,
        "new_due_at": cmd.new_due_at,
        "level": level,
        "scores": cmd.scores,
        "documents": documents.iter().map(|d| &d.sha256).collect::<Vec<_>>(),
    });
    let mut entry = audit_entry(
        st,
        user,
        role,
        &format!("dossier.{}", action.as_str()),
        &payload,
    );
    entry.agency_code = Some(d.agency_code.to_string());
    entry.dossier_code = Some(d.code.to_string());
    entry.from_status = Some(decision.from.as_str().into());
    entry.to_status = Some(decision.to.as_str().into());
    entry.note = decision
        .lifecycle
        .last_note
        .clone()
        .filter(|_| cmd.note.is_some());
    let updated = st
        .store
        .update_dossier(DossierUpdate {
            code: d.code.clone(),
            expected_version: d.version,
            lifecycle: decision.lifecycle,
            new_documents: documents,
            audit: entry,
            event: decision.event.to_string(),
            at: now,
        })
        .await?;
    st.dossier_written(&updated.agency_code, false);
    Ok(updated)
}

/// May `user` see dossier `d`? Applicants see their own; staff see their
/// agency's; a province admin or operations-centre viewer sees every agency
/// of their province.
pub async fn may_view(st: &App, user: &User, d: &Dossier) -> CommandResult<bool> {
    if d.applicant.user_id == Some(user.id) {
        return Ok(true);
    }
    if !is_staff(user) {
        return Ok(false);
    }
    if user.agency_code.as_ref() == Some(&d.agency_code) {
        return Ok(true);
    }
    if has(user, Role::ProvinceAdmin) || has(user, Role::IocViewer) {
        let mine = match &user.agency_code {
            Some(a) => st.store.agency(a).await?,
            None => None,
        };
        let theirs = st.store.agency(&d.agency_code).await?;
        if let (Some(mine), Some(theirs)) = (mine, theirs) {
            return Ok(province_of(st, &mine.unit_code).await?
                == province_of(st, &theirs.unit_code).await?);
        }
    }
    Ok(false)
}

async fn province_of(st: &App, u: &UnitCode) -> CommandResult<Option<UnitCode>> {
    if u.is_province() {
        Ok(Some(u.clone()))
    } else {
        Ok(st.store.unit(u).await?.and_then(|x| x.parent_code))
    }
}

pub async fn load_dossier(st: &App, user: &User, code: &str) -> CommandResult<Dossier> {
    let code = DossierCode::parse(code).map_err(|_| CommandError::NotFound)?;
    let d = st
        .store
        .dossier(&code)
        .await?
        .ok_or(CommandError::NotFound)?;
    if !may_view(st, user, &d).await? {
        // Dossier codes are public (tracking), so refusing says no more
        // than tracking would.
        return Err(CommandError::Forbidden(
            "the dossier belongs to another agency or applicant",
        ));
    }
    Ok(d)
}

/// Staff reading a citizen's personal data is written to the audit chain.
pub async fn audit_view(st: &App, user: &User, d: &Dossier, what: &str) -> CommandResult<()> {
    if d.applicant.user_id == Some(user.id) {
        return Ok(());
    }
    let role = user.roles.first().copied().unwrap_or(Role::Officer);
    let mut e = audit_entry(
        st,
        user,
        role,
        what,
        &serde_json::json!({ "code": d.code.as_str() }),
    );
    e.dossier_code = Some(d.code.to_string());
    st.store.append_audit(e).await?;
    Ok(())
}

/// A new appointment date from a form or the API: RFC 3339, or a day
/// (`YYYY-MM-DD` or `dd/mm/yyyy`) meaning the end of that office day
/// (17:00 Vietnam time).
pub fn parse_new_due(raw: &str) -> CommandResult<DateTime<Utc>> {
    let raw = raw.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        return Ok(t.with_timezone(&Utc));
    }
    let invalid = || CommandError::field("new_due_at", "invalid-date");
    let day = NaiveDate::parse_from_str(raw, "%Y-%m-%d")
        .or_else(|_| NaiveDate::parse_from_str(raw, "%d/%m/%Y"))
        .map_err(|_| invalid())?;
    let local = day.and_hms_opt(17, 0, 0).ok_or_else(invalid)?;
    Ok(DateTime::<Utc>::from_naive_utc_and_offset(
        local - chrono::Duration::hours(7),
        Utc,
    ))
}

/// The records of a dossier its applicant sees: what happened to it, not
/// who of the staff read it (the one place this is decided).
pub async fn timeline(
    st: &App,
    code: &DossierCode,
) -> CommandResult<Vec<motcua_domain::audit::AuditRecord>> {
    Ok(st
        .store
        .dossier_audit(code)
        .await?
        .into_iter()
        .filter(|r| {
            r.entry.action != "dossier.view_personal_data"
                && r.entry.action != "dossier.download_document"
        })
        .collect())
}

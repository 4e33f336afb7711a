//! Rows to domain values, once for both databases.

use motcua_domain::audit::{AuditEntry, AuditRecord};
use motcua_domain::dossier::{Channel, Role, Status};
use motcua_domain::units::{AdminUnit, Agency, AgencyKind, UnitLevel};
use motcua_domain::{AgencyCode, DossierCode, UnitCode};

use super::Row;
use crate::{
    Applicant, Availability, Delivery, DeliveryMode, DeliveryState, Dossier, DossierSummary,
    OutboxEvent, PubEvent, StoreError, StoreResult, StoredDocument, StoredProcedure, Subscription,
    ThrottleState, User, Verification, VerificationMethod,
};

fn unknown(what: &str, v: &str) -> StoreError {
    StoreError::Backend(format!("unknown {what} {v:?} in the database"))
}

fn known<T>(what: &str, v: &str, parsed: Option<T>) -> Result<T, StoreError> {
    parsed.ok_or_else(|| unknown(what, v))
}

pub fn roles_to_text(roles: &[Role]) -> String {
    roles
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

fn roles_from_text(s: &str) -> StoreResult<Vec<Role>> {
    s.split(',')
        .filter(|r| !r.is_empty())
        .map(|r| known("role", r, Role::parse(r)))
        .collect()
}

pub fn user(r: &Row) -> StoreResult<User> {
    Ok(User {
        id: r.int("id")?,
        username: r.text("username")?,
        password_hash: r.text("password_hash")?,
        full_name: r.text("full_name")?,
        national_id: r.opt_text("national_id")?,
        phone: r.opt_text("phone")?,
        email: r.opt_text("email")?,
        roles: roles_from_text(&r.text("roles")?)?,
        agency_code: r.opt_parsed("agency_code", AgencyCode::parse)?,
        disabled: r.bool("disabled")?,
        created_at: r.time("created_at")?,
        national_id_verified: match r.opt_time("national_id_verified_at")? {
            Some(at) => {
                let method = r.text("national_id_verification")?;
                Some(Verification {
                    at,
                    by: r.text("national_id_verified_by")?,
                    method: known("verification", &method, VerificationMethod::parse(&method))?,
                })
            }
            None => None,
        },
    })
}

pub fn unit(r: &Row) -> StoreResult<AdminUnit> {
    let level = r.text("level")?;
    Ok(AdminUnit {
        code: r.parsed("code", UnitCode::parse)?,
        name: r.text("name")?,
        division_type: r.text("division_type")?,
        level: known("level", &level, UnitLevel::parse(&level))?,
        parent_code: r.opt_parsed("parent_code", UnitCode::parse)?,
    })
}

pub fn agency(r: &Row) -> StoreResult<Agency> {
    let kind = r.text("kind")?;
    Ok(Agency {
        code: r.parsed("code", AgencyCode::parse)?,
        name_vi: r.text("name_vi")?,
        name_en: r.text("name_en")?,
        kind: known("agency kind", &kind, AgencyKind::parse(&kind))?,
        unit_code: r.parsed("unit_code", UnitCode::parse)?,
        address: r.text("address")?,
    })
}

pub fn procedure(r: &Row) -> StoreResult<StoredProcedure> {
    Ok(StoredProcedure {
        definition: r.json("definition")?,
        enabled: r.bool("enabled")?,
        imported_at: r.time("imported_at")?,
        home_province: r.opt_parsed("home_province", UnitCode::parse)?,
    })
}

fn status(s: &str) -> StoreResult<Status> {
    known("status", s, Status::parse(s))
}

fn channel(s: &str) -> StoreResult<Channel> {
    known("channel", s, Channel::parse(s))
}

pub fn dossier(r: &Row) -> StoreResult<Dossier> {
    Ok(Dossier {
        id: r.int("id")?,
        code: r.parsed("code", DossierCode::parse)?,
        procedure_code: r.text("procedure_code")?,
        procedure_version: u32::try_from(r.int("procedure_version")?)
            .map_err(|_| unknown("procedure version", "out of range"))?,
        agency_code: r.parsed("agency_code", AgencyCode::parse)?,
        unit_code: r.parsed("unit_code", UnitCode::parse)?,
        channel: channel(&r.text("channel")?)?,
        applicant: Applicant {
            user_id: r.opt_int("applicant_user_id")?,
            full_name: r.text("applicant_name")?,
            national_id: r.text("applicant_national_id")?,
            phone: r.opt_text("applicant_phone")?,
            email: r.opt_text("applicant_email")?,
        },
        fields: r.json("fields")?,
        documents: Vec::new(),
        submitted_at: r.time("submitted_at")?,
        lifecycle: r.json("lifecycle")?,
        version: r.int("version")?,
        updated_at: r.time("updated_at")?,
        access_code: r.opt_text("access_code")?.unwrap_or_default(),
    })
}

pub fn summary(r: &Row) -> StoreResult<DossierSummary> {
    Ok(DossierSummary {
        code: r.parsed("code", DossierCode::parse)?,
        procedure_code: r.text("procedure_code")?,
        agency_code: r.parsed("agency_code", AgencyCode::parse)?,
        applicant_name: r.text("applicant_name")?,
        status: status(&r.text("status")?)?,
        holder: r
            .opt_text("holder")?
            .map(|h| known("role", &h, Role::parse(&h)))
            .transpose()?,
        channel: channel(&r.text("channel")?)?,
        submitted_at: r.time("submitted_at")?,
        due_at: r.opt_time("due_at")?,
        appointment_at: r.opt_time("appointment_at")?,
    })
}

pub fn document(r: &Row) -> StoreResult<StoredDocument> {
    Ok(StoredDocument {
        document_id: r.text("document_id")?,
        filename: r.text("filename")?,
        content_type: r.text("content_type")?,
        size: r.count("size")?,
        sha256: r.text("sha256")?,
        uploaded_at: r.time("uploaded_at")?,
        stage: r.text("stage")?,
    })
}

pub fn audit(r: &Row) -> StoreResult<AuditRecord> {
    Ok(AuditRecord {
        seq: r.int("seq")?,
        entry: AuditEntry {
            at: r.micros("at")?,
            actor: r.text("actor")?,
            actor_role: r.text("actor_role")?,
            agency_code: r.opt_text("agency_code")?,
            action: r.text("action")?,
            dossier_code: r.opt_text("dossier_code")?,
            from_status: r.opt_text("from_status")?,
            to_status: r.opt_text("to_status")?,
            note: r.opt_text("note")?,
            payload_hash: r.text("payload_hash")?,
        },
        prev_hash: r.text("prev_hash")?,
        hash: r.text("hash")?,
    })
}

pub fn outbox_event(r: &Row) -> StoreResult<OutboxEvent> {
    Ok(OutboxEvent {
        id: r.int("id")?,
        topic: r.text("topic")?,
        payload: r.json("payload")?,
        created_at: r.time("created_at")?,
    })
}

fn mode(s: &str) -> StoreResult<DeliveryMode> {
    known("delivery mode", s, DeliveryMode::parse(s))
}

pub fn subscription(r: &Row) -> StoreResult<Subscription> {
    Ok(Subscription {
        id: r.int("id")?,
        client: r.text("client")?,
        event_type: r.text("event_type")?,
        mode: mode(&r.text("mode")?)?,
        url: r.opt_text("url")?,
        created_by: r.text("created_by")?,
        created_at: r.time("created_at")?,
        deleted_at: r.opt_time("deleted_at")?,
    })
}

pub fn delivery(r: &Row) -> StoreResult<Delivery> {
    let state = r.text("state")?;
    Ok(Delivery {
        id: r.int("id")?,
        subscription_id: r.int("subscription_id")?,
        client: r.text("client")?,
        mode: mode(&r.text("mode")?)?,
        url: r.opt_text("url")?,
        event: PubEvent {
            id: r.int("e_id")?,
            event_id: r.text("event_id")?,
            event_type: r.text("event_type")?,
            source_key: r.text("source_key")?,
            payload: r.json("payload")?,
            published_at: r.time("published_at")?,
        },
        state: known("delivery state", &state, DeliveryState::parse(&state))?,
        attempts: u32::try_from(r.int("attempts")?).unwrap_or(0),
        next_attempt_at: r.time("next_attempt_at")?,
        last_status: r
            .opt_int("last_status")?
            .and_then(|s| u16::try_from(s).ok()),
        last_error: r.opt_text("last_error")?,
        updated_at: r.time("updated_at")?,
        done_at: r.opt_time("done_at")?,
    })
}

pub fn throttle(r: &Row) -> StoreResult<ThrottleState> {
    Ok(ThrottleState {
        key: r.text("key")?,
        failures: u32::try_from(r.int("failures")?).unwrap_or(u32::MAX),
        window_start: r.time("window_start")?,
        last_at: r.time("last_at")?,
    })
}

pub fn availability(r: &Row) -> StoreResult<Availability> {
    Ok(Availability {
        unit_code: r.parsed("unit_code", UnitCode::parse)?,
        procedure_code: r.text("procedure_code")?,
        available: r.bool("available")?,
        changed_at: r.time("changed_at")?,
        changed_by: r.text("changed_by")?,
    })
}

/// Every row through `map`.
pub fn all<T>(rows: Vec<Row>, map: fn(&Row) -> StoreResult<T>) -> StoreResult<Vec<T>> {
    rows.iter().map(map).collect()
}

/// The first row through `map`.
pub fn first<T>(row: Option<Row>, map: fn(&Row) -> StoreResult<T>) -> StoreResult<Option<T>> {
    row.as_ref().map(map).transpose()
}

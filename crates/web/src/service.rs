//! The commands behind both the JSON API and the pages: reading forms,
//! checking and storing uploads, submitting a dossier, taking an action,
//! and who may see what. Handlers only parse their input and render.

use axum::extract::Multipart;
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

use crate::AppState;
use crate::auth::actor_of;
use crate::error::{ApiError, FieldProblem};

/// A file of a form.
pub struct Upload {
    pub name: String,
    pub filename: String,
    pub bytes: Vec<u8>,
}

/// A parsed multipart form: text values (repeatable) and files.
#[derive(Default)]
pub struct FormData {
    pub values: Vec<(String, String)>,
    pub files: Vec<Upload>,
    /// Files refused while reading (too large), when the form is read with
    /// [`FormData::read_keeping_input`]; keyed by document id.
    pub rejected: Vec<FieldProblem>,
}

impl FormData {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn all(&self, name: &str) -> Vec<&str> {
        self.values
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Reads a form; a file over the size limit fails the whole request.
    pub async fn read(st: &AppState, mp: Multipart) -> Result<Self, ApiError> {
        let form = Self::read_inner(st, mp, false).await?;
        Ok(form)
    }

    /// Reads a form whose typed values must survive any error: a file over
    /// the size limit is left out and reported in `rejected`, so the form
    /// can be shown again with everything else the person entered.
    pub async fn read_keeping_input(st: &AppState, mp: Multipart) -> Result<Self, ApiError> {
        Self::read_inner(st, mp, true).await
    }

    async fn read_inner(st: &AppState, mut mp: Multipart, lenient: bool) -> Result<Self, ApiError> {
        let mut out = FormData::default();
        while let Some(field) = mp.next_field().await.map_err(mp_err)? {
            let name = field.name().unwrap_or_default().to_string();
            let file_name = field.file_name().map(str::to_string);
            let bytes = field.bytes().await.map_err(mp_err)?;
            let Some(raw_name) = file_name else {
                // Text parts are UTF-8 or refused, never repaired.
                let v = String::from_utf8(bytes.to_vec())
                    .map_err(|_| ApiError::field(&name, "invalid-utf8"))?;
                out.values.push((name, v));
                continue;
            };
            if raw_name.is_empty() && bytes.is_empty() {
                continue; // no file chosen
            }
            let field_key = if lenient {
                name.strip_prefix("document:").unwrap_or(&name).to_string()
            } else {
                name.clone()
            };
            let problem = if bytes.len() as u64 > st.config.max_file_bytes {
                let mut p = FieldProblem::new(&field_key, "document-too-large");
                p.params.insert(
                    "max".into(),
                    format!("{} MB", st.config.max_file_bytes / 1_000_000).into(),
                );
                Some(p)
            } else if motcua_domain::ids::parse_file_name(&raw_name).is_err() {
                Some(FieldProblem::new(&field_key, "document-filename"))
            } else {
                None
            };
            if let Some(p) = problem {
                if !lenient {
                    return Err(ApiError::validation(vec![p]));
                }
                out.rejected.push(p);
                continue;
            }
            let filename = motcua_domain::ids::parse_file_name(&raw_name)
                .map_err(|_| ApiError::field(&field_key, "document-filename"))?;
            out.files.push(Upload {
                name,
                filename,
                bytes: bytes.to_vec(),
            });
        }
        Ok(out)
    }
}

fn mp_err(e: axum::extract::multipart::MultipartError) -> ApiError {
    if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(e.status(), "payload-too-large")
    } else {
        ApiError::bad_request(e.body_text())
    }
}

pub fn extension(filename: &str) -> String {
    filename
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default()
}

/// Recognises the file type by its first bytes, so that a file's name
/// cannot disguise its content.
pub fn sniff_matches(ext: &str, bytes: &[u8]) -> bool {
    let starts = |m: &[u8]| bytes.starts_with(m);
    match ext {
        "pdf" => starts(b"%PDF"),
        "png" => starts(b"\x89PNG\r\n\x1a\n"),
        "jpg" | "jpeg" => starts(b"\xFF\xD8\xFF"),
        "docx" | "xlsx" | "odt" => starts(b"PK\x03\x04"),
        "doc" | "xls" => starts(b"\xD0\xCF\x11\xE0"),
        "tif" | "tiff" => starts(b"II*\0") || starts(b"MM\0*"),
        _ => false,
    }
}

pub fn content_type_of(ext: &str) -> &'static str {
    match ext {
        "pdf" => "application/pdf",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "odt" => "application/vnd.oasis.opendocument.text",
        "doc" => "application/msword",
        "xls" => "application/vnd.ms-excel",
        "tif" | "tiff" => "image/tiff",
        _ => "application/octet-stream",
    }
}

/// Checks one file against its document spec: type by name and content.
pub fn check_file(p: &Procedure, doc_id: &str, up: &Upload) -> Option<FieldProblem> {
    let Some(spec) = p.document(doc_id) else {
        return Some(FieldProblem::new(doc_id, "document-unknown"));
    };
    let ext = extension(&up.filename);
    let accepted =
        spec.accept.contains(&ext) || (ext == "jpeg" && spec.accept.iter().any(|a| a == "jpg"));
    if !accepted {
        let mut e = FieldProblem::new(doc_id, "document-type");
        e.params.insert("file".into(), up.filename.clone().into());
        e.params
            .insert("accept".into(), spec.accept.join(", ").into());
        return Some(e);
    }
    if !sniff_matches(&ext, &up.bytes) {
        return Some(FieldProblem::new(doc_id, "document-content"));
    }
    None
}

/// Stores a checked file in the object store.
pub async fn store_file(
    st: &AppState,
    doc_id: &str,
    up: Upload,
    stage: &str,
) -> Result<StoredDocument, ApiError> {
    let size = up.bytes.len() as u64;
    let r = st.objects.put(up.bytes).await?;
    Ok(StoredDocument {
        document_id: doc_id.to_string(),
        content_type: content_type_of(&extension(&up.filename)).to_string(),
        filename: up.filename,
        size,
        sha256: r.sha256,
        uploaded_at: st.clock.now(),
        stage: stage.to_string(),
    })
}

pub fn audit_entry(
    st: &AppState,
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
pub async fn agency_for(
    st: &AppState,
    p: &Procedure,
    unit: &UnitCode,
) -> Result<Option<Agency>, ApiError> {
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
    st: &AppState,
    user: &User,
    p: &Procedure,
    agency: &Agency,
    unit: UnitCode,
    channel: Channel,
    applicant: Applicant,
    fields: serde_json::Map<String, serde_json::Value>,
    documents: Vec<StoredDocument>,
    sources: Vec<crate::prefill::SourceResult>,
) -> Result<Dossier, ApiError> {
    if channel == Channel::Online && p.online == OnlineLevel::None {
        return Err(ApiError::new(
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            "not-online",
        ));
    }
    let mut fields = fields;
    if !sources.is_empty() {
        // Where the data came from (registry through the exchange, with its
        // X-Road-Id, or typed and why) stays with the dossier's fields; the
        // key cannot be a field id (ids start with a letter).
        fields.insert(
            crate::prefill::SOURCES_KEY.into(),
            serde_json::to_value(&sources).map_err(ApiError::internal)?,
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
    st.metrics.dossier_submitted();
    st.queue_changed(&d.agency_code);
    Ok(d)
}

/// The rules `decide` applies to a dossier of `p`, on the calendar `cal`
/// (take it once with [`AppState::calendar`]).
pub fn rules<'a>(cal: &'a WorkingCalendar, p: &'a Procedure) -> Rules<'a> {
    Rules {
        workflow: &p.workflow,
        total_minutes: p.processing_time.working_minutes(cal.hours_per_day()),
        calendar: cal,
    }
}

/// The pinned procedure version of a dossier.
pub async fn procedure_of(st: &AppState, d: &Dossier) -> Result<Procedure, ApiError> {
    Ok(st
        .store
        .procedure(&d.procedure_code, d.procedure_version)
        .await?
        .ok_or_else(|| ApiError::internal("pinned procedure version missing"))?
        .definition)
}

/// Takes one action of the lifecycle: the domain decides, the store writes
/// the new state, its audit record and its event together.
pub async fn take_action(
    st: &AppState,
    user: &User,
    d: &Dossier,
    p: &Procedure,
    cmd: Command,
    documents: Vec<StoredDocument>,
) -> Result<Dossier, ApiError> {
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
    st.queue_changed(&updated.agency_code);
    Ok(updated)
}

/// May `user` see dossier `d`? Applicants see their own; staff see their
/// agency's; a province admin or operations-centre viewer sees every agency
/// of their province.
pub async fn may_view(st: &AppState, user: &User, d: &Dossier) -> Result<bool, ApiError> {
    if d.applicant.user_id == Some(user.id) {
        return Ok(true);
    }
    if !crate::auth::is_staff(user) {
        return Ok(false);
    }
    if user.agency_code.as_ref() == Some(&d.agency_code) {
        return Ok(true);
    }
    if crate::auth::has(user, Role::ProvinceAdmin) || crate::auth::has(user, Role::IocViewer) {
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

async fn province_of(st: &AppState, u: &UnitCode) -> Result<Option<UnitCode>, ApiError> {
    if u.is_province() {
        Ok(Some(u.clone()))
    } else {
        Ok(st.store.unit(u).await?.and_then(|x| x.parent_code))
    }
}

pub async fn load_dossier(st: &AppState, user: &User, code: &str) -> Result<Dossier, ApiError> {
    let code = DossierCode::parse(code).map_err(|_| ApiError::not_found())?;
    let d = st
        .store
        .dossier(&code)
        .await?
        .ok_or_else(ApiError::not_found)?;
    if !may_view(st, user, &d).await? {
        // Dossier codes are public (tracking), so refusing says no more
        // than tracking would.
        return Err(
            ApiError::forbidden().detail("the dossier belongs to another agency or applicant")
        );
    }
    Ok(d)
}

/// Staff reading a citizen's personal data is written to the audit chain.
pub async fn audit_view(
    st: &AppState,
    user: &User,
    d: &Dossier,
    what: &str,
) -> Result<(), ApiError> {
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
pub fn parse_new_due(raw: &str) -> Result<DateTime<Utc>, ApiError> {
    let raw = raw.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        return Ok(t.with_timezone(&Utc));
    }
    let invalid = || ApiError::field("new_due_at", "invalid-date");
    let day = NaiveDate::parse_from_str(raw, "%Y-%m-%d")
        .or_else(|_| NaiveDate::parse_from_str(raw, "%d/%m/%Y"))
        .map_err(|_| invalid())?;
    let local = day.and_hms_opt(17, 0, 0).ok_or_else(invalid)?;
    Ok(DateTime::<Utc>::from_naive_utc_and_offset(
        local - chrono::Duration::hours(7),
        Utc,
    ))
}

/// A user name: 3–32 lower-case letters, digits, dots, hyphens, underscores.
pub fn valid_username(u: &str) -> bool {
    (3..=32).contains(&u.len())
        && u.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_')
        })
}

/// What a citizen gives to open an account.
pub struct Registration<'a> {
    pub username: &'a str,
    pub password: &'a str,
    pub full_name: &'a str,
    pub national_id: &'a str,
    pub phone: Option<&'a str>,
    pub email: Option<&'a str>,
}

/// Opens a citizen account after checking every field. `Err` carries either
/// the per-field problems (a validation error) or a failure of the system.
pub async fn register_citizen(
    st: &AppState,
    r: Registration<'_>,
    client: &crate::throttle::Client,
) -> Result<User, ApiError> {
    use motcua_domain::ids::{NationalId, parse_email, parse_phone};
    let mut errs = Vec::new();
    let username = r.username.trim().to_string();
    if !valid_username(&username) {
        errs.push(FieldProblem::new("username", "username-invalid"));
    } else if st.store.user_by_name(&username).await?.is_some() {
        errs.push(FieldProblem::new("username", "username-taken"));
    }
    if r.password.chars().count() < 8 {
        errs.push(FieldProblem::new("password", "password-too-short"));
    }
    let full_name = motcua_domain::text::nfc(r.full_name.trim());
    if motcua_domain::text::has_control(&full_name) {
        errs.push(FieldProblem::new("full_name", "not-text"));
    } else if full_name.chars().count() < 2 {
        let mut p = FieldProblem::new("full_name", "too-short");
        p.params.insert("min".into(), 2.into());
        errs.push(p);
    }
    let nid = NationalId::parse(r.national_id)
        .map_err(|_| errs.push(FieldProblem::new("national_id", "invalid-national-id")))
        .ok();
    let given = |v: Option<&str>| {
        v.map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    let phone = given(r.phone).and_then(|p| {
        parse_phone(&p)
            .map_err(|_| errs.push(FieldProblem::new("phone", "invalid-phone")))
            .ok()
    });
    let email = given(r.email).and_then(|e| {
        parse_email(&e)
            .map_err(|_| errs.push(FieldProblem::new("email", "invalid-email")))
            .ok()
    });
    let Some(nid) = nid.filter(|_| errs.is_empty()) else {
        return Err(ApiError::validation(errs));
    };
    // Each account costs a password hash: limited per address.
    crate::throttle::registration_gate(st, client).await?;
    let password = r.password.to_string();
    let hash = tokio::task::spawn_blocking(move || crate::auth::hash_password(&password))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    let new = motcua_store::NewUser {
        username: username.clone(),
        password_hash: hash,
        full_name,
        national_id: Some(nid.to_string()),
        phone,
        email,
        roles: vec![Role::Citizen],
        agency_code: None,
    };
    let entry = AuditEntry::new(
        st.clock.now(),
        &username,
        Role::Citizen.as_str(),
        "user.register",
        &serde_json::json!({ "username": username }),
    );
    // The number is stored as typed and verified later (at the counter, or
    // by an identity provider); any number may be typed by several accounts,
    // so the answer never tells whether a number already has one.
    st.store
        .create_user(&new, entry)
        .await
        .map_err(|e| match e {
            motcua_store::StoreError::Duplicate(_) => ApiError::field("username", "username-taken"),
            other => other.into(),
        })
}

/// `Content-Disposition` for a stored file: an ASCII `filename` for old
/// clients and the exact name as RFC 5987 `filename*`; a name stored
/// before names were checked is made safe first.
pub fn content_disposition(stored_name: &str) -> String {
    let name = motcua_domain::ids::safe_file_name(stored_name);
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut encoded = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("inline; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

/// The file of document `index` of `d`, for `user` (who may see `d`):
/// audited when staff read it, never cached.
pub async fn document_response(
    st: &AppState,
    user: &User,
    d: &Dossier,
    index: &str,
) -> Result<axum::response::Response, ApiError> {
    use axum::http::{HeaderValue, header};
    use axum::response::IntoResponse;
    let doc = index
        .parse::<usize>()
        .ok()
        .and_then(|i| d.documents.get(i))
        .ok_or_else(ApiError::not_found)?;
    audit_view(st, user, d, "dossier.download_document").await?;
    let bytes = st.objects.get(&doc.sha256).await?;
    let mut r = bytes.into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&doc.content_type)
            .unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    if let Ok(v) = HeaderValue::from_str(&content_disposition(&doc.filename)) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

/// The working calendar of the province of `agency` (the national one if
/// the agency is unknown).
pub async fn agency_calendar(
    st: &AppState,
    agency: &motcua_domain::AgencyCode,
) -> Result<std::sync::Arc<WorkingCalendar>, ApiError> {
    match st.store.agency(agency).await? {
        Some(a) => st.calendar_for(&a.unit_code).await,
        None => Ok(st.calendar()),
    }
}

/// Whether a procedure (national, or of `home` province) may be filed in
/// `unit`, given the availability `decisions` for it: the commune's own
/// decision, else its province's, else the default (a national procedure
/// everywhere, a province's own procedure in that province only).
pub fn is_available(
    home: Option<&UnitCode>,
    unit: &UnitCode,
    province: Option<&UnitCode>,
    decisions: &[motcua_store::Availability],
) -> bool {
    let decided = |u: &UnitCode| {
        decisions
            .iter()
            .find(|d| &d.unit_code == u)
            .map(|d| d.available)
    };
    decided(unit)
        .or_else(|| province.and_then(decided))
        .unwrap_or_else(|| home.is_none_or(|h| Some(h) == province))
}

/// Whether `sp` may be filed in `unit` now.
pub async fn available_in(
    st: &AppState,
    sp: &motcua_store::StoredProcedure,
    unit: &UnitCode,
) -> Result<bool, ApiError> {
    let province = st.province_of(unit).await?;
    let mut units = vec![unit.clone()];
    units.extend(province.clone());
    let decisions = st.store.availability(&sp.definition.code, &units).await?;
    Ok(is_available(
        sp.home_province.as_ref(),
        unit,
        province.as_ref(),
        &decisions,
    ))
}

/// Whether the current version of procedure `code` may be filed in `unit`.
pub async fn procedure_available(
    st: &AppState,
    code: &str,
    unit: &UnitCode,
) -> Result<bool, ApiError> {
    match st.store.current_procedure(code).await? {
        Some(sp) => available_in(st, &sp, unit).await,
        None => Ok(false),
    }
}

/// What an officer verified.
pub struct VerifiedCitizen {
    pub user: User,
    pub linked: Vec<DossierCode>,
}

/// An officer who has seen the identity card of the holder of account
/// `username` records that its national ID number is `national_id`: from
/// then on the number grants what a verified one does (counter dossiers
/// under "my dossiers", data read from national registries), and the
/// applicant's counter dossiers without an account are linked to it.
pub async fn verify_citizen(
    st: &AppState,
    officer: &User,
    username: &str,
    national_id: &str,
    document: &str,
) -> Result<VerifiedCitizen, ApiError> {
    use motcua_domain::ids::NationalId;
    if !crate::auth::has(officer, Role::Officer) {
        return Err(
            ApiError::forbidden().detail("national ID numbers are verified by one-stop officers")
        );
    }
    let mut errs = Vec::new();
    let nid = NationalId::parse(national_id)
        .map_err(|_| errs.push(FieldProblem::new("national_id", "invalid-national-id")))
        .ok();
    if !matches!(document, "cccd" | "cmnd" | "passport") {
        errs.push(FieldProblem::new("document", "invalid-choice"));
    }
    let user = st.store.user_by_name(username.trim()).await?;
    let user = match user {
        Some(u) if crate::auth::has(&u, Role::Citizen) && !crate::auth::is_staff(&u) => Some(u),
        _ => {
            errs.push(FieldProblem::new("username", "unknown-citizen"));
            None
        }
    };
    let (Some(nid), Some(user), true) = (nid, user, errs.is_empty()) else {
        return Err(ApiError::validation(errs));
    };
    let v = motcua_store::Verification {
        at: st.clock.now(),
        by: officer.username.clone(),
        method: motcua_store::VerificationMethod::Counter,
    };
    let mut e = audit_entry(
        st,
        officer,
        Role::Officer,
        "user.verify_national_id",
        &serde_json::json!({ "username": user.username, "national_id": nid.as_str(), "document": document }),
    );
    e.note = Some(format!("{} ({document})", user.username));
    let linked = st
        .store
        .verify_national_id(user.id, nid.as_str(), &v, e)
        .await
        .map_err(|e| match e {
            motcua_store::StoreError::Duplicate(_) => {
                ApiError::field("national_id", "national-id-verified-elsewhere")
            }
            other => other.into(),
        })?;
    let user = st
        .store
        .user(user.id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    Ok(VerifiedCitizen { user, linked })
}

/// The records of a dossier its applicant sees: what happened to it, not
/// who of the staff read it (the one place this is decided).
pub async fn timeline(
    st: &AppState,
    code: &DossierCode,
) -> Result<Vec<motcua_domain::audit::AuditRecord>, ApiError> {
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

//! JSON API handlers: parse → authorise → one domain decision → store.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDate, Utc};
use motcua_domain::audit::AuditEntry;
use motcua_domain::dossier::{
    Action, Channel, Command, Lifecycle, Ownership, Role, Rules, SatisfactionLevel, Status, decide,
};
use motcua_domain::ids::{NationalId, parse_email, parse_phone};
use motcua_domain::procedure::Procedure;
use motcua_domain::units::UnitLevel;
use motcua_domain::{DossierCode, UnitCode};
use motcua_store::{
    Applicant, Dossier, DossierQuery, DossierUpdate, NewDossier, NewUser, StoreError,
    StoredDocument, User,
};
use serde::Deserialize;

use crate::auth::{self, actor_of, current_user, is_staff};
use crate::error::{ApiError, FieldProblem};
use crate::views::*;
use crate::{AppState, ClientAddr};

type ApiResult<T> = Result<T, ApiError>;

fn audit_entry(
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

fn json_body<T: serde::de::DeserializeOwned>(body: &Bytes) -> ApiResult<T> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::field("body", "invalid-json").detail(e.to_string()))
}

/// `POST /api/v1/auth/token`
#[utoipa::path(post, path = "/api/v1/auth/token", tag = "auth",
    request_body = TokenRequest,
    responses((status = 200, body = TokenResponse), (status = 401, description = "Wrong user name or password"), (status = 429, description = "Too many failed attempts")))]
pub async fn issue_token(
    State(st): State<AppState>,
    ConnectInfo(client): ConnectInfo<ClientAddr>,
    body: Bytes,
) -> ApiResult<Json<TokenResponse>> {
    let req: TokenRequest = json_body(&body)?;
    let client = client.0;
    if let Err(wait) = st.limiter.check(&req.username, &client) {
        let mut e = ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate-limited");
        e.retry_after = Some(wait);
        return Err(e);
    }
    let user = st.store.user_by_name(&req.username).await?;
    let hash = user
        .as_ref()
        .map(|u| u.password_hash.clone())
        .unwrap_or_else(|| auth::dummy_hash().to_string());
    let password = req.password.clone();
    let ok = tokio::task::spawn_blocking(move || auth::verify_password(&password, &hash))
        .await
        .map_err(ApiError::internal)?;
    let user = match user {
        Some(u) if ok && !u.disabled => u,
        _ => {
            st.limiter.fail(&req.username, &client);
            return Err(ApiError::new(StatusCode::UNAUTHORIZED, "bad-credentials"));
        }
    };
    st.limiter.succeed(&req.username);
    let (token, hash) = auth::new_token().map_err(ApiError::internal)?;
    let expires_at = st.clock.now() + st.config.token_ttl;
    st.store.create_token(&hash, user.id, expires_at).await?;
    Ok(Json(TokenResponse { token, expires_at }))
}

/// `DELETE /api/v1/auth/token`: revokes the token used for the call.
#[utoipa::path(delete, path = "/api/v1/auth/token", tag = "auth",
    responses((status = 204, description = "Revoked"), (status = 401)))]
pub async fn revoke_token(State(st): State<AppState>, headers: HeaderMap) -> ApiResult<StatusCode> {
    let token = auth::bearer(&headers).ok_or_else(ApiError::unauthorized)?;
    if st.store.revoke_token(&auth::token_hash(token)).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::unauthorized())
    }
}

fn valid_username(u: &str) -> bool {
    (3..=32).contains(&u.len())
        && u.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_')
        })
}

/// `POST /api/v1/auth/register`: a citizen creates an account.
#[utoipa::path(post, path = "/api/v1/auth/register", tag = "auth",
    request_body = RegisterRequest,
    responses((status = 201, body = UserView), (status = 422, description = "Validation errors per field")))]
pub async fn register(
    State(st): State<AppState>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<UserView>)> {
    let req: RegisterRequest = json_body(&body)?;
    let mut errs = Vec::new();
    let username = req.username.trim().to_string();
    if !valid_username(&username) {
        errs.push(FieldProblem::new("username", "username-invalid"));
    }
    if req.password.chars().count() < 8 {
        errs.push(FieldProblem::new("password", "password-too-short"));
    }
    let full_name = motcua_domain::text::nfc(req.full_name.trim());
    if full_name.chars().count() < 2 {
        let mut p = FieldProblem::new("full_name", "too-short");
        p.params.insert("min".into(), 2.into());
        errs.push(p);
    }
    let nid = NationalId::parse(&req.national_id);
    if nid.is_err() {
        errs.push(FieldProblem::new("national_id", "invalid-national-id"));
    }
    let phone = match req.phone.as_deref().filter(|p| !p.trim().is_empty()) {
        Some(p) => parse_phone(p).map(Some).unwrap_or_else(|_| {
            errs.push(FieldProblem::new("phone", "invalid-phone"));
            None
        }),
        None => None,
    };
    let email = match req.email.as_deref().filter(|p| !p.trim().is_empty()) {
        Some(p) => parse_email(p).map(Some).unwrap_or_else(|_| {
            errs.push(FieldProblem::new("email", "invalid-email"));
            None
        }),
        None => None,
    };
    if st.store.user_by_name(&username).await?.is_some() {
        errs.push(FieldProblem::new("username", "username-taken"));
    }
    let Ok(nid) = nid else {
        return Err(ApiError::validation(errs));
    };
    if !errs.is_empty() {
        return Err(ApiError::validation(errs));
    }
    let password = req.password.clone();
    let hash = tokio::task::spawn_blocking(move || auth::hash_password(&password))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    let new = NewUser {
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
    let user = st
        .store
        .create_user(&new, entry)
        .await
        .map_err(|e| match e {
            StoreError::Duplicate(_) => ApiError::field("national_id", "national-id-taken"),
            other => other.into(),
        })?;
    Ok((StatusCode::CREATED, Json(user_view(&user))))
}

pub fn user_view(u: &User) -> UserView {
    UserView {
        id: u.id,
        username: u.username.clone(),
        full_name: u.full_name.clone(),
        roles: u.roles.iter().map(|r| r.as_str().to_string()).collect(),
        agency_code: u.agency_code.as_ref().map(|a| a.to_string()),
    }
}

/// `GET /api/v1/me`
#[utoipa::path(get, path = "/api/v1/me", tag = "auth", responses((status = 200, body = UserView), (status = 401)))]
pub async fn me(State(st): State<AppState>, headers: HeaderMap) -> ApiResult<Json<UserView>> {
    let u = current_user(&st, &headers).await?;
    Ok(Json(user_view(&u)))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ProcedureQuery {
    /// Search text; diacritics and case are ignored.
    pub q: Option<String>,
    pub sector: Option<String>,
    /// `province` or `commune`.
    pub level: Option<String>,
}

/// `GET /api/v1/procedures`
#[utoipa::path(get, path = "/api/v1/procedures", tag = "procedures", params(ProcedureQuery),
    responses((status = 200, body = Vec<ProcedureSummary>)))]
pub async fn list_procedures(
    State(st): State<AppState>,
    Query(q): Query<ProcedureQuery>,
) -> ApiResult<Json<Vec<ProcedureSummary>>> {
    let all = st.catalogue().await?;
    let out = all
        .iter()
        .filter(|(p, folded)| {
            q.q.as_deref()
                .is_none_or(|t| motcua_domain::text::matches_query(folded, t))
                && q.sector.as_deref().is_none_or(|s| p.sector == s)
                && q.level.as_deref().is_none_or(|l| p.level.as_str() == l)
        })
        .map(|(p, _)| ProcedureSummary::of(p))
        .collect();
    Ok(Json(out))
}

/// `GET /api/v1/procedures/{code}`: the full definition of the current version.
#[utoipa::path(get, path = "/api/v1/procedures/{code}", tag = "procedures",
    params(("code" = String, Path, description = "National procedure code, e.g. 1.001193")),
    responses((status = 200, description = "The procedure definition (see docs/procedure-format.md)", body = Object), (status = 404)))]
pub async fn get_procedure(
    State(st): State<AppState>,
    Path(code): Path<String>,
) -> ApiResult<Response> {
    let p = st
        .store
        .current_procedure(&code)
        .await?
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(p.definition).into_response())
}

/// An uploaded file before it is stored.
struct Upload {
    document_id: String,
    filename: String,
    content_type: String,
    bytes: Bytes,
}

/// Recognises the file type by its first bytes, so that a file's name
/// cannot disguise its content.
fn sniff_matches(ext: &str, bytes: &[u8]) -> bool {
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

fn content_type_of(ext: &str) -> &'static str {
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

fn extension(filename: &str) -> String {
    filename
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default()
}

/// Reads a multipart body: one JSON part (named `json_part`) and file parts
/// named `document:<id>`.
async fn read_multipart(
    st: &AppState,
    mut mp: Multipart,
    json_part: &str,
) -> ApiResult<(Option<Bytes>, Vec<Upload>)> {
    let mut json = None;
    let mut uploads = Vec::new();
    while let Some(field) = mp
        .next_field()
        .await
        .map_err(|e| multipart_error(e.status(), e.body_text()))?
    {
        let name = field.name().unwrap_or_default().to_string();
        if name == json_part {
            json = Some(
                field
                    .bytes()
                    .await
                    .map_err(|e| multipart_error(e.status(), e.body_text()))?,
            );
        } else if let Some(doc) = name.strip_prefix("document:") {
            let filename = field
                .file_name()
                .map(|f| f.rsplit(['/', '\\']).next().unwrap_or(f).to_string())
                .unwrap_or_else(|| "file".into());
            let bytes = field
                .bytes()
                .await
                .map_err(|e| multipart_error(e.status(), e.body_text()))?;
            if bytes.len() as u64 > st.config.max_file_bytes {
                let mut p = FieldProblem::new(&format!("document:{doc}"), "document-too-large");
                p.params.insert(
                    "max".into(),
                    format!("{} MB", st.config.max_file_bytes / 1_000_000).into(),
                );
                return Err(ApiError::validation(vec![p]));
            }
            let ext = extension(&filename);
            uploads.push(Upload {
                document_id: doc.to_string(),
                content_type: content_type_of(&ext).to_string(),
                filename: motcua_domain::text::nfc(&filename),
                bytes,
            });
        } else {
            return Err(ApiError::bad_request(format!("unexpected part '{name}'")));
        }
    }
    Ok((json, uploads))
}

fn multipart_error(status: StatusCode, text: String) -> ApiError {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(status, "payload-too-large")
    } else {
        ApiError::bad_request(text)
    }
}

/// Checks uploads against the procedure (ids, types, counts, content) and
/// returns every problem at once.
fn check_uploads(p: &Procedure, uploads: &[Upload], require_all: bool) -> Vec<FieldProblem> {
    let mut errs: Vec<FieldProblem> = Vec::new();
    let pairs: Vec<(String, String)> = uploads
        .iter()
        .map(|u| (u.document_id.clone(), u.filename.clone()))
        .collect();
    if let Err(es) = p.validate_documents(&pairs) {
        errs.extend(
            es.into_iter()
                .filter(|e| require_all || e.code != "document-required")
                .map(FieldProblem::from),
        );
    }
    for u in uploads {
        let ext = extension(&u.filename);
        let known = p.document(&u.document_id).is_some_and(|d| {
            d.accept.contains(&ext) || (ext == "jpeg" && d.accept.iter().any(|a| a == "jpg"))
        });
        if known && !sniff_matches(&ext, &u.bytes) {
            errs.push(FieldProblem::new(
                &format!("document:{}", u.document_id),
                "document-content",
            ));
        }
    }
    errs
}

async fn store_uploads(
    st: &AppState,
    uploads: Vec<Upload>,
    stage: &str,
) -> ApiResult<Vec<StoredDocument>> {
    let mut out = Vec::with_capacity(uploads.len());
    for u in uploads {
        let size = u.bytes.len() as u64;
        let r = st.objects.put(u.bytes.to_vec()).await?;
        out.push(StoredDocument {
            document_id: u.document_id,
            filename: u.filename,
            content_type: u.content_type,
            size,
            sha256: r.sha256,
            uploaded_at: st.clock.now(),
            stage: stage.to_string(),
        });
    }
    Ok(out)
}

/// `POST /api/v1/dossiers`: online submission by a citizen, or counter
/// reception of a paper dossier by a one-stop officer.
#[utoipa::path(post, path = "/api/v1/dossiers", tag = "dossiers",
    request_body(content = SubmissionForm, content_type = "multipart/form-data"),
    responses((status = 201, body = SubmitResponse), (status = 401), (status = 403), (status = 422, description = "Validation errors per field")))]
pub async fn submit(
    State(st): State<AppState>,
    headers: HeaderMap,
    mp: Multipart,
) -> ApiResult<(StatusCode, Json<SubmitResponse>)> {
    let user = current_user(&st, &headers).await?;
    let (json, uploads) = read_multipart(&st, mp, "application").await?;
    let json = json.ok_or_else(|| ApiError::field("application", "missing-application"))?;
    let app: Application = json_body(&json)?;
    let is_officer = auth::has(&user, Role::Officer);
    let is_citizen = auth::has(&user, Role::Citizen);
    if !is_citizen && !is_officer {
        return Err(
            ApiError::forbidden().detail("only citizens and one-stop officers submit dossiers")
        );
    }
    let channel = match app.channel.as_deref() {
        None => {
            if is_citizen {
                Channel::Online
            } else {
                Channel::InPerson
            }
        }
        Some(c) => {
            Channel::parse(c).ok_or_else(|| ApiError::field("channel", "invalid-channel"))?
        }
    };
    if channel != Channel::Online && !is_officer {
        return Err(ApiError::forbidden().detail("counter reception is done by a one-stop officer"));
    }
    let stored = st
        .store
        .current_procedure(&app.procedure_code)
        .await?
        .ok_or_else(|| ApiError::field("procedure_code", "unknown-procedure"))?;
    let p = stored.definition;
    if channel == Channel::Online && p.online == motcua_domain::procedure::OnlineLevel::None {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "not-online",
        ));
    }
    let unit_code = UnitCode::parse(&app.unit_code)
        .map_err(|_| ApiError::field("unit_code", "invalid-unit-code"))?;
    let unit = st
        .store
        .unit(&unit_code)
        .await?
        .ok_or_else(|| ApiError::field("unit_code", "unknown-unit"))?;
    let agency_unit = match (p.level, unit.level) {
        (UnitLevel::Commune, UnitLevel::Commune) | (UnitLevel::Province, UnitLevel::Province) => {
            unit.code.clone()
        }
        (UnitLevel::Province, UnitLevel::Commune) => {
            unit.parent_code.clone().unwrap_or(unit.code.clone())
        }
        (UnitLevel::Commune, UnitLevel::Province) => {
            return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "no-agency"));
        }
    };
    let agency = st
        .store
        .agency_for(p.agency_kind, &agency_unit)
        .await?
        .ok_or_else(|| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "no-agency"))?;
    if channel != Channel::Online && user.agency_code.as_ref() != Some(&agency.code) {
        return Err(
            ApiError::forbidden().detail("an officer receives dossiers for their own agency only")
        );
    }

    // Who applies.
    let mut errs: Vec<FieldProblem> = Vec::new();
    let applicant = if channel == Channel::Online {
        Applicant {
            user_id: Some(user.id),
            full_name: user.full_name.clone(),
            national_id: user.national_id.clone().unwrap_or_default(),
            phone: user.phone.clone(),
            email: user.email.clone(),
        }
    } else {
        let a = app
            .applicant
            .as_ref()
            .ok_or_else(|| ApiError::field("applicant", "applicant-required"))?;
        let nid = NationalId::parse(&a.national_id);
        if nid.is_err() {
            errs.push(FieldProblem::new(
                "applicant.national_id",
                "invalid-national-id",
            ));
        }
        let full_name = motcua_domain::text::nfc(a.full_name.trim());
        if full_name.chars().count() < 2 {
            errs.push(FieldProblem::new("applicant.full_name", "required"));
        }
        let phone = a
            .phone
            .as_deref()
            .filter(|s| !s.trim().is_empty())
            .and_then(|s| {
                parse_phone(s)
                    .map_err(|_| errs.push(FieldProblem::new("applicant.phone", "invalid-phone")))
                    .ok()
            });
        // An applicant who has an account sees the dossier under "my dossiers".
        let owner = match &nid {
            Ok(n) => st
                .store
                .user_by_national_id(n.as_str())
                .await?
                .map(|u| u.id),
            Err(_) => None,
        };
        Applicant {
            user_id: owner,
            full_name,
            national_id: nid.map(|n| n.to_string()).unwrap_or_default(),
            phone,
            email: a.email.clone().filter(|e| !e.trim().is_empty()),
        }
    };

    let today = motcua_store::vietnam_day(st.clock.now());
    let fields = match p.validate_fields(&app.fields, today) {
        Ok(f) => Some(f),
        Err(es) => {
            errs.extend(es.into_iter().map(|e| {
                let mut fp = FieldProblem::from(e);
                fp.field = format!("fields.{}", fp.field);
                fp
            }));
            None
        }
    };
    errs.extend(check_uploads(&p, &uploads, true));
    if !errs.is_empty() {
        return Err(ApiError::validation(errs));
    }
    let fields = fields.unwrap_or_default();
    let documents = store_uploads(&st, uploads, "initial").await?;
    let now = st.clock.now();
    let mut lifecycle = Lifecycle::new();
    let mut event = "dossier.submitted".to_string();
    let mut action = "dossier.submit";
    let mut to = Status::NewlyRegistered;
    if channel != Channel::Online {
        // Counter reception: the officer receives and accepts at once (Form 01).
        let own = Ownership {
            agency: agency.code.clone(),
            applicant_user_id: applicant.user_id,
        };
        let rules = Rules {
            workflow: &p.workflow,
            total_minutes: p
                .processing_time
                .working_minutes(st.calendar.hours_per_day()),
            calendar: &st.calendar,
        };
        let d = decide(
            &lifecycle,
            &own,
            rules,
            &actor_of(&user),
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
        &st,
        &user,
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
            unit_code: unit.code.clone(),
            channel,
            applicant,
            fields,
            documents,
            submitted_at: now,
            lifecycle,
            audit: entry,
            event,
        })
        .await?;
    st.metrics.dossier_submitted();
    Ok((
        StatusCode::CREATED,
        Json(SubmitResponse {
            code: d.code.to_string(),
            status: d.lifecycle.status.as_str().into(),
            due_at: d.lifecycle.due_at,
        }),
    ))
}

/// May `user` see dossier `d`? Applicants see their own; staff see their
/// agency's; a province admin or IOC viewer sees every agency of the province.
async fn may_view(st: &AppState, user: &User, d: &Dossier) -> ApiResult<bool> {
    if d.applicant.user_id == Some(user.id) {
        return Ok(true);
    }
    if !is_staff(user) {
        return Ok(false);
    }
    if user.agency_code.as_ref() == Some(&d.agency_code) {
        return Ok(true);
    }
    if auth::has(user, Role::ProvinceAdmin) || auth::has(user, Role::IocViewer) {
        let (Some(mine), Some(theirs)) = (
            match &user.agency_code {
                Some(a) => st.store.agency(a).await?,
                None => None,
            },
            st.store.agency(&d.agency_code).await?,
        ) else {
            return Ok(false);
        };
        return Ok(
            province_of(st, &mine.unit_code).await? == province_of(st, &theirs.unit_code).await?
        );
    }
    Ok(false)
}

async fn province_of(st: &AppState, u: &UnitCode) -> ApiResult<Option<UnitCode>> {
    if u.is_province() {
        Ok(Some(u.clone()))
    } else {
        Ok(st.store.unit(u).await?.and_then(|x| x.parent_code))
    }
}

fn parse_code(code: &str) -> ApiResult<DossierCode> {
    DossierCode::parse(code).map_err(|_| ApiError::not_found())
}

async fn load_for(st: &AppState, user: &User, code: &str) -> ApiResult<Dossier> {
    let code = parse_code(code)?;
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
async fn audit_view(st: &AppState, user: &User, d: &Dossier, what: &str) -> ApiResult<()> {
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

async fn dossier_view(
    st: &AppState,
    d: &Dossier,
    lang: crate::i18n::Lang,
) -> ApiResult<DossierView> {
    let name = st
        .store
        .procedure(&d.procedure_code, d.procedure_version)
        .await?
        .map(|p| p.definition.name.get(lang.code()).to_string())
        .unwrap_or_default();
    let agency = st
        .store
        .agency(&d.agency_code)
        .await?
        .map(|a| {
            if lang == crate::i18n::Lang::En {
                a.name_en
            } else {
                a.name_vi
            }
        })
        .unwrap_or_default();
    let timeline = st
        .store
        .dossier_audit(&d.code)
        .await?
        .into_iter()
        .filter(|r| {
            r.entry.action != "dossier.view_personal_data"
                && r.entry.action != "dossier.download_document"
        })
        .map(|r| TimelineEntry {
            at: r.entry.at,
            action: r.entry.action,
            actor_role: r.entry.actor_role,
            from_status: r.entry.from_status,
            to_status: r.entry.to_status,
            note: r.entry.note,
        })
        .collect();
    Ok(DossierView::of(d, name, agency, timeline))
}

/// `GET /api/v1/dossiers/{code}`
#[utoipa::path(get, path = "/api/v1/dossiers/{code}", tag = "dossiers",
    params(("code" = String, Path)),
    responses((status = 200, body = DossierView), (status = 401), (status = 404)))]
pub async fn get_dossier(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(code): Path<String>,
) -> ApiResult<Json<DossierView>> {
    let user = current_user(&st, &headers).await?;
    let d = load_for(&st, &user, &code).await?;
    audit_view(&st, &user, &d, "dossier.view_personal_data").await?;
    Ok(Json(
        dossier_view(&st, &d, crate::i18n::Lang::from_headers(&headers)).await?,
    ))
}

/// `GET /api/v1/dossiers/{code}/documents/{index}`: the file itself.
#[utoipa::path(get, path = "/api/v1/dossiers/{code}/documents/{index}", tag = "dossiers",
    params(("code" = String, Path), ("index" = usize, Path)),
    responses((status = 200, description = "The file"), (status = 404)))]
pub async fn get_document(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path((code, index)): Path<(String, usize)>,
) -> ApiResult<Response> {
    let user = current_user(&st, &headers).await?;
    let d = load_for(&st, &user, &code).await?;
    let doc = d.documents.get(index).ok_or_else(ApiError::not_found)?;
    audit_view(&st, &user, &d, "dossier.download_document").await?;
    let bytes = st.objects.get(&doc.sha256).await?;
    let disposition = format!(
        "inline; filename=\"{}\"",
        doc.filename.replace(['"', '\\', '\r', '\n'], "_")
    );
    Ok((
        [
            (header::CONTENT_TYPE, doc.content_type.clone()),
            (header::CONTENT_DISPOSITION, disposition),
            (header::CACHE_CONTROL, "private, no-store".to_string()),
        ],
        bytes,
    )
        .into_response())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ListQuery {
    /// `true`: the signed-in citizen's own dossiers.
    pub mine: Option<bool>,
    /// Staff search: dossier code, national ID number or part of a name.
    pub q: Option<String>,
    pub status: Option<String>,
}

/// `GET /api/v1/dossiers?mine=true` or, for staff, `?q=` search.
#[utoipa::path(get, path = "/api/v1/dossiers", tag = "dossiers", params(ListQuery),
    responses((status = 200, body = DossierList), (status = 401)))]
pub async fn list_dossiers(
    State(st): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<DossierList>> {
    let user = current_user(&st, &headers).await?;
    let mut query = DossierQuery {
        limit: 200,
        ..Default::default()
    };
    if let Some(s) = q.status.as_deref() {
        query.statuses =
            vec![Status::parse(s).ok_or_else(|| ApiError::field("status", "invalid-choice"))?];
    }
    if q.mine.unwrap_or(false) || !is_staff(&user) {
        query.applicant_user_id = Some(user.id);
    } else {
        query.agency = Some(user.agency_code.clone().ok_or_else(ApiError::forbidden)?);
        query.text = q.q.clone();
        if let Some(t) = q.q.as_deref().filter(|t| !t.trim().is_empty()) {
            let mut e = audit_entry(
                &st,
                &user,
                user.roles.first().copied().unwrap_or(Role::Officer),
                "dossier.search",
                &serde_json::json!({ "q": t }),
            );
            e.note = None;
            st.store.append_audit(e).await?;
        }
    }
    let now = st.clock.now();
    let soon = st
        .calendar
        .add_working_minutes(now, i64::from(st.calendar.hours_per_day()) * 60);
    let items = st
        .store
        .find_dossiers(&query)
        .await?
        .iter()
        .map(|s| QueueItem::of(s, now, soon))
        .collect();
    Ok(Json(DossierList { items }))
}

/// `GET /api/v1/workqueue`: what the signed-in staff member's roles hold
/// at their agency, most urgent first.
#[utoipa::path(get, path = "/api/v1/workqueue", tag = "dossiers",
    responses((status = 200, body = Workqueue), (status = 401), (status = 403)))]
pub async fn workqueue(
    State(st): State<AppState>,
    headers: HeaderMap,
) -> ApiResult<Json<Workqueue>> {
    let user = current_user(&st, &headers).await?;
    let agency = user.agency_code.clone().ok_or_else(ApiError::forbidden)?;
    let holders: Vec<Role> = user
        .roles
        .iter()
        .copied()
        .filter(|r| matches!(r, Role::Officer | Role::Specialist | Role::Leader))
        .collect();
    if holders.is_empty() {
        return Err(ApiError::forbidden());
    }
    let q = DossierQuery {
        agency: Some(agency),
        holders,
        limit: 500,
        ..Default::default()
    };
    let rows = st.store.find_dossiers(&q).await?;
    let now = st.clock.now();
    let soon = st
        .calendar
        .add_working_minutes(now, i64::from(st.calendar.hours_per_day()) * 60);
    let mut counts = QueueCounts::default();
    let items: Vec<QueueItem> = rows
        .iter()
        .map(|s| {
            let item = QueueItem::of(s, now, soon);
            counts.total += 1;
            counts.overdue += usize::from(item.overdue);
            counts.due_soon += usize::from(item.due_soon);
            match (s.status, s.holder) {
                (Status::NewlyRegistered, _) => counts.to_receive += 1,
                (Status::Completed, _) => counts.to_return += 1,
                (_, Some(Role::Leader)) => counts.to_approve += 1,
                (_, Some(_)) => counts.to_appraise += 1,
                _ => {}
            }
            item
        })
        .collect();
    Ok(Json(Workqueue { counts, items }))
}

fn parse_new_due(raw: &str, st: &AppState) -> ApiResult<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        return Ok(t.with_timezone(&Utc));
    }
    let day = NaiveDate::parse_from_str(raw, "%Y-%m-%d")
        .or_else(|_| NaiveDate::parse_from_str(raw, "%d/%m/%Y"))
        .map_err(|_| ApiError::field("new_due_at", "invalid-date"))?;
    // End of that office day (17:00 Vietnam time).
    let local = day
        .and_hms_opt(17, 0, 0)
        .ok_or_else(|| ApiError::field("new_due_at", "invalid-date"))?;
    let _ = st;
    Ok(DateTime::<Utc>::from_naive_utc_and_offset(
        local - chrono::Duration::hours(7),
        Utc,
    ))
}

/// `POST /api/v1/dossiers/{code}/actions`: JSON `{action, note, …}`, or
/// multipart with a JSON part `action` and `document:<id>` files (for
/// `supplement`).
#[utoipa::path(post, path = "/api/v1/dossiers/{code}/actions", tag = "dossiers",
    params(("code" = String, Path)),
    request_body = ActionRequest,
    responses((status = 200, body = DossierView), (status = 403, description = "Role or unit may not act"), (status = 404), (status = 409, description = "Not allowed in the current status"), (status = 422)))]
pub async fn act(
    State(st): State<AppState>,
    Path(code): Path<String>,
    req: Request,
) -> ApiResult<Json<DossierView>> {
    let headers = req.headers().clone();
    let lang = crate::i18n::Lang::from_headers(&headers);
    let user = current_user(&st, &headers).await?;
    let is_multipart = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    let (body, uploads) = if is_multipart {
        let mp = Multipart::from_request(req, &st)
            .await
            .map_err(|e| ApiError::bad_request(e.body_text()))?;
        let (json, uploads) = read_multipart(&st, mp, "action").await?;
        (
            json.ok_or_else(|| ApiError::field("action", "missing-application"))?,
            uploads,
        )
    } else {
        let b = Bytes::from_request(req, &st)
            .await
            .map_err(|e| multipart_error(e.status(), e.body_text()))?;
        (b, Vec::new())
    };
    let ar: ActionRequest = json_body(&body)?;
    let action =
        Action::parse(&ar.action).ok_or_else(|| ApiError::field("action", "unknown-action"))?;
    let d = load_for(&st, &user, &code).await?;
    let p = st
        .store
        .procedure(&d.procedure_code, d.procedure_version)
        .await?
        .ok_or_else(|| ApiError::internal("pinned procedure version missing"))?
        .definition;
    if !uploads.is_empty() && action != Action::Supplement {
        return Err(ApiError::bad_request(
            "files can only be sent with the supplement action",
        ));
    }
    let errs = check_uploads(&p, &uploads, false);
    if !errs.is_empty() {
        return Err(ApiError::validation(errs));
    }
    let mut cmd = Command::new(action);
    cmd.note = ar.note.clone();
    cmd.new_due_at = ar
        .new_due_at
        .as_deref()
        .map(|s| parse_new_due(s, &st))
        .transpose()?;
    cmd.level = match ar.level.as_deref() {
        None => None,
        Some("dissatisfied") => Some(SatisfactionLevel::Dissatisfied),
        Some("satisfied") => Some(SatisfactionLevel::Satisfied),
        Some("very_satisfied") => Some(SatisfactionLevel::VerySatisfied),
        Some(_) => return Err(ApiError::field("level", "invalid-choice")),
    };
    cmd.scores = ar.scores.clone();
    let own = Ownership {
        agency: d.agency_code.clone(),
        applicant_user_id: d.applicant.user_id,
    };
    let rules = Rules {
        workflow: &p.workflow,
        total_minutes: p
            .processing_time
            .working_minutes(st.calendar.hours_per_day()),
        calendar: &st.calendar,
    };
    let now = st.clock.now();
    let actor = actor_of(&user);
    let decision = decide(&d.lifecycle, &own, rules, &actor, &cmd, now)?;
    let documents = store_uploads(&st, uploads, "supplement").await?;
    let role = action
        .roles()
        .iter()
        .copied()
        .find(|r| actor.has(*r))
        .unwrap_or(Role::Citizen);
    let payload = serde_json::json!({
        "action": action.as_str(),
        "note": cmd.note,
        "new_due_at": cmd.new_due_at,
        "level": ar.level,
        "scores": ar.scores,
        "documents": documents.iter().map(|d| &d.sha256).collect::<Vec<_>>(),
    });
    let mut entry = audit_entry(
        &st,
        &user,
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
    Ok(Json(dossier_view(&st, &updated, lang).await?))
}

/// `GET /api/v1/track/{code}`: public, no personal data.
#[utoipa::path(get, path = "/api/v1/track/{code}", tag = "dossiers",
    params(("code" = String, Path)),
    responses((status = 200, body = TrackView), (status = 404)))]
pub async fn track(
    State(st): State<AppState>,
    Path(code): Path<String>,
) -> ApiResult<Json<TrackView>> {
    let code = parse_code(&code)?;
    let d = st
        .store
        .dossier(&code)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let p = st
        .store
        .procedure(&d.procedure_code, d.procedure_version)
        .await?;
    let agency = st
        .store
        .agency(&d.agency_code)
        .await?
        .map(|a| a.name_vi)
        .unwrap_or_default();
    let l = &d.lifecycle;
    Ok(Json(TrackView {
        code: d.code.to_string(),
        procedure_code: d.procedure_code.clone(),
        procedure_name_vi: p
            .as_ref()
            .map(|p| p.definition.name.vi.clone())
            .unwrap_or_default(),
        procedure_name_en: p
            .as_ref()
            .map(|p| p.definition.name.en.clone())
            .unwrap_or_default(),
        agency_name: agency,
        status: l.status.as_str().into(),
        status_number: l.status.number(),
        submitted_at: d.submitted_at,
        accepted_at: l.accepted_at,
        due_at: l.due_at,
        appointment_at: l.appointment_at,
        completed_at: l.completed_at,
        returned_at: l.returned_at,
        outcome: l.outcome.map(|o| o.snake()),
        apology_new_due_at: l.apologies.last().map(|a| a.new_due_at),
    }))
}

/// Counts used by `/metrics`.
pub async fn status_counts(st: &AppState) -> ApiResult<BTreeMap<String, u64>> {
    Ok(st.store.count_by_status().await?)
}

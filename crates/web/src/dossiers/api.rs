//! The dossiers API: submit, read, search, the workqueue, actions and
//! public tracking.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use motcua_domain::dossier::{Action, Channel, Command, Role, SatisfactionLevel, Status};
use motcua_domain::ids::{NationalId, parse_phone};
use motcua_domain::procedure::Procedure;
use motcua_domain::{DossierCode, UnitCode};
use motcua_store::{Applicant, Dossier, DossierQuery, StoredDocument};
use serde::Deserialize;

use crate::dossiers::views::ActionRequest;
use crate::dossiers::views::Application;
use crate::dossiers::views::DossierList;
use crate::dossiers::views::DossierView;
use crate::dossiers::views::QueueItem;
use crate::dossiers::views::SubmissionForm;
use crate::dossiers::views::SubmitResponse;
use crate::dossiers::views::TimelineEntry;
use crate::dossiers::views::TrackView;
use crate::dossiers::views::Workqueue;
use crate::dossiers::views::{ActionForm, AsSnake};
use crate::kernel::auth::{ApiUser, StaffApi};
use crate::kernel::body::ApiResult;
use crate::kernel::body::FormData;
use crate::kernel::body::{body_error, json_body};
use crate::kernel::error::{ApiError, FieldProblem};
use crate::state::AppState;
use motcua_commands::accounts::is_staff;
use motcua_commands::dossiers::audit_entry;
use motcua_commands::files::Upload;

/// Splits an API multipart body into its JSON part (`json_part`) and the
/// files named `document:<id>`.
async fn read_api_form(
    st: &AppState,
    mp: Multipart,
    json_part: &str,
) -> ApiResult<(Option<String>, Vec<(String, Upload)>)> {
    let form = FormData::read(st, mp).await?;
    let mut json = form.get(json_part).map(str::to_string);
    let mut docs = Vec::new();
    for up in form.files {
        if up.name == json_part {
            json = Some(
                String::from_utf8(up.bytes)
                    .map_err(|_| ApiError::field(json_part, "invalid-utf8"))?,
            );
        } else if let Some(id) = up.name.strip_prefix("document:") {
            docs.push((id.to_string(), up));
        } else {
            return Err(ApiError::bad_request(format!(
                "unexpected part '{}'",
                up.name
            )));
        }
    }
    if let Some((k, _)) = form.values.iter().find(|(k, _)| k != json_part) {
        return Err(ApiError::bad_request(format!("unexpected part '{k}'")));
    }
    Ok((json, docs))
}

/// Checks uploads against the procedure (ids, types, counts, content) and
/// returns every problem at once, each under `document:<id>`.
fn check_uploads(
    p: &Procedure,
    uploads: &[(String, Upload)],
    require_all: bool,
) -> Vec<FieldProblem> {
    let mut errs: Vec<FieldProblem> = Vec::new();
    let pairs: Vec<(String, String)> = uploads
        .iter()
        .map(|(id, u)| (id.clone(), u.filename.clone()))
        .collect();
    if let Err(es) = p.validate_documents(&pairs) {
        errs.extend(
            es.into_iter()
                .filter(|e| require_all || e.code != "document-required")
                .map(FieldProblem::from),
        );
    }
    // Type and count problems come from the procedure; the content check
    // (a file whose bytes are not what its name says) from the service.
    for (id, u) in uploads {
        if let Some(mut e) = motcua_commands::files::check_file(p, id, u)
            && e.code == "document-content"
        {
            e.field = format!("document:{id}");
            errs.push(e);
        }
    }
    errs
}

async fn store_uploads(
    st: &AppState,
    uploads: Vec<(String, Upload)>,
    stage: &str,
) -> ApiResult<Vec<StoredDocument>> {
    let mut out = Vec::with_capacity(uploads.len());
    for (id, up) in uploads {
        out.push(motcua_commands::files::store_file(st, &id, up, stage).await?);
    }
    Ok(out)
}

/// The applicant of a dossier received at the counter, as the officer
/// typed them; problems go to `errs`.
async fn counter_applicant(
    st: &AppState,
    a: &crate::dossiers::views::ApplicantInput,
    errs: &mut Vec<FieldProblem>,
) -> Result<Applicant, ApiError> {
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
    // An applicant whose account holds this number *verified* sees the
    // dossier under "my dossiers"; a typed number links nothing.
    let owner = match &nid {
        Ok(n) => st
            .store
            .user_by_verified_national_id(n.as_str())
            .await?
            .map(|u| u.id),
        Err(_) => None,
    };
    Ok(Applicant {
        user_id: owner,
        full_name,
        national_id: nid.map(|n| n.to_string()).unwrap_or_default(),
        phone,
        email: a.email.clone().filter(|e| !e.trim().is_empty()),
    })
}

/// `POST /api/v1/dossiers`: online submission by a citizen, or counter
/// reception of a paper dossier by a one-stop officer.
#[utoipa::path(post, path = "/api/v1/dossiers", tag = "dossiers",
    request_body(content = SubmissionForm, content_type = "multipart/form-data"),
    security(("bearer" = [])),
    responses((status = 201, body = SubmitResponse), (status = 400, description = "Not a multipart body, or a part other than `application` and `document:<id>`"), (status = 401),
        (status = 403, description = "Neither a citizen nor a one-stop officer, or counter reception outside the officer's agency"),
        (status = 422, description = "Validation errors per field")))]
pub async fn submit(
    State(st): State<AppState>,
    ApiUser(user): ApiUser,
    mp: Multipart,
) -> ApiResult<(StatusCode, Json<SubmitResponse>)> {
    let (json, uploads) = read_api_form(&st, mp, "application").await?;
    let json = json.ok_or_else(|| ApiError::field("application", "missing-application"))?;
    let app: Application = json_body(json.as_bytes())?;
    let is_officer = motcua_commands::accounts::has(&user, Role::Officer);
    let is_citizen = motcua_commands::accounts::has(&user, Role::Citizen);
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
    let p = stored.definition.clone();
    let unit_code = UnitCode::parse(&app.unit_code)
        .map_err(|_| ApiError::field("unit_code", "invalid-unit-code"))?;
    if st.store.unit(&unit_code).await?.is_none() {
        return Err(ApiError::field("unit_code", "unknown-unit"));
    }
    if !motcua_commands::catalogue::available_in(&st, &stored, &unit_code).await? {
        return Err(ApiError::field("unit_code", "procedure-not-available"));
    }
    let agency = motcua_commands::dossiers::agency_for(&st, &p, &unit_code)
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
        counter_applicant(&st, a, &mut errs).await?
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
    // Data sent through the API was typed (or read by the caller's own
    // system): for a form that declares registries, the dossier says so.
    let sources = if channel == Channel::Online {
        crate::exchange::prefill::typed_without_consent(&p)
    } else {
        Vec::new()
    };
    let d = motcua_commands::dossiers::create_dossier(
        &st, &user, &p, &agency, unit_code, channel, applicant, fields, documents, sources,
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(SubmitResponse {
            code: d.code.to_string(),
            status: d.lifecycle.status.as_str().into(),
            due_at: d.lifecycle.due_at,
        }),
    ))
}

fn parse_code(code: &str) -> ApiResult<DossierCode> {
    DossierCode::parse(code).map_err(|_| ApiError::not_found())
}

async fn dossier_view(
    st: &AppState,
    d: &Dossier,
    lang: crate::kernel::i18n::Lang,
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
            if lang == crate::kernel::i18n::Lang::En {
                a.name_en
            } else {
                a.name_vi
            }
        })
        .unwrap_or_default();
    let timeline = motcua_commands::dossiers::timeline(st, &d.code)
        .await?
        .into_iter()
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
    security(("bearer" = [])),
    responses((status = 200, body = DossierView), (status = 400), (status = 401), (status = 403, description = "The dossier belongs to another agency or applicant"), (status = 404)))]
pub async fn get_dossier(
    State(st): State<AppState>,
    ApiUser(user): ApiUser,
    headers: HeaderMap,
    Path(code): Path<String>,
) -> ApiResult<Json<DossierView>> {
    let d = motcua_commands::dossiers::load_dossier(&st, &user, &code).await?;
    motcua_commands::dossiers::audit_view(&st, &user, &d, "dossier.view_personal_data").await?;
    Ok(Json(
        dossier_view(&st, &d, crate::kernel::i18n::Lang::from_headers(&headers)).await?,
    ))
}

/// `GET /api/v1/dossiers/{code}/documents/{index}`: the file itself.
#[utoipa::path(get, path = "/api/v1/dossiers/{code}/documents/{index}", tag = "dossiers",
    params(("code" = String, Path), ("index" = String, Path, description = "Position of the document in the dossier: 0, 1, …")),
    security(("bearer" = [])),
    responses((status = 200, description = "The file, with the content type it was uploaded as",
            content(
                (Vec<u8> = "application/pdf"), (Vec<u8> = "image/png"), (Vec<u8> = "image/jpeg"), (Vec<u8> = "image/tiff"),
                (Vec<u8> = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
                (Vec<u8> = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
                (Vec<u8> = "application/vnd.oasis.opendocument.text"), (Vec<u8> = "application/msword"),
                (Vec<u8> = "application/vnd.ms-excel"), (Vec<u8> = "application/octet-stream"))),
        (status = 400), (status = 401), (status = 403, description = "The dossier belongs to another agency or applicant"), (status = 404)))]
pub async fn get_document(
    State(st): State<AppState>,
    ApiUser(user): ApiUser,
    Path((code, index)): Path<(String, String)>,
) -> ApiResult<Response> {
    let d = motcua_commands::dossiers::load_dossier(&st, &user, &code).await?;
    crate::kernel::body::document_response(&st, &user, &d, &index).await
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ListQuery {
    /// `true`: the signed-in citizen's own dossiers.
    pub mine: Option<bool>,
    /// Staff search: dossier code, national ID number or part of a name (a
    /// name search lists the newest matches first).
    pub q: Option<String>,
    pub status: Option<String>,
    /// How many dossiers to list: for a staff search 50 by default and 200
    /// at most; otherwise 200.
    pub limit: Option<u32>,
}

/// `GET /api/v1/dossiers?mine=true` or, for staff, `?q=` search.
#[utoipa::path(get, path = "/api/v1/dossiers", tag = "dossiers", params(ListQuery),
    security(("bearer" = [])),
    responses((status = 200, body = DossierList), (status = 400), (status = 401), (status = 403, description = "Staff without an agency"), (status = 422, description = "Unknown status")))]
pub async fn list_dossiers(
    State(st): State<AppState>,
    ApiUser(user): ApiUser,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<DossierList>> {
    let mut query = DossierQuery {
        limit: crate::dossiers::views::SEARCH_LIMIT_MAX,
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
            query.limit = crate::dossiers::views::SEARCH_LIMIT;
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
    if let Some(l) = q.limit {
        query.limit = l.clamp(1, crate::dossiers::views::SEARCH_LIMIT_MAX);
    }
    let now = st.clock.now();
    let cal = st.calendar();
    let soon = cal.add_working_minutes(now, i64::from(cal.hours_per_day()) * 60);
    let items = st
        .store
        .find_dossiers(&query)
        .await?
        .iter()
        .map(|s| QueueItem::of(s, now, soon))
        .collect();
    Ok(Json(DossierList { items }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct WorkqueueParams {
    /// `all` (default), `receive`, `appraise`, `approve` or `return`.
    tab: Option<String>,
    /// How many of the most urgent dossiers to list: 100 by default, 500 at
    /// most.
    limit: Option<u32>,
}

/// `GET /api/v1/workqueue`: what the signed-in staff member's roles hold
/// at their agency, most urgent first; the counts cover the whole queue.
#[utoipa::path(get, path = "/api/v1/workqueue", tag = "dossiers",
    params(WorkqueueParams),
    security(("bearer" = [])),
    responses((status = 200, body = Workqueue), (status = 400), (status = 401), (status = 403, description = "Not an officer, specialist or leader of an agency"), (status = 422, description = "Unknown tab")))]
pub async fn workqueue(
    State(st): State<AppState>,
    StaffApi(user): StaffApi,
    Query(params): Query<WorkqueueParams>,
) -> ApiResult<Json<Workqueue>> {
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
    let tab = params.tab.unwrap_or_else(|| "all".into());
    if !crate::dossiers::views::QUEUE_TABS.contains(&tab.as_str()) {
        return Err(ApiError::field("tab", "invalid-choice"));
    }
    let limit = params.limit.unwrap_or(crate::dossiers::views::QUEUE_LIMIT);
    let now = st.clock.now();
    let cal = st.agency_calendar(&agency).await?;
    let soon = cal.add_working_minutes(now, i64::from(cal.hours_per_day()) * 60);
    let counts = st.queue_counts(&agency, &holders, now, soon).await?;
    let items: Vec<QueueItem> =
        match crate::dossiers::views::queue_query(&agency, &holders, &tab, limit) {
            Some(q) => st
                .store
                .find_dossiers(&q)
                .await?
                .iter()
                .map(|s| QueueItem::of(s, now, soon))
                .collect(),
            None => Vec::new(),
        };
    Ok(Json(Workqueue { counts, tab, items }))
}

/// `POST /api/v1/dossiers/{code}/actions`: JSON `{action, note, …}`, or
/// multipart with a JSON part `action` and `document:<id>` files (for
/// `supplement`).
#[utoipa::path(post, path = "/api/v1/dossiers/{code}/actions", tag = "dossiers",
    params(("code" = String, Path)),
    request_body(content(
        (ActionRequest = "application/json"),
        (ActionForm = "multipart/form-data"))),
    security(("bearer" = [])),
    responses((status = 200, body = DossierView), (status = 400, description = "A multipart body that could not be read, or files with another action than `supplement`"), (status = 401),
        (status = 403, description = "Role or unit may not act"), (status = 404), (status = 409, description = "Not allowed in the current status, or not the caller's step"), (status = 422)))]
pub async fn act(
    State(st): State<AppState>,
    ApiUser(user): ApiUser,
    Path(code): Path<String>,
    req: Request,
) -> ApiResult<Json<DossierView>> {
    let headers = req.headers().clone();
    let lang = crate::kernel::i18n::Lang::from_headers(&headers);
    let is_multipart = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    let (body, uploads) = if is_multipart {
        let mp = Multipart::from_request(req, &st)
            .await
            .map_err(|e| ApiError::bad_request(e.body_text()))?;
        let (json, uploads) = read_api_form(&st, mp, "action").await?;
        (
            Bytes::from(json.ok_or_else(|| ApiError::field("action", "missing-application"))?),
            uploads,
        )
    } else {
        let b = Bytes::from_request(req, &st)
            .await
            .map_err(|e| body_error(e.status(), e.body_text()))?;
        (b, Vec::new())
    };
    let ar: ActionRequest = json_body(&body)?;
    let action =
        Action::parse(&ar.action).ok_or_else(|| ApiError::field("action", "unknown-action"))?;
    let d = motcua_commands::dossiers::load_dossier(&st, &user, &code).await?;
    let p = motcua_commands::dossiers::procedure_of(&st, &d).await?;
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
        .map(motcua_commands::dossiers::parse_new_due)
        .transpose()?;
    cmd.level = match ar.level.as_deref() {
        None => None,
        Some("dissatisfied") => Some(SatisfactionLevel::Dissatisfied),
        Some("satisfied") => Some(SatisfactionLevel::Satisfied),
        Some("very_satisfied") => Some(SatisfactionLevel::VerySatisfied),
        Some(_) => return Err(ApiError::field("level", "invalid-choice")),
    };
    cmd.scores = ar.scores.clone();
    // Files of a refused action are left unreferenced; the sweep removes them.
    let documents = store_uploads(&st, uploads, "supplement").await?;
    let updated =
        motcua_commands::dossiers::take_action(&st, &user, &d, &p, cmd, documents).await?;
    Ok(Json(dossier_view(&st, &updated, lang).await?))
}

/// `GET /api/v1/track/{code}`: public, no personal data.
#[utoipa::path(get, path = "/api/v1/track/{code}", tag = "dossiers",
    params(("code" = String, Path)),
    responses((status = 200, body = TrackView), (status = 400), (status = 404)))]
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

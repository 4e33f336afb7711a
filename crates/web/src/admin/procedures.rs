//! The procedure catalogue: import, versions, switch on and off, where a
//! procedure may be filed.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use motcua_domain::UnitCode;
use motcua_domain::dossier::Role;
use motcua_domain::procedure::{Procedure, lint_procedure, parse_procedure};
use motcua_store::{ImportOutcome, StoreError, StoredProcedure};

use crate::admin::Admin;
use crate::admin::DoneQuery;
use crate::admin::agencies::kind_label;
use crate::admin::flash_of;
use crate::kernel::access::{AdminPage, CheckedMultipart, ProvinceAdminPage};
use crate::kernel::error::ApiError;
use crate::kernel::labels::level_label;
use crate::kernel::labels::online_label;
use crate::kernel::labels::processing_time_label;
use crate::kernel::labels::role_label;
use crate::kernel::page::Ctx;
use crate::kernel::page::PageResult;
use crate::kernel::page::fmt_dt;
use crate::kernel::page::url_encode;
use crate::state::AppState;

// ---------------------------------------------------------------------------
// Procedures
// ---------------------------------------------------------------------------

pub struct VersionLink {
    pub href: String,
    pub version: u32,
    pub enabled: bool,
}

pub struct ProcRow {
    pub code: String,
    pub name: String,
    pub versions: Vec<VersionLink>,
}

#[derive(Template)]
#[template(path = "admin/procedures.html")]
struct ProceduresPage<'a> {
    ctx: &'a Ctx,
    title: String,
    section: &'static str,
    flash: Option<String>,
    can_edit: bool,
    /// Lint issues of a rejected file, as shown.
    issues: Vec<String>,
    import_error: Option<String>,
    file_name: String,
    rows: Vec<ProcRow>,
}

fn version_links(code: &str, versions: &[StoredProcedure]) -> Vec<VersionLink> {
    versions
        .iter()
        .map(|v| VersionLink {
            href: format!(
                "/quan-tri/thu-tuc/{}/phien-ban/{}",
                code, v.definition.version
            ),
            version: v.definition.version,
            enabled: v.enabled,
        })
        .collect()
}

async fn render_procedures(
    st: &AppState,
    ctx: &Ctx,
    a: &Admin,
    flash: Option<String>,
    issues: Vec<String>,
    import_error: Option<String>,
    file_name: String,
) -> PageResult {
    let mut rows = Vec::new();
    let mut current = st.store.current_procedures().await?;
    current.sort_by(|x, y| x.definition.code.cmp(&y.definition.code));
    for p in current {
        let d = p.definition;
        let mut versions = st.store.procedure_versions(&d.code).await?;
        versions.sort_by_key(|v| v.definition.version);
        rows.push(ProcRow {
            name: d.name.get(ctx.lang.code()).to_string(),
            versions: version_links(&d.code, &versions),
            code: d.code,
        });
    }
    let status = if issues.is_empty() && import_error.is_none() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let page = ProceduresPage {
        ctx,
        title: ctx.t("admin-procedures"),
        section: "procedures",
        flash,
        can_edit: a.is_province(),
        issues,
        import_error,
        file_name,
        rows,
    };
    Ok(ctx.render(status, page.render()))
}

/// `GET /quan-tri/thu-tuc`: procedures with their versions; `?ma=CODE`
/// opens one (also a procedure whose every version is disabled).
pub async fn procedures(
    State(st): State<AppState>,
    ctx: Ctx,
    AdminPage(a): AdminPage,
    Query(q): Query<DoneQuery>,
) -> PageResult {
    if let Some(code) = q.ma.as_deref().map(str::trim).filter(|c| !c.is_empty()) {
        return Ok(
            Redirect::to(&format!("/quan-tri/thu-tuc/{}", url_encode(code))).into_response(),
        );
    }
    render_procedures(
        &st,
        &ctx,
        &a,
        flash_of(&ctx, &q),
        Vec::new(),
        None,
        String::new(),
    )
    .await
}

/// `POST /quan-tri/thu-tuc/nhap`: imports a procedure file after the lint.
pub async fn import_procedure(
    State(st): State<AppState>,
    ctx: Ctx,
    ProvinceAdminPage(a): ProvinceAdminPage,
    CheckedMultipart(form): CheckedMultipart,
) -> PageResult {
    let Some(up) = form.files.iter().find(|f| f.name == "file") else {
        let msg = ctx.t("admin-import-no-file");
        return render_procedures(&st, &ctx, &a, None, Vec::new(), Some(msg), String::new()).await;
    };
    let file_name = up.filename.clone();
    let Ok(text) = std::str::from_utf8(&up.bytes) else {
        let msg = ctx.t("admin-import-not-utf8");
        return render_procedures(&st, &ctx, &a, None, Vec::new(), Some(msg), file_name).await;
    };
    let issues = lint_procedure(&file_name, text);
    let p: Procedure = match (issues.is_empty(), parse_procedure(&file_name, text)) {
        (true, Ok(p)) => p,
        (_, parsed) => {
            let all = if issues.is_empty() {
                parsed.err().unwrap_or_default()
            } else {
                issues
            };
            let shown = all
                .iter()
                .map(|i| {
                    let mut args = serde_json::Map::new();
                    args.insert("line".into(), i.line.into());
                    args.insert("column".into(), i.column.into());
                    format!(
                        "{}: {}",
                        ctx.lang.text_with("admin-import-at", &args),
                        i.message
                    )
                })
                .collect();
            return render_procedures(&st, &ctx, &a, None, shown, None, file_name).await;
        }
    };
    let sha = motcua_domain::audit::sha256_hex(&up.bytes);
    let mut e = a.entry(
        &st,
        "procedure.import",
        &serde_json::json!({ "code": p.code, "version": p.version, "file": file_name, "sha256": sha }),
    );
    e.note = Some(format!("{} v{}", p.code, p.version));
    let province = a.province.clone().ok_or_else(ApiError::forbidden)?;
    // A province imports procedures of its own; the national catalogue
    // (and another province's procedures) are not its to change.
    let owner = st
        .store
        .procedure_versions(&p.code)
        .await?
        .first()
        .map(|v| v.home_province.clone());
    if let Some(owner) = owner
        && owner.as_ref() != Some(&province)
    {
        let key = if owner.is_none() {
            "admin-import-national"
        } else {
            "admin-import-other-province"
        };
        let mut args = serde_json::Map::new();
        args.insert("code".into(), p.code.clone().into());
        let msg = ctx.lang.text_with(key, &args);
        return render_procedures(&st, &ctx, &a, None, Vec::new(), Some(msg), file_name).await;
    }
    let outcome = match st.store.put_province_procedure(&p, &province, e).await {
        Ok(o) => o,
        Err(err @ (StoreError::Duplicate(_) | StoreError::Invalid(_))) => {
            let key = if matches!(err, StoreError::Duplicate(_)) {
                "admin-import-duplicate"
            } else {
                "admin-import-older"
            };
            let mut args = serde_json::Map::new();
            args.insert("code".into(), p.code.clone().into());
            args.insert("version".into(), p.version.into());
            let msg = ctx.lang.text_with(key, &args);
            return render_procedures(&st, &ctx, &a, None, Vec::new(), Some(msg), file_name).await;
        }
        Err(other) => return Err(other.into()),
    };
    st.invalidate_catalogue().await;
    let k = match outcome {
        ImportOutcome::Added => "imported",
        ImportOutcome::Unchanged => "unchanged",
    };
    Ok(Redirect::to(&format!(
        "/quan-tri/thu-tuc/{}/phien-ban/{}?xong={k}",
        url_encode(&p.code),
        p.version
    ))
    .into_response())
}

#[derive(Template)]
#[template(path = "admin/procedure.html")]
struct ProcedurePage<'a> {
    ctx: &'a Ctx,
    title: String,
    section: &'static str,
    flash: Option<String>,
    can_edit: bool,
    code: String,
    version: u32,
    enabled: bool,
    /// The version's own switch: for a province's own procedures only.
    can_toggle: bool,
    toggle_href: String,
    public_href: String,
    /// "National catalogue" or "procedure of province …".
    owner: String,
    /// Whether it takes dossiers in the administrator's province, and
    /// the decisions behind it (unit, name, available, by, when).
    available_here: bool,
    decisions: Vec<(String, String, bool, String, String)>,
    availability_href: String,
    facts: Vec<(String, String)>,
    steps: Vec<(String, String, u32)>,
    versions: Vec<VersionLink>,
    json: String,
}

/// `GET /quan-tri/thu-tuc/{code}`: the newest version of a procedure.
pub async fn procedure_latest(
    State(st): State<AppState>,
    ctx: Ctx,
    AdminPage(a): AdminPage,
    Path(code): Path<String>,
    Query(q): Query<DoneQuery>,
) -> PageResult {
    render_procedure(&st, &ctx, &a, &code, None, &q).await
}

/// `GET /quan-tri/thu-tuc/{code}/phien-ban/{version}`: one version.
pub async fn procedure_version(
    State(st): State<AppState>,
    ctx: Ctx,
    AdminPage(a): AdminPage,
    Path((code, version)): Path<(String, u32)>,
    Query(q): Query<DoneQuery>,
) -> PageResult {
    render_procedure(&st, &ctx, &a, &code, Some(version), &q).await
}

async fn render_procedure(
    st: &AppState,
    ctx: &Ctx,
    a: &Admin,
    code: &str,
    version: Option<u32>,
    q: &DoneQuery,
) -> PageResult {
    let lang = ctx.lang;
    let l = lang.code();
    let mut versions = st.store.procedure_versions(code).await?;
    versions.sort_by_key(|v| v.definition.version);
    let sp = match version {
        Some(v) => versions.iter().find(|x| x.definition.version == v),
        None => versions.last(),
    }
    .cloned()
    .ok_or_else(ApiError::not_found)?;
    let p = &sp.definition;
    let yes_no = |b: bool| ctx.t(if b { "admin-yes" } else { "admin-no" });
    let facts = vec![
        (ctx.t("admin-proc-name-vi"), p.name.vi.clone()),
        (ctx.t("admin-proc-name-en"), p.name.en.clone()),
        (ctx.t("admin-proc-sector"), p.sector_name.get(l).to_string()),
        (ctx.t("admin-proc-level"), level_label(lang, p.level)),
        (ctx.t("admin-agency-kind"), kind_label(ctx, p.agency_kind)),
        (ctx.t("admin-proc-online"), online_label(lang, p.online)),
        (
            ctx.t("admin-proc-time"),
            processing_time_label(lang, p.processing_time),
        ),
        (
            ctx.t("admin-proc-fee"),
            motcua_domain::ids::Vnd(p.total_fee()).display_vi(),
        ),
        (ctx.t("admin-proc-documents"), p.documents.len().to_string()),
        (ctx.t("admin-proc-fields"), p.fields.len().to_string()),
        (ctx.t("admin-proc-result"), p.result.name.get(l).to_string()),
        (ctx.t("admin-proc-legal"), p.legal_basis.join("; ")),
        (ctx.t("admin-proc-imported"), fmt_dt(sp.imported_at)),
        (ctx.t("admin-proc-enabled"), yes_no(sp.enabled)),
    ];
    let steps = p
        .workflow
        .iter()
        .map(|w| {
            let role = Role::from(w.role);
            (
                w.name.get(l).to_string(),
                role_label(lang, role.as_str()),
                w.share,
            )
        })
        .collect();
    let units = st.unit_map().await?;
    let unit_name = |u: &UnitCode| {
        units
            .get(u.as_str())
            .map(|x| x.name.clone())
            .unwrap_or_else(|| u.to_string())
    };
    let owner = match &sp.home_province {
        None => ctx.t("admin-proc-national"),
        Some(h) => {
            let mut args = serde_json::Map::new();
            args.insert("province".into(), unit_name(h).into());
            ctx.lang.text_with("admin-proc-of-province", &args)
        }
    };
    let mut decisions = Vec::new();
    let mut available_here = false;
    if let Some(province) = &a.province {
        let all = st.store.availability(&p.code, &[]).await?;
        for d in &all {
            if st.province_of(&d.unit_code).await?.as_ref() == Some(province) {
                decisions.push((
                    d.unit_code.to_string(),
                    unit_name(&d.unit_code),
                    d.available,
                    d.changed_by.clone(),
                    fmt_dt(d.changed_at),
                ));
            }
        }
        available_here = motcua_commands::catalogue::is_available(
            sp.home_province.as_ref(),
            province,
            Some(province),
            &all,
        );
    }
    let page = ProcedurePage {
        ctx,
        title: format!("{} {}", ctx.t("admin-procedure"), p.code),
        section: "procedures",
        flash: flash_of(ctx, q),
        can_edit: a.is_province(),
        can_toggle: a.is_province() && sp.home_province.is_some() && sp.home_province == a.province,
        owner,
        available_here,
        decisions,
        availability_href: format!("/quan-tri/thu-tuc/{}/ap-dung", url_encode(&p.code)),
        code: p.code.clone(),
        version: p.version,
        enabled: sp.enabled,
        toggle_href: format!(
            "/quan-tri/thu-tuc/{}/phien-ban/{}/trang-thai",
            url_encode(&p.code),
            p.version
        ),
        public_href: format!("/thu-tuc/{}", url_encode(&p.code)),
        facts,
        steps,
        versions: version_links(&p.code, &versions),
        json: serde_json::to_string_pretty(p).map_err(ApiError::internal)?,
    };
    Ok(ctx.render(StatusCode::OK, page.render()))
}

/// `POST /quan-tri/thu-tuc/{code}/phien-ban/{version}/trang-thai`: enables
/// (`enabled=1`) or disables a version.
pub async fn procedure_toggle(
    State(st): State<AppState>,
    ProvinceAdminPage(a): ProvinceAdminPage,
    Path((code, version)): Path<(String, u32)>,
    CheckedMultipart(form): CheckedMultipart,
) -> PageResult {
    let sp = st
        .store
        .procedure(&code, version)
        .await?
        .ok_or_else(ApiError::not_found)?;
    // A version is switched by the province it belongs to; a national
    // procedure is made (un)available in the province instead.
    if sp.home_province.is_none() || sp.home_province != a.province {
        return Err(ApiError::forbidden().detail("the procedure is not this province's own"));
    }
    let enabled = form.get("enabled") == Some("1");
    let action = if enabled {
        "procedure.enable"
    } else {
        "procedure.disable"
    };
    let mut e = a.entry(
        &st,
        action,
        &serde_json::json!({ "code": code, "version": version }),
    );
    e.note = Some(format!("{code} v{version}"));
    st.store
        .set_procedure_enabled(&code, version, enabled, e)
        .await?;
    st.invalidate_catalogue().await;
    let k = if enabled {
        "proc-enabled"
    } else {
        "proc-disabled"
    };
    Ok(Redirect::to(&format!(
        "/quan-tri/thu-tuc/{}/phien-ban/{version}?xong={k}",
        url_encode(&code)
    ))
    .into_response())
}

/// `POST /quan-tri/thu-tuc/{code}/ap-dung` (province admins): whether the
/// procedure takes dossiers in the province (`unit` empty) or in one of
/// its communes (`unit` = the commune's code): `decision` is `available`,
/// `unavailable` or `reset` (back to the province's or the default).
pub async fn procedure_availability(
    State(st): State<AppState>,
    ProvinceAdminPage(a): ProvinceAdminPage,
    Path(code): Path<String>,
    CheckedMultipart(form): CheckedMultipart,
) -> PageResult {
    let province = a.province.clone().ok_or_else(ApiError::forbidden)?;
    if st.store.procedure_versions(&code).await?.is_empty() {
        return Err(ApiError::not_found());
    }
    let raw_unit = form.get("unit").unwrap_or("").trim();
    let unit = if raw_unit.is_empty() {
        province.clone()
    } else {
        let u =
            UnitCode::parse(raw_unit).map_err(|_| ApiError::field("unit", "invalid-unit-code"))?;
        if st.province_of(&u).await?.as_ref() != Some(&province) {
            return Err(ApiError::forbidden().detail("the unit is in another province"));
        }
        u
    };
    let available = match form.get("decision") {
        Some("available") => Some(true),
        Some("unavailable") => Some(false),
        Some("reset") => None,
        _ => return Err(ApiError::field("decision", "invalid-choice")),
    };
    let action = match available {
        Some(true) => "procedure.available",
        Some(false) => "procedure.unavailable",
        None => "procedure.availability_reset",
    };
    let mut e = a.entry(
        &st,
        action,
        &serde_json::json!({ "code": code, "unit": unit.as_str() }),
    );
    e.note = Some(format!("{code} @ {unit}"));
    let now = st.clock.now();
    st.store
        .set_availability(&unit, &code, available, &a.user.username, now, e)
        .await?;
    Ok(Redirect::to(&format!(
        "/quan-tri/thu-tuc/{}?xong=availability-saved",
        url_encode(&code)
    ))
    .into_response())
}

//! Agencies of a province: create and edit.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use motcua_domain::units::{Agency, AgencyKind};
use motcua_domain::{AgencyCode, UnitCode};

use crate::admin::Admin;
use crate::admin::Choice;
use crate::admin::DoneQuery;
use crate::admin::agency_name;
use crate::admin::flash_of;
use crate::admin::province_of;
use crate::kernel::access::{AdminPage, CheckedMultipart, ProvinceAdminPage};
use crate::kernel::error::ApiError;
use crate::kernel::page::Ctx;
use crate::kernel::page::PageResult;
use crate::state::AppState;

// ---------------------------------------------------------------------------
// Agencies
// ---------------------------------------------------------------------------

pub struct AgencyRow {
    pub code: String,
    pub name: String,
    pub kind: String,
    pub unit: String,
    pub address: String,
    pub edit_href: String,
}

#[derive(Default)]
pub struct AgencyForm {
    pub code: String,
    pub name_vi: String,
    pub name_en: String,
    pub kind: String,
    pub unit_code: String,
    pub address: String,
}

#[derive(Template)]
#[template(path = "admin/agencies.html")]
struct AgenciesPage<'a> {
    ctx: &'a Ctx,
    title: String,
    section: &'static str,
    flash: Option<String>,
    rows: Vec<AgencyRow>,
    can_edit: bool,
    editing: bool,
    form: AgencyForm,
    kinds: Vec<Choice>,
    errors: Vec<(String, String)>,
}

impl AgenciesPage<'_> {
    fn err(&self, field: &str) -> Option<&str> {
        self.errors
            .iter()
            .find(|(f, _)| f == field)
            .map(|(_, m)| m.as_str())
    }
}

pub fn kind_label(ctx: &Ctx, k: AgencyKind) -> String {
    ctx.t(&format!("admin-kind-{}", k.as_str()))
}

async fn render_agencies(
    st: &AppState,
    ctx: &Ctx,
    a: &Admin,
    flash: Option<String>,
    editing: bool,
    form: AgencyForm,
    errors: Vec<(String, String)>,
) -> PageResult {
    let mut rows = Vec::new();
    for x in &a.agencies {
        let unit = st
            .store
            .unit(&x.unit_code)
            .await?
            .map(|u| format!("{} ({})", u.name, u.code))
            .unwrap_or_else(|| x.unit_code.to_string());
        rows.push(AgencyRow {
            code: x.code.to_string(),
            name: agency_name(ctx.lang, x),
            kind: kind_label(ctx, x.kind),
            unit,
            address: x.address.clone(),
            edit_href: format!("/quan-tri/co-quan/{}", x.code),
        });
    }
    let kinds = AgencyKind::ALL
        .iter()
        .map(|k| Choice {
            value: k.as_str().to_string(),
            label: kind_label(ctx, *k),
            selected: form.kind == k.as_str(),
        })
        .collect();
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let page = AgenciesPage {
        ctx,
        title: ctx.t("admin-agencies"),
        section: "agencies",
        flash,
        rows,
        can_edit: a.is_province(),
        editing,
        form,
        kinds,
        errors,
    };
    Ok(ctx.render(status, page.render()))
}

/// `GET /quan-tri/co-quan`: agencies in scope (and a form to add one, for
/// province admins).
pub async fn agencies(
    State(st): State<AppState>,
    ctx: Ctx,
    AdminPage(a): AdminPage,
    Query(q): Query<DoneQuery>,
) -> PageResult {
    let form = AgencyForm {
        kind: AgencyKind::CommunePeoplesCommittee.as_str().into(),
        ..Default::default()
    };
    render_agencies(&st, &ctx, &a, flash_of(&ctx, &q), false, form, Vec::new()).await
}

/// `GET /quan-tri/co-quan/{code}`: the form to edit an agency.
pub async fn agency_edit(
    State(st): State<AppState>,
    ctx: Ctx,
    ProvinceAdminPage(a): ProvinceAdminPage,
    Path(code): Path<String>,
) -> PageResult {
    let x = a
        .agencies
        .iter()
        .find(|x| x.code.as_str() == code)
        .ok_or_else(ApiError::not_found)?;
    let form = AgencyForm {
        code: x.code.to_string(),
        name_vi: x.name_vi.clone(),
        name_en: x.name_en.clone(),
        kind: x.kind.as_str().into(),
        unit_code: x.unit_code.to_string(),
        address: x.address.clone(),
    };
    render_agencies(&st, &ctx, &a, None, true, form, Vec::new()).await
}

/// `POST /quan-tri/co-quan`: creates (`mode=create`) or updates an agency.
pub async fn agency_save(
    State(st): State<AppState>,
    ctx: Ctx,
    ProvinceAdminPage(a): ProvinceAdminPage,
    CheckedMultipart(form): CheckedMultipart,
) -> PageResult {
    let editing = form.get("mode") == Some("edit");
    let val = |k: &str| motcua_domain::text::nfc(form.get(k).unwrap_or_default().trim());
    let f = AgencyForm {
        code: val("code"),
        name_vi: val("name_vi"),
        name_en: val("name_en"),
        kind: val("kind"),
        unit_code: val("unit_code"),
        address: val("address"),
    };
    let lang = ctx.lang;
    let mut errors: Vec<(String, String)> = Vec::new();
    let all = st.store.agencies().await?;
    let code = match AgencyCode::parse(&f.code) {
        Ok(c) => Some(c),
        Err(_) => {
            errors.push(("code".into(), ctx.t("admin-err-agency-code")));
            None
        }
    };
    if let Some(c) = &code {
        let exists = all.iter().any(|x| &x.code == c);
        if editing {
            if !a.manages(c) {
                return Err(ApiError::forbidden());
            }
        } else if exists {
            errors.push(("code".into(), ctx.t("admin-err-agency-exists")));
        }
    }
    for k in ["name_vi", "name_en", "address"] {
        let v = match k {
            "name_vi" => &f.name_vi,
            "name_en" => &f.name_en,
            _ => &f.address,
        };
        if v.chars().count() < 2 {
            let mut p = serde_json::Map::new();
            p.insert("min".into(), 2.into());
            errors.push((k.into(), lang.text_with("field-too-short", &p)));
        }
    }
    let kind = AgencyKind::parse(&f.kind);
    if kind.is_none() {
        errors.push(("kind".into(), ctx.t("admin-err-kind")));
    }
    let unit = match UnitCode::parse(&f.unit_code) {
        Ok(u) => match st.store.unit(&u).await? {
            Some(unit) => {
                if province_of(&st, &u).await? != a.province || a.province.is_none() {
                    errors.push(("unit_code".into(), ctx.t("admin-err-unit-outside")));
                    None
                } else {
                    Some(unit)
                }
            }
            None => {
                errors.push(("unit_code".into(), ctx.t("admin-err-unit-unknown")));
                None
            }
        },
        Err(_) => {
            errors.push(("unit_code".into(), ctx.t("admin-err-unit-code")));
            None
        }
    };
    if let (Some(k), Some(u)) = (kind, &unit) {
        if k.level() != u.level {
            errors.push(("kind".into(), ctx.t("admin-err-kind-level")));
        } else if all
            .iter()
            .any(|x| x.kind == k && x.unit_code == u.code && Some(&x.code) != code.as_ref())
        {
            errors.push(("kind".into(), ctx.t("admin-err-kind-taken")));
        }
    }
    let (Some(code), Some(kind), Some(unit), true) = (code, kind, unit, errors.is_empty()) else {
        return render_agencies(&st, &ctx, &a, None, editing, f, errors).await;
    };
    let agency = Agency {
        code: code.clone(),
        name_vi: f.name_vi,
        name_en: f.name_en,
        kind,
        unit_code: unit.code,
        address: f.address,
    };
    let mut e = a.entry(&st, "agency.put", &serde_json::json!(agency));
    e.agency_code = Some(code.to_string());
    e.note = Some(code.to_string());
    st.store.put_agency(&agency, e).await?;
    Ok(Redirect::to("/quan-tri/co-quan?xong=agency-saved").into_response())
}

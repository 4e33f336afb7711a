//! Administration pages: users and roles, agencies, procedures, holidays.
//!
//! Agency admins manage the users of their own agency; province admins
//! manage every agency of their province (users and agencies) and the
//! procedure catalogue, which all agencies share. Every change is written
//! with its audit record by the store; every POST checks the CSRF token.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Datelike;
use motcua_domain::audit::AuditEntry;
use motcua_domain::dossier::Role;
use motcua_domain::procedure::{Procedure, lint_procedure, parse_procedure};
use motcua_domain::units::{Agency, AgencyKind};
use motcua_domain::{AgencyCode, UnitCode};
use motcua_store::{ImportOutcome, NewUser, StoreError, StoredProcedure, User};
use serde::Deserialize;

use super::access::{AdminPage, CheckedMultipart, ProvinceAdminPage};
use super::*;
use crate::AppState;
use crate::error::ApiError;

type PageResult = Result<Response, ApiError>;

/// Roles an agency admin may give; province admins may also give
/// [`PROVINCE_ROLES`].
const AGENCY_ROLES: [Role; 4] = [
    Role::Officer,
    Role::Specialist,
    Role::Leader,
    Role::AgencyAdmin,
];
const PROVINCE_ROLES: [Role; 2] = [Role::ProvinceAdmin, Role::IocViewer];

/// The signed-in administrator and the agencies they manage.
pub(crate) struct Admin {
    user: User,
    /// `ProvinceAdmin` or `AgencyAdmin`, as recorded in the audit chain.
    role: Role,
    province: Option<UnitCode>,
    /// Agencies in scope, by code.
    agencies: Vec<Agency>,
}

impl Admin {
    pub(crate) fn is_province(&self) -> bool {
        self.role == Role::ProvinceAdmin
    }

    fn manages(&self, a: &AgencyCode) -> bool {
        self.agencies.iter().any(|x| &x.code == a)
    }

    /// Users of an agency in scope; agency admins do not manage province
    /// roles.
    fn manages_user(&self, u: &User) -> bool {
        u.agency_code.as_ref().is_some_and(|a| self.manages(a))
            && (self.is_province() || !u.roles.iter().any(|r| PROVINCE_ROLES.contains(r)))
    }

    fn assignable(&self) -> Vec<Role> {
        let mut r = AGENCY_ROLES.to_vec();
        if self.is_province() {
            r.extend(PROVINCE_ROLES);
        }
        r
    }

    fn entry(&self, st: &AppState, action: &str, payload: &serde_json::Value) -> AuditEntry {
        audit_entry(st, &self.user, self.role, action, payload)
    }
}

/// The province of an administrative unit.
async fn province_of(st: &AppState, u: &UnitCode) -> Result<Option<UnitCode>, ApiError> {
    if u.is_province() {
        Ok(Some(u.clone()))
    } else {
        Ok(st.store.unit(u).await?.and_then(|x| x.parent_code))
    }
}

/// `user` as an administrator, with the agencies they manage (403 for
/// anyone else).
pub(crate) async fn admin_of(st: &AppState, user: User) -> Result<Admin, ApiError> {
    let role = if crate::auth::has(&user, Role::ProvinceAdmin) {
        Role::ProvinceAdmin
    } else if crate::auth::has(&user, Role::AgencyAdmin) {
        Role::AgencyAdmin
    } else {
        return Err(ApiError::forbidden());
    };
    let own = user.agency_code.clone().ok_or_else(ApiError::forbidden)?;
    let all = st.store.agencies().await?;
    let mine = all
        .iter()
        .find(|a| a.code == own)
        .cloned()
        .ok_or_else(ApiError::forbidden)?;
    let province = province_of(st, &mine.unit_code).await?;
    let agencies = if role == Role::ProvinceAdmin {
        let mut cache: BTreeMap<UnitCode, Option<UnitCode>> = BTreeMap::new();
        let mut v = Vec::new();
        for a in all {
            let p = match cache.get(&a.unit_code) {
                Some(p) => p.clone(),
                None => {
                    let p = province_of(st, &a.unit_code).await?;
                    cache.insert(a.unit_code.clone(), p.clone());
                    p
                }
            };
            if p.is_some() && p == province {
                v.push(a);
            }
        }
        v
    } else {
        vec![mine]
    };
    Ok(Admin {
        user,
        role,
        province,
        agencies,
    })
}

fn agency_name(lang: crate::i18n::Lang, a: &Agency) -> String {
    if lang == crate::i18n::Lang::En && !a.name_en.is_empty() {
        a.name_en.clone()
    } else {
        a.name_vi.clone()
    }
}

/// A strong random password (18 characters, ~100 bits, no look-alikes).
fn generate_password() -> Result<String, ApiError> {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut raw = [0u8; 18];
    getrandom::fill(&mut raw).map_err(ApiError::internal)?;
    // 256 is not a multiple of the alphabet's size: reject the biased tail.
    let limit = 256 - (256 % ALPHABET.len());
    let mut out = String::new();
    let mut pool = raw.to_vec();
    while out.len() < 18 {
        if pool.is_empty() {
            let mut more = [0u8; 18];
            getrandom::fill(&mut more).map_err(ApiError::internal)?;
            pool.extend_from_slice(&more);
        }
        let b = usize::from(pool.remove(0));
        if b < limit {
            out.push(char::from(ALPHABET[b % ALPHABET.len()]));
        }
    }
    Ok(out)
}

async fn hash(password: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || crate::auth::hash_password(&password))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)
}

/// An option of a select or a checkbox.
pub struct Choice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

/// A confirmation shown after a redirect (`?xong=…`), from a fixed list.
#[derive(Deserialize, Default)]
pub struct DoneQuery {
    xong: Option<String>,
    ma: Option<String>,
}

fn flash_of(ctx: &Ctx, q: &DoneQuery) -> Option<String> {
    let k = q.xong.as_deref()?;
    const KNOWN: [&str; 12] = [
        "availability-saved",
        "link-kept",
        "link-removed",
        "calendar-saved",
        "disabled",
        "enabled",
        "agency-saved",
        "imported",
        "unchanged",
        "proc-enabled",
        "proc-disabled",
        "created",
    ];
    KNOWN
        .contains(&k)
        .then(|| ctx.t(&format!("admin-done-{k}")))
}

// ---------------------------------------------------------------------------
// Dashboard
// ---------------------------------------------------------------------------

pub struct Tile {
    pub href: &'static str,
    pub label: String,
    pub count: String,
}

#[derive(Template)]
#[template(path = "pages/admin_home.html")]
struct HomePage<'a> {
    ctx: &'a Ctx,
    title: String,
    section: &'static str,
    role: String,
    scope: String,
    tiles: Vec<Tile>,
}

/// `GET /quan-tri`: what the administrator manages.
pub async fn home(State(st): State<AppState>, ctx: Ctx, AdminPage(a): AdminPage) -> PageResult {
    let users = st
        .store
        .users()
        .await?
        .iter()
        .filter(|u| a.manages_user(u))
        .count();
    let procs = st.catalogue().await?.len();
    let year = motcua_store::vietnam_day(st.clock.now()).year();
    let holidays = st.calendar_of(a.province.as_ref()).holidays(year).len();
    let scope = if a.is_province() {
        let name = match &a.province {
            Some(p) => st
                .store
                .unit(p)
                .await?
                .map(|u| u.name)
                .unwrap_or_else(|| p.to_string()),
            None => String::new(),
        };
        let mut args = serde_json::Map::new();
        args.insert("province".into(), name.into());
        args.insert("n".into(), a.agencies.len().into());
        ctx.lang.text_with("admin-scope-province", &args)
    } else {
        let mut args = serde_json::Map::new();
        args.insert(
            "agency".into(),
            a.agencies
                .first()
                .map(|x| agency_name(ctx.lang, x))
                .unwrap_or_default()
                .into(),
        );
        ctx.lang.text_with("admin-scope-agency", &args)
    };
    let page = HomePage {
        ctx: &ctx,
        title: ctx.t("admin-title"),
        section: "home",
        role: role_label(ctx.lang, a.role.as_str()),
        scope,
        tiles: vec![
            Tile {
                href: "/quan-tri/nguoi-dung",
                label: ctx.t("admin-users"),
                count: users.to_string(),
            },
            Tile {
                href: "/quan-tri/co-quan",
                label: ctx.t("admin-agencies"),
                count: a.agencies.len().to_string(),
            },
            Tile {
                href: "/quan-tri/thu-tuc",
                label: ctx.t("admin-procedures"),
                count: procs.to_string(),
            },
            Tile {
                href: "/quan-tri/ngay-nghi",
                label: ctx.t("admin-holidays"),
                count: holidays.to_string(),
            },
        ],
    };
    Ok(ctx.render(StatusCode::OK, page.render()))
}

// ---------------------------------------------------------------------------
// Users
// ---------------------------------------------------------------------------

pub struct UserRow {
    pub id: i64,
    pub username: String,
    pub full_name: String,
    pub agency: String,
    pub roles: String,
    pub disabled: bool,
    /// Not the administrator themself.
    pub actionable: bool,
    /// The password form of this user had an error.
    pub open_reset: bool,
}

#[derive(Default)]
pub struct NewUserForm {
    pub username: String,
    pub full_name: String,
}

#[derive(Template)]
#[template(path = "pages/admin_users.html")]
struct UsersPage<'a> {
    ctx: &'a Ctx,
    title: String,
    section: &'static str,
    flash: Option<String>,
    /// (user name, password) shown once after a creation or a reset.
    secret: Option<(String, String)>,
    /// Field id → message, in form order.
    errors: Vec<(String, String)>,
    rows: Vec<UserRow>,
    form: NewUserForm,
    roles: Vec<Choice>,
    agencies: Vec<Choice>,
}

impl UsersPage<'_> {
    fn err(&self, field: &str) -> Option<&str> {
        self.errors
            .iter()
            .find(|(f, _)| f == field)
            .map(|(_, m)| m.as_str())
    }
}

struct UsersView {
    flash: Option<String>,
    secret: Option<(String, String)>,
    errors: Vec<(String, String)>,
    form: NewUserForm,
    picked_roles: Vec<String>,
    picked_agency: Option<String>,
}

async fn render_users(st: &AppState, ctx: &Ctx, a: &Admin, v: UsersView) -> PageResult {
    let lang = ctx.lang;
    let names: BTreeMap<&AgencyCode, String> = a
        .agencies
        .iter()
        .map(|x| (&x.code, agency_name(lang, x)))
        .collect();
    let mut users: Vec<User> = st
        .store
        .users()
        .await?
        .into_iter()
        .filter(|u| a.manages_user(u))
        .collect();
    users.sort_by(|x, y| (&x.agency_code, &x.username).cmp(&(&y.agency_code, &y.username)));
    let rows = users
        .into_iter()
        .map(|u| UserRow {
            id: u.id,
            agency: u
                .agency_code
                .as_ref()
                .and_then(|c| names.get(c).cloned())
                .unwrap_or_default(),
            roles: u
                .roles
                .iter()
                .map(|r| role_label(lang, r.as_str()))
                .collect::<Vec<_>>()
                .join(", "),
            disabled: u.disabled,
            actionable: u.id != a.user.id,
            open_reset: v.errors.iter().any(|(f, _)| *f == format!("pw-{}", u.id)),
            username: u.username,
            full_name: u.full_name,
        })
        .collect();
    let roles = a
        .assignable()
        .into_iter()
        .map(|r| Choice {
            value: r.as_str().to_string(),
            label: role_label(lang, r.as_str()),
            selected: v.picked_roles.iter().any(|p| p == r.as_str()),
        })
        .collect();
    let agencies = a
        .agencies
        .iter()
        .map(|x| Choice {
            value: x.code.to_string(),
            label: format!("{} — {}", x.code, agency_name(lang, x)),
            selected: v.picked_agency.as_deref() == Some(x.code.as_str())
                || (v.picked_agency.is_none() && a.user.agency_code.as_ref() == Some(&x.code)),
        })
        .collect();
    let status = if v.errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let page = UsersPage {
        ctx,
        title: ctx.t("admin-users"),
        section: "users",
        flash: v.flash,
        secret: v.secret,
        errors: v.errors,
        rows,
        form: v.form,
        roles,
        agencies,
    };
    Ok(ctx.render(status, page.render()))
}

/// `GET /quan-tri/nguoi-dung`: the users of the administrator's scope and
/// the form to create one.
pub async fn users(
    State(st): State<AppState>,
    ctx: Ctx,
    AdminPage(a): AdminPage,
    Query(q): Query<DoneQuery>,
) -> PageResult {
    let view = UsersView {
        flash: flash_of(&ctx, &q),
        secret: None,
        errors: Vec::new(),
        form: NewUserForm::default(),
        picked_roles: vec![Role::Officer.as_str().to_string()],
        picked_agency: None,
    };
    render_users(&st, &ctx, &a, view).await
}

/// `POST /quan-tri/nguoi-dung`: creates a staff account.
pub async fn create_user(
    State(st): State<AppState>,
    ctx: Ctx,
    AdminPage(a): AdminPage,
    CheckedMultipart(form): CheckedMultipart,
) -> PageResult {
    let lang = ctx.lang;
    let username = form.get("username").unwrap_or_default().trim().to_string();
    let full_name = motcua_domain::text::nfc(form.get("full_name").unwrap_or_default().trim());
    let password = form.get("password").unwrap_or_default().to_string();
    let picked_roles: Vec<String> = form.all("roles").iter().map(|s| s.to_string()).collect();
    let agency_raw = form.get("agency").unwrap_or_default().to_string();
    // A role or agency outside the administrator's scope is a forged
    // request, not a typing error.
    let assignable = a.assignable();
    let mut roles = Vec::new();
    for r in &picked_roles {
        match Role::parse(r) {
            Some(role) if assignable.contains(&role) => {
                if !roles.contains(&role) {
                    roles.push(role);
                }
            }
            _ => return Err(ApiError::forbidden().detail("role outside your scope")),
        }
    }
    let agency = AgencyCode::parse(&agency_raw)
        .ok()
        .filter(|c| a.manages(c))
        .ok_or_else(|| ApiError::forbidden().detail("agency outside your scope"))?;
    let mut errors = Vec::new();
    if !valid_username(&username) {
        errors.push(("username".into(), lang.text("field-username-invalid")));
    } else if st.store.user_by_name(&username).await?.is_some() {
        errors.push(("username".into(), lang.text("field-username-taken")));
    }
    if full_name.chars().count() < 2 {
        let mut p = serde_json::Map::new();
        p.insert("min".into(), 2.into());
        errors.push(("full_name".into(), lang.text_with("field-too-short", &p)));
    }
    if !password.is_empty() && password.chars().count() < 8 {
        errors.push(("password".into(), lang.text("field-password-too-short")));
    }
    if roles.is_empty() {
        errors.push(("roles".into(), ctx.t("admin-roles-required")));
    }
    let form_values = NewUserForm {
        username: username.clone(),
        full_name: full_name.clone(),
    };
    if !errors.is_empty() {
        let view = UsersView {
            flash: None,
            secret: None,
            errors,
            form: form_values,
            picked_roles,
            picked_agency: Some(agency_raw),
        };
        return render_users(&st, &ctx, &a, view).await;
    }
    let generated = password.is_empty();
    let password = if generated {
        generate_password()?
    } else {
        password
    };
    let new = NewUser {
        username: username.clone(),
        password_hash: hash(password.clone()).await?,
        full_name,
        national_id: None,
        phone: None,
        email: None,
        roles: roles.clone(),
        agency_code: Some(agency.clone()),
    };
    let mut e = a.entry(
        &st,
        "user.create",
        &serde_json::json!({
            "username": username,
            "roles": roles.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
            "agency": agency.as_str(),
        }),
    );
    e.agency_code = Some(agency.to_string());
    e.note = Some(username.clone());
    match st.store.create_user(&new, e).await {
        Ok(_) => {}
        Err(StoreError::Duplicate(_)) => {
            let view = UsersView {
                flash: None,
                secret: None,
                errors: vec![("username".into(), lang.text("field-username-taken"))],
                form: form_values,
                picked_roles,
                picked_agency: Some(agency.to_string()),
            };
            return render_users(&st, &ctx, &a, view).await;
        }
        Err(e) => return Err(e.into()),
    }
    let view = UsersView {
        flash: Some(ctx.t("admin-done-created")),
        secret: generated.then_some((username, password)),
        errors: Vec::new(),
        form: NewUserForm::default(),
        picked_roles: vec![Role::Officer.as_str().to_string()],
        picked_agency: None,
    };
    render_users(&st, &ctx, &a, view).await
}

/// A user the administrator may manage (404 if unknown, 403 if out of
/// scope or themself).
async fn managed_user(st: &AppState, a: &Admin, id: i64) -> Result<User, ApiError> {
    let u = st.store.user(id).await?.ok_or_else(ApiError::not_found)?;
    if !a.manages_user(&u) || u.id == a.user.id {
        return Err(ApiError::forbidden());
    }
    Ok(u)
}

/// `POST /quan-tri/nguoi-dung/{id}/khoa`: disables (`disabled=1`, which
/// also ends every session of the user) or enables an account.
pub async fn set_disabled(
    State(st): State<AppState>,
    AdminPage(a): AdminPage,
    Path(id): Path<i64>,
    CheckedMultipart(form): CheckedMultipart,
) -> PageResult {
    let u = managed_user(&st, &a, id).await?;
    let disabled = form.get("disabled") == Some("1");
    let action = if disabled {
        "user.disable"
    } else {
        "user.enable"
    };
    let mut e = a.entry(
        &st,
        action,
        &serde_json::json!({ "user_id": u.id, "username": u.username }),
    );
    e.agency_code = u.agency_code.as_ref().map(|c| c.to_string());
    e.note = Some(u.username.clone());
    st.store.set_user_disabled(u.id, disabled, e).await?;
    if disabled {
        st.store.revoke_user_tokens(u.id).await?;
    }
    let k = if disabled { "disabled" } else { "enabled" };
    Ok(Redirect::to(&format!("/quan-tri/nguoi-dung?xong={k}")).into_response())
}

/// `POST /quan-tri/nguoi-dung/{id}/mat-khau`: sets the given password, or
/// a generated one shown once; ends every session of the user.
pub async fn reset_password(
    State(st): State<AppState>,
    ctx: Ctx,
    AdminPage(a): AdminPage,
    Path(id): Path<i64>,
    CheckedMultipart(form): CheckedMultipart,
) -> PageResult {
    let u = managed_user(&st, &a, id).await?;
    let given = form.get("password").unwrap_or_default().to_string();
    if !given.is_empty() && given.chars().count() < 8 {
        let view = UsersView {
            flash: None,
            secret: None,
            errors: vec![(
                format!("pw-{}", u.id),
                format!(
                    "{}: {}",
                    u.username,
                    ctx.lang.text("field-password-too-short")
                ),
            )],
            form: NewUserForm::default(),
            picked_roles: vec![Role::Officer.as_str().to_string()],
            picked_agency: None,
        };
        return render_users(&st, &ctx, &a, view).await;
    }
    let generated = given.is_empty();
    let password = if generated {
        generate_password()?
    } else {
        given
    };
    let mut e = a.entry(
        &st,
        "user.reset_password",
        &serde_json::json!({ "user_id": u.id, "username": u.username, "generated": generated }),
    );
    e.agency_code = u.agency_code.as_ref().map(|c| c.to_string());
    e.note = Some(u.username.clone());
    st.store
        .set_password(u.id, &hash(password.clone()).await?, e)
        .await?;
    st.store.revoke_user_tokens(u.id).await?;
    let view = UsersView {
        flash: Some(ctx.t("admin-done-password")),
        secret: generated.then(|| (u.username.clone(), password)),
        errors: Vec::new(),
        form: NewUserForm::default(),
        picked_roles: vec![Role::Officer.as_str().to_string()],
        picked_agency: None,
    };
    render_users(&st, &ctx, &a, view).await
}

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
#[template(path = "pages/admin_agencies.html")]
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

fn kind_label(ctx: &Ctx, k: AgencyKind) -> String {
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
#[template(path = "pages/admin_procedures.html")]
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
#[template(path = "pages/admin_procedure.html")]
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
        available_here =
            crate::service::is_available(sp.home_province.as_ref(), province, Some(province), &all);
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

// ---------------------------------------------------------------------------
// Counter dossiers linked to accounts before numbers were verified
// ---------------------------------------------------------------------------

pub struct LinkRow {
    pub id: i64,
    pub code: String,
    pub applicant: String,
    pub username: String,
    pub state: String,
    pub open: bool,
    /// The account's number is verified as the applicant's.
    pub can_keep: bool,
}

#[derive(Template)]
#[template(path = "pages/admin_links.html")]
struct LinksPage<'a> {
    ctx: &'a Ctx,
    title: String,
    section: &'static str,
    flash: Option<String>,
    rows: Vec<LinkRow>,
}

/// `GET /quan-tri/lien-ket-ho-so`: counter dossiers that an earlier
/// release linked to an account by a national ID number nobody had
/// verified, for the administrators of their agencies to keep (once the
/// account's number is verified as the applicant's) or remove.
pub async fn link_reviews(
    State(st): State<AppState>,
    ctx: Ctx,
    AdminPage(a): AdminPage,
    Query(q): Query<DoneQuery>,
) -> PageResult {
    let rows = st
        .store
        .link_reviews(false)
        .await?
        .into_iter()
        .filter(|r| a.manages(&r.agency_code))
        .map(|r| LinkRow {
            id: r.id,
            code: r.dossier_code.to_string(),
            applicant: r.applicant_name.clone(),
            can_keep: r.user_verified_national_id.as_deref() == Some(&r.applicant_national_id),
            state: match r.resolution.as_deref() {
                Some("kept") => ctx.t("links-kept"),
                Some(_) => ctx.t("links-removed"),
                None => ctx.t("links-open"),
            },
            open: r.resolved_at.is_none(),
            username: r.username,
        })
        .collect();
    let page = LinksPage {
        ctx: &ctx,
        title: ctx.t("links-title"),
        section: "links",
        flash: flash_of(&ctx, &q),
        rows,
    };
    Ok(ctx.render(StatusCode::OK, page.render()))
}

/// `POST /quan-tri/lien-ket-ho-so/{id}`: `decision` is `keep` or `remove`.
pub async fn link_review_decide(
    State(st): State<AppState>,
    AdminPage(a): AdminPage,
    Path(id): Path<String>,
    CheckedMultipart(form): CheckedMultipart,
) -> PageResult {
    let id: i64 = id.parse().map_err(|_| ApiError::not_found())?;
    let review = st
        .store
        .link_reviews(false)
        .await?
        .into_iter()
        .find(|r| r.id == id)
        .ok_or_else(ApiError::not_found)?;
    if !a.manages(&review.agency_code) {
        return Err(ApiError::forbidden());
    }
    let keep = match form.get("decision") {
        Some("keep") => true,
        Some("remove") => false,
        _ => return Err(ApiError::field("decision", "invalid-choice")),
    };
    let mut e = a.entry(
        &st,
        if keep { "dossier.link_keep" } else { "dossier.link_remove" },
        &serde_json::json!({ "review": id, "dossier": review.dossier_code.as_str(), "user": review.username }),
    );
    e.dossier_code = Some(review.dossier_code.to_string());
    e.agency_code = Some(review.agency_code.to_string());
    let now = st.clock.now();
    match st
        .store
        .resolve_link_review(id, keep, &a.user.username, now, e)
        .await
    {
        Ok(()) => {}
        Err(StoreError::Invalid(_)) => {
            return Err(ApiError::new(StatusCode::CONFLICT, "link-not-verified"));
        }
        Err(StoreError::Conflict) => return Err(ApiError::new(StatusCode::CONFLICT, "conflict")),
        Err(other) => return Err(other.into()),
    }
    let k = if keep { "link-kept" } else { "link-removed" };
    Ok(Redirect::to(&format!("/quan-tri/lien-ket-ho-so?xong={k}")).into_response())
}

// ---------------------------------------------------------------------------
// Holidays
// ---------------------------------------------------------------------------

pub struct YearView {
    pub year: i32,
    /// (date, weekday, name)
    pub holidays: Vec<(String, String, String)>,
    /// (date, weekday)
    pub makeup: Vec<(String, String)>,
}

/// One administrator's override, listed with a button to remove it.
pub struct OverrideRow {
    /// `holiday`, `makeup` or `removed`.
    pub kind: &'static str,
    pub kind_label: String,
    /// `YYYY-MM-DD`, posted back to remove the entry.
    pub iso: String,
    pub date: String,
    pub weekday: String,
    pub name: String,
}

#[derive(Template)]
#[template(path = "pages/admin_holidays.html")]
struct HolidaysPage<'a> {
    ctx: &'a Ctx,
    title: String,
    section: &'static str,
    flash: Option<String>,
    years: Vec<YearView>,
    hours_per_day: u32,
    can_edit: bool,
    overrides: Vec<OverrideRow>,
    /// What was typed into the forms, kept when they are shown again.
    form: BTreeMap<String, String>,
    errors: Vec<(String, String)>,
}

impl HolidaysPage<'_> {
    fn err(&self, field: &str) -> Option<&str> {
        self.errors
            .iter()
            .find(|(f, _)| f == field)
            .map(|(_, m)| m.as_str())
    }

    fn val(&self, field: &str) -> &str {
        self.form.get(field).map(String::as_str).unwrap_or("")
    }
}

/// `GET /quan-tri/ngay-nghi`: the holidays and make-up working days in
/// force this year and the next, and the administrators' overrides
/// (province admins change them here; others only see them).
pub async fn holidays(
    State(st): State<AppState>,
    ctx: Ctx,
    AdminPage(a): AdminPage,
    Query(q): Query<DoneQuery>,
) -> PageResult {
    let flash = flash_of(&ctx, &q);
    render_holidays(&st, &ctx, &a, flash, BTreeMap::new(), Vec::new()).await
}

async fn render_holidays(
    st: &AppState,
    ctx: &Ctx,
    a: &Admin,
    flash: Option<String>,
    form: BTreeMap<String, String>,
    errors: Vec<(String, String)>,
) -> PageResult {
    let cal = st.calendar_of(a.province.as_ref());
    let year = motcua_store::vietnam_day(st.clock.now()).year();
    let en = ctx.lang == crate::i18n::Lang::En;
    let wd =
        |d: chrono::NaiveDate| ctx.t(&format!("admin-wd-{}", d.weekday().number_from_monday()));
    let years = [year, year + 1]
        .into_iter()
        .map(|y| YearView {
            year: y,
            holidays: cal
                .holidays(y)
                .into_iter()
                .map(|h| {
                    (
                        h.date.format("%d/%m/%Y").to_string(),
                        wd(h.date),
                        if en { h.name_en } else { h.name_vi },
                    )
                })
                .collect(),
            makeup: cal
                .makeup_working_days(y)
                .into_iter()
                .map(|d| (d.format("%d/%m/%Y").to_string(), wd(d)))
                .collect(),
        })
        .collect();
    let (by_province, _) = st.province_calendar_overrides().await?;
    let o = a
        .province
        .as_ref()
        .and_then(|p| by_province.get(p.as_str()))
        .cloned()
        .unwrap_or_default();
    let row = |kind: &'static str, d: chrono::NaiveDate, name: String| OverrideRow {
        kind,
        kind_label: ctx.t(&format!("admin-cal-kind-{kind}")),
        iso: d.format("%Y-%m-%d").to_string(),
        date: d.format("%d/%m/%Y").to_string(),
        weekday: wd(d),
        name,
    };
    let mut overrides: Vec<OverrideRow> = Vec::new();
    for h in &o.extra_holidays {
        let name = match (&h.name_en, en) {
            (Some(n), true) if !n.trim().is_empty() => n.clone(),
            _ => h.name.clone(),
        };
        overrides.push(row("holiday", h.date, name));
    }
    for d in &o.makeup_working_days {
        overrides.push(row("makeup", *d, String::new()));
    }
    for d in &o.removed_holidays {
        overrides.push(row("removed", *d, String::new()));
    }
    overrides.sort_by(|x, y| x.iso.cmp(&y.iso));
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let page = HolidaysPage {
        ctx,
        title: ctx.t("admin-holidays"),
        section: "holidays",
        flash,
        years,
        hours_per_day: cal.hours_per_day(),
        can_edit: a.is_province(),
        overrides,
        form,
        errors,
    };
    Ok(ctx.render(status, page.render()))
}

/// A date typed as `YYYY-MM-DD` (the date input) or `DD/MM/YYYY`.
fn parse_day(raw: &str) -> Option<chrono::NaiveDate> {
    let raw = raw.trim();
    chrono::NaiveDate::parse_from_str(raw, "%Y-%m-%d")
        .or_else(|_| chrono::NaiveDate::parse_from_str(raw, "%d/%m/%Y"))
        .ok()
}

/// What the holidays form typed beside the date.
struct DayEntry {
    name: String,
    name_en: String,
    kind: String,
}

/// Applies one change of the holidays form to the province's overrides `o`;
/// problems a person can correct go to `errors`.
fn apply_day_change(
    ctx: &Ctx,
    op: &str,
    date: Option<chrono::NaiveDate>,
    entry: DayEntry,
    o: &mut motcua_domain::calendar::CalendarOverrides,
    base: &motcua_domain::calendar::CalendarConfig,
    errors: &mut Vec<(String, String)>,
) -> Result<(), ApiError> {
    use motcua_domain::calendar::{CalendarConfig, HolidayConfig, WorkingCalendar};

    let date_key = format!("{op}-date");
    let dup = || (date_key.clone(), ctx.t("admin-cal-err-duplicate"));
    match (op, date) {
        ("holiday", Some(d)) => {
            if o.extra_holidays
                .iter()
                .chain(&base.extra_holidays)
                .any(|h| h.date == d)
            {
                errors.push(dup());
            }
            let name_en = Some(entry.name_en).filter(|n| !n.is_empty());
            o.extra_holidays.push(HolidayConfig {
                date: d,
                name: entry.name,
                name_en,
            });
            o.extra_holidays.sort_by_key(|h| h.date);
        }
        ("makeup", Some(d)) => {
            if o.makeup_working_days
                .iter()
                .chain(&base.makeup_working_days)
                .any(|x| *x == d)
            {
                errors.push(dup());
            }
            o.makeup_working_days.push(d);
            o.makeup_working_days.sort();
        }
        ("removed", Some(d)) => {
            if o.removed_holidays
                .iter()
                .chain(&base.removed_holidays)
                .any(|x| *x == d)
            {
                errors.push(dup());
            } else {
                // Only a day the built-in rules make a holiday.
                let builtin = WorkingCalendar::from_config(&CalendarConfig {
                    extra_holidays: Vec::new(),
                    makeup_working_days: Vec::new(),
                    removed_holidays: Vec::new(),
                    ..base.clone()
                })
                .map_err(ApiError::internal)?;
                if !builtin.holidays(d.year()).iter().any(|h| h.date == d) {
                    errors.push((date_key.clone(), ctx.t("admin-cal-err-not-builtin")));
                }
            }
            o.removed_holidays.push(d);
            o.removed_holidays.sort();
        }
        ("delete", Some(d)) => {
            let before = (
                o.extra_holidays.len(),
                o.makeup_working_days.len(),
                o.removed_holidays.len(),
            );
            match entry.kind.as_str() {
                "holiday" => o.extra_holidays.retain(|h| h.date != d),
                "makeup" => o.makeup_working_days.retain(|x| *x != d),
                "removed" => o.removed_holidays.retain(|x| *x != d),
                _ => return Err(ApiError::bad_request("kind")),
            }
            let after = (
                o.extra_holidays.len(),
                o.makeup_working_days.len(),
                o.removed_holidays.len(),
            );
            if before == after {
                return Err(ApiError::not_found());
            }
        }
        ("holiday" | "makeup" | "removed" | "delete", None) => {}
        _ => return Err(ApiError::bad_request("op")),
    }
    Ok(())
}

/// `POST /quan-tri/ngay-nghi` (province admins): `op` is `holiday` (add an
/// extra day off: `date`, `name`, `name_en`), `makeup` (add a make-up
/// working day: `date`), `removed` (a built-in holiday becomes an ordinary
/// day: `date`) or `delete` (remove the override `kind` on `date`). The
/// new overrides are written with their audit record and put in force on
/// this node at once; other nodes reload them within a minute.
pub async fn holidays_save(
    State(st): State<AppState>,
    ctx: Ctx,
    ProvinceAdminPage(a): ProvinceAdminPage,
    CheckedMultipart(form): CheckedMultipart,
) -> PageResult {
    use motcua_domain::calendar::WorkingCalendar;

    let field = |k: &str| form.get(k).unwrap_or("").trim().to_owned();
    let op = field("op");
    let mut typed = BTreeMap::new();
    for k in ["date", "name", "name_en"] {
        typed.insert(format!("{op}-{k}"), field(k));
    }
    let province = a.province.clone().ok_or_else(ApiError::forbidden)?;
    let national = st.calendar_overrides().await?;
    let (mut by_province, stored) = st.province_calendar_overrides().await?;
    let mut o = by_province
        .get(province.as_str())
        .cloned()
        .unwrap_or_default();
    let base_cfg = st.province_calendar_config(&national, None);
    let base = &base_cfg;
    let mut errors: Vec<(String, String)> = Vec::new();
    let date = parse_day(&field("date"));
    let date_key = format!("{op}-date");
    if date.is_none() {
        errors.push((date_key.clone(), ctx.t("admin-cal-err-date")));
    }
    let name = field("name");
    if op == "holiday" && name.is_empty() {
        errors.push(("holiday-name".into(), ctx.t("admin-cal-err-name")));
    }
    let entry = DayEntry {
        name,
        name_en: field("name_en"),
        kind: field("kind"),
    };
    apply_day_change(&ctx, &op, date, entry, &mut o, base, &mut errors)?;
    if errors.is_empty()
        && let Err(e) = WorkingCalendar::from_config(&o.merge_into(base))
    {
        errors.push((date_key.clone(), e.to_string()));
    }
    if !errors.is_empty() {
        if op == "delete" {
            return Err(ApiError::bad_request("date"));
        }
        return render_holidays(&st, &ctx, &a, None, typed, errors).await;
    }
    let payload = serde_json::json!({ "province": province.as_str(), "overrides": &o });
    by_province.insert(province.as_str().to_string(), o);
    let json = serde_json::to_string(&by_province).map_err(ApiError::internal)?;
    let e = a.entry(&st, "calendar.change", &payload);
    // Compare-and-set: two provinces saving at once cannot lose a change.
    if !st
        .store
        .set_meta_if(
            crate::PROVINCE_OVERRIDES_META_KEY,
            stored.as_deref(),
            &json,
            e,
        )
        .await?
    {
        return Err(ApiError::new(StatusCode::CONFLICT, "conflict"));
    }
    st.reload_calendar().await?;
    Ok(Redirect::to("/quan-tri/ngay-nghi?xong=calendar-saved").into_response())
}

//! Users and roles of an agency or a province: create, lock, reset.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use motcua_domain::AgencyCode;
use motcua_domain::dossier::Role;
use motcua_store::{NewUser, StoreError, User};

use crate::admin::Admin;
use crate::admin::Choice;
use crate::admin::DoneQuery;
use crate::admin::agency_name;
use crate::admin::flash_of;
use crate::admin::generate_password;
use crate::admin::hash;
use crate::kernel::access::{AdminPage, CheckedMultipart};
use crate::kernel::error::ApiError;
use crate::kernel::labels::role_label;
use crate::kernel::page::Ctx;
use crate::kernel::page::PageResult;
use crate::state::AppState;
use motcua_commands::accounts::valid_username;

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
#[template(path = "admin/users.html")]
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

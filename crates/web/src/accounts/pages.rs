//! Signing in and out, registration.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use motcua_store::User;
use serde::Deserialize;

use crate::kernel::access::{CheckedForm, WithCsrf};
use crate::kernel::error::{ApiError, FieldProblem};
use crate::kernel::labels::{by_field, problem_text};
use crate::kernel::page::{Ctx, SESSION_COOKIE, set_cookie};
use crate::kernel::redirect::{safe_target, target_or_home};
use crate::kernel::throttle::Client;
use crate::state::AppState;
use motcua_commands::throttle::LoginError;

use crate::kernel::i18n::args;
use crate::kernel::page::PageResult;
use crate::kernel::page::url_encode;

#[derive(Template)]
#[template(path = "accounts/login.html")]
struct LoginPage<'a> {
    ctx: &'a Ctx,
    title: String,
    username: String,
    next: String,
    /// Why sign-in was asked for ("to apply for …"), when the page knows.
    reason: Option<String>,
    error: Option<String>,
}

impl LoginPage<'_> {
    /// The registration page, coming back to the same place.
    fn register_href(&self) -> String {
        if self.next.is_empty() {
            "/dang-ky".into()
        } else {
            format!("/dang-ky?next={}", url_encode(&self.next))
        }
    }
}

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

/// Why a person sent to sign in from `next` is asked to: to apply for the
/// procedure whose form they opened.
async fn why_sign_in(st: &AppState, ctx: &Ctx, next: Option<&str>) -> Option<String> {
    let path = next?.split(['?', '#']).next()?;
    let code = path.strip_prefix("/thu-tuc/")?.strip_suffix("/nop-ho-so")?;
    let catalogue = st.catalogue().await.ok()?;
    let (p, _) = catalogue.iter().find(|(p, _)| p.code == code)?;
    Some(ctx.lang.text_with(
        "login-to-apply",
        &args(&[("procedure", p.name.get(ctx.lang.code()).to_string())]),
    ))
}

pub async fn login_form(
    State(st): State<AppState>,
    ctx: Ctx,
    Query(q): Query<NextQuery>,
) -> PageResult {
    let next = safe_target(q.next.as_deref());
    let page = LoginPage {
        ctx: &ctx,
        title: ctx.t("page-login"),
        username: String::new(),
        reason: why_sign_in(&st, &ctx, next.as_deref()).await,
        next: next.unwrap_or_default(),
        error: None,
    };
    Ok(ctx.render(StatusCode::OK, page.render()))
}

#[derive(Deserialize)]
pub struct LoginForm {
    username: String,
    password: String,
    csrf: Option<String>,
    next: Option<String>,
}

/// The query parameter of the first page after registering: it welcomes
/// the new account holder.
pub const WELCOME: &str = "chao";

/// The cookie that marks a browser an account signed in from: attempts
/// from it are not slowed down when the account is under attack.
pub const KNOWN_BROWSER_COOKIE: &str = "motcua_known";

/// Sets the session cookie for a new session of `user` and redirects to
/// `next` if it is a safe target, else to where the user works.
async fn start_session(st: &AppState, ctx: &Ctx, user: &User, next: Option<&str>) -> PageResult {
    // Checked before anything is created: a bad target changes nothing.
    let dest = target_or_home(next, Some(user));
    let (token, hash) = motcua_commands::accounts::new_token().map_err(ApiError::internal)?;
    let expires_at = st.clock.now() + st.config.token_ttl;
    st.store.create_token(&hash, user.id, expires_at).await?;
    let mut r = Redirect::to(&dest).into_response();
    let session = set_cookie(
        SESSION_COOKIE,
        &token,
        st.config.token_ttl.num_seconds(),
        true,
        ctx.secure,
    );
    let known = set_cookie(
        KNOWN_BROWSER_COOKIE,
        &motcua_commands::throttle::browser_mark(st, user.id).await?,
        60 * 60 * 24 * 365,
        true,
        ctx.secure,
    );
    for c in [session, known] {
        if let Ok(v) = HeaderValue::from_str(&c) {
            r.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    Ok(r)
}

pub async fn login(
    State(st): State<AppState>,
    client: Client,
    ctx: Ctx,
    headers: HeaderMap,
    CheckedForm(f): CheckedForm<LoginForm>,
) -> PageResult {
    let next = safe_target(f.next.as_deref());
    let username = f.username.trim().to_string();
    let reason = why_sign_in(&st, &ctx, next.as_deref()).await;
    let fail = |msg: String, status: StatusCode| {
        let page = LoginPage {
            ctx: &ctx,
            title: ctx.t("page-login"),
            username: username.clone(),
            next: next.clone().unwrap_or_default(),
            reason: reason.clone(),
            error: Some(msg),
        };
        ctx.render(status, page.render())
    };
    let browser = crate::kernel::page::cookie(&headers, KNOWN_BROWSER_COOKIE);
    match motcua_commands::throttle::password_login(
        &st,
        &username,
        &f.password,
        &client.0,
        browser.as_deref(),
    )
    .await
    {
        Ok(user) => start_session(&st, &ctx, &user, next.as_deref()).await,
        Err(LoginError::Wait(wait)) => {
            let mut r = fail(ctx.t("problem-rate-limited"), StatusCode::TOO_MANY_REQUESTS);
            if let Ok(v) = HeaderValue::from_str(&wait.to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            Ok(r)
        }
        Err(LoginError::BadCredentials) => Ok(fail(
            ctx.t("problem-bad-credentials"),
            StatusCode::UNAUTHORIZED,
        )),
        Err(LoginError::System(e)) => Err(e.into()),
    }
}

#[derive(Deserialize)]
pub struct CsrfForm {
    csrf: Option<String>,
}

fn clear_session(ctx: &Ctx) -> Response {
    let mut r = Redirect::to("/").into_response();
    if let Ok(v) = HeaderValue::from_str(&set_cookie(SESSION_COOKIE, "", 0, true, ctx.secure)) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

/// `POST /dang-xuat`: revokes this session.
pub async fn logout(State(st): State<AppState>, ctx: Ctx, _: CheckedForm<CsrfForm>) -> PageResult {
    if let Some(tok) = ctx.session_token() {
        st.store
            .revoke_token(&motcua_commands::accounts::token_hash(tok))
            .await?;
    }
    Ok(clear_session(&ctx))
}

/// `POST /dang-xuat-tat-ca`: revokes every session and token of the user.
pub async fn logout_everywhere(
    State(st): State<AppState>,
    ctx: Ctx,
    _: CheckedForm<CsrfForm>,
) -> PageResult {
    if let Some(u) = &ctx.user {
        st.store.revoke_user_tokens(u.id).await?;
    }
    Ok(clear_session(&ctx))
}

/// One input of the registration form.
pub struct Input {
    pub id: String,
    pub label: String,
    pub kind: &'static str,
    pub value: String,
    pub required: bool,
    pub autocomplete: &'static str,
    /// The keyboard a phone shows (`numeric` for a number), or empty.
    pub inputmode: &'static str,
    pub help: String,
    pub error: Option<String>,
}

impl Input {
    /// The ids of the texts that describe the field: its hint, its error.
    pub fn described_by(&self) -> String {
        let mut ids = Vec::new();
        if !self.help.is_empty() {
            ids.push(format!("{}-help", self.id));
        }
        if self.error.is_some() {
            ids.push(format!("{}-err", self.id));
        }
        ids.join(" ")
    }
}

#[derive(Template)]
#[template(path = "accounts/register.html")]
struct RegisterPage<'a> {
    ctx: &'a Ctx,
    title: String,
    inputs: Vec<Input>,
    summary: Vec<(String, String)>,
    /// Where the person goes once the account exists.
    next: String,
}

#[derive(Deserialize, Default)]
pub struct RegisterForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    full_name: String,
    #[serde(default)]
    national_id: String,
    #[serde(default)]
    phone: String,
    #[serde(default)]
    email: String,
    csrf: Option<String>,
    #[serde(default)]
    next: Option<String>,
}

fn register_page(ctx: &Ctx, f: &RegisterForm, errs: &[FieldProblem]) -> Response {
    let by = by_field(errs);
    let spec: [(&str, &str, &'static str, &str, bool, &'static str); 6] = [
        (
            "full_name",
            "reg-full-name",
            "text",
            &f.full_name,
            true,
            "name",
        ),
        (
            "national_id",
            "reg-national-id",
            "text",
            &f.national_id,
            true,
            "off",
        ),
        ("phone", "reg-phone", "tel", &f.phone, false, "tel"),
        ("email", "reg-email", "email", &f.email, false, "email"),
        (
            "username",
            "reg-username",
            "text",
            &f.username,
            true,
            "username",
        ),
        (
            "password",
            "reg-password",
            "password",
            "",
            true,
            "new-password",
        ),
    ];
    let inputs: Vec<Input> = spec
        .iter()
        .map(|(id, key, kind, value, required, ac)| Input {
            id: id.to_string(),
            label: ctx.t(key),
            kind,
            value: value.to_string(),
            required: *required,
            autocomplete: ac,
            inputmode: if *id == "national_id" { "numeric" } else { "" },
            help: crate::kernel::page::text_opt(ctx.lang, &format!("{key}-help"))
                .unwrap_or_default(),
            error: by.get(*id).map(|p| problem_text(ctx.lang, p)),
        })
        .collect();
    let summary = inputs
        .iter()
        .filter_map(|i| {
            i.error
                .as_ref()
                .map(|e| (format!("#{}", i.id), format!("{}: {e}", i.label)))
        })
        .collect();
    let page = RegisterPage {
        ctx,
        title: ctx.t("page-register"),
        inputs,
        summary,
        next: safe_target(f.next.as_deref()).unwrap_or_default(),
    };
    let status = if errs.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    ctx.render(status, page.render())
}

pub async fn register_form(ctx: Ctx, Query(q): Query<NextQuery>) -> PageResult {
    let f = RegisterForm {
        next: q.next,
        ..RegisterForm::default()
    };
    Ok(register_page(&ctx, &f, &[]))
}

/// `POST /dang-ky`: a citizen creates an account (same rules as the API)
/// and is signed in.
pub async fn register(
    State(st): State<AppState>,
    client: Client,
    ctx: Ctx,
    CheckedForm(f): CheckedForm<RegisterForm>,
) -> PageResult {
    let registered = motcua_commands::accounts::register_citizen(
        &st,
        motcua_commands::accounts::Registration {
            username: &f.username,
            password: &f.password,
            full_name: &f.full_name,
            national_id: &f.national_id,
            phone: Some(&f.phone),
            email: Some(&f.email),
        },
        &client.0,
    )
    .await
    .map_err(ApiError::from);
    let user = match registered {
        Ok(u) => u,
        Err(e) if !e.fields.is_empty() => return Ok(register_page(&ctx, &f, &e.fields)),
        Err(e) => return Err(e),
    };
    // Signed in, welcomed, and back where they were going.
    let next = safe_target(f.next.as_deref()).unwrap_or_else(|| "/ho-so".into());
    let sep = if next.contains('?') { '&' } else { '?' };
    start_session(&st, &ctx, &user, Some(&format!("{next}{sep}{WELCOME}=1"))).await
}

impl WithCsrf for LoginForm {
    fn csrf(&self) -> Option<&str> {
        self.csrf.as_deref()
    }
}

impl WithCsrf for CsrfForm {
    fn csrf(&self) -> Option<&str> {
        self.csrf.as_deref()
    }
}

impl WithCsrf for RegisterForm {
    fn csrf(&self) -> Option<&str> {
        self.csrf.as_deref()
    }
}

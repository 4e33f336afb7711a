//! Signing in and out, registration.

use askama::Template;
use axum::Form;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use motcua_store::User;
use serde::Deserialize;

use super::{Ctx, SESSION_COOKIE, by_field, problem_text, safe_next, set_cookie};
use crate::error::{ApiError, FieldProblem};
use crate::{AppState, ClientAddr, auth};

type PageResult = Result<Response, ApiError>;

#[derive(Template)]
#[template(path = "pages/login.html")]
struct LoginPage<'a> {
    ctx: &'a Ctx,
    title: String,
    username: String,
    next: String,
    error: Option<String>,
}

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

pub async fn login_form(ctx: Ctx, Query(q): Query<NextQuery>) -> PageResult {
    let page = LoginPage {
        ctx: &ctx,
        title: ctx.t("page-login"),
        username: String::new(),
        next: safe_next(q.next.as_deref()).unwrap_or_default(),
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

/// Sets the session cookie for a new session of `user` and redirects.
async fn start_session(st: &AppState, ctx: &Ctx, user: &User, next: Option<String>) -> PageResult {
    let (token, hash) = auth::new_token().map_err(ApiError::internal)?;
    let expires_at = st.clock.now() + st.config.token_ttl;
    st.store.create_token(&hash, user.id, expires_at).await?;
    let dest = next.unwrap_or_else(|| {
        if auth::is_staff(user) {
            "/can-bo".into()
        } else {
            "/ho-so".into()
        }
    });
    let mut r = Redirect::to(&dest).into_response();
    let c = set_cookie(
        SESSION_COOKIE,
        &token,
        st.config.token_ttl.num_seconds(),
        true,
        ctx.secure,
    );
    if let Ok(v) = HeaderValue::from_str(&c) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(r)
}

pub async fn login(
    State(st): State<AppState>,
    ConnectInfo(client): ConnectInfo<ClientAddr>,
    ctx: Ctx,
    Form(f): Form<LoginForm>,
) -> PageResult {
    ctx.check_csrf(f.csrf.as_deref())?;
    let next = safe_next(f.next.as_deref());
    let username = f.username.trim().to_string();
    let fail = |msg: String, status: StatusCode| {
        let page = LoginPage {
            ctx: &ctx,
            title: ctx.t("page-login"),
            username: username.clone(),
            next: next.clone().unwrap_or_default(),
            error: Some(msg),
        };
        ctx.render(status, page.render())
    };
    if let Err(wait) = st.limiter.check(&username, &client.0) {
        let mut r = fail(ctx.t("problem-rate-limited"), StatusCode::TOO_MANY_REQUESTS);
        if let Ok(v) = HeaderValue::from_str(&wait.to_string()) {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return Ok(r);
    }
    let user = st.store.user_by_name(&username).await?;
    let hash = user
        .as_ref()
        .map(|u| u.password_hash.clone())
        .unwrap_or_else(|| auth::dummy_hash().to_string());
    let password = f.password.clone();
    let ok = tokio::task::spawn_blocking(move || auth::verify_password(&password, &hash))
        .await
        .map_err(ApiError::internal)?;
    let user = match user {
        Some(u) if ok && !u.disabled => u,
        _ => {
            st.limiter.fail(&username, &client.0);
            return Ok(fail(
                ctx.t("problem-bad-credentials"),
                StatusCode::UNAUTHORIZED,
            ));
        }
    };
    st.limiter.succeed(&username);
    start_session(&st, &ctx, &user, next).await
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
pub async fn logout(State(st): State<AppState>, ctx: Ctx, Form(f): Form<CsrfForm>) -> PageResult {
    ctx.check_csrf(f.csrf.as_deref())?;
    if let Some(tok) = ctx.session_token() {
        st.store.revoke_token(&auth::token_hash(tok)).await?;
    }
    Ok(clear_session(&ctx))
}

/// `POST /dang-xuat-tat-ca`: revokes every session and token of the user.
pub async fn logout_everywhere(
    State(st): State<AppState>,
    ctx: Ctx,
    Form(f): Form<CsrfForm>,
) -> PageResult {
    ctx.check_csrf(f.csrf.as_deref())?;
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
    pub help: String,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "pages/register.html")]
struct RegisterPage<'a> {
    ctx: &'a Ctx,
    title: String,
    inputs: Vec<Input>,
    summary: Vec<(String, String)>,
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
            help: super::text_opt(ctx.lang, &format!("{key}-help")).unwrap_or_default(),
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
    };
    let status = if errs.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    ctx.render(status, page.render())
}

pub async fn register_form(ctx: Ctx) -> PageResult {
    Ok(register_page(&ctx, &RegisterForm::default(), &[]))
}

/// `POST /dang-ky`: a citizen creates an account (same rules as the API)
/// and is signed in.
pub async fn register(
    State(st): State<AppState>,
    ctx: Ctx,
    Form(f): Form<RegisterForm>,
) -> PageResult {
    ctx.check_csrf(f.csrf.as_deref())?;
    let registered = crate::service::register_citizen(
        &st,
        crate::service::Registration {
            username: &f.username,
            password: &f.password,
            full_name: &f.full_name,
            national_id: &f.national_id,
            phone: Some(&f.phone),
            email: Some(&f.email),
        },
    )
    .await;
    let user = match registered {
        Ok(u) => u,
        Err(e) if !e.fields.is_empty() => return Ok(register_page(&ctx, &f, &e.fields)),
        Err(e) => return Err(e),
    };
    start_session(&st, &ctx, &user, Some("/ho-so".into())).await
}

//! Server-rendered pages of the citizen portal and the one-stop back office
//! (askama templates under `crates/web/templates`). Every page works
//! without JavaScript.
//!
//! Sessions are bearer tokens of the existing token store carried in the
//! `motcua_session` cookie, so they live in the database and work on every
//! node. CSRF tokens: signed-in forms carry `SHA-256("motcua-csrf:" ||
//! session token)` — only someone who holds the (HttpOnly) session cookie
//! can compute it, and every node derives the same value; anonymous forms
//! (login, registration) use a double-submit cookie `motcua_csrf`.

use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use chrono::{DateTime, Utc};
use motcua_store::User;
use sha2::{Digest, Sha256};

use crate::kernel::error::ApiError;
use crate::kernel::i18n::Lang;
use crate::kernel::routes::Table;
use crate::state::AppState;

pub const SESSION_COOKIE: &str = "motcua_session";
pub const CSRF_COOKIE: &str = "motcua_csrf";
pub const LANG_COOKIE: &str = "lang";

/// Strict policy for pages: no inline script or style at all.
pub const PAGE_CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

static APP_CSS: &str = include_str!("../../static/app.css");

/// Version of the stylesheet for its URL (cache busting).
pub fn css_version() -> &'static str {
    static V: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    V.get_or_init(|| hex::encode(&Sha256::digest(APP_CSS.as_bytes())[..6]))
}

/// What a page handler answers.
pub type PageResult = Result<Response, ApiError>;

/// The kernel's own page routes: the stylesheet and the language switch.
pub fn routes(state: AppState) -> Table {
    pages(
        state,
        Table::new()
            .get("/static/app.css", stylesheet)
            .get("/ngon-ngu", switch_language),
    )
}

/// `table`'s routes as pages: HTML errors in the reader's language, the
/// page security headers, compression.
pub fn pages(state: AppState, table: Table) -> Table {
    table.wrap(|r| {
        r.layer(middleware::from_fn_with_state(state, html_pages))
            .layer(tower_http::compression::CompressionLayer::new())
    })
}

async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        APP_CSS,
    )
        .into_response()
}

/// The language of a request: the `lang` cookie, else `Accept-Language`.
pub fn lang_of(headers: &HeaderMap) -> Lang {
    match cookie(headers, LANG_COOKIE).as_deref() {
        Some("en") => Lang::En,
        Some("vi") => Lang::Vi,
        _ => Lang::from_headers(headers),
    }
}

/// The value of a cookie.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().to_string())
}

/// Was the request made over TLS (directly or behind a proxy)?
fn is_secure(parts: &Parts) -> bool {
    parts.uri.scheme_str() == Some("https")
        || parts
            .headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

/// A `Set-Cookie` value with our attributes.
pub fn set_cookie(name: &str, value: &str, max_age: i64, http_only: bool, secure: bool) -> String {
    let mut c = format!("{name}={value}; Path=/; SameSite=Lax; Max-Age={max_age}");
    if http_only {
        c.push_str("; HttpOnly");
    }
    if secure {
        c.push_str("; Secure");
    }
    c
}

fn random_hex(n: usize) -> Result<String, ApiError> {
    let mut raw = vec![0u8; n];
    getrandom::fill(&mut raw).map_err(ApiError::internal)?;
    Ok(hex::encode(raw))
}

/// Everything a page needs to know about its request.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub lang: Lang,
    pub user: Option<User>,
    /// The raw session token (never rendered).
    session: Option<String>,
    /// The CSRF token for this page's forms.
    pub csrf: String,
    /// Set when the anonymous CSRF cookie must be (re)issued.
    new_csrf_cookie: bool,
    pub secure: bool,
    /// Path and query of this request (for the language switch).
    pub here: String,
    /// `scheme://host` as the client sees it (for QR codes).
    pub origin: String,
    /// The installation's secret key, for signed-in pages' MACs.
    pub server_key: Option<motcua_commands::crypto::ServerKey>,
}

impl Ctx {
    pub fn t(&self, key: &str) -> String {
        self.lang.text(key)
    }

    pub fn lang_code(&self) -> &'static str {
        self.lang.code()
    }

    /// Link that switches to the other language and comes back here.
    pub fn switch_href(&self) -> String {
        let other = match self.lang {
            Lang::Vi => "en",
            Lang::En => "vi",
        };
        format!("/ngon-ngu?lang={other}&next={}", url_encode(&self.here))
    }

    pub fn switch_label(&self) -> &'static str {
        match self.lang {
            Lang::Vi => "English",
            Lang::En => "Tiếng Việt",
        }
    }

    pub fn switch_lang(&self) -> &'static str {
        match self.lang {
            Lang::Vi => "en",
            Lang::En => "vi",
        }
    }

    pub fn user_name(&self) -> String {
        self.user
            .as_ref()
            .map(|u| u.full_name.clone())
            .unwrap_or_default()
    }

    /// The first page after registering (see the accounts pages).
    pub fn welcome(&self) -> bool {
        self.user.is_some()
            && self
                .here
                .split_once('?')
                .is_some_and(|(_, q)| q.split('&').any(|kv| kv == "chao=1"))
    }

    /// A text with the signed-in person's name as `$name`.
    pub fn t_with_name(&self, key: &str) -> String {
        let mut a = serde_json::Map::new();
        a.insert("name".into(), self.user_name().into());
        self.lang.text_with(key, &a)
    }

    pub fn signed_in(&self) -> bool {
        self.user.is_some()
    }

    pub fn is_staff(&self) -> bool {
        self.user
            .as_ref()
            .is_some_and(motcua_commands::accounts::is_staff)
    }

    /// An agency or province administrator (sees the admin pages).
    pub fn is_admin(&self) -> bool {
        self.user.as_ref().is_some_and(|u| {
            motcua_commands::accounts::has(u, motcua_domain::dossier::Role::AgencyAdmin)
                || motcua_commands::accounts::has(u, motcua_domain::dossier::Role::ProvinceAdmin)
        })
    }

    pub fn css_href(&self) -> String {
        format!("/static/app.css?v={}", css_version())
    }

    pub fn session_token(&self) -> Option<&str> {
        self.session.as_deref()
    }

    /// What identifies the session in MACs (the stored hash of its token).
    pub fn session_id(&self) -> Option<String> {
        self.session
            .as_deref()
            .map(motcua_commands::accounts::token_hash)
    }

    /// The signed-in user, or a redirect to the login page.
    pub fn require_user(&self) -> Result<User, Redirect> {
        self.user
            .clone()
            .ok_or_else(|| Redirect::to(&format!("/dang-nhap?next={}", url_encode(&self.here))))
    }

    /// Checks a submitted CSRF token (403 on mismatch).
    pub fn check_csrf(&self, submitted: Option<&str>) -> Result<(), ApiError> {
        match submitted {
            Some(s) if !self.csrf.is_empty() && !self.new_csrf_cookie && ct_eq(s, &self.csrf) => {
                Ok(())
            }
            _ => Err(ApiError::forbidden().detail("csrf")),
        }
    }

    /// Renders a page with this context's cookies.
    pub fn render(&self, status: StatusCode, html: Result<String, askama::Error>) -> Response {
        match html {
            Ok(body) => {
                let mut r = (status, Html(body)).into_response();
                if self.new_csrf_cookie
                    && let Ok(v) = HeaderValue::from_str(&set_cookie(
                        CSRF_COOKIE,
                        &self.csrf,
                        60 * 60 * 24,
                        true,
                        self.secure,
                    ))
                {
                    r.headers_mut().append(header::SET_COOKIE, v);
                }
                r
            }
            Err(e) => ApiError::internal(e).into_response(),
        }
    }

    /// The context of an error page written by the middleware: who is
    /// signed in, read again from the request (anonymous if that fails).
    async fn of_error(st: &AppState, lang: Lang, uri: axum::http::Uri, headers: HeaderMap) -> Self {
        let mut req = Request::new(axum::body::Body::empty());
        *req.uri_mut() = uri;
        *req.headers_mut() = headers;
        let (mut parts, _) = req.into_parts();
        match Self::from_request_parts(&mut parts, st).await {
            Ok(ctx) => ctx,
            Err(_) => Self::anonymous(lang),
        }
    }

    /// An anonymous context (for error pages written by the middleware).
    pub fn anonymous(lang: Lang) -> Self {
        Self {
            lang,
            user: None,
            session: None,
            csrf: String::new(),
            new_csrf_cookie: false,
            secure: false,
            here: "/".into(),
            origin: String::new(),
            server_key: None,
        }
    }
}

/// Constant-time comparison of two tokens.
fn ct_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The CSRF token of a session.
pub fn session_csrf(token: &str) -> String {
    hex::encode(Sha256::digest(format!("motcua-csrf:{token}").as_bytes()))
}

impl FromRequestParts<AppState> for Ctx {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, ApiError> {
        // Built once per request: the access extractors and the handler
        // share it.
        if let Some(ctx) = parts.extensions.get::<Ctx>() {
            return Ok(ctx.clone());
        }
        let ctx = Self::build(parts, st).await?;
        parts.extensions.insert(ctx.clone());
        Ok(ctx)
    }
}

impl Ctx {
    async fn build(parts: &mut Parts, st: &AppState) -> Result<Self, ApiError> {
        let headers = &parts.headers;
        let lang = lang_of(headers);
        let secure = is_secure(parts);
        let mut user = None;
        let mut session = None;
        if let Some(tok) = cookie(headers, SESSION_COOKIE).filter(|t| !t.is_empty()) {
            user = st
                .store
                .token_user(&motcua_commands::accounts::token_hash(&tok), st.clock.now())
                .await?;
            if user.is_some() {
                session = Some(tok);
            }
        }
        let (csrf, new_csrf_cookie) = match &session {
            Some(tok) => (session_csrf(tok), false),
            None => match cookie(headers, CSRF_COOKIE)
                .filter(|c| c.len() == 64 && c.bytes().all(|b| b.is_ascii_hexdigit()))
            {
                Some(c) => (c, false),
                None => (random_hex(32)?, true),
            },
        };
        let here = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".into());
        let host = headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("localhost")
            .to_string();
        let origin = format!("{}://{host}", if secure { "https" } else { "http" });
        let server_key = match &session {
            Some(_) => Some(st.server_key().await?.clone()),
            None => None,
        };
        Ok(Ctx {
            lang,
            user,
            session,
            csrf,
            new_csrf_cookie,
            secure,
            here,
            origin,
            server_key,
        })
    }
}

/// Percent-encodes a string for a query parameter.
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[derive(serde::Deserialize)]
struct SwitchQuery {
    lang: Option<String>,
    next: Option<String>,
}

/// `GET /ngon-ngu?lang=en&next=/…`: remembers the language in a cookie.
async fn switch_language(
    parts: Parts,
    axum::extract::Query(q): axum::extract::Query<SwitchQuery>,
) -> Response {
    let lang = if q.lang.as_deref() == Some("en") {
        "en"
    } else {
        "vi"
    };
    let next =
        crate::kernel::redirect::safe_target(q.next.as_deref()).unwrap_or_else(|| "/".into());
    let mut r = Redirect::to(&next).into_response();
    if let Ok(v) = HeaderValue::from_str(&set_cookie(
        LANG_COOKIE,
        lang,
        60 * 60 * 24 * 365,
        false,
        is_secure(&parts),
    )) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

/// Middleware of every page: HTML error pages in the user's language
/// (independent of `problem_language`, which never sees our errors) and
/// the strict security headers.
async fn html_pages(
    axum::extract::State(st): axum::extract::State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    let lang = lang_of(req.headers());
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let (uri, headers) = (req.uri().clone(), req.headers().clone());
    let mut res = next.run(req).await;
    if let Some(err) = res.extensions_mut().remove::<ApiError>() {
        res = if err.status == StatusCode::UNAUTHORIZED {
            Redirect::to(&format!("/dang-nhap?next={}", url_encode(&path))).into_response()
        } else {
            let ctx = Ctx::of_error(&st, lang, uri, headers).await;
            error_page(&ctx, &err)
        };
    }
    secure_headers(res.headers_mut());
    res
}

pub fn secure_headers(h: &mut HeaderMap) {
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(PAGE_CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    let is_html = h
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    // A page that said `no-store` (a dossier's timeline) keeps it.
    if is_html && !h.contains_key(header::CACHE_CONTROL) {
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("private, no-cache"),
        );
    }
}

#[derive(askama::Template)]
#[template(path = "kernel/error.html")]
struct ErrorPage<'a> {
    ctx: &'a Ctx,
    /// Where the reader works (the home page when signed out).
    home: &'a str,
    title: String,
    message: String,
    status: u16,
}

/// An HTML error page (404, 403, 409, 500 …) in `lang`.
pub fn error_page(ctx: &Ctx, err: &ApiError) -> Response {
    use askama::Template;
    let lang = ctx.lang;
    let key = match err.status {
        StatusCode::NOT_FOUND => "page-error-404",
        StatusCode::FORBIDDEN => "page-error-403",
        s if s.is_server_error() => "page-error-500",
        _ => "",
    };
    let title = if key.is_empty() {
        lang.text(&format!("problem-{}", err.kind))
    } else {
        lang.text(key)
    };
    let message = if err.fields.is_empty() {
        text_opt(lang, &format!("{key}-text")).unwrap_or_default()
    } else {
        err.fields
            .iter()
            .map(|f| lang.text_with(&format!("field-{}", f.code), &f.params))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let page = ErrorPage {
        ctx,
        home: crate::kernel::redirect::home_of(ctx.user.as_ref()),
        title,
        message,
        status: err.status.as_u16(),
    };
    let mut r = ctx.render(err.status, page.render());
    if let Some(s) = err.retry_after
        && let Ok(v) = HeaderValue::from_str(&s.to_string())
    {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

/// Fallback of the whole application: problem+json under `/api/` and for
/// clients that do not ask for HTML, an HTML page otherwise.
pub async fn fallback(
    axum::extract::State(st): axum::extract::State<AppState>,
    req: Request,
) -> Response {
    let wants_html = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"));
    if req.uri().path().starts_with("/api/") || !wants_html {
        return ApiError::not_found().into_response();
    }
    let lang = lang_of(req.headers());
    let ctx = Ctx::of_error(&st, lang, req.uri().clone(), req.headers().clone()).await;
    let mut r = error_page(&ctx, &ApiError::not_found());
    secure_headers(r.headers_mut());
    r
}

/// A translation that may not exist.
pub fn text_opt(lang: Lang, key: &str) -> Option<String> {
    let t = lang.text(key);
    (!t.starts_with("Unknown localization key")).then_some(t)
}

/// `dd/mm/yyyy HH:MM` in Asia/Ho_Chi_Minh (UTC+7).
pub fn fmt_dt(t: DateTime<Utc>) -> String {
    (t + chrono::Duration::hours(7))
        .format("%d/%m/%Y %H:%M")
        .to_string()
}

pub fn fmt_opt(t: Option<DateTime<Utc>>) -> String {
    t.map(fmt_dt).unwrap_or_default()
}

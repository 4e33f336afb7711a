//! Errors of the HTTP layer, written once as `application/problem+json`
//! (RFC 9457) in the request's language.

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use motcua_commands::CommandError;
use motcua_domain::dossier::DomainError;
use motcua_store::StoreError;
use serde::Serialize;

use crate::kernel::i18n::Lang;

pub use motcua_commands::FieldProblem;

/// What went wrong, with a stable `type` slug.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    /// Stable slug: `validation`, `forbidden`, `transition-not-allowed` …
    pub kind: &'static str,
    pub detail: Option<String>,
    pub fields: Vec<FieldProblem>,
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, kind: &'static str) -> Self {
        Self {
            status,
            kind,
            detail: None,
            fields: Vec::new(),
            retry_after: None,
        }
    }
    pub fn detail(mut self, d: impl Into<String>) -> Self {
        self.detail = Some(d.into());
        self
    }
    pub fn validation(fields: Vec<FieldProblem>) -> Self {
        let mut e = Self::new(StatusCode::UNPROCESSABLE_ENTITY, "validation");
        e.fields = fields;
        e
    }
    pub fn field(field: &str, code: &str) -> Self {
        Self::validation(vec![FieldProblem::new(field, code)])
    }
    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized")
    }
    pub fn forbidden() -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden")
    }
    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found")
    }
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad-request").detail(detail)
    }
    pub fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!(error = %e, "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal")
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Self::not_found(),
            StoreError::Conflict => Self::new(StatusCode::CONFLICT, "conflict"),
            StoreError::Duplicate(d) => Self::new(StatusCode::CONFLICT, "duplicate").detail(d),
            StoreError::Invalid(d) => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "validation").detail(d)
            }
            StoreError::Backend(d) => Self::internal(d),
            e @ StoreError::Database(_) => Self::internal(e),
        }
    }
}

impl From<CommandError> for ApiError {
    fn from(e: CommandError) -> Self {
        match e {
            CommandError::Invalid(fields) => Self::validation(fields),
            CommandError::NotFound => Self::not_found(),
            CommandError::Forbidden(why) => Self::forbidden().detail(why),
            CommandError::Refused(kind) => Self::new(StatusCode::UNPROCESSABLE_ENTITY, kind),
            CommandError::RateLimited(seconds) => {
                let mut e = Self::new(StatusCode::TOO_MANY_REQUESTS, "rate-limited");
                e.retry_after = Some(seconds);
                e
            }
            CommandError::Domain(e) => e.into(),
            CommandError::Store(e) => e.into(),
            // Logged where it was made.
            CommandError::Internal(_) => Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        match e {
            DomainError::Forbidden(why) => Self::forbidden().detail(match why {
                "role" => "your role may not take this action",
                "not-applicant" => "only the applicant may take this action",
                "other-agency" => "the dossier is handled by another agency",
                other => other,
            }),
            DomainError::NotAllowed { action, status } => {
                Self::new(StatusCode::CONFLICT, "transition-not-allowed").detail(format!(
                    "action '{}' is not allowed while the dossier is '{}'",
                    action.as_str(),
                    status.as_str()
                ))
            }
            DomainError::NotYourStep { holder } => Self::new(StatusCode::CONFLICT, "not-your-step")
                .detail(format!(
                    "the current step is held by the {} role",
                    holder.as_str()
                )),
            DomainError::Invalid { field, key } => Self::field(field, key),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // The body is written by `problem_language`, which knows the
        // request's language; until then the error rides as an extension.
        let mut r = self.status.into_response();
        if let Some(s) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&s.to_string())
        {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        r.extensions_mut().insert(self);
        r
    }
}

/// The body of every error answer of the API (`application/problem+json`,
/// RFC 9457); the OpenAPI document describes this very type.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(example = json!({"type": "/problems/validation", "title": "The submitted data is not valid", "status": 422,
    "errors": [{"field": "body", "code": "invalid-json", "message": "Invalid JSON"}]}))]
pub struct Problem {
    /// Stable kind of problem: `/problems/<slug>`, e.g.
    /// `/problems/validation`, `/problems/unauthorized`,
    /// `/problems/rate-limited`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Short text of the kind, in the language of `Accept-Language`.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What exactly went wrong, when there is more to say (absent
    /// otherwise, never `null`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub detail: Option<String>,
    /// Invalid input: one entry per field in error (absent otherwise).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<ProblemField>,
}

/// One field in error.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProblemField {
    /// The field: `username`, `fields.birth_date`, `document:<id>`, `body` …
    pub field: String,
    /// Stable message key, e.g. `required`, `invalid-json`.
    pub code: String,
    /// The message, in the language of `Accept-Language`.
    pub message: String,
}

pub fn problem_body(e: &ApiError, lang: Lang) -> serde_json::Value {
    let body = Problem {
        kind: format!("/problems/{}", e.kind),
        title: lang.text(&format!("problem-{}", e.kind)),
        status: e.status.as_u16(),
        detail: e.detail.clone(),
        errors: e
            .fields
            .iter()
            .map(|f| ProblemField {
                field: f.field.clone(),
                code: f.code.clone(),
                message: lang.text_with(&format!("field-{}", f.code), &f.params),
            })
            .collect(),
    };
    serde_json::to_value(body).unwrap_or_default()
}

/// The stable `type` of an error status that no handler described (a
/// request the framework refused before any handler ran).
fn kind_of_status(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "bad-request",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not-found",
        StatusCode::METHOD_NOT_ALLOWED => "method-not-allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "payload-too-large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported-media-type",
        StatusCode::UNPROCESSABLE_ENTITY => "validation",
        StatusCode::TOO_MANY_REQUESTS => "rate-limited",
        s if s.is_server_error() => "internal",
        _ => "bad-request",
    }
}

fn problem_response(err: &ApiError, lang: Lang, extra: Option<&axum::http::HeaderMap>) -> Response {
    let body = problem_body(err, lang).to_string();
    let mut out = (err.status, body).into_response();
    out.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    out.headers_mut().insert(
        header::CONTENT_LANGUAGE,
        HeaderValue::from_static(lang.code()),
    );
    if let Some(h) = extra {
        for k in [header::RETRY_AFTER, header::ALLOW] {
            if let Some(v) = h.get(&k) {
                out.headers_mut().insert(k, v.clone());
            }
        }
    }
    out
}

/// Middleware: turns an [`ApiError`] into a problem+json body in the
/// language the request asked for; and under `/api/`, any other error
/// answer (a path, query or body the framework refused before a handler
/// ran, an unknown route or method) into problem+json too, so that every
/// error of the API has the same shape.
pub async fn problem_language(req: Request, next: Next) -> Response {
    let lang = Lang::from_headers(req.headers());
    let api = req.uri().path().starts_with("/api/");
    let mut res = next.run(req).await;
    if let Some(err) = res.extensions_mut().remove::<ApiError>() {
        return problem_response(&err, lang, Some(res.headers()));
    }
    let status = res.status();
    let is_problem = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
    if (status.is_client_error() || status.is_server_error())
        && !is_problem
        && (api || status == StatusCode::PAYLOAD_TOO_LARGE)
    {
        let kind = kind_of_status(status);
        let mut err = ApiError::new(status, kind);
        // The framework's own words say which part was refused (never
        // an internal detail); kept short.
        if kind != "internal" {
            let (parts, body) = res.into_parts();
            let text = axum::body::to_bytes(body, 4096)
                .await
                .ok()
                .and_then(|b| String::from_utf8(b.to_vec()).ok())
                .filter(|t| !t.trim().is_empty());
            if let Some(t) = text {
                err = err.detail(t.chars().take(300).collect::<String>());
            }
            return problem_response(&err, lang, Some(&parts.headers));
        }
        return problem_response(&err, lang, Some(res.headers()));
    }
    res
}

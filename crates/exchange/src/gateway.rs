//! The client listener: X-Road REST (`/r1/…`) in front of the providers.
//!
//! One exchange goes: parse the target → authenticate the client system (TLS
//! client certificate fingerprint or API key) → check `X-Road-Client` →
//! resolve the service and check the access right → forward to the upstream
//! (request body streamed, hashed on the way, size-limited) → buffer the
//! response up to the size limit while hashing it → append the log record
//! and wait until it is durable → answer. The response is buffered because
//! its hash belongs in the record and the record must be on disk before the
//! client sees the response; the limit bounds the memory this takes.
//!
//! Every answer carries `X-Road-Id`; answers to forwarded requests carry
//! `X-Road-Request-Hash`; errors of the gateway carry `X-Road-Error` and a
//! JSON body `{"type", "message", "detail"}` (see [`ErrorType`]).

use std::error::Error as StdError;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use axum::http::{Method, StatusCode, request::Parts};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{DateTime, SubsecRound, Utc};
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use sha2::{Digest, Sha256, Sha512};

use crate::Gateway;
use crate::id::{ClientId, R1Target, ServiceId, parse_r1_path, percent_decode};
use crate::log::ExchangeRecord;
use crate::metrics::Observation;
use crate::registry::{CompiledRegistry, Denied, RESERVED_SERVICE_CODES, Service};

pub const X_ROAD_CLIENT: HeaderName = HeaderName::from_static("x-road-client");
pub const X_ROAD_SERVICE: HeaderName = HeaderName::from_static("x-road-service");
pub const X_ROAD_ID: HeaderName = HeaderName::from_static("x-road-id");
pub const X_ROAD_USER_ID: HeaderName = HeaderName::from_static("x-road-userid");
pub const X_ROAD_ISSUE: HeaderName = HeaderName::from_static("x-road-issue");
pub const X_ROAD_REQUEST_HASH: HeaderName = HeaderName::from_static("x-road-request-hash");
pub const X_ROAD_ERROR: HeaderName = HeaderName::from_static("x-road-error");

/// The `Authorization` scheme of API keys: `Authorization: X-Road-ApiKey
/// token=<key>` (the scheme X-Road uses for its own management API).
pub const API_KEY_SCHEME: &str = "X-Road-ApiKey";

/// Request extension a TLS listener sets on every request of a connection
/// whose client presented a certificate: the SHA-256 of the certificate's
/// DER encoding (see [`crate::registry::cert_fingerprint`]). The gateway
/// trusts it as given; only a listener may set it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PeerCertificate(pub [u8; 32]);

impl PeerCertificate {
    pub fn from_der(der: &[u8]) -> Self {
        PeerCertificate(crate::registry::cert_fingerprint(der))
    }
}

/// Limits and timeouts of the gateway.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Largest request body forwarded, bytes (413 `Client.RequestTooLarge`).
    pub request_body_limit: u64,
    /// Largest response body accepted from an upstream, bytes (502
    /// `Server.ServerProxy.ServiceFailed.ResponseTooLarge`). Responses are
    /// buffered up to this size.
    pub response_body_limit: u64,
    /// Time from sending the request upstream to the last byte of its
    /// response (504 `…ServiceFailed.Timeout`); services may override it.
    pub upstream_timeout: Duration,
    /// Time to open a connection to an upstream.
    pub connect_timeout: Duration,
    /// Cap of captured bodies for services that capture without a cap.
    pub capture_limit: u64,
    /// Idle keep-alive connections kept per upstream host.
    pub pool_max_idle_per_host: usize,
    pub pool_idle_timeout: Duration,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            request_body_limit: 10 << 20,
            response_body_limit: 10 << 20,
            upstream_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            capture_limit: 64 << 10,
            pool_max_idle_per_host: 256,
            pool_idle_timeout: Duration::from_secs(60),
        }
    }
}

pub(crate) type UpstreamClient = Client<HttpConnector, Body>;

pub(crate) fn build_client(config: &GatewayConfig) -> UpstreamClient {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(config.connect_timeout));
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(config.pool_max_idle_per_host)
        .pool_idle_timeout(config.pool_idle_timeout)
        .build(connector)
}

/// The errors of the gateway, with their X-Road type names and statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorType {
    /// 400 `Client.BadRequest`: malformed path, identifiers or headers.
    BadRequest,
    /// 413 `Client.RequestTooLarge`: the request body exceeds the limit.
    RequestTooLarge,
    /// 401 `Server.ClientProxy.AuthenticationFailed`: no, unknown or revoked
    /// credentials (certificate or API key).
    AuthenticationFailed,
    /// 403 `Server.ClientProxy.ClientIdMismatch`: `X-Road-Client` is not the
    /// subsystem the credentials belong to.
    ClientIdMismatch,
    /// 404 `Server.ClientProxy.UnknownMember`: metadata asked about an
    /// unknown instance or subsystem.
    UnknownMember,
    /// 404 `Server.ServerProxy.UnknownService`.
    UnknownService,
    /// 403 `Server.ServerProxy.AccessDenied`: no access right, or not to this
    /// endpoint.
    AccessDenied,
    /// 502 `Server.ServerProxy.ServiceFailed.NetworkError`: the upstream
    /// cannot be reached.
    NetworkError,
    /// 504 `Server.ServerProxy.ServiceFailed.Timeout`.
    Timeout,
    /// 502 `Server.ServerProxy.ServiceFailed.ResponseTooLarge`.
    ResponseTooLarge,
    /// 502 `Server.ServerProxy.ServiceFailed.InvalidResponse`: the upstream
    /// sent something that is not HTTP, or closed the connection mid-way.
    InvalidResponse,
    /// 500 `Server.ClientProxy.MessageLogFailed`: the exchange could not be
    /// logged, so its response is withheld.
    MessageLogFailed,
    /// 500 `Server.ClientProxy.InternalError`.
    InternalError,
}

impl ErrorType {
    pub const ALL: [ErrorType; 13] = [
        ErrorType::BadRequest,
        ErrorType::RequestTooLarge,
        ErrorType::AuthenticationFailed,
        ErrorType::ClientIdMismatch,
        ErrorType::UnknownMember,
        ErrorType::UnknownService,
        ErrorType::AccessDenied,
        ErrorType::NetworkError,
        ErrorType::Timeout,
        ErrorType::ResponseTooLarge,
        ErrorType::InvalidResponse,
        ErrorType::MessageLogFailed,
        ErrorType::InternalError,
    ];

    pub fn code(self) -> &'static str {
        match self {
            ErrorType::BadRequest => "Client.BadRequest",
            ErrorType::RequestTooLarge => "Client.RequestTooLarge",
            ErrorType::AuthenticationFailed => "Server.ClientProxy.AuthenticationFailed",
            ErrorType::ClientIdMismatch => "Server.ClientProxy.ClientIdMismatch",
            ErrorType::UnknownMember => "Server.ClientProxy.UnknownMember",
            ErrorType::UnknownService => "Server.ServerProxy.UnknownService",
            ErrorType::AccessDenied => "Server.ServerProxy.AccessDenied",
            ErrorType::NetworkError => "Server.ServerProxy.ServiceFailed.NetworkError",
            ErrorType::Timeout => "Server.ServerProxy.ServiceFailed.Timeout",
            ErrorType::ResponseTooLarge => "Server.ServerProxy.ServiceFailed.ResponseTooLarge",
            ErrorType::InvalidResponse => "Server.ServerProxy.ServiceFailed.InvalidResponse",
            ErrorType::MessageLogFailed => "Server.ClientProxy.MessageLogFailed",
            ErrorType::InternalError => "Server.ClientProxy.InternalError",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            ErrorType::BadRequest => StatusCode::BAD_REQUEST,
            ErrorType::RequestTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorType::AuthenticationFailed => StatusCode::UNAUTHORIZED,
            ErrorType::ClientIdMismatch | ErrorType::AccessDenied => StatusCode::FORBIDDEN,
            ErrorType::UnknownMember | ErrorType::UnknownService => StatusCode::NOT_FOUND,
            ErrorType::NetworkError | ErrorType::ResponseTooLarge | ErrorType::InvalidResponse => {
                StatusCode::BAD_GATEWAY
            }
            ErrorType::Timeout => StatusCode::GATEWAY_TIMEOUT,
            ErrorType::MessageLogFailed | ErrorType::InternalError => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }
}

/// Generates X-Road-Ids shaped like UUIDv4: 64 random bits per process
/// start, then a counter.
#[derive(Debug)]
pub(crate) struct IdGen {
    prefix: [u8; 8],
    counter: AtomicU64,
}

impl IdGen {
    pub(crate) fn new() -> Result<Self, getrandom::Error> {
        let mut prefix = [0u8; 8];
        getrandom::fill(&mut prefix)?;
        let mut start = [0u8; 8];
        getrandom::fill(&mut start)?;
        Ok(IdGen {
            prefix,
            counter: AtomicU64::new(u64::from_be_bytes(start) >> 16),
        })
    }

    pub(crate) fn next(&self) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&self.prefix);
        b[8..].copy_from_slice(&n.to_be_bytes());
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        let h = hex::encode(b);
        format!(
            "{}-{}-{}-{}-{}",
            &h[..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..]
        )
    }
}

pub(crate) fn router(gw: Gateway) -> Router {
    Router::new()
        .route("/r1/{*rest}", any(handle))
        .route("/healthz", get(health))
        .fallback(not_found)
        .with_state(gw)
}

async fn health(State(gw): State<Gateway>) -> Response {
    if gw.inner.log.is_healthy() {
        (StatusCode::OK, axum::Json(json!({"status": "ok"}))).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"status": "unavailable", "reason": "message log"})),
        )
            .into_response()
    }
}

async fn not_found() -> Response {
    error_response(
        ErrorType::BadRequest,
        "the gateway serves /r1/{INSTANCE}/{CLASS}/{MEMBER}/{SUBSYSTEM}/{SERVICECODE}/… and /r1/{INSTANCE}/listClients",
        "",
        StatusCode::NOT_FOUND,
    )
}

fn error_body(kind: ErrorType, message: &str, x_road_id: &str) -> Bytes {
    Bytes::from(json!({"type": kind.code(), "message": message, "detail": x_road_id}).to_string())
}

fn error_response(kind: ErrorType, message: &str, x_road_id: &str, status: StatusCode) -> Response {
    let mut r = Response::new(Body::from(error_body(kind, message, x_road_id)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    r.headers_mut()
        .insert(X_ROAD_ERROR, HeaderValue::from_static(kind.code()));
    if let Ok(v) = HeaderValue::from_str(x_road_id) {
        r.headers_mut().insert(X_ROAD_ID, v);
    }
    r
}

struct Failure {
    kind: ErrorType,
    message: String,
}

fn fail<T>(kind: ErrorType, message: impl Into<String>) -> Result<T, Failure> {
    Err(Failure {
        kind,
        message: message.into(),
    })
}

struct Success {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

/// What the log record needs, filled in as the exchange proceeds.
struct Exchange {
    start: DateTime<Utc>,
    x_road_id: String,
    bad_id: bool,
    user_id: Option<String>,
    issue: Option<String>,
    method: String,
    target: String,
    client: Option<String>,
    client_header: Option<String>,
    service: Option<String>,
    upstream: Option<Duration>,
    request: Option<BodyDigest>,
    capture: Option<u64>,
}

struct BodyDigest {
    sha256: [u8; 32],
    sha512: [u8; 64],
    bytes: u64,
    captured: Option<Vec<u8>>,
}

fn header_text(parts: &Parts, name: &HeaderName) -> Option<String> {
    parts.headers.get_all(name).iter().next_back().map(|v| {
        String::from_utf8_lossy(v.as_bytes())
            .chars()
            .take(1024)
            .collect()
    })
}

impl Exchange {
    fn new(gw: &Gateway, parts: &Parts) -> Self {
        let given = header_text(parts, &X_ROAD_ID);
        let valid = given
            .as_deref()
            .filter(|s| !s.is_empty() && s.len() <= 255 && s.bytes().all(|b| b.is_ascii_graphic()));
        Exchange {
            start: Utc::now().trunc_subsecs(6),
            x_road_id: valid
                .map(str::to_owned)
                .unwrap_or_else(|| gw.inner.ids.next()),
            bad_id: given.is_some() && valid.is_none(),
            user_id: header_text(parts, &X_ROAD_USER_ID),
            issue: header_text(parts, &X_ROAD_ISSUE),
            method: parts.method.as_str().to_owned(),
            target: parts
                .uri
                .path_and_query()
                .map(|p| p.as_str().to_owned())
                .unwrap_or_else(|| parts.uri.path().to_owned()),
            client: None,
            client_header: header_text(parts, &X_ROAD_CLIENT),
            service: None,
            upstream: None,
            request: None,
            capture: None,
        }
    }

    /// `X-Road-Request-Hash`: base64 of SHA-512(SHA-512(head) ‖
    /// SHA-512(body)), or of SHA-512(head) when the body is empty, where head
    /// is `METHOD SP request-target LF` followed by `name: value LF` for each
    /// of x-road-client, x-road-id, x-road-userid, x-road-issue present.
    fn request_hash(&self) -> Option<String> {
        let body = self.request.as_ref()?;
        let mut head = Sha512::new();
        head.update(format!("{} {}\n", self.method, self.target).as_bytes());
        for (name, value) in [
            ("x-road-client", self.client_header.as_deref()),
            ("x-road-id", Some(self.x_road_id.as_str())),
            ("x-road-userid", self.user_id.as_deref()),
            ("x-road-issue", self.issue.as_deref()),
        ] {
            if let Some(v) = value {
                head.update(format!("{name}: {v}\n").as_bytes());
            }
        }
        let head = head.finalize();
        let digest = if body.bytes == 0 {
            head
        } else {
            let mut h = Sha512::new();
            h.update(head);
            h.update(body.sha512);
            h.finalize()
        };
        Some(B64.encode(digest))
    }
}

async fn handle(State(gw): State<Gateway>, req: Request) -> Response {
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    let mut ex = Exchange::new(&gw, &parts);
    let outcome = process(&gw, &parts, body, &mut ex).await;
    finish(&gw, ex, outcome, started, parts.method == Method::HEAD).await
}

async fn finish(
    gw: &Gateway,
    ex: Exchange,
    outcome: Result<Success, Failure>,
    started: Instant,
    head: bool,
) -> Response {
    let request_hash = ex.request_hash();
    let (status, mut headers, body, error) = match outcome {
        Ok(s) => (s.status, s.headers, s.body, None),
        Err(f) => {
            let mut h = HeaderMap::new();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json; charset=utf-8"),
            );
            h.insert(X_ROAD_ERROR, HeaderValue::from_static(f.kind.code()));
            (
                f.kind.status(),
                h,
                error_body(f.kind, &f.message, &ex.x_road_id),
                Some(f.kind),
            )
        }
    };
    let total = started.elapsed();
    let capture = |b: &[u8], cap: u64| B64.encode(&b[..b.len().min(cap as usize)]);
    let record = ExchangeRecord {
        x_road_id: ex.x_road_id.clone(),
        start: ex.start,
        end: Utc::now().trunc_subsecs(6),
        client: ex.client.clone(),
        service: ex.service.clone(),
        user_id: ex.user_id,
        issue: ex.issue,
        method: ex.method,
        path: ex.target,
        status: status.as_u16(),
        error: error.map(|e| e.code().to_owned()),
        upstream_us: ex.upstream.map(|d| d.as_micros() as u64),
        total_us: total.as_micros() as u64,
        request_hash: request_hash.clone(),
        request_sha256: ex.request.as_ref().map(|d| hex::encode(d.sha256)),
        request_bytes: ex.request.as_ref().map_or(0, |d| d.bytes),
        response_sha256: hex::encode(Sha256::digest(&body)),
        response_bytes: body.len() as u64,
        request_body: ex
            .request
            .as_ref()
            .and_then(|d| d.captured.as_ref())
            .map(|c| B64.encode(c)),
        response_body: ex.capture.map(|cap| capture(&body, cap)),
    };
    let logged = gw.inner.log.append(&record).await;
    let error = match (&logged, error) {
        (Err(_), _) => Some(ErrorType::MessageLogFailed),
        (Ok(_), e) => e,
    };
    gw.inner.metrics.observe(&Observation {
        service: ex.service.as_deref(),
        client: ex.client.as_deref(),
        error: error.map(|e| e.code()),
        total,
        upstream: ex.upstream,
    });
    if let Err(e) = logged {
        tracing::error!(error = %e, x_road_id = %ex.x_road_id, "exchange not logged; response withheld");
        return error_response(
            ErrorType::MessageLogFailed,
            "the exchange could not be written to the message log",
            &ex.x_road_id,
            ErrorType::MessageLogFailed.status(),
        );
    }
    if let Ok(v) = HeaderValue::from_str(&ex.x_road_id) {
        headers.insert(X_ROAD_ID, v);
    }
    if let Some(h) = request_hash.and_then(|h| HeaderValue::from_str(&h).ok()) {
        headers.insert(X_ROAD_REQUEST_HASH, h);
    }
    let mut r = Response::new(if head {
        Body::empty()
    } else {
        Body::from(body)
    });
    *r.status_mut() = status;
    *r.headers_mut() = headers;
    r
}

async fn process(
    gw: &Gateway,
    parts: &Parts,
    body: Body,
    ex: &mut Exchange,
) -> Result<Success, Failure> {
    let reg = gw.registry();
    // The claimed client, logged when authentication fails.
    let claimed = ex
        .client_header
        .as_deref()
        .map(|h| ClientId::from_header(h).map_err(|e| format!("bad X-Road-Client header: {e}")));
    if let Some(Ok(c)) = &claimed {
        ex.client = Some(c.to_string());
    }
    if ex.bad_id {
        return fail(
            ErrorType::BadRequest,
            "X-Road-Id must be 1 to 255 visible ASCII characters",
        );
    }
    let target = parse_r1_path(parts.uri.path()).map_err(|e| Failure {
        kind: ErrorType::BadRequest,
        message: format!("bad request path: {e}"),
    })?;
    let client = authenticate(&reg, parts)?;
    ex.client = Some(client.to_string());
    match claimed {
        Some(Err(message)) => return fail(ErrorType::BadRequest, message),
        Some(Ok(c)) if c != client => {
            return fail(
                ErrorType::ClientIdMismatch,
                format!("X-Road-Client is {c}, but the credentials belong to {client}"),
            );
        }
        _ => {}
    }
    let has_client_header = ex.client_header.is_some();
    match target {
        R1Target::ListClients { instance } => {
            if parts.method != Method::GET {
                return fail(ErrorType::BadRequest, "listClients takes GET");
            }
            if instance != reg.instance() {
                return fail(
                    ErrorType::UnknownMember,
                    format!("unknown X-Road instance {instance}"),
                );
            }
            ex.service = Some(format!("{instance}/listClients"));
            Ok(json_success(list_clients(&reg)))
        }
        R1Target::Service {
            segments,
            raw_segments,
        } => {
            if raw_segments.len() == 5 && RESERVED_SERVICE_CODES.contains(&segments[4].as_str()) {
                return metadata(&reg, parts, &segments, &client, has_client_header, ex);
            }
            if !has_client_header {
                return fail(ErrorType::BadRequest, "the X-Road-Client header is missing");
            }
            let Some((entry, used)) = reg.resolve(&segments) else {
                return fail(
                    ErrorType::UnknownService,
                    format!("no service {} is registered", segments[..5].join("/")),
                );
            };
            let entry = entry.clone();
            ex.service = Some(entry.id.to_string());
            let rest_segments = &raw_segments[used..];
            for s in rest_segments {
                let d = percent_decode(s).unwrap_or_default();
                if d == "." || d == ".." {
                    return fail(
                        ErrorType::BadRequest,
                        "the path may not contain . or .. segments",
                    );
                }
            }
            let rest = if rest_segments.is_empty() {
                String::new()
            } else {
                format!("/{}", rest_segments.join("/"))
            };
            if let Err(d) = reg.check_access(&client, &entry.id, parts.method.as_str(), &rest) {
                let kind = match d {
                    Denied::UnknownService => ErrorType::UnknownService,
                    _ => ErrorType::AccessDenied,
                };
                return fail(
                    kind,
                    format!("{client} may not call {} {rest}: {d}", entry.id),
                );
            }
            drop(reg);
            ex.capture = entry.capture_limit;
            forward(
                gw,
                parts,
                body,
                ex,
                &client,
                &entry.id,
                &entry.upstream.uri(&rest, parts.uri.query()),
                entry.timeout,
            )
            .await
        }
    }
}

fn authenticate(reg: &CompiledRegistry, parts: &Parts) -> Result<ClientId, Failure> {
    let by_cert = match parts.extensions.get::<PeerCertificate>() {
        Some(fp) => Some(reg.client_for_cert(&fp.0).ok_or_else(|| Failure {
            kind: ErrorType::AuthenticationFailed,
            message: "the client certificate is not registered".into(),
        })?),
        None => None,
    };
    let by_key = match api_key(&parts.headers) {
        Some(Ok(key)) => Some(reg.client_for_api_key(key).ok_or_else(|| Failure {
            kind: ErrorType::AuthenticationFailed,
            message: "unknown or revoked API key".into(),
        })?),
        Some(Err(())) => {
            return fail(
                ErrorType::AuthenticationFailed,
                format!("malformed Authorization header; expected {API_KEY_SCHEME} token=<key>"),
            );
        }
        None => None,
    };
    match (by_cert, by_key) {
        (Some(a), Some(b)) if a != b => fail(
            ErrorType::AuthenticationFailed,
            "the client certificate and the API key belong to different subsystems",
        ),
        (Some(c), _) | (None, Some(c)) => Ok(c.clone()),
        (None, None) => fail(
            ErrorType::AuthenticationFailed,
            format!(
                "no client certificate and no API key (Authorization: {API_KEY_SCHEME} token=<key>)"
            ),
        ),
    }
}

/// The key of an `Authorization: X-Road-ApiKey token=<key>` header: `None`
/// without such a header, `Err` when it is malformed.
fn api_key(headers: &HeaderMap) -> Option<Result<&str, ()>> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case(API_KEY_SCHEME) {
        return None;
    }
    Some(
        rest.trim()
            .strip_prefix("token=")
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .ok_or(()),
    )
}

fn json_success(value: Value) -> Success {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    Success {
        status: StatusCode::OK,
        headers,
        body: Bytes::from(value.to_string()),
    }
}

fn list_clients(reg: &CompiledRegistry) -> Value {
    let doc = reg.source();
    let mut member = Vec::new();
    for m in &doc.members {
        member.push(json!({
            "id": {"member_class": m.class, "member_code": m.code, "object_type": "MEMBER", "xroad_instance": doc.instance},
            "name": m.name,
        }));
        for s in doc
            .subsystems
            .iter()
            .filter(|s| s.id.class == m.class && s.id.member == m.code)
        {
            member.push(json!({
                "id": {"member_class": m.class, "member_code": m.code, "object_type": "SUBSYSTEM",
                       "subsystem_code": s.id.subsystem, "xroad_instance": s.id.instance},
                "name": m.name,
            }));
        }
    }
    json!({ "member": member })
}

fn service_json(s: &Service, endpoints: Vec<Value>) -> Value {
    let mut v = json!({
        "member_class": s.id.provider.class,
        "member_code": s.id.provider.member,
        "object_type": "SERVICE",
        "service_code": s.id.service_code,
        "subsystem_code": s.id.provider.subsystem,
        "xroad_instance": s.id.provider.instance,
        "service_type": if s.openapi.is_some() { "OPENAPI" } else { "REST" },
        "endpoint_list": endpoints,
    });
    if let (Some(version), Some(obj)) = (&s.id.version, v.as_object_mut()) {
        obj.insert("service_version".into(), json!(version));
    }
    v
}

fn endpoints_json(list: &[crate::registry::Endpoint]) -> Vec<Value> {
    if list.is_empty() {
        vec![json!({"method": "*", "path": "**"})]
    } else {
        list.iter()
            .map(|e| json!({"method": e.method, "path": e.path}))
            .collect()
    }
}

fn metadata(
    reg: &CompiledRegistry,
    parts: &Parts,
    segments: &[String],
    client: &ClientId,
    has_client_header: bool,
    ex: &mut Exchange,
) -> Result<Success, Failure> {
    let provider = ClientId::from_segments(&segments[..4]).map_err(|e| Failure {
        kind: ErrorType::BadRequest,
        message: e.to_string(),
    })?;
    let code = segments[4].as_str();
    ex.service = Some(format!("{provider}/{code}"));
    if parts.method != Method::GET {
        return fail(ErrorType::BadRequest, format!("{code} takes GET"));
    }
    if !reg.is_subsystem(&provider) {
        return fail(
            ErrorType::UnknownMember,
            format!("no subsystem {provider} is registered"),
        );
    }
    match code {
        "listMethods" => Ok(json_success(json!({
            "service": reg.services_of(&provider).map(|s| service_json(s, endpoints_json(&s.endpoints))).collect::<Vec<_>>()
        }))),
        "allowedMethods" => {
            if !has_client_header {
                return fail(ErrorType::BadRequest, "the X-Road-Client header is missing");
            }
            let list: Vec<Value> = reg
                .services_of(&provider)
                .filter_map(|s| {
                    reg.right(client, &s.id).map(|r| {
                        let eps = if r.endpoints.is_empty() {
                            &s.endpoints
                        } else {
                            &r.endpoints
                        };
                        service_json(s, endpoints_json(eps))
                    })
                })
                .collect();
            Ok(json_success(json!({ "service": list })))
        }
        "getOpenAPI" => {
            let wanted = parts
                .uri
                .query()
                .into_iter()
                .flat_map(|q| q.split('&'))
                .find_map(|kv| kv.strip_prefix("serviceCode="))
                .map(|v| percent_decode(v).unwrap_or_default())
                .unwrap_or_default();
            if wanted.is_empty() {
                return fail(ErrorType::BadRequest, "getOpenAPI needs ?serviceCode=");
            }
            let (code, version) = match wanted.split_once('/') {
                Some((c, v)) => (c.to_owned(), Some(v.to_owned())),
                None => (wanted.clone(), None),
            };
            let service = reg
                .services_of(&provider)
                .find(|s| {
                    s.id.service_code == code && (version.is_none() || s.id.version == version)
                })
                .ok_or_else(|| Failure {
                    kind: ErrorType::UnknownService,
                    message: format!("{provider} provides no service {wanted}"),
                })?;
            let text = service.openapi.as_ref().ok_or_else(|| Failure {
                kind: ErrorType::UnknownService,
                message: format!("no OpenAPI description is registered for {}", service.id),
            })?;
            let ct = if text.trim_start().starts_with('{') {
                "application/json; charset=utf-8"
            } else {
                "text/yaml; charset=utf-8"
            };
            let mut headers = HeaderMap::new();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
            Ok(Success {
                status: StatusCode::OK,
                headers,
                body: Bytes::from(text.clone()),
            })
        }
        other => fail(
            ErrorType::UnknownService,
            format!("{other} is not a metadata service here"),
        ),
    }
}

// ------------------------------------------------------------------ forwarding

/// Headers never forwarded in either direction (RFC 9110 hop-by-hop, plus
/// the ones X-Road filters to hide hosts).
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Copies headers except hop-by-hop ones (also those named in
/// `Connection`), X-Road headers the gateway sets itself, and `extra`.
fn filter_headers(src: &HeaderMap, extra: &[HeaderName]) -> HeaderMap {
    let listed: Vec<String> = src
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .collect();
    let mut out = HeaderMap::with_capacity(src.len());
    for (name, value) in src {
        let n = name.as_str();
        if HOP_BY_HOP.contains(&n)
            || listed.iter().any(|l| l == n)
            || extra.contains(name)
            || n == "x-road-request-hash"
            || n == "x-road-error"
            || n == "x-road-service"
            || n == "x-road-client"
            || n == "x-road-id"
        {
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    out
}

#[allow(clippy::too_many_arguments)]
async fn forward(
    gw: &Gateway,
    parts: &Parts,
    body: Body,
    ex: &mut Exchange,
    client: &ClientId,
    service: &ServiceId,
    uri: &str,
    timeout: Option<Duration>,
) -> Result<Success, Failure> {
    let cfg = &gw.inner.config;
    let limit = cfg.request_body_limit;
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return fail(
            ErrorType::RequestTooLarge,
            format!("the request body is larger than {limit} bytes"),
        );
    }
    let tap = Arc::new(Mutex::new(Tap::new(ex.capture)));
    let body = TapBody::new(body, limit, tap.clone());

    let mut headers = filter_headers(
        &parts.headers,
        &[header::HOST, header::USER_AGENT, header::EXPECT],
    );
    if api_key(&parts.headers).is_some() {
        headers.remove(header::AUTHORIZATION);
    }
    let mut req = axum::http::Request::new(Body::new(body));
    *req.method_mut() = parts.method.clone();
    *req.uri_mut() = uri.parse().map_err(|e| Failure {
        kind: ErrorType::BadRequest,
        message: format!("cannot build the upstream URI: {e}"),
    })?;
    let set = |h: &mut HeaderMap, name: HeaderName, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(name, v);
        }
    };
    set(&mut headers, X_ROAD_CLIENT, &client.to_header());
    set(&mut headers, X_ROAD_SERVICE, &service.to_header());
    set(&mut headers, X_ROAD_ID, &ex.x_road_id);
    *req.headers_mut() = headers;

    let deadline = tokio::time::Instant::now() + timeout.unwrap_or(cfg.upstream_timeout);
    let sent = Instant::now();
    let result = tokio::time::timeout_at(deadline, gw.inner.client.request(req)).await;
    let outcome = match result {
        Err(_) => fail(ErrorType::Timeout, "the service did not answer in time"),
        Ok(Err(e)) => {
            if tap_state(&tap).too_large {
                fail(
                    ErrorType::RequestTooLarge,
                    format!("the request body is larger than {limit} bytes"),
                )
            } else if e.is_connect() {
                fail(
                    ErrorType::NetworkError,
                    format!("cannot reach the service: {}", error_chain(&e)),
                )
            } else {
                fail(
                    ErrorType::InvalidResponse,
                    format!("the service failed: {}", error_chain(&e)),
                )
            }
        }
        Ok(Ok(resp)) => read_response(resp, cfg.response_body_limit, deadline).await,
    };
    ex.upstream = Some(sent.elapsed());
    ex.request = Some(tap_state(&tap).digest());
    outcome
}

async fn read_response(
    resp: axum::http::Response<hyper::body::Incoming>,
    limit: u64,
    deadline: tokio::time::Instant,
) -> Result<Success, Failure> {
    let (rparts, mut body) = resp.into_parts();
    let too_large = || Failure {
        kind: ErrorType::ResponseTooLarge,
        message: format!("the service's response is larger than {limit} bytes"),
    };
    let declared = rparts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let mut buf: Vec<u8> = Vec::with_capacity(declared.unwrap_or(0).min(limit) as usize);
    let mut single: Option<Bytes> = None;
    loop {
        match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => {
                return fail(
                    ErrorType::Timeout,
                    "the service did not finish its response in time",
                );
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                return fail(
                    ErrorType::InvalidResponse,
                    format!("the service's response broke off: {}", error_chain(&e)),
                );
            }
            Ok(Some(Ok(frame))) => {
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                let have = single.as_ref().map_or(0, |s| s.len()) + buf.len();
                if (have + data.len()) as u64 > limit {
                    return Err(too_large());
                }
                if buf.is_empty() && single.is_none() {
                    single = Some(data);
                } else {
                    if let Some(s) = single.take() {
                        buf.extend_from_slice(&s);
                    }
                    buf.extend_from_slice(&data);
                }
            }
        }
    }
    let body = single.unwrap_or_else(|| Bytes::from(buf));
    Ok(Success {
        status: rparts.status,
        headers: filter_headers(&rparts.headers, &[header::SERVER]),
        body,
    })
}

/// Authenticates a request of a client system outside `/r1/` (the pub/sub
/// pull endpoints) exactly as the gateway does: TLS client certificate
/// and/or API key, and an `X-Road-Client` header that must name the
/// authenticated subsystem. On error: the X-Road error type and a message.
pub fn authenticate_client(
    reg: &CompiledRegistry,
    parts: &Parts,
) -> Result<ClientId, (ErrorType, String)> {
    let claimed = header_text(parts, &X_ROAD_CLIENT).ok_or((
        ErrorType::BadRequest,
        "the X-Road-Client header is missing".to_string(),
    ))?;
    let claimed = ClientId::from_header(&claimed).map_err(|e| {
        (
            ErrorType::BadRequest,
            format!("bad X-Road-Client header: {e}"),
        )
    })?;
    let client = authenticate(reg, parts).map_err(|f| (f.kind, f.message))?;
    if claimed != client {
        return Err((
            ErrorType::ClientIdMismatch,
            format!("X-Road-Client is {claimed}, but the credentials belong to {client}"),
        ));
    }
    Ok(client)
}

/// An error answer of the gateway (`X-Road-Error`, JSON body), for
/// endpoints served beside `/r1/`.
pub fn gateway_error(kind: ErrorType, message: &str, x_road_id: &str) -> Response {
    error_response(kind, message, x_road_id, kind.status())
}

fn error_chain(e: &dyn StdError) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

// ------------------------------------------------------------------ body tap

/// Hashes (SHA-256 for the log, SHA-512 for X-Road-Request-Hash), counts
/// and optionally captures the request body while it streams upstream.
struct Tap {
    sha256: Sha256,
    sha512: Sha512,
    bytes: u64,
    capture_cap: Option<u64>,
    captured: Vec<u8>,
    too_large: bool,
}

impl Tap {
    fn new(capture_cap: Option<u64>) -> Self {
        Tap {
            sha256: Sha256::new(),
            sha512: Sha512::new(),
            bytes: 0,
            capture_cap,
            captured: Vec::new(),
            too_large: false,
        }
    }

    fn digest(&mut self) -> BodyDigest {
        BodyDigest {
            sha256: std::mem::take(&mut self.sha256).finalize().into(),
            sha512: std::mem::take(&mut self.sha512).finalize().into(),
            bytes: self.bytes,
            captured: self.capture_cap.map(|_| std::mem::take(&mut self.captured)),
        }
    }
}

fn tap_state(tap: &Mutex<Tap>) -> std::sync::MutexGuard<'_, Tap> {
    tap.lock().unwrap_or_else(|e| e.into_inner())
}

struct TapBody {
    inner: Body,
    limit: u64,
    tap: Arc<Mutex<Tap>>,
}

impl TapBody {
    fn new(inner: Body, limit: u64, tap: Arc<Mutex<Tap>>) -> Self {
        TapBody { inner, limit, tap }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the request body is larger than the limit")]
struct BodyTooLarge;

impl http_body::Body for TapBody {
    type Data = Bytes;
    type Error = Box<dyn StdError + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let mut t = tap_state(&this.tap);
                    t.bytes += data.len() as u64;
                    if t.bytes > this.limit {
                        t.too_large = true;
                        return Poll::Ready(Some(Err(Box::new(BodyTooLarge))));
                    }
                    t.sha256.update(data);
                    t.sha512.update(data);
                    if let Some(cap) = t.capture_cap {
                        let room = (cap as usize).saturating_sub(t.captured.len());
                        let take = room.min(data.len());
                        t.captured.extend_from_slice(&data[..take]);
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(Box::new(e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ids_look_like_uuids_and_differ() {
        let g = IdGen::new().unwrap();
        let a = g.next();
        let b = g.next();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"), "{a}");
    }

    #[test]
    fn api_key_header() {
        let mut h = HeaderMap::new();
        assert_eq!(api_key(&h), None);
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer abc"),
        );
        assert_eq!(api_key(&h), None);
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("X-Road-ApiKey token=xrk_1"),
        );
        assert_eq!(api_key(&h), Some(Ok("xrk_1")));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("x-road-apikey  token= k "),
        );
        assert_eq!(api_key(&h), Some(Ok("k")));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("X-Road-ApiKey k"),
        );
        assert_eq!(api_key(&h), Some(Err(())));
    }

    #[test]
    fn hop_by_hop_and_connection_listed_headers_are_dropped() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        h.insert("x-road-request-hash", HeaderValue::from_static("forged"));
        h.insert(header::SERVER, HeaderValue::from_static("nginx"));
        h.insert("x-custom", HeaderValue::from_static("kept"));
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        let out = filter_headers(&h, &[header::SERVER]);
        let names: Vec<&str> = out.keys().map(|k| k.as_str()).collect();
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(out.contains_key("x-custom") && out.contains_key(header::CONTENT_TYPE));
    }

    #[test]
    fn error_types_are_distinct() {
        let mut codes: Vec<&str> = ErrorType::ALL.iter().map(|e| e.code()).collect();
        codes.sort();
        codes.dedup();
        assert_eq!(codes.len(), ErrorType::ALL.len());
    }
}

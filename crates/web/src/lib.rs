//! HTTP interface of motcua: the JSON API with its OpenAPI description,
//! health, readiness and metrics. Handlers stay thin: parse, authorise,
//! call the domain, write through the store.
#![forbid(unsafe_code)]

pub mod api;
pub mod auth;
pub mod crypto;
pub mod error;
pub mod exchange_api;
pub mod i18n;
pub mod metrics;
pub mod pages;
pub mod prefill;
pub mod pubsub_api;
pub mod redirect;
pub mod routes;
pub mod service;
pub mod throttle;
pub mod views;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::connect_info::Connected;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::{Json, Router, middleware};
use motcua_domain::UnitCode;
use motcua_domain::calendar::{CalendarConfig, CalendarOverrides, WorkingCalendar};
use motcua_domain::procedure::Procedure;
use motcua_domain::units::AdminUnit;
use motcua_store::{ObjectStore, Store};
use tokio::sync::RwLock;
use tower_http::set_header::SetResponseHeaderLayer;
use utoipa::OpenApi;

use crate::error::ApiError;

#[derive(Debug, Clone)]
pub struct WebConfig {
    pub token_ttl: chrono::Duration,
    /// Largest single uploaded file.
    pub max_file_bytes: u64,
    /// Largest request body.
    pub max_body_bytes: usize,
    /// Take the client's address from the last `X-Forwarded-For` entry
    /// (only behind a proxy that sets it).
    pub trust_forwarded_for: bool,
}

impl Default for WebConfig {
    fn default() -> Self {
        Self {
            token_ttl: chrono::Duration::hours(12),
            max_file_bytes: 10 * 1_000_000,
            max_body_bytes: 50 * 1_000_000,
            trust_forwarded_for: false,
        }
    }
}

/// Current procedures, each with its folded search text.
pub type Catalogue = Arc<Vec<(Procedure, String)>>;

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub objects: Arc<dyn ObjectStore>,
    /// The `[calendar]` configuration; administrators' overrides (stored
    /// in the database) are added to it by [`AppState::reload_calendar`].
    pub calendar_base: Arc<CalendarConfig>,
    /// The calendars in force: the national one (base plus the overrides
    /// stored before calendars were per province) and each province's
    /// (the national one plus the province's own), swapped on reload.
    calendar: Arc<std::sync::RwLock<Calendars>>,
    /// Every administrative unit, read once.
    units: Arc<tokio::sync::OnceCell<Arc<BTreeMap<String, AdminUnit>>>>,
    pub config: Arc<WebConfig>,
    pub metrics: Arc<metrics::Metrics>,
    pub clock: Arc<Clock>,
    /// The catalogue with folded search text, refreshed when it changes.
    catalogue: Arc<RwLock<Option<Catalogue>>>,
    /// The data exchange registry (and the gateway, on nodes that run it);
    /// `None`: the exchange API answers 503.
    pub exchange: Option<Arc<exchange_api::ExchangeHandle>>,
    /// The portal's client identity on the exchange, for once-only prefill;
    /// `None`: forms are typed.
    pub portal: Option<Arc<prefill::PortalClient>>,
    /// Whole-queue counts of the workqueues read recently on this node.
    queue_counts: Arc<views::QueueCountsCache>,
    /// The installation's secret key, read from the database once.
    server_key: Arc<tokio::sync::OnceCell<crypto::ServerKey>>,
}

impl AppState {
    pub fn new(
        store: Arc<dyn Store>,
        objects: Arc<dyn ObjectStore>,
        calendar: WorkingCalendar,
        calendar_base: CalendarConfig,
        config: WebConfig,
    ) -> Self {
        Self {
            store,
            objects,
            calendar_base: Arc::new(calendar_base),
            calendar: Arc::new(std::sync::RwLock::new(Calendars {
                national: Arc::new(calendar),
                provinces: BTreeMap::new(),
            })),
            units: Arc::new(tokio::sync::OnceCell::new()),
            config: Arc::new(config),
            metrics: Arc::new(metrics::Metrics::default()),
            clock: Arc::new(Clock::default()),
            catalogue: Arc::new(RwLock::new(None)),
            exchange: None,
            portal: None,
            queue_counts: Arc::new(views::QueueCountsCache::default()),
            server_key: Arc::new(tokio::sync::OnceCell::new()),
        }
    }

    /// The installation's secret key (see [`crypto`]).
    pub async fn server_key(&self) -> Result<&crypto::ServerKey, ApiError> {
        self.server_key
            .get_or_try_init(|| crypto::ServerKey::load(self))
            .await
    }

    /// The whole-queue counts of `holders` at `agency`: read again when
    /// older than [`views::QUEUE_COUNTS_TTL_SECS`] or after this node
    /// changed a dossier of the agency.
    pub async fn queue_counts(
        &self,
        agency: &motcua_domain::AgencyCode,
        holders: &[motcua_domain::dossier::Role],
        now: chrono::DateTime<chrono::Utc>,
        soon: chrono::DateTime<chrono::Utc>,
    ) -> Result<views::QueueCounts, ApiError> {
        if let Some(lines) = self.queue_counts.get(agency.as_str(), holders, now) {
            return Ok(views::QueueCounts::of(&lines));
        }
        let lines = self.store.queue_counts(agency, holders, now, soon).await?;
        let counts = views::QueueCounts::of(&lines);
        self.queue_counts.put(agency.as_str(), holders, now, lines);
        Ok(counts)
    }

    /// A dossier of `agency` changed on this node: its queues' counts are
    /// read again.
    pub fn queue_changed(&self, agency: &motcua_domain::AgencyCode) {
        self.queue_counts.forget(agency.as_str());
    }

    /// Current procedures with their folded names for search. Cached; call
    /// [`AppState::invalidate_catalogue`] after importing procedures.
    pub async fn catalogue(&self) -> Result<Catalogue, ApiError> {
        if let Some(c) = self.catalogue.read().await.as_ref() {
            return Ok(c.clone());
        }
        let procs = self.store.current_procedures().await?;
        let list: Vec<(Procedure, String)> = procs
            .into_iter()
            .map(|p| {
                let d = p.definition;
                let folded = motcua_domain::text::fold(&format!(
                    "{} {} {} {} {}",
                    d.code, d.name.vi, d.name.en, d.sector_name.vi, d.sector_name.en
                ));
                (d, folded)
            })
            .collect();
        let list = Arc::new(list);
        *self.catalogue.write().await = Some(list.clone());
        Ok(list)
    }

    /// The national working calendar in force now (the one of a
    /// province without its own additions).
    pub fn calendar(&self) -> Arc<WorkingCalendar> {
        self.calendar
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .national
            .clone()
    }

    /// The working calendar of `province` (its own holidays and make-up
    /// days added to the national ones).
    pub fn calendar_of(&self, province: Option<&UnitCode>) -> Arc<WorkingCalendar> {
        let c = self.calendar.read().unwrap_or_else(|e| e.into_inner());
        province
            .and_then(|p| c.provinces.get(p.as_str()))
            .unwrap_or(&c.national)
            .clone()
    }

    /// The working calendar that counts the days of a dossier filed in
    /// `unit`.
    pub async fn calendar_for(&self, unit: &UnitCode) -> Result<Arc<WorkingCalendar>, ApiError> {
        let province = self.province_of(unit).await?;
        Ok(self.calendar_of(province.as_ref()))
    }

    /// Every unit by code, read from the store once.
    pub async fn unit_map(&self) -> Result<Arc<BTreeMap<String, AdminUnit>>, ApiError> {
        self.units
            .get_or_try_init(|| async {
                let all = self.store.units().await?;
                Ok::<_, ApiError>(Arc::new(
                    all.into_iter()
                        .map(|u| (u.code.as_str().to_string(), u))
                        .collect(),
                ))
            })
            .await
            .cloned()
    }

    /// The province of a unit (itself for a province).
    pub async fn province_of(&self, unit: &UnitCode) -> Result<Option<UnitCode>, ApiError> {
        if unit.is_province() {
            return Ok(Some(unit.clone()));
        }
        Ok(self
            .unit_map()
            .await?
            .get(unit.as_str())
            .and_then(|u| u.parent_code.clone()))
    }

    /// The calendar overrides stored before calendars were per province:
    /// they apply everywhere.
    pub async fn calendar_overrides(&self) -> Result<CalendarOverrides, ApiError> {
        match self.store.meta(CalendarOverrides::META_KEY).await? {
            Some(json) => serde_json::from_str(&json)
                .map_err(|e| ApiError::internal(format!("calendar overrides: {e}"))),
            None => Ok(CalendarOverrides::default()),
        }
    }

    /// Each province administrators' overrides, by province code, and the
    /// stored text (for a compare-and-set).
    pub async fn province_calendar_overrides(
        &self,
    ) -> Result<(BTreeMap<String, CalendarOverrides>, Option<String>), ApiError> {
        match self.store.meta(PROVINCE_OVERRIDES_META_KEY).await? {
            Some(json) => Ok((
                serde_json::from_str(&json)
                    .map_err(|e| ApiError::internal(format!("calendar overrides: {e}")))?,
                Some(json),
            )),
            None => Ok((BTreeMap::new(), None)),
        }
    }

    /// The configuration of `province`'s calendar: the base, the national
    /// overrides, then the province's own.
    pub fn province_calendar_config(
        &self,
        national: &CalendarOverrides,
        own: Option<&CalendarOverrides>,
    ) -> CalendarConfig {
        let cfg = national.merge_into(&self.calendar_base);
        match own {
            Some(o) => o.merge_into(&cfg),
            None => cfg,
        }
    }

    /// Reads the overrides, adds them to the base configuration and puts
    /// the resulting calendars in force. On error the current ones stay.
    pub async fn reload_calendar(&self) -> Result<(), ApiError> {
        let national = self.calendar_overrides().await?;
        let (by_province, _) = self.province_calendar_overrides().await?;
        let cal = WorkingCalendar::from_config(&self.province_calendar_config(&national, None))
            .map_err(ApiError::internal)?;
        let mut provinces = BTreeMap::new();
        for (code, o) in &by_province {
            let c =
                WorkingCalendar::from_config(&self.province_calendar_config(&national, Some(o)))
                    .map_err(ApiError::internal)?;
            provinces.insert(code.clone(), Arc::new(c));
        }
        *self.calendar.write().unwrap_or_else(|e| e.into_inner()) = Calendars {
            national: Arc::new(cal),
            provinces,
        };
        Ok(())
    }

    pub async fn invalidate_catalogue(&self) {
        *self.catalogue.write().await = None;
    }
}

/// The setting holding each province's calendar overrides (a JSON object
/// from province code to [`CalendarOverrides`]).
pub const PROVINCE_OVERRIDES_META_KEY: &str = "calendar.province_overrides";

/// The calendars in force.
#[derive(Debug)]
struct Calendars {
    national: Arc<WorkingCalendar>,
    provinces: BTreeMap<String, Arc<WorkingCalendar>>,
}

/// The time as the application sees it: the system clock, plus an offset
/// that only tests move (to let working days pass in a test).
#[derive(Debug, Default)]
pub struct Clock {
    offset_ms: std::sync::atomic::AtomicI64,
}

impl Clock {
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        chrono::Utc::now()
            + chrono::Duration::milliseconds(
                self.offset_ms.load(std::sync::atomic::Ordering::Relaxed),
            )
    }

    /// Moves the application's time forward.
    pub fn advance(&self, by: chrono::Duration) {
        self.offset_ms
            .fetch_add(by.num_milliseconds(), std::sync::atomic::Ordering::Relaxed);
    }
}

/// The client's address as a string, for rate limiting.
#[derive(Debug, Clone)]
pub struct ClientAddr(pub String);

impl Connected<axum::serve::IncomingStream<'_, tokio::net::TcpListener>> for ClientAddr {
    fn connect_info(stream: axum::serve::IncomingStream<'_, tokio::net::TcpListener>) -> Self {
        ClientAddr(stream.remote_addr().ip().to_string())
    }
}

impl Connected<SocketAddr> for ClientAddr {
    fn connect_info(addr: SocketAddr) -> Self {
        ClientAddr(addr.ip().to_string())
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "motcua API", description = "One-stop digital government: procedures, dossiers, tracking. Errors are application/problem+json (RFC 9457) in the language of Accept-Language (vi or en)."),
    paths(
        api::issue_token, api::revoke_token, api::register, api::me, api::verify_national_id,
        api::list_procedures, api::get_procedure,
        api::submit, api::get_dossier, api::get_document, api::list_dossiers, api::workqueue, api::act, api::track,
        healthz, readyz, metrics_text,
        exchange_api::get_registry, exchange_api::get_metrics,
        exchange_api::add_member, exchange_api::remove_member,
        exchange_api::add_subsystem, exchange_api::remove_subsystem,
        exchange_api::put_service, exchange_api::remove_service,
        exchange_api::grant, exchange_api::revoke,
        exchange_api::create_api_key, exchange_api::revoke_api_key,
        exchange_api::add_client_cert, exchange_api::remove_client_cert,
        pubsub_api::event_types, pubsub_api::list_subscriptions, pubsub_api::create_subscription,
        pubsub_api::delete_subscription, pubsub_api::deliveries,
    ),
    components(schemas(views::Application, views::ApplicantInput, error::Problem, error::ProblemField)),
    modifiers(&BearerAuth, &ProblemResponses),
    tags((name = "auth"), (name = "procedures"), (name = "dossiers"), (name = "operations"),
        (name = "exchange", description = "The data exchange registry (province administrators); the gateway itself listens on its own port, see docs/exchange.md"))
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
        if let Some(c) = openapi.components.as_mut() {
            c.add_security_scheme(
                "bearer",
                SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
            );
        }
    }
}

/// Every error answer of the API is `application/problem+json`
/// ([`error::Problem`], written once by [`error::problem_language`]): each
/// documented 4xx or 5xx of an `/api/` operation gets that content (a
/// handler's attribute names the status and, when it has more to say, a
/// description), a 429 its `Retry-After`, and every operation that reads a
/// body the 413 of the body limit. A response without a description of
/// its own gets the standard one (the document requires one).
struct ProblemResponses;

impl ProblemResponses {
    fn description(status: &str) -> &'static str {
        match status {
            "200" => "OK",
            "201" => "Created",
            "204" => "No content",
            "400" => {
                "The request could not be read: a path segment, query string or multipart body the server could not parse"
            }
            "401" => "Not signed in: no bearer token, or one that is unknown, expired or revoked",
            "403" => "The signed-in account may not do this",
            "404" => "Not found",
            "409" => "In conflict with the current state",
            "413" => "The request body is larger than the server accepts",
            "422" => "Invalid input: `errors` names each field in error",
            "429" => "Too many attempts: try again after `Retry-After` seconds",
            "503" => "Temporarily unavailable",
            _ => "Error",
        }
    }
}

impl utoipa::Modify for ProblemResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::header::Header;
        use utoipa::openapi::{Content, Ref, RefOr, Response, Type, schema::Object};
        for (path, item) in openapi.paths.paths.iter_mut() {
            let api = path.starts_with("/api/");
            let ops = [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.delete,
                &mut item.patch,
            ];
            for op in ops.into_iter().flatten() {
                let responses = &mut op.responses.responses;
                if api && op.request_body.is_some() && !responses.contains_key("413") {
                    responses.insert("413".into(), RefOr::T(Response::new("")));
                }
                for (status, response) in responses.iter_mut() {
                    let RefOr::T(r) = response else { continue };
                    if r.description.is_empty() {
                        r.description = Self::description(status).to_string();
                    }
                    if !api || !(status.starts_with('4') || status.starts_with('5')) {
                        continue;
                    }
                    if r.content.is_empty() {
                        r.content.insert(
                            "application/problem+json".into(),
                            RefOr::T(Content::new(Some(Ref::from_schema_name("Problem")))),
                        );
                    }
                    if status == "429" {
                        let mut h = Header::new(Object::with_type(Type::Integer));
                        h.description = Some("Seconds to wait before the next attempt".into());
                        r.headers.insert("Retry-After".into(), RefOr::T(h));
                    }
                }
            }
        }
    }
}

/// `GET /healthz`: the process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "The text `ok`", body = String, content_type = "text/plain")))]
async fn healthz() -> &'static str {
    "ok"
}

/// `GET /readyz`: the database answers.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, description = "The text `ready`", body = String, content_type = "text/plain"),
        (status = 503, description = "The database does not answer (the text `database unavailable`)", body = String, content_type = "text/plain")))]
async fn readyz(State(st): State<AppState>) -> Response {
    match st.store.ping().await {
        Ok(()) => "ready".into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "not ready");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable").into_response()
        }
    }
}

/// `GET /metrics`: Prometheus text format.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text exposition", body = String, content_type = "text/plain")))]
async fn metrics_text(State(st): State<AppState>) -> Result<Response, ApiError> {
    let counts = api::status_counts(&st).await?;
    let pending = st.store.pending_events().await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        {
            let mut text = st.metrics.render(&counts, pending);
            if let Some(gw) = st.exchange.as_ref().and_then(|e| e.gateway()) {
                text.push_str(&gw.render_prometheus());
            }
            text
        },
    )
        .into_response())
}

async fn openapi_json() -> Response {
    match ApiDoc::openapi().to_pretty_json() {
        Ok(j) => ([(header::CONTENT_TYPE, "application/json")], j).into_response(),
        Err(e) => ApiError::internal(e).into_response(),
    }
}

/// A documentation page rendered on the server from the OpenAPI document:
/// no script, no CDN, works offline.
async fn api_docs() -> Html<String> {
    let doc = ApiDoc::openapi();
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    let mut body = String::new();
    for (path, item) in doc.paths.paths.iter() {
        let ops = [
            ("GET", &item.get),
            ("POST", &item.post),
            ("PUT", &item.put),
            ("DELETE", &item.delete),
            ("PATCH", &item.patch),
        ];
        for (m, op) in ops {
            let Some(op) = op else { continue };
            body.push_str(&format!(
                "<section><h2><span class=m>{m}</span> <code>{}</code></h2>",
                esc(path)
            ));
            if let Some(d) = op.description.as_deref().or(op.summary.as_deref()) {
                body.push_str(&format!("<p>{}</p>", esc(d)));
            }
            if let Some(params) = &op.parameters {
                body.push_str("<ul>");
                for p in params {
                    let utoipa::openapi::RefOr::T(p) = p else {
                        continue;
                    };
                    body.push_str(&format!(
                        "<li><code>{}</code> {}</li>",
                        esc(&p.name),
                        esc(p.description.as_deref().unwrap_or(""))
                    ));
                }
                body.push_str("</ul>");
            }
            body.push_str("<p>");
            for (status, _) in op.responses.responses.iter() {
                body.push_str(&format!("<span class=s>{}</span> ", esc(status)));
            }
            body.push_str("</p></section>");
        }
    }
    Html(format!(
        "<!doctype html><html lang=en><head><meta charset=utf-8><meta name=viewport content=\"width=device-width,initial-scale=1\"><title>motcua API</title><style>body{{font-family:system-ui,sans-serif;max-width:60rem;margin:auto;padding:1rem;line-height:1.4}}section{{border-top:1px solid #ccc}}.m{{background:#0b5394;color:#fff;padding:0 .4rem;border-radius:3px}}.s{{background:#eee;padding:0 .3rem}}</style></head><body><h1>motcua API</h1><p>{}</p><p>Machine-readable: <a href=\"/api/openapi.json\">/api/openapi.json</a> (OpenAPI 3.1). Authenticate with <code>POST /api/v1/auth/token</code>, then send <code>Authorization: Bearer &lt;token&gt;</code>.</p>{body}</body></html>",
        esc(doc.info.description.as_deref().unwrap_or(""))
    ))
}

/// Every route of the application, in one table (the router's own).
pub fn route_table(state: &AppState) -> routes::Table {
    routes::Table::new()
        .post("/api/v1/auth/token", api::issue_token)
        .delete("/api/v1/auth/token", api::revoke_token)
        .post("/api/v1/auth/register", api::register)
        .get("/api/v1/me", api::me)
        .post(
            "/api/v1/accounts/{username}/verify-national-id",
            api::verify_national_id,
        )
        .get("/api/v1/procedures", api::list_procedures)
        .get("/api/v1/procedures/{code}", api::get_procedure)
        .post("/api/v1/dossiers", api::submit)
        .get("/api/v1/dossiers", api::list_dossiers)
        .get("/api/v1/dossiers/{code}", api::get_dossier)
        .get(
            "/api/v1/dossiers/{code}/documents/{index}",
            api::get_document,
        )
        .post("/api/v1/dossiers/{code}/actions", api::act)
        .get("/api/v1/workqueue", api::workqueue)
        .get("/api/v1/track/{code}", api::track)
        .get("/api/v1/exchange/registry", exchange_api::get_registry)
        .get("/api/v1/exchange/metrics", exchange_api::get_metrics)
        .post("/api/v1/exchange/members", exchange_api::add_member)
        .post(
            "/api/v1/exchange/members/remove",
            exchange_api::remove_member,
        )
        .post("/api/v1/exchange/subsystems", exchange_api::add_subsystem)
        .post(
            "/api/v1/exchange/subsystems/remove",
            exchange_api::remove_subsystem,
        )
        .post("/api/v1/exchange/services", exchange_api::put_service)
        .post(
            "/api/v1/exchange/services/remove",
            exchange_api::remove_service,
        )
        .post("/api/v1/exchange/access/grant", exchange_api::grant)
        .post("/api/v1/exchange/access/revoke", exchange_api::revoke)
        .post("/api/v1/exchange/api-keys", exchange_api::create_api_key)
        .post(
            "/api/v1/exchange/api-keys/{id}/revoke",
            exchange_api::revoke_api_key,
        )
        .post(
            "/api/v1/exchange/client-certs",
            exchange_api::add_client_cert,
        )
        .post(
            "/api/v1/exchange/client-certs/remove",
            exchange_api::remove_client_cert,
        )
        .get(
            "/api/v1/exchange/pubsub/event-types",
            pubsub_api::event_types,
        )
        .get(
            "/api/v1/exchange/pubsub/subscriptions",
            pubsub_api::list_subscriptions,
        )
        .post(
            "/api/v1/exchange/pubsub/subscriptions",
            pubsub_api::create_subscription,
        )
        .delete(
            "/api/v1/exchange/pubsub/subscriptions/{id}",
            pubsub_api::delete_subscription,
        )
        .get("/api/v1/exchange/pubsub/deliveries", pubsub_api::deliveries)
        .get("/api/openapi.json", openapi_json)
        .get("/api/docs", api_docs)
        .get("/healthz", healthz)
        .get("/readyz", readyz)
        .get("/metrics", metrics_text)
        .merge(pages::routes(state.clone()))
        .merge(pages::exchange_admin::routes(state.clone()))
}

/// The routes of [`route_table`], method and path.
pub fn routes_of(state: &AppState) -> Vec<routes::Route> {
    route_table(state).into_parts().1
}

/// The whole HTTP application.
pub fn router(state: AppState) -> Router {
    let (api, _) = route_table(&state).into_parts();
    let api = api
        .fallback(pages::fallback)
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes));
    api.layer(middleware::from_fn(error::problem_language))
        .layer(middleware::from_fn(no_store_for_the_signed_in))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            metrics::track_requests,
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'self'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'",
            ),
        ))
        .with_state(state)
}

/// Middleware: whatever is answered to a request that carries
/// credentials (a bearer token or a session cookie) may hold personal
/// data, and is never stored by a browser or a proxy — a commune kiosk's
/// next user finds nothing in its cache. Public pages and static files
/// asked for anonymously keep their own caching.
async fn no_store_for_the_signed_in(
    req: axum::extract::Request,
    next: middleware::Next,
) -> Response {
    let credentials = !req.uri().path().starts_with("/static/")
        && (req.headers().contains_key(header::AUTHORIZATION)
            || pages::cookie(req.headers(), pages::SESSION_COOKIE).is_some_and(|c| !c.is_empty()));
    let mut res = next.run(req).await;
    if credentials {
        res.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

/// Answers JSON with a status (helper for handlers).
pub fn json<T: serde::Serialize>(status: StatusCode, v: T) -> Response {
    (status, Json(v)).into_response()
}

#[cfg(test)]
mod openapi_tests {
    use std::collections::BTreeSet;

    use serde_json::{Value, json};

    use super::*;

    fn doc() -> Value {
        serde_json::to_value(ApiDoc::openapi()).expect("document")
    }

    fn schema<'a>(doc: &'a Value, name: &str) -> &'a Value {
        &doc["components"]["schemas"][name]
    }

    fn properties(schema: &Value) -> BTreeSet<String> {
        schema["properties"]
            .as_object()
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default()
    }

    fn keys(v: &Value) -> BTreeSet<String> {
        v.as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Each operation as (method, path, operation).
    fn operations(doc: &Value) -> Vec<(String, String, Value)> {
        let mut out = Vec::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("path item") {
                out.push((method.clone(), path.clone(), op.clone()));
            }
        }
        out
    }

    #[test]
    fn every_error_of_the_api_is_a_documented_problem() {
        let doc = doc();
        let problem = json!({ "$ref": "#/components/schemas/Problem" });
        for (method, path, op) in operations(&doc) {
            let responses = op["responses"].as_object().expect("responses");
            for (status, r) in responses {
                assert!(
                    r["description"].as_str().is_some_and(|d| !d.is_empty()),
                    "{method} {path} {status}: no description"
                );
                if path.starts_with("/api/") && (status.starts_with('4') || status.starts_with('5'))
                {
                    assert_eq!(
                        keys(&r["content"]),
                        BTreeSet::from(["application/problem+json".to_string()]),
                        "{method} {path} {status}"
                    );
                    assert_eq!(
                        r["content"]["application/problem+json"]["schema"], problem,
                        "{method} {path} {status}"
                    );
                }
            }
            let secured = op["security"].as_array().is_some_and(|s| !s.is_empty());
            if secured {
                assert!(
                    responses.contains_key("401"),
                    "{method} {path}: signed in but no 401"
                );
            }
            if path.starts_with("/api/") && !op["requestBody"].is_null() {
                assert!(responses.contains_key("413"), "{method} {path}: no 413");
            }
            if let Some(r) = responses.get("429") {
                assert!(!r["headers"]["Retry-After"].is_null(), "{method} {path}");
            }
        }
    }

    #[test]
    fn the_problem_schema_is_the_body_written() {
        let doc = doc();
        let s = schema(&doc, "Problem");
        let mut e = ApiError::validation(vec![error::FieldProblem::new("username", "required")])
            .detail("more");
        let full = error::problem_body(&e, i18n::Lang::En);
        assert_eq!(keys(&full), properties(s));
        assert_eq!(
            keys(&full["errors"][0]),
            properties(schema(&doc, "ProblemField"))
        );
        e = ApiError::unauthorized();
        let least = error::problem_body(&e, i18n::Lang::En);
        let required: BTreeSet<String> = s["required"]
            .as_array()
            .expect("required")
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        assert_eq!(keys(&least), required);
        // Absent when there is nothing more to say, never null.
        assert_eq!(s["properties"]["detail"]["type"], json!("string"));
    }

    #[test]
    fn a_dossier_without_evaluation_says_null() {
        let doc = doc();
        let t = &schema(&doc, "DossierView")["properties"]["evaluation"]["type"];
        assert_eq!(t, &json!(["object", "null"]));
    }

    #[test]
    fn the_documented_actions_are_the_lifecycle_actions() {
        let doc = doc();
        let names: Vec<&str> = motcua_domain::dossier::Action::ALL
            .iter()
            .map(|a| a.as_str())
            .collect();
        assert_eq!(schema(&doc, "ActionName")["enum"], json!(names));
    }

    #[test]
    fn the_pubsub_lists_are_arrays_of_the_store_types() {
        use motcua_store::{Delivery, DeliveryMode, DeliveryState, PubEvent, Subscription};
        let doc = doc();
        for (path, item) in [
            ("/api/v1/exchange/pubsub/event-types", "EventTypeView"),
            ("/api/v1/exchange/pubsub/subscriptions", "SubscriptionView"),
            ("/api/v1/exchange/pubsub/deliveries", "DeliveryView"),
        ] {
            assert_eq!(
                doc["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"],
                json!({ "type": "array", "items": { "$ref": format!("#/components/schemas/{item}") } }),
                "{path}"
            );
        }
        let at = chrono::DateTime::<chrono::Utc>::from_timestamp(1_800_000_000, 0).expect("time");
        let sub = Subscription {
            id: 1,
            client: "VN/GOV/UBND-HN/MOTCUA".into(),
            event_type: "dossier.accepted".into(),
            mode: DeliveryMode::Push,
            url: Some("http://127.0.0.1:9/hook".into()),
            created_by: "province.admin".into(),
            created_at: at,
            deleted_at: Some(at),
        };
        let sub = serde_json::to_value(&sub).expect("subscription");
        assert_eq!(keys(&sub), properties(schema(&doc, "SubscriptionView")));
        let delivery = Delivery {
            id: 2,
            subscription_id: 1,
            client: "VN/GOV/UBND-HN/MOTCUA".into(),
            mode: DeliveryMode::Pull,
            url: None,
            event: PubEvent {
                id: 3,
                event_id: "e1".into(),
                event_type: "dossier.accepted".into(),
                source_key: "k".into(),
                payload: json!({}),
                published_at: at,
            },
            state: DeliveryState::Pending,
            attempts: 0,
            next_attempt_at: at,
            last_status: Some(200),
            last_error: Some("timeout".into()),
            updated_at: at,
            done_at: Some(at),
        };
        let delivery = serde_json::to_value(&delivery).expect("delivery");
        assert_eq!(keys(&delivery), properties(schema(&doc, "DeliveryView")));
        assert_eq!(
            keys(&delivery["event"]),
            properties(schema(&doc, "PubEventView"))
        );
        let modes: Vec<Value> = [DeliveryMode::Push, DeliveryMode::Pull]
            .iter()
            .map(|m| serde_json::to_value(m).expect("mode"))
            .collect();
        assert_eq!(schema(&doc, "DeliveryModeView")["enum"], json!(modes));
        let states: Vec<Value> = [
            DeliveryState::Pending,
            DeliveryState::Delivered,
            DeliveryState::Acked,
            DeliveryState::Failed,
        ]
        .iter()
        .map(|s| serde_json::to_value(s).expect("state"))
        .collect();
        assert_eq!(schema(&doc, "DeliveryStateView")["enum"], json!(states));
        let types = motcua_exchange::pubsub::EventTypes::builtin();
        let first = types.list().next().expect("an event type");
        assert_eq!(
            keys(&serde_json::to_value(first).expect("event type")),
            properties(schema(&doc, "EventTypeView"))
        );
    }
}

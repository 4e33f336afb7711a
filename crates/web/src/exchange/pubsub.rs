//! Publish and subscribe over the exchange, as JSON endpoints.
//!
//! - Province administrators (portal API, bearer token): the event types,
//!   subscriptions of client subsystems (creating one is what allows the
//!   subsystem to receive the type; each change is audited) and the state
//!   of deliveries, under `/api/v1/exchange/pubsub/…`.
//! - Client systems pull on the **gateway's listener** ([`pull_router`]),
//!   authenticated exactly as on `/r1/` (API key or TLS client certificate,
//!   and `X-Road-Client`): `GET /pubsub/v1/events` and
//!   `POST /pubsub/v1/ack`; every request is a record of the message log.
//!
//! See `docs/exchange.md`, "Publish and subscribe".

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use motcua_domain::dossier::Role;
use motcua_exchange::gateway::{X_ROAD_ID, authenticate_client, gateway_error};
use motcua_exchange::pubsub::{EventTypes, check_push_url, client_record, envelope};
use motcua_exchange::{ClientId, ErrorType, Gateway};
use motcua_store::{
    DeliveryMode, DeliveryQuery, DeliveryState, NewSubscription, Store, Subscription,
};
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

use crate::exchange::api::ExchangeHandle;
use crate::kernel::auth::ProvinceAdminApi;
use crate::kernel::body::JsonBody;
use crate::kernel::error::ApiError;
use crate::state::AppState;
use motcua_commands::dossiers::audit_entry;

type ApiResult<T> = Result<T, ApiError>;

/// Most events one pull returns.
pub const PULL_MAX: u32 = 100;

/// The exchange registry, or 503 when this installation has none.
fn registry(st: &AppState) -> ApiResult<Arc<ExchangeHandle>> {
    st.exchange
        .clone()
        .ok_or_else(|| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "exchange-disabled"))
}

// The answers' shapes, for the OpenAPI document: the handlers answer the
// store's and the exchange's own types (serialized as below; a test holds
// the two together).

/// An event type.
#[allow(dead_code)]
#[derive(ToSchema)]
pub struct EventTypeView {
    /// E.g. `dossier.accepted`.
    pub name: String,
    pub description: String,
    /// The JSON Schema of the payload.
    #[schema(value_type = Object)]
    pub schema: serde_json::Value,
}

/// How a subscriber receives events.
#[allow(dead_code)]
#[derive(serde::Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryModeView {
    Push,
    Pull,
}

/// Where a delivery is.
#[allow(dead_code)]
#[derive(serde::Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStateView {
    Pending,
    Delivered,
    Acked,
    Failed,
}

/// A subscription of a client subsystem to an event type.
#[allow(dead_code)]
#[derive(ToSchema)]
pub struct SubscriptionView {
    pub id: i64,
    /// The subscriber, `INSTANCE/CLASS/MEMBER/SUBSYSTEM`.
    pub client: String,
    pub event_type: String,
    pub mode: DeliveryModeView,
    /// Push only: where each event is POSTed.
    pub url: Option<String>,
    /// The province administrator who created it.
    pub created_by: String,
    pub created_at: chrono::DateTime<Utc>,
    /// When it was ended (`null`: live).
    pub deleted_at: Option<chrono::DateTime<Utc>>,
}

/// A published event.
#[allow(dead_code)]
#[derive(ToSchema)]
pub struct PubEventView {
    pub event_id: String,
    pub event_type: String,
    pub source_key: String,
    /// The event's data, valid against its type's schema.
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    pub published_at: chrono::DateTime<Utc>,
}

/// One event for one subscription.
#[allow(dead_code)]
#[derive(ToSchema)]
pub struct DeliveryView {
    pub id: i64,
    pub subscription_id: i64,
    pub client: String,
    pub mode: DeliveryModeView,
    pub url: Option<String>,
    pub event: PubEventView,
    pub state: DeliveryStateView,
    /// Push attempts made so far.
    pub attempts: u32,
    pub next_attempt_at: chrono::DateTime<Utc>,
    /// The HTTP status of the last push attempt.
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub updated_at: chrono::DateTime<Utc>,
    /// Delivered, acknowledged or failed at.
    pub done_at: Option<chrono::DateTime<Utc>>,
}

/// `GET /api/v1/exchange/pubsub/event-types`: the built-in event types
/// with the JSON Schemas of their payloads.
#[utoipa::path(get, path = "/api/v1/exchange/pubsub/event-types", tag = "exchange", security(("bearer" = [])),
    responses((status = 200, body = Vec<EventTypeView>), (status = 401), (status = 403, description = "Province administrators only")))]
pub async fn event_types(
    State(st): State<AppState>,
    ProvinceAdminApi(user): ProvinceAdminApi,
) -> ApiResult<Response> {
    let _ = (&user, registry(&st)?);
    let types = EventTypes::builtin();
    let list: Vec<_> = types.list().collect();
    Ok(Json(list).into_response())
}

/// `GET /api/v1/exchange/pubsub/subscriptions`: every subscription, ended
/// ones included (`deleted_at`).
#[utoipa::path(get, path = "/api/v1/exchange/pubsub/subscriptions", tag = "exchange", security(("bearer" = [])),
    responses((status = 200, body = Vec<SubscriptionView>), (status = 401), (status = 403, description = "Province administrators only")))]
pub async fn list_subscriptions(
    State(st): State<AppState>,
    ProvinceAdminApi(user): ProvinceAdminApi,
) -> ApiResult<Json<Vec<Subscription>>> {
    let _ = (&user, registry(&st)?);
    Ok(Json(st.store.subscriptions().await?))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct SubscriptionInput {
    /// The subscriber: a client subsystem of the registry.
    #[schema(value_type = String, example = "VN/GOV/UBND-HN/MOTCUA")]
    pub client: ClientId,
    /// An event type, e.g. `dossier.accepted`.
    pub event_type: String,
    /// `push` or `pull`.
    pub mode: String,
    /// Push only: `http://…` where each event is POSTed.
    pub url: Option<String>,
}

/// `POST /api/v1/exchange/pubsub/subscriptions`: allows a client subsystem
/// to receive an event type, by push or pull. Only events published after
/// this are delivered.
#[utoipa::path(post, path = "/api/v1/exchange/pubsub/subscriptions", tag = "exchange", security(("bearer" = [])), request_body = SubscriptionInput,
    responses((status = 201, body = SubscriptionView), (status = 401), (status = 403, description = "Province administrators only"),
        (status = 422, description = "Invalid JSON, an unknown event type or client subsystem, or a mode and url that do not fit")))]
pub async fn create_subscription(
    State(st): State<AppState>,
    ProvinceAdminApi(user): ProvinceAdminApi,
    JsonBody(input): JsonBody<SubscriptionInput>,
) -> ApiResult<(StatusCode, Json<Subscription>)> {
    let ex = registry(&st)?;
    if EventTypes::builtin().get(&input.event_type).is_none() {
        return Err(ApiError::field("event_type", "unknown-event-type")
            .detail(format!("no event type {}", input.event_type)));
    }
    let registry = ex.load(st.store.as_ref()).await?;
    if !registry.subsystems.iter().any(|s| s.id == input.client) {
        return Err(
            ApiError::field("client", "unknown-subsystem").detail(format!(
                "{} is not a subsystem of the exchange registry",
                input.client
            )),
        );
    }
    let mode = DeliveryMode::parse(&input.mode).ok_or_else(|| {
        ApiError::field("mode", "invalid-mode").detail("mode must be push or pull")
    })?;
    let url = match (mode, input.url) {
        (DeliveryMode::Push, Some(url)) => {
            check_push_url(&url).map_err(|e| ApiError::field("url", "invalid-url").detail(e))?;
            Some(url)
        }
        (DeliveryMode::Push, None) => {
            return Err(
                ApiError::field("url", "required").detail("a push subscription needs a url")
            );
        }
        (DeliveryMode::Pull, Some(_)) => {
            return Err(
                ApiError::field("url", "not-allowed").detail("a pull subscription has no url")
            );
        }
        (DeliveryMode::Pull, None) => None,
    };
    let new = NewSubscription {
        client: input.client.to_string(),
        event_type: input.event_type,
        mode,
        url,
        created_by: user.username.clone(),
        created_at: st.clock.now(),
    };
    let payload = json!({
        "client": new.client, "event_type": new.event_type,
        "mode": mode.as_str(), "url": new.url,
    });
    let mut entry = audit_entry(
        &st,
        &user,
        Role::ProvinceAdmin,
        "exchange.pubsub.subscribe",
        &payload,
    );
    entry.note = Some(format!(
        "subscribed {} to {} ({})",
        new.client,
        new.event_type,
        mode.as_str()
    ));
    let sub = st.store.create_subscription(&new, entry).await?;
    Ok((StatusCode::CREATED, Json(sub)))
}

/// `DELETE /api/v1/exchange/pubsub/subscriptions/{id}`: ends a
/// subscription (kept with its deliveries; pending ones are not delivered).
#[utoipa::path(delete, path = "/api/v1/exchange/pubsub/subscriptions/{id}", tag = "exchange", security(("bearer" = [])),
    params(("id" = i64, Path, description = "The subscription's id")),
    responses((status = 200, description = "The subscription, ended", body = SubscriptionView), (status = 400, description = "The id is not an integer"), (status = 401),
        (status = 403, description = "Province administrators only"), (status = 404, description = "No live subscription with this id")))]
pub async fn delete_subscription(
    State(st): State<AppState>,
    ProvinceAdminApi(user): ProvinceAdminApi,
    Path(id): Path<i64>,
) -> ApiResult<Json<Subscription>> {
    let mut entry = audit_entry(
        &st,
        &user,
        Role::ProvinceAdmin,
        "exchange.pubsub.unsubscribe",
        &json!({ "subscription": id }),
    );
    entry.note = Some(format!("ended subscription {id}"));
    let sub = st
        .store
        .delete_subscription(id, st.clock.now(), entry)
        .await?;
    Ok(Json(sub))
}

#[derive(Debug, Deserialize)]
pub struct DeliveriesQuery {
    pub subscription: Option<i64>,
    /// `pending`, `delivered`, `acked` or `failed`.
    pub state: Option<String>,
    pub limit: Option<u32>,
}

/// `GET /api/v1/exchange/pubsub/deliveries?subscription=&state=&limit=`:
/// deliveries, newest first, with attempts, last status and error.
#[utoipa::path(get, path = "/api/v1/exchange/pubsub/deliveries", tag = "exchange", security(("bearer" = [])),
    params(("subscription" = Option<i64>, Query), ("state" = Option<String>, Query, description = "pending, delivered, acked or failed"), ("limit" = Option<u32>, Query, description = "100 by default, 1000 at most")),
    responses((status = 200, body = Vec<DeliveryView>), (status = 400, description = "The query string could not be read (e.g. a limit that is not a number)"), (status = 401),
        (status = 403, description = "Province administrators only"), (status = 422, description = "Unknown state")))]
pub async fn deliveries(
    State(st): State<AppState>,
    ProvinceAdminApi(user): ProvinceAdminApi,
    Query(q): Query<DeliveriesQuery>,
) -> ApiResult<Response> {
    let _ = (&user, registry(&st)?);
    let state = match q.state.as_deref() {
        None | Some("") => None,
        Some(s) => Some(DeliveryState::parse(s).ok_or_else(|| {
            ApiError::field("state", "invalid-state")
                .detail("state is pending, delivered, acked or failed")
        })?),
    };
    let list = st
        .store
        .deliveries(&DeliveryQuery {
            subscription: q.subscription,
            state,
            limit: q.limit.unwrap_or(100).clamp(1, 1000),
        })
        .await?;
    Ok(Json(list).into_response())
}

// ------------------------------------------------------------ pull (gateway)

#[derive(Clone)]
struct PullState {
    store: Arc<dyn Store>,
    gateway: Gateway,
}

/// The pull endpoints, for the gateway's listener: `GET /pubsub/v1/events`
/// and `POST /pubsub/v1/ack`.
pub fn pull_router(store: Arc<dyn Store>, gateway: Gateway) -> Router {
    Router::new()
        .route("/pubsub/v1/events", get(pull))
        .route("/pubsub/v1/ack", post(ack))
        .with_state(PullState { store, gateway })
}

/// Largest acknowledgement body, bytes.
const ACK_BODY_LIMIT: usize = 256 << 10;

/// One pull-side exchange: authenticate, answer, log. The answer is sent
/// only once its record is durable (as on `/r1/`).
async fn exchange<F, Fut>(ps: PullState, req: Request, service: &str, run: F) -> Response
where
    F: FnOnce(ClientId, Bytes, String) -> Fut,
    Fut: std::future::Future<
            Output = Result<(serde_json::Value, Option<String>), (ErrorType, String)>,
        >,
{
    let start = Utc::now();
    let (parts, body) = req.into_parts();
    let x_road_id = parts
        .headers
        .get(X_ROAD_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 255 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(|| ps.gateway.next_id());
    let target = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let registry = ps.gateway.registry();
    let service = format!("{}/pubsub/{service}", registry.instance());
    let auth = authenticate_client(&registry, &parts);
    drop(registry);
    let client_text = auth.as_ref().ok().map(|c| c.to_string()).or_else(|| {
        parts
            .headers
            .get("x-road-client")
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(1024).collect())
    });
    let request = axum::body::to_bytes(Body::new(body), ACK_BODY_LIMIT).await;
    let mut request_bytes = Bytes::new();
    let outcome = match (auth, request) {
        (Err(e), _) => Err(e),
        (Ok(_), Err(_)) => Err((
            ErrorType::RequestTooLarge,
            format!("the request body is larger than {ACK_BODY_LIMIT} bytes"),
        )),
        (Ok(client), Ok(bytes)) => {
            request_bytes = bytes.clone();
            run(client, bytes, x_road_id.clone()).await
        }
    };
    let (status, error, issue, response) = match &outcome {
        Ok((value, issue)) => (
            StatusCode::OK,
            None,
            issue.clone(),
            Bytes::from(value.to_string()),
        ),
        Err((kind, message)) => (
            kind.status(),
            Some(*kind),
            None,
            Bytes::from(
                json!({"type": kind.code(), "message": message, "detail": x_road_id}).to_string(),
            ),
        ),
    };
    let record = client_record(
        &x_road_id,
        client_text.as_deref(),
        &service,
        parts.method.as_str(),
        &target,
        status.as_u16(),
        error.map(|e| e.code()),
        issue,
        &request_bytes,
        &response,
        start,
    );
    if let Err(e) = ps.gateway.log().append(&record).await {
        return gateway_error(
            ErrorType::MessageLogFailed,
            &format!("the exchange could not be logged: {e}"),
            &x_road_id,
        );
    }
    match outcome {
        Err((kind, message)) => gateway_error(kind, &message, &x_road_id),
        Ok(_) => {
            let mut r = Response::new(Body::from(response));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json; charset=utf-8"),
            );
            if let Ok(v) = HeaderValue::from_str(&x_road_id) {
                r.headers_mut().insert(X_ROAD_ID, v);
            }
            r
        }
    }
}

fn internal(e: impl std::fmt::Display) -> (ErrorType, String) {
    (ErrorType::InternalError, e.to_string())
}

/// Joins event ids for the log record's `issue`, bounded.
fn ids_issue(prefix: &str, ids: &[String]) -> Option<String> {
    if ids.is_empty() {
        return None;
    }
    let mut s = format!("{prefix} {}", ids.join(","));
    if s.len() > 1000 {
        let mut cut = 1000;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    Some(s)
}

#[derive(Debug, Deserialize)]
struct PullQuery {
    limit: Option<u32>,
}

/// `GET /pubsub/v1/events?limit=N` (gateway listener): the caller's pending
/// events (all its pull subscriptions), oldest first, as CloudEvents with
/// the subscription's id; they come again until acknowledged.
async fn pull(State(ps): State<PullState>, Query(q): Query<PullQuery>, req: Request) -> Response {
    let limit = q.limit.unwrap_or(PULL_MAX).clamp(1, PULL_MAX);
    let store = ps.store.clone();
    exchange(ps, req, "pull", |client, _, _| async move {
        let instance = client.instance.clone();
        let list = store
            .pull_deliveries(&client.to_string(), limit)
            .await
            .map_err(internal)?;
        let mut ids = Vec::with_capacity(list.len());
        let events: Vec<serde_json::Value> = list
            .iter()
            .map(|d| {
                ids.push(d.event.event_id.clone());
                let mut e = envelope(
                    &d.event.event_id,
                    &d.event.event_type,
                    &format!("/{instance}/motcua"),
                    d.event.published_at,
                    &d.event.payload,
                );
                if let Some(o) = e.as_object_mut() {
                    o.insert("subscription".into(), json!(d.subscription_id));
                }
                e
            })
            .collect();
        Ok((json!({ "events": events }), ids_issue("events", &ids)))
    })
    .await
}

#[derive(Debug, Deserialize)]
struct AckInput {
    ids: Vec<String>,
}

/// `POST /pubsub/v1/ack` with `{"ids": [event ids]}` (gateway listener):
/// acknowledges pulled events; answers the ids acknowledged by this call.
async fn ack(State(ps): State<PullState>, req: Request) -> Response {
    let store = ps.store.clone();
    exchange(ps, req, "ack", |client, body, _| async move {
        let input: AckInput = serde_json::from_slice(&body).map_err(|e| {
            (
                ErrorType::BadRequest,
                format!("expected {{\"ids\": [event ids]}}: {e}"),
            )
        })?;
        if input.ids.len() > 1000 {
            return Err((
                ErrorType::BadRequest,
                "at most 1000 ids per acknowledgement".to_string(),
            ));
        }
        let done = store
            .ack_deliveries(&client.to_string(), &input.ids, Utc::now())
            .await
            .map_err(internal)?;
        let issue = ids_issue("acknowledged", &done);
        Ok((json!({ "acknowledged": done }), issue))
    })
    .await
}

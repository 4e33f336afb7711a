//! The data exchange registry in the admin JSON API.
//!
//! The registry document (members, subsystems, services, access rights, API
//! keys, client certificates; see `docs/exchange.md`) is kept in the main
//! store under [`REGISTRY_META_KEY`], so that every node of an installation
//! shares it and every change lands in the audit chain together with the new
//! document. Province administrators read and change it here; each change
//! names its actor in the audit record and is put in force on this node at
//! once (other nodes reload it periodically).

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use motcua_domain::audit::AuditEntry;
use motcua_domain::dossier::Role;
use motcua_exchange::registry::{Endpoint, Service};
use motcua_exchange::{Change, ClientId, EditError, Gateway, Registry, ServiceId};
use motcua_store::{Store, User};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::kernel::auth::ProvinceAdminApi;
use crate::kernel::body::JsonBody;
use crate::kernel::error::{ApiError, FieldProblem};
use crate::state::AppState;
use motcua_commands::dossiers::audit_entry;

/// The key of the registry document in the store's settings.
pub const REGISTRY_META_KEY: &str = "exchange.registry";

type ApiResult<T> = Result<T, ApiError>;

/// How often a change is tried when other nodes keep changing the stored
/// registry between our read and our write.
const CHANGE_ATTEMPTS: u32 = 5;

/// When the registry in force on this node was last replaced and checked
/// against the stored one (for the monitoring page).
#[derive(Debug, Clone, Default)]
pub struct ReloadStatus {
    /// The registry in force was put in force (start, a change made here,
    /// or a reload that found a change made on another node).
    pub in_force_since: Option<DateTime<Utc>>,
    /// The last periodic comparison with the stored registry.
    pub last_check: Option<DateTime<Utc>>,
    /// The error of the last reload, when it failed.
    pub last_error: Option<String>,
}

/// The exchange as the web layer sees it: the registry's instance and, on a
/// node that runs the gateway, the gateway (whose registry is replaced after
/// each change).
pub struct ExchangeHandle {
    instance: String,
    gateway: Option<Gateway>,
    /// Serialises the read-modify-write of the stored document on this node
    /// (across nodes the compare-and-set of the store does).
    edits: tokio::sync::Mutex<()>,
    status: std::sync::Mutex<ReloadStatus>,
}

impl std::fmt::Debug for ExchangeHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExchangeHandle")
            .field("instance", &self.instance)
            .field("gateway", &self.gateway.is_some())
            .finish_non_exhaustive()
    }
}

impl ExchangeHandle {
    pub fn new(instance: &str, gateway: Option<Gateway>) -> Self {
        let status = ReloadStatus {
            in_force_since: gateway.as_ref().map(|_| Utc::now()),
            ..ReloadStatus::default()
        };
        Self {
            instance: instance.to_string(),
            gateway,
            edits: tokio::sync::Mutex::new(()),
            status: std::sync::Mutex::new(status),
        }
    }

    pub fn gateway(&self) -> Option<&Gateway> {
        self.gateway.as_ref()
    }

    /// When the registry in force was last replaced and checked.
    pub fn reload_status(&self) -> ReloadStatus {
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn note_status(&self, f: impl FnOnce(&mut ReloadStatus)) {
        f(&mut self.status.lock().unwrap_or_else(|e| e.into_inner()));
    }

    /// The registry of a stored document (`None`: an empty registry of the
    /// configured instance).
    fn parse(&self, stored: Option<&str>) -> ApiResult<Registry> {
        match stored {
            Some(json) => serde_json::from_str(json)
                .map_err(|e| ApiError::internal(format!("stored exchange registry: {e}"))),
            None => Ok(Registry::new(&self.instance)),
        }
    }

    /// The stored registry, or an empty one of the configured instance when
    /// none is stored yet.
    pub async fn load(&self, store: &dyn Store) -> ApiResult<Registry> {
        self.parse(store.meta(REGISTRY_META_KEY).await?.as_deref())
    }

    /// Puts the stored registry in force when it differs from the one in
    /// force (changes made on other nodes). Returns whether it changed; on
    /// error the registry in force stays.
    pub async fn reload(&self, store: &dyn Store) -> ApiResult<bool> {
        let Some(gw) = &self.gateway else {
            return Ok(false);
        };
        let result: ApiResult<bool> = async {
            let stored = self.load(store).await?;
            if gw.registry().source() == &stored {
                return Ok(false);
            }
            gw.set_registry(stored).map_err(ApiError::internal)?;
            Ok(true)
        }
        .await;
        let now = Utc::now();
        self.note_status(|s| {
            s.last_check = Some(now);
            match &result {
                Ok(changed) => {
                    s.last_error = None;
                    if *changed {
                        s.in_force_since = Some(now);
                    }
                }
                Err(e) => {
                    s.last_error = Some(e.detail.clone().unwrap_or_else(|| e.kind.to_string()))
                }
            }
        });
        result
    }

    /// Applies one change to the stored registry: `edit` changes the
    /// document (validated by the registry's own operations) and describes
    /// the change; the new document is written together with the audit
    /// record `audit` makes of the change, then put in force on this node.
    ///
    /// The write is a compare-and-set against the document `edit` saw: when
    /// another node changed the registry in between, the fresh document is
    /// read and `edit` applied again (a few times, then 409
    /// `exchange-conflict`), so no change is lost and each audit record
    /// describes the document it was written with.
    pub async fn change<T>(
        &self,
        store: &dyn Store,
        mut edit: impl FnMut(&mut Registry) -> Result<(Change, T), EditError>,
        audit: impl Fn(&Change) -> AuditEntry,
    ) -> ApiResult<(Change, T)> {
        let _guard = self.edits.lock().await;
        for attempt in 1..=CHANGE_ATTEMPTS {
            let stored = store.meta(REGISTRY_META_KEY).await?;
            let mut registry = self.parse(stored.as_deref())?;
            let (change, out) = edit(&mut registry).map_err(edit_error)?;
            let json = serde_json::to_string(&registry).map_err(ApiError::internal)?;
            if store
                .set_meta_if(REGISTRY_META_KEY, stored.as_deref(), &json, audit(&change))
                .await?
            {
                if let Some(gw) = &self.gateway {
                    gw.set_registry(registry).map_err(ApiError::internal)?;
                    let now = Utc::now();
                    self.note_status(|s| s.in_force_since = Some(now));
                }
                return Ok((change, out));
            }
            tracing::info!(
                attempt,
                action = change.action,
                "the exchange registry changed on another node meanwhile; applying the change again"
            );
            if attempt < CHANGE_ATTEMPTS {
                tokio::time::sleep(retry_pause(attempt)).await;
            }
        }
        Err(ApiError::new(StatusCode::CONFLICT, "exchange-conflict").detail(format!(
            "the exchange registry was changed by others {CHANGE_ATTEMPTS} times while this change was being written; nothing was changed, try again"
        )))
    }
}

/// A short, growing and slightly random pause before another attempt, so
/// that nodes that lost together do not collide again.
fn retry_pause(attempt: u32) -> Duration {
    let mut jitter = [0u8; 1];
    let jitter = getrandom::fill(&mut jitter)
        .map(|()| jitter[0])
        .unwrap_or(0);
    Duration::from_millis(u64::from(attempt) * 20 + u64::from(jitter) / 8)
}

/// The payload hashed into the audit record of a registry change.
pub fn change_payload(change: &Change) -> serde_json::Value {
    serde_json::json!({
        "action": change.action,
        "target": change.target,
        "summary": change.summary,
    })
}

fn edit_error(e: EditError) -> ApiError {
    match e {
        EditError::AlreadyExists(what) => ApiError::new(StatusCode::CONFLICT, "duplicate")
            .detail(format!("{what} already exists")),
        EditError::NotFound(what) => ApiError::not_found().detail(format!("{what} does not exist")),
        EditError::Invalid(invalid) => {
            let mut err = ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "exchange-invalid")
                .detail(invalid.to_string());
            err.fields = invalid
                .0
                .iter()
                .map(|p| {
                    let mut f = FieldProblem::new(&p.at, "exchange-registry");
                    f.params
                        .insert("message".into(), serde_json::Value::from(p.message.clone()));
                    f
                })
                .collect();
            err
        }
        EditError::Random(e) => ApiError::internal(e),
    }
}

/// The exchange registry, or 503 when this installation has none.
fn registry(st: &AppState) -> ApiResult<Arc<ExchangeHandle>> {
    st.exchange
        .clone()
        .ok_or_else(|| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "exchange-disabled"))
}

/// Applies an edit as the province administrator `user` (the JSON API and
/// the admin pages both come here): audited with the change's action, its
/// summary as the note.
pub(crate) async fn apply<T>(
    st: &AppState,
    user: &User,
    ex: &ExchangeHandle,
    edit: impl FnMut(&mut Registry) -> Result<(Change, T), EditError>,
) -> ApiResult<(ChangeView, T)> {
    let (change, out) = ex
        .change(st.store.as_ref(), edit, |c| {
            let mut e = audit_entry(st, user, Role::ProvinceAdmin, c.action, &change_payload(c));
            e.note = Some(c.summary.clone());
            e
        })
        .await?;
    Ok((ChangeView::of(&change), out))
}

pub(crate) fn unit(c: Change) -> (Change, ()) {
    (c, ())
}

/// A registry change as answered by the API (and written to the audit chain).
#[derive(Debug, Serialize, ToSchema)]
pub struct ChangeView {
    /// Stable action name, e.g. `exchange.access.grant`.
    pub action: String,
    pub target: String,
    pub summary: String,
}

impl ChangeView {
    pub(crate) fn of(c: &Change) -> Self {
        Self {
            action: c.action.to_string(),
            target: c.target.clone(),
            summary: c.summary.clone(),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct MemberInput {
    /// Member class, e.g. `GOV`.
    pub class: String,
    /// Member code, e.g. `BCA`.
    pub code: String,
    #[serde(default)]
    pub name: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct MemberRef {
    pub class: String,
    pub code: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct SubsystemInput {
    /// `INSTANCE/CLASS/MEMBER/SUBSYSTEM`.
    #[schema(value_type = String, example = "VN/GOV/UBND-HN/MOTCUA")]
    pub id: ClientId,
    #[serde(default)]
    pub name: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct SubsystemRef {
    #[schema(value_type = String)]
    pub id: ClientId,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct EndpointInput {
    /// An upper-case HTTP method or `*`.
    pub method: String,
    /// A path pattern: `/people/{id}`, `/a/*`, `/b/**`.
    pub path: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ServiceInput {
    /// `INSTANCE/CLASS/MEMBER/SUBSYSTEM/SERVICECODE[/VERSION]`.
    #[schema(value_type = String, example = "VN/GOV/BCA/POPULATION/citizens")]
    pub id: ServiceId,
    #[serde(default)]
    pub name: String,
    /// The provider's base URL, `http://host[:port][/prefix]`.
    pub upstream: String,
    /// OpenAPI description (JSON or YAML text) served by `getOpenAPI`.
    pub openapi: Option<String>,
    #[serde(default)]
    pub endpoints: Vec<EndpointInput>,
    /// Keep request and response bodies in the message log.
    #[serde(default)]
    pub capture_bodies: bool,
    pub capture_limit: Option<u64>,
    pub timeout_ms: Option<u64>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ServiceRef {
    #[schema(value_type = String)]
    pub id: ServiceId,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct AccessInput {
    #[schema(value_type = String)]
    pub client: ClientId,
    #[schema(value_type = String)]
    pub service: ServiceId,
    /// Empty: the whole service.
    #[serde(default)]
    pub endpoints: Vec<EndpointInput>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct AccessRef {
    #[schema(value_type = String)]
    pub client: ClientId,
    #[schema(value_type = String)]
    pub service: ServiceId,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ApiKeyInput {
    #[schema(value_type = String)]
    pub client: ClientId,
    #[serde(default)]
    pub label: String,
}

/// A new API key: the clear key is shown once and never stored.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyCreated {
    pub id: String,
    pub client: String,
    /// Send as `Authorization: X-Road-ApiKey token=<key>`.
    pub key: String,
    pub change: ChangeView,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ClientCertInput {
    #[schema(value_type = String)]
    pub client: ClientId,
    /// SHA-256 of the DER certificate (hex; colons and upper case accepted).
    pub fingerprint: String,
    #[serde(default)]
    pub label: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ClientCertRef {
    pub fingerprint: String,
}

fn endpoints(v: Vec<EndpointInput>) -> Vec<Endpoint> {
    v.into_iter()
        .map(|e| Endpoint::new(&e.method, &e.path))
        .collect()
}

impl ServiceInput {
    /// The registry entry this input describes.
    pub(crate) fn into_service(self) -> Service {
        Service {
            name: self.name,
            openapi: self.openapi,
            endpoints: endpoints(self.endpoints),
            capture_bodies: self.capture_bodies,
            capture_limit: self.capture_limit,
            timeout_ms: self.timeout_ms,
            ..Service::new(self.id, &self.upstream)
        }
    }
}

/// Creates an API key for `client`: the change and (public id, clear key).
pub(crate) fn new_api_key(
    r: &mut Registry,
    client: &ClientId,
    label: &str,
    now: DateTime<Utc>,
) -> Result<(Change, (String, String)), EditError> {
    let (c, key) = r.add_api_key(client, label, now)?;
    let id = r.api_keys.last().map(|k| k.id.clone()).unwrap_or_default();
    Ok((c, (id, key)))
}

/// `GET /api/v1/exchange/registry`
#[utoipa::path(get, path = "/api/v1/exchange/registry", tag = "exchange", security(("bearer" = [])),
    responses((status = 200, description = "The registry document (see docs/exchange.md); API keys as SHA-256 only", body = Object),
        (status = 401), (status = 403, description = "Province administrators only")))]
pub async fn get_registry(
    State(st): State<AppState>,
    ProvinceAdminApi(user): ProvinceAdminApi,
) -> ApiResult<Response> {
    let _ = &user;
    let ex = registry(&st)?;
    Ok(Json(ex.load(st.store.as_ref()).await?).into_response())
}

/// `GET /api/v1/exchange/metrics`: per-service and per-client counts,
/// errors and latency percentiles of this node's gateway.
#[utoipa::path(get, path = "/api/v1/exchange/metrics", tag = "exchange", security(("bearer" = [])),
    responses((status = 200, body = Object), (status = 401), (status = 403, description = "Province administrators only"), (status = 503, description = "The gateway does not run on this node")))]
pub async fn get_metrics(
    State(st): State<AppState>,
    ProvinceAdminApi(user): ProvinceAdminApi,
) -> ApiResult<Response> {
    let _ = &user;
    let ex = registry(&st)?;
    let gw = ex
        .gateway()
        .ok_or_else(|| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "exchange-disabled"))?;
    Ok(Json(gw.metrics().snapshot()).into_response())
}

/// `POST /api/v1/exchange/members`
#[utoipa::path(post, path = "/api/v1/exchange/members", tag = "exchange", security(("bearer" = [])), request_body = MemberInput,
    responses((status = 200, body = ChangeView), (status = 401), (status = 403, description = "Province administrators only"), (status = 409, description = "Taken, or the registry kept changing on other nodes (exchange-conflict)"), (status = 422, description = "Invalid JSON, or the change would make the registry invalid, e.g. name what it does not hold (`errors` says where)")))]
pub async fn add_member(
    State(st): State<AppState>,
    ProvinceAdminApi(user): ProvinceAdminApi,
    JsonBody(m): JsonBody<MemberInput>,
) -> ApiResult<Json<ChangeView>> {
    let ex = registry(&st)?;
    let (c, ()) = apply(&st, &user, &ex, |r| {
        r.add_member(&m.class, &m.code, &m.name).map(unit)
    })
    .await?;
    Ok(Json(c))
}

/// `POST /api/v1/exchange/members/remove`: with its subsystems, their
/// services and every right, key and certificate involving them.
#[utoipa::path(post, path = "/api/v1/exchange/members/remove", tag = "exchange", security(("bearer" = [])), request_body = MemberRef,
    responses((status = 200, body = ChangeView), (status = 401), (status = 403, description = "Province administrators only"), (status = 404, description = "No such member"), (status = 409, description = "The registry kept changing on other nodes (exchange-conflict)"), (status = 422, description = "Invalid JSON, or the change would make the registry invalid, e.g. name what it does not hold (`errors` says where)")))]
pub async fn remove_member(
    State(st): State<AppState>,
    ProvinceAdminApi(user): ProvinceAdminApi,
    JsonBody(m): JsonBody<MemberRef>,
) -> ApiResult<Json<ChangeView>> {
    let ex = registry(&st)?;
    let (c, ()) = apply(&st, &user, &ex, |r| {
        r.remove_member(&m.class, &m.code).map(unit)
    })
    .await?;
    Ok(Json(c))
}

/// `POST /api/v1/exchange/subsystems`
#[utoipa::path(post, path = "/api/v1/exchange/subsystems", tag = "exchange", security(("bearer" = [])), request_body = SubsystemInput,
    responses((status = 200, body = ChangeView), (status = 401), (status = 403, description = "Province administrators only"), (status = 409, description = "Taken, or the registry kept changing on other nodes (exchange-conflict)"), (status = 422, description = "Invalid JSON, or the change would make the registry invalid, e.g. name what it does not hold (`errors` says where)")))]
pub async fn add_subsystem(
    State(st): State<AppState>,
    ProvinceAdminApi(user): ProvinceAdminApi,
    JsonBody(s): JsonBody<SubsystemInput>,
) -> ApiResult<Json<ChangeView>> {
    let ex = registry(&st)?;
    let (c, ()) = apply(&st, &user, &ex, |r| {
        r.add_subsystem(&s.id, &s.name).map(unit)
    })
    .await?;
    Ok(Json(c))
}

/// `POST /api/v1/exchange/subsystems/remove`
#[utoipa::path(post, path = "/api/v1/exchange/subsystems/remove", tag = "exchange", security(("bearer" = [])), request_body = SubsystemRef,
    responses((status = 200, body = ChangeView), (status = 401), (status = 403, description = "Province administrators only"), (status = 404, description = "No such subsystem"), (status = 409, description = "The registry kept changing on other nodes (exchange-conflict)"), (status = 422, description = "Invalid JSON, or the change would make the registry invalid, e.g. name what it does not hold (`errors` says where)")))]
pub async fn remove_subsystem(
    State(st): State<AppState>,
    ProvinceAdminApi(user): ProvinceAdminApi,
    JsonBody(s): JsonBody<SubsystemRef>,
) -> ApiResult<Json<ChangeView>> {
    let ex = registry(&st)?;
    let (c, ()) = apply(&st, &user, &ex, |r| r.remove_subsystem(&s.id).map(unit)).await?;
    Ok(Json(c))
}

/// `POST /api/v1/exchange/services`: adds a service or replaces the one
/// with the same id.
#[utoipa::path(post, path = "/api/v1/exchange/services", tag = "exchange", security(("bearer" = [])), request_body = ServiceInput,
    responses((status = 200, body = ChangeView), (status = 401), (status = 403, description = "Province administrators only"), (status = 409, description = "The registry kept changing on other nodes (exchange-conflict)"), (status = 422, description = "Invalid JSON, or the change would make the registry invalid, e.g. name what it does not hold (`errors` says where)")))]
pub async fn put_service(
    State(st): State<AppState>,
    ProvinceAdminApi(user): ProvinceAdminApi,
    JsonBody(s): JsonBody<ServiceInput>,
) -> ApiResult<Json<ChangeView>> {
    let ex = registry(&st)?;
    let service = s.into_service();
    let (c, ()) = apply(&st, &user, &ex, |r| {
        r.put_service(service.clone()).map(unit)
    })
    .await?;
    Ok(Json(c))
}

/// `POST /api/v1/exchange/services/remove`: with the access rights to it.
#[utoipa::path(post, path = "/api/v1/exchange/services/remove", tag = "exchange", security(("bearer" = [])), request_body = ServiceRef,
    responses((status = 200, body = ChangeView), (status = 401), (status = 403, description = "Province administrators only"), (status = 404, description = "No such service"), (status = 409, description = "The registry kept changing on other nodes (exchange-conflict)"), (status = 422, description = "Invalid JSON, or the change would make the registry invalid, e.g. name what it does not hold (`errors` says where)")))]
pub async fn remove_service(
    State(st): State<AppState>,
    ProvinceAdminApi(user): ProvinceAdminApi,
    JsonBody(s): JsonBody<ServiceRef>,
) -> ApiResult<Json<ChangeView>> {
    let ex = registry(&st)?;
    let (c, ()) = apply(&st, &user, &ex, |r| r.remove_service(&s.id).map(unit)).await?;
    Ok(Json(c))
}

/// `POST /api/v1/exchange/access/grant`: replaces an existing right of the
/// same client and service.
#[utoipa::path(post, path = "/api/v1/exchange/access/grant", tag = "exchange", security(("bearer" = [])), request_body = AccessInput,
    responses((status = 200, body = ChangeView), (status = 401), (status = 403, description = "Province administrators only"), (status = 409, description = "The registry kept changing on other nodes (exchange-conflict)"), (status = 422, description = "Invalid JSON, or the change would make the registry invalid, e.g. name what it does not hold (`errors` says where)")))]
pub async fn grant(
    State(st): State<AppState>,
    ProvinceAdminApi(user): ProvinceAdminApi,
    JsonBody(a): JsonBody<AccessInput>,
) -> ApiResult<Json<ChangeView>> {
    let ex = registry(&st)?;
    let eps = endpoints(a.endpoints);
    let (c, ()) = apply(&st, &user, &ex, |r| {
        r.grant(&a.client, &a.service, eps.clone()).map(unit)
    })
    .await?;
    Ok(Json(c))
}

/// `POST /api/v1/exchange/access/revoke`
#[utoipa::path(post, path = "/api/v1/exchange/access/revoke", tag = "exchange", security(("bearer" = [])), request_body = AccessRef,
    responses((status = 200, body = ChangeView), (status = 401), (status = 403, description = "Province administrators only"), (status = 404, description = "No such right"), (status = 409, description = "The registry kept changing on other nodes (exchange-conflict)"), (status = 422, description = "Invalid JSON, or the change would make the registry invalid, e.g. name what it does not hold (`errors` says where)")))]
pub async fn revoke(
    State(st): State<AppState>,
    ProvinceAdminApi(user): ProvinceAdminApi,
    JsonBody(a): JsonBody<AccessRef>,
) -> ApiResult<Json<ChangeView>> {
    let ex = registry(&st)?;
    let (c, ()) = apply(&st, &user, &ex, |r| {
        r.revoke(&a.client, &a.service).map(unit)
    })
    .await?;
    Ok(Json(c))
}

/// `POST /api/v1/exchange/api-keys`: creates a key for a client subsystem;
/// the clear key is in this answer only.
#[utoipa::path(post, path = "/api/v1/exchange/api-keys", tag = "exchange", security(("bearer" = [])), request_body = ApiKeyInput,
    responses((status = 201, body = ApiKeyCreated), (status = 401), (status = 403, description = "Province administrators only"), (status = 409, description = "The registry kept changing on other nodes (exchange-conflict)"), (status = 422, description = "Invalid JSON, or the change would make the registry invalid, e.g. name what it does not hold (`errors` says where)")))]
pub async fn create_api_key(
    State(st): State<AppState>,
    ProvinceAdminApi(user): ProvinceAdminApi,
    JsonBody(k): JsonBody<ApiKeyInput>,
) -> ApiResult<(StatusCode, Json<ApiKeyCreated>)> {
    let ex = registry(&st)?;
    let now = st.clock.now();
    let (change, (id, key)) = apply(&st, &user, &ex, |r| {
        new_api_key(r, &k.client, &k.label, now)
    })
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(ApiKeyCreated {
            id,
            client: k.client.to_string(),
            key,
            change,
        }),
    ))
}

/// `POST /api/v1/exchange/api-keys/{id}/revoke`: disables the key (kept for
/// the record).
#[utoipa::path(post, path = "/api/v1/exchange/api-keys/{id}/revoke", tag = "exchange", security(("bearer" = [])),
    params(("id" = String, Path, description = "The key's public id")),
    responses((status = 200, body = ChangeView), (status = 400), (status = 401), (status = 403, description = "Province administrators only"), (status = 404, description = "No such key"), (status = 409, description = "The registry kept changing on other nodes (exchange-conflict)")))]
pub async fn revoke_api_key(
    State(st): State<AppState>,
    ProvinceAdminApi(user): ProvinceAdminApi,
    Path(id): Path<String>,
) -> ApiResult<Json<ChangeView>> {
    let ex = registry(&st)?;
    let (c, ()) = apply(&st, &user, &ex, |r| r.revoke_api_key(&id).map(unit)).await?;
    Ok(Json(c))
}

/// `POST /api/v1/exchange/client-certs`: binds a TLS client certificate
/// (by fingerprint) to a client subsystem.
#[utoipa::path(post, path = "/api/v1/exchange/client-certs", tag = "exchange", security(("bearer" = [])), request_body = ClientCertInput,
    responses((status = 200, body = ChangeView), (status = 401), (status = 403, description = "Province administrators only"), (status = 409, description = "Taken, or the registry kept changing on other nodes (exchange-conflict)"), (status = 422, description = "Invalid JSON, or the change would make the registry invalid, e.g. name what it does not hold (`errors` says where)")))]
pub async fn add_client_cert(
    State(st): State<AppState>,
    ProvinceAdminApi(user): ProvinceAdminApi,
    JsonBody(c): JsonBody<ClientCertInput>,
) -> ApiResult<Json<ChangeView>> {
    let ex = registry(&st)?;
    let (ch, ()) = apply(&st, &user, &ex, |r| {
        r.add_client_cert(&c.client, &c.fingerprint, &c.label)
            .map(unit)
    })
    .await?;
    Ok(Json(ch))
}

/// `POST /api/v1/exchange/client-certs/remove`
#[utoipa::path(post, path = "/api/v1/exchange/client-certs/remove", tag = "exchange", security(("bearer" = [])), request_body = ClientCertRef,
    responses((status = 200, body = ChangeView), (status = 401), (status = 403, description = "Province administrators only"), (status = 404, description = "No such certificate"), (status = 409, description = "The registry kept changing on other nodes (exchange-conflict)"), (status = 422, description = "Invalid JSON, or the change would make the registry invalid, e.g. name what it does not hold (`errors` says where)")))]
pub async fn remove_client_cert(
    State(st): State<AppState>,
    ProvinceAdminApi(user): ProvinceAdminApi,
    JsonBody(c): JsonBody<ClientCertRef>,
) -> ApiResult<Json<ChangeView>> {
    let ex = registry(&st)?;
    let (ch, ()) = apply(&st, &user, &ex, |r| {
        r.remove_client_cert(&c.fingerprint).map(unit)
    })
    .await?;
    Ok(Json(ch))
}

//! Administration pages of the data exchange (province administrators):
//! the registry — members, subsystems, services, access rights, API keys,
//! client certificates — with forms to change it, and the gateway's
//! monitoring page.
//!
//! Every change goes through [`crate::exchange::api::apply`], the same path
//! as the JSON API: the registry's own operations validate it, the new
//! document is written with its audit record (compare-and-set, so no change
//! made on another node is lost) and put in force on this node. On an error
//! nothing is changed and the form is shown again with the message next to
//! the field. Every POST checks the CSRF token; a successful one redirects
//! (POST-redirect-GET), except the creation of an API key, whose clear key
//! is shown on the answer itself, once.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use motcua_domain::dossier::Role;
use motcua_exchange::registry::{Endpoint, Service};
use motcua_exchange::{ClientId, ServiceId};
use motcua_store::User;

use crate::kernel::access::{CheckedMultipart, ExchangeAdminPage};
use serde::Deserialize;

use crate::exchange::api::{ExchangeHandle, new_api_key, unit};
use crate::kernel::body::FormData;
use crate::kernel::error::ApiError;
use crate::kernel::page::{Ctx, fmt_dt, fmt_opt, text_opt};
use crate::state::AppState;

use crate::kernel::page::PageResult;

/// The registry page.
pub const REGISTRY_PATH: &str = "/quan-tri/lien-thong";
/// The monitoring page.
pub const MONITOR_PATH: &str = "/quan-tri/lien-thong/giam-sat";

/// The routes of these pages, with the page middleware (HTML errors in the
/// user's language, security headers), merged into the application.
pub fn routes(state: AppState) -> crate::kernel::routes::Table {
    crate::kernel::page::pages(
        state,
        crate::kernel::routes::Table::new()
            .get(REGISTRY_PATH, registry)
            .post(REGISTRY_PATH, registry_save)
            .get(MONITOR_PATH, monitor),
    )
}

impl Ctx {
    /// A province administrator (sees the exchange pages).
    pub fn is_province_admin(&self) -> bool {
        self.user
            .as_ref()
            .is_some_and(|u| motcua_commands::accounts::has(u, Role::ProvinceAdmin))
    }
}

// ---------------------------------------------------------------------------
// Forms
// ---------------------------------------------------------------------------

/// The forms of the registry page: `op` of the POST, and the fields each
/// one has (typed values are kept under `{op}-{field}` when the form is
/// shown again).
const OPS: [(&str, &[&str]); 12] = [
    ("member-add", &["class", "code", "name"]),
    ("member-remove", &["class", "code"]),
    ("subsystem-add", &["id", "name"]),
    ("subsystem-remove", &["id"]),
    (
        "service-add",
        &["id", "name", "upstream", "openapi", "endpoints"],
    ),
    ("service-remove", &["id"]),
    ("grant", &["client", "service", "endpoints"]),
    ("revoke", &["client", "service"]),
    ("key-add", &["client", "label"]),
    ("key-revoke", &["id"]),
    ("cert-add", &["client", "fingerprint", "label"]),
    ("cert-remove", &["fingerprint"]),
];

fn fields_of(op: &str) -> Option<&'static [&'static str]> {
    OPS.iter().find(|(o, _)| *o == op).map(|(_, f)| *f)
}

/// Errors of one attempt, keyed by `{op}-{field}` (or `{op}` for the form
/// as a whole), in form order.
struct Errors {
    op: String,
    list: Vec<(String, String)>,
}

impl Errors {
    fn new(op: &str) -> Self {
        Self {
            op: op.to_string(),
            list: Vec::new(),
        }
    }

    fn add(&mut self, field: &str, message: String) {
        let key = if field.is_empty() {
            self.op.clone()
        } else {
            format!("{}-{field}", self.op)
        };
        if !self.list.iter().any(|(k, _)| *k == key) {
            self.list.push((key, message));
        }
    }

    fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

/// A message for a field of a form: `xadm-err-{op}-{field}` when the form
/// has its own wording, else `xadm-err-{field}`.
fn field_message(ctx: &Ctx, op: &str, field: &str) -> String {
    text_opt(ctx.lang, &format!("xadm-err-{op}-{field}"))
        .unwrap_or_else(|| ctx.t(&format!("xadm-err-{field}")))
}

/// Parses the endpoints typed one per line as `METHOD /path` (a line with
/// only a path allows every method). `Err` holds the 1-based line number.
fn parse_endpoints(text: &str) -> Result<Vec<Endpoint>, usize> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let parts: Vec<&str> = line.split_whitespace().collect();
        match parts.as_slice() {
            [] => {}
            [path] if path.starts_with('/') => out.push(Endpoint::new("*", path)),
            [method, path] => out.push(Endpoint::new(method, path)),
            _ => return Err(i + 1),
        }
    }
    Ok(out)
}

/// The form field a registry problem is about (`services[3].upstream` →
/// `upstream`), among `fields`; `""` for the form as a whole.
fn problem_field(at: &str, fields: &[&str]) -> &'static str {
    let last = at.rsplit('.').next().unwrap_or(at);
    let name = last.split('[').next().unwrap_or(last);
    let name = match name {
        "sha256" => "fingerprint",
        other => other,
    };
    OPS.iter()
        .flat_map(|(_, f)| f.iter())
        .find(|f| **f == name && fields.contains(f))
        .copied()
        .unwrap_or("")
}

/// Turns the error of a registry change into messages next to the fields
/// of `op`, or passes it on when it is not about what was typed.
fn edit_errors(ctx: &Ctx, op: &str, err: ApiError, errors: &mut Errors) -> Result<(), ApiError> {
    let fields = fields_of(op).unwrap_or(&[]);
    // The field that names what already exists.
    let key_field = match op {
        "member-add" => "code",
        "cert-add" => "fingerprint",
        _ => fields.first().copied().unwrap_or(""),
    };
    match err.kind {
        "duplicate" => errors.add(key_field, ctx.t("xadm-err-duplicate")),
        "not-found" => errors.add("", ctx.t("xadm-err-not-found")),
        "exchange-conflict" => errors.add("", ctx.t("xadm-err-conflict")),
        "exchange-invalid" => {
            for f in &err.fields {
                let field = problem_field(&f.field, fields);
                let detail = f
                    .params
                    .get("message")
                    .and_then(|m| m.as_str())
                    .unwrap_or_default();
                let text = if field.is_empty() {
                    ctx.t("xadm-err-invalid")
                } else {
                    field_message(ctx, op, field)
                };
                errors.add(field, format!("{text} ({detail})"));
            }
            if errors.is_empty() {
                errors.add("", ctx.t("xadm-err-invalid"));
            }
        }
        _ => return Err(err),
    }
    Ok(())
}

/// An identifier (subsystem or service) typed or picked in `field`.
fn id_field<T: std::str::FromStr>(
    ctx: &Ctx,
    form: &FormData,
    op: &str,
    field: &str,
    errors: &mut Errors,
) -> Option<T> {
    let raw = form.get(field).unwrap_or_default().trim();
    match raw.parse::<T>() {
        Ok(id) => Some(id),
        Err(_) => {
            errors.add(field, field_message(ctx, op, field));
            None
        }
    }
}

/// Something the page asks the registry to do, checked and parsed.
enum Edit {
    AddMember {
        class: String,
        code: String,
        name: String,
    },
    RemoveMember {
        class: String,
        code: String,
    },
    AddSubsystem {
        id: ClientId,
        name: String,
    },
    RemoveSubsystem {
        id: ClientId,
    },
    PutService(Box<Service>),
    RemoveService {
        id: ServiceId,
    },
    Grant {
        client: ClientId,
        service: ServiceId,
        endpoints: Vec<Endpoint>,
    },
    Revoke {
        client: ClientId,
        service: ServiceId,
    },
    AddKey {
        client: ClientId,
        label: String,
    },
    RevokeKey {
        id: String,
    },
    AddCert {
        client: ClientId,
        fingerprint: String,
        label: String,
    },
    RemoveCert {
        fingerprint: String,
    },
}

/// Reads the form of `op`; the errors say what to correct.
fn parse_edit(ctx: &Ctx, op: &str, form: &FormData, errors: &mut Errors) -> Option<Edit> {
    let val = |k: &str| motcua_domain::text::nfc(form.get(k).unwrap_or_default().trim());
    let required = |k: &str, errors: &mut Errors| {
        let v = val(k);
        if v.is_empty() {
            errors.add(k, field_message(ctx, op, k));
        }
        v
    };
    let edit = match op {
        "member-add" => {
            let class = required("class", errors);
            let code = required("code", errors);
            let name = required("name", errors);
            Edit::AddMember { class, code, name }
        }
        "member-remove" => Edit::RemoveMember {
            class: val("class"),
            code: val("code"),
        },
        "subsystem-add" => {
            let id = id_field::<ClientId>(ctx, form, op, "id", errors);
            Edit::AddSubsystem {
                id: id?,
                name: val("name"),
            }
        }
        "subsystem-remove" => Edit::RemoveSubsystem {
            id: id_field::<ClientId>(ctx, form, op, "id", errors)?,
        },
        "service-add" => {
            let id = id_field::<ServiceId>(ctx, form, op, "id", errors);
            let upstream = required("upstream", errors);
            if let (false, Err(why)) = (
                upstream.is_empty(),
                motcua_exchange::registry::Upstream::parse(&upstream),
            ) {
                errors.add(
                    "upstream",
                    format!("{} ({why})", field_message(ctx, op, "upstream")),
                );
            }
            let openapi = form.get("openapi").unwrap_or_default().trim().to_string();
            if !openapi.is_empty() && serde_json::from_str::<serde_json::Value>(&openapi).is_err() {
                errors.add("openapi", field_message(ctx, op, "openapi"));
            }
            let endpoints = match parse_endpoints(form.get("endpoints").unwrap_or_default()) {
                Ok(e) => e,
                Err(line) => {
                    let mut args = serde_json::Map::new();
                    args.insert("line".into(), line.into());
                    errors.add(
                        "endpoints",
                        ctx.lang.text_with("xadm-err-endpoint-line", &args),
                    );
                    Vec::new()
                }
            };
            let service = Service {
                name: val("name"),
                openapi: (!openapi.is_empty()).then_some(openapi),
                endpoints,
                ..Service::new(id?, &upstream)
            };
            Edit::PutService(Box::new(service))
        }
        "service-remove" => Edit::RemoveService {
            id: id_field::<ServiceId>(ctx, form, op, "id", errors)?,
        },
        "grant" => {
            let client = id_field::<ClientId>(ctx, form, op, "client", errors);
            let service = id_field::<ServiceId>(ctx, form, op, "service", errors);
            let endpoints = match parse_endpoints(form.get("endpoints").unwrap_or_default()) {
                Ok(e) => e,
                Err(line) => {
                    let mut args = serde_json::Map::new();
                    args.insert("line".into(), line.into());
                    errors.add(
                        "endpoints",
                        ctx.lang.text_with("xadm-err-endpoint-line", &args),
                    );
                    Vec::new()
                }
            };
            Edit::Grant {
                client: client?,
                service: service?,
                endpoints,
            }
        }
        "revoke" => {
            let client = id_field::<ClientId>(ctx, form, op, "client", errors);
            let service = id_field::<ServiceId>(ctx, form, op, "service", errors);
            Edit::Revoke {
                client: client?,
                service: service?,
            }
        }
        "key-add" => Edit::AddKey {
            client: id_field::<ClientId>(ctx, form, op, "client", errors)?,
            label: val("label"),
        },
        "key-revoke" => Edit::RevokeKey { id: val("id") },
        "cert-add" => {
            let client = id_field::<ClientId>(ctx, form, op, "client", errors);
            let fingerprint = val("fingerprint");
            if motcua_exchange::registry::normalize_fingerprint(&fingerprint).is_none() {
                errors.add("fingerprint", field_message(ctx, op, "fingerprint"));
            }
            Edit::AddCert {
                client: client?,
                fingerprint,
                label: val("label"),
            }
        }
        "cert-remove" => Edit::RemoveCert {
            fingerprint: val("fingerprint"),
        },
        _ => return None,
    };
    errors.is_empty().then_some(edit)
}

/// Applies a parsed edit through the JSON API's path. Returns the clear
/// key and its id when a key was created.
async fn apply_edit(
    st: &AppState,
    user: &User,
    ex: &ExchangeHandle,
    edit: Edit,
) -> Result<Option<(String, String)>, ApiError> {
    match edit {
        Edit::AddMember { class, code, name } => {
            crate::exchange::api::apply(st, user, ex, |r| {
                r.add_member(&class, &code, &name).map(unit)
            })
            .await?;
        }
        Edit::RemoveMember { class, code } => {
            crate::exchange::api::apply(st, user, ex, |r| r.remove_member(&class, &code).map(unit))
                .await?;
        }
        Edit::AddSubsystem { id, name } => {
            crate::exchange::api::apply(st, user, ex, |r| r.add_subsystem(&id, &name).map(unit))
                .await?;
        }
        Edit::RemoveSubsystem { id } => {
            crate::exchange::api::apply(st, user, ex, |r| r.remove_subsystem(&id).map(unit))
                .await?;
        }
        Edit::PutService(service) => {
            crate::exchange::api::apply(st, user, ex, |r| {
                r.put_service(service.as_ref().clone()).map(unit)
            })
            .await?;
        }
        Edit::RemoveService { id } => {
            crate::exchange::api::apply(st, user, ex, |r| r.remove_service(&id).map(unit)).await?;
        }
        Edit::Grant {
            client,
            service,
            endpoints,
        } => {
            crate::exchange::api::apply(st, user, ex, |r| {
                r.grant(&client, &service, endpoints.clone()).map(unit)
            })
            .await?;
        }
        Edit::Revoke { client, service } => {
            crate::exchange::api::apply(st, user, ex, |r| r.revoke(&client, &service).map(unit))
                .await?;
        }
        Edit::AddKey { client, label } => {
            let now = st.clock.now();
            let (_, created) =
                crate::exchange::api::apply(st, user, ex, |r| new_api_key(r, &client, &label, now))
                    .await?;
            return Ok(Some(created));
        }
        Edit::RevokeKey { id } => {
            crate::exchange::api::apply(st, user, ex, |r| r.revoke_api_key(&id).map(unit)).await?;
        }
        Edit::AddCert {
            client,
            fingerprint,
            label,
        } => {
            crate::exchange::api::apply(st, user, ex, |r| {
                r.add_client_cert(&client, &fingerprint, &label).map(unit)
            })
            .await?;
        }
        Edit::RemoveCert { fingerprint } => {
            crate::exchange::api::apply(st, user, ex, |r| {
                r.remove_client_cert(&fingerprint).map(unit)
            })
            .await?;
        }
    }
    Ok(None)
}

// ---------------------------------------------------------------------------
// Registry page
// ---------------------------------------------------------------------------

pub struct MemberRow {
    pub class: String,
    pub code: String,
    pub name: String,
}

pub struct SubsystemRow {
    pub id: String,
    pub name: String,
}

pub struct ServiceRow {
    pub id: String,
    pub name: String,
    pub upstream: String,
    /// `METHOD /path`, one per endpoint.
    pub endpoints: Vec<String>,
    pub openapi: bool,
}

pub struct RightRow {
    pub client: String,
    pub service: String,
    /// Empty: the whole service.
    pub endpoints: Vec<String>,
}

pub struct KeyRow {
    pub id: String,
    pub client: String,
    pub label: String,
    pub created: String,
    pub enabled: bool,
}

pub struct CertRow {
    pub client: String,
    pub fingerprint: String,
    pub label: String,
}

/// A key just created: shown on this answer only.
pub struct NewKey {
    pub id: String,
    pub client: String,
    pub key: String,
}

#[derive(Template)]
#[template(path = "exchange/registry.html")]
struct RegistryPage<'a> {
    ctx: &'a Ctx,
    title: String,
    section: &'static str,
    flash: Option<String>,
    secret: Option<NewKey>,
    errors: Vec<(String, String)>,
    form: BTreeMap<String, String>,
    instance: String,
    members: Vec<MemberRow>,
    subsystems: Vec<SubsystemRow>,
    services: Vec<ServiceRow>,
    rights: Vec<RightRow>,
    keys: Vec<KeyRow>,
    certs: Vec<CertRow>,
    /// Options of the subsystem and service pickers.
    client_ids: Vec<String>,
    service_ids: Vec<String>,
    monitor_href: &'static str,
    action: &'static str,
}

impl RegistryPage<'_> {
    fn err(&self, field: &str) -> Option<&str> {
        self.errors
            .iter()
            .find(|(f, _)| f == field)
            .map(|(_, m)| m.as_str())
    }

    fn val(&self, field: &str) -> &str {
        self.form.get(field).map(String::as_str).unwrap_or("")
    }

    /// Whether `value` is the option picked in `field`.
    fn picked(&self, field: &str, value: &str) -> bool {
        self.val(field) == value
    }
}

#[derive(Deserialize, Default)]
pub struct DoneQuery {
    xong: Option<String>,
}

fn endpoint_text(e: &Endpoint) -> String {
    format!("{} {}", e.method, e.path)
}

struct RegistryView {
    flash: Option<String>,
    secret: Option<NewKey>,
    errors: Vec<(String, String)>,
    form: BTreeMap<String, String>,
}

async fn render_registry(
    st: &AppState,
    ctx: &Ctx,
    ex: &ExchangeHandle,
    v: RegistryView,
) -> PageResult {
    let r = ex.load(st.store.as_ref()).await?;
    let page = RegistryPage {
        ctx,
        title: ctx.t("xadm-registry"),
        section: "exchange",
        flash: v.flash,
        secret: v.secret,
        instance: r.instance.clone(),
        members: r
            .members
            .iter()
            .map(|m| MemberRow {
                class: m.class.clone(),
                code: m.code.clone(),
                name: m.name.clone(),
            })
            .collect(),
        subsystems: r
            .subsystems
            .iter()
            .map(|s| SubsystemRow {
                id: s.id.to_string(),
                name: s.name.clone(),
            })
            .collect(),
        services: r
            .services
            .iter()
            .map(|s| ServiceRow {
                id: s.id.to_string(),
                name: s.name.clone(),
                upstream: s.upstream.clone(),
                endpoints: s.endpoints.iter().map(endpoint_text).collect(),
                openapi: s.openapi.is_some(),
            })
            .collect(),
        rights: r
            .access_rights
            .iter()
            .map(|a| RightRow {
                client: a.client.to_string(),
                service: a.service.to_string(),
                endpoints: a.endpoints.iter().map(endpoint_text).collect(),
            })
            .collect(),
        keys: r
            .api_keys
            .iter()
            .map(|k| KeyRow {
                id: k.id.clone(),
                client: k.client.to_string(),
                label: k.label.clone(),
                created: fmt_opt(k.created_at),
                enabled: k.enabled,
            })
            .collect(),
        certs: r
            .client_certs
            .iter()
            .map(|c| CertRow {
                client: c.client.to_string(),
                fingerprint: c.sha256.clone(),
                label: c.label.clone(),
            })
            .collect(),
        client_ids: r.subsystems.iter().map(|s| s.id.to_string()).collect(),
        service_ids: r.services.iter().map(|s| s.id.to_string()).collect(),
        monitor_href: MONITOR_PATH,
        action: REGISTRY_PATH,
        errors: v.errors,
        form: v.form,
    };
    let status = if page.errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    Ok(ctx.render(status, page.render()))
}

/// `GET /quan-tri/lien-thong`: the exchange registry and the forms that
/// change it.
pub async fn registry(
    State(st): State<AppState>,
    ctx: Ctx,
    ExchangeAdminPage(_, ex): ExchangeAdminPage,
    Query(q): Query<DoneQuery>,
) -> PageResult {
    let flash = q
        .xong
        .as_deref()
        .filter(|k| fields_of(k).is_some())
        .map(|k| ctx.t(&format!("xadm-done-{k}")));
    let view = RegistryView {
        flash,
        secret: None,
        errors: Vec::new(),
        form: BTreeMap::new(),
    };
    render_registry(&st, &ctx, &ex, view).await
}

/// `POST /quan-tri/lien-thong`: one change of the registry, named by `op`
/// (see [`OPS`] for the fields of each).
pub async fn registry_save(
    State(st): State<AppState>,
    ctx: Ctx,
    ExchangeAdminPage(user, ex): ExchangeAdminPage,
    CheckedMultipart(form): CheckedMultipart,
) -> PageResult {
    let op = form.get("op").unwrap_or_default().to_string();
    let Some(fields) = fields_of(&op) else {
        return Err(ApiError::bad_request("op"));
    };
    let mut typed = BTreeMap::new();
    for f in fields {
        typed.insert(
            format!("{op}-{f}"),
            form.get(f).unwrap_or_default().to_string(),
        );
    }
    let mut errors = Errors::new(&op);
    let result = match parse_edit(&ctx, &op, &form, &mut errors) {
        Some(edit) => match apply_edit(&st, &user, &ex, edit).await {
            Ok(created) => Some(created),
            Err(e) => {
                edit_errors(&ctx, &op, e, &mut errors)?;
                None
            }
        },
        None => None,
    };
    let Some(created) = result else {
        let view = RegistryView {
            flash: None,
            secret: None,
            errors: errors.list,
            form: typed,
        };
        return render_registry(&st, &ctx, &ex, view).await;
    };
    match created {
        Some((id, key)) => {
            let view = RegistryView {
                flash: Some(ctx.t("xadm-done-key-add")),
                secret: Some(NewKey {
                    id,
                    client: form.get("client").unwrap_or_default().trim().to_string(),
                    key,
                }),
                errors: Vec::new(),
                form: BTreeMap::new(),
            };
            render_registry(&st, &ctx, &ex, view).await
        }
        None => Ok(Redirect::to(&format!("{REGISTRY_PATH}?xong={op}")).into_response()),
    }
}

// ---------------------------------------------------------------------------
// Monitoring page
// ---------------------------------------------------------------------------

pub struct SeriesRow {
    pub key: String,
    /// The service's or subsystem's name in the registry, if any.
    pub name: String,
    pub requests: u64,
    pub errors: u64,
    /// `type: n`, one per X-Road error type.
    pub error_types: Vec<String>,
    pub mean: String,
    pub p50: String,
    pub p95: String,
    pub p99: String,
}

#[derive(Template)]
#[template(path = "exchange/monitor.html")]
struct MonitorPage<'a> {
    ctx: &'a Ctx,
    title: String,
    section: &'static str,
    /// The gateway runs on this node.
    running: bool,
    healthy: bool,
    log_dir: String,
    segments: usize,
    log_size: String,
    requests: u64,
    errors: u64,
    services: Vec<SeriesRow>,
    clients: Vec<SeriesRow>,
    in_force_since: String,
    last_check: String,
    last_error: Option<String>,
    /// (label, count) of the registry in force.
    counts: Vec<(String, usize)>,
    registry_href: &'static str,
}

fn ms(v: f64) -> String {
    format!("{v:.1}")
}

fn series_rows(
    list: &[motcua_exchange::metrics::SeriesSnapshot],
    names: &BTreeMap<String, String>,
) -> Vec<SeriesRow> {
    list.iter()
        .map(|s| SeriesRow {
            key: s.key.clone(),
            name: names.get(&s.key).cloned().unwrap_or_default(),
            requests: s.requests,
            errors: s.errors,
            error_types: s
                .errors_by_type
                .iter()
                .map(|(t, n)| format!("{t}: {n}"))
                .collect(),
            mean: ms(s.mean_ms),
            p50: ms(s.p50_ms),
            p95: ms(s.p95_ms),
            p99: ms(s.p99_ms),
        })
        .collect()
}

/// Size in bytes, in KB/MB for people.
fn human_bytes(n: u64) -> String {
    match n {
        n if n >= 1_000_000 => format!("{:.1} MB", n as f64 / 1_000_000.0),
        n if n >= 1_000 => format!("{:.1} kB", n as f64 / 1_000.0),
        n => format!("{n} B"),
    }
}

/// `GET /quan-tri/lien-thong/giam-sat`: the gateway of this node — health
/// of the message log, requests, errors and latency per service and per
/// client since it started, and when the registry was last reloaded.
pub async fn monitor(ctx: Ctx, ExchangeAdminPage(_, ex): ExchangeAdminPage) -> PageResult {
    let status = ex.reload_status();
    let when = |t: Option<chrono::DateTime<chrono::Utc>>| {
        t.map(fmt_dt).unwrap_or_else(|| ctx.t("xadm-never"))
    };
    let mut page = MonitorPage {
        ctx: &ctx,
        title: ctx.t("xadm-monitor"),
        section: "exchange-monitor",
        running: false,
        healthy: false,
        log_dir: String::new(),
        segments: 0,
        log_size: String::new(),
        requests: 0,
        errors: 0,
        services: Vec::new(),
        clients: Vec::new(),
        in_force_since: when(status.in_force_since),
        last_check: when(status.last_check),
        last_error: status.last_error,
        counts: Vec::new(),
        registry_href: REGISTRY_PATH,
    };
    if let Some(gw) = ex.gateway() {
        let compiled = gw.registry();
        let r = compiled.source();
        let mut names: BTreeMap<String, String> = BTreeMap::new();
        for s in &r.services {
            names.insert(s.id.to_string(), s.name.clone());
        }
        for s in &r.subsystems {
            names.insert(s.id.to_string(), s.name.clone());
        }
        page.counts = vec![
            (ctx.t("xadm-members"), r.members.len()),
            (ctx.t("xadm-subsystems"), r.subsystems.len()),
            (ctx.t("xadm-services"), r.services.len()),
            (ctx.t("xadm-rights"), r.access_rights.len()),
            (
                ctx.t("xadm-keys-active"),
                r.api_keys.iter().filter(|k| k.enabled).count(),
            ),
            (ctx.t("xadm-certs"), r.client_certs.len()),
        ];
        let snap = gw.metrics().snapshot();
        page.running = true;
        page.healthy = gw.log().is_healthy();
        page.requests = snap.requests;
        page.errors = snap.errors;
        page.services = series_rows(&snap.services, &names);
        page.clients = series_rows(&snap.clients, &names);
        let dir = gw.log().dir().to_path_buf();
        page.log_dir = dir.display().to_string();
        let (segments, bytes) = tokio::task::spawn_blocking(move || {
            let list = motcua_exchange::log::list_segments(&dir).unwrap_or_default();
            let bytes: u64 = list
                .iter()
                .filter_map(|(_, p)| std::fs::metadata(p).ok())
                .map(|m| m.len())
                .sum();
            (list.len(), bytes)
        })
        .await
        .map_err(ApiError::internal)?;
        page.segments = segments;
        page.log_size = human_bytes(bytes);
    }
    Ok(ctx.render(StatusCode::OK, page.render()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_typed_one_per_line() {
        let e = parse_endpoints("GET /people/{id}\n\n/any/**\r\nPOST  /x\n").expect("parsed");
        let shown: Vec<String> = e.iter().map(endpoint_text).collect();
        assert_eq!(shown, ["GET /people/{id}", "* /any/**", "POST /x"]);
        assert_eq!(parse_endpoints("GET /a\nGET /b extra"), Err(2));
        assert_eq!(parse_endpoints("nopath"), Err(1));
    }

    #[test]
    fn registry_problems_land_on_the_form_field() {
        let service = fields_of("service-add").expect("op");
        assert_eq!(problem_field("services[3].upstream", service), "upstream");
        assert_eq!(
            problem_field("services[3].endpoints[1]", service),
            "endpoints"
        );
        assert_eq!(problem_field("services[3].timeout_ms", service), "");
        let cert = fields_of("cert-add").expect("op");
        assert_eq!(problem_field("client_certs[0].sha256", cert), "fingerprint");
        assert_eq!(problem_field("fingerprint", cert), "fingerprint");
        assert_eq!(
            problem_field("members[2]", fields_of("member-add").expect("op")),
            ""
        );
    }
}

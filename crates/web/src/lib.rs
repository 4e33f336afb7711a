//! HTTP interface of motcua: the JSON API with its OpenAPI description,
//! the pages of the portal and the back office, health, readiness and
//! metrics. One folder per product module (its API handlers, pages and
//! views); shared things in [`kernel`]; [`state`] holds what handlers
//! share. This file composes the modules' routers and OpenAPI parts, and
//! is the only one that names them all. Handlers stay thin: extract (who
//! may call is in the signature), call a command of [`motcua_commands`],
//! render.
#![forbid(unsafe_code)]

pub mod accounts;
pub mod admin;
pub mod catalogue;
pub mod dossiers;
pub mod exchange;
pub mod kernel;
pub mod operations;
pub mod state;

use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, header};
use axum::response::{Html, IntoResponse, Response};
use axum::{Router, middleware};
use tower_http::set_header::SetResponseHeaderLayer;
use utoipa::OpenApi;

use crate::kernel::error::ApiError;
use crate::kernel::routes::{Route, Table};
pub use crate::state::{AppState, ClientAddr, WebConfig};

#[derive(OpenApi)]
#[openapi(
    info(title = "motcua API", description = "One-stop digital government: procedures, dossiers, tracking. Errors are application/problem+json (RFC 9457) in the language of Accept-Language (vi or en)."),
    components(schemas(dossiers::views::Application, dossiers::views::ApplicantInput, kernel::error::Problem, kernel::error::ProblemField)),
    tags((name = "auth"), (name = "procedures"), (name = "dossiers"), (name = "operations"),
        (name = "exchange", description = "The data exchange registry (province administrators); the gateway itself listens on its own port, see docs/exchange.md"))
)]
pub struct ApiDoc;

/// The whole OpenAPI document: each module's part, then the bearer scheme
/// and the problem answers added to every operation.
pub fn openapi() -> utoipa::openapi::OpenApi {
    use utoipa::Modify;
    let mut doc = ApiDoc::openapi();
    for part in [
        accounts::ApiDoc::openapi(),
        catalogue::ApiDoc::openapi(),
        dossiers::ApiDoc::openapi(),
        exchange::ApiDoc::openapi(),
        operations::ApiDoc::openapi(),
    ] {
        doc.merge(part);
    }
    BearerAuth.modify(&mut doc);
    ProblemResponses.modify(&mut doc);
    doc
}

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
/// ([`kernel::error::Problem`], written once by [`kernel::error::problem_language`]): each
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

async fn openapi_json() -> Response {
    match openapi().to_pretty_json() {
        Ok(j) => ([(header::CONTENT_TYPE, "application/json")], j).into_response(),
        Err(e) => ApiError::internal(e).into_response(),
    }
}

/// A documentation page rendered on the server from the OpenAPI document:
/// no script, no CDN, works offline.
async fn api_docs() -> Html<String> {
    let doc = openapi();
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
pub fn route_table(state: &AppState) -> Table {
    Table::new()
        .get("/api/openapi.json", openapi_json)
        .get("/api/docs", api_docs)
        .merge(kernel::page::routes(state.clone()))
        .merge(operations::routes())
        .merge(accounts::routes(state.clone()))
        .merge(catalogue::routes(state.clone()))
        .merge(dossiers::routes(state.clone()))
        .merge(admin::routes(state.clone()))
        .merge(exchange::routes(state.clone()))
}

/// The routes of [`route_table`], method and path.
pub fn routes_of(state: &AppState) -> Vec<Route> {
    route_table(state).into_parts().1
}

/// The whole HTTP application.
pub fn router(state: AppState) -> Router {
    let (api, _) = route_table(&state).into_parts();
    let api = api
        .fallback(kernel::page::fallback)
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes));
    api.layer(middleware::from_fn(kernel::error::problem_language))
        .layer(middleware::from_fn(no_store_for_the_signed_in))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            kernel::metrics::track_requests,
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
            || kernel::page::cookie(req.headers(), kernel::page::SESSION_COOKIE)
                .is_some_and(|c| !c.is_empty()));
    let mut res = next.run(req).await;
    if credentials {
        res.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

#[cfg(test)]
mod openapi_tests {
    use std::collections::BTreeSet;

    use serde_json::{Value, json};

    use super::*;

    fn doc() -> Value {
        serde_json::to_value(openapi()).expect("document")
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
        let mut e = ApiError::validation(vec![kernel::error::FieldProblem::new(
            "username", "required",
        )])
        .detail("more");
        let full = kernel::error::problem_body(&e, kernel::i18n::Lang::En);
        assert_eq!(keys(&full), properties(s));
        assert_eq!(
            keys(&full["errors"][0]),
            properties(schema(&doc, "ProblemField"))
        );
        e = ApiError::unauthorized();
        let least = kernel::error::problem_body(&e, kernel::i18n::Lang::En);
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

#[cfg(test)]
mod layout_tests {
    /// The files of the crate, but this one.
    fn sources() -> Vec<(std::path::PathBuf, String)> {
        fn walk(dir: &std::path::Path, out: &mut Vec<(std::path::PathBuf, String)>) {
            for e in std::fs::read_dir(dir).expect("source folder").flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, out);
                } else if p.extension().is_some_and(|x| x == "rs") && !p.ends_with("src/lib.rs") {
                    let text = std::fs::read_to_string(&p).expect("source file");
                    out.push((p, text));
                }
            }
        }
        let mut out = Vec::new();
        walk(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut out,
        );
        out
    }

    #[test]
    fn no_file_names_the_crate_root_or_re_exports_a_glob() {
        let root_items = [
            "AppState",
            "ClientAddr",
            "WebConfig",
            "ApiDoc",
            "openapi",
            "route_table",
            "routes_of",
            "router",
        ];
        let files = sources();
        assert!(files.len() > 30, "the sources were read");
        for (path, text) in &files {
            for line in text.lines().map(str::trim) {
                assert!(
                    !(line.starts_with("pub use") && line.contains("::*")),
                    "{}: a glob re-export: {line}",
                    path.display()
                );
                assert!(
                    !line.starts_with("use crate::{"),
                    "{}: imports from the crate root: {line}",
                    path.display()
                );
                for item in root_items {
                    let form = format!("crate::{item}");
                    let named = line.match_indices(&form).any(|(i, _)| {
                        !line[i + form.len()..]
                            .starts_with(|c: char| c.is_alphanumeric() || c == '_')
                    });
                    assert!(!named, "{}: names the crate root: {line}", path.display());
                }
            }
        }
    }
}

//! Once-only prefill: with the citizen's consent, the apply form reads the
//! fields a procedure declares under `prefill` from registries through the
//! data exchange gateway, and locks them.
//!
//! The portal calls the gateway of its own node in-process, as the client
//! subsystem configured in `[exchange] portal_client` with its API key, so
//! that the call is checked against the access rights and written to the
//! signed message log like any other exchange. What the registries answered
//! travels with the form as a token authenticated with a server-side key
//! (HMAC-SHA256; the key is kept in the database so that every node
//! accepts the tokens of the others): a browser cannot forge or alter
//! prefilled values, and the dossier records which data came from which
//! exchange (`X-Road-Id`) — or that the citizen typed it, and why.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use chrono::{DateTime, Utc};
use motcua_domain::ids::NationalId;
use motcua_domain::procedure::{FieldType, PrefillSource, Procedure};
use motcua_exchange::ClientId;
use serde::{Deserialize, Serialize};
use tower::ServiceExt;

use motcua_commands::prefill::{Origin, SourceResult};

use crate::kernel::error::ApiError;
use crate::state::AppState;

/// A prefilled form may be submitted for this long after the consent.
const TOKEN_HOURS: i64 = 12;
/// How long the portal waits for a registry before the citizen types.
const CALL_TIMEOUT: Duration = Duration::from_secs(8);
/// The largest registry answer read.
const ANSWER_LIMIT: usize = 64 * 1024;

/// The portal as a client of the exchange.
#[derive(Clone)]
pub struct PortalClient {
    pub client: ClientId,
    pub api_key: String,
}

impl std::fmt::Debug for PortalClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PortalClient")
            .field("client", &self.client.to_header())
            .finish_non_exhaustive()
    }
}

/// The outcome of a consent, carried by the form as a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prefilled {
    pub user: i64,
    pub procedure: String,
    pub version: u32,
    /// Issued at, ms since the epoch.
    pub issued: i64,
    pub sources: Vec<SourceResult>,
}

impl Prefilled {
    /// Field -> registry value of every locked field.
    pub fn locked(&self) -> BTreeMap<&str, (&str, &SourceResult)> {
        let mut out = BTreeMap::new();
        for s in &self.sources {
            for (f, v) in &s.values {
                out.insert(f.as_str(), (v.as_str(), s));
            }
        }
        out
    }

    /// What the dossier records: each source without the values (those are
    /// the dossier's fields).
    pub fn provenance(&self) -> Vec<SourceResult> {
        self.sources
            .iter()
            .map(|s| SourceResult {
                values: BTreeMap::new(),
                ..s.clone()
            })
            .collect()
    }
}

/// What the dossier records when the citizen did not consent.
pub fn typed_without_consent(p: &Procedure) -> Vec<SourceResult> {
    p.prefill
        .iter()
        .map(|src| typed(src, "no-consent", None))
        .collect()
}

fn typed(src: &PrefillSource, reason: &str, at: Option<i64>) -> SourceResult {
    SourceResult {
        service: src.service.clone(),
        name: src.name.clone(),
        origin: Origin::Typed,
        x_road_id: None,
        reason: Some(reason.to_string()),
        fields: src.fields.keys().cloned().collect(),
        values: BTreeMap::new(),
        at,
    }
}

/// Asks every registry the procedure declares for the citizen's data, as
/// the citizen consented. A registry that cannot answer leaves its fields
/// to be typed; the result says why.
pub async fn fetch(
    st: &AppState,
    p: &Procedure,
    user_id: i64,
    national_id: &NationalId,
) -> Prefilled {
    let now = st.clock.now();
    let mut sources = Vec::new();
    for src in &p.prefill {
        let at = Some(now.timestamp_millis());
        let result = match call(st, p, src, national_id).await {
            Ok((x_road_id, answer)) => {
                let values = usable_values(p, src, &answer, st);
                if values.is_empty() {
                    typed(src, "invalid-answer", at)
                } else {
                    SourceResult {
                        service: src.service.clone(),
                        name: src.name.clone(),
                        origin: Origin::Exchange,
                        x_road_id: Some(x_road_id),
                        reason: None,
                        fields: src.fields.keys().cloned().collect(),
                        values,
                        at,
                    }
                }
            }
            Err(reason) => {
                tracing::warn!(service = %src.service, reason, "prefill: registry not used");
                typed(src, reason, at)
            }
        };
        sources.push(result);
    }
    Prefilled {
        user: user_id,
        procedure: p.code.clone(),
        version: p.version,
        issued: now.timestamp_millis(),
        sources,
    }
}

/// One call through the gateway: the X-Road-Id and the JSON answer, or the
/// reason the registry cannot be used.
async fn call(
    st: &AppState,
    p: &Procedure,
    src: &PrefillSource,
    national_id: &NationalId,
) -> Result<(String, serde_json::Map<String, serde_json::Value>), &'static str> {
    let (Some(portal), Some(gateway)) = (
        st.portal.as_ref(),
        st.exchange.as_ref().and_then(|e| e.gateway()),
    ) else {
        return Err("unavailable");
    };
    let uri = format!("/r1/{}{}", src.service, src.path_for(national_id));
    let req = Request::builder()
        .method(Method::GET)
        .uri(uri)
        .header("X-Road-Client", portal.client.to_header())
        .header(
            header::AUTHORIZATION,
            format!(
                "{} token={}",
                motcua_exchange::gateway::API_KEY_SCHEME,
                portal.api_key
            ),
        )
        .header("X-Road-UserId", format!("VN{}", national_id.as_str()))
        .header("X-Road-Issue", format!("{}/{}", p.code, p.version))
        .header(header::ACCEPT, "application/json")
        .body(Body::empty())
        .map_err(|_| "unavailable")?;
    let answer = tokio::time::timeout(CALL_TIMEOUT, gateway.router().oneshot(req))
        .await
        .map_err(|_| "unreachable")?
        .map_err(|_| "unreachable")?;
    let status = answer.status();
    let x_road_id = answer
        .headers()
        .get("X-Road-Id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let failed = answer.headers().contains_key("X-Road-Error");
    let body = tokio::time::timeout(
        CALL_TIMEOUT,
        axum::body::to_bytes(answer.into_body(), ANSWER_LIMIT),
    )
    .await
    .map_err(|_| "unreachable")?
    .map_err(|_| "invalid-answer")?;
    if status == StatusCode::NOT_FOUND && !failed {
        return Err("not-found");
    }
    if failed || !status.is_success() {
        return Err("unreachable");
    }
    let Some(x_road_id) = x_road_id else {
        return Err("invalid-answer");
    };
    match serde_json::from_slice(&body) {
        Ok(serde_json::Value::Object(map)) => Ok((x_road_id, map)),
        _ => Err("invalid-answer"),
    }
}

/// The registry's values that fit the form's rules, as form values.
fn usable_values(
    p: &Procedure,
    src: &PrefillSource,
    answer: &serde_json::Map<String, serde_json::Value>,
    st: &AppState,
) -> BTreeMap<String, String> {
    let today = motcua_store::vietnam_day(st.clock.now());
    let mut out = BTreeMap::new();
    for (field, key) in &src.fields {
        let text = match answer.get(key) {
            Some(serde_json::Value::String(s)) => s.trim().to_string(),
            Some(serde_json::Value::Number(n)) => n.to_string(),
            _ => continue,
        };
        if !text.is_empty() && p.fields.iter().any(|f| &f.id == field) {
            out.insert(field.clone(), text);
        }
    }
    // Checked against the fields' rules in one pass: a value the form would
    // refuse is not locked in (the citizen types it). Errors of fields the
    // registry does not fill (required ones left empty) do not count.
    let values: serde_json::Map<String, serde_json::Value> = out
        .iter()
        .map(|(f, v)| (f.clone(), serde_json::Value::String(v.clone())))
        .collect();
    if let Err(errors) = p.validate_fields(&values, today) {
        for e in errors {
            out.remove(&e.field);
        }
    }
    out
}

/// The text a locked field shows: a choice's label, a date as DD/MM/YYYY.
pub fn display_value(p: &Procedure, field: &str, value: &str, lang: &str) -> String {
    let Some(spec) = p.fields.iter().find(|f| f.id == field) else {
        return value.to_string();
    };
    match spec.kind {
        FieldType::Choice => spec
            .options
            .iter()
            .find(|o| o.value == value)
            .map(|o| o.label.get(lang).to_string())
            .unwrap_or_else(|| value.to_string()),
        FieldType::Date => chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d")
            .map(|d| d.format("%d/%m/%Y").to_string())
            .unwrap_or_else(|_| value.to_string()),
        _ => value.to_string(),
    }
}

// ---------------------------------------------------------------------------
// The token
// ---------------------------------------------------------------------------

/// Why a token was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenProblem {
    /// Altered, or made by someone else.
    Invalid,
    /// Older than [`TOKEN_HOURS`], or of another procedure version.
    Expired,
}

/// The token of `p` for the form: `<mac>.<json>`.
pub async fn seal(st: &AppState, p: &Prefilled) -> Result<String, ApiError> {
    let json = serde_json::to_string(p).map_err(ApiError::internal)?;
    let key = st.server_key().await?;
    Ok(format!("{}.{json}", key.mac("prefill", &[&json])))
}

/// Checks a token sent back by the form, for this user and procedure.
pub async fn open(
    st: &AppState,
    token: &str,
    user_id: i64,
    p: &Procedure,
) -> Result<Result<Prefilled, TokenProblem>, ApiError> {
    let Some((mac, json)) = token.split_once('.') else {
        return Ok(Err(TokenProblem::Invalid));
    };
    let key = st.server_key().await?;
    if !key.verify("prefill", &[json], mac) {
        return Ok(Err(TokenProblem::Invalid));
    }
    let Ok(pf) = serde_json::from_str::<Prefilled>(json) else {
        return Ok(Err(TokenProblem::Invalid));
    };
    if pf.user != user_id || pf.procedure != p.code {
        return Ok(Err(TokenProblem::Invalid));
    }
    let issued = DateTime::<Utc>::from_timestamp_millis(pf.issued).unwrap_or_default();
    if pf.version != p.version || st.clock.now() - issued > chrono::Duration::hours(TOKEN_HOURS) {
        return Ok(Err(TokenProblem::Expired));
    }
    Ok(Ok(pf))
}

//! Publish and subscribe over the exchange (in the style of the GovStack
//! Information Mediator's pub/sub): event types with a JSON Schema for
//! their payload, push deliveries with retries and exponential back-off,
//! and the records that put every delivery attempt, pull and acknowledgement
//! in the message log like a message.
//!
//! Storage (published events, subscriptions, deliveries) is the platform's
//! (`motcua_store::Store`); this module holds what needs no database:
//!
//! - [`Schema`]: a small validator for the subset of JSON Schema the event
//!   types use (see its documentation for the keywords);
//! - [`EventTypes`]: the built-in event types of motcua ([`builtin`]);
//! - [`Backoff`]: the retry schedule of push deliveries;
//! - [`PushClient`]: the HTTP(S) client of push deliveries (`https://` with
//!   the system's roots and any CA the operator adds);
//! - [`envelope`], [`push_record`], [`client_record`]: the body sent to
//!   subscribers and the message log records.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderValue, Uri, header};
use chrono::{DateTime, Utc};
use regex::Regex;
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::log::ExchangeRecord;

/// Why a schema could not be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("schema {at}: {message}")]
pub struct SchemaError {
    /// JSON pointer into the schema, `""` for its root.
    pub at: String,
    pub message: String,
}

/// One way an instance does not match its schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{at}: {message}")]
pub struct Violation {
    /// JSON pointer into the instance (`""` for the root, `/code`, `/items/0`).
    pub at: String,
    pub message: String,
}

/// The JSON types of the `type` keyword.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JsonType {
    Object,
    Array,
    String,
    Integer,
    Number,
    Boolean,
    Null,
}

impl JsonType {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "object" => Self::Object,
            "array" => Self::Array,
            "string" => Self::String,
            "integer" => Self::Integer,
            "number" => Self::Number,
            "boolean" => Self::Boolean,
            "null" => Self::Null,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Self::Object => "object",
            Self::Array => "array",
            Self::String => "string",
            Self::Integer => "integer",
            Self::Number => "number",
            Self::Boolean => "boolean",
            Self::Null => "null",
        }
    }

    fn matches(self, v: &Value) -> bool {
        match self {
            Self::Object => v.is_object(),
            Self::Array => v.is_array(),
            Self::String => v.is_string(),
            // 1.0 is an integer in JSON Schema.
            Self::Integer => {
                v.is_i64() || v.is_u64() || v.as_f64().is_some_and(|f| f.fract() == 0.0)
            }
            Self::Number => v.is_number(),
            Self::Boolean => v.is_boolean(),
            Self::Null => v.is_null(),
        }
    }
}

/// A compiled schema of the supported subset of JSON Schema (draft
/// 2020-12 semantics):
///
/// | keyword | |
/// |---|---|
/// | `type` | one of `object`, `array`, `string`, `integer`, `number`, `boolean`, `null`, or an array of them |
/// | `properties` | schemas of named members (objects) |
/// | `required` | names that must be present (objects) |
/// | `additionalProperties` | `false` only: no member beyond `properties` (objects) |
/// | `items` | one schema every element must match (arrays) |
/// | `enum` | the instance equals one of the values |
/// | `minLength`, `maxLength` | length in characters (strings) |
/// | `pattern` | a regular expression (Rust `regex` syntax, unanchored, as in JSON Schema) the string must match |
/// | `minimum`, `maximum` | inclusive bounds (numbers) |
///
/// `$schema`, `$id`, `title`, `description`, `format` and `examples` are
/// accepted and ignored (`format` is an annotation, as by default in JSON
/// Schema). Any other keyword is refused when compiling, so a schema never
/// seems to check something it does not.
#[derive(Debug, Clone)]
pub struct Schema {
    types: Option<Vec<JsonType>>,
    properties: BTreeMap<String, Schema>,
    required: Vec<String>,
    closed: bool,
    items: Option<Box<Schema>>,
    allowed: Option<Vec<Value>>,
    min_length: Option<u64>,
    max_length: Option<u64>,
    pattern: Option<Regex>,
    minimum: Option<f64>,
    maximum: Option<f64>,
}

const IGNORED_KEYWORDS: &[&str] = &[
    "$schema",
    "$id",
    "title",
    "description",
    "format",
    "examples",
];

impl Schema {
    /// Compiles `schema`; refuses unknown keywords and malformed values.
    pub fn compile(schema: &Value) -> Result<Schema, SchemaError> {
        Self::compile_at(schema, "")
    }

    fn compile_at(schema: &Value, at: &str) -> Result<Schema, SchemaError> {
        let err = |key: &str, message: String| SchemaError {
            at: format!("{at}/{key}"),
            message,
        };
        let obj = schema.as_object().ok_or_else(|| SchemaError {
            at: at.to_string(),
            message: "a schema must be a JSON object".into(),
        })?;
        let mut s = Schema {
            types: None,
            properties: BTreeMap::new(),
            required: Vec::new(),
            closed: false,
            items: None,
            allowed: None,
            min_length: None,
            max_length: None,
            pattern: None,
            minimum: None,
            maximum: None,
        };
        let length = |key: &str, v: &Value| {
            v.as_u64()
                .ok_or_else(|| err(key, "must be a non-negative integer".into()))
        };
        let bound = |key: &str, v: &Value| {
            v.as_f64()
                .ok_or_else(|| err(key, "must be a number".into()))
        };
        for (key, v) in obj {
            match key.as_str() {
                "type" => {
                    let names: Vec<&Value> = match v {
                        Value::Array(a) => a.iter().collect(),
                        other => vec![other],
                    };
                    let mut types = Vec::new();
                    for n in names {
                        let t = n
                            .as_str()
                            .and_then(JsonType::parse)
                            .ok_or_else(|| err(key, format!("unknown type {n}")))?;
                        types.push(t);
                    }
                    if types.is_empty() {
                        return Err(err(key, "must name at least one type".into()));
                    }
                    s.types = Some(types);
                }
                "properties" => {
                    let props = v
                        .as_object()
                        .ok_or_else(|| err(key, "must be an object of schemas".into()))?;
                    for (name, sub) in props {
                        let sub_at = format!("{at}/properties/{}", pointer_escape(name));
                        s.properties
                            .insert(name.clone(), Self::compile_at(sub, &sub_at)?);
                    }
                }
                "required" => {
                    let names = v
                        .as_array()
                        .ok_or_else(|| err(key, "must be an array of names".into()))?;
                    for n in names {
                        let n = n
                            .as_str()
                            .ok_or_else(|| err(key, "must be an array of names".into()))?;
                        s.required.push(n.to_string());
                    }
                }
                "additionalProperties" => match v {
                    Value::Bool(b) => s.closed = !b,
                    _ => {
                        return Err(err(
                            key,
                            "only true or false is supported (not a schema)".into(),
                        ));
                    }
                },
                "items" => {
                    s.items = Some(Box::new(Self::compile_at(v, &format!("{at}/items"))?));
                }
                "enum" => {
                    let values = v
                        .as_array()
                        .ok_or_else(|| err(key, "must be an array".into()))?;
                    s.allowed = Some(values.clone());
                }
                "minLength" => s.min_length = Some(length(key, v)?),
                "maxLength" => s.max_length = Some(length(key, v)?),
                "minimum" => s.minimum = Some(bound(key, v)?),
                "maximum" => s.maximum = Some(bound(key, v)?),
                "pattern" => {
                    let p = v
                        .as_str()
                        .ok_or_else(|| err(key, "must be a string".into()))?;
                    s.pattern = Some(
                        Regex::new(p)
                            .map_err(|e| err(key, format!("invalid regular expression: {e}")))?,
                    );
                }
                k if IGNORED_KEYWORDS.contains(&k) => {}
                other => {
                    return Err(err(
                        other,
                        "keyword not supported by motcua's schema validator".into(),
                    ));
                }
            }
        }
        Ok(s)
    }

    /// Every way `instance` does not match (empty: it matches).
    pub fn validate(&self, instance: &Value) -> Vec<Violation> {
        let mut out = Vec::new();
        self.check(instance, "", &mut out);
        out
    }

    fn check(&self, v: &Value, at: &str, out: &mut Vec<Violation>) {
        let mut fail = |message: String| {
            out.push(Violation {
                at: at.to_string(),
                message,
            })
        };
        if let Some(types) = &self.types
            && !types.iter().any(|t| t.matches(v))
        {
            let names: Vec<&str> = types.iter().map(|t| t.name()).collect();
            fail(format!(
                "expected {}, found {}",
                names.join(" or "),
                type_of(v)
            ));
            return;
        }
        if let Some(allowed) = &self.allowed
            && !allowed.contains(v)
        {
            fail(format!(
                "{v} is not one of {}",
                Value::Array(allowed.clone())
            ));
        }
        if let Some(s) = v.as_str() {
            let n = s.chars().count() as u64;
            if let Some(min) = self.min_length
                && n < min
            {
                fail(format!("shorter than {min} characters"));
            }
            if let Some(max) = self.max_length
                && n > max
            {
                fail(format!("longer than {max} characters"));
            }
            if let Some(p) = &self.pattern
                && !p.is_match(s)
            {
                fail(format!("does not match the pattern {}", p.as_str()));
            }
        }
        if let Some(x) = v.as_f64() {
            if let Some(min) = self.minimum
                && x < min
            {
                fail(format!("less than {min}"));
            }
            if let Some(max) = self.maximum
                && x > max
            {
                fail(format!("greater than {max}"));
            }
        }
        if let Some(obj) = v.as_object() {
            for name in &self.required {
                if !obj.contains_key(name) {
                    out.push(Violation {
                        at: at.to_string(),
                        message: format!("the member {name:?} is required"),
                    });
                }
            }
            for (name, member) in obj {
                let member_at = format!("{at}/{}", pointer_escape(name));
                match self.properties.get(name) {
                    Some(sub) => sub.check(member, &member_at, out),
                    None if self.closed => out.push(Violation {
                        at: member_at,
                        message: "no such member is allowed".into(),
                    }),
                    None => {}
                }
            }
        }
        if let (Some(items), Some(arr)) = (&self.items, v.as_array()) {
            for (i, item) in arr.iter().enumerate() {
                items.check(item, &format!("{at}/{i}"), out);
            }
        }
    }
}

fn pointer_escape(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

fn type_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// An event type: its name (`dossier.accepted`), what it means and the
/// JSON Schema of its payload.
#[derive(Debug, Clone, Serialize)]
pub struct EventType {
    pub name: String,
    pub description: String,
    pub schema: Value,
    #[serde(skip)]
    compiled: Schema,
}

impl EventType {
    pub fn new(name: &str, description: &str, schema: Value) -> Result<Self, SchemaError> {
        let compiled = Schema::compile(&schema)?;
        Ok(Self {
            name: name.to_string(),
            description: description.to_string(),
            schema,
            compiled,
        })
    }

    /// Checks a payload against the type's schema.
    pub fn validate(&self, payload: &Value) -> Result<(), PublishError> {
        let v = self.compiled.validate(payload);
        if v.is_empty() {
            Ok(())
        } else {
            Err(PublishError::Invalid {
                event_type: self.name.clone(),
                violations: v,
            })
        }
    }
}

/// Why an event cannot be published.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    #[error("unknown event type {0}")]
    UnknownType(String),
    #[error("the payload of {event_type} does not match its schema: {}", violations.iter().map(|v| v.to_string()).collect::<Vec<_>>().join("; "))]
    Invalid {
        event_type: String,
        violations: Vec<Violation>,
    },
}

/// The event types known to an installation (the built-in ones).
#[derive(Debug, Clone)]
pub struct EventTypes {
    types: BTreeMap<String, EventType>,
}

impl EventTypes {
    /// motcua's own event types ([`builtin`]).
    pub fn builtin() -> Self {
        Self {
            types: builtin().into_iter().map(|t| (t.name.clone(), t)).collect(),
        }
    }

    pub fn get(&self, name: &str) -> Option<&EventType> {
        self.types.get(name)
    }

    /// Every type, by name.
    pub fn list(&self) -> impl Iterator<Item = &EventType> {
        self.types.values()
    }

    /// Checks that `name` is a known type and `payload` matches its schema.
    pub fn validate(&self, name: &str, payload: &Value) -> Result<(), PublishError> {
        self.get(name)
            .ok_or_else(|| PublishError::UnknownType(name.to_string()))?
            .validate(payload)
    }
}

/// The dossier status names (`motcua_domain::dossier::Status::as_str`).
pub const DOSSIER_STATUSES: &[&str] = &[
    "newly_registered",
    "accepted",
    "not_accepted",
    "processing",
    "supplement_requested",
    "financial_obligation",
    "withdrawn",
    "stopped",
    "completed",
    "result_returned",
];

/// The dossier events of the outbox (what `motcua_domain::dossier::decide`
/// emits, plus the submission), with their descriptions.
pub const DOSSIER_EVENTS: &[(&str, &str)] = &[
    (
        "dossier.submitted",
        "A dossier was submitted (online: newly registered; at the counter: accepted at once).",
    ),
    (
        "dossier.accepted",
        "The one-stop officer accepted the dossier; the processing clock started.",
    ),
    (
        "dossier.refused",
        "The dossier was not accepted (form 03, with a reason).",
    ),
    (
        "dossier.forwarded",
        "The dossier moved to the next workflow step.",
    ),
    (
        "dossier.completed",
        "Processing finished: approved with a result, or rejected with a reason.",
    ),
    (
        "dossier.supplement_requested",
        "The applicant must supplement the dossier (form 02); the clock is paused.",
    ),
    (
        "dossier.payment_requested",
        "A financial obligation must be paid; the clock is paused.",
    ),
    (
        "dossier.supplemented",
        "The applicant supplemented the dossier; the clock runs again.",
    ),
    (
        "dossier.payment_confirmed",
        "The financial obligation was paid; the clock runs again.",
    ),
    (
        "dossier.result_returned",
        "The result was handed to the applicant.",
    ),
    ("dossier.withdrawn", "The applicant withdrew the dossier."),
    ("dossier.stopped", "Processing was stopped."),
    (
        "dossier.apologized",
        "The agency apologised for lateness with a new appointment (form 04).",
    ),
    ("dossier.evaluated", "The applicant evaluated the service."),
];

/// The name of the lateness event, published by the platform (not by a
/// transition) once per dossier whose due time passed while it was still
/// being processed.
pub const DOSSIER_LATE: &str = "dossier.late";

fn time_schema() -> Value {
    json!({"type": "string", "format": "date-time", "minLength": 20, "maxLength": 40,
           "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}"})
}

fn dossier_code_schema() -> Value {
    json!({"type": "string", "minLength": 3, "maxLength": 64,
           "pattern": "^[A-Za-z0-9.]+-[0-9]{6}-[0-9]{4,}$"})
}

fn agency_schema() -> Value {
    json!({"type": "string", "minLength": 2, "maxLength": 20, "pattern": "^[A-Z][A-Z0-9.]+$"})
}

fn status_schema(nullable: bool) -> Value {
    let mut values: Vec<Value> = DOSSIER_STATUSES.iter().map(|s| json!(s)).collect();
    if nullable {
        values.push(Value::Null);
        json!({"type": ["string", "null"], "enum": values})
    } else {
        json!({"type": "string", "enum": values})
    }
}

/// The payload of every dossier transition (as the store writes it to the
/// outbox).
pub fn dossier_event_schema() -> Value {
    let mut due = time_schema();
    if let Some(o) = due.as_object_mut() {
        o.insert("type".into(), json!(["string", "null"]));
    }
    json!({
        "type": "object",
        "required": ["code", "agency", "status", "at"],
        "additionalProperties": false,
        "properties": {
            "code": dossier_code_schema(),
            "agency": agency_schema(),
            "from": status_schema(true),
            "status": status_schema(false),
            "due_at": due,
            "at": time_schema(),
        }
    })
}

/// The payload of `dossier.late`.
pub fn dossier_late_schema() -> Value {
    json!({
        "type": "object",
        "required": ["code", "agency", "status", "due_at", "at"],
        "additionalProperties": false,
        "properties": {
            "code": dossier_code_schema(),
            "agency": agency_schema(),
            "status": {"type": "string", "enum": ["accepted", "processing"]},
            "due_at": time_schema(),
            "at": time_schema(),
        }
    })
}

/// motcua's built-in event types: every dossier transition and
/// `dossier.late`.
pub fn builtin() -> Vec<EventType> {
    let mut out = Vec::new();
    for (name, description) in DOSSIER_EVENTS {
        // The built-in schemas are constants of this file, tested below.
        if let Ok(t) = EventType::new(name, description, dossier_event_schema()) {
            out.push(t);
        }
    }
    if let Ok(t) = EventType::new(
        DOSSIER_LATE,
        "The dossier's due time passed while it was still being processed (published once per dossier).",
        dossier_late_schema(),
    ) {
        out.push(t);
    }
    out
}

/// A new random event id, shaped like a UUIDv4 (unique across nodes).
pub fn new_event_id() -> std::io::Result<String> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b)
        .map_err(|e| std::io::Error::other(format!("no random numbers for event ids: {e}")))?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    ))
}

/// The retry schedule of push deliveries: after failed attempt `n` (1, 2,
/// …) the next one waits `base · 2^(n-1)`, at most `max`; after
/// `max_attempts` failed attempts the delivery is marked failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
    pub max_attempts: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(5),
            max: Duration::from_secs(3600),
            max_attempts: 12,
        }
    }
}

impl Backoff {
    /// The wait after failed attempt `attempt` (1-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let shift = attempt.saturating_sub(1).min(31);
        self.base
            .checked_mul(1u32 << shift)
            .unwrap_or(self.max)
            .min(self.max)
    }

    /// Whether a delivery that failed `attempts` times gives up.
    pub fn exhausted(&self, attempts: u32) -> bool {
        attempts >= self.max_attempts.max(1)
    }
}

/// Checks a push URL: absolute `https://host[:port]/path` (the receiver's
/// certificate checked against the system's roots and any CA configured),
/// or `http://` inside a trusted network.
pub fn check_push_url(url: &str) -> Result<(), String> {
    let uri: Uri = url.parse().map_err(|e| format!("not a valid URL: {e}"))?;
    if !matches!(uri.scheme_str(), Some("https" | "http")) {
        return Err("the URL must start with https:// or http://".into());
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err("the URL has no host".into());
    }
    Ok(())
}

/// The JSON body pushed to a subscriber (and returned to a pulling one),
/// in the shape of a CloudEvents 1.0 structured event.
pub fn envelope(
    event_id: &str,
    event_type: &str,
    source: &str,
    time: DateTime<Utc>,
    data: &Value,
) -> Value {
    json!({
        "specversion": "1.0",
        "id": event_id,
        "type": event_type,
        "source": source,
        "time": time,
        "datacontenttype": "application/json",
        "data": data,
    })
}

/// What one push attempt gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushOutcome {
    /// The receiver's status, when it answered.
    pub status: Option<u16>,
    /// Why the attempt failed (`None`: a 2xx answer).
    pub error: Option<String>,
    pub response_sha256: String,
    pub response_bytes: u64,
    pub elapsed: Duration,
}

impl PushOutcome {
    pub fn delivered(&self) -> bool {
        self.error.is_none()
    }
}

/// The HTTP client of push deliveries: `https://` receivers are checked
/// against the system's root certificates and the extra roots given (a
/// province's own CA); no proxy from the environment, no redirects (a 3xx
/// is a failed attempt).
#[derive(Debug, Clone)]
pub struct PushClient {
    client: reqwest::Client,
    timeout: Duration,
}

/// At most this much of a receiver's answer is read (and hashed).
const PUSH_RESPONSE_LIMIT: usize = 64 << 10;

/// The certificates of a PEM file (one or more), for
/// [`PushClient::new`]'s extra roots.
pub fn read_pem_roots(pem: &[u8]) -> Result<Vec<reqwest::Certificate>, String> {
    let certs = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| e.to_string())?;
    if certs.is_empty() {
        return Err("no certificate in the file".into());
    }
    Ok(certs)
}

impl PushClient {
    pub fn new(
        connect_timeout: Duration,
        timeout: Duration,
        extra_roots: &[reqwest::Certificate],
    ) -> Result<Self, String> {
        let mut b = reqwest::Client::builder()
            .use_rustls_tls()
            .connect_timeout(connect_timeout)
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(60))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy();
        for c in extra_roots {
            b = b.add_root_certificate(c.clone());
        }
        let client = b
            .build()
            .map_err(|e| format!("cannot build the push client: {}", error_chain(&e)))?;
        Ok(Self { client, timeout })
    }

    /// POSTs `body` (JSON) to `url`; a 2xx answer within the timeout is a
    /// delivery, anything else a failed attempt.
    pub async fn push(
        &self,
        url: &str,
        event_id: &str,
        event_type: &str,
        body: Bytes,
    ) -> PushOutcome {
        let started = Instant::now();
        let failed = |error: String, status: Option<u16>| PushOutcome {
            status,
            error: Some(error),
            response_sha256: hex::encode(Sha256::digest(b"")),
            response_bytes: 0,
            elapsed: started.elapsed(),
        };
        if let Err(e) = check_push_url(url) {
            return failed(format!("bad URL: {e}"), None);
        }
        let mut req = self.client.post(url).body(body).header(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/cloudevents+json; charset=utf-8"),
        );
        for (name, value) in [
            ("x-road-id", event_id),
            ("ce-id", event_id),
            ("ce-type", event_type),
        ] {
            if let Ok(v) = HeaderValue::from_str(value) {
                req = req.header(name, v);
            }
        }
        let answer = tokio::time::timeout(self.timeout, async {
            let mut resp = req
                .send()
                .await
                .map_err(|e| format!("cannot reach the receiver: {}", error_chain(&e)))?;
            let status = resp.status().as_u16();
            let mut hasher = Sha256::new();
            let mut n = 0usize;
            while let Some(data) = resp
                .chunk()
                .await
                .map_err(|e| format!("the receiver broke off: {e}"))?
            {
                hasher.update(&data);
                n += data.len();
                if n > PUSH_RESPONSE_LIMIT {
                    break;
                }
            }
            Ok::<_, String>((status, hex::encode(hasher.finalize()), n as u64))
        })
        .await;
        match answer {
            Err(_) => failed(
                format!("no answer within {} ms", self.timeout.as_millis()),
                None,
            ),
            Ok(Err(e)) => failed(e, None),
            Ok(Ok((status, sha, n))) => PushOutcome {
                status: Some(status),
                error: (!(200..300).contains(&status))
                    .then(|| format!("the receiver answered {status}")),
                response_sha256: sha,
                response_bytes: n,
                elapsed: started.elapsed(),
            },
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

/// The `service` field of pub/sub records: `{instance}/pubsub/{event type}`.
pub fn pubsub_service(instance: &str, event_type: &str) -> String {
    format!("{instance}/pubsub/{event_type}")
}

/// The message log record of one push attempt: `x_road_id` is the event
/// id, `client` the subscriber, `path` the receiver's URL, the request hash
/// that of the body pushed; `issue` holds `attempt N of subscription S`.
#[allow(clippy::too_many_arguments)]
pub fn push_record(
    instance: &str,
    event_id: &str,
    event_type: &str,
    subscriber: &str,
    subscription: i64,
    attempt: u32,
    url: &str,
    body: &[u8],
    start: DateTime<Utc>,
    outcome: &PushOutcome,
) -> ExchangeRecord {
    let us = u64::try_from(outcome.elapsed.as_micros()).unwrap_or(u64::MAX);
    ExchangeRecord {
        x_road_id: event_id.to_string(),
        start,
        end: Utc::now(),
        client: Some(subscriber.to_string()),
        service: Some(pubsub_service(instance, event_type)),
        user_id: None,
        issue: Some(format!(
            "push attempt {attempt} of subscription {subscription}"
        )),
        method: "POST".into(),
        path: url.to_string(),
        status: outcome.status.unwrap_or(0),
        error: outcome.error.clone(),
        upstream_us: Some(us),
        total_us: us,
        request_hash: None,
        request_sha256: Some(hex::encode(Sha256::digest(body))),
        request_bytes: body.len() as u64,
        response_sha256: outcome.response_sha256.clone(),
        response_bytes: outcome.response_bytes,
        request_body: None,
        response_body: None,
    }
}

/// The message log record of a request of a client system to the pull
/// endpoints (`GET /pubsub/v1/events`, `POST /pubsub/v1/ack`): `x_road_id`
/// the request's id, `issue` the event ids it returned or acknowledged.
#[allow(clippy::too_many_arguments)]
pub fn client_record(
    x_road_id: &str,
    client: Option<&str>,
    service: &str,
    method: &str,
    path: &str,
    status: u16,
    error: Option<&str>,
    issue: Option<String>,
    request: &[u8],
    response: &[u8],
    start: DateTime<Utc>,
) -> ExchangeRecord {
    let end = Utc::now();
    let total = (end - start).num_microseconds().unwrap_or(0).max(0) as u64;
    ExchangeRecord {
        x_road_id: x_road_id.to_string(),
        start,
        end,
        client: client.map(str::to_string),
        service: Some(service.to_string()),
        user_id: None,
        issue,
        method: method.to_string(),
        path: path.to_string(),
        status,
        error: error.map(str::to_string),
        upstream_us: None,
        total_us: total,
        request_hash: None,
        request_sha256: Some(hex::encode(Sha256::digest(request))),
        request_bytes: request.len() as u64,
        response_sha256: hex::encode(Sha256::digest(response)),
        response_bytes: response.len() as u64,
        request_body: None,
        response_body: None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn schema(v: Value) -> Schema {
        Schema::compile(&v).unwrap()
    }

    fn messages(s: &Schema, v: Value) -> Vec<String> {
        s.validate(&v).iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn types_including_unions_and_integers() {
        let s = schema(json!({"type": "integer"}));
        assert!(s.validate(&json!(3)).is_empty());
        assert!(s.validate(&json!(3.0)).is_empty(), "3.0 is an integer");
        assert_eq!(
            messages(&s, json!(3.5)),
            [": expected integer, found number"]
        );
        assert_eq!(
            messages(&s, json!("3")),
            [": expected integer, found string"]
        );
        let s = schema(json!({"type": ["string", "null"]}));
        assert!(s.validate(&json!(null)).is_empty());
        assert!(s.validate(&json!("x")).is_empty());
        assert_eq!(
            messages(&s, json!(true)),
            [": expected string or null, found boolean"]
        );
        let s = schema(json!({"type": "number", "minimum": 0, "maximum": 10}));
        assert!(s.validate(&json!(2.5)).is_empty());
        assert_eq!(messages(&s, json!(11)), [": greater than 10"]);
        let s = schema(json!({"type": "boolean"}));
        assert!(s.validate(&json!(false)).is_empty());
    }

    #[test]
    fn objects_required_and_closed() {
        let s = schema(json!({
            "type": "object",
            "required": ["a", "b"],
            "additionalProperties": false,
            "properties": {"a": {"type": "string"}, "b": {"type": "object", "properties": {"c": {"type": "integer"}}}}
        }));
        assert!(
            s.validate(&json!({"a": "x", "b": {"c": 1, "d": 2}}))
                .is_empty()
        );
        let mut m = messages(&s, json!({"a": 1, "x/y": true, "b": {"c": "no"}}));
        m.sort();
        assert_eq!(
            m,
            [
                "/a: expected string, found integer",
                "/b/c: expected integer, found string",
                "/x~1y: no such member is allowed",
            ]
        );
        assert_eq!(
            messages(&s, json!({"a": "x"})),
            [": the member \"b\" is required"]
        );
    }

    #[test]
    fn strings_enum_and_arrays() {
        let s = schema(
            json!({"type": "string", "minLength": 2, "maxLength": 3, "pattern": "^[a-zà-ỹ]+$"}),
        );
        assert!(s.validate(&json!("ấp")).is_empty(), "length in characters");
        assert_eq!(messages(&s, json!("a")), [": shorter than 2 characters"]);
        assert_eq!(messages(&s, json!("abcd")), [": longer than 3 characters"]);
        assert_eq!(
            messages(&s, json!("A1")),
            [": does not match the pattern ^[a-zà-ỹ]+$"]
        );
        let s = schema(json!({"enum": ["a", 1, null]}));
        assert!(s.validate(&json!(1)).is_empty());
        assert!(s.validate(&json!(null)).is_empty());
        assert_eq!(
            messages(&s, json!("b")),
            [": \"b\" is not one of [\"a\",1,null]"]
        );
        let s = schema(json!({"type": "array", "items": {"type": "string"}}));
        assert!(s.validate(&json!(["a", "b"])).is_empty());
        assert_eq!(
            messages(&s, json!(["a", 2])),
            ["/1: expected string, found integer"]
        );
    }

    #[test]
    fn unsupported_or_malformed_schemas_are_refused() {
        for (bad, at) in [
            (json!({"oneOf": []}), "/oneOf"),
            (json!({"type": "date"}), "/type"),
            (
                json!({"additionalProperties": {"type": "string"}}),
                "/additionalProperties",
            ),
            (json!({"pattern": "("}), "/pattern"),
            (json!({"minLength": -1}), "/minLength"),
            (
                json!({"properties": {"a": {"allOf": []}}}),
                "/properties/a/allOf",
            ),
            (json!({"type": []}), "/type"),
        ] {
            let e = Schema::compile(&bad).unwrap_err();
            assert_eq!(e.at, at, "{bad}");
        }
        assert!(Schema::compile(&json!("string")).is_err());
        assert!(
            Schema::compile(&json!({"description": "x", "format": "date-time", "$schema": "y"}))
                .is_ok()
        );
    }

    #[test]
    fn builtin_types_cover_the_dossier_events_and_validate_real_payloads() {
        let types = EventTypes::builtin();
        assert_eq!(types.list().count(), DOSSIER_EVENTS.len() + 1);
        for name in [
            "dossier.submitted",
            "dossier.accepted",
            "dossier.refused",
            "dossier.completed",
            "dossier.result_returned",
            "dossier.late",
        ] {
            assert!(types.get(name).is_some(), "{name}");
        }
        // As the store writes it to the outbox.
        let payload = json!({"code": "UB00073-250801-0001", "agency": "UB00073",
            "from": "newly_registered", "status": "accepted",
            "due_at": "2025-08-06T09:00:00Z", "at": "2025-08-01T09:00:00.123456Z"});
        types.validate("dossier.accepted", &payload).unwrap();
        let submitted = json!({"code": "UB00073-250801-0001", "agency": "UB00073",
            "from": null, "status": "newly_registered", "due_at": null, "at": "2025-08-01T09:00:00Z"});
        types.validate("dossier.submitted", &submitted).unwrap();
        let err = types
            .validate(
                "dossier.accepted",
                &json!({"code": "x", "status": "flying"}),
            )
            .unwrap_err();
        let PublishError::Invalid { violations, .. } = err else {
            panic!("{err:?}")
        };
        assert!(violations.len() >= 4, "{violations:?}");
        assert_eq!(
            types.validate("dossier.unknown", &payload),
            Err(PublishError::UnknownType("dossier.unknown".into()))
        );
        let late = json!({"code": "UB00073-250801-0001", "agency": "UB00073",
            "status": "processing", "due_at": "2025-08-06T09:00:00Z", "at": "2025-08-07T00:00:00Z"});
        types.validate(DOSSIER_LATE, &late).unwrap();
        assert!(types.validate(DOSSIER_LATE, &payload).is_err());
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let b = Backoff {
            base: Duration::from_millis(100),
            max: Duration::from_millis(1000),
            max_attempts: 5,
        };
        let d: Vec<u128> = (1..=6).map(|n| b.delay(n).as_millis()).collect();
        assert_eq!(d, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(b.delay(200), Duration::from_millis(1000));
        assert!(!b.exhausted(4));
        assert!(b.exhausted(5));
    }

    #[test]
    fn event_ids_are_uuid_shaped_and_differ() {
        let a = new_event_id().unwrap();
        let b = new_event_id().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
    }

    #[test]
    fn push_urls() {
        assert!(check_push_url("http://127.0.0.1:9000/hook").is_ok());
        assert!(check_push_url("https://example.org/hook").is_ok());
        assert!(check_push_url("ftp://example.org/hook").is_err());
        assert!(check_push_url("/hook").is_err());
        assert!(check_push_url("not a url").is_err());
    }

    #[tokio::test]
    async fn push_reports_status_and_failures() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            for status in ["500 Internal Server Error", "204 No Content"] {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = vec![0u8; 4096];
                let _ = s.read(&mut buf).await.unwrap();
                let resp =
                    format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                s.write_all(resp.as_bytes()).await.unwrap();
            }
        });
        let c = PushClient::new(Duration::from_secs(1), Duration::from_secs(5), &[]).unwrap();
        let url = format!("http://{addr}/hook");
        let first = c
            .push(&url, "id-1", "dossier.accepted", Bytes::from_static(b"{}"))
            .await;
        assert_eq!(first.status, Some(500));
        assert!(!first.delivered());
        let second = c
            .push(&url, "id-1", "dossier.accepted", Bytes::from_static(b"{}"))
            .await;
        assert_eq!(second.status, Some(204));
        assert!(second.delivered(), "{second:?}");
        let rec = push_record(
            "VN",
            "id-1",
            "dossier.accepted",
            "VN/GOV/X/Y",
            7,
            2,
            &url,
            b"{}",
            Utc::now(),
            &second,
        );
        assert_eq!(rec.status, 204);
        assert_eq!(rec.service.as_deref(), Some("VN/pubsub/dossier.accepted"));
        // Nobody listens any more.
        let gone = c
            .push(&url, "id-2", "dossier.accepted", Bytes::from_static(b"{}"))
            .await;
        assert_eq!(gone.status, None);
        assert!(gone.error.is_some());
    }
}

//! The registry: who may call what.
//!
//! [`Registry`] is a plain serde document (stored by the caller, e.g. as JSON
//! in the main database): members, their subsystems, the services the
//! subsystems provide (with the upstream base URL behind each), access rights
//! of client subsystems to services (optionally narrowed to endpoints), API
//! keys and client certificates that authenticate client subsystems.
//!
//! Editing operations ([`Registry::add_member`], [`Registry::grant`], …)
//! validate the whole document after the change and return a [`Change`] that
//! describes it for the caller's audit record; nothing is changed when they
//! fail.
//!
//! [`CompiledRegistry`] is the read-only form the gateway uses on the hot
//! path: hash maps from identifiers, key hashes and certificate fingerprints,
//! with upstream URLs and endpoint patterns parsed once.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::id::{ClientId, ServiceId, percent_decode, validate_part};

/// Service codes that name metadata services and cannot be registered.
pub const RESERVED_SERVICE_CODES: [&str; 4] =
    ["listClients", "listMethods", "allowedMethods", "getOpenAPI"];

/// The registry document.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Registry {
    /// The X-Road instance of every identifier in this registry, e.g. `VN`.
    pub instance: String,
    #[serde(default)]
    pub members: Vec<Member>,
    #[serde(default)]
    pub subsystems: Vec<Subsystem>,
    #[serde(default)]
    pub services: Vec<Service>,
    #[serde(default)]
    pub access_rights: Vec<AccessRight>,
    #[serde(default)]
    pub api_keys: Vec<ApiKey>,
    #[serde(default)]
    pub client_certs: Vec<ClientCert>,
}

/// A member (an organisation): class (e.g. `GOV`) and code.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Member {
    pub class: String,
    pub code: String,
    pub name: String,
}

/// A subsystem (an information system of a member); clients and providers
/// are subsystems.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subsystem {
    pub id: ClientId,
    #[serde(default)]
    pub name: String,
}

/// A REST service provided by a subsystem.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Service {
    pub id: ServiceId,
    #[serde(default)]
    pub name: String,
    /// Base URL of the provider's system: `http://host[:port][/prefix]`. The
    /// request path after the service identifier is appended to it.
    pub upstream: String,
    /// The OpenAPI description (JSON or YAML text), served by `getOpenAPI`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub openapi: Option<String>,
    /// Endpoints listed by `listMethods` (informative; access is decided by
    /// the access rights).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<Endpoint>,
    /// Keep the request and response bodies in the message log (base64, up
    /// to `capture_limit` bytes each). Off by default: the log always keeps
    /// their SHA-256.
    #[serde(default)]
    pub capture_bodies: bool,
    /// Byte cap for captured bodies; the gateway's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capture_limit: Option<u64>,
    /// Upstream timeout for this service, overriding the gateway's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

impl Service {
    /// A service with defaults for everything but its id and upstream.
    pub fn new(id: ServiceId, upstream: &str) -> Self {
        Service {
            id,
            name: String::new(),
            upstream: upstream.to_owned(),
            openapi: None,
            endpoints: Vec::new(),
            capture_bodies: false,
            capture_limit: None,
            timeout_ms: None,
        }
    }
}

/// An endpoint: a method (`GET`, … or `*` for any) and a path pattern.
///
/// Path patterns start with `/`; a segment `*` or `{name}` matches exactly
/// one segment, a final `**` matches any number of segments (also none), any
/// other segment matches itself (after percent-decoding of the request).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Endpoint {
    pub method: String,
    pub path: String,
}

impl Endpoint {
    pub fn new(method: &str, path: &str) -> Self {
        Endpoint {
            method: method.to_owned(),
            path: path.to_owned(),
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method, self.path)
    }
}

/// The right of a client subsystem to call a service; when `endpoints` is
/// empty the whole service is allowed, otherwise only the listed endpoints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccessRight {
    pub client: ClientId,
    pub service: ServiceId,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<Endpoint>,
}

/// An API key bound to one client subsystem. Only the SHA-256 of the key is
/// stored; the clear key is shown once, when created.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKey {
    /// Public identifier of the key (not secret), e.g. for revocation.
    pub id: String,
    pub client: ClientId,
    #[serde(default)]
    pub label: String,
    /// Lowercase hex SHA-256 of the clear key.
    pub sha256: String,
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<DateTime<Utc>>,
}

/// A TLS client certificate bound to a client subsystem, by the SHA-256
/// fingerprint of its DER encoding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientCert {
    pub client: ClientId,
    /// Lowercase hex SHA-256 of the DER certificate.
    pub sha256: String,
    #[serde(default)]
    pub label: String,
}

/// One problem found by [`Registry::validate`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Where: e.g. `services[2].upstream`.
    pub at: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.at, self.message)
    }
}

/// Every problem of an invalid registry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid exchange registry: {}", .0.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("; "))]
pub struct Invalid(pub Vec<Problem>);

/// Why an editing operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    #[error("{0} already exists")]
    AlreadyExists(String),
    #[error("{0} does not exist")]
    NotFound(String),
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error("no random numbers: {0}")]
    Random(String),
}

/// A description of one registry change, for the caller's audit record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// Stable action name, e.g. `exchange.access.grant`.
    pub action: &'static str,
    /// What was changed, e.g. a service id.
    pub target: String,
    /// Human-readable description, including what a removal cascaded to.
    pub summary: String,
}

/// Why access was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("the client subsystem is not registered")]
    UnknownClient,
    #[error("the service is not registered")]
    UnknownService,
    #[error("the client has no access right to the service")]
    NoAccessRight,
    #[error("the client's access right does not cover this endpoint")]
    EndpointNotAllowed,
}

/// Lowercase hex SHA-256 of a DER certificate: the fingerprint stored in
/// [`ClientCert::sha256`].
pub fn cert_fingerprint(der: &[u8]) -> [u8; 32] {
    Sha256::digest(der).into()
}

/// SHA-256 of an API key.
pub fn api_key_hash(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// Normalises a fingerprint typed with colons, spaces or upper case to 64
/// lowercase hex digits.
pub fn normalize_fingerprint(s: &str) -> Option<String> {
    let hex: String = s
        .chars()
        .filter(|c| !matches!(c, ':' | ' '))
        .map(|c| c.to_ascii_lowercase())
        .collect();
    (hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit())).then_some(hex)
}

fn decode_hash(s: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out).ok()?;
    (s.chars().all(|c| !c.is_ascii_uppercase())).then_some(out)
}

// ---------------------------------------------------------------- patterns

#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Literal(String),
    One,
    Rest,
}

/// A compiled endpoint: method (None = any) and path pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointPattern {
    method: Option<String>,
    segments: Vec<Seg>,
}

impl EndpointPattern {
    /// Parses an endpoint; the error says what is wrong.
    pub fn parse(e: &Endpoint) -> Result<Self, String> {
        let method = match e.method.as_str() {
            "*" => None,
            m if !m.is_empty() && m.len() <= 32 && m.bytes().all(|b| b.is_ascii_uppercase()) => {
                Some(m.to_owned())
            }
            m => {
                return Err(format!(
                    "method {m:?} is neither * nor an upper-case HTTP method"
                ));
            }
        };
        let rest = e
            .path
            .strip_prefix('/')
            .ok_or_else(|| format!("path pattern {:?} does not start with /", e.path))?;
        let raw: Vec<&str> = if rest.is_empty() {
            Vec::new()
        } else {
            rest.trim_end_matches('/').split('/').collect()
        };
        let mut segments = Vec::with_capacity(raw.len());
        for (i, s) in raw.iter().enumerate() {
            let seg = match *s {
                "**" if i + 1 == raw.len() => Seg::Rest,
                "**" => return Err(format!("in {:?}, ** may only be the last segment", e.path)),
                "*" => Seg::One,
                s if s.starts_with('{') && s.ends_with('}') && s.len() > 2 => Seg::One,
                "" => return Err(format!("path pattern {:?} has an empty segment", e.path)),
                s if s.contains(['*', '{', '}', '?', '#']) => {
                    return Err(format!(
                        "segment {s:?} of {:?} is not a literal, *, ** or {{name}}",
                        e.path
                    ));
                }
                s => Seg::Literal(percent_decode(s).unwrap_or_else(|_| s.to_owned())),
            };
            segments.push(seg);
        }
        Ok(EndpointPattern { method, segments })
    }

    /// Whether the pattern matches a request; `path` is the service-relative
    /// path as received (percent-encoded, without query), `""` or `/...`.
    pub fn matches(&self, method: &str, path: &str) -> bool {
        if let Some(m) = &self.method
            && m != method
        {
            return false;
        }
        let trimmed = path.trim_start_matches('/').trim_end_matches('/');
        // An empty path has no segments (splitting "" would yield one).
        let mut req = trimmed.split('/').skip(usize::from(trimmed.is_empty()));
        for seg in &self.segments {
            match seg {
                Seg::Rest => return true,
                Seg::One => match req.next() {
                    Some(s) if !s.is_empty() => {}
                    _ => return false,
                },
                Seg::Literal(lit) => match req.next() {
                    Some(s) => {
                        let decoded = percent_decode(s).unwrap_or_else(|_| s.to_owned());
                        if &decoded != lit {
                            return false;
                        }
                    }
                    None => return false,
                },
            }
        }
        req.next().is_none()
    }
}

// ---------------------------------------------------------------- upstream

/// A parsed upstream base URL (`http` only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// `host:port` (or `host`).
    pub authority: String,
    /// Path prefix without a trailing `/` (may be empty).
    pub base_path: String,
}

impl Upstream {
    /// Parses `http://host[:port][/prefix]`.
    pub fn parse(url: &str) -> Result<Self, String> {
        let rest = if let Some(r) = url.strip_prefix("http://") {
            r
        } else if url.starts_with("https://") {
            return Err(
                "https upstreams are not supported yet; use http on a private network".into(),
            );
        } else {
            return Err(format!("upstream {url:?} is not an http:// URL"));
        };
        if url.contains(['?', '#']) || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!(
                "upstream {url:?} may not contain a query, a fragment or spaces"
            ));
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if authority.is_empty() || authority.contains('@') {
            return Err(format!("upstream {url:?} has no host (or has user info)"));
        }
        let uri = format!("http://{authority}{path}");
        uri.parse::<axum::http::Uri>()
            .map_err(|e| format!("upstream {url:?} is not a valid URL: {e}"))?;
        Ok(Upstream {
            authority: authority.to_owned(),
            base_path: path.trim_end_matches('/').to_owned(),
        })
    }

    /// The absolute URI for a service-relative path (`""` or `/...`, as
    /// received) and an optional raw query.
    pub fn uri(&self, rest: &str, query: Option<&str>) -> String {
        let mut s =
            String::with_capacity(16 + self.authority.len() + self.base_path.len() + rest.len());
        s.push_str("http://");
        s.push_str(&self.authority);
        s.push_str(&self.base_path);
        if rest.is_empty() {
            if self.base_path.is_empty() {
                s.push('/');
            }
        } else {
            s.push_str(rest);
        }
        if let Some(q) = query {
            s.push('?');
            s.push_str(q);
        }
        s
    }
}

// ---------------------------------------------------------------- validation

fn add(p: &mut Vec<Problem>, at: String, message: String) {
    p.push(Problem { at, message });
}

impl Registry {
    /// An empty registry for `instance`.
    pub fn new(instance: &str) -> Self {
        Registry {
            instance: instance.to_owned(),
            ..Registry::default()
        }
    }

    /// Every problem of the document; empty when it is valid.
    pub fn problems(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        let p = &mut problems;
        if let Err(e) = validate_part(&self.instance, "X-Road instance") {
            add(p, "instance".into(), e.to_string());
        }
        let members = self.member_problems(p);
        let subsystems = self.subsystem_problems(p, &members);
        let services = self.service_problems(p, &subsystems);
        self.right_problems(p, &subsystems, &services);
        self.credential_problems(p, &subsystems);
        problems
    }

    fn member_problems(&self, p: &mut Vec<Problem>) -> HashSet<(&str, &str)> {
        let mut members = HashSet::new();
        for (i, m) in self.members.iter().enumerate() {
            let at = format!("members[{i}]");
            if let Err(e) = validate_part(&m.class, "member class") {
                add(p, format!("{at}.class"), e.to_string());
            }
            if let Err(e) = validate_part(&m.code, "member code") {
                add(p, format!("{at}.code"), e.to_string());
            }
            if m.name.trim().is_empty() {
                add(p, format!("{at}.name"), "the member has no name".into());
            }
            if !members.insert((m.class.as_str(), m.code.as_str())) {
                add(
                    p,
                    at,
                    format!("member {}/{} is listed twice", m.class, m.code),
                );
            }
        }
        members
    }

    fn subsystem_problems<'a>(
        &'a self,
        p: &mut Vec<Problem>,
        members: &HashSet<(&str, &str)>,
    ) -> HashSet<&'a ClientId> {
        let mut subsystems = HashSet::new();
        for (i, s) in self.subsystems.iter().enumerate() {
            let at = format!("subsystems[{i}]");
            if s.id.instance != self.instance {
                add(
                    p,
                    format!("{at}.id"),
                    format!("{} is not in instance {}", s.id, self.instance),
                );
            }
            if !members.contains(&s.id.member_key()) {
                add(
                    p,
                    format!("{at}.id"),
                    format!(
                        "member {}/{} of {} is not registered",
                        s.id.class, s.id.member, s.id
                    ),
                );
            }
            if !subsystems.insert(&s.id) {
                add(p, at, format!("subsystem {} is listed twice", s.id));
            }
        }
        subsystems
    }

    fn service_problems<'a>(
        &'a self,
        p: &mut Vec<Problem>,
        subsystems: &HashSet<&ClientId>,
    ) -> HashSet<&'a ServiceId> {
        let mut services = HashSet::new();
        for (i, s) in self.services.iter().enumerate() {
            let at = format!("services[{i}]");
            if !subsystems.contains(&s.id.provider) {
                add(
                    p,
                    format!("{at}.id"),
                    format!("provider subsystem {} is not registered", s.id.provider),
                );
            }
            if RESERVED_SERVICE_CODES.contains(&s.id.service_code.as_str()) {
                add(
                    p,
                    format!("{at}.id"),
                    format!("{} is the name of a metadata service", s.id.service_code),
                );
            }
            if let Err(e) = Upstream::parse(&s.upstream) {
                add(p, format!("{at}.upstream"), e);
            }
            for (j, e) in s.endpoints.iter().enumerate() {
                if let Err(m) = EndpointPattern::parse(e) {
                    add(p, format!("{at}.endpoints[{j}]"), m);
                }
            }
            if s.timeout_ms == Some(0) {
                add(
                    p,
                    format!("{at}.timeout_ms"),
                    "the timeout must be positive".into(),
                );
            }
            if !services.insert(&s.id) {
                add(p, at, format!("service {} is listed twice", s.id));
            }
        }
        services
    }

    fn right_problems(
        &self,
        p: &mut Vec<Problem>,
        subsystems: &HashSet<&ClientId>,
        services: &HashSet<&ServiceId>,
    ) {
        let mut rights = HashSet::new();
        for (i, r) in self.access_rights.iter().enumerate() {
            let at = format!("access_rights[{i}]");
            if !subsystems.contains(&r.client) {
                add(
                    p,
                    format!("{at}.client"),
                    format!("client subsystem {} is not registered", r.client),
                );
            }
            if !services.contains(&r.service) {
                add(
                    p,
                    format!("{at}.service"),
                    format!("service {} is not registered", r.service),
                );
            }
            for (j, e) in r.endpoints.iter().enumerate() {
                if let Err(m) = EndpointPattern::parse(e) {
                    add(p, format!("{at}.endpoints[{j}]"), m);
                }
            }
            if !rights.insert((&r.client, &r.service)) {
                add(
                    p,
                    at,
                    format!("the right of {} to {} is listed twice", r.client, r.service),
                );
            }
        }
    }

    fn credential_problems(&self, p: &mut Vec<Problem>, subsystems: &HashSet<&ClientId>) {
        let mut key_ids = HashSet::new();
        let mut key_hashes = HashSet::new();
        for (i, k) in self.api_keys.iter().enumerate() {
            let at = format!("api_keys[{i}]");
            if k.id.is_empty()
                || !k
                    .id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                add(
                    p,
                    format!("{at}.id"),
                    "the key id must be letters, digits, - or _".into(),
                );
            }
            if !subsystems.contains(&k.client) {
                add(
                    p,
                    format!("{at}.client"),
                    format!("client subsystem {} is not registered", k.client),
                );
            }
            if decode_hash(&k.sha256).is_none() {
                add(
                    p,
                    format!("{at}.sha256"),
                    "not 64 lowercase hex digits".into(),
                );
            }
            if !key_ids.insert(&k.id) {
                add(
                    p,
                    format!("{at}.id"),
                    format!("key id {} is used twice", k.id),
                );
            }
            if !key_hashes.insert(&k.sha256) {
                add(
                    p,
                    format!("{at}.sha256"),
                    "the same key is registered twice".into(),
                );
            }
        }
        let mut fingerprints = HashSet::new();
        for (i, c) in self.client_certs.iter().enumerate() {
            let at = format!("client_certs[{i}]");
            if !subsystems.contains(&c.client) {
                add(
                    p,
                    format!("{at}.client"),
                    format!("client subsystem {} is not registered", c.client),
                );
            }
            if decode_hash(&c.sha256).is_none() {
                add(
                    p,
                    format!("{at}.sha256"),
                    "not 64 lowercase hex digits".into(),
                );
            }
            if !fingerprints.insert(&c.sha256) {
                add(
                    p,
                    format!("{at}.sha256"),
                    "the same certificate is registered twice".into(),
                );
            }
        }
    }

    /// `Ok` when the document is valid, otherwise every problem.
    pub fn validate(&self) -> Result<(), Invalid> {
        let p = self.problems();
        if p.is_empty() {
            Ok(())
        } else {
            Err(Invalid(p))
        }
    }

    /// Decides access on the document itself (linear scans; the gateway uses
    /// [`CompiledRegistry::check_access`]). `path` is the service-relative
    /// path.
    pub fn check_access(
        &self,
        client: &ClientId,
        service: &ServiceId,
        method: &str,
        path: &str,
    ) -> Result<(), Denied> {
        if !self.services.iter().any(|s| &s.id == service) {
            return Err(Denied::UnknownService);
        }
        if !self.subsystems.iter().any(|s| &s.id == client) {
            return Err(Denied::UnknownClient);
        }
        let right = self
            .access_rights
            .iter()
            .find(|r| &r.client == client && &r.service == service)
            .ok_or(Denied::NoAccessRight)?;
        if right.endpoints.is_empty() {
            return Ok(());
        }
        let allowed = right
            .endpoints
            .iter()
            .filter_map(|e| EndpointPattern::parse(e).ok())
            .any(|p| p.matches(method, path));
        if allowed {
            Ok(())
        } else {
            Err(Denied::EndpointNotAllowed)
        }
    }

    // ------------------------------------------------------------ editing

    /// Applies `f` to a copy, validates the copy, and keeps it only if valid.
    fn edit<T>(
        &mut self,
        f: impl FnOnce(&mut Registry) -> Result<T, EditError>,
    ) -> Result<T, EditError> {
        let mut next = self.clone();
        let out = f(&mut next)?;
        next.validate()?;
        *self = next;
        Ok(out)
    }

    pub fn add_member(&mut self, class: &str, code: &str, name: &str) -> Result<Change, EditError> {
        self.edit(|r| {
            if r.members.iter().any(|m| m.class == class && m.code == code) {
                return Err(EditError::AlreadyExists(format!("member {class}/{code}")));
            }
            r.members.push(Member {
                class: class.to_owned(),
                code: code.to_owned(),
                name: name.to_owned(),
            });
            Ok(Change {
                action: "exchange.member.add",
                target: format!("{}/{class}/{code}", r.instance),
                summary: format!("added member {class}/{code} ({name})"),
            })
        })
    }

    /// Removes a member with its subsystems, their services, and every
    /// access right, key and certificate that involved them.
    pub fn remove_member(&mut self, class: &str, code: &str) -> Result<Change, EditError> {
        self.edit(|r| {
            let before = r.members.len();
            r.members.retain(|m| !(m.class == class && m.code == code));
            if r.members.len() == before {
                return Err(EditError::NotFound(format!("member {class}/{code}")));
            }
            let gone: Vec<ClientId> = r
                .subsystems
                .iter()
                .filter(|s| s.id.class == class && s.id.member == code)
                .map(|s| s.id.clone())
                .collect();
            let cascade = r.remove_subsystems(&gone);
            Ok(Change {
                action: "exchange.member.remove",
                target: format!("{}/{class}/{code}", r.instance),
                summary: format!("removed member {class}/{code}{cascade}"),
            })
        })
    }

    pub fn add_subsystem(&mut self, id: &ClientId, name: &str) -> Result<Change, EditError> {
        self.edit(|r| {
            if r.subsystems.iter().any(|s| &s.id == id) {
                return Err(EditError::AlreadyExists(format!("subsystem {id}")));
            }
            r.subsystems.push(Subsystem {
                id: id.clone(),
                name: name.to_owned(),
            });
            Ok(Change {
                action: "exchange.subsystem.add",
                target: id.to_string(),
                summary: format!("added subsystem {id} ({name})"),
            })
        })
    }

    /// Removes a subsystem, the services it provides and every access right,
    /// key and certificate that involved it.
    pub fn remove_subsystem(&mut self, id: &ClientId) -> Result<Change, EditError> {
        self.edit(|r| {
            if !r.subsystems.iter().any(|s| &s.id == id) {
                return Err(EditError::NotFound(format!("subsystem {id}")));
            }
            let cascade = r.remove_subsystems(std::slice::from_ref(id));
            Ok(Change {
                action: "exchange.subsystem.remove",
                target: id.to_string(),
                summary: format!("removed subsystem {id}{cascade}"),
            })
        })
    }

    fn remove_subsystems(&mut self, ids: &[ClientId]) -> String {
        let n_sub = self.subsystems.len();
        self.subsystems.retain(|s| !ids.contains(&s.id));
        let n_svc = self.services.len();
        self.services.retain(|s| !ids.contains(&s.id.provider));
        let services: HashSet<&ServiceId> = self.services.iter().map(|s| &s.id).collect();
        let n_rights = self.access_rights.len();
        self.access_rights
            .retain(|a| !ids.contains(&a.client) && services.contains(&a.service));
        let n_keys = self.api_keys.len();
        self.api_keys.retain(|k| !ids.contains(&k.client));
        let n_certs = self.client_certs.len();
        self.client_certs.retain(|c| !ids.contains(&c.client));
        format!(
            " (with {} subsystem(s), {} service(s), {} access right(s), {} API key(s), {} certificate(s))",
            n_sub - self.subsystems.len(),
            n_svc - self.services.len(),
            n_rights - self.access_rights.len(),
            n_keys - self.api_keys.len(),
            n_certs - self.client_certs.len()
        )
    }

    /// Adds a service, or replaces the one with the same id.
    pub fn put_service(&mut self, service: Service) -> Result<Change, EditError> {
        self.edit(|r| {
            let id = service.id.clone();
            let summary = format!(
                "upstream {}, body capture {}",
                service.upstream,
                if service.capture_bodies { "on" } else { "off" }
            );
            let (action, verb) = match r.services.iter_mut().find(|s| s.id == id) {
                Some(existing) => {
                    *existing = service;
                    ("exchange.service.update", "updated")
                }
                None => {
                    r.services.push(service);
                    ("exchange.service.add", "added")
                }
            };
            Ok(Change {
                action,
                target: id.to_string(),
                summary: format!("{verb} service {id}: {summary}"),
            })
        })
    }

    /// Removes a service and the access rights to it.
    pub fn remove_service(&mut self, id: &ServiceId) -> Result<Change, EditError> {
        self.edit(|r| {
            let before = r.services.len();
            r.services.retain(|s| &s.id != id);
            if r.services.len() == before {
                return Err(EditError::NotFound(format!("service {id}")));
            }
            let n = r.access_rights.len();
            r.access_rights.retain(|a| &a.service != id);
            Ok(Change {
                action: "exchange.service.remove",
                target: id.to_string(),
                summary: format!(
                    "removed service {id} (with {} access right(s))",
                    n - r.access_rights.len()
                ),
            })
        })
    }

    /// Grants `client` access to `service` (only the `endpoints` when not
    /// empty); replaces an existing right of the same pair.
    pub fn grant(
        &mut self,
        client: &ClientId,
        service: &ServiceId,
        endpoints: Vec<Endpoint>,
    ) -> Result<Change, EditError> {
        self.edit(|r| {
            let scope = if endpoints.is_empty() {
                "the whole service".to_owned()
            } else {
                endpoints
                    .iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let right = AccessRight {
                client: client.clone(),
                service: service.clone(),
                endpoints,
            };
            let verb = match r
                .access_rights
                .iter_mut()
                .find(|a| &a.client == client && &a.service == service)
            {
                Some(existing) => {
                    *existing = right;
                    "changed"
                }
                None => {
                    r.access_rights.push(right);
                    "granted"
                }
            };
            Ok(Change {
                action: "exchange.access.grant",
                target: format!("{client} -> {service}"),
                summary: format!("{verb} access of {client} to {service}: {scope}"),
            })
        })
    }

    pub fn revoke(&mut self, client: &ClientId, service: &ServiceId) -> Result<Change, EditError> {
        self.edit(|r| {
            let before = r.access_rights.len();
            r.access_rights
                .retain(|a| !(&a.client == client && &a.service == service));
            if r.access_rights.len() == before {
                return Err(EditError::NotFound(format!(
                    "access right of {client} to {service}"
                )));
            }
            Ok(Change {
                action: "exchange.access.revoke",
                target: format!("{client} -> {service}"),
                summary: format!("revoked access of {client} to {service}"),
            })
        })
    }

    /// Creates an API key for `client`. Returns the change and the clear key,
    /// which is not stored and cannot be shown again.
    pub fn add_api_key(
        &mut self,
        client: &ClientId,
        label: &str,
        now: DateTime<Utc>,
    ) -> Result<(Change, String), EditError> {
        let mut secret = [0u8; 32];
        let mut id = [0u8; 6];
        getrandom::fill(&mut secret).map_err(|e| EditError::Random(e.to_string()))?;
        getrandom::fill(&mut id).map_err(|e| EditError::Random(e.to_string()))?;
        let key = format!("xrk_{}", hex::encode(secret));
        let id = format!("k{}", hex::encode(id));
        let change = self.edit(|r| {
            r.api_keys.push(ApiKey {
                id: id.clone(),
                client: client.clone(),
                label: label.to_owned(),
                sha256: hex::encode(api_key_hash(&key)),
                enabled: true,
                created_at: Some(now),
            });
            Ok(Change {
                action: "exchange.apikey.add",
                target: client.to_string(),
                summary: format!("created API key {id} ({label}) for {client}"),
            })
        })?;
        Ok((change, key))
    }

    /// Disables an API key (kept in the registry for the record).
    pub fn revoke_api_key(&mut self, id: &str) -> Result<Change, EditError> {
        self.edit(|r| {
            let k = r
                .api_keys
                .iter_mut()
                .find(|k| k.id == id)
                .ok_or_else(|| EditError::NotFound(format!("API key {id}")))?;
            k.enabled = false;
            Ok(Change {
                action: "exchange.apikey.revoke",
                target: k.client.to_string(),
                summary: format!("revoked API key {id} ({}) of {}", k.label, k.client),
            })
        })
    }

    /// Binds a certificate (by fingerprint; colons and upper case accepted)
    /// to `client`.
    pub fn add_client_cert(
        &mut self,
        client: &ClientId,
        fingerprint: &str,
        label: &str,
    ) -> Result<Change, EditError> {
        self.edit(|r| {
            let sha256 = normalize_fingerprint(fingerprint).ok_or_else(|| {
                EditError::Invalid(Invalid(vec![Problem {
                    at: "fingerprint".into(),
                    message: "not a SHA-256 fingerprint (64 hex digits)".into(),
                }]))
            })?;
            if r.client_certs.iter().any(|c| c.sha256 == sha256) {
                return Err(EditError::AlreadyExists(format!("certificate {sha256}")));
            }
            r.client_certs.push(ClientCert {
                client: client.clone(),
                sha256: sha256.clone(),
                label: label.to_owned(),
            });
            Ok(Change {
                action: "exchange.cert.add",
                target: client.to_string(),
                summary: format!("bound certificate {sha256} ({label}) to {client}"),
            })
        })
    }

    pub fn remove_client_cert(&mut self, fingerprint: &str) -> Result<Change, EditError> {
        self.edit(|r| {
            let sha256 = normalize_fingerprint(fingerprint).unwrap_or_default();
            let i = r
                .client_certs
                .iter()
                .position(|c| c.sha256 == sha256)
                .ok_or_else(|| EditError::NotFound(format!("certificate {fingerprint}")))?;
            let c = r.client_certs.remove(i);
            Ok(Change {
                action: "exchange.cert.remove",
                target: c.client.to_string(),
                summary: format!(
                    "unbound certificate {} ({}) from {}",
                    c.sha256, c.label, c.client
                ),
            })
        })
    }
}

// ---------------------------------------------------------------- compiled

/// A service as the gateway uses it.
#[derive(Debug, Clone)]
pub struct ServiceEntry {
    pub id: ServiceId,
    pub upstream: Upstream,
    /// Capture cap in bytes when body capture is on.
    pub capture_limit: Option<u64>,
    pub timeout: Option<Duration>,
    /// Index in [`Registry::services`].
    pub index: usize,
}

/// The registry compiled for lookups; immutable, shared behind an `Arc` and
/// replaced as a whole on change.
#[derive(Debug)]
pub struct CompiledRegistry {
    source: Registry,
    subsystems: HashMap<ClientId, usize>,
    services: HashMap<ServiceId, Arc<ServiceEntry>>,
    rights: HashMap<ClientId, HashMap<ServiceId, Vec<EndpointPattern>>>,
    api_keys: HashMap<[u8; 32], ClientId>,
    certs: HashMap<[u8; 32], ClientId>,
}

impl CompiledRegistry {
    /// Validates and compiles; `default_capture_limit` applies to services
    /// that capture bodies without their own cap.
    pub fn compile(registry: Registry, default_capture_limit: u64) -> Result<Self, Invalid> {
        registry.validate()?;
        let mut problems = Vec::new();
        let subsystems = registry
            .subsystems
            .iter()
            .enumerate()
            .map(|(i, s)| (s.id.clone(), i))
            .collect();
        let mut services = HashMap::new();
        for (index, s) in registry.services.iter().enumerate() {
            match Upstream::parse(&s.upstream) {
                Ok(upstream) => {
                    services.insert(
                        s.id.clone(),
                        Arc::new(ServiceEntry {
                            id: s.id.clone(),
                            upstream,
                            capture_limit: s
                                .capture_bodies
                                .then(|| s.capture_limit.unwrap_or(default_capture_limit)),
                            timeout: s.timeout_ms.map(Duration::from_millis),
                            index,
                        }),
                    );
                }
                Err(message) => problems.push(Problem {
                    at: format!("services[{index}].upstream"),
                    message,
                }),
            }
        }
        let mut rights: HashMap<ClientId, HashMap<ServiceId, Vec<EndpointPattern>>> =
            HashMap::new();
        for (i, r) in registry.access_rights.iter().enumerate() {
            let mut patterns = Vec::with_capacity(r.endpoints.len());
            for (j, e) in r.endpoints.iter().enumerate() {
                match EndpointPattern::parse(e) {
                    Ok(p) => patterns.push(p),
                    Err(message) => problems.push(Problem {
                        at: format!("access_rights[{i}].endpoints[{j}]"),
                        message,
                    }),
                }
            }
            rights
                .entry(r.client.clone())
                .or_default()
                .insert(r.service.clone(), patterns);
        }
        let mut api_keys = HashMap::new();
        for k in registry.api_keys.iter().filter(|k| k.enabled) {
            if let Some(h) = decode_hash(&k.sha256) {
                api_keys.insert(h, k.client.clone());
            }
        }
        let mut certs = HashMap::new();
        for c in &registry.client_certs {
            if let Some(h) = decode_hash(&c.sha256) {
                certs.insert(h, c.client.clone());
            }
        }
        if !problems.is_empty() {
            return Err(Invalid(problems));
        }
        Ok(CompiledRegistry {
            source: registry,
            subsystems,
            services,
            rights,
            api_keys,
            certs,
        })
    }

    /// The document this was compiled from.
    pub fn source(&self) -> &Registry {
        &self.source
    }

    pub fn instance(&self) -> &str {
        &self.source.instance
    }

    pub fn is_subsystem(&self, id: &ClientId) -> bool {
        self.subsystems.contains_key(id)
    }

    pub fn subsystem(&self, id: &ClientId) -> Option<&Subsystem> {
        self.subsystems.get(id).map(|i| &self.source.subsystems[*i])
    }

    pub fn service(&self, id: &ServiceId) -> Option<&Arc<ServiceEntry>> {
        self.services.get(id)
    }

    /// The full registry entry of a compiled service.
    pub fn service_doc(&self, entry: &ServiceEntry) -> Option<&Service> {
        self.source.services.get(entry.index)
    }

    /// Resolves the service of a `/r1/` path from its decoded identifier
    /// segments (five, or six when the sixth could be a version). A sixth
    /// segment is the version when a service with that version exists;
    /// otherwise it belongs to the service path. Returns the entry and the
    /// number of segments the identifier took (5 or 6).
    pub fn resolve(&self, segments: &[String]) -> Option<(&Arc<ServiceEntry>, usize)> {
        if segments.len() < 5 {
            return None;
        }
        let provider = ClientId {
            instance: segments[0].clone(),
            class: segments[1].clone(),
            member: segments[2].clone(),
            subsystem: segments[3].clone(),
        };
        let mut id = ServiceId {
            provider,
            service_code: segments[4].clone(),
            version: segments.get(5).cloned(),
        };
        if id.version.is_some() {
            if let Some(e) = self.services.get(&id) {
                return Some((e, 6));
            }
            id.version = None;
        }
        self.services.get(&id).map(|e| (e, 5))
    }

    /// The subsystem an API key authenticates (enabled keys only).
    pub fn client_for_api_key(&self, key: &str) -> Option<&ClientId> {
        self.api_keys.get(&api_key_hash(key))
    }

    /// The subsystem a client certificate (by fingerprint) authenticates.
    pub fn client_for_cert(&self, fingerprint: &[u8; 32]) -> Option<&ClientId> {
        self.certs.get(fingerprint)
    }

    /// Decides access; `path` is the service-relative path as received.
    pub fn check_access(
        &self,
        client: &ClientId,
        service: &ServiceId,
        method: &str,
        path: &str,
    ) -> Result<(), Denied> {
        if !self.services.contains_key(service) {
            return Err(Denied::UnknownService);
        }
        if !self.subsystems.contains_key(client) {
            return Err(Denied::UnknownClient);
        }
        let patterns = self
            .rights
            .get(client)
            .and_then(|m| m.get(service))
            .ok_or(Denied::NoAccessRight)?;
        if patterns.is_empty() || patterns.iter().any(|p| p.matches(method, path)) {
            Ok(())
        } else {
            Err(Denied::EndpointNotAllowed)
        }
    }

    /// The services a provider subsystem offers, in registry order.
    pub fn services_of<'a>(
        &'a self,
        provider: &'a ClientId,
    ) -> impl Iterator<Item = &'a Service> + 'a {
        self.source
            .services
            .iter()
            .filter(move |s| &s.id.provider == provider)
    }

    /// The access right of `client` to `service`, if any.
    pub fn right(&self, client: &ClientId, service: &ServiceId) -> Option<&AccessRight> {
        self.source
            .access_rights
            .iter()
            .find(|a| &a.client == client && &a.service == service)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn cid(s: &str) -> ClientId {
        s.parse().unwrap()
    }
    fn sid(s: &str) -> ServiceId {
        s.parse().unwrap()
    }

    fn sample() -> Registry {
        let mut r = Registry::new("VN");
        r.add_member("GOV", "H26", "Hà Nội").unwrap();
        r.add_member("GOV", "BCA", "Bộ Công an").unwrap();
        r.add_subsystem(&cid("VN/GOV/H26/MOTCUA"), "Một cửa")
            .unwrap();
        r.add_subsystem(&cid("VN/GOV/BCA/DANCU"), "Dân cư").unwrap();
        r.put_service(Service::new(
            sid("VN/GOV/BCA/DANCU/citizen"),
            "http://127.0.0.1:9000/api",
        ))
        .unwrap();
        r.put_service(Service::new(
            sid("VN/GOV/BCA/DANCU/citizen/v2"),
            "http://127.0.0.1:9001",
        ))
        .unwrap();
        r
    }

    #[test]
    fn editing_builds_a_valid_registry_and_describes_changes() {
        let mut r = sample();
        let c = r
            .grant(
                &cid("VN/GOV/H26/MOTCUA"),
                &sid("VN/GOV/BCA/DANCU/citizen"),
                vec![],
            )
            .unwrap();
        assert_eq!(c.action, "exchange.access.grant");
        assert!(c.summary.contains("whole service"), "{}", c.summary);
        assert!(r.validate().is_ok());
        let json = serde_json::to_string(&r).unwrap();
        let back: Registry = serde_json::from_str(&json).unwrap();
        assert_eq!(back, r);
        // Duplicates and dangling references are refused without change.
        let before = r.clone();
        assert!(matches!(
            r.add_member("GOV", "H26", "x"),
            Err(EditError::AlreadyExists(_))
        ));
        assert!(matches!(
            r.add_subsystem(&cid("VN/GOV/NOPE/S"), "x"),
            Err(EditError::Invalid(_))
        ));
        assert!(matches!(
            r.grant(
                &cid("VN/GOV/H26/NOPE"),
                &sid("VN/GOV/BCA/DANCU/citizen"),
                vec![]
            ),
            Err(EditError::Invalid(_))
        ));
        assert_eq!(r, before);
    }

    #[test]
    fn validate_lists_every_problem() {
        let mut r = sample();
        r.instance = "V N".into();
        r.services
            .push(Service::new(sid("VN/GOV/X/Y/listMethods"), "https://x"));
        r.access_rights.push(AccessRight {
            client: cid("VN/GOV/H26/GHOST"),
            service: sid("VN/GOV/BCA/DANCU/nothing"),
            endpoints: vec![Endpoint::new("get", "x/**/y")],
        });
        r.api_keys.push(ApiKey {
            id: "k 1".into(),
            client: cid("VN/GOV/H26/MOTCUA"),
            label: String::new(),
            sha256: "ABC".into(),
            enabled: true,
            created_at: None,
        });
        let problems = r.problems();
        let text = problems
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join("\n");
        for needle in [
            "instance:",
            "subsystems[0].id: VN/GOV/H26/MOTCUA is not in instance V N",
            "services[2].id: provider subsystem VN/GOV/X/Y is not registered",
            "metadata service",
            "https upstreams are not supported",
            "access_rights[0].client",
            "access_rights[0].service",
            "access_rights[0].endpoints[0]",
            "api_keys[0].id",
            "api_keys[0].sha256",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
    }

    #[test]
    fn endpoint_patterns() {
        let p = |m: &str, path: &str| EndpointPattern::parse(&Endpoint::new(m, path)).unwrap();
        assert!(p("GET", "/pets").matches("GET", "/pets"));
        assert!(p("GET", "/pets").matches("GET", "/pets/"));
        assert!(!p("GET", "/pets").matches("POST", "/pets"));
        assert!(!p("GET", "/pets").matches("GET", "/pets/1"));
        assert!(p("*", "/pets/{id}").matches("DELETE", "/pets/1"));
        assert!(!p("*", "/pets/{id}").matches("DELETE", "/pets"));
        assert!(p("GET", "/pets/*/photos").matches("GET", "/pets/7/photos"));
        assert!(p("GET", "/pets/**").matches("GET", "/pets"));
        assert!(p("GET", "/pets/**").matches("GET", "/pets/1/2/3"));
        assert!(p("GET", "/**").matches("GET", ""));
        assert!(p("GET", "/").matches("GET", ""));
        assert!(p("GET", "/").matches("GET", "/"));
        assert!(!p("GET", "/").matches("GET", "/x"));
        assert!(p("GET", "/c%C3%A1").matches("GET", "/c%C3%A1"));
        assert!(p("GET", "/cá").matches("GET", "/c%C3%A1"));
        for bad in ["pets", "/a/**/b", "/a//b", "/a*b", ""] {
            assert!(
                EndpointPattern::parse(&Endpoint::new("GET", bad)).is_err(),
                "{bad}"
            );
        }
        assert!(EndpointPattern::parse(&Endpoint::new("get", "/")).is_err());
    }

    #[test]
    fn access_checks_on_document_and_compiled_form_agree() {
        let mut r = sample();
        let me = cid("VN/GOV/H26/MOTCUA");
        let other = cid("VN/GOV/BCA/DANCU");
        let svc = sid("VN/GOV/BCA/DANCU/citizen");
        let v2 = sid("VN/GOV/BCA/DANCU/citizen/v2");
        r.grant(&me, &svc, vec![Endpoint::new("GET", "/people/{id}")])
            .unwrap();
        r.grant(&other, &v2, vec![]).unwrap();
        let c = CompiledRegistry::compile(r.clone(), 1024).unwrap();
        let cases = [
            (&me, &svc, "GET", "/people/1", Ok(())),
            (
                &me,
                &svc,
                "POST",
                "/people/1",
                Err(Denied::EndpointNotAllowed),
            ),
            (&me, &v2, "GET", "/people/1", Err(Denied::NoAccessRight)),
            (&other, &v2, "DELETE", "/anything/at/all", Ok(())),
            (
                &other,
                &sid("VN/GOV/BCA/DANCU/nope"),
                "GET",
                "/",
                Err(Denied::UnknownService),
            ),
            (
                &cid("VN/GOV/BCA/GHOST"),
                &svc,
                "GET",
                "/",
                Err(Denied::UnknownClient),
            ),
        ];
        for (client, service, m, p, want) in cases {
            assert_eq!(
                r.check_access(client, service, m, p),
                want,
                "{client} {service} {m} {p}"
            );
            assert_eq!(
                c.check_access(client, service, m, p),
                want,
                "{client} {service} {m} {p}"
            );
        }
        r.revoke(&me, &svc).unwrap();
        assert_eq!(
            r.check_access(&me, &svc, "GET", "/people/1"),
            Err(Denied::NoAccessRight)
        );
        assert!(matches!(r.revoke(&me, &svc), Err(EditError::NotFound(_))));
    }

    #[test]
    fn resolve_prefers_a_registered_version() {
        let c = CompiledRegistry::compile(sample(), 1024).unwrap();
        let seg = |s: &str| s.split('/').map(str::to_owned).collect::<Vec<_>>();
        let (e, n) = c.resolve(&seg("VN/GOV/BCA/DANCU/citizen/v2")).unwrap();
        assert_eq!(
            (e.id.to_string().as_str(), n),
            ("VN/GOV/BCA/DANCU/citizen/v2", 6)
        );
        let (e, n) = c.resolve(&seg("VN/GOV/BCA/DANCU/citizen/people")).unwrap();
        assert_eq!(
            (e.id.to_string().as_str(), n),
            ("VN/GOV/BCA/DANCU/citizen", 5)
        );
        let (_, n) = c.resolve(&seg("VN/GOV/BCA/DANCU/citizen")).unwrap();
        assert_eq!(n, 5);
        assert!(c.resolve(&seg("VN/GOV/BCA/DANCU/other")).is_none());
    }

    #[test]
    fn api_keys_and_certificates_authenticate_until_revoked() {
        let mut r = sample();
        let me = cid("VN/GOV/H26/MOTCUA");
        let (change, key) = r.add_api_key(&me, "prefill", Utc::now()).unwrap();
        assert!(key.starts_with("xrk_") && key.len() == 68);
        assert!(
            !change.summary.contains(&key),
            "the clear key must not be audited"
        );
        assert!(!serde_json::to_string(&r).unwrap().contains(&key));
        let fp = cert_fingerprint(b"not really DER");
        let colons = hex::encode_upper(fp)
            .as_bytes()
            .chunks(2)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect::<Vec<_>>()
            .join(":");
        r.add_client_cert(&me, &colons, "motcua prod").unwrap();
        let c = CompiledRegistry::compile(r.clone(), 1024).unwrap();
        assert_eq!(c.client_for_api_key(&key), Some(&me));
        assert_eq!(c.client_for_api_key("xrk_wrong"), None);
        assert_eq!(c.client_for_cert(&fp), Some(&me));
        let id = r.api_keys[0].id.clone();
        r.revoke_api_key(&id).unwrap();
        r.remove_client_cert(&hex::encode(fp)).unwrap();
        let c = CompiledRegistry::compile(r, 1024).unwrap();
        assert_eq!(c.client_for_api_key(&key), None);
        assert_eq!(c.client_for_cert(&fp), None);
    }

    #[test]
    fn removing_a_member_cascades() {
        let mut r = sample();
        let me = cid("VN/GOV/H26/MOTCUA");
        r.grant(&me, &sid("VN/GOV/BCA/DANCU/citizen"), vec![])
            .unwrap();
        r.add_api_key(&me, "k", Utc::now()).unwrap();
        let c = r.remove_member("GOV", "BCA").unwrap();
        assert!(
            c.summary
                .contains("1 subsystem(s), 2 service(s), 1 access right(s)"),
            "{}",
            c.summary
        );
        assert!(r.services.is_empty() && r.access_rights.is_empty());
        assert_eq!(r.api_keys.len(), 1);
        let c = r.remove_subsystem(&me).unwrap();
        assert!(c.summary.contains("1 API key(s)"), "{}", c.summary);
        assert!(r.validate().is_ok());
    }

    #[test]
    fn upstream_urls() {
        let u = Upstream::parse("http://127.0.0.1:9000/api/").unwrap();
        assert_eq!(
            u.uri("/people/1", Some("a=b")),
            "http://127.0.0.1:9000/api/people/1?a=b"
        );
        assert_eq!(u.uri("", None), "http://127.0.0.1:9000/api");
        let u = Upstream::parse("http://svc").unwrap();
        assert_eq!(u.uri("", None), "http://svc/");
        assert!(Upstream::parse("ftp://x").is_err());
        assert!(Upstream::parse("http://x/?q").is_err());
        assert!(Upstream::parse("http://u@x/").is_err());
        assert!(Upstream::parse("http:///x").is_err());
    }
}

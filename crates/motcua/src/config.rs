//! Configuration: defaults → `motcua.toml` → `MOTCUA_*` environment → flags.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use motcua_domain::calendar::CalendarConfig;
use motcua_store::{LocalObjectStore, ObjectStore, S3ObjectStore, S3Options};
use serde::{Deserialize, Serialize, Serializer};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Address of the portal, back office and API.
    pub listen: String,
    /// Where the database (SQLite) and attachments live.
    pub data_dir: PathBuf,
    /// `sqlite://…` or `postgres://…`; defaults to `sqlite://<data_dir>/motcua.db`.
    pub database_url: Option<String>,
    /// `full` (survives power loss) or `normal` (survives a process crash).
    pub durability: String,
    /// Where `serve --demo` imports procedures from on first start.
    pub procedures_dir: PathBuf,
    pub token_ttl_hours: i64,
    pub max_file_mb: u64,
    /// `text` or `json`.
    pub log_format: String,
    pub calendar: CalendarConfig,
    /// Where attachments are stored.
    pub objects: ObjectsConfig,
    /// The data exchange gateway.
    pub exchange: ExchangeConfig,
    /// Publish and subscribe over the exchange (push retries, lateness).
    pub pubsub: crate::pubsub::PubSubConfig,
    /// The audit chain's signing key and checkpoint copy.
    pub audit: crate::audit::AuditConfig,
    /// Behind a reverse proxy that sets `X-Forwarded-For`: take the
    /// client's address from it (for sign-in limits). Off by default: a
    /// client could otherwise claim any address.
    pub trust_forwarded_for: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            data_dir: PathBuf::from("./data"),
            database_url: None,
            durability: "full".into(),
            procedures_dir: PathBuf::from("./procedures"),
            token_ttl_hours: 12,
            max_file_mb: 10,
            log_format: "text".into(),
            calendar: CalendarConfig::default(),
            objects: ObjectsConfig::default(),
            exchange: ExchangeConfig::default(),
            pubsub: crate::pubsub::PubSubConfig::default(),
            audit: crate::audit::AuditConfig::default(),
            trust_forwarded_for: false,
        }
    }
}

impl Config {
    /// Loads the layered configuration; `file` defaults to `motcua.toml`.
    pub fn load(file: Option<&std::path::Path>) -> Result<Self, Box<figment::Error>> {
        let file = file
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("motcua.toml"));
        Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::file(file))
            .merge(
                Env::prefixed("MOTCUA_")
                    .ignore(&["test_postgres_url"])
                    .split("__"),
            )
            .extract()
            .map_err(Box::new)
    }

    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("motcua.db").display()))
    }
}

/// The `[exchange]` section: the data exchange gateway (X-Road REST) on
/// its own port, its message log and its limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ExchangeConfig {
    /// Address of the gateway's client listener; empty disables the gateway.
    pub listen: String,
    /// The X-Road instance of a registry created from scratch.
    pub instance: String,
    /// Directory of the live message log; default `<data_dir>/exchange-log`.
    /// The signing key is `<data_dir>/exchange-signing.key` (and `.pub`).
    pub log_dir: Option<PathBuf>,
    /// Where the retention worker writes archives; default
    /// `<data_dir>/exchange-archive`.
    pub archive_dir: Option<PathBuf>,
    /// Records older than this many days are archived and removed from the
    /// live log once a day; 0 keeps everything in the live log.
    pub retention_days: u32,
    /// Largest request body forwarded to a provider, bytes.
    pub request_body_limit: u64,
    /// Largest response body accepted from a provider, bytes.
    pub response_body_limit: u64,
    /// Seconds from sending a request upstream to its last response byte.
    pub upstream_timeout_secs: u64,
    /// Seconds to open a connection to a provider.
    pub connect_timeout_secs: u64,
    /// Seconds between reloads of the registry from the database (changes
    /// made on other nodes).
    pub registry_reload_secs: u64,
    /// PEM certificate (chain) of a TLS client listener; with `tls_key`, the
    /// gateway listens with TLS and accepts client certificates.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of the TLS listener.
    pub tls_key: Option<PathBuf>,
    /// The portal's own client subsystem (`INSTANCE/CLASS/MEMBER/SUBSYSTEM`)
    /// when it reads registries through this node's gateway to prefill
    /// forms (once-only); unset: forms are typed. `serve --demo` uses the
    /// demo client when unset.
    pub portal_client: Option<String>,
    /// The API key of `portal_client` (never printed).
    pub portal_api_key: Option<Secret>,
    /// Threads of the gateway's plain listener, each with its own event
    /// loop carrying its connections' exchanges; 0: half the CPUs, at least
    /// one (the portal and the message log share the node). A node that
    /// runs only the gateway may use one per CPU.
    pub threads: usize,
}

impl ExchangeConfig {
    /// The gateway's threads: `threads`, or half the CPUs (at least 1).
    pub fn threads(&self) -> usize {
        match self.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1)),
            n => n,
        }
    }
}

/// A configured secret: read like a string, never printed.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(REDACTED)
    }
}

impl Default for ExchangeConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8081".into(),
            instance: "VN".into(),
            log_dir: None,
            archive_dir: None,
            retention_days: 0,
            request_body_limit: 10 << 20,
            response_body_limit: 10 << 20,
            upstream_timeout_secs: 30,
            connect_timeout_secs: 5,
            registry_reload_secs: 30,
            tls_cert: None,
            tls_key: None,
            portal_client: None,
            portal_api_key: None,
            threads: 0,
        }
    }
}

impl ExchangeConfig {
    /// Whether the gateway listens at all.
    pub fn enabled(&self) -> bool {
        !self.listen.trim().is_empty()
    }

    pub fn log_dir(&self, data_dir: &Path) -> PathBuf {
        self.log_dir
            .clone()
            .unwrap_or_else(|| data_dir.join("exchange-log"))
    }

    pub fn archive_dir(&self, data_dir: &Path) -> PathBuf {
        self.archive_dir
            .clone()
            .unwrap_or_else(|| data_dir.join("exchange-archive"))
    }
}

/// The `[objects]` section: attachments in `data_dir/objects` (the default)
/// or in an S3-compatible bucket when `url` is set.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ObjectsConfig {
    /// `s3://bucket` or `s3://bucket/prefix`; unset or empty: local disk.
    pub url: Option<String>,
    /// Endpoint of an S3-compatible service; unset for AWS itself.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    /// Never printed (`config print` shows `<redacted>`).
    #[serde(serialize_with = "redacted")]
    pub secret_access_key: Option<String>,
    /// Allow a plain `http://` endpoint (a service on the same host).
    pub allow_http: bool,
}

fn redacted<S: Serializer>(secret: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match secret {
        Some(_) => s.serialize_some(REDACTED),
        None => s.serialize_none(),
    }
}

const REDACTED: &str = "<redacted>";

impl std::fmt::Debug for ObjectsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectsConfig")
            .field("url", &self.url)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| REDACTED),
            )
            .field("allow_http", &self.allow_http)
            .finish()
    }
}

impl ObjectsConfig {
    /// The S3 settings when `url` names a bucket.
    pub fn s3_options(&self) -> Option<S3Options> {
        let url = self
            .url
            .as_deref()
            .map(str::trim)
            .filter(|u| !u.is_empty())?;
        Some(S3Options {
            url: url.to_string(),
            endpoint: self.endpoint.clone(),
            region: self.region.clone(),
            access_key_id: self.access_key_id.clone(),
            secret_access_key: self.secret_access_key.clone(),
            allow_http: self.allow_http,
        })
    }

    /// Opens the attachment store: the S3 bucket (checked to be reachable)
    /// or `data_dir/objects`.
    pub async fn open(&self, data_dir: &Path) -> anyhow::Result<Arc<dyn ObjectStore>> {
        let Some(options) = self.s3_options() else {
            return Ok(Arc::new(LocalObjectStore::open(data_dir.join("objects"))?));
        };
        let s3 = S3ObjectStore::open(&options).context("attachments: [objects] configuration")?;
        let endpoint = options.endpoint.as_deref().unwrap_or("AWS");
        s3.check().await.with_context(|| {
            format!(
                "attachments: cannot reach the bucket {s3} at {endpoint} \
                 (check [objects] url, endpoint, region and credentials)"
            )
        })?;
        tracing::info!(bucket = %s3, "attachments are stored in S3");
        Ok(Arc::new(s3))
    }
}

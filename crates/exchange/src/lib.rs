//! The data exchange gateway of motcua: X-Road REST (`/r1/…`) between the
//! information systems of agencies, with a registry of members, subsystems,
//! services and access rights, client authentication by TLS certificate or
//! API key, a hash-chained message log signed in batches with the gateway's
//! Ed25519 key, and per-service / per-client metrics.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use motcua_exchange::{Gateway, GatewayConfig, LogConfig, MessageLog, Registry};
//!
//! let log = Arc::new(MessageLog::open(&LogConfig::new("./data".as_ref()))?);
//! let gateway = Gateway::new(Registry::new("VN"), log, GatewayConfig::default())?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8081").await?;
//! axum::serve(listener, gateway.router()).await?;
//! # Ok(()) }
//! ```
//!
//! The protocol, the log format and its verification are described in
//! `docs/exchange.md`.

#![forbid(unsafe_code)]

pub mod gateway;
pub mod id;
pub mod log;
pub mod metrics;
pub mod pubsub;
pub mod registry;

use std::sync::{Arc, RwLock};

pub use gateway::{ErrorType, GatewayConfig, PeerCertificate};
pub use id::{ClientId, ServiceId};
pub use log::{
    ExchangeRecord, LogConfig, LogError, MessageLog, TimeRange, VerifyError, VerifySummary,
};
pub use metrics::{Metrics, MetricsSnapshot};
pub use registry::{Change, CompiledRegistry, Denied, EditError, Invalid, Registry};

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error("no random numbers for message ids: {0}")]
    Random(String),
}

pub(crate) struct Inner {
    registry: RwLock<Arc<CompiledRegistry>>,
    pub(crate) log: Arc<MessageLog>,
    pub(crate) metrics: Metrics,
    pub(crate) config: GatewayConfig,
    pub(crate) client: gateway::UpstreamClient,
    pub(crate) ids: gateway::IdGen,
}

/// A handle to the gateway (cheap to clone): the current registry, the
/// message log, the metrics and the configuration.
#[derive(Clone)]
pub struct Gateway {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("instance", &self.registry().instance())
            .field("log", &self.inner.log)
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// Compiles the registry and sets up the upstream connection pool.
    pub fn new(
        registry: Registry,
        log: Arc<MessageLog>,
        config: GatewayConfig,
    ) -> Result<Gateway, GatewayError> {
        let compiled = CompiledRegistry::compile(registry, config.capture_limit)?;
        let ids = gateway::IdGen::new().map_err(|e| GatewayError::Random(e.to_string()))?;
        Ok(Gateway {
            inner: Arc::new(Inner {
                registry: RwLock::new(Arc::new(compiled)),
                log,
                metrics: Metrics::new(),
                client: gateway::build_client(&config),
                config,
                ids,
            }),
        })
    }

    /// The registry in force (requests already running keep the one they
    /// started with).
    pub fn registry(&self) -> Arc<CompiledRegistry> {
        self.inner
            .registry
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Replaces the registry (validated and compiled first; on error the old
    /// one stays). Takes effect for the next request.
    pub fn set_registry(&self, registry: Registry) -> Result<(), Invalid> {
        let compiled = Arc::new(CompiledRegistry::compile(
            registry,
            self.inner.config.capture_limit,
        )?);
        *self
            .inner
            .registry
            .write()
            .unwrap_or_else(|e| e.into_inner()) = compiled;
        Ok(())
    }

    pub fn log(&self) -> &Arc<MessageLog> {
        &self.inner.log
    }

    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    pub fn config(&self) -> &GatewayConfig {
        &self.inner.config
    }

    /// Prometheus text for `/metrics`: the gateway's series and whether the
    /// message log can write.
    pub fn render_prometheus(&self) -> String {
        let mut s = self.inner.metrics.render_prometheus();
        s.push_str("# HELP motcua_exchange_log_healthy 1 when the message log can write.\n");
        s.push_str("# TYPE motcua_exchange_log_healthy gauge\n");
        s.push_str(&format!(
            "motcua_exchange_log_healthy {}\n",
            u8::from(self.inner.log.is_healthy())
        ));
        s
    }

    /// A new X-Road-Id (UUID-shaped), for exchanges outside `/r1/`.
    pub fn next_id(&self) -> String {
        self.inner.ids.next()
    }

    /// The router of the client listener: `/r1/…` and `GET /healthz`.
    pub fn router(&self) -> axum::Router {
        gateway::router(self.clone())
    }
}

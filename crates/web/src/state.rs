//! The state every handler shares: the commands' context and what only
//! the HTTP interface holds (its configuration, metrics, the exchange and
//! the per-node workqueue counts).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::connect_info::Connected;
use motcua_commands::{App, Observer};
use motcua_domain::calendar::{CalendarConfig, WorkingCalendar};
use motcua_store::{ObjectStore, Store};

use crate::dossiers::views;
use crate::exchange::api::ExchangeHandle;
use crate::kernel::error::ApiError;
use crate::kernel::metrics;

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

/// Shared state of every handler: the commands' context (reached through
/// `Deref`, so `st.store`, `st.clock` … read as before) and what only the
/// HTTP interface needs.
#[derive(Clone)]
pub struct AppState {
    pub app: App,
    pub config: Arc<WebConfig>,
    pub metrics: Arc<metrics::Metrics>,
    /// The data exchange registry (and the gateway, on nodes that run it);
    /// `None`: the exchange API answers 503.
    pub exchange: Option<Arc<ExchangeHandle>>,
    /// The portal's client identity on the exchange, for once-only prefill;
    /// `None`: forms are typed.
    pub portal: Option<Arc<crate::exchange::prefill::PortalClient>>,
    /// Whole-queue counts of the workqueues read recently on this node.
    queue_counts: Arc<views::QueueCountsCache>,
}

impl std::ops::Deref for AppState {
    type Target = App;

    fn deref(&self) -> &App {
        &self.app
    }
}

/// What this node does when a command wrote a dossier: count it and read
/// the agency's queue counts again.
struct NodeObserver {
    metrics: Arc<metrics::Metrics>,
    queue_counts: Arc<views::QueueCountsCache>,
}

impl Observer for NodeObserver {
    fn dossier_written(&self, agency: &motcua_domain::AgencyCode, submitted: bool) {
        if submitted {
            self.metrics.dossier_submitted();
        }
        self.queue_counts.forget(agency.as_str());
    }
}

impl AppState {
    pub fn new(
        store: Arc<dyn Store>,
        objects: Arc<dyn ObjectStore>,
        calendar: WorkingCalendar,
        calendar_base: CalendarConfig,
        config: WebConfig,
    ) -> Self {
        let metrics = Arc::new(metrics::Metrics::default());
        let queue_counts = Arc::new(views::QueueCountsCache::default());
        let observer = Arc::new(NodeObserver {
            metrics: metrics.clone(),
            queue_counts: queue_counts.clone(),
        });
        Self {
            app: App::new(store, objects, calendar, calendar_base).observed_by(observer),
            config: Arc::new(config),
            metrics,
            exchange: None,
            portal: None,
            queue_counts,
        }
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

//! The data exchange gateway in the binary: its listener beside the portal,
//! the message log in the data directory, the registry kept in the main
//! store (and reloaded on every node), retention, and the demo provider's
//! registration.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use motcua_exchange::log::{KEY_FILE, PUB_FILE};
use motcua_exchange::registry::{ApiKey, Endpoint, Service, api_key_hash};
use motcua_exchange::{
    Change, ClientId, EditError, Gateway, GatewayConfig, LogConfig, MessageLog, Registry, ServiceId,
};
use motcua_store::Store;
use motcua_web::exchange::api::{ExchangeHandle, change_payload};

use crate::config::{Config, ExchangeConfig};
use crate::system_audit;

/// The demo's client subsystem: the one-stop portal of Hà Nội.
pub const DEMO_CLIENT: &str = "VN/GOV/UBND-HN/MOTCUA";
/// The demo's service: the population database provider's `citizens`.
pub const DEMO_SERVICE: &str = "VN/GOV/BCA/POPULATION/citizens";
/// The demo API key of [`DEMO_CLIENT`]. Published in
/// `docs/exchange-demo.json`: a demo key, registered by `serve --demo` only,
/// never a secret. Real keys come from the admin API, random and shown once.
pub const DEMO_API_KEY: &str = "xrk_demo_motcua_not_a_secret";
/// The public id of [`DEMO_API_KEY`] in the registry.
pub const DEMO_API_KEY_ID: &str = "demo-motcua";
/// Set once the demo entries were registered (so that an administrator's
/// later removals are not undone on the next start).
const DEMO_META_KEY: &str = "exchange.demo_registered";

/// The gateway's limits from the `[exchange]` section.
pub fn gateway_config(cfg: &ExchangeConfig) -> GatewayConfig {
    GatewayConfig {
        request_body_limit: cfg.request_body_limit,
        response_body_limit: cfg.response_body_limit,
        upstream_timeout: Duration::from_secs(cfg.upstream_timeout_secs.max(1)),
        connect_timeout: Duration::from_secs(cfg.connect_timeout_secs.max(1)),
        ..GatewayConfig::default()
    }
}

/// Where the live log and the signing key are.
pub fn log_config(cfg: &Config) -> LogConfig {
    LogConfig {
        dir: cfg.exchange.log_dir(&cfg.data_dir),
        ..LogConfig::new(&cfg.data_dir)
    }
}

/// The registry handle of the web layer, with the gateway when it runs here.
pub fn handle(cfg: &Config, gateway: Option<Gateway>) -> Arc<ExchangeHandle> {
    Arc::new(ExchangeHandle::new(&cfg.exchange.instance, gateway))
}

/// A bound gateway listener: plain TCP, or TLS with client certificates.
pub enum ExchangeListener {
    Plain(tokio::net::TcpListener),
    Tls(crate::exchange_tls::TlsListener),
}

impl ExchangeListener {
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        match self {
            ExchangeListener::Plain(l) => l.local_addr(),
            ExchangeListener::Tls(l) => Ok(l.local_addr()),
        }
    }

    /// `http` or `https`.
    pub fn scheme(&self) -> &'static str {
        match self {
            ExchangeListener::Plain(_) => "http",
            ExchangeListener::Tls(_) => "https",
        }
    }
}

/// Opens the message log (creating the signing key on first start), loads
/// the stored registry and binds the client listener. `None` when the
/// gateway is disabled (`[exchange] listen = ""`).
pub async fn open(
    cfg: &Config,
    store: &dyn Store,
) -> anyhow::Result<Option<(Gateway, ExchangeListener)>> {
    if !cfg.exchange.enabled() {
        return Ok(None);
    }
    let lc = log_config(cfg);
    let log = MessageLog::open(&lc)
        .with_context(|| format!("exchange message log in {}", lc.dir.display()))?;
    let log = Arc::new(log);
    let registry = ExchangeHandle::new(&cfg.exchange.instance, None)
        .load(store)
        .await
        .map_err(|e| anyhow::anyhow!("cannot read the exchange registry: {e:?}"))?;
    let gateway = Gateway::new(registry, log, gateway_config(&cfg.exchange))
        .context("the stored exchange registry")?;
    let listen = cfg.exchange.listen.trim();
    let tcp = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen} (exchange gateway)"))?;
    let listener = match (&cfg.exchange.tls_cert, &cfg.exchange.tls_key) {
        (Some(cert), Some(key)) => {
            ExchangeListener::Tls(crate::exchange_tls::TlsListener::new(tcp, cert, key)?)
        }
        (None, None) => ExchangeListener::Plain(tcp),
        _ => bail!("[exchange] needs both tls_cert and tls_key, or neither"),
    };
    Ok(Some((gateway, listener)))
}

/// Serves the gateway on `listener` until `shutdown` resolves, then stops
/// the message log after the records already queued.
pub async fn serve(
    gateway: Gateway,
    listener: ExchangeListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    serve_with(gateway, listener, axum::Router::new(), shutdown).await
}

/// [`serve`] with more routes beside `/r1/` (the pub/sub pull endpoints,
/// `motcua_web::exchange::pubsub::pull_router`), behind the same TLS listener.
pub async fn serve_with(
    gateway: Gateway,
    listener: ExchangeListener,
    extra: axum::Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let router = extra.merge(gateway.router());
    match listener {
        ExchangeListener::Plain(l) => {
            axum::serve(l, router)
                .with_graceful_shutdown(shutdown)
                .await?
        }
        ExchangeListener::Tls(l) => {
            let app = crate::exchange_tls::with_peer_certificate(router)
                .into_make_service_with_connect_info::<crate::exchange_tls::TlsPeer>();
            axum::serve(l, app).with_graceful_shutdown(shutdown).await?
        }
    }
    gateway.log().shutdown().await;
    Ok(())
}

/// Serves the gateway like [`serve_with`], but a plain listener on
/// `threads` threads of its own, each running a single-threaded runtime
/// that accepts connections and carries their exchanges (and the upstream
/// connections they open) from start to end — as nginx runs one event loop
/// per worker. An exchange then stays on its thread (the message log
/// writes there too, and from a blocking thread only while the disk is
/// slow), and the portal's runtime is not disturbed by gateway traffic. A
/// TLS listener stays on the caller's runtime. Resolves once every thread
/// has stopped and the message log is shut down.
pub fn spawn_serve(
    gateway: Gateway,
    listener: ExchangeListener,
    extra: axum::Router,
    stop: tokio::sync::watch::Receiver<bool>,
    threads: usize,
) -> anyhow::Result<tokio::sync::oneshot::Receiver<anyhow::Result<()>>> {
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let tcp = match listener {
        ExchangeListener::Tls(l) => {
            let f = serve_with(
                gateway,
                ExchangeListener::Tls(l),
                extra,
                crate::stopped(stop),
            );
            tokio::spawn(async move {
                let _ = done_tx.send(f.await);
            });
            return Ok(done_rx);
        }
        ExchangeListener::Plain(l) => l.into_std()?,
    };
    let router = extra.merge(gateway.router());
    let mut joins = Vec::new();
    for i in 0..threads.max(1) {
        let std_listener = tcp.try_clone()?;
        let (router, stop) = (router.clone(), stop.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<anyhow::Result<()>>();
        std::thread::Builder::new()
            .name(format!("exchange-{i}"))
            .spawn(move || {
                let served = (|| -> anyhow::Result<()> {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()?;
                    rt.block_on(async move {
                        let l = tokio::net::TcpListener::from_std(std_listener)?;
                        axum::serve(l, router)
                            .with_graceful_shutdown(crate::stopped(stop))
                            .await?;
                        Ok(())
                    })
                })();
                let _ = tx.send(served);
            })
            .context("cannot start an exchange gateway thread")?;
        joins.push(rx);
    }
    drop(tcp);
    tokio::spawn(async move {
        let mut result = Ok(());
        for j in joins {
            let r = j
                .await
                .unwrap_or_else(|_| Err(anyhow::anyhow!("an exchange gateway thread died")));
            if result.is_ok() {
                result = r;
            }
        }
        gateway.log().shutdown().await;
        let _ = done_tx.send(result);
    });
    Ok(done_rx)
}

/// Background work of the exchange: the registry is reloaded from the
/// store every `registry_reload_secs` (changes made on other nodes), and,
/// when `retention_days` is set, records older than that are archived into
/// the archive directory and removed from the live log once a day.
pub fn spawn_workers(handle: Arc<ExchangeHandle>, store: Arc<dyn Store>, cfg: &Config) {
    if handle.gateway().is_none() {
        return;
    }
    let every = Duration::from_secs(cfg.exchange.registry_reload_secs.max(1));
    let (h, s) = (handle.clone(), store.clone());
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            match h.reload(s.as_ref()).await {
                Ok(true) => tracing::info!("exchange registry reloaded"),
                Ok(false) => {}
                Err(e) => tracing::warn!(error = ?e, "exchange registry reload"),
            }
        }
    });
    let days = cfg.exchange.retention_days;
    if days == 0 {
        return;
    }
    let dir = cfg.exchange.archive_dir(&cfg.data_dir);
    tokio::spawn(async move {
        // A first pass shortly after start, then daily.
        tokio::time::sleep(Duration::from_secs(60)).await;
        loop {
            if let Some(gw) = handle.gateway()
                && let Err(e) = apply_retention(gw.log(), days, &dir).await
            {
                tracing::warn!(error = %e, "exchange log retention");
            }
            tokio::time::sleep(Duration::from_secs(24 * 3600)).await;
        }
    });
}

/// Archives the records that started more than `days` days ago into a new
/// file in `dir` and removes them from the live log; returns what was
/// archived, if anything.
pub async fn apply_retention(
    log: &MessageLog,
    days: u32,
    dir: &Path,
) -> anyhow::Result<Option<(PathBuf, u64)>> {
    let before = Utc::now() - chrono::Duration::days(i64::from(days));
    let done = archive_into(log, before, dir).await?;
    if let Some((file, n)) = &done {
        tracing::info!(
            records = n,
            file = %file.display(),
            "exchange log: old records archived"
        );
    }
    Ok(done)
}

/// Archives the records that started before `before` into a new file in
/// `dir`; returns the file and the number of records, or `None` when there
/// was nothing to archive.
pub async fn archive_into(
    log: &MessageLog,
    before: DateTime<Utc>,
    dir: &Path,
) -> anyhow::Result<Option<(PathBuf, u64)>> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let out = dir.join(format!(
        "exchange-archive-{}.log",
        Utc::now().format("%Y%m%dT%H%M%S%.6fZ")
    ));
    let summary = log.archive_before(before, &out).await?;
    Ok((summary.records > 0).then_some((out, summary.records)))
}

/// The signing key of the data directory, without creating one.
pub fn signing_key(cfg: &Config) -> anyhow::Result<ed25519_dalek::SigningKey> {
    let path = cfg.data_dir.join(KEY_FILE);
    if !path.exists() {
        bail!(
            "no exchange signing key at {} (it is created when `motcua serve` first starts the gateway)",
            path.display()
        );
    }
    Ok(motcua_exchange::log::load_or_create_signing_key(
        &cfg.data_dir,
    )?)
}

/// The public key (hex) of the data directory's signing key.
pub fn public_key_hex(cfg: &Config) -> anyhow::Result<String> {
    let pub_path = cfg.data_dir.join(PUB_FILE);
    if let Ok(text) = std::fs::read_to_string(&pub_path) {
        let key = motcua_exchange::log::read_public_key(text.trim())?;
        return Ok(hex::encode(key.to_bytes()));
    }
    Ok(hex::encode(signing_key(cfg)?.verifying_key().to_bytes()))
}

/// The default `--key` of `exchange verify`: the data directory's `.pub`.
pub fn default_public_key(cfg: &Config) -> PathBuf {
    cfg.data_dir.join(PUB_FILE)
}

fn system_change(c: &Change) -> motcua_domain::audit::AuditEntry {
    let mut e = system_audit(c.action, &change_payload(c));
    e.note = Some(c.summary.clone());
    e
}

/// Applies `edit` when `needed` holds for the stored registry (checked on
/// the document the edit applies to); an entry that exists already (made
/// by another node starting at the same time) is not an error.
async fn apply_if(
    handle: &ExchangeHandle,
    store: &dyn Store,
    mut needed: impl FnMut(&Registry) -> bool,
    mut edit: impl FnMut(&mut Registry) -> Result<Change, EditError>,
) -> anyhow::Result<()> {
    let result = handle
        .change(
            store,
            |r| {
                if !needed(r) {
                    return Err(EditError::AlreadyExists("the entry".into()));
                }
                edit(r).map(|c| (c, ()))
            },
            system_change,
        )
        .await;
    match result {
        Ok(_) => Ok(()),
        Err(e) if e.kind == "duplicate" => Ok(()),
        Err(e) => Err(anyhow::anyhow!("demo exchange registration: {e:?}")),
    }
}

/// The portal's identity on the exchange for once-only prefill: the
/// configured `[exchange] portal_client` and `portal_api_key`, or with
/// `--demo` and neither set, the demo client and its published key.
pub fn portal_client(
    cfg: &Config,
    demo: bool,
) -> anyhow::Result<Option<Arc<motcua_web::exchange::prefill::PortalClient>>> {
    let (client, api_key) = match (&cfg.exchange.portal_client, &cfg.exchange.portal_api_key) {
        (Some(c), Some(k)) => (c.clone(), k.0.clone()),
        (None, None) if demo => (DEMO_CLIENT.to_string(), DEMO_API_KEY.to_string()),
        (None, None) => return Ok(None),
        _ => bail!("[exchange] portal_client and portal_api_key are set together"),
    };
    let client: ClientId = client
        .parse()
        .with_context(|| format!("[exchange] portal_client `{client}`"))?;
    Ok(Some(Arc::new(
        motcua_web::exchange::prefill::PortalClient { client, api_key },
    )))
}

/// The demo service as registered, with the provider at `upstream`.
fn demo_service(id: ServiceId, upstream: &str) -> Service {
    Service {
        name: "Tra cứu công dân (CSDL quốc gia về dân cư, demo)".into(),
        openapi: Some(crate::population::openapi("")),
        endpoints: vec![Endpoint::new("GET", "/{national_id}")],
        ..Service::new(id, upstream)
    }
}

/// Registers the demo population provider (listening at `provider`) and the
/// portal as its client, with an access right and the demo API key. The
/// entries are created on the first start only (an administrator's later
/// changes stay); the provider's address is updated on every start.
pub async fn register_demo(
    handle: &ExchangeHandle,
    store: &dyn Store,
    provider: SocketAddr,
) -> anyhow::Result<()> {
    let client: ClientId = DEMO_CLIENT.parse().context("demo client id")?;
    let service: ServiceId = DEMO_SERVICE.parse().context("demo service id")?;
    let upstream = format!("http://{provider}/citizens");
    if store.meta(DEMO_META_KEY).await?.is_none() {
        let registry = handle
            .load(store)
            .await
            .map_err(|e| anyhow::anyhow!("exchange registry: {e:?}"))?;
        if registry.instance != client.instance {
            bail!(
                "the demo exchange entries are in instance {}, the registry is of {}",
                client.instance,
                registry.instance
            );
        }
        // Several nodes starting at once each write the whole document;
        // a write may overtake another one, so check and go again.
        let mut attempts = 0;
        loop {
            demo_entries(handle, store, &client, &service, &upstream).await?;
            let now = handle
                .load(store)
                .await
                .map_err(|e| anyhow::anyhow!("exchange registry: {e:?}"))?;
            if demo_complete(&now, &client, &service) {
                break;
            }
            attempts += 1;
            if attempts == 5 {
                bail!("the demo exchange entries could not be registered");
            }
            tokio::time::sleep(Duration::from_millis(200 * attempts)).await;
        }
        store
            .set_meta(DEMO_META_KEY, &Utc::now().to_rfc3339())
            .await?;
    }
    // The provider listens on a new port on every start.
    apply_if(
        handle,
        store,
        |r| {
            r.services
                .iter()
                .any(|s| s.id == service && s.upstream != upstream)
        },
        |r| {
            let mut s = r
                .services
                .iter()
                .find(|s| s.id == service)
                .cloned()
                .unwrap_or_else(|| demo_service(service.clone(), &upstream));
            s.upstream = upstream.clone();
            r.put_service(s)
        },
    )
    .await?;
    Ok(())
}

fn has_member(r: &Registry, class: &str, code: &str) -> bool {
    r.members.iter().any(|m| m.class == class && m.code == code)
}

/// Whether every demo entry is in `r`.
fn demo_complete(r: &Registry, client: &ClientId, service: &ServiceId) -> bool {
    let p = &service.provider;
    has_member(r, &p.class, &p.member)
        && has_member(r, &client.class, &client.member)
        && r.subsystems.iter().any(|s| &s.id == p)
        && r.subsystems.iter().any(|s| &s.id == client)
        && r.services.iter().any(|s| &s.id == service)
        && r.right(client, service).is_some()
        && r.api_keys.iter().any(|k| k.id == DEMO_API_KEY_ID)
}

/// Adds whatever demo entry is missing.
async fn demo_entries(
    handle: &ExchangeHandle,
    store: &dyn Store,
    client: &ClientId,
    service: &ServiceId,
    upstream: &str,
) -> anyhow::Result<()> {
    let p = service.provider.clone();
    apply_if(
        handle,
        store,
        |r| !has_member(r, &p.class, &p.member),
        |r| r.add_member(&p.class, &p.member, "Bộ Công an"),
    )
    .await?;
    apply_if(
        handle,
        store,
        |r| !has_member(r, &client.class, &client.member),
        |r| {
            r.add_member(
                &client.class,
                &client.member,
                "Ủy ban nhân dân Thành phố Hà Nội",
            )
        },
    )
    .await?;
    apply_if(
        handle,
        store,
        |r| !r.subsystems.iter().any(|s| s.id == p),
        |r| r.add_subsystem(&p, "Cơ sở dữ liệu quốc gia về dân cư (demo)"),
    )
    .await?;
    apply_if(
        handle,
        store,
        |r| !r.subsystems.iter().any(|s| &s.id == client),
        |r| r.add_subsystem(client, "Cổng dịch vụ công một cửa (motcua)"),
    )
    .await?;
    apply_if(
        handle,
        store,
        |r| !r.services.iter().any(|s| &s.id == service),
        |r| r.put_service(demo_service(service.clone(), upstream)),
    )
    .await?;
    apply_if(
        handle,
        store,
        |r| r.right(client, service).is_none(),
        |r| {
            r.grant(
                client,
                service,
                vec![Endpoint::new("GET", "/{national_id}")],
            )
        },
    )
    .await?;
    apply_if(
        handle,
        store,
        |r| !r.api_keys.iter().any(|k| k.id == DEMO_API_KEY_ID),
        |r| {
            r.api_keys.push(ApiKey {
                id: DEMO_API_KEY_ID.into(),
                client: client.clone(),
                label: "demo key of docs/exchange-demo.json (not a secret)".into(),
                sha256: hex::encode(api_key_hash(DEMO_API_KEY)),
                enabled: true,
                created_at: Some(Utc::now()),
            });
            r.validate()?;
            Ok(Change {
                action: "exchange.apikey.add",
                target: client.to_string(),
                summary: format!(
                    "created the demo API key {DEMO_API_KEY_ID} for {client} (published in docs/exchange-demo.json; demo only)"
                ),
            })
        },
    )
    .await?;
    Ok(())
}

trait RegistryExt {
    fn right(
        &self,
        client: &ClientId,
        service: &ServiceId,
    ) -> Option<&motcua_exchange::registry::AccessRight>;
}

impl RegistryExt for Registry {
    fn right(
        &self,
        client: &ClientId,
        service: &ServiceId,
    ) -> Option<&motcua_exchange::registry::AccessRight> {
        self.access_rights
            .iter()
            .find(|a| &a.client == client && &a.service == service)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use motcua_exchange::ExchangeRecord;

    fn record(id: &str, start: DateTime<Utc>) -> ExchangeRecord {
        serde_json::from_value(serde_json::json!({
            "x_road_id": id, "start": start, "end": start, "method": "GET",
            "path": "/r1/VN/listClients", "status": 200, "total_us": 1,
            "response_sha256": "00", "response_bytes": 0
        }))
        .expect("record")
    }

    #[tokio::test]
    async fn retention_archives_old_records_and_both_parts_verify() {
        let dir = std::env::temp_dir().join(format!("motcua-retention-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let log = MessageLog::open(&LogConfig::new(&dir)).expect("open");
        let now = Utc::now();
        log.append(&record("old", now - chrono::Duration::days(40)))
            .await
            .expect("append");
        log.append(&record("new", now)).await.expect("append");
        let archives = dir.join("archive");
        let (file, n) = apply_retention(&log, 30, &archives)
            .await
            .expect("retention")
            .expect("something archived");
        assert_eq!(n, 1);
        let key = log.public_key();
        let archived = motcua_exchange::log::verify_file(&file, &key).expect("archive verifies");
        assert_eq!((archived.first_seq, archived.last_seq), (Some(1), Some(1)));
        let live = motcua_exchange::log::verify_dir(log.dir(), &key).expect("live verifies");
        assert_eq!((live.first_seq, live.last_seq), (Some(2), Some(2)));
        assert!(
            apply_retention(&log, 30, &archives)
                .await
                .expect("retention")
                .is_none(),
            "nothing more to archive"
        );
        log.shutdown().await;
        let _ = std::fs::remove_dir_all(&dir);
    }
}

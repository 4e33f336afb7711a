//! The gateway's TLS listener (`[exchange] tls_cert`, `tls_key`): rustls
//! with the ring provider, asking every client for a certificate.
//!
//! Any client certificate is accepted at the TLS layer (self-signed ones
//! too; the client must still prove it holds the certificate's private key,
//! which rustls checks through the handshake signature). Whether the
//! certificate may call anything is decided by the registry: the listener
//! puts the SHA-256 of the certificate on each request of the connection as
//! the exchange crate's [`PeerCertificate`] extension, and the gateway looks
//! that fingerprint up among the registry's client certificates. Clients
//! without a certificate can still authenticate with an API key.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::{ConnectInfo, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use motcua_exchange::PeerCertificate;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// How long a client has to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts any client certificate whose handshake signature verifies.
#[derive(Debug)]
struct AnyClientCertificate {
    provider: Arc<CryptoProvider>,
}

impl ClientCertVerifier for AnyClientCertificate {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The server configuration from PEM files.
pub fn server_config(cert: &Path, key: &Path) -> anyhow::Result<rustls::ServerConfig> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("cannot read {}", cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("{}: not a PEM certificate", cert.display()))?;
    if certs.is_empty() {
        anyhow::bail!("{}: no certificate", cert.display());
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("{}: no PEM private key", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(AnyClientCertificate {
        provider: provider.clone(),
    });
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .context("[exchange] tls_cert and tls_key do not make a usable pair")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The peer of a TLS connection: its address and the fingerprint of the
/// certificate it presented, if any.
#[derive(Debug, Clone, Copy)]
pub struct TlsPeer {
    pub addr: SocketAddr,
    pub certificate: Option<PeerCertificate>,
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, TlsListener>>
    for TlsPeer
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, TlsListener>) -> Self {
        *stream.remote_addr()
    }
}

/// A TLS listener for `axum::serve`: handshakes run in their own tasks, so
/// a slow client does not hold up the others.
pub struct TlsListener {
    rx: mpsc::Receiver<(TlsStream<TcpStream>, TlsPeer)>,
    addr: SocketAddr,
}

impl TlsListener {
    /// Starts accepting on `tcp` with the certificate and key in PEM files.
    pub fn new(tcp: TcpListener, cert: &Path, key: &Path) -> anyhow::Result<Self> {
        let acceptor = TlsAcceptor::from(Arc::new(server_config(cert, key)?));
        let addr = tcp.local_addr()?;
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    _ = tx.closed() => break,
                    a = tcp.accept() => a,
                };
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors and the like: wait a little.
                        tracing::warn!(error = %e, "exchange TLS accept");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let certificate = tls
                                .get_ref()
                                .1
                                .peer_certificates()
                                .and_then(|c| c.first())
                                .map(|c| PeerCertificate::from_der(c.as_ref()));
                            let _ = tx
                                .send((
                                    tls,
                                    TlsPeer {
                                        addr: peer,
                                        certificate,
                                    },
                                ))
                                .await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "exchange TLS handshake"),
                        Err(_) => tracing::debug!(%peer, "exchange TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(Self { rx, addr })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = TlsPeer;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(conn) => conn,
            // The accept task only stops once this listener is gone.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(TlsPeer {
            addr: self.addr,
            certificate: None,
        })
    }
}

/// Copies the connection's client certificate onto each request as the
/// [`PeerCertificate`] extension the gateway reads. Requests whose
/// connection presented none carry none (an extension sent by a client
/// cannot exist: extensions are not headers).
pub fn with_peer_certificate(router: Router) -> Router {
    router.layer(middleware::from_fn(set_peer_certificate))
}

async fn set_peer_certificate(mut req: Request, next: Next) -> Response {
    req.extensions_mut().remove::<PeerCertificate>();
    let cert = req
        .extensions()
        .get::<ConnectInfo<TlsPeer>>()
        .and_then(|c| c.0.certificate);
    if let Some(cert) = cert {
        req.extensions_mut().insert(cert);
    }
    next.run(req).await
}

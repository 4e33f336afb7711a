//! The data exchange gateway in the real binary: `serve --demo` with the
//! demo population provider behind the gateway, the README's call, the admin
//! API, `/metrics`, and the message log exported and verified across a
//! restart, tampered with, and archived.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};

use crate::helpers::{serve_demo_command, temp_dir, wait_listening, workspace};

/// A `motcua serve --demo` process with its portal and gateway addresses.
struct Server {
    child: Child,
    base: String,
    gateway: String,
}

impl Server {
    fn start(data: &Path, env: &[(&str, String)]) -> Server {
        let mut child = serve_demo_command(data, env)
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start motcua");
        let at = wait_listening(&mut child);
        Server {
            child,
            base: at.base,
            gateway: at.gateway.expect("gateway"),
        }
    }

    /// Stops the server with SIGTERM (both listeners shut down, the message
    /// log is closed) and checks that it exits cleanly.
    fn stop(mut self) {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(ok.success());
        let status = self.child.wait().expect("wait");
        assert!(status.success(), "motcua exited with {status:?}");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the binary; (exit code, stdout + stderr).
fn motcua(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_motcua"))
        .current_dir(workspace())
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run motcua");
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

struct Demo {
    client: String,
    service: String,
    path: String,
    api_key: String,
}

fn demo_ids() -> Demo {
    let text = std::fs::read_to_string(workspace().join("docs/exchange-demo.json"))
        .expect("docs/exchange-demo.json");
    let v: Value = serde_json::from_str(&text).expect("json");
    let s = |k: &str| v[k].as_str().unwrap_or_else(|| panic!("{k}")).to_string();
    Demo {
        client: s("client"),
        service: s("service"),
        path: s("path"),
        api_key: s("api_key"),
    }
}

/// The README's call: (status, headers, body).
async fn call(
    http: &reqwest::Client,
    gateway: &str,
    d: &Demo,
    key: &str,
    id: &str,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let r = http
        .get(format!("{gateway}/r1/{}{}", d.service, d.path))
        .header("X-Road-Client", &d.client)
        .header("Authorization", format!("X-Road-ApiKey token={key}"))
        .header("X-Road-Id", id)
        .send()
        .await
        .expect("call");
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    (status, headers, r.json().await.unwrap_or(Value::Null))
}

async fn token(http: &reqwest::Client, base: &str, user: &str) -> String {
    let v: Value = http
        .post(format!("{base}/api/v1/auth/token"))
        .json(&json!({ "username": user, "password": "motcua-demo" }))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("json");
    v["token"].as_str().expect("token").to_string()
}

async fn admin_post(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    path: &str,
    body: Value,
) -> (u16, Value) {
    let r = http
        .post(format!("{base}{path}"))
        .bearer_auth(token)
        .header("accept-language", "en")
        .json(&body)
        .send()
        .await
        .expect("post");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn export(data: &Path, out: &Path) -> String {
    let (code, text) = motcua(&[
        "exchange",
        "export",
        "--data-dir",
        &data.display().to_string(),
        "--out",
        &out.display().to_string(),
    ]);
    assert_eq!(code, 0, "{text}");
    text
}

fn verify(data: &Path, log: &Path, key: Option<&str>) -> (i32, String) {
    let mut args = vec![
        "exchange".to_string(),
        "verify".into(),
        "--data-dir".into(),
        data.display().to_string(),
        "--log".into(),
        log.display().to_string(),
    ];
    if let Some(k) = key {
        args.push("--key".into());
        args.push(k.into());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    motcua(&args)
}

/// "records A to B" of a verify or export message.
fn record_range(text: &str) -> (u64, u64) {
    let i = text.find("records ").expect("records range") + "records ".len();
    let mut it = text[i..].split_whitespace();
    let a = it.next().and_then(|s| s.parse().ok()).expect("first");
    assert_eq!(it.next(), Some("to"));
    let b = it
        .next()
        .map(|s| s.trim_end_matches([',', '.']))
        .and_then(|s| s.parse().ok())
        .expect("last");
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_exchange_through_the_gateway_admin_api_metrics_and_a_verified_log() {
    let dir = temp_dir("exchange");
    let data = dir.join("data");
    let d = demo_ids();
    let readme = std::fs::read_to_string(workspace().join("README.md")).expect("README");
    for part in [&d.client, &d.service, &d.path, &d.api_key] {
        assert!(readme.contains(part.as_str()), "README shows {part}");
    }
    assert!(readme.contains("/r1/VN/listClients"));

    let server = Server::start(&data, &[]);
    let http = reqwest::Client::new();

    // The README's call: the citizen, through the gateway.
    let (status, headers, body) = call(&http, &server.gateway, &d, &d.api_key, "test-1").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["national_id"], "001090012345");
    assert_eq!(body["full_name"], "Nguyễn Văn An");
    assert_eq!(body["date_of_birth"], "1990-03-15");
    assert_eq!(body["sex"], "male");
    assert_eq!(body["ethnicity"], "Kinh");
    assert!(
        body["permanent_residence"]
            .as_str()
            .is_some_and(|s| !s.is_empty())
    );
    assert_eq!(headers["x-road-id"], "test-1");
    assert!(headers.contains_key("x-road-request-hash"));

    // The second demo account's citizen; an unknown number is the
    // provider's 404, passed through without an X-Road error.
    let d2 = Demo {
        path: "/001195054321".into(),
        ..demo_ids()
    };
    let (status, _, body) = call(&http, &server.gateway, &d2, &d.api_key, "test-2").await;
    assert_eq!(
        (status, body["full_name"].clone()),
        (200, json!("Trần Thị Bình"))
    );
    let d404 = Demo {
        path: "/001099999999".into(),
        ..demo_ids()
    };
    let (status, headers, _) = call(&http, &server.gateway, &d404, &d.api_key, "test-3").await;
    assert_eq!(status, 404);
    assert!(!headers.contains_key("x-road-error"));

    // A wrong key: refused by the gateway with an X-Road error.
    let (status, headers, body) = call(&http, &server.gateway, &d, "xrk_wrong", "test-4").await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(
        headers["x-road-error"],
        "Server.ClientProxy.AuthenticationFailed"
    );

    // Metadata: listClients names the demo subsystems.
    let r = http
        .get(format!("{}/r1/VN/listClients", server.gateway))
        .header("X-Road-Client", &d.client)
        .header(
            "Authorization",
            format!("X-Road-ApiKey token={}", d.api_key),
        )
        .send()
        .await
        .expect("listClients");
    assert_eq!(r.status(), 200);
    let text = r.text().await.expect("body");
    assert!(text.contains("\"subsystem_code\":\"MOTCUA\""), "{text}");
    assert!(text.contains("\"subsystem_code\":\"POPULATION\""), "{text}");

    // The gateway's own health endpoint.
    let r = http
        .get(format!("{}/healthz", server.gateway))
        .send()
        .await
        .expect("healthz");
    assert_eq!(r.status(), 200);

    // /metrics of the portal carries the gateway's series.
    let metrics = http
        .get(format!("{}/metrics", server.base))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let line = format!(
        "motcua_exchange_service_requests_total{{service=\"{}\"}} 3",
        d.service
    );
    assert!(metrics.contains(&line), "{line} in\n{metrics}");
    assert!(metrics.contains(&format!(
        "motcua_exchange_client_requests_total{{client=\"{}\"}}",
        d.client
    )));
    assert!(metrics.contains("motcua_exchange_service_errors_total"));
    assert!(metrics.contains("motcua_exchange_service_duration_seconds_bucket"));
    assert!(metrics.contains("motcua_exchange_log_healthy 1"));

    // The admin API: only province administrators.
    let right = json!({ "client": d.client, "service": d.service });
    for user in ["citizen", "officer", "admin"] {
        let t = token(&http, &server.base, user).await;
        let (status, body) = admin_post(
            &http,
            &server.base,
            &t,
            "/api/v1/exchange/access/revoke",
            right.clone(),
        )
        .await;
        assert_eq!(status, 403, "{user}: {body}");
        assert_eq!(body["type"], "/problems/forbidden");
        let r = http
            .get(format!("{}/api/v1/exchange/registry", server.base))
            .bearer_auth(&t)
            .send()
            .await
            .expect("registry");
        assert_eq!(r.status(), 403, "{user} reads the registry");
    }
    let (status, _) = admin_post(
        &http,
        &server.base,
        "no-token",
        "/api/v1/exchange/access/revoke",
        right.clone(),
    )
    .await;
    assert_eq!(status, 401);
    let admin = token(&http, &server.base, "province.admin").await;
    let registry: Value = http
        .get(format!("{}/api/v1/exchange/registry", server.base))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("registry")
        .json()
        .await
        .expect("json");
    assert_eq!(registry["instance"], "VN");
    assert!(
        !registry.to_string().contains(&d.api_key),
        "keys are stored as hashes only"
    );

    // An invalid change is refused as a whole, in problem+json.
    let (status, body) = admin_post(
        &http,
        &server.base,
        &admin,
        "/api/v1/exchange/access/grant",
        json!({ "client": "VN/GOV/UBND-HN/NOBODY", "service": d.service }),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["type"], "/problems/exchange-invalid");
    assert!(
        body["errors"][0]["field"]
            .as_str()
            .is_some_and(|f| f.starts_with("access_rights"))
    );

    // Revoked: the next call is denied.
    let (status, body) = admin_post(
        &http,
        &server.base,
        &admin,
        "/api/v1/exchange/access/revoke",
        right.clone(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["action"], "exchange.access.revoke");
    let (status, headers, _) = call(&http, &server.gateway, &d, &d.api_key, "test-5").await;
    assert_eq!(status, 403);
    assert_eq!(headers["x-road-error"], "Server.ServerProxy.AccessDenied");
    let (status, _) = admin_post(
        &http,
        &server.base,
        &admin,
        "/api/v1/exchange/access/revoke",
        right.clone(),
    )
    .await;
    assert_eq!(status, 404, "nothing left to revoke");

    // Granted again, narrowed to the citizen endpoint.
    let (status, body) = admin_post(
        &http,
        &server.base,
        &admin,
        "/api/v1/exchange/access/grant",
        json!({ "client": d.client, "service": d.service,
                "endpoints": [{ "method": "GET", "path": "/{national_id}" }] }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, _, _) = call(&http, &server.gateway, &d, &d.api_key, "test-6").await;
    assert_eq!(status, 200);

    // A new key through the API: shown once, works, and revoked stops working.
    let (status, created) = admin_post(
        &http,
        &server.base,
        &admin,
        "/api/v1/exchange/api-keys",
        json!({ "client": d.client, "label": "test" }),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let key = created["key"].as_str().expect("key").to_string();
    let key_id = created["id"].as_str().expect("id").to_string();
    let (status, _, _) = call(&http, &server.gateway, &d, &key, "test-7").await;
    assert_eq!(status, 200);
    let (status, _) = admin_post(
        &http,
        &server.base,
        &admin,
        &format!("/api/v1/exchange/api-keys/{key_id}/revoke"),
        json!({}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _, _) = call(&http, &server.gateway, &d, &key, "test-8").await;
    assert_eq!(status, 401);

    // The admin endpoints are in the OpenAPI document.
    let doc = http
        .get(format!("{}/api/openapi.json", server.base))
        .send()
        .await
        .expect("openapi")
        .text()
        .await
        .expect("text");
    assert!(doc.contains("/api/v1/exchange/access/revoke"));

    // Export while the server runs, then stop it and export again.
    let live_export = dir.join("live.log");
    export(&data, &live_export);
    let (code, text) = verify(&data, &live_export, None);
    assert_eq!(code, 0, "{text}");
    server.stop();
    let first = dir.join("first.log");
    export(&data, &first);
    let (code, text) = verify(&data, &first, None);
    assert_eq!(code, 0, "{text}");
    let (_, first_last) = record_range(&text);
    assert!(first_last >= 9, "every call was logged: {text}");

    // A restart keeps the chain: the demo key and right still work (the
    // provider's new port is registered), and the log goes on.
    let server = Server::start(&data, &[]);
    let (status, _, body) = call(&http, &server.gateway, &d, &d.api_key, "after-restart").await;
    assert_eq!(status, 200, "{body}");
    server.stop();
    let both = dir.join("both.log");
    export(&data, &both);
    let (code, text) = verify(&data, &both, None);
    assert_eq!(code, 0, "{text}");
    assert_eq!(record_range(&text), (1, first_last + 1), "{text}");
    assert!(
        std::fs::read_to_string(&both)
            .expect("read")
            .contains("after-restart")
    );

    // Verification needs nothing but the public key, given as hex.
    let (code, key_hex) = motcua(&[
        "exchange",
        "public-key",
        "--data-dir",
        &data.display().to_string(),
    ]);
    assert_eq!(code, 0, "{key_hex}");
    let key_hex = key_hex.trim().to_string();
    assert_eq!(key_hex.len(), 64);
    let elsewhere = temp_dir("exchange-verify");
    let (code, text) = verify(&elsewhere, &both, Some(&key_hex));
    assert_eq!(code, 0, "{text}");
    let (code, text) = verify(&elsewhere, &both, None);
    assert_ne!(code, 0, "no key in an empty data directory: {text}");

    // One changed byte in record 2: verify fails and names it.
    let tampered = dir.join("tampered.log");
    let mut bytes = std::fs::read(&both).expect("read");
    let at = find(&bytes, b"\"seq\":2,").expect("record 2");
    let id_at = at + find(&bytes[at..], b"\"x_road_id\":\"").expect("x_road_id") + 13;
    bytes[id_at] ^= 0x01;
    std::fs::write(&tampered, &bytes).expect("write");
    let (code, text) = verify(&data, &tampered, None);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("record 2"), "{text}");
    assert!(text.contains("Altered"), "{text}");

    // Archive everything so far: the archive verifies on its own, and so
    // does what is left of the live log.
    let archive = dir.join("archive.log");
    let (code, text) = motcua(&[
        "exchange",
        "archive",
        "--data-dir",
        &data.display().to_string(),
        "--before",
        &chrono::Utc::now().to_rfc3339(),
        "--out",
        &archive.display().to_string(),
    ]);
    assert_eq!(code, 0, "{text}");
    let (code, text) = verify(&data, &archive, None);
    assert_eq!(code, 0, "{text}");
    assert_eq!(record_range(&text), (1, first_last + 1), "{text}");
    let (code, text) = verify(&data, &data.join("exchange-log"), None);
    assert_eq!(code, 0, "{text}");

    // Every registry change is in the audit chain, naming its actor.
    let config = motcua::Config {
        data_dir: data.clone(),
        ..motcua::Config::default()
    };
    let inst = motcua::open(&config).await.expect("open");
    let records = inst.store.audit_records(0, 100_000).await.expect("audit");
    let actions: Vec<(String, String)> = records
        .iter()
        .filter(|r| r.entry.action.starts_with("exchange."))
        .map(|r| (r.entry.action.clone(), r.entry.actor.clone()))
        .collect();
    for expected in [
        ("exchange.member.add", "system"),
        ("exchange.subsystem.add", "system"),
        ("exchange.service.add", "system"),
        ("exchange.access.grant", "system"),
        ("exchange.apikey.add", "system"),
        ("exchange.access.revoke", "province.admin"),
        ("exchange.access.grant", "province.admin"),
        ("exchange.apikey.add", "province.admin"),
        ("exchange.apikey.revoke", "province.admin"),
        ("exchange.service.update", "system"),
    ] {
        assert!(
            actions
                .iter()
                .any(|(a, u)| a == expected.0 && u == expected.1),
            "{expected:?} in {actions:?}"
        );
    }
    assert!(
        motcua::verify_audit(inst.store.as_ref())
            .await
            .expect("audit")
            .is_ok()
    );
    if let Some(s) = inst.sqlite {
        s.close().await;
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Paths of a throwaway certificate and key made with the `openssl` tool.
fn openssl_cert(
    dir: &Path,
    name: &str,
    subject: &str,
    san: Option<&str>,
) -> Option<(PathBuf, PathBuf)> {
    let cert = dir.join(format!("{name}.pem"));
    let key = dir.join(format!("{name}.key"));
    let mut cmd = Command::new("openssl");
    cmd.args([
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
    ])
    .args(["-nodes", "-days", "2", "-subj", subject, "-keyout"])
    .arg(&key)
    .arg("-out")
    .arg(&cert)
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    if let Some(san) = san {
        cmd.args(["-addext", san]);
    }
    let ok = cmd.status().ok()?.success();
    ok.then_some((cert, key))
}

/// A CA and a server certificate for 127.0.0.1 signed by it, made with the
/// `openssl` tool: (CA certificate, server certificate, server key).
fn openssl_ca_and_server(dir: &Path) -> Option<(PathBuf, PathBuf, PathBuf)> {
    let (ca, ca_key) = openssl_cert(dir, "test-ca", "/CN=motcua test CA", None)?;
    let key = dir.join("server.key");
    let csr = dir.join("server.csr");
    let cert = dir.join("server.pem");
    let ext = dir.join("server.ext");
    std::fs::write(
        &ext,
        "basicConstraints=critical,CA:FALSE\nsubjectAltName=IP:127.0.0.1\n",
    )
    .ok()?;
    let run = |args: &[&std::ffi::OsStr]| {
        Command::new("openssl")
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .ok()
            .is_some_and(|s| s.success())
    };
    let os = |s: &'static str| std::ffi::OsStr::new(s);
    let ok = run(&[
        os("req"),
        os("-newkey"),
        os("ec"),
        os("-pkeyopt"),
        os("ec_paramgen_curve:P-256"),
        os("-nodes"),
        os("-subj"),
        os("/CN=127.0.0.1"),
        os("-keyout"),
        key.as_os_str(),
        os("-out"),
        csr.as_os_str(),
    ]) && run(&[
        os("x509"),
        os("-req"),
        os("-in"),
        csr.as_os_str(),
        os("-CA"),
        ca.as_os_str(),
        os("-CAkey"),
        ca_key.as_os_str(),
        os("-CAcreateserial"),
        os("-days"),
        os("2"),
        os("-extfile"),
        ext.as_os_str(),
        os("-out"),
        cert.as_os_str(),
    ]);
    ok.then_some((ca, cert, key))
}

/// A TLS client that trusts any server certificate (the test's own) and
/// presents `client` (certificate and key PEM files) when given.
fn tls_client(client: Option<&(PathBuf, PathBuf)>) -> tokio_rustls::TlsConnector {
    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

    #[derive(Debug)]
    struct TrustAll(std::sync::Arc<rustls::crypto::CryptoProvider>);
    impl ServerCertVerifier for TrustAll {
        fn verify_server_cert(
            &self,
            _: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &ServerName<'_>,
            _: &[u8],
            _: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            m: &[u8],
            c: &CertificateDer<'_>,
            d: &rustls::DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
                m,
                c,
                d,
                &self.0.signature_verification_algorithms,
            )
        }
        fn verify_tls13_signature(
            &self,
            m: &[u8],
            c: &CertificateDer<'_>,
            d: &rustls::DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                m,
                c,
                d,
                &self.0.signature_verification_algorithms,
            )
        }
        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .dangerous()
        .with_custom_certificate_verifier(std::sync::Arc::new(TrustAll(provider)));
    let config = match client {
        Some((cert, key)) => {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
                .expect("cert")
                .collect::<Result<_, _>>()
                .expect("cert");
            let key = PrivateKeyDer::from_pem_file(key).expect("key");
            builder
                .with_client_auth_cert(certs, key)
                .expect("client auth")
        }
        None => builder.with_no_client_auth(),
    };
    tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
}

/// One HTTP/1.1 GET over TLS; (status, response text).
async fn tls_get(
    connector: &tokio_rustls::TlsConnector,
    addr: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
    let mut tls = connector.connect(name, tcp).await.expect("handshake");
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    tls.write_all(req.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    let _ = tls.read_to_end(&mut out).await;
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_client_certificates_authenticate_registered_clients() {
    let dir = temp_dir("exchange-tls");
    let Some(server_pair) = openssl_cert(
        &dir,
        "server",
        "/CN=localhost",
        Some("subjectAltName=DNS:localhost,IP:127.0.0.1"),
    ) else {
        eprintln!("SKIPPED: no openssl tool to make test certificates");
        return;
    };
    let client_pair = openssl_cert(&dir, "client", "/CN=motcua-client", None).expect("client cert");
    let stranger_pair = openssl_cert(&dir, "stranger", "/CN=stranger", None).expect("cert");
    let data = dir.join("data");
    let server = Server::start(
        &data,
        &[
            (
                "MOTCUA_EXCHANGE__TLS_CERT",
                server_pair.0.display().to_string(),
            ),
            (
                "MOTCUA_EXCHANGE__TLS_KEY",
                server_pair.1.display().to_string(),
            ),
        ],
    );
    assert!(server.gateway.starts_with("https://"), "{}", server.gateway);
    let addr = server.gateway.trim_start_matches("https://").to_string();
    let d = demo_ids();

    // Bind the client certificate (by its fingerprint) to the portal.
    let der = {
        use rustls_pki_types::pem::PemObject;
        rustls_pki_types::CertificateDer::from_pem_file(&client_pair.0).expect("der")
    };
    let fingerprint = hex::encode(motcua_exchange::registry::cert_fingerprint(der.as_ref()));
    let http = reqwest::Client::new();
    let admin = token(&http, &server.base, "province.admin").await;
    let (status, body) = admin_post(
        &http,
        &server.base,
        &admin,
        "/api/v1/exchange/client-certs",
        json!({ "client": d.client, "fingerprint": fingerprint, "label": "test" }),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    let path = format!("/r1/{}{}", d.service, d.path);
    let with_cert = tls_client(Some(&client_pair));
    let (status, text) = tls_get(
        &with_cert,
        &addr,
        &path,
        &[("X-Road-Client", d.client.as_str())],
    )
    .await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("Nguyễn Văn An"), "{text}");

    // No certificate and no key; an unregistered certificate.
    let (status, text) = tls_get(
        &tls_client(None),
        &addr,
        &path,
        &[("X-Road-Client", d.client.as_str())],
    )
    .await;
    assert_eq!(status, 401, "{text}");
    let (status, text) = tls_get(
        &tls_client(Some(&stranger_pair)),
        &addr,
        &path,
        &[("X-Road-Client", d.client.as_str())],
    )
    .await;
    assert_eq!(status, 401, "{text}");
    assert!(
        text.to_ascii_lowercase()
            .contains("x-road-error: server.clientproxy.authenticationfailed"),
        "{text}"
    );

    // Without a certificate, the API key still works over TLS.
    let auth = format!("X-Road-ApiKey token={}", d.api_key);
    let (status, text) = tls_get(
        &tls_client(None),
        &addr,
        &path,
        &[
            ("X-Road-Client", d.client.as_str()),
            ("Authorization", &auth),
        ],
    )
    .await;
    assert_eq!(status, 200, "{text}");
    server.stop();
}

/// Polls `call` until it answers `want` (at most 10 s).
async fn eventually(http: &reqwest::Client, gateway: &str, d: &Demo, want: u16) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (status, _, _) = call(http, gateway, d, &d.api_key, "poll").await;
        if status == want {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{gateway} still answers {status}, not {want}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_on_one_postgres_share_the_registry_and_follow_its_changes() {
    let Some(db) = crate::cluster::PgDb::create("exchange").await else {
        return;
    };
    let dir = temp_dir("exchange-nodes");
    // Two nodes start at once (both register the demo entries), each with
    // its own data directory, message log and gateway.
    let starters: Vec<_> = ["a", "b"]
        .into_iter()
        .map(|n| {
            let data = dir.join(n);
            let env = vec![
                ("MOTCUA_DATABASE_URL", db.url.clone()),
                ("MOTCUA_EXCHANGE__REGISTRY_RELOAD_SECS", "1".to_string()),
            ];
            std::thread::spawn(move || Server::start(&data, &env))
        })
        .collect();
    let nodes: Vec<Server> = starters
        .into_iter()
        .map(|t| t.join().expect("node started"))
        .collect();
    let http = reqwest::Client::new();
    let d = demo_ids();
    for n in &nodes {
        eventually(&http, &n.gateway, &d, 200).await;
    }
    // Revoked on node a: at once there, within the reload period on b.
    let admin = token(&http, &nodes[0].base, "province.admin").await;
    let right = json!({ "client": d.client, "service": d.service });
    let (status, body) = admin_post(
        &http,
        &nodes[0].base,
        &admin,
        "/api/v1/exchange/access/revoke",
        right.clone(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, _, _) = call(&http, &nodes[0].gateway, &d, &d.api_key, "a").await;
    assert_eq!(status, 403);
    eventually(&http, &nodes[1].gateway, &d, 403).await;
    // Granted again on node b: followed by node a.
    let (status, body) = admin_post(
        &http,
        &nodes[1].base,
        &admin,
        "/api/v1/exchange/access/grant",
        right,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    eventually(&http, &nodes[0].gateway, &d, 200).await;
    for n in nodes {
        n.stop();
    }
}

/// A push receiver on 127.0.0.1 (HTTPS with `tls`, a certificate and key):
/// answers 500 to the first POST, then 204; keeps every body received.
async fn push_receiver(
    tls: Option<&(PathBuf, PathBuf)>,
) -> (
    String,
    std::sync::Arc<std::sync::Mutex<Vec<(Value, String)>>>,
) {
    use axum::http::{HeaderMap, StatusCode};
    let seen: std::sync::Arc<std::sync::Mutex<Vec<(Value, String)>>> = Default::default();
    let s = seen.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let s = s.clone();
            async move {
                let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let id = headers
                    .get("x-road-id")
                    .and_then(|h| h.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                let mut seen = s.lock().expect("lock");
                seen.push((v, id));
                if seen.len() == 1 {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::NO_CONTENT
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind receiver");
    let addr = listener.local_addr().expect("addr");
    match tls {
        Some((cert, key)) => {
            let l = motcua::exchange_tls::TlsListener::new(listener, cert, key).expect("tls");
            tokio::spawn(async move {
                let _ = axum::serve(l, app).await;
            });
            (format!("https://{addr}/hook"), seen)
        }
        None => {
            tokio::spawn(async move {
                let _ = axum::serve(listener, app).await;
            });
            (format!("http://{addr}/hook"), seen)
        }
    }
}

/// The deliveries of a subscription, as the admin API lists them.
async fn deliveries(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    subscription: &Value,
) -> Value {
    http.get(format!(
        "{base}/api/v1/exchange/pubsub/deliveries?subscription={subscription}"
    ))
    .bearer_auth(token)
    .send()
    .await
    .expect("deliveries")
    .json()
    .await
    .expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pubsub_push_with_retry_pull_with_ack_and_a_verified_log() {
    let dir = temp_dir("pubsub");
    let data = dir.join("data");
    let d = demo_ids();
    // The receiver speaks HTTPS with a certificate of its own CA, which
    // the node is told to trust (`[pubsub] push_ca_file`).
    let pki = openssl_ca_and_server(&dir);
    if pki.is_none() {
        eprintln!("SKIPPED (HTTPS part): no openssl tool; the receiver speaks plain HTTP");
    }
    let mut env = vec![
        // Two gateway threads, each with its own event loop, share the
        // listener (the default on this kind of machine is one).
        ("MOTCUA_EXCHANGE__THREADS", "2".to_string()),
        ("MOTCUA_PUBSUB__RETRY_BASE_MS", "300".to_string()),
        ("MOTCUA_PUBSUB__RETRY_MAX_MS", "2000".into()),
        ("MOTCUA_PUBSUB__POLL_MS", "100".into()),
    ];
    if let Some((ca, _, _)) = &pki {
        env.push(("MOTCUA_PUBSUB__PUSH_CA_FILE", ca.display().to_string()));
    }
    let server = Server::start(&data, &env);
    let http = reqwest::Client::new();
    let receiver_tls = pki.map(|(_, cert, key)| (cert, key));
    let (hook, seen) = push_receiver(receiver_tls.as_ref()).await;
    assert_eq!(
        hook.starts_with("https://"),
        receiver_tls.is_some(),
        "{hook}"
    );
    let admin = token(&http, &server.base, "province.admin").await;

    // The built-in event types, with their schemas.
    let types: Value = http
        .get(format!(
            "{}/api/v1/exchange/pubsub/event-types",
            server.base
        ))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("event types")
        .json()
        .await
        .expect("json");
    let names: Vec<&str> = types
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    for n in [
        "dossier.submitted",
        "dossier.accepted",
        "dossier.completed",
        "dossier.late",
    ] {
        assert!(names.contains(&n), "{n} in {names:?}");
    }

    // Subscriptions: refused for others than province administrators, for
    // unknown subsystems and for a push without URL.
    let subs = "/api/v1/exchange/pubsub/subscriptions";
    let push =
        json!({"client": d.client, "event_type": "dossier.accepted", "mode": "push", "url": hook});
    let officer = token(&http, &server.base, "officer").await;
    let (status, _) = admin_post(&http, &server.base, &officer, subs, push.clone()).await;
    assert_eq!(status, 403);
    let (status, body) = admin_post(
        &http,
        &server.base,
        &admin,
        subs,
        json!({"client": "VN/GOV/NOBODY/SYS", "event_type": "dossier.accepted", "mode": "pull"}),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    let (status, body) = admin_post(
        &http,
        &server.base,
        &admin,
        subs,
        json!({"client": d.client, "event_type": "dossier.accepted", "mode": "push"}),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    let (status, push_sub) = admin_post(&http, &server.base, &admin, subs, push).await;
    assert_eq!(status, 201, "{push_sub}");
    let (status, pull_sub) = admin_post(
        &http,
        &server.base,
        &admin,
        subs,
        json!({"client": d.client, "event_type": "dossier.accepted", "mode": "pull"}),
    )
    .await;
    assert_eq!(status, 201, "{pull_sub}");

    // A citizen submits, the officer accepts.
    let citizen = token(&http, &server.base, "citizen").await;
    let application = json!({ "procedure_code": crate::helpers::BIRTH, "unit_code": "00073",
        "fields": crate::helpers::birth_fields() });
    let form = reqwest::multipart::Form::new()
        .text("application", application.to_string())
        .part(
            "document:birth-notice",
            reqwest::multipart::Part::bytes(crate::helpers::pdf("pubsub"))
                .file_name("giay-chung-sinh.pdf"),
        );
    let r = http
        .post(format!("{}/api/v1/dossiers", server.base))
        .bearer_auth(&citizen)
        .multipart(form)
        .send()
        .await
        .expect("submit");
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.expect("json");
    let code = v["code"].as_str().expect("code").to_string();
    let (status, body) = admin_post(
        &http,
        &server.base,
        &officer,
        &format!("/api/v1/dossiers/{code}/actions"),
        json!({"action": "accept"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    // Push: refused once (500), delivered on the retry, same event id.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        if seen.lock().expect("lock").len() >= 2 {
            break;
        }
        if std::time::Instant::now() >= deadline {
            let d = deliveries(&http, &server.base, &admin, &push_sub["id"]).await;
            panic!("no retry reached the receiver: {d}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let received = seen.lock().expect("lock").clone();
    let (first, first_header) = &received[0];
    let (second, _) = &received[1];
    assert_eq!(first["type"], "dossier.accepted", "{first}");
    assert_eq!(first["data"]["code"], code.as_str());
    assert_eq!(first["data"]["status"], "accepted");
    let event_id = first["id"].as_str().expect("event id").to_string();
    assert_eq!(event_id.len(), 36, "a UUID: {event_id}");
    assert_eq!(first_header, &event_id, "X-Road-Id is the event id");
    assert_eq!(second["id"], first["id"], "a retry carries the same id");
    let delivered = deliveries(&http, &server.base, &admin, &push_sub["id"])
        .await
        .as_array()
        .expect("list")
        .iter()
        .find(|x| x["event"]["event_id"] == event_id.as_str())
        .expect("the delivery")
        .clone();
    assert_eq!(delivered["state"], "delivered", "{delivered}");
    assert_eq!(delivered["attempts"], 2, "{delivered}");
    assert_eq!(delivered["last_status"], 204, "{delivered}");

    // Pull on the gateway: authentication as on /r1/.
    let events = format!("{}/pubsub/v1/events", server.gateway);
    let r = http
        .get(&events)
        .header("X-Road-Client", &d.client)
        .send()
        .await
        .expect("pull");
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers()["x-road-error"],
        "Server.ClientProxy.AuthenticationFailed"
    );
    let pull = || async {
        let r = http
            .get(&events)
            .header("X-Road-Client", &d.client)
            .header(
                "Authorization",
                format!("X-Road-ApiKey token={}", d.api_key),
            )
            .send()
            .await
            .expect("pull");
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.expect("json");
        v["events"].as_array().expect("events").clone()
    };
    let pulled = pull().await;
    let mine = pulled
        .iter()
        .find(|e| e["id"] == event_id.as_str())
        .expect("the accepted event is pulled");
    assert_eq!(mine["type"], "dossier.accepted");
    assert_eq!(mine["data"]["code"], code.as_str());
    assert_eq!(mine["subscription"], pull_sub["id"]);
    assert!(
        pull().await.iter().any(|e| e["id"] == event_id.as_str()),
        "offered again until acknowledged"
    );
    let r = http
        .post(format!("{}/pubsub/v1/ack", server.gateway))
        .header("X-Road-Client", &d.client)
        .header(
            "Authorization",
            format!("X-Road-ApiKey token={}", d.api_key),
        )
        .json(&json!({"ids": [event_id]}))
        .send()
        .await
        .expect("ack");
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["acknowledged"], json!([event_id]));
    assert!(
        !pull().await.iter().any(|e| e["id"] == event_id.as_str()),
        "not offered after the acknowledgement"
    );

    // Every attempt, pull and acknowledgement is in the verified log.
    server.stop();
    let out = dir.join("pubsub.log");
    export(&data, &out);
    let (code_, text) = verify(&data, &out, None);
    assert_eq!(code_, 0, "{text}");
    let log = std::fs::read_to_string(&out).expect("read");
    let attempts = log
        .lines()
        .filter(|l| l.contains(&format!("\"x_road_id\":\"{event_id}\"")))
        .count();
    assert_eq!(attempts, 2, "both push attempts are logged");
    assert!(log.contains("/pubsub/v1/ack"), "the ack is logged");
    assert!(log.contains(&format!("acknowledged {event_id}")));
    assert!(log.contains("VN/pubsub/dossier.accepted"));
}

/// A push CA file that cannot be read stops `serve` at start with a message
/// naming it, not at the first push.
#[test]
fn serve_refuses_an_unreadable_push_ca_file() {
    use std::io::{BufRead, BufReader, Read};
    let dir = temp_dir("pubsub-ca");
    let missing = dir.join("missing-ca.pem");
    let mut child = serve_demo_command(
        &dir.join("data"),
        &[("MOTCUA_PUBSUB__PUSH_CA_FILE", missing.display().to_string())],
    )
    .stderr(Stdio::piped())
    .spawn()
    .expect("spawn motcua");
    let stdout = child.stdout.take().expect("stdout");
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        if line.contains("motcua is running") {
            let _ = child.kill();
            panic!("serve started with an unreadable push_ca_file");
        }
    }
    let status = child.wait().expect("wait");
    let mut err = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut err)
        .expect("stderr");
    assert!(!status.success());
    assert!(
        err.contains("push_ca_file") && err.contains("missing-ca.pem"),
        "{err}"
    );
}

//! The gateway over real HTTP: real upstream servers and the gateway router
//! on 127.0.0.1, the message log in a temporary directory.
// Tests read top to bottom as stories; the length limit is for code.
#![allow(clippy::too_many_lines)]
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use base64::Engine as _;
use motcua_exchange::log::{
    self, VerifyProblem, export_dir, read_records, verify_dir, verify_file,
};
use motcua_exchange::registry::{Endpoint, Service};
use motcua_exchange::{
    ClientId, Gateway, GatewayConfig, LogConfig, MessageLog, PeerCertificate, Registry, ServiceId,
    TimeRange,
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const A: &str = "VN/GOV/H26/MOTCUA";
const B: &str = "VN/GOV/H26/OTHER";
const PROVIDER: &str = "VN/GOV/BCA/DANCU";

fn cid(s: &str) -> ClientId {
    s.parse().unwrap()
}
fn sid(s: &str) -> ServiceId {
    s.parse().unwrap()
}

async fn serve(router: Router) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(l, router).await;
    });
    addr
}

/// An upstream that answers every connection with `payload` (after reading
/// what the client sent), then closes.
async fn raw_upstream(payload: &'static [u8]) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(payload).await;
                let _ = s.shutdown().await;
            });
        }
    });
    addr
}

async fn echo(req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let headers: BTreeMap<String, String> = parts
        .headers
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("?").to_owned()))
        .collect();
    let mut h = HeaderMap::new();
    h.insert("x-custom", HeaderValue::from_static("yes"));
    h.insert("server", HeaderValue::from_static("secret-upstream/1.0"));
    h.insert("connection", HeaderValue::from_static("x-hop"));
    h.insert("x-hop", HeaderValue::from_static("must not pass"));
    h.insert("x-road-request-hash", HeaderValue::from_static("forged"));
    (
        StatusCode::CREATED,
        h,
        axum::Json(json!({
            "method": parts.method.as_str(),
            "uri": parts.uri.to_string(),
            "headers": headers,
            "body": String::from_utf8_lossy(&body),
        })),
    )
        .into_response()
}

fn upstream_app() -> Router {
    Router::new()
        .route("/api/{*rest}", any(echo))
        .route("/api", any(echo))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(3)).await;
                "late"
            }),
        )
        .route("/huge", get(|| async { vec![b'x'; 3 << 20] }))
}

struct Env {
    _tmp: tempfile::TempDir,
    data: PathBuf,
    gw: Gateway,
    registry: Registry,
    addr: SocketAddr,
    key_a: String,
    key_b: String,
    http: reqwest::Client,
}

impl Env {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A request as client A (API key and X-Road-Client).
    fn a(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, self.url(path))
            .header("X-Road-Client", A)
            .header(
                "Authorization",
                format!("X-Road-ApiKey token={}", self.key_a),
            )
    }

    fn records(&self) -> Vec<log::LoggedRecord> {
        read_records(&self.data.join("exchange-log")).unwrap()
    }

    fn last_record(&self) -> log::LoggedRecord {
        self.records().pop().unwrap()
    }
}

async fn env_with(log_cfg: impl FnOnce(&mut LogConfig)) -> Env {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().to_path_buf();
    let up = serve(upstream_app()).await;
    let down = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    }; // closed again: nothing listens there
    let garbage = raw_upstream(b"HELLO, this is not HTTP at all\r\n\r\n").await;
    let closer = raw_upstream(b"").await;
    let chunked =
        raw_upstream(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n100000\r\n").await; // announces a 1 MiB chunk, sends none, closes

    let mut r = Registry::new("VN");
    r.add_member("GOV", "H26", "Thành phố Hà Nội").unwrap();
    r.add_member("GOV", "BCA", "Bộ Công an").unwrap();
    r.add_subsystem(&cid(A), "Một cửa").unwrap();
    r.add_subsystem(&cid(B), "Khác").unwrap();
    r.add_subsystem(&cid(PROVIDER), "Cơ sở dữ liệu dân cư")
        .unwrap();
    let mut echo = Service::new(
        sid(&format!("{PROVIDER}/echo")),
        &format!("http://{up}/api"),
    );
    echo.capture_bodies = true;
    echo.capture_limit = Some(16);
    echo.openapi =
        Some(r#"{"openapi":"3.0.0","info":{"title":"echo","version":"1"},"paths":{}}"#.into());
    echo.endpoints = vec![
        Endpoint::new("GET", "/people/{id}"),
        Endpoint::new("POST", "/people"),
    ];
    r.put_service(echo).unwrap();
    r.put_service(Service::new(
        sid(&format!("{PROVIDER}/echo/v2")),
        &format!("http://{up}/api/v2"),
    ))
    .unwrap();
    let mut slow = Service::new(sid(&format!("{PROVIDER}/slow")), &format!("http://{up}"));
    slow.timeout_ms = Some(300);
    r.put_service(slow).unwrap();
    for (code, url) in [
        ("huge", format!("http://{up}")),
        ("down", format!("http://{down}")),
        ("garbage", format!("http://{garbage}")),
        ("closer", format!("http://{closer}")),
        ("chunked", format!("http://{chunked}")),
        ("restricted", format!("http://{up}/api")),
    ] {
        r.put_service(Service::new(sid(&format!("{PROVIDER}/{code}")), &url))
            .unwrap();
    }
    for code in [
        "echo", "echo/v2", "slow", "huge", "down", "garbage", "closer", "chunked",
    ] {
        r.grant(&cid(A), &sid(&format!("{PROVIDER}/{code}")), vec![])
            .unwrap();
    }
    r.grant(
        &cid(A),
        &sid(&format!("{PROVIDER}/restricted")),
        vec![Endpoint::new("GET", "/people/{id}")],
    )
    .unwrap();
    let (_, key_a) = r.add_api_key(&cid(A), "tests", chrono::Utc::now()).unwrap();
    let (_, key_b) = r.add_api_key(&cid(B), "tests", chrono::Utc::now()).unwrap();

    let mut lc = LogConfig::new(&data);
    log_cfg(&mut lc);
    let log = Arc::new(MessageLog::open(&lc).unwrap());
    let config = GatewayConfig {
        request_body_limit: 64 << 10,
        response_body_limit: 1 << 20,
        upstream_timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(2),
        ..GatewayConfig::default()
    };
    let gw = Gateway::new(r.clone(), log, config).unwrap();
    let addr = serve(gw.router()).await;
    Env {
        _tmp: tmp,
        data,
        gw,
        registry: r,
        addr,
        key_a,
        key_b,
        http: reqwest::Client::builder().no_proxy().build().unwrap(),
    }
}

async fn env() -> Env {
    env_with(|_| {}).await
}

/// Asserts an X-Road error answer and returns its JSON body.
async fn expect_error(resp: reqwest::Response, status: u16, kind: &str) -> Value {
    assert_eq!(resp.status().as_u16(), status, "status for {kind}");
    let h = resp.headers().clone();
    assert_eq!(
        h.get("x-road-error").and_then(|v| v.to_str().ok()),
        Some(kind)
    );
    assert!(
        h.get("content-type")
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let id = h.get("x-road-id").unwrap().to_str().unwrap().to_owned();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["type"], kind);
    assert_eq!(body["detail"], id.as_str(), "detail is the X-Road-Id");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    body
}

/// Sends bytes as they are and reads the whole answer (the request asks
/// for `Connection: close`).
async fn raw_request(addr: SocketAddr, head: &str, body: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    // The gateway may answer and close before it has read everything.
    for part in body.chunks(8 << 10) {
        if s.write_all(part).await.is_err() {
            break;
        }
    }
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

fn sha256_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

#[tokio::test]
async fn access_granted_passes_body_status_and_headers_through() {
    let e = env().await;
    let body = r#"{"name":"Nguyễn Văn A","id":"001"}"#;
    let resp = e
        .a(
            reqwest::Method::POST,
            &format!("/r1/{PROVIDER}/echo/people/1?full=true&x=%C4%90"),
        )
        .header("X-Road-Id", "test-0001")
        .header("X-Road-UserId", "VN001234567890")
        .header("X-Road-Issue", "H26-250101-0001")
        .header("Content-Type", "application/json; charset=utf-8")
        .header("X-Custom-Request", "passes")
        .header("User-Agent", "leaky/1.0")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let h = resp.headers().clone();
    assert_eq!(h["x-road-id"], "test-0001");
    assert_eq!(h["x-custom"], "yes");
    assert!(
        h.get("x-hop").is_none(),
        "a header named in Connection must not pass"
    );
    assert!(
        h.get("server").is_none(),
        "the provider's Server header must not pass"
    );
    assert!(h.get("x-road-error").is_none());
    let request_hash = h["x-road-request-hash"].to_str().unwrap().to_owned();
    assert_ne!(request_hash, "forged");
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(&request_hash)
            .unwrap()
            .len(),
        64
    );
    let bytes = resp.bytes().await.unwrap();
    let seen: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(seen["method"], "POST");
    assert_eq!(seen["uri"], "/api/people/1?full=true&x=%C4%90");
    assert_eq!(seen["body"], body);
    let uh = &seen["headers"];
    assert_eq!(uh["x-road-client"], A);
    assert_eq!(uh["x-road-service"], format!("{PROVIDER}/echo"));
    assert_eq!(uh["x-road-id"], "test-0001");
    assert_eq!(uh["x-road-userid"], "VN001234567890");
    assert_eq!(uh["x-road-issue"], "H26-250101-0001");
    assert_eq!(uh["x-custom-request"], "passes");
    assert_eq!(uh["content-type"], "application/json; charset=utf-8");
    assert!(
        uh.get("authorization").is_none(),
        "the API key must not reach the provider"
    );
    assert!(uh.get("user-agent").is_none());
    assert_eq!(
        uh["host"],
        e.registry.services[0]
            .upstream
            .trim_start_matches("http://")
            .trim_end_matches("/api")
    );

    let r = e.last_record();
    assert_eq!(r.seq, 1);
    let rec = &r.record;
    assert_eq!(rec.x_road_id, "test-0001");
    assert_eq!(rec.client.as_deref(), Some(A));
    assert_eq!(rec.service.as_deref(), Some(&*format!("{PROVIDER}/echo")));
    assert_eq!(rec.user_id.as_deref(), Some("VN001234567890"));
    assert_eq!(rec.issue.as_deref(), Some("H26-250101-0001"));
    assert_eq!(rec.method, "POST");
    assert_eq!(
        rec.path,
        format!("/r1/{PROVIDER}/echo/people/1?full=true&x=%C4%90")
    );
    assert_eq!(rec.status, 201);
    assert_eq!(rec.error, None);
    assert_eq!(
        rec.request_sha256.as_deref(),
        Some(&*sha256_hex(body.as_bytes()))
    );
    assert_eq!(rec.request_bytes, body.len() as u64);
    assert_eq!(rec.response_sha256, sha256_hex(&bytes));
    assert_eq!(rec.response_bytes, bytes.len() as u64);
    assert_eq!(rec.request_hash.as_deref(), Some(&*request_hash));
    assert!(rec.upstream_us.is_some() && rec.total_us >= rec.upstream_us.unwrap());
    // Capture is on for this service, capped at 16 bytes.
    let b64 = base64::engine::general_purpose::STANDARD;
    assert_eq!(
        b64.decode(rec.request_body.as_ref().unwrap()).unwrap(),
        &body.as_bytes()[..16]
    );
    assert_eq!(
        b64.decode(rec.response_body.as_ref().unwrap()).unwrap(),
        &bytes[..16]
    );

    // Without X-Road-Id the gateway makes one; a version is resolved from
    // the path; a GET without a body has the empty body's hash.
    let resp = e
        .a(
            reqwest::Method::GET,
            &format!("/r1/{PROVIDER}/echo/v2/people/2"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let id = resp.headers()["x-road-id"].to_str().unwrap().to_owned();
    assert_eq!(id.len(), 36);
    let seen: Value = resp.json().await.unwrap();
    assert_eq!(seen["uri"], "/api/v2/people/2");
    assert_eq!(
        seen["headers"]["x-road-service"],
        format!("{PROVIDER}/echo/v2")
    );
    let r = e.last_record();
    assert_eq!(r.record.x_road_id, id);
    assert_eq!(r.record.request_sha256.as_deref(), Some(&*sha256_hex(b"")));
    assert_eq!(r.record.request_body, None, "capture is off by default");
}

#[tokio::test]
async fn denied_unknown_and_bad_credentials_are_answered_and_logged() {
    let e = env().await;
    let echo = format!("/r1/{PROVIDER}/echo/people/1");
    // Client B is registered and authenticated but has no right.
    let resp = e
        .http
        .get(e.url(&echo))
        .header("X-Road-Client", B)
        .header("Authorization", format!("X-Road-ApiKey token={}", e.key_b))
        .send()
        .await
        .unwrap();
    expect_error(resp, 403, "Server.ServerProxy.AccessDenied").await;
    assert_eq!(e.last_record().record.client.as_deref(), Some(B));
    // A right narrowed to an endpoint.
    let ok = e
        .a(
            reqwest::Method::GET,
            &format!("/r1/{PROVIDER}/restricted/people/7"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 201);
    for (m, p) in [
        ("POST", "/people/7"),
        ("GET", "/people"),
        ("GET", "/people/7/photos"),
    ] {
        let resp = e
            .a(m.parse().unwrap(), &format!("/r1/{PROVIDER}/restricted{p}"))
            .send()
            .await
            .unwrap();
        expect_error(resp, 403, "Server.ServerProxy.AccessDenied").await;
    }
    // Unknown service.
    let resp = e
        .a(reqwest::Method::GET, &format!("/r1/{PROVIDER}/nothing"))
        .send()
        .await
        .unwrap();
    expect_error(resp, 404, "Server.ServerProxy.UnknownService").await;
    assert_eq!(
        e.last_record().record.error.as_deref(),
        Some("Server.ServerProxy.UnknownService")
    );
    // No credentials, a wrong key, a malformed header.
    let resp = e
        .http
        .get(e.url(&echo))
        .header("X-Road-Client", A)
        .send()
        .await
        .unwrap();
    expect_error(resp, 401, "Server.ClientProxy.AuthenticationFailed").await;
    assert_eq!(
        e.last_record().record.client.as_deref(),
        Some(A),
        "the claimed client is logged"
    );
    for auth in [
        "X-Road-ApiKey token=xrk_wrong",
        "X-Road-ApiKey xrk_no_token",
    ] {
        let resp = e
            .http
            .get(e.url(&echo))
            .header("X-Road-Client", A)
            .header("Authorization", auth)
            .send()
            .await
            .unwrap();
        expect_error(resp, 401, "Server.ClientProxy.AuthenticationFailed").await;
    }
    // X-Road-Client that is not the key's subsystem.
    let resp = e
        .http
        .get(e.url(&echo))
        .header("X-Road-Client", B)
        .header("Authorization", format!("X-Road-ApiKey token={}", e.key_a))
        .send()
        .await
        .unwrap();
    expect_error(resp, 403, "Server.ClientProxy.ClientIdMismatch").await;
    // Missing or malformed X-Road-Client, bad path, bad X-Road-Id, dot segments.
    let resp = e
        .http
        .get(e.url(&echo))
        .header("Authorization", format!("X-Road-ApiKey token={}", e.key_a))
        .send()
        .await
        .unwrap();
    expect_error(resp, 400, "Client.BadRequest").await;
    let resp = e
        .http
        .get(e.url(&echo))
        .header("X-Road-Client", "VN/GOV/H26")
        .header("Authorization", format!("X-Road-ApiKey token={}", e.key_a))
        .send()
        .await
        .unwrap();
    expect_error(resp, 400, "Client.BadRequest").await;
    let resp = e
        .a(reqwest::Method::GET, "/r1/VN/GOV/H:26/X/y")
        .send()
        .await
        .unwrap();
    expect_error(resp, 400, "Client.BadRequest").await;
    let resp = e
        .a(reqwest::Method::GET, &echo)
        .header("X-Road-Id", "bad id with spaces")
        .send()
        .await
        .unwrap();
    expect_error(resp, 400, "Client.BadRequest").await;
    // (Sent raw: an HTTP client library would normalise the dots away.)
    let text = raw_request(
        e.addr,
        &format!(
            "GET /r1/{PROVIDER}/restricted/people/%2E%2E/admin HTTP/1.1\r\nHost: gw\r\nX-Road-Client: {A}\r\nAuthorization: X-Road-ApiKey token={}\r\nConnection: close\r\n\r\n",
            e.key_a
        ),
        &[],
    )
    .await;
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    assert!(
        text.to_ascii_lowercase()
            .contains("x-road-error: client.badrequest"),
        "{text}"
    );

    // Every exchange is in the log, and the log verifies.
    let records = e.records();
    assert_eq!(records.len(), 15);
    let errors = records.iter().filter(|r| r.record.error.is_some()).count();
    assert_eq!(errors, 14);
    let s = verify_dir(&e.data.join("exchange-log"), &e.gw.log().public_key()).unwrap();
    assert_eq!(s.records, 15);
    let m = e.gw.metrics().snapshot();
    assert_eq!((m.requests, m.errors), (15, 14));
}

#[tokio::test]
async fn access_revoked_between_two_requests() {
    let e = env().await;
    let path = format!("/r1/{PROVIDER}/echo/people/1");
    assert_eq!(
        e.a(reqwest::Method::GET, &path)
            .send()
            .await
            .unwrap()
            .status(),
        201
    );
    let mut r = e.registry.clone();
    let change = r
        .revoke(&cid(A), &sid(&format!("{PROVIDER}/echo")))
        .unwrap();
    assert_eq!(change.action, "exchange.access.revoke");
    e.gw.set_registry(r.clone()).unwrap();
    let resp = e.a(reqwest::Method::GET, &path).send().await.unwrap();
    expect_error(resp, 403, "Server.ServerProxy.AccessDenied").await;
    // Other services still work; then the key itself is revoked.
    let v2 = format!("/r1/{PROVIDER}/echo/v2/x");
    assert_eq!(
        e.a(reqwest::Method::GET, &v2)
            .send()
            .await
            .unwrap()
            .status(),
        201
    );
    let key_id = r
        .api_keys
        .iter()
        .find(|k| k.client == cid(A))
        .unwrap()
        .id
        .clone();
    r.revoke_api_key(&key_id).unwrap();
    e.gw.set_registry(r.clone()).unwrap();
    let resp = e.a(reqwest::Method::GET, &v2).send().await.unwrap();
    expect_error(resp, 401, "Server.ClientProxy.AuthenticationFailed").await;
    // An invalid registry is refused and the one in force stays.
    let mut bad = r.clone();
    bad.instance = "not valid!".into();
    assert!(e.gw.set_registry(bad).is_err());
    assert_eq!(e.gw.registry().instance(), "VN");
    assert_eq!(e.records().len(), 4);
}

#[tokio::test]
async fn upstream_down_slow_huge_and_malformed() {
    let e = env().await;
    let get = |code: &str| {
        e.a(reqwest::Method::GET, &format!("/r1/{PROVIDER}/{code}"))
            .send()
    };
    let resp = get("down").await.unwrap();
    expect_error(resp, 502, "Server.ServerProxy.ServiceFailed.NetworkError").await;

    let t = Instant::now();
    let resp = e
        .a(reqwest::Method::GET, &format!("/r1/{PROVIDER}/slow/slow"))
        .send()
        .await
        .unwrap();
    expect_error(resp, 504, "Server.ServerProxy.ServiceFailed.Timeout").await;
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "the service's 300 ms timeout applies"
    );
    let r = e.last_record().record;
    assert!(r.upstream_us.unwrap() >= 300_000, "{r:?}");

    let resp = e
        .a(reqwest::Method::GET, &format!("/r1/{PROVIDER}/huge/huge"))
        .send()
        .await
        .unwrap();
    expect_error(
        resp,
        502,
        "Server.ServerProxy.ServiceFailed.ResponseTooLarge",
    )
    .await;
    let resp = get("chunked").await.unwrap();
    let status = resp.status().as_u16();
    let kind = resp.headers()["x-road-error"].to_str().unwrap().to_owned();
    // A chunk announced larger than the limit, then a closed connection:
    // either the size or the broken response is reported; never a pass.
    assert_eq!(status, 502);
    assert!(
        kind == "Server.ServerProxy.ServiceFailed.ResponseTooLarge"
            || kind == "Server.ServerProxy.ServiceFailed.InvalidResponse",
        "{kind}"
    );

    let resp = get("garbage").await.unwrap();
    expect_error(
        resp,
        502,
        "Server.ServerProxy.ServiceFailed.InvalidResponse",
    )
    .await;
    let resp = get("closer").await.unwrap();
    expect_error(
        resp,
        502,
        "Server.ServerProxy.ServiceFailed.InvalidResponse",
    )
    .await;

    let records = e.records();
    assert_eq!(records.len(), 6);
    assert!(
        records
            .iter()
            .all(|r| r.record.error.is_some() && r.record.status >= 500)
    );
    // The gateway still works afterwards.
    let ok = e
        .a(reqwest::Method::GET, &format!("/r1/{PROVIDER}/echo/x"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 201);
}

#[tokio::test]
async fn request_body_too_large_declared_or_streamed() {
    let e = env().await;
    let big = vec![b'a'; 100 << 10];
    let resp = e
        .a(
            reqwest::Method::POST,
            &format!("/r1/{PROVIDER}/echo/upload"),
        )
        .body(big)
        .send()
        .await
        .unwrap();
    let body = expect_error(resp, 413, "Client.RequestTooLarge").await;
    assert!(body["message"].as_str().unwrap().contains("65536"));

    // Chunked, so the gateway only finds out while streaming it upstream.
    let head = format!(
        "POST /r1/{PROVIDER}/echo/upload HTTP/1.1\r\nHost: gw\r\nX-Road-Client: {A}\r\nAuthorization: X-Road-ApiKey token={}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        e.key_a
    );
    let chunk = vec![b'b'; 16 << 10];
    let mut chunked = Vec::new();
    for _ in 0..8 {
        chunked.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        chunked.extend_from_slice(&chunk);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let text = raw_request(e.addr, &head, &chunked).await;
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(
        text.to_ascii_lowercase()
            .contains("x-road-error: client.requesttoolarge"),
        "{text}"
    );
    let r = e.last_record().record;
    assert_eq!(r.error.as_deref(), Some("Client.RequestTooLarge"));
    assert_eq!(e.records().len(), 2);
}

#[tokio::test]
async fn metadata_services_in_x_road_shape() {
    let e = env().await;
    let j = |resp: reqwest::Response| async move {
        assert_eq!(resp.status(), 200);
        resp.json::<Value>().await.unwrap()
    };
    let clients = j(e
        .a(reqwest::Method::GET, "/r1/VN/listClients")
        .send()
        .await
        .unwrap())
    .await;
    let members = clients["member"].as_array().unwrap();
    assert_eq!(members.len(), 5, "{clients}");
    assert!(members.contains(&json!({
        "id": {"member_class": "GOV", "member_code": "H26", "object_type": "SUBSYSTEM",
               "subsystem_code": "MOTCUA", "xroad_instance": "VN"},
        "name": "Thành phố Hà Nội"
    })));
    assert!(members.contains(&json!({
        "id": {"member_class": "GOV", "member_code": "BCA", "object_type": "MEMBER", "xroad_instance": "VN"},
        "name": "Bộ Công an"
    })));
    let resp = e
        .a(reqwest::Method::GET, "/r1/XX/listClients")
        .send()
        .await
        .unwrap();
    expect_error(resp, 404, "Server.ClientProxy.UnknownMember").await;

    let list = j(e
        .a(reqwest::Method::GET, &format!("/r1/{PROVIDER}/listMethods"))
        .send()
        .await
        .unwrap())
    .await;
    let services = list["service"].as_array().unwrap();
    assert_eq!(services.len(), 9);
    assert_eq!(
        services[0],
        json!({"member_class": "GOV", "member_code": "BCA", "object_type": "SERVICE", "service_code": "echo",
               "subsystem_code": "DANCU", "xroad_instance": "VN", "service_type": "OPENAPI",
               "endpoint_list": [{"method": "GET", "path": "/people/{id}"}, {"method": "POST", "path": "/people"}]})
    );
    assert_eq!(services[1]["service_version"], "v2");
    assert_eq!(
        services[1]["endpoint_list"],
        json!([{"method": "*", "path": "**"}])
    );

    let allowed = j(e
        .a(
            reqwest::Method::GET,
            &format!("/r1/{PROVIDER}/allowedMethods"),
        )
        .send()
        .await
        .unwrap())
    .await;
    let allowed = allowed["service"].as_array().unwrap();
    assert_eq!(allowed.len(), 9);
    let restricted = allowed
        .iter()
        .find(|s| s["service_code"] == "restricted")
        .unwrap();
    assert_eq!(
        restricted["endpoint_list"],
        json!([{"method": "GET", "path": "/people/{id}"}])
    );
    let for_b = e
        .http
        .get(e.url(&format!("/r1/{PROVIDER}/allowedMethods")))
        .header("X-Road-Client", B)
        .header("Authorization", format!("X-Road-ApiKey token={}", e.key_b))
        .send()
        .await
        .unwrap();
    assert_eq!(j(for_b).await, json!({"service": []}));

    let openapi = e
        .a(
            reqwest::Method::GET,
            &format!("/r1/{PROVIDER}/getOpenAPI?serviceCode=echo"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(openapi.status(), 200);
    assert!(
        openapi.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let doc: Value = openapi.json().await.unwrap();
    assert_eq!(doc["info"]["title"], "echo");
    let resp = e
        .a(
            reqwest::Method::GET,
            &format!("/r1/{PROVIDER}/getOpenAPI?serviceCode=huge"),
        )
        .send()
        .await
        .unwrap();
    expect_error(resp, 404, "Server.ServerProxy.UnknownService").await;
    let resp = e
        .a(reqwest::Method::GET, "/r1/VN/GOV/BCA/NOPE/listMethods")
        .send()
        .await
        .unwrap();
    expect_error(resp, 404, "Server.ClientProxy.UnknownMember").await;
    // Metadata needs credentials too.
    let resp = e
        .http
        .get(e.url("/r1/VN/listClients"))
        .send()
        .await
        .unwrap();
    expect_error(resp, 401, "Server.ClientProxy.AuthenticationFailed").await;
    assert_eq!(e.records().len(), 9);
}

#[tokio::test]
async fn tls_client_certificate_fingerprint_authenticates() {
    let e = env().await;
    let der = b"a DER certificate as a TLS listener would see it";
    let mut r = e.registry.clone();
    r.add_client_cert(&cid(A), &hex::encode(Sha256::digest(der)), "motcua")
        .unwrap();
    e.gw.set_registry(r).unwrap();
    // What a TLS listener does: put the peer certificate's fingerprint on
    // every request of the connection.
    let with_cert = serve(
        e.gw.router()
            .layer(axum::Extension(PeerCertificate::from_der(der))),
    )
    .await;
    let unknown = serve(
        e.gw.router()
            .layer(axum::Extension(PeerCertificate::from_der(b"other"))),
    )
    .await;
    let path = format!("/r1/{PROVIDER}/echo/people/1");
    let resp = e
        .http
        .get(format!("http://{with_cert}{path}"))
        .header("X-Road-Client", A)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let resp = e
        .http
        .get(format!("http://{with_cert}{path}"))
        .header("X-Road-Client", B)
        .send()
        .await
        .unwrap();
    expect_error(resp, 403, "Server.ClientProxy.ClientIdMismatch").await;
    // A certificate of A with an API key of B is refused.
    let resp = e
        .http
        .get(format!("http://{with_cert}{path}"))
        .header("X-Road-Client", A)
        .header("Authorization", format!("X-Road-ApiKey token={}", e.key_b))
        .send()
        .await
        .unwrap();
    expect_error(resp, 401, "Server.ClientProxy.AuthenticationFailed").await;
    let resp = e
        .http
        .get(format!("http://{unknown}{path}"))
        .header("X-Road-Client", A)
        .send()
        .await
        .unwrap();
    expect_error(resp, 401, "Server.ClientProxy.AuthenticationFailed").await;
}

#[tokio::test]
async fn health_metrics_and_a_failed_log_withholds_responses() {
    let e = env().await;
    let health = e.http.get(e.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    for _ in 0..3 {
        e.a(reqwest::Method::GET, &format!("/r1/{PROVIDER}/echo/x"))
            .send()
            .await
            .unwrap();
    }
    e.a(reqwest::Method::GET, &format!("/r1/{PROVIDER}/down"))
        .send()
        .await
        .unwrap();
    let text = e.gw.render_prometheus();
    for needle in [
        "motcua_exchange_service_requests_total{service=\"VN/GOV/BCA/DANCU/echo\"} 3",
        "motcua_exchange_client_requests_total{client=\"VN/GOV/H26/MOTCUA\"} 4",
        "motcua_exchange_service_errors_total{service=\"VN/GOV/BCA/DANCU/down\",type=\"Server.ServerProxy.ServiceFailed.NetworkError\"} 1",
        "motcua_exchange_service_upstream_duration_seconds_count{service=\"VN/GOV/BCA/DANCU/echo\"} 3",
        "motcua_exchange_log_healthy 1",
    ] {
        assert!(text.contains(needle), "missing {needle} in\n{text}");
    }
    let snap = e.gw.metrics().snapshot();
    let echo = snap
        .services
        .iter()
        .find(|s| s.key.ends_with("/echo"))
        .unwrap();
    assert_eq!((echo.requests, echo.errors), (3, 0));
    // Off the /r1 tree: a 404 in X-Road shape, not logged.
    let resp = e.http.get(e.url("/nothing")).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    assert!(resp.headers().get("x-road-error").is_some());

    e.gw.log().shutdown().await;
    let health = e.http.get(e.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 503);
    let resp = e
        .a(reqwest::Method::GET, &format!("/r1/{PROVIDER}/echo/x"))
        .send()
        .await
        .unwrap();
    let body = expect_error(resp, 500, "Server.ClientProxy.MessageLogFailed").await;
    assert!(body.get("name").is_none(), "no upstream data leaks: {body}");
    assert!(
        e.gw.render_prometheus()
            .contains("motcua_exchange_log_healthy 0")
    );
    assert_eq!(e.records().len(), 4);
}

// ------------------------------------------------------------------ the log

/// Runs `n` successful exchanges one after the other.
async fn run_exchanges(e: &Env, n: usize) {
    for i in 0..n {
        let resp = e
            .a(
                reqwest::Method::GET,
                &format!("/r1/{PROVIDER}/echo/people/{i}"),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
    }
}

fn lines(p: &Path) -> Vec<String> {
    std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn write_lines(p: &Path, lines: &[String]) {
    std::fs::write(p, lines.join("\n") + "\n").unwrap();
}

fn record_line(lines: &[String], seq: u64) -> usize {
    let needle = format!("{{\"kind\":\"record\",\"seq\":{seq},");
    lines.iter().position(|l| l.starts_with(&needle)).unwrap()
}

#[tokio::test]
async fn the_signed_log_detects_altered_deleted_and_reordered_records() {
    let e = env().await;
    run_exchanges(&e, 6).await;
    let key = e.gw.log().public_key();
    let out = e.data.join("export.log");
    let summary = e.gw.log().export(TimeRange::all(), &out).await.unwrap();
    assert_eq!(
        (summary.records, summary.first_seq, summary.last_seq),
        (6, Some(1), Some(6))
    );
    let ok = verify_file(&out, &key).unwrap();
    assert_eq!(
        (ok.records, ok.first_seq, ok.last_seq),
        (6, Some(1), Some(6))
    );
    // Offline, with nothing but the public key file.
    let pubkey = log::read_public_key(e.data.join(log::PUB_FILE).to_str().unwrap()).unwrap();
    assert!(verify_file(&out, &pubkey).is_ok());
    let original = lines(&out);
    let check = |name: &str, edit: &dyn Fn(&mut Vec<String>), seq: u64, problem: VerifyProblem| {
        let mut l = original.clone();
        edit(&mut l);
        let p = e.data.join(format!("{name}.log"));
        write_lines(&p, &l);
        let err = verify_file(&p, &key).expect_err(name);
        assert_eq!(
            (err.seq, &err.problem),
            (Some(seq), &problem),
            "{name}: {err}"
        );
        assert!(err.to_string().contains(&format!("record {seq}")), "{err}");
    };
    check(
        "altered",
        &|l| {
            let i = record_line(l, 3);
            l[i] = l[i].replace("\"status\":201", "\"status\":200");
        },
        3,
        VerifyProblem::Altered,
    );
    check(
        "altered-user",
        &|l| {
            let i = record_line(l, 4);
            l[i] = l[i].replacen("people/3", "people/9", 1);
        },
        4,
        VerifyProblem::Altered,
    );
    check(
        "deleted",
        &|l| {
            let i = record_line(l, 3);
            l.remove(i);
        },
        3,
        VerifyProblem::Missing,
    );
    check(
        "deleted-with-batch",
        &|l| {
            let i = record_line(l, 3);
            l.remove(i);
            l.remove(i); // its batch signature line
        },
        3,
        VerifyProblem::Missing,
    );
    check(
        "deleted-last",
        &|l| {
            l.pop();
            l.pop();
        },
        6,
        VerifyProblem::Missing,
    );
    check(
        "deleted-first",
        &|l| {
            l.remove(1);
            l.remove(1);
        },
        1,
        VerifyProblem::Missing,
    );
    check(
        "swapped",
        &|l| {
            let (i, j) = (record_line(l, 2), record_line(l, 4));
            l.swap(i, j);
        },
        2,
        VerifyProblem::Reordered,
    );
    check(
        "rehashed",
        &|l| {
            // Alter record 2 and recompute its own hash: the chain breaks at 3.
            let i = record_line(l, 2);
            let altered = l[i].replace("\"status\":201", "\"status\":299");
            let prefix = &altered[..altered.len() - 75];
            let h = hex::encode(Sha256::digest(prefix.as_bytes()));
            l[i] = format!("{prefix},\"hash\":\"{h}\"}}");
        },
        2,
        VerifyProblem::BadSignature,
    );
    check(
        "forged-signature",
        &|l| {
            let i = record_line(l, 5) + 1;
            let sig_at = l[i].find("\"sig\":\"").unwrap() + 7;
            let c = if &l[i][sig_at..sig_at + 1] == "0" {
                "1"
            } else {
                "0"
            };
            l[i].replace_range(sig_at..sig_at + 1, c);
        },
        5,
        VerifyProblem::BadSignature,
    );
    // Another key does not verify the log at all.
    let other = ed25519_dalek_key();
    let err = verify_file(&out, &other).unwrap_err();
    assert_eq!(err.problem, VerifyProblem::BadHeader);

    // The live directory detects the same.
    let seg = log::list_segments(&e.data.join("exchange-log"))
        .unwrap()
        .pop()
        .unwrap()
        .1;
    let mut l = lines(&seg);
    let i = record_line(&l, 2);
    l[i] = l[i].replace("\"method\":\"GET\"", "\"method\":\"PUT\"");
    write_lines(&seg, &l);
    let err = verify_dir(&e.data.join("exchange-log"), &key).unwrap_err();
    assert_eq!((err.seq, err.problem), (Some(2), VerifyProblem::Altered));
}

fn ed25519_dalek_key() -> ed25519_dalek::VerifyingKey {
    let tmp = tempfile::tempdir().unwrap();
    log::load_or_create_signing_key(tmp.path())
        .unwrap()
        .verifying_key()
}

#[tokio::test]
async fn restart_keeps_the_chain() {
    let e = env().await;
    run_exchanges(&e, 3).await;
    let key = e.gw.log().public_key();
    e.gw.log().shutdown().await;
    let lc = LogConfig::new(&e.data);
    let log = Arc::new(MessageLog::open(&lc).unwrap());
    assert_eq!(log.public_key(), key, "the key survives a restart");
    let gw = Gateway::new(e.registry.clone(), log, e.gw.config().clone()).unwrap();
    let addr = serve(gw.router()).await;
    for i in 0..2 {
        let resp = e
            .http
            .get(format!("http://{addr}/r1/{PROVIDER}/echo/again/{i}"))
            .header("X-Road-Client", A)
            .header("Authorization", format!("X-Road-ApiKey token={}", e.key_a))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
    }
    let s = verify_dir(&lc.dir, &key).unwrap();
    assert_eq!((s.records, s.last_seq), (5, Some(5)));
    let seqs: Vec<u64> = e.records().iter().map(|r| r.seq).collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5]);
    // The CLI's export works on the directory, beside the running gateway.
    let sk = log::load_or_create_signing_key(&e.data).unwrap();
    let out = e.data.join("cli-export.log");
    let x = export_dir(&lc.dir, &sk, TimeRange::all(), &out).unwrap();
    assert_eq!(x.records, 5);
    assert_eq!(verify_file(&out, &key).unwrap().records, 5);
}

#[tokio::test]
async fn archive_and_prune_keep_both_parts_verifiable() {
    let e = env_with(|c| c.segment_max_bytes = 4096).await;
    run_exchanges(&e, 12).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let cut = chrono::Utc::now();
    tokio::time::sleep(Duration::from_millis(20)).await;
    run_exchanges(&e, 5).await;
    let key = e.gw.log().public_key();
    let dir = e.data.join("exchange-log");
    let before = log::list_segments(&dir).unwrap().len();
    assert!(before >= 3, "{before} segments");

    let archive = e.data.join("archive-1.log");
    let a = e.gw.log().archive_before(cut, &archive).await.unwrap();
    assert_eq!(
        (a.records, a.first_seq, a.last_seq),
        (12, Some(1), Some(12))
    );
    let av = verify_file(&archive, &key).unwrap();
    assert_eq!(
        (av.records, av.first_seq, av.last_seq),
        (12, Some(1), Some(12))
    );
    let live = verify_dir(&dir, &key).unwrap();
    assert_eq!(
        (live.records, live.first_seq, live.last_seq),
        (5, Some(13), Some(17))
    );
    assert!(log::list_segments(&dir).unwrap().len() < before);
    assert!(e.records().iter().all(|r| r.record.start >= cut));
    // The chain joins: the archive's head is where the live log starts.
    assert_eq!(
        av.last_hash,
        read_records(&archive).unwrap().last().unwrap().hash
    );
    let first_live = e.records().into_iter().next().unwrap();
    assert_eq!(first_live.prev, av.last_hash);

    // More exchanges, a restart, a second archive of everything.
    run_exchanges(&e, 2).await;
    e.gw.log().shutdown().await;
    let log = MessageLog::open(&LogConfig {
        segment_max_bytes: 4096,
        ..LogConfig::new(&e.data)
    })
    .unwrap();
    let archive2 = e.data.join("archive-2.log");
    let b = log
        .archive_before(chrono::Utc::now() + chrono::Duration::seconds(1), &archive2)
        .await
        .unwrap();
    assert_eq!((b.first_seq, b.last_seq), (Some(13), Some(19)));
    assert_eq!(verify_file(&archive2, &key).unwrap().records, 7);
    let live = verify_dir(&dir, &key).unwrap();
    assert_eq!(live.records, 0);
    // Nothing left to archive.
    let c = log
        .archive_before(chrono::Utc::now(), &e.data.join("archive-3.log"))
        .await
        .unwrap();
    assert_eq!(c.records, 0);
    // The log goes on after the pruned part.
    let rec = read_records(&archive2).unwrap().pop().unwrap().record;
    assert_eq!(log.append(&rec).await.unwrap(), 20);
    let live = verify_dir(&dir, &key).unwrap();
    assert_eq!((live.records, live.first_seq), (1, Some(20)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_are_durable_and_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = LogConfig::new(tmp.path());
    let log = Arc::new(MessageLog::open(&cfg).unwrap());
    let base = read_template();
    let mut tasks = Vec::new();
    for t in 0..64 {
        let log = log.clone();
        let base = base.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            for i in 0..8 {
                let n = t * 8 + i;
                if n >= 500 {
                    break;
                }
                let mut r = base.clone();
                r.x_road_id = format!("req-{n}");
                let seq = log.append(&r).await.unwrap();
                mine.push((seq, r.x_road_id));
            }
            mine
        }));
    }
    let mut acked = Vec::new();
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    assert_eq!(acked.len(), 500);
    let mut seqs: Vec<u64> = acked.iter().map(|(s, _)| *s).collect();
    seqs.sort();
    assert_eq!(seqs, (1..=500).collect::<Vec<_>>());
    // Durable: what each append acknowledged is on disk at that seq, and the
    // whole log verifies — also after the process "restarts".
    log.shutdown().await;
    let on_disk = read_records(&cfg.dir).unwrap();
    for (seq, id) in &acked {
        assert_eq!(&on_disk[(*seq - 1) as usize].record.x_road_id, id);
    }
    let s = verify_dir(&cfg.dir, &log.public_key()).unwrap();
    assert_eq!(s.records, 500);
    assert!(s.batches <= 500);
    eprintln!("500 concurrent appends took {} batches (fsyncs)", s.batches);
    let log = MessageLog::open(&cfg).unwrap();
    assert_eq!(log.append(&base).await.unwrap(), 501);
}

fn read_template() -> motcua_exchange::ExchangeRecord {
    let t = chrono::Utc::now();
    motcua_exchange::ExchangeRecord {
        x_road_id: String::new(),
        start: t,
        end: t,
        client: Some(A.into()),
        service: Some(format!("{PROVIDER}/echo")),
        user_id: None,
        issue: None,
        method: "GET".into(),
        path: "/r1/x".into(),
        status: 200,
        error: None,
        upstream_us: Some(1),
        total_us: 2,
        request_hash: None,
        request_sha256: None,
        request_bytes: 0,
        response_sha256: sha256_hex(b""),
        response_bytes: 0,
        request_body: None,
        response_body: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_clients_through_the_gateway() {
    let e = env().await;
    let mut tasks = Vec::new();
    for t in 0..64 {
        let req = e.a(reqwest::Method::GET, &format!("/r1/{PROVIDER}/echo/c/{t}"));
        tasks.push(tokio::spawn(async move {
            let resp = req.send().await.unwrap();
            (
                resp.status(),
                resp.headers()["x-road-id"].to_str().unwrap().to_owned(),
                resp.bytes().await.unwrap(),
            )
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        let (status, id, body): (StatusCode, String, Bytes) = t.await.unwrap();
        assert_eq!(status, 201);
        assert!(!body.is_empty());
        ids.push(id);
    }
    let records = e.records();
    assert_eq!(records.len(), 64);
    for id in ids {
        assert!(records.iter().any(|r| r.record.x_road_id == id));
    }
    assert_eq!(
        verify_dir(&e.data.join("exchange-log"), &e.gw.log().public_key())
            .unwrap()
            .records,
        64
    );
}

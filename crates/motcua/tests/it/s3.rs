//! Attachments in an S3-compatible bucket: moto's S3 server on 127.0.0.1,
//! started by each test. Without python3 and moto the tests print SKIPPED
//! and pass (`./test.sh` installs moto first).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use motcua::config::ObjectsConfig;
use motcua_store::{LocalObjectStore, ObjectStore, S3ObjectStore, S3Options, StoreError};
use serde_json::{Value, json};

use crate::helpers::*;

const ACCESS_KEY: &str = "motcua-test-key";
const SECRET: &str = "s3-secret-never-printed-4242";
/// moto does not check signatures; it wants an Authorization header all
/// the same for some requests.
const FAKE_AUTH: &str = "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00";

/// moto's S3 server on a free loopback port, killed on drop.
pub struct Moto {
    pub endpoint: String,
    child: Child,
    log: PathBuf,
    http: reqwest::Client,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

impl Moto {
    /// Starts moto, or prints SKIPPED and returns `None` when python3 or
    /// moto is not installed. A moto that is installed but does not come up
    /// fails the test.
    pub async fn start(test: &str) -> Option<Moto> {
        let importable = Command::new("python3")
            .args(["-c", "import moto.server"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !importable {
            eprintln!("SKIPPED: moto server not available (pip install 'moto[server]') — {test}");
            return None;
        }
        let http = reqwest::Client::new();
        let dir = temp_dir("moto");
        for attempt in 0..3 {
            let port = free_port();
            let log = dir.join(format!("moto-{attempt}.log"));
            let mut child = Command::new("python3")
                .args(["-m", "moto.server", "-H", "127.0.0.1", "-p"])
                .arg(port.to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).expect("moto log"))
                .spawn()
                .expect("start moto");
            let endpoint = format!("http://127.0.0.1:{port}");
            let deadline = Instant::now() + Duration::from_secs(60);
            while Instant::now() < deadline {
                if child.try_wait().expect("moto status").is_some() {
                    break; // e.g. the port was taken meanwhile: try another
                }
                if let Ok(r) = http.get(format!("{endpoint}/moto-api/")).send().await
                    && r.status().is_success()
                {
                    return Some(Moto {
                        endpoint,
                        child,
                        log,
                        http,
                    });
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            let _ = child.kill();
            let _ = child.wait();
            eprintln!(
                "moto did not start:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        panic!("moto is installed but its server did not start on 127.0.0.1");
    }

    fn url(&self, key: &str) -> String {
        format!("{}/{}", self.endpoint, key)
    }

    pub async fn create_bucket(&self, bucket: &str) {
        let r = self
            .http
            .put(self.url(bucket))
            .header("authorization", FAKE_AUTH)
            .send()
            .await
            .expect("create bucket");
        assert!(r.status().is_success(), "create bucket: {}", r.status());
    }

    /// Writes `bytes` at `key` directly, bypassing motcua.
    pub async fn put_raw(&self, bucket: &str, key: &str, bytes: Vec<u8>) {
        let r = self
            .http
            .put(self.url(&format!("{bucket}/{key}")))
            .header("authorization", FAKE_AUTH)
            .header("content-type", "application/octet-stream")
            .body(bytes)
            .send()
            .await
            .expect("raw put");
        assert!(r.status().is_success(), "raw put: {}", r.status());
    }

    /// The bytes at `key`, read directly; `None` if there is no such object.
    pub async fn get_raw(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        let r = self
            .http
            .get(self.url(&format!("{bucket}/{key}")))
            .header("authorization", FAKE_AUTH)
            .send()
            .await
            .expect("raw get");
        match r.status().as_u16() {
            200 => Some(r.bytes().await.expect("body").to_vec()),
            404 => None,
            s => panic!("raw get {key}: {s}"),
        }
    }

    /// Every key in the bucket.
    pub async fn keys(&self, bucket: &str) -> Vec<String> {
        let body = self
            .http
            .get(format!("{}?list-type=2&max-keys=100000", self.url(bucket)))
            .header("authorization", FAKE_AUTH)
            .send()
            .await
            .expect("list")
            .text()
            .await
            .expect("list body");
        assert!(
            body.contains("<IsTruncated>false</IsTruncated>"),
            "one page: {body}"
        );
        body.split("<Key>")
            .skip(1)
            .filter_map(|s| s.split("</Key>").next())
            .map(str::to_string)
            .collect()
    }

    /// How many PUT requests moto logged for `key`.
    pub fn puts_of(&self, bucket: &str, key: &str) -> usize {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let request = format!("\"PUT /{bucket}/{key} ");
        log.lines().filter(|l| l.contains(&request)).count()
    }

    pub fn objects_config(&self, bucket: &str, prefix: &str) -> ObjectsConfig {
        ObjectsConfig {
            url: Some(format!("s3://{bucket}/{prefix}")),
            endpoint: Some(self.endpoint.clone()),
            region: Some("us-east-1".into()),
            access_key_id: Some(ACCESS_KEY.into()),
            secret_access_key: Some(SECRET.into()),
            allow_http: true,
        }
    }

    pub fn options(&self, bucket: &str, prefix: &str) -> S3Options {
        self.objects_config(bucket, prefix)
            .s3_options()
            .expect("S3 configured")
    }

    /// The `MOTCUA_OBJECTS__*` variables for the real binary.
    pub fn env(&self, bucket: &str, prefix: &str) -> Vec<(&'static str, String)> {
        vec![
            ("MOTCUA_OBJECTS__URL", format!("s3://{bucket}/{prefix}")),
            ("MOTCUA_OBJECTS__ENDPOINT", self.endpoint.clone()),
            ("MOTCUA_OBJECTS__REGION", "us-east-1".into()),
            ("MOTCUA_OBJECTS__ACCESS_KEY_ID", ACCESS_KEY.into()),
            ("MOTCUA_OBJECTS__SECRET_ACCESS_KEY", SECRET.into()),
            ("MOTCUA_OBJECTS__ALLOW_HTTP", "true".into()),
        ]
    }
}

fn key_of(prefix: &str, sha256: &str) -> String {
    format!("{prefix}/{}/{sha256}", &sha256[..2])
}

/// The real `motcua serve --demo`, killed on drop.
struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(data: &Path, env: &[(&'static str, String)]) -> Server {
    let mut child = serve_demo_command(data, env)
        .stderr(Stdio::null())
        .spawn()
        .expect("start motcua");
    let base = wait_listening(&mut child).base;
    Server { child, base }
}

async fn login(client: &reqwest::Client, base: &str, username: &str) -> String {
    let v: Value = client
        .post(format!("{base}/api/v1/auth/token"))
        .json(&json!({ "username": username, "password": "motcua-demo" }))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("json");
    v["token"].as_str().expect("token").to_string()
}

fn birth_form(bytes: Vec<u8>) -> reqwest::multipart::Form {
    reqwest::multipart::Form::new()
        .text(
            "application",
            json!({ "procedure_code": BIRTH, "unit_code": "00073", "fields": birth_fields() })
                .to_string(),
        )
        .part(
            "document:birth-notice",
            reqwest::multipart::Part::bytes(bytes).file_name("giay-chung-sinh.pdf"),
        )
}

/// Files under a directory, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[tokio::test]
async fn s3_store_is_content_addressed_and_detects_tampering() {
    let Some(moto) = Moto::start("s3_store_is_content_addressed_and_detects_tampering").await
    else {
        return;
    };
    let (bucket, prefix) = ("attachments", "motcua/test");
    moto.create_bucket(bucket).await;
    let s3 = S3ObjectStore::open(&moto.options(bucket, prefix)).expect("open");
    s3.check().await.expect("bucket reachable");

    // The address is the SHA-256 of the bytes, as on local disk.
    let bytes = pdf("s3 round trip");
    let local = LocalObjectStore::open(temp_dir("s3-local").join("objects")).expect("local");
    let expected = local.put(bytes.clone()).await.expect("local put");
    let r = s3.put(bytes.clone()).await.expect("put");
    assert_eq!(r, expected);
    let key = key_of(prefix, &r.sha256);
    assert_eq!(
        moto.get_raw(bucket, &key).await.as_deref(),
        Some(&bytes[..])
    );
    assert_eq!(s3.get(&r.sha256).await.expect("get"), bytes);
    assert!(s3.exists(&r.sha256).await.expect("exists"));

    // The same bytes again: same address, no second upload.
    let again = s3.put(bytes.clone()).await.expect("put again");
    assert_eq!(again, r);
    assert_eq!(moto.puts_of(bucket, &key), 1, "uploaded twice");

    // Unknown and invalid addresses.
    let absent = "0".repeat(64);
    assert!(!s3.exists(&absent).await.expect("exists"));
    assert!(matches!(s3.get(&absent).await, Err(StoreError::NotFound)));
    for bad in [
        "../../etc/passwd",
        &r.sha256.to_uppercase(),
        &r.sha256[..63],
    ] {
        assert!(!s3.exists(bad).await.expect("exists"), "{bad}");
        assert!(
            matches!(s3.get(bad).await, Err(StoreError::NotFound)),
            "{bad}"
        );
    }

    // Someone overwrites the object in the bucket: reading it is an error.
    let mut tampered = bytes.clone();
    tampered[10] ^= 1;
    moto.put_raw(bucket, &key, tampered).await;
    match s3.get(&r.sha256).await {
        Err(StoreError::Backend(m)) => {
            assert!(m.contains("corrupted") && m.contains(&r.sha256), "{m}");
            assert!(!m.contains(SECRET), "{m}");
        }
        other => panic!("tampered object served: {other:?}"),
    }
    // Putting the right bytes again repairs it (same size: the refresh is
    // by age, so the tampered copy stays until then; a different size is
    // written again at once).
    moto.put_raw(bucket, &key, b"short".to_vec()).await;
    s3.put(bytes.clone()).await.expect("repair");
    assert_eq!(s3.get(&r.sha256).await.expect("repaired"), bytes);

    // A bucket that does not exist, an endpoint that does not answer.
    let missing = S3ObjectStore::open(&moto.options("no-such-bucket", "")).expect("open");
    let e = missing
        .check()
        .await
        .expect_err("missing bucket")
        .to_string();
    assert!(e.contains("s3://no-such-bucket"), "{e}");
    assert!(!e.contains(SECRET), "{e}");
    let mut dead = moto.options(bucket, prefix);
    dead.endpoint = Some(format!("http://127.0.0.1:{}", free_port()));
    let e = S3ObjectStore::open(&dead)
        .expect("open")
        .check()
        .await
        .expect_err("nothing listens");
    assert!(!e.to_string().contains(SECRET), "{e}");
}

#[tokio::test]
async fn s3_sweep_removes_only_old_unreferenced_objects() {
    let Some(moto) = Moto::start("s3_sweep_removes_only_old_unreferenced_objects").await else {
        return;
    };
    let (bucket, prefix) = ("sweep", "p");
    moto.create_bucket(bucket).await;
    let s3 = S3ObjectStore::open(&moto.options(bucket, prefix)).expect("open");
    let kept = s3.put(pdf("referenced")).await.expect("put");
    let orphan = s3.put(pdf("orphan")).await.expect("put");
    // Not content addresses: never touched by the sweep.
    moto.put_raw(bucket, &format!("{prefix}/README"), b"x".to_vec())
        .await;
    moto.put_raw(bucket, &format!("{prefix}/ab/notes.txt"), b"x".to_vec())
        .await;
    moto.put_raw(bucket, "elsewhere/00/file", b"x".to_vec())
        .await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let young = s3.put(pdf("young orphan")).await.expect("put");

    let referenced = [kept.sha256.clone()].into_iter().collect();
    let removed = s3
        .sweep_orphans(&referenced, Duration::from_secs(2))
        .await
        .expect("sweep");
    assert_eq!(removed, 1);
    assert!(s3.exists(&kept.sha256).await.expect("exists"));
    assert!(!s3.exists(&orphan.sha256).await.expect("exists"));
    assert!(s3.exists(&young.sha256).await.expect("exists"));
    let mut keys = moto.keys(bucket).await;
    keys.sort();
    let mut expected = vec![
        key_of(prefix, &kept.sha256),
        key_of(prefix, &young.sha256),
        format!("{prefix}/README"),
        format!("{prefix}/ab/notes.txt"),
        "elsewhere/00/file".to_string(),
    ];
    expected.sort();
    assert_eq!(keys, expected);

    // With no grace left the young orphan goes too.
    let removed = s3
        .sweep_orphans(&referenced, Duration::ZERO)
        .await
        .expect("sweep");
    assert_eq!(removed, 1);
    assert!(!s3.exists(&young.sha256).await.expect("exists"));
    assert_eq!(s3.get(&kept.sha256).await.expect("get"), pdf("referenced"));
}

/// The real binary configured through `MOTCUA_OBJECTS__*`: a citizen's
/// upload lands in the bucket, not on local disk, and staff download it.
#[tokio::test]
async fn serve_keeps_attachments_in_the_bucket() {
    let Some(moto) = Moto::start("serve_keeps_attachments_in_the_bucket").await else {
        return;
    };
    let (bucket, prefix) = ("motcua-e2e", "commune/00073");
    moto.create_bucket(bucket).await;
    let data = temp_dir("s3-serve").join("data");
    let server = serve(&data, &moto.env(bucket, prefix));
    let client = reqwest::Client::new();
    let citizen = login(&client, &server.base, "citizen").await;
    let bytes = pdf("uploaded to S3 through the API");
    let r = client
        .post(format!("{}/api/v1/dossiers", server.base))
        .bearer_auth(&citizen)
        .multipart(birth_form(bytes.clone()))
        .send()
        .await
        .expect("submit");
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.expect("json");
    let code = v["code"].as_str().expect("code").to_string();
    let officer = login(&client, &server.base, "officer").await;
    let view: Value = client
        .get(format!("{}/api/v1/dossiers/{code}", server.base))
        .bearer_auth(&officer)
        .send()
        .await
        .expect("dossier")
        .json()
        .await
        .expect("json");
    let sha256 = view["documents"][0]["sha256"]
        .as_str()
        .expect("sha256")
        .to_string();
    let r = client
        .get(format!(
            "{}/api/v1/dossiers/{code}/documents/0",
            server.base
        ))
        .bearer_auth(&officer)
        .send()
        .await
        .expect("download");
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.expect("bytes").to_vec(), bytes);

    let key = key_of(prefix, &sha256);
    assert_eq!(moto.keys(bucket).await, vec![key.clone()]);
    assert_eq!(moto.get_raw(bucket, &key).await, Some(bytes.clone()));
    let local = files_under(&data.join("objects"));
    assert!(local.is_empty(), "attachments on local disk: {local:?}");

    // The object is altered in the bucket: the download fails instead of
    // handing the officer different bytes.
    let mut tampered = bytes.clone();
    tampered[0] = b'X';
    moto.put_raw(bucket, &key, tampered).await;
    let r = client
        .get(format!(
            "{}/api/v1/dossiers/{code}/documents/0",
            server.base
        ))
        .bearer_auth(&officer)
        .send()
        .await
        .expect("download");
    assert_eq!(r.status(), 500);
    assert!(!r.bytes().await.expect("body").starts_with(b"X"));
}

/// The server refuses to start on a bucket it cannot reach, and says so
/// without printing the secret.
#[tokio::test]
async fn serve_refuses_an_unreachable_bucket() {
    let Some(moto) = Moto::start("serve_refuses_an_unreachable_bucket").await else {
        return;
    };
    let data = temp_dir("s3-missing").join("data");
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_motcua"))
            .current_dir(workspace())
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(["--exchange-listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data)
            .envs(moto.env("never-created", "x"))
            .stdin(Stdio::null())
            .output()
            .expect("run motcua")
    })
    .await
    .expect("join");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot reach the bucket s3://never-created/x"),
        "{stderr}"
    );
    assert!(!stderr.contains(SECRET), "{stderr}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("motcua is running"));
}

/// `config print` shows the S3 settings but not the secret. Needs no moto.
#[test]
fn config_print_redacts_the_secret() {
    let out = Command::new(env!("CARGO_BIN_EXE_motcua"))
        .current_dir(temp_dir("s3-config"))
        .args(["config", "print"])
        .env("MOTCUA_OBJECTS__URL", "s3://bucket/prefix")
        .env("MOTCUA_OBJECTS__ACCESS_KEY_ID", ACCESS_KEY)
        .env("MOTCUA_OBJECTS__SECRET_ACCESS_KEY", SECRET)
        .env("MOTCUA_OBJECTS__ALLOW_HTTP", "true")
        .output()
        .expect("run motcua");
    assert!(out.status.success());
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.contains("[objects]"), "{printed}");
    assert!(
        printed.contains("url = \"s3://bucket/prefix\""),
        "{printed}"
    );
    assert!(printed.contains(ACCESS_KEY), "{printed}");
    assert!(printed.contains("allow_http = true"), "{printed}");
    assert!(!printed.contains(SECRET), "{printed}");
    assert!(
        printed.contains("secret_access_key = \"<redacted>\""),
        "{printed}"
    );
}

/// SIGKILL during concurrent submissions: every acknowledged dossier's
/// attachment is in the bucket, whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_server_keeps_every_acknowledged_attachment_in_the_bucket() {
    let Some(moto) =
        Moto::start("killed_server_keeps_every_acknowledged_attachment_in_the_bucket").await
    else {
        return;
    };
    let (bucket, prefix) = ("crash", "objects");
    moto.create_bucket(bucket).await;
    let data = temp_dir("s3-crash").join("data");
    let mut server = serve(&data, &moto.env(bucket, prefix));
    let client = reqwest::Client::new();
    let token = login(&client, &server.base, "citizen").await;

    let acked_count = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for w in 0..6 {
        let (client, base, token) = (client.clone(), server.base.clone(), token.clone());
        let acked_count = acked_count.clone();
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 0..500 {
                let bytes = pdf(&format!("crash {w}-{i}"));
                let sent = client
                    .post(format!("{base}/api/v1/dossiers"))
                    .bearer_auth(&token)
                    .multipart(birth_form(bytes.clone()))
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status() == 201 => {
                        if let Ok(v) = r.json::<Value>().await
                            && let Some(code) = v["code"].as_str()
                        {
                            acked.push((code.to_string(), bytes));
                            acked_count.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    _ => break,
                }
            }
            acked
        }));
    }
    // Kill once the load is well under way (bounded in time).
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked_count.load(Ordering::Relaxed) < 30 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.child.kill().expect("SIGKILL");
    let _ = server.child.wait();
    let mut acked = Vec::new();
    for t in tasks {
        acked.extend(t.await.expect("task"));
    }
    assert!(
        acked.len() >= 30,
        "the load ran before the kill: {}",
        acked.len()
    );

    // Reopen the installation on the same bucket: every acknowledged
    // dossier refers to an object that is there, with the bytes sent.
    let cfg = motcua::Config {
        data_dir: data.clone(),
        objects: moto.objects_config(bucket, prefix),
        ..motcua::Config::default()
    };
    let inst = motcua::open(&cfg).await.expect("reopen after crash");
    let keys: std::collections::HashSet<String> = moto.keys(bucket).await.into_iter().collect();
    for (code, bytes) in &acked {
        let c = motcua_domain::DossierCode::parse(code).expect("code");
        let d = inst
            .store
            .dossier(&c)
            .await
            .expect("read")
            .unwrap_or_else(|| panic!("acknowledged {code} lost"));
        assert_eq!(d.documents.len(), 1);
        let sha256 = &d.documents[0].sha256;
        assert!(
            keys.contains(&key_of(prefix, sha256)),
            "{code}'s attachment is not in the bucket"
        );
        assert_eq!(&inst.objects.get(sha256).await.expect("get"), bytes);
    }
    assert!(files_under(&data.join("objects")).is_empty());
    let chain = motcua::verify_audit(inst.store.as_ref())
        .await
        .expect("verify");
    assert!(chain.is_ok(), "{chain:?}");
}

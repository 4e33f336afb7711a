use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use motcua::Config;
use motcua_web::AppState;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub state: AppState,
    pub dir: PathBuf,
    pub config: Config,
    pub shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    pub server: Option<tokio::task::JoinHandle<()>>,
    pub sqlite: Option<motcua_store_sqlite::SqliteStore>,
}

pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn temp_dir(tag: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let d = std::env::temp_dir().join(format!(
        "motcua-it-{}-{}-{}",
        tag,
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

/// Starts the real application with demo data on a free loopback port.
pub async fn spawn_app() -> TestApp {
    let dir = temp_dir("app");
    let config = Config {
        data_dir: dir.join("data"),
        procedures_dir: workspace().join("procedures"),
        ..Config::default()
    };
    let inst = motcua::open(&config).await.expect("open installation");
    motcua::demo::seed(inst.store.as_ref(), &config)
        .await
        .expect("seed");
    let state = motcua::app_state(&inst, &config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let s = state.clone();
    let server = tokio::spawn(async move {
        motcua::serve(s, listener, async {
            let _ = rx.await;
        })
        .await
        .expect("serve");
    });
    TestApp {
        base: format!("http://{addr}"),
        client: reqwest::Client::new(),
        state,
        dir,
        config,
        shutdown: Some(tx),
        server: Some(server),
        sqlite: inst.sqlite,
    }
}

pub const BIRTH: &str = "1.001193";

/// A minimal valid PDF file.
pub fn pdf(tag: &str) -> Vec<u8> {
    format!("%PDF-1.4\n% motcua test {tag}\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n")
        .into_bytes()
}

pub fn birth_fields() -> Value {
    json!({
        "declarant_full_name": "Nguyễn Văn An",
        "declarant_national_id": "001090012345",
        "declarant_relationship": "father",
        "declarant_phone": "0912345678",
        "child_full_name": "Nguyễn Minh Khang",
        "child_birth_date": "2026-11-01",
        "child_sex": "male",
        "child_ethnicity": "Kinh",
        "child_nationality": "Việt Nam",
        "child_birth_place": "Bệnh viện Phụ sản Hà Nội, Hà Nội",
        "mother_full_name": "Trần Thị Hoa",
        "parents_residence": "12 phố Tràng Thi, Phường Cửa Nam, Hà Nội"
    })
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn token(&self, username: &str) -> String {
        let r = self
            .client
            .post(self.url("/api/v1/auth/token"))
            .json(&json!({ "username": username, "password": "motcua-demo" }))
            .send()
            .await
            .expect("login");
        assert_eq!(r.status(), 200, "login {username}");
        let v: Value = r.json().await.expect("json");
        v["token"].as_str().expect("token").to_string()
    }

    pub async fn submit(
        &self,
        token: &str,
        application: Value,
        files: Vec<(&str, &str, Vec<u8>)>,
    ) -> (u16, Value) {
        let mut form = Form::new().text("application", application.to_string());
        for (doc, name, bytes) in files {
            form = form.part(
                format!("document:{doc}"),
                Part::bytes(bytes).file_name(name.to_string()),
            );
        }
        let r = self
            .client
            .post(self.url("/api/v1/dossiers"))
            .bearer_auth(token)
            .header("accept-language", "en")
            .multipart(form)
            .send()
            .await
            .expect("submit");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Citizen submits a valid birth registration in Phường Cửa Nam.
    pub async fn submit_birth(&self, token: &str) -> String {
        let (status, body) = self
            .submit(
                token,
                json!({ "procedure_code": BIRTH, "unit_code": "00073", "fields": birth_fields() }),
                vec![("birth-notice", "giay-chung-sinh.pdf", pdf("birth"))],
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body["code"].as_str().expect("code").to_string()
    }

    pub async fn act(&self, token: &str, code: &str, body: Value) -> (u16, Value) {
        self.act_lang(token, code, body, "en").await
    }

    pub async fn act_lang(&self, token: &str, code: &str, body: Value, lang: &str) -> (u16, Value) {
        let r = self
            .client
            .post(self.url(&format!("/api/v1/dossiers/{code}/actions")))
            .bearer_auth(token)
            .header("accept-language", lang)
            .json(&body)
            .send()
            .await
            .expect("act");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, token: Option<&str>, path: &str) -> (u16, Value) {
        let mut req = self.client.get(self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.expect("get");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Stops the server and closes the database (checkpointing the WAL).
    pub async fn stop(mut self) -> (PathBuf, Config) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(s) = self.server.take() {
            let _ = s.await;
        }
        if let Some(db) = self.sqlite.take() {
            db.close().await;
        }
        drop(self.state);
        (self.dir, self.config)
    }
}

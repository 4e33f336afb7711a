use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use motcua::Config;
use motcua_web::AppState;
use std::collections::BTreeMap;

use reqwest::header::HeaderMap;
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
    spawn_app_opts(false).await
}

/// Starts the real application with demo data; with `exchange`, also the
/// exchange gateway (message log in the data directory) and the demo
/// population registry behind it, registered as `serve --demo` does, with
/// the portal as its client for once-only prefill.
pub async fn spawn_app_opts(exchange: bool) -> TestApp {
    spawn_app_with(exchange, |_| {}).await
}

/// [`spawn_app_opts`] with the configuration changed by `adjust` first.
pub async fn spawn_app_with(exchange: bool, adjust: impl FnOnce(&mut Config)) -> TestApp {
    let dir = temp_dir("app");
    let mut config = app_config(&dir, None);
    adjust(&mut config);
    start_app(dir, config, exchange).await
}

/// The configuration of [`spawn_app`] for an installation in `dir`, on
/// `database_url` (by default SQLite in the data directory).
pub fn app_config(dir: &std::path::Path, database_url: Option<String>) -> Config {
    let mut config = Config {
        data_dir: dir.join("data"),
        procedures_dir: workspace().join("procedures"),
        database_url,
        ..Config::default()
    };
    config.exchange.listen = "127.0.0.1:0".into();
    config
}

/// Starts the real application on the installation of `config` (in
/// `dir`), seeding the demo data unless it is there already: a new
/// installation, or one stopped with [`TestApp::stop`] started again.
pub async fn start_app(dir: PathBuf, config: Config, exchange: bool) -> TestApp {
    let inst = motcua::open(&config).await.expect("open installation");
    motcua::demo::seed(inst.store.as_ref(), &config)
        .await
        .expect("seed");
    let mut state = motcua::app_state(&inst, &config);
    if exchange {
        let (gateway, _listener) = motcua::exchange::open(&config, inst.store.as_ref())
            .await
            .expect("open the gateway")
            .expect("gateway enabled");
        let handle = motcua::exchange::handle(&config, Some(gateway));
        let provider = motcua::population::start(&config.data_dir)
            .await
            .expect("demo population registry");
        motcua::exchange::register_demo(&handle, inst.store.as_ref(), provider)
            .await
            .expect("register the demo registry");
        state.exchange = Some(handle);
        state.portal = motcua::exchange::portal_client(&config, true).expect("portal client");
    }
    state.reload_calendar().await.expect("calendar overrides");
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

/// A minimal browser: a cookie jar and no automatic redirects.
pub struct Browser {
    pub client: reqwest::Client,
    pub base: String,
    pub cookies: BTreeMap<String, String>,
    pub lang: &'static str,
}

pub struct Page {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

impl Page {
    pub fn location(&self) -> String {
        self.headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    }

    /// The CSRF token of the first form of the page.
    pub fn csrf(&self) -> String {
        let marker = "name=\"csrf\" value=\"";
        let i = self.body.find(marker).expect("page has a CSRF field") + marker.len();
        self.body[i..].split('"').next().expect("value").to_string()
    }

    /// The password shown once after an account is created or reset.
    pub fn secret(&self) -> String {
        let marker = "secret-value\">";
        let i = self.body.find(marker).expect("a password is shown") + marker.len();
        self.body[i..].split('<').next().expect("value").to_string()
    }

    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_string))
            .collect()
    }
}

impl Browser {
    pub fn new(app: &TestApp, lang: &'static str) -> Self {
        Self {
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            base: app.base.clone(),
            cookies: BTreeMap::new(),
            lang,
        }
    }

    pub fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub async fn send(&mut self, req: reqwest::RequestBuilder) -> Page {
        let r = req
            .header("accept", "text/html")
            .header("accept-language", self.lang)
            .header("cookie", self.cookie_header())
            .send()
            .await
            .expect("request");
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        for c in headers.get_all("set-cookie") {
            let c = c.to_str().expect("ascii cookie");
            let (kv, attrs) = c.split_once(';').unwrap_or((c, ""));
            let (k, v) = kv.split_once('=').expect("name=value");
            if attrs.contains("Max-Age=0") {
                self.cookies.remove(k.trim());
            } else {
                self.cookies.insert(k.trim().into(), v.trim().into());
            }
        }
        let body = r.text().await.expect("body");
        Page {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&mut self, path: &str) -> Page {
        let req = self.client.get(format!("{}{path}", self.base));
        self.send(req).await
    }

    pub async fn post_form(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let req = self.client.post(format!("{}{path}", self.base)).form(form);
        self.send(req).await
    }

    pub async fn post_multipart(&mut self, path: &str, form: Form) -> Page {
        let req = self
            .client
            .post(format!("{}{path}", self.base))
            .multipart(form);
        self.send(req).await
    }

    /// Signs in through the login form; returns the status of the POST.
    pub async fn try_login(&mut self, username: &str, password: &str) -> u16 {
        let page = self.get("/dang-nhap").await;
        assert_eq!(page.status, 200);
        let csrf = page.csrf();
        self.post_form(
            "/dang-nhap",
            &[
                ("username", username),
                ("password", password),
                ("csrf", &csrf),
            ],
        )
        .await
        .status
    }

    pub async fn login(&mut self, username: &str) {
        let status = self.try_login(username, "motcua-demo").await;
        assert_eq!(status, 303, "login {username}");
        assert!(self.cookies.contains_key("motcua_session"));
    }
}

pub fn text_form(csrf: &str, pairs: &[(&str, &str)]) -> Form {
    let mut f = Form::new().text("csrf", csrf.to_string());
    for (k, v) in pairs {
        f = f.text(k.to_string(), v.to_string());
    }
    f
}

/// The addresses a started `motcua serve` printed.
pub struct Listening {
    /// The portal, e.g. `http://127.0.0.1:41234`.
    pub base: String,
    /// The exchange gateway (without `/r1`), unless it is disabled.
    pub gateway: Option<String>,
}

/// `motcua serve --demo` on free loopback ports (portal and gateway) with
/// `data` as its data directory, `env` added, stdout piped and
/// `RUST_LOG=warn`; the caller sets stderr and spawns it.
pub fn serve_demo_command(data: &std::path::Path, env: &[(&str, String)]) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_motcua"));
    cmd.current_dir(workspace())
        .args(["serve", "--demo", "--listen", "127.0.0.1:0"])
        .args(["--exchange-listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped());
    cmd
}

/// Reads what a started `motcua serve` prints on stdout until it listens
/// (the portal's address, then the gateway's or that it is disabled), then
/// keeps draining its stdout so that it never blocks on a full pipe. A
/// server that exits first fails the test with its log when its stderr is
/// piped.
pub fn wait_listening(child: &mut std::process::Child) -> Listening {
    use std::io::{BufRead, BufReader, Read};
    let stdout = child.stdout.take().expect("stdout piped");
    let log = child.stderr.take().map(|e| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = BufReader::new(e).read_to_string(&mut text);
            text
        })
    });
    let mut lines = BufReader::new(stdout).lines();
    let url = |rest: &str| {
        rest.split_whitespace()
            .next()
            .expect("url")
            .trim_end_matches('/')
            .trim_end_matches("/r1")
            .to_string()
    };
    let (mut base, mut gateway, mut gateway_said) = (None, None, false);
    while base.is_none() || !gateway_said {
        let Some(line) = lines.next() else {
            let status = child.wait();
            let log = log.and_then(|l| l.join().ok()).unwrap_or_default();
            panic!("motcua exited before listening: {status:?}\n{log}");
        };
        let line = line.expect("line");
        if let Some(rest) = line.strip_prefix("motcua is running at ") {
            base = Some(url(rest));
        } else if let Some(rest) = line.strip_prefix("Exchange gateway at ") {
            gateway = Some(url(rest));
            gateway_said = true;
        } else if line.starts_with("Exchange gateway disabled") {
            gateway_said = true;
        }
    }
    std::thread::spawn(move || for _ in lines.by_ref() {});
    Listening {
        base: base.expect("portal"),
        gateway,
    }
}

/// The apply form of the birth registration, filled as a citizen would.
pub fn birth_form(csrf: &str, fields: &Value) -> Form {
    let mut f = Form::new()
        .text("csrf", csrf.to_string())
        .text("unit_code", "00073");
    for (k, v) in fields.as_object().expect("fields") {
        f = f.text(format!("f_{k}"), v.as_str().unwrap_or_default().to_string());
    }
    f
}

pub fn apply_path() -> String {
    format!("/thu-tuc/{BIRTH}/nop-ho-so")
}

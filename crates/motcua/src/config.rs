//! Configuration: defaults → `motcua.toml` → `MOTCUA_*` environment → flags.

use std::path::PathBuf;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use motcua_domain::calendar::CalendarConfig;
use serde::{Deserialize, Serialize};

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

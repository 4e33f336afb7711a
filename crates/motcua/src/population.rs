//! A demo national population database provider (CSDL quốc gia về dân cư):
//! synthetic citizens keyed by national ID number, in a small SQLite file of
//! its own, answering `GET /citizens/{national_id}` on a loopback port.
//! `serve --demo` starts it and registers it as an exchange service, so that
//! the once-only principle (the portal reads what the state already knows)
//! can be tried through the gateway. Every person in it is invented.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::Context;
use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use sqlx::Row;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};

/// The SQLite file of the demo provider, in the data directory.
pub const DB_FILE: &str = "population-demo.db";

/// How many invented citizens besides the demo accounts'.
const SYNTHETIC: u32 = 200;

/// A citizen as the provider answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Citizen {
    pub national_id: String,
    pub full_name: String,
    /// `YYYY-MM-DD`.
    pub date_of_birth: String,
    /// `male` or `female`.
    pub sex: String,
    pub ethnicity: String,
    pub nationality: String,
    /// Nơi thường trú.
    pub permanent_residence: String,
    /// Quê quán.
    pub place_of_origin: String,
}

/// The citizens of the demo accounts (`citizen`, `citizen2`).
fn demo_accounts() -> Vec<Citizen> {
    vec![
        Citizen {
            national_id: "001090012345".into(),
            full_name: "Nguyễn Văn An".into(),
            date_of_birth: "1990-03-15".into(),
            sex: "male".into(),
            ethnicity: "Kinh".into(),
            nationality: "Việt Nam".into(),
            permanent_residence: "12 phố Tràng Thi, Phường Cửa Nam, Hà Nội".into(),
            place_of_origin: "Xã Thanh Oai, Hà Nội".into(),
        },
        Citizen {
            national_id: "001195054321".into(),
            full_name: "Trần Thị Bình".into(),
            date_of_birth: "1995-08-22".into(),
            sex: "female".into(),
            ethnicity: "Kinh".into(),
            nationality: "Việt Nam".into(),
            permanent_residence: "45 phố Hàng Bông, Phường Hoàn Kiếm, Hà Nội".into(),
            place_of_origin: "Phường Nam Định, Ninh Bình".into(),
        },
    ]
}

/// Invented citizens: the same ones on every start (a fixed pseudo-random
/// sequence). National ID numbers follow the 12-digit form: province code
/// (001, Hà Nội), a digit for century and sex, the year of birth, six digits.
fn synthetic() -> Vec<Citizen> {
    const FAMILY: [&str; 10] = [
        "Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Vũ", "Đặng", "Bùi", "Đỗ", "Ngô",
    ];
    const MIDDLE_M: [&str; 4] = ["Văn", "Minh", "Đức", "Quang"];
    const MIDDLE_F: [&str; 4] = ["Thị", "Ngọc", "Thu", "Thanh"];
    const GIVEN_M: [&str; 8] = [
        "Hùng", "Dũng", "Nam", "Tuấn", "Long", "Phúc", "Khang", "Sơn",
    ];
    const GIVEN_F: [&str; 8] = ["Lan", "Hoa", "Mai", "Hương", "Linh", "Trang", "Hạnh", "Yến"];
    const STREETS: [&str; 8] = [
        "phố Hàng Gai, Phường Hoàn Kiếm",
        "phố Lý Thường Kiệt, Phường Cửa Nam",
        "phố Đội Cấn, Phường Ba Đình",
        "phố Kim Mã, Phường Giảng Võ",
        "đường Láng, Phường Láng",
        "phố Chùa Bộc, Phường Kim Liên",
        "đường Nguyễn Trãi, Phường Thanh Xuân",
        "phố Trần Duy Hưng, Phường Yên Hòa",
    ];
    const ETHNIC: [&str; 5] = ["Kinh", "Kinh", "Kinh", "Tày", "Mường"];
    let mut state: u64 = 0x6d6f_7463_7561; // "motcua"
    let mut next = move |n: u64| {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) % n
    };
    let mut out = Vec::new();
    for _ in 0..SYNTHETIC {
        let female = next(2) == 1;
        let year = 1950 + next(56) as u32;
        let month = 1 + next(12) as u32;
        let day = 1 + next(28) as u32;
        let century_sex = match (year >= 2000, female) {
            (false, false) => 0,
            (false, true) => 1,
            (true, false) => 2,
            (true, true) => 3,
        };
        let national_id = format!("001{century_sex}{:02}{:06}", year % 100, next(1_000_000));
        let (middle, given) = if female {
            (MIDDLE_F[next(4) as usize], GIVEN_F[next(8) as usize])
        } else {
            (MIDDLE_M[next(4) as usize], GIVEN_M[next(8) as usize])
        };
        out.push(Citizen {
            national_id,
            full_name: format!("{} {middle} {given}", FAMILY[next(10) as usize]),
            date_of_birth: format!("{year:04}-{month:02}-{day:02}"),
            sex: if female { "female" } else { "male" }.into(),
            ethnicity: ETHNIC[next(5) as usize].into(),
            nationality: "Việt Nam".into(),
            permanent_residence: format!("{} {}, Hà Nội", 1 + next(200), STREETS[next(8) as usize]),
            place_of_origin: "Hà Nội".into(),
        });
    }
    out
}

/// The provider's OpenAPI description, with its paths under `prefix` (`""`
/// for the description of the exchange service, whose paths are relative to
/// the service; `/citizens` for the provider's own).
pub fn openapi(prefix: &str) -> String {
    serde_json::json!({
        "openapi": "3.0.3",
        "info": {
            "title": "Cơ sở dữ liệu quốc gia về dân cư (demo)",
            "description": "Demo national population database: synthetic citizens keyed by national ID number. Every person is invented.",
            "version": "1.0.0"
        },
        "paths": {
            format!("{prefix}/{{national_id}}"): {
                "get": {
                    "operationId": "getCitizen",
                    "summary": "A citizen by national ID number",
                    "parameters": [{
                        "name": "national_id", "in": "path", "required": true,
                        "schema": {"type": "string", "pattern": "^[0-9]{12}$"}
                    }],
                    "responses": {
                        "200": {"description": "The citizen", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Citizen"}}}},
                        "400": {"description": "Not a 12-digit national ID number"},
                        "404": {"description": "No citizen with this number"}
                    }
                }
            }
        },
        "components": {"schemas": {"Citizen": {
            "type": "object",
            "required": ["national_id", "full_name", "date_of_birth", "sex", "ethnicity", "nationality", "permanent_residence", "place_of_origin"],
            "properties": {
                "national_id": {"type": "string"},
                "full_name": {"type": "string"},
                "date_of_birth": {"type": "string", "format": "date"},
                "sex": {"type": "string", "enum": ["male", "female"]},
                "ethnicity": {"type": "string"},
                "nationality": {"type": "string"},
                "permanent_residence": {"type": "string"},
                "place_of_origin": {"type": "string"}
            }
        }}}
    })
    .to_string()
}

/// Opens (and on first start fills) the provider's database.
pub async fn open(data_dir: &Path) -> anyhow::Result<SqlitePool> {
    let path = data_dir.join(DB_FILE);
    let opts = SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true);
    let pool = SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(opts)
        .await
        .with_context(|| format!("cannot open {}", path.display()))?;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS citizens (
            national_id TEXT PRIMARY KEY,
            full_name TEXT NOT NULL,
            date_of_birth TEXT NOT NULL,
            sex TEXT NOT NULL,
            ethnicity TEXT NOT NULL,
            nationality TEXT NOT NULL,
            permanent_residence TEXT NOT NULL,
            place_of_origin TEXT NOT NULL
        )",
    )
    .execute(&pool)
    .await?;
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM citizens")
        .fetch_one(&pool)
        .await?;
    if n == 0 {
        let mut tx = pool.begin().await?;
        for c in demo_accounts().into_iter().chain(synthetic()) {
            sqlx::query("INSERT OR IGNORE INTO citizens VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
                .bind(&c.national_id)
                .bind(&c.full_name)
                .bind(&c.date_of_birth)
                .bind(&c.sex)
                .bind(&c.ethnicity)
                .bind(&c.nationality)
                .bind(&c.permanent_residence)
                .bind(&c.place_of_origin)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
    }
    Ok(pool)
}

async fn citizen(
    State(pool): State<SqlitePool>,
    UrlPath(national_id): UrlPath<String>,
) -> Response {
    let error = |status: StatusCode, message: &str| {
        (status, axum::Json(serde_json::json!({ "error": message }))).into_response()
    };
    if national_id.len() != 12 || !national_id.bytes().all(|b| b.is_ascii_digit()) {
        return error(
            StatusCode::BAD_REQUEST,
            "a national ID number has 12 digits",
        );
    }
    let row = sqlx::query("SELECT * FROM citizens WHERE national_id = ?")
        .bind(&national_id)
        .fetch_optional(&pool)
        .await;
    match row {
        Ok(Some(r)) => {
            let get = |name: &str| r.try_get::<String, _>(name).unwrap_or_default();
            axum::Json(Citizen {
                national_id: get("national_id"),
                full_name: get("full_name"),
                date_of_birth: get("date_of_birth"),
                sex: get("sex"),
                ethnicity: get("ethnicity"),
                nationality: get("nationality"),
                permanent_residence: get("permanent_residence"),
                place_of_origin: get("place_of_origin"),
            })
            .into_response()
        }
        Ok(None) => error(StatusCode::NOT_FOUND, "no citizen with this number"),
        Err(e) => {
            tracing::warn!(error = %e, "population demo database");
            error(StatusCode::INTERNAL_SERVER_ERROR, "database error")
        }
    }
}

/// The provider's routes.
pub fn router(pool: SqlitePool) -> Router {
    Router::new()
        .route("/citizens/{national_id}", get(citizen))
        .route(
            "/openapi.json",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "application/json")],
                    openapi("/citizens"),
                )
            }),
        )
        .route("/healthz", get(|| async { "ok" }))
        .with_state(pool)
}

/// Starts the provider on a free loopback port; returns its address.
pub async fn start(data_dir: &Path) -> anyhow::Result<SocketAddr> {
    let pool = open(data_dir).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("cannot start the demo population provider")?;
    let addr = listener.local_addr()?;
    let app = router(pool);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!(error = %e, "demo population provider stopped");
        }
    });
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_citizens_are_stable_and_well_formed() {
        let a = synthetic();
        assert_eq!(a, synthetic());
        assert_eq!(a.len(), SYNTHETIC as usize);
        for c in &a {
            assert_eq!(c.national_id.len(), 12, "{c:?}");
            assert!(c.national_id.starts_with("001"));
            let century_female = c.national_id.as_bytes()[3] - b'0';
            assert_eq!(century_female % 2 == 1, c.sex == "female");
            assert_eq!(&c.national_id[4..6], &c.date_of_birth[2..4]);
        }
        let ids: std::collections::HashSet<_> =
            demo_accounts().into_iter().map(|c| c.national_id).collect();
        assert!(ids.contains("001090012345") && ids.contains("001195054321"));
    }

    #[test]
    fn openapi_is_json() {
        let v: serde_json::Value = serde_json::from_str(&openapi("")).expect("json");
        assert!(v["paths"]["/{national_id}"]["get"].is_object());
    }
}

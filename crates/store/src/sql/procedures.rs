//! Procedure definitions and their versions.

use chrono::{DateTime, Utc};
use motcua_domain::UnitCode;
use motcua_domain::procedure::Procedure;

use super::{Arg, Conn, Dialect, args, marks, rows};
use crate::{Availability, ImportOutcome, StoreError, StoreResult, StoredProcedure};

/// Class of the two-key advisory locks taken per procedure code on import
/// (PostgreSQL).
pub const PROCEDURE_LOCK_CLASS: i32 = 0x6d63_0001;

/// Adds version `p.version` of a procedure unless that exact version is
/// there already; refuses a different text under an existing version and
/// a version older than the newest.
pub(super) async fn put(
    c: &mut dyn Conn,
    p: &Procedure,
    home: Option<&UnitCode>,
    at: DateTime<Utc>,
) -> StoreResult<ImportOutcome> {
    let def = serde_json::to_string(p)
        .map_err(|e| StoreError::Invalid(format!("procedure {}: {e}", p.code)))?;
    if c.dialect() == Dialect::Postgres {
        // Nodes importing the same procedure at once take turns, so the
        // second one sees the first one's row (Unchanged), as on SQLite.
        c.exec(
            "SELECT pg_advisory_xact_lock(CAST($1 AS INTEGER), hashtext($2))",
            vec![
                super::Arg::Int(i64::from(PROCEDURE_LOCK_CLASS)),
                p.code.as_str().into(),
            ],
        )
        .await?;
    }
    // A code belongs to the national catalogue or to one province, for
    // every version.
    if let Some(r) = c
        .first(
            "SELECT home_province FROM procedures WHERE code = $1 LIMIT 1",
            args![&p.code],
        )
        .await?
    {
        let owner = r.opt_text("home_province")?;
        if owner.as_deref() != home.map(|h| h.as_str()) {
            return Err(StoreError::Invalid(match owner {
                None => format!(
                    "procedure {} belongs to the national catalogue, which only the operator imports",
                    p.code
                ),
                Some(o) => format!("procedure {} belongs to province {o}", p.code),
            }));
        }
    }
    let existing = c
        .text(
            "SELECT definition FROM procedures WHERE code = $1 AND version = $2",
            args![&p.code, i64::from(p.version)],
        )
        .await?;
    if let Some(existing) = existing {
        let same = serde_json::from_str::<Procedure>(&existing)
            .map_err(|e| StoreError::Backend(format!("stored procedure {}: {e}", p.code)))?
            == *p;
        return if same {
            Ok(ImportOutcome::Unchanged)
        } else {
            Err(StoreError::Duplicate(format!(
                "procedure {} version {} already exists with different content; raise the version",
                p.code, p.version
            )))
        };
    }
    let newest = c
        .int(
            "SELECT MAX(version) FROM procedures WHERE code = $1",
            args![&p.code],
        )
        .await?;
    if newest.is_some_and(|v| v > i64::from(p.version)) {
        return Err(StoreError::Invalid(format!(
            "procedure {} already has a newer version than {}",
            p.code, p.version
        )));
    }
    c.exec(
        "INSERT INTO procedures (code, version, definition, enabled, imported_at, home_province) VALUES ($1,$2,$3,TRUE,$4,$5)",
        args![
            &p.code,
            i64::from(p.version),
            def,
            at,
            home.map(|h| h.as_str())
        ],
    )
    .await?;
    Ok(ImportOutcome::Added)
}

pub(super) async fn version(
    c: &mut dyn Conn,
    code: &str,
    version: u32,
) -> StoreResult<Option<StoredProcedure>> {
    let row = c
        .first(
            "SELECT * FROM procedures WHERE code = $1 AND version = $2",
            args![code, i64::from(version)],
        )
        .await?;
    rows::first(row, rows::procedure)
}

pub(super) async fn current(c: &mut dyn Conn, code: &str) -> StoreResult<Option<StoredProcedure>> {
    let row = c
        .first(
            "SELECT * FROM procedures WHERE code = $1 AND enabled = TRUE ORDER BY version DESC LIMIT 1",
            args![code],
        )
        .await?;
    rows::first(row, rows::procedure)
}

pub(super) async fn all_current(c: &mut dyn Conn) -> StoreResult<Vec<StoredProcedure>> {
    let rows = c
        .fetch(
            "SELECT p.* FROM procedures p WHERE p.enabled = TRUE AND p.version = (SELECT MAX(q.version) FROM procedures q WHERE q.code = p.code AND q.enabled = TRUE) ORDER BY p.code",
            vec![],
        )
        .await?;
    rows::all(rows, rows::procedure)
}

pub(super) async fn versions(c: &mut dyn Conn, code: &str) -> StoreResult<Vec<StoredProcedure>> {
    let rows = c
        .fetch(
            "SELECT * FROM procedures WHERE code = $1 ORDER BY version",
            args![code],
        )
        .await?;
    rows::all(rows, rows::procedure)
}

pub(super) async fn set_enabled(
    c: &mut dyn Conn,
    code: &str,
    version: u32,
    enabled: bool,
) -> StoreResult<()> {
    let n = c
        .exec(
            "UPDATE procedures SET enabled = $1 WHERE code = $2 AND version = $3",
            args![enabled, code, i64::from(version)],
        )
        .await?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

pub(super) async fn set_availability(
    c: &mut dyn Conn,
    unit: &UnitCode,
    code: &str,
    available: Option<bool>,
    by: &str,
    at: DateTime<Utc>,
) -> StoreResult<()> {
    match available {
        Some(a) => {
            c.exec(
                "INSERT INTO procedure_availability (unit_code, procedure_code, available, changed_at, changed_by) VALUES ($1,$2,$3,$4,$5) ON CONFLICT (unit_code, procedure_code) DO UPDATE SET available = excluded.available, changed_at = excluded.changed_at, changed_by = excluded.changed_by",
                args![unit.as_str(), code, a, at, by],
            )
            .await?;
        }
        None => {
            c.exec(
                "DELETE FROM procedure_availability WHERE unit_code = $1 AND procedure_code = $2",
                args![unit.as_str(), code],
            )
            .await?;
        }
    }
    Ok(())
}

/// Availability decisions, for one procedure (`Some`) or all, in `units`
/// (every unit when empty).
pub(super) async fn availability(
    c: &mut dyn Conn,
    code: Option<&str>,
    units: &[UnitCode],
) -> StoreResult<Vec<Availability>> {
    let mut sql = "SELECT * FROM procedure_availability WHERE 1 = 1".to_string();
    let mut a: Vec<Arg> = Vec::new();
    if let Some(code) = code {
        a.push(code.into());
        sql.push_str(&format!(" AND procedure_code = ${}", a.len()));
    }
    if !units.is_empty() {
        sql.push_str(&format!(
            " AND unit_code IN ({})",
            marks(a.len() + 1, units.len())
        ));
        a.extend(units.iter().map(|u| Arg::from(u.as_str())));
    }
    sql.push_str(" ORDER BY procedure_code, unit_code");
    let rows = c.fetch(&sql, a).await?;
    rows::all(rows, rows::availability)
}

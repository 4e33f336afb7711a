//! Administrative units and agencies.

use motcua_domain::units::{AdminUnit, Agency, AgencyKind};
use motcua_domain::{AgencyCode, UnitCode};

use super::{Conn, Dialect, args, rows};
use crate::StoreResult;

/// Advisory lock serialising first-start set-up (loading the built-in
/// units) on PostgreSQL.
pub const SETUP_LOCK: i64 = 0x6d6f_7463_7561_0003;

/// Inserts or updates every unit; a code given twice keeps its last row.
pub async fn upsert_units(c: &mut dyn Conn, units: &[AdminUnit]) -> StoreResult<()> {
    // Rows of five values, as many as fit one statement on both engines.
    for chunk in units.chunks(1000) {
        let mut values = Vec::with_capacity(chunk.len());
        let mut a = Vec::with_capacity(chunk.len() * 5);
        let mut seen = std::collections::HashMap::new();
        for (i, u) in chunk.iter().enumerate() {
            seen.insert(u.code.as_str(), i);
        }
        for (i, u) in chunk.iter().enumerate() {
            if seen.get(u.code.as_str()) != Some(&i) {
                continue;
            }
            let n = a.len();
            values.push(format!(
                "(${}, ${}, ${}, ${}, ${})",
                n + 1,
                n + 2,
                n + 3,
                n + 4,
                n + 5
            ));
            a.extend(args![
                u.code.as_str(),
                &u.name,
                &u.division_type,
                u.level.as_str(),
                u.parent_code.as_ref().map(|c| c.as_str()),
            ]);
        }
        let sql = format!(
            "INSERT INTO units (code, name, division_type, level, parent_code) VALUES {} ON CONFLICT (code) DO UPDATE SET name = excluded.name, division_type = excluded.division_type, level = excluded.level, parent_code = excluded.parent_code",
            values.join(", ")
        );
        c.exec(&sql, a).await?;
    }
    Ok(())
}

/// Takes the set-up lock (PostgreSQL, until the transaction ends).
pub async fn setup_lock(c: &mut dyn Conn) -> StoreResult<()> {
    if c.dialect() == Dialect::Postgres {
        c.exec("SELECT pg_advisory_xact_lock($1)", args![SETUP_LOCK])
            .await?;
    }
    Ok(())
}

pub async fn unit(c: &mut dyn Conn, code: &UnitCode) -> StoreResult<Option<AdminUnit>> {
    let row = c
        .first("SELECT * FROM units WHERE code = $1", args![code.as_str()])
        .await?;
    rows::first(row, rows::unit)
}

pub async fn units(c: &mut dyn Conn) -> StoreResult<Vec<AdminUnit>> {
    let rows = c.fetch("SELECT * FROM units ORDER BY code", vec![]).await?;
    rows::all(rows, rows::unit)
}

/// (provinces, communes).
pub async fn count_units(c: &mut dyn Conn) -> StoreResult<(u64, u64)> {
    let r = c
        .first(
            "SELECT COALESCE(SUM(CASE WHEN level = 'province' THEN 1 ELSE 0 END), 0) AS p, COALESCE(SUM(CASE WHEN level = 'commune' THEN 1 ELSE 0 END), 0) AS c FROM units",
            vec![],
        )
        .await?;
    match r {
        Some(r) => Ok((r.count("p")?, r.count("c")?)),
        None => Ok((0, 0)),
    }
}

pub async fn put_agency(c: &mut dyn Conn, a: &Agency) -> StoreResult<()> {
    c.exec(
        "INSERT INTO agencies (code, name_vi, name_en, kind, unit_code, address) VALUES ($1,$2,$3,$4,$5,$6) ON CONFLICT (code) DO UPDATE SET name_vi = excluded.name_vi, name_en = excluded.name_en, kind = excluded.kind, unit_code = excluded.unit_code, address = excluded.address",
        args![
            a.code.as_str(),
            &a.name_vi,
            &a.name_en,
            a.kind.as_str(),
            a.unit_code.as_str(),
            &a.address,
        ],
    )
    .await?;
    Ok(())
}

pub async fn agency(c: &mut dyn Conn, code: &AgencyCode) -> StoreResult<Option<Agency>> {
    let row = c
        .first(
            "SELECT * FROM agencies WHERE code = $1",
            args![code.as_str()],
        )
        .await?;
    rows::first(row, rows::agency)
}

pub async fn agencies(c: &mut dyn Conn) -> StoreResult<Vec<Agency>> {
    let rows = c
        .fetch("SELECT * FROM agencies ORDER BY code", vec![])
        .await?;
    rows::all(rows, rows::agency)
}

pub async fn agency_for(
    c: &mut dyn Conn,
    kind: AgencyKind,
    unit: &UnitCode,
) -> StoreResult<Option<Agency>> {
    let row = c
        .first(
            "SELECT * FROM agencies WHERE kind = $1 AND unit_code = $2",
            args![kind.as_str(), unit.as_str()],
        )
        .await?;
    rows::first(row, rows::agency)
}

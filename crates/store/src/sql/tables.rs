//! Reading whole tables in key order (`migrate-data`), the same on both
//! engines; writing them is the backends' own (see [`super::Backend`]).

use super::{Arg, Cell, Conn, Row, marks};
use crate::bulk::{self, ColKind, TableDef};
use crate::{StoreError, StoreResult};

/// `"name"`: every column name quoted (some are keywords).
pub fn quoted(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| format!("\"{n}\"")).collect()
}

/// A row as bulk cells, in the table's column order (booleans as 0/1).
fn cells(t: &TableDef, r: Row) -> StoreResult<Vec<Cell>> {
    let cells = r.into_cells();
    if cells.len() != t.columns.len() {
        return Err(StoreError::Backend(format!(
            "{}: read {} columns, expected {}",
            t.name,
            cells.len(),
            t.columns.len()
        )));
    }
    Ok(cells)
}

fn bind(c: &Cell, kind: ColKind) -> Arg {
    match (c, kind) {
        (Cell::Null, ColKind::Text) => Arg::NullText,
        (Cell::Null, _) => Arg::NullInt,
        (Cell::Int(i), ColKind::Bool) => Arg::Bool(*i != 0),
        (Cell::Int(i), _) => Arg::Int(*i),
        (Cell::Text(t), _) => Arg::Text(t.clone()),
    }
}

pub(super) async fn count(c: &mut dyn Conn, table: &str) -> StoreResult<u64> {
    let t = bulk::table(table)?;
    // Only names from the fixed table definitions are formatted in.
    let n = c
        .int(&format!("SELECT COUNT(*) FROM {}", t.name), vec![])
        .await?
        .unwrap_or(0);
    Ok(n.max(0) as u64)
}

pub(super) async fn export(
    c: &mut dyn Conn,
    table: &str,
    after: Option<&[Cell]>,
    limit: u32,
) -> StoreResult<Vec<Vec<Cell>>> {
    let t = bulk::table(table)?;
    let names = quoted(&t.column_names());
    let keys = &names[..t.key];
    let mut sql = format!("SELECT {} FROM {}", names.join(", "), t.name);
    let mut a = Vec::new();
    if let Some(after) = after {
        if after.len() != t.key {
            return Err(StoreError::Invalid(format!(
                "{}: key of {} cells",
                t.name, t.key
            )));
        }
        sql.push_str(&format!(
            " WHERE ({}) > ({})",
            keys.join(", "),
            marks(1, keys.len())
        ));
        a = after
            .iter()
            .zip(t.columns)
            .map(|(c, (_, kind))| bind(c, *kind))
            .collect();
    }
    sql.push_str(&format!(
        " ORDER BY {} LIMIT {}",
        keys.join(", "),
        limit.max(1)
    ));
    c.fetch(&sql, a)
        .await?
        .into_iter()
        .map(|r| cells(t, r))
        .collect()
}

pub(super) async fn last(c: &mut dyn Conn, table: &str) -> StoreResult<Option<Vec<Cell>>> {
    let t = bulk::table(table)?;
    let names = quoted(&t.column_names());
    let order: Vec<String> = names[..t.key].iter().map(|k| format!("{k} DESC")).collect();
    let sql = format!(
        "SELECT {} FROM {} ORDER BY {} LIMIT 1",
        names.join(", "),
        t.name,
        order.join(", ")
    );
    c.first(&sql, vec![])
        .await?
        .map(|r| cells(t, r))
        .transpose()
}

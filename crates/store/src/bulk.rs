//! Table-level bulk access, the same on every backend: used by
//! `motcua migrate-data` (copying a whole installation from one backend to
//! another, row by row with the same keys, codes and audit hashes) and by
//! `motcua generate` (filling a database with synthetic dossiers).
//!
//! Rows travel as [`Cell`]s in the column order of [`TABLES`]. Booleans
//! are `Int` 0/1 (SQLite stores them so; PostgreSQL converts), timestamps
//! are the stored integers (milliseconds; audit `at` microseconds), JSON is
//! the stored text: a copied row is byte-for-byte the row that was read.

use serde::{Deserialize, Serialize};

/// One value of a row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Cell {
    Null,
    Int(i64),
    Text(String),
}

impl Cell {
    pub fn int(&self) -> Option<i64> {
        match self {
            Cell::Int(i) => Some(*i),
            _ => None,
        }
    }
    pub fn text(&self) -> Option<&str> {
        match self {
            Cell::Text(t) => Some(t),
            _ => None,
        }
    }
    pub fn opt_text(v: Option<impl Into<String>>) -> Cell {
        v.map_or(Cell::Null, |s| Cell::Text(s.into()))
    }
    pub fn opt_int(v: Option<i64>) -> Cell {
        v.map_or(Cell::Null, Cell::Int)
    }
}

/// The type of a column as it travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColKind {
    Int,
    Text,
    /// 0/1 as `Cell::Int`; `BOOLEAN` on PostgreSQL, `INTEGER` on SQLite.
    Bool,
}

/// A table of the schema as bulk access sees it.
#[derive(Debug, Clone, Copy)]
pub struct TableDef {
    pub name: &'static str,
    pub columns: &'static [(&'static str, ColKind)],
    /// The primary key, a prefix of `columns`: rows are read in its order.
    pub key: usize,
    /// Whether the first column is an identity (`id`) whose sequence must
    /// follow imported rows on PostgreSQL.
    pub identity: bool,
}

impl TableDef {
    pub fn column_names(&self) -> Vec<&'static str> {
        self.columns.iter().map(|(n, _)| *n).collect()
    }
}

use ColKind::{Bool, Int, Text};

/// Every table, in an order that satisfies the foreign keys when copied
/// front to back (and cleared back to front).
pub const TABLES: &[TableDef] = &[
    TableDef {
        name: "units",
        columns: &[
            ("code", Text),
            ("name", Text),
            ("division_type", Text),
            ("level", Text),
            ("parent_code", Text),
        ],
        key: 1,
        identity: false,
    },
    TableDef {
        name: "agencies",
        columns: &[
            ("code", Text),
            ("name_vi", Text),
            ("name_en", Text),
            ("kind", Text),
            ("unit_code", Text),
            ("address", Text),
        ],
        key: 1,
        identity: false,
    },
    TableDef {
        name: "users",
        columns: &[
            ("id", Int),
            ("username", Text),
            ("password_hash", Text),
            ("full_name", Text),
            ("national_id", Text),
            ("phone", Text),
            ("email", Text),
            ("roles", Text),
            ("agency_code", Text),
            ("disabled", Bool),
            ("created_at", Int),
        ],
        key: 1,
        identity: true,
    },
    TableDef {
        name: "tokens",
        columns: &[
            ("token_hash", Text),
            ("user_id", Int),
            ("created_at", Int),
            ("expires_at", Int),
            ("revoked", Bool),
        ],
        key: 1,
        identity: false,
    },
    TableDef {
        name: "procedures",
        columns: &[
            ("code", Text),
            ("version", Int),
            ("definition", Text),
            ("enabled", Bool),
            ("imported_at", Int),
        ],
        key: 2,
        identity: false,
    },
    TableDef {
        name: "dossier_seq",
        columns: &[("agency_code", Text), ("day", Text), ("last", Int)],
        key: 2,
        identity: false,
    },
    TableDef {
        name: "dossiers",
        columns: &[
            ("id", Int),
            ("code", Text),
            ("procedure_code", Text),
            ("procedure_version", Int),
            ("agency_code", Text),
            ("unit_code", Text),
            ("channel", Text),
            ("applicant_user_id", Int),
            ("applicant_name", Text),
            ("applicant_national_id", Text),
            ("applicant_phone", Text),
            ("applicant_email", Text),
            ("fields", Text),
            ("submitted_at", Int),
            ("status", Text),
            ("holder", Text),
            ("due_at", Int),
            ("appointment_at", Int),
            ("lifecycle", Text),
            ("version", Int),
            ("updated_at", Int),
        ],
        key: 1,
        identity: true,
    },
    TableDef {
        name: "dossier_documents",
        columns: &[
            ("dossier_id", Int),
            ("position", Int),
            ("document_id", Text),
            ("filename", Text),
            ("content_type", Text),
            ("size", Int),
            ("sha256", Text),
            ("uploaded_at", Int),
            ("stage", Text),
        ],
        key: 2,
        identity: false,
    },
    TableDef {
        name: "audit",
        columns: &[
            ("seq", Int),
            ("at", Int),
            ("actor", Text),
            ("actor_role", Text),
            ("agency_code", Text),
            ("action", Text),
            ("dossier_code", Text),
            ("from_status", Text),
            ("to_status", Text),
            ("note", Text),
            ("payload_hash", Text),
            ("prev_hash", Text),
            ("hash", Text),
        ],
        key: 1,
        identity: false,
    },
    TableDef {
        name: "outbox",
        columns: &[
            ("id", Int),
            ("topic", Text),
            ("payload", Text),
            ("created_at", Int),
            ("claimed_until", Int),
            ("done_at", Int),
            ("claims", Int),
        ],
        key: 1,
        identity: true,
    },
    TableDef {
        name: "meta",
        columns: &[("key", Text), ("value", Text)],
        key: 1,
        identity: false,
    },
];

/// The definition of `name`, or `StoreError::Invalid`.
pub fn table(name: &str) -> crate::StoreResult<&'static TableDef> {
    TABLES
        .iter()
        .find(|t| t.name == name)
        .ok_or_else(|| crate::StoreError::Invalid(format!("no table {name}")))
}

/// Rows for one table, written by [`crate::Store::bulk_import`].
#[derive(Debug, Clone)]
pub struct TableRows {
    pub table: &'static str,
    pub rows: Vec<Vec<Cell>>,
}

/// Checks that every row has the table's width and its cells' kinds.
pub fn check_rows(t: &TableDef, rows: &[Vec<Cell>]) -> crate::StoreResult<()> {
    for r in rows {
        if r.len() != t.columns.len() {
            return Err(crate::StoreError::Invalid(format!(
                "{}: row of {} cells, table has {} columns",
                t.name,
                r.len(),
                t.columns.len()
            )));
        }
        for (c, (name, kind)) in r.iter().zip(t.columns) {
            let ok = matches!(
                (c, kind),
                (Cell::Null, _) | (Cell::Int(_), Int | Bool) | (Cell::Text(_), Text)
            );
            if !ok {
                return Err(crate::StoreError::Invalid(format!(
                    "{}.{name}: {c:?} is not a {kind:?}",
                    t.name
                )));
            }
        }
    }
    Ok(())
}

/// Which read path [`crate::Store::explain`] shows the plan of.
#[derive(Debug, Clone)]
pub enum ExplainTarget {
    /// The query `find_dossiers` runs for this question.
    Find(crate::DossierQuery),
    /// The tracking look-up `dossier(code)` runs.
    Dossier(motcua_domain::DossierCode),
}

/// Imported audit rows must continue the chain exactly where it ends
/// (`last`: the sequence number and hash of the last record, if any).
pub fn check_chain_continues(
    last: Option<(i64, String)>,
    rows: &[Vec<Cell>],
) -> crate::StoreResult<()> {
    let (seq, hash) = last.unwrap_or((0, motcua_domain::audit::GENESIS_HASH.to_string()));
    let Some(first) = rows.first() else {
        return Ok(());
    };
    if first.first().and_then(Cell::int) != Some(seq + 1)
        || first.get(11).and_then(Cell::text) != Some(hash.as_str())
    {
        return Err(crate::StoreError::Conflict);
    }
    Ok(())
}

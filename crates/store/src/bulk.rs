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
/// front to back (and cleared back to front). The signed head of the audit
/// chain (`audit_head`) is not copied: the target signs the head of the
/// records it imports with its own key.
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
            ("national_id_verified_at", Int),
            ("national_id_verified_by", Text),
            ("national_id_verification", Text),
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
            ("home_province", Text),
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
            ("access_code", Text),
            ("audit_seq", Int),
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
        name: "pubsub_events",
        columns: &[
            ("id", Int),
            ("event_id", Text),
            ("event_type", Text),
            ("source_key", Text),
            ("payload", Text),
            ("published_at", Int),
        ],
        key: 1,
        identity: true,
    },
    TableDef {
        name: "pubsub_subscriptions",
        columns: &[
            ("id", Int),
            ("client", Text),
            ("event_type", Text),
            ("mode", Text),
            ("url", Text),
            ("created_by", Text),
            ("created_at", Int),
            ("deleted_at", Int),
        ],
        key: 1,
        identity: true,
    },
    TableDef {
        name: "pubsub_deliveries",
        columns: &[
            ("id", Int),
            ("subscription_id", Int),
            ("event_pk", Int),
            ("state", Text),
            ("attempts", Int),
            ("next_attempt_at", Int),
            ("claimed_until", Int),
            ("last_status", Int),
            ("last_error", Text),
            ("updated_at", Int),
            ("done_at", Int),
        ],
        key: 1,
        identity: true,
    },
    TableDef {
        name: "link_reviews",
        columns: &[
            ("id", Int),
            ("dossier_id", Int),
            ("user_id", Int),
            ("created_at", Int),
            ("resolved_at", Int),
            ("resolved_by", Text),
            ("resolution", Text),
        ],
        key: 1,
        identity: true,
    },
    TableDef {
        name: "procedure_availability",
        columns: &[
            ("unit_code", Text),
            ("procedure_code", Text),
            ("available", Bool),
            ("changed_at", Int),
            ("changed_by", Text),
        ],
        key: 2,
        identity: false,
    },
    TableDef {
        name: "throttle",
        columns: &[
            ("key", Text),
            ("failures", Int),
            ("window_start", Int),
            ("last_at", Int),
        ],
        key: 1,
        identity: false,
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

/// Rows for one table, written by [`crate::MaintenanceStore::bulk_import`].
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

/// Which read path [`crate::MaintenanceStore::explain`] shows the plan of.
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

/// The (agency, applicant name, id) of each row of the `dossiers` table,
/// for the search terms written beside them.
pub fn dossier_term_sources(rows: &[Vec<Cell>]) -> crate::StoreResult<Vec<(String, String, i64)>> {
    let t = table("dossiers")?;
    let col = |name: &str| {
        t.columns
            .iter()
            .position(|(n, _)| *n == name)
            .ok_or_else(|| crate::StoreError::Invalid(format!("dossiers has no column {name}")))
    };
    let (id, agency, name) = (col("id")?, col("agency_code")?, col("applicant_name")?);
    rows.iter()
        .map(|r| match (&r[id], &r[agency], &r[name]) {
            (Cell::Int(i), Cell::Text(a), Cell::Text(n)) => Ok((a.clone(), n.clone(), *i)),
            _ => Err(crate::StoreError::Invalid(
                "a dossier row without id, agency or applicant name".into(),
            )),
        })
        .collect()
}

/// `meta` key holding the indexes dropped for a bulk load: a JSON array of
/// `[name, CREATE INDEX statement]`.
pub const DEFERRED_INDEXES: &str = "bulk.deferred_indexes";

/// `CREATE INDEX …` as `CREATE INDEX IF NOT EXISTS …` (restoring twice is
/// harmless).
pub fn create_if_missing(statement: &str) -> String {
    let t = statement.trim();
    for prefix in ["CREATE INDEX ", "CREATE UNIQUE INDEX "] {
        if let Some(rest) = t.strip_prefix(prefix)
            && !rest.starts_with("IF NOT EXISTS")
        {
            return format!("{prefix}IF NOT EXISTS {rest}");
        }
    }
    t.to_string()
}

/// Builds every dossier's search terms for a bulk rebuild: dossiers are
/// added in any order (a sequential scan), and the terms come out sorted
/// by the table's key (agency, term, dossier id), so that they are
/// appended to the index in order. Kept compact — 16 bytes a term, about
/// 80 bytes a dossier — with agencies and terms interned.
#[derive(Default)]
pub struct TermBuilder {
    agencies: Vec<String>,
    agency_ix: std::collections::HashMap<String, u32>,
    terms: Vec<String>,
    term_ix: std::collections::HashMap<String, u32>,
    rows: Vec<(u32, u32, i64)>,
}

impl TermBuilder {
    pub fn add(&mut self, agency: &str, applicant_name: &str, dossier_id: i64) {
        let a = match self.agency_ix.get(agency) {
            Some(a) => *a,
            None => {
                let a = self.agencies.len() as u32;
                self.agencies.push(agency.to_string());
                self.agency_ix.insert(agency.to_string(), a);
                a
            }
        };
        for term in motcua_domain::text::name_terms(applicant_name) {
            let t = match self.term_ix.get(&term) {
                Some(t) => *t,
                None => {
                    let t = self.terms.len() as u32;
                    self.term_ix.insert(term.clone(), t);
                    self.terms.push(term);
                    t
                }
            };
            self.rows.push((a, t, dossier_id));
        }
    }

    /// The rows in key order (byte order of the texts, as both backends
    /// compare these columns).
    pub fn sorted(mut self) -> SortedTerms {
        let rank = |names: &[String]| {
            let mut order: Vec<usize> = (0..names.len()).collect();
            order.sort_by(|x, y| names[*x].as_bytes().cmp(names[*y].as_bytes()));
            let mut rank = vec![0u32; names.len()];
            for (r, i) in order.iter().enumerate() {
                rank[*i] = r as u32;
            }
            rank
        };
        let (ar, tr) = (rank(&self.agencies), rank(&self.terms));
        self.rows
            .sort_unstable_by_key(|(a, t, id)| (ar[*a as usize], tr[*t as usize], *id));
        SortedTerms {
            agencies: self.agencies,
            terms: self.terms,
            rows: self.rows,
        }
    }
}

pub struct SortedTerms {
    agencies: Vec<String>,
    terms: Vec<String>,
    rows: Vec<(u32, u32, i64)>,
}

impl SortedTerms {
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The rows in key order, `n` at a time.
    pub fn chunks(&self, n: usize) -> impl Iterator<Item = Vec<(&str, &str, i64)>> + '_ {
        self.rows.chunks(n.max(1)).map(|c| {
            c.iter()
                .map(|(a, t, id)| {
                    (
                        self.agencies[*a as usize].as_str(),
                        self.terms[*t as usize].as_str(),
                        *id,
                    )
                })
                .collect()
        })
    }
}

#[cfg(test)]
mod term_tests {
    use super::*;

    #[test]
    fn terms_come_out_in_key_order() {
        let mut b = TermBuilder::default();
        b.add("UB2", "Trần An", 3);
        b.add("UB1", "Lê An", 7);
        b.add("UB1", "An", 2);
        let s = b.sorted();
        let rows: Vec<(String, String, i64)> = s
            .chunks(2)
            .flatten()
            .map(|(a, t, i)| (a.to_string(), t.to_string(), i))
            .collect();
        let mut want = rows.clone();
        want.sort();
        assert_eq!(rows, want);
        assert_eq!(rows.len(), 3 + 3 + 1);
        assert_eq!(rows[0], ("UB1".into(), "an".into(), 2));
    }
}

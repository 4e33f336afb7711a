//! The SQL of the dossier lists (workqueue, "my dossiers", staff search),
//! written once for every backend: only the placeholder syntax differs.
//!
//! Staff search text is answered by the index that fits it: a dossier code
//! by the unique code, a national ID number by its index, and a name by the
//! `dossier_terms` postings (folded runs of one, two and three adjacent
//! words of the applicant's name per agency, written in the same
//! transaction as the dossier), walked newest first — so "nguyen van an",
//! "Nguyễn Văn An" and "An" are all answered without reading the agency's
//! other dossiers, and a full name of three words reads only the dossiers
//! that bear it.

use motcua_domain::DossierCode;
use motcua_domain::text::{NameQuery, name_query};

use crate::DossierQuery;

/// A bound value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arg {
    Int(i64),
    Text(String),
    /// `INTEGER` 0/1 on SQLite, `BOOLEAN` on PostgreSQL.
    Bool(bool),
    /// A null where a number goes (PostgreSQL types its parameters).
    NullInt,
    /// A null where a text goes.
    NullText,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// `?` placeholders.
    Sqlite,
    /// `$1`, `$2`… placeholders.
    Postgres,
}

/// The columns of a [`crate::DossierSummary`], in the order rows are read.
pub const SUMMARY_COLUMNS: [&str; 10] = [
    "code",
    "procedure_code",
    "agency_code",
    "applicant_name",
    "status",
    "holder",
    "channel",
    "submitted_at",
    "due_at",
    "appointment_at",
];

/// [`SUMMARY_COLUMNS`] of the dossier `d`, for a select list.
fn summary_cols() -> String {
    let cols: Vec<String> = SUMMARY_COLUMNS.iter().map(|c| format!("d.{c}")).collect();
    cols.join(", ")
}

/// What staff typed in the search box.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SearchText {
    /// A whole dossier code.
    Code(String),
    /// 9 (old identity card) or 12 (citizen identity card) digits.
    NationalId(String),
    Name(NameQuery),
    /// Nothing searchable (punctuation only).
    Nothing,
}

pub fn classify(text: &str) -> SearchText {
    let t = text.trim();
    let upper = t.to_ascii_uppercase();
    if DossierCode::parse(&upper).is_ok() {
        return SearchText::Code(upper);
    }
    let digits: String = t.chars().filter(|c| !c.is_whitespace()).collect();
    if (digits.len() == 9 || digits.len() == 12) && digits.bytes().all(|b| b.is_ascii_digit()) {
        return SearchText::NationalId(digits);
    }
    match name_query(t) {
        Some(q) => SearchText::Name(q),
        None => SearchText::Nothing,
    }
}

/// A list query ready to run.
#[derive(Debug, Clone)]
pub struct FindSql {
    /// The whole list in one statement, or for a name search
    /// ([`FindSql::ids_first`]) the matching dossier ids only.
    pub sql: String,
    pub args: Vec<Arg>,
    /// Rows must also pass this check of the applicant's name (a name
    /// search: the postings find candidates, the check keeps whole runs of
    /// words only).
    pub name: Option<NameQuery>,
    /// A name search: `sql` selects only the matching dossier ids, newest
    /// first — answered from the postings alone when no other filter reads
    /// the dossier's row. Backends then read the rows by id
    /// ([`rows_by_id`]) in up to [`ROW_READERS`] chunks side by side
    /// ([`read_side_by_side`]).
    pub ids_first: bool,
}

/// How many connections read the rows of one name search side by side. A
/// common name's newest dossiers lie on pages spread over the whole table;
/// read one after another, fifty of them not in memory took 16–42 ms at 10
/// million dossiers, nearly all of it waiting for the disk one page at a
/// time (bench/README.md).
pub const ROW_READERS: usize = 4;

/// The fewest ids a reader takes: a few rows are read at once by one
/// statement, where more connections would only add round trips.
const MIN_CHUNK: usize = 8;

/// Reads the rows of a name search's `ids` with `read` (one chunk of ids
/// → its `(id, row)` pairs), up to [`ROW_READERS`] chunks side by side, and
/// returns them in the search's order, newest first.
pub async fn read_side_by_side<F, Fut>(
    ids: &[i64],
    read: F,
) -> crate::StoreResult<Vec<crate::DossierSummary>>
where
    F: Fn(Vec<i64>) -> Fut,
    Fut: std::future::Future<Output = crate::StoreResult<Vec<(i64, crate::DossierSummary)>>>
        + Send
        + 'static,
{
    let mut readers = tokio::task::JoinSet::new();
    for chunk in ids.chunks(ids.len().div_ceil(ROW_READERS).max(MIN_CHUNK)) {
        readers.spawn(read(chunk.to_vec()));
    }
    let mut found = Vec::with_capacity(ids.len());
    while let Some(chunk) = readers.join_next().await {
        found
            .extend(chunk.map_err(|e| crate::StoreError::Backend(format!("search reader: {e}")))??);
    }
    found.sort_unstable_by_key(|(id, _)| std::cmp::Reverse(*id));
    Ok(found.into_iter().map(|(_, s)| s).collect())
}

/// The summary rows, with `id` first, of a chunk of `n` dossier ids:
/// PostgreSQL binds the chunk as one array, SQLite one id per placeholder.
pub fn rows_by_id(n: usize, dialect: Dialect) -> String {
    let ids = match dialect {
        Dialect::Postgres => "= ANY($1)".to_string(),
        Dialect::Sqlite => format!("IN ({})", vec!["?"; n.max(1)].join(", ")),
    };
    format!(
        "SELECT d.id, {} FROM dossiers d WHERE d.id {ids}",
        summary_cols()
    )
}

impl FindSql {
    /// Whether a row with this applicant name belongs in the result.
    pub fn keeps(&self, applicant_name: &str) -> bool {
        self.name.as_ref().is_none_or(|q| q.matches(applicant_name))
    }

    /// The rows that belong in the result ([`FindSql::keeps`]), in order.
    pub fn kept(&self, rows: Vec<crate::DossierSummary>) -> Vec<crate::DossierSummary> {
        rows.into_iter()
            .filter(|s| self.keeps(&s.applicant_name))
            .collect()
    }
}

struct Builder {
    dialect: Dialect,
    args: Vec<Arg>,
}

impl Builder {
    fn p(&mut self, a: Arg) -> String {
        self.args.push(a);
        match self.dialect {
            Dialect::Sqlite => "?".into(),
            Dialect::Postgres => format!("${}", self.args.len()),
        }
    }

    fn list(&mut self, xs: impl IntoIterator<Item = String>) -> String {
        let marks: Vec<String> = xs.into_iter().map(|x| self.p(Arg::Text(x))).collect();
        marks.join(", ")
    }
}

/// The SQL of [`crate::DossierStore::find_dossiers`]. Only placeholders and fixed
/// fragments are formatted into the text.
pub fn find_dossiers(q: &DossierQuery, dialect: Dialect) -> FindSql {
    let mut b = Builder {
        dialect,
        args: Vec::new(),
    };
    let no_text = q.text.as_deref().is_none_or(|t| t.trim().is_empty());
    if let (Some(agency), false, true, None) = (
        &q.agency,
        q.holders.is_empty(),
        no_text,
        q.applicant_user_id,
    ) {
        return workqueue(&mut b, q, agency.as_str());
    }
    let search = q
        .text
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(classify);
    let mut name = None;
    // The condition after `WHERE`, and whether it reads the dossier's row
    // (anything but the postings of a name).
    let mut cond = String::new();
    let mut needs_row = false;
    match &search {
        Some(SearchText::Name(nq)) => {
            if let Some(a) = &q.agency {
                let p = b.p(Arg::Text(a.as_str().to_string()));
                cond.push_str(&format!("t.agency_code = {p} AND "));
            }
            let p = b.p(Arg::Text(nq.driver.clone()));
            cond.push_str(&format!("t.term = {p}"));
            for other in &nq.others {
                let p = b.p(Arg::Text(other.clone()));
                cond.push_str(&format!(
                    " AND EXISTS (SELECT 1 FROM dossier_terms o WHERE o.agency_code = t.agency_code AND o.term = {p} AND o.dossier_id = t.dossier_id)"
                ));
            }
            name = Some(nq.clone());
        }
        _ => {
            cond.push_str("1 = 1");
            if let Some(a) = &q.agency {
                let p = b.p(Arg::Text(a.as_str().to_string()));
                cond.push_str(&format!(" AND d.agency_code = {p}"));
            }
        }
    }
    if !q.holders.is_empty() {
        let l = b.list(q.holders.iter().map(|r| r.as_str().to_string()));
        cond.push_str(&format!(" AND d.holder IN ({l})"));
        needs_row = true;
    }
    if !q.statuses.is_empty() {
        let l = b.list(q.statuses.iter().map(|s| s.as_str().to_string()));
        cond.push_str(&format!(" AND d.status IN ({l})"));
        needs_row = true;
    }
    if let Some(uid) = q.applicant_user_id {
        let p = b.p(Arg::Int(uid));
        cond.push_str(&format!(" AND d.applicant_user_id = {p}"));
        needs_row = true;
    }
    match &search {
        Some(SearchText::Code(code)) => {
            let p = b.p(Arg::Text(code.clone()));
            cond.push_str(&format!(" AND d.code = {p}"));
        }
        Some(SearchText::NationalId(nid)) => {
            let p = b.p(Arg::Text(nid.clone()));
            cond.push_str(&format!(" AND d.applicant_national_id = {p}"));
        }
        Some(SearchText::Nothing) => cond.push_str(" AND 1 = 0"),
        Some(SearchText::Name(_)) | None => {}
    }
    let limit = q.limit.clamp(1, 500);
    let sql = if name.is_some() {
        // Newest first: the postings are in dossier order.
        let join = if needs_row {
            "JOIN dossiers d ON d.id = t.dossier_id"
        } else {
            ""
        };
        format!(
            "SELECT t.dossier_id FROM dossier_terms t {join} WHERE {cond} ORDER BY t.dossier_id DESC LIMIT {limit}"
        )
    } else {
        let order = if q.applicant_user_id.is_some() {
            "d.submitted_at DESC, d.id DESC"
        } else {
            "d.due_at IS NULL, d.due_at, d.submitted_at, d.id"
        };
        format!(
            "SELECT {} FROM dossiers d WHERE {cond} ORDER BY {order} LIMIT {limit}",
            summary_cols()
        )
    };
    FindSql {
        sql,
        args: b.args,
        ids_first: name.is_some(),
        name,
    }
}

/// A workqueue: for each holder, the most urgent dossiers with a due time
/// and those without one, each part read in order from the
/// `(agency, holder, due_at, id, status)` index alone (ids and due times);
/// the parts are merged and only the `limit` rows kept are read from the
/// table. However many dossiers the agency holds, no part reads more than
/// `limit` index entries. Ties on the due time go by id, i.e. by arrival.
fn workqueue(b: &mut Builder, q: &DossierQuery, agency: &str) -> FindSql {
    let limit = q.limit.clamp(1, 500);
    let mut parts = Vec::new();
    for (i, holder) in q.holders.iter().enumerate() {
        for (j, (cond, order)) in [
            ("d.due_at IS NOT NULL", "d.due_at, d.id"),
            ("d.due_at IS NULL", "d.id"),
        ]
        .iter()
        .enumerate()
        {
            let a = b.p(Arg::Text(agency.to_string()));
            let h = b.p(Arg::Text(holder.as_str().to_string()));
            let mut part = format!(
                "SELECT * FROM (SELECT d.id AS id, d.due_at AS due_at FROM dossiers d WHERE d.agency_code = {a} AND d.holder = {h} AND {cond}"
            );
            if !q.statuses.is_empty() {
                let l = b.list(q.statuses.iter().map(|s| s.as_str().to_string()));
                part.push_str(&format!(" AND d.status IN ({l})"));
            }
            part.push_str(&format!(" ORDER BY {order} LIMIT {limit}) AS p{i}_{j}"));
            parts.push(part);
        }
    }
    FindSql {
        sql: format!(
            "SELECT {} FROM (SELECT id, due_at FROM ({}) AS u ORDER BY due_at IS NULL, due_at, id LIMIT {limit}) AS k JOIN dossiers d ON d.id = k.id ORDER BY k.due_at IS NULL, k.due_at, k.id",
            summary_cols(),
            parts.join(" UNION ALL ")
        ),
        args: std::mem::take(&mut b.args),
        name: None,
        ids_first: false,
    }
}

/// The per-(holder, status) counts of an agency's workqueue, with how many
/// are past their due time and how many fall due by `soon`: reads the
/// `(agency, holder, due_at, id, status)` index only.
pub fn queue_counts(
    agency: &str,
    holders: &[motcua_domain::dossier::Role],
    now_ms: i64,
    soon_ms: i64,
    dialect: Dialect,
) -> (String, Vec<Arg>) {
    let mut b = Builder {
        dialect,
        args: Vec::new(),
    };
    let now = b.p(Arg::Int(now_ms));
    let now2 = b.p(Arg::Int(now_ms));
    let soon = b.p(Arg::Int(soon_ms));
    let a = b.p(Arg::Text(agency.to_string()));
    let l = b.list(holders.iter().map(|r| r.as_str().to_string()));
    (
        format!(
            "SELECT holder, status, COUNT(*) AS n, SUM(CASE WHEN due_at < {now} THEN 1 ELSE 0 END) AS overdue, SUM(CASE WHEN due_at >= {now2} AND due_at <= {soon} THEN 1 ELSE 0 END) AS soon FROM dossiers WHERE agency_code = {a} AND holder IN ({l}) GROUP BY holder, status"
        ),
        b.args,
    )
}

/// The `dossier_terms` rows of one dossier: (agency, term, dossier id).
pub fn terms_of(agency: &str, applicant_name: &str, dossier_id: i64) -> Vec<(String, String, i64)> {
    motcua_domain::text::name_terms(applicant_name)
        .into_iter()
        .map(|t| (agency.to_string(), t, dossier_id))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use motcua_domain::AgencyCode;

    #[test]
    fn search_text_is_classified() {
        assert!(
            matches!(classify(" ub00073-261123-0001 "), SearchText::Code(c) if c == "UB00073-261123-0001")
        );
        assert!(matches!(
            classify("001090012345"),
            SearchText::NationalId(_)
        ));
        assert!(
            matches!(classify("001 090 012 345"), SearchText::NationalId(n) if n == "001090012345")
        );
        assert!(
            matches!(classify("Nguyễn Văn An"), SearchText::Name(q) if q.driver == "nguyen van an")
        );
        assert!(matches!(classify("12345"), SearchText::Name(_)));
        assert_eq!(classify(" -- "), SearchText::Nothing);
    }

    #[test]
    fn placeholders_follow_the_dialect() {
        let q = DossierQuery {
            agency: Some(AgencyCode::parse("UB00073").expect("agency")),
            text: Some("le thi thu ha".into()),
            limit: 10,
            ..Default::default()
        };
        let pg = find_dossiers(&q, Dialect::Postgres);
        assert!(
            pg.sql.contains("t.agency_code = $1") && pg.sql.contains("o.term = $3"),
            "{}",
            pg.sql
        );
        assert_eq!(pg.args.len(), 3);
        let lite = find_dossiers(&q, Dialect::Sqlite);
        assert_eq!(lite.sql.matches('?').count(), 3);
        assert!(lite.keeps("Lê Thị Thu Hà") && !lite.keeps("Lê Thị Thu Hằng"));
    }

    #[test]
    fn a_name_search_can_list_its_ids_from_the_postings_alone() {
        let mut q = DossierQuery {
            agency: Some(AgencyCode::parse("UB00073").expect("agency")),
            text: Some("Nguyễn Văn An".into()),
            limit: 50,
            ..Default::default()
        };
        let f = find_dossiers(&q, Dialect::Postgres);
        assert!(f.ids_first);
        let ids = f.sql;
        assert!(
            ids.starts_with("SELECT t.dossier_id FROM dossier_terms t")
                && !ids.contains("dossiers d")
                && ids.ends_with("ORDER BY t.dossier_id DESC LIMIT 50"),
            "{ids}"
        );
        // A filter on the dossier's own columns needs its row.
        q.statuses = vec![motcua_domain::dossier::Status::Processing];
        let f = find_dossiers(&q, Dialect::Postgres);
        assert!(f.ids_first);
        let ids = f.sql;
        assert!(
            ids.contains("JOIN dossiers d") && ids.contains("d.status IN ($3)"),
            "{ids}"
        );
        assert_eq!(f.args.len(), 3);
        // Codes, numbers and lists without text read the rows at once.
        q.text = Some("001090012345".into());
        assert!(!find_dossiers(&q, Dialect::Postgres).ids_first);
        q.text = None;
        assert!(!find_dossiers(&q, Dialect::Postgres).ids_first);
    }
}

//! Dossiers: codes, rows, documents, search terms, lists and counts.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use motcua_domain::dossier::{Lifecycle, Role, Status};
use motcua_domain::{AgencyCode, DossierCode};

use super::audit::{AuditSigner, append_audit};
use super::{Arg, Backend, Conn, SqlStore, args, marks, ms, rows};
use crate::query::{self, FindSql};
use crate::{
    Dossier, DossierQuery, DossierStore, DossierSummary, DossierUpdate, NewDossier, QueueCount,
    StoreError, StoreResult, StoredDocument, vietnam_day,
};

fn json_text<T: serde::Serialize>(v: &T) -> StoreResult<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Invalid(format!("not JSON: {e}")))
}

/// The payload of a dossier's outbox event.
fn event_payload(
    code: &DossierCode,
    agency: &AgencyCode,
    from: Option<Status>,
    lifecycle: &Lifecycle,
    at: DateTime<Utc>,
) -> serde_json::Value {
    serde_json::json!({
        "code": code.as_str(),
        "agency": agency.as_str(),
        "from": from.map(|s| s.as_str()),
        "status": lifecycle.status.as_str(),
        "due_at": lifecycle.due_at,
        "at": at,
    })
}

pub(super) async fn outbox(
    c: &mut dyn Conn,
    topic: &str,
    payload: &serde_json::Value,
    at: DateTime<Utc>,
) -> StoreResult<()> {
    c.exec(
        "INSERT INTO outbox (topic, payload, created_at) VALUES ($1, $2, $3)",
        args![topic, payload.to_string(), at],
    )
    .await?;
    Ok(())
}

async fn insert_documents(
    c: &mut dyn Conn,
    dossier_id: i64,
    first: i64,
    docs: &[StoredDocument],
) -> StoreResult<()> {
    for (i, d) in docs.iter().enumerate() {
        c.exec(
            "INSERT INTO dossier_documents (dossier_id, position, document_id, filename, content_type, size, sha256, uploaded_at, stage) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)",
            args![
                dossier_id,
                first + i as i64,
                &d.document_id,
                &d.filename,
                &d.content_type,
                i64::try_from(d.size).unwrap_or(i64::MAX),
                &d.sha256,
                d.uploaded_at,
                &d.stage,
            ],
        )
        .await?;
    }
    Ok(())
}

/// Writes the search terms of dossiers: (agency, applicant name, id).
pub async fn insert_terms(c: &mut dyn Conn, dossiers: &[(String, String, i64)]) -> StoreResult<()> {
    let rows: Vec<(String, String, i64)> = dossiers
        .iter()
        .flat_map(|(agency, name, id)| query::terms_of(agency, name, *id))
        .collect();
    append_terms(c, rows.iter().map(|(a, t, i)| (a.as_str(), t.as_str(), *i))).await
}

/// Appends (agency, term, dossier id) rows; existing ones are skipped.
pub async fn append_terms<'a>(
    c: &mut dyn Conn,
    terms: impl Iterator<Item = (&'a str, &'a str, i64)>,
) -> StoreResult<()> {
    let terms: Vec<_> = terms.collect();
    for chunk in terms.chunks(5000) {
        let values: Vec<String> = (0..chunk.len())
            .map(|i| format!("(${}, ${}, ${})", 3 * i + 1, 3 * i + 2, 3 * i + 3))
            .collect();
        let sql = format!(
            "INSERT INTO dossier_terms (agency_code, term, dossier_id) VALUES {} ON CONFLICT DO NOTHING",
            values.join(", ")
        );
        let mut a = Vec::with_capacity(chunk.len() * 3);
        for (agency, term, id) in chunk {
            a.extend(args![*agency, *term, *id]);
        }
        c.exec(&sql, a).await?;
    }
    Ok(())
}

/// Writes one new dossier inside the caller's transaction: the next code
/// of its agency for the day, its rows, terms, audit record and outbox
/// event.
pub async fn insert_dossier(
    c: &mut dyn Conn,
    signer: &AuditSigner,
    d: NewDossier,
) -> StoreResult<Dossier> {
    let day = vietnam_day(d.submitted_at);
    // The sequence row stays locked until commit (PostgreSQL; SQLite has
    // one writer): gap-free per agency per day; a rollback gives the
    // number back.
    let seq = c
        .int(
            "INSERT INTO dossier_seq (agency_code, day, last) VALUES ($1, $2, 1) ON CONFLICT (agency_code, day) DO UPDATE SET last = dossier_seq.last + 1 RETURNING last",
            args![d.agency_code.as_str(), day.format("%Y-%m-%d").to_string()],
        )
        .await?
        .ok_or(StoreError::NotFound)?;
    let code = DossierCode::new(
        &d.agency_code,
        day,
        u32::try_from(seq).map_err(|_| StoreError::Invalid("too many dossiers in a day".into()))?,
    );
    let id = c
        .int(
            "INSERT INTO dossiers (code, procedure_code, procedure_version, agency_code, unit_code, channel, applicant_user_id, applicant_name, applicant_national_id, applicant_phone, applicant_email, fields, submitted_at, status, holder, due_at, appointment_at, lifecycle, version, updated_at, access_code) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,1,$19,$20) RETURNING id",
            args![
                code.as_str(),
                &d.procedure_code,
                i64::from(d.procedure_version),
                d.agency_code.as_str(),
                d.unit_code.as_str(),
                d.channel.as_str(),
                d.applicant.user_id,
                &d.applicant.full_name,
                &d.applicant.national_id,
                &d.applicant.phone,
                &d.applicant.email,
                json_text(&d.fields)?,
                d.submitted_at,
                d.lifecycle.status.as_str(),
                d.lifecycle.holder().map(|r| r.as_str()),
                d.lifecycle.due_at,
                d.lifecycle.appointment_at,
                json_text(&d.lifecycle)?,
                d.submitted_at,
                &d.access_code,
            ],
        )
        .await?
        .ok_or(StoreError::NotFound)?;
    insert_documents(c, id, 0, &d.documents).await?;
    insert_terms(
        c,
        &[(
            d.agency_code.as_str().to_string(),
            d.applicant.full_name.clone(),
            id,
        )],
    )
    .await?;
    let mut entry = d.audit;
    entry.dossier_code = Some(code.as_str().to_string());
    let rec = append_audit(c, signer, entry).await?;
    set_audit_seq(c, id, rec.seq).await?;
    let payload = event_payload(&code, &d.agency_code, None, &d.lifecycle, d.submitted_at);
    outbox(c, &d.event, &payload, d.submitted_at).await?;
    Ok(Dossier {
        id,
        code,
        procedure_code: d.procedure_code,
        procedure_version: d.procedure_version,
        agency_code: d.agency_code,
        unit_code: d.unit_code,
        channel: d.channel,
        applicant: d.applicant,
        fields: d.fields,
        documents: d.documents,
        submitted_at: d.submitted_at,
        lifecycle: d.lifecycle,
        version: 1,
        updated_at: d.submitted_at,
        access_code: d.access_code,
    })
}

/// Names the audit record that set the dossier's current status.
async fn set_audit_seq(c: &mut dyn Conn, id: i64, seq: i64) -> StoreResult<()> {
    c.exec(
        "UPDATE dossiers SET audit_seq = $1 WHERE id = $2",
        args![seq, id],
    )
    .await?;
    Ok(())
}

async fn documents(c: &mut dyn Conn, dossier_id: i64) -> StoreResult<Vec<StoredDocument>> {
    let rows = c
        .fetch(
            "SELECT document_id, filename, content_type, size, sha256, uploaded_at, stage FROM dossier_documents WHERE dossier_id = $1 ORDER BY position",
            args![dossier_id],
        )
        .await?;
    rows::all(rows, rows::document)
}

pub(super) async fn by_code(c: &mut dyn Conn, code: &DossierCode) -> StoreResult<Option<Dossier>> {
    let row = c
        .first(
            "SELECT * FROM dossiers WHERE code = $1",
            args![code.as_str()],
        )
        .await?;
    let Some(mut d) = rows::first(row, rows::dossier)? else {
        return Ok(None);
    };
    d.documents = documents(c, d.id).await?;
    Ok(Some(d))
}

/// Writes a decided change if the dossier is still at its expected
/// version; returns the dossier as written.
pub(super) async fn update(
    c: &mut dyn Conn,
    signer: &AuditSigner,
    u: DossierUpdate,
) -> StoreResult<Dossier> {
    let row = c
        .first(
            "UPDATE dossiers SET status = $1, holder = $2, due_at = $3, appointment_at = $4, lifecycle = $5, version = version + 1, updated_at = $6 WHERE code = $7 AND version = $8 RETURNING id, agency_code",
            args![
                u.lifecycle.status.as_str(),
                u.lifecycle.holder().map(|r| r.as_str()),
                u.lifecycle.due_at,
                u.lifecycle.appointment_at,
                json_text(&u.lifecycle)?,
                u.at,
                u.code.as_str(),
                u.expected_version,
            ],
        )
        .await?;
    let Some(row) = row else {
        let exists = c
            .int(
                "SELECT id FROM dossiers WHERE code = $1",
                args![u.code.as_str()],
            )
            .await?;
        return Err(if exists.is_some() {
            StoreError::Conflict
        } else {
            StoreError::NotFound
        });
    };
    let id = row.int("id")?;
    let agency = row.parsed("agency_code", AgencyCode::parse)?;
    if !u.new_documents.is_empty() {
        // The dossier row is locked by the update above: no one else adds
        // documents to it until commit.
        let next = c
            .int(
                "SELECT COALESCE(MAX(position) + 1, 0) FROM dossier_documents WHERE dossier_id = $1",
                args![id],
            )
            .await?
            .unwrap_or(0);
        insert_documents(c, id, next, &u.new_documents).await?;
    }
    let from = u.audit.from_status.as_deref().and_then(Status::parse);
    let rec = append_audit(c, signer, u.audit).await?;
    set_audit_seq(c, id, rec.seq).await?;
    let payload = event_payload(&u.code, &agency, from, &u.lifecycle, u.at);
    outbox(c, &u.event, &payload, u.at).await?;
    by_code(c, &u.code).await?.ok_or(StoreError::NotFound)
}

/// Runs a list query other than a name search.
pub(super) async fn find_rows(c: &mut dyn Conn, f: &FindSql) -> StoreResult<Vec<DossierSummary>> {
    let rows = c.fetch(&f.sql, f.args.clone()).await?;
    rows::all(rows, rows::summary)
}

/// The ids of a name search, newest first.
pub(super) async fn find_ids(c: &mut dyn Conn, f: &FindSql) -> StoreResult<Vec<i64>> {
    c.fetch(&f.sql, f.args.clone())
        .await?
        .iter()
        .map(|r| r.cell(0)?.int().ok_or(StoreError::NotFound))
        .collect()
}

/// The summary rows, with `id` first, of a chunk of `n` dossier ids.
pub(super) fn rows_by_id_sql(n: usize) -> String {
    format!(
        "SELECT d.id, {} FROM dossiers d WHERE d.id IN ({})",
        query::SUMMARY_COLUMNS
            .iter()
            .map(|c| format!("d.{c}"))
            .collect::<Vec<_>>()
            .join(", "),
        marks(1, n.max(1))
    )
}

/// The summary rows of a chunk of dossier ids, each with its id.
pub(super) async fn rows_by_id(
    c: &mut dyn Conn,
    ids: Vec<i64>,
) -> StoreResult<Vec<(i64, DossierSummary)>> {
    let sql = rows_by_id_sql(ids.len());
    let a: Vec<Arg> = if ids.is_empty() {
        vec![Arg::Int(0)]
    } else {
        ids.into_iter().map(Arg::Int).collect()
    };
    c.fetch(&sql, a)
        .await?
        .iter()
        .map(|r| Ok((r.int("id")?, rows::summary(r)?)))
        .collect()
}

pub(super) async fn queue_counts(
    c: &mut dyn Conn,
    agency: &AgencyCode,
    holders: &[Role],
    now: DateTime<Utc>,
    soon: DateTime<Utc>,
) -> StoreResult<Vec<QueueCount>> {
    if holders.is_empty() {
        return Ok(Vec::new());
    }
    let dialect = c.dialect();
    let (sql, a) = query::queue_counts(agency.as_str(), holders, ms(now), ms(soon), dialect);
    c.fetch(&sql, a)
        .await?
        .iter()
        .map(|r| {
            QueueCount::from_row(
                &r.text("holder")?,
                &r.text("status")?,
                r.int("n")?,
                r.opt_int("overdue")?,
                r.opt_int("soon")?,
            )
        })
        .collect()
}

pub(super) async fn count_by_status(
    c: &mut dyn Conn,
) -> StoreResult<std::collections::BTreeMap<String, u64>> {
    c.fetch(
        "SELECT status, COUNT(*) AS n FROM dossiers GROUP BY status",
        vec![],
    )
    .await?
    .iter()
    .map(|r| Ok((r.text("status")?, r.count("n")?)))
    .collect()
}

pub(super) async fn referenced_objects(c: &mut dyn Conn) -> StoreResult<Vec<String>> {
    c.fetch("SELECT DISTINCT sha256 FROM dossier_documents", vec![])
        .await?
        .iter()
        .map(|r| r.text("sha256"))
        .collect()
}

impl<B: Backend> SqlStore<B> {
    /// The rows of a name search: the matching ids first (from the
    /// postings), then the rows by id in up to [`query::ROW_READERS`]
    /// chunks read side by side on separate connections, newest first.
    async fn name_search_rows(&self, f: &FindSql) -> StoreResult<Vec<DossierSummary>> {
        let ids = find_ids(self.read().await?.as_mut(), f).await?;
        query::read_side_by_side(&ids, |chunk| {
            let backend = self.backend.clone();
            async move {
                let mut c = backend.read().await?;
                rows_by_id(c.as_mut(), chunk).await
            }
        })
        .await
    }
}

#[async_trait]
impl<B: Backend> DossierStore for SqlStore<B> {
    async fn create_dossier(&self, d: NewDossier) -> StoreResult<Dossier> {
        self.backend.create_dossier(d, self.signer.clone()).await
    }

    async fn dossier(&self, code: &DossierCode) -> StoreResult<Option<Dossier>> {
        by_code(self.read().await?.as_mut(), code).await
    }

    async fn update_dossier(&self, u: DossierUpdate) -> StoreResult<Dossier> {
        let mut tx = self.begin().await?;
        let d = update(tx.conn(), &self.signer, u).await?;
        tx.commit().await?;
        Ok(d)
    }

    async fn find_dossiers(&self, q: &DossierQuery) -> StoreResult<Vec<DossierSummary>> {
        let f = query::find_dossiers(q, self.backend.dialect());
        let summaries = if f.ids_first {
            self.name_search_rows(&f).await?
        } else {
            find_rows(self.read().await?.as_mut(), &f).await?
        };
        Ok(f.kept(summaries))
    }

    async fn queue_counts(
        &self,
        agency: &AgencyCode,
        holders: &[Role],
        now: DateTime<Utc>,
        soon: DateTime<Utc>,
    ) -> StoreResult<Vec<QueueCount>> {
        queue_counts(self.read().await?.as_mut(), agency, holders, now, soon).await
    }

    async fn count_by_status(&self) -> StoreResult<BTreeMap<String, u64>> {
        count_by_status(self.read().await?.as_mut()).await
    }

    async fn referenced_objects(&self) -> StoreResult<Vec<String>> {
        referenced_objects(self.read().await?.as_mut()).await
    }
}

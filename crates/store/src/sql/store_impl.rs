//! [`Store`] on any [`Backend`]: one transaction per command.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use motcua_domain::audit::{AuditEntry, AuditRecord};
use motcua_domain::dossier::Role;
use motcua_domain::procedure::Procedure;
use motcua_domain::units::{AdminUnit, Agency, AgencyKind};
use motcua_domain::{AgencyCode, DossierCode, UnitCode};

use super::accounts::{self, UserKey};
use super::{
    Arg, Backend, Dialect, SqlStore, Tx, audit, dossiers, meta, outbox, procedures, pubsub,
    reference, tables,
};
use crate::bulk::{Cell, ExplainTarget, TableRows};
use crate::query::{self, FindSql};
use crate::{
    AttemptResult, Availability, Delivery, DeliveryQuery, Dossier, DossierQuery, DossierSummary,
    DossierUpdate, ImportOutcome, LateDossier, LinkReview, NewDossier, NewPubEvent,
    NewSubscription, NewUser, OutboxEvent, PubEvent, QueueCount, StateProblem, Store, StoreError,
    StoreResult, StoredProcedure, Subscription, ThrottleState, User, Verification,
};

impl<B: Backend> SqlStore<B> {
    /// Appends `entry` to the audit chain in `tx` and commits: the change
    /// and its record, or neither.
    async fn finish(&self, mut tx: Box<dyn Tx>, entry: AuditEntry) -> StoreResult<()> {
        audit::append_audit(tx.conn(), &self.signer, entry).await?;
        tx.commit().await
    }

    /// The rows of a name search: the matching ids first (from the
    /// postings), then the rows by id in up to [`query::ROW_READERS`]
    /// chunks read side by side on separate connections, newest first.
    async fn name_search_rows(&self, f: &FindSql) -> StoreResult<Vec<DossierSummary>> {
        let ids = dossiers::find_ids(self.read().await?.as_mut(), f).await?;
        query::read_side_by_side(&ids, |chunk| {
            let backend = self.backend.clone();
            async move {
                let mut c = backend.read().await?;
                dossiers::rows_by_id(c.as_mut(), chunk).await
            }
        })
        .await
    }

    /// The plan of one statement, one line per step.
    async fn explain_one(&self, sql: &str, args: Vec<Arg>) -> StoreResult<String> {
        let mut c = self.read().await?;
        let (prefix, column) = match c.dialect() {
            Dialect::Sqlite => ("EXPLAIN QUERY PLAN", "detail"),
            Dialect::Postgres => ("EXPLAIN", "QUERY PLAN"),
        };
        let rows = c.fetch(&format!("{prefix} {sql}"), args).await?;
        let mut out = String::new();
        for r in rows {
            out.push_str(&r.text(column)?);
            out.push('\n');
        }
        Ok(out)
    }
}

#[async_trait]
impl<B: Backend> Store for SqlStore<B> {
    async fn migrate(&self) -> StoreResult<usize> {
        self.backend.migrate().await
    }

    async fn ping(&self) -> StoreResult<()> {
        self.read().await?.exec("SELECT 1", vec![]).await?;
        Ok(())
    }

    async fn load_units(&self, units: &[AdminUnit], entry: AuditEntry) -> StoreResult<usize> {
        let mut tx = self.begin().await?;
        reference::upsert_units(tx.conn(), units).await?;
        self.finish(tx, entry).await?;
        Ok(units.len())
    }

    async fn load_units_if_empty(
        &self,
        units: &[AdminUnit],
        entry: AuditEntry,
    ) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        reference::setup_lock(tx.conn()).await?;
        let (provinces, _) = reference::count_units(tx.conn()).await?;
        if provinces > 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        reference::upsert_units(tx.conn(), units).await?;
        self.finish(tx, entry).await?;
        Ok(true)
    }

    async fn unit(&self, code: &UnitCode) -> StoreResult<Option<AdminUnit>> {
        reference::unit(self.read().await?.as_mut(), code).await
    }

    async fn units(&self) -> StoreResult<Vec<AdminUnit>> {
        reference::units(self.read().await?.as_mut()).await
    }

    async fn count_units(&self) -> StoreResult<(u64, u64)> {
        reference::count_units(self.read().await?.as_mut()).await
    }

    async fn put_agency(&self, a: &Agency, entry: AuditEntry) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        reference::put_agency(tx.conn(), a).await?;
        self.finish(tx, entry).await
    }

    async fn agency(&self, code: &AgencyCode) -> StoreResult<Option<Agency>> {
        reference::agency(self.read().await?.as_mut(), code).await
    }

    async fn agencies(&self) -> StoreResult<Vec<Agency>> {
        reference::agencies(self.read().await?.as_mut()).await
    }

    async fn agency_for(&self, kind: AgencyKind, unit: &UnitCode) -> StoreResult<Option<Agency>> {
        reference::agency_for(self.read().await?.as_mut(), kind, unit).await
    }

    async fn create_user(&self, u: &NewUser, entry: AuditEntry) -> StoreResult<User> {
        let at = entry.at;
        let mut tx = self.begin().await?;
        let id = accounts::insert_user(tx.conn(), u, at).await?;
        audit::append_audit(tx.conn(), &self.signer, entry).await?;
        let user = accounts::user_where(tx.conn(), UserKey::Id, id.into()).await?;
        tx.commit().await?;
        user.ok_or(StoreError::NotFound)
    }

    async fn user_by_name(&self, username: &str) -> StoreResult<Option<User>> {
        accounts::user_where(self.read().await?.as_mut(), UserKey::Name, username.into()).await
    }

    async fn user(&self, id: i64) -> StoreResult<Option<User>> {
        accounts::user_where(self.read().await?.as_mut(), UserKey::Id, id.into()).await
    }

    async fn user_by_national_id(&self, national_id: &str) -> StoreResult<Option<User>> {
        accounts::user_where(
            self.read().await?.as_mut(),
            UserKey::NationalId,
            national_id.into(),
        )
        .await
    }

    async fn users(&self) -> StoreResult<Vec<User>> {
        accounts::users(self.read().await?.as_mut()).await
    }

    async fn user_by_verified_national_id(&self, national_id: &str) -> StoreResult<Option<User>> {
        accounts::user_by_verified_national_id(self.read().await?.as_mut(), national_id).await
    }

    async fn verify_national_id(
        &self,
        user_id: i64,
        national_id: &str,
        v: &Verification,
        entry: AuditEntry,
    ) -> StoreResult<Vec<DossierCode>> {
        let mut tx = self.begin().await?;
        let linked = accounts::verify_national_id(tx.conn(), user_id, national_id, v).await?;
        self.finish(tx, entry).await?;
        Ok(linked)
    }

    async fn link_reviews(&self, open_only: bool) -> StoreResult<Vec<LinkReview>> {
        accounts::link_reviews(self.read().await?.as_mut(), open_only).await
    }

    async fn resolve_link_review(
        &self,
        id: i64,
        keep: bool,
        by: &str,
        at: DateTime<Utc>,
        entry: AuditEntry,
    ) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        accounts::resolve_link_review(tx.conn(), id, keep, by, at).await?;
        self.finish(tx, entry).await
    }

    async fn throttle_read(&self, keys: &[String]) -> StoreResult<Vec<ThrottleState>> {
        accounts::throttle_read(self.read().await?.as_mut(), keys).await
    }

    async fn throttle_hit(
        &self,
        keys: &[String],
        now: DateTime<Utc>,
        window: chrono::Duration,
    ) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        for k in keys {
            accounts::throttle_hit(tx.conn(), k, now, window).await?;
        }
        tx.commit().await
    }

    async fn throttle_clear(&self, keys: &[String], idle_before: DateTime<Utc>) -> StoreResult<()> {
        accounts::throttle_clear(self.write().await?.as_mut(), keys, idle_before).await
    }

    async fn set_user_disabled(
        &self,
        id: i64,
        disabled: bool,
        entry: AuditEntry,
    ) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        accounts::set_user(tx.conn(), id, "disabled", disabled.into()).await?;
        if disabled {
            accounts::revoke_tokens_of(tx.conn(), id).await?;
        }
        self.finish(tx, entry).await
    }

    async fn set_password(
        &self,
        id: i64,
        password_hash: &str,
        entry: AuditEntry,
    ) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        accounts::set_user(tx.conn(), id, "password_hash", password_hash.into()).await?;
        accounts::revoke_tokens_of(tx.conn(), id).await?;
        self.finish(tx, entry).await
    }

    async fn create_token(
        &self,
        token_hash: &str,
        user_id: i64,
        expires_at: DateTime<Utc>,
    ) -> StoreResult<()> {
        accounts::create_token(
            self.write().await?.as_mut(),
            token_hash,
            user_id,
            Utc::now(),
            expires_at,
        )
        .await
    }

    async fn token_user(&self, token_hash: &str, now: DateTime<Utc>) -> StoreResult<Option<User>> {
        accounts::token_user(self.read().await?.as_mut(), token_hash, now).await
    }

    async fn revoke_token(&self, token_hash: &str) -> StoreResult<bool> {
        accounts::revoke_token(self.write().await?.as_mut(), token_hash).await
    }

    async fn revoke_user_tokens(&self, user_id: i64) -> StoreResult<u64> {
        accounts::revoke_tokens_of(self.write().await?.as_mut(), user_id).await
    }

    async fn put_procedure(&self, p: &Procedure, entry: AuditEntry) -> StoreResult<ImportOutcome> {
        let mut tx = self.begin().await?;
        let outcome = procedures::put(tx.conn(), p, None, entry.at).await?;
        if outcome == ImportOutcome::Unchanged {
            tx.rollback().await?;
            return Ok(outcome);
        }
        self.finish(tx, entry).await?;
        Ok(outcome)
    }

    async fn put_province_procedure(
        &self,
        p: &Procedure,
        province: &UnitCode,
        entry: AuditEntry,
    ) -> StoreResult<ImportOutcome> {
        let mut tx = self.begin().await?;
        let outcome = procedures::put(tx.conn(), p, Some(province), entry.at).await?;
        if outcome == ImportOutcome::Unchanged {
            tx.rollback().await?;
            return Ok(outcome);
        }
        self.finish(tx, entry).await?;
        Ok(outcome)
    }

    async fn set_availability(
        &self,
        unit: &UnitCode,
        procedure_code: &str,
        available: Option<bool>,
        by: &str,
        at: DateTime<Utc>,
        entry: AuditEntry,
    ) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        procedures::set_availability(tx.conn(), unit, procedure_code, available, by, at).await?;
        self.finish(tx, entry).await
    }

    async fn availability(
        &self,
        procedure_code: &str,
        units: &[UnitCode],
    ) -> StoreResult<Vec<Availability>> {
        procedures::availability(self.read().await?.as_mut(), Some(procedure_code), units).await
    }

    async fn availability_in(&self, units: &[UnitCode]) -> StoreResult<Vec<Availability>> {
        procedures::availability(self.read().await?.as_mut(), None, units).await
    }

    async fn procedure(&self, code: &str, version: u32) -> StoreResult<Option<StoredProcedure>> {
        procedures::version(self.read().await?.as_mut(), code, version).await
    }

    async fn current_procedure(&self, code: &str) -> StoreResult<Option<StoredProcedure>> {
        procedures::current(self.read().await?.as_mut(), code).await
    }

    async fn current_procedures(&self) -> StoreResult<Vec<StoredProcedure>> {
        procedures::all_current(self.read().await?.as_mut()).await
    }

    async fn procedure_versions(&self, code: &str) -> StoreResult<Vec<StoredProcedure>> {
        procedures::versions(self.read().await?.as_mut(), code).await
    }

    async fn set_procedure_enabled(
        &self,
        code: &str,
        version: u32,
        enabled: bool,
        entry: AuditEntry,
    ) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        procedures::set_enabled(tx.conn(), code, version, enabled).await?;
        self.finish(tx, entry).await
    }

    async fn create_dossier(&self, d: NewDossier) -> StoreResult<Dossier> {
        self.backend.create_dossier(d, self.signer.clone()).await
    }

    async fn dossier(&self, code: &DossierCode) -> StoreResult<Option<Dossier>> {
        dossiers::by_code(self.read().await?.as_mut(), code).await
    }

    async fn update_dossier(&self, u: DossierUpdate) -> StoreResult<Dossier> {
        let mut tx = self.begin().await?;
        let d = dossiers::update(tx.conn(), &self.signer, u).await?;
        tx.commit().await?;
        Ok(d)
    }

    async fn find_dossiers(&self, q: &DossierQuery) -> StoreResult<Vec<DossierSummary>> {
        let f = query::find_dossiers(q, self.backend.dialect());
        let summaries = if f.ids_first {
            self.name_search_rows(&f).await?
        } else {
            dossiers::find_rows(self.read().await?.as_mut(), &f).await?
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
        dossiers::queue_counts(self.read().await?.as_mut(), agency, holders, now, soon).await
    }

    async fn count_by_status(&self) -> StoreResult<BTreeMap<String, u64>> {
        dossiers::count_by_status(self.read().await?.as_mut()).await
    }

    async fn referenced_objects(&self) -> StoreResult<Vec<String>> {
        dossiers::referenced_objects(self.read().await?.as_mut()).await
    }

    async fn append_audit(&self, entry: AuditEntry) -> StoreResult<AuditRecord> {
        let mut tx = self.begin().await?;
        let rec = audit::append_audit(tx.conn(), &self.signer, entry).await?;
        tx.commit().await?;
        Ok(rec)
    }

    async fn audit_records(&self, after: i64, limit: u32) -> StoreResult<Vec<AuditRecord>> {
        audit::records(self.read().await?.as_mut(), after, limit).await
    }

    async fn dossier_audit(&self, code: &DossierCode) -> StoreResult<Vec<AuditRecord>> {
        audit::of_dossier(self.read().await?.as_mut(), code).await
    }

    async fn audit_record(&self, seq: i64) -> StoreResult<Option<AuditRecord>> {
        audit::record(self.read().await?.as_mut(), seq).await
    }

    async fn audit_head(&self) -> StoreResult<Option<(i64, String)>> {
        audit::head(self.read().await?.as_mut()).await
    }

    async fn sign_audit_head(&self) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        audit::lock(tx.conn()).await?;
        audit::checkpoint_head(tx.conn(), &self.signer).await?;
        tx.commit().await
    }

    async fn audit_checkpoint(&self) -> StoreResult<Option<motcua_domain::audit::Checkpoint>> {
        audit::checkpoint(self.read().await?.as_mut()).await
    }

    async fn dossier_state_problems(&self, limit: u32) -> StoreResult<Vec<StateProblem>> {
        dossiers::state_problems(self.read().await?.as_mut(), limit).await
    }

    async fn claim_events(&self, limit: u32) -> StoreResult<Vec<OutboxEvent>> {
        outbox::claim(self.write().await?.as_mut(), Utc::now(), limit).await
    }

    async fn complete_event(&self, id: i64) -> StoreResult<bool> {
        Ok(outbox::complete(self.write().await?.as_mut(), &[id], Utc::now()).await? == 1)
    }

    async fn complete_events(&self, ids: &[i64]) -> StoreResult<u64> {
        outbox::complete(self.write().await?.as_mut(), ids, Utc::now()).await
    }

    async fn pending_events(&self) -> StoreResult<u64> {
        outbox::pending(self.read().await?.as_mut()).await
    }

    async fn meta(&self, key: &str) -> StoreResult<Option<String>> {
        meta::get(self.read().await?.as_mut(), key).await
    }

    async fn set_meta(&self, key: &str, value: &str) -> StoreResult<()> {
        meta::put(self.write().await?.as_mut(), key, value).await
    }

    async fn set_meta_audited(&self, key: &str, value: &str, entry: AuditEntry) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        meta::put(tx.conn(), key, value).await?;
        self.finish(tx, entry).await
    }

    async fn set_meta_if(
        &self,
        key: &str,
        expected: Option<&str>,
        value: &str,
        entry: AuditEntry,
    ) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        if !meta::put_if(tx.conn(), key, expected, value).await? {
            tx.rollback().await?;
            return Ok(false);
        }
        self.finish(tx, entry).await?;
        Ok(true)
    }

    async fn bulk_count(&self, table: &str) -> StoreResult<u64> {
        tables::count(self.read().await?.as_mut(), table).await
    }

    async fn bulk_export(
        &self,
        table: &str,
        after: Option<&[Cell]>,
        limit: u32,
    ) -> StoreResult<Vec<Vec<Cell>>> {
        tables::export(self.read().await?.as_mut(), table, after, limit).await
    }

    async fn bulk_last(&self, table: &str) -> StoreResult<Option<Vec<Cell>>> {
        tables::last(self.read().await?.as_mut(), table).await
    }

    async fn bulk_import(&self, parts: &[TableRows]) -> StoreResult<u64> {
        self.backend.bulk_import(parts, self.signer.clone()).await
    }

    async fn bulk_clear(&self) -> StoreResult<()> {
        self.backend.bulk_clear().await
    }

    async fn bulk_defer_indexes(&self) -> StoreResult<usize> {
        self.backend.bulk_defer_indexes().await
    }

    async fn bulk_restore_indexes(&self) -> StoreResult<()> {
        self.backend.bulk_restore_indexes().await
    }

    async fn explain(&self, target: &ExplainTarget) -> StoreResult<String> {
        match target {
            ExplainTarget::Find(q) => {
                let f = query::find_dossiers(q, self.backend.dialect());
                // A name search runs in two statements: both plans, the
                // second for one reader's chunk of ids.
                if f.ids_first {
                    let ids = self.explain_one(&f.sql, f.args).await?;
                    let chunk: Vec<Arg> = (1..=13).map(Arg::Int).collect();
                    let sql = dossiers::rows_by_id_sql(chunk.len());
                    let rows = self.explain_one(&sql, chunk).await?;
                    return Ok(format!("{ids}{rows}"));
                }
                self.explain_one(&f.sql, f.args).await
            }
            ExplainTarget::Dossier(code) => {
                self.explain_one(
                    "SELECT * FROM dossiers WHERE code = $1",
                    vec![Arg::Text(code.as_str().to_string())],
                )
                .await
            }
        }
    }

    async fn publish_event(&self, event: &NewPubEvent) -> StoreResult<Option<PubEvent>> {
        let mut tx = self.begin().await?;
        let e = pubsub::publish(tx.conn(), event).await?;
        tx.commit().await?;
        Ok(e)
    }

    async fn create_subscription(
        &self,
        sub: &NewSubscription,
        entry: AuditEntry,
    ) -> StoreResult<Subscription> {
        let mut tx = self.begin().await?;
        let s = pubsub::subscribe(tx.conn(), sub).await?;
        self.finish(tx, entry).await?;
        Ok(s)
    }

    async fn delete_subscription(
        &self,
        id: i64,
        at: DateTime<Utc>,
        entry: AuditEntry,
    ) -> StoreResult<Subscription> {
        let mut tx = self.begin().await?;
        let s = pubsub::unsubscribe(tx.conn(), id, at).await?;
        self.finish(tx, entry).await?;
        Ok(s)
    }

    async fn subscriptions(&self) -> StoreResult<Vec<Subscription>> {
        pubsub::subscriptions(self.read().await?.as_mut()).await
    }

    async fn claim_push_deliveries(
        &self,
        now: DateTime<Utc>,
        lease: chrono::Duration,
        limit: u32,
    ) -> StoreResult<Vec<Delivery>> {
        pubsub::claim_push(self.write().await?.as_mut(), now, lease, limit).await
    }

    async fn finish_push_delivery(
        &self,
        id: i64,
        result: &AttemptResult,
        at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        pubsub::finish_push(self.write().await?.as_mut(), id, result, at).await
    }

    async fn pull_deliveries(&self, client: &str, limit: u32) -> StoreResult<Vec<Delivery>> {
        pubsub::pull(self.read().await?.as_mut(), client, limit).await
    }

    async fn ack_deliveries(
        &self,
        client: &str,
        event_ids: &[String],
        at: DateTime<Utc>,
    ) -> StoreResult<Vec<String>> {
        pubsub::ack(self.write().await?.as_mut(), client, event_ids, at).await
    }

    async fn deliveries(&self, q: &DeliveryQuery) -> StoreResult<Vec<Delivery>> {
        pubsub::deliveries(self.read().await?.as_mut(), q).await
    }

    async fn late_dossiers(
        &self,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<LateDossier>> {
        dossiers::late(self.read().await?.as_mut(), since, now, limit).await
    }
}

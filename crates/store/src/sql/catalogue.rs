//! [`CatalogueStore`] on any [`Backend`]: the reference data of
//! `reference.rs` and the procedures of `procedures.rs`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use motcua_domain::audit::AuditEntry;
use motcua_domain::procedure::Procedure;
use motcua_domain::units::{AdminUnit, Agency, AgencyKind};
use motcua_domain::{AgencyCode, UnitCode};

use super::{Backend, SqlStore, procedures, reference};
use crate::{Availability, CatalogueStore, ImportOutcome, StoreResult, StoredProcedure};

#[async_trait]
impl<B: Backend> CatalogueStore for SqlStore<B> {
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
}

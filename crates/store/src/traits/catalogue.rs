//! The catalogue: reference data (administrative units and agencies) and
//! the procedures filed against it, their versions and their availability
//! per unit.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use motcua_domain::audit::AuditEntry;
use motcua_domain::procedure::Procedure;
use motcua_domain::units::{AdminUnit, Agency, AgencyKind};
use motcua_domain::{AgencyCode, UnitCode};
use serde::Serialize;

use crate::StoreResult;

/// Units, agencies, procedures and their availability (SQL:
/// `sql/reference.rs` and `sql/procedures.rs`, the trait in
/// `sql/catalogue.rs`; stories: `conformance/catalogue.rs`).
#[async_trait]
pub trait CatalogueStore: Send + Sync {
    async fn load_units(&self, units: &[AdminUnit], audit: AuditEntry) -> StoreResult<usize>;
    /// Loads `units` if the database has no province yet; nodes starting
    /// together load them once. Returns whether it loaded them.
    async fn load_units_if_empty(
        &self,
        units: &[AdminUnit],
        audit: AuditEntry,
    ) -> StoreResult<bool>;
    async fn unit(&self, code: &UnitCode) -> StoreResult<Option<AdminUnit>>;
    /// Every administrative unit, by code.
    async fn units(&self) -> StoreResult<Vec<AdminUnit>>;
    async fn count_units(&self) -> StoreResult<(u64, u64)>;
    async fn put_agency(&self, agency: &Agency, audit: AuditEntry) -> StoreResult<()>;
    async fn agency(&self, code: &AgencyCode) -> StoreResult<Option<Agency>>;
    async fn agencies(&self) -> StoreResult<Vec<Agency>>;
    /// The agency of `kind` in `unit`.
    async fn agency_for(&self, kind: AgencyKind, unit: &UnitCode) -> StoreResult<Option<Agency>>;

    async fn put_procedure(&self, p: &Procedure, audit: AuditEntry) -> StoreResult<ImportOutcome>;
    /// Imports a procedure of a province's own (available there only);
    /// `Invalid` when the code belongs to the national catalogue or to
    /// another province.
    async fn put_province_procedure(
        &self,
        p: &Procedure,
        province: &UnitCode,
        audit: AuditEntry,
    ) -> StoreResult<ImportOutcome>;
    /// Sets (`Some`) or removes (`None`) the availability of a procedure in
    /// a unit, with its audit record.
    async fn set_availability(
        &self,
        unit: &UnitCode,
        procedure_code: &str,
        available: Option<bool>,
        by: &str,
        at: DateTime<Utc>,
        audit: AuditEntry,
    ) -> StoreResult<()>;
    /// The availability decisions for `procedure_code` in any of `units`
    /// (a commune and its province, say), or in every unit if `units` is
    /// empty.
    async fn availability(
        &self,
        procedure_code: &str,
        units: &[UnitCode],
    ) -> StoreResult<Vec<Availability>>;
    /// Every availability decision in any of `units`.
    async fn availability_in(&self, units: &[UnitCode]) -> StoreResult<Vec<Availability>>;
    async fn procedure(&self, code: &str, version: u32) -> StoreResult<Option<StoredProcedure>>;
    /// The newest enabled version of a procedure.
    async fn current_procedure(&self, code: &str) -> StoreResult<Option<StoredProcedure>>;
    /// The newest enabled version of every procedure.
    async fn current_procedures(&self) -> StoreResult<Vec<StoredProcedure>>;
    async fn procedure_versions(&self, code: &str) -> StoreResult<Vec<StoredProcedure>>;
    async fn set_procedure_enabled(
        &self,
        code: &str,
        version: u32,
        enabled: bool,
        audit: AuditEntry,
    ) -> StoreResult<()>;
}

/// Whether a procedure may be filed in a unit (a province or a commune),
/// as decided by the province; absent: the default (national procedures
/// everywhere, a province's own procedures in that province).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Availability {
    pub unit_code: UnitCode,
    pub procedure_code: String,
    pub available: bool,
    pub changed_at: DateTime<Utc>,
    pub changed_by: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StoredProcedure {
    pub definition: Procedure,
    pub enabled: bool,
    pub imported_at: DateTime<Utc>,
    /// The province that imported it; `None`: the national catalogue.
    pub home_province: Option<UnitCode>,
}

/// What happened to a procedure on import.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportOutcome {
    Added,
    Unchanged,
}

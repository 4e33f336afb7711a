//! Maintenance of the database as a whole: schema migrations, a liveness
//! check, bulk access to every table for `migrate-data` and `generate` (see
//! [`crate::bulk`]), and the query plans of the read paths.

use async_trait::async_trait;

use crate::StoreResult;
use crate::bulk::{Cell, ExplainTarget, TableRows};

/// Migrations, bulk copies and query plans (SQL: the backends' own and
/// `sql/tables.rs`, the trait in `sql/maintenance.rs`; stories:
/// `conformance/maintenance.rs`).
#[async_trait]
pub trait MaintenanceStore: Send + Sync {
    /// Applies pending schema migrations; returns how many were applied.
    async fn migrate(&self) -> StoreResult<usize>;
    async fn ping(&self) -> StoreResult<()>;

    /// Number of rows in `table` (one of [`crate::TABLES`]).
    async fn bulk_count(&self, table: &str) -> StoreResult<u64>;
    /// At most `limit` rows of `table` in key order, starting after the key
    /// `after` (the first `key` cells of the last row of the previous page).
    async fn bulk_export(
        &self,
        table: &str,
        after: Option<&[Cell]>,
        limit: u32,
    ) -> StoreResult<Vec<Vec<Cell>>>;
    /// The last row of `table` in key order.
    async fn bulk_last(&self, table: &str) -> StoreResult<Option<Vec<Cell>>>;
    /// Inserts every part's rows, keys as given, in ONE transaction and in
    /// the order given. `dossier_seq` rows merge with existing ones (the
    /// larger counter wins); audit rows must continue the chain exactly
    /// (first seq = last + 1, prev_hash = last hash) or nothing is written
    /// (`Conflict`); identity sequences move past imported ids. Returns the
    /// number of rows written.
    async fn bulk_import(&self, parts: &[TableRows]) -> StoreResult<u64>;
    /// Deletes every row of every table (`migrate-data --force`).
    async fn bulk_clear(&self) -> StoreResult<()>;
    /// Before a large load into an installation no node is serving: drops
    /// the secondary indexes of `dossiers` and `audit` and stops writing
    /// search terms row by row; both are rebuilt, in key order, by
    /// [`MaintenanceStore::bulk_restore_indexes`]. What was dropped is recorded in
    /// `meta` ([`crate::bulk::DEFERRED_INDEXES`]) in the same transaction, and
    /// `migrate` finishes an interrupted load, so a crash never leaves an
    /// installation without its indexes. Returns how many were dropped.
    async fn bulk_defer_indexes(&self) -> StoreResult<usize>;
    /// Re-creates what [`MaintenanceStore::bulk_defer_indexes`] dropped and every
    /// dossier's search terms; does nothing when nothing was deferred.
    async fn bulk_restore_indexes(&self) -> StoreResult<()>;
    /// The database's query plan for a read path (`EXPLAIN QUERY PLAN` on
    /// SQLite, `EXPLAIN` on PostgreSQL), one line per plan node.
    async fn explain(&self, target: &ExplainTarget) -> StoreResult<String>;
}

//! [`MaintenanceStore`] on any [`Backend`]: migrations and bulk loads are
//! the backends' own, table reads are in `tables.rs`.

use async_trait::async_trait;

use super::{Arg, Backend, Dialect, SqlStore, dossiers, tables};
use crate::bulk::{Cell, ExplainTarget, TableRows};
use crate::query;
use crate::{MaintenanceStore, StoreResult};

impl<B: Backend> SqlStore<B> {
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
impl<B: Backend> MaintenanceStore for SqlStore<B> {
    async fn migrate(&self) -> StoreResult<usize> {
        self.backend.migrate().await
    }

    async fn ping(&self) -> StoreResult<()> {
        self.read().await?.exec("SELECT 1", vec![]).await?;
        Ok(())
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
}

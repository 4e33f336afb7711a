//! [`Conn`] and [`Tx`] for the connections of sqlx's SQLite and
//! PostgreSQL drivers: binding [`Arg`]s and reading rows as [`Cell`]s.

use std::sync::Arc;

use async_trait::async_trait;
use sqlx::pool::PoolConnection;
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::{Column, Postgres, Row as _, Sqlite, Transaction, TypeInfo, ValueRef};

use super::{Arg, Cell, Conn, Dialect, Row, Tx};
use crate::{StoreError, StoreResult};

/// The store's error for a driver's.
pub fn db_error(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => {
            StoreError::Duplicate(d.message().to_string())
        }
        // 22021 character_not_in_repertoire: PostgreSQL text cannot hold
        // U+0000, which SQLite stores.
        sqlx::Error::Database(d) if d.code().as_deref() == Some("22021") => {
            StoreError::Invalid(format!("text the database cannot store: {}", d.message()))
        }
        sqlx::Error::RowNotFound => StoreError::NotFound,
        _ => StoreError::backend(e),
    }
}

type LiteQuery<'q> = sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments>;
type PgQuery<'q> = sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>;

fn bind_lite(mut q: LiteQuery<'_>, args: Vec<Arg>) -> LiteQuery<'_> {
    for a in args {
        q = match a {
            Arg::Int(i) => q.bind(i),
            Arg::Text(t) => q.bind(t),
            Arg::Bool(b) => q.bind(i64::from(b)),
            Arg::NullInt => q.bind(None::<i64>),
            Arg::NullText => q.bind(None::<String>),
        };
    }
    q
}

fn bind_pg(mut q: PgQuery<'_>, args: Vec<Arg>) -> PgQuery<'_> {
    for a in args {
        q = match a {
            Arg::Int(i) => q.bind(i),
            Arg::Text(t) => q.bind(t),
            Arg::Bool(b) => q.bind(b),
            Arg::NullInt => q.bind(None::<i64>),
            Arg::NullText => q.bind(None::<String>),
        };
    }
    q
}

fn names_of<R: sqlx::Row>(row: &R) -> Arc<Vec<String>> {
    Arc::new(row.columns().iter().map(|c| c.name().to_string()).collect())
}

fn lite_cells(r: &SqliteRow) -> StoreResult<Vec<Cell>> {
    (0..r.len())
        .map(|i| {
            let raw = r.try_get_raw(i).map_err(db_error)?;
            if raw.is_null() {
                return Ok(Cell::Null);
            }
            let kind = raw.type_info().name().to_string();
            match kind.as_str() {
                "INTEGER" | "BOOLEAN" => r.try_get::<i64, _>(i).map(Cell::Int),
                "TEXT" => r.try_get::<String, _>(i).map(Cell::Text),
                other => {
                    return Err(StoreError::Backend(format!(
                        "column {i} holds a value of type {other}"
                    )));
                }
            }
            .map_err(db_error)
        })
        .collect()
}

fn pg_cells(r: &PgRow) -> StoreResult<Vec<Cell>> {
    (0..r.len())
        .map(|i| {
            let raw = r.try_get_raw(i).map_err(db_error)?;
            if raw.is_null() {
                return Ok(Cell::Null);
            }
            let kind = raw.type_info().name().to_string();
            match kind.as_str() {
                "INT8" => r.try_get::<i64, _>(i).map(Cell::Int),
                "INT4" => r.try_get::<i32, _>(i).map(|v| Cell::Int(i64::from(v))),
                "INT2" => r.try_get::<i16, _>(i).map(|v| Cell::Int(i64::from(v))),
                "BOOL" => r.try_get::<bool, _>(i).map(|v| Cell::Int(i64::from(v))),
                "TEXT" | "VARCHAR" | "NAME" | "BPCHAR" => r.try_get::<String, _>(i).map(Cell::Text),
                other => {
                    return Err(StoreError::Backend(format!(
                        "column {i} holds a value of type {other}"
                    )));
                }
            }
            .map_err(db_error)
        })
        .collect()
}

fn lite_rows(rows: Vec<SqliteRow>) -> StoreResult<Vec<Row>> {
    let Some(first) = rows.first() else {
        return Ok(Vec::new());
    };
    let names = names_of(first);
    rows.iter()
        .map(|r| Ok(Row::new(names.clone(), lite_cells(r)?)))
        .collect()
}

fn pg_rows(rows: Vec<PgRow>) -> StoreResult<Vec<Row>> {
    let Some(first) = rows.first() else {
        return Ok(Vec::new());
    };
    let names = names_of(first);
    rows.iter()
        .map(|r| Ok(Row::new(names.clone(), pg_cells(r)?)))
        .collect()
}

/// `Conn` for a type that dereferences to a driver's connection.
macro_rules! conn_for {
    ([$($gen:tt)*] $ty:ty, $dialect:expr, $bind:ident, $rows:ident) => {
        #[async_trait]
        impl<$($gen)*> Conn for $ty {
            fn dialect(&self) -> Dialect {
                $dialect
            }

            async fn exec(&mut self, sql: &str, args: Vec<Arg>) -> StoreResult<u64> {
                // The text is the caller's statement: fixed SQL and
                // placeholders, never a value.
                let q = $bind(sqlx::query(sqlx::AssertSqlSafe(sql)), args);
                Ok(q.execute(&mut **self).await.map_err(db_error)?.rows_affected())
            }

            async fn fetch(&mut self, sql: &str, args: Vec<Arg>) -> StoreResult<Vec<Row>> {
                let q = $bind(sqlx::query(sqlx::AssertSqlSafe(sql)), args);
                $rows(q.fetch_all(&mut **self).await.map_err(db_error)?)
            }
        }
    };
}

conn_for!([] PoolConnection<Sqlite>, Dialect::Sqlite, bind_lite, lite_rows);
conn_for!(['c] Transaction<'c, Sqlite>, Dialect::Sqlite, bind_lite, lite_rows);
conn_for!([] PoolConnection<Postgres>, Dialect::Postgres, bind_pg, pg_rows);
conn_for!(['c] Transaction<'c, Postgres>, Dialect::Postgres, bind_pg, pg_rows);

macro_rules! tx_for {
    ($ty:ty) => {
        #[async_trait]
        impl Tx for $ty {
            async fn commit(self: Box<Self>) -> StoreResult<()> {
                (*self).commit().await.map_err(db_error)
            }

            async fn rollback(self: Box<Self>) -> StoreResult<()> {
                (*self).rollback().await.map_err(db_error)
            }

            fn conn(&mut self) -> &mut dyn Conn {
                self
            }
        }
    };
}

tx_for!(Transaction<'static, Sqlite>);
tx_for!(Transaction<'static, Postgres>);

//! The SQL of every store, written once for both databases.
//!
//! Statements use `$1, $2 …` placeholders, which SQLite and PostgreSQL both
//! understand, and only the SQL both engines share (`ON CONFLICT`,
//! `RETURNING`, `TRUE`/`FALSE`, `CASE`). A backend gives connections
//! ([`Conn`]) and write transactions ([`Tx`]) through [`Backend`], and the
//! few things that really differ (migrations, SQLite's group commit, bulk
//! loads, locks); [`SqlStore`] implements every store trait on top, each
//! sub-trait of [`crate::Store`] in the file of its SQL (`accounts.rs`,
//! `dossiers.rs` …; `catalogue.rs` over `reference.rs` and `procedures.rs`,
//! `maintenance.rs` over the backends and `tables.rs`).
//!
//! Rows come back as [`Row`]s of [`Cell`]s: integers (booleans as 0/1 on
//! both engines), texts and nulls, read by column name with the store's
//! errors — a value that cannot be decoded is an error, never a default.

mod accounts;
mod audit;
mod catalogue;
mod dossiers;
mod drivers;
mod maintenance;
mod outbox;
mod procedures;
mod pubsub;
mod reference;
mod rows;
mod settings;
pub mod tables;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use motcua_domain::audit::AuditEntry;

pub use crate::bulk::Cell;
pub use crate::query::{Arg, Dialect};
use crate::{Dossier, NewDossier, StoreError, StoreResult, TableRows};

pub use audit::{AUDIT_LOCK, AuditSigner, append_audit, checkpoint_head};
pub use dossiers::{append_terms, insert_dossier, insert_terms};
pub use drivers::db_error;
pub use reference::SETUP_LOCK;

/// A connection (or a transaction) that runs statements.
#[async_trait]
pub trait Conn: Send {
    fn dialect(&self) -> Dialect;
    /// Runs a statement; returns the number of rows it changed.
    async fn exec(&mut self, sql: &str, args: Vec<Arg>) -> StoreResult<u64>;
    /// Runs a query; returns every row.
    async fn fetch(&mut self, sql: &str, args: Vec<Arg>) -> StoreResult<Vec<Row>>;

    /// The first row, if any.
    async fn first(&mut self, sql: &str, args: Vec<Arg>) -> StoreResult<Option<Row>> {
        Ok(self.fetch(sql, args).await?.into_iter().next())
    }

    /// The first column of the first row as an integer (`None`: no row or
    /// a null).
    async fn int(&mut self, sql: &str, args: Vec<Arg>) -> StoreResult<Option<i64>> {
        match self.first(sql, args).await? {
            Some(r) => r.cell(0).map(Cell::int),
            None => Ok(None),
        }
    }

    /// The first column of the first row as a text.
    async fn text(&mut self, sql: &str, args: Vec<Arg>) -> StoreResult<Option<String>> {
        match self.first(sql, args).await? {
            Some(r) => Ok(r.cell(0)?.text().map(str::to_string)),
            None => Ok(None),
        }
    }
}

/// A write transaction: everything it ran is kept by [`Tx::commit`] only.
#[async_trait]
pub trait Tx: Conn {
    async fn commit(self: Box<Self>) -> StoreResult<()>;
    async fn rollback(self: Box<Self>) -> StoreResult<()>;
    /// As a plain connection, for the statements of the transaction.
    fn conn(&mut self) -> &mut dyn Conn;
}

/// What a database engine gives the shared SQL: connections, and the
/// commands whose SQL really differs between engines.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    fn dialect(&self) -> Dialect;
    /// A new write transaction.
    async fn begin(&self) -> StoreResult<Box<dyn Tx>>;
    /// A connection for reads (SQLite: of its read-only pool).
    async fn read(&self) -> StoreResult<Box<dyn Conn>>;
    /// A connection for single-statement writes outside a transaction.
    async fn write(&self) -> StoreResult<Box<dyn Conn>>;
    /// Applies pending migrations; returns how many were applied.
    async fn migrate(&self) -> StoreResult<usize>;
    /// Writes a new dossier in a transaction of its own (SQLite: in the
    /// group commit of every submission waiting at that moment).
    async fn create_dossier(&self, d: NewDossier, signer: AuditSigner) -> StoreResult<Dossier>;
    async fn bulk_import(&self, parts: &[TableRows], signer: AuditSigner) -> StoreResult<u64>;
    async fn bulk_clear(&self) -> StoreResult<()>;
    async fn bulk_defer_indexes(&self) -> StoreResult<usize>;
    async fn bulk_restore_indexes(&self) -> StoreResult<()>;
    /// Closes every connection (SQLite: checkpointing the WAL first).
    async fn close(&self);
}

/// Every store trait, on any [`Backend`].
pub struct SqlStore<B> {
    backend: Arc<B>,
    signer: AuditSigner,
}

impl<B> Clone for SqlStore<B> {
    fn clone(&self) -> Self {
        Self {
            backend: self.backend.clone(),
            signer: self.signer.clone(),
        }
    }
}

impl<B: std::fmt::Debug> std::fmt::Debug for SqlStore<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlStore")
            .field("backend", &self.backend)
            .finish()
    }
}

impl<B: Backend> SqlStore<B> {
    pub fn new(backend: B) -> Self {
        Self {
            backend: Arc::new(backend),
            signer: AuditSigner::default(),
        }
    }

    /// The engine underneath (its own commands: backup, close, its pool).
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// Signs the chain's head in every transaction that appends to it
    /// (see [`crate::AuditStore::audit_checkpoint`]).
    pub fn with_audit_key(mut self, key: ed25519_dalek::SigningKey) -> Self {
        self.signer = AuditSigner::new(key);
        self
    }

    /// Closes every connection (SQLite: checkpointing the WAL first).
    pub async fn close(&self) {
        self.backend.close().await
    }

    pub fn signer(&self) -> &AuditSigner {
        &self.signer
    }

    async fn read(&self) -> StoreResult<Box<dyn Conn>> {
        self.backend.read().await
    }

    async fn write(&self) -> StoreResult<Box<dyn Conn>> {
        self.backend.write().await
    }

    async fn begin(&self) -> StoreResult<Box<dyn Tx>> {
        self.backend.begin().await
    }

    /// Appends `entry` to the audit chain in `tx` and commits: the change
    /// and its record, or neither.
    async fn finish(&self, mut tx: Box<dyn Tx>, entry: AuditEntry) -> StoreResult<()> {
        audit::append_audit(tx.conn(), &self.signer, entry).await?;
        tx.commit().await
    }
}

/// A row of a result, its cells by column name.
#[derive(Debug, Clone)]
pub struct Row {
    names: Arc<Vec<String>>,
    cells: Vec<Cell>,
}

fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("unreadable value in the database: {what}"))
}

impl Row {
    pub fn new(names: Arc<Vec<String>>, cells: Vec<Cell>) -> Self {
        Self { names, cells }
    }

    /// The cells in column order.
    pub fn into_cells(self) -> Vec<Cell> {
        self.cells
    }

    pub fn cell(&self, i: usize) -> StoreResult<&Cell> {
        self.cells
            .get(i)
            .ok_or_else(|| corrupt(format!("no column {i}")))
    }

    pub fn get(&self, name: &str) -> StoreResult<&Cell> {
        self.names
            .iter()
            .position(|n| n == name)
            .and_then(|i| self.cells.get(i))
            .ok_or_else(|| corrupt(format!("no column {name}")))
    }

    pub fn opt_int(&self, name: &str) -> StoreResult<Option<i64>> {
        match self.get(name)? {
            Cell::Null => Ok(None),
            Cell::Int(i) => Ok(Some(*i)),
            Cell::Text(t) => Err(corrupt(format!("{name} is the text {t:?}, not a number"))),
        }
    }

    pub fn int(&self, name: &str) -> StoreResult<i64> {
        self.opt_int(name)?
            .ok_or_else(|| corrupt(format!("{name} is null")))
    }

    /// A non-negative count or size.
    pub fn count(&self, name: &str) -> StoreResult<u64> {
        u64::try_from(self.int(name)?).map_err(|_| corrupt(format!("{name} is negative")))
    }

    pub fn bool(&self, name: &str) -> StoreResult<bool> {
        Ok(self.int(name)? != 0)
    }

    pub fn opt_text(&self, name: &str) -> StoreResult<Option<String>> {
        match self.get(name)? {
            Cell::Null => Ok(None),
            Cell::Text(t) => Ok(Some(t.clone())),
            Cell::Int(i) => Err(corrupt(format!("{name} is the number {i}, not a text"))),
        }
    }

    pub fn text(&self, name: &str) -> StoreResult<String> {
        self.opt_text(name)?
            .ok_or_else(|| corrupt(format!("{name} is null")))
    }

    /// A time stored as milliseconds since the epoch.
    pub fn opt_time(&self, name: &str) -> StoreResult<Option<DateTime<Utc>>> {
        self.opt_int(name)?
            .map(|ms| {
                DateTime::from_timestamp_millis(ms)
                    .ok_or_else(|| corrupt(format!("{name} = {ms} is not a time")))
            })
            .transpose()
    }

    pub fn time(&self, name: &str) -> StoreResult<DateTime<Utc>> {
        self.opt_time(name)?
            .ok_or_else(|| corrupt(format!("{name} is null")))
    }

    /// A time stored as microseconds (the audit chain's `at`).
    pub fn micros(&self, name: &str) -> StoreResult<DateTime<Utc>> {
        let us = self.int(name)?;
        DateTime::from_timestamp_micros(us)
            .ok_or_else(|| corrupt(format!("{name} = {us} is not a time")))
    }

    /// A value parsed into its domain type.
    pub fn parsed<T, E: std::fmt::Display>(
        &self,
        name: &str,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> StoreResult<T> {
        let s = self.text(name)?;
        parse(&s).map_err(|e| corrupt(format!("{name} = {s:?}: {e}")))
    }

    pub fn opt_parsed<T, E: std::fmt::Display>(
        &self,
        name: &str,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> StoreResult<Option<T>> {
        match self.opt_text(name)? {
            Some(s) => parse(&s)
                .map(Some)
                .map_err(|e| corrupt(format!("{name} = {s:?}: {e}"))),
            None => Ok(None),
        }
    }

    /// A JSON text.
    pub fn json<T: serde::de::DeserializeOwned>(&self, name: &str) -> StoreResult<T> {
        let s = self.text(name)?;
        serde_json::from_str(&s).map_err(|e| corrupt(format!("{name}: {e}")))
    }
}

/// Milliseconds since the epoch, as stored.
pub fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// `$from, $from+1, …`: `n` placeholders for an `IN (…)` list.
pub fn marks(from: usize, n: usize) -> String {
    (from..from + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl From<i64> for Arg {
    fn from(v: i64) -> Self {
        Arg::Int(v)
    }
}

impl From<Option<i64>> for Arg {
    fn from(v: Option<i64>) -> Self {
        v.map_or(Arg::NullInt, Arg::Int)
    }
}

impl From<bool> for Arg {
    fn from(v: bool) -> Self {
        Arg::Bool(v)
    }
}

impl From<&str> for Arg {
    fn from(v: &str) -> Self {
        Arg::Text(v.to_string())
    }
}

impl From<String> for Arg {
    fn from(v: String) -> Self {
        Arg::Text(v)
    }
}

impl From<&String> for Arg {
    fn from(v: &String) -> Self {
        Arg::Text(v.clone())
    }
}

impl From<Option<&str>> for Arg {
    fn from(v: Option<&str>) -> Self {
        v.map_or(Arg::NullText, |s| Arg::Text(s.to_string()))
    }
}

impl From<Option<String>> for Arg {
    fn from(v: Option<String>) -> Self {
        v.map_or(Arg::NullText, Arg::Text)
    }
}

impl From<&Option<String>> for Arg {
    fn from(v: &Option<String>) -> Self {
        v.as_deref().into()
    }
}

impl From<DateTime<Utc>> for Arg {
    fn from(v: DateTime<Utc>) -> Self {
        Arg::Int(ms(v))
    }
}

impl From<Option<DateTime<Utc>>> for Arg {
    fn from(v: Option<DateTime<Utc>>) -> Self {
        v.map(ms).into()
    }
}

/// The arguments of a statement, each converted with `Arg::from`.
#[macro_export]
macro_rules! args {
    ($($a:expr),* $(,)?) => {
        vec![$($crate::sql::Arg::from($a)),*]
    };
}
pub use args;

//! Key-value settings.

use async_trait::async_trait;
use motcua_domain::audit::AuditEntry;

use super::{Backend, Conn, SqlStore, args};
use crate::{SettingsStore, StoreResult};

pub(super) async fn get(c: &mut dyn Conn, key: &str) -> StoreResult<Option<String>> {
    c.text("SELECT value FROM meta WHERE key = $1", args![key])
        .await
}

pub(super) async fn put(c: &mut dyn Conn, key: &str, value: &str) -> StoreResult<()> {
    c.exec(
        "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        args![key, value],
    )
    .await?;
    Ok(())
}

/// Writes `value` if the current value is `expected` (`None`: absent);
/// one statement decides, so a concurrent writer that changed the row
/// first makes this one match nothing. Returns whether it wrote.
pub(super) async fn put_if(
    c: &mut dyn Conn,
    key: &str,
    expected: Option<&str>,
    value: &str,
) -> StoreResult<bool> {
    let n = match expected {
        Some(old) => {
            c.exec(
                "UPDATE meta SET value = $1 WHERE key = $2 AND value = $3",
                args![value, key, old],
            )
            .await?
        }
        None => {
            c.exec(
                "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
                args![key, value],
            )
            .await?
        }
    };
    Ok(n == 1)
}

#[async_trait]
impl<B: Backend> SettingsStore for SqlStore<B> {
    async fn meta(&self, key: &str) -> StoreResult<Option<String>> {
        get(self.read().await?.as_mut(), key).await
    }

    async fn set_meta(&self, key: &str, value: &str) -> StoreResult<()> {
        put(self.write().await?.as_mut(), key, value).await
    }

    async fn set_meta_audited(&self, key: &str, value: &str, entry: AuditEntry) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        put(tx.conn(), key, value).await?;
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
        if !put_if(tx.conn(), key, expected, value).await? {
            tx.rollback().await?;
            return Ok(false);
        }
        self.finish(tx, entry).await?;
        Ok(true)
    }
}

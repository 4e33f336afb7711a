//! Key-value settings.

use super::{Conn, args};
use crate::StoreResult;

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

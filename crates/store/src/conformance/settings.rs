//! The stories of [`crate::SettingsStore`].

use chrono::Utc;
use motcua_domain::audit::verify_chain;

use super::{check, e, entry};
use crate::Store;

/// A plain setting is upserted.
pub async fn settings_upsert(store: &dyn Store) -> Result<(), String> {
    e(store.set_meta("k", "v1").await, "meta")?;
    e(store.set_meta("k", "v2").await, "meta")?;
    check(
        e(store.meta("k").await, "meta")?.as_deref() == Some("v2"),
        "meta upserts",
    )?;
    Ok(())
}

/// Compare-and-set of a setting: a write that read a stale value loses and
/// leaves no trace; of two writers that read the same value exactly one
/// wins, and only the winner's audit record is in the chain.
pub async fn meta_compare_and_set(store: &dyn Store) -> Result<(), String> {
    let now = Utc::now();
    let key = "exchange.registry";
    let audit_len = |n: usize| async move {
        let all = e(store.audit_records(0, 10_000).await, "audit")?;
        check(verify_chain(&all).is_ok(), "chain verifies")?;
        check(all.len() == n, &format!("{n} audit records"))?;
        Ok::<_, String>(all)
    };
    let before = e(store.audit_records(0, 10_000).await, "audit")?.len();
    check(
        e(
            store
                .set_meta_if(key, None, "v1", entry("exchange.member.add", now))
                .await,
            "create",
        )?,
        "an absent key is created when None is expected",
    )?;
    check(
        !e(
            store
                .set_meta_if(key, None, "v1b", entry("exchange.member.add", now))
                .await,
            "create again",
        )?,
        "None expected but the key exists: refused",
    )?;
    check(
        !e(
            store
                .set_meta_if(key, Some("v0"), "v2", entry("exchange.member.add", now))
                .await,
            "stale",
        )?,
        "a stale expected value is refused",
    )?;
    check(
        e(store.meta(key).await, "meta")?.as_deref() == Some("v1"),
        "refused writes change nothing",
    )?;
    audit_len(before + 1).await?;
    // Two writers that both read v1, at the same time.
    let (a, b) = tokio::join!(
        store.set_meta_if(key, Some("v1"), "from-a", entry("exchange.grant.a", now)),
        store.set_meta_if(key, Some("v1"), "from-b", entry("exchange.grant.b", now)),
    );
    let (a, b) = (e(a, "writer a")?, e(b, "writer b")?);
    check(a != b, "exactly one of two concurrent writers wins")?;
    let (winner_value, winner_action) = if a {
        ("from-a", "exchange.grant.a")
    } else {
        ("from-b", "exchange.grant.b")
    };
    check(
        e(store.meta(key).await, "meta")?.as_deref() == Some(winner_value),
        "the winner's value is stored",
    )?;
    let all = audit_len(before + 2).await?;
    check(
        all.last().is_some_and(|r| r.entry.action == winner_action),
        "only the winner's audit record is written",
    )?;
    // The loser re-reads and goes again: now it wins.
    let loser_value = if a { "from-b" } else { "from-a" };
    check(
        e(
            store
                .set_meta_if(
                    key,
                    Some(winner_value),
                    loser_value,
                    entry("exchange.retry", now),
                )
                .await,
            "retry",
        )?,
        "a retry on the fresh value wins",
    )?;
    check(
        e(
            store
                .set_meta_if(
                    key,
                    Some(loser_value),
                    loser_value,
                    entry("exchange.same", now),
                )
                .await,
            "same value",
        )?,
        "writing the current value back succeeds",
    )?;
    audit_len(before + 4).await?;
    Ok(())
}

//! The stories of [`crate::OutboxStore`].

use chrono::Utc;

use super::{check, e, new_dossier, seed};
use crate::Store;

/// The outbox is claimed once: the event written with a dossier is handed
/// out once and completed idempotently, alone or in batches.
pub async fn outbox_is_claimed_once(store: &dyn Store) -> Result<(), String> {
    let uid = seed(store).await?;
    let now = Utc::now();
    e(
        store
            .create_dossier(new_dossier("UB00073", "00073", Some(uid), "An", now)?)
            .await,
        "create",
    )?;
    let first = e(store.claim_events(10).await, "claim")?;
    check(
        first.len() == 1 && first[0].topic == "dossier.submitted",
        "event written with the dossier",
    )?;
    check(
        e(store.claim_events(10).await, "claim")?.is_empty(),
        "a claimed event is not handed out twice",
    )?;
    check(
        e(store.pending_events().await, "pending")? == 1,
        "claimed but not completed is pending",
    )?;
    check(
        e(store.complete_event(first[0].id).await, "complete")?,
        "the first completion completes",
    )?;
    check(
        !e(store.complete_event(first[0].id).await, "complete again")?,
        "a second completion is recorded idempotently and reported",
    )?;
    check(
        e(store.pending_events().await, "pending")? == 0,
        "completed",
    )?;
    // Batches: two new events, completed together; repeats count nothing.
    let uid2 = uid;
    for name in ["Batch A", "Batch B"] {
        e(
            store
                .create_dossier(new_dossier("UB00073", "00073", Some(uid2), name, now)?)
                .await,
            "create",
        )?;
    }
    let batch: Vec<i64> = e(store.claim_events(10).await, "claim")?
        .iter()
        .map(|ev| ev.id)
        .collect();
    check(batch.len() == 2, "two new events claimed")?;
    check(
        e(store.complete_events(&batch).await, "complete batch")? == 2,
        "a batch completes every event in it",
    )?;
    check(
        e(store.complete_events(&batch).await, "complete batch again")? == 0,
        "completing a batch again changes nothing",
    )?;
    check(
        e(store.complete_events(&[]).await, "empty batch")? == 0,
        "an empty batch is fine",
    )?;
    Ok(())
}

//! The stories of [`crate::PubSubStore`].

use chrono::{DateTime, Duration, Utc};
use motcua_domain::dossier::Status;

use super::{check, e, entry, new_dossier, seed};
use crate::{DossierUpdate, Store, StoreError};

/// Publish / subscribe: once per source key, deliveries per live
/// subscription, push claims with leases and retries, pull and
/// acknowledgement per client, ended subscriptions, late dossiers.
pub async fn pubsub(store: &dyn Store) -> Result<(), String> {
    use crate::{
        AttemptResult, DeliveryMode, DeliveryQuery, DeliveryState, NewPubEvent, NewSubscription,
        late_source_key,
    };
    let uid = seed(store).await?;
    let now = Utc::now();
    let sub = |client: &str, event_type: &str, mode: DeliveryMode| NewSubscription {
        client: client.into(),
        event_type: event_type.into(),
        mode,
        url: (mode == DeliveryMode::Push).then(|| "http://127.0.0.1:9/hook".to_string()),
        created_by: "admin".into(),
        created_at: now,
    };
    let (pusher, puller) = ("VN/GOV/A/PUSH", "VN/GOV/B/PULL");
    let audit_before = e(store.audit_records(0, 10_000).await, "audit")?.len();
    let push = e(
        store
            .create_subscription(
                &sub(pusher, "dossier.accepted", DeliveryMode::Push),
                entry("exchange.pubsub.subscribe", now),
            )
            .await,
        "subscribe push",
    )?;
    let pull = e(
        store
            .create_subscription(
                &sub(puller, "dossier.accepted", DeliveryMode::Pull),
                entry("exchange.pubsub.subscribe", now),
            )
            .await,
        "subscribe pull",
    )?;
    let other = e(
        store
            .create_subscription(
                &sub(puller, "dossier.completed", DeliveryMode::Pull),
                entry("exchange.pubsub.subscribe", now),
            )
            .await,
        "subscribe other type",
    )?;
    check(
        push.mode == DeliveryMode::Push
            && push.url.is_some()
            && pull.url.is_none()
            && pull.deleted_at.is_none(),
        "subscriptions read back",
    )?;
    check(
        e(store.audit_records(0, 10_000).await, "audit")?.len() == audit_before + 3,
        "each subscription has its audit record",
    )?;
    let event = |id: &str, key: &str| NewPubEvent {
        event_id: id.into(),
        event_type: "dossier.accepted".into(),
        source_key: key.into(),
        payload: serde_json::json!({"code": id}),
        published_at: now,
    };
    let e1 = e(
        store.publish_event(&event("ev-1", "outbox:1")).await,
        "publish",
    )?
    .ok_or("conformance: a new source key publishes")?;
    check(e1.event_id == "ev-1", "published event read back")?;
    check(
        e(
            store.publish_event(&event("ev-1b", "outbox:1")).await,
            "republish",
        )?
        .is_none(),
        "a source key publishes once",
    )?;
    let pulled = e(store.pull_deliveries(puller, 10).await, "pull")?;
    check(
        pulled.len() == 1
            && pulled[0].event.event_id == "ev-1"
            && pulled[0].event.payload["code"] == "ev-1"
            && pulled[0].subscription_id == pull.id
            && pulled[0].state == DeliveryState::Pending,
        "the pull subscriber sees the event once",
    )?;
    check(
        e(store.pull_deliveries(puller, 10).await, "pull again")?.len() == 1,
        "pulling does not consume",
    )?;
    check(
        e(store.pull_deliveries(pusher, 10).await, "pull by pusher")?.is_empty(),
        "push deliveries are not pulled",
    )?;
    // Push: claim, lease, retry with back-off, delivered.
    let lease = Duration::seconds(60);
    let claimed = e(store.claim_push_deliveries(now, lease, 10).await, "claim")?;
    check(
        claimed.len() == 1
            && claimed[0].subscription_id == push.id
            && claimed[0].url == push.url
            && claimed[0].attempts == 0,
        "the push delivery is claimed",
    )?;
    check(
        e(
            store.claim_push_deliveries(now, lease, 10).await,
            "claim again",
        )?
        .is_empty(),
        "a claimed delivery is not claimed twice while leased",
    )?;
    let retry = AttemptResult::Retry {
        next_attempt_at: now + Duration::seconds(5),
        status: Some(500),
        error: "the receiver answered 500".into(),
    };
    check(
        e(
            store.finish_push_delivery(claimed[0].id, &retry, now).await,
            "retry",
        )?,
        "a failed attempt is recorded",
    )?;
    check(
        e(
            store.claim_push_deliveries(now, lease, 10).await,
            "claim early",
        )?
        .is_empty(),
        "a retry waits for its time",
    )?;
    let later = now + Duration::seconds(6);
    let again = e(
        store.claim_push_deliveries(later, lease, 10).await,
        "claim later",
    )?;
    check(
        again.len() == 1
            && again[0].attempts == 1
            && again[0].last_status == Some(500)
            && again[0].last_error.as_deref() == Some("the receiver answered 500"),
        "the retry is claimed when due, with its history",
    )?;
    let ok = AttemptResult::Delivered { status: 204 };
    check(
        e(
            store.finish_push_delivery(again[0].id, &ok, later).await,
            "deliver",
        )?,
        "delivered",
    )?;
    check(
        !e(
            store.finish_push_delivery(again[0].id, &ok, later).await,
            "deliver twice",
        )?,
        "a finished delivery is not changed again",
    )?;
    let delivered = e(
        store
            .deliveries(&DeliveryQuery {
                subscription: Some(push.id),
                state: Some(DeliveryState::Delivered),
                limit: 10,
            })
            .await,
        "deliveries",
    )?;
    check(
        delivered.len() == 1 && delivered[0].attempts == 2 && delivered[0].done_at.is_some(),
        "the delivery shows its attempts",
    )?;
    // A second event: the push gives up, the puller acknowledges.
    e(
        store.publish_event(&event("ev-2", "outbox:2")).await,
        "publish 2",
    )?;
    let c2 = e(
        store.claim_push_deliveries(later, lease, 10).await,
        "claim 2",
    )?;
    check(
        c2.len() == 1 && c2[0].event.event_id == "ev-2",
        "second push claimed",
    )?;
    let failed = AttemptResult::Failed {
        status: None,
        error: "cannot reach the receiver".into(),
    };
    e(
        store.finish_push_delivery(c2[0].id, &failed, later).await,
        "fail",
    )?;
    let f = e(
        store
            .deliveries(&DeliveryQuery {
                state: Some(DeliveryState::Failed),
                limit: 10,
                ..Default::default()
            })
            .await,
        "failed deliveries",
    )?;
    check(
        f.len() == 1 && f[0].event.event_id == "ev-2" && f[0].attempts == 1,
        "a delivery that gave up is visible as failed",
    )?;
    check(
        e(
            store
                .claim_push_deliveries(later + Duration::days(1), lease, 10)
                .await,
            "claim failed",
        )?
        .is_empty(),
        "a failed delivery is not retried",
    )?;
    check(
        e(
            store
                .ack_deliveries(pusher, &["ev-1".into(), "ev-2".into()], later)
                .await,
            "ack by another client",
        )?
        .is_empty(),
        "only the subscriber acknowledges its deliveries",
    )?;
    let acked = e(
        store
            .ack_deliveries(puller, &["ev-1".into(), "nope".into()], later)
            .await,
        "ack",
    )?;
    check(acked == ["ev-1"], "the acknowledged ids are returned")?;
    check(
        e(
            store.ack_deliveries(puller, &["ev-1".into()], later).await,
            "ack twice",
        )?
        .is_empty(),
        "acknowledging twice changes nothing",
    )?;
    let rest = e(store.pull_deliveries(puller, 10).await, "pull after ack")?;
    check(
        rest.len() == 1 && rest[0].event.event_id == "ev-2",
        "an acknowledged event is not offered again",
    )?;
    // Ending a subscription.
    let ended = e(
        store
            .delete_subscription(pull.id, later, entry("exchange.pubsub.unsubscribe", later))
            .await,
        "unsubscribe",
    )?;
    check(
        ended.deleted_at.is_some(),
        "ended subscription has its time",
    )?;
    check(
        matches!(
            store
                .delete_subscription(pull.id, later, entry("exchange.pubsub.unsubscribe", later))
                .await,
            Err(StoreError::NotFound)
        ),
        "ending twice is not found",
    )?;
    check(
        e(store.pull_deliveries(puller, 10).await, "pull ended")?.is_empty(),
        "an ended subscription offers nothing",
    )?;
    e(
        store.publish_event(&event("ev-3", "outbox:3")).await,
        "publish 3",
    )?;
    let of_pull = e(
        store
            .deliveries(&DeliveryQuery {
                subscription: Some(pull.id),
                limit: 10,
                ..Default::default()
            })
            .await,
        "deliveries of the ended one",
    )?;
    check(
        of_pull.len() == 2 && of_pull.iter().any(|d| d.state == DeliveryState::Acked),
        "an ended subscription gets no new deliveries and keeps its history",
    )?;
    let subs = e(store.subscriptions().await, "subscriptions")?;
    check(
        subs.len() == 3
            && subs
                .iter()
                .any(|s| s.id == other.id && s.deleted_at.is_none()),
        "subscriptions are listed, ended ones included",
    )?;
    // Late dossiers: accepted, due in the past, reported once.
    let d = e(
        store
            .create_dossier(new_dossier("UB00073", "00073", Some(uid), "Late", now)?)
            .await,
        "create",
    )?;
    let mut l = d.lifecycle.clone();
    l.status = Status::Accepted;
    l.due_at = Some(now - Duration::hours(1));
    e(
        store
            .update_dossier(DossierUpdate {
                code: d.code.clone(),
                expected_version: d.version,
                lifecycle: l,
                new_documents: vec![],
                audit: entry("dossier.accept", now),
                event: "dossier.accepted".into(),
                at: now,
            })
            .await,
        "accept",
    )?;
    let epoch = DateTime::<Utc>::UNIX_EPOCH;
    let late = e(store.late_dossiers(epoch, now, 10).await, "late")?;
    check(
        late.len() == 1 && late[0].code == d.code && late[0].status == Status::Accepted,
        "a running dossier past its due time is late",
    )?;
    check(
        e(
            store
                .late_dossiers(now - Duration::minutes(30), now, 10)
                .await,
            "late since",
        )?
        .is_empty(),
        "only due times since the watermark",
    )?;
    e(
        store
            .publish_event(&NewPubEvent {
                event_id: "ev-late".into(),
                event_type: "dossier.late".into(),
                source_key: late_source_key(&d.code),
                payload: serde_json::json!({}),
                published_at: now,
            })
            .await,
        "publish late",
    )?;
    check(
        e(store.late_dossiers(epoch, now, 10).await, "late again")?.is_empty(),
        "a dossier is reported late once",
    )?;
    Ok(())
}

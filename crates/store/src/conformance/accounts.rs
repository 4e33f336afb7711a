//! The stories of [`crate::AccountStore`].

use chrono::{Duration, Utc};
use motcua_domain::dossier::{Channel, Role};

use super::{check, e, entry, new_dossier, seed};
use crate::bulk::{Cell, TableRows};
use crate::{DossierQuery, NewUser, Store, StoreError};

/// Accounts and tokens: valid, revoked, expired, disabled.
pub async fn accounts_and_tokens(store: &dyn Store) -> Result<(), String> {
    let uid = seed(store).await?;
    let now = Utc::now();
    check(
        e(store.user_by_name("citizen").await, "by name")?.is_some_and(|u| u.id == uid),
        "user found by name",
    )?;
    check(
        e(store.user_by_national_id("001090012345").await, "by id")?.is_some(),
        "user found by national id",
    )?;
    let dup = store
        .create_user(
            &NewUser {
                username: "citizen".into(),
                password_hash: "y".into(),
                full_name: "X".into(),
                national_id: None,
                phone: None,
                email: None,
                roles: vec![Role::Citizen],
                agency_code: None,
            },
            entry("user.create", now),
        )
        .await;
    check(
        matches!(dup, Err(StoreError::Duplicate(_))),
        "duplicate user name refused",
    )?;
    e(
        store
            .create_token("t1", uid, now + Duration::hours(1))
            .await,
        "token",
    )?;
    e(
        store
            .create_token("t2", uid, now - Duration::seconds(1))
            .await,
        "token",
    )?;
    check(
        e(store.token_user("t1", now).await, "t1")?.is_some(),
        "live token works",
    )?;
    check(
        e(store.token_user("t2", now).await, "t2")?.is_none(),
        "expired token refused",
    )?;
    check(
        e(store.token_user("nope", now).await, "nope")?.is_none(),
        "unknown token refused",
    )?;
    check(
        e(store.revoke_token("t1").await, "revoke")?,
        "revoke reports success",
    )?;
    check(
        e(store.token_user("t1", now).await, "t1")?.is_none(),
        "revoked token refused",
    )?;
    e(
        store
            .create_token("t3", uid, now + Duration::hours(1))
            .await,
        "token",
    )?;
    e(
        store
            .set_user_disabled(uid, true, entry("user.disable", now))
            .await,
        "disable",
    )?;
    check(
        e(store.token_user("t3", now).await, "t3")?.is_none(),
        "disabled user's token refused",
    )?;
    Ok(())
}

fn citizen(username: &str, national_id: &str) -> NewUser {
    NewUser {
        username: username.into(),
        password_hash: "x".into(),
        full_name: "Trần Thị Bình".into(),
        national_id: Some(national_id.into()),
        phone: None,
        email: None,
        roles: vec![Role::Citizen],
        agency_code: None,
    }
}

/// A typed national ID number grants nothing until verified; only verified
/// numbers are unique; verification links the applicant's dossiers that
/// have no account, and settles their reviews.
pub async fn national_id_verification(store: &dyn Store) -> Result<(), String> {
    use crate::{Verification, VerificationMethod};
    seed(store).await?;
    let now = Utc::now();
    let nid = "001195054321";
    let real = e(
        store
            .create_user(&citizen("binh", nid), entry("user.register", now))
            .await,
        "register",
    )?;
    let impostor = e(
        store
            .create_user(&citizen("mallory", nid), entry("user.register", now))
            .await,
        "an unverified number may be typed twice",
    )?;
    check(
        real.verified_national_id().is_none() && real.national_id_verified.is_none(),
        "a registered number is not verified",
    )?;
    check(
        e(store.user_by_verified_national_id(nid).await, "by verified")?.is_none(),
        "no verified holder yet",
    )?;
    // A counter dossier of that applicant, without an account.
    let mut d = new_dossier("UB00073", "00073", None, "Trần Thị Bình", now)?;
    d.channel = Channel::InPerson;
    d.applicant.national_id = nid.into();
    let counter = e(store.create_dossier(d).await, "counter dossier")?;
    // A second one, once linked to the impostor by an older release.
    let mut d = new_dossier("UB00073", "00073", None, "Trần Thị Bình", now)?;
    d.channel = Channel::InPerson;
    d.applicant.national_id = nid.into();
    let reviewed = e(store.create_dossier(d).await, "counter dossier")?;
    e(
        store
            .bulk_import(&[TableRows {
                table: "link_reviews",
                rows: vec![vec![
                    Cell::Int(1),
                    Cell::Int(reviewed.id),
                    Cell::Int(impostor.id),
                    Cell::Int(now.timestamp_millis()),
                    Cell::Null,
                    Cell::Null,
                    Cell::Null,
                ]],
            }])
            .await,
        "a review row",
    )?;
    let open = e(store.link_reviews(true).await, "reviews")?;
    check(
        open.len() == 1 && open[0].username == "mallory" && open[0].dossier_code == reviewed.code,
        "the review lists dossier and account",
    )?;
    // Keeping the impostor's link is refused: the number is not verified.
    let kept = store
        .resolve_link_review(open[0].id, true, "admin", now, entry("link.keep", now))
        .await;
    check(
        matches!(kept, Err(StoreError::Invalid(_))),
        "a link to an unverified account cannot be kept",
    )?;
    let v = Verification {
        at: now,
        by: "officer".into(),
        method: VerificationMethod::Counter,
    };
    let linked = e(
        store
            .verify_national_id(real.id, nid, &v, entry("user.verify_national_id", now))
            .await,
        "verify",
    )?;
    check(
        linked.contains(&counter.code) && linked.contains(&reviewed.code),
        "verification links the applicant's dossiers",
    )?;
    let real = e(store.user(real.id).await, "user")?.ok_or("user gone")?;
    check(
        real.verified_national_id() == Some(nid)
            && real
                .national_id_verified
                .as_ref()
                .is_some_and(|x| x.by == "officer" && x.method == VerificationMethod::Counter),
        "verification recorded",
    )?;
    check(
        e(store.user_by_verified_national_id(nid).await, "by verified")?
            .is_some_and(|u| u.id == real.id),
        "the verified holder is found",
    )?;
    let twice = store
        .verify_national_id(impostor.id, nid, &v, entry("user.verify_national_id", now))
        .await;
    check(
        matches!(twice, Err(StoreError::Duplicate(_))),
        "a number verified for one account is refused for another",
    )?;
    let mine = e(
        store
            .find_dossiers(&DossierQuery {
                applicant_user_id: Some(real.id),
                limit: 10,
                ..Default::default()
            })
            .await,
        "mine",
    )?;
    check(mine.len() == 2, "both dossiers under the verified account")?;
    let theirs = e(
        store
            .find_dossiers(&DossierQuery {
                applicant_user_id: Some(impostor.id),
                limit: 10,
                ..Default::default()
            })
            .await,
        "theirs",
    )?;
    check(theirs.is_empty(), "nothing under the impostor")?;
    let all = e(store.link_reviews(false).await, "reviews")?;
    check(
        all.len() == 1 && all[0].resolution.as_deref() == Some("removed"),
        "the impostor's old link is settled as removed",
    )?;
    check(
        e(store.link_reviews(true).await, "open")?.is_empty(),
        "no review left open",
    )?;
    Ok(())
}

/// Failure counters per key, in a window; cleared on demand and when idle.
pub async fn throttle_counters(store: &dyn Store) -> Result<(), String> {
    let t0 = Utc::now();
    let keys = vec!["login:a|1.2.3.4".to_string(), "ip:1.2.3.4".to_string()];
    for i in 0..3 {
        e(
            store
                .throttle_hit(&keys, t0 + Duration::seconds(i), Duration::minutes(15))
                .await,
            "hit",
        )?;
    }
    let got = e(store.throttle_read(&keys).await, "read")?;
    check(
        got.len() == 2 && got.iter().all(|s| s.failures == 3),
        "three failures counted under each key",
    )?;
    check(
        got.iter()
            .all(|s| s.last_at.timestamp() == (t0 + Duration::seconds(2)).timestamp()),
        "the last failure's time is kept",
    )?;
    // After the window, the count starts again.
    e(
        store
            .throttle_hit(
                &keys[..1],
                t0 + Duration::minutes(20),
                Duration::minutes(15),
            )
            .await,
        "hit later",
    )?;
    let got = e(store.throttle_read(&keys[..1]).await, "read")?;
    check(got[0].failures == 1, "a new window starts at one")?;
    e(
        store
            .throttle_clear(&keys[..1], t0 - Duration::days(1))
            .await,
        "clear",
    )?;
    let got = e(store.throttle_read(&keys).await, "read")?;
    check(
        got.len() == 1 && got[0].key == keys[1],
        "the cleared key is gone, the other kept",
    )?;
    e(
        store.throttle_clear(&[], t0 + Duration::days(1)).await,
        "clear idle",
    )?;
    check(
        e(store.throttle_read(&keys).await, "read")?.is_empty(),
        "idle counters are removed",
    )?;
    Ok(())
}

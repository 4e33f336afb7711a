//! The stories of [`crate::DossierStore`].

use chrono::{Duration, TimeZone, Utc};
use motcua_domain::dossier::{Role, Status};
use motcua_domain::{AgencyCode, DossierCode};

use super::{check, e, entry, new_dossier, seed};
use crate::{DossierQuery, DossierUpdate, Store, StoreError};

/// Codes per agency per (Vietnam) day, gap-free; dossiers round-trip.
pub async fn dossier_codes_and_round_trip(store: &dyn Store) -> Result<(), String> {
    let uid = seed(store).await?;
    // 23:30 UTC on 21 Nov is already 22 Nov in Hà Nội.
    let t = Utc
        .with_ymd_and_hms(2025, 11, 21, 23, 30, 0)
        .single()
        .ok_or("time")?;
    let a = e(
        store
            .create_dossier(new_dossier(
                "UB00073",
                "00073",
                Some(uid),
                "Nguyễn Văn An",
                t,
            )?)
            .await,
        "create",
    )?;
    let b = e(
        store
            .create_dossier(new_dossier(
                "UB00073",
                "00073",
                Some(uid),
                "Nguyễn Văn An",
                t,
            )?)
            .await,
        "create",
    )?;
    let c = e(
        store
            .create_dossier(new_dossier("UB00070", "00070", None, "Trần Thị Bình", t)?)
            .await,
        "create",
    )?;
    let d = e(
        store
            .create_dossier(new_dossier(
                "UB00073",
                "00073",
                None,
                "Lê 100%_Cường",
                t + Duration::days(1),
            )?)
            .await,
        "create",
    )?;
    check(
        a.code.as_str() == "UB00073-251122-0001",
        "first code of the day",
    )?;
    check(
        b.code.as_str() == "UB00073-251122-0002",
        "second code of the day",
    )?;
    check(
        c.code.as_str() == "UB00070-251122-0001",
        "each agency counts on its own",
    )?;
    check(
        d.code.as_str() == "UB00073-251123-0001",
        "a new day starts again at 0001",
    )?;
    let back = e(store.dossier(&a.code).await, "read")?.ok_or("dossier missing")?;
    check(
        back.fields == a.fields && back.documents == a.documents && back.lifecycle == a.lifecycle,
        "dossier round-trips",
    )?;
    check(
        back.applicant == a.applicant && back.submitted_at == a.submitted_at,
        "applicant round-trips",
    )?;
    let missing = DossierCode::parse("UB00073-251122-0099").map_err(|x| x.to_string())?;
    check(
        e(store.dossier(&missing).await, "read")?.is_none(),
        "unknown code is none",
    )?;
    Ok(())
}

/// Updates are optimistic: a stale version changes nothing.
pub async fn updates_are_atomic_and_optimistic(store: &dyn Store) -> Result<(), String> {
    let uid = seed(store).await?;
    let now = Utc::now();
    let d = e(
        store
            .create_dossier(new_dossier("UB00073", "00073", Some(uid), "An", now)?)
            .await,
        "create",
    )?;
    let mut l = d.lifecycle.clone();
    l.status = Status::Accepted;
    l.due_at = Some(now + Duration::days(3));
    let upd = DossierUpdate {
        code: d.code.clone(),
        expected_version: d.version,
        lifecycle: l.clone(),
        new_documents: vec![],
        audit: entry("dossier.accept", now),
        event: "dossier.accepted".into(),
        at: now,
    };
    let after = e(store.update_dossier(upd.clone()).await, "update")?;
    check(
        after.version == d.version + 1 && after.lifecycle.status == Status::Accepted,
        "update applied",
    )?;
    let audit_before = e(store.audit_records(0, 10_000).await, "audit")?.len();
    let stale = store.update_dossier(upd).await;
    check(
        matches!(stale, Err(StoreError::Conflict)),
        "stale version is a conflict",
    )?;
    check(
        e(store.audit_records(0, 10_000).await, "audit")?.len() == audit_before,
        "a refused update writes no audit record",
    )?;
    let cur = e(store.dossier(&d.code).await, "read")?.ok_or("missing")?;
    check(
        cur.version == after.version,
        "a refused update changes nothing",
    )?;
    Ok(())
}

/// Workqueue, my dossiers and staff search.
pub async fn queries(store: &dyn Store) -> Result<(), String> {
    let uid = seed(store).await?;
    let now = Utc::now();
    let a = e(
        store
            .create_dossier(new_dossier(
                "UB00073",
                "00073",
                Some(uid),
                "Nguyễn Văn An",
                now,
            )?)
            .await,
        "create",
    )?;
    e(
        store
            .create_dossier(new_dossier("UB00073", "00073", None, "Trần Thị Bình", now)?)
            .await,
        "create",
    )?;
    e(
        store
            .create_dossier(new_dossier("UB00070", "00070", None, "Lê Văn Cường", now)?)
            .await,
        "create",
    )?;
    let agency = Some(AgencyCode::parse("UB00073").map_err(|x| x.to_string())?);
    let q = |holders: Vec<Role>, text: Option<&str>| DossierQuery {
        agency: agency.clone(),
        holders,
        text: text.map(str::to_string),
        limit: 100,
        ..Default::default()
    };
    check(
        e(
            store.find_dossiers(&q(vec![Role::Officer], None)).await,
            "queue",
        )?
        .len()
            == 2,
        "officer queue holds the agency's new dossiers",
    )?;
    check(
        e(
            store.find_dossiers(&q(vec![Role::Leader], None)).await,
            "queue",
        )?
        .is_empty(),
        "leader queue empty",
    )?;
    let mine = e(
        store
            .find_dossiers(&DossierQuery {
                applicant_user_id: Some(uid),
                limit: 100,
                ..Default::default()
            })
            .await,
        "mine",
    )?;
    check(mine.len() == 1 && mine[0].code == a.code, "my dossiers")?;
    check(
        e(
            store.find_dossiers(&q(vec![], Some(a.code.as_str()))).await,
            "by code",
        )?
        .len()
            == 1,
        "search by code",
    )?;
    check(
        e(
            store.find_dossiers(&q(vec![], Some("Thị Bình"))).await,
            "by name",
        )?
        .len()
            == 1,
        "search by part of a name",
    )?;
    check(
        e(store.find_dossiers(&q(vec![], Some("%"))).await, "wildcard")?.is_empty(),
        "LIKE wildcards are literal",
    )?;
    e(
        store
            .create_dossier(new_dossier("UB00073", "00073", None, "Phạm Quốc Anh", now)?)
            .await,
        "create",
    )?;
    for (text, want, what) in [
        ("nguyen van an", 1, "a name typed without diacritics"),
        ("NGUYỄN  VĂN AN", 1, "a name in capitals"),
        ("an", 1, "a given name alone, not a prefix of another (Anh)"),
        ("quoc anh", 1, "a run of words from the middle"),
        ("van nguyen", 0, "words out of order"),
        ("binh tran", 0, "words out of order"),
        ("001090012345", 3, "a national ID number"),
        ("001 090 012 345", 3, "a national ID number with spaces"),
        ("--", 0, "punctuation only"),
    ] {
        let n = e(store.find_dossiers(&q(vec![], Some(text))).await, what)?.len();
        check(
            n == want,
            &format!("search {text:?} ({what}): {n} found, {want} expected"),
        )?;
    }
    let lower = a.code.as_str().to_ascii_lowercase();
    check(
        e(store.find_dossiers(&q(vec![], Some(&lower))).await, "code")?.len() == 1,
        "search by a code typed in lower case",
    )?;
    // The workqueue's counts cover the agency's whole queue.
    let ub73 = AgencyCode::parse("UB00073").map_err(|x| x.to_string())?;
    let counts = e(
        store
            .queue_counts(
                &ub73,
                &[Role::Officer, Role::Specialist, Role::Leader],
                now + Duration::days(1),
                now + Duration::days(2),
            )
            .await,
        "queue counts",
    )?;
    check(
        counts.len() == 1
            && counts[0].holder == Role::Officer
            && counts[0].status == Status::NewlyRegistered
            && counts[0].total == 3
            && counts[0].overdue == 0,
        &format!("queue counts of UB00073: {counts:?}"),
    )?;
    check(
        e(
            store.find_dossiers(&q(vec![], Some("Cường"))).await,
            "scope",
        )?
        .is_empty(),
        "search stays within the agency",
    )?;
    let counts = e(store.count_by_status().await, "counts")?;
    check(
        counts.get("newly_registered") == Some(&4),
        "count by status",
    )?;
    Ok(())
}

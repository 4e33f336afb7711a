//! The story tests every storage backend must pass. A backend crate calls
//! [`run_all`] (or each story) on a fresh, migrated, empty store. A
//! behaviour this suite does not test does not exist.
// Stories read top to bottom as the tests they are.
#![allow(clippy::too_many_lines)]

use chrono::{DateTime, Duration, TimeZone, Utc};
use motcua_domain::audit::{AuditEntry, verify_chain};
use motcua_domain::dossier::{Channel, Lifecycle, Role, Status};
use motcua_domain::procedure::{Procedure, parse_procedure};
use motcua_domain::units::{Agency, AgencyKind, BUILTIN_UNITS_CSV, parse_units_csv};
use motcua_domain::{AgencyCode, DossierCode, UnitCode};

use crate::bulk::{Cell, ExplainTarget, TABLES, TableRows};
use crate::{
    Applicant, DossierQuery, DossierUpdate, ImportOutcome, NewDossier, NewUser, Store, StoreError,
    StoredDocument,
};

const PROCEDURE: &str = r#"
code: "1.000001"
version: 1
name: { vi: "Thủ tục thử", en: "Test procedure" }
sector: test
sector_name: { vi: "Thử nghiệm", en: "Testing" }
level: commune
agency_kind: commune_peoples_committee
online: full
processing_time: { working_days: 3 }
documents:
  - { id: form, name: { vi: "Tờ khai", en: "Form" }, required: true, accept: [pdf] }
fields:
  - { id: full_name, label: { vi: "Họ tên", en: "Name" }, type: text, required: true }
workflow:
  - { id: reception, name: { vi: "Tiếp nhận", en: "Reception" }, role: officer, share: 20 }
  - { id: approval, name: { vi: "Phê duyệt", en: "Approval" }, role: leader, share: 80 }
result: { kind: certificate, name: { vi: "Giấy", en: "Paper" } }
legal_basis: ["Luật thử nghiệm"]
"#;

fn check(cond: bool, what: &str) -> Result<(), String> {
    if cond {
        Ok(())
    } else {
        Err(format!("conformance: {what}"))
    }
}

fn e<T: std::fmt::Debug>(r: Result<T, StoreError>, what: &str) -> Result<T, String> {
    r.map_err(|err| format!("conformance: {what}: {err}"))
}

pub fn entry(action: &str, at: DateTime<Utc>) -> AuditEntry {
    let mut e = AuditEntry::new(
        at,
        "tester",
        "officer",
        action,
        &serde_json::json!({ "action": action }),
    );
    e.agency_code = Some("UB00073".into());
    e
}

pub fn procedure() -> Result<Procedure, String> {
    parse_procedure("conformance.yaml", PROCEDURE).map_err(|issues| {
        format!(
            "fixture procedure: {}",
            issues
                .iter()
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join("; ")
        )
    })
}

fn agency(code: &str, unit: &str) -> Result<Agency, String> {
    Ok(Agency {
        code: AgencyCode::parse(code).map_err(|x| x.to_string())?,
        name_vi: format!("Ủy ban nhân dân {unit}"),
        name_en: format!("People's Committee {unit}"),
        kind: AgencyKind::CommunePeoplesCommittee,
        unit_code: UnitCode::parse(unit).map_err(|x| x.to_string())?,
        address: "Hà Nội".into(),
    })
}

/// Loads the units, two agencies, the fixture procedure and a citizen.
pub async fn seed(store: &dyn Store) -> Result<i64, String> {
    let units = parse_units_csv(BUILTIN_UNITS_CSV).map_err(|x| x.to_string())?;
    e(
        store
            .load_units(&units, entry("units.load", Utc::now()))
            .await,
        "load units",
    )?;
    e(
        store
            .put_agency(
                &agency("UB00073", "00073")?,
                entry("agency.put", Utc::now()),
            )
            .await,
        "agency",
    )?;
    e(
        store
            .put_agency(
                &agency("UB00070", "00070")?,
                entry("agency.put", Utc::now()),
            )
            .await,
        "agency",
    )?;
    e(
        store
            .put_procedure(&procedure()?, entry("procedure.import", Utc::now()))
            .await,
        "procedure",
    )?;
    let u = e(
        store
            .create_user(
                &NewUser {
                    username: "citizen".into(),
                    password_hash: "x".into(),
                    full_name: "Nguyễn Văn An".into(),
                    national_id: Some("001090012345".into()),
                    phone: None,
                    email: None,
                    roles: vec![Role::Citizen],
                    agency_code: None,
                },
                entry("user.create", Utc::now()),
            )
            .await,
        "create user",
    )?;
    Ok(u.id)
}

pub fn new_dossier(
    agency_code: &str,
    unit: &str,
    user: Option<i64>,
    name: &str,
    at: DateTime<Utc>,
) -> Result<NewDossier, String> {
    let mut fields = serde_json::Map::new();
    fields.insert("full_name".into(), name.into());
    Ok(NewDossier {
        procedure_code: "1.000001".into(),
        procedure_version: 1,
        agency_code: AgencyCode::parse(agency_code).map_err(|x| x.to_string())?,
        unit_code: UnitCode::parse(unit).map_err(|x| x.to_string())?,
        channel: Channel::Online,
        applicant: Applicant {
            user_id: user,
            full_name: name.into(),
            national_id: "001090012345".into(),
            phone: None,
            email: None,
        },
        fields,
        documents: vec![StoredDocument {
            document_id: "form".into(),
            filename: "to-khai.pdf".into(),
            content_type: "application/pdf".into(),
            size: 10,
            sha256: "ab".repeat(32),
            uploaded_at: at,
            stage: "initial".into(),
        }],
        submitted_at: at,
        lifecycle: Lifecycle::new(),
        audit: entry("dossier.submit", at),
        event: "dossier.submitted".into(),
        access_code: format!("{:010}", name.len() * 7919),
    })
}

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

/// Procedure versions: idempotent import, no silent rewrite, newest enabled wins.
pub async fn procedure_versions(store: &dyn Store) -> Result<(), String> {
    seed(store).await?;
    let mut p = procedure()?;
    check(
        e(
            store
                .put_procedure(&p, entry("procedure.import", Utc::now()))
                .await,
            "same",
        )? == ImportOutcome::Unchanged,
        "re-import unchanged",
    )?;
    p.name.en = "Changed".into();
    check(
        store
            .put_procedure(&p, entry("procedure.import", Utc::now()))
            .await
            .is_err(),
        "same version with other content refused",
    )?;
    p.version = 2;
    check(
        e(
            store
                .put_procedure(&p, entry("procedure.import", Utc::now()))
                .await,
            "v2",
        )? == ImportOutcome::Added,
        "v2 added",
    )?;
    let cur = e(store.current_procedure("1.000001").await, "current")?;
    check(
        cur.is_some_and(|c| c.definition.version == 2),
        "newest version is current",
    )?;
    e(
        store
            .set_procedure_enabled("1.000001", 2, false, entry("procedure.disable", Utc::now()))
            .await,
        "disable",
    )?;
    let cur = e(store.current_procedure("1.000001").await, "current")?;
    check(
        cur.is_some_and(|c| c.definition.version == 1),
        "disabling v2 falls back to v1",
    )?;
    check(
        e(store.procedure("1.000001", 2).await, "v2")?.is_some_and(|p| !p.enabled),
        "v2 kept, disabled",
    )?;
    check(
        e(store.procedure_versions("1.000001").await, "versions")?.len() == 2,
        "two versions listed",
    )?;
    p.version = 1;
    check(
        store
            .put_procedure(&p, entry("procedure.import", Utc::now()))
            .await
            .is_err(),
        "older or equal version with new content refused",
    )?;
    Ok(())
}

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

/// The audit chain links every write; the outbox is claimed once.
pub async fn audit_chain_and_outbox(store: &dyn Store) -> Result<(), String> {
    let uid = seed(store).await?;
    let now = Utc::now();
    let d = e(
        store
            .create_dossier(new_dossier("UB00073", "00073", Some(uid), "An", now)?)
            .await,
        "create",
    )?;
    e(
        store
            .append_audit(entry("dossier.view_personal_data", now))
            .await,
        "append",
    )?;
    let all = e(store.audit_records(0, 10_000).await, "audit")?;
    check(verify_chain(&all).is_ok(), "chain verifies")?;
    check(
        all.len() == 7,
        "every write is audited: units, 2 agencies, procedure, user, dossier, view",
    )?;
    let page = e(store.audit_records(2, 2).await, "page")?;
    check(page.len() == 2 && page[0].seq == 3, "paging by sequence")?;
    let mine = e(store.dossier_audit(&d.code).await, "dossier audit")?;
    check(
        mine.len() == 1 && mine[0].entry.action == "dossier.submit",
        "dossier's own records",
    )?;
    // An audited setting: value stored, chain grows by one and verifies.
    e(
        store
            .set_meta_audited("calendar.overrides", "{}", entry("calendar.change", now))
            .await,
        "set meta audited",
    )?;
    e(
        store
            .set_meta_audited(
                "calendar.overrides",
                r#"{"removed_holidays":[]}"#,
                entry("calendar.change", now),
            )
            .await,
        "set meta audited again",
    )?;
    check(
        e(store.meta("calendar.overrides").await, "meta")?.as_deref()
            == Some(r#"{"removed_holidays":[]}"#),
        "audited setting stored and replaced",
    )?;
    let all = e(store.audit_records(0, 10_000).await, "audit")?;
    check(
        verify_chain(&all).is_ok(),
        "chain verifies after audited settings",
    )?;
    check(
        all.len() == 9 && all[8].entry.action == "calendar.change",
        "each audited setting appends one record",
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
    e(store.set_meta("k", "v1").await, "meta")?;
    e(store.set_meta("k", "v2").await, "meta")?;
    check(
        e(store.meta("k").await, "meta")?.as_deref() == Some("v2"),
        "meta upserts",
    )?;
    Ok(())
}

/// Copies every table of `src` into the empty `dst` page by page through
/// the bulk interface (what `migrate-data` does): same counts, same
/// dossiers and codes, the audit chain verifies and goes on, counters and
/// ids continue after the copied rows.
pub async fn bulk_copy(src: &dyn Store, dst: &dyn Store) -> Result<(), String> {
    let uid = seed(src).await?;
    let now = Utc::now();
    let a = e(
        src.create_dossier(new_dossier("UB00073", "00073", Some(uid), "An", now)?)
            .await,
        "create",
    )?;
    e(
        src.create_dossier(new_dossier("UB00070", "00070", None, "Bình", now)?)
            .await,
        "create",
    )?;
    let mut lc = a.lifecycle.clone();
    lc.status = Status::Accepted;
    e(
        src.update_dossier(DossierUpdate {
            code: a.code.clone(),
            expected_version: 1,
            lifecycle: lc,
            new_documents: vec![],
            audit: entry("dossier.accept", now),
            event: "dossier.accepted".into(),
            at: now,
        })
        .await,
        "update",
    )?;
    e(
        src.create_token(&"t".repeat(64), uid, now + Duration::hours(1))
            .await,
        "token",
    )?;
    e(src.set_meta("demo_seeded", "yes").await, "meta")?;
    let claimed = e(src.claim_events(1).await, "claim")?;
    e(src.complete_event(claimed[0].id).await, "complete")?;

    for t in TABLES {
        let mut after: Option<Vec<Cell>> = None;
        loop {
            // Pages of two rows: the keyset paging is exercised everywhere.
            let rows = e(
                src.bulk_export(t.name, after.as_deref(), 2).await,
                &format!("export {}", t.name),
            )?;
            let Some(last) = rows.last() else { break };
            after = Some(last[..t.key].to_vec());
            e(
                dst.bulk_import(&[TableRows {
                    table: t.name,
                    rows,
                }])
                .await,
                &format!("import {}", t.name),
            )?;
        }
        let (n, m) = (
            e(src.bulk_count(t.name).await, "count")?,
            e(dst.bulk_count(t.name).await, "count")?,
        );
        check(n == m, &format!("{}: {n} rows copied as {m}", t.name))?;
    }
    check(
        e(src.bulk_export("units", None, 100_000).await, "units")?
            == e(dst.bulk_export("units", None, 100_000).await, "units")?,
        "rows are copied cell for cell",
    )?;
    let back = e(dst.dossier(&a.code).await, "read")?.ok_or("copied dossier missing")?;
    let orig = e(src.dossier(&a.code).await, "read")?.ok_or("dossier missing")?;
    check(back == orig, "a copied dossier reads the same")?;
    let found = e(
        dst.find_dossiers(&DossierQuery {
            agency: Some(orig.agency_code.clone()),
            text: Some(motcua_domain::text::fold(&orig.applicant.full_name)),
            limit: 10,
            ..Default::default()
        })
        .await,
        "search the copy",
    )?;
    check(
        found.iter().any(|d| d.code == orig.code),
        "a copied dossier is found by its applicant's name",
    )?;
    let chain = e(dst.audit_records(0, 100_000).await, "audit")?;
    check(
        verify_chain(&chain).is_ok() && chain == e(src.audit_records(0, 100_000).await, "audit")?,
        "the copied chain is the same chain and verifies",
    )?;
    check(
        e(dst.token_user(&"t".repeat(64), now).await, "token")?.map(|u| u.id) == Some(uid),
        "tokens are copied",
    )?;
    check(
        e(dst.pending_events().await, "pending")? == e(src.pending_events().await, "pending")?,
        "outbox state is copied",
    )?;
    // Life goes on in the copy: next code of the day, new ids, chain.
    let next = e(
        dst.create_dossier(new_dossier("UB00073", "00073", Some(uid), "An", now)?)
            .await,
        "create in copy",
    )?;
    check(
        next.code.as_str().ends_with("-0002") && next.id > a.id,
        "the copy numbers on after the copied dossiers",
    )?;
    let u = e(
        dst.create_user(
            &NewUser {
                username: "new".into(),
                password_hash: "x".into(),
                full_name: "Mới".into(),
                national_id: None,
                phone: None,
                email: None,
                roles: vec![Role::Citizen],
                agency_code: None,
            },
            entry("user.create", now),
        )
        .await,
        "create user in copy",
    )?;
    check(u.id > uid, "user ids continue after the copied ones")?;
    check(
        verify_chain(&e(dst.audit_records(0, 100_000).await, "audit")?).is_ok(),
        "the chain goes on in the copy",
    )?;
    // A row that does not continue the chain is refused whole.
    let last = e(dst.bulk_last("audit").await, "last")?.ok_or("no audit")?;
    let mut stale = last.clone();
    check(
        matches!(
            dst.bulk_import(&[TableRows {
                table: "audit",
                rows: vec![stale.clone()],
            }])
            .await,
            Err(StoreError::Conflict | StoreError::Duplicate(_))
        ),
        "an audit row that forks the chain is refused",
    )?;
    stale[0] = Cell::Int(last[0].int().unwrap_or(0) + 1);
    check(
        matches!(
            dst.bulk_import(&[TableRows {
                table: "audit",
                rows: vec![stale],
            }])
            .await,
            Err(StoreError::Conflict)
        ),
        "an audit row with a wrong link is refused",
    )?;
    // Counters merge: the larger wins.
    let day = crate::vietnam_day(now).format("%Y-%m-%d").to_string();
    e(
        dst.bulk_import(&[TableRows {
            table: "dossier_seq",
            rows: vec![vec![
                Cell::Text("UB00073".into()),
                Cell::Text(day.clone()),
                Cell::Int(1),
            ]],
        }])
        .await,
        "merge counter",
    )?;
    let seqs = e(dst.bulk_export("dossier_seq", None, 100).await, "seq")?;
    check(
        seqs.iter().any(|r| {
            r[0] == Cell::Text("UB00073".into())
                && r[1] == Cell::Text(day.clone())
                && r[2] == Cell::Int(2)
        }),
        "an imported counter never moves a counter back",
    )?;
    let plan = e(
        dst.explain(&ExplainTarget::Dossier(a.code.clone())).await,
        "explain",
    )?;
    check(!plan.trim().is_empty(), "explain prints a plan")?;
    e(dst.bulk_clear().await, "clear")?;
    check(
        e(
            dst.find_dossiers(&DossierQuery {
                agency: Some(orig.agency_code.clone()),
                text: Some(orig.applicant.full_name.clone()),
                limit: 10,
                ..Default::default()
            })
            .await,
            "search after clear",
        )?
        .is_empty(),
        "nothing is found after a clear",
    )?;
    for t in TABLES {
        check(
            e(dst.bulk_count(t.name).await, "count")? == 0,
            &format!("{} cleared", t.name),
        )?;
    }
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

/// Runs every story on `make()`'s fresh stores.
pub async fn run_all<S: Store, F, Fut>(make: F) -> Result<(), String>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = S>,
{
    accounts_and_tokens(&make().await).await?;
    procedure_versions(&make().await).await?;
    dossier_codes_and_round_trip(&make().await).await?;
    updates_are_atomic_and_optimistic(&make().await).await?;
    queries(&make().await).await?;
    audit_chain_and_outbox(&make().await).await?;
    meta_compare_and_set(&make().await).await?;
    bulk_copy(&make().await, &make().await).await?;
    pubsub(&make().await).await?;
    national_id_verification(&make().await).await?;
    throttle_counters(&make().await).await?;
    procedure_availability(&make().await).await?;
    audit_checkpoint_and_state(&make().await).await?;
    Ok(())
}

/// The key the backends' test stores sign the audit chain's head with.
pub fn test_key() -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[42u8; 32])
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

/// A province's own procedures and the availability of any procedure are
/// the province's; the national catalogue is not.
pub async fn procedure_availability(store: &dyn Store) -> Result<(), String> {
    seed(store).await?;
    let now = Utc::now();
    let hanoi = UnitCode::parse("01").map_err(|x| x.to_string())?;
    let cao_bang = UnitCode::parse("04").map_err(|x| x.to_string())?;
    let national = procedure()?;
    let refused = store
        .put_province_procedure(&national, &hanoi, entry("procedure.import", now))
        .await;
    check(
        matches!(refused, Err(StoreError::Invalid(_))),
        "a province cannot import a version of a national procedure",
    )?;
    let mut local = procedure()?;
    local.code = "9.000001".into();
    check(
        e(
            store
                .put_province_procedure(&local, &hanoi, entry("procedure.import", now))
                .await,
            "local import",
        )? == ImportOutcome::Added,
        "a province imports a procedure of its own",
    )?;
    let stored = e(store.current_procedure("9.000001").await, "current")?.ok_or("missing")?;
    check(
        stored.home_province.as_ref() == Some(&hanoi),
        "the procedure belongs to the province",
    )?;
    check(
        e(store.current_procedure("1.000001").await, "current")?
            .is_some_and(|p| p.home_province.is_none()),
        "the national procedure belongs to no province",
    )?;
    local.version = 2;
    for (attempt, what) in [
        (
            store
                .put_province_procedure(&local, &cao_bang, entry("procedure.import", now))
                .await,
            "another province cannot add a version",
        ),
        (
            store
                .put_procedure(&local, entry("procedure.import", now))
                .await,
            "the national import cannot take a province's code",
        ),
    ] {
        check(matches!(attempt, Err(StoreError::Invalid(_))), what)?;
    }
    let commune = UnitCode::parse("00073").map_err(|x| x.to_string())?;
    e(
        store
            .set_availability(
                &hanoi,
                "1.000001",
                Some(false),
                "province.admin",
                now,
                entry("procedure.unavailable", now),
            )
            .await,
        "set",
    )?;
    e(
        store
            .set_availability(
                &commune,
                "1.000001",
                Some(true),
                "province.admin",
                now,
                entry("procedure.available", now),
            )
            .await,
        "set commune",
    )?;
    let got = e(
        store
            .availability("1.000001", &[commune.clone(), hanoi.clone()])
            .await,
        "read",
    )?;
    check(
        got.len() == 2
            && got
                .iter()
                .any(|a| a.unit_code == hanoi && !a.available && a.changed_by == "province.admin")
            && got.iter().any(|a| a.unit_code == commune && a.available),
        "decisions per unit are kept",
    )?;
    check(
        e(
            store
                .availability("1.000001", std::slice::from_ref(&cao_bang))
                .await,
            "other",
        )?
        .is_empty(),
        "another province has no decision",
    )?;
    check(
        e(
            store.availability_in(std::slice::from_ref(&hanoi)).await,
            "in",
        )?
        .len()
            == 1,
        "the decisions of a unit",
    )?;
    e(
        store
            .set_availability(
                &commune,
                "1.000001",
                None,
                "province.admin",
                now,
                entry("procedure.availability_reset", now),
            )
            .await,
        "reset",
    )?;
    check(
        e(store.availability("1.000001", &[]).await, "all")?.len() == 1,
        "a removed decision is gone",
    )?;
    Ok(())
}

/// Every append signs the chain's head in its own transaction, and each
/// dossier names the record that set its current status: a status changed
/// outside the application is named.
pub async fn audit_checkpoint_and_state(store: &dyn Store) -> Result<(), String> {
    seed(store).await?;
    let now = Utc::now();
    let d = e(
        store
            .create_dossier(new_dossier("UB00073", "00073", None, "An", now)?)
            .await,
        "create",
    )?;
    let mut l = d.lifecycle.clone();
    l.status = Status::Accepted;
    let mut a = entry("dossier.accept", now);
    a.dossier_code = Some(d.code.to_string());
    a.from_status = Some("newly_registered".into());
    a.to_status = Some("accepted".into());
    e(
        store
            .update_dossier(DossierUpdate {
                code: d.code.clone(),
                expected_version: 1,
                lifecycle: l,
                new_documents: vec![],
                audit: a,
                event: "dossier.accepted".into(),
                at: now,
            })
            .await,
        "accept",
    )?;
    e(
        store
            .append_audit(entry("dossier.view_personal_data", now))
            .await,
        "view",
    )?;
    let (seq, hash) = e(store.audit_head().await, "head")?.ok_or("no head")?;
    let cp = e(store.audit_checkpoint().await, "checkpoint")?.ok_or("no checkpoint")?;
    check(
        cp.seq == seq && cp.hash == hash,
        "the checkpoint is the chain's head",
    )?;
    check(
        cp.verify(&test_key().verifying_key()).is_ok(),
        "the checkpoint is signed with the store's key",
    )?;
    let rec = e(store.audit_record(seq).await, "record")?.ok_or("no record")?;
    check(rec.hash == hash, "a record is read by its number")?;
    check(
        e(store.dossier_state_problems(10).await, "state")?.is_empty(),
        "every dossier's status is its records'",
    )?;
    // A row whose status its records never set (as if changed in the
    // database): the imported copy of a dossier names the accept record.
    let mut row = e(store.bulk_export("dossiers", None, 1).await, "export")?.remove(0);
    let t = crate::bulk::table("dossiers").map_err(|x| x.to_string())?;
    let col = |name: &str| t.columns.iter().position(|(n, _)| *n == name).unwrap_or(0);
    row[col("id")] = Cell::Int(999);
    row[col("code")] = Cell::Text("UB00073-000101-0001".into());
    row[col("status")] = Cell::Text("completed".into());
    // And one whose lifecycle (what its page shows) says another status
    // than its column and records.
    let mut other = e(store.bulk_export("dossiers", None, 1).await, "export")?.remove(0);
    other[col("id")] = Cell::Int(998);
    other[col("code")] = Cell::Text("UB00073-000101-0002".into());
    let Cell::Text(lifecycle) = &other[col("lifecycle")] else {
        return Err("the lifecycle is text".into());
    };
    let mut lifecycle: serde_json::Value =
        serde_json::from_str(lifecycle).map_err(|x| x.to_string())?;
    lifecycle["status"] = "withdrawn".into();
    other[col("lifecycle")] = Cell::Text(lifecycle.to_string());
    e(
        store
            .bulk_import(&[TableRows {
                table: "dossiers",
                rows: vec![row, other],
            }])
            .await,
        "import tampered rows",
    )?;
    let problems = e(store.dossier_state_problems(10).await, "state")?;
    let named: Vec<&str> = problems.iter().map(|p| p.code.as_str()).collect();
    check(
        named == ["UB00073-000101-0001", "UB00073-000101-0002"],
        "the tampered dossiers are named, and only they",
    )?;
    Ok(())
}

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

//! The stories of [`crate::MaintenanceStore`].

use chrono::{Duration, Utc};
use motcua_domain::audit::verify_chain;
use motcua_domain::dossier::{Role, Status};

use super::{check, e, entry, new_dossier, seed};
use crate::bulk::{Cell, ExplainTarget, TABLES, TableRows};
use crate::{DossierQuery, DossierUpdate, NewUser, Store, StoreError};

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

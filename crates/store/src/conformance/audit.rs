//! The stories of [`crate::AuditStore`].

use chrono::Utc;
use motcua_domain::audit::verify_chain;
use motcua_domain::dossier::Status;

use super::{check, e, entry, new_dossier, seed, test_key};
use crate::bulk::{Cell, TableRows};
use crate::{DossierUpdate, Store};

/// The audit chain links every write (audited settings too), read by page
/// and per dossier.
pub async fn audit_chain_links_every_write(store: &dyn Store) -> Result<(), String> {
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

//! The stories of [`crate::CatalogueStore`].

use chrono::Utc;
use motcua_domain::UnitCode;

use super::{check, e, entry, procedure, seed};
use crate::{ImportOutcome, Store, StoreError};

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

//! Reads that scale: on a generated data set the workqueue, "my dossiers",
//! tracking and staff search queries are answered through indexes — the
//! plans are printed (run with `--nocapture` to see them) and checked for
//! a full scan of `dossiers`. SQLite always; PostgreSQL when
//! `MOTCUA_TEST_POSTGRES_URL` is set.

use motcua::generate::{Options, generate};
use motcua_domain::dossier::Role;
use motcua_domain::{AgencyCode, DossierCode};
use motcua_store::{DossierQuery, ExplainTarget, Store};

use crate::cluster::PgDb;
use crate::helpers::*;

const DOSSIERS: u64 = 20_000;

/// Generates the data set and checks it.
async fn fill(store: &dyn Store) {
    let report = generate(
        store,
        &Options {
            dossiers: DOSSIERS,
            seed: 7,
            batch: 5_000,
            progress: false,
            // As a large load does: indexes and search terms built at the
            // end (the plans below show they were).
            defer_indexes: true,
        },
    )
    .await
    .expect("generate");
    assert_eq!(report.dossiers, DOSSIERS);
    eprintln!(
        "generated {} dossiers in {:.1} s ({:.0} dossiers/s, debug build)",
        report.dossiers,
        report.seconds,
        report.dossiers_per_second()
    );
    let counts = store.count_by_status().await.expect("counts");
    assert!(counts.values().sum::<u64>() >= DOSSIERS);
    assert!(
        counts.get("result_returned").copied().unwrap_or(0) > DOSSIERS / 2,
        "mostly returned: {counts:?}"
    );
    // Every generated dossier is found by its applicant's name.
    let some = store
        .find_dossiers(&DossierQuery {
            agency: Some(AgencyCode::parse("UB00073").expect("agency")),
            holders: vec![Role::Officer, Role::Specialist, Role::Leader],
            limit: 20,
            ..Default::default()
        })
        .await
        .expect("queue");
    assert!(!some.is_empty());
    for d in &some {
        let found = store
            .find_dossiers(&DossierQuery {
                agency: Some(d.agency_code.clone()),
                text: Some(motcua_domain::text::fold(&d.applicant_name)),
                limit: 500,
                ..Default::default()
            })
            .await
            .expect("search");
        assert!(
            found.iter().any(|f| f.code == d.code) || found.len() == 500,
            "{} found by the name {}",
            d.code,
            d.applicant_name
        );
    }
    // A name search lists newest first however the rows are read: a short
    // page is the head of a longer one, and a status filter keeps the same
    // order. "van" (Văn, a common middle name) matches many dossiers of
    // the provincial police, the busiest agency.
    let given = "van".to_string();
    let search = |limit: u32, statuses: Vec<motcua_domain::dossier::Status>| DossierQuery {
        agency: Some(AgencyCode::parse("CA01").expect("agency")),
        text: Some(given.clone()),
        statuses,
        limit,
        ..Default::default()
    };
    let codes = |rows: &[motcua_store::DossierSummary]| -> Vec<String> {
        rows.iter().map(|r| r.code.as_str().to_string()).collect()
    };
    let long = store
        .find_dossiers(&search(500, vec![]))
        .await
        .expect("long");
    let short = store
        .find_dossiers(&search(37, vec![]))
        .await
        .expect("short");
    eprintln!("search \"{given}\" at CA01: {} dossiers", long.len());
    assert!(long.len() > 37, "{given}: {} dossiers", long.len());
    assert_eq!(codes(&short), codes(&long[..37]), "{given}");
    let status = long[0].status;
    let filtered = store
        .find_dossiers(&search(500, vec![status]))
        .await
        .expect("filtered");
    if long.len() < 500 {
        let expected: Vec<_> = long
            .iter()
            .filter(|r| r.status == status)
            .cloned()
            .collect();
        assert_eq!(codes(&filtered), codes(&expected), "{given} {status:?}");
    }
    assert!(filtered.iter().all(|r| r.status == status));
    assert_eq!(
        codes(&filtered[..filtered.len().min(20)]),
        codes(
            &store
                .find_dossiers(&search(20, vec![status]))
                .await
                .expect("filtered page")
        )
    );
    assert_eq!(
        store
            .meta(motcua_store::bulk::DEFERRED_INDEXES)
            .await
            .expect("meta"),
        None,
        "nothing left deferred"
    );
    // The code is unique again once the load is over: a second dossier
    // with an existing code is refused, and nothing is written.
    let first = store
        .bulk_export("dossiers", None, 1)
        .await
        .expect("export")
        .remove(0);
    let mut twin = first.clone();
    twin[0] = motcua_store::Cell::Int(i64::MAX / 2);
    let refused = store
        .bulk_import(&[motcua_store::TableRows {
            table: "dossiers",
            rows: vec![twin],
        }])
        .await;
    assert!(refused.is_err(), "a duplicate code is refused: {refused:?}");
    let counts_after = store.count_by_status().await.expect("counts");
    assert_eq!(counts_after, counts, "nothing written");
    tabs_hold_what_they_count(store).await;
    let chain = motcua::verify_audit(store).await.expect("verify");
    assert!(
        chain.is_ok(),
        "generated data keeps the chain valid: {chain:?}"
    );
}

/// Each tab of the busiest commune's workqueue lists its own dossiers, as
/// many as its count says (up to the limit), most urgent first — not a
/// filter over the first rows of the whole queue.
async fn tabs_hold_what_they_count(store: &dyn Store) {
    use motcua_web::dossiers::views::{QUEUE_TABS, QueueCounts, queue_query, queue_tab};
    let agency = AgencyCode::parse("UB00073").expect("agency");
    let holders = [Role::Officer, Role::Specialist, Role::Leader];
    let now = chrono::Utc::now();
    let counts = QueueCounts::of(
        &store
            .queue_counts(&agency, &holders, now, now)
            .await
            .expect("counts"),
    );
    assert!(counts.total > 0);
    for limit in [5u32, 500] {
        for tab in QUEUE_TABS {
            let q = queue_query(&agency, &holders, tab, limit).expect("query");
            let rows = store.find_dossiers(&q).await.expect("tab");
            assert_eq!(
                rows.len(),
                counts.tab(tab).min(limit as usize),
                "tab {tab}, limit {limit}: {counts:?}"
            );
            for r in &rows {
                if tab != "all" {
                    assert_eq!(queue_tab(r.status, r.holder), tab, "{}", r.code);
                }
            }
            let keys: Vec<_> = rows
                .iter()
                .map(|r| (r.due_at.is_none(), r.due_at))
                .collect();
            assert!(
                keys.windows(2).all(|w| w[0] <= w[1]),
                "tab {tab}: most urgent first"
            );
        }
    }
    // A specialist alone has no tab of dossiers to approve.
    assert!(queue_query(&agency, &[Role::Leader], "approve", 10).is_some());
    assert!(queue_query(&agency, &[Role::Specialist], "approve", 10).is_none());
}

/// (name, plan) of the four read paths.
async fn plans(store: &dyn Store) -> Vec<(&'static str, String)> {
    let agency = AgencyCode::parse("UB00073").expect("agency");
    let citizen = store
        .user_by_name("citizen")
        .await
        .expect("user")
        .expect("citizen");
    let queue = store
        .find_dossiers(&DossierQuery {
            agency: Some(agency.clone()),
            holders: vec![Role::Officer],
            limit: 500,
            ..Default::default()
        })
        .await
        .expect("queue");
    assert!(
        !queue.is_empty(),
        "the generated data gives the officer work"
    );
    let code = DossierCode::parse(queue[0].code.as_str()).expect("code");
    let targets = [
        (
            "workqueue",
            ExplainTarget::Find(DossierQuery {
                agency: Some(agency.clone()),
                holders: vec![Role::Officer, Role::Specialist, Role::Leader],
                limit: 500,
                ..Default::default()
            }),
        ),
        (
            "my dossiers",
            ExplainTarget::Find(DossierQuery {
                applicant_user_id: Some(citizen.id),
                limit: 200,
                ..Default::default()
            }),
        ),
        ("tracking", ExplainTarget::Dossier(code.clone())),
        (
            "staff search by name",
            ExplainTarget::Find(DossierQuery {
                agency: Some(agency.clone()),
                text: Some("Nguyễn Văn An".into()),
                limit: 200,
                ..Default::default()
            }),
        ),
        (
            "staff search by given name",
            ExplainTarget::Find(DossierQuery {
                agency: Some(agency.clone()),
                text: Some("an".into()),
                limit: 200,
                ..Default::default()
            }),
        ),
        (
            "staff search by national ID",
            ExplainTarget::Find(DossierQuery {
                agency: Some(agency.clone()),
                text: Some("001090012345".into()),
                limit: 200,
                ..Default::default()
            }),
        ),
        (
            "staff search by code",
            ExplainTarget::Find(DossierQuery {
                agency: Some(agency),
                text: Some(code.as_str().to_string()),
                limit: 200,
                ..Default::default()
            }),
        ),
    ];
    let mut out = Vec::new();
    for (name, t) in targets {
        out.push((name, store.explain(&t).await.expect("explain")));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_reads_use_indexes_on_generated_data() {
    let dir = temp_dir("scale");
    let cfg = motcua::Config {
        data_dir: dir.join("data"),
        procedures_dir: workspace().join("procedures"),
        ..motcua::Config::default()
    };
    let inst = motcua::open(&cfg).await.expect("open");
    motcua::demo::seed(inst.store.as_ref(), &cfg)
        .await
        .expect("seed");
    fill(inst.store.as_ref()).await;
    for (name, plan) in plans(inst.store.as_ref()).await {
        eprintln!("SQLite EXPLAIN QUERY PLAN, {name}:\n{plan}");
        // Tables appear under their aliases (d: dossiers, t and o:
        // dossier_terms); subqueries of the workqueue are `p…` and `q`.
        assert!(plan.contains("USING"), "{name} uses an index: {plan}");
        for l in plan.lines().map(str::trim) {
            for table in ["dossiers", "d", "t", "o", "dossier_terms"] {
                assert!(
                    !(l == format!("SCAN {table}") || l.starts_with(&format!("SCAN {table} "))),
                    "{name} must search {table} through an index, not scan it: {plan}"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_reads_use_indexes_on_generated_data() {
    let Some(db) = PgDb::create("scale").await else {
        return;
    };
    let dir = temp_dir("scale-pg");
    let cfg = motcua::Config {
        data_dir: dir.join("data"),
        database_url: Some(db.url.clone()),
        procedures_dir: workspace().join("procedures"),
        ..motcua::Config::default()
    };
    let inst = motcua::open(&cfg).await.expect("open");
    motcua::demo::seed(inst.store.as_ref(), &cfg)
        .await
        .expect("seed");
    let pg = inst.postgres.clone().expect("postgres");
    fill(inst.store.as_ref()).await;
    // Statistics as autovacuum would have them on a live database.
    sqlx::query("ANALYZE")
        .execute(pg.backend().pool())
        .await
        .expect("analyze");
    for (name, plan) in plans(inst.store.as_ref()).await {
        eprintln!("PostgreSQL EXPLAIN, {name}:\n{plan}");
        assert!(
            !plan.contains("Seq Scan on dossiers"),
            "{name} must not scan dossiers: {plan}"
        );
        assert!(
            plan.contains("Index") && plan.contains("dossiers"),
            "{name} goes through an index of dossiers: {plan}"
        );
    }
    pg.close().await;
}

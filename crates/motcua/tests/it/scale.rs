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
    let chain = motcua::verify_audit(store).await.expect("verify");
    assert!(
        chain.is_ok(),
        "generated data keeps the chain valid: {chain:?}"
    );
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
            "staff search",
            ExplainTarget::Find(DossierQuery {
                agency: Some(agency),
                text: Some("Nguyễn Văn".into()),
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
        let dossier_lines: Vec<&str> = plan.lines().filter(|l| l.contains("dossiers")).collect();
        assert!(!dossier_lines.is_empty(), "{name}: {plan}");
        for l in dossier_lines {
            assert!(
                l.starts_with("SEARCH dossiers USING"),
                "{name} must search dossiers through an index, not scan them: {plan}"
            );
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
        .execute(pg.pool())
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

//! Temporary diagnostic: cost of the parts of a submission, in-process.
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use motcua_domain::audit::{AuditEntry, payload_hash};
use motcua_domain::dossier::{Channel, Lifecycle, Role};
use motcua_domain::procedure::parse_procedure;
use motcua_domain::units::{Agency, AgencyKind, BUILTIN_UNITS_CSV, parse_units_csv};
use motcua_domain::{AgencyCode, UnitCode};
use motcua_store::{
    Applicant, LocalObjectStore, NewDossier, NewUser, ObjectStore, Store, StoredDocument,
    vietnam_day,
};
use motcua_store_sqlite::{Durability, SqliteStore};
use serde_json::json;

fn audit(a: &str) -> AuditEntry {
    AuditEntry {
        at: Utc::now(),
        actor: "system".into(),
        actor_role: "system".into(),
        agency_code: None,
        action: a.into(),
        dossier_code: None,
        from_status: None,
        to_status: None,
        note: None,
        payload_hash: payload_hash(&json!({})),
    }
}

fn pdf(n: u64) -> Vec<u8> {
    let mut v = vec![7u8; 100 * 1024];
    v[..9].copy_from_slice(b"%PDF-1.4\n");
    let t = format!("{n:020}");
    v[9..29].copy_from_slice(t.as_bytes());
    v
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let root = std::path::PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or("/tmp/motcua-probe".into()),
    );
    let yaml = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/procedures/bench-submission.yaml"
    ))?;
    let p = parse_procedure("x", &yaml).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let values = match json!({
        "ward_full_name": "Nguyễn Minh Khôi", "ward_birth_date": "2015-03-14", "ward_national_id": "001215012345",
        "ward_residence": "Số 12 phố Hàng Bông, Phường Cửa Nam, Hà Nội", "guardian_relationship": "grandparent",
        "guardianship_reason": "Cha mẹ của cháu đều đã mất; ông nội nhận giám hộ theo Điều 52 Bộ luật Dân sự.",
        "guardian_residence": "Số 12 phố Hàng Bông, Phường Cửa Nam, Hà Nội", "guardian_phone": "0912 345 678",
        "guardian_email": "citizen@example.vn", "extract_copies": 2 })
    {
        serde_json::Value::Object(m) => m,
        _ => unreachable!(),
    };
    let today = vietnam_day(Utc::now());
    let t = Instant::now();
    for _ in 0..1000 {
        let _ = p.validate_fields(&values, today);
    }
    println!(
        "validate_fields: {:.1} us/call",
        t.elapsed().as_secs_f64() * 1e6 / 1000.0
    );
    let nopat = parse_procedure("y", &yaml.replace("    pattern: '[\\p{L} ]+'\n", ""))
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    assert!(nopat.fields.iter().all(|f| f.pattern.is_none()));
    let t = Instant::now();
    for _ in 0..1000 {
        let _ = nopat.validate_fields(&values, today);
    }
    println!(
        "validate_fields without the pattern: {:.1} us/call",
        t.elapsed().as_secs_f64() * 1e6 / 1000.0
    );
    if std::env::var("ONLY_VALIDATE").is_ok() {
        return Ok(());
    }
    let fields = p
        .validate_fields(&values, today)
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;

    for (dname, dur) in [("full", Durability::Full), ("normal", Durability::Normal)] {
        let dir = root.join(dname);
        std::fs::create_dir_all(&dir)?;
        let store = SqliteStore::open(&format!("sqlite://{}/p.db", dir.display()), dur).await?;
        store.migrate().await?;
        store
            .load_units(&parse_units_csv(BUILTIN_UNITS_CSV)?, audit("u"))
            .await?;
        let agency = Agency {
            code: AgencyCode::parse("UB00073")?,
            name_vi: "x".into(),
            name_en: "x".into(),
            kind: AgencyKind::CommunePeoplesCommittee,
            unit_code: UnitCode::parse("00073")?,
            address: "x".into(),
        };
        store.put_agency(&agency, audit("a")).await?;
        store.put_procedure(&p, audit("p")).await?;
        let user = store
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
                audit("u"),
            )
            .await?;
        store
            .create_token("tokhash", user.id, Utc::now() + chrono::Duration::hours(1))
            .await?;
        let store = Arc::new(store);
        let objects = Arc::new(LocalObjectStore::open(dir.join("objects"))?);
        let (pcode, fields2, uid, fname, acode, ucode) = (
            p.code.clone(),
            fields.clone(),
            user.id,
            user.full_name.clone(),
            agency.code.clone(),
            agency.unit_code.clone(),
        );
        let mk = move |i: u64, sha: String| {
            let now = Utc::now();
            NewDossier {
                procedure_code: pcode.clone(),
                procedure_version: 1,
                agency_code: acode.clone(),
                unit_code: ucode.clone(),
                channel: Channel::Online,
                applicant: Applicant {
                    user_id: Some(uid),
                    full_name: fname.clone(),
                    national_id: "001090012345".into(),
                    phone: None,
                    email: None,
                },
                fields: fields2.clone(),
                documents: vec![StoredDocument {
                    document_id: "guardianship-papers".into(),
                    filename: format!("f{i}.pdf"),
                    content_type: "application/pdf".into(),
                    size: 102400,
                    sha256: sha,
                    uploaded_at: now,
                    stage: "initial".into(),
                }],
                submitted_at: now,
                lifecycle: Lifecycle::new(),
                audit: audit("dossier.submit"),
                event: "dossier.submitted".into(),
            }
        };
        // create_dossier only, sequential
        let n = 2000u64;
        let t = Instant::now();
        for i in 0..n {
            store.create_dossier(mk(i, format!("{:064}", i))).await?;
        }
        let e = t.elapsed();
        println!(
            "[{dname}] create_dossier sequential: {:.3} ms each, {:.0}/s",
            e.as_secs_f64() * 1000.0 / n as f64,
            n as f64 / e.as_secs_f64()
        );
        // create_dossier, 32 concurrent tasks
        for conc in [8u64, 32] {
            let t = Instant::now();
            let mut hs = Vec::new();
            for w in 0..conc {
                let store = store.clone();
                let mk = mk.clone();
                hs.push(tokio::spawn(async move {
                    for i in 0..(3200 / conc) {
                        store
                            .create_dossier(mk(1_000_000 + w * 10000 + i, format!("{:064}", 5)))
                            .await?;
                    }
                    anyhow::Ok(())
                }));
            }
            for h in hs {
                h.await??;
            }
            let e = t.elapsed();
            println!(
                "[{dname}] create_dossier {conc} concurrent: {:.0}/s",
                3200.0 / e.as_secs_f64()
            );
        }
        // object put
        let n = 1000u64;
        let t = Instant::now();
        for i in 0..n {
            objects
                .put(pdf(i + (dname.len() as u64) * 1_000_000))
                .await?;
        }
        let e = t.elapsed();
        println!(
            "[{dname}] objects.put sequential: {:.3} ms each",
            e.as_secs_f64() * 1000.0 / n as f64
        );
        let t = Instant::now();
        let mut hs = Vec::new();
        for w in 0..8u64 {
            let o = objects.clone();
            hs.push(tokio::spawn(async move {
                for i in 0..250 {
                    o.put(pdf(50_000_000 + w * 10000 + i)).await?;
                }
                anyhow::Ok(())
            }));
        }
        for h in hs {
            h.await??;
        }
        println!(
            "[{dname}] objects.put 8 concurrent: {:.0}/s",
            2000.0 / t.elapsed().as_secs_f64()
        );
        // put + create, 32 concurrent (the server's write path without HTTP)
        let t = Instant::now();
        let mut hs = Vec::new();
        for w in 0..32u64 {
            let o = objects.clone();
            let store = store.clone();
            let mk = mk.clone();
            hs.push(tokio::spawn(async move {
                for i in 0..100 {
                    let r = o.put(pdf(90_000_000 + w * 10000 + i)).await?;
                    store.create_dossier(mk(i, r.sha256)).await?;
                }
                anyhow::Ok(())
            }));
        }
        for h in hs {
            h.await??;
        }
        println!(
            "[{dname}] put+create 32 concurrent: {:.0}/s",
            3200.0 / t.elapsed().as_secs_f64()
        );
        // put+create with a non-yielding CPU burn per iteration (HTTP + validation stand-in)
        if std::env::var("BURN").is_ok() {
            for burn_us in [0u64, 250, 500, 1000, 1500] {
                let t = Instant::now();
                let mut hs = Vec::new();
                for w in 0..32u64 {
                    let o = objects.clone();
                    let store = store.clone();
                    let mk = mk.clone();
                    hs.push(tokio::spawn(async move {
                        for i in 0..60 {
                            let b = Instant::now();
                            let mut x = 0u64;
                            while b.elapsed() < Duration::from_micros(burn_us) {
                                x = x.wrapping_add(1);
                                std::hint::black_box(x);
                            }
                            let r = o
                                .put(pdf(300_000_000 + burn_us * 100_000 + w * 1000 + i))
                                .await?;
                            store.create_dossier(mk(i, r.sha256)).await?;
                        }
                        anyhow::Ok(())
                    }));
                }
                for h in hs {
                    h.await??;
                }
                let e = t.elapsed().as_secs_f64();
                println!(
                    "[{dname}] put+create 32 concurrent with {burn_us} us CPU burn each: {:.0}/s (CPU-bound limit {:.0}/s)",
                    1920.0 / e,
                    if burn_us == 0 {
                        f64::INFINITY
                    } else {
                        2.0e6 / burn_us as f64
                    }
                );
            }
        }
        // reads per request
        let n = 2000;
        let t = Instant::now();
        for _ in 0..n {
            store.token_user("tokhash", Utc::now()).await?;
            store.current_procedure(&p.code).await?;
            store.unit(&agency.unit_code).await?;
            store
                .agency_for(AgencyKind::CommunePeoplesCommittee, &agency.unit_code)
                .await?;
        }
        println!(
            "[{dname}] 4 reads of a submission, sequential: {:.3} ms per submission",
            t.elapsed().as_secs_f64() * 1000.0 / n as f64
        );
        let _ = Duration::ZERO;
        store.close().await;
    }
    Ok(())
}

//! Demo data, seeded on the first start of `serve --demo` only.

use motcua_domain::dossier::Role;
use motcua_domain::units::{Agency, AgencyKind};
use motcua_domain::{AgencyCode, UnitCode};
use motcua_store::{NewUser, Store, StoreError, Verification, VerificationMethod};

use crate::{Config, import_procedures, read_procedures, system_audit};

pub const DEMO_PASSWORD: &str = "motcua-demo";

/// The demo agency: People's Committee of Phường Cửa Nam, Hà Nội.
pub const DEMO_AGENCY: &str = "UB00073";

struct DemoAgency {
    code: &'static str,
    vi: &'static str,
    en: &'static str,
    kind: AgencyKind,
    unit: &'static str,
    address: &'static str,
}

const AGENCIES: &[DemoAgency] = &[
    DemoAgency {
        code: "UB00073",
        vi: "Ủy ban nhân dân Phường Cửa Nam",
        en: "People's Committee of Cua Nam Ward",
        kind: AgencyKind::CommunePeoplesCommittee,
        unit: "00073",
        address: "Bộ phận Một cửa, Phường Cửa Nam, Hà Nội",
    },
    DemoAgency {
        code: "UB00070",
        vi: "Ủy ban nhân dân Phường Hoàn Kiếm",
        en: "People's Committee of Hoan Kiem Ward",
        kind: AgencyKind::CommunePeoplesCommittee,
        unit: "00070",
        address: "Bộ phận Một cửa, Phường Hoàn Kiếm, Hà Nội",
    },
    DemoAgency {
        code: "UB01273",
        vi: "Ủy ban nhân dân Phường Thục Phán",
        en: "People's Committee of Thuc Phan Ward",
        kind: AgencyKind::CommunePeoplesCommittee,
        unit: "01273",
        address: "Bộ phận Một cửa, Phường Thục Phán, Cao Bằng",
    },
    DemoAgency {
        code: "TTHCC01",
        vi: "Trung tâm Phục vụ hành chính công Thành phố Hà Nội",
        en: "Hanoi Public Administrative Service Centre",
        kind: AgencyKind::ProvincialServiceCentre,
        unit: "01",
        address: "Hà Nội",
    },
    DemoAgency {
        code: "STP01",
        vi: "Sở Tư pháp Thành phố Hà Nội",
        en: "Hanoi Department of Justice",
        kind: AgencyKind::JusticeDepartment,
        unit: "01",
        address: "Hà Nội",
    },
    DemoAgency {
        code: "SXD01",
        vi: "Sở Xây dựng Thành phố Hà Nội",
        en: "Hanoi Department of Construction",
        kind: AgencyKind::ConstructionDepartment,
        unit: "01",
        address: "Hà Nội",
    },
    DemoAgency {
        code: "SNNMT01",
        vi: "Sở Nông nghiệp và Môi trường Thành phố Hà Nội",
        en: "Hanoi Department of Agriculture and Environment",
        kind: AgencyKind::AgricultureEnvironmentDepartment,
        unit: "01",
        address: "Hà Nội",
    },
    DemoAgency {
        code: "SYT01",
        vi: "Sở Y tế Thành phố Hà Nội",
        en: "Hanoi Department of Health",
        kind: AgencyKind::HealthDepartment,
        unit: "01",
        address: "Hà Nội",
    },
    DemoAgency {
        code: "CA01",
        vi: "Công an Thành phố Hà Nội",
        en: "Hanoi City Police",
        kind: AgencyKind::ProvincialPolice,
        unit: "01",
        address: "Hà Nội",
    },
    DemoAgency {
        code: "STC01",
        vi: "Sở Tài chính Thành phố Hà Nội",
        en: "Hanoi Department of Finance",
        kind: AgencyKind::FinanceDepartment,
        unit: "01",
        address: "Hà Nội",
    },
    DemoAgency {
        code: "SNV01",
        vi: "Sở Nội vụ Thành phố Hà Nội",
        en: "Hanoi Department of Home Affairs",
        kind: AgencyKind::HomeAffairsDepartment,
        unit: "01",
        address: "Hà Nội",
    },
];

/// (user name, full name, national id, roles, agency)
type DemoUser = (
    &'static str,
    &'static str,
    Option<&'static str>,
    &'static [Role],
    Option<&'static str>,
);

const USERS: &[DemoUser] = &[
    (
        "citizen",
        "Nguyễn Văn An",
        Some("001090012345"),
        &[Role::Citizen],
        None,
    ),
    (
        "citizen2",
        "Trần Thị Bình",
        Some("001195054321"),
        &[Role::Citizen],
        None,
    ),
    (
        "officer",
        "Lê Thị Thu",
        None,
        &[Role::Officer],
        Some("UB00073"),
    ),
    (
        "specialist",
        "Phạm Minh Đức",
        None,
        &[Role::Specialist],
        Some("UB00073"),
    ),
    (
        "leader",
        "Hoàng Văn Hùng",
        None,
        &[Role::Leader],
        Some("UB00073"),
    ),
    (
        "admin",
        "Vũ Thị Mai",
        None,
        &[Role::AgencyAdmin],
        Some("UB00073"),
    ),
    (
        "officer.hoankiem",
        "Đỗ Thị Lan",
        None,
        &[Role::Officer],
        Some("UB00070"),
    ),
    (
        "officer.caobang",
        "Nông Văn Sơn",
        None,
        &[Role::Officer],
        Some("UB01273"),
    ),
    (
        "province.admin",
        "Bùi Quang Huy",
        None,
        &[Role::ProvinceAdmin],
        Some("TTHCC01"),
    ),
    (
        "ioc",
        "Trung tâm điều hành",
        None,
        &[Role::IocViewer],
        Some("TTHCC01"),
    ),
];

/// Seeds agencies, users and procedures unless already done. Returns
/// whether anything was seeded.
pub async fn seed(store: &dyn Store, cfg: &Config) -> anyhow::Result<bool> {
    if store.meta("demo_seeded").await?.is_some() {
        // Seeded by an earlier release, before numbers were verified.
        verify_demo_citizens(store).await?;
        return Ok(false);
    }
    // Every step is idempotent, so that several nodes starting at once on
    // one PostgreSQL all start: what another node already wrote is skipped
    // (and a lost race to create it is not an error).
    for a in AGENCIES {
        let agency = Agency {
            code: AgencyCode::parse(a.code)?,
            name_vi: a.vi.into(),
            name_en: a.en.into(),
            kind: a.kind,
            unit_code: UnitCode::parse(a.unit)?,
            address: a.address.into(),
        };
        if store.agency(&agency.code).await?.as_ref() == Some(&agency) {
            continue;
        }
        match store
            .put_agency(
                &agency,
                system_audit("agency.put", &serde_json::json!({ "code": a.code })),
            )
            .await
        {
            Ok(()) => {}
            // Another node inserted the same agency in the same instant:
            // fine once it is there as seeded, an error otherwise.
            Err(StoreError::Duplicate(_))
                if store.agency(&agency.code).await?.as_ref() == Some(&agency) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let hash =
        motcua_commands::accounts::hash_password(DEMO_PASSWORD).map_err(anyhow::Error::msg)?;
    for (username, name, nid, roles, agency) in USERS {
        if store.user_by_name(username).await?.is_some() {
            continue;
        }
        let user = NewUser {
            username: (*username).into(),
            password_hash: hash.clone(),
            full_name: (*name).into(),
            national_id: nid.map(str::to_string),
            phone: nid.map(|_| "0912345678".to_string()),
            email: nid.map(|_| format!("{username}@example.vn")),
            roles: roles.to_vec(),
            agency_code: agency.map(AgencyCode::parse).transpose()?,
        };
        match store
            .create_user(
                &user,
                system_audit("user.create", &serde_json::json!({ "username": username })),
            )
            .await
        {
            // Another node created it in the meantime.
            Ok(_) | Err(StoreError::Duplicate(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    verify_demo_citizens(store).await?;
    if cfg.procedures_dir.is_dir() {
        let (procs, issues) = read_procedures(&cfg.procedures_dir)?;
        if !issues.is_empty() {
            for i in &issues {
                eprintln!("{i}");
            }
            anyhow::bail!("the shipped procedures do not lint clean");
        }
        import_procedures(store, &procs).await?;
    } else {
        tracing::warn!(dir = %cfg.procedures_dir.display(), "no procedures directory; the catalogue is empty");
    }
    store
        .set_meta("demo_seeded", &chrono::Utc::now().to_rfc3339())
        .await?;
    Ok(true)
}

/// The demo citizens' national ID numbers count as verified, without any
/// check (method `demo`, shown as such on their pages): demo mode only, so
/// that counter dossiers and prefill can be tried at once.
async fn verify_demo_citizens(store: &dyn Store) -> anyhow::Result<()> {
    for (username, _, nid, _, _) in USERS {
        let Some(nid) = nid else { continue };
        let Some(u) = store.user_by_name(username).await? else {
            continue;
        };
        if u.national_id_verified.is_some() {
            continue;
        }
        let v = Verification {
            at: chrono::Utc::now(),
            by: "demo".into(),
            method: VerificationMethod::Demo,
        };
        let entry = system_audit(
            "user.verify_national_id",
            &serde_json::json!({ "username": username, "method": "demo" }),
        );
        match store.verify_national_id(u.id, nid, &v, entry).await {
            // Another node verified it first.
            Ok(_) | Err(StoreError::Duplicate(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

pub fn logins() -> String {
    let mut s = format!("Demo logins (password: {DEMO_PASSWORD}):\n");
    for (username, name, _, roles, agency) in USERS {
        let roles: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
        s.push_str(&format!(
            "  {username:<18} {:<22} {name}{}\n",
            roles.join(","),
            agency.map(|a| format!(" ({a})")).unwrap_or_default()
        ));
    }
    s.push_str(
        "  (citizen and citizen2: national ID numbers verified by the demo, without any check)\n",
    );
    s
}

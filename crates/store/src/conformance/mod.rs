//! The story tests every storage backend must pass. A backend crate calls
//! [`run_all`] (or each story) on a fresh, migrated, empty store. A
//! behaviour this suite does not test does not exist.
//!
//! The stories of each sub-trait of [`Store`] are in a file of their own;
//! this one has the fixtures they share and [`run_all`].
// Stories read top to bottom as the tests they are.
#![allow(clippy::too_many_lines)]

mod accounts;
mod audit;
mod catalogue;
mod dossiers;
mod maintenance;
mod outbox;
mod pubsub;
mod settings;

pub use accounts::{accounts_and_tokens, national_id_verification, throttle_counters};
pub use audit::{audit_chain_links_every_write, audit_checkpoint_and_state};
pub use catalogue::{procedure_availability, procedure_versions};
pub use dossiers::{dossier_codes_and_round_trip, queries, updates_are_atomic_and_optimistic};
pub use maintenance::bulk_copy;
pub use outbox::outbox_is_claimed_once;
pub use pubsub::pubsub;
pub use settings::{meta_compare_and_set, settings_upsert};

use chrono::{DateTime, Utc};
use motcua_domain::audit::AuditEntry;
use motcua_domain::dossier::{Channel, Lifecycle, Role};
use motcua_domain::procedure::{Procedure, parse_procedure};
use motcua_domain::units::{Agency, AgencyKind, BUILTIN_UNITS_CSV, parse_units_csv};
use motcua_domain::{AgencyCode, UnitCode};

use crate::{Applicant, NewDossier, NewUser, Store, StoreError, StoredDocument};

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

/// Runs every story on `make()`'s fresh stores.
pub async fn run_all<S: Store, F, Fut>(make: F) -> Result<(), String>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = S>,
{
    // AccountStore
    accounts_and_tokens(&make().await).await?;
    national_id_verification(&make().await).await?;
    throttle_counters(&make().await).await?;
    // CatalogueStore
    procedure_versions(&make().await).await?;
    procedure_availability(&make().await).await?;
    // DossierStore
    dossier_codes_and_round_trip(&make().await).await?;
    updates_are_atomic_and_optimistic(&make().await).await?;
    queries(&make().await).await?;
    // AuditStore
    audit_chain_links_every_write(&make().await).await?;
    audit_checkpoint_and_state(&make().await).await?;
    // OutboxStore
    outbox_is_claimed_once(&make().await).await?;
    // SettingsStore
    settings_upsert(&make().await).await?;
    meta_compare_and_set(&make().await).await?;
    // PubSubStore
    pubsub(&make().await).await?;
    // MaintenanceStore
    bulk_copy(&make().await, &make().await).await?;
    Ok(())
}

/// The key the backends' test stores sign the audit chain's head with.
pub fn test_key() -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[42u8; 32])
}

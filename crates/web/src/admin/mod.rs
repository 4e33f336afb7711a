//! Administration pages: users and roles, agencies, procedures, holidays.
//!
//! Agency admins manage the users of their own agency; province admins
//! manage every agency of their province (users and agencies) and the
//! procedure catalogue, which all agencies share. Every change is written
//! with its audit record by the store; every POST checks the CSRF token.

pub mod agencies;
pub mod holidays;
pub mod links;
pub mod procedures;
pub mod users;

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::Datelike;
use motcua_domain::audit::AuditEntry;
use motcua_domain::dossier::Role;
use motcua_domain::units::Agency;
use motcua_domain::{AgencyCode, UnitCode};
use motcua_store::User;
use serde::Deserialize;

use crate::kernel::access::AdminPage;
use crate::kernel::error::ApiError;
use crate::kernel::labels::role_label;
use crate::kernel::page;
use crate::kernel::page::Ctx;
use crate::kernel::page::PageResult;
use crate::kernel::routes::Table;
use crate::state::AppState;
use motcua_commands::dossiers::audit_entry;

pub fn routes(state: AppState) -> Table {
    page::pages(
        state,
        Table::new()
            .get("/quan-tri", home)
            .get("/quan-tri/nguoi-dung", users::users)
            .post("/quan-tri/nguoi-dung", users::create_user)
            .post("/quan-tri/nguoi-dung/{id}/khoa", users::set_disabled)
            .post("/quan-tri/nguoi-dung/{id}/mat-khau", users::reset_password)
            .get("/quan-tri/co-quan", agencies::agencies)
            .post("/quan-tri/co-quan", agencies::agency_save)
            .get("/quan-tri/co-quan/{code}", agencies::agency_edit)
            .get("/quan-tri/thu-tuc", procedures::procedures)
            .post("/quan-tri/thu-tuc/nhap", procedures::import_procedure)
            .get("/quan-tri/thu-tuc/{code}", procedures::procedure_latest)
            .get(
                "/quan-tri/thu-tuc/{code}/phien-ban/{version}",
                procedures::procedure_version,
            )
            .post(
                "/quan-tri/thu-tuc/{code}/phien-ban/{version}/trang-thai",
                procedures::procedure_toggle,
            )
            .post(
                "/quan-tri/thu-tuc/{code}/ap-dung",
                procedures::procedure_availability,
            )
            .get("/quan-tri/lien-ket-ho-so", links::link_reviews)
            .post("/quan-tri/lien-ket-ho-so/{id}", links::link_review_decide)
            .get("/quan-tri/ngay-nghi", holidays::holidays)
            .post("/quan-tri/ngay-nghi", holidays::holidays_save),
    )
}

/// Roles an agency admin may give; province admins may also give
/// [`PROVINCE_ROLES`].
const AGENCY_ROLES: [Role; 4] = [
    Role::Officer,
    Role::Specialist,
    Role::Leader,
    Role::AgencyAdmin,
];
const PROVINCE_ROLES: [Role; 2] = [Role::ProvinceAdmin, Role::IocViewer];

/// The signed-in administrator and the agencies they manage.
pub(crate) struct Admin {
    user: User,
    /// `ProvinceAdmin` or `AgencyAdmin`, as recorded in the audit chain.
    role: Role,
    province: Option<UnitCode>,
    /// Agencies in scope, by code.
    agencies: Vec<Agency>,
}

impl Admin {
    pub(crate) fn is_province(&self) -> bool {
        self.role == Role::ProvinceAdmin
    }

    fn manages(&self, a: &AgencyCode) -> bool {
        self.agencies.iter().any(|x| &x.code == a)
    }

    /// Users of an agency in scope; agency admins do not manage province
    /// roles.
    fn manages_user(&self, u: &User) -> bool {
        u.agency_code.as_ref().is_some_and(|a| self.manages(a))
            && (self.is_province() || !u.roles.iter().any(|r| PROVINCE_ROLES.contains(r)))
    }

    fn assignable(&self) -> Vec<Role> {
        let mut r = AGENCY_ROLES.to_vec();
        if self.is_province() {
            r.extend(PROVINCE_ROLES);
        }
        r
    }

    fn entry(&self, st: &AppState, action: &str, payload: &serde_json::Value) -> AuditEntry {
        audit_entry(st, &self.user, self.role, action, payload)
    }
}

/// The province of an administrative unit.
async fn province_of(st: &AppState, u: &UnitCode) -> Result<Option<UnitCode>, ApiError> {
    if u.is_province() {
        Ok(Some(u.clone()))
    } else {
        Ok(st.store.unit(u).await?.and_then(|x| x.parent_code))
    }
}

/// `user` as an administrator, with the agencies they manage (403 for
/// anyone else).
pub(crate) async fn admin_of(st: &AppState, user: User) -> Result<Admin, ApiError> {
    let role = if motcua_commands::accounts::has(&user, Role::ProvinceAdmin) {
        Role::ProvinceAdmin
    } else if motcua_commands::accounts::has(&user, Role::AgencyAdmin) {
        Role::AgencyAdmin
    } else {
        return Err(ApiError::forbidden());
    };
    let own = user.agency_code.clone().ok_or_else(ApiError::forbidden)?;
    let all = st.store.agencies().await?;
    let mine = all
        .iter()
        .find(|a| a.code == own)
        .cloned()
        .ok_or_else(ApiError::forbidden)?;
    let province = province_of(st, &mine.unit_code).await?;
    let agencies = if role == Role::ProvinceAdmin {
        let mut cache: BTreeMap<UnitCode, Option<UnitCode>> = BTreeMap::new();
        let mut v = Vec::new();
        for a in all {
            let p = match cache.get(&a.unit_code) {
                Some(p) => p.clone(),
                None => {
                    let p = province_of(st, &a.unit_code).await?;
                    cache.insert(a.unit_code.clone(), p.clone());
                    p
                }
            };
            if p.is_some() && p == province {
                v.push(a);
            }
        }
        v
    } else {
        vec![mine]
    };
    Ok(Admin {
        user,
        role,
        province,
        agencies,
    })
}

fn agency_name(lang: crate::kernel::i18n::Lang, a: &Agency) -> String {
    if lang == crate::kernel::i18n::Lang::En && !a.name_en.is_empty() {
        a.name_en.clone()
    } else {
        a.name_vi.clone()
    }
}

/// A strong random password (18 characters, ~100 bits, no look-alikes).
fn generate_password() -> Result<String, ApiError> {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut raw = [0u8; 18];
    getrandom::fill(&mut raw).map_err(ApiError::internal)?;
    // 256 is not a multiple of the alphabet's size: reject the biased tail.
    let limit = 256 - (256 % ALPHABET.len());
    let mut out = String::new();
    let mut pool = raw.to_vec();
    while out.len() < 18 {
        if pool.is_empty() {
            let mut more = [0u8; 18];
            getrandom::fill(&mut more).map_err(ApiError::internal)?;
            pool.extend_from_slice(&more);
        }
        let b = usize::from(pool.remove(0));
        if b < limit {
            out.push(char::from(ALPHABET[b % ALPHABET.len()]));
        }
    }
    Ok(out)
}

async fn hash(password: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || motcua_commands::accounts::hash_password(&password))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)
}

/// An option of a select or a checkbox.
pub struct Choice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

/// A confirmation shown after a redirect (`?xong=…`), from a fixed list.
#[derive(Deserialize, Default)]
pub struct DoneQuery {
    xong: Option<String>,
    ma: Option<String>,
}

fn flash_of(ctx: &Ctx, q: &DoneQuery) -> Option<String> {
    let k = q.xong.as_deref()?;
    const KNOWN: [&str; 12] = [
        "availability-saved",
        "link-kept",
        "link-removed",
        "calendar-saved",
        "disabled",
        "enabled",
        "agency-saved",
        "imported",
        "unchanged",
        "proc-enabled",
        "proc-disabled",
        "created",
    ];
    KNOWN
        .contains(&k)
        .then(|| ctx.t(&format!("admin-done-{k}")))
}

// ---------------------------------------------------------------------------
// Dashboard
// ---------------------------------------------------------------------------

pub struct Tile {
    pub href: &'static str,
    pub label: String,
    pub count: String,
}

#[derive(Template)]
#[template(path = "admin/home.html")]
struct HomePage<'a> {
    ctx: &'a Ctx,
    title: String,
    section: &'static str,
    role: String,
    scope: String,
    tiles: Vec<Tile>,
}

/// `GET /quan-tri`: what the administrator manages.
pub async fn home(State(st): State<AppState>, ctx: Ctx, AdminPage(a): AdminPage) -> PageResult {
    let users = st
        .store
        .users()
        .await?
        .iter()
        .filter(|u| a.manages_user(u))
        .count();
    let procs = st.catalogue().await?.len();
    let year = motcua_store::vietnam_day(st.clock.now()).year();
    let holidays = st.calendar_of(a.province.as_ref()).holidays(year).len();
    let scope = if a.is_province() {
        let name = match &a.province {
            Some(p) => st
                .store
                .unit(p)
                .await?
                .map(|u| u.name)
                .unwrap_or_else(|| p.to_string()),
            None => String::new(),
        };
        let mut args = serde_json::Map::new();
        args.insert("province".into(), name.into());
        args.insert("n".into(), a.agencies.len().into());
        ctx.lang.text_with("admin-scope-province", &args)
    } else {
        let mut args = serde_json::Map::new();
        args.insert(
            "agency".into(),
            a.agencies
                .first()
                .map(|x| agency_name(ctx.lang, x))
                .unwrap_or_default()
                .into(),
        );
        ctx.lang.text_with("admin-scope-agency", &args)
    };
    let page = HomePage {
        ctx: &ctx,
        title: ctx.t("admin-title"),
        section: "home",
        role: role_label(ctx.lang, a.role.as_str()),
        scope,
        tiles: vec![
            Tile {
                href: "/quan-tri/nguoi-dung",
                label: ctx.t("admin-users"),
                count: users.to_string(),
            },
            Tile {
                href: "/quan-tri/co-quan",
                label: ctx.t("admin-agencies"),
                count: a.agencies.len().to_string(),
            },
            Tile {
                href: "/quan-tri/thu-tuc",
                label: ctx.t("admin-procedures"),
                count: procs.to_string(),
            },
            Tile {
                href: "/quan-tri/ngay-nghi",
                label: ctx.t("admin-holidays"),
                count: holidays.to_string(),
            },
        ],
    };
    Ok(ctx.render(StatusCode::OK, page.render()))
}

//! Printable Forms 01–05 of Circular 01/2018/TT-VPCP (A5), for staff.
//!
//! Form 01 is the receipt page (`/ho-so/{code}/bien-nhan`); Forms 02–05
//! are built from the dossier's audit timeline and lifecycle. A form that
//! does not apply to the dossier (no refusal, no apology …) is a 404.

use crate::kernel::access::{SignedIn, StaffPage};
use crate::kernel::i18n::args;
use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use chrono::{DateTime, Utc};
use motcua_domain::audit::AuditRecord;
use motcua_domain::calendar::Timeliness;
use motcua_domain::dossier::Role;
use motcua_store::{Dossier, User};

use crate::kernel::error::ApiError;
use crate::kernel::i18n::Lang;
use crate::state::AppState;

use crate::kernel::labels::role_label;
use crate::kernel::page::Ctx;
use crate::kernel::page::PageResult;
use crate::kernel::page::fmt_dt;
use crate::kernel::page::fmt_opt;
use crate::kernel::page::url_encode;
use motcua_commands::dossiers::audit_view;
use motcua_commands::dossiers::load_dossier;
use motcua_commands::dossiers::procedure_of;

/// The header every form shares.
pub struct FormHead {
    pub agency: String,
    pub number: &'static str,
    pub title: String,
    pub code: String,
    /// "Hà Nội, ngày 05 tháng 03 năm 2026" style line.
    pub place_date: String,
}

/// `dd/mm/yyyy` in Vietnam time.
fn fmt_day(t: DateTime<Utc>) -> String {
    motcua_store::vietnam_day(t).format("%d/%m/%Y").to_string()
}

fn place_date(lang: Lang, place: &str, t: DateTime<Utc>) -> String {
    let day = motcua_store::vietnam_day(t);
    let mut args = serde_json::Map::new();
    args.insert("place".into(), place.into());
    args.insert("d".into(), day.format("%d").to_string().into());
    args.insert("m".into(), day.format("%m").to_string().into());
    args.insert("y".into(), day.format("%Y").to_string().into());
    args.insert("date".into(), day.format("%d/%m/%Y").to_string().into());
    lang.text_with("form-place-date", &args)
}

/// Everything the forms of one dossier are built from.
struct Source {
    d: Dossier,
    procedure: String,
    agency: String,
    /// Province or commune name for the place line.
    place: String,
    address: String,
    events: Vec<AuditRecord>,
}

async fn full_name(st: &AppState, username: &str) -> Result<String, ApiError> {
    Ok(st
        .store
        .user_by_name(username)
        .await?
        .map(|u| u.full_name)
        .unwrap_or_else(|| username.to_string()))
}

/// Loads a dossier for a staff member allowed to see it (audited as a
/// view of personal data, like the dossier page).
async fn load(
    st: &AppState,
    ctx: &Ctx,
    user: User,
    code: &str,
) -> Result<(User, Source), ApiError> {
    let d = load_dossier(st, &user, code).await?;
    audit_view(st, &user, &d, "dossier.view_personal_data").await?;
    let p = procedure_of(st, &d).await?;
    let agency = st.store.agency(&d.agency_code).await?;
    let place = match &agency {
        Some(a) => {
            let unit = st.store.unit(&a.unit_code).await?;
            let province = match unit.as_ref().and_then(|u| u.parent_code.clone()) {
                Some(pc) => st.store.unit(&pc).await?,
                None => unit,
            };
            province.map(|u| u.name).unwrap_or_default()
        }
        None => String::new(),
    };
    let events = st.store.dossier_audit(&d.code).await?;
    let src = Source {
        procedure: p.name.get(ctx.lang.code()).to_string(),
        agency: agency
            .as_ref()
            .map(|a| {
                if ctx.lang == Lang::En && !a.name_en.is_empty() {
                    a.name_en.clone()
                } else {
                    a.name_vi.clone()
                }
            })
            .unwrap_or_default(),
        address: agency.map(|a| a.address).unwrap_or_default(),
        place,
        events,
        d,
    };
    Ok((user, src))
}

fn head(ctx: &Ctx, src: &Source, number: &'static str, at: DateTime<Utc>) -> FormHead {
    FormHead {
        agency: src.agency.clone(),
        number,
        title: ctx.t(&format!("form-{number}-title")),
        code: src.d.code.to_string(),
        place_date: place_date(ctx.lang, &src.place, at),
    }
}

/// The newest audit record of an action on the dossier.
fn last_event<'a>(src: &'a Source, action: &str) -> Option<&'a AuditRecord> {
    src.events.iter().rev().find(|r| r.entry.action == action)
}

// ---------------------------------------------------------------------------
// Index
// ---------------------------------------------------------------------------

pub struct FormLink {
    pub number: &'static str,
    pub title: String,
    pub href: Option<String>,
}

#[derive(Template)]
#[template(path = "dossiers/forms/index.html")]
struct IndexPage<'a> {
    ctx: &'a Ctx,
    title: String,
    code: String,
    links: Vec<FormLink>,
}

/// `GET /ho-so/{code}/mau-phieu`: the forms of a dossier, those that apply
/// as links.
pub async fn index(
    State(st): State<AppState>,
    ctx: Ctx,
    StaffPage(user): StaffPage,
    Path(code): Path<String>,
) -> PageResult {
    let (_user, src) = load(&st, &ctx, user, &code).await?;
    let c = src.d.code.to_string();
    let lc = &src.d.lifecycle;
    let applies = [
        ("01", true),
        (
            "02",
            last_event(&src, "dossier.request_supplement").is_some(),
        ),
        ("03", last_event(&src, "dossier.refuse").is_some()),
        ("04", !lc.apologies.is_empty()),
        ("05", !lc.steps.is_empty()),
    ];
    let links = applies
        .iter()
        .map(|(n, ok)| FormLink {
            number: n,
            title: ctx.t(&format!("form-{n}-title")),
            href: ok.then(|| {
                if *n == "01" {
                    format!("/ho-so/{c}/bien-nhan")
                } else {
                    format!("/ho-so/{c}/mau-phieu/{n}")
                }
            }),
        })
        .collect();
    let page = IndexPage {
        ctx: &ctx,
        title: format!("{} {}", ctx.t("form-index"), c),
        code: c,
        links,
    };
    Ok(ctx.render(StatusCode::OK, page.render()))
}

// ---------------------------------------------------------------------------
// Forms 02–04: a letter to the applicant with a reason
// ---------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "dossiers/forms/letter.html")]
struct LetterPage<'a> {
    ctx: &'a Ctx,
    title: String,
    head: FormHead,
    applicant: String,
    /// The paragraphs before the reason.
    intro: Vec<String>,
    reason_label: String,
    reason: String,
    /// The paragraphs after the reason.
    outro: Vec<String>,
    facts: Vec<(String, String)>,
    signer_role: String,
    signer: String,
    dossier_href: String,
}

#[derive(Template)]
#[template(path = "dossiers/forms/form05.html")]
struct ControlPage<'a> {
    ctx: &'a Ctx,
    title: String,
    head: FormHead,
    facts: Vec<(String, String)>,
    steps: Vec<StepLine>,
    dossier_href: String,
}

pub struct StepLine {
    pub name: String,
    pub handler: String,
    pub started: String,
    pub due: String,
    pub finished: String,
    pub result: String,
    pub class: &'static str,
}

type Rendered = Result<String, askama::Error>;

/// Form 02 (supplement request) or 03 (refusal), from the event that made it.
async fn letter_02_03(
    st: &AppState,
    ctx: &Ctx,
    src: &Source,
    n: &str,
    common: &serde_json::Map<String, serde_json::Value>,
    dossier_href: String,
) -> Result<Rendered, ApiError> {
    let lang = ctx.lang;
    let d = &src.d;
    let (action, number) = if n == "02" {
        ("dossier.request_supplement", "02")
    } else {
        ("dossier.refuse", "03")
    };
    let ev = last_event(src, action).ok_or_else(ApiError::not_found)?;
    let signer = full_name(st, &ev.entry.actor).await?;
    let mut outro_args = common.clone();
    outro_args.insert("signer".into(), signer.clone().into());
    outro_args.insert("address".into(), src.address.clone().into());
    let page = LetterPage {
        ctx,
        title: format!("{} · {}", ctx.t(&format!("form-{number}-title")), d.code),
        head: head(ctx, src, number, ev.entry.at),
        applicant: d.applicant.full_name.clone(),
        intro: vec![lang.text_with(&format!("form-{number}-intro"), common)],
        reason_label: ctx.t(&format!("form-{number}-reason")),
        reason: ev.entry.note.clone().unwrap_or_default(),
        outro: vec![lang.text_with(&format!("form-{number}-outro"), &outro_args)],
        facts: vec![
            (ctx.t("page-dossier-code"), d.code.to_string()),
            (ctx.t("page-procedure"), src.procedure.clone()),
            (ctx.t("page-submitted-at"), fmt_dt(d.submitted_at)),
            (ctx.t(&format!("form-{number}-at")), fmt_dt(ev.entry.at)),
        ],
        signer_role: ctx.t(&format!("form-{number}-signer")),
        signer,
        dossier_href,
    };
    Ok(page.render())
}

/// Form 04: the apology with a new appointment.
async fn letter_04(
    st: &AppState,
    ctx: &Ctx,
    src: &Source,
    common: &serde_json::Map<String, serde_json::Value>,
    dossier_href: String,
) -> Result<Rendered, ApiError> {
    let lang = ctx.lang;
    let d = &src.d;
    let lc = &d.lifecycle;
    let a = lc.apologies.last().ok_or_else(ApiError::not_found)?;
    let signer = full_name(st, &a.by).await?;
    let mut intro_args = common.clone();
    intro_args.insert("previous".into(), fmt_day(a.previous_due_at).into());
    let mut outro_args = common.clone();
    outro_args.insert("new_date".into(), fmt_dt(a.new_due_at).into());
    let page = LetterPage {
        ctx,
        title: format!("{} · {}", ctx.t("form-04-title"), d.code),
        head: head(ctx, src, "04", a.at),
        applicant: d.applicant.full_name.clone(),
        intro: vec![lang.text_with("form-04-intro", &intro_args)],
        reason_label: ctx.t("form-04-reason"),
        reason: a.reason.clone(),
        outro: vec![
            lang.text_with("form-04-outro", &outro_args),
            ctx.t("form-thanks"),
        ],
        facts: vec![
            (ctx.t("page-dossier-code"), d.code.to_string()),
            (ctx.t("form-04-previous"), fmt_dt(a.previous_due_at)),
            (ctx.t("form-04-new"), fmt_dt(a.new_due_at)),
        ],
        signer_role: ctx.t("form-04-signer"),
        signer,
        dossier_href,
    };
    Ok(page.render())
}

/// Form 05: the control sheet of the dossier's steps.
async fn control_05(
    st: &AppState,
    ctx: &Ctx,
    src: &Source,
    dossier_href: String,
) -> Result<Rendered, ApiError> {
    let lang = ctx.lang;
    let d = &src.d;
    let lc = &d.lifecycle;
    if lc.steps.is_empty() {
        return Err(ApiError::not_found());
    }
    let p = procedure_of(st, d).await?;
    let mut steps = Vec::new();
    for s in &lc.steps {
        let name = p
            .workflow
            .iter()
            .find(|w| w.id == s.id)
            .map(|w| w.name.get(lang.code()).to_string())
            .unwrap_or_else(|| s.id.clone());
        let handler = match &s.handled_by {
            Some(u) => full_name(st, u).await?,
            None => String::new(),
        };
        let role = role_label(lang, Role::from(s.role).as_str());
        let (result, class) = match s.timeliness {
            Some(Timeliness::Early) => (ctx.t("timeliness-early"), "done"),
            Some(Timeliness::OnTime) => (ctx.t("timeliness-on_time"), "done"),
            Some(Timeliness::Late) => (ctx.t("timeliness-late"), "late"),
            None if s.started_at.is_some() => (ctx.t("form-05-in-progress"), "current"),
            None => (String::new(), ""),
        };
        steps.push(StepLine {
            name: format!("{name} ({role})"),
            handler,
            started: fmt_opt(s.started_at),
            due: fmt_dt(s.due_at),
            finished: fmt_opt(s.finished_at),
            result,
            class,
        });
    }
    let mut facts = vec![
        (ctx.t("page-dossier-code"), d.code.to_string()),
        (ctx.t("page-applicant"), d.applicant.full_name.clone()),
        (ctx.t("page-procedure"), src.procedure.clone()),
        (ctx.t("page-received-at"), fmt_opt(lc.accepted_at)),
        (ctx.t("page-due-at"), fmt_opt(lc.due_at)),
    ];
    if let Some(t) = lc.appointment_at.filter(|t| Some(*t) != lc.due_at) {
        facts.push((ctx.t("page-appointment-at"), fmt_dt(t)));
    }
    if let Some(t) = lc.completed_at {
        facts.push((ctx.t("page-completed-at"), fmt_dt(t)));
    }
    if let Some(t) = lc.returned_at {
        facts.push((ctx.t("page-returned-at"), fmt_dt(t)));
    }
    let page = ControlPage {
        ctx,
        title: format!("{} · {}", ctx.t("form-05-title"), d.code),
        head: head(ctx, src, "05", lc.accepted_at.unwrap_or(d.submitted_at)),
        facts,
        steps,
        dossier_href,
    };
    Ok(page.render())
}

/// `GET /ho-so/{code}/mau-phieu/{n}`: Form `n` (01 → the receipt).
pub async fn form(
    State(st): State<AppState>,
    ctx: Ctx,
    SignedIn(user): SignedIn,
    Path((code, n)): Path<(String, String)>,
) -> PageResult {
    if !matches!(n.as_str(), "01" | "02" | "03" | "04" | "05") {
        return Err(ApiError::not_found());
    }
    if n == "01" {
        return Ok(
            Redirect::to(&format!("/ho-so/{}/bien-nhan", url_encode(&code))).into_response(),
        );
    }
    let StaffPage(user) = StaffPage::of(user)?;
    let (_user, src) = load(&st, &ctx, user, &code).await?;
    let d = &src.d;
    let dossier_href = format!("/ho-so/{}", d.code);
    let common = args(&[
        ("agency", src.agency.clone()),
        ("applicant", d.applicant.full_name.clone()),
        ("procedure", src.procedure.clone()),
        ("code", d.code.to_string()),
        ("submitted", fmt_day(d.submitted_at)),
    ]);
    let html = match n.as_str() {
        "02" | "03" => letter_02_03(&st, &ctx, &src, &n, &common, dossier_href).await?,
        "04" => letter_04(&st, &ctx, &src, &common, dossier_href).await?,
        _ => control_05(&st, &ctx, &src, dossier_href).await?,
    };
    Ok(ctx.render(StatusCode::OK, html))
}

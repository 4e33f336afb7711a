//! A dossier's pages: its receipt (Form 01), the citizen's list, the
//! dossier page (citizen and staff, with the actions of each role) and
//! public tracking.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use chrono::{DateTime, Utc};
use motcua_domain::DossierCode;
use motcua_domain::dossier::{Action, Command, EVALUATION_CRITERIA, SatisfactionLevel, Status};
use motcua_domain::procedure::Procedure;
use motcua_store::{Dossier, DossierQuery, User};
use serde::Deserialize;

use crate::dossiers::apply::DocInput;
use crate::dossiers::apply::upload_input;
use crate::dossiers::support::allowed_actions;
use crate::kernel::access::{CheckedMultipart, SignedIn};
use crate::kernel::body::document_response;
use crate::kernel::error::ApiError;
use crate::kernel::i18n::{Lang, args};
use crate::kernel::labels::action_label;
use crate::kernel::labels::action_problem;
use crate::kernel::labels::problem_text;
use crate::kernel::labels::processing_time_label;
use crate::kernel::labels::role_label;
use crate::kernel::labels::status_label;
use crate::kernel::page::Ctx;
use crate::kernel::page::PageResult;
use crate::kernel::page::fmt_dt;
use crate::kernel::page::fmt_opt;
use crate::kernel::page::text_opt;
use crate::state::AppState;
use motcua_commands::dossiers::audit_view;
use motcua_commands::dossiers::load_dossier;
use motcua_commands::dossiers::parse_new_due;
use motcua_commands::dossiers::procedure_of;
use motcua_commands::dossiers::take_action;
use motcua_commands::dossiers::timeline;
use motcua_commands::files::check_file;
use motcua_commands::files::store_file;

// ---------------------------------------------------------------------------
// Receipt (Form 01)
// ---------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "dossiers/receipt.html")]
struct ReceiptPage<'a> {
    ctx: &'a Ctx,
    title: String,
    code: String,
    procedure: String,
    applicant: String,
    agency: String,
    address: String,
    received_label: String,
    received: String,
    due: String,
    status: String,
    documents: Vec<String>,
    qr_svg: String,
    track_url: String,
    dossier_href: String,
    /// The secret, grouped for reading aloud and typing (`12345 67890`).
    access_code: String,
    /// Shown to the applicant until the agency receives the dossier.
    success: Option<Success>,
}

/// "Submitted": what happens next, and when the result may be expected.
struct Success {
    next: String,
    expected: String,
    originals: Option<String>,
}

/// The panel of a dossier just submitted online, for its applicant.
async fn success_panel(
    st: &AppState,
    ctx: &Ctx,
    d: &Dossier,
    p: &Procedure,
    agency: &str,
) -> Result<Option<Success>, ApiError> {
    let mine = ctx
        .user
        .as_ref()
        .is_some_and(|u| d.applicant.user_id == Some(u.id));
    if !mine || d.lifecycle.status != Status::NewlyRegistered {
        return Ok(None);
    }
    let cal = st.calendar_for(&d.unit_code).await?;
    let expected = expected_due(&cal, p.processing_time, d.submitted_at);
    let l = ctx.lang;
    Ok(Some(Success {
        next: l.text_with(
            "receipt-success-next",
            &args(&[("agency", agency.to_string())]),
        ),
        expected: l.text_with(
            "receipt-success-expected",
            &args(&[
                ("date", fmt_dt(expected)),
                ("time", processing_time_label(l, p.processing_time)),
            ]),
        ),
        originals: (p.online == motcua_domain::procedure::OnlineLevel::Partial)
            .then(|| l.text("receipt-success-originals")),
    }))
}

/// `1234567890` as `12345 67890`.
fn group_digits(code: &str) -> String {
    let chars: Vec<char> = code.chars().collect();
    chars
        .chunks(5)
        .map(|c| c.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join(" ")
}

fn qr_svg(text: &str) -> String {
    match qrcode::QrCode::new(text.as_bytes()) {
        Ok(code) => {
            let svg = code
                .render::<qrcode::render::svg::Color>()
                .min_dimensions(160, 160)
                .quiet_zone(true)
                .build();
            // Inline in HTML: drop the XML declaration.
            match svg.find("<svg") {
                Some(i) => svg[i..].replacen("<svg", "<svg role=\"img\" aria-hidden=\"true\"", 1),
                None => svg,
            }
        }
        Err(_) => String::new(),
    }
}

pub async fn receipt(
    State(st): State<AppState>,
    ctx: Ctx,
    SignedIn(user): SignedIn,
    Path(code): Path<String>,
) -> PageResult {
    let d = load_dossier(&st, &user, &code).await?;
    audit_view(&st, &user, &d, "dossier.view_personal_data").await?;
    let p = procedure_of(&st, &d).await?;
    let agency = st.store.agency(&d.agency_code).await?;
    let l = ctx.lang.code();
    let track_url = format!("{}/tra-cuu?ma={}", ctx.origin, d.code);
    let lc = &d.lifecycle;
    let agency_name = agency
        .as_ref()
        .map(|a| {
            if ctx.lang == Lang::En {
                a.name_en.clone()
            } else {
                a.name_vi.clone()
            }
        })
        .unwrap_or_default();
    let success = success_panel(&st, &ctx, &d, &p, &agency_name).await?;
    let page = ReceiptPage {
        ctx: &ctx,
        title: ctx.t("page-receipt"),
        code: d.code.to_string(),
        procedure: p.name.get(l).to_string(),
        applicant: d.applicant.full_name.clone(),
        agency: agency_name,
        address: agency.map(|a| a.address).unwrap_or_default(),
        received_label: if lc.accepted_at.is_some() {
            ctx.t("page-received-at")
        } else {
            ctx.t("page-submitted-at")
        },
        received: fmt_dt(lc.accepted_at.unwrap_or(d.submitted_at)),
        due: lc
            .appointment_at
            .or(lc.due_at)
            .map(fmt_dt)
            .unwrap_or_else(|| ctx.t("page-due-after-reception")),
        status: status_label(ctx.lang, lc.status),
        documents: d
            .documents
            .iter()
            .map(|doc| {
                let name = p
                    .document(&doc.document_id)
                    .map(|s| s.name.get(l).to_string())
                    .unwrap_or_else(|| doc.document_id.clone());
                format!("{name} — {}", doc.filename)
            })
            .collect(),
        qr_svg: qr_svg(&track_url),
        track_url,
        dossier_href: format!("/ho-so/{}", d.code),
        access_code: group_digits(&d.access_code),
        success,
    };
    Ok(ctx.render(StatusCode::OK, page.render()))
}

// ---------------------------------------------------------------------------
// My dossiers
// ---------------------------------------------------------------------------

pub struct Row {
    pub href: String,
    pub code: String,
    pub procedure: String,
    pub applicant: String,
    pub status: String,
    pub status_class: String,
    pub submitted: String,
    pub due: String,
    pub flag: String,
    pub flag_class: &'static str,
}

/// Each current procedure's name in `lang` and its processing time.
pub type ProcedureNames = BTreeMap<String, (String, motcua_domain::procedure::ProcessingTime)>;

pub async fn procedure_names(st: &AppState, lang: Lang) -> Result<ProcedureNames, ApiError> {
    Ok(st
        .catalogue()
        .await?
        .iter()
        .map(|(p, _)| {
            (
                p.code.clone(),
                (p.name.get(lang.code()).to_string(), p.processing_time),
            )
        })
        .collect())
}

/// When a dossier not yet received may expect its result: its processing
/// time counted on `cal` from its submission (the appointment itself is
/// set when the agency receives it).
pub fn expected_due(
    cal: &motcua_domain::calendar::WorkingCalendar,
    time: motcua_domain::procedure::ProcessingTime,
    submitted_at: DateTime<Utc>,
) -> DateTime<Utc> {
    cal.add_working_minutes(submitted_at, time.working_minutes(cal.hours_per_day()))
}

pub fn row_of(
    ctx: &Ctx,
    names: &ProcedureNames,
    cal: &motcua_domain::calendar::WorkingCalendar,
    s: &motcua_store::DossierSummary,
    now: DateTime<Utc>,
    soon: DateTime<Utc>,
) -> Row {
    let due = match s.appointment_at.or(s.due_at) {
        Some(d) => fmt_dt(d),
        None if s.status == Status::NewlyRegistered => names
            .get(&s.procedure_code)
            .map(|(_, time)| {
                ctx.lang.text_with(
                    "page-due-expected",
                    &args(&[("date", fmt_dt(expected_due(cal, *time, s.submitted_at)))]),
                )
            })
            .unwrap_or_default(),
        None => String::new(),
    };
    let overdue = s.status.is_open() && s.due_at.is_some_and(|d| d < now);
    let due_soon = s.status.is_open() && !overdue && s.due_at.is_some_and(|d| d <= soon);
    Row {
        href: format!("/ho-so/{}", s.code),
        code: s.code.to_string(),
        procedure: names
            .get(&s.procedure_code)
            .map(|(name, _)| name.clone())
            .unwrap_or_else(|| s.procedure_code.clone()),
        applicant: s.applicant_name.clone(),
        status: status_label(ctx.lang, s.status),
        status_class: format!("st st-{}", s.status.number()),
        submitted: fmt_dt(s.submitted_at),
        due,
        flag: if overdue {
            ctx.t("page-overdue")
        } else if due_soon {
            ctx.t("page-due-soon")
        } else {
            String::new()
        },
        flag_class: if overdue {
            "overdue"
        } else if due_soon {
            "due-soon"
        } else {
            ""
        },
    }
}

#[derive(Template)]
#[template(path = "dossiers/my_dossiers.html")]
struct MyDossiersPage<'a> {
    ctx: &'a Ctx,
    title: String,
    rows: Vec<Row>,
    /// What the account's national ID number shows and why (not verified:
    /// counter dossiers are not listed; verified by the demo: said so).
    identity_note: Option<String>,
}

pub async fn my_dossiers(
    State(st): State<AppState>,
    ctx: Ctx,
    SignedIn(user): SignedIn,
) -> PageResult {
    let q = DossierQuery {
        applicant_user_id: Some(user.id),
        limit: 200,
        ..Default::default()
    };
    let names = procedure_names(&st, ctx.lang).await?;
    let now = st.clock.now();
    let cal = st.calendar();
    let soon = cal.add_working_minutes(now, i64::from(cal.hours_per_day()) * 60);
    let rows = st
        .store
        .find_dossiers(&q)
        .await?
        .iter()
        .map(|s| row_of(&ctx, &names, &cal, s, now, soon))
        .collect();
    let identity_note = match &user.national_id_verified {
        None if motcua_commands::accounts::has(&user, motcua_domain::dossier::Role::Citizen) => {
            Some(ctx.t("my-unverified"))
        }
        None => None,
        Some(v) if v.method == motcua_store::VerificationMethod::Demo => {
            Some(ctx.t("my-verified-demo"))
        }
        Some(_) => None,
    };
    let page = MyDossiersPage {
        ctx: &ctx,
        title: ctx.t("page-my-dossiers"),
        rows,
        identity_note,
    };
    Ok(ctx.render(StatusCode::OK, page.render()))
}

// ---------------------------------------------------------------------------
// Dossier page (citizen and staff)
// ---------------------------------------------------------------------------

pub struct StepView {
    pub name: String,
    pub role: String,
    pub due: String,
    pub started: String,
    pub finished: String,
    pub state: String,
    pub class: &'static str,
}

pub struct EventView {
    pub at: String,
    pub what: String,
    pub who: String,
    pub note: String,
}

pub struct ActionForm {
    pub action: String,
    pub label: String,
    pub html_id: String,
    pub needs_note: bool,
    pub note_label: String,
    pub note: String,
    pub needs_date: bool,
    pub evaluate: bool,
    pub supplement: bool,
    pub error: Option<String>,
    pub danger: bool,
}

pub struct CriterionView {
    pub name: String,
    pub label: String,
}

#[derive(Template)]
#[template(path = "dossiers/dossier.html")]
struct DossierPage<'a> {
    ctx: &'a Ctx,
    title: String,
    code: String,
    procedure: String,
    agency: String,
    status: String,
    status_class: String,
    staff: bool,
    flash: Option<String>,
    dates: Vec<(String, String)>,
    reason: Option<(String, String)>,
    apologies: Vec<(String, String, String)>,
    applicant: Vec<(String, String)>,
    fields: Vec<(String, String)>,
    /// Where the form's data came from (registries through the exchange,
    /// or typed), one line per registry.
    sources: Vec<String>,
    documents: Vec<(String, String, String, String)>,
    steps: Vec<StepView>,
    events: Vec<EventView>,
    actions: Vec<ActionForm>,
    evaluation: Option<String>,
    criteria: Vec<CriterionView>,
    supplement_docs: Vec<DocInput>,
    receipt_href: Option<String>,
}

/// One line per registry a dossier's form declares: read through the
/// exchange (when, and its X-Road-Id) or typed by the applicant (why).
fn source_lines(
    ctx: &Ctx,
    p: &Procedure,
    fields: &serde_json::Map<String, serde_json::Value>,
) -> Vec<String> {
    let l = ctx.lang.code();
    motcua_commands::prefill::sources_of(fields)
        .iter()
        .map(|src| {
            let labels: Vec<String> = src
                .fields
                .iter()
                .map(|id| {
                    p.fields
                        .iter()
                        .find(|f| &f.id == id)
                        .map(|f| f.label.get(l).to_string())
                        .unwrap_or_else(|| id.clone())
                })
                .collect();
            let mut args = serde_json::Map::new();
            args.insert("fields".into(), labels.join(", ").into());
            args.insert("registry".into(), src.name.get(l).into());
            match src.origin {
                motcua_commands::prefill::Origin::Exchange => {
                    let at = src
                        .at
                        .and_then(DateTime::<Utc>::from_timestamp_millis)
                        .map(fmt_dt)
                        .unwrap_or_default();
                    args.insert("at".into(), at.into());
                    args.insert(
                        "id".into(),
                        src.x_road_id.clone().unwrap_or_default().into(),
                    );
                    ctx.lang.text_with("prefill-source-exchange", &args)
                }
                motcua_commands::prefill::Origin::Typed => {
                    let reason = src.reason.as_deref().unwrap_or("no-consent");
                    let reason = ctx
                        .lang
                        .text_with(&format!("prefill-reason-{reason}"), &args);
                    args.insert("reason".into(), reason.into());
                    ctx.lang.text_with("prefill-source-typed", &args)
                }
            }
        })
        .collect()
}

#[derive(Deserialize, Default)]
pub struct DossierQueryParams {
    xong: Option<String>,
}

pub async fn dossier(
    State(st): State<AppState>,
    ctx: Ctx,
    SignedIn(user): SignedIn,
    Path(code): Path<String>,
    Query(q): Query<DossierQueryParams>,
) -> PageResult {
    let d = load_dossier(&st, &user, &code).await?;
    audit_view(&st, &user, &d, "dossier.view_personal_data").await?;
    let flash = q
        .xong
        .as_deref()
        .and_then(Action::parse)
        .map(|a| done_text(&ctx, a, &d));
    render_dossier(&st, &ctx, &user, &d, flash, None).await
}

/// What an action did, in a plain sentence: who holds the dossier now,
/// and the appointment where there is one.
fn done_text(ctx: &Ctx, a: Action, d: &Dossier) -> String {
    let lc = &d.lifecycle;
    let holder = lc
        .holder()
        .map(|r| role_label(ctx.lang, r.as_str()))
        .unwrap_or_default();
    let due = fmt_opt(lc.appointment_at.or(lc.due_at));
    ctx.lang.text_with(
        &format!("done-{}", a.as_str()),
        &args(&[("holder", holder), ("due", due)]),
    )
}

/// Human text of an audit action (`dossier.accept` → "Accepted").
fn event_label(lang: Lang, action: &str) -> String {
    let key = format!("event-{}", action.replace(['.', '_'], "-"));
    text_opt(lang, &key).unwrap_or_else(|| action.to_string())
}

/// The workflow steps of a dossier as its page shows them.
fn step_views(
    ctx: &Ctx,
    p: &Procedure,
    lc: &motcua_domain::dossier::Lifecycle,
    now: chrono::DateTime<chrono::Utc>,
) -> Vec<StepView> {
    let lang = ctx.lang;
    let l = lang.code();
    lc.steps
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let role = serde_json::to_value(s.role)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            let name = p
                .workflow
                .iter()
                .find(|w| w.id == s.id)
                .map(|w| w.name.get(l).to_string())
                .unwrap_or_else(|| s.id.clone());
            let current =
                i == lc.step && matches!(lc.status, Status::Accepted | Status::Processing);
            let late_now = current && s.due_at < now;
            let (state, class) = match s.timeliness {
                Some(t) => {
                    let k = serde_json::to_value(t)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default();
                    (
                        ctx.t(&format!("timeliness-{k}")),
                        if k == "late" { "late" } else { "done" },
                    )
                }
                None if late_now => (ctx.t("page-overdue"), "late"),
                None if current => (ctx.t("page-current-step"), "current"),
                None => (String::new(), ""),
            };
            StepView {
                name,
                role: role_label(lang, &role),
                due: fmt_dt(s.due_at),
                started: fmt_opt(s.started_at),
                finished: fmt_opt(s.finished_at),
                state,
                class,
            }
        })
        .collect()
}

/// The forms of the actions `user` may take, with the one that failed (its
/// action, message and typed note) filled in again.
fn action_forms(
    ctx: &Ctx,
    allowed: &[Action],
    failed: Option<&(Action, String, String)>,
) -> Vec<ActionForm> {
    let lang = ctx.lang;
    allowed
        .iter()
        .map(|a| {
            let failed_here = failed.filter(|(fa, _, _)| fa == a);
            ActionForm {
                action: a.as_str().to_string(),
                label: action_label(lang, *a),
                html_id: format!("act-{}", a.as_str().replace('_', "-")),
                needs_note: a.needs_note(),
                note_label: if a.needs_note() {
                    ctx.t("page-reason")
                } else {
                    ctx.t("page-note-optional")
                },
                note: failed_here.map(|f| f.2.clone()).unwrap_or_default(),
                needs_date: *a == Action::Apologize,
                evaluate: *a == Action::Evaluate,
                supplement: *a == Action::Supplement,
                error: failed_here.map(|f| f.1.clone()),
                danger: matches!(
                    a,
                    Action::Refuse | Action::Reject | Action::Stop | Action::Withdraw
                ),
            }
        })
        .collect()
}

/// The dates (and the outcome) of a dossier as its page lists them.
fn dossier_dates(ctx: &Ctx, d: &Dossier) -> Vec<(String, String)> {
    let lc = &d.lifecycle;
    let mut dates = vec![(ctx.t("page-submitted-at"), fmt_dt(d.submitted_at))];
    for (k, v) in [
        ("page-accepted-at", lc.accepted_at),
        ("page-due-at", lc.due_at),
        ("page-appointment-at", lc.appointment_at),
        ("page-completed-at", lc.completed_at),
        ("page-returned-at", lc.returned_at),
    ] {
        if let Some(v) = v {
            dates.push((ctx.t(k), fmt_dt(v)));
        }
    }
    if let Some(o) = lc.outcome {
        let k = match o {
            motcua_domain::dossier::Outcome::Approved => "page-outcome-approved",
            motcua_domain::dossier::Outcome::Rejected => "page-outcome-rejected",
        };
        dates.push((ctx.t("page-outcome"), ctx.t(k)));
    }
    dates
}

/// The reason given for the dossier's current status, if it needs one.
fn reason_of(ctx: &Ctx, lc: &motcua_domain::dossier::Lifecycle) -> Option<(String, String)> {
    lc.last_note.as_ref().and_then(|n| {
        let k = match lc.status {
            Status::NotAccepted => "page-reason-refused",
            Status::SupplementRequested => "page-reason-supplement",
            Status::Withdrawn => "page-reason-withdrawn",
            Status::Stopped => "page-reason-stopped",
            Status::Completed | Status::ResultReturned
                if lc.outcome == Some(motcua_domain::dossier::Outcome::Rejected) =>
            {
                "page-reason-rejected"
            }
            _ => return None,
        };
        Some((ctx.t(k), n.clone()))
    })
}

/// Who applied, and through which channel.
fn applicant_facts(ctx: &Ctx, d: &Dossier) -> Vec<(String, String)> {
    vec![
        (ctx.t("reg-full-name"), d.applicant.full_name.clone()),
        (ctx.t("reg-national-id"), d.applicant.national_id.clone()),
        (
            ctx.t("reg-phone"),
            d.applicant.phone.clone().unwrap_or_default(),
        ),
        (
            ctx.t("reg-email"),
            d.applicant.email.clone().unwrap_or_default(),
        ),
        (
            ctx.t("page-channel"),
            ctx.t(&format!("channel-{}", d.channel.as_str())),
        ),
    ]
}

/// The dossier's documents: (document, file name, link, stage).
fn document_links(ctx: &Ctx, p: &Procedure, d: &Dossier) -> Vec<(String, String, String, String)> {
    let l = ctx.lang.code();
    d.documents
        .iter()
        .enumerate()
        .map(|(i, doc)| {
            (
                p.document(&doc.document_id)
                    .map(|s| s.name.get(l).to_string())
                    .unwrap_or_else(|| doc.document_id.clone()),
                doc.filename.clone(),
                format!("/ho-so/{}/tai-lieu/{i}", d.code),
                ctx.t(&format!("stage-{}", doc.stage)),
            )
        })
        .collect()
}

async fn render_dossier(
    st: &AppState,
    ctx: &Ctx,
    user: &User,
    d: &Dossier,
    flash: Option<String>,
    failed: Option<(Action, String, String)>,
) -> PageResult {
    let lang = ctx.lang;
    let l = lang.code();
    let p = procedure_of(st, d).await?;
    let lc = &d.lifecycle;
    let staff = motcua_commands::accounts::is_staff(user);
    let agency = st.store.agency(&d.agency_code).await?;
    let dates = dossier_dates(ctx, d);
    let reason = reason_of(ctx, lc);
    let apologies = lc
        .apologies
        .iter()
        .map(|a| (fmt_dt(a.at), fmt_dt(a.new_due_at), a.reason.clone()))
        .collect();
    let applicant = applicant_facts(ctx, d);
    let fields = p
        .fields
        .iter()
        .filter_map(|f| {
            let text = match d.fields.get(&f.id)? {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let text = crate::exchange::prefill::display_value(&p, &f.id, &text, l);
            Some((f.label.get(l).to_string(), text))
        })
        .collect();
    let sources = source_lines(ctx, &p, &d.fields);
    let documents = document_links(ctx, &p, d);
    let now = st.clock.now();
    let steps = step_views(ctx, &p, lc, now);
    let events = timeline(st, &d.code)
        .await?
        .into_iter()
        .map(|r| EventView {
            at: fmt_dt(r.entry.at),
            what: event_label(lang, &r.entry.action),
            who: role_label(lang, &r.entry.actor_role),
            note: r.entry.note.unwrap_or_default(),
        })
        .collect();
    let allowed = allowed_actions(st, user, d, &p).await?;
    let actions = action_forms(ctx, &allowed, failed.as_ref());
    let evaluation = lc.evaluation.as_ref().map(|e| {
        ctx.t(match e.level {
            SatisfactionLevel::Dissatisfied => "eval-dissatisfied",
            SatisfactionLevel::Satisfied => "eval-satisfied",
            SatisfactionLevel::VerySatisfied => "eval-very-satisfied",
        })
    });
    let criteria = EVALUATION_CRITERIA
        .iter()
        .map(|c| CriterionView {
            name: format!("score_{c}"),
            label: ctx.t(&format!("crit-{c}")),
        })
        .collect();
    let supplement_docs = if allowed.contains(&Action::Supplement) {
        p.documents
            .iter()
            .map(|doc| upload_input(ctx, doc, "s"))
            .collect()
    } else {
        Vec::new()
    };
    let page = DossierPage {
        ctx,
        title: format!("{} {}", ctx.t("page-dossier"), d.code),
        code: d.code.to_string(),
        procedure: p.name.get(l).to_string(),
        agency: agency
            .map(|a| {
                if lang == Lang::En {
                    a.name_en
                } else {
                    a.name_vi
                }
            })
            .unwrap_or_default(),
        status: status_label(lang, lc.status),
        status_class: format!("st st-{}", lc.status.number()),
        staff,
        flash,
        dates,
        reason,
        apologies,
        applicant,
        fields,
        sources,
        documents,
        steps,
        events,
        actions,
        evaluation,
        criteria,
        supplement_docs,
        receipt_href: (lc.status != Status::NotAccepted)
            .then(|| format!("/ho-so/{}/bien-nhan", d.code)),
    };
    let status = if failed.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    Ok(ctx.render(status, page.render()))
}

/// `GET /ho-so/{code}/tai-lieu/{index}`: a document, inline; audited for staff.
pub async fn document(
    State(st): State<AppState>,
    SignedIn(user): SignedIn,
    Path((code, index)): Path<(String, String)>,
) -> PageResult {
    let d = load_dossier(&st, &user, &code).await?;
    document_response(&st, &user, &d, &index).await
}

/// `POST /ho-so/{code}/thao-tac`: one action of the lifecycle from a form.
pub async fn act(
    State(st): State<AppState>,
    ctx: Ctx,
    SignedIn(user): SignedIn,
    Path(code): Path<String>,
    CheckedMultipart(form): CheckedMultipart,
) -> PageResult {
    let code = DossierCode::parse(&code).map_err(|_| ApiError::not_found())?;
    let d = load_dossier(&st, &user, code.as_str()).await?;
    let p = procedure_of(&st, &d).await?;
    let action = form
        .get("action")
        .and_then(Action::parse)
        .ok_or_else(|| ApiError::field("action", "unknown-action"))?;
    let note = form.get("note").unwrap_or_default().trim().to_string();
    let mut cmd = Command::new(action);
    cmd.note = Some(note.clone()).filter(|n| !n.is_empty());
    let fail = |msg: String| (action, msg, note.clone());
    if action == Action::Apologize {
        match form.get("new_due_at").filter(|s| !s.trim().is_empty()) {
            None => {
                let msg = ctx.t("field-new-due-required");
                return render_dossier(&st, &ctx, &user, &d, None, Some(fail(msg))).await;
            }
            Some(raw) => match parse_new_due(raw).ok() {
                Some(t) => cmd.new_due_at = Some(t),
                None => {
                    let msg = ctx.t("field-invalid-date");
                    return render_dossier(&st, &ctx, &user, &d, None, Some(fail(msg))).await;
                }
            },
        }
    }
    if action == Action::Evaluate {
        cmd.level = match form.get("level") {
            Some("dissatisfied") => Some(SatisfactionLevel::Dissatisfied),
            Some("satisfied") => Some(SatisfactionLevel::Satisfied),
            Some("very_satisfied") => Some(SatisfactionLevel::VerySatisfied),
            _ => None,
        };
        for c in EVALUATION_CRITERIA {
            if let Some(v) = form
                .get(&format!("score_{c}"))
                .and_then(|v| v.parse::<u8>().ok())
            {
                cmd.scores.insert(c.to_string(), v);
            }
        }
    }
    let mut documents = Vec::new();
    if action == Action::Supplement {
        let mut errs = Vec::new();
        let mut ok = Vec::new();
        for up in form.files {
            let Some(doc_id) = up.name.strip_prefix("document:").map(str::to_string) else {
                continue;
            };
            match check_file(&p, &doc_id, &up) {
                Some(e) => errs.push(e),
                None => ok.push((doc_id, up)),
            }
        }
        if let Some(e) = errs.first() {
            let msg = problem_text(ctx.lang, e);
            return render_dossier(&st, &ctx, &user, &d, None, Some(fail(msg))).await;
        }
        for (doc_id, up) in ok {
            documents.push(store_file(&st, &doc_id, up, "supplement").await?);
        }
    }
    match take_action(&st, &user, &d, &p, cmd, documents)
        .await
        .map_err(ApiError::from)
    {
        Ok(updated) => {
            Ok(
                Redirect::to(&format!("/ho-so/{}?xong={}", updated.code, action.as_str()))
                    .into_response(),
            )
        }
        Err(e)
            if e.status == StatusCode::UNPROCESSABLE_ENTITY || e.status == StatusCode::CONFLICT =>
        {
            let msg = action_problem(ctx.lang, &e);
            let fresh = load_dossier(&st, &user, code.as_str()).await?;
            render_dossier(&st, &ctx, &user, &fresh, None, Some(fail(msg))).await
        }
        Err(e) => Err(e),
    }
}

// ---------------------------------------------------------------------------
// Public tracking
// ---------------------------------------------------------------------------

#[derive(Deserialize, Default)]
pub struct TrackQuery {
    ma: Option<String>,
    /// The secret printed on the receipt.
    bm: Option<String>,
}

#[derive(Template)]
#[template(path = "dossiers/track.html")]
struct TrackPage<'a> {
    ctx: &'a Ctx,
    title: String,
    code: String,
    searched: bool,
    found: bool,
    procedure: String,
    agency: String,
    status: String,
    status_class: String,
    dates: Vec<(String, String)>,
    /// The receipt's secret was given and is right: what happened to the
    /// dossier, as its applicant sees it.
    opened: bool,
    events: Vec<EventView>,
    secret_wrong: bool,
}

/// `GET /tra-cuu?ma=CODE[&bm=SECRET]`: status and dates of any dossier by
/// its code; with the secret printed on its receipt, also its history —
/// for the holder of the paper, without an account.
pub async fn track(
    State(st): State<AppState>,
    client: crate::kernel::throttle::Client,
    ctx: Ctx,
    Query(q): Query<TrackQuery>,
) -> PageResult {
    let code = q.ma.unwrap_or_default().trim().to_uppercase();
    let secret: String =
        q.bm.unwrap_or_default()
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '-')
            .collect();
    let mut page = TrackPage {
        ctx: &ctx,
        title: ctx.t("page-track"),
        searched: !code.is_empty(),
        code: code.clone(),
        found: false,
        procedure: String::new(),
        agency: String::new(),
        status: String::new(),
        status_class: String::new(),
        dates: Vec::new(),
        opened: false,
        events: Vec::new(),
        secret_wrong: false,
    };
    let found = match DossierCode::parse(&code) {
        Ok(c) => st.store.dossier(&c).await?,
        Err(_) => None,
    };
    if let Some(d) = found {
        let p = st
            .store
            .procedure(&d.procedure_code, d.procedure_version)
            .await?;
        let lc = &d.lifecycle;
        page.found = true;
        page.procedure = p
            .map(|p| p.definition.name.get(ctx.lang.code()).to_string())
            .unwrap_or_default();
        page.agency = st
            .store
            .agency(&d.agency_code)
            .await?
            .map(|a| {
                if ctx.lang == Lang::En {
                    a.name_en
                } else {
                    a.name_vi
                }
            })
            .unwrap_or_default();
        page.status = status_label(ctx.lang, lc.status);
        page.status_class = format!("st st-{}", lc.status.number());
        page.dates
            .push((ctx.t("page-submitted-at"), fmt_dt(d.submitted_at)));
        for (k, v) in [
            ("page-accepted-at", lc.accepted_at),
            ("page-appointment-at", lc.appointment_at),
            ("page-completed-at", lc.completed_at),
            ("page-returned-at", lc.returned_at),
        ] {
            if let Some(v) = v {
                page.dates.push((ctx.t(k), fmt_dt(v)));
            }
        }
        if let Some(a) = lc.apologies.last() {
            page.dates
                .push((ctx.t("page-apology-new-date"), fmt_dt(a.new_due_at)));
        }
        if !secret.is_empty() {
            motcua_commands::throttle::guess_gate(&st, &client.0, d.code.as_str()).await?;
            if !d.access_code.is_empty()
                && motcua_commands::crypto::constant_time_eq(
                    secret.as_bytes(),
                    d.access_code.as_bytes(),
                )
            {
                page.opened = true;
                page.events = timeline(&st, &d.code)
                    .await?
                    .into_iter()
                    .map(|r| EventView {
                        at: fmt_dt(r.entry.at),
                        what: event_label(ctx.lang, &r.entry.action),
                        who: role_label(ctx.lang, &r.entry.actor_role),
                        note: r.entry.note.unwrap_or_default(),
                    })
                    .collect();
            } else {
                motcua_commands::throttle::guess_failed(&st, &client.0, d.code.as_str()).await?;
                page.secret_wrong = true;
            }
        }
    }
    let status = if page.searched && !page.found {
        StatusCode::NOT_FOUND
    } else if page.secret_wrong {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let opened = page.opened;
    let mut r = ctx.render(status, page.render());
    if opened {
        r.headers_mut().insert(
            axum::http::header::CACHE_CONTROL,
            axum::http::HeaderValue::from_static("no-store"),
        );
    }
    Ok(r)
}

//! The one-stop back office: workqueue, search, counter reception.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use motcua_domain::dossier::{Channel, Role};
use motcua_store::{DossierQuery, User};
use serde::Deserialize;

use super::access::{CheckedForm, CheckedMultipartKeeping, OfficerPage, StaffPage, WithCsrf};
use super::citizen::{Attempt, Opt, Row, procedure_names, render_apply, row_of};
use super::*;
use crate::AppState;
use crate::error::ApiError;
use crate::views::{QUEUE_LIMIT, QUEUE_TABS, QueueCounts, SEARCH_LIMIT, queue_query};

type PageResult = Result<Response, ApiError>;

pub struct Tab {
    pub href: String,
    pub label: String,
    pub count: usize,
    pub current: bool,
}

#[derive(Template)]
#[template(path = "pages/workqueue.html")]
struct WorkqueuePage<'a> {
    ctx: &'a Ctx,
    title: String,
    tabs: Vec<Tab>,
    overdue: usize,
    due_soon: usize,
    rows: Vec<Row>,
    /// "The N most urgent of M" when the tab holds more than is listed.
    shown_note: Option<String>,
    q: String,
    searching: bool,
    procedures: Vec<Opt>,
    can_receive: bool,
}

#[derive(Deserialize, Default)]
pub struct QueueQuery {
    tab: Option<String>,
    q: Option<String>,
}

/// `GET /can-bo`: the workqueue of the signed-in staff member's roles, or
/// a search by code, national ID number or name (`?q=`).
pub async fn workqueue(
    State(st): State<AppState>,
    ctx: Ctx,
    StaffPage(user): StaffPage,
    Query(q): Query<QueueQuery>,
) -> PageResult {
    let agency = user.agency_code.clone().ok_or_else(ApiError::forbidden)?;
    let text = q.q.clone().unwrap_or_default().trim().to_string();
    let searching = !text.is_empty();
    let holders: Vec<Role> = user
        .roles
        .iter()
        .copied()
        .filter(|r| matches!(r, Role::Officer | Role::Specialist | Role::Leader))
        .collect();
    let tab = q
        .tab
        .clone()
        .filter(|t| QUEUE_TABS.contains(&t.as_str()))
        .unwrap_or_else(|| "all".into());
    let query = if searching {
        let mut e = audit_entry(
            &st,
            &user,
            user.roles.first().copied().unwrap_or(Role::Officer),
            "dossier.search",
            &serde_json::json!({ "q": text }),
        );
        e.note = None;
        st.store.append_audit(e).await?;
        Some(DossierQuery {
            agency: Some(agency.clone()),
            text: Some(text.clone()),
            limit: SEARCH_LIMIT,
            ..Default::default()
        })
    } else {
        if holders.is_empty() {
            return Err(ApiError::forbidden());
        }
        queue_query(&agency, &holders, &tab, QUEUE_LIMIT)
    };
    let rows = match &query {
        Some(query) => st.store.find_dossiers(query).await?,
        None => Vec::new(),
    };
    let names = procedure_names(&st, ctx.lang).await?;
    let now = st.clock.now();
    let cal = agency_calendar(&st, &agency).await?;
    let soon = cal.add_working_minutes(now, i64::from(cal.hours_per_day()) * 60);
    // The counts cover the whole queue, not only the rows listed.
    let counts = if searching {
        QueueCounts::default()
    } else {
        st.queue_counts(&agency, &holders, now, soon).await?
    };
    let out: Vec<Row> = rows
        .iter()
        .map(|s| row_of(&ctx, &names, s, now, soon))
        .collect();
    // Only the most urgent are listed: say so when there are more.
    let in_tab = counts.tab(&tab);
    let shown_note = if searching {
        // A full page: older matches may exist beyond it.
        (out.len() >= SEARCH_LIMIT as usize).then(|| {
            let mut args = serde_json::Map::new();
            args.insert("shown".into(), out.len().into());
            ctx.lang.text_with("page-search-shown", &args)
        })
    } else {
        (out.len() < in_tab).then(|| {
            let mut args = serde_json::Map::new();
            args.insert("shown".into(), out.len().into());
            args.insert("total".into(), in_tab.into());
            ctx.lang.text_with("page-queue-shown", &args)
        })
    };
    let (overdue, due_soon) = (counts.overdue, counts.due_soon);
    let tabs = if searching {
        Vec::new()
    } else {
        QUEUE_TABS
            .iter()
            .map(|k| Tab {
                href: format!("/can-bo?tab={k}"),
                label: ctx.t(&format!("page-tab-{k}")),
                count: counts.tab(k),
                current: tab == *k,
            })
            .collect()
    };
    let can_receive = crate::auth::has(&user, Role::Officer);
    let mut procedures = Vec::new();
    if can_receive {
        for (p, _) in st.catalogue().await?.iter() {
            procedures.push(Opt {
                value: p.code.clone(),
                label: p.name.get(ctx.lang.code()).to_string(),
                selected: false,
            });
        }
        procedures.sort_by(|a, b| a.label.cmp(&b.label));
    }
    let page = WorkqueuePage {
        ctx: &ctx,
        title: ctx.t("page-workqueue"),
        tabs,
        overdue,
        due_soon,
        rows: out,
        shown_note,
        q: text,
        searching,
        procedures,
        can_receive,
    };
    Ok(ctx.render(StatusCode::OK, page.render()))
}

#[derive(Deserialize, Default)]
pub struct CounterQuery {
    thu_tuc: Option<String>,
}

async fn counter_setup(
    st: &AppState,
    q: &CounterQuery,
) -> Result<Result<motcua_domain::procedure::Procedure, Redirect>, ApiError> {
    let code = q.thu_tuc.clone().unwrap_or_default();
    if code.is_empty() {
        return Ok(Err(Redirect::to("/can-bo")));
    }
    let p = st
        .store
        .current_procedure(&code)
        .await?
        .ok_or_else(ApiError::not_found)?
        .definition;
    Ok(Ok(p))
}

/// `GET /can-bo/tiep-nhan?thu_tuc=…`: the apply form for a walk-in citizen.
pub async fn counter_form(
    State(st): State<AppState>,
    ctx: Ctx,
    _officer: OfficerPage,
    Query(q): Query<CounterQuery>,
) -> PageResult {
    let p = match counter_setup(&st, &q).await? {
        Ok(x) => x,
        Err(r) => return Ok(r.into_response()),
    };
    let today = motcua_store::vietnam_day(st.clock.now());
    Ok(render_apply(
        &ctx,
        &p,
        Vec::new(),
        &Attempt::default(),
        true,
        today,
        &super::citizen::PrefillForm::default(),
    ))
}

/// `POST /can-bo/tiep-nhan?thu_tuc=…`: receives and accepts a paper dossier.
pub async fn counter_submit(
    State(st): State<AppState>,
    ctx: Ctx,
    OfficerPage(user): OfficerPage,
    Query(q): Query<CounterQuery>,
    CheckedMultipartKeeping(form): CheckedMultipartKeeping,
) -> PageResult {
    let p = match counter_setup(&st, &q).await? {
        Ok(x) => x,
        Err(r) => return Ok(r.into_response()),
    };
    match super::citizen::check_apply(&st, &ctx, &p, form, true, false).await? {
        Err(attempt) => {
            let today = motcua_store::vietnam_day(st.clock.now());
            let none = super::citizen::PrefillForm::default();
            Ok(render_apply(
                &ctx,
                &p,
                Vec::new(),
                &attempt,
                true,
                today,
                &none,
            ))
        }
        Ok(c) => {
            let applicant = c
                .applicant
                .ok_or_else(|| ApiError::field("applicant", "applicant-required"))?;
            let d = create_dossier(
                &st,
                &user,
                &p,
                &c.agency,
                c.unit,
                Channel::InPerson,
                applicant,
                c.fields,
                c.documents,
                Vec::new(),
            )
            .await?;
            Ok(Redirect::to(&format!("/ho-so/{}/bien-nhan", d.code)).into_response())
        }
    }
}

// ---------------------------------------------------------------------------
// Verifying a citizen's national ID number at the counter
// ---------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "pages/verify_citizen.html")]
struct VerifyPage<'a> {
    ctx: &'a Ctx,
    title: String,
    done: Option<String>,
    linked: Vec<String>,
    summary: Vec<(String, String)>,
    username: String,
    username_error: Option<String>,
    /// What the account says of its holder, to compare with the card.
    account: Option<Vec<(String, String)>>,
    national_id: String,
    nid_error: Option<String>,
    seen_error: Option<String>,
}

#[derive(Deserialize, Default)]
pub struct VerifyQuery {
    #[serde(rename = "tai-khoan")]
    username: Option<String>,
}

/// The account's facts an officer compares with the identity card.
fn account_facts(ctx: &Ctx, u: &User) -> Vec<(String, String)> {
    let verified = match &u.national_id_verified {
        Some(v) => {
            let mut args = serde_json::Map::new();
            args.insert("at".into(), fmt_dt(v.at).into());
            args.insert("by".into(), v.by.clone().into());
            ctx.lang.text_with("verify-already", &args)
        }
        None => ctx.t("verify-not-yet"),
    };
    vec![
        (ctx.t("reg-full-name"), u.full_name.clone()),
        (
            ctx.t("verify-typed-number"),
            u.national_id.clone().unwrap_or_default(),
        ),
        (ctx.t("reg-phone"), u.phone.clone().unwrap_or_default()),
        (ctx.t("verify-status"), verified),
    ]
}

async fn render_verify(
    st: &AppState,
    ctx: &Ctx,
    username: &str,
    typed: Option<&str>,
    errs: &[crate::error::FieldProblem],
    done: Option<(String, Vec<String>)>,
) -> PageResult {
    let by = by_field(errs);
    let msg = |f: &str| by.get(f).map(|p| problem_text(ctx.lang, p));
    let mut username_error = msg("username");
    let account = if username.is_empty() {
        None
    } else {
        match st.store.user_by_name(username).await? {
            Some(u) if crate::auth::has(&u, Role::Citizen) && !crate::auth::is_staff(&u) => Some((
                account_facts(ctx, &u),
                u.national_id.clone().unwrap_or_default(),
            )),
            _ => {
                username_error = Some(ctx.t("field-unknown-citizen"));
                None
            }
        }
    };
    let (nid_error, seen_error) = (msg("national_id"), msg("seen"));
    let summary = [
        ("#tai-khoan", &username_error),
        ("#national_id", &nid_error),
        ("#seen-err", &seen_error),
    ]
    .into_iter()
    .filter_map(|(href, e)| e.clone().map(|e| (href.to_string(), e)))
    .collect::<Vec<_>>();
    let status = if errs.is_empty() && username_error.is_none() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let (facts, registered) = account.unzip();
    let page = VerifyPage {
        ctx,
        title: ctx.t("verify-title"),
        done: done.as_ref().map(|d| d.0.clone()),
        linked: done.map(|d| d.1).unwrap_or_default(),
        summary,
        username: username.to_string(),
        username_error,
        account: facts,
        national_id: typed.map(str::to_string).or(registered).unwrap_or_default(),
        nid_error,
        seen_error,
    };
    Ok(ctx.render(status, page.render()))
}

/// `GET /can-bo/xac-thuc?tai-khoan=…` (one-stop officers): finds a
/// citizen's account to compare with the identity card they brought.
pub async fn verify_form(
    State(st): State<AppState>,
    ctx: Ctx,
    _officer: OfficerPage,
    Query(q): Query<VerifyQuery>,
) -> PageResult {
    let username = q.username.unwrap_or_default().trim().to_string();
    render_verify(&st, &ctx, &username, None, &[], None).await
}

impl WithCsrf for VerifyForm {
    fn csrf(&self) -> Option<&str> {
        self.csrf.as_deref()
    }
}

#[derive(Deserialize)]
pub struct VerifyForm {
    csrf: Option<String>,
    #[serde(default)]
    username: String,
    #[serde(default)]
    national_id: String,
    #[serde(default)]
    document: String,
    seen: Option<String>,
}

/// `POST /can-bo/xac-thuc`: records that the officer saw the card.
pub async fn verify_submit(
    State(st): State<AppState>,
    ctx: Ctx,
    OfficerPage(officer): OfficerPage,
    CheckedForm(f): CheckedForm<VerifyForm>,
) -> PageResult {
    let username = f.username.trim().to_string();
    if f.seen.as_deref() != Some("1") {
        let e = crate::error::FieldProblem::new("seen", "verify-not-seen");
        return render_verify(&st, &ctx, &username, Some(&f.national_id), &[e], None).await;
    }
    match crate::service::verify_citizen(&st, &officer, &username, &f.national_id, &f.document)
        .await
    {
        Ok(v) => {
            let mut args = serde_json::Map::new();
            args.insert("name".into(), v.user.full_name.clone().into());
            args.insert("n".into(), v.linked.len().into());
            let msg = ctx.lang.text_with("verify-done", &args);
            let linked = v.linked.iter().map(|c| c.to_string()).collect();
            render_verify(&st, &ctx, &username, None, &[], Some((msg, linked))).await
        }
        Err(e) if !e.fields.is_empty() => {
            render_verify(&st, &ctx, &username, Some(&f.national_id), &e.fields, None).await
        }
        Err(e) => Err(e),
    }
}

//! The back office's dossier pages: the workqueue (tabs, counts, search)
//! and receiving a dossier at the counter.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use motcua_domain::dossier::{Channel, Role};
use motcua_store::DossierQuery;
use serde::Deserialize;

use crate::catalogue::pages::Opt;
use crate::dossiers::apply::Attempt;
use crate::dossiers::apply::render_apply;
use crate::dossiers::pages::Row;
use crate::dossiers::pages::procedure_names;
use crate::dossiers::pages::row_of;
use crate::dossiers::views::QUEUE_LIMIT;
use crate::dossiers::views::QUEUE_TABS;
use crate::dossiers::views::QueueCounts;
use crate::dossiers::views::SEARCH_LIMIT;
use crate::dossiers::views::queue_query;
use crate::kernel::access::{CheckedMultipartKeeping, OfficerPage, StaffPage};
use crate::kernel::error::ApiError;
use crate::kernel::page::Ctx;
use crate::kernel::page::PageResult;
use crate::state::AppState;
use motcua_commands::dossiers::audit_entry;
use motcua_commands::dossiers::create_dossier;

pub struct Tab {
    pub href: String,
    pub label: String,
    pub count: usize,
    pub current: bool,
}

#[derive(Template)]
#[template(path = "dossiers/workqueue.html")]
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
    let cal = &st.agency_calendar(&agency).await?;
    let soon = cal.add_working_minutes(now, i64::from(cal.hours_per_day()) * 60);
    // The counts cover the whole queue, not only the rows listed.
    let counts = if searching {
        QueueCounts::default()
    } else {
        st.queue_counts(&agency, &holders, now, soon).await?
    };
    let out: Vec<Row> = rows
        .iter()
        .map(|s| row_of(&ctx, &names, cal, s, now, soon))
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
    let can_receive = motcua_commands::accounts::has(&user, Role::Officer);
    let mut procedures = Vec::new();
    if can_receive {
        for (p, _) in st.catalogue().await?.iter() {
            procedures.push(Opt {
                value: p.code.clone(),
                label: p.name.get(ctx.lang.code()).to_string(),
                selected: false,
            });
        }
        procedures.sort_by(|a, b| motcua_domain::text::vi_cmp(&a.label, &b.label));
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
        &crate::dossiers::apply::PrefillForm::default(),
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
    match crate::dossiers::apply::check_apply(&st, &ctx, &p, form, true, false).await? {
        Err(attempt) => {
            let today = motcua_store::vietnam_day(st.clock.now());
            let none = crate::dossiers::apply::PrefillForm::default();
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

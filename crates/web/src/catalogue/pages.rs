//! The catalogue as citizens see it: the home page, the list of
//! procedures with search and filters, and one procedure's page.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use motcua_domain::ids::Vnd;
use motcua_domain::procedure::Procedure;
use serde::Deserialize;

use crate::kernel::error::ApiError;
use crate::kernel::i18n::Lang;
use crate::kernel::labels::level_label;
use crate::kernel::labels::online_label;
use crate::kernel::labels::processing_time_label;
use crate::kernel::labels::role_label;
use crate::kernel::page::Ctx;
use crate::kernel::page::PageResult;
use crate::kernel::page::url_encode;
use crate::state::AppState;

// ---------------------------------------------------------------------------
// Home and catalogue
// ---------------------------------------------------------------------------

pub struct SectorLink {
    pub href: String,
    pub name: String,
    pub count: usize,
}

pub struct ProcItem {
    pub href: String,
    pub code: String,
    pub name: String,
    pub sector: String,
    pub level: String,
    pub online: String,
    pub time: String,
    pub fee: String,
}

async fn sectors(st: &AppState, lang: Lang) -> Result<Vec<(String, String, usize)>, ApiError> {
    let mut m: BTreeMap<String, (String, usize)> = BTreeMap::new();
    for (p, _) in st.catalogue().await?.iter() {
        let e = m
            .entry(p.sector.clone())
            .or_insert_with(|| (p.sector_name.get(lang.code()).to_string(), 0));
        e.1 += 1;
    }
    let mut v: Vec<_> = m.into_iter().map(|(k, (n, c))| (k, n, c)).collect();
    v.sort_by(|a, b| motcua_domain::text::vi_cmp(&a.1, &b.1));
    Ok(v)
}

#[derive(Template)]
#[template(path = "catalogue/home.html")]
struct HomePage<'a> {
    ctx: &'a Ctx,
    title: String,
    sectors: Vec<SectorLink>,
}

pub async fn home(State(st): State<AppState>, ctx: Ctx) -> PageResult {
    let sectors = sectors(&st, ctx.lang)
        .await?
        .into_iter()
        .map(|(k, name, count)| SectorLink {
            href: format!("/thu-tuc?sector={}", url_encode(&k)),
            name,
            count,
        })
        .collect();
    let page = HomePage {
        ctx: &ctx,
        title: ctx.t("home-title"),
        sectors,
    };
    Ok(ctx.render(StatusCode::OK, page.render()))
}

#[derive(Deserialize, Default)]
pub struct CatalogueQuery {
    q: Option<String>,
    sector: Option<String>,
    level: Option<String>,
}

pub struct Opt {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

#[derive(Template)]
#[template(path = "catalogue/catalogue.html")]
struct CataloguePage<'a> {
    ctx: &'a Ctx,
    title: String,
    q: String,
    sectors: Vec<Opt>,
    levels: Vec<Opt>,
    items: Vec<ProcItem>,
    count_text: String,
}

pub fn proc_item(lang: Lang, p: &Procedure) -> ProcItem {
    ProcItem {
        href: format!("/thu-tuc/{}", url_encode(&p.code)),
        code: p.code.clone(),
        name: p.name.get(lang.code()).to_string(),
        sector: p.sector_name.get(lang.code()).to_string(),
        level: level_label(lang, p.level),
        online: online_label(lang, p.online),
        time: processing_time_label(lang, p.processing_time),
        fee: fee_text(lang, p.total_fee()),
    }
}

fn fee_text(lang: Lang, fee: u64) -> String {
    if fee == 0 {
        lang.text("page-free")
    } else {
        Vnd(fee).display_vi()
    }
}

pub async fn catalogue(
    State(st): State<AppState>,
    ctx: Ctx,
    Query(q): Query<CatalogueQuery>,
) -> PageResult {
    let lang = ctx.lang;
    let text = q.q.clone().unwrap_or_default();
    let sector = q.sector.clone().filter(|s| !s.is_empty());
    let level = q.level.clone().filter(|s| !s.is_empty());
    let items: Vec<ProcItem> = st
        .catalogue()
        .await?
        .iter()
        .filter(|(p, folded)| {
            (text.trim().is_empty() || motcua_domain::text::matches_query(folded, &text))
                && sector.as_deref().is_none_or(|s| p.sector == s)
                && level.as_deref().is_none_or(|l| p.level.as_str() == l)
        })
        .map(|(p, _)| proc_item(lang, p))
        .collect();
    let mut sectors_opts = vec![Opt {
        value: String::new(),
        label: ctx.t("page-all-sectors"),
        selected: sector.is_none(),
    }];
    for (k, name, _) in sectors(&st, lang).await? {
        sectors_opts.push(Opt {
            selected: sector.as_deref() == Some(k.as_str()),
            value: k,
            label: name,
        });
    }
    let levels = [
        ("", "page-all-levels"),
        ("commune", "level-commune"),
        ("province", "level-province"),
    ]
    .iter()
    .map(|(v, k)| Opt {
        value: v.to_string(),
        label: ctx.t(k),
        selected: level.as_deref().unwrap_or("") == *v,
    })
    .collect();
    let mut args = serde_json::Map::new();
    args.insert("count".into(), items.len().into());
    let page = CataloguePage {
        ctx: &ctx,
        title: ctx.t("page-catalogue"),
        q: text,
        sectors: sectors_opts,
        levels,
        count_text: lang.text_with("page-results", &args),
        items,
    };
    Ok(ctx.render(StatusCode::OK, page.render()))
}

// ---------------------------------------------------------------------------
// Procedure page
// ---------------------------------------------------------------------------

pub struct DocItem {
    pub name: String,
    pub required: bool,
    pub accept: String,
}

#[derive(Template)]
#[template(path = "catalogue/procedure.html")]
struct ProcedurePage<'a> {
    ctx: &'a Ctx,
    title: String,
    item: ProcItem,
    documents: Vec<DocItem>,
    fees: Vec<(String, String, String)>,
    steps: Vec<(String, String)>,
    result: String,
    legal: Vec<String>,
    places: Vec<(String, String)>,
    apply_href: Option<String>,
}

pub async fn current_procedure(st: &AppState, code: &str) -> Result<Procedure, ApiError> {
    Ok(st
        .store
        .current_procedure(code)
        .await?
        .ok_or_else(ApiError::not_found)?
        .definition)
}

pub async fn procedure(
    State(st): State<AppState>,
    ctx: Ctx,
    Path(code): Path<String>,
) -> PageResult {
    let p = current_procedure(&st, &code).await?;
    let l = ctx.lang.code();
    let mut places = Vec::new();
    for a in st.store.agencies().await? {
        if a.kind == p.agency_kind {
            let name = if ctx.lang == Lang::En {
                a.name_en.clone()
            } else {
                a.name_vi.clone()
            };
            places.push((name, a.address.clone()));
        }
    }
    let page = ProcedurePage {
        ctx: &ctx,
        title: p.name.get(l).to_string(),
        item: proc_item(ctx.lang, &p),
        documents: p
            .documents
            .iter()
            .map(|d| DocItem {
                name: d.name.get(l).to_string(),
                required: d.required,
                accept: d.accept.join(", "),
            })
            .collect(),
        fees: p
            .fees
            .iter()
            .map(|f| {
                (
                    f.name.get(l).to_string(),
                    fee_text(ctx.lang, f.amount),
                    f.note
                        .as_ref()
                        .map(|n| n.get(l).to_string())
                        .unwrap_or_default(),
                )
            })
            .collect(),
        steps: p
            .workflow
            .iter()
            .map(|s| {
                let role = serde_json::to_value(s.role)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default();
                (s.name.get(l).to_string(), role_label(ctx.lang, &role))
            })
            .collect(),
        result: p.result.name.get(l).to_string(),
        legal: p.legal_basis.clone(),
        places,
        apply_href: (p.online != motcua_domain::procedure::OnlineLevel::None)
            .then(|| format!("/thu-tuc/{}/nop-ho-so", url_encode(&p.code))),
    };
    Ok(ctx.render(StatusCode::OK, page.render()))
}

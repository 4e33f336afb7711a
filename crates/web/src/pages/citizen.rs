//! The citizen portal: catalogue, apply, receipt, my dossiers, dossier,
//! tracking. The dossier page also serves staff (with the applicant's data
//! and the actions of their role).

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, NaiveDate, Utc};
use motcua_domain::dossier::{
    Action, Channel, Command, EVALUATION_CRITERIA, SatisfactionLevel, Status,
};
use motcua_domain::ids::{NationalId, Vnd, parse_phone};
use motcua_domain::procedure::{FieldType, Procedure};
use motcua_domain::{DossierCode, UnitCode};
use motcua_store::{Applicant, Dossier, DossierQuery, StoredDocument, User};
use serde::Deserialize;

use super::access::{CheckedMultipart, CheckedMultipartKeeping, SignedIn};
use super::*;
use crate::AppState;
use crate::error::{ApiError, FieldProblem};
use crate::i18n::Lang;
use crate::prefill::{self, Prefilled, TokenProblem};

type PageResult = Result<Response, ApiError>;

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
    v.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(v)
}

#[derive(Template)]
#[template(path = "pages/home.html")]
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
#[template(path = "pages/catalogue.html")]
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
#[template(path = "pages/procedure.html")]
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

async fn current_procedure(st: &AppState, code: &str) -> Result<Procedure, ApiError> {
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

// ---------------------------------------------------------------------------
// The apply form, generated from the procedure definition
// ---------------------------------------------------------------------------

pub struct ChoiceView {
    pub value: String,
    pub label: String,
    pub checked: bool,
    pub html_id: String,
}

/// One input of the generated form.
pub struct FieldView {
    pub html_id: String,
    pub name: String,
    pub label: String,
    pub help: String,
    pub required: bool,
    /// `text`, `number`, `date`, `tel`, `email`, `textarea`, `select`, `radio`.
    pub kind: &'static str,
    pub value: String,
    pub error: Option<String>,
    pub options: Vec<ChoiceView>,
    pub min: String,
    pub max: String,
    pub maxlength: String,
    pub inputmode: &'static str,
    pub autocomplete: &'static str,
    /// Filled from a registry and locked: the registry's name.
    pub locked: String,
    /// What a locked field shows (a choice's label, a date as DD/MM/YYYY).
    pub locked_text: String,
}

pub struct KeptView {
    pub token: String,
    pub filename: String,
}

pub struct DocInput {
    pub html_id: String,
    pub name: String,
    pub label: String,
    pub required: bool,
    pub accept_attr: String,
    pub accept_text: String,
    pub multiple: bool,
    pub error: Option<String>,
    pub kept: Vec<KeptView>,
    pub kept_name: String,
}

#[derive(Template)]
#[template(path = "pages/apply.html")]
pub struct ApplyPage<'a> {
    pub ctx: &'a Ctx,
    pub title: String,
    pub action: String,
    pub procedure_name: String,
    pub counter: bool,
    pub summary: Vec<(String, String)>,
    pub applicant: Vec<FieldView>,
    pub units: Vec<Opt>,
    pub unit_error: Option<String>,
    pub fields: Vec<FieldView>,
    pub documents: Vec<DocInput>,
    pub kept_note: bool,
    /// The consent to read registries, while nothing was read.
    pub consent: Option<ConsentView>,
    /// What the registries' reading turned out, one line per registry
    /// (whether it was read, the text).
    pub prefill_notes: Vec<(bool, String)>,
    /// The token of what the registries answered.
    pub prefill_token: String,
}

pub struct ConsentView {
    pub text: String,
    pub fields: Vec<String>,
}

/// The once-only part of the online apply form.
#[derive(Default)]
pub struct PrefillForm {
    /// The procedure reads registries: ask for consent until it is given.
    pub offer: bool,
    /// What the registries answered after the consent, and its token.
    pub done: Option<(Prefilled, String)>,
    /// A token sent back that was not accepted.
    pub problem: Option<TokenProblem>,
    /// The procedure reads registries but the account's national ID
    /// number is not verified: nothing is read, and the form says why.
    pub unverified: bool,
}

impl PrefillForm {
    /// The prefill state of a citizen's form for `p`: a token sent back is
    /// checked (for this user, procedure and version).
    pub async fn of(
        st: &AppState,
        user: &User,
        p: &Procedure,
        token: Option<&str>,
    ) -> Result<Self, ApiError> {
        // Registries are read by a verified number only: a typed number
        // would show a stranger's data from the national databases.
        let verified = user.verified_national_id().is_some();
        let mut pf = Self {
            offer: !p.prefill.is_empty() && verified,
            unverified: !p.prefill.is_empty() && !verified,
            ..Self::default()
        };
        if let Some(t) = token.filter(|t| !t.is_empty()) {
            match prefill::open(st, t, user.id, p).await? {
                Ok(done) => pf.done = Some((done, t.to_string())),
                Err(problem) => pf.problem = Some(problem),
            }
        }
        Ok(pf)
    }

    /// Replaces the values of locked fields by the registries' ones,
    /// whatever the browser sent.
    fn lock(&self, form: &mut FormData) {
        let Some((done, _)) = &self.done else {
            return;
        };
        for (field, (value, _)) in done.locked() {
            let name = format!("f_{field}");
            form.values.retain(|(k, _)| *k != name);
            form.values.push((name, value.to_string()));
        }
    }

    /// What the dossier records about its data's sources.
    fn sources(&self, p: &Procedure) -> Vec<prefill::SourceResult> {
        match &self.done {
            Some((done, _)) => done.provenance(),
            None => prefill::typed_without_consent(p),
        }
    }
}

/// What the form held at the last attempt.
#[derive(Default)]
pub struct Attempt {
    pub values: BTreeMap<String, String>,
    pub kept: BTreeMap<String, Vec<StoredDocument>>,
    pub errors: Vec<FieldProblem>,
}

fn text_field(
    ctx: &Ctx,
    id: &str,
    key: &str,
    kind: &'static str,
    required: bool,
    a: &Attempt,
    errs: &BTreeMap<String, FieldProblem>,
) -> FieldView {
    FieldView {
        html_id: id.replace(['.', '_'], "-"),
        name: id.to_string(),
        label: ctx.t(key),
        help: String::new(),
        required,
        kind,
        value: a.values.get(id).cloned().unwrap_or_default(),
        error: errs.get(id).map(|p| problem_text(ctx.lang, p)),
        options: Vec::new(),
        min: String::new(),
        max: String::new(),
        maxlength: String::new(),
        inputmode: "",
        autocomplete: "off",
        locked: String::new(),
        locked_text: String::new(),
    }
}

/// One field of the apply form as typed (or locked by a registry).
fn field_view(
    ctx: &Ctx,
    p: &Procedure,
    f: &motcua_domain::procedure::FieldSpec,
    a: &Attempt,
    errs: &BTreeMap<String, FieldProblem>,
    locked: &BTreeMap<&str, (&str, &prefill::SourceResult)>,
    today: NaiveDate,
) -> FieldView {
    let l = ctx.lang.code();
    let name = format!("f_{}", f.id);
    let lock = locked.get(f.id.as_str());
    let value = match lock {
        Some((v, _)) => v.to_string(),
        None => a.values.get(&name).cloned().unwrap_or_default(),
    };
    let kind: &'static str = match f.kind {
        FieldType::Text | FieldType::NationalId => "text",
        FieldType::Number => "number",
        FieldType::Date => "date",
        FieldType::Phone => "tel",
        FieldType::Email => "email",
        FieldType::Address => "textarea",
        FieldType::Choice if f.options.len() <= 4 => "radio",
        FieldType::Choice => "select",
    };
    let html_id = format!("f-{}", f.id.replace('_', "-"));
    let date_bound = |b: &Option<String>| match b.as_deref() {
        Some("today") => today.format("%Y-%m-%d").to_string(),
        Some(d) => d.to_string(),
        None => String::new(),
    };
    let (min, max) = match f.kind {
        FieldType::Date => (date_bound(&f.min_date), date_bound(&f.max_date)),
        FieldType::Number => (
            f.min.map(|v| v.to_string()).unwrap_or_default(),
            f.max.map(|v| v.to_string()).unwrap_or_default(),
        ),
        _ => (String::new(), String::new()),
    };
    FieldView {
        options: f
            .options
            .iter()
            .enumerate()
            .map(|(i, o)| ChoiceView {
                checked: o.value == value,
                value: o.value.clone(),
                label: o.label.get(l).to_string(),
                html_id: if i == 0 {
                    html_id.clone()
                } else {
                    format!("{html_id}-{i}")
                },
            })
            .collect(),
        error: errs.get(&f.id).map(|e| problem_text(ctx.lang, e)),
        label: f.label.get(l).to_string(),
        help: f
            .help
            .as_ref()
            .map(|h| h.get(l).to_string())
            .unwrap_or_default(),
        required: f.required,
        kind,
        value,
        min,
        max,
        maxlength: f.max_length.map(|m| m.to_string()).unwrap_or_default(),
        inputmode: match f.kind {
            FieldType::NationalId => "numeric",
            _ => "",
        },
        autocomplete: match f.kind {
            FieldType::Phone => "tel",
            FieldType::Email => "email",
            _ => "off",
        },
        locked: lock
            .map(|(_, src)| src.name.get(l).to_string())
            .unwrap_or_default(),
        locked_text: lock
            .map(|(v, _)| prefill::display_value(p, &f.id, v, l))
            .unwrap_or_default(),
        html_id,
        name,
    }
}

/// One document slot of the apply form, with the files kept so far.
fn doc_input(
    ctx: &Ctx,
    p: &Procedure,
    d: &motcua_domain::procedure::DocumentSpec,
    a: &Attempt,
    errs: &BTreeMap<String, FieldProblem>,
) -> DocInput {
    let kept: Vec<KeptView> = a
        .kept
        .get(&d.id)
        .map(|v| {
            v.iter()
                .map(|k| KeptView {
                    token: kept_token(ctx, &p.code, k).unwrap_or_default(),
                    filename: k.filename.clone(),
                })
                .collect()
        })
        .unwrap_or_default();
    DocInput {
        kept_name: format!("kept:{}", d.id),
        required: d.required,
        error: errs.get(&d.id).map(|e| problem_text(ctx.lang, e)),
        kept,
        ..upload_input(ctx, d, "d")
    }
}

/// A file input for document `d`, its id prefixed with `prefix`: optional,
/// nothing kept, no error.
fn upload_input(ctx: &Ctx, d: &motcua_domain::procedure::DocumentSpec, prefix: &str) -> DocInput {
    DocInput {
        html_id: format!("{prefix}-{}", d.id),
        name: format!("document:{}", d.id),
        kept_name: String::new(),
        label: d.name.get(ctx.lang.code()).to_string(),
        required: false,
        accept_attr: d
            .accept
            .iter()
            .map(|e| format!(".{e}"))
            .collect::<Vec<_>>()
            .join(","),
        accept_text: d.accept.join(", ").to_uppercase(),
        multiple: d.max_count > 1,
        error: None,
        kept: Vec::new(),
    }
}

/// What the apply form says about registry data: read (with the exchange's
/// id), or why it was not.
fn prefill_notes(ctx: &Ctx, pf: &PrefillForm) -> Vec<(bool, String)> {
    let l = ctx.lang.code();
    let mut prefill_notes = Vec::new();
    match (&pf.done, pf.problem) {
        (Some((done, _)), _) => {
            for src in &done.sources {
                let mut args = serde_json::Map::new();
                args.insert("registry".into(), src.name.get(l).into());
                let ok = src.origin == prefill::Origin::Exchange;
                let key = match (&src.origin, src.reason.as_deref()) {
                    (prefill::Origin::Exchange, _) => {
                        args.insert(
                            "id".into(),
                            src.x_road_id.clone().unwrap_or_default().into(),
                        );
                        "prefill-done"
                    }
                    (_, Some("not-found")) => "prefill-not-found",
                    (_, Some("invalid-answer")) => "prefill-invalid-answer",
                    _ => "prefill-unreachable",
                };
                prefill_notes.push((ok, ctx.lang.text_with(key, &args)));
            }
        }
        (None, Some(TokenProblem::Expired)) => {
            prefill_notes.push((false, ctx.t("prefill-expired")))
        }
        (None, Some(TokenProblem::Invalid)) => {
            prefill_notes.push((false, ctx.t("prefill-invalid")))
        }
        (None, None) if pf.unverified => {
            prefill_notes.push((false, ctx.t("prefill-needs-verification")))
        }
        (None, None) => {}
    }
    prefill_notes
}

/// The error summary of the apply form, in the order of the page, each
/// linked to its input.
fn error_summary(
    ctx: &Ctx,
    a: &Attempt,
    errs: &BTreeMap<String, FieldProblem>,
    applicant: &[FieldView],
    unit_error: Option<&str>,
    fields: &[FieldView],
    documents: &[DocInput],
) -> Vec<(String, String)> {
    let mut summary = Vec::new();
    for f in applicant {
        if let Some(e) = &f.error {
            summary.push((format!("#{}", f.html_id), format!("{}: {e}", f.label)));
        }
    }
    if let Some(e) = unit_error {
        summary.push(("#unit-code".into(), format!("{}: {e}", ctx.t("page-unit"))));
    }
    for f in fields {
        if let Some(e) = &f.error {
            summary.push((format!("#{}", f.html_id), format!("{}: {e}", f.label)));
        }
    }
    for d in documents {
        if let Some(e) = &d.error {
            summary.push((format!("#{}", d.html_id), format!("{}: {e}", d.label)));
        }
    }
    for e in &a.errors {
        if !errs.contains_key(&e.field) || summary.is_empty() {
            // errors not tied to an input
            if !summary.iter().any(|(h, _)| h.ends_with(&e.field)) && e.field.is_empty() {
                summary.push((String::new(), problem_text(ctx.lang, e)));
            }
        }
    }
    summary
}

/// Renders the apply form (online, or counter reception when `counter`).
pub fn render_apply(
    ctx: &Ctx,
    p: &Procedure,
    units: Vec<(String, String)>,
    a: &Attempt,
    counter: bool,
    today: NaiveDate,
    pf: &PrefillForm,
) -> Response {
    let l = ctx.lang.code();
    let errs = by_field(&a.errors);
    let locked = pf
        .done
        .as_ref()
        .map(|(d, _)| d.locked())
        .unwrap_or_default();
    let applicant = if counter {
        vec![
            text_field(ctx, "a_full_name", "reg-full-name", "text", true, a, &errs),
            text_field(
                ctx,
                "a_national_id",
                "reg-national-id",
                "text",
                true,
                a,
                &errs,
            ),
            text_field(ctx, "a_phone", "reg-phone", "tel", false, a, &errs),
            text_field(ctx, "a_email", "reg-email", "email", false, a, &errs),
        ]
    } else {
        Vec::new()
    };
    let chosen_unit = a.values.get("unit_code").cloned().unwrap_or_default();
    let units: Vec<Opt> = units
        .into_iter()
        .map(|(code, name)| Opt {
            selected: code == chosen_unit,
            value: code,
            label: name,
        })
        .collect();
    let fields: Vec<FieldView> = p
        .fields
        .iter()
        .map(|f| field_view(ctx, p, f, a, &errs, &locked, today))
        .collect();
    let documents: Vec<DocInput> = p
        .documents
        .iter()
        .map(|d| doc_input(ctx, p, d, a, &errs))
        .collect();
    let unit_error = errs.get("unit_code").map(|e| problem_text(ctx.lang, e));
    let summary = error_summary(
        ctx,
        a,
        &errs,
        &applicant,
        unit_error.as_deref(),
        &fields,
        &documents,
    );
    let kept_note = documents.iter().any(|d| !d.kept.is_empty());
    let title = if counter {
        ctx.t("page-counter")
    } else {
        ctx.t("page-apply")
    };
    let action = if counter {
        format!("/can-bo/tiep-nhan?thu_tuc={}", url_encode(&p.code))
    } else {
        format!("/thu-tuc/{}/nop-ho-so", url_encode(&p.code))
    };
    let consent = (pf.offer && pf.done.is_none() && !counter).then(|| {
        let names: Vec<String> = p
            .prefill
            .iter()
            .map(|src| src.name.get(l).to_string())
            .collect();
        let mut args = serde_json::Map::new();
        args.insert("registries".into(), names.join(", ").into());
        ConsentView {
            text: ctx.lang.text_with("prefill-consent-text", &args),
            fields: p
                .fields
                .iter()
                .filter(|f| p.prefill.iter().any(|src| src.fields.contains_key(&f.id)))
                .map(|f| f.label.get(l).to_string())
                .collect(),
        }
    });
    let prefill_notes = prefill_notes(ctx, pf);
    let page = ApplyPage {
        consent,
        prefill_notes,
        prefill_token: pf.done.as_ref().map(|(_, t)| t.clone()).unwrap_or_default(),
        ctx,
        title,
        action,
        procedure_name: p.name.get(l).to_string(),
        counter,
        summary,
        applicant,
        units,
        unit_error,
        fields,
        documents,
        kept_note,
    };
    let status = if a.errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    ctx.render(status, page.render())
}

pub async fn apply_form(
    State(st): State<AppState>,
    ctx: Ctx,
    SignedIn(user): SignedIn,
    Path(code): Path<String>,
) -> PageResult {
    if !crate::auth::has(&user, motcua_domain::dossier::Role::Citizen) {
        return Err(ApiError::forbidden());
    }
    let p = current_procedure(&st, &code).await?;
    if p.online == motcua_domain::procedure::OnlineLevel::None {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "not-online",
        ));
    }
    let units = units_for(&st, &p).await?;
    let mut a = Attempt::default();
    if units.len() == 1
        && let Some((c, _)) = units.first()
    {
        a.values.insert("unit_code".into(), c.clone());
    }
    let today = motcua_store::vietnam_day(st.clock.now());
    let pf = PrefillForm::of(&st, &user, &p, None).await?;
    Ok(render_apply(&ctx, &p, units, &a, false, today, &pf))
}

/// Where the dossier is filed: the officer's own agency at the counter,
/// the chosen unit online; problems are added to `errs`.
async fn apply_unit(
    st: &AppState,
    ctx: &Ctx,
    p: &Procedure,
    a: &Attempt,
    counter: bool,
    errs: &mut Vec<FieldProblem>,
) -> Result<(Option<UnitCode>, Option<motcua_domain::units::Agency>), ApiError> {
    let mut unit = None;
    let mut agency = None;
    if counter {
        if let Some(u) = &ctx.user
            && let Some(ac) = &u.agency_code
        {
            agency = st.store.agency(ac).await?;
            unit = agency.as_ref().map(|a| a.unit_code.clone());
        }
    } else {
        match a
            .values
            .get("unit_code")
            .and_then(|c| UnitCode::parse(c).ok())
        {
            Some(u) => {
                agency = agency_for(st, p, &u).await?;
                unit = Some(u);
            }
            None => errs.push(FieldProblem::new("unit_code", "required")),
        }
    }
    if unit.is_some() && agency.is_none() {
        errs.push(FieldProblem::new("unit_code", "unknown-unit"));
    } else if let Some(u) = &unit
        && !procedure_available(st, &p.code, u).await?
    {
        errs.push(FieldProblem::new("unit_code", "procedure-not-available"));
    }
    Ok((unit, agency))
}

/// The applicant typed by the officer at the counter: who the dossier is
/// for, linked to an account only when its number is verified.
async fn counter_applicant(
    st: &AppState,
    a: &Attempt,
    errs: &mut Vec<FieldProblem>,
) -> Result<Option<Applicant>, ApiError> {
    let get = |k: &str| {
        a.values
            .get(k)
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    };
    let full_name = motcua_domain::text::nfc(&get("a_full_name"));
    if full_name.chars().count() < 2 {
        errs.push(FieldProblem::new("a_full_name", "required"));
    }
    let nid = NationalId::parse(&get("a_national_id"));
    if nid.is_err() {
        errs.push(FieldProblem::new("a_national_id", "invalid-national-id"));
    }
    let phone_raw = get("a_phone");
    let phone = if phone_raw.is_empty() {
        None
    } else {
        match parse_phone(&phone_raw) {
            Ok(p) => Some(p),
            Err(_) => {
                errs.push(FieldProblem::new("a_phone", "invalid-phone"));
                None
            }
        }
    };
    let email_raw = get("a_email");
    let email = if email_raw.is_empty() {
        None
    } else {
        match motcua_domain::ids::parse_email(&email_raw) {
            Ok(e) => Some(e),
            Err(_) => {
                errs.push(FieldProblem::new("a_email", "invalid-email"));
                None
            }
        }
    };
    if let Ok(n) = nid {
        let owner = st
            .store
            .user_by_verified_national_id(n.as_str())
            .await?
            .map(|u| u.id);
        return Ok(Some(Applicant {
            user_id: owner,
            full_name,
            national_id: n.to_string(),
            phone,
            email,
        }));
    }
    Ok(None)
}

/// Reads and checks an apply form. `Ok(Err(attempt))` when the form must
/// be shown again with its errors.
pub async fn check_apply(
    st: &AppState,
    ctx: &Ctx,
    p: &Procedure,
    form: FormData,
    counter: bool,
    keep_open: bool,
) -> Result<Result<Checked, Attempt>, ApiError> {
    let mut a = Attempt::default();
    for (k, v) in &form.values {
        if k.starts_with("f_") || k.starts_with("a_") || k == "unit_code" {
            a.values.insert(k.clone(), v.clone());
        }
    }
    // Files kept from an earlier attempt, then new files.
    for d in &p.documents {
        for t in form.all(&format!("kept:{}", d.id)) {
            if let Some(k) = parse_kept(st, ctx, &p.code, &d.id, t)
                && st.objects.exists(&k.sha256).await?
            {
                a.kept.entry(d.id.clone()).or_default().push(k);
            }
        }
    }
    let mut errs: Vec<FieldProblem> = form.rejected.clone();
    for up in form.files {
        let Some(doc_id) = up.name.strip_prefix("document:").map(str::to_string) else {
            continue;
        };
        if let Some(e) = check_file(p, &doc_id, &up) {
            errs.push(e);
            continue;
        }
        // A new file replaces what was kept for the same document.
        let fresh = store_file(st, &doc_id, up, "initial").await?;
        let slot = a.kept.entry(doc_id.clone()).or_default();
        slot.retain(|k| k.stage == "new");
        let mut fresh = fresh;
        fresh.stage = "new".into();
        slot.push(fresh);
    }
    for v in a.kept.values_mut() {
        for k in v.iter_mut() {
            k.stage = "initial".into();
        }
    }
    if keep_open {
        // The form goes back to the citizen as it is (e.g. after the
        // consent to read registries): only the files refused are errors.
        a.errors = errs;
        return Ok(Err(a));
    }
    let pairs: Vec<(String, String)> = a
        .kept
        .iter()
        .flat_map(|(id, v)| v.iter().map(move |k| (id.clone(), k.filename.clone())))
        .collect();
    if let Err(es) = p.validate_documents(&pairs) {
        let have: Vec<String> = errs.iter().map(|e| e.field.clone()).collect();
        errs.extend(
            es.into_iter()
                .map(FieldProblem::from)
                .filter(|e| !have.contains(&e.field)),
        );
    }
    let mut values = serde_json::Map::new();
    for f in &p.fields {
        if let Some(v) = a.values.get(&format!("f_{}", f.id)) {
            values.insert(f.id.clone(), serde_json::Value::String(v.clone()));
        }
    }
    let today = motcua_store::vietnam_day(st.clock.now());
    let fields = match p.validate_fields(&values, today) {
        Ok(f) => Some(f),
        Err(es) => {
            errs.extend(es.into_iter().map(FieldProblem::from));
            None
        }
    };
    let (unit, agency) = apply_unit(st, ctx, p, &a, counter, &mut errs).await?;
    let applicant = if counter {
        counter_applicant(st, &a, &mut errs).await?
    } else {
        None
    };
    if !errs.is_empty() {
        a.errors = errs;
        return Ok(Err(a));
    }
    let (Some(fields), Some(unit), Some(agency)) = (fields, unit, agency) else {
        return Err(ApiError::internal("apply form checked without values"));
    };
    let documents = a.kept.into_values().flatten().collect();
    Ok(Ok(Checked {
        fields,
        unit,
        agency,
        applicant,
        documents,
    }))
}

pub struct Checked {
    pub fields: serde_json::Map<String, serde_json::Value>,
    pub unit: UnitCode,
    pub agency: motcua_domain::units::Agency,
    pub applicant: Option<Applicant>,
    pub documents: Vec<StoredDocument>,
}

pub async fn apply_submit(
    State(st): State<AppState>,
    ctx: Ctx,
    SignedIn(user): SignedIn,
    Path(code): Path<String>,
    CheckedMultipartKeeping(form): CheckedMultipartKeeping,
) -> PageResult {
    if !crate::auth::has(&user, motcua_domain::dossier::Role::Citizen) {
        return Err(ApiError::forbidden());
    }
    let p = current_procedure(&st, &code).await?;
    let mut form = form;
    let mut pf = PrefillForm::of(&st, &user, &p, form.get("prefill")).await?;
    let consent = form.get("intent") == Some("prefill");
    if consent
        && pf.offer
        && let Some(nid) = user
            .verified_national_id()
            .and_then(|n| NationalId::parse(n).ok())
    {
        let done = prefill::fetch(&st, &p, user.id, &nid).await;
        let token = prefill::seal(&st, &done).await?;
        pf.done = Some((done, token));
        pf.problem = None;
    }
    pf.lock(&mut form);
    // After the consent, or when the token sent back was not accepted, the
    // form goes back to the citizen instead of being filed.
    let hold = consent || pf.problem.is_some();
    match check_apply(&st, &ctx, &p, form, false, hold).await? {
        Err(attempt) => {
            let units = units_for(&st, &p).await?;
            let today = motcua_store::vietnam_day(st.clock.now());
            Ok(render_apply(&ctx, &p, units, &attempt, false, today, &pf))
        }
        Ok(c) => {
            let applicant = Applicant {
                user_id: Some(user.id),
                full_name: user.full_name.clone(),
                national_id: user.national_id.clone().unwrap_or_default(),
                phone: user.phone.clone(),
                email: user.email.clone(),
            };
            let d = create_dossier(
                &st,
                &user,
                &p,
                &c.agency,
                c.unit,
                Channel::Online,
                applicant,
                c.fields,
                c.documents,
                pf.sources(&p),
            )
            .await?;
            Ok(Redirect::to(&format!("/ho-so/{}/bien-nhan", d.code)).into_response())
        }
    }
}

// ---------------------------------------------------------------------------
// Receipt (Form 01)
// ---------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "pages/receipt.html")]
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
    let page = ReceiptPage {
        ctx: &ctx,
        title: ctx.t("page-receipt"),
        code: d.code.to_string(),
        procedure: p.name.get(l).to_string(),
        applicant: d.applicant.full_name.clone(),
        agency: agency
            .as_ref()
            .map(|a| {
                if ctx.lang == Lang::En {
                    a.name_en.clone()
                } else {
                    a.name_vi.clone()
                }
            })
            .unwrap_or_default(),
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

pub async fn procedure_names(
    st: &AppState,
    lang: Lang,
) -> Result<BTreeMap<String, String>, ApiError> {
    Ok(st
        .catalogue()
        .await?
        .iter()
        .map(|(p, _)| (p.code.clone(), p.name.get(lang.code()).to_string()))
        .collect())
}

pub fn row_of(
    ctx: &Ctx,
    names: &BTreeMap<String, String>,
    s: &motcua_store::DossierSummary,
    now: DateTime<Utc>,
    soon: DateTime<Utc>,
) -> Row {
    let due = s.appointment_at.or(s.due_at);
    let overdue = s.status.is_open() && s.due_at.is_some_and(|d| d < now);
    let due_soon = s.status.is_open() && !overdue && s.due_at.is_some_and(|d| d <= soon);
    Row {
        href: format!("/ho-so/{}", s.code),
        code: s.code.to_string(),
        procedure: names
            .get(&s.procedure_code)
            .cloned()
            .unwrap_or_else(|| s.procedure_code.clone()),
        applicant: s.applicant_name.clone(),
        status: status_label(ctx.lang, s.status),
        status_class: format!("st st-{}", s.status.number()),
        submitted: fmt_dt(s.submitted_at),
        due: fmt_opt(due),
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
#[template(path = "pages/my_dossiers.html")]
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
        .map(|s| row_of(&ctx, &names, s, now, soon))
        .collect();
    let identity_note = match &user.national_id_verified {
        None if crate::auth::has(&user, motcua_domain::dossier::Role::Citizen) => {
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
#[template(path = "pages/dossier.html")]
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
    prefill::sources_of(fields)
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
                prefill::Origin::Exchange => {
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
                prefill::Origin::Typed => {
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
        .map(|a| format!("{} — {}", action_label(ctx.lang, a), ctx.t("page-done")));
    render_dossier(&st, &ctx, &user, &d, flash, None).await
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
    let staff = crate::auth::is_staff(user);
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
            let text = prefill::display_value(&p, &f.id, &text, l);
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
    match take_action(&st, &user, &d, &p, cmd, documents).await {
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
#[template(path = "pages/track.html")]
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
    client: crate::throttle::Client,
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
            crate::throttle::guess_gate(&st, &client, d.code.as_str()).await?;
            if !d.access_code.is_empty()
                && crate::crypto::constant_time_eq(secret.as_bytes(), d.access_code.as_bytes())
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
                crate::throttle::guess_failed(&st, &client, d.code.as_str()).await?;
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

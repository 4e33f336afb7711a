//! The apply form, generated from the procedure definition: one page
//! for the citizen online and the officer at the counter; what was typed
//! survives every error.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::NaiveDate;
use motcua_domain::UnitCode;
use motcua_domain::dossier::Channel;
use motcua_domain::ids::{NationalId, parse_phone};
use motcua_domain::procedure::{FieldType, Procedure};
use motcua_store::{Applicant, StoredDocument, User};

use crate::catalogue::pages::Opt;
use crate::catalogue::pages::current_procedure;
use crate::dossiers::support::kept_token;
use crate::dossiers::support::parse_kept;
use crate::dossiers::support::units_for;
use crate::exchange::prefill::Prefilled;
use crate::exchange::prefill::TokenProblem;
use crate::kernel::access::CheckedMultipartKeeping;
use crate::kernel::access::CitizenPage;
use crate::kernel::body::FormData;
use crate::kernel::error::{ApiError, FieldProblem};
use crate::kernel::labels::by_field;
use crate::kernel::labels::problem_text;
use crate::kernel::page::Ctx;
use crate::kernel::page::PageResult;
use crate::kernel::page::url_encode;
use crate::state::AppState;
use motcua_commands::catalogue::procedure_available;
use motcua_commands::dossiers::agency_for;
use motcua_commands::dossiers::create_dossier;
use motcua_commands::files::check_file;
use motcua_commands::files::store_file;

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
#[template(path = "dossiers/apply.html")]
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
            match crate::exchange::prefill::open(st, t, user.id, p).await? {
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
    fn sources(&self, p: &Procedure) -> Vec<motcua_commands::prefill::SourceResult> {
        match &self.done {
            Some((done, _)) => done.provenance(),
            None => crate::exchange::prefill::typed_without_consent(p),
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
    locked: &BTreeMap<&str, (&str, &motcua_commands::prefill::SourceResult)>,
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
            .map(|(v, _)| crate::exchange::prefill::display_value(p, &f.id, v, l))
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
pub fn upload_input(
    ctx: &Ctx,
    d: &motcua_domain::procedure::DocumentSpec,
    prefix: &str,
) -> DocInput {
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
                let ok = src.origin == motcua_commands::prefill::Origin::Exchange;
                let key = match (&src.origin, src.reason.as_deref()) {
                    (motcua_commands::prefill::Origin::Exchange, _) => {
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
    CitizenPage(user): CitizenPage,
    Path(code): Path<String>,
) -> PageResult {
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
    CitizenPage(user): CitizenPage,
    Path(code): Path<String>,
    CheckedMultipartKeeping(form): CheckedMultipartKeeping,
) -> PageResult {
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
        let done = crate::exchange::prefill::fetch(&st, &p, user.id, &nid).await;
        let token = crate::exchange::prefill::seal(&st, &done).await?;
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

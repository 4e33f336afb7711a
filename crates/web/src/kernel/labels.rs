//! The words of the domain in the reader's language: statuses, actions,
//! roles, levels, and the messages of field problems.

use std::collections::BTreeMap;

use motcua_domain::dossier::{Action, Status};
use motcua_domain::procedure::{OnlineLevel, ProcessingTime};
use motcua_domain::units::UnitLevel;

use crate::kernel::error::{ApiError, FieldProblem};
use crate::kernel::i18n::Lang;

// ---------------------------------------------------------------------------
// Labels
// ---------------------------------------------------------------------------

pub fn status_label(lang: Lang, s: Status) -> String {
    lang.text(&format!("status-{}", s.as_str()))
}

pub fn action_label(lang: Lang, a: Action) -> String {
    lang.text(&format!("action-{}", a.as_str()))
}

pub fn role_label(lang: Lang, r: &str) -> String {
    lang.text(&format!("role-{r}"))
}

pub fn processing_time_label(lang: Lang, t: ProcessingTime) -> String {
    let mut args = serde_json::Map::new();
    args.insert("n".into(), t.amount().into());
    match t {
        ProcessingTime::WorkingDays(_) => lang.text_with("page-working-days", &args),
        ProcessingTime::WorkingHours(_) => lang.text_with("page-working-hours", &args),
    }
}

pub fn online_label(lang: Lang, o: OnlineLevel) -> String {
    lang.text(match o {
        OnlineLevel::Full => "online-full",
        OnlineLevel::Partial => "online-partial",
        OnlineLevel::None => "online-none",
    })
}

pub fn level_label(lang: Lang, l: UnitLevel) -> String {
    lang.text(match l {
        UnitLevel::Province => "level-province",
        UnitLevel::Commune => "level-commune",
    })
}

/// A translated validation message of a field problem.
pub fn problem_text(lang: Lang, f: &FieldProblem) -> String {
    lang.text_with(&format!("field-{}", f.code), &f.params)
}

/// Field problems keyed by field (first problem wins).
pub fn by_field(errs: &[FieldProblem]) -> BTreeMap<String, FieldProblem> {
    let mut m = BTreeMap::new();
    for e in errs {
        m.entry(e.field.clone()).or_insert_with(|| e.clone());
    }
    m
}

/// Turns a domain/store error of an action into field problems to show
/// next to the form, or passes the error on.
pub fn action_problem(lang: Lang, e: &ApiError) -> String {
    if let Some(f) = e.fields.first() {
        problem_text(lang, f)
    } else {
        lang.text(&format!("problem-{}", e.kind))
    }
}

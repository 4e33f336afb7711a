//! Checking what a citizen submits against a procedure.

use std::collections::{HashMap, HashSet};

use chrono::NaiveDate;
use serde::Serialize;
use serde_json::{Map, Value as Json};

use super::*;
use crate::ids::{NationalId, parse_email, parse_phone};

// ---------------------------------------------------------------------------
// Validation of what a citizen submits
// ---------------------------------------------------------------------------

/// A problem with one submitted value or document. `code` is a stable key
/// the web layer translates, `params` fill in its message (`{"min": 2}`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldError {
    /// Field id or document id.
    pub field: String,
    /// `required`, `too-short`, `too-long`, `below-min`, `above-max`,
    /// `not-a-number`, `pattern`, `invalid-date`, `date-too-early`,
    /// `date-too-late`, `invalid-choice`, `invalid-national-id`,
    /// `invalid-phone`, `invalid-email`, `unknown-field`, `not-text`,
    /// `document-required`, `document-type`, `document-too-many`,
    /// `document-unknown`.
    pub code: &'static str,
    pub params: Map<String, Json>,
}

impl FieldError {
    pub fn new(field: &str, code: &'static str) -> Self {
        Self {
            field: field.to_string(),
            code,
            params: Map::new(),
        }
    }

    fn with(mut self, key: &str, value: impl Into<Json>) -> Self {
        self.params.insert(key.to_string(), value.into());
        self
    }
}

impl Procedure {
    /// Validates and normalises submitted form values (JSON object: field id
    /// -> string/number). Returns the normalised values (strings trimmed and
    /// in NFC, numbers as JSON numbers, dates as YYYY-MM-DD, national ids and
    /// phones normalised) or ALL field errors, at most one per field.
    ///
    /// Blank or null values of optional fields are dropped; of required
    /// fields they are `required`. Dates are accepted as `YYYY-MM-DD` or
    /// `dd/mm/yyyy`, numbers as JSON numbers or numeric strings (`.` as
    /// decimal separator). `today` resolves `min_date`/`max_date: today`.
    pub fn validate_fields(
        &self,
        values: &Map<String, Json>,
        today: NaiveDate,
    ) -> Result<Map<String, Json>, Vec<FieldError>> {
        let mut errors = Vec::new();
        for key in values.keys() {
            if self.field(key).is_none() {
                errors.push(FieldError::new(key, "unknown-field"));
            }
        }
        let mut out = Map::new();
        for field in &self.fields {
            let value = match values.get(&field.id) {
                None | Some(Json::Null) => None,
                Some(Json::String(s)) if s.trim().is_empty() => None,
                Some(v) => Some(v),
            };
            let Some(value) = value else {
                if field.required {
                    errors.push(FieldError::new(&field.id, "required"));
                }
                continue;
            };
            match field.normalise(value, today) {
                Ok(v) => {
                    out.insert(field.id.clone(), v);
                }
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty() {
            Ok(out)
        } else {
            Err(errors)
        }
    }

    /// Checks uploaded documents, given as (document id, file name): every
    /// required document is present, each file's extension is in the
    /// document's accept list (case-insensitive), no document has more than
    /// `max_count` files, and unknown document ids are refused.
    pub fn validate_documents(&self, docs: &[(String, String)]) -> Result<(), Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut counts: HashMap<&str, u32> = HashMap::new();
        let mut unknown = HashSet::new();
        for (id, file_name) in docs {
            let Some(spec) = self.document(id) else {
                if unknown.insert(id.as_str()) {
                    errors.push(FieldError::new(id, "document-unknown"));
                }
                continue;
            };
            *counts.entry(spec.id.as_str()).or_default() += 1;
            let accepted = file_name
                .rsplit_once('.')
                .map(|(_, ext)| ext)
                .is_some_and(|ext| spec.accept.iter().any(|a| a.eq_ignore_ascii_case(ext)));
            if !accepted {
                errors.push(
                    FieldError::new(id, "document-type")
                        .with("file", file_name.as_str())
                        .with("accept", spec.accept.join(", ")),
                );
            }
        }
        for spec in &self.documents {
            let count = counts.get(spec.id.as_str()).copied().unwrap_or(0);
            if count == 0 && spec.required {
                errors.push(FieldError::new(&spec.id, "document-required"));
            }
            if count > spec.max_count {
                errors.push(
                    FieldError::new(&spec.id, "document-too-many")
                        .with("max", spec.max_count)
                        .with("count", count),
                );
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// Sum of all fees, in VND.
    pub fn total_fee(&self) -> u64 {
        self.fees
            .iter()
            .fold(0u64, |sum, fee| sum.saturating_add(fee.amount))
    }

    pub fn document(&self, id: &str) -> Option<&DocumentSpec> {
        self.documents.iter().find(|d| d.id == id)
    }

    pub fn field(&self, id: &str) -> Option<&FieldSpec> {
        self.fields.iter().find(|f| f.id == id)
    }
}

/// The whole-value regular expression of a field `pattern`, compiled once
/// per process and shared (a pattern that does not compile matches nothing;
/// lint refuses such files before import).
pub(super) fn anchored_regex(pattern: &str) -> Option<regex::Regex> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static CACHE: OnceLock<Mutex<HashMap<String, Option<regex::Regex>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    let mut map = cache.lock().unwrap_or_else(|p| p.into_inner());
    if map.len() > 10_000 {
        map.clear();
    }
    map.entry(pattern.to_string())
        .or_insert_with(|| regex::Regex::new(&format!("^(?:{pattern})$")).ok())
        .clone()
}

impl FieldSpec {
    /// Checks and normalises one non-blank value.
    fn normalise(&self, value: &Json, today: NaiveDate) -> Result<Json, FieldError> {
        let err = |code| FieldError::new(&self.id, code);
        // Control characters (NUL, escape codes …) are never part of what a
        // person types; line breaks and tabs are.
        let text = || match value {
            Json::String(s) if !crate::text::has_control(s) => Ok(crate::text::nfc(s.trim())),
            _ => Err(err("not-text")),
        };
        match self.kind {
            FieldType::Text => {
                let s = text()?;
                self.check_length(&s, 0, DEFAULT_TEXT_MAX_LENGTH)?;
                if let Some(pattern) = &self.pattern {
                    // A pattern that does not compile never accepts (the lint
                    // refuses such procedures).
                    let ok = anchored_regex(pattern).is_some_and(|re| re.is_match(&s));
                    if !ok {
                        return Err(err("pattern"));
                    }
                }
                Ok(Json::String(s))
            }
            FieldType::Address => {
                let s = text()?;
                self.check_length(&s, ADDRESS_MIN_LENGTH, ADDRESS_MAX_LENGTH)?;
                Ok(Json::String(s))
            }
            FieldType::Number => {
                let n = match value {
                    Json::Number(n) => n.as_f64(),
                    Json::String(s) => parse_number(s),
                    _ => None,
                }
                .filter(|n| n.is_finite())
                .ok_or_else(|| err("not-a-number"))?;
                if let Some(min) = self.min
                    && n < min
                {
                    return Err(err("below-min").with("min", json_number(min)));
                }
                if let Some(max) = self.max
                    && n > max
                {
                    return Err(err("above-max").with("max", json_number(max)));
                }
                Ok(json_number(n))
            }
            FieldType::Date => {
                let s = text()?;
                let date = parse_user_date(&s).ok_or_else(|| err("invalid-date"))?;
                let bound = |b: &Option<String>| match b.as_deref() {
                    Some("today") => Some(today),
                    Some(b) => parse_iso_date(b),
                    None => None,
                };
                if let Some(min) = bound(&self.min_date)
                    && date < min
                {
                    return Err(
                        err("date-too-early").with("min", min.format("%Y-%m-%d").to_string())
                    );
                }
                if let Some(max) = bound(&self.max_date)
                    && date > max
                {
                    return Err(
                        err("date-too-late").with("max", max.format("%Y-%m-%d").to_string())
                    );
                }
                Ok(Json::String(date.format("%Y-%m-%d").to_string()))
            }
            FieldType::Choice => {
                let s = text()?;
                if self.options.iter().any(|o| o.value == s) {
                    Ok(Json::String(s))
                } else {
                    let allowed: Vec<Json> = self
                        .options
                        .iter()
                        .map(|o| Json::String(o.value.clone()))
                        .collect();
                    Err(err("invalid-choice").with("allowed", allowed))
                }
            }
            FieldType::NationalId => {
                let s: String = text()?.chars().filter(|c| !c.is_whitespace()).collect();
                NationalId::parse(&s)
                    .map(|id| Json::String(id.as_str().to_string()))
                    .map_err(|e| err(e.key))
            }
            FieldType::Phone => {
                let s = text()?;
                parse_phone(&s).map(Json::String).map_err(|e| err(e.key))
            }
            FieldType::Email => {
                let s = text()?;
                parse_email(&s).map(Json::String).map_err(|e| err(e.key))
            }
        }
    }

    /// Length in characters against min_length/max_length or the defaults.
    fn check_length(&self, s: &str, min: u32, max: u32) -> Result<(), FieldError> {
        let len = s.chars().count();
        let min = self.min_length.unwrap_or(min);
        let max = self.max_length.unwrap_or(max);
        if len < min as usize {
            return Err(FieldError::new(&self.id, "too-short").with("min", min));
        }
        if len > max as usize {
            return Err(FieldError::new(&self.id, "too-long").with("max", max));
        }
        Ok(())
    }
}

/// `12`, `-3`, `4.5`, with optional sign; no exponent, no thousands
/// separators, no `inf`/`NaN`.
pub(super) fn parse_number(s: &str) -> Option<f64> {
    let t = s.trim();
    let digits = t.strip_prefix(['-', '+']).unwrap_or(t);
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let ok = !int.is_empty()
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit())
        && !(digits.contains('.') && frac.is_empty());
    if ok { t.parse().ok() } else { None }
}

/// A whole number as a JSON integer, anything else as a float.
pub(super) fn json_number(n: f64) -> Json {
    if n.fract() == 0.0 && n.abs() < 9_007_199_254_740_992.0 {
        Json::from(n as i64)
    } else {
        serde_json::Number::from_f64(n).map_or(Json::Null, Json::Number)
    }
}

/// `YYYY-MM-DD` or `dd/mm/yyyy` (day and month may have one digit).
pub(super) fn parse_user_date(s: &str) -> Option<NaiveDate> {
    if s.contains('/') {
        let mut parts = s.split('/');
        let (d, m, y) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || y.len() != 4 || d.len() > 2 || m.len() > 2 {
            return None;
        }
        date_from_parts(y, m, d)
    } else {
        parse_iso_date(s)
    }
}

//! Parsing a procedure file and its lint: every problem with its place.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use chrono::NaiveDate;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::*;
use crate::units::{AgencyKind, UnitLevel};

// ---------------------------------------------------------------------------
// Limits shared by the lint and the validation of submissions.
// ---------------------------------------------------------------------------

/// File types a document may accept (lower case, without the dot).
pub const ACCEPTED_EXTENSIONS: [&str; 11] = [
    "pdf", "jpg", "jpeg", "png", "doc", "docx", "xls", "xlsx", "odt", "tif", "tiff",
];
/// Upper bound of `max_count` of a document.
pub const MAX_DOCUMENT_COUNT: u32 = 20;
/// Maximum length of a text field without `max_length`.
pub const DEFAULT_TEXT_MAX_LENGTH: u32 = 500;
/// Default length bounds of an address field.
pub const ADDRESS_MIN_LENGTH: u32 = 5;
pub const ADDRESS_MAX_LENGTH: u32 = 300;

/// The keys of a procedure file, in the order they are documented.
pub(super) const TOP_KEYS: [&str; 16] = [
    "code",
    "version",
    "name",
    "sector",
    "sector_name",
    "level",
    "agency_kind",
    "online",
    "processing_time",
    "fees",
    "documents",
    "fields",
    "workflow",
    "result",
    "legal_basis",
    "prefill",
];
/// The keys without a default.
pub(super) const REQUIRED_KEYS: [&str; 11] = [
    "code",
    "version",
    "name",
    "sector",
    "sector_name",
    "level",
    "agency_kind",
    "online",
    "processing_time",
    "workflow",
    "result",
];

// ---------------------------------------------------------------------------
// Parsing and lint
// ---------------------------------------------------------------------------

/// A problem in a procedure file, with the place to fix it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}")]
pub struct LintIssue {
    pub file: String,
    /// 1-based line number.
    pub line: usize,
    /// 1-based column, 0 when only the line is known.
    pub column: usize,
    pub message: String,
}

/// Parses a procedure file and runs every check of [`lint_procedure`] on it.
/// The procedure is returned only when the file has no issue at all.
pub fn parse_procedure(file: &str, yaml: &str) -> Result<Procedure, Vec<LintIssue>> {
    let (procedure, issues) = analyse(file, yaml);
    match procedure {
        Some(p) if issues.is_empty() => Ok(p),
        _ => Err(issues),
    }
}

/// Every problem of a procedure file, sorted by line (empty when the file is
/// fine). Syntax errors stop the analysis (nothing after them can be trusted);
/// type errors are reported for every key and every list item that has one,
/// and the semantic checks still run on the parts that could be read.
pub fn lint_procedure(file: &str, yaml: &str) -> Vec<LintIssue> {
    analyse(file, yaml).1
}

/// Checks across procedure files: a `(code, version)` pair may be defined
/// only once. The issue is reported on the later file, at line 1.
pub fn lint_set(procs: &[(String, Procedure)]) -> Vec<LintIssue> {
    let mut seen: HashMap<(&str, u32), &str> = HashMap::new();
    let mut issues = Vec::new();
    for (file, p) in procs {
        match seen.get(&(p.code.as_str(), p.version)) {
            Some(first) => issues.push(LintIssue {
                file: file.clone(),
                line: 1,
                column: 0,
                message: format!(
                    "procedure {} version {} is already defined in {first}; \
                     a changed procedure needs a new version",
                    p.code, p.version
                ),
            }),
            None => {
                seen.insert((p.code.as_str(), p.version), file.as_str());
            }
        }
    }
    issues
}

pub(super) fn analyse(file: &str, yaml: &str) -> (Option<Procedure>, Vec<LintIssue>) {
    let index = LineIndex::build(yaml);
    let mut c = Checker {
        file,
        index: &index,
        issues: Vec::new(),
    };
    let whole = match serde_yaml_ng::from_str::<Procedure>(yaml) {
        Ok(p) => {
            check(&Draft::from_procedure(&p), &mut c);
            return (Some(p), c.finish());
        }
        Err(e) => e,
    };
    match serde_yaml_ng::from_str::<serde_yaml_ng::Value>(yaml) {
        Err(syntax) => c.syntax_error(&syntax, yaml),
        Ok(serde_yaml_ng::Value::Mapping(top)) => {
            let draft = Draft::from_parts(yaml, &top, &mut c);
            check(&draft, &mut c);
            // The per-key analysis finds what the whole-file parse found, at
            // the same place; keep the latter only if it was missed.
            let (line, _) = error_location(&whole, 1);
            if !c.issues.iter().any(|i| i.line == line) {
                c.yaml_error(&whole, 1, None);
            }
        }
        Ok(serde_yaml_ng::Value::Null) => {
            c.at_start("the file is empty; a procedure file starts with `code:`");
        }
        Ok(_) => c.at_start("a procedure file is a mapping of keys (code:, version:, name: …)"),
    }
    let mut issues = c.finish();
    if issues.is_empty() {
        let (line, column) = error_location(&whole, 1);
        issues.push(LintIssue {
            file: file.to_string(),
            line,
            column,
            message: whole.to_string(),
        });
    }
    (None, issues)
}

/// Line and column of a serde_yaml_ng error, shifted for a slice of the
/// file that starts at `first_line`.
pub(super) fn error_location(e: &serde_yaml_ng::Error, first_line: usize) -> (usize, usize) {
    match e.location() {
        Some(loc) => (loc.line() + first_line - 1, loc.column()),
        None => (first_line, 0),
    }
}

pub(super) struct Checker<'a> {
    file: &'a str,
    index: &'a LineIndex,
    issues: Vec<LintIssue>,
}

impl Checker<'_> {
    fn push(&mut self, line: usize, column: usize, message: String) {
        self.issues.push(LintIssue {
            file: self.file.to_string(),
            line,
            column,
            message,
        });
    }

    /// An issue about the value at `path` (`fields[3].pattern`), reported
    /// at the line of that key or of its nearest written parent.
    fn at(&mut self, path: &str, message: impl fmt::Display) {
        let (line, column) = self.index.locate(path);
        self.push(line, column, format!("{path}: {message}"));
    }

    /// An issue about the file as a whole.
    fn at_start(&mut self, message: impl fmt::Display) {
        let (line, column) = self.index.start;
        self.push(line, column, message.to_string());
    }

    /// Reports a serde_yaml_ng error of a slice of the file starting at
    /// `first_line`; `rename` replaces the path prefix of the message (the
    /// slice's `.[0]` becomes `fields[3]`).
    fn yaml_error(
        &mut self,
        e: &serde_yaml_ng::Error,
        first_line: usize,
        rename: Option<(&str, &str)>,
    ) {
        let mut message = e.to_string();
        if let Some(loc) = e.location() {
            message = message.replacen(
                &format!(" at line {} column {}", loc.line(), loc.column()),
                "",
                1,
            );
        }
        if let Some((from, to)) = rename
            && let Some(rest) = message.strip_prefix(from)
        {
            message = format!("{to}{rest}");
        }
        let (line, column) = error_location(e, first_line);
        self.push(line, column, message);
    }

    /// A file that is not well-formed YAML. Duplicate keys are reported
    /// where the second one is written (serde_yaml_ng points at the start of
    /// the mapping instead).
    fn syntax_error(&mut self, e: &serde_yaml_ng::Error, yaml: &str) {
        let text = e.to_string();
        if text.contains("duplicate entry with key") && !self.index.duplicates.is_empty() {
            for (path, line, column, first) in &self.index.duplicates {
                self.push(
                    *line,
                    *column,
                    format!("{path}: duplicate key (first written on line {first})"),
                );
            }
            return;
        }
        if e.location().is_none() && text.contains("more than one document") {
            let line = yaml
                .lines()
                .enumerate()
                .filter(|(_, l)| l.starts_with("---"))
                .map(|(n, _)| n + 1)
                .last()
                .unwrap_or(1);
            self.push(
                line,
                1,
                "a procedure file holds one YAML document; remove this `---` and what follows \
                 or move it to its own file"
                    .to_string(),
            );
            return;
        }
        self.yaml_error(e, 1, None);
    }

    fn finish(mut self) -> Vec<LintIssue> {
        self.issues.sort_by_key(|i| (i.line, i.column));
        self.issues
    }
}

// ---------------------------------------------------------------------------
// A procedure as far as it could be read: the semantic checks run on this,
// so that a type error in `fields[2]` does not hide a bad `code`.
// ---------------------------------------------------------------------------

pub(super) struct Items<T> {
    /// (index in the file, item) of the items that could be read.
    items: Vec<(usize, T)>,
    /// Whether every item could be read (list-wide checks need all).
    complete: bool,
}

impl<T> Default for Items<T> {
    fn default() -> Self {
        Self {
            items: Vec::new(),
            complete: false,
        }
    }
}

impl<T: Clone> Items<T> {
    fn all(list: &[T]) -> Self {
        Self {
            items: list.iter().cloned().enumerate().collect(),
            complete: true,
        }
    }
}

#[derive(Default)]
pub(super) struct Draft {
    code: Option<String>,
    version: Option<u32>,
    name: Option<Localized>,
    sector: Option<String>,
    sector_name: Option<Localized>,
    level: Option<UnitLevel>,
    agency_kind: Option<AgencyKind>,
    processing_time: Option<ProcessingTime>,
    fees: Items<Fee>,
    documents: Items<DocumentSpec>,
    fields: Items<FieldSpec>,
    workflow: Items<WorkflowStep>,
    result: Option<ResultSpec>,
    legal_basis: Option<Vec<String>>,
    prefill: Items<PrefillSource>,
}

impl Draft {
    fn from_procedure(p: &Procedure) -> Self {
        Self {
            code: Some(p.code.clone()),
            version: Some(p.version),
            name: Some(p.name.clone()),
            sector: Some(p.sector.clone()),
            sector_name: Some(p.sector_name.clone()),
            level: Some(p.level),
            agency_kind: Some(p.agency_kind),
            processing_time: Some(p.processing_time),
            fees: Items::all(&p.fees),
            documents: Items::all(&p.documents),
            fields: Items::all(&p.fields),
            workflow: Items::all(&p.workflow),
            result: Some(p.result.clone()),
            legal_basis: Some(p.legal_basis.clone()),
            prefill: Items::all(&p.prefill),
        }
    }

    /// Reads each top-level key, and each item of the lists, on its own
    /// (from its lines of the file, so that error positions stay exact),
    /// reporting every type error.
    fn from_parts(yaml: &str, top: &serde_yaml_ng::Mapping, c: &mut Checker) -> Self {
        let mut keys = Vec::new();
        for k in top.keys() {
            match k.as_str() {
                Some(k) if TOP_KEYS.contains(&k) => keys.push(k),
                Some(k) => c.at(
                    k,
                    format_args!(
                        "unknown key; the keys of a procedure are {}",
                        TOP_KEYS.join(", ")
                    ),
                ),
                None => c.at_start("every key of a procedure is a word such as `code`"),
            }
        }
        for r in REQUIRED_KEYS {
            if !keys.contains(&r) {
                c.at_start(format_args!("missing required key `{r}`"));
            }
        }
        let parts = Parts::new(yaml, c.index);
        if keys.iter().any(|k| !parts.spans.contains_key(*k)) {
            // Not the block style the line index understands (e.g. a flow
            // mapping `{code: …}`): only the whole-file error is reported.
            return Self::default();
        }
        Self {
            code: parts.value("code", c),
            version: parts.value("version", c),
            name: parts.value("name", c),
            sector: parts.value("sector", c),
            sector_name: parts.value("sector_name", c),
            level: parts.value("level", c),
            agency_kind: parts.value("agency_kind", c),
            processing_time: parts.value("processing_time", c),
            fees: parts.list("fees", top, c),
            documents: parts.list("documents", top, c),
            fields: parts.list("fields", top, c),
            workflow: parts.list("workflow", top, c),
            result: parts.value("result", c),
            legal_basis: if top.contains_key("legal_basis") {
                parts.value("legal_basis", c)
            } else {
                Some(Vec::new())
            },
            prefill: parts.list("prefill", top, c),
        }
    }
}

/// The lines of a file cut along its top-level keys and list items.
pub(super) struct Parts<'a> {
    lines: Vec<&'a str>,
    index: &'a LineIndex,
    /// Top-level key -> [first line, end line) (1-based, end exclusive).
    spans: HashMap<String, (usize, usize)>,
}

impl<'a> Parts<'a> {
    fn new(yaml: &'a str, index: &'a LineIndex) -> Self {
        let lines: Vec<&str> = yaml.lines().collect();
        let mut roots: Vec<(usize, &str)> = index
            .at
            .iter()
            .filter(|(path, _)| !path.contains(['.', '[']))
            .map(|(path, &(line, _))| (line, path.as_str()))
            .collect();
        roots.sort_unstable();
        let mut spans = HashMap::new();
        for (i, &(line, key)) in roots.iter().enumerate() {
            let end = roots.get(i + 1).map_or(lines.len() + 1, |r| r.0);
            spans.insert(key.to_string(), (line, end));
        }
        Self {
            lines,
            index,
            spans,
        }
    }

    /// Lines [start, end) as a text of its own; document markers are blanked
    /// so that line numbers stay the same.
    fn text(&self, start: usize, end: usize) -> String {
        let from = start.saturating_sub(1).min(self.lines.len());
        let to = end.saturating_sub(1).clamp(from, self.lines.len());
        let mut out = String::new();
        for line in self.lines.get(from..to).unwrap_or_default() {
            if !(line.starts_with("---") || line.starts_with("...")) {
                out.push_str(line);
            }
            out.push('\n');
        }
        out
    }

    /// The value of a top-level key, or `None` (with an issue) when it does
    /// not have the expected type.
    fn value<T: DeserializeOwned>(&self, key: &str, c: &mut Checker) -> Option<T> {
        let &(start, end) = self.spans.get(key)?;
        match serde_yaml_ng::from_str::<BTreeMap<String, T>>(&self.text(start, end)) {
            Ok(mut map) => map.remove(key),
            Err(e) => {
                report_part_error(c, &e, start, None);
                None
            }
        }
    }

    /// The items of a top-level list, each read on its own.
    fn list<T: DeserializeOwned>(
        &self,
        key: &str,
        top: &serde_yaml_ng::Mapping,
        c: &mut Checker,
    ) -> Items<T> {
        let Some(value) = top.get(key) else {
            // Absent lists default to empty.
            return Items {
                items: Vec::new(),
                complete: true,
            };
        };
        let Some(&(start, end)) = self.spans.get(key) else {
            return Items::default();
        };
        let mut item_lines = Vec::new();
        while let Some(&(line, _)) = self.index.at.get(&format!("{key}[{}]", item_lines.len())) {
            item_lines.push(line);
        }
        let block = matches!(value, serde_yaml_ng::Value::Sequence(s) if s.len() == item_lines.len())
            && !item_lines.is_empty()
            && item_lines.first().is_some_and(|&l| l > start)
            && item_lines.windows(2).all(|w| w[0] < w[1]);
        if !block {
            // A flow list (`[a, b]`), an empty one or not a list at all.
            return match self.value::<Vec<T>>(key, c) {
                Some(list) => Items {
                    items: list.into_iter().enumerate().collect(),
                    complete: true,
                },
                None => Items::default(),
            };
        }
        let mut items = Items {
            items: Vec::new(),
            complete: true,
        };
        for (i, &from) in item_lines.iter().enumerate() {
            let to = item_lines.get(i + 1).copied().unwrap_or(end);
            match serde_yaml_ng::from_str::<Vec<T>>(&self.text(from, to)) {
                Ok(mut one) if one.len() == 1 => {
                    if let Some(item) = one.pop() {
                        items.items.push((i, item));
                    }
                }
                Ok(_) => items.complete = false,
                Err(e) => {
                    let name = format!("{key}[{i}]");
                    report_part_error(c, &e, from, Some((".[0]", &name)));
                    items.complete = false;
                }
            }
        }
        items
    }
}

/// Reports the error of a part of the file, unless it comes from cutting the
/// file: an alias to an anchor in another part. Such a part only counts as
/// unreadable, and the whole-file error is reported instead.
pub(super) fn report_part_error(
    c: &mut Checker,
    e: &serde_yaml_ng::Error,
    first_line: usize,
    rename: Option<(&str, &str)>,
) {
    if !e.to_string().contains("unknown anchor") {
        c.yaml_error(e, first_line, rename);
    }
}

// ---------------------------------------------------------------------------
// Semantic checks
// ---------------------------------------------------------------------------

pub(super) fn check(d: &Draft, c: &mut Checker) {
    if let Some(code) = &d.code
        && !is_catalogue_code(code)
    {
        c.at(
            "code",
            format_args!(
                "`{code}` is not a national catalogue code such as 1.001193 \
                 (digits, a dot, six digits)"
            ),
        );
    }
    if d.version == Some(0) {
        c.at("version", "must be 1 or more");
    }
    if let Some(name) = &d.name {
        require_text(c, "name.vi", &name.vi);
        require_text(c, "name.en", &name.en);
    }
    if let Some(sector) = &d.sector
        && !is_slug(sector)
    {
        c.at(
            "sector",
            format_args!(
                "`{sector}` is not a slug: lower-case letters, digits and `-`, \
                 starting with a letter (e.g. civil-status)"
            ),
        );
    }
    if let Some(name) = &d.sector_name {
        require_text(c, "sector_name.vi", &name.vi);
    }
    if let (Some(level), Some(kind)) = (d.level, d.agency_kind)
        && kind.level() != level
    {
        c.at(
            "agency_kind",
            format_args!(
                "{} is a {}-level agency but `level` is {}",
                kind.as_str(),
                kind.level().as_str(),
                level.as_str()
            ),
        );
    }
    if let Some(time) = d.processing_time
        && time.amount() == 0
    {
        c.at("processing_time", "must be more than zero");
    }
    check_fees(d, c);
    check_documents(d, c);
    for (i, field) in &d.fields.items {
        check_field(c, *i, field);
    }
    check_ids(
        c,
        "fields",
        d.fields.items.iter().map(|(i, f)| (*i, f.id.as_str())),
    );
    check_workflow(d, c);
    check_prefill(d, c);
    if let Some(result) = &d.result {
        require_text(c, "result.name.vi", &result.name.vi);
    }
    if let Some(basis) = &d.legal_basis {
        if basis.is_empty() {
            c.at(
                "legal_basis",
                "list at least one legal document (law, decree, circular) the procedure rests on",
            );
        }
        for (i, doc) in basis.iter().enumerate() {
            require_text(c, &format!("legal_basis[{i}]"), doc);
        }
    }
}

/// A prefill names a well-formed service, a path with no placeholder but
/// the citizen's number, and fields of the form, each filled once.
pub(super) fn check_prefill(d: &Draft, c: &mut Checker) {
    let mut filled: HashMap<&str, usize> = HashMap::new();
    for (i, src) in &d.prefill.items {
        let p = format!("prefill[{i}]");
        let parts: Vec<&str> = src.service.split('/').collect();
        if !(5..=6).contains(&parts.len())
            || parts
                .iter()
                .any(|s| s.is_empty() || s.chars().any(|ch| ch.is_whitespace()))
        {
            c.at(
                &format!("{p}.service"),
                format_args!(
                    "`{}` is not an exchange service id such as \
                     VN/GOV/BCA/POPULATION/citizens (INSTANCE/CLASS/MEMBER/SUBSYSTEM/SERVICE)",
                    src.service
                ),
            );
        }
        let rest = src.path.replace(PREFILL_NATIONAL_ID, "");
        if !src.path.starts_with('/') || rest.contains(['{', '}', '?', '#', ' ']) {
            c.at(
                &format!("{p}.path"),
                format_args!(
                    "`{}` must start with `/` and hold no placeholder but {PREFILL_NATIONAL_ID}",
                    src.path
                ),
            );
        }
        require_text(c, &format!("{p}.name.vi"), &src.name.vi);
        if src.fields.is_empty() {
            c.at(
                &format!("{p}.fields"),
                "name at least one form field and the registry's key for it",
            );
        }
        for (field, key) in &src.fields {
            let at = format!("{p}.fields.{field}");
            if d.fields.complete && !d.fields.items.iter().any(|(_, f)| &f.id == field) {
                c.at(&at, format_args!("`{field}` is not a field of this form"));
            }
            if key.trim().is_empty() {
                c.at(&at, "name the key of the registry's answer");
            }
            if let Some(first) = filled.insert(field, *i) {
                c.at(
                    &at,
                    format_args!("`{field}` is already filled by prefill[{first}]"),
                );
            }
        }
    }
}

pub(super) fn check_fees(d: &Draft, c: &mut Checker) {
    check_ids(
        c,
        "fees",
        d.fees.items.iter().map(|(i, f)| (*i, f.id.as_str())),
    );
    for (i, fee) in &d.fees.items {
        require_text(c, &format!("fees[{i}].name.vi"), &fee.name.vi);
        if let Some(note) = &fee.note {
            require_text(c, &format!("fees[{i}].note.vi"), &note.vi);
        }
    }
}

pub(super) fn check_documents(d: &Draft, c: &mut Checker) {
    check_ids(
        c,
        "documents",
        d.documents.items.iter().map(|(i, f)| (*i, f.id.as_str())),
    );
    for (i, doc) in &d.documents.items {
        let p = format!("documents[{i}]");
        require_text(c, &format!("{p}.name.vi"), &doc.name.vi);
        if doc.accept.is_empty() {
            c.at(
                &format!("{p}.accept"),
                format_args!(
                    "list at least one file type out of {}",
                    ACCEPTED_EXTENSIONS.join(", ")
                ),
            );
        }
        let mut seen = HashSet::new();
        for (j, ext) in doc.accept.iter().enumerate() {
            if !ACCEPTED_EXTENSIONS.contains(&ext.as_str()) {
                c.at(
                    &format!("{p}.accept[{j}]"),
                    format_args!(
                        "`{ext}` is not an accepted file type; write one of {} \
                         (lower case, no dot)",
                        ACCEPTED_EXTENSIONS.join(", ")
                    ),
                );
            } else if !seen.insert(ext.as_str()) {
                c.at(
                    &format!("{p}.accept[{j}]"),
                    format_args!("`{ext}` is listed twice"),
                );
            }
        }
        if !(1..=MAX_DOCUMENT_COUNT).contains(&doc.max_count) {
            c.at(
                &format!("{p}.max_count"),
                format_args!(
                    "must be between 1 and {MAX_DOCUMENT_COUNT}, not {}",
                    doc.max_count
                ),
            );
        }
    }
}

/// The options of a choice field: values present and unique, labels given.
pub(super) fn check_options(c: &mut Checker, p: &str, f: &FieldSpec) {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (j, option) in f.options.iter().enumerate() {
        let op = format!("{p}.options[{j}]");
        if option.value.trim().is_empty() {
            c.at(&format!("{op}.value"), "must not be empty");
        } else if let Some(first) = seen.insert(option.value.as_str(), j) {
            c.at(
                &format!("{op}.value"),
                format_args!(
                    "duplicate option `{}` (also options[{first}])",
                    option.value
                ),
            );
        }
        require_text(c, &format!("{op}.label.vi"), &option.label.vi);
    }
}

pub(super) fn check_field(c: &mut Checker, i: usize, f: &FieldSpec) {
    let p = format!("fields[{i}]");
    let kind = f.kind;
    require_text(c, &format!("{p}.label.vi"), &f.label.vi);
    if let Some(help) = &f.help {
        require_text(c, &format!("{p}.help.vi"), &help.vi);
    }
    let only = |c: &mut Checker, key: &str, present: bool, what: &str| {
        if present {
            c.at(
                &format!("{p}.{key}"),
                format_args!("only {what}; this field is {}", kind.as_str()),
            );
        }
    };

    // Length bounds: text and address.
    if matches!(kind, FieldType::Text | FieldType::Address) {
        if let (Some(min), Some(max)) = (f.min_length, f.max_length)
            && min > max
        {
            c.at(
                &format!("{p}.min_length"),
                format_args!("min_length {min} is greater than max_length {max}"),
            );
        }
        if f.max_length == Some(0) {
            c.at(&format!("{p}.max_length"), "must be at least 1");
        }
    } else {
        let what = "text and address fields have a length";
        only(c, "min_length", f.min_length.is_some(), what);
        only(c, "max_length", f.max_length.is_some(), what);
    }

    // Value bounds: number.
    if kind == FieldType::Number {
        for (key, bound) in [("min", f.min), ("max", f.max)] {
            if bound.is_some_and(|b| !b.is_finite()) {
                c.at(&format!("{p}.{key}"), "must be a finite number");
            }
        }
        if let (Some(min), Some(max)) = (f.min, f.max)
            && min > max
        {
            c.at(
                &format!("{p}.min"),
                format_args!("min {min} is greater than max {max}"),
            );
        }
    } else {
        let what = "number fields have min and max";
        only(c, "min", f.min.is_some(), what);
        only(c, "max", f.max.is_some(), what);
    }

    // Pattern: text.
    if let Some(pattern) = &f.pattern {
        if kind != FieldType::Text {
            only(c, "pattern", true, "text fields have a pattern");
        } else if let Err(e) = regex::Regex::new(pattern) {
            c.at(
                &format!("{p}.pattern"),
                format_args!("invalid regular expression: {}", regex_error(&e)),
            );
        }
    }

    // Options: choice, and there they are required.
    if kind == FieldType::Choice {
        if f.options.is_empty() {
            c.at(
                &format!("{p}.options"),
                "a choice field needs at least one option",
            );
        }
        check_options(c, &p, f);
    } else {
        only(
            c,
            "options",
            !f.options.is_empty(),
            "choice fields have options",
        );
    }

    // Date bounds: date.
    if kind == FieldType::Date {
        let mut bounds = [None, None];
        for (slot, (key, bound)) in [("min_date", &f.min_date), ("max_date", &f.max_date)]
            .into_iter()
            .enumerate()
        {
            let Some(bound) = bound else { continue };
            if bound == "today" {
                continue;
            }
            match parse_iso_date(bound) {
                Some(d) => bounds[slot] = Some(d),
                None => c.at(
                    &format!("{p}.{key}"),
                    format_args!("`{bound}` is neither `today` nor a date written YYYY-MM-DD"),
                ),
            }
        }
        if let [Some(min), Some(max)] = bounds
            && min > max
        {
            c.at(
                &format!("{p}.min_date"),
                format_args!("min_date {min} is after max_date {max}"),
            );
        }
    } else {
        let what = "date fields have min_date and max_date";
        only(c, "min_date", f.min_date.is_some(), what);
        only(c, "max_date", f.max_date.is_some(), what);
    }
}

pub(super) fn check_workflow(d: &Draft, c: &mut Checker) {
    let steps = &d.workflow;
    check_ids(
        c,
        "workflow",
        steps.items.iter().map(|(i, s)| (*i, s.id.as_str())),
    );
    for (i, step) in &steps.items {
        require_text(c, &format!("workflow[{i}].name.vi"), &step.name.vi);
        if step.share == 0 {
            c.at(&format!("workflow[{i}].share"), "must be more than 0");
        }
    }
    if !steps.complete {
        return;
    }
    let (Some((_, first)), Some((last_i, last))) = (steps.items.first(), steps.items.last()) else {
        c.at(
            "workflow",
            "list the steps: reception by the one-stop officer first, approval by a leader last",
        );
        return;
    };
    let total: u64 = steps.items.iter().map(|(_, s)| u64::from(s.share)).sum();
    if total != 100 {
        c.at(
            "workflow",
            format_args!("the shares of the steps add up to {total}; they must add up to 100"),
        );
    }
    if first.role != StepRole::Officer {
        c.at(
            "workflow[0].role",
            "the first step is reception by the one-stop officer: its role must be officer",
        );
    }
    if last.role != StepRole::Leader {
        c.at(
            &format!("workflow[{last_i}].role"),
            "the last step is the approval: its role must be leader",
        );
    }
}

/// Ids: well-formed and unique within their list.
pub(super) fn check_ids<'a>(
    c: &mut Checker,
    list: &str,
    ids: impl Iterator<Item = (usize, &'a str)>,
) {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, id) in ids {
        let path = format!("{list}[{i}].id");
        if !is_id(id) {
            c.at(
                &path,
                format_args!(
                    "`{id}` is not a valid id: lower-case letters, digits, `_` and `-`, \
                     starting with a letter"
                ),
            );
        }
        if let Some(first) = seen.insert(id, i) {
            c.at(
                &path,
                format_args!("duplicate id `{id}` (also {list}[{first}])"),
            );
        }
    }
}

pub(super) fn require_text(c: &mut Checker, path: &str, text: &str) {
    if text.trim().is_empty() {
        c.at(path, "must not be empty");
    }
}

/// The last line of a regex error ("unclosed group"), which is the part
/// that makes sense on one line.
pub(super) fn regex_error(e: &regex::Error) -> String {
    let text = e.to_string();
    let last = text
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .unwrap_or_default();
    last.strip_prefix("error: ").unwrap_or(last).to_string()
}

/// `1.001193`: digits, a dot, six digits.
pub(super) fn is_catalogue_code(s: &str) -> bool {
    match s.split_once('.') {
        Some((head, tail)) => {
            !head.is_empty()
                && head.bytes().all(|b| b.is_ascii_digit())
                && tail.len() == 6
                && tail.bytes().all(|b| b.is_ascii_digit())
        }
        None => false,
    }
}

/// `^[a-z][a-z0-9-]*$`
pub(super) fn is_slug(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_lowercase())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// `^[a-z][a-z0-9_-]*$`
pub(super) fn is_id(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_lowercase())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// Strictly `YYYY-MM-DD`.
pub(super) fn parse_iso_date(s: &str) -> Option<NaiveDate> {
    let mut parts = s.split('-');
    let (y, m, d) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return None;
    }
    date_from_parts(y, m, d)
}

pub(super) fn date_from_parts(y: &str, m: &str, d: &str) -> Option<NaiveDate> {
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !(all_digits(y) && all_digits(m) && all_digits(d)) {
        return None;
    }
    NaiveDate::from_ymd_opt(y.parse().ok()?, m.parse().ok()?, d.parse().ok()?)
}

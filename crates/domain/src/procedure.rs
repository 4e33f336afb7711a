//! Procedures as code: one YAML file per administrative procedure
//! (thủ tục hành chính), parsed into a typed definition, linted with file
//! and line, and used to validate what a citizen submits.
//!
//! The format is documented in `docs/procedure-format.md`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use chrono::NaiveDate;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

use crate::ids::{NationalId, parse_email, parse_phone};
use crate::units::{AgencyKind, UnitLevel};

/// A text in Vietnamese and English.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Localized {
    pub vi: String,
    pub en: String,
}

impl Localized {
    pub fn get(&self, lang: &str) -> &str {
        if lang.starts_with("en") && !self.en.is_empty() {
            &self.en
        } else {
            &self.vi
        }
    }
}

/// Mức độ dịch vụ công trực tuyến (Decree 42/2022/ND-CP).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnlineLevel {
    /// Toàn trình: every step online.
    Full,
    /// Một phần: some step needs the citizen in person.
    Partial,
    /// Not offered online.
    None,
}

/// Thời hạn giải quyết, as stated in the procedure.
///
/// Serialised as a one-entry map, `{"working_days": 5}` (the shape serde
/// derives for JSON). Deserialisation accepts that map in JSON and YAML
/// (`processing_time: {working_days: 5}` or the block form) and also the
/// YAML tag form `processing_time: !working_days 5`, which is the only form
/// serde_yaml_ng's derived enum support would read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessingTime {
    WorkingDays(u32),
    WorkingHours(u32),
}

const PROCESSING_TIME_UNITS: &[&str] = &["working_days", "working_hours"];

impl ProcessingTime {
    fn from_unit<E: serde::de::Error>(unit: &str, amount: u32) -> Result<Self, E> {
        match unit {
            "working_days" => Ok(ProcessingTime::WorkingDays(amount)),
            "working_hours" => Ok(ProcessingTime::WorkingHours(amount)),
            other => Err(E::unknown_variant(other, PROCESSING_TIME_UNITS)),
        }
    }
}

impl Serialize for ProcessingTime {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let (unit, amount) = match *self {
            ProcessingTime::WorkingDays(n) => ("working_days", n),
            ProcessingTime::WorkingHours(n) => ("working_hours", n),
        };
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry(unit, &amount)?;
        map.end()
    }
}

impl<'de> Deserialize<'de> for ProcessingTime {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TimeVisitor;

        impl<'de> serde::de::Visitor<'de> for TimeVisitor {
            type Value = ProcessingTime;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("`working_days: N` or `working_hours: N`")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                use serde::de::Error;
                let Some(unit) = map.next_key::<String>()? else {
                    return Err(A::Error::invalid_length(0, &self));
                };
                if !PROCESSING_TIME_UNITS.contains(&unit.as_str()) {
                    return Err(A::Error::unknown_variant(&unit, PROCESSING_TIME_UNITS));
                }
                let amount: u32 = map.next_value()?;
                if map.next_key::<serde::de::IgnoredAny>()?.is_some() {
                    return Err(A::Error::custom(
                        "give either working_days or working_hours, not both",
                    ));
                }
                ProcessingTime::from_unit(&unit, amount)
            }

            fn visit_enum<A: serde::de::EnumAccess<'de>>(
                self,
                data: A,
            ) -> Result<Self::Value, A::Error> {
                use serde::de::VariantAccess;
                let (unit, variant): (String, A::Variant) = data.variant()?;
                if !PROCESSING_TIME_UNITS.contains(&unit.as_str()) {
                    use serde::de::Error;
                    return Err(A::Error::unknown_variant(&unit, PROCESSING_TIME_UNITS));
                }
                let amount: u32 = variant.newtype_variant()?;
                ProcessingTime::from_unit(&unit, amount)
            }
        }

        deserializer.deserialize_any(TimeVisitor)
    }
}

impl ProcessingTime {
    /// The legal processing time in working minutes, at `hours_per_day`
    /// office hours per working day.
    pub fn working_minutes(self, hours_per_day: u32) -> i64 {
        match self {
            ProcessingTime::WorkingDays(d) => i64::from(d) * i64::from(hours_per_day) * 60,
            ProcessingTime::WorkingHours(h) => i64::from(h) * 60,
        }
    }

    /// The number of working days or hours, whichever the unit is.
    pub fn amount(self) -> u32 {
        match self {
            ProcessingTime::WorkingDays(n) | ProcessingTime::WorkingHours(n) => n,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fee {
    pub id: String,
    pub name: Localized,
    /// Amount in VND.
    pub amount: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<Localized>,
}

/// Thành phần hồ sơ: a document the applicant provides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DocumentSpec {
    pub id: String,
    pub name: Localized,
    pub required: bool,
    /// Accepted file extensions, lower case without dot: pdf, jpg, png …
    pub accept: Vec<String>,
    #[serde(default = "one")]
    pub max_count: u32,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FieldType {
    Text,
    Number,
    Date,
    Choice,
    NationalId,
    Phone,
    Email,
    Address,
}

crate::string_forms!(FieldType {
    Text => "text",
    Number => "number",
    Date => "date",
    Choice => "choice",
    NationalId => "national-id",
    Phone => "phone",
    Email => "email",
    Address => "address",
});

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChoiceOption {
    pub value: String,
    pub label: Localized,
}

/// A typed field of the application form (tờ khai).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldSpec {
    pub id: String,
    pub label: Localized,
    #[serde(rename = "type")]
    pub kind: FieldType,
    #[serde(default)]
    pub required: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub help: Option<Localized>,
    /// Text: length bounds in characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_length: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<u32>,
    /// Number: value bounds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// Text: a regular expression the whole value must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// Date: bounds as `YYYY-MM-DD`, or `today`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_date: Option<String>,
    /// Choice: the allowed values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<ChoiceOption>,
}

/// Role that performs a workflow step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepRole {
    Officer,
    Specialist,
    Leader,
}

/// A step of the processing workflow with its share of the processing time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkflowStep {
    pub id: String,
    pub name: Localized,
    pub role: StepRole,
    /// Percent of the processing time; the shares of all steps sum to 100.
    pub share: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResultKind {
    Certificate,
    Licence,
    Confirmation,
    Decision,
    CertifiedCopy,
    Registration,
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResultSpec {
    pub kind: ResultKind,
    pub name: Localized,
}

/// A procedure definition, exactly as written in its YAML file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Procedure {
    /// Mã thủ tục in the national catalogue, e.g. `1.001193`.
    pub code: String,
    pub version: u32,
    pub name: Localized,
    /// Lĩnh vực, as a slug (`civil-status`, `justice`, `construction` …).
    pub sector: String,
    pub sector_name: Localized,
    pub level: UnitLevel,
    pub agency_kind: AgencyKind,
    pub online: OnlineLevel,
    pub processing_time: ProcessingTime,
    #[serde(default)]
    pub fees: Vec<Fee>,
    #[serde(default)]
    pub documents: Vec<DocumentSpec>,
    #[serde(default)]
    pub fields: Vec<FieldSpec>,
    pub workflow: Vec<WorkflowStep>,
    pub result: ResultSpec,
    #[serde(default)]
    pub legal_basis: Vec<String>,
    /// Fields filled from registries through the data exchange (the
    /// once-only principle): the citizen consents, the portal reads them and
    /// they cannot be changed on the form.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prefill: Vec<PrefillSource>,
}

/// A registry the form reads from through the data exchange.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrefillSource {
    /// The exchange service, `INSTANCE/CLASS/MEMBER/SUBSYSTEM/SERVICE`
    /// (e.g. `VN/GOV/BCA/POPULATION/citizens`).
    pub service: String,
    /// The path under the service; `{national_id}` is replaced by the
    /// signed-in citizen's personal identification number.
    pub path: String,
    /// The registry's name as the citizen reads it on the consent.
    pub name: Localized,
    /// Form field id -> key of the registry's JSON answer.
    pub fields: BTreeMap<String, String>,
}

/// The placeholder of a prefill path.
pub const PREFILL_NATIONAL_ID: &str = "{national_id}";

impl PrefillSource {
    /// The path with the citizen's number in it.
    pub fn path_for(&self, national_id: &NationalId) -> String {
        self.path.replace(PREFILL_NATIONAL_ID, national_id.as_str())
    }
}

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
const TOP_KEYS: [&str; 16] = [
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
const REQUIRED_KEYS: [&str; 11] = [
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

fn analyse(file: &str, yaml: &str) -> (Option<Procedure>, Vec<LintIssue>) {
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
fn error_location(e: &serde_yaml_ng::Error, first_line: usize) -> (usize, usize) {
    match e.location() {
        Some(loc) => (loc.line() + first_line - 1, loc.column()),
        None => (first_line, 0),
    }
}

struct Checker<'a> {
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

struct Items<T> {
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
struct Draft {
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
struct Parts<'a> {
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
fn report_part_error(
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

fn check(d: &Draft, c: &mut Checker) {
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
fn check_prefill(d: &Draft, c: &mut Checker) {
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

fn check_fees(d: &Draft, c: &mut Checker) {
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

fn check_documents(d: &Draft, c: &mut Checker) {
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
fn check_options(c: &mut Checker, p: &str, f: &FieldSpec) {
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

fn check_field(c: &mut Checker, i: usize, f: &FieldSpec) {
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

fn check_workflow(d: &Draft, c: &mut Checker) {
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
fn check_ids<'a>(c: &mut Checker, list: &str, ids: impl Iterator<Item = (usize, &'a str)>) {
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

fn require_text(c: &mut Checker, path: &str, text: &str) {
    if text.trim().is_empty() {
        c.at(path, "must not be empty");
    }
}

/// The last line of a regex error ("unclosed group"), which is the part
/// that makes sense on one line.
fn regex_error(e: &regex::Error) -> String {
    let text = e.to_string();
    let last = text
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .unwrap_or_default();
    last.strip_prefix("error: ").unwrap_or(last).to_string()
}

/// `1.001193`: digits, a dot, six digits.
fn is_catalogue_code(s: &str) -> bool {
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
fn is_slug(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_lowercase())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// `^[a-z][a-z0-9_-]*$`
fn is_id(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_lowercase())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// Strictly `YYYY-MM-DD`.
fn parse_iso_date(s: &str) -> Option<NaiveDate> {
    let mut parts = s.split('-');
    let (y, m, d) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return None;
    }
    date_from_parts(y, m, d)
}

fn date_from_parts(y: &str, m: &str, d: &str) -> Option<NaiveDate> {
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !(all_digits(y) && all_digits(m) && all_digits(d)) {
        return None;
    }
    NaiveDate::from_ymd_opt(y.parse().ok()?, m.parse().ok()?, d.parse().ok()?)
}

// ---------------------------------------------------------------------------
// Line index: dotted path -> position, by scanning the text.
//
// serde_yaml_ng reports positions for its own errors but a parsed value
// carries none, so semantic issues find their line here. The scanner knows
// block-style YAML as procedure files are written: `key: value`, `key:`
// followed by a nested block, `- ` items (also `- key: value` and items at
// the same indentation as their key), one-line flow collections
// (`accept: [pdf, jpg]`, `name: {vi: …, en: …}`), comments, quoted keys,
// anchors and tags before values, and multi-line scalars (block `|`/`>`,
// folded plain or quoted), whose continuation lines are skipped. It does not
// follow aliases or `? ` complex keys, and inside flow collections it knows
// only the first level of the first line. A path it does not know falls back
// to its nearest known parent (`fields[3].max_count` -> `fields[3]`).
// ---------------------------------------------------------------------------

#[derive(Debug, Default)]
struct LineIndex {
    /// Path -> (1-based line, 1-based column).
    at: HashMap<String, (usize, usize)>,
    /// Keys written twice: (path, line, column, line of the first).
    duplicates: Vec<(String, usize, usize, usize)>,
    /// Where the document starts (its first key), column 0.
    start: (usize, usize),
}

impl LineIndex {
    fn build(yaml: &str) -> Self {
        let mut scanner = Scanner::default();
        for (n, raw) in yaml.lines().enumerate() {
            let raw = if n == 0 {
                raw.trim_start_matches('\u{feff}')
            } else {
                raw
            };
            scanner.line(n + 1, raw);
        }
        let mut index = scanner.index;
        index.start = index
            .at
            .values()
            .min()
            .map_or((1, 0), |&(line, _)| (line, 0));
        index
    }

    fn record(&mut self, path: String, line: usize, column: usize) {
        if let Some(&(first, _)) = self.at.get(&path) {
            self.duplicates.push((path, line, column, first));
        } else {
            self.at.insert(path, (line, column));
        }
    }

    /// Position of `path`, or of its nearest known parent, or of the start.
    fn locate(&self, path: &str) -> (usize, usize) {
        let mut p = path;
        loop {
            if let Some(&pos) = self.at.get(p) {
                return pos;
            }
            match p.rfind(['.', '[']) {
                Some(cut) => p = &p[..cut],
                None => return self.start,
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FrameKind {
    Map,
    Seq,
}

#[derive(Debug)]
struct Frame {
    /// Column (0-based) of the keys or dashes of this collection.
    indent: usize,
    path: String,
    kind: FrameKind,
    next_item: usize,
}

#[derive(Debug, Default)]
struct Scanner {
    index: LineIndex,
    stack: Vec<Frame>,
    /// A key or item whose value starts on a later line: (path, column).
    pending: Option<(String, usize)>,
    /// Skip lines indented deeper than this (continuation of a scalar).
    skip_deeper: Option<usize>,
}

impl Scanner {
    fn line(&mut self, no: usize, raw: &str) {
        let indent = raw.len() - raw.trim_start_matches(' ').len();
        let content = raw[indent..].trim_end();
        if content.is_empty() || content.starts_with('#') {
            return;
        }
        if let Some(limit) = self.skip_deeper {
            if indent > limit {
                return;
            }
            self.skip_deeper = None;
        }
        if indent == 0
            && (content.starts_with("---")
                || content.starts_with("...")
                || content.starts_with('%'))
        {
            return;
        }
        self.node(no, indent, content);
    }

    fn node(&mut self, no: usize, col: usize, content: &str) {
        let item = is_item(content);
        if let Some((path, at)) = self.pending.take()
            && (col > at || (col == at && item))
        {
            self.stack.push(Frame {
                indent: col,
                path,
                kind: if item { FrameKind::Seq } else { FrameKind::Map },
                next_item: 0,
            });
        }
        while let Some(top) = self.stack.last() {
            let leaves =
                top.indent > col || (top.indent == col && top.kind == FrameKind::Seq && !item);
            if !leaves {
                break;
            }
            self.stack.pop();
        }
        if item {
            self.item(no, col, content);
        } else if let Some((key, after)) = split_key(content) {
            self.key(no, col, content, &key, after);
        }
        // Anything else is a stray scalar line; nothing to index.
    }

    fn ensure(&mut self, col: usize, kind: FrameKind) {
        let ok = matches!(self.stack.last(), Some(t) if t.kind == kind && t.indent == col);
        if !ok {
            let path = self
                .stack
                .last()
                .map(|t| t.path.clone())
                .unwrap_or_default();
            self.stack.push(Frame {
                indent: col,
                path,
                kind,
                next_item: 0,
            });
        }
    }

    fn item(&mut self, no: usize, col: usize, content: &str) {
        self.ensure(col, FrameKind::Seq);
        let Some(top) = self.stack.last_mut() else {
            return;
        };
        let path = format!("{}[{}]", top.path, top.next_item);
        top.next_item += 1;
        self.index.record(path.clone(), no, col + 1);
        let after = &content[1..];
        let spaces = after.len() - after.trim_start_matches(' ').len();
        let rest = &after[spaces..];
        let rest_col = col + 1 + spaces;
        if rest.is_empty() || rest.starts_with('#') {
            self.pending = Some((path, col));
        } else if is_item(rest) || split_key(rest).is_some() {
            let kind = if is_item(rest) {
                FrameKind::Seq
            } else {
                FrameKind::Map
            };
            self.stack.push(Frame {
                indent: rest_col,
                path,
                kind,
                next_item: 0,
            });
            self.node(no, rest_col, rest);
        } else {
            self.value(no, col, rest_col, rest, &path);
        }
    }

    fn key(&mut self, no: usize, col: usize, content: &str, key: &str, after: usize) {
        self.ensure(col, FrameKind::Map);
        let parent = self
            .stack
            .last()
            .map(|t| t.path.as_str())
            .unwrap_or_default();
        let path = if parent.is_empty() {
            key.to_string()
        } else {
            format!("{parent}.{key}")
        };
        self.index.record(path.clone(), no, col + 1);
        let rest = &content[after..];
        let spaces = rest.len() - rest.trim_start_matches(' ').len();
        let value_col = col + content[..after].chars().count() + spaces;
        let (value, value_col) = skip_properties(&rest[spaces..], value_col);
        if value.is_empty() || value.starts_with('#') {
            self.pending = Some((path, col));
        } else {
            self.value(no, col, value_col, value, &path);
        }
    }

    /// A value written on the line of its key or dash, at `value_col`.
    fn value(&mut self, no: usize, owner_col: usize, value_col: usize, value: &str, path: &str) {
        // Whatever is indented deeper on the next lines continues this value
        // (block scalar, folded plain or quoted scalar, multi-line flow).
        self.skip_deeper = Some(owner_col);
        if !(value.starts_with('[') || value.starts_with('{')) {
            return;
        }
        let is_seq = value.starts_with('[');
        for (n, (offset, text)) in flow_elements(value).into_iter().enumerate() {
            let column = value_col + offset + 1;
            if is_seq {
                self.index.record(format!("{path}[{n}]"), no, column);
            } else if let Some((key, _)) = split_key(&text) {
                self.index.record(format!("{path}.{key}"), no, column);
            }
        }
    }
}

fn is_item(content: &str) -> bool {
    content == "-" || content.starts_with("- ")
}

/// Skips anchors (`&a`) and tags (`!working_days`) in front of a value.
fn skip_properties(mut value: &str, mut col: usize) -> (&str, usize) {
    while value.starts_with('&') || value.starts_with('!') {
        let token = value.find(' ').unwrap_or(value.len());
        let rest = &value[token..];
        let spaces = rest.len() - rest.trim_start_matches(' ').len();
        col += value[..token].chars().count() + spaces;
        value = &rest[spaces..];
    }
    (value, col)
}

/// `key: …` -> (key, byte offset after the colon). Quoted keys are
/// unquoted; a line that is not a mapping entry gives `None`.
fn split_key(content: &str) -> Option<(String, usize)> {
    let first = content.chars().next()?;
    if first == '"' || first == '\'' {
        let close = content[1..].find(first)? + 1;
        let after = &content[close + 1..];
        let spaces = after.len() - after.trim_start_matches(' ').len();
        let rest = &after[spaces..];
        let colon_end = rest.strip_prefix(':')?;
        if !(colon_end.is_empty() || colon_end.starts_with(' ')) {
            return None;
        }
        return Some((content[1..close].to_string(), close + 1 + spaces + 1));
    }
    if "[{#&*!|>%@`?,".contains(first) {
        return None;
    }
    let bytes = content.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'#' && i > 0 && bytes[i - 1] == b' ' {
            return None;
        }
        if b == b':' && bytes.get(i + 1).is_none_or(|&n| n == b' ') {
            let key = content[..i].trim_end();
            return (!key.is_empty()).then(|| (key.to_string(), i + 1));
        }
    }
    None
}

/// The first-level elements of a one-line flow collection: (char offset,
/// text). Stops at the end of the line.
fn flow_elements(value: &str) -> Vec<(usize, String)> {
    let chars: Vec<char> = value.chars().collect();
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut quote = None;
    let mut current: Option<usize> = None;
    for (i, &ch) in chars.iter().enumerate() {
        if let Some(q) = quote {
            if ch == q {
                quote = None;
            }
            continue;
        }
        if depth == 1 && current.is_none() && !matches!(ch, ' ' | ',' | ']' | '}') {
            current = Some(i);
        }
        match ch {
            '"' | '\'' => quote = Some(ch),
            '[' | '{' => depth += 1,
            ']' | '}' | ',' => {
                if depth == 1
                    && let Some(start) = current.take()
                {
                    let text: String = chars[start..i].iter().collect();
                    out.push((start, text.trim_end().to_string()));
                }
                if ch != ',' {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        break;
                    }
                }
            }
            _ => {}
        }
    }
    out
}

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
fn anchored_regex(pattern: &str) -> Option<regex::Regex> {
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
fn parse_number(s: &str) -> Option<f64> {
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
fn json_number(n: f64) -> Json {
    if n.fract() == 0.0 && n.abs() < 9_007_199_254_740_992.0 {
        Json::from(n as i64)
    } else {
        serde_json::Number::from_f64(n).map_or(Json::Null, Json::Number)
    }
}

/// `YYYY-MM-DD` or `dd/mm/yyyy` (day and month may have one digit).
fn parse_user_date(s: &str) -> Option<NaiveDate> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    /// The birth registration procedure, as in docs/procedure-format.md.
    const EXAMPLE: &str = r#"code: "1.001193"
version: 1
name:
  vi: Đăng ký khai sinh
  en: Birth registration
sector: civil-status
sector_name:
  vi: Hộ tịch
  en: Civil status
level: commune
agency_kind: commune_peoples_committee
online: full
processing_time: { working_days: 1 }
fees:
  - id: registration
    name:
      vi: Lệ phí đăng ký khai sinh
      en: Birth registration fee
    amount: 0
    note:
      vi: Miễn lệ phí khi đăng ký đúng hạn (trong 60 ngày kể từ ngày sinh)
      en: Free when registered within 60 days of the birth
  - id: extract-copy
    name:
      vi: Phí cấp bản sao trích lục khai sinh
      en: Certified copy of the birth extract
    amount: 8000
documents:
  - id: declaration
    name:
      vi: Tờ khai đăng ký khai sinh
      en: Birth registration form
    required: true
    accept: [pdf, docx, jpg, png]
  - id: birth-certificate
    name:
      vi: Giấy chứng sinh
      en: Medical birth certificate
    required: true
    accept: [pdf, jpg, jpeg, png]
  - id: authorisation
    name:
      vi: Văn bản ủy quyền (nếu nộp thay)
      en: Power of attorney (when filing for someone else)
    required: false
    accept: [pdf, jpg, png]
    max_count: 2
fields:
  - id: child_full_name
    label:
      vi: Họ, chữ đệm và tên của trẻ
      en: Child's full name
    type: text
    required: true
    min_length: 2
    max_length: 100
    pattern: '[\p{L} ]+'
  - id: child_birth_date
    label: {vi: Ngày sinh, en: Date of birth}
    type: date
    required: true
    max_date: today
  - id: child_sex
    label: {vi: Giới tính, en: Sex}
    type: choice
    required: true
    options:
      - value: male
        label: {vi: Nam, en: Male}
      - value: female
        label: {vi: Nữ, en: Female}
  - id: place_of_birth
    label: {vi: Nơi sinh, en: Place of birth}
    type: address
    required: true
  - id: mother_full_name
    label: {vi: Họ tên người mẹ, en: Mother's full name}
    type: text
    required: true
    max_length: 100
  - id: mother_national_id
    label: {vi: Số định danh cá nhân của người mẹ, en: Mother's personal ID number}
    type: national-id
    required: true
  - id: father_national_id
    label: {vi: Số định danh cá nhân của người cha, en: Father's personal ID number}
    type: national-id
  - id: applicant_phone
    label: {vi: Số điện thoại người đi đăng ký, en: Applicant's phone}
    type: phone
    required: true
  - id: applicant_email
    label: {vi: Thư điện tử, en: E-mail}
    type: email
  - id: extract_copies
    label: {vi: Số bản sao trích lục cần cấp, en: Certified copies wanted}
    type: number
    min: 0
    max: 10
    help:
      vi: 8.000 đồng một bản
      en: 8,000 VND per copy
workflow:
  - id: receive
    name: {vi: Tiếp nhận hồ sơ, en: Reception}
    role: officer
    share: 20
  - id: examine
    name: {vi: Thẩm định và ghi sổ hộ tịch, en: Examination and entry in the register}
    role: specialist
    share: 50
  - id: approve
    name: {vi: Ký Giấy khai sinh, en: Signature of the birth certificate}
    role: leader
    share: 30
result:
  kind: certificate
  name:
    vi: Giấy khai sinh (bản chính)
    en: Birth certificate (original)
legal_basis:
  - Luật Hộ tịch số 60/2014/QH13
  - Nghị định số 123/2015/NĐ-CP
  - Thông tư số 04/2020/TT-BTP
  - Thông tư số 281/2016/TT-BTC
"#;

    fn example() -> Procedure {
        match parse_procedure("example.yaml", EXAMPLE) {
            Ok(p) => p,
            Err(issues) => panic!("example must be clean: {issues:#?}"),
        }
    }

    /// (line, message prefix) of each issue.
    fn lines(issues: &[LintIssue]) -> Vec<(usize, String)> {
        issues
            .iter()
            .map(|i| {
                let head = i.message.split(':').next().unwrap_or_default();
                (i.line, head.to_string())
            })
            .collect()
    }

    /// 1-based number of the first line starting with `start`.
    fn line_of(text: &str, start: &str) -> usize {
        text.lines()
            .position(|l| l.starts_with(start))
            .map(|n| n + 1)
            .expect("line present")
    }

    fn has(issues: &[LintIssue], line: usize, needle: &str) -> bool {
        issues
            .iter()
            .any(|i| i.line == line && i.message.contains(needle))
    }

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("valid date")
    }

    #[test]
    fn example_parses_and_round_trips() {
        let p = example();
        assert_eq!(p.code, "1.001193");
        assert_eq!(p.processing_time, ProcessingTime::WorkingDays(1));
        assert_eq!(p.documents[0].max_count, 1);
        assert_eq!(p.documents[2].max_count, 2);
        assert_eq!(p.fields[5].kind, FieldType::NationalId);
        assert_eq!(p.name.get("en"), "Birth registration");

        let yaml = serde_yaml_ng::to_string(&p).expect("serialise");
        assert!(
            yaml.contains("processing_time:\n  working_days: 1\n"),
            "{yaml}"
        );
        let again = parse_procedure("again.yaml", &yaml).expect("re-parses cleanly");
        assert_eq!(again, p);

        let json = serde_json::to_string(&p).expect("json");
        assert!(json.contains(r#""processing_time":{"working_days":1}"#));
        let from_json: Procedure = serde_json::from_str(&json).expect("from json");
        assert_eq!(from_json, p);
    }

    #[test]
    fn processing_time_forms() {
        let read = |yaml: &str| serde_yaml_ng::from_str::<BTreeMap<String, ProcessingTime>>(yaml);
        for yaml in [
            "t: {working_days: 5}\n",
            "t:\n  working_days: 5\n",
            "t: !working_days 5\n",
        ] {
            let t = read(yaml).map(|m| m.get("t").copied());
            assert_eq!(
                t.ok().flatten(),
                Some(ProcessingTime::WorkingDays(5)),
                "{yaml}"
            );
        }
        assert_eq!(
            read("t: {working_hours: 4}\n")
                .ok()
                .and_then(|m| m.get("t").copied()),
            Some(ProcessingTime::WorkingHours(4))
        );
        for bad in [
            "t: {working_dayz: 5}\n",
            "t: {}\n",
            "t: {working_days: 5, working_hours: 2}\n",
            "t: {working_days: -1}\n",
            "t: working_days\n",
            "t: 5\n",
        ] {
            assert!(read(bad).is_err(), "{bad}");
        }
        let json: ProcessingTime = serde_json::from_str(r#"{"working_hours":8}"#).expect("json");
        assert_eq!(json, ProcessingTime::WorkingHours(8));
        assert_eq!(
            serde_json::to_string(&ProcessingTime::WorkingDays(3))
                .ok()
                .as_deref(),
            Some(r#"{"working_days":3}"#)
        );
    }

    #[test]
    fn helpers() {
        let p = example();
        assert_eq!(p.total_fee(), 8000);
        assert_eq!(
            p.document("birth-certificate").map(|d| d.required),
            Some(true)
        );
        assert!(p.document("nope").is_none());
        assert_eq!(
            p.field("child_sex").map(|f| f.kind),
            Some(FieldType::Choice)
        );
        assert_eq!(p.processing_time.working_minutes(8), 480);
        let issue = LintIssue {
            file: "a.yaml".into(),
            line: 3,
            column: 7,
            message: "code: bad".into(),
        };
        assert_eq!(issue.to_string(), "a.yaml:3:7: code: bad");
    }

    const SEMANTIC: &str = r#"code: "1.1193"
version: 0
name:
  vi: Đăng ký khai sinh
  en: ""
sector: Civil_Status
sector_name: {vi: Hộ tịch, en: Civil status}
level: province
agency_kind: commune_peoples_committee
online: full
processing_time: !working_hours 0
fees:
  - id: fee
    name: {vi: Lệ phí, en: Fee}
    amount: 0
  - id: fee
    name: {vi: Phí, en: Fee}
    amount: 8000
documents:
  - id: Form
    name: {vi: Tờ khai, en: Form}
    required: true
    accept: [pdf, exe]
    max_count: 21
  - id: scan
    name: {vi: Bản chụp, en: Scan}
    required: false
    accept: []
fields:
  - id: name
    label: {vi: Họ tên, en: Name}
    type: text
    min_length: 10
    max_length: 5
    pattern: "([a-z]"
  - id: age
    label: {vi: Tuổi, en: Age}
    type: number
    min: 10
    max: 1
    pattern: "[0-9]+"
  - id: sex
    label: {vi: Giới tính, en: Sex}
    type: choice
  - id: born
    label: {vi: Ngày sinh, en: Born}
    type: date
    min_date: yesterday
    max_date: 2024-13-01
    options:
      - {value: a, label: {vi: A, en: A}}
  - id: kind
    label: {vi: Loại, en: Kind}
    type: choice
    options:
      - value: a
        label: {vi: A, en: A}
      - value: a
        label: {vi: B, en: B}
workflow:
  - id: check
    name: {vi: Thẩm định, en: Check}
    role: specialist
    share: 0
  - id: check
    name: {vi: Thẩm định, en: Check}
    role: officer
    share: 50
result:
  kind: certificate
  name: {vi: "", en: Certificate}
legal_basis: []
"#;

    #[test]
    fn lint_reports_every_semantic_problem_at_its_line() {
        let issues = lint_procedure("bad.yaml", SEMANTIC);
        let expected: Vec<(usize, &str)> = vec![
            (1, "code"),
            (2, "version"),
            (5, "name.en"),
            (6, "sector"),
            (9, "agency_kind"),
            (11, "processing_time"),
            (16, "fees[1].id"),
            (20, "documents[0].id"),
            (23, "documents[0].accept[1]"),
            (24, "documents[0].max_count"),
            (28, "documents[1].accept"),
            (33, "fields[0].min_length"),
            (35, "fields[0].pattern"),
            (39, "fields[1].min"),
            (41, "fields[1].pattern"),
            (42, "fields[2].options"),
            (48, "fields[3].min_date"),
            (49, "fields[3].max_date"),
            (50, "fields[3].options"),
            (58, "fields[4].options[1].value"),
            (60, "workflow"),
            (63, "workflow[0].role"),
            (64, "workflow[0].share"),
            (65, "workflow[1].id"),
            (67, "workflow[1].role"),
            (71, "result.name.vi"),
            (72, "legal_basis"),
        ];
        let got = lines(&issues);
        let want: Vec<(usize, String)> = expected
            .iter()
            .map(|(l, p)| (*l, (*p).to_string()))
            .collect();
        assert_eq!(got, want, "{issues:#?}");

        // Spot-check columns and wording.
        let exe = issues
            .iter()
            .find(|i| i.message.starts_with("documents[0].accept[1]"))
            .expect("exe issue");
        assert_eq!(exe.column, 19);
        assert!(exe.message.contains("`exe`"));
        let vi = issues
            .iter()
            .find(|i| i.message.starts_with("result.name.vi"))
            .expect("result name");
        assert_eq!(vi.column, 10);
        assert!(has(&issues, 60, "add up to 50"));
        assert!(has(&issues, 35, "unclosed group"));
        assert!(has(
            &issues,
            9,
            "commune-level agency but `level` is province"
        ));
        assert!(has(&issues, 16, "duplicate id `fee` (also fees[0])"));
        assert!(issues.iter().all(|i| i.file == "bad.yaml"));
        assert!(parse_procedure("bad.yaml", SEMANTIC).is_err());
    }

    const TYPES: &str = r#"code: "1.001193x"
version: one
name: {vi: A, en: B}
sector: civil-status
sector_name: {vi: A, en: B}
level: district
agency_kind: commune_peoples_committee
online: full
processing_time:
  working_dayz: 5
colour: blue
fields:
  - id: a
    label: {vi: A, en: B}
    type: txt
  - id: B
    label: {vi: A, en: B}
    type: text
    patern: x
  - id: c
    label: {vi: A, en: B}
    type: number
workflow:
  - id: receive
    name: {vi: A, en: B}
    role: officer
    share: 100
result: {kind: certificate, name: {vi: A, en: B}}
legal_basis: [Luật Hộ tịch 2014]
"#;

    #[test]
    fn lint_reports_every_type_error_and_still_checks_the_rest() {
        let issues = lint_procedure("types.yaml", TYPES);
        let got = lines(&issues);
        let want: Vec<(usize, String)> = [
            (1, "code"),
            (2, "version"),
            (6, "level"),
            (10, "processing_time"),
            (11, "colour"),
            (15, "fields[0].type"),
            (19, "fields[1]"),
            (26, "workflow[0].role"),
        ]
        .iter()
        .map(|(l, p)| (*l, (*p).to_string()))
        .collect();
        assert_eq!(got, want, "{issues:#?}");
        assert!(has(&issues, 2, "invalid type"));
        assert!(has(&issues, 6, "unknown variant `district`"));
        assert!(has(&issues, 10, "unknown variant `working_dayz`"));
        assert!(has(&issues, 11, "unknown key"));
        assert!(has(&issues, 15, "unknown variant `txt`"));
        assert!(has(&issues, 19, "unknown field `patern`"));
        assert!(has(&issues, 26, "the last step is the approval"));
        let patern = issues.iter().find(|i| i.line == 19).expect("patern issue");
        assert_eq!(patern.column, 5);
        assert!(!patern.message.contains(" at line "));
    }

    #[test]
    fn lint_reports_syntax_errors_duplicates_and_missing_keys() {
        let syntax = lint_procedure("s.yaml", "code: \"1.001193\"\nname:\n  vi: a\n   en: b\n");
        assert_eq!(syntax.len(), 1, "{syntax:#?}");
        assert_eq!(syntax[0].line, 4);
        assert!(syntax[0].column > 0);

        let dup = lint_procedure("d.yaml", "# head\ncode: x\nversion: 1\ncode: y\n");
        assert_eq!(dup.len(), 1, "{dup:#?}");
        assert_eq!((dup[0].line, dup[0].column), (4, 1));
        assert!(dup[0].message.contains("first written on line 2"));

        let nested = EXAMPLE.replace("    amount: 8000\n", "    amount: 8000\n    amount: 9000\n");
        let dup = lint_procedure("d.yaml", &nested);
        assert_eq!(dup.len(), 1, "{dup:#?}");
        assert_eq!(dup[0].line, line_of(&nested, "    amount: 9000"));
        assert!(dup[0].message.starts_with("fees[1].amount: duplicate key"));

        let two = format!("{EXAMPLE}---\ncode: x\n");
        let issues = lint_procedure("t.yaml", &two);
        assert_eq!(issues.len(), 1);
        assert!(issues[0].message.contains("one YAML document"));

        let empty = lint_procedure("e.yaml", "# nothing yet\n");
        assert_eq!(empty.len(), 1);
        assert!(empty[0].message.contains("empty"));

        let list = lint_procedure("l.yaml", "- a\n- b\n");
        assert_eq!(list.len(), 1);

        let missing = lint_procedure("m.yaml", "\n# c\ncode: \"1.001193\"\nversion: 2\n");
        assert!(
            has(&missing, 3, "missing required key `workflow`"),
            "{missing:#?}"
        );
        assert!(has(&missing, 3, "missing required key `result`"));
        assert!(!missing.iter().any(|i| i.message.contains("`code`")));
    }

    #[test]
    fn aliases_across_keys_do_not_confuse_the_per_key_analysis() {
        // An anchor in `name`, an alias in `sector_name`, and a type error:
        // the alias is not reported as an error, the type error is.
        let yaml = EXAMPLE
            .replace(
                "name:\n  vi: Đăng ký khai sinh",
                "name: &n\n  vi: Đăng ký khai sinh",
            )
            .replace(
                "sector_name:\n  vi: Hộ tịch\n  en: Civil status\n",
                "sector_name: *n\n",
            );
        assert!(lint_procedure("a.yaml", &yaml).is_empty());
        let bad = yaml.replace("version: 1", "version: one");
        let issues = lint_procedure("a.yaml", &bad);
        assert_eq!(
            lines(&issues),
            vec![(2, "version".to_string())],
            "{issues:#?}"
        );
    }

    #[test]
    fn block_items_at_the_key_indentation_and_flow_lists() {
        // Items written at the indentation of their key, and a flow list of
        // workflow steps: both are read and located.
        let yaml = EXAMPLE
            .replace("  - Luật Hộ tịch", "- Luật Hộ tịch")
            .replace("  - Nghị định", "- Nghị định")
            .replace("  - Thông tư", "- Thông tư");
        assert!(lint_procedure("a.yaml", &yaml).is_empty());
        let bad = yaml.replace("- Nghị định số 123/2015/NĐ-CP", "- ''");
        let issues = lint_procedure("a.yaml", &bad);
        assert_eq!(
            lines(&issues),
            vec![(line_of(&bad, "- ''"), "legal_basis[1]".to_string())]
        );

        let flow = EXAMPLE.replace(
            "  - id: extract-copy\n    name:\n      vi: Phí cấp bản sao trích lục khai sinh\n      en: Certified copy of the birth extract\n    amount: 8000\n",
            "  - {id: extract-copy, name: {vi: Phí, en: Fee}, amount: 8000, colour: red}\n",
        );
        let issues = lint_procedure("f.yaml", &flow);
        assert_eq!(issues.len(), 1, "{issues:#?}");
        assert_eq!(issues[0].line, line_of(&flow, "  - {id: extract-copy"));
        assert!(
            issues[0]
                .message
                .starts_with("fees[1]: unknown field `colour`")
        );
    }

    #[test]
    fn line_index_understands_block_yaml() {
        let yaml = "# comment\n\
                    code: \"1\"\n\
                    name: &n\n  \
                      vi: A\n  \
                      en: >\n    \
                        folded\n    \
                        text: not a key\n\
                    \"quoted key\": v\n\
                    list:\n\
                    - a\n\
                    - b: 1\n  \
                      c: 2\n\
                    -\n  \
                      d: 3\n\
                    nested:\n  \
                      - - x\n    \
                        - y\n\
                    flow: [a, \"b, c\", {k: v}]\n\
                    map: {vi: A, en: B}\n\
                    after: |\n  \
                      x: 1\n\
                    last: 1\n";
        let index = LineIndex::build(yaml);
        let at = |p: &str| index.at.get(p).copied();
        assert_eq!(at("code"), Some((2, 1)));
        assert_eq!(at("name.vi"), Some((4, 3)));
        assert_eq!(at("name.en"), Some((5, 3)));
        assert_eq!(at("name.text"), None);
        assert_eq!(at("text"), None);
        assert_eq!(at("quoted key"), Some((8, 1)));
        assert_eq!(at("list[0]"), Some((10, 1)));
        assert_eq!(at("list[1]"), Some((11, 1)));
        assert_eq!(at("list[1].b"), Some((11, 3)));
        assert_eq!(at("list[1].c"), Some((12, 3)));
        assert_eq!(at("list[2]"), Some((13, 1)));
        assert_eq!(at("list[2].d"), Some((14, 3)));
        assert_eq!(at("nested[0]"), Some((16, 3)));
        assert_eq!(at("nested[0][0]"), Some((16, 5)));
        assert_eq!(at("nested[0][1]"), Some((17, 5)));
        assert_eq!(at("flow[0]"), Some((18, 8)));
        assert_eq!(at("flow[1]"), Some((18, 11)));
        assert_eq!(at("flow[2]"), Some((18, 19)));
        assert_eq!(at("map.vi"), Some((19, 7)));
        assert_eq!(at("map.en"), Some((19, 14)));
        assert_eq!(at("after"), Some((20, 1)));
        assert_eq!(at("x"), None);
        assert_eq!(at("last"), Some((22, 1)));
        assert_eq!(index.locate("list[1].zzz"), (11, 1));
        assert_eq!(index.locate("fields[3].pattern"), (2, 0));
        assert!(index.duplicates.is_empty());
    }

    #[test]
    fn lint_set_finds_duplicate_code_and_version() {
        let p = example();
        let mut v2 = p.clone();
        v2.version = 2;
        let set = vec![
            ("a.yaml".to_string(), p.clone()),
            ("b.yaml".to_string(), v2),
            ("c.yaml".to_string(), p),
        ];
        let issues = lint_set(&set);
        assert_eq!(issues.len(), 1);
        assert_eq!(issues[0].file, "c.yaml");
        assert!(issues[0].message.contains("1.001193 version 1"));
        assert!(issues[0].message.contains("a.yaml"));
        assert!(lint_set(&set[..2]).is_empty());
    }

    #[test]
    fn prefill_is_linted_and_read() {
        let good = format!(
            "{EXAMPLE}prefill:\n  - service: VN/GOV/BCA/POPULATION/citizens\n    path: \"/{{national_id}}\"\n    name: {{ vi: CSDL dân cư, en: Population database }}\n    fields:\n      child_full_name: full_name\n"
        );
        let p = parse_procedure("good.yaml", &good).expect("clean");
        assert_eq!(p.prefill.len(), 1);
        let nid = NationalId::parse("001090012345").expect("nid");
        assert_eq!(p.prefill[0].path_for(&nid), "/001090012345");
        assert_eq!(
            p.prefill[0]
                .fields
                .get("child_full_name")
                .map(String::as_str),
            Some("full_name")
        );

        let start = EXAMPLE.lines().count() + 1;
        let bad = format!(
            "{EXAMPLE}prefill:\n  - service: VN/GOV\n    path: \"people/{{id}}\"\n    name: {{ vi: CSDL, en: DB }}\n    fields:\n      no_such_field: full_name\n      child_full_name: \" \"\n  - service: VN/GOV/BCA/POPULATION/citizens\n    path: /x\n    name: {{ vi: \"\", en: DB }}\n    fields:\n      child_full_name: name\n"
        );
        let issues = lint_procedure("bad.yaml", &bad);
        let found: Vec<(usize, String)> = issues
            .iter()
            .map(|i| (i.line - start, i.message.clone()))
            .collect();
        let has =
            |line: usize, needle: &str| found.iter().any(|(l, m)| *l == line && m.contains(needle));
        assert!(has(1, "prefill[0].service"), "{found:#?}");
        assert!(has(2, "prefill[0].path"), "{found:#?}");
        assert!(has(5, "`no_such_field` is not a field"), "{found:#?}");
        assert!(has(6, "name the key"), "{found:#?}");
        assert!(has(9, "prefill[1].name.vi"), "{found:#?}");
        assert!(has(11, "already filled by prefill[0]"), "{found:#?}");
        assert_eq!(issues.len(), 6, "{found:#?}");
    }

    fn values(v: serde_json::Value) -> Map<String, Json> {
        match v {
            Json::Object(map) => map,
            _ => panic!("not an object"),
        }
    }

    fn codes(errors: &[FieldError]) -> Vec<(&str, &str)> {
        errors.iter().map(|e| (e.field.as_str(), e.code)).collect()
    }

    #[test]
    fn validation_accepts_and_normalises_good_input() {
        let p = example();
        let input = values(json!({
            "child_full_name": "  Nguye\u{302}\u{303}n Văn An ",
            "child_birth_date": "5/3/2025",
            "child_sex": "male",
            "place_of_birth": "Bệnh viện Phụ sản Hà Nội",
            "mother_full_name": "Trần Thị Bình",
            "mother_national_id": "001 190 012345",
            "father_national_id": "  ",
            "applicant_phone": "+84 912 345 678",
            "applicant_email": null,
            "extract_copies": "2"
        }));
        let out = p
            .validate_fields(&input, date(2025, 3, 10))
            .expect("valid input");
        assert_eq!(
            Json::Object(out),
            json!({
                "child_full_name": "Nguyễn Văn An",
                "child_birth_date": "2025-03-05",
                "child_sex": "male",
                "place_of_birth": "Bệnh viện Phụ sản Hà Nội",
                "mother_full_name": "Trần Thị Bình",
                "mother_national_id": "001190012345",
                "applicant_phone": "0912345678",
                "extract_copies": 2
            })
        );
        let numbers = values(json!({
            "child_full_name": "An", "child_birth_date": "2025-03-10", "child_sex": "female",
            "place_of_birth": "Hà Nội", "mother_full_name": "B",
            "mother_national_id": "001190012345", "applicant_phone": "0912345678",
            "applicant_email": "me@example.vn", "extract_copies": 2.5
        }));
        let out = p
            .validate_fields(&numbers, date(2025, 3, 10))
            .expect("valid");
        assert_eq!(out.get("extract_copies"), Some(&json!(2.5)));
        assert_eq!(out.get("applicant_email"), Some(&json!("me@example.vn")));
    }

    #[test]
    fn validation_reports_every_bad_field_with_its_code() {
        let p = example();
        let input = values(json!({
            "child_full_name": "A",
            "child_birth_date": "2025-03-11",
            "child_sex": "x",
            "place_of_birth": "HN",
            "mother_national_id": "123",
            "father_national_id": 12,
            "applicant_phone": "12345",
            "applicant_email": "a@b",
            "extract_copies": "11",
            "nickname": "x"
        }));
        let errors = p
            .validate_fields(&input, date(2025, 3, 10))
            .expect_err("invalid input");
        assert_eq!(
            codes(&errors),
            vec![
                ("nickname", "unknown-field"),
                ("child_full_name", "too-short"),
                ("child_birth_date", "date-too-late"),
                ("child_sex", "invalid-choice"),
                ("place_of_birth", "too-short"),
                ("mother_full_name", "required"),
                ("mother_national_id", "invalid-national-id"),
                ("father_national_id", "not-text"),
                ("applicant_phone", "invalid-phone"),
                ("applicant_email", "invalid-email"),
                ("extract_copies", "above-max"),
            ]
        );
        let params = |field: &str| {
            errors
                .iter()
                .find(|e| e.field == field)
                .map(|e| Json::Object(e.params.clone()))
        };
        assert_eq!(params("child_full_name"), Some(json!({"min": 2})));
        assert_eq!(
            params("child_birth_date"),
            Some(json!({"max": "2025-03-10"}))
        );
        assert_eq!(params("place_of_birth"), Some(json!({"min": 5})));
        assert_eq!(params("extract_copies"), Some(json!({"max": 10})));
        assert_eq!(
            params("child_sex"),
            Some(json!({"allowed": ["male", "female"]}))
        );
        let serialised = serde_json::to_value(&errors[1]).expect("json");
        assert_eq!(
            serialised,
            json!({"field": "child_full_name", "code": "too-short", "params": {"min": 2}})
        );
    }

    #[test]
    fn validation_of_each_kind() {
        let mut p = example();
        p.fields.push(FieldSpec {
            id: "since".into(),
            label: Localized::default(),
            kind: FieldType::Date,
            required: false,
            help: None,
            min_length: None,
            max_length: None,
            min: None,
            max: None,
            pattern: None,
            min_date: Some("2020-01-01".into()),
            max_date: None,
            options: Vec::new(),
        });
        p.fields.push(FieldSpec {
            id: "note".into(),
            kind: FieldType::Text,
            min_date: None,
            ..p.fields[10].clone()
        });
        let base = values(json!({
            "child_full_name": "An", "child_birth_date": "2025-03-10", "child_sex": "female",
            "place_of_birth": "Hà Nội", "mother_full_name": "B",
            "mother_national_id": "001190012345", "applicant_phone": "0912345678"
        }));
        let today = date(2025, 3, 10);
        let one = |field: &str, value: Json| {
            let mut v = base.clone();
            v.insert(field.to_string(), value);
            match p.validate_fields(&v, today) {
                Ok(_) => None,
                Err(e) => {
                    assert_eq!(e.len(), 1, "{e:?}");
                    Some(e[0].code)
                }
            }
        };
        assert_eq!(one("child_full_name", json!("Nguyễn 2")), Some("pattern"));
        assert_eq!(
            one("child_full_name", json!("A".repeat(101))),
            Some("too-long")
        );
        assert_eq!(one("child_full_name", json!(["An"])), Some("not-text"));
        assert_eq!(one("child_full_name", json!("An\u{0}h")), Some("not-text"));
        assert_eq!(
            one("child_full_name", json!("An\u{1b}[2J")),
            Some("not-text")
        );
        assert_eq!(one("note", json!("x".repeat(500))), None);
        assert_eq!(one("note", json!("x".repeat(501))), Some("too-long"));
        assert_eq!(
            one("place_of_birth", json!("x".repeat(301))),
            Some("too-long")
        );
        for bad in ["abc", "inf", "NaN", "1e3", "1.", "", "1,5"] {
            let expected = if bad.is_empty() {
                None
            } else {
                Some("not-a-number")
            };
            assert_eq!(one("extract_copies", json!(bad)), expected, "{bad}");
        }
        assert_eq!(one("extract_copies", json!(true)), Some("not-a-number"));
        assert_eq!(one("extract_copies", json!("-1")), Some("below-min"));
        assert_eq!(one("extract_copies", json!(" 10 ")), None);
        assert_eq!(
            one("child_birth_date", json!("31/02/2025")),
            Some("invalid-date")
        );
        assert_eq!(
            one("child_birth_date", json!("2025/03/01")),
            Some("invalid-date")
        );
        assert_eq!(
            one("child_birth_date", json!("1/3/25")),
            Some("invalid-date")
        );
        assert_eq!(one("child_birth_date", json!("10/03/2025")), None);
        assert_eq!(one("since", json!("2019-12-31")), Some("date-too-early"));
        assert_eq!(one("since", json!("2020-01-01")), None);
        assert_eq!(one("child_birth_date", json!("")), Some("required"));
        assert_eq!(one("child_birth_date", Json::Null), Some("required"));
        assert_eq!(
            one("applicant_email", json!("a b@c.vn")),
            Some("invalid-email")
        );
        assert_eq!(one("applicant_phone", json!(912345678)), Some("not-text"));
    }

    #[test]
    fn document_validation() {
        let p = example();
        let docs = |list: &[(&str, &str)]| -> Vec<(String, String)> {
            list.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        assert_eq!(
            p.validate_documents(&docs(&[
                ("declaration", "To khai.PDF"),
                ("birth-certificate", "giay chung sinh.jpeg"),
                ("authorisation", "uy quyen 1.pdf"),
                ("authorisation", "uy quyen 2.pdf"),
            ])),
            Ok(())
        );
        let errors = p
            .validate_documents(&docs(&[
                ("declaration", "a.exe"),
                ("declaration", "noext"),
                ("authorisation", "1.pdf"),
                ("authorisation", "2.pdf"),
                ("authorisation", "3.pdf"),
                ("photo", "x.jpg"),
                ("photo", "y.jpg"),
            ]))
            .expect_err("bad documents");
        assert_eq!(
            codes(&errors),
            vec![
                ("declaration", "document-type"),
                ("declaration", "document-type"),
                ("photo", "document-unknown"),
                ("declaration", "document-too-many"),
                ("birth-certificate", "document-required"),
                ("authorisation", "document-too-many"),
            ]
        );
        assert_eq!(
            Json::Object(errors[0].params.clone()),
            json!({"file": "a.exe", "accept": "pdf, docx, jpg, png"})
        );
        assert_eq!(
            Json::Object(errors[5].params.clone()),
            json!({"max": 2, "count": 3})
        );
    }

    /// The complete example of docs/procedure-format.md lints clean.
    #[test]
    fn documented_example_lints_clean() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../docs/procedure-format.md"
        );
        let doc = std::fs::read_to_string(path).expect("docs/procedure-format.md");
        let start = doc.find("```yaml\n").expect("a yaml block") + "```yaml\n".len();
        let len = doc[start..].find("```").expect("end of the yaml block");
        let yaml = &doc[start..start + len];
        let p = match parse_procedure("procedure-format.md", yaml) {
            Ok(p) => p,
            Err(issues) => panic!("{issues:#?}"),
        };
        assert_eq!(p, example());
    }

    #[test]
    fn shipped_procedures_lint_clean() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../procedures");
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .expect("procedures/ directory")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
            .collect();
        files.sort();
        let mut problems = Vec::new();
        let mut set = Vec::new();
        for path in &files {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let text = std::fs::read_to_string(path).expect("readable");
            let issues = lint_procedure(&name, &text);
            problems.extend(issues.iter().map(ToString::to_string));
            if let Ok(p) = parse_procedure(&name, &text) {
                set.push((name, p));
            }
        }
        problems.extend(lint_set(&set).iter().map(ToString::to_string));
        assert!(problems.is_empty(), "{}", problems.join("\n"));
        assert!(
            files.len() >= 20,
            "expected at least 20 procedures, found {}",
            files.len()
        );
    }

    proptest! {
        #[test]
        fn lint_never_panics_and_lines_are_in_the_file(
            s in "[a-z_:\\- \\[\\]{},\"'#|>!&*\n]{0,300}"
        ) {
            let issues = lint_procedure("p.yaml", &s);
            let lines = s.lines().count().max(1);
            for i in &issues {
                prop_assert!(i.line >= 1 && i.line <= lines + 1, "{i}");
            }
        }

        #[test]
        fn a_damaged_example_is_reported_not_panicked_on(
            drop in 0usize..140, dup in 0usize..140
        ) {
            let lines: Vec<&str> = EXAMPLE.lines().collect();
            let mut damaged: Vec<&str> = Vec::new();
            for (n, l) in lines.iter().enumerate() {
                if n == dup { damaged.push(l); }
                if n != drop { damaged.push(l); }
            }
            let text = damaged.join("\n");
            let issues = lint_procedure("p.yaml", &text);
            for i in &issues {
                prop_assert!(i.line >= 1 && i.line <= damaged.len() + 1, "{i}");
            }
            prop_assert_eq!(parse_procedure("p.yaml", &text).is_ok(), issues.is_empty());
        }
    }
}

//! Procedures as code: one YAML file per administrative procedure
//! (thủ tục hành chính), parsed into a typed definition, linted with file
//! and line, and used to validate what a citizen submits.
//!
//! The format is documented in `docs/procedure-format.md`.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ids::NationalId;
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

mod lines;
mod lint;
#[cfg(test)]
mod tests;
mod validate;

use lines::*;
use lint::*;
pub use lint::{
    ACCEPTED_EXTENSIONS, ADDRESS_MAX_LENGTH, ADDRESS_MIN_LENGTH, DEFAULT_TEXT_MAX_LENGTH,
    LintIssue, MAX_DOCUMENT_COUNT, lint_procedure, lint_set, parse_procedure,
};
pub use validate::FieldError;

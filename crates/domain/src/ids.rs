//! Identifiers and values parsed once at the edge ("parse, don't validate").

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a value could not be parsed. The `key` is a stable message key that
/// the web layer translates.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {detail}")]
pub struct ParseError {
    pub key: &'static str,
    pub detail: String,
}

impl ParseError {
    fn new(key: &'static str, detail: impl Into<String>) -> Self {
        Self {
            key,
            detail: detail.into(),
        }
    }
}

/// Province codes used in the first three digits of a citizen identity
/// number (Circular 07/2016/TT-BCA, place of birth registration).
const NATIONAL_ID_PROVINCES: &[u16] = &[
    1, 2, 4, 6, 8, 10, 11, 12, 14, 15, 17, 19, 20, 22, 24, 25, 26, 27, 30, 31, 33, 34, 35, 36, 37,
    38, 40, 42, 44, 45, 46, 48, 49, 51, 52, 54, 56, 58, 60, 62, 64, 66, 67, 68, 70, 72, 74, 75, 77,
    79, 80, 82, 83, 84, 86, 87, 89, 91, 92, 93, 94, 95, 96,
];

/// Số định danh cá nhân: the 12-digit personal identification number.
///
/// Digits 1–3 are the province of birth registration, digit 4 encodes sex
/// and century of birth, digits 5–6 the last two digits of the birth year.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct NationalId(String);

impl NationalId {
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        let s = raw.trim();
        if s.len() != 12 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParseError::new(
                "invalid-national-id",
                "must be exactly 12 digits",
            ));
        }
        let province: u16 = s[0..3].parse().unwrap_or(0);
        if !NATIONAL_ID_PROVINCES.contains(&province) {
            return Err(ParseError::new(
                "invalid-national-id",
                "unknown province code in the first three digits",
            ));
        }
        let century = s.as_bytes()[3] - b'0';
        if century > 3 {
            return Err(ParseError::new(
                "invalid-national-id",
                "the fourth digit must be 0–3 (sex and century of birth)",
            ));
        }
        Ok(Self(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Year of birth encoded in the number.
    pub fn birth_year(&self) -> i32 {
        let century = i32::from(self.0.as_bytes()[3] - b'0') / 2;
        let yy: i32 = self.0[4..6].parse().unwrap_or(0);
        1900 + century * 100 + yy
    }

    /// The number with all but the last three digits hidden, for places
    /// where a person must recognise their own number but others must not
    /// learn it.
    pub fn masked(&self) -> String {
        format!("*********{}", &self.0[9..])
    }
}

impl fmt::Debug for NationalId {
    // Never print a full identity number into logs by accident.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NationalId({})", self.masked())
    }
}

impl fmt::Display for NationalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for NationalId {
    type Error = ParseError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<NationalId> for String {
    fn from(value: NationalId) -> Self {
        value.0
    }
}

macro_rules! string_newtype {
    ($name:ident) => {
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl TryFrom<String> for $name {
            type Error = ParseError;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::parse(&value)
            }
        }
        impl From<$name> for String {
            fn from(value: $name) -> Self {
                value.0
            }
        }
    };
}

/// Code of an administrative unit from the National Statistics Office:
/// two digits for a province, five for a commune.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UnitCode(String);
string_newtype!(UnitCode);

impl UnitCode {
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        let s = raw.trim();
        if (s.len() == 2 || s.len() == 5) && s.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(s.to_string()))
        } else {
            Err(ParseError::new(
                "invalid-unit-code",
                "an administrative unit code has 2 (province) or 5 (commune) digits",
            ))
        }
    }

    pub fn is_province(&self) -> bool {
        self.0.len() == 2
    }
}

/// Code of an agency that handles dossiers, e.g. `UB00073` for the People's
/// Committee of Phường Cửa Nam. Upper-case letters, digits and dots, 2–20
/// characters; it starts every dossier code the agency issues.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AgencyCode(String);
string_newtype!(AgencyCode);

impl AgencyCode {
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        let s = raw.trim();
        let ok = (2..=20).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'.')
            && s.as_bytes()[0].is_ascii_uppercase();
        if ok {
            Ok(Self(s.to_string()))
        } else {
            Err(ParseError::new(
                "invalid-agency-code",
                "2–20 upper-case letters, digits or dots, starting with a letter",
            ))
        }
    }
}

/// Mã hồ sơ: `<agency code>-<YYMMDD of receipt>-<NNNN>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DossierCode(String);
string_newtype!(DossierCode);

impl DossierCode {
    pub fn new(agency: &AgencyCode, day: chrono::NaiveDate, sequence: u32) -> Self {
        Self(format!(
            "{}-{}-{:04}",
            agency,
            day.format("%y%m%d"),
            sequence
        ))
    }

    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        let s = raw.trim().to_ascii_uppercase();
        let err = || {
            ParseError::new(
                "invalid-dossier-code",
                "expected <agency>-<YYMMDD>-<NNNN>, e.g. UB00073-251122-0001",
            )
        };
        let mut parts = s.rsplitn(3, '-');
        let seq = parts.next().ok_or_else(err)?;
        let day = parts.next().ok_or_else(err)?;
        let agency = parts.next().ok_or_else(err)?;
        AgencyCode::parse(agency).map_err(|_| err())?;
        if seq.len() < 4 || !seq.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err());
        }
        chrono::NaiveDate::parse_from_str(&format!("20{day}"), "%Y%m%d").map_err(|_| err())?;
        if day.len() != 6 {
            return Err(err());
        }
        Ok(Self(s))
    }
}

/// An amount in Vietnamese đồng (no minor unit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Vnd(pub u64);

impl Vnd {
    /// `1.000.000 ₫`, the Vietnamese way of writing money.
    pub fn display_vi(self) -> String {
        let digits = self.0.to_string();
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push('.');
            }
            out.push(c);
        }
        out.push_str(" ₫");
        out
    }
}

/// A Vietnamese phone number: 10 digits starting with 0, or +84 followed by
/// nine digits. Normalised to the 0-prefixed form.
pub fn parse_phone(raw: &str) -> Result<String, ParseError> {
    let compact: String = raw
        .chars()
        .filter(|c| !matches!(c, ' ' | '.' | '-'))
        .collect();
    let national = if let Some(rest) = compact.strip_prefix("+84") {
        format!("0{rest}")
    } else {
        compact
    };
    if national.len() == 10
        && national.starts_with('0')
        && national.bytes().all(|b| b.is_ascii_digit())
        && national.as_bytes()[1] != b'0'
    {
        Ok(national)
    } else {
        Err(ParseError::new(
            "invalid-phone",
            "10 digits starting with 0, or +84 and 9 digits",
        ))
    }
}

/// A plausible e-mail address (one `@`, a dot in the domain, no spaces).
pub fn parse_email(raw: &str) -> Result<String, ParseError> {
    let s = raw.trim();
    let ok = match s.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains('@')
                && !s.chars().any(char::is_whitespace)
                && s.len() <= 254
        }
        None => false,
    };
    if ok {
        Ok(s.to_string())
    } else {
        Err(ParseError::new("invalid-email", "not an e-mail address"))
    }
}

/// The longest file name kept (characters).
pub const FILE_NAME_MAX: usize = 150;

/// Characters that reorder or hide text around them (bidirectional
/// overrides and isolates, marks, zero-width characters, byte-order mark):
/// a name holding one can show as another (`hóa-đơn\u{202E}fdp.exe`).
fn is_deceptive(c: char) -> bool {
    matches!(
        c,
        '\u{061C}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2069}'
            | '\u{FEFF}'
    )
}

/// A file's name as sent by a browser or a client: without any folder,
/// NFC, 1 to [`FILE_NAME_MAX`] characters, no control character, no
/// character that reorders or hides text, not `.` or `..`.
pub fn parse_file_name(raw: &str) -> Result<String, ParseError> {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or(raw);
    let name: String = crate::text::nfc(base.trim());
    let invalid = |why: &str| Err(ParseError::new("document-filename", why));
    if name.is_empty() || name == "." || name == ".." {
        return invalid("no file name");
    }
    if name.chars().count() > FILE_NAME_MAX {
        return invalid("too long");
    }
    if name.chars().any(|c| c.is_control() || is_deceptive(c)) {
        return invalid("control or direction character");
    }
    Ok(name)
}

/// A name that is safe to show and to send back for a stored file, even
/// if it was stored before names were checked: bad characters become `_`.
pub fn safe_file_name(stored: &str) -> String {
    let cleaned: String = stored
        .chars()
        .map(|c| {
            if c.is_control() || is_deceptive(c) || c == '/' || c == '\\' {
                '_'
            } else {
                c
            }
        })
        .take(FILE_NAME_MAX)
        .collect();
    if cleaned.trim().is_empty() {
        "tai-lieu".into()
    } else {
        cleaned
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn file_names_without_folders_controls_or_direction_marks() {
        assert_eq!(
            parse_file_name("C:\\Users\\An\\giấy chứng sinh.pdf").as_deref(),
            Ok("giấy chứng sinh.pdf")
        );
        assert_eq!(parse_file_name("../../etc/passwd").as_deref(), Ok("passwd"));
        for bad in [
            "",
            "..",
            "ten\u{1}tep.pdf",
            "a\r\nb.pdf",
            "hoa-don\u{202E}fdp.exe",
            "x\u{200B}.pdf",
            "dir/",
        ] {
            assert!(parse_file_name(bad).is_err(), "{bad:?}");
        }
        assert!(parse_file_name(&"a".repeat(151)).is_err());
        assert_eq!(safe_file_name("ten\u{1}tep.pdf"), "ten_tep.pdf");
        assert_eq!(safe_file_name("\u{202E}"), "_");
        assert_eq!(safe_file_name(""), "tai-lieu");
    }

    #[test]
    fn national_id_accepts_valid_and_rejects_invalid() {
        let id = NationalId::parse("001090012345").expect("valid");
        assert_eq!(id.birth_year(), 1990);
        assert_eq!(id.masked(), "*********345");
        assert_eq!(
            NationalId::parse("001205012345").map(|i| i.birth_year()),
            Ok(2005)
        );
        for bad in [
            "",
            "12345678901",
            "0010900123456",
            "00109001234a",
            "003090012345",
            "001590012345",
        ] {
            assert!(NationalId::parse(bad).is_err(), "{bad} must be refused");
        }
        assert!(!format!("{id:?}").contains("012345"));
    }

    #[test]
    fn dossier_code_round_trip() {
        let agency = AgencyCode::parse("UB00073").expect("agency");
        let day = chrono::NaiveDate::from_ymd_opt(2025, 11, 22).expect("date");
        let code = DossierCode::new(&agency, day, 7);
        assert_eq!(code.as_str(), "UB00073-251122-0007");
        assert_eq!(DossierCode::parse("ub00073-251122-0007"), Ok(code));
        assert!(DossierCode::parse("UB00073-251322-0007").is_err());
        assert!(DossierCode::parse("UB00073-0007").is_err());
    }

    #[test]
    fn money_is_written_the_vietnamese_way() {
        assert_eq!(Vnd(1_000_000).display_vi(), "1.000.000 ₫");
        assert_eq!(Vnd(0).display_vi(), "0 ₫");
        assert_eq!(Vnd(50_000).display_vi(), "50.000 ₫");
    }

    #[test]
    fn phones_and_emails() {
        assert_eq!(parse_phone("+84 912 345 678").as_deref(), Ok("0912345678"));
        assert!(parse_phone("0012345678").is_err());
        assert!(parse_email("a@b.vn").is_ok());
        assert!(parse_email("a@b").is_err());
    }

    proptest! {
        #[test]
        fn unit_codes_are_two_or_five_digits(s in "[0-9]{1,7}") {
            prop_assert_eq!(UnitCode::parse(&s).is_ok(), s.len() == 2 || s.len() == 5);
        }
    }
}

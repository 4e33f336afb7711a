//! X-Road identifiers: client subsystems and services.
//!
//! Two textual forms exist:
//!
//! * the *plain* form used in the registry document and in log records:
//!   `INSTANCE/CLASS/MEMBER/SUBSYSTEM` and
//!   `INSTANCE/CLASS/MEMBER/SUBSYSTEM/SERVICECODE[/VERSION]`;
//! * the *encoded* form used on the wire (`X-Road-Client` header, request
//!   path): the same segments, each percent-encoded (UTF-8), joined by `/`.
//!
//! Identifier parts follow the character restriction of the X-Road message
//! protocol for REST (section 4.8): letters `A-Z a-z`, digits and the symbols
//! `' ( ) + , - . = ?`; this gateway also accepts `_`, which is common in
//! service codes. Parts are 1 to 255 characters long. Because none of these
//! characters needs percent-encoding, the plain and the encoded form of a
//! valid identifier are the same string; decoding is still done so that
//! clients that encode every segment work.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest accepted identifier part, in bytes.
pub const MAX_PART_LEN: usize = 255;

/// Why an identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("expected {expected} segments separated by '/', found {found}")]
    SegmentCount {
        expected: &'static str,
        found: usize,
    },
    #[error("the {part} is empty")]
    Empty { part: &'static str },
    #[error("the {part} is longer than {MAX_PART_LEN} characters")]
    TooLong { part: &'static str },
    #[error("the {part} contains the character {ch:?}, which X-Road identifiers may not contain")]
    BadChar { part: &'static str, ch: char },
    #[error("bad percent-encoding in {0:?}")]
    BadEncoding(String),
}

/// Whether `c` may appear in an identifier part.
pub fn is_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            '\'' | '(' | ')' | '+' | ',' | '-' | '.' | '=' | '?' | '_'
        )
}

/// Checks one identifier part; `part` names it in the error.
pub fn validate_part(value: &str, part: &'static str) -> Result<(), IdError> {
    if value.is_empty() {
        return Err(IdError::Empty { part });
    }
    if value.len() > MAX_PART_LEN {
        return Err(IdError::TooLong { part });
    }
    if let Some(ch) = value.chars().find(|c| !is_id_char(*c)) {
        return Err(IdError::BadChar { part, ch });
    }
    Ok(())
}

/// Decodes `%XX` escapes (UTF-8). `+` is kept as is (this is a path, not a
/// form).
pub fn percent_decode(s: &str) -> Result<String, IdError> {
    if !s.contains('%') {
        return Ok(s.to_owned());
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hi = bytes.get(i + 1).and_then(|b| (*b as char).to_digit(16));
            let lo = bytes.get(i + 2).and_then(|b| (*b as char).to_digit(16));
            match (hi, lo) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                }
                _ => return Err(IdError::BadEncoding(s.to_owned())),
            }
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| IdError::BadEncoding(s.to_owned()))
}

/// Percent-encodes everything but unreserved characters (RFC 3986).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A client subsystem: `INSTANCE/CLASS/MEMBER/SUBSYSTEM`. Clients of this
/// gateway are always subsystems; providers are subsystems too.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId {
    pub instance: String,
    pub class: String,
    pub member: String,
    pub subsystem: String,
}

impl ClientId {
    /// Builds and validates an identifier from its parts.
    pub fn new(
        instance: &str,
        class: &str,
        member: &str,
        subsystem: &str,
    ) -> Result<Self, IdError> {
        validate_part(instance, "X-Road instance")?;
        validate_part(class, "member class")?;
        validate_part(member, "member code")?;
        validate_part(subsystem, "subsystem code")?;
        Ok(ClientId {
            instance: instance.to_owned(),
            class: class.to_owned(),
            member: member.to_owned(),
            subsystem: subsystem.to_owned(),
        })
    }

    /// Builds from already percent-decoded segments (exactly four).
    pub fn from_segments<S: AsRef<str>>(segments: &[S]) -> Result<Self, IdError> {
        match segments {
            [i, c, m, s] => ClientId::new(i.as_ref(), c.as_ref(), m.as_ref(), s.as_ref()),
            _ => Err(IdError::SegmentCount {
                expected: "4 (INSTANCE/CLASS/MEMBER/SUBSYSTEM)",
                found: segments.len(),
            }),
        }
    }

    /// Parses the `X-Road-Client` header form: percent-encoded segments
    /// joined by `/`. The subsystem is required.
    pub fn from_header(value: &str) -> Result<Self, IdError> {
        let segments = value
            .trim()
            .split('/')
            .map(percent_decode)
            .collect::<Result<Vec<_>, _>>()?;
        ClientId::from_segments(&segments)
    }

    /// The `X-Road-Client` header form.
    pub fn to_header(&self) -> String {
        format!(
            "{}/{}/{}/{}",
            percent_encode(&self.instance),
            percent_encode(&self.class),
            percent_encode(&self.member),
            percent_encode(&self.subsystem)
        )
    }

    /// The member this subsystem belongs to: `(class, code)`.
    pub fn member_key(&self) -> (&str, &str) {
        (&self.class, &self.member)
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{}/{}",
            self.instance, self.class, self.member, self.subsystem
        )
    }
}

impl FromStr for ClientId {
    type Err = IdError;
    /// Parses the plain form `INSTANCE/CLASS/MEMBER/SUBSYSTEM`.
    fn from_str(s: &str) -> Result<Self, IdError> {
        let segments: Vec<&str> = s.split('/').collect();
        ClientId::from_segments(&segments)
    }
}

/// A service: `INSTANCE/CLASS/MEMBER/SUBSYSTEM/SERVICECODE[/VERSION]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceId {
    pub provider: ClientId,
    pub service_code: String,
    pub version: Option<String>,
}

impl ServiceId {
    pub fn new(
        provider: ClientId,
        service_code: &str,
        version: Option<&str>,
    ) -> Result<Self, IdError> {
        validate_part(service_code, "service code")?;
        if let Some(v) = version {
            validate_part(v, "service version")?;
        }
        Ok(ServiceId {
            provider,
            service_code: service_code.to_owned(),
            version: version.map(str::to_owned),
        })
    }

    /// Builds from already decoded segments (five or six).
    pub fn from_segments<S: AsRef<str>>(segments: &[S]) -> Result<Self, IdError> {
        match segments {
            [i, c, m, s, code] => ServiceId::new(
                ClientId::new(i.as_ref(), c.as_ref(), m.as_ref(), s.as_ref())?,
                code.as_ref(),
                None,
            ),
            [i, c, m, s, code, v] => ServiceId::new(
                ClientId::new(i.as_ref(), c.as_ref(), m.as_ref(), s.as_ref())?,
                code.as_ref(),
                Some(v.as_ref()),
            ),
            _ => Err(IdError::SegmentCount {
                expected: "5 or 6 (INSTANCE/CLASS/MEMBER/SUBSYSTEM/SERVICECODE[/VERSION])",
                found: segments.len(),
            }),
        }
    }

    /// The `X-Road-Service` header form (percent-encoded segments).
    pub fn to_header(&self) -> String {
        let mut s = format!(
            "{}/{}",
            self.provider.to_header(),
            percent_encode(&self.service_code)
        );
        if let Some(v) = &self.version {
            s.push('/');
            s.push_str(&percent_encode(v));
        }
        s
    }
}

impl fmt::Display for ServiceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.provider, self.service_code)?;
        if let Some(v) = &self.version {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl FromStr for ServiceId {
    type Err = IdError;
    /// Parses the plain form; six segments mean a version.
    fn from_str(s: &str) -> Result<Self, IdError> {
        let segments: Vec<&str> = s.split('/').collect();
        ServiceId::from_segments(&segments)
    }
}

/// What a `/r1/...` request path addresses, before the registry decides
/// whether a sixth segment is a version or the start of the service path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum R1Target {
    /// `/r1/{INSTANCE}/listClients`
    ListClients { instance: String },
    /// `/r1/{INSTANCE}/{CLASS}/{MEMBER}/{SUBSYSTEM}/{SERVICECODE}[/...]`:
    /// `segments` are the five decoded identifier segments, plus a sixth
    /// when the next segment could be a version;
    /// `raw_segments` the same segments as received (still encoded), used to
    /// rebuild the path forwarded upstream without re-encoding it.
    Service {
        segments: Vec<String>,
        raw_segments: Vec<String>,
    },
}

/// Splits the path of a request (without query) that starts with `/r1/`.
pub fn parse_r1_path(path: &str) -> Result<R1Target, IdError> {
    let rest = path
        .strip_prefix("/r1/")
        .ok_or_else(|| IdError::BadEncoding(path.to_owned()))?;
    let raw: Vec<&str> = rest.split('/').collect();
    if raw.len() == 2 && raw[1] == "listClients" {
        let instance = percent_decode(raw[0])?;
        validate_part(&instance, "X-Road instance")?;
        return Ok(R1Target::ListClients { instance });
    }
    if raw.len() < 5 {
        return Err(IdError::SegmentCount {
            expected: "at least 5 (INSTANCE/CLASS/MEMBER/SUBSYSTEM/SERVICECODE)",
            found: raw.len(),
        });
    }
    // Only the identifier segments must be identifiers; the rest is the
    // service's own path and is forwarded as received. A sixth segment may be
    // a version: it is kept decoded when it could be one.
    let mut segments = Vec::with_capacity(6);
    for (r, name) in raw.iter().zip([
        "X-Road instance",
        "member class",
        "member code",
        "subsystem code",
        "service code",
    ]) {
        let decoded = percent_decode(r)?;
        validate_part(&decoded, name)?;
        segments.push(decoded);
    }
    if let Some(candidate) = raw.get(5).and_then(|r| percent_decode(r).ok())
        && validate_part(&candidate, "service version").is_ok()
    {
        segments.push(candidate);
    }
    Ok(R1Target::Service {
        segments,
        raw_segments: raw.iter().map(|s| (*s).to_owned()).collect(),
    })
}

macro_rules! serde_as_string {
    ($t:ty) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}
serde_as_string!(ClientId);
serde_as_string!(ServiceId);

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn client_id_round_trips_in_both_forms() {
        let id: ClientId = "VN/GOV/000.00.00.H26/LGSP".parse().unwrap();
        assert_eq!(id.instance, "VN");
        assert_eq!(id.member, "000.00.00.H26");
        assert_eq!(id.to_string(), "VN/GOV/000.00.00.H26/LGSP");
        assert_eq!(ClientId::from_header(&id.to_header()).unwrap(), id);
        // Clients that encode every byte work too.
        let enc = ClientId::from_header("VN/GOV/%30%30%30.00.00.H26/LGSP").unwrap();
        assert_eq!(enc, id);
    }

    #[test]
    fn client_id_requires_subsystem_and_valid_chars() {
        assert!(matches!(
            "VN/GOV/123".parse::<ClientId>(),
            Err(IdError::SegmentCount { found: 3, .. })
        ));
        assert!(matches!(
            ClientId::from_header("VN/GOV/1%2F2/SUB"),
            Err(IdError::BadChar { ch: '/', .. })
        ));
        assert!(matches!(
            ClientId::from_header("VN/GOV//SUB"),
            Err(IdError::Empty {
                part: "member code"
            })
        ));
        assert!(matches!(
            ClientId::from_header("VN/GOV/A B/SUB"),
            Err(IdError::BadChar { ch: ' ', .. })
        ));
        assert!(matches!(
            ClientId::from_header("VN/GOV/%E2%28/SUB"),
            Err(IdError::BadEncoding(_))
        ));
        assert!(matches!(
            ClientId::from_header("VN/GOV/%4/SUB"),
            Err(IdError::BadEncoding(_))
        ));
        let long = "x".repeat(MAX_PART_LEN + 1);
        assert!(matches!(
            ClientId::new("VN", "GOV", &long, "S"),
            Err(IdError::TooLong { .. })
        ));
        assert!(ClientId::new("VN", "GOV", "a'(b)+c,d-e.f=g?h_i", "S").is_ok());
    }

    #[test]
    fn service_id_with_and_without_version() {
        let s: ServiceId = "VN/GOV/H26/DANCU/citizen".parse().unwrap();
        assert_eq!(s.version, None);
        assert_eq!(s.to_string(), "VN/GOV/H26/DANCU/citizen");
        let v: ServiceId = "VN/GOV/H26/DANCU/citizen/v2".parse().unwrap();
        assert_eq!(v.version.as_deref(), Some("v2"));
        assert_eq!(v.to_string(), "VN/GOV/H26/DANCU/citizen/v2");
        assert_eq!(v.to_header(), "VN/GOV/H26/DANCU/citizen/v2");
        assert!("VN/GOV/H26/DANCU".parse::<ServiceId>().is_err());
        assert!("VN/GOV/H26/DANCU/a/b/c".parse::<ServiceId>().is_err());
    }

    #[test]
    fn serde_uses_the_plain_form() {
        let s: ServiceId = "VN/GOV/H26/DANCU/citizen".parse().unwrap();
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(json, "\"VN/GOV/H26/DANCU/citizen\"");
        let back: ServiceId = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);
        assert!(serde_json::from_str::<ClientId>("\"VN/GOV\"").is_err());
    }

    #[test]
    fn r1_paths() {
        assert_eq!(
            parse_r1_path("/r1/VN/listClients").unwrap(),
            R1Target::ListClients {
                instance: "VN".into()
            }
        );
        match parse_r1_path("/r1/VN/GOV/H26/DANCU/citizen/v2/people/%C4%90").unwrap() {
            R1Target::Service {
                segments,
                raw_segments,
            } => {
                assert_eq!(segments, ["VN", "GOV", "H26", "DANCU", "citizen", "v2"]);
                assert_eq!(raw_segments.len(), 8);
                assert_eq!(raw_segments[7], "%C4%90");
            }
            other => panic!("{other:?}"),
        }
        assert!(parse_r1_path("/r1/VN/GOV/H26").is_err());
        assert!(parse_r1_path("/r2/VN/GOV/H26/S/c").is_err());
        assert!(parse_r1_path("/r1/VN/GOV/H:26/S/c").is_err());
        // A trailing service path may contain anything, even bad escapes.
        assert!(parse_r1_path("/r1/VN/GOV/H26/S/c/v/%zz").is_ok());
        match parse_r1_path("/r1/VN/GOV/H26/S/c/%zz").unwrap() {
            R1Target::Service { segments, .. } => assert_eq!(segments.len(), 5),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn percent_encoding_round_trip() {
        assert_eq!(percent_encode("a b/Đ"), "a%20b%2F%C4%90");
        assert_eq!(percent_decode("a%20b%2F%C4%90").unwrap(), "a b/Đ");
    }
}

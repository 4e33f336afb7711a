//! The string form of an enum, written once.
//!
//! `string_forms!` gives an enum `ALL` (every variant, in order),
//! `as_str` and `parse` from one list of `Variant => "text"` pairs. The
//! enum's serde names must be the same strings; [`check_serde_names`]
//! asserts it in each module's tests.

/// `ALL`, `as_str` and `parse` of `$ty` from one list.
#[macro_export]
macro_rules! string_forms {
    ($ty:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $ty {
            /// Every variant, in declaration order.
            pub const ALL: [$ty; [$($text),+].len()] = [$($ty::$variant),+];

            /// The stored and sent form.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $text,)+
                }
            }

            /// The variant whose string form is `s`.
            pub fn parse(s: &str) -> Option<Self> {
                match s {
                    $($text => Some($ty::$variant),)+
                    _ => None,
                }
            }
        }
    };
}

/// Asserts that serde names each variant as `as_str` does (for tests).
pub fn check_serde_names<T: serde::Serialize + Copy>(
    all: &[T],
    as_str: impl Fn(T) -> &'static str,
) {
    for v in all {
        let json = serde_json::to_value(v).ok();
        assert_eq!(
            json.as_ref().and_then(|j| j.as_str()),
            Some(as_str(*v)),
            "serde and as_str disagree"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::check_serde_names;
    use crate::dossier::{Action, Channel, Role, Status};
    use crate::procedure::FieldType;
    use crate::units::{AgencyKind, UnitLevel};

    #[test]
    fn serde_names_are_the_string_forms() {
        check_serde_names(&Status::ALL, Status::as_str);
        check_serde_names(&Channel::ALL, Channel::as_str);
        check_serde_names(&Role::ALL, Role::as_str);
        check_serde_names(&Action::ALL, Action::as_str);
        check_serde_names(&FieldType::ALL, FieldType::as_str);
        check_serde_names(&UnitLevel::ALL, UnitLevel::as_str);
        check_serde_names(&AgencyKind::ALL, AgencyKind::as_str);
        for s in Status::ALL {
            assert_eq!(Status::parse(s.as_str()), Some(s));
        }
        assert_eq!(Status::parse("Accepted"), None);
        assert_eq!(Status::ALL.len(), 10);
    }
}

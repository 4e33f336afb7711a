//! Where a redirect may go: the one place that decides it.
//!
//! A `next=` parameter (sign-in, registration, language switch) is only
//! followed when it is a path of this site: `/` followed by a character
//! that is neither `/` nor `\`, made of visible ASCII only, and still so
//! after percent-decoding (browsers read `/%09/evil.example` and
//! `/\evil.example` as another host). Anything else goes to the home page
//! of whoever is signed in.

use motcua_domain::dossier::Role;
use motcua_store::User;

/// The longest `next` followed.
const MAX_LEN: usize = 2000;

fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex_val(b[i + 1]), hex_val(b[i + 2]))
        {
            out.push(h * 16 + l);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

fn hex_val(c: u8) -> Option<u8> {
    (c as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

/// A path of this site, or nothing.
fn is_local_path(bytes: &[u8]) -> bool {
    match bytes {
        [b'/', second, ..] => *second != b'/' && *second != b'\\',
        [b'/'] => true,
        _ => false,
    }
}

/// `raw` if it is a safe same-site target, else `None`.
pub fn safe_target(raw: Option<&str>) -> Option<String> {
    let raw = raw?;
    if raw.is_empty() || raw.len() > MAX_LEN {
        return None;
    }
    // Visible ASCII only: no spaces, controls (tab, CR, LF), backslashes
    // or characters a header cannot carry.
    if !raw
        .bytes()
        .all(|b| (0x21..=0x7e).contains(&b) && b != b'\\')
    {
        return None;
    }
    let mut decoded = raw.as_bytes().to_vec();
    // Decoded again and again: `%252F` must not become `/` in a second
    // decoder downstream.
    for _ in 0..3 {
        if !is_local_path(&decoded) || decoded.iter().any(|b| b.is_ascii_control() || *b == b'\\') {
            return None;
        }
        let next = percent_decode(std::str::from_utf8(&decoded).unwrap_or(""));
        if next == decoded {
            break;
        }
        decoded = next;
    }
    if !is_local_path(&decoded) || decoded.iter().any(|b| b.is_ascii_control() || *b == b'\\') {
        return None;
    }
    Some(raw.to_string())
}

/// Where `user` works: the page a role lands on after signing in.
pub fn home_of(user: Option<&User>) -> &'static str {
    let Some(u) = user else { return "/" };
    let has = |r: Role| u.roles.contains(&r);
    if has(Role::Officer) || has(Role::Specialist) || has(Role::Leader) {
        "/can-bo"
    } else if has(Role::AgencyAdmin) || has(Role::ProvinceAdmin) {
        "/quan-tri"
    } else if has(Role::IocViewer) {
        "/"
    } else {
        "/ho-so"
    }
}

/// Whether `user` may work in the area of `target`: the workqueue is for
/// the processing roles, administration for administrators; anything else
/// is decided by the page itself.
fn may_enter(target: &str, user: Option<&User>) -> bool {
    let path = target.split(['?', '#']).next().unwrap_or_default();
    let within = |area: &str| path == area || path.starts_with(&format!("{area}/"));
    let Some(u) = user else { return true };
    let has = |r: Role| u.roles.contains(&r);
    if within("/can-bo") {
        has(Role::Officer) || has(Role::Specialist) || has(Role::Leader)
    } else if within("/quan-tri") {
        has(Role::AgencyAdmin) || has(Role::ProvinceAdmin)
    } else {
        true
    }
}

/// `next` if it is safe and in an area `user` works in, else the home page
/// of `user` (an administrator sent to sign in from the workqueue's link
/// lands in administration, not on a refusal).
pub fn target_or_home(next: Option<&str>, user: Option<&User>) -> String {
    safe_target(next)
        .filter(|t| may_enter(t, user))
        .unwrap_or_else(|| home_of(user).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(roles: &[Role]) -> User {
        User {
            id: 1,
            username: "u".into(),
            password_hash: String::new(),
            full_name: "U".into(),
            national_id: None,
            phone: None,
            email: None,
            roles: roles.to_vec(),
            agency_code: None,
            disabled: false,
            created_at: chrono::DateTime::UNIX_EPOCH,
            national_id_verified: None,
        }
    }

    #[test]
    fn each_role_lands_where_it_works() {
        let admin = user(&[Role::AgencyAdmin]);
        let officer = user(&[Role::Officer]);
        let both = user(&[Role::Officer, Role::ProvinceAdmin]);
        let citizen = user(&[Role::Citizen]);
        assert_eq!(target_or_home(Some("/can-bo"), Some(&admin)), "/quan-tri");
        assert_eq!(
            target_or_home(Some("/can-bo/tiep-nhan?x=1"), Some(&admin)),
            "/quan-tri"
        );
        assert_eq!(target_or_home(Some("/can-bo"), Some(&officer)), "/can-bo");
        assert_eq!(target_or_home(Some("/quan-tri"), Some(&officer)), "/can-bo");
        assert_eq!(target_or_home(Some("/quan-tri"), Some(&both)), "/quan-tri");
        assert_eq!(target_or_home(Some("/can-bo"), Some(&citizen)), "/ho-so");
        assert_eq!(target_or_home(None, Some(&admin)), "/quan-tri");
        assert_eq!(
            target_or_home(Some("/thu-tuc/1.001193/nop-ho-so"), Some(&citizen)),
            "/thu-tuc/1.001193/nop-ho-so"
        );
        // Not a prefix match of another word.
        assert_eq!(
            target_or_home(Some("/can-bontz"), Some(&admin)),
            "/can-bontz"
        );
    }

    #[test]
    fn only_same_site_paths_are_followed() {
        for ok in [
            "/",
            "/ho-so",
            "/thu-tuc/1.001193/nop-ho-so",
            "/tra-cuu?ma=UB00073-261123-0001",
            "/thu-tuc?q=khai%20sinh",
            "/ho-so#top",
        ] {
            assert_eq!(safe_target(Some(ok)).as_deref(), Some(ok), "{ok}");
        }
        for bad in [
            "",
            "//evil.example",
            "/\\evil.example",
            "\\\\evil.example",
            "/%09/evil.example",
            "/\t/evil.example",
            "/%2F/evil.example",
            "/%2f%2fevil.example",
            "/%5Cevil.example",
            "/%252F/evil.example",
            "https://evil.example",
            "javascript:alert(1)",
            "evil.example",
            "/ho-so\r\nSet-Cookie: x=1",
            "/ho-so%0d%0aSet-Cookie:%20x=1",
            "/ho so",
            "/hồ-sơ",
            "/%00",
        ] {
            assert_eq!(safe_target(Some(bad)), None, "{bad:?}");
        }
        assert_eq!(safe_target(None), None);
        assert_eq!(safe_target(Some(&format!("/{}", "a".repeat(3000)))), None);
    }

    #[test]
    fn anything_else_goes_home() {
        assert_eq!(target_or_home(Some("//evil.example"), None), "/");
        assert_eq!(target_or_home(Some("/ho-so"), None), "/ho-so");
    }
}

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

/// `next` if it is safe, else the home page of `user`.
pub fn target_or_home(next: Option<&str>, user: Option<&User>) -> String {
    safe_target(next).unwrap_or_else(|| home_of(user).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

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

//! Text folding for search: "dang ky khai sinh" finds "Đăng ký khai sinh".

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// Lower-cases, removes Vietnamese diacritics (including đ → d) and
/// collapses runs of whitespace.
pub fn fold(input: &str) -> String {
    let mut out = String::with_capacity(input.len());
    let mut last_space = true;
    for c in input.nfd() {
        if is_combining_mark(c) {
            continue;
        }
        let c = match c {
            'đ' | 'Đ' => 'd',
            other => other,
        };
        if c.is_whitespace() {
            if !last_space {
                out.push(' ');
            }
            last_space = true;
            continue;
        }
        for l in c.to_lowercase() {
            out.push(l);
        }
        last_space = false;
    }
    if out.ends_with(' ') {
        out.pop();
    }
    out
}

/// NFC form of a string, the form we store.
pub fn nfc(input: &str) -> String {
    input.nfc().collect()
}

/// True when `s` holds a control character other than a line break or a
/// tab: nothing a person types, and nothing every database can store.
pub fn has_control(s: &str) -> bool {
    s.chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
}

/// True when every word of `query` occurs in `haystack` once both are folded.
pub fn matches_query(haystack_folded: &str, query: &str) -> bool {
    let q = fold(query);
    q.split(' ')
        .filter(|w| !w.is_empty())
        .all(|w| haystack_folded.contains(w))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_vietnamese() {
        assert_eq!(fold("Đăng ký  khai sinh"), "dang ky khai sinh");
        assert_eq!(fold("PHƯỜNG CỬA NAM"), "phuong cua nam");
        assert!(matches_query(
            &fold("Đăng ký khai sinh"),
            "dang ky KHAI sinh"
        ));
        assert!(!matches_query(&fold("Đăng ký khai tử"), "khai sinh"));
        assert!(has_control("a\u{0}b") && !has_control("dòng 1\ndòng 2\t"));
    }
}

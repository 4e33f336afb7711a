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

/// The folded words of a name, split on anything that is not a letter or
/// a digit ("Nguyễn-Văn  An" → nguyen, van, an).
fn words(input: &str) -> Vec<String> {
    fold(input)
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// The search terms stored for a person's name: each folded word and each
/// pair of adjacent words ("nguyen van an" → nguyen, van, an, "nguyen van",
/// "van an"), without repeats. Staff search finds a dossier by any run of
/// whole words of its applicant's name, diacritics ignored.
pub fn name_terms(name: &str) -> Vec<String> {
    let w = words(name);
    let mut out: Vec<String> = w.clone();
    out.extend(w.windows(2).map(|p| format!("{} {}", p[0], p[1])));
    out.sort();
    out.dedup();
    out
}

/// How a name query is answered from the stored terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameQuery {
    /// The term whose postings are walked (the last pair of words: in a
    /// Vietnamese name the given name is last and the rarest).
    pub driver: String,
    /// Terms every match must also have.
    pub others: Vec<String>,
    /// The folded words, in order, that the name must contain as a run.
    pub words: Vec<String>,
}

/// The terms to look up for a typed name, or `None` when it has no word.
pub fn name_query(query: &str) -> Option<NameQuery> {
    let w = words(query);
    let terms: Vec<String> = if w.len() == 1 {
        w.clone()
    } else {
        w.windows(2).map(|p| format!("{} {}", p[0], p[1])).collect()
    };
    let (driver, others) = terms.split_last()?;
    let mut others = others.to_vec();
    others.retain(|t| t != driver);
    others.dedup();
    Some(NameQuery {
        driver: driver.clone(),
        others,
        words: w,
    })
}

impl NameQuery {
    /// Whether `name` contains the query's words as a run of whole words.
    pub fn matches(&self, name: &str) -> bool {
        let w = words(name);
        w.windows(self.words.len().max(1))
            .any(|win| win == self.words.as_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_terms_are_folded_words_and_pairs() {
        assert_eq!(
            name_terms("Nguyễn Văn  An"),
            vec!["an", "nguyen", "nguyen van", "van", "van an"]
        );
        assert_eq!(
            name_terms("Đặng Thị Đào"),
            vec!["dang", "dang thi", "dao", "thi", "thi dao"]
        );
        assert!(name_terms("  ").is_empty());
    }

    #[test]
    fn a_name_query_walks_the_last_pair_and_checks_the_run() {
        let q = name_query("nguyen van AN").expect("query");
        assert_eq!(q.driver, "van an");
        assert_eq!(q.others, vec!["nguyen van"]);
        assert!(q.matches("Nguyễn Văn An"));
        assert!(q.matches("Trần Nguyễn Văn An"));
        assert!(!q.matches("Nguyễn Văn Anh"));
        assert!(!q.matches("An Văn Nguyễn"));
        let one = name_query("Bình").expect("query");
        assert_eq!(one.driver, "binh");
        assert!(one.others.is_empty());
        assert!(one.matches("Trần Thị Bình"));
        assert!(name_query(" - ").is_none());
        // Every query term of a name is one of its stored terms.
        let stored = name_terms("Lê Thị Thu Hà");
        let q = name_query("thi thu ha").expect("query");
        assert!(stored.contains(&q.driver));
        assert!(q.others.iter().all(|t| stored.contains(t)));
    }

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

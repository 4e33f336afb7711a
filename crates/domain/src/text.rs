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

/// The longest run of words stored as one search term.
const RUN: usize = 3;

/// The search terms stored for a person's name: each run of one, two and
/// three adjacent folded words ("nguyen van an" → nguyen, van, an,
/// "nguyen van", "van an", "nguyen van an"), without repeats. Staff search
/// finds a dossier by any run of whole words of its applicant's name,
/// diacritics ignored, and a full name of three words is one term.
pub fn name_terms(name: &str) -> Vec<String> {
    let w = words(name);
    let mut out: Vec<String> = (1..=RUN).flat_map(|n| runs(&w, n)).collect();
    out.sort();
    out.dedup();
    out
}

/// The runs of `n` adjacent words, each joined by one space.
fn runs(words: &[String], n: usize) -> Vec<String> {
    words.windows(n).map(|r| r.join(" ")).collect()
}

/// How a name query is answered from the stored terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameQuery {
    /// The term whose postings are walked (the last run of up to three
    /// words: in a Vietnamese name the given name is last and the rarest).
    pub driver: String,
    /// Terms every match must also have.
    pub others: Vec<String>,
    /// The folded words, in order, that the name must contain as a run.
    pub words: Vec<String>,
}

/// The terms to look up for a typed name, or `None` when it has no word.
pub fn name_query(query: &str) -> Option<NameQuery> {
    let w = words(query);
    if w.is_empty() {
        return None;
    }
    let terms = runs(&w, w.len().min(RUN));
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

/// The key that sorts Vietnamese text as a Vietnamese reader expects: the
/// letters in the order of the alphabet (a ă â b c d đ e ê … o ô ơ … u ư
/// … y, case ignored), then, between words that differ only in tones, the
/// tones in dictionary order (none, huyền, hỏi, ngã, sắc, nặng). Other
/// characters keep their code point order after the letters.
pub fn collation_key(input: &str) -> (Vec<u32>, Vec<u8>) {
    const ALPHABET: &str = "aăâbcdđeêghiklmnoôơpqrstuưvxy";
    let mut letters = Vec::with_capacity(input.len());
    let mut tones = Vec::new();
    let rank = |c: char| -> u32 {
        match ALPHABET.chars().position(|a| a == c) {
            // Letters of the alphabet first; f, j, w, z (foreign words) in
            // their Latin places among them.
            Some(p) => 2 * (p as u32) + 1,
            None => match c {
                'f' => 2 * 14 + 2,
                'j' => 2 * 18 + 2,
                'w' => 2 * 32 + 2,
                'z' => 2 * 34 + 2,
                // Between words: before any letter (word by word order).
                c if c.is_whitespace() => 0,
                other => 1000 + other as u32,
            },
        }
    };
    for ch in input.chars() {
        let lower: String = ch.to_lowercase().collect();
        let mut base = String::new();
        let mut tone = 0u8;
        for d in lower.nfd() {
            match d {
                '\u{300}' => tone = 1, // huyền
                '\u{309}' => tone = 2, // hỏi
                '\u{303}' => tone = 3, // ngã
                '\u{301}' => tone = 4, // sắc
                '\u{323}' => tone = 5, // nặng
                other => base.push(other),
            }
        }
        // The letter without its tone, with its own marks (ă, â, ơ, đ …).
        for b in base.nfc() {
            letters.push(rank(b));
        }
        tones.push(tone);
    }
    (letters, tones)
}

/// Compares two texts in Vietnamese order ([`collation_key`]).
pub fn vi_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    collation_key(a)
        .cmp(&collation_key(b))
        .then_with(|| a.cmp(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vietnamese_order_puts_d_stroke_after_d_and_tones_after_letters() {
        let mut v = vec![
            "Tư pháp",
            "Đất đai",
            "Dân tộc",
            "Y tế",
            "Ăn uống",
            "An ninh",
            "Ơn",
            "Ông",
            "Ô tô",
            "Giáo dục",
            "Công thương",
            "Hộ tịch",
            "Hô hấp",
            "Ho",
        ];
        v.sort_by(|a, b| vi_cmp(a, b));
        assert_eq!(
            v,
            vec![
                "An ninh",
                "Ăn uống",
                "Công thương",
                "Dân tộc",
                "Đất đai",
                "Giáo dục",
                "Ho",
                "Hô hấp",
                "Hộ tịch",
                "Ô tô",
                "Ông",
                "Ơn",
                "Tư pháp",
                "Y tế",
            ]
        );
        // Tones only decide between words with the same letters.
        let mut t = vec!["má", "mạ", "ma", "mà", "mã", "mả", "mai"];
        t.sort_by(|a, b| vi_cmp(a, b));
        assert_eq!(t, vec!["ma", "mà", "mả", "mã", "má", "mạ", "mai"]);
        // Case does not matter.
        assert_eq!(vi_cmp("đà nẵng", "Đà Nẵng"), "đà nẵng".cmp("Đà Nẵng"));
    }

    #[test]
    fn name_terms_are_folded_runs_of_up_to_three_words() {
        assert_eq!(
            name_terms("Nguyễn Văn  An"),
            vec![
                "an",
                "nguyen",
                "nguyen van",
                "nguyen van an",
                "van",
                "van an"
            ]
        );
        assert_eq!(
            name_terms("Đặng Thị Đào"),
            vec!["dang", "dang thi", "dang thi dao", "dao", "thi", "thi dao"]
        );
        assert_eq!(
            name_terms("Lê Thị Thu Hà"),
            vec![
                "ha",
                "le",
                "le thi",
                "le thi thu",
                "thi",
                "thi thu",
                "thi thu ha",
                "thu",
                "thu ha"
            ]
        );
        assert!(name_terms("  ").is_empty());
    }

    #[test]
    fn a_name_query_walks_the_last_run_and_checks_the_whole_run() {
        // A full name of three words is one stored term: nothing else to
        // look up.
        let q = name_query("nguyen van AN").expect("query");
        assert_eq!(q.driver, "nguyen van an");
        assert!(q.others.is_empty());
        assert!(q.matches("Nguyễn Văn An"));
        assert!(q.matches("Trần Nguyễn Văn An"));
        assert!(!q.matches("Nguyễn Văn Anh"));
        assert!(!q.matches("An Văn Nguyễn"));
        let one = name_query("Bình").expect("query");
        assert_eq!(one.driver, "binh");
        assert!(one.others.is_empty());
        assert!(one.matches("Trần Thị Bình"));
        let two = name_query("Văn An").expect("query");
        assert_eq!((two.driver.as_str(), two.others.len()), ("van an", 0));
        // Longer than three words: the last run drives, the others are
        // checked.
        let four = name_query("Lê Thị Thu Hà").expect("query");
        assert_eq!(four.driver, "thi thu ha");
        assert_eq!(four.others, vec!["le thi thu"]);
        assert!(four.matches("Lê Thị Thu Hà") && !four.matches("Lê Thị Hà"));
        assert!(name_query(" - ").is_none());
        // Every query term of a name is one of its stored terms.
        let stored = name_terms("Lê Thị Thu Hà");
        for typed in ["thi thu ha", "Lê Thị Thu Hà", "thu ha", "Hà"] {
            let q = name_query(typed).expect("query");
            assert!(stored.contains(&q.driver), "{typed}");
            assert!(q.others.iter().all(|t| stored.contains(t)), "{typed}");
        }
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

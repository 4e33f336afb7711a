//! Vietnamese and English texts from the Fluent files in `locales/`.

use std::collections::HashMap;
use std::sync::OnceLock;

use axum::http::HeaderMap;
use fluent_templates::fluent_bundle::FluentValue;
use fluent_templates::{LanguageIdentifier, Loader, static_loader};

static_loader! {
    static LOCALES = {
        locales: "../../locales",
        fallback_language: "vi",
        customise: |bundle| bundle.set_use_isolating(false),
    };
}

/// The two languages of motcua. Vietnamese first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    #[default]
    Vi,
    En,
}

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Lang::Vi => "vi",
            Lang::En => "en",
        }
    }

    fn id(self) -> &'static LanguageIdentifier {
        static VI: OnceLock<LanguageIdentifier> = OnceLock::new();
        static EN: OnceLock<LanguageIdentifier> = OnceLock::new();
        let (cell, code) = match self {
            Lang::Vi => (&VI, "vi"),
            Lang::En => (&EN, "en"),
        };
        cell.get_or_init(|| code.parse().unwrap_or_default())
    }

    /// Picks the language from `Accept-Language`: the first of vi/en by
    /// preference weight; Vietnamese when neither is asked for.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let Some(v) = headers
            .get(axum::http::header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
        else {
            return Lang::Vi;
        };
        let mut best: Option<(f32, Lang)> = None;
        for part in v.split(',') {
            let mut it = part.trim().split(';');
            let tag = it.next().unwrap_or_default().trim().to_ascii_lowercase();
            let q = it
                .find_map(|p| {
                    p.trim()
                        .strip_prefix("q=")
                        .and_then(|q| q.parse::<f32>().ok())
                })
                .unwrap_or(1.0);
            let lang = if tag.starts_with("vi") {
                Lang::Vi
            } else if tag.starts_with("en") {
                Lang::En
            } else {
                continue;
            };
            if best.is_none_or(|(bq, _)| q > bq) {
                best = Some((q, lang));
            }
        }
        best.map(|(_, l)| l).unwrap_or(Lang::Vi)
    }

    pub fn text(self, key: &str) -> String {
        LOCALES.lookup(self.id(), key)
    }

    pub fn text_with(self, key: &str, args: &serde_json::Map<String, serde_json::Value>) -> String {
        let mut fargs: HashMap<std::borrow::Cow<'static, str>, FluentValue<'static>> =
            HashMap::new();
        for (k, v) in args {
            let fv = match v {
                serde_json::Value::Number(n) => n
                    .as_f64()
                    .map(FluentValue::from)
                    .unwrap_or_else(|| FluentValue::from(n.to_string())),
                serde_json::Value::String(s) => FluentValue::from(s.clone()),
                other => FluentValue::from(other.to_string()),
            };
            fargs.insert(std::borrow::Cow::Owned(k.clone()), fv);
        }
        LOCALES.lookup_with_args(self.id(), key, &fargs)
    }
}

/// The arguments of a message, from name and text pairs.
pub fn args(pairs: &[(&str, String)]) -> serde_json::Map<String, serde_json::Value> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), serde_json::Value::String(v.clone())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The message keys of a Fluent file, and the keys defined twice.
    fn keys(ftl: &str) -> (std::collections::BTreeSet<String>, Vec<String>) {
        let mut seen = std::collections::BTreeSet::new();
        let mut twice = Vec::new();
        for line in ftl.lines() {
            let Some((key, _)) = line.split_once('=') else {
                continue;
            };
            let key = key.trim_end();
            let is_key = key.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                && key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if is_key && !seen.insert(key.to_string()) {
                twice.push(key.to_string());
            }
        }
        (seen, twice)
    }

    /// The locale files, one per module, in both languages.
    const FILES: [&str; 6] = [
        "kernel",
        "catalogue",
        "dossiers",
        "accounts",
        "admin",
        "exchange",
    ];

    fn read(lang: &str, module: &str) -> String {
        let path = format!(
            "{}/../../locales/{lang}/{module}.ftl",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn every_locale_file_is_read() {
        for lang in ["vi", "en"] {
            let dir = format!("{}/../../locales/{lang}", env!("CARGO_MANIFEST_DIR"));
            let mut found: Vec<String> = std::fs::read_dir(&dir)
                .expect("locale folder")
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().to_string())
                .collect();
            found.sort();
            let mut expected: Vec<String> = FILES.iter().map(|m| format!("{m}.ftl")).collect();
            expected.sort();
            assert_eq!(found, expected, "{lang}: one file per module");
        }
    }

    #[test]
    fn both_languages_have_exactly_the_same_keys() {
        // Each module's file holds the same keys in both languages, and no
        // key is defined twice, in one file or across files.
        for module in FILES {
            let (v, _) = keys(&read("vi", module));
            let (e, _) = keys(&read("en", module));
            assert_eq!(v, e, "{module}.ftl: the same keys in both languages");
        }
        let vi: String = FILES.iter().map(|m| read("vi", m) + "\n").collect();
        let en: String = FILES.iter().map(|m| read("en", m) + "\n").collect();
        let (vi_keys, vi_twice) = keys(&vi);
        let (en_keys, en_twice) = keys(&en);
        assert!(vi_keys.len() > 500, "the keys were read");
        assert_eq!(vi_twice, Vec::<String>::new(), "defined twice in vi");
        assert_eq!(en_twice, Vec::<String>::new(), "defined twice in en");
        let only_vi: Vec<_> = vi_keys.difference(&en_keys).collect();
        let only_en: Vec<_> = en_keys.difference(&vi_keys).collect();
        assert!(
            only_vi.is_empty() && only_en.is_empty(),
            "only in Vietnamese: {only_vi:?}; only in English: {only_en:?}"
        );
        for k in &vi_keys {
            assert!(!Lang::Vi.text(k).is_empty(), "{k} (vi) is empty");
            assert!(!Lang::En.text(k).is_empty(), "{k} (en) is empty");
        }
    }

    #[test]
    fn negotiates_and_translates() {
        let mut h = HeaderMap::new();
        assert_eq!(Lang::from_headers(&h), Lang::Vi);
        h.insert(
            "accept-language",
            "fr-FR, en-US;q=0.8, vi;q=0.5".parse().expect("header"),
        );
        assert_eq!(Lang::from_headers(&h), Lang::En);
        assert_eq!(Lang::En.text("problem-not-found"), "Not found");
        assert_eq!(Lang::Vi.text("problem-not-found"), "Không tìm thấy");
        let mut args = serde_json::Map::new();
        args.insert("min".into(), 2.into());
        assert_eq!(
            Lang::En.text_with("field-too-short", &args),
            "At least 2 characters"
        );
    }
}

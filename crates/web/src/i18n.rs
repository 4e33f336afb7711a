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

#[cfg(test)]
mod tests {
    use super::*;

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

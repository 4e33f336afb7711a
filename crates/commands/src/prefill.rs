//! What a dossier records about where its data came from: read from a
//! registry through the data exchange (once-only), or typed, and why.

use std::collections::BTreeMap;

use motcua_domain::procedure::Localized;
use serde::{Deserialize, Serialize};

/// The key of a dossier's fields under which the sources of its data are
/// kept (see [`SourceResult`]).
pub const SOURCES_KEY: &str = "_sources";

/// Reads the sources recorded with a dossier's fields.
pub fn sources_of(fields: &serde_json::Map<String, serde_json::Value>) -> Vec<SourceResult> {
    fields
        .get(SOURCES_KEY)
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default()
}

/// Where the data of one registry came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// Read through the exchange.
    Exchange,
    /// Typed by the citizen.
    Typed,
}

/// One declared registry of a form, as it turned out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceResult {
    pub service: String,
    pub name: Localized,
    pub origin: Origin,
    /// The exchange's id, when read through it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x_road_id: Option<String>,
    /// Why the citizen typed: `no-consent`, `unavailable`, `unreachable`,
    /// `not-found`, `invalid-answer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The form fields the registry fills (all declared ones).
    pub fields: Vec<String>,
    /// Field -> value as the registry answered (the locked fields).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub values: BTreeMap<String, String>,
    /// When the registry was asked (ms since the epoch), if it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<i64>,
}

//! Accounts: users, their sign-in tokens, the verification of national ID
//! numbers (with the reviews of links made before verification existed),
//! and the failure counters that throttle guessing.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use motcua_domain::audit::AuditEntry;
use motcua_domain::dossier::Role;
use motcua_domain::{AgencyCode, DossierCode};
use serde::{Deserialize, Serialize};

use crate::StoreResult;

/// Users, sign-in tokens, national-ID verification, link reviews and
/// throttle counters (SQL: `sql/accounts.rs`; stories:
/// `conformance/accounts.rs`).
#[async_trait]
pub trait AccountStore: Send + Sync {
    async fn create_user(&self, user: &NewUser, audit: AuditEntry) -> StoreResult<User>;
    async fn user_by_name(&self, username: &str) -> StoreResult<Option<User>>;
    async fn user(&self, id: i64) -> StoreResult<Option<User>>;
    async fn user_by_national_id(&self, national_id: &str) -> StoreResult<Option<User>>;
    async fn users(&self) -> StoreResult<Vec<User>>;
    /// The account whose *verified* national ID number is `national_id`.
    async fn user_by_verified_national_id(&self, national_id: &str) -> StoreResult<Option<User>>;
    /// Records that `user_id` holds `national_id` (checked as `v` says),
    /// and links to the account, in the same transaction, every dossier of
    /// that applicant number that has no account. `Duplicate` when another
    /// account holds the number verified. Returns the dossiers linked.
    async fn verify_national_id(
        &self,
        user_id: i64,
        national_id: &str,
        v: &Verification,
        audit: AuditEntry,
    ) -> StoreResult<Vec<DossierCode>>;
    /// Links waiting for review (`open_only`) or all of them, oldest first.
    async fn link_reviews(&self, open_only: bool) -> StoreResult<Vec<LinkReview>>;
    /// Keeps (links the dossier to the account again) or removes an open
    /// review's link; `Conflict` when it was resolved already.
    async fn resolve_link_review(
        &self,
        id: i64,
        keep: bool,
        by: &str,
        at: DateTime<Utc>,
        audit: AuditEntry,
    ) -> StoreResult<()>;
    /// The counters of `keys` (absent keys are left out).
    async fn throttle_read(&self, keys: &[String]) -> StoreResult<Vec<ThrottleState>>;
    /// Counts one failure under each key; a counter whose window (of
    /// `window`) has passed starts again at one.
    async fn throttle_hit(
        &self,
        keys: &[String],
        now: DateTime<Utc>,
        window: chrono::Duration,
    ) -> StoreResult<()>;
    /// Forgets the counters of `keys`, and every counter idle since before
    /// `idle_before`.
    async fn throttle_clear(&self, keys: &[String], idle_before: DateTime<Utc>) -> StoreResult<()>;
    async fn set_user_disabled(
        &self,
        id: i64,
        disabled: bool,
        audit: AuditEntry,
    ) -> StoreResult<()>;
    async fn set_password(
        &self,
        id: i64,
        password_hash: &str,
        audit: AuditEntry,
    ) -> StoreResult<()>;
    async fn create_token(
        &self,
        token_hash: &str,
        user_id: i64,
        expires_at: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// The user of a live token (not expired, not revoked, user enabled).
    async fn token_user(&self, token_hash: &str, now: DateTime<Utc>) -> StoreResult<Option<User>>;
    async fn revoke_token(&self, token_hash: &str) -> StoreResult<bool>;
    async fn revoke_user_tokens(&self, user_id: i64) -> StoreResult<u64>;
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub password_hash: String,
    pub full_name: String,
    pub national_id: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub roles: Vec<Role>,
    pub agency_code: Option<AgencyCode>,
    pub disabled: bool,
    pub created_at: DateTime<Utc>,
    /// How `national_id` was checked; `None`: typed by the user, unchecked.
    pub national_id_verified: Option<Verification>,
}

impl User {
    /// The national ID number if, and only if, it has been verified: the
    /// one rule that decides whether a number may grant anything (counter
    /// dossiers under "my dossiers", data read from national registries).
    pub fn verified_national_id(&self) -> Option<&str> {
        self.national_id_verified
            .as_ref()
            .and(self.national_id.as_deref())
    }
}

/// How a national ID number was verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerificationMethod {
    /// At the counter, by an officer who saw the identity card.
    Counter,
    /// By a trusted identity provider (sign-in with the national identity).
    IdentityProvider,
    /// Seeded as verified by `serve --demo`, without any check.
    Demo,
}

motcua_domain::string_forms!(VerificationMethod {
    Counter => "counter",
    IdentityProvider => "identity_provider",
    Demo => "demo",
});

/// Who verified a national ID number, how and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verification {
    pub at: DateTime<Utc>,
    /// The officer's user name, the identity provider, or `demo`.
    pub by: String,
    pub method: VerificationMethod,
}

/// A counter dossier that was linked to an account by an unverified
/// national ID number before verification existed: unlinked by the
/// upgrade and waiting for staff to keep or remove the link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LinkReview {
    pub id: i64,
    pub dossier_code: DossierCode,
    pub agency_code: AgencyCode,
    pub applicant_name: String,
    pub applicant_national_id: String,
    pub user_id: i64,
    pub username: String,
    /// The account's national ID number if it is verified now.
    pub user_verified_national_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub resolved_by: Option<String>,
    /// `kept` or `removed`.
    pub resolution: Option<String>,
}

/// Failures counted under one key in the current window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThrottleState {
    pub key: String,
    pub failures: u32,
    pub window_start: DateTime<Utc>,
    pub last_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUser {
    pub username: String,
    pub password_hash: String,
    pub full_name: String,
    pub national_id: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub roles: Vec<Role>,
    pub agency_code: Option<AgencyCode>,
}

//! JSON shapes of the accounts API (also in the OpenAPI document).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Deserialize, ToSchema)]
pub struct TokenRequest {
    pub username: String,
    pub password: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    pub token: String,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RegisterRequest {
    pub username: String,
    pub password: String,
    pub full_name: String,
    /// 12-digit personal identification number.
    pub national_id: String,
    pub phone: Option<String>,
    pub email: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    pub id: i64,
    pub username: String,
    pub full_name: String,
    pub roles: Vec<String>,
    pub agency_code: Option<String>,
    /// Whether the account's national ID number has been verified (at the
    /// counter, by an identity provider, or by the demo): only a verified
    /// number shows counter dossiers under "my dossiers".
    pub national_id_verified: bool,
}

/// An officer's record that they saw the identity card of an account's
/// holder.
#[derive(Debug, Deserialize, ToSchema)]
pub struct VerifyNationalIdRequest {
    /// The number on the card (12 digits).
    pub national_id: String,
    /// The document seen: `cccd` (citizen identity card), `cmnd` (old
    /// identity card) or `passport`.
    pub document: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VerifiedView {
    pub username: String,
    pub national_id_verified_at: chrono::DateTime<chrono::Utc>,
    pub verified_by: String,
    /// Counter dossiers of this applicant now under the account.
    pub linked_dossiers: Vec<String>,
}

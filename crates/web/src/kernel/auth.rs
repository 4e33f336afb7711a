//! The API's callers: a bearer token, and the extractors that refuse a
//! request without one (or without the role) before its body is read.

use axum::http::{HeaderMap, header};
use motcua_commands::accounts::{has, token_hash};
use motcua_domain::dossier::Role;
use motcua_store::User;

use crate::kernel::error::ApiError;
use crate::state::AppState;

pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
}

/// The signed-in user of a request, or 401.
pub async fn current_user(st: &AppState, headers: &HeaderMap) -> Result<User, ApiError> {
    let token = bearer(headers).ok_or_else(ApiError::unauthorized)?;
    st.store
        .token_user(&token_hash(token), st.clock.now())
        .await?
        .ok_or_else(ApiError::unauthorized)
}

/// A caller of the API with a live bearer token; any other request is
/// refused with 401 before its body is read.
#[derive(Debug, Clone)]
pub struct ApiUser(pub User);

impl axum::extract::FromRequestParts<AppState> for ApiUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        st: &AppState,
    ) -> Result<Self, ApiError> {
        current_user(st, &parts.headers).await.map(ApiUser)
    }
}

/// An API caller whose account passes `$allowed` (401 without a live
/// token, 403 for any other account), checked before the body is read.
macro_rules! api_caller {
    ($(#[$doc:meta])* $name:ident, $allowed:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone)]
        pub struct $name(pub User);

        impl axum::extract::FromRequestParts<AppState> for $name {
            type Rejection = ApiError;

            async fn from_request_parts(
                parts: &mut axum::http::request::Parts,
                st: &AppState,
            ) -> Result<Self, ApiError> {
                let user = current_user(st, &parts.headers).await?;
                let allowed: fn(&User) -> bool = $allowed;
                if !allowed(&user) {
                    return Err(ApiError::forbidden());
                }
                Ok($name(user))
            }
        }
    };
}

api_caller!(
    /// A province administrator calling the API.
    ProvinceAdminApi,
    |u| has(u, Role::ProvinceAdmin)
);
api_caller!(
    /// A member of an agency's staff calling the API.
    StaffApi,
    motcua_commands::accounts::is_staff
);
api_caller!(
    /// A one-stop officer calling the API.
    OfficerApi,
    |u| has(u, Role::Officer)
);

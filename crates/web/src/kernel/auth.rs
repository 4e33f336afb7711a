//! The API's callers: a bearer token, and the extractors that refuse a
//! request without one (or without the role) before its body is read.

use axum::http::{HeaderMap, header};
use motcua_commands::accounts::{has, token_hash};
use motcua_domain::dossier::Role;
use motcua_store::User;

use crate::AppState;
use crate::kernel::error::ApiError;

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
pub async fn current_user(
    st: &crate::state::AppState,
    headers: &HeaderMap,
) -> Result<User, ApiError> {
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

impl axum::extract::FromRequestParts<crate::state::AppState> for ApiUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        st: &crate::state::AppState,
    ) -> Result<Self, ApiError> {
        current_user(st, &parts.headers).await.map(ApiUser)
    }
}

/// A province administrator calling the API (401 without a live token,
/// 403 for any other role), checked before the body is read.
#[derive(Debug, Clone)]
pub struct ProvinceAdminApi(pub User);

impl axum::extract::FromRequestParts<crate::state::AppState> for ProvinceAdminApi {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        st: &crate::state::AppState,
    ) -> Result<Self, ApiError> {
        let user = current_user(st, &parts.headers).await?;
        if !has(&user, Role::ProvinceAdmin) {
            return Err(ApiError::forbidden());
        }
        Ok(ProvinceAdminApi(user))
    }
}

/// A member of an agency's staff calling the API (401 without a live
/// token, 403 for an account without a staff role).
#[derive(Debug, Clone)]
pub struct StaffApi(pub User);

impl axum::extract::FromRequestParts<AppState> for StaffApi {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        st: &AppState,
    ) -> Result<Self, ApiError> {
        let user = current_user(st, &parts.headers).await?;
        if !motcua_commands::accounts::is_staff(&user) {
            return Err(ApiError::forbidden());
        }
        Ok(StaffApi(user))
    }
}

/// A one-stop officer calling the API (401 without a live token, 403 for
/// any other role).
#[derive(Debug, Clone)]
pub struct OfficerApi(pub User);

impl axum::extract::FromRequestParts<AppState> for OfficerApi {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        st: &AppState,
    ) -> Result<Self, ApiError> {
        let user = current_user(st, &parts.headers).await?;
        if !has(&user, Role::Officer) {
            return Err(ApiError::forbidden());
        }
        Ok(OfficerApi(user))
    }
}

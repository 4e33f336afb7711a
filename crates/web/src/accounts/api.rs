//! The accounts API: tokens, registration, the caller, and an officer's
//! verification of a national ID number.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use motcua_store::User;

use crate::accounts::views::RegisterRequest;
use crate::accounts::views::TokenRequest;
use crate::accounts::views::TokenResponse;
use crate::accounts::views::UserView;
use crate::accounts::views::VerifiedView;
use crate::accounts::views::VerifyNationalIdRequest;
use crate::kernel::auth::{ApiUser, OfficerApi};
use crate::kernel::body::ApiResult;
use crate::kernel::body::JsonBody;
use crate::kernel::error::ApiError;
use crate::state::AppState;

/// `POST /api/v1/auth/token`
#[utoipa::path(post, path = "/api/v1/auth/token", tag = "auth",
    request_body = TokenRequest,
    responses((status = 200, body = TokenResponse), (status = 401, description = "Wrong user name or password"),
        (status = 422, description = "The body is not a JSON object with `username` and `password`"),
        (status = 429, description = "Too many failed attempts from this address or for this account: try again after `Retry-After` seconds")))]
pub async fn issue_token(
    State(st): State<AppState>,
    client: crate::kernel::throttle::Client,
    JsonBody(req): JsonBody<TokenRequest>,
) -> ApiResult<Json<TokenResponse>> {
    let user = motcua_commands::throttle::password_login(
        &st,
        &req.username,
        &req.password,
        &client.0,
        None,
    )
    .await?;
    let (token, hash) = motcua_commands::accounts::new_token().map_err(ApiError::internal)?;
    let expires_at = st.clock.now() + st.config.token_ttl;
    st.store.create_token(&hash, user.id, expires_at).await?;
    Ok(Json(TokenResponse { token, expires_at }))
}

/// `DELETE /api/v1/auth/token`: revokes the token used for the call.
#[utoipa::path(delete, path = "/api/v1/auth/token", tag = "auth",
    security(("bearer" = [])),
    responses((status = 204, description = "Revoked"), (status = 401)))]
pub async fn revoke_token(State(st): State<AppState>, headers: HeaderMap) -> ApiResult<StatusCode> {
    let token = crate::kernel::auth::bearer(&headers).ok_or_else(ApiError::unauthorized)?;
    if st
        .store
        .revoke_token(&motcua_commands::accounts::token_hash(token))
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::unauthorized())
    }
}

/// `POST /api/v1/auth/register`: a citizen creates an account.
#[utoipa::path(post, path = "/api/v1/auth/register", tag = "auth",
    request_body = RegisterRequest,
    responses((status = 201, body = UserView), (status = 422, description = "Validation errors per field (also a user name that is taken)"),
        (status = 429, description = "Too many accounts opened from this address: try again after `Retry-After` seconds")))]
pub async fn register(
    State(st): State<AppState>,
    client: crate::kernel::throttle::Client,
    JsonBody(req): JsonBody<RegisterRequest>,
) -> ApiResult<(StatusCode, Json<UserView>)> {
    let user = motcua_commands::accounts::register_citizen(
        &st,
        motcua_commands::accounts::Registration {
            username: &req.username,
            password: &req.password,
            full_name: &req.full_name,
            national_id: &req.national_id,
            phone: req.phone.as_deref(),
            email: req.email.as_deref(),
        },
        &client.0,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(user_view(&user))))
}

pub fn user_view(u: &User) -> UserView {
    UserView {
        id: u.id,
        username: u.username.clone(),
        full_name: u.full_name.clone(),
        roles: u.roles.iter().map(|r| r.as_str().to_string()).collect(),
        agency_code: u.agency_code.as_ref().map(|a| a.to_string()),
        national_id_verified: u.verified_national_id().is_some(),
    }
}

/// `POST /api/v1/accounts/{username}/verify-national-id`: a one-stop
/// officer who saw the holder's identity card records the account's
/// national ID number as verified; the applicant's counter dossiers
/// without an account are linked to it (audited).
#[utoipa::path(post, path = "/api/v1/accounts/{username}/verify-national-id", tag = "auth",
    params(("username" = String, Path)),
    request_body = VerifyNationalIdRequest,
    security(("bearer" = [])),
    responses((status = 200, body = VerifiedView), (status = 400), (status = 401), (status = 403, description = "Not a one-stop officer"), (status = 422, description = "Validation errors per field, also an unknown citizen or a number verified for another account")))]
pub async fn verify_national_id(
    State(st): State<AppState>,
    OfficerApi(officer): OfficerApi,
    Path(username): Path<String>,
    JsonBody(req): JsonBody<VerifyNationalIdRequest>,
) -> ApiResult<Json<VerifiedView>> {
    let done = motcua_commands::accounts::verify_citizen(
        &st,
        &officer,
        &username,
        &req.national_id,
        &req.document,
    )
    .await?;
    let v = done
        .user
        .national_id_verified
        .ok_or_else(|| ApiError::internal("verification not recorded"))?;
    Ok(Json(VerifiedView {
        username: done.user.username,
        national_id_verified_at: v.at,
        verified_by: v.by,
        linked_dossiers: done.linked.iter().map(|c| c.to_string()).collect(),
    }))
}

/// `GET /api/v1/me`
#[utoipa::path(get, path = "/api/v1/me", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = UserView), (status = 401)))]
pub async fn me(ApiUser(u): ApiUser) -> ApiResult<Json<UserView>> {
    Ok(Json(user_view(&u)))
}

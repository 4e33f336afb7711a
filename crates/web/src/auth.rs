//! Passwords (argon2), bearer tokens, and the API caller extractor.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::http::{HeaderMap, header};
use motcua_domain::dossier::{Actor, Role};
use motcua_store::User;
use sha2::{Digest, Sha256};

use crate::error::ApiError;

/// Hashes a password with argon2id and a random salt.
pub fn hash_password(password: &str) -> Result<String, String> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| e.to_string())?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A hash that no password matches, used to spend the same time on an
/// unknown user name as on a known one.
pub fn dummy_hash() -> &'static str {
    static H: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    H.get_or_init(|| hash_password("no such user, no such password").unwrap_or_default())
}

/// A new random bearer token (shown once) and the hash we store.
pub fn new_token() -> Result<(String, String), String> {
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw).map_err(|e| e.to_string())?;
    let token = hex::encode(raw);
    let hash = token_hash(&token);
    Ok((token, hash))
}

pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

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
pub async fn current_user(st: &crate::AppState, headers: &HeaderMap) -> Result<User, ApiError> {
    let token = bearer(headers).ok_or_else(ApiError::unauthorized)?;
    st.store
        .token_user(&token_hash(token), st.clock.now())
        .await?
        .ok_or_else(ApiError::unauthorized)
}

pub fn actor_of(u: &User) -> Actor {
    Actor {
        user_id: u.id,
        username: u.username.clone(),
        roles: u.roles.clone(),
        agency: u.agency_code.clone(),
    }
}

pub fn is_staff(u: &User) -> bool {
    u.roles.iter().any(|r| r.is_staff())
}

pub fn has(u: &User, r: Role) -> bool {
    u.roles.contains(&r)
}

/// A caller of the API with a live bearer token; any other request is
/// refused with 401 before its body is read.
#[derive(Debug, Clone)]
pub struct ApiUser(pub User);

impl axum::extract::FromRequestParts<crate::AppState> for ApiUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        st: &crate::AppState,
    ) -> Result<Self, ApiError> {
        current_user(st, &parts.headers).await.map(ApiUser)
    }
}

/// A province administrator calling the API (401 without a live token,
/// 403 for any other role), checked before the body is read.
#[derive(Debug, Clone)]
pub struct ProvinceAdminApi(pub User);

impl axum::extract::FromRequestParts<crate::AppState> for ProvinceAdminApi {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        st: &crate::AppState,
    ) -> Result<Self, ApiError> {
        let user = current_user(st, &parts.headers).await?;
        if !has(&user, Role::ProvinceAdmin) {
            return Err(ApiError::forbidden());
        }
        Ok(ProvinceAdminApi(user))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords() {
        let h = hash_password("motcua-demo").expect("hash");
        assert!(verify_password("motcua-demo", &h));
        assert!(!verify_password("wrong", &h));
    }
}

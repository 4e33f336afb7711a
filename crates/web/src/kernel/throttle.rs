//! The client a request comes from, for the limits of
//! [`motcua_commands::throttle`] (sign-in, registration, guesses), and the
//! answer of a failed sign-in.

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use motcua_commands::CommandError;
use motcua_commands::throttle::LoginError;

use crate::kernel::error::ApiError;
use crate::state::{AppState, ClientAddr};

/// The address a request comes from: the connection's, or, behind a
/// proxy the configuration trusts, the last address it added to
/// `X-Forwarded-For`.
#[derive(Debug, Clone)]
pub struct Client(pub String);

impl FromRequestParts<AppState> for Client {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, ApiError> {
        if st.config.trust_forwarded_for
            && let Some(ip) = parts
                .headers
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .map(str::trim)
                .rfind(|s| s.parse::<std::net::IpAddr>().is_ok())
        {
            return Ok(Client(ip.to_string()));
        }
        let ConnectInfo(ClientAddr(ip)) = ConnectInfo::<ClientAddr>::from_request_parts(parts, st)
            .await
            .map_err(|_| ApiError::internal("no client address"))?;
        Ok(Client(ip))
    }
}

impl From<LoginError> for ApiError {
    fn from(e: LoginError) -> Self {
        match e {
            LoginError::BadCredentials => {
                ApiError::new(axum::http::StatusCode::UNAUTHORIZED, "bad-credentials")
            }
            LoginError::Wait(s) => CommandError::RateLimited(s).into(),
            LoginError::System(e) => e.into(),
        }
    }
}

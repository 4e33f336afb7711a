//! Sign-in with a password, written once for the API and the pages, and
//! the limits that slow guessing down without locking anyone out (the
//! rules are [`motcua_domain::throttle`]; the counters live in the
//! database, so they hold across restarts and nodes).

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use chrono::{DateTime, Utc};
use motcua_domain::throttle::{Count, Gate, Policy};
use motcua_store::{ThrottleState, User};

use crate::error::ApiError;
use crate::{AppState, ClientAddr, auth};

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

/// Why a sign-in failed.
#[derive(Debug)]
pub enum LoginError {
    /// Wrong user name or password (the same answer for both).
    BadCredentials,
    /// Too many failures from this source: try again in this many seconds.
    Wait(u64),
    System(ApiError),
}

impl From<ApiError> for LoginError {
    fn from(e: ApiError) -> Self {
        LoginError::System(e)
    }
}

impl From<motcua_store::StoreError> for LoginError {
    fn from(e: motcua_store::StoreError) -> Self {
        LoginError::System(e.into())
    }
}

impl From<LoginError> for ApiError {
    fn from(e: LoginError) -> Self {
        match e {
            LoginError::BadCredentials => {
                ApiError::new(axum::http::StatusCode::UNAUTHORIZED, "bad-credentials")
            }
            LoginError::Wait(s) => rate_limited(s),
            LoginError::System(e) => e,
        }
    }
}

/// 429 with `Retry-After`.
pub fn rate_limited(seconds: u64) -> ApiError {
    let mut e = ApiError::new(axum::http::StatusCode::TOO_MANY_REQUESTS, "rate-limited");
    e.retry_after = Some(seconds);
    e
}

fn keys(username: &str, client: &str) -> [String; 3] {
    let user = username.trim().to_lowercase();
    [
        format!("login:{user}|{client}"),
        format!("login-ip:{client}"),
        format!("login-user:{user}"),
    ]
}

fn count_of(states: &[ThrottleState], key: &str) -> Option<Count> {
    states.iter().find(|s| s.key == key).map(|s| Count {
        failures: s.failures,
        window_start: s.window_start,
        last_at: s.last_at,
    })
}

/// The mark of a browser that signed in to an account before (a cookie
/// value): the user id and its MAC with the installation's key.
pub async fn browser_mark(st: &AppState, user_id: i64) -> Result<String, ApiError> {
    let id = user_id.to_string();
    Ok(format!(
        "{id}.{}",
        st.server_key().await?.mac("known-browser", &[&id])
    ))
}

async fn knows_browser(st: &AppState, user: Option<&User>, mark: Option<&str>) -> bool {
    let (Some(u), Some(mark)) = (user, mark) else {
        return false;
    };
    match browser_mark(st, u.id).await {
        Ok(expected) => crate::crypto::constant_time_eq(expected.as_bytes(), mark.as_bytes()),
        Err(_) => false,
    }
}

/// Signs `username` in with `password` from `client`: the one place a
/// password is checked. `browser` is the mark of a browser that signed in
/// to the account before, if the request carries one.
pub async fn password_login(
    st: &AppState,
    username: &str,
    password: &str,
    client: &Client,
    browser: Option<&str>,
) -> Result<User, LoginError> {
    let policy = Policy::default();
    let now: DateTime<Utc> = st.clock.now();
    let [pair, address, account] = keys(username, &client.0);
    let keys = [pair.clone(), address.clone(), account.clone()];
    let states = st.store.throttle_read(&keys).await?;
    let user = st.store.user_by_name(username.trim()).await?;
    let known = knows_browser(st, user.as_ref(), browser).await;
    match policy.gate(
        count_of(&states, &pair),
        count_of(&states, &address),
        count_of(&states, &account),
        known,
        now,
    ) {
        Gate::Wait(s) => return Err(LoginError::Wait(s)),
        Gate::Go { slow_down } => {
            if let Ok(d) = slow_down.to_std()
                && !d.is_zero()
            {
                tokio::time::sleep(d).await;
            }
        }
    }
    // The same work for an unknown user name as for a known one.
    let hash = user
        .as_ref()
        .map(|u| u.password_hash.clone())
        .unwrap_or_else(|| auth::dummy_hash().to_string());
    let password = password.to_string();
    let ok = tokio::task::spawn_blocking(move || auth::verify_password(&password, &hash))
        .await
        .map_err(ApiError::internal)?;
    match user {
        Some(u) if ok && !u.disabled => {
            // Idle counters of anyone are dropped on the way.
            st.store
                .throttle_clear(&[pair], now - policy.window * 4)
                .await?;
            Ok(u)
        }
        _ => {
            st.store.throttle_hit(&keys, now, policy.window).await?;
            Err(LoginError::BadCredentials)
        }
    }
}

/// Counts a registration from `client`; `Err` (429) past the limit.
pub async fn registration_gate(st: &AppState, client: &Client) -> Result<(), ApiError> {
    let policy = Policy::default();
    let now = st.clock.now();
    let key = format!("register:{}", client.0);
    let states = st.store.throttle_read(std::slice::from_ref(&key)).await?;
    if let Some(s) = policy.registration_wait(count_of(&states, &key), now) {
        return Err(rate_limited(s));
    }
    st.store
        .throttle_hit(std::slice::from_ref(&key), now, policy.registration_window)
        .await?;
    Ok(())
}

/// Wrong guesses of a secret (a receipt's code) allowed per address and
/// per target in a window before answers wait.
const GUESSES_FREE: u32 = 10;

/// Refuses (429) a guess at `target`'s secret from `client` after too many
/// wrong ones from that address or at that target.
pub async fn guess_gate(st: &AppState, client: &Client, target: &str) -> Result<(), ApiError> {
    let policy = Policy::default();
    let now = st.clock.now();
    let keys = [format!("guess:{target}"), format!("guess-ip:{}", client.0)];
    let states = st.store.throttle_read(&keys).await?;
    let wait = policy.gate(
        count_of(&states, &keys[0]).filter(|c| c.failures >= GUESSES_FREE),
        count_of(&states, &keys[1]).filter(|c| c.failures >= GUESSES_FREE),
        None,
        true,
        now,
    );
    match wait {
        Gate::Wait(s) => Err(rate_limited(s)),
        Gate::Go { .. } => Ok(()),
    }
}

/// Counts a wrong guess at `target`'s secret from `client`.
pub async fn guess_failed(st: &AppState, client: &Client, target: &str) -> Result<(), ApiError> {
    let policy = Policy::default();
    let keys = [format!("guess:{target}"), format!("guess-ip:{}", client.0)];
    st.store
        .throttle_hit(&keys, st.clock.now(), policy.window)
        .await?;
    Ok(())
}

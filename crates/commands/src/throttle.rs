//! Sign-in with a password, written once for the API and the pages, and
//! the limits that slow guessing down without locking anyone out (the
//! rules are [`motcua_domain::throttle`]; the counters live in the
//! database, so they hold across restarts and nodes). A client is the
//! address a request came from, as the HTTP layer determined it.

use chrono::{DateTime, Utc};
use motcua_domain::throttle::{Count, Gate, Policy};
use motcua_store::{ThrottleState, User};

use crate::App;
use crate::accounts::{dummy_hash, verify_password};
use crate::error::{CommandError, CommandResult};

/// Why a sign-in failed.
#[derive(Debug)]
pub enum LoginError {
    /// Wrong user name or password (the same answer for both).
    BadCredentials,
    /// Too many failures from this source: try again in this many seconds.
    Wait(u64),
    System(CommandError),
}

impl From<CommandError> for LoginError {
    fn from(e: CommandError) -> Self {
        LoginError::System(e)
    }
}

impl From<motcua_store::StoreError> for LoginError {
    fn from(e: motcua_store::StoreError) -> Self {
        LoginError::System(e.into())
    }
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
pub async fn browser_mark(st: &App, user_id: i64) -> CommandResult<String> {
    let id = user_id.to_string();
    Ok(format!(
        "{id}.{}",
        st.server_key().await?.mac("known-browser", &[&id])
    ))
}

async fn knows_browser(st: &App, user: Option<&User>, mark: Option<&str>) -> bool {
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
    st: &App,
    username: &str,
    password: &str,
    client: &str,
    browser: Option<&str>,
) -> Result<User, LoginError> {
    let policy = Policy::default();
    let now: DateTime<Utc> = st.clock.now();
    let [pair, address, account] = keys(username, client);
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
        .unwrap_or_else(|| dummy_hash().to_string());
    let password = password.to_string();
    let ok = tokio::task::spawn_blocking(move || verify_password(&password, &hash))
        .await
        .map_err(CommandError::internal)?;
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
pub async fn registration_gate(st: &App, client: &str) -> CommandResult<()> {
    let policy = Policy::default();
    let now = st.clock.now();
    let key = format!("register:{}", client);
    let states = st.store.throttle_read(std::slice::from_ref(&key)).await?;
    if let Some(s) = policy.registration_wait(count_of(&states, &key), now) {
        return Err(CommandError::RateLimited(s));
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
pub async fn guess_gate(st: &App, client: &str, target: &str) -> CommandResult<()> {
    let policy = Policy::default();
    let now = st.clock.now();
    let keys = [format!("guess:{target}"), format!("guess-ip:{}", client)];
    let states = st.store.throttle_read(&keys).await?;
    let wait = policy.gate(
        count_of(&states, &keys[0]).filter(|c| c.failures >= GUESSES_FREE),
        count_of(&states, &keys[1]).filter(|c| c.failures >= GUESSES_FREE),
        None,
        true,
        now,
    );
    match wait {
        Gate::Wait(s) => Err(CommandError::RateLimited(s)),
        Gate::Go { .. } => Ok(()),
    }
}

/// Counts a wrong guess at `target`'s secret from `client`.
pub async fn guess_failed(st: &App, client: &str, target: &str) -> CommandResult<()> {
    let policy = Policy::default();
    let keys = [format!("guess:{target}"), format!("guess-ip:{}", client)];
    st.store
        .throttle_hit(&keys, st.clock.now(), policy.window)
        .await?;
    Ok(())
}

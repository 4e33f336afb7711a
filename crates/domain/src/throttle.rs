//! How failed sign-ins slow their source down without locking anyone out.
//!
//! Failures are counted in a window under three keys: the (account,
//! address) pair, the address, and the account. Past a free allowance, a
//! pair or an address must wait before its next attempt, twice as long
//! after each further failure (capped). The account key never blocks: an
//! account that many sources failed on only makes each attempt from a
//! browser it does not know take a few seconds longer, so its owner still
//! signs in with the right password — and a commune office behind one
//! address keeps working while one person mistypes.

use chrono::{DateTime, Duration, Utc};

/// The limits (the defaults suit a commune office of a few dozen people
/// behind one address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// How long failures are remembered.
    pub window: Duration,
    /// Failures of one account from one address before waits begin.
    pub pair_free: u32,
    /// Failures from one address (any account) before waits begin.
    pub address_free: u32,
    /// Failures on one account (any address) before attempts from unknown
    /// browsers are slowed down.
    pub account_free: u32,
    /// The longest wait.
    pub max_wait: Duration,
    /// The slow-down of an attempt on an account under attack.
    pub slow_down: Duration,
    /// Registrations from one address in `registration_window`.
    pub registrations: u32,
    pub registration_window: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            window: Duration::minutes(15),
            pair_free: 5,
            address_free: 200,
            account_free: 10,
            max_wait: Duration::minutes(15),
            slow_down: Duration::seconds(2),
            registrations: 10,
            registration_window: Duration::hours(1),
        }
    }
}

/// Failures counted under one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Count {
    pub failures: u32,
    pub window_start: DateTime<Utc>,
    pub last_at: DateTime<Utc>,
}

/// What a sign-in attempt must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Go ahead, after `slow_down` (zero unless the account is under
    /// attack and the browser is not one it signed in from).
    Go { slow_down: Duration },
    /// Try again in this many seconds.
    Wait(u64),
}

impl Policy {
    fn live(&self, c: Option<Count>, now: DateTime<Utc>) -> Option<Count> {
        c.filter(|c| c.window_start + self.window > now)
    }

    /// Seconds still to wait after `c`, with `free` failures allowed.
    fn wait(&self, c: Option<Count>, free: u32, now: DateTime<Utc>) -> Option<u64> {
        let c = self.live(c, now)?;
        if c.failures < free {
            return None;
        }
        let doublings = (c.failures - free).min(20);
        let wait = Duration::seconds(1i64 << doublings).min(self.max_wait);
        let left = c.last_at + wait - now;
        (left > Duration::zero()).then(|| left.num_seconds().max(1) as u64)
    }

    /// The gate of an attempt, from the counts of its pair, address and
    /// account, and whether the browser signed in to the account before.
    pub fn gate(
        &self,
        pair: Option<Count>,
        address: Option<Count>,
        account: Option<Count>,
        known_browser: bool,
        now: DateTime<Utc>,
    ) -> Gate {
        let waits = [
            self.wait(pair, self.pair_free, now),
            self.wait(address, self.address_free, now),
        ];
        if let Some(w) = waits.into_iter().flatten().max() {
            return Gate::Wait(w);
        }
        let attacked = self
            .live(account, now)
            .is_some_and(|c| c.failures >= self.account_free);
        Gate::Go {
            slow_down: if attacked && !known_browser {
                self.slow_down
            } else {
                Duration::zero()
            },
        }
    }

    /// Seconds to wait before registering again from an address, if any.
    pub fn registration_wait(&self, c: Option<Count>, now: DateTime<Utc>) -> Option<u64> {
        let c = c.filter(|c| c.window_start + self.registration_window > now)?;
        (c.failures >= self.registrations).then(|| {
            (c.window_start + self.registration_window - now)
                .num_seconds()
                .max(1) as u64
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap_or_default()
    }

    fn count(failures: u32, last: i64) -> Option<Count> {
        Some(Count {
            failures,
            window_start: at(0),
            last_at: at(last),
        })
    }

    const GO: Gate = Gate::Go {
        slow_down: Duration::zero(),
    };

    #[test]
    fn a_pair_waits_longer_after_each_failure() {
        let p = Policy::default();
        assert_eq!(p.gate(count(4, 10), None, None, false, at(10)), GO);
        assert_eq!(
            p.gate(count(5, 10), None, None, false, at(10)),
            Gate::Wait(1)
        );
        assert_eq!(
            p.gate(count(8, 10), None, None, false, at(10)),
            Gate::Wait(8)
        );
        assert_eq!(p.gate(count(8, 10), None, None, false, at(18)), GO);
        // Capped at the longest wait.
        assert_eq!(
            p.gate(count(60, 10), None, None, false, at(10)),
            Gate::Wait(900)
        );
        // Forgotten once the window is over.
        assert_eq!(p.gate(count(60, 10), None, None, false, at(901)), GO);
    }

    #[test]
    fn an_office_behind_one_address_keeps_working() {
        let p = Policy::default();
        // One colleague mistyped 30 times: the address has 30 failures.
        assert_eq!(p.gate(None, count(30, 5), None, false, at(5)), GO);
        assert!(matches!(
            p.gate(None, count(200, 5), None, false, at(5)),
            Gate::Wait(_)
        ));
    }

    #[test]
    fn an_attacked_account_slows_down_unknown_browsers_only() {
        let p = Policy::default();
        let slow = Gate::Go {
            slow_down: p.slow_down,
        };
        assert_eq!(p.gate(None, None, count(50, 5), false, at(6)), slow);
        assert_eq!(p.gate(None, None, count(50, 5), true, at(6)), GO);
        assert_eq!(p.gate(None, None, count(9, 5), false, at(6)), GO);
    }

    #[test]
    fn registrations_are_limited_per_address() {
        let p = Policy::default();
        assert_eq!(p.registration_wait(count(9, 1), at(2)), None);
        assert_eq!(p.registration_wait(count(10, 1), at(100)), Some(3500));
        assert_eq!(p.registration_wait(count(10, 1), at(3601)), None);
    }
}

//! How long to wait before another attempt, and how many there may be.
//!
//! Which failures are worth another attempt is not judged here: the
//! deploy child judges its own failure from its typed errors
//! (`engine::failure`) and says so in its `error` event's
//! `transient` field; the queue retries only those. A deploy's warnings on
//! stderr are never judged: a warning about a slow registry must not turn
//! a config error into a retry.

use std::time::Duration;

/// How a server retries transient failures (`[queue] retries`, `backoff`,
/// `max_backoff` in soar-server.toml).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Further attempts after the first one fails transiently (0: none).
    pub retries: u32,
    /// The wait before the first retry; doubled before each next one.
    pub backoff: Duration,
    /// The longest wait between two attempts.
    pub max_backoff: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            retries: 2,
            backoff: Duration::from_secs(2),
            max_backoff: Duration::from_secs(60),
        }
    }
}

impl Policy {
    /// The wait after failed attempt number `attempt` (1 = the first):
    /// `backoff * 2^(attempt-1)`, at most `max_backoff`.
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempt.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.backoff
            .checked_mul(factor)
            .unwrap_or(self.max_backoff)
            .min(self.max_backoff)
    }

    /// Whether a job that has made `attempts` attempts may make another.
    pub fn allows_another(&self, attempts: u32) -> bool {
        attempts <= self.retries
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let p = Policy {
            retries: 3,
            backoff: Duration::from_secs(2),
            max_backoff: Duration::from_secs(5),
        };
        let waits: Vec<u64> = (1..=4).map(|n| p.delay(n).as_secs()).collect();
        assert_eq!(waits, [2, 4, 5, 5]);
        assert_eq!(p.delay(200), Duration::from_secs(5));
        assert!(p.allows_another(1) && p.allows_another(3) && !p.allows_another(4));
        let none = Policy {
            retries: 0,
            ..Policy::default()
        };
        assert!(!none.allows_another(1));
    }
}

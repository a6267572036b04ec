//! When to try a deferred message again, and when to give up: exponential backoff between a first and a
//! largest delay, in the spirit of Postfix (`minimal_backoff_time` 300 s, `maximal_backoff_time` 4000 s,
//! `maximal_queue_lifetime` 5 d).

use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Delay after the first failed attempt.
    pub first: Duration,
    /// The delay doubles after each attempt up to this.
    pub max: Duration,
    /// A message still undelivered this long after it was accepted fails.
    pub give_up_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            first: Duration::from_secs(5 * 60),
            max: Duration::from_secs(60 * 60),
            give_up_after: Duration::from_secs(5 * 24 * 3600),
        }
    }
}

impl RetryPolicy {
    /// The delay after `attempts` failed attempts (1 for the first).
    pub fn delay(&self, attempts: u32) -> Duration {
        doubling(self.first, self.max, attempts)
    }

    /// Whether a message accepted `age` ago has been tried long enough.
    pub fn expired(&self, age: Duration) -> bool {
        age >= self.give_up_after
    }
}

/// `first`, doubled after each of `n` − 1 failures, at most `max`.
pub fn doubling(first: Duration, max: Duration, n: u32) -> Duration {
    let doublings = n.saturating_sub(1).min(30);
    first.saturating_mul(1u32 << doublings).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_first_to_max() {
        let p = RetryPolicy::default();
        let minutes: Vec<u64> = (1..=7).map(|n| p.delay(n).as_secs() / 60).collect();
        assert_eq!(minutes, [5, 10, 20, 40, 60, 60, 60]);
        assert_eq!(p.delay(0), p.first);
        assert_eq!(p.delay(u32::MAX), p.max, "no overflow");
    }

    #[test]
    fn gives_up_after_the_lifetime() {
        let p = RetryPolicy {
            first: Duration::from_secs(1),
            max: Duration::from_secs(2),
            give_up_after: Duration::from_secs(10),
        };
        assert!(!p.expired(Duration::from_secs(9)));
        assert!(p.expired(Duration::from_secs(10)));
    }
}

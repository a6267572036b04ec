//! Protection per client address: authentication attempts are counted before the password is checked (a
//! lockout after repeated failures, and no more attempts at once than failures are left), and messages are
//! limited per minute. Kept in memory, for as long as the gateway runs: a restart forgives, a change of its
//! settings does not.
//!
//! The rate is a sliding-window counter (this minute's count plus the previous minute's, weighted by how much
//! of it the window still covers): constant memory and time per address, whatever the limit.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::Mutex,
    time::{Duration, Instant},
};
use tidings_app::attempts::{Attempt, Attempts, Limit, Refusal};

/// Messages counted in the current fixed minute and the one before it.
#[derive(Debug)]
struct Rate {
    window_start: Instant,
    current: u32,
    previous: u32,
}

impl Default for Rate {
    fn default() -> Self {
        Self { window_start: Instant::now(), current: 0, previous: 0 }
    }
}

impl Rate {
    /// Messages in the minute before `now`, estimated.
    fn in_last_minute(&mut self, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(self.window_start);
        if elapsed >= 2 * MINUTE {
            *self = Rate { window_start: now, current: 0, previous: 0 };
        } else if elapsed >= MINUTE {
            self.previous = self.current;
            self.current = 0;
            self.window_start += MINUTE;
        }
        let into = now.saturating_duration_since(self.window_start).as_secs_f64() / MINUTE.as_secs_f64();
        f64::from(self.previous) * (1.0 - into).max(0.0) + f64::from(self.current)
    }

    fn idle(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.window_start) >= 2 * MINUTE || (self.current == 0 && self.previous == 0)
    }
}

#[derive(Debug, Default)]
pub struct Guard {
    auth: Attempts<IpAddr>,
    rates: Mutex<HashMap<IpAddr, Rate>>,
}

const MINUTE: Duration = Duration::from_secs(60);

impl Guard {
    /// Whether the address is locked out now.
    pub fn locked(&self, ip: IpAddr) -> bool {
        self.auth.locked(&ip)
    }

    /// Admits one authentication attempt from `ip`, counted before its password is checked; beyond the
    /// failures left, it waits up to `wait` for one under way to settle.
    pub async fn begin_auth(
        &self,
        ip: IpAddr,
        max: u32,
        lockout: Duration,
        wait: Duration,
    ) -> Result<Attempt<'_, IpAddr>, Refusal> {
        self.auth.begin(ip, Limit { max, lockout }, wait).await
    }

    /// Counts a message; false when the address sent `per_minute` already in the last minute.
    pub fn message_allowed(&self, ip: IpAddr, per_minute: u32) -> bool {
        let now = Instant::now();
        let mut rates = self.rates.lock().unwrap_or_else(|e| e.into_inner());
        if rates.len() > 10_000 {
            rates.retain(|_, r| !r.idle(now));
        }
        let rate = rates.entry(ip).or_default();
        if rate.in_last_minute(now) >= f64::from(per_minute) {
            false
        } else {
            rate.current += 1;
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lockout_and_rate() {
        let g = Guard::default();
        let ip: IpAddr = [127, 0, 0, 1].into();
        let wait = Duration::ZERO;
        for _ in 0..2 {
            assert!(!g.begin_auth(ip, 3, MINUTE, wait).await.expect("admitted").failed());
        }
        assert!(g.begin_auth(ip, 3, MINUTE, wait).await.expect("admitted").failed() && g.locked(ip));
        assert_eq!(g.begin_auth(ip, 3, MINUTE, wait).await.err(), Some(Refusal::Locked));
        assert!(!g.locked([127, 0, 0, 2].into()));
        assert!(g.message_allowed(ip, 2) && g.message_allowed(ip, 2) && !g.message_allowed(ip, 2));
    }

    #[test]
    fn the_window_slides() {
        let start = Instant::now();
        let mut rate = Rate { window_start: start, current: 60, previous: 0 };
        assert_eq!(rate.in_last_minute(start + Duration::from_secs(30)), 60.0);
        // Half a minute into the next window, half of the previous minute still counts.
        assert_eq!(rate.in_last_minute(start + Duration::from_secs(90)), 30.0);
        assert_eq!((rate.previous, rate.current), (60, 0));
        assert_eq!(rate.in_last_minute(start + Duration::from_secs(200)), 0.0);
        assert!(rate.idle(start + Duration::from_secs(200)));
    }
}

//! Protection per client address: authentication failures lead to a temporary lockout, and messages are
//! limited per minute. Kept in memory: a restart forgives.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::Mutex,
    time::{Duration, Instant},
};

#[derive(Debug, Default)]
struct Entry {
    failures: Vec<Instant>,
    locked_until: Option<Instant>,
    messages: Vec<Instant>,
}

#[derive(Debug, Default)]
pub struct Guard {
    entries: Mutex<HashMap<IpAddr, Entry>>,
}

const MINUTE: Duration = Duration::from_secs(60);

impl Guard {
    fn with<T>(&self, ip: IpAddr, f: impl FnOnce(&mut Entry, Instant) -> T) -> T {
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() > 10_000 {
            entries
                .retain(|_, e| e.locked_until.is_some_and(|u| u > now) || e.messages.iter().any(|t| now - *t < MINUTE));
        }
        f(entries.entry(ip).or_default(), now)
    }

    /// Whether the address is locked out now.
    pub fn locked(&self, ip: IpAddr) -> bool {
        self.with(ip, |e, now| e.locked_until.is_some_and(|u| u > now))
    }

    /// Counts a failed authentication; true when the address is now locked out.
    pub fn auth_failed(&self, ip: IpAddr, max: u32, lockout: Duration) -> bool {
        self.with(ip, |e, now| {
            e.failures.retain(|t| now - *t < lockout);
            e.failures.push(now);
            if e.failures.len() >= max as usize {
                e.failures.clear();
                e.locked_until = Some(now + lockout);
                true
            } else {
                false
            }
        })
    }

    pub fn auth_succeeded(&self, ip: IpAddr) {
        self.with(ip, |e, _| e.failures.clear());
    }

    /// Counts a message; false when the address sent `per_minute` already in the last minute.
    pub fn message_allowed(&self, ip: IpAddr, per_minute: u32) -> bool {
        self.with(ip, |e, now| {
            e.messages.retain(|t| now - *t < MINUTE);
            if e.messages.len() >= per_minute as usize {
                false
            } else {
                e.messages.push(now);
                true
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lockout_and_rate() {
        let g = Guard::default();
        let ip: IpAddr = [127, 0, 0, 1].into();
        assert!(!g.auth_failed(ip, 3, MINUTE) && !g.auth_failed(ip, 3, MINUTE));
        assert!(g.auth_failed(ip, 3, MINUTE) && g.locked(ip));
        assert!(!g.locked([127, 0, 0, 2].into()));
        assert!(g.message_allowed(ip, 2) && g.message_allowed(ip, 2) && !g.message_allowed(ip, 2));
    }
}

//! Counting guesses before they are checked: failed attempts per key (a client address) lead to a lockout,
//! and an attempt in progress counts against the limit like a failure until it settles. However many attempts
//! arrive at the same moment, no key gets more checks than its limit allows. Kept in memory: a restart forgives.

use std::{
    collections::HashMap,
    hash::Hash,
    sync::Mutex,
    time::{Duration, Instant},
};

/// How many failures a key may have within `lockout`, and how long it is then refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit {
    pub max: u32,
    pub lockout: Duration,
}

/// Why an attempt was not admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The key is locked out after too many failures.
    Locked,
    /// Failures and attempts in progress already reach the limit: this one would be a guess too many.
    TooManyAtOnce,
}

#[derive(Debug, Default)]
struct Entry {
    failures: Vec<Instant>,
    in_progress: u32,
    locked_until: Option<Instant>,
}

impl Entry {
    fn forget_old(&mut self, now: Instant, lockout: Duration) {
        self.failures.retain(|t| now.saturating_duration_since(*t) < lockout);
        if self.locked_until.is_some_and(|u| u <= now) {
            self.locked_until = None;
        }
    }

    fn idle(&self, now: Instant) -> bool {
        self.in_progress == 0 && self.failures.is_empty() && self.locked_until.is_none_or(|u| u <= now)
    }
}

/// The most keys remembered; idle ones are dropped beyond it.
const MAX_KEYS: usize = 10_000;

/// Attempts by key.
#[derive(Debug)]
pub struct Attempts<K> {
    entries: Mutex<HashMap<K, Entry>>,
}

impl<K> Default for Attempts<K> {
    fn default() -> Self {
        Self { entries: Mutex::new(HashMap::new()) }
    }
}

impl<K: Hash + Eq + Clone> Attempts<K> {
    fn with<T>(&self, key: &K, f: impl FnOnce(&mut Entry, Instant) -> T) -> T {
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() > MAX_KEYS {
            entries.retain(|_, e| !e.idle(now));
        }
        f(entries.entry(key.clone()).or_default(), now)
    }

    /// Admits one attempt for `key`, counted until it settles; refused when locked out or when the failures and
    /// the attempts in progress already reach `limit.max`.
    pub fn begin(&self, key: K, limit: Limit) -> Result<Attempt<'_, K>, Refusal> {
        self.with(&key, |e, now| {
            e.forget_old(now, limit.lockout);
            if e.locked_until.is_some() {
                return Err(Refusal::Locked);
            }
            if e.failures.len() as u64 + u64::from(e.in_progress) >= u64::from(limit.max.max(1)) {
                return Err(Refusal::TooManyAtOnce);
            }
            e.in_progress += 1;
            Ok(())
        })?;
        Ok(Attempt { attempts: self, key, limit, settled: false })
    }

    /// Whether `key` is locked out now.
    pub fn locked(&self, key: &K) -> bool {
        self.with(key, |e, now| e.locked_until.is_some_and(|u| u > now))
    }

    fn settle(&self, key: &K, failed: bool, limit: Limit) -> bool {
        self.with(key, |e, now| {
            e.in_progress = e.in_progress.saturating_sub(1);
            if !failed {
                e.failures.clear();
                return false;
            }
            e.forget_old(now, limit.lockout);
            e.failures.push(now);
            if e.failures.len() >= limit.max.max(1) as usize {
                e.failures.clear();
                e.locked_until = Some(now + limit.lockout);
                true
            } else {
                false
            }
        })
    }
}

/// One admitted attempt. Settle it with [`Attempt::failed`] or [`Attempt::succeeded`]; dropped unsettled (the
/// client went away, the check could not run), it counts as neither.
#[derive(Debug)]
pub struct Attempt<'a, K: Hash + Eq + Clone> {
    attempts: &'a Attempts<K>,
    key: K,
    limit: Limit,
    settled: bool,
}

impl<K: Hash + Eq + Clone> Attempt<'_, K> {
    /// Counts a failure; true when the key is now locked out.
    pub fn failed(mut self) -> bool {
        self.settled = true;
        self.attempts.settle(&self.key, true, self.limit)
    }

    /// The credentials were right: the key's failures are forgiven.
    pub fn succeeded(mut self) {
        self.settled = true;
        self.attempts.settle(&self.key, false, self.limit);
    }
}

impl<K: Hash + Eq + Clone> Drop for Attempt<'_, K> {
    fn drop(&mut self) {
        if !self.settled {
            self.attempts.with(&self.key, |e, _| e.in_progress = e.in_progress.saturating_sub(1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: Limit = Limit { max: 3, lockout: Duration::from_secs(60) };

    #[test]
    fn attempts_in_progress_count_against_the_limit() {
        let a = Attempts::default();
        let held: Vec<_> = (0..3).map(|_| a.begin("ip", LIMIT).expect("within the limit")).collect();
        assert_eq!(a.begin("ip", LIMIT).err(), Some(Refusal::TooManyAtOnce), "a fourth guess at once");
        assert!(a.begin("other", LIMIT).is_ok(), "another key is not affected");
        let locked: Vec<bool> = held.into_iter().map(Attempt::failed).collect();
        assert_eq!(locked, [false, false, true], "the third failure locks");
        assert_eq!(a.begin("ip", LIMIT).err(), Some(Refusal::Locked));
        assert!(a.locked(&"ip"));
    }

    #[test]
    fn success_forgives_and_an_unsettled_attempt_counts_as_nothing() {
        let a = Attempts::default();
        assert!(!a.begin("ip", LIMIT).expect("first").failed());
        drop(a.begin("ip", LIMIT).expect("abandoned"));
        a.begin("ip", LIMIT).expect("right password").succeeded();
        for _ in 0..2 {
            assert!(!a.begin("ip", LIMIT).expect("after success").failed());
        }
        assert!(a.begin("ip", LIMIT).expect("third").failed());
    }

    #[test]
    fn many_threads_at_once_get_no_more_than_the_limit() {
        let a = std::sync::Arc::new(Attempts::default());
        let admitted = std::sync::atomic::AtomicU32::new(0);
        std::thread::scope(|s| {
            for _ in 0..32 {
                s.spawn(|| {
                    if let Ok(attempt) = a.begin("ip", LIMIT) {
                        admitted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(20));
                        attempt.failed();
                    }
                });
            }
        });
        assert_eq!(admitted.into_inner(), 3);
        assert!(a.locked(&"ip"));
    }
}

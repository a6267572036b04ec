//! Counting guesses before they are checked: failed attempts per key (a client address) lead to a lockout,
//! and an attempt in progress counts against the limit like a failure until it settles. However many attempts
//! arrive at the same moment, no key gets more checks than its limit allows: those beyond it wait for one in
//! progress to settle (a burst of right passwords from one print server goes through, a few at a time), and
//! are refused once the key is locked or after their wait. Kept in memory: a restart forgives.

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
    /// Woken whenever an attempt settles, for those waiting for room.
    settled: tokio::sync::Notify,
}

impl<K> Default for Attempts<K> {
    fn default() -> Self {
        Self { entries: Mutex::new(HashMap::new()), settled: tokio::sync::Notify::new() }
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

    /// Admits one attempt for `key`, counted until it settles. Refused when locked out; while the failures and
    /// the attempts in progress reach `limit.max`, it waits for one to settle, up to `wait`.
    pub async fn begin(&self, key: K, limit: Limit, wait: Duration) -> Result<Attempt<'_, K>, Refusal> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let settled = self.settled.notified();
            tokio::pin!(settled);
            settled.as_mut().enable();
            let admitted = self.with(&key, |e, now| {
                e.forget_old(now, limit.lockout);
                if e.locked_until.is_some() {
                    return Err(Refusal::Locked);
                }
                if e.failures.len() as u64 + u64::from(e.in_progress) >= u64::from(limit.max.max(1)) {
                    return Ok(false);
                }
                e.in_progress += 1;
                Ok(true)
            })?;
            if admitted {
                return Ok(Attempt { attempts: self, key, limit, settled: false });
            }
            if tokio::time::timeout_at(deadline, settled).await.is_err() {
                return Err(Refusal::TooManyAtOnce);
            }
        }
    }

    /// Whether `key` is locked out now.
    pub fn locked(&self, key: &K) -> bool {
        self.with(key, |e, now| e.locked_until.is_some_and(|u| u > now))
    }

    fn settle(&self, key: &K, failed: bool, limit: Limit) -> bool {
        let locked = self.with(key, |e, now| {
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
        });
        self.settled.notify_waiters();
        locked
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
            self.attempts.settled.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: Limit = Limit { max: 3, lockout: Duration::from_secs(60) };
    const NO_WAIT: Duration = Duration::ZERO;

    #[tokio::test]
    async fn attempts_in_progress_count_against_the_limit() {
        let a = Attempts::default();
        let mut held = Vec::new();
        for _ in 0..3 {
            held.push(a.begin("ip", LIMIT, NO_WAIT).await.expect("within the limit"));
        }
        assert_eq!(a.begin("ip", LIMIT, NO_WAIT).await.err(), Some(Refusal::TooManyAtOnce), "a fourth guess at once");
        assert!(a.begin("other", LIMIT, NO_WAIT).await.is_ok(), "another key is not affected");
        let locked: Vec<bool> = held.into_iter().map(Attempt::failed).collect();
        assert_eq!(locked, [false, false, true], "the third failure locks");
        assert_eq!(a.begin("ip", LIMIT, NO_WAIT).await.err(), Some(Refusal::Locked));
        assert!(a.locked(&"ip"));
    }

    #[tokio::test]
    async fn success_forgives_and_an_unsettled_attempt_counts_as_nothing() {
        let a = Attempts::default();
        assert!(!a.begin("ip", LIMIT, NO_WAIT).await.expect("first").failed());
        drop(a.begin("ip", LIMIT, NO_WAIT).await.expect("abandoned"));
        a.begin("ip", LIMIT, NO_WAIT).await.expect("right password").succeeded();
        for _ in 0..2 {
            assert!(!a.begin("ip", LIMIT, NO_WAIT).await.expect("after success").failed());
        }
        assert!(a.begin("ip", LIMIT, NO_WAIT).await.expect("third").failed());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_at_once_get_no_more_than_the_limit_and_honest_ones_wait_their_turn() {
        let a = std::sync::Arc::new(Attempts::default());
        let checked = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let run = |right: bool| {
            let (a, checked) = (a.clone(), checked.clone());
            tokio::spawn(async move {
                let attempt = a.begin("ip", LIMIT, Duration::from_secs(30)).await?;
                checked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(10)).await;
                if right {
                    attempt.succeeded()
                } else {
                    attempt.failed();
                }
                Ok::<_, Refusal>(())
            })
        };
        // Thirty right passwords at once: all checked, at most three at a time.
        let honest: Vec<_> = (0..30).map(|_| run(true)).collect();
        for task in honest {
            assert_eq!(task.await.unwrap(), Ok(()));
        }
        assert_eq!(checked.swap(0, std::sync::atomic::Ordering::SeqCst), 30);
        // Thirty-two wrong ones at once: three checked, the others refused once the key is locked.
        let guesses: Vec<_> = (0..32).map(|_| run(false)).collect();
        let mut refused = 0;
        for task in guesses {
            refused += usize::from(task.await.unwrap() == Err(Refusal::Locked));
        }
        assert_eq!((checked.load(std::sync::atomic::Ordering::SeqCst), refused), (3, 29));
        assert!(a.locked(&"ip"));
    }
}

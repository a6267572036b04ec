//! Checking passwords against argon2id hashes without letting a burst exhaust the machine.
//!
//! An argon2id verification takes tens of milliseconds of CPU and about 19 MB of memory by design. Three rules
//! keep any number of concurrent checks within a fixed bound:
//! - at most [`CheckOptions::concurrent`] hashes run at once, each on a hashing thread of its own that keeps
//!   its 19 MB buffer for the next check and gives it back after [`CheckOptions::release_after`] without one
//!   (allocating it anew per check on the runtime's blocking threads left up to 19 MB in each thread's
//!   allocator arena: 40 sequential checks kept 120 MB); a check waits up to [`CheckOptions::wait`] for its
//!   turn, then is refused as [`Error::Busy`] (the gateway answers `421`, the web `429`);
//! - the same credentials presented by several sessions at the same moment are verified once, for all of them;
//! - a verified (user, password, stored hash) triple of a device account is remembered as a keyed SHA-256 (the
//!   key is random per process), so that later sessions with the same password cost a hash, not a key
//!   derivation. A changed password changes the stored hash, which invalidates the entry.

use crate::{Error, Result, accounts::verify_password_in};
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};
use tidings_core::secret::SecretString;
use tokio::sync::{OnceCell, OwnedSemaphorePermit, Semaphore};

/// The most remembered verifications; the set starts over when full.
const REMEMBERED: usize = 4096;

/// How many password hashes may run at once, how long a check waits for its turn, and how long a hashing
/// thread keeps its buffer without a check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckOptions {
    pub concurrent: usize,
    pub wait: Duration,
    pub release_after: Duration,
}

impl Default for CheckOptions {
    fn default() -> Self {
        Self { concurrent: 2, wait: Duration::from_secs(10), release_after: Duration::from_secs(30) }
    }
}

/// A password to check against a hash, where the answer goes, and the turn it holds until the hash is done
/// (whether or not anyone still waits for the answer).
type Job = (SecretString, String, tokio::sync::oneshot::Sender<bool>, OwnedSemaphorePermit);

/// The hashing threads, started when first needed; one per hash allowed at once.
#[derive(Debug, Default)]
struct Hashers {
    idle: Mutex<Vec<std::sync::mpsc::Sender<Job>>>,
}

impl Hashers {
    /// Checks on an idle hashing thread (the caller holds a turn, so one is idle or may be started).
    async fn check(
        &self,
        password: SecretString,
        hash: String,
        turn: OwnedSemaphorePermit,
        release_after: Duration,
    ) -> bool {
        let thread = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let thread = match thread {
            Some(thread) => thread,
            None => match spawn_hasher(release_after) {
                Some(thread) => thread,
                None => return false,
            },
        };
        let (reply, answer) = tokio::sync::oneshot::channel();
        if thread.send((password, hash, reply, turn)).is_err() {
            return false;
        }
        let valid = answer.await.unwrap_or(false);
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).push(thread);
        valid
    }
}

fn spawn_hasher(release_after: Duration) -> Option<std::sync::mpsc::Sender<Job>> {
    let (jobs, receive) = std::sync::mpsc::channel::<Job>();
    let started = std::thread::Builder::new().name("tidings-hash".into()).spawn(move || {
        let mut blocks = Vec::new();
        loop {
            match receive.recv_timeout(release_after) {
                Ok((password, hash, reply, _turn)) => {
                    let _ = reply.send(verify_password_in(&password, &hash, &mut blocks));
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => blocks = Vec::new(),
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
            }
        }
    });
    match started {
        Ok(_) => Some(jobs),
        Err(e) => {
            tracing::error!(error = %e, "cannot start a password hashing thread");
            None
        }
    }
}

type Key = [u8; 32];

/// The password checks of this process.
#[derive(Debug)]
pub struct PasswordChecks {
    options: CheckOptions,
    /// Turns to hash, each held by its job until the hash is done: a caller that goes away mid-check does not
    /// free its turn early.
    hashing: Arc<Semaphore>,
    /// Checks under way, by credentials: later arrivals wait for the same outcome.
    in_progress: Mutex<HashMap<Key, Arc<OnceCell<bool>>>>,
    /// Device credentials verified before.
    remembered: Mutex<HashSet<Key>>,
    /// Hashes computed, for the metrics.
    hashes: AtomicU64,
    hashers: Hashers,
}

impl Default for PasswordChecks {
    fn default() -> Self {
        Self::new(CheckOptions::default())
    }
}

fn process_key() -> &'static [u8; 32] {
    static KEY: OnceLock<[u8; 32]> = OnceLock::new();
    KEY.get_or_init(|| {
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        key
    })
}

fn fingerprint(username: &str, password: &str, hash: &str) -> Key {
    let mut h = Sha256::new();
    h.update(process_key());
    for part in [username.to_lowercase().as_bytes(), password.as_bytes(), hash.as_bytes()] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    h.finalize().into()
}

impl PasswordChecks {
    pub fn new(options: CheckOptions) -> Self {
        Self {
            options,
            hashing: Arc::new(Semaphore::new(options.concurrent.max(1))),
            in_progress: Mutex::default(),
            remembered: Mutex::default(),
            hashes: AtomicU64::new(0),
            hashers: Hashers::default(),
        }
    }

    /// How long a check waits for its turn (and an attempt for room within its address's limit).
    pub fn wait(&self) -> Duration {
        self.options.wait
    }

    /// How many hashes this process computed.
    pub fn hashes(&self) -> u64 {
        self.hashes.load(Ordering::Relaxed)
    }

    /// Whether `password` is `username`'s, given its stored `hash`. With `remember`, a success is remembered for
    /// later checks of the same triple.
    ///
    /// `admit` runs only when a hash is to be computed, before it: not for remembered credentials, nor for a
    /// check that joins one of the same credentials under way (the same guess, whose outcome it shares). What
    /// it gives back comes with the outcome, for the caller to settle; its error refuses the check.
    pub async fn verify<T>(
        &self,
        username: &str,
        password: &SecretString,
        hash: &str,
        remember: bool,
        admit: impl AsyncFnOnce() -> Result<T>,
    ) -> Result<Checked<T>> {
        let key = fingerprint(username, password.expose(), hash);
        if remember && self.remembered.lock().unwrap_or_else(|e| e.into_inner()).contains(&key) {
            return Ok(Checked { valid: true, admitted: None });
        }
        let cell = self.in_progress.lock().unwrap_or_else(|e| e.into_inner()).entry(key).or_default().clone();
        let _unregister = Unregister { checks: self, key, cell: &cell };
        let mut admitted = None;
        let outcome = cell
            .get_or_try_init(|| async {
                admitted = Some(admit().await?);
                let turn = tokio::time::timeout(self.options.wait, self.hashing.clone().acquire_owned())
                    .await
                    .map_err(|_| Error::Busy("too many password checks at once; try again in a moment".into()))?
                    .map_err(|_| Error::Unavailable("Tidings is shutting down".into()))?;
                self.hashes.fetch_add(1, Ordering::Relaxed);
                let (password, hash) = (password.clone(), hash.to_owned());
                Ok::<_, Error>(self.hashers.check(password, hash, turn, self.options.release_after).await)
            })
            .await
            .copied();
        let valid = outcome?;
        if valid && remember {
            let mut remembered = self.remembered.lock().unwrap_or_else(|e| e.into_inner());
            if remembered.len() >= REMEMBERED {
                remembered.clear();
            }
            remembered.insert(key);
        }
        Ok(Checked { valid, admitted })
    }
}

/// Takes a check's entry out of the checks under way when the check ends, however it ends (a caller that goes
/// away included), unless a newer check of the same credentials took its place.
struct Unregister<'a> {
    checks: &'a PasswordChecks,
    key: Key,
    cell: &'a Arc<OnceCell<bool>>,
}

impl Drop for Unregister<'_> {
    fn drop(&mut self) {
        let mut in_progress = self.checks.in_progress.lock().unwrap_or_else(|e| e.into_inner());
        if in_progress.get(&self.key).is_some_and(|c| Arc::ptr_eq(c, self.cell)) {
            in_progress.remove(&self.key);
        }
    }
}

/// A check's outcome, with what `admit` gave when this caller's check computed the hash.
#[derive(Debug)]
pub struct Checked<T> {
    pub valid: bool,
    pub admitted: Option<T>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::accounts::hash_password;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_same_credentials_at_once_are_verified_once() {
        let hash = hash_password(&SecretString::new("right-password")).unwrap();
        let checks = Arc::new(PasswordChecks::new(CheckOptions {
            concurrent: 1,
            wait: Duration::from_secs(30),
            ..Default::default()
        }));
        // Forty sessions present the same wrong password while the one hashing turn is taken.
        let held = checks.hashing.clone().acquire_owned().await.unwrap();
        let all: Vec<_> = (0..40)
            .map(|_| {
                let (checks, hash) = (checks.clone(), hash.clone());
                tokio::spawn(async move {
                    checks.verify("u", &SecretString::new("wrong"), &hash, true, async || Ok(())).await
                })
            })
            .collect();
        while checks.in_progress.lock().unwrap().values().next().map(Arc::strong_count) != Some(41) {
            tokio::task::yield_now().await;
        }
        drop(held);
        let mut admitted = 0;
        for task in all {
            let checked = task.await.unwrap().unwrap();
            assert!(!checked.valid);
            admitted += usize::from(checked.admitted.is_some());
        }
        assert_eq!(checks.hashes(), 1, "one hash for forty identical checks");
        assert_eq!(admitted, 1, "one admission: the other checks joined it");
        // The right password is remembered after its first check: no second hash.
        for _ in 0..2 {
            let checked = checks.verify("u", &SecretString::new("right-password"), &hash, true, async || Ok(())).await;
            assert!(checked.unwrap().valid);
        }
        assert_eq!(checks.hashes(), 2);
        assert!(checks.in_progress.lock().unwrap().is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_caller_that_goes_away_mid_check_keeps_its_turn_until_the_hash_is_done() {
        let hash = hash_password(&SecretString::new("right-password")).unwrap();
        let checks = PasswordChecks::new(CheckOptions { concurrent: 1, wait: Duration::ZERO, ..Default::default() });
        let first = SecretString::new("first");
        let abandoned = checks.verify("u", &first, &hash, false, async || Ok(()));
        assert!(tokio::time::timeout(Duration::from_millis(1), abandoned).await.is_err(), "still hashing");
        assert!(checks.in_progress.lock().unwrap().is_empty(), "the abandoned check's entry is gone");
        // Its hash still runs and holds the one turn: another check cannot start a second 19 MB hash beside it.
        let next = checks.verify("u", &SecretString::new("second"), &hash, false, async || Ok(())).await;
        assert!(matches!(next, Err(Error::Busy(_))), "{next:?}");
        // Once it is done, the turn is free again.
        let _turn = checks.hashing.clone().acquire_owned().await.unwrap();
    }

    #[tokio::test]
    async fn a_check_that_cannot_get_its_turn_is_refused_as_busy() {
        let hash = hash_password(&SecretString::new("right-password")).unwrap();
        let checks =
            PasswordChecks::new(CheckOptions { concurrent: 1, wait: Duration::from_millis(1), ..Default::default() });
        let _held = checks.hashing.clone().acquire_owned().await.unwrap();
        let outcome = checks.verify("u", &SecretString::new("x"), &hash, false, async || Ok(())).await;
        assert!(matches!(outcome, Err(Error::Busy(_))), "{outcome:?}");
        assert!(checks.in_progress.lock().unwrap().is_empty(), "a refused check leaves nothing behind");
        let refused: Result<Checked<()>> =
            checks.verify("u", &SecretString::new("y"), &hash, false, async || Err(Error::Busy("no".into()))).await;
        assert!(matches!(refused, Err(Error::Busy(_))) && checks.hashes() == 0, "not admitted: no hash");
    }
}

//! The token manager: access tokens for delivery, fresh before they are needed.
//!
//! - The access token lives in memory only; after a restart the first one is fetched with the stored
//!   refresh token.
//! - A background task refreshes once `refresh_fraction` (80 %) of the token's lifetime has passed, so a
//!   delivery normally never waits for a refresh.
//! - One refresh at a time: concurrent callers wait for the refresh under way and share its result, so a
//!   refresh token is never redeemed twice.
//! - A refresh token the provider rotates replaces the stored one at once.
//! - Passing failures (network, 5xx) are retried with backoff, keeping everything; a refused grant
//!   (`invalid_grant` and its kin) means an administrator must act: the status says so, with the provider's
//!   reason and what to do, and no further attempt is made until a new authorization arrives (a different
//!   refresh token in the vault, from any process, or [`TokenManager::authorized`]).

use crate::status::TokenStatus;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::{fmt, sync::Arc, time::Duration};
use tidings_app::authorization::SharedAccessToken;
use tidings_core::secret::SecretString;
use tidings_delivery::token::{AccessToken, TokenError, TokenSource};
use tokio::{
    sync::{Mutex, Notify, watch},
    time::Instant,
};
use tokio_util::sync::CancellationToken;

/// What the token endpoint granted.
#[derive(Clone)]
pub struct Granted {
    pub access_token: SecretString,
    pub expires_in: Duration,
    /// A new refresh token, when the provider rotates it.
    pub refresh_token: Option<SecretString>,
}

impl fmt::Debug for Granted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Granted")
            .field("expires_in", &self.expires_in)
            .field("rotated", &self.refresh_token.is_some())
            .finish()
    }
}

/// Why the token endpoint gave no token.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    /// Network trouble, a timeout, a 5xx, `temporarily_unavailable`: try again later.
    #[error("{0}")]
    Unavailable(String),
    /// The provider refused the grant; an administrator must act.
    #[error("{said}")]
    Refused { said: String, explanation: String },
}

/// What the manager redeems for access tokens.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// A refresh token from a sign-in.
    RefreshToken(SecretString),
    /// The client's own credentials (the client-credentials grant, for app-only sending), as authorized then.
    Client { authorized_at: Option<DateTime<Utc>> },
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::RefreshToken(_) => f.write_str("RefreshToken(<redacted>)"),
            Credential::Client { authorized_at } => write!(f, "Client({authorized_at:?})"),
        }
    }
}

/// The provider's token endpoint, for refreshing.
#[async_trait]
pub trait TokenEndpoint: Send + Sync + fmt::Debug {
    async fn refresh(&self, credential: &Credential) -> Result<Granted, EndpointError>;
}

/// Where the refresh token and the authorization's state are kept (encrypted at rest).
#[async_trait]
pub trait Vault: Send + Sync + fmt::Debug {
    /// The credential stored now, if Tidings was authorized.
    async fn credential(&self) -> Result<Option<Credential>, tidings_app::Error>;
    /// Records a successful refresh, replacing the refresh token when the provider rotated it.
    async fn store_refreshed(
        &self,
        rotated: Option<&SecretString>,
        at: DateTime<Utc>,
    ) -> Result<(), tidings_app::Error>;
    /// Records that an administrator must act; the explanation recorded, which may say more than the provider's.
    async fn store_failure(&self, reason: &str, explanation: &str) -> Result<String, tidings_app::Error>;
    /// Waits for the turn to refresh among the nodes sharing the authorization, held until dropped: one refresh
    /// at a time, each with the refresh token the one before stored (a rotated token is never lost to a race).
    async fn refresh_turn(&self) -> Result<tidings_store::Turn, tidings_app::Error> {
        Ok(tidings_store::Turn::default())
    }
    /// Counts a refresh's outcome (`ok`, `failed`, `refused`) and how long it took, for the metrics.
    fn count_refresh(&self, _outcome: &str, _took: Duration) {}
    /// Keeps a new access token for the other nodes sharing the authorization (on a shared database).
    async fn share(&self, _token: &SharedAccessToken) -> Result<(), tidings_app::Error> {
        Ok(())
    }
    /// The access token a node sharing the authorization obtained last, if any.
    async fn shared(&self) -> Result<Option<SharedAccessToken>, tidings_app::Error> {
        Ok(None)
    }
}

/// Timings, all configurable.
#[derive(Clone, Copy, Debug)]
pub struct ManagerOptions {
    /// Refresh once this fraction of the token's lifetime has passed.
    pub refresh_fraction: f64,
    /// A token is handed out only while it stays valid at least this long (10 minutes: Microsoft's High Volume
    /// Email refuses a token with less, `5.5.127`), or a tenth of its lifetime when that is shorter.
    pub usable_margin: Duration,
    /// First delay after a passing failure; it doubles up to `retry_max`.
    pub retry_first: Duration,
    pub retry_max: Duration,
}

impl Default for ManagerOptions {
    fn default() -> Self {
        Self {
            refresh_fraction: 0.8,
            usable_margin: Duration::from_secs(600),
            retry_first: Duration::from_secs(10),
            retry_max: Duration::from_secs(300),
        }
    }
}

/// The access token held now.
#[derive(Clone, Debug)]
struct Held {
    token: AccessToken,
    obtained: Instant,
    lifetime: Duration,
    expires_at: DateTime<Utc>,
}

impl Held {
    fn usable(&self, margin: Duration) -> bool {
        Instant::now() + margin.min(self.lifetime / 10) < self.obtained + self.lifetime
    }
    fn refresh_due(&self, fraction: f64) -> Instant {
        self.obtained + self.lifetime.mul_f64(fraction)
    }
}

#[derive(Debug, Default)]
struct State {
    held: Option<Held>,
    /// Bumped by every new token: lets a caller that waited for a refresh see that one happened.
    generation: u64,
    /// Set while an administrator must act: the provider's words, what to do, and the credential it
    /// refused. Nothing is attempted until a different credential is stored (a new authorization).
    refused: Option<(String, String, Credential)>,
    /// Since when refreshes fail, and the last failure's words.
    failing: Option<(DateTime<Utc>, String)>,
    /// Whether the vault held no refresh token at the last look.
    unauthorized: bool,
}

/// Keeps access tokens fresh; delivery uses it as its [`TokenSource`].
#[derive(Clone, Debug)]
pub struct TokenManager {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    endpoint: Arc<dyn TokenEndpoint>,
    vault: Arc<dyn Vault>,
    options: ManagerOptions,
    state: std::sync::Mutex<State>,
    /// Held while a refresh runs: one at a time.
    refreshing: Mutex<()>,
    /// Wakes the background task (a new authorization arrived).
    wake: Notify,
    status: watch::Sender<TokenStatus>,
}

impl TokenManager {
    pub fn new(endpoint: Arc<dyn TokenEndpoint>, vault: Arc<dyn Vault>, options: ManagerOptions) -> Self {
        let (status, _) = watch::channel(TokenStatus::Acquired);
        Self {
            inner: Arc::new(Inner {
                endpoint,
                vault,
                options,
                state: std::sync::Mutex::new(State::default()),
                refreshing: Mutex::new(()),
                wake: Notify::new(),
                status,
            }),
        }
    }

    /// The status now; subscribe for changes.
    pub fn status(&self) -> watch::Receiver<TokenStatus> {
        self.inner.status.subscribe()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn publish(&self) {
        let status = {
            let s = self.state();
            if let Some((reason, explanation, _)) = &s.refused {
                TokenStatus::ReauthorizationRequired { reason: reason.clone(), explanation: explanation.clone() }
            } else if s.unauthorized {
                TokenStatus::AuthorizationRequired
            } else if let Some((since, reason)) = &s.failing {
                TokenStatus::Failing { reason: reason.clone(), since: *since }
            } else if let Some(held) = s.held.as_ref().filter(|h| h.usable(Duration::ZERO)) {
                TokenStatus::Active { expires_at: held.expires_at }
            } else {
                TokenStatus::Acquired
            }
        };
        self.inner.status.send_replace(status);
    }

    /// A new authorization (from a sign-in flow) whose refresh token the caller stored: use its access token
    /// now and resume refreshing.
    pub fn authorized(&self, granted: &Granted) {
        {
            let mut s = self.state();
            s.refused = None;
            s.failing = None;
            s.unauthorized = false;
            s.held = Some(held(granted));
            s.generation += 1;
        }
        self.publish();
        self.inner.wake.notify_one();
    }

    /// Drops the access token after the authorization was deleted.
    pub fn forget(&self) {
        {
            let mut s = self.state();
            *s = State { generation: s.generation + 1, unauthorized: true, ..State::default() };
        }
        self.publish();
    }

    /// Refreshes now, or waits for the refresh under way and shares its result.
    pub async fn refresh_now(&self) -> Result<AccessToken, TokenError> {
        self.refresh_unless(None).await
    }

    /// Refreshes, unless (once it is this caller's turn) a token newer than the one it saw, or than `rejected`,
    /// is held.
    async fn refresh_unless(&self, rejected: Option<&AccessToken>) -> Result<AccessToken, TokenError> {
        let seen = self.state().generation;
        let _one_at_a_time = self.inner.refreshing.lock().await;
        {
            let s = self.state();
            if let Some(held) = s.held.as_ref().filter(|h| h.usable(self.inner.options.usable_margin))
                && (s.generation != seen || rejected.is_some_and(|r| *r != held.token))
            {
                return Ok(held.token.clone());
            }
        }
        let _turn = match self.inner.vault.refresh_turn().await {
            Ok(turn) => turn,
            Err(e) => return Err(TokenError::Unavailable(format!("cannot take the turn to refresh: {e}"))),
        };
        if let Some(token) = self.take_shared(rejected).await {
            return Ok(token);
        }
        let credential = match self.inner.vault.credential().await {
            Ok(Some(token)) => {
                // An authorization another process stored (the CLI, another node): no longer unauthorized, so
                // that a refresh failing now shows as failing.
                self.state().unauthorized = false;
                token
            }
            Ok(None) => {
                self.state().unauthorized = true;
                self.publish();
                return Err(TokenError::ReauthorizationRequired(
                    "Tidings is not authorized with the provider yet: an administrator signs in on the web interface's OAuth page, or with `tidings oauth login`".into(),
                ));
            }
            Err(e) => return Err(TokenError::Unavailable(format!("cannot read the stored authorization: {e}"))),
        };
        if let Some((_, explanation, refused)) = &self.state().refused
            && *refused == credential
        {
            return Err(TokenError::ReauthorizationRequired(explanation.clone()));
        }
        let asked = Instant::now();
        let answer = self.inner.endpoint.refresh(&credential).await;
        let took = asked.elapsed();
        match answer {
            Ok(granted) => {
                if let Err(e) = self.inner.vault.store_refreshed(granted.refresh_token.as_ref(), Utc::now()).await {
                    tracing::error!(error = %e, "could not store the refreshed authorization; the next restart may need a new sign-in");
                }
                let new = held(&granted);
                let shared = SharedAccessToken {
                    token: granted.access_token.clone(),
                    obtained_at: Utc::now(),
                    expires_at: new.expires_at,
                };
                if let Err(e) = self.inner.vault.share(&shared).await {
                    tracing::warn!(error = %e, "could not keep the new access token for the other nodes; they refresh their own");
                }
                let token = self.hold(new);
                tracing::info!(
                    expires_in_s = granted.expires_in.as_secs(),
                    rotated = granted.refresh_token.is_some(),
                    "access token refreshed"
                );
                self.inner.vault.count_refresh("ok", took);
                Ok(token)
            }
            Err(EndpointError::Unavailable(why)) => {
                self.inner.vault.count_refresh("failed", took);
                {
                    let mut s = self.state();
                    let since = s.failing.as_ref().map_or_else(Utc::now, |(since, _)| *since);
                    s.failing = Some((since, why.clone()));
                }
                self.publish();
                tracing::warn!(error = %why, "token refresh failed; will retry");
                Err(TokenError::Unavailable(why))
            }
            Err(EndpointError::Refused { said, explanation }) => {
                self.inner.vault.count_refresh("refused", took);
                tracing::error!(reason = %said, %explanation, "OAuth re-authorization required");
                let explanation = match self.inner.vault.store_failure(&said, &explanation).await {
                    Ok(recorded) => recorded,
                    Err(e) => {
                        tracing::error!(error = %e, "could not record the authorization failure");
                        explanation
                    }
                };
                {
                    let mut s = self.state();
                    s.refused = Some((said, explanation.clone(), credential));
                    s.held = None;
                }
                self.publish();
                Err(TokenError::ReauthorizationRequired(explanation))
            }
        }
    }

    /// Refreshes ahead of expiry until `shutdown`; fetches the first token at once when a refresh token is
    /// stored.
    pub fn spawn_refresher(&self, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
        let manager = self.clone();
        tokio::spawn(async move {
            let options = manager.inner.options;
            let mut retry = options.retry_first;
            let mut due = Some(Instant::now());
            loop {
                let sleep = async {
                    match due {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = manager.inner.wake.notified() => {
                        due = manager.state().held.as_ref().map(|h| h.refresh_due(options.refresh_fraction));
                        continue;
                    }
                    () = sleep => {}
                }
                due = match manager.refresh_now().await {
                    Ok(_) => {
                        retry = options.retry_first;
                        manager.state().held.as_ref().map(|h| h.refresh_due(options.refresh_fraction))
                    }
                    Err(TokenError::Unavailable(_)) => {
                        let at = Instant::now() + retry;
                        retry = (retry * 2).min(options.retry_max);
                        Some(at)
                    }
                    // Waits for a new authorization.
                    Err(TokenError::ReauthorizationRequired(_)) => None,
                };
            }
        })
    }
}

impl TokenManager {
    /// Holds `new` from now on, and plans the next refresh from it.
    fn hold(&self, new: Held) -> AccessToken {
        let token = new.token.clone();
        {
            let mut s = self.state();
            s.held = Some(new);
            s.generation += 1;
            s.failing = None;
            s.unauthorized = false;
            s.refused = None;
        }
        self.publish();
        self.inner.wake.notify_one();
        token
    }

    /// The token another node sharing the authorization obtained while this one waited for its turn, when it is
    /// newer than the one held, still usable, and not the one the relay just `rejected`.
    async fn take_shared(&self, rejected: Option<&AccessToken>) -> Option<AccessToken> {
        let shared = self.inner.vault.shared().await.ok().flatten()?;
        let age = (Utc::now() - shared.obtained_at).to_std().unwrap_or_default();
        let lifetime = (shared.expires_at - shared.obtained_at).to_std().ok()?;
        let candidate = Held {
            token: AccessToken(shared.token),
            obtained: Instant::now().checked_sub(age)?,
            lifetime,
            expires_at: shared.expires_at,
        };
        let newer = self.state().held.as_ref().is_none_or(|h| candidate.expires_at > h.expires_at);
        if !newer || !candidate.usable(self.inner.options.usable_margin) || rejected == Some(&candidate.token) {
            return None;
        }
        tracing::info!(
            expires_in_s = (candidate.expires_at - Utc::now()).num_seconds(),
            "access token taken from the node of the database that refreshed it"
        );
        Some(self.hold(candidate))
    }
}

fn held(granted: &Granted) -> Held {
    Held {
        token: AccessToken(granted.access_token.clone()),
        obtained: Instant::now(),
        lifetime: granted.expires_in,
        expires_at: Utc::now() + chrono::Duration::from_std(granted.expires_in).unwrap_or(chrono::Duration::zero()),
    }
}

#[async_trait]
impl TokenSource for TokenManager {
    async fn access_token(&self) -> Result<AccessToken, TokenError> {
        if let Some(held) = self.state().held.as_ref().filter(|h| h.usable(self.inner.options.usable_margin)) {
            return Ok(held.token.clone());
        }
        self.refresh_now().await
    }

    async fn refresh(&self, rejected: &AccessToken) -> Result<Option<AccessToken>, TokenError> {
        self.refresh_unless(Some(rejected)).await.map(Some)
    }
}

#[cfg(test)]
mod tests;

//! The manager under a paused clock, with an in-memory vault and a scripted token endpoint.

#![allow(clippy::unwrap_used)]

use super::*;
use std::sync::Mutex as StdMutex;

/// Grants `t1`, `t2`, … each valid `lifetime`, rotating the refresh token when asked; or answers from a script.
#[derive(Debug)]
struct Endpoint {
    lifetime: Duration,
    rotate: bool,
    script: StdMutex<Vec<Result<(), EndpointError>>>,
    calls: StdMutex<Vec<String>>,
}

impl Endpoint {
    fn new(lifetime: u64, rotate: bool) -> Arc<Self> {
        Arc::new(Self {
            lifetime: Duration::from_secs(lifetime),
            rotate,
            script: StdMutex::new(vec![]),
            calls: StdMutex::new(vec![]),
        })
    }
    fn then(&self, outcome: Result<(), EndpointError>) {
        self.script.lock().unwrap().push(outcome);
    }
    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }
}

#[async_trait]
impl TokenEndpoint for Endpoint {
    async fn refresh(&self, credential: &Credential) -> Result<Granted, EndpointError> {
        let Credential::RefreshToken(refresh_token) = credential else { panic!("{credential:?}") };
        // A real endpoint takes a moment: concurrent callers pile up meanwhile.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let n = {
            let mut calls = self.calls.lock().unwrap();
            calls.push(refresh_token.expose().to_owned());
            calls.len()
        };
        let scripted = {
            let mut script = self.script.lock().unwrap();
            (!script.is_empty()).then(|| script.remove(0))
        };
        if let Some(Err(e)) = scripted {
            return Err(e);
        }
        Ok(Granted {
            access_token: SecretString::new(format!("t{n}")),
            expires_in: self.lifetime,
            refresh_token: self.rotate.then(|| SecretString::new(format!("rt{}", n + 1))),
        })
    }
}

#[derive(Debug, Default)]
struct MemoryVault {
    refresh_token: StdMutex<Option<String>>,
    failures: StdMutex<Vec<String>>,
}

#[async_trait]
impl Vault for MemoryVault {
    async fn credential(&self) -> Result<Option<Credential>, tidings_app::Error> {
        Ok(self.refresh_token.lock().unwrap().clone().map(|t| Credential::RefreshToken(SecretString::new(t))))
    }
    async fn store_refreshed(
        &self,
        rotated: Option<&SecretString>,
        _at: DateTime<Utc>,
    ) -> Result<(), tidings_app::Error> {
        if let Some(token) = rotated {
            *self.refresh_token.lock().unwrap() = Some(token.expose().to_owned());
        }
        Ok(())
    }
    async fn store_failure(&self, reason: &str, explanation: &str) -> Result<String, tidings_app::Error> {
        self.failures.lock().unwrap().push(reason.to_owned());
        Ok(explanation.to_owned())
    }
}

fn vault_with(token: Option<&str>) -> Arc<MemoryVault> {
    let vault = MemoryVault::default();
    *vault.refresh_token.lock().unwrap() = token.map(str::to_owned);
    Arc::new(vault)
}

fn token(s: &str) -> AccessToken {
    AccessToken(SecretString::new(s))
}

#[tokio::test(start_paused = true)]
async fn refreshes_at_80_percent_of_the_lifetime_in_the_background() {
    let endpoint = Endpoint::new(100, false);
    let manager = TokenManager::new(endpoint.clone(), vault_with(Some("rt1")), ManagerOptions::default());
    let shutdown = CancellationToken::new();
    manager.spawn_refresher(shutdown.clone());
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert_eq!(endpoint.calls().len(), 1, "the first token is fetched at start");
    assert!(matches!(*manager.status().borrow(), TokenStatus::Active { .. }));

    tokio::time::sleep(Duration::from_secs(79)).await;
    assert_eq!(endpoint.calls().len(), 1, "not before 80 %");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(endpoint.calls().len(), 2, "at 80 %");
    assert_eq!(manager.access_token().await.unwrap(), token("t2"), "deliveries get the fresh token without waiting");
    assert_eq!(endpoint.calls().len(), 2);
    shutdown.cancel();
}

#[tokio::test(start_paused = true)]
async fn concurrent_callers_share_one_refresh() {
    let endpoint = Endpoint::new(3600, true);
    let manager = TokenManager::new(endpoint.clone(), vault_with(Some("rt1")), ManagerOptions::default());
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let m = manager.clone();
        tasks.spawn(async move { m.access_token().await.unwrap() });
    }
    let tokens = tasks.join_all().await;
    assert!(tokens.iter().all(|t| *t == token("t1")));
    assert_eq!(endpoint.calls(), ["rt1"], "the refresh token was redeemed once");

    // Twenty deliveries see the relay reject t1 at once: one refresh, all get t2.
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let m = manager.clone();
        tasks.spawn(async move { m.refresh(&token("t1")).await.unwrap().unwrap() });
    }
    assert!(tasks.join_all().await.iter().all(|t| *t == token("t2")));
    assert_eq!(endpoint.calls(), ["rt1", "rt2"], "the rotated refresh token was used, once");
}

#[tokio::test(start_paused = true)]
async fn a_rotated_refresh_token_replaces_the_stored_one_at_once() {
    let endpoint = Endpoint::new(100, true);
    let vault = vault_with(Some("rt1"));
    let manager = TokenManager::new(endpoint.clone(), vault.clone(), ManagerOptions::default());
    manager.refresh_now().await.unwrap();
    assert_eq!(vault.refresh_token.lock().unwrap().as_deref(), Some("rt2"));
    manager.refresh_now().await.unwrap();
    assert_eq!(endpoint.calls(), ["rt1", "rt2"]);
}

#[tokio::test(start_paused = true)]
async fn passing_failures_are_retried_with_backoff_while_the_token_still_serves() {
    let endpoint = Endpoint::new(100, false);
    let manager = TokenManager::new(endpoint.clone(), vault_with(Some("rt1")), ManagerOptions::default());
    let shutdown = CancellationToken::new();
    manager.spawn_refresher(shutdown.clone());
    tokio::time::sleep(Duration::from_millis(60)).await;
    endpoint.then(Err(EndpointError::Unavailable("connection refused".into())));
    endpoint.then(Err(EndpointError::Unavailable("503 Service Unavailable".into())));

    tokio::time::sleep(Duration::from_secs(81)).await; // the 80 % refresh fails
    assert_eq!(endpoint.calls().len(), 2);
    assert!(matches!(*manager.status().borrow(), TokenStatus::Failing { .. }));
    assert_eq!(manager.access_token().await.unwrap(), token("t1"), "still valid: served without waiting");
    tokio::time::sleep(Duration::from_secs(10)).await; // retry after 10 s fails too
    assert_eq!(endpoint.calls().len(), 3);
    tokio::time::sleep(Duration::from_secs(15)).await;
    assert_eq!(endpoint.calls().len(), 3, "the next retry waits 20 s");
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(endpoint.calls().len(), 4);
    assert!(matches!(*manager.status().borrow(), TokenStatus::Active { .. }));
    assert_eq!(manager.access_token().await.unwrap(), token("t4"));
    shutdown.cancel();
}

#[tokio::test(start_paused = true)]
async fn a_refused_grant_requires_reauthorization_and_stops_trying_until_then() {
    let endpoint = Endpoint::new(100, false);
    let vault = vault_with(Some("rt1"));
    let manager = TokenManager::new(endpoint.clone(), vault.clone(), ManagerOptions::default());
    let shutdown = CancellationToken::new();
    manager.spawn_refresher(shutdown.clone());
    tokio::time::sleep(Duration::from_millis(60)).await;
    endpoint.then(Err(EndpointError::Refused {
        said: "invalid_grant: AADSTS700082: The refresh token has expired due to inactivity.".into(),
        explanation: "The refresh token expired because it was not used for 90 days. Authorize Tidings again.".into(),
    }));
    tokio::time::sleep(Duration::from_secs(81)).await;
    match &*manager.status().borrow() {
        TokenStatus::ReauthorizationRequired { reason, explanation } => {
            assert!(reason.contains("AADSTS700082") && explanation.contains("90 days"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(vault.failures.lock().unwrap().len(), 1, "recorded for the alert");
    let err = manager.access_token().await.unwrap_err();
    assert!(matches!(err, TokenError::ReauthorizationRequired(ref why) if why.contains("90 days")), "{err}");
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(endpoint.calls().len(), 2, "no attempt until a new authorization");

    // An administrator signs in again.
    *vault.refresh_token.lock().unwrap() = Some("rt-new".into());
    manager.authorized(&Granted {
        access_token: SecretString::new("fresh"),
        expires_in: Duration::from_secs(100),
        refresh_token: None,
    });
    assert_eq!(manager.access_token().await.unwrap(), token("fresh"));
    tokio::time::sleep(Duration::from_secs(81)).await;
    assert_eq!(endpoint.calls().last().map(String::as_str), Some("rt-new"), "refreshing resumed");
    shutdown.cancel();
}

#[tokio::test(start_paused = true)]
async fn a_new_refresh_token_stored_by_another_process_ends_the_refusal() {
    let endpoint = Endpoint::new(100, false);
    let vault = vault_with(Some("rt-revoked"));
    let manager = TokenManager::new(endpoint.clone(), vault.clone(), ManagerOptions::default());
    endpoint.then(Err(EndpointError::Refused {
        said: "invalid_grant".into(),
        explanation: "Authorize Tidings again.".into(),
    }));
    assert!(manager.access_token().await.is_err());
    assert!(manager.access_token().await.is_err());
    assert_eq!(endpoint.calls(), ["rt-revoked"], "the refused token is not tried again");
    *vault.refresh_token.lock().unwrap() = Some("rt-from-cli-login".into());
    assert_eq!(manager.access_token().await.unwrap(), token("t2"));
    assert!(matches!(*manager.status().borrow(), TokenStatus::Active { .. }));
}

#[tokio::test(start_paused = true)]
async fn without_any_authorization_the_status_says_so() {
    let manager = TokenManager::new(Endpoint::new(100, false), vault_with(None), ManagerOptions::default());
    let err = manager.access_token().await.unwrap_err();
    assert!(
        matches!(err, TokenError::ReauthorizationRequired(ref why) if why.contains("tidings oauth login")),
        "{err}"
    );
    assert_eq!(*manager.status().borrow(), TokenStatus::AuthorizationRequired);
}

#[tokio::test(start_paused = true)]
async fn a_sign_in_stored_elsewhere_then_a_failing_refresh_shows_as_failing() {
    let endpoint = Endpoint::new(100, false);
    let vault = vault_with(None);
    let manager = TokenManager::new(endpoint.clone(), vault.clone(), ManagerOptions::default());
    assert!(manager.access_token().await.is_err());
    assert_eq!(*manager.status().borrow(), TokenStatus::AuthorizationRequired);
    // The CLI stores an authorization; the provider does not answer the first refresh.
    *vault.refresh_token.lock().unwrap() = Some("rt1".into());
    endpoint.then(Err(EndpointError::Unavailable("connection refused".into())));
    assert!(matches!(manager.access_token().await, Err(TokenError::Unavailable(_))));
    assert!(matches!(*manager.status().borrow(), TokenStatus::Failing { .. }), "{:?}", *manager.status().borrow());
}

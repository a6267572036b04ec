//! Device accounts' own tokens (the gateway's `login_user` policy): a [`TokenManager`] per account, made at
//! its first message and refreshing ahead of expiry like the relay account's, replaced when the account
//! authorizes again and dropped when its authorization is deleted (by any process: the record is read at each
//! use).

use crate::{
    access_tokens::{ManagerOptions, TokenEndpoint, TokenManager},
    vault::AppVault,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};
use tidings_app::App;
use tidings_delivery::token::{MailboxTokens, TokenError, TokenSource};
use tokio_util::sync::CancellationToken;

/// The daemon's device-account token managers.
#[derive(Debug)]
pub struct Mailboxes {
    app: App,
    endpoint: Arc<dyn TokenEndpoint>,
    options: ManagerOptions,
    shutdown: CancellationToken,
    managers: Mutex<HashMap<String, Managed>>,
}

/// A device account's manager: the authorization it serves (its time), and its refresher's stop.
#[derive(Debug)]
struct Managed {
    acquired_at: DateTime<Utc>,
    manager: TokenManager,
    stop: CancellationToken,
}

impl Mailboxes {
    pub fn new(
        app: App,
        endpoint: Arc<dyn TokenEndpoint>,
        options: ManagerOptions,
        shutdown: CancellationToken,
    ) -> Self {
        Self { app, endpoint, options, shutdown, managers: Mutex::new(HashMap::new()) }
    }

    fn managers(&self) -> std::sync::MutexGuard<'_, HashMap<String, Managed>> {
        self.managers.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Mailboxes {
    /// Starts the manager of every device account whose authorization was not used for `idle` by `now` (its
    /// device sent nothing), so that its refresh token is used before the provider's inactivity limit; from then
    /// on the manager refreshes it ahead of each expiry. The accounts started.
    pub async fn keep_alive(&self, idle: std::time::Duration, now: DateTime<Utc>) -> tidings_app::Result<Vec<String>> {
        let idle = chrono::Duration::from_std(idle).unwrap_or(chrono::TimeDelta::MAX);
        let mut started = Vec::new();
        for record in self.app.authorizations().await? {
            let (Some(id), Some(used)) = (record.owner.device_id(), record.refreshed_at.or(record.acquired_at)) else {
                continue;
            };
            if record.client_credentials || record.failure.is_some() || now - used < idle {
                continue;
            }
            let account = self.app.device(id).await?.username;
            if self.managers().contains_key(&account) {
                continue;
            }
            match self.mailbox(&account).await {
                Ok(_) => {
                    tracing::info!(account, last_used = %used, "refreshing an unused authorization to keep it alive");
                    started.push(account);
                }
                Err(e) => tracing::warn!(account, error = %e, "could not keep the authorization alive"),
            }
        }
        Ok(started)
    }

    /// Runs [`Self::keep_alive`] every `every` with the configuration in force, until `shutdown`.
    pub fn spawn_keep_alive(
        self: Arc<Self>,
        config: tokio::sync::watch::Receiver<Arc<tidings_app::settings::Current>>,
        every: std::time::Duration,
    ) -> tokio::task::JoinHandle<()> {
        let shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            loop {
                let idle = config.borrow().config.oauth.keep_alive;
                if !idle.is_zero()
                    && let Err(e) = self.keep_alive(idle, Utc::now()).await
                {
                    tracing::warn!(error = %e, "could not look at the authorizations to keep alive");
                }
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(every) => {}
                }
            }
        })
    }
}

#[async_trait]
impl MailboxTokens for Mailboxes {
    async fn mailbox(&self, account: &str) -> Result<(String, Arc<dyn TokenSource>), TokenError> {
        let record = self.app.mailbox_of(account).await.map_err(|e| TokenError::Unavailable(e.to_string()))?;
        let (Some(record), Some(acquired_at), Some(mailbox)) = (
            record.as_ref(),
            record.as_ref().and_then(|r| r.acquired_at),
            record.as_ref().and_then(|r| r.account.clone()),
        ) else {
            if let Some(gone) = self.managers().remove(account) {
                gone.stop.cancel();
            }
            return Err(TokenError::ReauthorizationRequired(format!(
                "device account {account} has not connected its mailbox (or its token was deleted); it signs in on \
                 its \"My mailbox\" page (/mailbox) and connects it"
            )));
        };
        let mut managers = self.managers();
        if let Some(managed) = managers.get(account)
            && managed.acquired_at == acquired_at
        {
            return Ok((mailbox, Arc::new(managed.manager.clone())));
        }
        let vault = AppVault::new(self.app.clone(), record.owner);
        let manager = TokenManager::new(self.endpoint.clone(), Arc::new(vault), self.options);
        let stop = self.shutdown.child_token();
        manager.spawn_refresher(stop.clone());
        let managed = Managed { acquired_at, manager: manager.clone(), stop };
        if let Some(old) = managers.insert(account.to_owned(), managed) {
            old.stop.cancel();
        }
        Ok((mailbox, Arc::new(manager)))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::access_tokens::{Credential, EndpointError, Granted};
    use std::time::Duration;
    use tidings_app::{InitOptions, authorization::Owner, data_dir::DataDir};
    use tidings_core::secret::SecretString;

    /// Grants `at-<refresh token>` for refresh tokens starting `good`; refuses others as Microsoft does a
    /// revoked grant.
    #[derive(Debug)]
    struct Provider;

    #[async_trait]
    impl TokenEndpoint for Provider {
        async fn refresh(&self, credential: &Credential) -> Result<Granted, EndpointError> {
            let Credential::RefreshToken(rt) = credential else { panic!("{credential:?}") };
            if !rt.expose().starts_with("good") {
                return Err(EndpointError::Refused {
                    said: "invalid_grant: AADSTS50173: The provided grant has expired due to it being revoked.".into(),
                    explanation: "The user must sign in again.".into(),
                });
            }
            Ok(Granted {
                access_token: SecretString::new(format!("at-{}", rt.expose())),
                expires_in: Duration::from_secs(3600),
                refresh_token: None,
            })
        }
    }

    #[tokio::test]
    async fn each_account_has_its_own_token_and_a_refusal_alerts_the_administrators() {
        let tmp = tempfile::tempdir().unwrap();
        let init = InitOptions { admin_username: "admin".into(), ..Default::default() };
        let app = App::init(DataDir::new(tmp.path()), init).await.unwrap().app;
        let pass = SecretString::new("a-device-password-1");
        for (name, address) in [("jane-mfp", "jane@contoso.com"), ("joe-mfp", "joe@contoso.com")] {
            app.create_device("test", name, &pass, &[address.to_owned()]).await.unwrap();
        }
        let devices = app.devices().await.unwrap();
        let shutdown = CancellationToken::new();
        let mailboxes = Mailboxes::new(app.clone(), Arc::new(Provider), ManagerOptions::default(), shutdown.clone());

        let err = mailboxes.mailbox("jane-mfp").await.unwrap_err();
        assert!(matches!(&err, TokenError::ReauthorizationRequired(why) if why.contains("/mailbox")), "{err:?}");

        app.authorized(
            Owner::Device(devices[0].id),
            "test",
            Some(&SecretString::new("good-jane")),
            Some("jane@contoso.com"),
        )
        .await
        .unwrap();
        app.authorized(
            Owner::Device(devices[1].id),
            "test",
            Some(&SecretString::new("revoked")),
            Some("joe@contoso.com"),
        )
        .await
        .unwrap();
        let (mailbox, tokens) = mailboxes.mailbox("jane-mfp").await.unwrap();
        assert_eq!(
            (mailbox.as_str(), tokens.access_token().await.unwrap().0.expose()),
            ("jane@contoso.com", "at-good-jane")
        );

        let (_, tokens) = mailboxes.mailbox("joe-mfp").await.unwrap();
        assert!(matches!(tokens.access_token().await, Err(TokenError::ReauthorizationRequired(_))));
        let joe = app.mailbox_of("joe-mfp").await.unwrap().unwrap();
        assert!(joe.failure.unwrap().0.contains("AADSTS50173"));
        let alerts = app.store().pending_events(10).await.unwrap();
        assert!(
            alerts.iter().any(|e| e.details["reason"].contains("device account joe-mfp (joe@contoso.com)")),
            "{alerts:?}"
        );
        assert!(app.mailbox_of("jane-mfp").await.unwrap().unwrap().failure.is_none(), "jane is unaffected");

        // A new sign-in replaces the manager; deleting the token ends it.
        app.authorized(
            Owner::Device(devices[1].id),
            "test",
            Some(&SecretString::new("good-joe")),
            Some("joe@contoso.com"),
        )
        .await
        .unwrap();
        let (_, tokens) = mailboxes.mailbox("joe-mfp").await.unwrap();
        assert_eq!(tokens.access_token().await.unwrap().0.expose(), "at-good-joe");
        assert!(
            app.mailbox_of("joe-mfp").await.unwrap().unwrap().failure.is_none(),
            "a new sign-in clears the failure"
        );
        app.forget_authorization(Owner::Device(devices[1].id), "test").await.unwrap();
        assert!(mailboxes.mailbox("joe-mfp").await.is_err());
        shutdown.cancel();
    }

    #[tokio::test]
    async fn an_authorization_left_unused_is_refreshed_to_keep_it_alive() {
        let tmp = tempfile::tempdir().unwrap();
        let init = InitOptions { admin_username: "admin".into(), ..Default::default() };
        let app = App::init(DataDir::new(tmp.path()), init).await.unwrap().app;
        let pass = SecretString::new("a-device-password-1");
        for (name, address) in [("jane-mfp", "jane@contoso.com"), ("joe-mfp", "joe@contoso.com")] {
            app.create_device("test", name, &pass, &[address.to_owned()]).await.unwrap();
        }
        let devices = app.devices().await.unwrap();
        for (device, (token, mailbox)) in
            devices.iter().zip([("good-jane", "jane@contoso.com"), ("revoked", "joe@contoso.com")])
        {
            let token = SecretString::new(token);
            app.authorized(Owner::Device(device.id), "test", Some(&token), Some(mailbox)).await.unwrap();
        }
        let shutdown = CancellationToken::new();
        let mailboxes = Mailboxes::new(app.clone(), Arc::new(Provider), ManagerOptions::default(), shutdown.clone());
        let month = Duration::from_secs(30 * 24 * 3600);

        assert!(mailboxes.keep_alive(month, Utc::now()).await.unwrap().is_empty(), "used today: left alone");
        let later = Utc::now() + chrono::Duration::days(31);
        assert_eq!(mailboxes.keep_alive(month, later).await.unwrap(), ["jane-mfp", "joe-mfp"]);
        let refreshed = async {
            loop {
                let jane = app.mailbox_of("jane-mfp").await.unwrap().unwrap();
                let joe = app.mailbox_of("joe-mfp").await.unwrap().unwrap();
                if jane.refreshed_at.is_some() && joe.failure.is_some() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), refreshed).await.expect("refreshed without a message");
        assert!(
            mailboxes.keep_alive(month, later).await.unwrap().is_empty(),
            "kept by its manager from now on; a refused one is not tried again"
        );
        shutdown.cancel();
    }
}

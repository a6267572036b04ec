//! The [`Vault`] of one owner's authorization (the relay account's, or a device account's own mailbox): the
//! refresh token sealed in the database, through the app.

use crate::access_tokens::{Credential, Vault};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tidings_app::{
    App,
    authorization::{Authorization, Owner, SharedAccessToken},
};
use tidings_core::secret::SecretString;

/// The credential an owner holds: a refresh token, or an app-only authorization.
pub async fn credential(app: &App, owner: Owner) -> tidings_app::Result<Option<Credential>> {
    match app.authorization(owner).await? {
        Some(record) => credential_of(app, &record).await,
        None => Ok(None),
    }
}

/// The credential, given the authorization record already read.
pub async fn credential_of(app: &App, record: &Authorization) -> tidings_app::Result<Option<Credential>> {
    if record.client_credentials {
        return Ok(Some(Credential::Client { authorized_at: record.acquired_at }));
    }
    Ok(app.refresh_token(record.owner).await?.map(Credential::RefreshToken))
}

#[derive(Clone, Debug)]
pub struct AppVault {
    app: App,
    owner: Owner,
}

impl AppVault {
    pub fn new(app: App, owner: Owner) -> Self {
        Self { app, owner }
    }
}

#[async_trait]
impl Vault for AppVault {
    async fn credential(&self) -> Result<Option<Credential>, tidings_app::Error> {
        // A backup or traffic node holds the authorizations for the day it is promoted; until then only the
        // primary redeems them, so that two nodes never refresh one token.
        if self.app.membership().await?.role.follows() {
            return Ok(None);
        }
        credential(&self.app, self.owner).await
    }

    async fn store_refreshed(
        &self,
        rotated: Option<&SecretString>,
        _at: DateTime<Utc>,
    ) -> Result<(), tidings_app::Error> {
        self.app.token_refreshed(self.owner, rotated).await
    }

    async fn store_failure(&self, reason: &str, explanation: &str) -> Result<String, tidings_app::Error> {
        self.app.token_failed(self.owner, reason, explanation).await
    }

    async fn refresh_turn(&self) -> Result<tidings_store::Turn, tidings_app::Error> {
        self.app.refresh_turn(self.owner).await
    }

    fn count_refresh(&self, outcome: &str, took: std::time::Duration) {
        self.app.metrics().count("tidings_token_refreshes_total", outcome);
        self.app.metrics().token_refreshed(took);
    }

    async fn share(&self, token: &SharedAccessToken) -> Result<(), tidings_app::Error> {
        self.app.share_access_token(self.owner, token).await
    }

    async fn shared(&self) -> Result<Option<SharedAccessToken>, tidings_app::Error> {
        self.app.shared_access_token(self.owner).await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::access_tokens::{Credential, EndpointError, Granted, ManagerOptions, TokenEndpoint, TokenManager};
    use std::{sync::Arc, time::Duration};
    use tidings_app::{InitOptions, data_dir::DataDir};
    use tidings_delivery::token::{TokenError, TokenSource};

    /// Rotates `rt-N` into `rt-N+1`; refuses an unknown refresh token like Microsoft does a revoked one.
    #[derive(Debug)]
    struct Rotating;

    #[async_trait]
    impl TokenEndpoint for Rotating {
        async fn refresh(&self, credential: &Credential) -> Result<Granted, EndpointError> {
            let Credential::RefreshToken(refresh_token) = credential else { panic!("{credential:?}") };
            let n: u32 = refresh_token.expose().strip_prefix("rt-").and_then(|n| n.parse().ok()).ok_or_else(|| {
                EndpointError::Refused {
                    said: "invalid_grant: AADSTS50173: The provided grant has expired due to it being revoked.".into(),
                    explanation: "The authorization was revoked. Authorize Tidings again.".into(),
                }
            })?;
            Ok(Granted {
                access_token: SecretString::new(format!("at-{n}")),
                expires_in: Duration::from_secs(3600),
                refresh_token: Some(SecretString::new(format!("rt-{}", n + 1))),
            })
        }
    }

    #[tokio::test]
    async fn rotation_survives_a_restart_and_a_revocation_is_recorded() {
        let tmp = tempfile::tempdir().unwrap();
        let app =
            App::init(DataDir::new(tmp.path()), InitOptions { admin_username: "admin".into(), ..Default::default() })
                .await
                .unwrap()
                .app;
        app.authorized(Owner::Relay, "test", Some(&SecretString::new("rt-1")), Some("alerts@contoso.com"))
            .await
            .unwrap();

        let manager = TokenManager::new(
            Arc::new(Rotating),
            Arc::new(AppVault::new(app.clone(), Owner::Relay)),
            ManagerOptions::default(),
        );
        assert_eq!(manager.access_token().await.unwrap().0.expose(), "at-1");
        // A restart: a new manager, nothing in memory, the rotated refresh token on disk.
        let restarted = TokenManager::new(
            Arc::new(Rotating),
            Arc::new(AppVault::new(app.clone(), Owner::Relay)),
            ManagerOptions::default(),
        );
        assert_eq!(restarted.access_token().await.unwrap().0.expose(), "at-2");
        assert_eq!(app.refresh_token(Owner::Relay).await.unwrap().unwrap().expose(), "rt-3");

        app.authorized(Owner::Relay, "test", Some(&SecretString::new("revoked")), None).await.unwrap();
        let err = TokenManager::new(
            Arc::new(Rotating),
            Arc::new(AppVault::new(app.clone(), Owner::Relay)),
            ManagerOptions::default(),
        )
        .access_token()
        .await
        .unwrap_err();
        assert!(matches!(err, TokenError::ReauthorizationRequired(_)));
        let record = app.authorization(Owner::Relay).await.unwrap().unwrap();
        assert!(record.failure.unwrap().0.contains("AADSTS50173"));
    }
}

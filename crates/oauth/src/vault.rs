//! The [`Vault`] of a data directory: the refresh token sealed in the database, through the app.

use crate::access_tokens::{Credential, Vault};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tidings_app::App;
use tidings_core::secret::SecretString;

/// The credential a data directory holds: a refresh token, or an app-only authorization.
pub async fn credential(app: &App) -> tidings_app::Result<Option<Credential>> {
    credential_of(app, &app.oauth_record().await?).await
}

/// The credential, given the authorization record already read.
pub async fn credential_of(app: &App, record: &tidings_store::OAuthRecord) -> tidings_app::Result<Option<Credential>> {
    if record.client_credentials {
        return Ok(Some(Credential::Client { authorized_at: record.acquired_at }));
    }
    Ok(app.oauth_refresh_token().await?.map(Credential::RefreshToken))
}

#[derive(Clone, Debug)]
pub struct AppVault {
    app: App,
}

impl AppVault {
    pub fn new(app: App) -> Self {
        Self { app }
    }
}

#[async_trait]
impl Vault for AppVault {
    async fn credential(&self) -> Result<Option<Credential>, tidings_app::Error> {
        credential(&self.app).await
    }

    async fn store_refreshed(
        &self,
        rotated: Option<&SecretString>,
        _at: DateTime<Utc>,
    ) -> Result<(), tidings_app::Error> {
        self.app.oauth_refreshed(rotated).await
    }

    async fn store_failure(&self, reason: &str, explanation: &str) -> Result<(), tidings_app::Error> {
        self.app.oauth_failed(reason, explanation).await
    }

    fn count_refresh(&self, outcome: &str) {
        self.app.metrics().count("tidings_token_refreshes_total", outcome);
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
        app.oauth_acquired("test", Some(&SecretString::new("rt-1")), Some("alerts@contoso.com")).await.unwrap();

        let manager =
            TokenManager::new(Arc::new(Rotating), Arc::new(AppVault::new(app.clone())), ManagerOptions::default());
        assert_eq!(manager.access_token().await.unwrap().0.expose(), "at-1");
        // A restart: a new manager, nothing in memory, the rotated refresh token on disk.
        let restarted =
            TokenManager::new(Arc::new(Rotating), Arc::new(AppVault::new(app.clone())), ManagerOptions::default());
        assert_eq!(restarted.access_token().await.unwrap().0.expose(), "at-2");
        assert_eq!(app.oauth_refresh_token().await.unwrap().unwrap().expose(), "rt-3");

        app.oauth_acquired("test", Some(&SecretString::new("revoked")), None).await.unwrap();
        let err =
            TokenManager::new(Arc::new(Rotating), Arc::new(AppVault::new(app.clone())), ManagerOptions::default())
                .access_token()
                .await
                .unwrap_err();
        assert!(matches!(err, TokenError::ReauthorizationRequired(_)));
        let record = app.oauth_record().await.unwrap();
        assert!(record.failure.unwrap().0.contains("AADSTS50173"));
    }
}

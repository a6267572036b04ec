//! What the daemon gives delivery as its token source: the [`TokenManager`] once an authorization is stored,
//! the static `oauth.static_access_token` before that; and a token endpoint that follows the configuration in
//! force (a new client id, secret, endpoint or proxy applies at the next refresh).

use crate::{
    access_tokens::{Credential, EndpointError, Granted, TokenEndpoint, TokenManager},
    http::HttpEndpoint,
};
use async_trait::async_trait;
use std::sync::{Arc, Mutex};
use tidings_app::{App, settings::Current};
use tidings_core::Invalid;
use tidings_delivery::token::{AccessToken, ConfiguredToken, TokenError, TokenSource};
use tokio::sync::watch;

/// The relay account's tokens for a command run beside (or without) the daemon: obtained and refreshed as the
/// daemon does, under the same turn, kept the same way.
pub fn standalone(app: &App, current: Arc<Current>) -> DaemonTokens {
    let (_, config) = watch::channel(current);
    let endpoint = Arc::new(ConfiguredEndpoint::new(app.clone(), config));
    let vault = Arc::new(crate::vault::AppVault::new(app.clone(), tidings_app::authorization::Owner::Relay));
    DaemonTokens::new(TokenManager::new(endpoint, vault, Default::default()), app.clone())
}

/// The token endpoint of the configuration in force, rebuilt when the configuration changes.
#[derive(Debug)]
pub struct ConfiguredEndpoint {
    app: App,
    config: watch::Receiver<Arc<Current>>,
    built: Mutex<Option<(i64, Arc<HttpEndpoint>)>>,
}

impl ConfiguredEndpoint {
    pub fn new(app: App, config: watch::Receiver<Arc<Current>>) -> Self {
        Self { app, config, built: Mutex::new(None) }
    }

    /// The endpoint for the configuration in force.
    pub async fn current(&self) -> Result<Arc<HttpEndpoint>, Invalid> {
        let current = self.config.borrow().clone();
        if let Some((revision, endpoint)) = self.built.lock().unwrap_or_else(|e| e.into_inner()).as_ref()
            && *revision == current.revision
        {
            return Ok(endpoint.clone());
        }
        let auth = crate::http::client_auth(&self.app, &current.config).await.map_err(|e| e.to_string())?;
        let endpoint = Arc::new(HttpEndpoint::new(&current.config, auth)?);
        *self.built.lock().unwrap_or_else(|e| e.into_inner()) = Some((current.revision, endpoint.clone()));
        Ok(endpoint)
    }
}

#[async_trait]
impl TokenEndpoint for ConfiguredEndpoint {
    async fn refresh(&self, credential: &Credential) -> Result<Granted, EndpointError> {
        // A configuration that cannot make an endpoint is retried: fixing it resumes refreshing.
        let endpoint = self.current().await.map_err(|why| EndpointError::Unavailable(why.into()))?;
        endpoint.refresh(credential).await
    }
}

/// Delivery's tokens in the daemon.
#[derive(Clone, Debug)]
pub struct DaemonTokens {
    manager: TokenManager,
    fallback: ConfiguredToken,
    app: App,
}

impl DaemonTokens {
    pub fn new(manager: TokenManager, app: App) -> Self {
        Self { manager, fallback: ConfiguredToken::new(app.clone()), app }
    }

    /// Whether an authorization (a refresh token, or app-only) is stored.
    async fn authorized(&self) -> bool {
        matches!(crate::vault::credential(&self.app, tidings_app::authorization::Owner::Relay).await, Ok(Some(_)))
    }
}

#[async_trait]
impl TokenSource for DaemonTokens {
    async fn access_token(&self) -> Result<AccessToken, TokenError> {
        if self.authorized().await { self.manager.access_token().await } else { self.fallback.access_token().await }
    }

    async fn refresh(&self, rejected: &AccessToken) -> Result<Option<AccessToken>, TokenError> {
        if self.authorized().await {
            self.manager.refresh(rejected).await
        } else {
            self.fallback.refresh(rejected).await
        }
    }
}

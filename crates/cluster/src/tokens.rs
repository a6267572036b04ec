//! The relay account's access tokens on a backup or traffic node: asked of the primary, which alone refreshes
//! the authorization, and kept for a minute. The daemon's token source is [`Routed`]: the node's own while it
//! is standalone or the primary, the primary's while it follows.

use crate::client::{ClusterError, Primary};
use async_trait::async_trait;
use base64::{Engine, engine::general_purpose::STANDARD};
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};
use tidings_app::App;
use tidings_delivery::token::{AccessToken, MailboxTokens, TokenError, TokenSource};

/// How long a follower keeps an access token from its primary before asking again.
pub const KEEP: Duration = Duration::from_secs(60);

/// Tokens from the primary: the relay account's, or with `mailbox` a device account's own.
#[derive(Debug)]
pub struct PrimaryTokens {
    app: App,
    /// The device account whose own mailbox's tokens these are; `None` for the relay account.
    mailbox: Option<String>,
    /// Held while asking: callers at the same moment share one request to the primary.
    kept: tokio::sync::Mutex<Option<(AccessToken, Instant)>>,
}

impl PrimaryTokens {
    pub fn new(app: App) -> Self {
        Self { app, mailbox: None, kept: tokio::sync::Mutex::new(None) }
    }

    pub fn of_mailbox(app: App, account: &str) -> Self {
        Self { app, mailbox: Some(account.to_owned()), kept: tokio::sync::Mutex::new(None) }
    }

    /// Asks the primary; the caller holds `kept`.
    async fn ask(&self, refresh: bool) -> Result<AccessToken, TokenError> {
        let unavailable = |e: String| TokenError::Unavailable(format!("the cluster's primary: {e}"));
        let Some((url, fingerprint, key)) = self.app.primary_link().await.map_err(|e| unavailable(e.to_string()))?
        else {
            return Err(TokenError::Unavailable("this node follows no primary".into()));
        };
        let me = self.app.membership().await.map_err(|e| unavailable(e.to_string()))?;
        let primary =
            Primary::new(&url, &fingerprint, Duration::from_secs(30)).map_err(|e| unavailable(e.to_string()))?;
        let message = match primary.access_token(&me.name, &key, self.mailbox.as_deref(), refresh).await {
            Ok(message) => message,
            Err(ClusterError::Unauthorized(said)) => return Err(TokenError::ReauthorizationRequired(said)),
            Err(e) => return Err(unavailable(e.to_string())),
        };
        let sealed = STANDARD.decode(&message.token).map_err(|e| unavailable(e.to_string()))?;
        let token =
            self.app.open_from_primary("access_token", &sealed).await.map_err(|e| unavailable(e.to_string()))?;
        Ok(AccessToken(token))
    }
}

#[async_trait]
impl TokenSource for PrimaryTokens {
    async fn access_token(&self) -> Result<AccessToken, TokenError> {
        let mut kept = self.kept.lock().await;
        if let Some((token, at)) = kept.as_ref()
            && at.elapsed() < KEEP
        {
            return Ok(token.clone());
        }
        let token = self.ask(false).await?;
        *kept = Some((token.clone(), Instant::now()));
        Ok(token)
    }

    async fn refresh(&self, rejected: &AccessToken) -> Result<Option<AccessToken>, TokenError> {
        let mut kept = self.kept.lock().await;
        // Another caller may have had the rejected token replaced meanwhile.
        if let Some((token, _)) = kept.as_ref()
            && token != rejected
        {
            return Ok(Some(token.clone()));
        }
        let fresh = self.ask(true).await?;
        *kept = Some((fresh.clone(), Instant::now()));
        Ok((fresh != *rejected).then_some(fresh))
    }
}

/// Device accounts' own mailboxes: the node's own tokens, or its primary's while it follows one (the mailbox's
/// address is the one the primary's authorization names, which this node holds a copy of).
#[derive(Debug)]
pub struct RoutedMailboxes {
    app: App,
    own: Arc<dyn MailboxTokens>,
    /// The primary's tokens per device account, each kept for a minute.
    primary: Mutex<HashMap<String, Arc<PrimaryTokens>>>,
}

impl RoutedMailboxes {
    pub fn new(app: App, own: Arc<dyn MailboxTokens>) -> Self {
        Self { app, own, primary: Mutex::new(HashMap::new()) }
    }
}

#[async_trait]
impl MailboxTokens for RoutedMailboxes {
    async fn mailbox(&self, account: &str) -> Result<(String, Arc<dyn TokenSource>), TokenError> {
        if !self.app.membership().await.is_ok_and(|m| m.role.follows()) {
            return self.own.mailbox(account).await;
        }
        let record = self.app.mailbox_of(account).await.map_err(|e| TokenError::Unavailable(e.to_string()))?;
        let Some(mailbox) = record.and_then(|r| r.account) else {
            return Err(TokenError::ReauthorizationRequired(format!(
                "device account {account} has not connected its mailbox; it signs in on the primary's \"My mailbox\" page"
            )));
        };
        let tokens = self
            .primary
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(account.to_owned())
            .or_insert_with(|| Arc::new(PrimaryTokens::of_mailbox(self.app.clone(), account)))
            .clone();
        Ok((mailbox, tokens))
    }
}

/// The node's own tokens, or its primary's while it follows one.
#[derive(Debug)]
pub struct Routed {
    app: App,
    own: Arc<dyn TokenSource>,
    primary: PrimaryTokens,
}

impl Routed {
    pub fn new(app: App, own: Arc<dyn TokenSource>) -> Self {
        Self { primary: PrimaryTokens::new(app.clone()), app, own }
    }

    async fn follows(&self) -> bool {
        self.app.membership().await.is_ok_and(|m| m.role.follows())
    }
}

#[async_trait]
impl TokenSource for Routed {
    async fn access_token(&self) -> Result<AccessToken, TokenError> {
        if self.follows().await { self.primary.access_token().await } else { self.own.access_token().await }
    }

    async fn refresh(&self, rejected: &AccessToken) -> Result<Option<AccessToken>, TokenError> {
        if self.follows().await { self.primary.refresh(rejected).await } else { self.own.refresh(rejected).await }
    }
}

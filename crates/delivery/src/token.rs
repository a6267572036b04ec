//! Access tokens for XOAUTH2. Delivery asks a [`TokenSource`] for a token before authenticating, and asks it
//! to refresh once when the relay rejects one; how tokens are obtained and kept is the OAuth work's business.

use async_trait::async_trait;
use std::{fmt, sync::Arc};
use tidings_app::App;
use tidings_core::{outbox::reply::Class, secret::SecretName, secret::SecretString};

/// A bearer token for the relay.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken(pub SecretString);

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken(<redacted>)")
    }
}

/// Why no token could be had.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The token endpoint could not be reached or failed; try again later.
    #[error("the token endpoint is unavailable: {0}")]
    Unavailable(String),
    /// An administrator must authorize (again): no authorization, or it was revoked or expired.
    #[error("OAuth authorization required: {0}")]
    ReauthorizationRequired(String),
}

impl TokenError {
    pub fn class(&self) -> Class {
        match self {
            TokenError::Unavailable(_) => Class::Transient,
            TokenError::ReauthorizationRequired(_) => Class::ReauthRequired,
        }
    }
}

#[async_trait]
pub trait TokenSource: Send + Sync + fmt::Debug {
    /// A token valid now.
    async fn access_token(&self) -> Result<AccessToken, TokenError>;
    /// The relay rejected `rejected`: a fresh token, or `None` when this source cannot refresh. Concurrent
    /// callers share one refresh.
    async fn refresh(&self, rejected: &AccessToken) -> Result<Option<AccessToken>, TokenError>;
}

/// Tokens of device accounts' own mailboxes (the gateway's `login_user` policy).
#[async_trait]
pub trait MailboxTokens: Send + Sync + fmt::Debug {
    /// The mailbox the device account `account` sends from, and its tokens.
    async fn mailbox(&self, account: &str) -> Result<(String, Arc<dyn TokenSource>), TokenError>;
}

/// The token in `oauth.static_access_token`, until the OAuth flows provide real ones. Never refreshed.
#[derive(Clone, Debug)]
pub struct ConfiguredToken {
    app: App,
}

impl ConfiguredToken {
    pub fn new(app: App) -> Self {
        Self { app }
    }
}

#[async_trait]
impl TokenSource for ConfiguredToken {
    async fn access_token(&self) -> Result<AccessToken, TokenError> {
        match self.app.secret(SecretName::StaticAccessToken).await {
            Ok(Some(token)) => Ok(AccessToken(token)),
            Ok(None) => Err(TokenError::ReauthorizationRequired(
                "Tidings is not authorized with the provider yet; sign in with `tidings oauth login` (or set \
                 oauth.static_access_token for testing)"
                    .into(),
            )),
            Err(e) => Err(TokenError::Unavailable(format!("cannot read the stored token: {e}"))),
        }
    }

    async fn refresh(&self, _rejected: &AccessToken) -> Result<Option<AccessToken>, TokenError> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smtp::error::SmtpError;
    use tidings_core::outbox::reply::Stage;

    #[test]
    fn an_unreachable_token_endpoint_is_retried_and_a_missing_authorization_waits() {
        let unreachable = SmtpError::from(TokenError::Unavailable("cannot connect to https://login.example".into()));
        let failure = unreachable.to_failure("smtp.example.com:587");
        assert_eq!((failure.stage, failure.class), (Stage::Token, Class::Transient));
        assert!(failure.class.retries());

        let unauthorized = SmtpError::from(TokenError::ReauthorizationRequired("sign in".into()));
        let failure = unauthorized.to_failure("smtp.example.com:587");
        assert_eq!(failure.class, Class::ReauthRequired);
        assert!(failure.class.retries(), "the message waits for a new authorization instead of failing");
        assert!(failure.explanation.unwrap().contains("authorized with the provider again"));
    }
}

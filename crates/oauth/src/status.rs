//! What an administrator sees of the OAuth authorization.

use chrono::{DateTime, Utc};
use serde::Serialize;

/// The token's state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum TokenStatus {
    /// OAuth2 is not the configured authentication.
    NotConfigured,
    /// No authorization yet: an administrator must sign in with the provider.
    AuthorizationRequired,
    /// A device-flow sign-in is under way.
    AuthorizationPending { expires_at: DateTime<Utc> },
    /// A refresh token is stored; no access token is held now (after a restart, until first use).
    Acquired,
    /// A valid access token is held.
    Active { expires_at: DateTime<Utc> },
    /// Refreshing failed and an administrator must act (authorize again, or fix the client registration).
    ReauthorizationRequired { reason: String, explanation: String },
    /// Refreshing fails for now; Tidings keeps trying.
    Failing { reason: String, since: DateTime<Utc> },
}

/// The status with the facts around it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TokenReport {
    #[serde(flatten)]
    pub status: TokenStatus,
    /// The mailbox the token is for.
    pub account: Option<String>,
    pub acquired_at: Option<DateTime<Utc>>,
    pub refreshed_at: Option<DateTime<Utc>>,
}

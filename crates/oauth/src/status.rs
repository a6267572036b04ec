//! What an administrator sees of the OAuth authorization.

use chrono::{DateTime, Utc};
use tidings_app::authorization::Owner;

/// The token's state.
#[derive(Clone, Debug, PartialEq, Eq)]
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

impl TokenStatus {
    /// Its name, as the API and the metrics give it.
    pub fn as_str(&self) -> &'static str {
        match self {
            TokenStatus::NotConfigured => "not_configured",
            TokenStatus::AuthorizationRequired => "authorization_required",
            TokenStatus::AuthorizationPending { .. } => "authorization_pending",
            TokenStatus::Acquired => "acquired",
            TokenStatus::Active { .. } => "active",
            TokenStatus::ReauthorizationRequired { .. } => "reauthorization_required",
            TokenStatus::Failing { .. } => "failing",
        }
    }

    /// One line for notices: `active until 2026-11-22 10:32 UTC`.
    pub fn summary(&self) -> String {
        let at = |t: &DateTime<Utc>| t.format("%Y-%m-%d %H:%M UTC").to_string();
        match self {
            TokenStatus::NotConfigured => "not used (the relay does not use OAuth2)".into(),
            TokenStatus::AuthorizationRequired => "authorization required: sign in with the provider".into(),
            TokenStatus::AuthorizationPending { expires_at } => format!("sign-in under way until {}", at(expires_at)),
            TokenStatus::Acquired => "authorized (no access token requested yet)".into(),
            TokenStatus::Active { expires_at } => format!("active, access token valid until {}", at(expires_at)),
            TokenStatus::ReauthorizationRequired { reason, .. } => format!("re-authorization required ({reason})"),
            TokenStatus::Failing { reason, since } => format!("refresh failing since {} ({reason})", at(since)),
        }
    }
}

/// The status with the facts around it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenReport {
    pub status: TokenStatus,
    /// The mailbox the token is for.
    pub account: Option<String>,
    pub acquired_at: Option<DateTime<Utc>>,
    pub refreshed_at: Option<DateTime<Utc>>,
}

/// The report for `config` and what the database records; `live` is the running token manager's view, when
/// there is one (only the daemon knows whether an access token is held).
pub async fn report(app: &tidings_app::App, live: Option<TokenStatus>) -> tidings_app::Result<TokenReport> {
    let current = app.current().await?;
    let record = app.authorization(Owner::Relay).await?;
    let authorized = match &record {
        Some(record) => crate::vault::credential_of(app, record).await?.is_some(),
        None => false,
    };
    let failure = record.as_ref().and_then(|r| r.failure.as_ref());
    let recorded = match (failure, authorized) {
        (Some((reason, explanation)), _) => {
            TokenStatus::ReauthorizationRequired { reason: reason.clone(), explanation: explanation.clone() }
        }
        (None, true) => TokenStatus::Acquired,
        (None, false) => TokenStatus::AuthorizationRequired,
    };
    let status = if current.config.smtp.auth != tidings_core::config::AuthMethod::Oauth2 {
        TokenStatus::NotConfigured
    } else {
        match live {
            // The manager may not have looked at the vault since a sign-in made by another process.
            Some(TokenStatus::AuthorizationRequired | TokenStatus::Acquired) | None => recorded,
            Some(TokenStatus::ReauthorizationRequired { .. }) if authorized && failure.is_none() => {
                TokenStatus::Acquired
            }
            Some(live) => live,
        }
    };
    let (account, acquired_at, refreshed_at) =
        record.map(|r| (r.account, r.acquired_at, r.refreshed_at)).unwrap_or_default();
    Ok(TokenReport { status, account, acquired_at, refreshed_at })
}

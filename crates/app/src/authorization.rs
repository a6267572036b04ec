//! The relay account's OAuth authorization, persisted: the refresh token sealed like every secret, and what
//! became of it (acquired, refreshed, refused). Access tokens are never stored.

use crate::{App, Result};
use chrono::Utc;
use std::collections::BTreeMap;
use tidings_core::{audit::NewAuditEntry, notify::EventKind, secret::SecretString};
use tidings_store::{NewEvent, OAuthGrant, OAuthRecord, PendingSignIn, REFRESH_TOKEN};

/// The name the PKCE verifier is sealed under.
const VERIFIER: &str = "oauth.pkce_verifier";

/// A sign-in under way, unsealed.
#[derive(Debug)]
pub struct SignIn {
    pub verifier: SecretString,
    pub redirect_uri: String,
    /// The device account connecting its own mailbox; `None` for the relay account.
    pub device_id: Option<i64>,
}

impl App {
    /// The stored refresh token, decrypted.
    pub async fn oauth_refresh_token(&self) -> Result<Option<SecretString>> {
        let sealed = self.store.sealed_secrets().await?.into_iter().find(|s| s.name == REFRESH_TOKEN);
        sealed.map(|s| self.cipher.open(REFRESH_TOKEN, &s.sealed)).transpose()
    }

    /// Records a new authorization from a sign-in.
    pub async fn oauth_acquired(
        &self,
        actor: &str,
        refresh_token: Option<&SecretString>,
        account: Option<&str>,
    ) -> Result<()> {
        let sealed = refresh_token.map(|t| self.cipher.seal(REFRESH_TOKEN, t.expose()));
        self.store
            .oauth_grant(
                OAuthGrant::Acquired { sealed_refresh_token: sealed.as_deref(), account, client_credentials: false },
                Utc::now(),
            )
            .await?;
        self.authorized_now().await?;
        let fields = account.map(|a| vec![a.to_owned()]).unwrap_or_default();
        self.store
            .record_audit(&NewAuditEntry { actor: actor.to_owned(), action: "oauth.authorize".into(), fields })
            .await?;
        self.resume_delivery();
        Ok(())
    }

    /// Records an app-only authorization (the client-credentials grant): no refresh token is kept.
    pub async fn oauth_acquired_app_only(&self, actor: &str, account: Option<&str>) -> Result<()> {
        let grant = OAuthGrant::Acquired { sealed_refresh_token: None, account, client_credentials: true };
        self.store.oauth_grant(grant, Utc::now()).await?;
        self.authorized_now().await?;
        let fields = vec!["client_credentials".to_owned()];
        self.store
            .record_audit(&NewAuditEntry { actor: actor.to_owned(), action: "oauth.authorize".into(), fields })
            .await?;
        self.resume_delivery();
        Ok(())
    }

    /// What a new authorization of the relay account means for the outbox: the messages deferred for want of
    /// one are due now.
    async fn authorized_now(&self) -> Result<()> {
        self.store.deferred_due(Utc::now()).await?;
        Ok(())
    }

    /// Records a refresh, replacing the refresh token when the provider rotated it.
    pub async fn oauth_refreshed(&self, rotated: Option<&SecretString>) -> Result<()> {
        let sealed = rotated.map(|t| self.cipher.seal(REFRESH_TOKEN, t.expose()));
        Ok(self
            .store
            .oauth_grant(OAuthGrant::Refreshed { sealed_refresh_token: sealed.as_deref() }, Utc::now())
            .await?)
    }

    /// Records that an administrator must act, with the `oauth.reauthorization_required` alert for the admin
    /// contacts (mailed when sending works; recorded and shown meanwhile).
    pub async fn oauth_failed(&self, reason: &str, explanation: &str) -> Result<()> {
        let now = Utc::now();
        let alert = NewEvent {
            kind: EventKind::ReauthorizationRequired,
            node: crate::node_name(),
            details: BTreeMap::from([
                ("reason".to_owned(), one_line(reason)),
                ("explanation".to_owned(), one_line(explanation)),
            ]),
            origin: "tidings".into(),
            received_at: now,
        };
        Ok(self.store.oauth_failure(reason, explanation, now, &alert).await?)
    }

    pub async fn oauth_record(&self) -> Result<OAuthRecord> {
        Ok(self.store.oauth_record().await?)
    }

    /// Remembers an authorization-code sign-in until the provider's redirect comes back (or `ttl` passes).
    pub async fn begin_sign_in(
        &self,
        device_id: Option<i64>,
        state: &str,
        verifier: &SecretString,
        redirect_uri: &str,
        ttl: std::time::Duration,
    ) -> Result<()> {
        let now = Utc::now();
        let pending = PendingSignIn {
            state: state.to_owned(),
            sealed_verifier: self.cipher.seal(VERIFIER, verifier.expose()),
            redirect_uri: redirect_uri.to_owned(),
            created_at: now,
            expires_at: now + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::minutes(15)),
            device_id,
        };
        Ok(self.store.put_pending_sign_in(&pending).await?)
    }

    /// Takes the sign-in with this `state` (or, for a pasted bare code, the newest one of `device_id`, `None`
    /// being the relay account), once.
    pub async fn take_sign_in(&self, state: Option<&str>, device_id: Option<i64>) -> Result<Option<SignIn>> {
        let Some(pending) = self.store.take_pending_sign_in(state, device_id, Utc::now()).await? else {
            return Ok(None);
        };
        let verifier = self.cipher.open(VERIFIER, &pending.sealed_verifier)?;
        Ok(Some(SignIn { verifier, redirect_uri: pending.redirect_uri, device_id: pending.device_id }))
    }

    /// Forgets the authorization and deletes its refresh token.
    pub async fn oauth_forget(&self, actor: &str) -> Result<()> {
        let audit = NewAuditEntry { actor: actor.to_owned(), action: "oauth.revoke".into(), fields: vec![] };
        Ok(self.store.oauth_forget(&audit).await?)
    }
}

/// A provider's text as one detail line.
pub(crate) fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ").chars().take(tidings_core::notify::MAX_DETAIL_VALUE).collect()
}

//! OAuth authorizations, persisted, one per owner: the relay account's, and each device account's own mailbox
//! (the gateway's `login_user` policy). The refresh token is sealed under a name bound to its owner, so a sealed
//! token cannot be moved to another; what became of it (acquired, refreshed, refused) is kept beside it. Access
//! tokens are stored only on a database other nodes share, sealed likewise, so that one refresh serves them all.

use crate::{App, Result};
use chrono::Utc;
use std::collections::BTreeMap;
use tidings_core::{audit::NewAuditEntry, notify::EventKind, secret::SecretString};
use tidings_store::{Grant, NewEvent, PendingSignIn};

pub use tidings_store::{Authorization, Owner};

/// The name the PKCE verifier is sealed under.
const VERIFIER: &str = "oauth.pkce_verifier";

/// The name an owner's refresh token is sealed under.
fn sealed_name(owner: Owner) -> String {
    match owner {
        Owner::Relay => "oauth.refresh_token".to_owned(),
        Owner::Device(id) => format!("device.{id}.refresh_token"),
    }
}

/// The `meta` key of an owner's last access token, on a shared database.
fn access_key(owner: Owner) -> String {
    match owner {
        Owner::Relay => "oauth.access_token".to_owned(),
        Owner::Device(id) => format!("device.{id}.access_token"),
    }
}

/// An access token kept for the other nodes of a shared database.
#[derive(Debug)]
pub struct SharedAccessToken {
    pub token: SecretString,
    pub obtained_at: chrono::DateTime<Utc>,
    pub expires_at: chrono::DateTime<Utc>,
}

/// A sign-in under way, unsealed.
#[derive(Debug)]
pub struct SignIn {
    pub verifier: SecretString,
    pub redirect_uri: String,
    pub owner: Owner,
}

impl App {
    /// An owner's refresh token from its sealed form.
    pub(crate) fn refresh_token_opened_for(&self, owner: Owner, sealed: &[u8]) -> Result<SecretString> {
        self.cipher.open(&sealed_name(owner), sealed)
    }

    /// An owner's refresh token sealed.
    pub(crate) fn refresh_token_sealed_for(&self, owner: Owner, token: &SecretString) -> Vec<u8> {
        self.cipher.seal(&sealed_name(owner), token.expose())
    }

    /// An owner's authorization, as recorded.
    pub async fn authorization(&self, owner: Owner) -> Result<Option<Authorization>> {
        Ok(self.store.authorization(owner).await?.map(|(record, _)| record))
    }

    /// Every authorization, the relay account's first.
    pub async fn authorizations(&self) -> Result<Vec<Authorization>> {
        Ok(self.store.authorizations().await?)
    }

    /// An owner's refresh token, unsealed; `None` without an authorization, or for an app-only one.
    pub async fn refresh_token(&self, owner: Owner) -> Result<Option<SecretString>> {
        let Some((_, Some(sealed))) = self.store.authorization(owner).await? else { return Ok(None) };
        Ok(Some(self.cipher.open(&sealed_name(owner), &sealed)?))
    }

    /// Records a new authorization from a sign-in, replacing any: with `refresh_token`, or app-only (the
    /// client-credentials grant, the relay account's only) without.
    pub async fn authorized(
        &self,
        owner: Owner,
        actor: &str,
        refresh_token: Option<&SecretString>,
        account: Option<&str>,
    ) -> Result<()> {
        // On a follower every authorization is the primary's: a sign-in happens there.
        self.refuse_on_follower().await?;
        let sealed = refresh_token.map(|t| self.cipher.seal(&sealed_name(owner), t.expose()));
        let audit = match owner {
            Owner::Relay => {
                let fields = match (refresh_token, account) {
                    (None, _) => vec!["client_credentials".to_owned()],
                    (Some(_), account) => account.map(|a| vec![a.to_owned()]).unwrap_or_default(),
                };
                NewAuditEntry { actor: actor.to_owned(), action: "oauth.authorize".into(), fields }
            }
            Owner::Device(id) => {
                let device = self.device(id).await?;
                let fields = vec![device.username, account.unwrap_or_default().to_owned()];
                NewAuditEntry { actor: actor.to_owned(), action: "mailbox.authorize".into(), fields }
            }
        };
        let grant = Grant::Acquired {
            sealed_refresh_token: sealed.as_deref(),
            account,
            client_credentials: refresh_token.is_none(),
            audit: &audit,
        };
        let now = Utc::now();
        self.store.authorization_granted(owner, grant, now).await?;
        self.forget_access_token(owner).await?;
        if owner == Owner::Relay {
            // The messages deferred for want of an authorization are due now.
            self.store.deferred_due(now).await?;
        }
        self.resume_delivery();
        Ok(())
    }

    /// Waits for the turn to refresh `owner`'s token among the nodes sharing the database (at once with SQLite).
    pub async fn refresh_turn(&self, owner: Owner) -> Result<tidings_store::Turn> {
        let name = match owner {
            Owner::Relay => "refresh:relay".to_owned(),
            Owner::Device(id) => format!("refresh:device:{id}"),
        };
        Ok(self.store.turn(&name).await?)
    }

    /// Records a refresh, replacing the refresh token when the provider rotated it.
    pub async fn token_refreshed(&self, owner: Owner, rotated: Option<&SecretString>) -> Result<()> {
        let sealed = rotated.map(|t| self.cipher.seal(&sealed_name(owner), t.expose()));
        let grant = Grant::Refreshed { sealed_refresh_token: sealed.as_deref() };
        Ok(self.store.authorization_granted(owner, grant, Utc::now()).await?)
    }

    /// Records that someone must sign in again, with the `oauth.reauthorization_required` alert for the admin
    /// contacts (mailed when sending works; recorded and shown meanwhile), naming a device account and where it
    /// signs in again. The explanation recorded is returned: what the authorization's age adds to the provider's
    /// words (a Google consent screen left in "Testing").
    pub async fn token_failed(&self, owner: Owner, reason: &str, explanation: &str) -> Result<String> {
        let signed_in = self.authorization(owner).await?.and_then(|a| a.acquired_at).map(|at| Utc::now() - at);
        let provider = self.current().await?.config.oauth.provider;
        let testing =
            signed_in.and_then(|age| tidings_core::oauth::error::consent_screen_in_testing(provider, reason, age));
        let explanation = testing.as_deref().unwrap_or(explanation);
        let (reason_shown, explanation_shown) = match owner {
            Owner::Relay => (reason.to_owned(), explanation.to_owned()),
            Owner::Device(id) => {
                let device = self.device(id).await?;
                let mailbox = self.authorization(owner).await?.and_then(|a| a.account).unwrap_or_default();
                (
                    format!("device account {} ({mailbox}): {reason}", device.username),
                    format!(
                        "{explanation} The account connects its mailbox again on its \"My mailbox\" page (/mailbox)."
                    ),
                )
            }
        };
        let now = Utc::now();
        let alert = NewEvent {
            kind: EventKind::ReauthorizationRequired,
            node: self.membership().await?.name,
            details: BTreeMap::from([
                ("reason".to_owned(), one_line(&reason_shown)),
                ("explanation".to_owned(), one_line(&explanation_shown)),
            ]),
            origin: "tidings".into(),
            received_at: now,
        };
        self.store.authorization_failed(owner, reason, explanation, now, &alert).await?;
        Ok(explanation.to_owned())
    }

    /// Deletes an authorization and its refresh token; `false` when there was none.
    pub async fn forget_authorization(&self, owner: Owner, actor: &str) -> Result<bool> {
        self.refuse_on_follower().await?;
        let audit = match owner {
            Owner::Relay => NewAuditEntry { actor: actor.to_owned(), action: "oauth.revoke".into(), fields: vec![] },
            Owner::Device(id) => NewAuditEntry {
                actor: actor.to_owned(),
                action: "mailbox.revoke".into(),
                fields: vec![self.device(id).await?.username],
            },
        };
        let forgotten = self.store.authorization_forget(owner, &audit).await?;
        self.forget_access_token(owner).await?;
        Ok(forgotten)
    }

    /// Keeps an access token `owner`'s authorization gave, for the other nodes of a shared database (nothing is
    /// stored otherwise); bound to that authorization, so that a new sign-in makes it useless.
    pub async fn share_access_token(&self, owner: Owner, token: &SharedAccessToken) -> Result<()> {
        use base64::Engine;
        if !self.store.shared() {
            return Ok(());
        }
        let Some(record) = self.authorization(owner).await? else { return Ok(()) };
        let sealed = self.cipher.seal(&access_key(owner), token.token.expose());
        let value = format!(
            "{} {} {} {}",
            record.acquired_at.map_or(0, |t| t.timestamp_millis()),
            token.obtained_at.timestamp_millis(),
            token.expires_at.timestamp_millis(),
            base64::engine::general_purpose::STANDARD.encode(sealed)
        );
        Ok(self.store.set_meta(&access_key(owner), Some(&value)).await?)
    }

    /// The access token a node of a shared database obtained last for `owner`'s authorization as it is now;
    /// `None` when there is none, or it was for an authorization since replaced.
    pub async fn shared_access_token(&self, owner: Owner) -> Result<Option<SharedAccessToken>> {
        use base64::Engine;
        if !self.store.shared() {
            return Ok(None);
        }
        let Some(value) = self.store.meta(&access_key(owner)).await? else { return Ok(None) };
        let Some(record) = self.authorization(owner).await? else { return Ok(None) };
        let fields: Vec<&str> = value.split(' ').collect();
        let [acquired, obtained, expires, sealed] = fields[..] else { return Ok(None) };
        if acquired.parse::<i64>().ok() != Some(record.acquired_at.map_or(0, |t| t.timestamp_millis())) {
            return Ok(None);
        }
        let at = |ms: &str| ms.parse().ok().and_then(chrono::DateTime::<Utc>::from_timestamp_millis);
        let (Some(obtained_at), Some(expires_at), Ok(sealed)) =
            (at(obtained), at(expires), base64::engine::general_purpose::STANDARD.decode(sealed))
        else {
            return Ok(None);
        };
        let token = self.cipher.open(&access_key(owner), &sealed)?;
        Ok(Some(SharedAccessToken { token, obtained_at, expires_at }))
    }

    async fn forget_access_token(&self, owner: Owner) -> Result<()> {
        if self.store.shared() {
            self.store.set_meta(&access_key(owner), None).await?;
        }
        Ok(())
    }

    /// The mailbox authorization of the device account named `username`, if it connected one.
    pub async fn mailbox_of(&self, username: &str) -> Result<Option<Authorization>> {
        let Some((device, _)) = self.store.device_for_login(username).await? else { return Ok(None) };
        self.authorization(Owner::Device(device.id)).await
    }

    /// Remembers an authorization-code sign-in until the provider's redirect comes back (or `ttl` passes).
    pub async fn begin_sign_in(
        &self,
        owner: Owner,
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
            owner,
        };
        Ok(self.store.put_pending_sign_in(&pending).await?)
    }

    /// Takes the sign-in with this `state` (or, for a pasted bare code, the newest one of `owner`), once.
    pub async fn take_sign_in(&self, state: Option<&str>, owner: Owner) -> Result<Option<SignIn>> {
        let Some(pending) = self.store.take_pending_sign_in(state, owner, Utc::now()).await? else {
            return Ok(None);
        };
        let verifier = self.cipher.open(VERIFIER, &pending.sealed_verifier)?;
        Ok(Some(SignIn { verifier, redirect_uri: pending.redirect_uri, owner: pending.owner }))
    }
}

/// A provider's text as one detail line.
pub(crate) fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ").chars().take(tidings_core::notify::MAX_DETAIL_VALUE).collect()
}

//! Device accounts' own mailboxes (the gateway's `login_user` policy): each account connects its mailbox
//! with OAuth on the "My mailbox" page (the authorization is kept by [`crate::authorization`], owned by the
//! device), and its messages go upstream with its own token.
//!
//! A device account signs in to that page with its gateway user name and password; its session (a cookie kept
//! only as a SHA-256, with a CSRF token) reaches nothing else.

use crate::{
    App, Error, Result,
    api_tokens::token_hash,
    sign_in::{SignInPolicy, random_token},
};
use chrono::Utc;
use tidings_core::{audit::NewAuditEntry, secret::SecretString};
use tidings_store::{Authorization, Device, NewDeviceSession, Owner};

/// A device account as listed: the account and its own mailbox's authorization.
#[derive(Clone, Debug)]
pub struct DeviceWithMailbox {
    pub device: Device,
    pub mailbox: Option<Authorization>,
}

/// A new device session: the cookie's value (shown once, to the browser) and the CSRF token.
#[derive(Debug)]
pub struct DeviceSession {
    pub token: SecretString,
    pub csrf: String,
    pub device: Device,
    pub expires_at: chrono::DateTime<Utc>,
}

impl App {
    /// Every device account with its mailbox authorization, if it connected one.
    pub async fn devices_with_mailboxes(&self) -> Result<Vec<DeviceWithMailbox>> {
        let mut mailboxes = self.store.authorizations().await?;
        Ok(self
            .store
            .devices()
            .await?
            .into_iter()
            .map(|device| {
                let at = mailboxes.iter().position(|m| m.owner == Owner::Device(device.id));
                DeviceWithMailbox { mailbox: at.map(|at| mailboxes.swap_remove(at)), device }
            })
            .collect())
    }

    /// A device account by id.
    pub async fn device(&self, id: i64) -> Result<Device> {
        self.store
            .devices()
            .await?
            .into_iter()
            .find(|d| d.id == id)
            .ok_or_else(|| Error::Input(format!("no device account {id}")))
    }

    /// Signs a device account in to its "My mailbox" page. `from` (the client's address) is audited.
    pub async fn device_sign_in(
        &self,
        username: &str,
        password: &SecretString,
        from: std::net::IpAddr,
        policy: &SignInPolicy,
    ) -> Result<DeviceSession> {
        let actor = format!("mailbox:{}", tidings_core::account::shown_name(username));
        let attempt = self.sign_in_attempt(from, policy).await?;
        let (Some(device), _) = self.verified_device(username, password, async || Ok(())).await? else {
            attempt.failed();
            let audit = NewAuditEntry { actor, action: "sign-in.refused".into(), fields: vec![format!("from {from}")] };
            self.store.record_audit(&audit).await?;
            self.metrics.count("tidings_sign_ins_total", "refused");
            return Err(Error::Refused("wrong user name or password".into()));
        };
        attempt.succeeded();
        let (token, csrf) = (random_token(), random_token());
        let now = Utc::now();
        let expires_at = crate::later(now, policy.idle.min(policy.absolute));
        let session = NewDeviceSession {
            token_hash: token_hash(&token),
            device_id: device.id,
            csrf: csrf.clone(),
            created_at: now,
            expires_at,
        };
        let audit = NewAuditEntry { actor, action: "sign-in".into(), fields: vec![format!("from {from}")] };
        self.store.create_device_session(&session, &audit).await?;
        self.metrics.count("tidings_sign_ins_total", "ok");
        Ok(DeviceSession { token: SecretString::new(token), csrf, device, expires_at })
    }

    /// The device account and CSRF token of a live session.
    pub async fn device_session(&self, token: &str) -> Result<Option<(Device, String)>> {
        Ok(self.store.device_session(&token_hash(token), Utc::now()).await?)
    }

    /// Ends a device session; with `forget_token` (`gateway.forget_token_on_sign_out`) its mailbox token too.
    pub async fn device_sign_out(&self, token: &str, device: &Device, forget_token: bool) -> Result<()> {
        let actor = format!("mailbox:{}", device.username);
        // On a follower the token is the primary's: signing out here leaves it.
        if forget_token && self.read_only_reason().await?.is_none() {
            self.forget_authorization(Owner::Device(device.id), &actor).await?;
        }
        let audit = NewAuditEntry { actor, action: "sign-out".into(), fields: vec![] };
        Ok(self.store.end_device_session(&token_hash(token), &audit).await?)
    }
}

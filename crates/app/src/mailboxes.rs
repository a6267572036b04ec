//! Device accounts' own mailboxes (the gateway's `login_user` policy): each account connects its mailbox
//! with OAuth on the "My mailbox" page, and its messages go upstream with its own token. The refresh token is
//! sealed under a name bound to the device, so a sealed token cannot be moved to another account.
//!
//! A device account signs in to that page with its gateway user name and password; its session (a cookie kept
//! only as a SHA-256, with a CSRF token) reaches nothing else.

use crate::{
    App, Error, Result,
    api_tokens::token_hash,
    sign_in::{SignInPolicy, random_token},
};
use chrono::Utc;
use std::collections::BTreeMap;
use tidings_core::{audit::NewAuditEntry, notify::EventKind, secret::SecretString};
use tidings_store::{Device, MailboxRecord, NewDeviceSession, NewEvent};

/// The name a device account's refresh token is sealed under.
fn sealed_name(device_id: i64) -> String {
    format!("device.{device_id}.refresh_token")
}

/// A device account's authorization, unsealed, for the token manager.
#[derive(Debug)]
pub struct MailboxGrant {
    pub record: MailboxRecord,
    pub refresh_token: SecretString,
}

/// A device account as listed: the account and its own mailbox's authorization.
#[derive(Clone, Debug)]
pub struct DeviceWithMailbox {
    pub device: Device,
    pub mailbox: Option<MailboxRecord>,
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
        let mut mailboxes = self.store.mailboxes().await?;
        Ok(self
            .store
            .devices()
            .await?
            .into_iter()
            .map(|device| {
                let at = mailboxes.iter().position(|m| m.device_id == device.id);
                DeviceWithMailbox { mailbox: at.map(|at| mailboxes.swap_remove(at)), device }
            })
            .collect())
    }

    /// The mailbox a device account sends from: the one it connected, else `None`.
    pub async fn mailbox_of(&self, username: &str) -> Result<Option<MailboxRecord>> {
        Ok(self.store.mailbox_of(username).await?.map(|(record, _)| record))
    }

    /// A device account's authorization with its refresh token, decrypted.
    pub async fn mailbox_grant(&self, username: &str) -> Result<Option<MailboxGrant>> {
        let Some((record, sealed)) = self.store.mailbox_of(username).await? else { return Ok(None) };
        let refresh_token = self.cipher.open(&sealed_name(record.device_id), &sealed)?;
        Ok(Some(MailboxGrant { record, refresh_token }))
    }

    /// Records a device account's new authorization from its sign-in.
    pub async fn mailbox_acquired(
        &self,
        actor: &str,
        device: &Device,
        mailbox: &str,
        refresh_token: &SecretString,
    ) -> Result<()> {
        let sealed = self.cipher.seal(&sealed_name(device.id), refresh_token.expose());
        let audit = NewAuditEntry {
            actor: actor.to_owned(),
            action: "mailbox.authorize".into(),
            fields: vec![device.username.clone(), mailbox.to_owned()],
        };
        self.store.mailbox_acquired(device.id, mailbox, &sealed, Utc::now(), &audit).await?;
        self.resume_delivery();
        Ok(())
    }

    /// Records a refresh, replacing the refresh token when the provider rotated it.
    pub async fn mailbox_refreshed(&self, device_id: i64, rotated: Option<&SecretString>) -> Result<()> {
        let sealed = rotated.map(|t| self.cipher.seal(&sealed_name(device_id), t.expose()));
        Ok(self.store.mailbox_refreshed(device_id, sealed.as_deref(), Utc::now()).await?)
    }

    /// Records that the account must connect its mailbox again, with the `oauth.reauthorization_required`
    /// alert for the admin contacts naming the account.
    pub async fn mailbox_failed(
        &self,
        record: &MailboxRecord,
        username: &str,
        reason: &str,
        explanation: &str,
    ) -> Result<()> {
        let now = Utc::now();
        let who = format!("device account {username} ({}): ", record.mailbox);
        let alert = NewEvent {
            kind: EventKind::ReauthorizationRequired,
            node: crate::node_name(),
            details: BTreeMap::from([
                ("reason".to_owned(), crate::authorization::one_line(&format!("{who}{reason}"))),
                (
                    "explanation".to_owned(),
                    crate::authorization::one_line(&format!(
                        "{explanation} The account connects its mailbox again on its \"My mailbox\" page (/mailbox)."
                    )),
                ),
            ]),
            origin: "tidings".into(),
            received_at: now,
        };
        Ok(self.store.mailbox_failure(record.device_id, reason, explanation, now, &alert).await?)
    }

    /// Deletes a device account's mailbox token; `false` when it had none.
    pub async fn mailbox_forget(&self, actor: &str, device: &Device) -> Result<bool> {
        let audit = NewAuditEntry {
            actor: actor.to_owned(),
            action: "mailbox.revoke".into(),
            fields: vec![device.username.clone()],
        };
        Ok(self.store.mailbox_forget(device.id, &audit).await?)
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
        if forget_token {
            self.mailbox_forget(&actor, device).await?;
        }
        let audit = NewAuditEntry { actor, action: "sign-out".into(), fields: vec![] };
        Ok(self.store.end_device_session(&token_hash(token), &audit).await?)
    }
}

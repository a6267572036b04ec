//! Device accounts of the submission gateway: printers and scanners authenticate with a user name and a
//! password (argon2id-hashed), and may send as the addresses listed for them.
//!
//! Checking their passwords goes through [`crate::password_checks`]: bounded, coalesced, remembered.

use crate::{
    App, Error, Result,
    accounts::{DECOY_HASH, hash_password},
};
use tidings_core::{account, address, audit::NewAuditEntry, secret::SecretString, submission::session::Login};
use tidings_store::{Device, NewDevice};

impl App {
    /// Creates a device account; the addresses are those it may send as.
    pub async fn create_device(
        &self,
        actor: &str,
        username: &str,
        password: &SecretString,
        addresses: &[String],
    ) -> Result<i64> {
        self.refuse_on_follower().await?;
        account::validate_username(username).map_err(|why| Error::Input(format!("device name {username:?}: {why}")))?;
        account::validate_password(password.expose()).map_err(|why| Error::Input(format!("password: {why}")))?;
        for a in addresses {
            address::validate(a).map_err(|why| Error::Input(format!("address {a:?}: {why}")))?;
        }
        let device = NewDevice {
            username: username.to_owned(),
            password_hash: hash_password(password)?,
            addresses: addresses.to_vec(),
        };
        let audit = NewAuditEntry {
            actor: actor.to_owned(),
            action: "device.create".into(),
            fields: vec![username.to_owned()],
        };
        Ok(self.store.create_device(&device, &audit).await?)
    }

    pub async fn devices(&self) -> Result<Vec<Device>> {
        Ok(self.store.devices().await?)
    }

    pub async fn delete_device(&self, actor: &str, id: i64) -> Result<bool> {
        self.refuse_on_follower().await?;
        let name = self.store.devices().await?.into_iter().find(|d| d.id == id).map(|d| d.username);
        let Some(name) = name else { return Ok(false) };
        let audit = NewAuditEntry { actor: actor.to_owned(), action: "device.delete".into(), fields: vec![name] };
        Ok(self.store.delete_device(id, &audit).await?)
    }

    /// Checks a device's credentials; no login when they are wrong (an unknown name costs the same). `admit`
    /// runs before a password hash is computed, and what it gives comes back when it ran (see
    /// [`crate::password_checks::PasswordChecks::verify`]).
    pub async fn verify_device<T>(
        &self,
        username: &str,
        password: &SecretString,
        admit: impl AsyncFnOnce() -> Result<T>,
    ) -> Result<(Option<Login>, Option<T>)> {
        let (device, admitted) = self.verified_device(username, password, admit).await?;
        Ok((device.map(|d| Login { username: d.username, addresses: d.addresses }), admitted))
    }

    /// The device account whose credentials these are, if they are right.
    pub(crate) async fn verified_device<T>(
        &self,
        username: &str,
        password: &SecretString,
        admit: impl AsyncFnOnce() -> Result<T>,
    ) -> Result<(Option<Device>, Option<T>)> {
        let found = self.store.device_for_login(username).await?;
        let hash = found.as_ref().map_or(DECOY_HASH, |(_, h)| h.as_str()).to_owned();
        let checked = self.passwords.verify(username, password, &hash, true, admit).await?;
        Ok((found.filter(|_| checked.valid).map(|(device, _)| device), checked.admitted))
    }
}

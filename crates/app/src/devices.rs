//! Device accounts of the submission gateway: printers and scanners authenticate with a user name and a
//! password (argon2id-hashed), and may send as the addresses listed for them.
//!
//! Verifying an argon2id hash costs tens of milliseconds of CPU by design; devices open a session per
//! message. A verified (user, password, stored hash) triple is therefore remembered in memory as a keyed
//! SHA-256 (the key is random per process), so that later sessions with the same password cost a hash, not a
//! key derivation. A changed password changes the stored hash, which invalidates the entry.

use crate::{
    App, Error, Result,
    accounts::{hash_password, verify_password},
};
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::{
    collections::HashSet,
    sync::{Mutex, OnceLock},
};
use tidings_core::{account, address, audit::NewAuditEntry, secret::SecretString, submission::session::Login};
use tidings_store::{Device, NewDevice};

/// The most remembered verifications; the set starts over when full.
const REMEMBERED: usize = 4096;

/// Verifications remembered by this process.
#[derive(Debug, Default)]
pub struct VerifiedCache {
    entries: Mutex<HashSet<[u8; 32]>>,
}

fn process_key() -> &'static [u8; 32] {
    static KEY: OnceLock<[u8; 32]> = OnceLock::new();
    KEY.get_or_init(|| {
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        key
    })
}

fn fingerprint(username: &str, password: &str, hash: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(process_key());
    for part in [username.to_lowercase().as_bytes(), password.as_bytes(), hash.as_bytes()] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    h.finalize().into()
}

impl VerifiedCache {
    fn contains(&self, key: &[u8; 32]) -> bool {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).contains(key)
    }

    fn insert(&self, key: [u8; 32]) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= REMEMBERED {
            entries.clear();
        }
        entries.insert(key);
    }
}

impl App {
    /// Creates a device account; the addresses are those it may send as.
    pub async fn create_device(
        &self,
        actor: &str,
        username: &str,
        password: &SecretString,
        addresses: &[String],
    ) -> Result<i64> {
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
        let name = self.store.devices().await?.into_iter().find(|d| d.id == id).map(|d| d.username);
        let Some(name) = name else { return Ok(false) };
        let audit = NewAuditEntry { actor: actor.to_owned(), action: "device.delete".into(), fields: vec![name] };
        Ok(self.store.delete_device(id, &audit).await?)
    }

    /// Checks a device's credentials; `None` when they are wrong (an unknown name costs the same).
    pub async fn verify_device(&self, username: &str, password: &SecretString) -> Result<Option<Login>> {
        let device = self.verified_device(username, password).await?;
        Ok(device.map(|d| Login { username: d.username, addresses: d.addresses }))
    }

    /// The device account whose credentials these are, if they are right.
    pub(crate) async fn verified_device(&self, username: &str, password: &SecretString) -> Result<Option<Device>> {
        let found = self.store.device_for_login(username).await?;
        let hash = found.as_ref().map(|(_, h)| h.clone()).unwrap_or_else(|| decoy().to_owned());
        let key = fingerprint(username, password.expose(), &hash);
        let valid = if self.verified.contains(&key) {
            true
        } else {
            let candidate = SecretString::new(password.expose());
            let checked = hash.clone();
            let valid =
                tokio::task::spawn_blocking(move || verify_password(&candidate, &checked)).await.unwrap_or(false);
            if valid {
                self.verified.insert(key);
            }
            valid
        };
        Ok(found.filter(|_| valid).map(|(device, _)| device))
    }
}

/// A hash to verify against for unknown names.
fn decoy() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| hash_password(&SecretString::new("no-such-device-password")).unwrap_or_default())
}

//! Device accounts' own tokens (the gateway's `login_user` policy): a [`TokenManager`] per account, made at
//! its first message and refreshing ahead of expiry like the relay account's, replaced when the account
//! authorizes again and dropped when its authorization is deleted (by any process: the record is read at each
//! use).

use crate::manager::{Credential, ManagerOptions, TokenEndpoint, TokenManager, Vault};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};
use tidings_app::App;
use tidings_core::secret::SecretString;
use tidings_delivery::token::{MailboxTokens, TokenError, TokenSource};
use tidings_store::MailboxRecord;
use tokio_util::sync::CancellationToken;

/// The daemon's device-account token managers.
#[derive(Debug)]
pub struct Mailboxes {
    app: App,
    endpoint: Arc<dyn TokenEndpoint>,
    options: ManagerOptions,
    shutdown: CancellationToken,
    /// By account name: the authorization the manager serves (its time), the manager, its refresher's stop.
    managers: Mutex<HashMap<String, (DateTime<Utc>, TokenManager, CancellationToken)>>,
}

impl Mailboxes {
    pub fn new(app: App, endpoint: Arc<dyn TokenEndpoint>, options: ManagerOptions, shutdown: CancellationToken) -> Self {
        Self { app, endpoint, options, shutdown, managers: Mutex::new(HashMap::new()) }
    }

    fn managers(&self) -> std::sync::MutexGuard<'_, HashMap<String, (DateTime<Utc>, TokenManager, CancellationToken)>> {
        self.managers.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl MailboxTokens for Mailboxes {
    async fn mailbox(&self, account: &str) -> Result<(String, Arc<dyn TokenSource>), TokenError> {
        let record = self.app.mailbox_of(account).await.map_err(|e| TokenError::Unavailable(e.to_string()))?;
        let Some(record) = record else {
            if let Some((_, _, stop)) = self.managers().remove(account) {
                stop.cancel();
            }
            return Err(TokenError::ReauthorizationRequired(format!(
                "device account {account} has not connected its mailbox (or its token was deleted); it signs in on \
                 its \"My mailbox\" page (/mailbox) and connects it"
            )));
        };
        let mut managers = self.managers();
        if let Some((at, manager, _)) = managers.get(account)
            && *at == record.acquired_at
        {
            return Ok((record.mailbox, Arc::new(manager.clone())));
        }
        let vault = DeviceVault { app: self.app.clone(), account: account.to_owned(), record: record.clone() };
        let manager = TokenManager::new(self.endpoint.clone(), Arc::new(vault), self.options);
        let stop = self.shutdown.child_token();
        manager.spawn_refresher(stop.clone());
        if let Some((_, _, old)) = managers.insert(account.to_owned(), (record.acquired_at, manager.clone(), stop)) {
            old.cancel();
        }
        Ok((record.mailbox, Arc::new(manager)))
    }
}

/// A device account's refresh token, sealed in the database through the app.
#[derive(Debug)]
struct DeviceVault {
    app: App,
    account: String,
    /// The authorization this vault was made for.
    record: MailboxRecord,
}

#[async_trait]
impl Vault for DeviceVault {
    async fn credential(&self) -> Result<Option<Credential>, String> {
        let grant = self.app.mailbox_grant(&self.account).await.map_err(|e| e.to_string())?;
        Ok(grant.map(|g| Credential::RefreshToken(g.refresh_token)))
    }

    async fn store_refreshed(&self, rotated: Option<&SecretString>, _at: DateTime<Utc>) -> Result<(), String> {
        self.app.mailbox_refreshed(self.record.device_id, rotated).await.map_err(|e| e.to_string())
    }

    async fn store_failure(&self, reason: &str, explanation: &str) -> Result<(), String> {
        self.app.mailbox_failed(&self.record, &self.account, reason, explanation).await.map_err(|e| e.to_string())
    }

    fn count_refresh(&self, outcome: &str) {
        self.app.metrics().count("tidings_token_refreshes_total", outcome);
    }
}

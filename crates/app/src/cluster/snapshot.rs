//! The primary's configuration as its followers take it: the snapshot (secrets and refresh tokens encrypted for
//! the receiving node), its digest, and a follower taking it.

use super::{hex, travel_name};
use crate::{
    App, Error, Result,
    cipher::{Cipher, SecretKey},
};
use chrono::Utc;
use sha2::{Digest, Sha256};
use tidings_core::{
    EmailConfig,
    audit::NewAuditEntry,
    cluster::{self, Role},
    secret::{SecretName, SecretString},
};
use tidings_store::{Authorization, ClusterNode, ConfigSave, Grant, Identities, Owner};

/// The primary's configuration as a follower takes it: the configuration, its secrets encrypted for that
/// follower, the nodes, and a digest that changes with any of them.
#[derive(Clone)]
pub struct Snapshot {
    pub digest: String,
    pub primary: String,
    pub epoch: i64,
    pub revision: i64,
    pub config: EmailConfig,
    /// Each secret the primary holds, encrypted with the follower's key (bound to its name and the secret's).
    pub secrets: Vec<(String, Vec<u8>)>,
    pub nodes: Vec<ClusterNode>,
    /// For a backup: the other nodes' keys, encrypted with its own, so that it can serve them once promoted.
    pub keys: Vec<(String, Vec<u8>)>,
    /// The primary's accounts, API tokens and device accounts, with their hashes.
    pub identities: Identities,
    /// The relay account's OAuth authorization, its refresh token encrypted for the follower.
    pub relay: Option<(Authorization, Option<Vec<u8>>)>,
    /// The device accounts' own mailbox authorizations (`login_user`), their refresh tokens encrypted for the
    /// follower.
    pub mailboxes: Vec<(Authorization, Option<Vec<u8>>)>,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("primary", &self.primary)
            .field("revision", &self.revision)
            .finish_non_exhaustive()
    }
}

/// The name an owner's refresh token travels under.
fn refresh_token_name(owner: Owner) -> String {
    match owner {
        Owner::Relay => "refresh_token".to_owned(),
        Owner::Device(id) => format!("device.{id}.refresh_token"),
    }
}

impl App {
    /// On the primary: what changes whenever the configuration, a secret or the list of nodes does.
    pub async fn snapshot_digest(&self) -> Result<String> {
        let current = self.current().await?;
        let mut digest = Sha256::new().chain_update(current.revision.to_be_bytes());
        for sealed in self.store.sealed_secrets().await? {
            digest.update(sealed.name.as_bytes());
            digest.update(&sealed.sealed);
        }
        for node in self.store.cluster_nodes().await?.iter().filter(|n| n.joined_at.is_some()) {
            for part in [Some(&node.name), node.advertise.as_ref(), node.fingerprint.as_ref()].into_iter().flatten() {
                digest.update(part.as_bytes());
            }
            digest.update(node.role.as_str().as_bytes());
        }
        let identities = self.store.identities().await?;
        for (a, hash) in &identities.accounts {
            let locale = a.locale.map(|l| format!("{l:?}")).unwrap_or_default();
            for part in [a.id.to_string().as_str(), &a.username, hash, a.role.as_str(), &locale] {
                digest.update(part.as_bytes());
                digest.update([0]);
            }
        }
        for (t, hash) in &identities.api_tokens {
            digest.update(t.id.to_be_bytes());
            digest.update(hash);
            digest.update(t.role.as_str().as_bytes());
            digest.update([u8::from(t.revoked_at.is_some())]);
        }
        for (d, hash) in &identities.devices {
            for part in [d.id.to_string().as_str(), &d.username, hash, &d.addresses.join(" ")] {
                digest.update(part.as_bytes());
                digest.update([0]);
            }
        }
        // A new authorization changes its acquisition time, a refresh (and so a rotated refresh token) its refresh
        // time: the records tell without reading the tokens.
        for record in self.store.authorizations().await? {
            digest.update(format!("{:?}", record.owner).as_bytes());
            digest.update(record.account.unwrap_or_default().as_bytes());
            digest.update([u8::from(record.client_credentials)]);
            for at in [record.acquired_at, record.refreshed_at] {
                digest.update(at.map(|t| t.timestamp_millis()).unwrap_or_default().to_be_bytes());
            }
        }
        Ok(hex(&digest.finalize()))
    }

    /// On the primary: the snapshot for `node`, its secrets encrypted with its key. The node's sync is recorded.
    pub async fn snapshot_for(&self, node: &ClusterNode) -> Result<Snapshot> {
        let me = self.membership().await?;
        let sealed = node.sealed_key.as_ref().ok_or_else(|| Error::Refused(format!("{} has not joined", node.name)))?;
        let key = SecretKey::from_base64(
            self.cipher.open(&travel_name(&node.name, "key"), sealed)?.expose(),
            "a node's key",
        )?;
        let travel = Cipher::new(&key);
        let digest = self.snapshot_digest().await?;
        let current = self.current().await?;
        let version = node.version.as_deref().unwrap_or_default();
        self.store.cluster_node_seen(&node.name, version, Utc::now(), Some(current.revision)).await?;
        let mut secrets = Vec::new();
        for name in SecretName::ALL {
            if let Some(value) = self.secret(name).await? {
                secrets
                    .push((name.key().to_owned(), travel.seal(&travel_name(&node.name, name.key()), value.expose())));
            }
        }
        let joined: Vec<ClusterNode> =
            self.store.cluster_nodes().await?.into_iter().filter(|n| n.joined_at.is_some()).collect();
        let mut keys = Vec::new();
        if node.role == Role::Backup {
            for other in joined.iter().filter(|n| n.name != node.name) {
                if let Some(sealed) = &other.sealed_key {
                    let key = self.cipher.open(&travel_name(&other.name, "key"), sealed)?;
                    keys.push((other.name.clone(), travel.seal(&travel_name(&node.name, &other.name), key.expose())));
                }
            }
        }
        let nodes = joined
            .into_iter()
            .map(|n| ClusterNode { sealed_key: None, code_hash: None, code_expires_at: None, ..n })
            .collect();
        Ok(Snapshot {
            digest,
            primary: me.name,
            epoch: me.epoch,
            revision: current.revision,
            config: current.config,
            secrets,
            nodes,
            keys,
            identities: self.store.identities().await?,
            relay: self.travelling_authorization(Owner::Relay, &node.name, &travel).await?,
            mailboxes: {
                let mut mailboxes = Vec::new();
                for held in self.store.authorizations().await?.into_iter().filter(|a| a.owner != Owner::Relay) {
                    mailboxes.extend(self.travelling_authorization(held.owner, &node.name, &travel).await?);
                }
                mailboxes
            },
        })
    }

    /// An authorization with its refresh token encrypted for the node `to`.
    async fn travelling_authorization(
        &self,
        owner: Owner,
        to: &str,
        travel: &Cipher,
    ) -> Result<Option<(Authorization, Option<Vec<u8>>)>> {
        let Some((record, sealed)) = self.store.authorization(owner).await? else { return Ok(None) };
        let token = match sealed {
            Some(sealed) => {
                let token = self.refresh_token_opened_for(owner, &sealed)?;
                Some(travel.seal(&travel_name(to, &refresh_token_name(owner)), token.expose()))
            }
            None => None,
        };
        Ok(Some((record, token)))
    }

    /// On a follower: takes the primary's snapshot, keeping this node's own keys. Returns whether anything
    /// changed.
    pub async fn take_snapshot(&self, snapshot: Snapshot) -> Result<bool> {
        let Some(mut me) = self.this_node().await?.filter(|s| s.role.follows()) else {
            return Err(Error::Conflict("this node follows no primary".into()));
        };
        if me.synced_digest.as_deref() == Some(snapshot.digest.as_str()) {
            return Ok(false);
        }
        let Some((_, _, key)) = self.primary_link().await? else {
            return Err(Error::Conflict("this node has no key for its primary; join again".into()));
        };
        let travel = Cipher::new(&key);
        let mut sealed: Vec<(String, Option<Vec<u8>>)> = Vec::new();
        for name in SecretName::ALL {
            let value = match snapshot.secrets.iter().find(|(n, _)| n == name.key()) {
                Some((_, encrypted)) => {
                    let value = travel.open(&travel_name(&me.name, name.key()), encrypted)?;
                    Some(self.cipher.seal(name.key(), value.expose()))
                }
                None => None,
            };
            sealed.push((name.key().to_owned(), value));
        }
        let current = self.current().await?;
        let config = cluster::merged(&snapshot.config, &current.config);
        let audit = NewAuditEntry {
            actor: format!("cluster:{}", snapshot.primary),
            action: "cluster.sync".into(),
            fields: vec![format!("revision {}", snapshot.revision)],
        };
        self.store
            .save_config(ConfigSave {
                base_revision: current.revision,
                config: &config,
                secrets: &sealed,
                audit: &audit,
            })
            .await?;
        let mut nodes = Vec::new();
        for mut node in snapshot.nodes.into_iter().filter(|n| n.name != me.name) {
            if let Some((_, encrypted)) = snapshot.keys.iter().find(|(name, _)| *name == node.name) {
                let key = travel.open(&travel_name(&me.name, &node.name), encrypted)?;
                node.sealed_key = Some(self.cipher.seal(&travel_name(&node.name, "key"), key.expose()));
            }
            nodes.push(node);
        }
        self.store.replace_cluster_nodes(&nodes).await?;
        self.take_authorization(&snapshot.primary, &me.name, &travel, Owner::Relay, snapshot.relay).await?;
        if self.store.identities().await? != snapshot.identities {
            let audit = NewAuditEntry {
                actor: format!("cluster:{}", snapshot.primary),
                action: "cluster.sync-accounts".into(),
                fields: vec![format!(
                    "{} accounts, {} API tokens, {} device accounts",
                    snapshot.identities.accounts.len(),
                    snapshot.identities.api_tokens.len(),
                    snapshot.identities.devices.len()
                )],
            };
            self.store.replace_identities(&snapshot.identities, &audit).await?;
        }
        // The device accounts exist now under the primary's ids: their own mailboxes' authorizations follow.
        let held: Vec<Owner> = self.store.authorizations().await?.into_iter().map(|a| a.owner).collect();
        for owner in held.into_iter().filter(|o| *o != Owner::Relay) {
            if !snapshot.mailboxes.iter().any(|(a, _)| a.owner == owner) {
                self.take_authorization(&snapshot.primary, &me.name, &travel, owner, None).await?;
            }
        }
        for (record, token) in snapshot.mailboxes {
            let owner = record.owner;
            self.take_authorization(&snapshot.primary, &me.name, &travel, owner, Some((record, token))).await?;
        }
        me.primary_name = Some(snapshot.primary);
        me.epoch = me.epoch.max(snapshot.epoch);
        me.synced_revision = Some(snapshot.revision);
        me.synced_digest = Some(snapshot.digest);
        me.synced_at = Some(Utc::now());
        self.store.put_cluster_self(Some(&me), None).await?;
        Ok(true)
    }

    /// On a follower: an authorization as the primary holds it (the relay account's, a device account's own
    /// mailbox), kept (sealed under this node's key) for the day this node is promoted; until then the primary
    /// alone redeems it.
    async fn take_authorization(
        &self,
        primary: &str,
        me: &str,
        travel: &Cipher,
        owner: Owner,
        relay: Option<(Authorization, Option<Vec<u8>>)>,
    ) -> Result<()> {
        let local = self.store.authorization(owner).await?;
        let audit =
            |action: &str| NewAuditEntry { actor: format!("cluster:{primary}"), action: action.into(), fields: vec![] };
        let Some((record, encrypted)) = relay else {
            if local.is_some() {
                self.store.authorization_forget(owner, &audit("cluster.sync-oauth")).await?;
            }
            return Ok(());
        };
        let token = encrypted.map(|e| travel.open(&travel_name(me, &refresh_token_name(owner)), &e)).transpose()?;
        let local_token = match &local {
            Some((_, Some(sealed))) => Some(self.refresh_token_opened_for(owner, sealed)?),
            _ => None,
        };
        let same = local.as_ref().is_some_and(|(l, _)| {
            l.account == record.account
                && l.client_credentials == record.client_credentials
                && l.acquired_at == record.acquired_at
        }) && local_token == token;
        if same {
            return Ok(());
        }
        let sealed = token.map(|t| self.refresh_token_sealed_for(owner, &t));
        let entry = audit("cluster.sync-oauth");
        let grant = Grant::Acquired {
            sealed_refresh_token: sealed.as_deref(),
            account: record.account.as_deref(),
            client_credentials: record.client_credentials,
            audit: &entry,
        };
        Ok(self.store.authorization_granted(owner, grant, record.acquired_at.unwrap_or_else(Utc::now)).await?)
    }

    /// Seals `value` for the node `node`, under `what`.
    pub async fn seal_for_node(&self, node: &ClusterNode, what: &str, value: &SecretString) -> Result<Vec<u8>> {
        let sealed = node.sealed_key.as_ref().ok_or_else(|| Error::Refused(format!("{} has not joined", node.name)))?;
        let key = SecretKey::from_base64(
            self.cipher.open(&travel_name(&node.name, "key"), sealed)?.expose(),
            "a node's key",
        )?;
        Ok(Cipher::new(&key).seal(&travel_name(&node.name, what), value.expose()))
    }

    /// Opens what the primary sealed for this node under `what`.
    pub async fn open_from_primary(&self, what: &str, sealed: &[u8]) -> Result<SecretString> {
        let me = self.membership().await?;
        let Some((_, _, key)) = self.primary_link().await? else {
            return Err(Error::Conflict("this node follows no primary".into()));
        };
        Cipher::new(&key).open(&travel_name(&me.name, what), sealed)
    }

    /// On a follower: the primary answered and nothing changed since the last snapshot.
    pub async fn primary_unchanged(&self) -> Result<()> {
        let Some(mut me) = self.this_node().await?.filter(|s| s.role.follows()) else { return Ok(()) };
        me.synced_at = Some(Utc::now());
        Ok(self.store.put_cluster_self(Some(&me), None).await?)
    }
}

//! This node in its cluster (`tidings_core::cluster`): its certificate for the other nodes, join codes and
//! joining, the nodes it knows, the snapshot of the configuration a primary hands its followers (secrets
//! encrypted for each of them), and a follower taking it. The network is the cluster crate's; this module keeps
//! the state and decides.

use crate::{
    App, Error, Result,
    cipher::{Cipher, SecretKey},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use rustls_pki_types::pem::PemObject;
use sha2::{Digest, Sha256};
use tidings_core::{
    EmailConfig,
    audit::NewAuditEntry,
    cluster::{self, JoinCode, Role},
    secret::{SecretName, SecretString},
};
use tidings_store::{Authorization, ClusterNode, ClusterSelf, ConfigSave, Grant, Identities, Owner};

/// This build's version, compared between the nodes of a cluster.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

const CERTIFICATE: &str = "cluster.certificate";
const LAST_HOOK: &str = "cluster.last_hook";
const CERTIFICATE_KEY: &str = "cluster.certificate_key";
/// The name this node's certificate key is sealed under.
const CERTIFICATE_KEY_SEAL: &str = "cluster.certificate_key";

/// This node's place, standalone when it has none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Membership {
    pub role: Role,
    pub name: String,
    pub epoch: i64,
    pub primary_name: Option<String>,
    pub primary_url: Option<String>,
    /// The primary's revision last taken, and when.
    pub synced_revision: Option<i64>,
    pub synced_at: Option<DateTime<Utc>>,
    /// The last promote or demote hook's outcome, in one line.
    pub last_hook: Option<String>,
}

/// This node's certificate for cluster traffic (self-signed: the others pin its fingerprint).
#[derive(Clone)]
pub struct Identity {
    pub certificate_pem: String,
    pub key_pem: SecretString,
    /// SHA-256 of the certificate, hex.
    pub fingerprint: String,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity").field("fingerprint", &self.fingerprint).finish_non_exhaustive()
    }
}

/// A node asking to join, as it reached the primary.
#[derive(Debug)]
pub struct Joining {
    pub code_secret: SecretString,
    pub name: String,
    pub advertise: String,
    pub fingerprint: String,
    /// The key it chose for its traffic with the primary.
    pub key: SecretKey,
    pub version: String,
}

/// What the primary answers a node that joined.
#[derive(Clone, Debug)]
pub struct Accepted {
    pub primary: String,
    pub epoch: i64,
    pub role: Role,
}

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

/// The bearer a node presents to the primary: derived from the key they exchanged, never the key itself.
pub fn bearer(key: &SecretKey) -> String {
    let digest =
        Sha256::new().chain_update(b"tidings-cluster-bearer:").chain_update(key.to_base64().as_bytes()).finalize();
    URL_SAFE_NO_PAD.encode(digest)
}

/// The name an owner's refresh token travels under.
fn refresh_token_name(owner: Owner) -> String {
    match owner {
        Owner::Relay => "refresh_token".to_owned(),
        Owner::Device(id) => format!("device.{id}.refresh_token"),
    }
}

/// The name a secret travels under to `node`.
fn travel_name(node: &str, secret: &str) -> String {
    format!("cluster:{node}:{secret}")
}

fn hash(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

impl App {
    /// This node in its cluster.
    pub async fn membership(&self) -> Result<Membership> {
        let last_hook = self.store.meta(LAST_HOOK).await?;
        Ok(match self.store.cluster_self().await? {
            Some(s) => Membership {
                role: s.role,
                name: s.name,
                epoch: s.epoch,
                primary_name: s.primary_name,
                primary_url: s.primary_url,
                synced_revision: s.synced_revision,
                synced_at: s.synced_at,
                last_hook,
            },
            None => Membership {
                role: Role::Standalone,
                name: crate::node_name(),
                epoch: 0,
                primary_name: None,
                primary_url: None,
                synced_revision: None,
                synced_at: None,
                last_hook,
            },
        })
    }

    /// The other nodes this node knows.
    pub async fn cluster_nodes(&self) -> Result<Vec<ClusterNode>> {
        Ok(self.store.cluster_nodes().await?)
    }

    /// On a follower, why its configuration (and its accounts, API tokens and device accounts) cannot be changed
    /// here; `None` elsewhere.
    pub async fn read_only_reason(&self) -> Result<Option<String>> {
        let Some(me) = self.store.cluster_self().await?.filter(|s| s.role.follows()) else { return Ok(None) };
        let age = me.synced_at.map(|at| (Utc::now() - at).num_seconds());
        Ok(Some(cluster::read_only_reason(
            me.role,
            me.primary_name.as_deref().unwrap_or("(unknown)"),
            me.synced_revision.unwrap_or(0),
            age,
            me.primary_url.as_deref().unwrap_or_default(),
        )))
    }

    /// Refuses a change of what a follower takes from its primary (accounts, API tokens, device accounts), with
    /// the same words as a refused configuration change.
    pub(crate) async fn refuse_on_follower(&self) -> Result<()> {
        match self.read_only_reason().await? {
            Some(reason) => Err(Error::Conflict(reason)),
            None => Ok(()),
        }
    }

    /// This node's certificate for cluster traffic, made the first time it is needed.
    pub async fn cluster_identity(&self) -> Result<Identity> {
        if self.store.meta(CERTIFICATE).await?.is_none() {
            let made = rcgen::generate_simple_self_signed(vec![format!("tidings-{}", crate::node_name())])
                .map_err(|e| Error::Unavailable(format!("cannot make the cluster certificate: {e}")))?;
            let sealed = self.cipher.seal(CERTIFICATE_KEY_SEAL, &made.key_pair.serialize_pem());
            self.store.set_meta(CERTIFICATE_KEY, Some(&URL_SAFE_NO_PAD.encode(sealed))).await?;
            self.store.set_meta(CERTIFICATE, Some(&made.cert.pem())).await?;
        }
        let certificate_pem = self.store.meta(CERTIFICATE).await?.unwrap_or_default();
        let sealed = self.store.meta(CERTIFICATE_KEY).await?.unwrap_or_default();
        let sealed =
            URL_SAFE_NO_PAD.decode(sealed).map_err(|e| Error::Key(format!("the cluster key is damaged: {e}")))?;
        let key_pem = self.cipher.open(CERTIFICATE_KEY_SEAL, &sealed)?;
        let der = rustls_pki_types::CertificateDer::from_pem_slice(certificate_pem.as_bytes())
            .map_err(|e| Error::Key(format!("the cluster certificate is damaged: {e}")))?;
        let fingerprint = hex(&Sha256::digest(der.as_ref()));
        Ok(Identity { certificate_pem, key_pem, fingerprint })
    }

    /// On the primary (a standalone node becomes it): a join code for a new node `name`, valid for `ttl`.
    pub async fn add_node(&self, actor: &str, name: &str, role: Role, ttl: std::time::Duration) -> Result<String> {
        cluster::validate_node_name(name)?;
        if !role.follows() {
            return Err(Error::Input(format!("a node joins as backup or traffic, not {role}")));
        }
        let own = self.membership().await?.name;
        if name == own {
            return Err(Error::Input(format!("{name} is this node's own name; give the new node another")));
        }
        let known = self.store.cluster_nodes().await?;
        if known.iter().any(|n| n.name == name && n.joined_at.is_some()) {
            return Err(Error::Conflict(format!(
                "a node named {name} is in the cluster already; remove it first (tidings cluster remove {name})"
            )));
        }
        self.primary_or_become_it(actor).await?;
        let secret = crate::sign_in::random_token();
        let node = ClusterNode {
            name: name.to_owned(),
            role,
            code_hash: Some(hash(&secret)),
            code_expires_at: Some(crate::later(Utc::now(), ttl)),
            ..Default::default()
        };
        let audit =
            NewAuditEntry { actor: actor.to_owned(), action: "cluster.add-node".into(), fields: vec![name.to_owned()] };
        self.store.put_cluster_node(&node, Some(&audit)).await?;
        let fingerprint = self.cluster_identity().await?.fingerprint;
        Ok(JoinCode { name: name.to_owned(), secret, fingerprint }.encode())
    }

    /// This node as the primary: made so when standalone; refused on a follower.
    async fn primary_or_become_it(&self, actor: &str) -> Result<ClusterSelf> {
        match self.store.cluster_self().await? {
            Some(me) if me.role == Role::Primary => Ok(me),
            Some(me) => Err(Error::Conflict(format!(
                "this node is a {}; nodes are added on the primary ({})",
                me.role,
                me.primary_url.as_deref().unwrap_or("unknown")
            ))),
            None => {
                let me = ClusterSelf::primary(crate::node_name(), 1);
                let audit = NewAuditEntry {
                    actor: actor.to_owned(),
                    action: "cluster.primary".into(),
                    fields: vec![me.name.clone()],
                };
                self.store.put_cluster_self(Some(&me), Some(&audit)).await?;
                Ok(me)
            }
        }
    }

    /// On the primary: a node presenting its join code. The code works once, for the name it was made for,
    /// until it expires.
    pub async fn accept_join(&self, joining: Joining) -> Result<Accepted> {
        let refused = || {
            Error::Refused("this join code is not valid (wrong, used, or expired); make a new one with tidings cluster add-node on the primary".into())
        };
        let Some(me) = self.store.cluster_self().await?.filter(|s| s.role == Role::Primary) else {
            return Err(Error::Conflict("this node is not a primary: join the primary's address".into()));
        };
        cluster::validate_node_name(&joining.name)?;
        let mut node =
            self.store.cluster_nodes().await?.into_iter().find(|n| n.name == joining.name).ok_or_else(refused)?;
        let valid = node.code_hash.as_deref() == Some(hash(joining.code_secret.expose()).as_slice())
            && node.code_expires_at.is_some_and(|at| at > Utc::now());
        if !valid {
            return Err(refused());
        }
        let now = Utc::now();
        node.code_hash = None;
        node.code_expires_at = None;
        node.advertise = Some(joining.advertise);
        node.fingerprint = Some(joining.fingerprint);
        node.sealed_key = Some(self.cipher.seal(&travel_name(&node.name, "key"), &joining.key.to_base64()));
        node.joined_at = Some(now);
        node.last_contact_at = Some(now);
        node.version = Some(joining.version);
        if node.version.as_deref() != Some(VERSION) {
            self.version_mismatch(&node.name, node.version.as_deref().unwrap_or_default()).await?;
        }
        let audit = NewAuditEntry {
            actor: format!("node:{}", node.name),
            action: "cluster.join".into(),
            fields: vec![node.role.to_string()],
        };
        self.store.put_cluster_node(&node, Some(&audit)).await?;
        Ok(Accepted { primary: me.name, epoch: me.epoch, role: node.role })
    }

    /// On a follower: records the primary it joined.
    pub async fn joined(
        &self,
        actor: &str,
        name: &str,
        primary_url: &str,
        primary_fingerprint: &str,
        key: &SecretKey,
        accepted: &Accepted,
    ) -> Result<()> {
        let me = ClusterSelf {
            role: accepted.role,
            name: name.to_owned(),
            epoch: accepted.epoch,
            primary_name: Some(accepted.primary.clone()),
            primary_url: Some(primary_url.to_owned()),
            primary_fingerprint: Some(primary_fingerprint.to_owned()),
            sealed_key: Some(self.cipher.seal("cluster.primary_key", &key.to_base64())),
            synced_revision: None,
            synced_digest: None,
            synced_at: None,
        };
        let audit = NewAuditEntry {
            actor: actor.to_owned(),
            action: "cluster.joined".into(),
            fields: vec![accepted.primary.clone(), accepted.role.to_string()],
        };
        Ok(self.store.put_cluster_self(Some(&me), Some(&audit)).await?)
    }

    /// On a follower: the primary's address, pinned fingerprint, and the key to reach it with.
    pub async fn primary_link(&self) -> Result<Option<(String, String, SecretKey)>> {
        let Some(me) = self.store.cluster_self().await?.filter(|s| s.role.follows()) else { return Ok(None) };
        let (Some(url), Some(fingerprint), Some(sealed)) = (me.primary_url, me.primary_fingerprint, me.sealed_key)
        else {
            return Ok(None);
        };
        let key =
            SecretKey::from_base64(self.cipher.open("cluster.primary_key", &sealed)?.expose(), "the cluster key")?;
        Ok(Some((url, fingerprint, key)))
    }

    /// On the primary: the joined node presenting `bearer`, when it is one; its contact is recorded.
    pub async fn node_calling(&self, name: &str, bearer_presented: &str, version: &str) -> Result<Option<ClusterNode>> {
        let Some(mut node) = self.store.cluster_nodes().await?.into_iter().find(|n| n.name == name) else {
            return Ok(None);
        };
        let Some(sealed) = &node.sealed_key else { return Ok(None) };
        let key =
            SecretKey::from_base64(self.cipher.open(&travel_name(name, "key"), sealed)?.expose(), "a node's key")?;
        if hash(&bearer(&key)) != hash(bearer_presented) {
            return Ok(None);
        }
        node.last_contact_at = Some(Utc::now());
        node.version = Some(version.to_owned());
        self.store.cluster_node_seen(name, version, Utc::now(), None).await?;
        Ok(Some(node))
    }

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
        for held in self.store.authorizations().await? {
            let Some((record, sealed)) = self.store.authorization(held.owner).await? else { continue };
            digest.update(format!("{:?}", record.owner).as_bytes());
            digest.update(record.account.unwrap_or_default().as_bytes());
            digest.update([u8::from(record.client_credentials)]);
            digest.update(record.acquired_at.map(|t| t.timestamp_millis()).unwrap_or_default().to_be_bytes());
            digest.update(sealed.unwrap_or_default());
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
        let Some(mut me) = self.store.cluster_self().await?.filter(|s| s.role.follows()) else {
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
        let Some(mut me) = self.store.cluster_self().await?.filter(|s| s.role.follows()) else { return Ok(()) };
        me.synced_at = Some(Utc::now());
        Ok(self.store.put_cluster_self(Some(&me), None).await?)
    }

    /// Makes this backup the primary, with an epoch above any it knows: the primary it followed becomes one of
    /// its nodes (reached with the key they share), and every other node authenticates with its own key, which
    /// the primary handed this backup.
    pub async fn promote(&self, actor: &str) -> Result<Membership> {
        let Some(me) = self.store.cluster_self().await? else {
            return Err(Error::Conflict("this node is standalone: there is nothing to promote it in".into()));
        };
        if me.role != Role::Backup {
            return Err(Error::Conflict(format!("this node is a {}; only a backup is promoted", me.role)));
        }
        let now = Utc::now();
        if let (Some(name), Some(url), Some(fingerprint), Some(sealed)) =
            (&me.primary_name, &me.primary_url, &me.primary_fingerprint, &me.sealed_key)
        {
            let key = self.cipher.open("cluster.primary_key", sealed)?;
            let old = ClusterNode {
                name: name.clone(),
                role: Role::Backup,
                advertise: Some(url.clone()),
                fingerprint: Some(fingerprint.clone()),
                sealed_key: Some(self.cipher.seal(&travel_name(name, "key"), key.expose())),
                joined_at: Some(now),
                ..Default::default()
            };
            self.store.put_cluster_node(&old, None).await?;
        }
        for other in self.store.cluster_nodes().await? {
            if let Some(version) = other.version.as_deref().filter(|v| *v != VERSION) {
                self.version_mismatch(&other.name, version).await?;
            }
        }
        let promoted = ClusterSelf::primary(me.name, me.epoch + 1);
        let audit = NewAuditEntry {
            actor: actor.to_owned(),
            action: "cluster.promote".into(),
            fields: vec![format!("epoch {}", promoted.epoch)],
        };
        self.store.put_cluster_self(Some(&promoted), Some(&audit)).await?;
        tracing::warn!(epoch = promoted.epoch, "cluster: this node is now the primary");
        self.membership().await
    }

    /// Makes this node follow `primary`, a node it knows (the primary of a higher epoch, or the one an operator
    /// names), with the key they share.
    pub async fn follow(&self, actor: &str, primary: &str, epoch: i64) -> Result<Membership> {
        let Some(me) = self.store.cluster_self().await? else {
            return Err(Error::Conflict("this node is standalone; join a cluster first".into()));
        };
        let nodes = self.store.cluster_nodes().await?;
        let node = nodes.iter().find(|n| n.name == primary).ok_or_else(|| {
            Error::Input(format!("no node named {primary} is known here; `tidings cluster nodes` lists them"))
        })?;
        let (Some(url), Some(fingerprint)) = (&node.advertise, &node.fingerprint) else {
            return Err(Error::Conflict(format!("{primary} cannot be followed: its address is not known here")));
        };
        // The key shared with that node (a former backup this primary now follows), else this node's own key,
        // which the primary handed every backup.
        let key = match (&node.sealed_key, &me.sealed_key) {
            (Some(sealed), _) => self.cipher.open(&travel_name(primary, "key"), sealed)?,
            (None, Some(own)) => self.cipher.open("cluster.primary_key", own)?,
            (None, None) => {
                return Err(Error::Conflict(format!("{primary} cannot be followed from here: this node holds no key")));
            }
        };
        let was_primary = me.role == Role::Primary;
        let role = if me.role == Role::Traffic { Role::Traffic } else { Role::Backup };
        let following = ClusterSelf {
            role,
            epoch: epoch.max(me.epoch),
            primary_name: Some(primary.to_owned()),
            primary_url: Some(url.clone()),
            primary_fingerprint: Some(fingerprint.clone()),
            sealed_key: Some(self.cipher.seal("cluster.primary_key", key.expose())),
            synced_digest: None,
            ..me
        };
        let action = if was_primary { "cluster.demote" } else { "cluster.follow" };
        let audit = NewAuditEntry { actor: actor.to_owned(), action: action.into(), fields: vec![primary.to_owned()] };
        self.store.put_cluster_self(Some(&following), Some(&audit)).await?;
        tracing::warn!(primary, epoch = following.epoch, role = %role, "cluster: this node now follows another primary");
        self.membership().await
    }

    /// Records the outcome of a promote or demote hook, to show.
    pub async fn hook_ran(&self, outcome: &str) -> Result<()> {
        Ok(self
            .store
            .set_meta(LAST_HOOK, Some(&format!("{} {outcome}", Utc::now().format("%Y-%m-%d %H:%M:%S UTC"))))
            .await?)
    }

    /// Raises `failover.version_mismatch`: a failover operation met a node of another version.
    pub async fn version_mismatch(&self, node: &str, version: &str) -> Result<()> {
        let details = std::collections::BTreeMap::from([
            ("node".to_owned(), node.to_owned()),
            ("this_version".to_owned(), VERSION.to_owned()),
            ("other_version".to_owned(), version.to_owned()),
        ]);
        tracing::warn!(node, version, this_version = VERSION, "cluster: a node runs another version");
        self.raise_event(tidings_core::notify::EventKind::VersionMismatch, details).await?;
        Ok(())
    }

    /// Leaves the cluster: this node is standalone again, with the configuration, accounts and authorization it
    /// holds now (nothing is reset); the nodes it knew are forgotten.
    pub async fn leave(&self, actor: &str) -> Result<()> {
        let Some(me) = self.store.cluster_self().await? else {
            return Err(Error::Conflict("this node is standalone already".into()));
        };
        let audit = NewAuditEntry {
            actor: actor.to_owned(),
            action: "cluster.leave".into(),
            fields: vec![me.role.to_string()],
        };
        self.store.replace_cluster_nodes(&[]).await?;
        Ok(self.store.put_cluster_self(None, Some(&audit)).await?)
    }

    /// On the primary: removes a node (or a join code not used yet).
    pub async fn remove_node(&self, actor: &str, name: &str) -> Result<bool> {
        let audit =
            NewAuditEntry { actor: actor.to_owned(), action: "cluster.remove".into(), fields: vec![name.to_owned()] };
        Ok(self.store.remove_cluster_node(name, &audit).await?)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::{InitOptions, data_dir::DataDir};
    use tidings_core::notify::EventKind;
    use tidings_store::Owner;

    async fn app(dir: &std::path::Path) -> App {
        App::init(DataDir::new(dir), InitOptions { admin_username: "admin".into(), ..Default::default() })
            .await
            .unwrap()
            .app
    }

    /// A code works once, for its name; a node of another version joins, and the primary says so.
    #[tokio::test]
    async fn a_join_code_works_once_and_a_version_mismatch_is_raised() {
        let tmp = tempfile::tempdir().unwrap();
        let primary = app(tmp.path()).await;
        let code = JoinCode::parse(
            &primary.add_node("cli:test", "backup-1", Role::Backup, std::time::Duration::from_secs(60)).await.unwrap(),
        )
        .unwrap();
        assert_eq!(primary.membership().await.unwrap().role, Role::Primary, "a standalone node becomes the primary");
        assert_eq!(code.fingerprint, primary.cluster_identity().await.unwrap().fingerprint);
        let joining = |secret: &str, version: &str| Joining {
            code_secret: SecretString::new(secret),
            name: "backup-1".into(),
            advertise: "https://127.0.0.1:9443".into(),
            fingerprint: "ab".repeat(32),
            key: SecretKey::generate(),
            version: version.into(),
        };
        assert!(matches!(primary.accept_join(joining("wrong", VERSION)).await, Err(Error::Refused(_))));
        let accepted = primary.accept_join(joining(&code.secret, "0.0.1")).await.unwrap();
        assert_eq!((accepted.role, accepted.epoch), (Role::Backup, 1));
        assert!(matches!(primary.accept_join(joining(&code.secret, VERSION)).await, Err(Error::Refused(_))), "once");
        let events = primary.store().pending_events(10).await.unwrap();
        let mismatch = events.iter().find(|e| e.kind == EventKind::VersionMismatch).expect("the mismatch is raised");
        assert_eq!(mismatch.details["other_version"], "0.0.1");
        assert_eq!(mismatch.node, primary.membership().await.unwrap().name);
    }

    /// What a follower takes: the configuration with its secrets, accounts and devices under the primary's ids,
    /// the relay account's authorization and each device's own, their refresh tokens readable there and nowhere
    /// in the snapshot in clear; taking the same snapshot twice changes nothing.
    #[tokio::test]
    async fn a_follower_takes_the_whole_snapshot_and_the_same_one_again_changes_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let primary = app(&tmp.path().join("p")).await;
        let follower = app(&tmp.path().join("f")).await;
        let code = JoinCode::parse(
            &primary
                .add_node("cli:test", "traffic-1", Role::Traffic, std::time::Duration::from_secs(60))
                .await
                .unwrap(),
        )
        .unwrap();
        let key = SecretKey::generate();
        let joining = Joining {
            code_secret: SecretString::new(code.secret.clone()),
            name: "traffic-1".into(),
            advertise: "https://127.0.0.1:9443".into(),
            fingerprint: "ab".repeat(32),
            key: SecretKey::from_base64(&key.to_base64(), "k").unwrap(),
            version: VERSION.into(),
        };
        let accepted = primary.accept_join(joining).await.unwrap();
        follower
            .joined("cli:test", "traffic-1", "https://127.0.0.1:1", &code.fingerprint, &key, &accepted)
            .await
            .unwrap();

        primary
            .update(
                "cli:test",
                &[("sender".into(), "alerts@example.com".into()), ("smtp.password".into(), "relay-pass-1".into())],
            )
            .await
            .unwrap();
        let device = primary
            .create_device("cli:test", "scanner", &SecretString::new("device-pass-12"), &["jane@example.com".into()])
            .await
            .unwrap();
        primary
            .authorized(Owner::Relay, "cli:test", Some(&SecretString::new("relay-refresh")), Some("alerts@example.com"))
            .await
            .unwrap();
        primary
            .authorized(
                Owner::Device(device),
                "cli:test",
                Some(&SecretString::new("jane-refresh")),
                Some("jane@example.com"),
            )
            .await
            .unwrap();

        let node = primary.cluster_nodes().await.unwrap().into_iter().find(|n| n.name == "traffic-1").unwrap();
        let snapshot = primary.snapshot_for(&node).await.unwrap();
        let mut carried: Vec<&[u8]> = snapshot.secrets.iter().map(|(_, v)| v.as_slice()).collect();
        carried.extend(snapshot.relay.iter().chain(&snapshot.mailboxes).filter_map(|(_, t)| t.as_deref()));
        assert_eq!(carried.len(), 3, "the password and two refresh tokens travel");
        for needle in ["relay-pass-1", "relay-refresh", "jane-refresh"] {
            assert!(
                !carried.iter().any(|c| c.windows(needle.len()).any(|w| w == needle.as_bytes())),
                "{needle} in clear"
            );
        }
        assert!(follower.take_snapshot(snapshot.clone()).await.unwrap());
        assert_eq!(follower.secret(SecretName::SmtpPassword).await.unwrap().unwrap().expose(), "relay-pass-1");
        assert_eq!(follower.current().await.unwrap().config.sender.as_deref(), Some("alerts@example.com"));
        assert_eq!(follower.refresh_token(Owner::Relay).await.unwrap().unwrap().expose(), "relay-refresh");
        assert_eq!(follower.refresh_token(Owner::Device(device)).await.unwrap().unwrap().expose(), "jane-refresh");
        assert_eq!(follower.mailbox_of("scanner").await.unwrap().unwrap().account.as_deref(), Some("jane@example.com"));
        let revision = follower.current().await.unwrap().revision;
        assert!(!follower.take_snapshot(snapshot).await.unwrap(), "the same snapshot again changes nothing");
        assert_eq!(follower.current().await.unwrap().revision, revision);

        // A rotation on the primary reaches the follower with the next snapshot; a forgotten mailbox is forgotten.
        primary.token_refreshed(Owner::Relay, Some(&SecretString::new("relay-refresh-2"))).await.unwrap();
        primary.forget_authorization(Owner::Device(device), "cli:test").await.unwrap();
        let snapshot = primary.snapshot_for(&node).await.unwrap();
        assert!(follower.take_snapshot(snapshot).await.unwrap());
        assert_eq!(follower.refresh_token(Owner::Relay).await.unwrap().unwrap().expose(), "relay-refresh-2");
        assert!(follower.mailbox_of("scanner").await.unwrap().is_none());
        assert!(
            matches!(
                follower.authorized(Owner::Relay, "cli:test", Some(&SecretString::new("x")), None).await,
                Err(Error::Conflict(_))
            ),
            "a follower's authorizations are the primary's"
        );
    }
}

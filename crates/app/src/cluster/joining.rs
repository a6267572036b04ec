//! Joining a cluster: join codes on the primary, a node presenting one, the link a follower keeps to its
//! primary, and leaving.

use super::{VERSION, bearer, hash, travel_name};
use crate::{App, Error, Result, cipher::SecretKey};
use chrono::Utc;
use tidings_core::{
    audit::NewAuditEntry,
    cluster::{self, JoinCode, Role},
    secret::SecretString,
};
use tidings_store::{ClusterNode, ClusterSelf};

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

impl App {
    /// On the primary (a standalone node becomes it): a join code for a new node `name`, valid for `ttl`.
    /// `primary_name` names this node when it becomes the primary by this (default: the host name).
    pub async fn add_node(
        &self,
        actor: &str,
        name: &str,
        role: Role,
        ttl: std::time::Duration,
        primary_name: Option<&str>,
    ) -> Result<String> {
        self.refuse_when_shared()?;
        cluster::validate_node_name(name)?;
        if !role.follows() {
            return Err(Error::Input(format!("a node joins as backup or traffic, not {role}")));
        }
        let me = self.membership().await?;
        if let Some(primary) = primary_name {
            cluster::validate_node_name(primary)?;
            if me.role != Role::Standalone && primary != me.name {
                return Err(Error::Conflict(format!(
                    "this node is the primary {} already; --primary-name names a standalone node becoming the primary",
                    me.name
                )));
            }
        }
        let own = primary_name.map_or(me.name, str::to_owned);
        if name == own {
            return Err(Error::Input(format!("{name} is this node's own name; give the new node another")));
        }
        let known = self.store.cluster_nodes().await?;
        if known.iter().any(|n| n.name == name && n.joined_at.is_some()) {
            return Err(Error::Conflict(format!(
                "a node named {name} is in the cluster already; remove it first (tidings cluster remove {name})"
            )));
        }
        self.primary_or_become_it(actor, &own).await?;
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
    async fn primary_or_become_it(&self, actor: &str, name: &str) -> Result<ClusterSelf> {
        match self.this_node().await? {
            Some(me) if me.role == Role::Primary => Ok(me),
            Some(me) => Err(Error::Conflict(format!(
                "this node is a {}; nodes are added on the primary ({})",
                me.role,
                me.primary_url.as_deref().unwrap_or("unknown")
            ))),
            None => {
                let me = ClusterSelf::primary(name.to_owned(), 1);
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
        self.refuse_when_shared()?;
        let refused = || {
            Error::Refused("this join code is not valid (wrong, used, or expired); make a new one with tidings cluster add-node on the primary".into())
        };
        let Some(me) = self.this_node().await?.filter(|s| s.role == Role::Primary) else {
            return Err(Error::Conflict("this node is not a primary: join the primary's address".into()));
        };
        cluster::validate_node_name(&joining.name)?;
        let invited =
            self.store.cluster_nodes().await?.into_iter().find(|n| n.name == joining.name).ok_or_else(refused)?;
        let now = Utc::now();
        let node = ClusterNode {
            advertise: Some(joining.advertise),
            fingerprint: Some(joining.fingerprint),
            sealed_key: Some(self.cipher.seal(&travel_name(&invited.name, "key"), &joining.key.to_base64())),
            joined_at: Some(now),
            last_contact_at: Some(now),
            version: Some(joining.version),
            code_hash: None,
            code_expires_at: None,
            ..invited
        };
        let audit = NewAuditEntry {
            actor: format!("node:{}", node.name),
            action: "cluster.join".into(),
            fields: vec![node.role.to_string()],
        };
        // The code is used up in the same statement that records the node: of two joins with one code, one wins.
        if !self.store.join_cluster_node(&node, &hash(joining.code_secret.expose()), now, &audit).await? {
            return Err(refused());
        }
        if node.version.as_deref() != Some(VERSION) {
            self.version_mismatch(&node.name, node.version.as_deref().unwrap_or_default()).await?;
        }
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
        self.refuse_when_shared()?;
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
        let Some(me) = self.this_node().await?.filter(|s| s.role.follows()) else { return Ok(None) };
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

    /// On the primary: removes a node (or a join code not used yet).
    pub async fn remove_node(&self, actor: &str, name: &str) -> Result<bool> {
        let audit =
            NewAuditEntry { actor: actor.to_owned(), action: "cluster.remove".into(), fields: vec![name.to_owned()] };
        Ok(self.store.remove_cluster_node(name, &audit).await?)
    }

    /// Leaves the cluster: this node is standalone again, with the configuration, accounts and authorization it
    /// holds now (nothing is reset); the nodes it knew are forgotten.
    pub async fn leave(&self, actor: &str) -> Result<()> {
        let Some(me) = self.this_node().await? else {
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
}

//! Failover: a backup promoted to primary, a node following another primary (fencing by epoch).

use super::{Membership, VERSION, travel_name};
use crate::{App, Error, Result};
use chrono::Utc;
use tidings_core::{audit::NewAuditEntry, cluster::Role};
use tidings_store::{ClusterNode, ClusterSelf};

impl App {
    /// Makes this backup the primary, with an epoch above any it knows: the primary it followed becomes one of
    /// its nodes (reached with the key they share), and every other node authenticates with its own key, which
    /// the primary handed this backup.
    pub async fn promote(&self, actor: &str) -> Result<Membership> {
        self.refuse_when_shared()?;
        let Some(me) = self.this_node().await? else {
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
        self.refuse_when_shared()?;
        let Some(me) = self.this_node().await? else {
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
}

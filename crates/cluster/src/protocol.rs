//! The JSON the nodes exchange. Versioned by its path (`/cluster/v1/`); a field added is optional for the
//! other side.

use base64::{Engine, engine::general_purpose::STANDARD};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use tidings_app::cluster::{Accepted, Snapshot};
use tidings_core::{EmailConfig, Invalid, cluster::Role};
use tidings_store::ClusterNode;

/// `POST /cluster/v1/join`.
#[derive(Serialize, Deserialize)]
pub struct JoinRequest {
    pub name: String,
    /// The join code's secret.
    pub code: String,
    /// `https://host:port` of the node's own cluster listener.
    pub advertise: String,
    /// SHA-256 of the node's own cluster certificate, hex.
    pub fingerprint: String,
    /// The key the node chose for its traffic with the primary (base64).
    pub key: String,
    pub version: String,
}

impl std::fmt::Debug for JoinRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinRequest")
            .field("name", &self.name)
            .field("advertise", &self.advertise)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct JoinAnswer {
    pub primary: String,
    pub epoch: i64,
    pub role: String,
}

impl From<&Accepted> for JoinAnswer {
    fn from(a: &Accepted) -> Self {
        Self { primary: a.primary.clone(), epoch: a.epoch, role: a.role.to_string() }
    }
}

impl TryFrom<JoinAnswer> for Accepted {
    type Error = Invalid;
    fn try_from(a: JoinAnswer) -> Result<Self, Invalid> {
        Ok(Self { primary: a.primary, epoch: a.epoch, role: a.role.parse()? })
    }
}

/// A node as the others see it (never its key).
#[derive(Debug, Serialize, Deserialize)]
pub struct Node {
    pub name: String,
    pub role: String,
    pub advertise: Option<String>,
    pub fingerprint: Option<String>,
    pub joined_at: Option<DateTime<Utc>>,
    pub last_contact_at: Option<DateTime<Utc>>,
    pub version: Option<String>,
}

impl From<&ClusterNode> for Node {
    fn from(n: &ClusterNode) -> Self {
        Self {
            name: n.name.clone(),
            role: n.role.to_string(),
            advertise: n.advertise.clone(),
            fingerprint: n.fingerprint.clone(),
            joined_at: n.joined_at,
            last_contact_at: n.last_contact_at,
            version: n.version.clone(),
        }
    }
}

impl TryFrom<Node> for ClusterNode {
    type Error = Invalid;
    fn try_from(n: Node) -> Result<Self, Invalid> {
        Ok(Self {
            name: n.name,
            role: n.role.parse::<Role>()?,
            advertise: n.advertise,
            fingerprint: n.fingerprint,
            joined_at: n.joined_at,
            last_contact_at: n.last_contact_at,
            version: n.version,
            ..Default::default()
        })
    }
}

/// `GET /cluster/v1/snapshot?since=DIGEST&wait=SECONDS`: the primary's configuration for the asking node.
#[derive(Debug, Serialize, Deserialize)]
pub struct SnapshotMessage {
    pub digest: String,
    pub primary: String,
    pub epoch: i64,
    pub revision: i64,
    pub config: EmailConfig,
    /// Secret name → the value encrypted for the asking node (base64).
    pub secrets: BTreeMap<String, String>,
    pub nodes: Vec<Node>,
    /// For a backup: the other nodes' keys, encrypted for it (base64).
    #[serde(default)]
    pub keys: BTreeMap<String, String>,
}

/// `GET /cluster/v1/health`: who answers, in which role and epoch. Needs no key: it says nothing secret, and a
/// node that restarts asks it of every node it knows before it acts.
#[derive(Debug, Serialize, Deserialize)]
pub struct Health {
    pub name: String,
    pub role: String,
    pub epoch: i64,
    pub version: String,
}

impl From<&Snapshot> for SnapshotMessage {
    fn from(s: &Snapshot) -> Self {
        Self {
            digest: s.digest.clone(),
            primary: s.primary.clone(),
            epoch: s.epoch,
            revision: s.revision,
            config: s.config.clone(),
            secrets: s.secrets.iter().map(|(name, sealed)| (name.clone(), STANDARD.encode(sealed))).collect(),
            nodes: s.nodes.iter().map(Node::from).collect(),
            keys: s.keys.iter().map(|(name, sealed)| (name.clone(), STANDARD.encode(sealed))).collect(),
        }
    }
}

impl TryFrom<SnapshotMessage> for Snapshot {
    type Error = Invalid;
    fn try_from(m: SnapshotMessage) -> Result<Self, Invalid> {
        let decoded = |entries: BTreeMap<String, String>| -> Result<Vec<(String, Vec<u8>)>, Invalid> {
            entries
                .into_iter()
                .map(|(name, value)| {
                    STANDARD.decode(value).map(|v| (name.clone(), v)).map_err(|e| Invalid::new(format!("{name}: {e}")))
                })
                .collect()
        };
        let secrets = decoded(m.secrets)?;
        let keys = decoded(m.keys)?;
        Ok(Self {
            digest: m.digest,
            primary: m.primary,
            epoch: m.epoch,
            revision: m.revision,
            config: m.config,
            secrets,
            nodes: m.nodes.into_iter().map(ClusterNode::try_from).collect::<Result<_, _>>()?,
            keys,
        })
    }
}

/// An error's body: `{"error": "..."}`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Refusal {
    pub error: String,
}

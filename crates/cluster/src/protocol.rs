//! The JSON the nodes exchange. Versioned by its path (`/cluster/v1/`); a field added is optional for the
//! other side.

use base64::{Engine, engine::general_purpose::STANDARD};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use tidings_app::cluster::{Accepted, Snapshot};
use tidings_core::{EmailConfig, Invalid, account::Role as AccountRole, cluster::Role, config::Locale};
use tidings_store::{Account, ApiToken, Authorization, ClusterNode, Device, Identities, Owner};

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
    /// The primary's accounts, API tokens and device accounts, with their hashes (never a password or a token).
    #[serde(default)]
    pub accounts: Vec<AccountEntry>,
    #[serde(default)]
    pub api_tokens: Vec<ApiTokenEntry>,
    #[serde(default)]
    pub devices: Vec<DeviceEntry>,
    /// The relay account's OAuth authorization; its refresh token encrypted for the asking node (base64).
    #[serde(default)]
    pub relay: Option<AuthorizationEntry>,
    /// The device accounts' own mailbox authorizations, the same way.
    #[serde(default)]
    pub mailboxes: Vec<AuthorizationEntry>,
}

#[derive(Serialize, Deserialize)]
pub struct AuthorizationEntry {
    /// The device account whose own mailbox it is; absent for the relay account.
    #[serde(default)]
    pub device_id: Option<i64>,
    pub account: Option<String>,
    pub client_credentials: bool,
    pub acquired_at: Option<DateTime<Utc>>,
    pub refresh_token: Option<String>,
}

impl std::fmt::Debug for AuthorizationEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthorizationEntry").field("account", &self.account).finish_non_exhaustive()
    }
}

#[derive(Serialize, Deserialize)]
pub struct AccountEntry {
    pub id: i64,
    pub username: String,
    pub password_hash: String,
    pub role: AccountRole,
    pub created_at: DateTime<Utc>,
    pub locale: Option<Locale>,
}

#[derive(Serialize, Deserialize)]
pub struct ApiTokenEntry {
    pub id: i64,
    pub name: String,
    pub role: AccountRole,
    /// SHA-256 of the token (base64).
    pub token_hash: String,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(Serialize, Deserialize)]
pub struct DeviceEntry {
    pub id: i64,
    pub username: String,
    pub password_hash: String,
    pub addresses: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
}

macro_rules! redacted_debug {
    ($($t:ty),*) => {$(
        impl std::fmt::Debug for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($t)).field("id", &self.id).finish_non_exhaustive()
            }
        }
    )*};
}
redacted_debug!(AccountEntry, ApiTokenEntry, DeviceEntry);

fn identities_out(i: &Identities) -> (Vec<AccountEntry>, Vec<ApiTokenEntry>, Vec<DeviceEntry>) {
    (
        i.accounts
            .iter()
            .map(|(a, hash)| AccountEntry {
                id: a.id,
                username: a.username.clone(),
                password_hash: hash.clone(),
                role: a.role,
                created_at: a.created_at,
                locale: a.locale,
            })
            .collect(),
        i.api_tokens
            .iter()
            .map(|(t, hash)| ApiTokenEntry {
                id: t.id,
                name: t.name.clone(),
                role: t.role,
                token_hash: STANDARD.encode(hash),
                created_at: t.created_at,
                created_by: t.created_by.clone(),
                revoked_at: t.revoked_at,
            })
            .collect(),
        i.devices
            .iter()
            .map(|(d, hash)| DeviceEntry {
                id: d.id,
                username: d.username.clone(),
                password_hash: hash.clone(),
                addresses: d.addresses.clone(),
                created_at: d.created_at,
                created_by: d.created_by.clone(),
            })
            .collect(),
    )
}

fn identities_in(
    accounts: Vec<AccountEntry>,
    api_tokens: Vec<ApiTokenEntry>,
    devices: Vec<DeviceEntry>,
) -> Result<Identities, Invalid> {
    let mut identities = Identities::default();
    for a in accounts {
        let account = Account {
            id: a.id,
            username: a.username,
            role: a.role,
            created_at: a.created_at,
            locale: a.locale,
            locked_until: None,
            last_login_at: None,
        };
        identities.accounts.push((account, a.password_hash));
    }
    for t in api_tokens {
        let hash = STANDARD.decode(&t.token_hash).map_err(|e| Invalid::new(format!("API token {}: {e}", t.id)))?;
        let token = ApiToken {
            id: t.id,
            name: t.name,
            role: t.role,
            created_at: t.created_at,
            created_by: t.created_by,
            last_used_at: None,
            revoked_at: t.revoked_at,
        };
        identities.api_tokens.push((token, hash));
    }
    for d in devices {
        let device = Device {
            id: d.id,
            username: d.username,
            addresses: d.addresses,
            created_at: d.created_at,
            created_by: d.created_by,
        };
        identities.devices.push((device, d.password_hash));
    }
    Ok(identities)
}

fn entry_out((a, token): &(Authorization, Option<Vec<u8>>)) -> AuthorizationEntry {
    AuthorizationEntry {
        device_id: a.owner.device_id(),
        account: a.account.clone(),
        client_credentials: a.client_credentials,
        acquired_at: a.acquired_at,
        refresh_token: token.as_ref().map(|t| STANDARD.encode(t)),
    }
}

fn entry_in(e: AuthorizationEntry) -> Result<(Authorization, Option<Vec<u8>>), Invalid> {
    let token = e
        .refresh_token
        .map(|t| STANDARD.decode(t).map_err(|err| Invalid::new(format!("a refresh token: {err}"))))
        .transpose()?;
    let authorization = Authorization {
        owner: Owner::of_device(e.device_id),
        account: e.account,
        client_credentials: e.client_credentials,
        acquired_at: e.acquired_at,
        acquired_by: None,
        refreshed_at: None,
        failure: None,
        failed_at: None,
    };
    Ok((authorization, token))
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
        let (accounts, api_tokens, devices) = identities_out(&s.identities);
        Self {
            digest: s.digest.clone(),
            primary: s.primary.clone(),
            epoch: s.epoch,
            revision: s.revision,
            config: s.config.clone(),
            secrets: s.secrets.iter().map(|(name, sealed)| (name.clone(), STANDARD.encode(sealed))).collect(),
            nodes: s.nodes.iter().map(Node::from).collect(),
            keys: s.keys.iter().map(|(name, sealed)| (name.clone(), STANDARD.encode(sealed))).collect(),
            accounts,
            api_tokens,
            devices,
            relay: s.relay.as_ref().map(entry_out),
            mailboxes: s.mailboxes.iter().map(entry_out).collect(),
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
            identities: identities_in(m.accounts, m.api_tokens, m.devices)?,
            relay: m.relay.map(entry_in).transpose()?,
            mailboxes: m.mailboxes.into_iter().map(entry_in).collect::<Result<_, _>>()?,
        })
    }
}

/// `GET /cluster/v1/access-token[?refresh=true]`: the relay account's access token, encrypted for the asking node
/// (base64).
#[derive(Serialize, Deserialize)]
pub struct AccessTokenMessage {
    pub token: String,
}

impl std::fmt::Debug for AccessTokenMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AccessTokenMessage(<encrypted>)")
    }
}

/// An error's body: `{"error": "..."}`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Refusal {
    pub error: String,
}

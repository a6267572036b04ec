//! This node in its cluster (`tidings_core::cluster`): its certificate for the other nodes, join codes and
//! joining, the nodes it knows, the snapshot of the configuration a primary hands its followers (secrets
//! encrypted for each of them), and a follower taking it. The network is the cluster crate's; this module keeps
//! the state and decides.

use crate::{App, Error, Result, cipher::SecretKey};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use rustls_pki_types::pem::PemObject;
use sha2::{Digest, Sha256};
use tidings_core::{
    cluster::{self, Role},
    secret::SecretString,
};
use tidings_store::ClusterNode;

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

/// The bearer a node presents to the primary: derived from the key they exchanged, never the key itself.
pub fn bearer(key: &SecretKey) -> String {
    let digest =
        Sha256::new().chain_update(b"tidings-cluster-bearer:").chain_update(key.to_base64().as_bytes()).finalize();
    URL_SAFE_NO_PAD.encode(digest)
}

/// The name a secret travels under to `node`.
fn travel_name(node: &str, secret: &str) -> String {
    format!("cluster:{node}:{secret}")
}

fn hash(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

mod failover;
mod joining;
mod snapshot;

pub use joining::{Accepted, Joining};
pub use snapshot::Snapshot;

impl App {
    /// This node in its cluster.
    pub async fn membership(&self) -> Result<Membership> {
        Ok(match self.this_node().await? {
            Some(s) => Membership {
                role: s.role,
                name: s.name,
                epoch: s.epoch,
                primary_name: s.primary_name,
                primary_url: s.primary_url,
                synced_revision: s.synced_revision,
                synced_at: s.synced_at,
            },
            None => Membership {
                role: Role::Standalone,
                name: crate::node_name(),
                epoch: 0,
                primary_name: None,
                primary_url: None,
                synced_revision: None,
                synced_at: None,
            },
        })
    }

    /// This node's stored place in a cluster; none for the nodes of a shared database, which are peers (the
    /// table is the database's, not the node's, so it is not even read).
    pub async fn this_node(&self) -> Result<Option<tidings_store::ClusterSelf>> {
        if self.dir.store().is_shared() {
            return Ok(None);
        }
        Ok(self.store.cluster_self().await?)
    }

    /// Refuses the roles of a cluster to the nodes of a shared database, which take everything from it already.
    pub(crate) fn refuse_when_shared(&self) -> Result<()> {
        if self.dir.store().is_shared() {
            return Err(Error::Conflict(
                "this node shares its PostgreSQL database with the other nodes, which makes them peers already: \
                 each takes the configuration, the accounts and the outbox from the database. Primary, backup and \
                 traffic nodes (docs/cluster.md) are for nodes that keep their own SQLite database."
                    .into(),
            ));
        }
        Ok(())
    }

    /// The other nodes this node knows.
    pub async fn cluster_nodes(&self) -> Result<Vec<ClusterNode>> {
        Ok(self.store.cluster_nodes().await?)
    }

    /// On a follower, why its configuration (and its accounts, API tokens and device accounts) cannot be changed
    /// here; `None` elsewhere.
    pub async fn read_only_reason(&self) -> Result<Option<String>> {
        let Some(me) = self.this_node().await?.filter(|s| s.role.follows()) else { return Ok(None) };
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

    /// The last promote or demote hook's outcome, in one line with its time.
    pub async fn last_hook(&self) -> Result<Option<String>> {
        Ok(self.store.meta(LAST_HOOK).await?)
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
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::{InitOptions, data_dir::DataDir};
    use tidings_core::{cluster::JoinCode, notify::EventKind, secret::SecretName};
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
            &primary
                .add_node("cli:test", "backup-1", Role::Backup, std::time::Duration::from_secs(60), Some("alpha"))
                .await
                .unwrap(),
        )
        .unwrap();
        let me = primary.membership().await.unwrap();
        assert_eq!((me.role, me.name.as_str()), (Role::Primary, "alpha"), "a standalone node becomes the primary");
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

        // Many nodes presenting one code at once: exactly one joins.
        let code = JoinCode::parse(
            &primary
                .add_node("cli:test", "traffic-9", Role::Traffic, std::time::Duration::from_secs(60), None)
                .await
                .unwrap(),
        )
        .unwrap();
        let racing = (0..8).map(|_| {
            let (primary, secret) = (primary.clone(), code.secret.clone());
            tokio::spawn(async move {
                let join = Joining { name: "traffic-9".into(), ..joining(&secret, VERSION) };
                primary.accept_join(join).await
            })
        });
        let mut joined = 0;
        for attempt in racing.collect::<Vec<_>>() {
            match attempt.await.unwrap() {
                Ok(_) => joined += 1,
                Err(Error::Refused(_)) => {}
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(joined, 1, "a code is used once, also by joins at the same moment");
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
                .add_node("cli:test", "traffic-1", Role::Traffic, std::time::Duration::from_secs(60), None)
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

//! The failover checks, every `cluster.probe_interval`:
//! - a backup probes the primary (by address, and by host name when it has one), the test addresses and itself,
//!   raises the catalogue's `failover.*` events as conditions begin, and takes over when
//!   `tidings_core::cluster::judge` says so;
//! - a follower whose primary does not answer looks for a primary of a higher epoch among the nodes it knows,
//!   and follows it;
//! - a primary asks the nodes it knows for their epoch (at once after a start), and follows one of a higher
//!   epoch; it checks that it holds `cluster.shared_address`, and that a backup took its configuration within
//!   `cluster.sync_failed_after`.
//!
//! Promotions and demotions run the hooks given to `serve` (`--cluster-on-promote`, `--cluster-on-demote`).

use crate::{client, protocol::Health};
use chrono::Utc;
use std::{collections::BTreeMap, collections::BTreeSet, net::IpAddr, time::Duration};
use tidings_app::App;
use tidings_core::{
    cluster::{Role, Seen, judge},
    notify::EventKind,
};
use tokio::{net::TcpStream, task::JoinHandle, time::Instant};
use tokio_util::sync::CancellationToken;

/// The hooks and this node's own address, as `serve` was given them.
#[derive(Clone, Debug, Default)]
pub struct WatchOptions {
    /// `https://127.0.0.1:PORT` of this node's own cluster listener and its certificate's fingerprint, for its
    /// self-probe; `None` without a listener.
    pub own: Option<(String, String)>,
    /// Run (`sh -c`) when this node becomes the primary, and when it stops being it.
    pub on_promote: Option<String>,
    pub on_demote: Option<String>,
    /// The longest a hook may run before it is killed.
    pub hook_timeout: Duration,
}

pub fn spawn(app: App, options: WatchOptions, shutdown: CancellationToken) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut watch =
            Watch { app, options, active: BTreeSet::new(), down_since: None, resolved: None, last_role: None };
        loop {
            let interval = match watch.round().await {
                Ok(interval) => interval,
                Err(e) => {
                    tracing::warn!(error = %e, "cluster: a round of failover checks failed");
                    Duration::from_secs(10)
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(interval) => {}
            }
        }
    })
}

struct Watch {
    app: App,
    options: WatchOptions,
    /// The conditions raised and still holding: each is raised once when it begins.
    active: BTreeSet<EventKind>,
    /// Since when the primary has not answered.
    down_since: Option<Instant>,
    /// The primary's address, from the last time its host name resolved.
    resolved: Option<IpAddr>,
    /// The role at the last look: a change (here, or by `tidings cluster promote` in another process) runs the
    /// promote or demote hook.
    last_role: Option<Role>,
}

type Outcome<T> = Result<T, client::ClusterError>;

impl Watch {
    /// One round; returns the wait before the next.
    async fn round(&mut self) -> Outcome<Duration> {
        let me = self.app.membership().await?;
        let settings = self.app.current().await?.config.cluster;
        let probe_timeout = settings.probe_interval.min(Duration::from_secs(5));
        let conditions = match me.role {
            Role::Standalone => Vec::new(),
            Role::Primary => self.as_primary(me.epoch, &settings, probe_timeout).await?,
            Role::Backup | Role::Traffic => self.as_follower(&me, &settings, probe_timeout).await?,
        };
        self.raise(conditions).await?;
        self.transitions().await?;
        Ok(settings.probe_interval)
    }

    /// Runs the hook of a role change since the last look.
    async fn transitions(&mut self) -> Outcome<()> {
        let me = self.app.membership().await?;
        let before = self.last_role.replace(me.role);
        match before {
            Some(Role::Primary) if me.role != Role::Primary => self.hook(false, me.epoch).await,
            Some(before) if before != Role::Primary && me.role == Role::Primary => self.hook(true, me.epoch).await,
            _ => {}
        }
        Ok(())
    }

    /// Raises each condition that begins now; forgets those that ended.
    async fn raise(&mut self, conditions: Vec<(EventKind, BTreeMap<String, String>)>) -> Outcome<()> {
        let now: BTreeSet<EventKind> = conditions.iter().map(|(k, _)| *k).collect();
        for (kind, details) in conditions {
            if !self.active.contains(&kind) {
                tracing::warn!(kind = kind.id(), "cluster: {}", kind.summary());
                self.app.raise_event(kind, details).await?;
            }
        }
        self.active = now;
        Ok(())
    }

    async fn as_primary(
        &mut self,
        epoch: i64,
        settings: &tidings_core::config::ClusterSettings,
        timeout: Duration,
    ) -> Outcome<Vec<(EventKind, BTreeMap<String, String>)>> {
        let nodes = self.app.cluster_nodes().await?;
        // Fencing: a primary of a higher epoch elsewhere makes this one follow it at once.
        if let Some((name, health)) = newer_among(&nodes, epoch, timeout).await {
            if health.version != crate::VERSION {
                self.app.version_mismatch(&name, &health.version).await?;
            }
            self.app.follow("cluster:fencing", &name, health.epoch).await?;
            return Ok(Vec::new());
        }
        let mut conditions = Vec::new();
        if let Some(shared) = &settings.shared_address {
            match holds(shared).await {
                Some(true) => {}
                Some(false) => conditions.push((EventKind::SharedIpInterfaceDisabled, detail("address", shared))),
                None => conditions.push((EventKind::SharedIpNotListed, detail("address", shared))),
            }
        }
        let window = chrono::Duration::from_std(settings.sync_failed_after).unwrap_or(chrono::Duration::days(1));
        let backups: Vec<_> = nodes.iter().filter(|n| n.role == Role::Backup && n.joined_at.is_some()).collect();
        let synced = |n: &&tidings_store::ClusterNode| {
            n.last_contact_at.or(n.joined_at).is_some_and(|at| Utc::now() - at < window)
        };
        if !backups.is_empty() && !backups.iter().any(synced) {
            conditions.push((EventKind::SyncFailed, BTreeMap::new()));
        }
        Ok(conditions)
    }

    async fn as_follower(
        &mut self,
        me: &tidings_app::cluster::Membership,
        settings: &tidings_core::config::ClusterSettings,
        timeout: Duration,
    ) -> Outcome<Vec<(EventKind, BTreeMap<String, String>)>> {
        let Some((url, fingerprint, _)) = self.app.primary_link().await? else { return Ok(Vec::new()) };
        let backup = me.role == Role::Backup;
        if backup && !settings.backup_enabled {
            self.down_since = None;
            return Ok(vec![(EventKind::BackupDisabled, BTreeMap::new())]);
        }
        let (primary, primary_by_name) = self.probe_primary(&url, &fingerprint, me.epoch, timeout).await;
        if primary {
            self.down_since = None;
        } else {
            self.down_since.get_or_insert_with(Instant::now);
            // Another node may be the primary now (a takeover this node did not see): follow it.
            if let Some((name, health)) = newer_primary(&self.app, me.epoch, timeout).await {
                self.app.follow("cluster:epoch", &name, health.epoch).await?;
                self.down_since = None;
                return Ok(Vec::new());
            }
        }
        // A traffic node only follows; the checks and the takeover are the backup's.
        if !backup {
            return Ok(Vec::new());
        }
        let seen = Seen {
            primary,
            primary_by_name,
            test_addresses: test_addresses(&settings.test_addresses, timeout).await,
            itself: self.probe_itself(timeout).await,
        };
        let verdict = judge(seen, settings, self.down_since.map_or(Duration::ZERO, |since| since.elapsed()));
        if verdict.take_over {
            self.app.promote("cluster:auto-failover").await?;
            self.down_since = None;
            let details = detail("primary", me.primary_name.as_deref().unwrap_or_default());
            self.app.raise_event(EventKind::Takeover, details).await?;
            return Ok(Vec::new());
        }
        let about = detail("primary", me.primary_name.as_deref().unwrap_or_default());
        Ok(verdict.conditions.into_iter().map(|k| (k, about.clone())).collect())
    }

    /// Whether the primary answers (as a primary of this node's epoch or above: one of an older epoch was
    /// replaced while this node was away), and, when its address is a host name, whether it answers by that name.
    /// When the name does not resolve, the address it last resolved to is tried.
    async fn probe_primary(
        &mut self,
        url: &str,
        fingerprint: &str,
        epoch: i64,
        timeout: Duration,
    ) -> (bool, Option<bool>) {
        let parsed = url::Url::parse(url).ok();
        let host = parsed.as_ref().and_then(|u| u.host_str().map(str::to_owned)).unwrap_or_default();
        let port = parsed.as_ref().and_then(url::Url::port_or_known_default).unwrap_or(443);
        if host.trim_matches(['[', ']']).parse::<IpAddr>().is_ok() {
            return (answers_as_primary(url, fingerprint, epoch, timeout).await, None);
        }
        let resolved = tokio::time::timeout(timeout, tokio::net::lookup_host((host.as_str(), port)))
            .await
            .ok()
            .and_then(Result::ok)
            .and_then(|mut addrs| addrs.next());
        if let Some(address) = resolved {
            self.resolved = Some(address.ip());
            let answered = answers_as_primary(url, fingerprint, epoch, timeout).await;
            return (answered, Some(answered));
        }
        let by_address = match self.resolved {
            Some(ip) => answers_as_primary(&url.replacen(&host, &bracketed(ip), 1), fingerprint, epoch, timeout).await,
            None => false,
        };
        (by_address, Some(false))
    }

    /// Whether this node's own cluster listener answers (true without one).
    async fn probe_itself(&self, timeout: Duration) -> bool {
        match &self.options.own {
            Some((url, fingerprint)) => client::health(url, fingerprint, timeout).await.is_ok(),
            None => true,
        }
    }

    /// Runs the promote or demote hook, with a timeout; the outcome is logged.
    async fn hook(&self, promoted: bool, epoch: i64) {
        let (which, command) =
            if promoted { ("promote", &self.options.on_promote) } else { ("demote", &self.options.on_demote) };
        let Some(command) = command else { return };
        let mut child = tokio::process::Command::new("sh");
        child
            .args(["-c", command])
            .env("TIDINGS_CLUSTER_EVENT", which)
            .env("TIDINGS_CLUSTER_EPOCH", epoch.to_string())
            .kill_on_drop(true);
        let outcome = match tokio::time::timeout(self.options.hook_timeout, child.output()).await {
            Ok(Ok(out)) if out.status.success() => {
                tracing::info!(hook = which, "cluster: the {which} hook succeeded");
                format!("{which} hook: succeeded")
            }
            Ok(Ok(out)) => {
                let said = String::from_utf8_lossy(&out.stderr).lines().next().unwrap_or_default().to_owned();
                tracing::error!(hook = which, status = %out.status, stderr = %said, "cluster: the {which} hook failed");
                format!("{which} hook: failed ({}): {said}", out.status)
            }
            Ok(Err(e)) => {
                tracing::error!(hook = which, error = %e, "cluster: the {which} hook could not start");
                format!("{which} hook: could not start: {e}")
            }
            Err(_) => {
                tracing::error!(
                    hook = which,
                    timeout = ?self.options.hook_timeout,
                    "cluster: the {which} hook did not finish in time and was stopped"
                );
                format!("{which} hook: stopped after {:?}", self.options.hook_timeout)
            }
        };
        if let Err(e) = self.app.hook_ran(&outcome).await {
            tracing::warn!(error = %e, "cluster: cannot record the hook's outcome");
        }
    }
}

/// Whether the node at `url` answers as a primary of `epoch` or above.
async fn answers_as_primary(url: &str, fingerprint: &str, epoch: i64, timeout: Duration) -> bool {
    client::health(url, fingerprint, timeout).await.is_ok_and(|h| h.role == "primary" && h.epoch >= epoch)
}

/// A node this one knows that answers as the primary of an epoch above `epoch`: its name and what it answered.
pub async fn newer_primary(app: &App, epoch: i64, timeout: Duration) -> Option<(String, Health)> {
    newer_among(&app.cluster_nodes().await.ok()?, epoch, timeout).await
}

async fn newer_among(nodes: &[tidings_store::ClusterNode], epoch: i64, timeout: Duration) -> Option<(String, Health)> {
    for node in nodes {
        let (Some(url), Some(fingerprint)) = (&node.advertise, &node.fingerprint) else { continue };
        if let Ok(health) = client::health(url, fingerprint, timeout).await
            && health.role == "primary"
            && health.epoch > epoch
        {
            return Some((node.name.clone(), health));
        }
    }
    None
}

/// Whether at least one of `addresses` (`HOST:PORT`) accepts a TCP connection, all tried at once; `None` when
/// there are none.
async fn test_addresses(addresses: &[String], timeout: Duration) -> Option<bool> {
    if addresses.is_empty() {
        return None;
    }
    let mut tries = tokio::task::JoinSet::new();
    for address in addresses.iter().cloned() {
        tries.spawn(async move {
            tokio::time::timeout(timeout, TcpStream::connect(address)).await.is_ok_and(|c| c.is_ok())
        });
    }
    while let Some(answered) = tries.join_next().await {
        if answered.unwrap_or(false) {
            return Some(true);
        }
    }
    Some(false)
}

fn bracketed(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

fn detail(key: &str, value: &str) -> BTreeMap<String, String> {
    BTreeMap::from([(key.to_owned(), value.to_owned())])
}

/// Whether one of this machine's interfaces holds `address` (as `ip -o addr` lists them, loopback included):
/// `Some(true)` on an interface that is up, `Some(false)` on one that is down, `None` when none holds it.
async fn holds(address: &str) -> Option<bool> {
    let addresses = tokio::process::Command::new("ip").args(["-o", "addr", "show"]).output().await.ok()?;
    let links = tokio::process::Command::new("ip").args(["-o", "link", "show"]).output().await.ok()?;
    let addresses = String::from_utf8_lossy(&addresses.stdout);
    let links = String::from_utf8_lossy(&links.stdout);
    let interface = addresses.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        let _index = words.next()?;
        let name = words.next()?;
        let _family = words.next()?;
        let cidr = words.next()?;
        (cidr.split('/').next() == Some(address)).then(|| name.to_owned())
    })?;
    let up = links.lines().any(|line| {
        let mut words = line.split_whitespace();
        let _index = words.next();
        words.next().map(|n| n.trim_end_matches(':').split('@').next().unwrap_or_default().to_owned()).as_deref()
            == Some(interface.as_str())
            && (line.contains("state UP") || line.contains("state UNKNOWN"))
            && line.contains(",UP")
    });
    Some(up)
}

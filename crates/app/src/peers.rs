//! The daemons that share this node's database: each says every heartbeat that it is there, under its name
//! (`--node-id`, which its message leases carry) and its data directory's id. Two live nodes of one name would take
//! each other's leases, so a daemon refuses to start under a name another live node uses.

use crate::{App, Error, Result};
use chrono::{DateTime, Utc};
use std::time::Duration;
pub use tidings_store::Peer;

/// A node not heard from for this many heartbeats is taken for gone.
const MISSED: u32 = 3;

/// Whether `peer` was heard from recently enough, at `now`, to be taken for live.
pub fn live(peer: &Peer, now: DateTime<Utc>, heartbeat: Duration) -> bool {
    let silence = (now - peer.seen_at).to_std().unwrap_or_default();
    silence < heartbeat * MISSED
}

impl App {
    /// Says that this daemon (`me`) uses the database; refused when another live node has its name.
    pub async fn announce(&self, me: &Peer, heartbeat: Duration, first: bool) -> Result<()> {
        if first
            && let Some(other) = self
                .store
                .peers()
                .await?
                .into_iter()
                .find(|p| p.node == me.node && p.instance != me.instance && live(p, me.seen_at, heartbeat))
        {
            return Err(Error::Conflict(format!(
                "another node named {:?} uses this database (it listens on {}, and was heard from {} s ago): give \
                 each node its own name with --node-id",
                other.node,
                other.address.as_deref().unwrap_or("an unknown address"),
                (me.seen_at - other.seen_at).num_seconds().max(0)
            )));
        }
        Ok(self.store.peer_seen(me).await?)
    }

    /// The daemons that use the database, each with the messages it holds leased.
    pub async fn peers(&self) -> Result<Vec<Peer>> {
        Ok(self.store.peers().await?)
    }

    /// This daemon stops.
    pub async fn leave_peers(&self, node: &str) -> Result<()> {
        Ok(self.store.peer_gone(node).await?)
    }
}

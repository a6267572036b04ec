//! A follower's task: while this node is a backup or traffic node, it asks its primary for the configuration
//! (a long poll) and takes every new snapshot; the configuration in force follows through the daemon's live
//! configuration. When the primary is away, the last copy stays in force.

use crate::client::Primary;
use std::sync::Arc;
use std::time::Duration;
use tidings_app::{App, cluster::Snapshot};
use tokio::{sync::Notify, task::JoinHandle};
use tokio_util::sync::CancellationToken;

/// How the follower asks.
#[derive(Clone, Copy, Debug)]
pub struct FollowOptions {
    /// How long one long poll waits for a change on the primary.
    pub wait: Duration,
    /// The pause after a failed attempt, doubling up to `retry_max`.
    pub retry_first: Duration,
    pub retry_max: Duration,
    /// How often a node that follows no primary looks whether it joined one.
    pub idle_check: Duration,
}

impl Default for FollowOptions {
    fn default() -> Self {
        Self {
            wait: Duration::from_secs(20),
            retry_first: Duration::from_secs(1),
            retry_max: Duration::from_secs(30),
            idle_check: Duration::from_secs(1),
        }
    }
}

/// Follows the primary while this node is a backup or traffic node; `taken` is notified after each snapshot taken,
/// so that the daemon puts the new configuration in force at once rather than at its next poll.
pub fn spawn(app: App, options: FollowOptions, taken: Arc<Notify>, shutdown: CancellationToken) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut pause = options.retry_first;
        let mut failing = false;
        loop {
            let next = tokio::select! {
                () = shutdown.cancelled() => return,
                next = turn(&app, options, &taken) => next,
            };
            let wait = match next {
                Ok(Turn::Idle) => options.idle_check,
                Ok(Turn::Asked) => {
                    if failing {
                        tracing::info!("cluster: the primary answers again");
                        failing = false;
                    }
                    pause = options.retry_first;
                    Duration::ZERO
                }
                Err(e) => {
                    if !failing {
                        tracing::warn!(error = %e, "cluster: cannot take the primary's configuration; the last copy stays in force");
                        failing = true;
                    }
                    let now = pause;
                    pause = (pause * 2).min(options.retry_max);
                    now
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
        }
    })
}

enum Turn {
    /// This node follows no primary.
    Idle,
    /// The primary answered (with a snapshot or with no change).
    Asked,
}

async fn turn(app: &App, options: FollowOptions, taken: &Notify) -> Result<Turn, crate::client::ClusterError> {
    let Some((url, fingerprint, key)) = app.primary_link().await? else { return Ok(Turn::Idle) };
    let me = app.this_node().await?.ok_or(tidings_app::Error::Conflict("this node left its cluster".into()))?;
    let primary = Primary::new(&url, &fingerprint, options.wait + Duration::from_secs(10))?;
    match primary.snapshot(&me.name, me.epoch, &key, me.synced_digest.as_deref(), options.wait).await? {
        Some(message) => {
            let snapshot = Snapshot::try_from(message)?;
            let revision = snapshot.revision;
            if app.take_snapshot(snapshot).await? {
                taken.notify_one();
                tracing::info!(
                    revision,
                    primary = me.primary_name.as_deref().unwrap_or_default(),
                    "cluster: took the primary's configuration"
                );
            }
        }
        None => app.primary_unchanged().await?,
    }
    Ok(Turn::Asked)
}

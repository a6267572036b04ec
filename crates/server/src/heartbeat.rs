//! On a database other nodes share: this daemon says it is there, at start (refused when another live node has
//! its name) and every heartbeat, and that it is gone when it stops. What the nodes said is what `/readyz`, the
//! metrics and the cluster page show.

use std::{net::SocketAddr, time::Duration};
use tidings_app::{App, peers::Peer};
use tokio_util::sync::CancellationToken;

/// Announces this daemon (`node`, listening on `address`), then every `every` until `shutdown`.
pub(crate) async fn start(
    app: App,
    node: String,
    address: SocketAddr,
    every: Duration,
    shutdown: CancellationToken,
) -> tidings_app::Result<tokio::task::JoinHandle<()>> {
    let now = chrono::Utc::now();
    let mut me = Peer {
        node,
        instance: app.data_dir().instance_id()?,
        version: env!("CARGO_PKG_VERSION").to_owned(),
        address: Some(address.to_string()),
        started_at: now,
        seen_at: now,
        leased: 0,
    };
    app.announce(&me, every, true).await?;
    Ok(tokio::spawn(async move {
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = ticker.tick() => {}
            }
            me.seen_at = chrono::Utc::now();
            if let Err(e) = app.announce(&me, every, false).await {
                tracing::warn!(error = %e, "could not tell the other nodes this one is there; trying again");
            }
        }
        if let Err(e) = app.leave_peers(&me.node).await {
            tracing::warn!(error = %e, "could not tell the other nodes this one stops");
        }
    }))
}

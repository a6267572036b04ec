//! One listening socket of the gateway (plain or implicit TLS): bound while its address is configured, kept
//! as it is across every other change, and accepting connections within the connection limits.

use crate::{
    Shared, session,
    slots::{Full, Slot},
    wire,
};
use std::{net::SocketAddr, sync::Arc};
use tokio::{io::AsyncWriteExt, net::TcpListener, task::JoinHandle};
use tokio_util::sync::CancellationToken;

#[derive(Debug)]
pub(crate) struct Listener {
    implicit_tls: bool,
    /// The configured address.
    address: Option<String>,
    /// The accept loop, while bound.
    running: Option<(CancellationToken, JoinHandle<()>)>,
    /// Why it is not bound.
    error: Option<String>,
}

impl Listener {
    pub fn new(implicit_tls: bool) -> Self {
        Self { implicit_tls, address: None, running: None, error: None }
    }

    pub fn address(&self) -> Option<&str> {
        self.address.as_deref()
    }

    pub fn report(&self) -> Option<crate::ListenerReport> {
        Some(crate::ListenerReport {
            address: self.address.clone()?,
            implicit_tls: self.implicit_tls,
            error: self.error.clone(),
        })
    }

    /// Stops accepting and closes the socket (sessions under way go on); returns once it is closed.
    pub async fn stop(&mut self) {
        if let Some((stop, task)) = self.running.take() {
            stop.cancel();
            let _ = task.await;
        }
        self.address = None;
        self.error = None;
    }

    /// Listens on `address` unless it does already; a bind that fails is tried again at the next call.
    pub async fn ensure(
        &mut self,
        address: Option<&str>,
        shared: &Arc<Shared>,
        shutdown: &CancellationToken,
        recheck: std::time::Duration,
    ) {
        self.address = address.map(str::to_owned);
        let Some(address) = address else { return };
        if self.running.is_some() {
            return;
        }
        if self.implicit_tls && shared.tls().is_none() {
            self.error = Some(format!(
                "the TLS listener {address} needs a usable certificate (gateway.cert_file, gateway.key_file); not listening"
            ));
            return;
        }
        match TcpListener::bind(address).await {
            Ok(listener) => {
                tracing::info!(%address, tls = self.implicit_tls, "gateway listening");
                let stop = shutdown.child_token();
                let task = tokio::spawn(accept_loop(
                    listener,
                    shared.clone(),
                    self.implicit_tls,
                    stop.clone(),
                    shutdown.clone(),
                ));
                self.running = Some((stop, task));
                self.error = None;
            }
            Err(e) => {
                let why = format!(
                    "cannot listen on {address}: {e}; fix gateway.{} or free the port (tried again every {})",
                    if self.implicit_tls { "tls_listen" } else { "listen" },
                    humanize(recheck)
                );
                if self.error.as_deref() != Some(&why) {
                    tracing::error!(%address, error = %e, "gateway: {why}");
                }
                self.error = Some(why);
            }
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    implicit_tls: bool,
    stop: CancellationToken,
    shutdown: CancellationToken,
) {
    loop {
        let (stream, peer): (_, SocketAddr) = tokio::select! {
            () = stop.cancelled() => return,
            accepted = tidings_app::accept::next(&listener, "gateway") => accepted,
        };
        let (idle, max, per_address) = {
            let current = shared.config.borrow();
            let g = &current.config.gateway;
            (g.idle_timeout, g.max_connections, g.max_connections_per_address)
        };
        let slot: Slot = match shared.slots.take(peer.ip(), max, per_address) {
            Ok(slot) => slot,
            Err(full) => {
                let (label, text) = match full {
                    Full::All => ("refused_busy", "421 4.7.0 too many connections; try again later\r\n"),
                    Full::Address => {
                        ("refused_per_address", "421 4.7.0 too many connections from your address; try again later\r\n")
                    }
                };
                shared.app.metrics().count("tidings_gateway_sessions_total", label);
                tracing::warn!(%peer, limit = label, "gateway: connection limit reached");
                // The one line, without a session's buffers: a flood of refusals stays small.
                tokio::spawn(async move {
                    let mut stream = stream;
                    let _ = tokio::time::timeout(idle, stream.write_all(text.as_bytes())).await;
                });
                continue;
            }
        };
        shared.app.metrics().count("tidings_gateway_sessions_total", "accepted");
        // Replies are written whole (see `wire`): waiting for the client's acknowledgement of the last one first
        // (Nagle's algorithm) would only hold them up.
        let _ = stream.set_nodelay(true);
        let (shared, shutdown) = (shared.clone(), shutdown.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let started = std::time::Instant::now();
            let metrics = shared.app.clone();
            // Whatever way the session ends (a quit, a timeout, a failed handshake, the shutdown), it is timed.
            let _timed = scopeguard(move || metrics.metrics().gateway_session(started.elapsed()));
            let wire = if implicit_tls {
                let Some(acceptor) = shared.tls() else { return };
                match tokio::time::timeout(idle, acceptor.accept(stream)).await {
                    Ok(Ok(tls)) => wire::Wire::new(Box::new(tls), idle),
                    _ => return tracing::debug!(%peer, "gateway: TLS handshake failed"),
                }
            } else {
                wire::Wire::new(Box::new(stream), idle)
            };
            tokio::select! {
                () = session::serve(shared, wire, peer, implicit_tls) => {}
                () = shutdown.cancelled() => {}
            }
        });
    }
}

/// `10 s`, `500 ms`.
fn humanize(d: std::time::Duration) -> String {
    if d.as_millis().is_multiple_of(1000) { format!("{} s", d.as_secs()) } else { format!("{} ms", d.as_millis()) }
}

/// Runs `done` when dropped.
fn scopeguard(done: impl FnOnce()) -> impl Drop {
    struct Guard<F: FnOnce()>(Option<F>);
    impl<F: FnOnce()> Drop for Guard<F> {
        fn drop(&mut self) {
            if let Some(done) = self.0.take() {
                done();
            }
        }
    }
    Guard(Some(done))
}

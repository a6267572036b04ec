//! The SMTP submission gateway: printers, scanners and old appliances send with plain SMTP (a password, or
//! no authentication from listed networks); Tidings answers `250` only once the message is durably in the
//! outbox, then delivers it like any other message (OAuth upstream, retries, the delivery log).
//!
//! - [`Gateway::spawn`] runs the listeners the configuration asks for (`gateway.listen` with STARTTLS,
//!   `gateway.tls_listen` with implicit TLS) and restarts them when those settings change.
//! - `session.rs` drives the protocol core (`tidings_core::submission`) for one client; `wire.rs` reads
//!   lines and data with timeouts; `guard.rs` holds the per-address lockouts and rate limits.

mod guard;
mod session;
mod wire;

use rustls::{ServerConfig, crypto::ring};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use std::{net::SocketAddr, sync::Arc};
use tidings_app::{App, outbox::Committer, settings::Current};
use tokio::{
    net::TcpListener,
    sync::{Semaphore, watch},
};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

/// What every session uses.
pub(crate) struct Shared {
    pub app: App,
    pub config: watch::Receiver<Arc<Current>>,
    pub committer: Committer,
    pub guard: guard::Guard,
    pub tls: Option<TlsAcceptor>,
    /// The name in the greeting and EHLO, read once.
    pub host_name: String,
}

/// The gateway, following the configuration in force.
#[derive(Debug)]
pub struct Gateway {
    pub app: App,
    pub config: watch::Receiver<Arc<Current>>,
    pub committer: Committer,
}

/// The settings that need the listeners restarted.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Listeners {
    listen: Option<String>,
    tls_listen: Option<String>,
    cert_file: Option<String>,
    key_file: Option<String>,
    max_connections: u32,
}

impl Listeners {
    fn of(current: &Current) -> Self {
        let g = &current.config.gateway;
        Self {
            listen: g.listen.clone(),
            tls_listen: g.tls_listen.clone(),
            cert_file: g.cert_file.clone(),
            key_file: g.key_file.clone(),
            max_connections: g.max_connections,
        }
    }
}

/// Loads the certificate and key for STARTTLS and the TLS listener.
fn acceptor(cert: &str, key: &str) -> Result<TlsAcceptor, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|c| c.collect::<Result<_, _>>())
        .map_err(|e| format!("gateway.cert_file {cert}: {e}"))?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("gateway.key_file {key}: {e}"))?;
    let config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("gateway.cert_file and gateway.key_file: {e}"))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

impl Gateway {
    /// Runs until `shutdown`.
    pub fn spawn(mut self, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut running: Option<(Listeners, CancellationToken)> = None;
            loop {
                let wanted = Listeners::of(&self.config.borrow_and_update());
                if running.as_ref().map(|(l, _)| l) != Some(&wanted) {
                    if let Some((_, stop)) = running.take() {
                        stop.cancel();
                    }
                    let stop = shutdown.child_token();
                    self.start(&wanted, stop.clone()).await;
                    running = Some((wanted, stop));
                }
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    changed = self.config.changed() => if changed.is_err() { return },
                }
            }
        })
    }

    async fn start(&self, wanted: &Listeners, stop: CancellationToken) {
        if wanted.listen.is_none() && wanted.tls_listen.is_none() {
            return;
        }
        let tls = match (&wanted.cert_file, &wanted.key_file) {
            (Some(cert), Some(key)) => match acceptor(cert, key) {
                Ok(a) => Some(a),
                Err(why) => {
                    tracing::error!(error = %why, "gateway: the certificate cannot be used; TLS is off until it is fixed");
                    None
                }
            },
            _ => None,
        };
        let shared = Arc::new(Shared {
            app: self.app.clone(),
            config: self.config.clone(),
            committer: self.committer.clone(),
            guard: guard::Guard::default(),
            tls,
            host_name: tidings_app::host_name().unwrap_or_else(|| "tidings".into()),
        });
        let connections = Arc::new(Semaphore::new(wanted.max_connections as usize));
        for (address, implicit_tls) in [(&wanted.listen, false), (&wanted.tls_listen, true)] {
            let Some(address) = address else { continue };
            if implicit_tls && shared.tls.is_none() {
                tracing::error!(%address, "gateway: the TLS listener needs a usable certificate; not listening");
                continue;
            }
            match TcpListener::bind(address).await {
                Ok(listener) => {
                    tracing::info!(%address, tls = implicit_tls, "gateway listening");
                    tokio::spawn(accept_loop(
                        listener,
                        shared.clone(),
                        connections.clone(),
                        implicit_tls,
                        stop.clone(),
                    ));
                }
                Err(e) => {
                    tracing::error!(%address, error = %e, "gateway: cannot listen; fix gateway.listen / gateway.tls_listen")
                }
            }
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    connections: Arc<Semaphore>,
    implicit_tls: bool,
    stop: CancellationToken,
) {
    loop {
        let (stream, peer): (_, SocketAddr) = tokio::select! {
            () = stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(error = %e, "gateway: accept failed");
                    continue;
                }
            },
        };
        let idle = shared.config.borrow().config.gateway.idle_timeout;
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            shared.app.metrics().count("tidings_gateway_sessions_total", "refused_busy");
            tracing::warn!(%peer, "gateway: connection limit reached");
            tokio::spawn(async move {
                let mut wire = wire::Wire::new(Box::new(stream), idle);
                let _ = wire.send("421 4.7.0 too many connections; try again later\r\n").await;
            });
            continue;
        };
        shared.app.metrics().count("tidings_gateway_sessions_total", "accepted");
        let (shared, stop) = (shared.clone(), stop.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let wire = if implicit_tls {
                let Some(acceptor) = shared.tls.clone() else { return };
                match tokio::time::timeout(idle, acceptor.accept(stream)).await {
                    Ok(Ok(tls)) => wire::Wire::new(Box::new(tls), idle),
                    _ => return tracing::debug!(%peer, "gateway: TLS handshake failed"),
                }
            } else {
                wire::Wire::new(Box::new(stream), idle)
            };
            tokio::select! {
                () = session::serve(shared, wire, peer, implicit_tls) => {}
                () = stop.cancelled() => {}
            }
        });
    }
}

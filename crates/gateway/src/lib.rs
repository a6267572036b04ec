//! The SMTP submission gateway: printers, scanners and old appliances send with plain SMTP (a password, or
//! no authentication from listed networks); Tidings answers `250` only once the message is durably in the
//! outbox, then delivers it like any other message (OAuth upstream, retries, the delivery log).
//!
//! - [`Gateway::spawn`] follows the configuration: `listener.rs` binds `gateway.listen` (STARTTLS) and
//!   `gateway.tls_listen` (implicit TLS), rebinding only an address that changed, and retrying one that could
//!   not be bound; the certificate is reloaded when its settings or its files change, and a broken new one
//!   leaves the previous one in force. Sessions under way survive every change. [`Status`] says what listens.
//! - `session.rs` drives the protocol core (`tidings_core::submission`) for one client; `wire.rs` reads
//!   lines and data with timeouts; `guard.rs` holds the per-address lockouts and rate limits; `slots.rs` the
//!   connection limits.

mod guard;
mod listener;
mod session;
mod slots;
mod wire;

use std::{
    path::Path,
    sync::{Arc, Mutex, RwLock},
    time::{Duration, SystemTime},
};
use tidings_app::{App, outbox::Committer, settings::Current};
use tidings_core::config::gateway::GatewaySettings;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

/// How often the gateway looks again at its certificate files and at a listener it could not bind, by default.
pub const RECHECK: Duration = Duration::from_secs(10);

/// What every session uses.
pub(crate) struct Shared {
    pub app: App,
    pub config: watch::Receiver<Arc<Current>>,
    pub committer: Committer,
    pub guard: guard::Guard,
    /// The certificate in force, replaced when a new one loads.
    tls: RwLock<Option<TlsAcceptor>>,
    pub slots: Arc<slots::Slots>,
    /// The last message accepted, for the status page.
    pub last: Arc<Mutex<Option<Accepted>>>,
    /// The name in the greeting and EHLO, read once.
    pub host_name: String,
}

impl Shared {
    pub fn tls(&self) -> Option<TlsAcceptor> {
        self.tls.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// The gateway, following the configuration in force.
#[derive(Debug)]
pub struct Gateway {
    pub app: App,
    pub config: watch::Receiver<Arc<Current>>,
    pub committer: Committer,
    pub status: Status,
    /// How often to look again at the certificate files and at a listener that could not be bound.
    pub recheck: Duration,
    /// Where this node listens instead of the configured addresses.
    pub places: Places,
}

/// This node's own addresses for the listeners the configuration turns on (`serve --gateway-listen`), for nodes
/// that share one configuration and one host. The configuration still decides whether each listener runs.
#[derive(Clone, Debug, Default)]
pub struct Places {
    pub listen: Option<String>,
    pub tls_listen: Option<String>,
}

impl Places {
    /// The addresses to listen on: the configured ones, moved where this node says.
    fn wanted(&self, g: &GatewaySettings) -> [Option<String>; 2] {
        let place = |configured: &Option<String>, own: &Option<String>| {
            configured.as_ref().map(|c| own.clone().unwrap_or_else(|| c.clone()))
        };
        [place(&g.listen, &self.listen), place(&g.tls_listen, &self.tls_listen)]
    }
}

/// What the gateway is doing: for `/readyz`, the metrics and the web interface.
#[derive(Clone, Debug, Default)]
pub struct Status {
    report: Arc<Mutex<Report>>,
    slots: Arc<slots::Slots>,
    last: Arc<Mutex<Option<Accepted>>>,
}

/// A message the gateway accepted: from which device, when, and its id in the outbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accepted {
    /// The device account that authenticated, or the client's address.
    pub device: String,
    pub at: chrono::DateTime<chrono::Utc>,
    pub id: i64,
}

/// One configured listener.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenerReport {
    pub address: String,
    pub implicit_tls: bool,
    /// Why it does not listen, when it does not.
    pub error: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub listeners: Vec<ListenerReport>,
    /// Why the configured certificate cannot be used (a certificate that loaded before stays in force).
    pub certificate_error: Option<String>,
    /// A certificate is in force (STARTTLS offered, the TLS listener served).
    pub certificate_in_force: bool,
}

impl Report {
    /// Every problem, as a sentence for people (the web interface's banner).
    pub fn problems(&self) -> Vec<String> {
        let listeners = self.listeners.iter().filter_map(|l| l.error.clone());
        listeners.chain(self.certificate_error.clone()).collect()
    }

    /// What stops the gateway doing its work (readiness): a listener that does not listen, a broken certificate
    /// with none in force. A broken new certificate while the previous one serves is a problem, not a stop.
    pub fn stops(&self) -> Vec<String> {
        let listeners = self.listeners.iter().filter_map(|l| l.error.clone());
        let certificate = self.certificate_error.clone().filter(|_| !self.certificate_in_force);
        listeners.chain(certificate).collect()
    }
}

impl Status {
    pub fn report(&self) -> Report {
        self.report.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Sessions running now.
    pub fn connections(&self) -> usize {
        self.slots.in_use()
    }

    /// The last message accepted since the daemon started.
    pub fn last_accepted(&self) -> Option<Accepted> {
        self.last.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn publish(&self, report: Report) {
        *self.report.lock().unwrap_or_else(|e| e.into_inner()) = report;
    }
}

/// When the certificate files last changed, as far as the gateway can tell without reading them.
type Stamp = [Option<(SystemTime, u64)>; 2];

fn stamp(cert: &str, key: &str) -> Stamp {
    [cert, key].map(|p| std::fs::metadata(Path::new(p)).ok().and_then(|m| Some((m.modified().ok()?, m.len()))))
}

/// The certificate the configuration names, and whether it loaded.
#[derive(Debug, Default)]
struct Certificate {
    loaded_from: Option<(String, String, Stamp)>,
    error: Option<String>,
}

impl Certificate {
    /// Loads the certificate when its settings or files changed; a broken one leaves the previous in force.
    async fn refresh(&mut self, shared: &Shared, g: &GatewaySettings) {
        let Some((cert, key)) = g.cert_file.clone().zip(g.key_file.clone()) else {
            *shared.tls.write().unwrap_or_else(|e| e.into_inner()) = None;
            *self = Self::default();
            return;
        };
        let stamp = stamp(&cert, &key);
        if self.loaded_from.as_ref().is_some_and(|(c, k, s)| (c, k, s) == (&cert, &key, &stamp)) {
            return;
        }
        self.loaded_from = Some((cert.clone(), key.clone(), stamp));
        let files = (cert.clone(), key.clone());
        let loaded = tokio::task::spawn_blocking(move || {
            tidings_app::tls_files::server_config(Path::new(&files.0), Path::new(&files.1)).map_err(|e| e.to_string())
        })
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
        let mut tls = shared.tls.write().unwrap_or_else(|e| e.into_inner());
        match loaded {
            Ok(config) => {
                tracing::info!(cert_file = %cert, "gateway: certificate loaded");
                *tls = Some(TlsAcceptor::from(config));
                self.error = None;
            }
            Err(why) => {
                let kept = if tls.is_some() { "; the previous certificate stays in use" } else { "; TLS is off" };
                tracing::error!(error = %why, "gateway: the certificate cannot be used{kept}");
                self.error = Some(format!("the certificate cannot be used: {why}{kept}"));
            }
        }
    }
}

impl Gateway {
    /// Runs until `shutdown`.
    pub fn spawn(mut self, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let shared = Arc::new(Shared {
                app: self.app.clone(),
                config: self.config.clone(),
                committer: self.committer.clone(),
                guard: guard::Guard::default(),
                tls: RwLock::new(None),
                slots: self.status.slots.clone(),
                last: self.status.last.clone(),
                host_name: tidings_app::host_name().unwrap_or_else(|| "tidings".into()),
            });
            let mut listeners = [listener::Listener::new(false), listener::Listener::new(true)];
            let mut certificate = Certificate::default();
            let mut recheck = tokio::time::interval(self.recheck);
            recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let g = self.config.borrow_and_update().config.gateway.clone();
                certificate.refresh(&shared, &g).await;
                let wanted = self.places.wanted(&g);
                // Stop every listener whose address changes before binding any, so that an address moving from
                // one to the other is free.
                for (listener, address) in listeners.iter_mut().zip(&wanted) {
                    if listener.address() != address.as_deref() {
                        listener.stop().await;
                    }
                }
                for (listener, address) in listeners.iter_mut().zip(&wanted) {
                    listener.ensure(address.as_deref(), &shared, &shutdown, self.recheck).await;
                }
                self.status.publish(Report {
                    listeners: listeners.iter().filter_map(listener::Listener::report).collect(),
                    certificate_error: certificate.error.clone(),
                    certificate_in_force: shared.tls().is_some(),
                });
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    changed = self.config.changed() => if changed.is_err() { break },
                    _ = recheck.tick() => {}
                }
            }
            for listener in &mut listeners {
                listener.stop().await;
            }
        })
    }
}

//! The Tidings daemon: everything that runs while `tidings serve` does.
//!
//! - [`run`] is the entry point. Its caller owns the listener and the shutdown token, so tests bind
//!   `127.0.0.1:0` and stop the daemon the way a signal would.
//! - [`live_config`] keeps the configuration in force current: changes made by the CLI (or any other process
//!   on the same data directory) take effect within one poll interval, without a restart.
//! - [`http`] serves the HTTP interface: health, readiness and the outbox API.
//! - The delivery engine (`tidings-delivery`) runs beside it, woken by every accepted message.
//! - The SMTP submission gateway (`tidings-gateway`) runs the listeners the configuration asks for.
//! - [`notifier`] mails events to the admin contacts, sends the daily notice and raises token alerts.
//! - [`shutdown`] turns SIGINT and SIGTERM into the shutdown token.

mod heartbeat;
pub mod http;
pub mod live_config;
pub mod notifier;
pub mod security;
pub mod serve;
pub mod service;
pub mod shutdown;
pub mod tls;
pub mod ui;

use notifier::{Notifier, NotifierOptions};
use std::{sync::Arc, time::Duration};
pub use tidings_app::sign_in::SignInPolicy;
use tidings_app::{
    App,
    outbox::{Committer, Handoff},
};
use tidings_delivery::engine::Engine;
pub use tidings_delivery::engine::EngineOptions;
pub use tidings_gateway::Places as GatewayPlaces;
pub use tidings_oauth::access_tokens::ManagerOptions;
use tidings_oauth::{
    access_tokens::TokenManager,
    mailbox::Mailboxes,
    source::{ConfiguredEndpoint, DaemonTokens},
    vault::AppVault,
};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    App(#[from] tidings_app::Error),
    #[error("the HTTP server stopped: {0}")]
    Http(#[source] std::io::Error),
    #[error("cannot listen on {address} for the cluster ({source}); choose another --cluster-listen address")]
    ClusterListen { address: std::net::SocketAddr, source: std::io::Error },
    #[error("the cluster listener: {0}")]
    ClusterTls(#[from] tidings_core::Invalid),
    #[error("HTTPS: {0}")]
    Tls(#[from] tidings_app::tls_files::PairError),
}

/// How the daemon behaves; every timing is configurable.
#[derive(Clone, Debug)]
pub struct Options {
    /// How often to look for configuration changes made by other processes.
    pub config_poll_interval: Duration,
    /// The delivery engine's node name and timings.
    pub engine: EngineOptions,
    /// When OAuth access tokens are refreshed.
    pub tokens: ManagerOptions,
    /// How often the notifier looks for events recorded by other processes and at the daily notice.
    pub notifier: NotifierOptions,
    /// Sign-in protection and session lifetimes of the web interface.
    pub sign_in: SignInPolicy,
    /// Serve HTTPS with these files; plain HTTP when `None`.
    pub tls: Option<tls::TlsFiles>,
    /// How long a client may take to send a request's headers and body.
    pub http: serve::HttpTimeouts,
    /// How often the gateway looks again at its certificate files and at a listener it could not bind.
    pub gateway_recheck: Duration,
    /// Where this node's gateway listens instead of the configured addresses.
    pub gateway_places: GatewayPlaces,
    /// Where the other nodes of the cluster reach this one (HTTPS with the node's own certificate); no cluster
    /// listener when `None`.
    pub cluster_listen: Option<std::net::SocketAddr>,
    /// How a follower asks its primary.
    pub follow: tidings_cluster::follow::FollowOptions,
    /// The hooks run when this node becomes the primary or stops being it, and their timeout.
    pub watch: tidings_cluster::watch::WatchOptions,
    /// On a database other nodes share, how often this one says it is there.
    pub heartbeat: Duration,
    /// How often the device accounts' authorizations are looked at, to refresh those left unused for
    /// `oauth.keep_alive`.
    pub keep_alive_interval: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            config_poll_interval: Duration::from_secs(2),
            engine: EngineOptions::default(),
            tokens: ManagerOptions::default(),
            notifier: NotifierOptions::default(),
            sign_in: SignInPolicy::default(),
            tls: None,
            http: serve::HttpTimeouts::default(),
            gateway_recheck: tidings_gateway::RECHECK,
            gateway_places: GatewayPlaces::default(),
            cluster_listen: None,
            follow: tidings_cluster::follow::FollowOptions::default(),
            watch: tidings_cluster::watch::WatchOptions { hook_timeout: Duration::from_secs(30), ..Default::default() },
            heartbeat: Duration::from_secs(10),
            keep_alive_interval: Duration::from_secs(3600),
        }
    }
}

/// Runs the daemon on `listener` until `shutdown` is cancelled, then finishes the requests and deliveries under
/// way.
pub async fn run(listener: TcpListener, app: App, options: Options, shutdown: CancellationToken) -> Result<()> {
    let tls = options.tls.as_ref().map(tls::server_config).transpose()?;
    app.serving_https_with(options.tls.as_ref().map(|files| files.cert.as_path())).await?;
    let node = options.engine.node.clone();
    // First of all on a shared database: a node that takes another live node's name must not take its leases.
    let heartbeat = match app.store().shared() {
        true => {
            let address = listener.local_addr().map_err(Error::Http)?;
            Some(heartbeat::start(app.clone(), node.clone(), address, options.heartbeat, shutdown.clone()).await?)
        }
        false => None,
    };
    let config = live_config::LiveConfig::start(app.clone(), options.config_poll_interval, shutdown.clone()).await?;
    let wake = Arc::new(Notify::new());
    let handoff = Arc::new(Handoff::default());
    let committer = Committer::start(app.clone(), wake.clone(), handoff.clone());
    let endpoint = Arc::new(ConfiguredEndpoint::new(app.clone(), config.subscribe()));
    let mailboxes = Arc::new(Mailboxes::new(app.clone(), endpoint.clone(), options.tokens, shutdown.clone()));
    let keep_alive = mailboxes.clone().spawn_keep_alive(config.subscribe(), options.keep_alive_interval);
    let own_mailboxes: Arc<dyn tidings_delivery::token::MailboxTokens> = mailboxes;
    let tokens = TokenManager::new(
        endpoint,
        Arc::new(AppVault::new(app.clone(), tidings_app::authorization::Owner::Relay)),
        options.tokens,
    );
    let refresher = tokens.spawn_refresher(shutdown.clone());
    // The node's own tokens; a backup or traffic node asks its primary's instead.
    let own_tokens: Arc<dyn tidings_delivery::token::TokenSource> =
        Arc::new(DaemonTokens::new(tokens.clone(), app.clone()));
    let engine = Engine {
        app: app.clone(),
        config: config.subscribe(),
        tokens: Arc::new(tidings_cluster::tokens::Routed::new(app.clone(), own_tokens.clone())),
        mailboxes: Arc::new(tidings_cluster::tokens::RoutedMailboxes::new(app.clone(), own_mailboxes.clone())),
        wake: wake.clone(),
        handoff,
        options: options.engine,
    }
    .spawn(shutdown.clone());
    let gateway_status = tidings_gateway::Status::default();
    let gateway = tidings_gateway::Gateway {
        app: app.clone(),
        config: config.subscribe(),
        committer: committer.clone(),
        status: gateway_status.clone(),
        recheck: options.gateway_recheck,
        places: options.gateway_places,
    }
    .spawn(shutdown.clone());
    let mut watch = options.watch.clone();
    let cluster = match options.cluster_listen {
        Some(address) => {
            let listener =
                TcpListener::bind(address).await.map_err(|source| Error::ClusterListen { address, source })?;
            let identity = app.cluster_identity().await?;
            let tls = tokio_rustls::TlsAcceptor::from(tidings_cluster::tls::server_config(&identity)?);
            let address = listener.local_addr().map_err(Error::Http)?;
            tracing::info!(%address, fingerprint = %identity.fingerprint, "Tidings cluster is listening");
            let own = if address.ip().is_unspecified() {
                std::net::SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), address.port())
            } else {
                address
            };
            watch.own = Some((format!("https://{own}"), identity.fingerprint.clone()));
            let router = tidings_cluster::api::router(app.clone(), own_tokens.clone(), own_mailboxes.clone());
            Some(tokio::spawn(serve::serve(listener, router, Some(tls), options.http, shutdown.clone())))
        }
        None => None,
    };
    // A snapshot taken from the primary is put in force at once, not at the next configuration poll; so is a
    // change another node made to a shared database, which it tells through the database.
    let taken = Arc::new(Notify::new());
    let events = Arc::new(Notify::new());
    let listeners = tidings_store::Listeners {
        config: taken.clone(),
        outbox: wake.clone(),
        events: events.clone(),
        authorization: Arc::new(Notify::new()),
    };
    if app.store().listen(listeners.clone()).await.map_err(tidings_app::Error::from)? {
        tracing::info!("listening for changes made by the other nodes of the database");
    }
    let follower = tidings_cluster::follow::spawn(app.clone(), options.follow, taken.clone(), shutdown.clone());
    let reload = {
        let (config, shutdown, app) = (config.clone(), shutdown.clone(), app.clone());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = taken.notified() => config.refresh().await,
                    // A new authorization (a sign-in on another node): what waited for it is tried now.
                    () = listeners.authorization.notified() => app.resume_delivery(),
                }
            }
        })
    };
    let watcher = tidings_cluster::watch::spawn(app.clone(), watch, shutdown.clone());
    let notifier = Notifier {
        app: app.clone(),
        config: config.subscribe(),
        tokens: tokens.clone(),
        wake: events.clone(),
        deliver: wake.clone(),
        options: options.notifier,
    }
    .spawn(shutdown.clone());
    let context = service::Context::new(service::Shared {
        app,
        config,
        committer,
        wake,
        events,
        tokens,
        gateway: gateway_status,
        sign_in: options.sign_in,
        secure_cookies: tls.is_some(),
        node,
        heartbeat: options.heartbeat,
    });
    let address = listener.local_addr().map_err(Error::Http)?;
    // The API and the web interface side by side, over one service layer; every answer gets the security headers.
    let router = axum::Router::new()
        .merge(http::router())
        .merge(ui::router())
        .fallback(ui::not_found)
        .layer(axum::middleware::map_response(security::headers))
        .with_state(context);
    match tls {
        Some(_) => tracing::info!(%address, "Tidings is listening (HTTPS)"),
        None => tracing::info!(%address, "Tidings is listening"),
    }
    // The store is open and the address bound: ready, for a service manager that waits for it (Type=notify).
    notify_ready();
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    serve::serve(listener, router, acceptor, options.http, shutdown.clone()).await;
    shutdown.cancel();
    let _ = engine.await;
    let _ = refresher.await;
    let _ = keep_alive.await;
    let _ = notifier.await;
    let _ = gateway.await;
    let _ = follower.await;
    let _ = reload.await;
    let _ = watcher.await;
    if let Some(heartbeat) = heartbeat {
        let _ = heartbeat.await;
    }
    if let Some(cluster) = cluster {
        let _ = cluster.await;
    }
    tracing::info!("Tidings stopped");
    Ok(())
}

/// Tells systemd the daemon is ready (`READY=1` on `$NOTIFY_SOCKET`, sd_notify(3)); nothing without one.
fn notify_ready() {
    let Some(socket) = std::env::var_os("NOTIFY_SOCKET") else { return };
    let path = std::path::PathBuf::from(&socket);
    let sent = std::os::unix::net::UnixDatagram::unbound().and_then(|s| {
        // An abstract socket is named with a leading '@'.
        match path.to_str().and_then(|p| p.strip_prefix('@')) {
            Some(name) => {
                use std::os::linux::net::SocketAddrExt;
                let address = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
                s.send_to_addr(b"READY=1\n", &address)
            }
            None => s.send_to(b"READY=1\n", &path),
        }
    });
    match sent {
        Ok(_) => tracing::info!("told the service manager that Tidings is ready"),
        Err(e) => {
            tracing::warn!(error = %e, socket = %path.display(), "could not tell the service manager that Tidings is ready")
        }
    }
}

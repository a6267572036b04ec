//! The Tidings daemon: everything that runs while `tidings serve` does.
//!
//! - [`run`] is the entry point. Its caller owns the listener and the shutdown token, so tests bind
//!   `127.0.0.1:0` and stop the daemon the way a signal would.
//! - [`live_config`] keeps the configuration in force current: changes made by the CLI (or any other process
//!   on the same data directory) take effect within one poll interval, without a restart.
//! - [`http`] serves the HTTP interface: health and readiness so far.
//! - [`shutdown`] turns SIGINT and SIGTERM into the shutdown token.

pub mod http;
pub mod live_config;
pub mod shutdown;

use std::time::Duration;
use tidings_app::App;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    App(#[from] tidings_app::Error),
    #[error("the HTTP server stopped: {0}")]
    Http(#[source] std::io::Error),
}

/// How the daemon behaves; every timing is configurable.
#[derive(Clone, Debug)]
pub struct Options {
    /// How often to look for configuration changes made by other processes.
    pub config_poll_interval: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self { config_poll_interval: Duration::from_secs(2) }
    }
}

/// Runs the daemon on `listener` until `shutdown` is cancelled, then finishes the requests under way.
pub async fn run(listener: TcpListener, app: App, options: Options, shutdown: CancellationToken) -> Result<()> {
    let config = live_config::LiveConfig::start(app.clone(), options.config_poll_interval, shutdown.clone()).await?;
    let context = http::Context::new(app, config);
    let address = listener.local_addr().map_err(Error::Http)?;
    tracing::info!(%address, "Tidings is listening");
    axum::serve(listener, http::router(context))
        .with_graceful_shutdown(shutdown.clone().cancelled_owned())
        .await
        .map_err(Error::Http)?;
    tracing::info!("Tidings stopped");
    Ok(())
}

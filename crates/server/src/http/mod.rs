//! The HTTP interface. Each area is a module exporting `router()`; they are merged here over one [`Context`].

mod health;

use crate::live_config::LiveConfig;
use axum::Router;
use std::{sync::Arc, time::Instant};
use tidings_app::App;

/// Everything a request handler may use.
#[derive(Clone, Debug)]
pub struct Context {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    app: App,
    config: LiveConfig,
    /// For the uptime shown by `/readyz`.
    started: Instant,
}

impl Context {
    pub fn new(app: App, config: LiveConfig) -> Self {
        Self { inner: Arc::new(Inner { app, config, started: Instant::now() }) }
    }
}

/// All routes.
pub fn router(context: Context) -> Router {
    Router::new().merge(health::router()).with_state(context)
}

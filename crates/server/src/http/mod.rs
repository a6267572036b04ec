//! The HTTP interface. Each area is a module exporting `router()`; they are merged here over one [`Context`].

mod auth;
mod email_config;
mod error;
mod events;
mod health;
mod json;
mod messages;
mod oauth;
mod page;

use crate::live_config::LiveConfig;
use axum::{Router, extract::DefaultBodyLimit};
use std::{sync::Arc, time::Instant};
use tidings_app::{App, outbox::Committer};
use tidings_oauth::manager::TokenManager;
use tokio::sync::Notify;

/// The largest request body the API reads (a raw message in JSON, with room above the default 25 MiB limit
/// of `delivery.max_message_size`).
const MAX_BODY: usize = 64 * 1024 * 1024;

/// Everything a request handler may use.
#[derive(Clone, Debug)]
pub struct Context {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    app: App,
    config: LiveConfig,
    /// Groups accepted messages into durable commits.
    committer: Committer,
    /// Wakes the delivery engine (a message was accepted or retried).
    wake: Arc<Notify>,
    /// Wakes the notifier (an event was recorded).
    events: Arc<Notify>,
    /// The OAuth token manager, told about new sign-ins.
    tokens: TokenManager,
    /// When the device sign-in under way (if any) expires.
    device: std::sync::Mutex<Option<chrono::DateTime<chrono::Utc>>>,
    /// For the uptime shown by `/readyz`.
    started: Instant,
}

impl Context {
    pub fn new(
        app: App,
        config: LiveConfig,
        committer: Committer,
        wake: Arc<Notify>,
        events: Arc<Notify>,
        tokens: TokenManager,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                app,
                config,
                committer,
                wake,
                events,
                tokens,
                device: Default::default(),
                started: Instant::now(),
            }),
        }
    }
}

/// All routes.
pub fn router(context: Context) -> Router {
    Router::new()
        .merge(health::router())
        .merge(email_config::router())
        .merge(events::router())
        .merge(messages::router())
        .merge(oauth::router())
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(context)
}

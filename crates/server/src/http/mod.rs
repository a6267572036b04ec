//! The HTTP interface. Each area is a module exporting `router()`; they are merged here over one [`Context`].

mod accounts;
pub(crate) mod auth;
mod devices;
pub(crate) mod email_config;
pub(crate) mod error;
mod events;
mod health;
mod json;
mod messages;
mod metrics;
pub(crate) mod oauth;
mod page;
pub(crate) mod security;

use crate::live_config::LiveConfig;
use axum::{Router, extract::DefaultBodyLimit};
use std::{sync::Arc, time::Instant};
use tidings_app::{App, outbox::Committer, sign_in::SignInPolicy};
use tidings_oauth::manager::TokenManager;
use tokio::sync::Notify;

/// The largest request body the API reads (a raw message in JSON, with room above the default 25 MiB limit
/// of `delivery.max_message_size`).
const MAX_BODY: usize = 64 * 1024 * 1024;

/// Everything a request handler may use.
#[derive(Clone, Debug)]
pub struct Context {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) app: App,
    pub(crate) config: LiveConfig,
    /// Groups accepted messages into durable commits.
    pub(crate) committer: Committer,
    /// Wakes the delivery engine (a message was accepted or retried).
    pub(crate) wake: Arc<Notify>,
    /// Wakes the notifier (an event was recorded).
    pub(crate) events: Arc<Notify>,
    /// The OAuth token manager, told about new sign-ins.
    pub(crate) tokens: TokenManager,
    /// What the SMTP gateway listens on, and what it could not start.
    pub(crate) gateway: tidings_gateway::Status,
    /// When the device sign-in under way (if any) expires.
    pub(crate) device: std::sync::Mutex<Option<chrono::DateTime<chrono::Utc>>>,
    /// For the uptime shown by `/readyz`.
    pub(crate) started: Instant,
    /// Sign-in protection and session lifetimes.
    pub(crate) sign_in: SignInPolicy,
    /// Cookies get `Secure` when the daemon serves HTTPS.
    pub(crate) secure_cookies: bool,
}

/// What the daemon hands the HTTP interface.
#[derive(Debug)]
pub struct Shared {
    pub app: App,
    pub config: LiveConfig,
    pub committer: Committer,
    pub wake: Arc<Notify>,
    pub events: Arc<Notify>,
    pub tokens: TokenManager,
    pub gateway: tidings_gateway::Status,
    pub sign_in: SignInPolicy,
    pub secure_cookies: bool,
}

impl Context {
    pub fn new(s: Shared) -> Self {
        Self {
            inner: Arc::new(Inner {
                app: s.app,
                config: s.config,
                committer: s.committer,
                wake: s.wake,
                events: s.events,
                tokens: s.tokens,
                gateway: s.gateway,
                device: Default::default(),
                started: Instant::now(),
                sign_in: s.sign_in,
                secure_cookies: s.secure_cookies,
            }),
        }
    }
}

/// All routes.
pub fn router(context: Context) -> Router {
    Router::new()
        .merge(health::router())
        .merge(accounts::router())
        .merge(devices::router())
        .merge(metrics::router())
        .merge(crate::ui::router())
        .merge(email_config::router())
        .merge(events::router())
        .merge(messages::router())
        .merge(oauth::router())
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::map_response(security::headers))
        .with_state(context)
}

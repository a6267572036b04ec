//! The daemon's service layer: what the HTTP API (`http/`) and the web interface (`ui/`) both call, so that
//! neither imports the other and a rule is written once. It holds the application services with what only the
//! running daemon has: the configuration in force, the wakes of the delivery engine and the notifier, the token
//! manager, the gateway's status and the sign-in in progress.
//!
//! - `caller.rs`: who is calling (an API token or a web session);
//! - `oauth.rs`: the token's live status, the device sign-in, the connection check, forgetting the authorization;
//! - `cluster.rs`: join codes, removing a node, promoting and demoting;
//! - `email.rs`: saving the configuration (then the test email when asked) and the test email.

pub mod caller;
pub mod cluster;
pub mod doctor;
pub mod email;
pub mod oauth;
pub mod status;

use crate::live_config::LiveConfig;
use std::{sync::Arc, time::Instant};
use tidings_app::{App, outbox::Committer, sign_in::SignInPolicy};
use tidings_oauth::access_tokens::TokenManager;
use tokio::sync::Notify;

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
    /// The device sign-in under way, if any: what the user is shown, and when it expires (a reload of the OAuth
    /// page shows it again rather than starting another).
    pub(crate) device:
        std::sync::Mutex<Option<(tidings_core::oauth::response::DeviceAuthorization, chrono::DateTime<chrono::Utc>)>>,
    /// For the uptime shown by `/readyz`.
    pub(crate) started: Instant,
    /// Sign-in protection and session lifetimes.
    pub(crate) sign_in: SignInPolicy,
    /// Cookies get `Secure` when the daemon serves HTTPS.
    pub(crate) secure_cookies: bool,
    /// This daemon's name, and how often the nodes of a shared database say they are there.
    pub(crate) node: String,
    pub(crate) heartbeat: std::time::Duration,
    /// What a form that worked shows on the page it redirects to.
    pub(crate) flashes: crate::ui::flash::Flashes,
    /// The credentials' lifetimes as last read (when, under which configuration revision): the status page,
    /// `/readyz` and the metrics ask every few seconds, and reading them opens the client certificate.
    pub(crate) lifetimes: std::sync::Mutex<Option<(std::time::Instant, i64, Vec<tidings_app::expiry::Lifetime>)>>,
    /// The device sign-ins under way of device accounts' own mailboxes, by account: what each is shown, and
    /// when it expires (a reload of the account's page shows it again rather than starting another).
    pub(crate) mailbox_devices: std::sync::Mutex<
        std::collections::HashMap<
            i64,
            (tidings_core::oauth::response::DeviceAuthorization, chrono::DateTime<chrono::Utc>),
        >,
    >,
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
    pub node: String,
    pub heartbeat: std::time::Duration,
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
                node: s.node,
                heartbeat: s.heartbeat,
                flashes: Default::default(),
                mailbox_devices: Default::default(),
                lifetimes: Default::default(),
            }),
        }
    }
}

impl Context {
    /// Tells the delivery engine that the store holds messages for it (a retry, a message accepted).
    pub(crate) fn wake_engine(&self) {
        self.inner.wake.notify_one();
    }

    /// Tells the notifier that an event was recorded.
    pub(crate) fn wake_notifier(&self) {
        self.inner.events.notify_one();
    }
}

/// A daemon that shares this node's database, as the pages, `/readyz` and the metrics show it.
#[derive(Clone, Debug)]
pub(crate) struct Node {
    pub(crate) peer: tidings_app::peers::Peer,
    /// Heard from within three heartbeats.
    pub(crate) live: bool,
    /// This daemon.
    pub(crate) this: bool,
}

impl Context {
    /// The daemons of a shared database; `None` when no other may share it (SQLite).
    pub(crate) async fn nodes(&self) -> tidings_app::Result<Option<Vec<Node>>> {
        let inner = &self.inner;
        if !inner.app.store().shared() {
            return Ok(None);
        }
        let now = chrono::Utc::now();
        let peers = inner.app.peers().await?;
        Ok(Some(
            peers
                .into_iter()
                .map(|peer| Node {
                    live: tidings_app::peers::live(&peer, now, inner.heartbeat),
                    this: peer.node == inner.node,
                    peer,
                })
                .collect(),
        ))
    }
}

/// What an application error means to a person, the same for the API and the web interface: the HTTP status
/// that fits it, the API's code, the words to show, and the fields at fault. Internal errors are logged here
/// and shown as nothing more than that.
#[derive(Debug)]
pub struct Described {
    pub status: axum::http::StatusCode,
    pub code: &'static str,
    pub message: String,
    pub fields: Vec<tidings_core::FieldError>,
}

pub fn described(e: &tidings_app::Error) -> Described {
    use axum::http::StatusCode;
    use tidings_app::Error as E;
    let (status, code) = match e {
        E::Invalid(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
        E::Input(_) => (StatusCode::BAD_REQUEST, "bad_request"),
        E::NotConfigured(_) => (StatusCode::CONFLICT, "not_configured"),
        E::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
        E::Store(tidings_store::Error::DuplicateAccount(name)) => {
            let message = format!("an account named {name:?} exists already; choose another name");
            return Described { status: StatusCode::CONFLICT, code: "exists", message, fields: vec![] };
        }
        E::Unavailable(_) | E::Store(tidings_store::Error::Closed) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        E::Refused(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
        E::Busy(_) | E::Throttled(_) => (StatusCode::TOO_MANY_REQUESTS, "too_many"),
        _ => {
            tracing::error!(error = %e, "internal error");
            let message = "internal error; see the daemon's log".to_owned();
            return Described { status: StatusCode::INTERNAL_SERVER_ERROR, code: "internal", message, fields: vec![] };
        }
    };
    let fields = match e {
        E::Invalid(errors) => errors.0.clone(),
        _ => vec![],
    };
    let message = match e {
        E::Invalid(errors) => errors.0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "),
        _ => e.to_string(),
    };
    Described { status, code, message, fields }
}

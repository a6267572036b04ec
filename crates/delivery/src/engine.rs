//! The engine that works the outbox: it leases due messages, delivers each over a pooled connection, and
//! settles the outcomes (delivered, deferred with the next attempt's time, or failed) in batched commits.
//!
//! It wakes when a message is accepted, when the next deferred message falls due, when the configuration
//! changes, and at least every poll interval (for messages other processes queued). At start it takes back
//! the leases its node held before a restart; on shutdown it stops leasing and lets deliveries under way end.

use crate::{
    pool::Pool,
    smtp::{Connection, RelayAuth, RelaySettings, Transaction, tls},
    token::{MailboxTokens, TokenSource},
};
use chrono::Utc;
use std::{collections::VecDeque, sync::Arc, time::Duration};

/// How many messages per connection the engine leases ahead.
const BACKLOG_FACTOR: usize = 4;
use tidings_app::{App, host_name, outbox::Handoff, settings::Current};
use tidings_core::{
    config::{AuthMethod, Encryption},
    outbox::{self, AttemptReport, Outcome, RecipientState, retry::RetryPolicy},
    secret::SecretName,
};
use tidings_store::{LeasedMessage, Settlement};
use tokio::{
    sync::{Notify, mpsc, watch},
    task::JoinSet,
};
use tokio_util::sync::CancellationToken;

/// How the engine runs.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// This node's name (default: the host name); leases are owned by `node/instance`.
    pub node: String,
    /// The longest the engine sleeps without looking for due messages.
    pub poll_interval: Duration,
    /// How long an unused connection stays open for reuse.
    pub idle_timeout: Duration,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            node: tidings_app::node_name(),
            poll_interval: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(30),
        }
    }
}

/// Everything the engine uses.
#[derive(Debug)]
pub struct Engine {
    pub app: App,
    pub config: watch::Receiver<Arc<Current>>,
    pub tokens: Arc<dyn TokenSource>,
    /// Device accounts' own tokens, for messages sent from their mailboxes (the gateway's `login_user`).
    pub mailboxes: Arc<dyn MailboxTokens>,
    /// Notified when messages are accepted (or retried).
    pub wake: Arc<Notify>,
    /// Messages this process accepts, leased to the engine as they are stored.
    pub handoff: Arc<Handoff>,
    pub options: EngineOptions,
}

/// The relay as configured by one revision, or why it cannot be used.
struct Relay {
    revision: i64,
    settings: Result<Arc<RelaySettings>, String>,
    policy: RetryPolicy,
    connections: usize,
    lease: Duration,
}

impl Engine {
    /// Runs until `shutdown`, then finishes the deliveries under way.
    pub fn spawn(self, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
        tokio::spawn(self.run(shutdown))
    }

    async fn run(mut self, shutdown: CancellationToken) {
        let owner = format!("{}/{:016x}", self.options.node, rand::random::<u64>());
        match self.app.store().expire_leases(&format!("{}/", self.options.node)).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(count = n, "taking back messages this node was delivering when it stopped"),
            Err(e) => tracing::error!(error = %e, "could not take back this node's leases"),
        }
        let (settle_tx, settle_rx) = mpsc::channel::<Settlement>(1024);
        let settler = tokio::spawn(settle_batches(self.app.clone(), settle_rx, self.wake.clone()));
        let pool = Arc::new(Pool::new(64, self.options.idle_timeout));
        let mut relay = self.relay().await;
        let mut in_flight: JoinSet<()> = JoinSet::new();
        // Leased messages waiting for a free connection: leasing several at once saves a commit per message.
        let mut backlog: VecDeque<LeasedMessage> = VecDeque::new();
        let mut handed = self.handoff.attach(&owner);

        while !shutdown.is_cancelled() {
            while in_flight.try_join_next().is_some() {}
            while let Ok(message) = handed.try_recv() {
                backlog.push_back(message);
            }
            if self.config.borrow().revision != relay.revision {
                relay = self.relay().await;
                pool.clear();
            }
            let Ok(settings) = &relay.settings else {
                self.handoff.want(0, relay.lease);
                self.idle(&shutdown, &mut in_flight, self.options.poll_interval).await;
                continue;
            };
            let capacity = relay.connections * BACKLOG_FACTOR;
            if backlog.len() < relay.connections {
                let now = Utc::now();
                let until = now + chrono::Duration::from_std(relay.lease).unwrap_or(chrono::Duration::minutes(5));
                match self.app.store().lease_due(&owner, now, until, (capacity - backlog.len()) as u32).await {
                    Ok(leased) => backlog.extend(leased),
                    Err(e) => tracing::error!(error = %e, "could not lease due messages; will retry"),
                }
            }
            // What the store's lease left room for, accepted messages fill as they are committed.
            self.handoff.want(capacity.saturating_sub(backlog.len()), relay.lease);
            let mut started = false;
            while in_flight.len() < relay.connections
                && let Some(message) = backlog.pop_front()
            {
                let job = Delivery {
                    message,
                    settings: settings.clone(),
                    mailboxes: self.mailboxes.clone(),
                    revision: relay.revision,
                    pool: pool.clone(),
                    policy: relay.policy,
                    owner: owner.clone(),
                };
                let settle_tx = settle_tx.clone();
                in_flight.spawn(async move {
                    let settlement = job.run().await;
                    let _ = settle_tx.send(settlement).await;
                });
                started = true;
            }
            if started && in_flight.len() < relay.connections {
                continue;
            }
            let sleep = if backlog.is_empty() { self.until_next_due().await } else { self.options.poll_interval };
            self.idle(&shutdown, &mut in_flight, sleep).await;
        }

        self.handoff.detach();
        if !in_flight.is_empty() {
            tracing::info!(count = in_flight.len(), "waiting for deliveries under way");
        }
        while in_flight.join_next().await.is_some() {}
        drop(settle_tx);
        let _ = settler.await;
        // Messages leased but not attempted (the backlog, and any handed over meanwhile): due again at once, for
        // this node's next start or another node.
        if let Err(e) = self.app.store().expire_leases(&owner).await {
            tracing::warn!(error = %e, "could not release leases of messages not attempted");
        }
        pool.clear();
    }

    /// Waits for something to do: a new message, a delivery ending, a configuration change, the timer.
    async fn idle(&mut self, shutdown: &CancellationToken, in_flight: &mut JoinSet<()>, sleep: Duration) {
        tokio::select! {
            () = shutdown.cancelled() => {}
            () = self.wake.notified() => {}
            _ = self.config.changed() => {}
            Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
            () = tokio::time::sleep(sleep) => {}
        }
    }

    /// How long to sleep: until the next message falls due, at most the poll interval.
    async fn until_next_due(&self) -> Duration {
        let poll = self.options.poll_interval;
        match self.app.store().next_due().await {
            Ok(Some(due)) => {
                (due - Utc::now()).to_std().unwrap_or(Duration::ZERO).clamp(Duration::from_millis(5), poll)
            }
            _ => poll,
        }
    }

    /// The relay settings of the configuration in force.
    async fn relay(&self) -> Relay {
        let current = self.config.borrow().clone();
        let delivery = &current.config.delivery;
        let settings = relay_settings(&self.app, &current, self.tokens.clone()).await.map(Arc::new);
        if let Err(problem) = &settings {
            tracing::warn!(revision = current.revision, %problem, "messages wait: the relay cannot be used");
        }
        Relay {
            revision: current.revision,
            settings,
            policy: delivery.retry_policy(),
            connections: delivery.connections as usize,
            lease: delivery.lease,
        }
    }
}

/// Builds the relay settings from a configuration; errors say what to configure.
pub async fn relay_settings(
    app: &App,
    current: &Current,
    tokens: Arc<dyn TokenSource>,
) -> Result<RelaySettings, String> {
    let cfg = &current.config;
    let host = cfg.smtp.host.clone().ok_or("no SMTP relay is configured (set smtp.host)")?;
    let auth = match cfg.smtp.auth {
        AuthMethod::None => RelayAuth::None,
        AuthMethod::Password => {
            let password = app
                .secret(SecretName::SmtpPassword)
                .await
                .map_err(|e| e.to_string())?
                .ok_or("smtp.password is not set")?;
            RelayAuth::Password { username: cfg.smtp.username.clone().unwrap_or_default(), password }
        }
        AuthMethod::Oauth2 => {
            let user = cfg.oauth.account.clone().or_else(|| cfg.sender.clone()).ok_or("set oauth.account or sender")?;
            RelayAuth::OAuth2 { user, tokens }
        }
    };
    Ok(RelaySettings {
        port: u16::try_from(cfg.smtp.effective_port()).map_err(|_| "smtp.port is out of range")?,
        host,
        encryption: cfg.smtp.encryption,
        auth,
        tls: tls::client_config(&cfg.tls)?,
        verify_certificates: cfg.tls.verify_certificates,
        timeout: cfg.delivery.timeout,
        helo_name: helo_name(),
    })
}

/// This machine's name for EHLO.
fn helo_name() -> String {
    host_name().unwrap_or_else(|| "tidings.localdomain".into())
}

/// One message's attempt.
struct Delivery {
    message: LeasedMessage,
    settings: Arc<RelaySettings>,
    mailboxes: Arc<dyn MailboxTokens>,
    revision: i64,
    pool: Arc<Pool>,
    policy: RetryPolicy,
    owner: String,
}

impl Delivery {
    async fn run(self) -> Settlement {
        let m = &self.message;
        let started_at = Utc::now();
        let pending: Vec<String> =
            m.recipients.iter().filter(|r| r.state == RecipientState::Pending).map(|r| r.address.clone()).collect();
        let (recipients, outcome) = self.attempt(&pending).await;
        let report =
            AttemptReport { started_at, finished_at: Utc::now(), recipients, outcome, notes: notes(&self.settings) };
        let before =
            outbox::Pending { created_at: m.lifetime_start, attempts: m.attempts, recipients: m.recipients.clone() };
        let settled = outbox::settle(&before, &report, &self.policy);
        let a = &settled.attempt;
        match &report.outcome {
            Outcome::Accepted { .. } => {
                tracing::info!(id = m.id, attempt = a.number, status = %settled.status, "delivered")
            }
            Outcome::Failed(f) => tracing::warn!(
                id = m.id,
                attempt = a.number,
                status = %settled.status,
                class = f.class.as_str(),
                stage = f.stage.as_str(),
                error = %f.error,
                explanation = f.explanation.as_deref().unwrap_or(""),
                "delivery attempt failed"
            ),
        }
        Settlement { id: m.id, owner: self.owner.clone(), settled }
    }

    /// The relay settings for this message: the relay account's, or those of the device account's own
    /// mailbox whose message it is.
    async fn settings(&self) -> Result<Arc<RelaySettings>, crate::smtp::error::SmtpError> {
        let Some(account) = &self.message.mailbox_of else { return Ok(self.settings.clone()) };
        let (user, tokens) = self.mailboxes.mailbox(account).await?;
        Ok(Arc::new(RelaySettings { auth: RelayAuth::OAuth2 { user, tokens }, ..(*self.settings).clone() }))
    }

    /// Sends over a pooled connection, replacing one the relay closed meanwhile by a fresh one.
    async fn attempt(&self, recipients: &[String]) -> (Vec<(String, outbox::RcptResult)>, Outcome) {
        let relay = self.settings.address();
        let settings = match self.settings().await {
            Ok(s) => s,
            Err(e) => return (Vec::new(), Outcome::Failed(e.to_failure(&relay))),
        };
        let identity = self.message.mailbox_of.as_deref();
        let (mut connection, reused) = match self.pool.take(self.revision, identity) {
            Some(c) => (c, true),
            None => match Connection::open(&settings).await {
                Ok(c) => (c, false),
                Err(e) => return (Vec::new(), Outcome::Failed(e.to_failure(&relay))),
            },
        };
        let mut tx: Transaction = connection.send(&self.message.mail_from, recipients, &self.message.content).await;
        if reused && matches!(&tx.result, Err(e) if e.is_connection_loss() && tx.recipients.is_empty()) {
            connection = match Connection::open(&settings).await {
                Ok(c) => c,
                Err(e) => return (Vec::new(), Outcome::Failed(e.to_failure(&relay))),
            };
            tx = connection.send(&self.message.mail_from, recipients, &self.message.content).await;
        }
        match tx.result {
            Ok(reply) => {
                self.pool.put(connection, self.revision, identity);
                (tx.recipients, Outcome::Accepted { reply })
            }
            Err(e) => {
                if !e.is_connection_loss() && !matches!(e.kind, crate::smtp::error::ErrorKind::Timeout(_)) {
                    self.pool.put(connection, self.revision, identity);
                }
                (tx.recipients, Outcome::Failed(e.to_failure(&relay)))
            }
        }
    }
}

/// What the administrator should know about how attempts are made.
fn notes(settings: &RelaySettings) -> Vec<String> {
    let mut notes = Vec::new();
    if settings.encryption == Encryption::None {
        notes.push("the connection to the relay is not encrypted (smtp.encryption=none)".to_owned());
    } else if !settings.verify_certificates {
        notes.push("the relay's certificate was not verified (tls.verify_certificates=false)".to_owned());
    }
    notes
}

/// Writes outcomes in batches: whatever has arrived, in one commit.
async fn settle_batches(app: App, mut rx: mpsc::Receiver<Settlement>, wake: Arc<Notify>) {
    let mut batch = Vec::with_capacity(256);
    while rx.recv_many(&mut batch, 256).await > 0 {
        let mut delay = Duration::from_millis(100);
        loop {
            match app.store().settle(&batch).await {
                Ok(()) => break,
                Err(e) => {
                    // Leases protect the messages meanwhile: if this never succeeds they are delivered again.
                    tracing::error!(error = %e, count = batch.len(), "could not record delivery outcomes; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(10));
                }
            }
        }
        for s in &batch {
            app.metrics().count("tidings_delivery_attempts_total", &s.settled.attempt.result);
        }
        batch.clear();
        // Deferred messages may now be due sooner than the engine planned.
        wake.notify_one();
    }
}

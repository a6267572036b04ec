//! The engine that works the outbox: it leases due messages, delivers each over a pooled connection, and
//! settles the outcomes (delivered, deferred with the next attempt's time, or failed) in batched commits.
//!
//! It wakes when a message is accepted, when the next deferred message falls due, when the configuration
//! changes, and at least every poll interval (for messages other processes queued). At start it takes back
//! the leases its node held before a restart; on shutdown it stops leasing and lets deliveries under way end.
//!
//! A failure of the relay or of an identity (not of one message) opens its circuit
//! (`tidings_core::outbox::circuit`): the run stops, its other messages and those leased meanwhile are given
//! back uncharged, nothing of that identity (or nothing at all, for the relay) is leased until one probe
//! finds it working again. The circuits are stored for the API, the web interface and the CLI to show.

use crate::{
    pool::Pool,
    smtp::{Connection, Next, RelayAuth, RelaySettings, Transaction, tls},
    token::{MailboxTokens, TokenSource},
};
use chrono::Utc;
use std::{
    borrow::Cow,
    collections::{HashMap, VecDeque},
    sync::Arc,
    time::{Duration, Instant},
};
use tidings_app::{App, host_name, later, outbox::Handoff, settings::Current};
use tidings_core::{
    EmailConfig,
    config::{AuthMethod, Encryption},
    notify::EventKind,
    outbox::{
        self, AttemptReport, Failure, Outcome, RecipientState,
        budget::{self, Admit, Budgets, Limits, Usage},
        circuit::{Backoff, Change, Gate, Health, Seen},
        reply::{Class, Scope, Stage},
        retry::RetryPolicy,
    },
    secret::SecretName,
};
use tidings_store::{LeasedMessage, Settlement};
use tokio::{
    sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc, watch},
    task::{JoinError, JoinSet},
};
use tokio_util::sync::CancellationToken;

/// How often the identities' budgets are stored while they only count up.
const PUBLISH_BUDGETS: Duration = Duration::from_secs(5);
/// How many messages larger than [`tidings_store::CONTENT_PART`] are read into memory for sending at once: the
/// others wait for a turn, so that a burst of large scans costs two of them in memory, not one per connection.
const LARGE_AT_ONCE: usize = 2;
/// How many messages per connection the engine leases ahead.
const BACKLOG_FACTOR: usize = 4;
/// The most messages one delivery sends one after the other on its connection.
const MAX_RUN: usize = 8;

/// How the engine runs.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// This node's name (default: the host name); leases are owned by `node/instance`.
    pub node: String,
    /// The longest the engine sleeps without looking for due messages.
    pub poll_interval: Duration,
    /// How long an unused connection stays open for reuse.
    pub idle_timeout: Duration,
    /// How long outcomes gather before they are written: a burst of deliveries costs one commit, not one per
    /// delivery. Should the daemon die meanwhile, those messages are delivered again after the restart.
    pub settle_window: Duration,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            node: tidings_app::node_name(),
            poll_interval: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(30),
            settle_window: Duration::from_millis(20),
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
    /// Notified when the store holds messages the engine was not handed (a retry, more accepted than it
    /// wanted, a configuration change).
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
    backoff: Backoff,
    limits: Limits,
    /// A certificate of the relay that ends within this raises an event.
    expiry_warning: Duration,
    connections: usize,
    lease: Duration,
}

/// What the engine keeps about its runs.
struct Books {
    /// The relay's and identities' circuits.
    health: Health,
    /// The provider's limits per identity, remembering the day's sending across restarts.
    budgets: Budgets,
    /// The identity of each run under way, for one that ends without saying (it panicked).
    running: HashMap<tokio::task::Id, Option<String>>,
    /// Relay certificates near their end, by fingerprint, and when that was last raised.
    certificates: HashMap<String, chrono::DateTime<Utc>>,
    /// The budgets as last stored, and when they are stored next even if no wait began or ended.
    published: (Vec<budget::Standing>, Instant),
}

/// What ended a wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Woke {
    /// Something arrived that needs no look at the store.
    Idle,
    /// The store should be looked at again.
    Look,
    /// Someone asked to try now: close the circuits, then look.
    Resume,
}

/// An attempt's outcome for the store, and what it sent for the budgets.
struct Settled {
    settlement: Settlement,
    usage: Option<Usage>,
}

/// How a run ended, for the circuits.
struct RunEnd {
    identity: Option<String>,
    /// The run was the probe of an open circuit.
    probe: bool,
    /// The failure of the relay or identity that stopped it; `None` when it reached the relay.
    failure: Option<Failure>,
    /// Messages it did not attempt (after such a failure): their leases go back, uncharged.
    unattempted: Vec<i64>,
    /// The relay's certificate, as the run's connection saw it.
    certificate: Option<tls::Certificate>,
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
        let (settle_tx, settle_rx) = mpsc::channel::<Settled>(1024);
        let settler =
            tokio::spawn(settle_batches(self.app.clone(), settle_rx, self.wake.clone(), self.options.settle_window));
        let pool = Arc::new(Pool::new(64, self.options.idle_timeout));
        let large = Arc::new(Semaphore::new(LARGE_AT_ONCE));
        let mut relay = self.relay().await;
        let mut in_flight: JoinSet<RunEnd> = JoinSet::new();
        let mut books = Books {
            health: Health::default(),
            budgets: self.budgets(relay.limits).await,
            running: HashMap::new(),
            certificates: HashMap::new(),
            published: (Vec::new(), Instant::now()),
        };
        // Runs that ended, for the circuits.
        let mut ended: Vec<Result<(tokio::task::Id, RunEnd), JoinError>> = Vec::new();
        // A restart, like a change of configuration, starts the circuits closed.
        self.store_health(&books.health).await;
        // Leased messages waiting for a free connection: leasing several at once saves a commit per message.
        let mut backlog: VecDeque<LeasedMessage> = VecDeque::new();
        let mut handed = self.handoff.attach(&owner);
        // Whether the store may hold due messages this engine was not handed: at start, after a wake, once
        // `look_at` passes, and while leases come back full. Messages handed over need no look.
        let mut look = true;
        // The latest time for the next look: when the next message in the store falls due, at most a poll
        // interval after the last look. A deadline, not a timeout: a busy engine still looks when it passes.
        let mut look_at = Instant::now();

        while !shutdown.is_cancelled() {
            while let Some(end) = in_flight.try_join_next_with_id() {
                ended.push(end);
            }
            // Leases to give back, uncharged: messages runs did not attempt, and those whose relay or identity
            // waits. One write for all of them.
            let mut held: Vec<i64> = Vec::new();
            for end in ended.drain(..) {
                look |= self.ended(&mut books, end, &mut held, &relay).await;
            }
            while let Ok(message) = handed.try_recv() {
                backlog.push_back(message);
            }
            if self.config.borrow().revision != relay.revision {
                relay = self.relay().await;
                books.budgets.set_limits(relay.limits);
                pool.clear();
                self.close_circuits(&mut books.health).await;
            }
            let Ok(settings) = &relay.settings else {
                self.release(&owner, &held).await;
                self.handoff.want(0, relay.lease);
                let woke = self.idle(
                    &shutdown,
                    &mut in_flight,
                    &mut ended,
                    &mut handed,
                    &mut backlog,
                    self.options.poll_interval,
                );
                if woke.await == Woke::Resume {
                    self.close_circuits(&mut books.health).await;
                }
                look = true;
                continue;
            };
            let now = Utc::now();
            let mut waiting = books.health.waiting(now);
            let budget_turns = books.budgets.hold(now, &mut waiting);
            self.publish_budgets(&mut books, now).await;
            // While the relay is down, the most leased is one message, for the probe (none until its time).
            let relay_down = books.health.relay.is_some();
            let capacity = if relay_down { 1 } else { relay.connections * BACKLOG_FACTOR };
            look |= Instant::now() >= look_at;
            if look && backlog.len() < relay.connections.min(capacity) {
                let limit = capacity - backlog.len();
                match self.app.store().lease_due(&owner, now, later(now, relay.lease), limit as u32, &waiting).await {
                    Ok(leased) => {
                        look = leased.len() == limit && !relay_down;
                        backlog.extend(leased);
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "could not lease due messages; will retry");
                        look = false;
                    }
                }
                // `until_next_due` is at most a poll interval.
                look_at = Instant::now()
                    + if look { self.options.poll_interval } else { self.until_next_due(&waiting).await };
            }
            if let Some(at) = books.health.next_probe().into_iter().chain(budget_turns).min() {
                look_at = look_at.min(Instant::now() + (at - now).to_std().unwrap_or_default());
            }
            // What the store's lease left room for, accepted messages fill as they are committed (none while the
            // relay account waits: they would only be given back).
            let wanted = if relay_down || waiting.relay_account { 0 } else { capacity.saturating_sub(backlog.len()) };
            self.handoff.want(wanted, relay.lease);
            backlog.retain(|m| {
                let holds = waiting.holds(m.mailbox_of.as_deref());
                if holds {
                    held.push(m.id);
                }
                !holds
            });
            let mut started = false;
            // Messages whose identity has as many connections as it may: they go when one of its runs ends.
            let mut busy: Vec<LeasedMessage> = Vec::new();
            while in_flight.len() < relay.connections
                && let Some(message) = backlog.pop_front()
            {
                let identity = message.mailbox_of.clone();
                let probe = match books.health.gate(identity.as_deref(), now) {
                    Gate::Open => false,
                    Gate::Probe => true,
                    Gate::Wait => {
                        held.push(message.id);
                        continue;
                    }
                };
                let free = relay.connections - in_flight.len();
                let mut messages = if probe { vec![message] } else { run(message, &mut backlog, free) };
                let recipients: Vec<u32> = messages.iter().map(|m| pending_recipients(m).len() as u32).collect();
                match books.budgets.take(identity.as_deref(), now, &recipients) {
                    Admit::Go { count, warning } => {
                        held.extend(messages.drain(count..).map(|m| m.id));
                        if let Some(warning) = warning {
                            self.warn_budget(warning);
                        }
                    }
                    Admit::Busy => {
                        busy.append(&mut messages);
                        continue;
                    }
                    Admit::Until(_) => {
                        held.extend(messages.iter().map(|m| m.id));
                        continue;
                    }
                }
                if probe {
                    books.health.probing(identity.as_deref());
                    tracing::info!(relay = %settings.address(), account = identity.as_deref().unwrap_or(""), "probing");
                }
                let job = Delivery {
                    app: self.app.clone(),
                    large: large.clone(),
                    messages,
                    settings: settings.clone(),
                    mailboxes: self.mailboxes.clone(),
                    revision: relay.revision,
                    pool: pool.clone(),
                    policy: relay.policy,
                    owner: owner.clone(),
                    probe,
                };
                let task = in_flight.spawn(job.run(settle_tx.clone()));
                books.running.insert(task.id(), identity);
                started = true;
            }
            for message in busy.into_iter().rev() {
                backlog.push_front(message);
            }
            self.release(&owner, &held).await;
            if started && in_flight.len() < relay.connections {
                continue;
            }
            // Still to look (the backlog is full): a delivery ending makes room, the timer is not needed.
            let sleep =
                if look { self.options.poll_interval } else { look_at.saturating_duration_since(Instant::now()) };
            match self.idle(&shutdown, &mut in_flight, &mut ended, &mut handed, &mut backlog, sleep).await {
                Woke::Idle => {}
                Woke::Look => look = true,
                Woke::Resume => {
                    self.close_circuits(&mut books.health).await;
                    look = true;
                }
            }
        }

        self.handoff.detach();
        if !in_flight.is_empty() {
            tracing::info!(count = in_flight.len(), "waiting for deliveries under way");
        }
        while let Some(end) = in_flight.join_next_with_id().await {
            ended.push(end);
        }
        // Their unattempted messages' leases end with the others' below.
        let mut held = Vec::new();
        for end in ended.drain(..) {
            self.ended(&mut books, end, &mut held, &relay).await;
        }
        drop(settle_tx);
        let _ = settler.await;
        // Messages leased but not attempted (the backlog, and any handed over meanwhile): due again at once, for
        // this node's next start or another node.
        if let Err(e) = self.app.store().expire_leases(&owner).await {
            tracing::warn!(error = %e, "could not release leases of messages not attempted");
        }
        pool.clear();
    }

    /// Waits for something to do: a message handed over, a delivery ending, a wake (messages stored for the
    /// engine to find), a request to try now, a configuration change, the timer.
    async fn idle(
        &mut self,
        shutdown: &CancellationToken,
        in_flight: &mut JoinSet<RunEnd>,
        ended: &mut Vec<Result<(tokio::task::Id, RunEnd), JoinError>>,
        handed: &mut mpsc::UnboundedReceiver<LeasedMessage>,
        backlog: &mut VecDeque<LeasedMessage>,
        sleep: Duration,
    ) -> Woke {
        tokio::select! {
            Some(message) = handed.recv() => {
                backlog.push_back(message);
                Woke::Idle
            }
            Some(end) = in_flight.join_next_with_id(), if !in_flight.is_empty() => {
                ended.push(end);
                Woke::Idle
            }
            () = shutdown.cancelled() => Woke::Look,
            () = self.wake.notified() => Woke::Look,
            () = self.app.delivery_resumed() => Woke::Resume,
            _ = self.config.changed() => Woke::Look,
            () = tokio::time::sleep(sleep) => Woke::Look,
        }
    }

    /// Takes what a run saw into the circuits; adds the messages it did not attempt to `held`. True when a
    /// circuit closed (what waited is due).
    async fn ended(
        &self,
        books: &mut Books,
        end: Result<(tokio::task::Id, RunEnd), JoinError>,
        held: &mut Vec<i64>,
        relay: &Relay,
    ) -> bool {
        let task = end.as_ref().map_or_else(JoinError::id, |(id, _)| *id);
        if let Some(identity) = books.running.remove(&task) {
            books.budgets.ended(identity.as_deref());
        }
        let health = &mut books.health;
        let end = match end {
            Ok((_, end)) => end,
            Err(e) => {
                // Whatever it was, a probe must not stay under way forever: the next one may start.
                tracing::error!(error = %e, "a delivery run ended abnormally");
                health.probes_ended();
                return false;
            }
        };
        held.extend(&end.unattempted);
        let seen = end.failure.as_ref().map_or(Seen::Reached, Seen::Failed);
        let account = end.identity.as_deref().unwrap_or("");
        if let Some(certificate) = &end.certificate {
            self.check_expiry(&mut books.certificates, certificate, relay);
        }
        let change = health.report(end.identity.as_deref(), end.probe, seen, Utc::now(), relay.backoff);
        let error = end.failure.as_ref().map_or("", |f| f.error.as_str());
        match change {
            Change::None => return false,
            Change::WentDown(scope) => tracing::warn!(
                scope = scope.as_str(),
                account,
                error,
                "the relay or identity is down: its messages wait, and one probe tries again after the backoff"
            ),
            Change::StillDown(scope) => tracing::info!(scope = scope.as_str(), account, error, "probe failed"),
            Change::CameUp => tracing::info!(account, "the relay is reachable again: waiting messages go"),
        }
        self.store_health(health).await;
        change == Change::CameUp
    }

    /// The budgets of the provider's limits, with what was sent in the last day.
    async fn budgets(&self, limits: Limits) -> Budgets {
        let now = Utc::now();
        let usage = self.app.store().usage_since(now - budget::day()).await.unwrap_or_else(|e| {
            tracing::error!(error = %e, "could not read what was sent in the last day; the day's budgets start empty");
            Vec::new()
        });
        Budgets::new(limits, &usage, now)
    }

    /// Stores the identities' budgets when a day's wait began or ended, else at most every few seconds.
    async fn publish_budgets(&self, books: &mut Books, now: chrono::DateTime<Utc>) {
        let (published, next) = &books.published;
        let waits = |s: &[budget::Standing]| s.iter().filter(|s| s.waiting_until.is_some()).count();
        let due = Instant::now() >= *next;
        if !due && books.budgets.limits().recipients_per_day.is_none() {
            return;
        }
        let standings = books.budgets.standings(now);
        if standings == *published || (!due && waits(&standings) == waits(published)) {
            return;
        }
        if let Err(e) = self.app.set_delivery_budgets(&standings).await {
            tracing::warn!(error = %e, "could not store the identities' budgets");
        }
        books.published = (standings, Instant::now() + PUBLISH_BUDGETS);
    }

    /// Warns the admin contacts that an identity nears the end of its day's recipients.
    fn warn_budget(&self, warning: budget::Warning) {
        let account = warning.identity.clone().unwrap_or_else(|| "relay account".into());
        tracing::warn!(
            account,
            used = warning.used,
            budget = warning.budget,
            "the day's recipient budget nears its end"
        );
        let details = std::collections::BTreeMap::from([
            ("account".to_owned(), account),
            ("used".to_owned(), warning.used.to_string()),
            ("budget".to_owned(), warning.budget.to_string()),
            ("easing_at".to_owned(), warning.easing_at.format("%Y-%m-%d %H:%M UTC").to_string()),
        ]);
        self.raise(EventKind::BudgetWarning, details);
    }

    /// Raises `delivery.certificate_expiring` when the relay's certificate ends within `tls.expiry_warning`: once
    /// a day per certificate.
    fn check_expiry(
        &self,
        raised: &mut HashMap<String, chrono::DateTime<Utc>>,
        certificate: &tls::Certificate,
        relay: &Relay,
    ) {
        let now = Utc::now();
        let left = certificate.not_after - now;
        if relay.expiry_warning.is_zero()
            || left.to_std().is_ok_and(|left| left > relay.expiry_warning)
            || raised.get(&certificate.fingerprint).is_some_and(|at| now - *at < budget::day())
        {
            return;
        }
        raised.insert(certificate.fingerprint.clone(), now);
        let relay = relay.settings.as_ref().map(|s| s.address()).unwrap_or_default();
        tracing::warn!(relay, subject = certificate.subject, expires = %certificate.not_after, "the relay's certificate expires soon");
        let details = std::collections::BTreeMap::from([
            ("relay".to_owned(), relay),
            ("subject".to_owned(), certificate.subject.clone()),
            ("expires".to_owned(), certificate.not_after.format("%Y-%m-%d %H:%M UTC").to_string()),
            ("days".to_owned(), left.num_days().max(0).to_string()),
        ]);
        self.raise(EventKind::CertificateExpiring, details);
    }

    /// Raises an event for the admin contacts, without holding the engine up.
    fn raise(&self, kind: EventKind, details: std::collections::BTreeMap<String, String>) {
        let app = self.app.clone();
        tokio::spawn(async move {
            if let Err(e) = app.raise_event(kind, details).await {
                tracing::warn!(error = %e, kind = kind.id(), "could not raise the event");
            }
        });
    }

    /// Gives back the leases of messages not attempted: due again at once, uncharged.
    async fn release(&self, owner: &str, held: &[i64]) {
        if !held.is_empty()
            && let Err(e) = self.app.store().release(owner, held).await
        {
            tracing::warn!(error = %e, "could not give back the leases of messages that wait; they come back when the leases end");
        }
    }

    /// Closes every circuit: the configuration changed, or an operator asked to try now.
    async fn close_circuits(&self, health: &mut Health) {
        if !health.is_up() {
            *health = Health::default();
            self.store_health(health).await;
            tracing::info!("circuits closed: waiting messages go now");
        }
    }

    async fn store_health(&self, health: &Health) {
        if let Err(e) = self.app.set_delivery_health(health).await {
            tracing::warn!(error = %e, "could not store the relay's state");
        }
    }

    /// How long to sleep: until the next message that does not wait falls due, at most the poll interval.
    async fn until_next_due(&self, waiting: &tidings_store::Waiting) -> Duration {
        let poll = self.options.poll_interval;
        match self.app.store().next_due(waiting).await {
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
            backoff: delivery.relay_backoff(),
            limits: budget::limits(&current.config),
            expiry_warning: current.config.tls.expiry_warning,
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
    let relay = looking_at(cfg)?;
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
        auth,
        tls: {
            // Off the async threads: it reads the CA bundle.
            let options = cfg.tls.clone();
            tokio::task::spawn_blocking(move || tls::client_config(&options)).await.map_err(|e| e.to_string())??
        },
        verify_certificates: cfg.tls.verify_certificates,
        ..relay
    })
}

/// The configured relay, without authentication and trusting any certificate: for looking at what it
/// presents ([`crate::smtp::Connection::fetch_certificates`]), never for sending. [`relay_settings`] adds the
/// authentication and the trust.
pub fn looking_at(cfg: &EmailConfig) -> Result<RelaySettings, String> {
    Ok(RelaySettings {
        host: cfg.smtp.host.clone().ok_or("no SMTP relay is configured (set smtp.host)")?,
        port: u16::try_from(cfg.smtp.effective_port()).map_err(|_| "smtp.port is out of range")?,
        encryption: cfg.smtp.encryption,
        auth: RelayAuth::None,
        tls: tls::accept_any(),
        verify_certificates: false,
        timeout: cfg.delivery.timeout,
        helo_name: helo_name(),
    })
}

/// This machine's name for EHLO.
fn helo_name() -> String {
    host_name().unwrap_or_else(|| "tidings.localdomain".into())
}

/// `first` and the messages that follow it in `backlog` for the same identity: the backlog's fair share of
/// the `free` connections, at most [`MAX_RUN`]. A run goes over one connection, each message's data in the
/// same write as the next one's envelope where the relay pipelines; a short backlog still spreads over the
/// connections.
fn run(first: LeasedMessage, backlog: &mut VecDeque<LeasedMessage>, free: usize) -> Vec<LeasedMessage> {
    let share = (backlog.len() + 1).div_ceil(free.max(1)).min(MAX_RUN);
    let mut run = vec![first];
    while run.len() < share
        && backlog.front().is_some_and(|next| next.mailbox_of == run[0].mailbox_of)
        && let Some(next) = backlog.pop_front()
    {
        run.push(next);
    }
    run
}

/// The attempts of a run of messages (see [`run`]) for one identity, on one connection where it stays usable.
struct Delivery {
    app: App,
    /// Turns for large messages read from the store (see [`LARGE_AT_ONCE`]).
    large: Arc<Semaphore>,
    messages: Vec<LeasedMessage>,
    settings: Arc<RelaySettings>,
    mailboxes: Arc<dyn MailboxTokens>,
    revision: i64,
    pool: Arc<Pool>,
    policy: RetryPolicy,
    owner: String,
    /// The probe of an open circuit.
    probe: bool,
}

impl Delivery {
    /// Attempts each message in turn, settling each as it ends, until a failure of the relay or the identity:
    /// the messages after it are not attempted.
    async fn run(self, outcomes: mpsc::Sender<Settled>) -> RunEnd {
        let relay = self.settings.address();
        let settings = self.settings().await.map_err(|e| e.to_failure(&relay));
        let pending: Vec<Vec<String>> = self.messages.iter().map(pending_recipients).collect();
        let mut end = RunEnd {
            identity: self.identity().map(str::to_owned),
            probe: self.probe,
            failure: None,
            unattempted: Vec::new(),
            certificate: None,
        };
        // The run's connection, while it stays usable.
        let mut connection = None;
        for (i, m) in self.messages.iter().enumerate() {
            if end.failure.is_some() {
                end.unattempted.push(m.id);
                continue;
            }
            let started_at = Utc::now();
            // A large message is read from the store now, and let go after its attempt.
            let (content, _turn) = match self.content(m).await {
                Ok(Some(loaded)) => loaded,
                Ok(None) => continue, // purged meanwhile: nothing to send or settle
                Err(failure) => {
                    let _ = outcomes.send(self.settle(m, started_at, Vec::new(), Outcome::Failed(failure))).await;
                    continue;
                }
            };
            // The next message's envelope goes with this one's data when the next is at hand.
            let next = self.messages.get(i + 1).filter(|n| n.content.len() as u64 == n.size).map(|n| Next {
                mail_from: &n.mail_from,
                recipients: &pending[i + 1],
                data: &n.content,
            });
            let (recipients, outcome) = match &settings {
                Ok(settings) => self.attempt(settings, &mut connection, m, &content, &pending[i], next).await,
                Err(failure) => (Vec::new(), Outcome::Failed(failure.clone())),
            };
            if let Outcome::Failed(f) = &outcome
                && f.scope != Scope::Message
            {
                end.failure = Some(f.clone());
            }
            let _ = outcomes.send(self.settle(m, started_at, recipients, outcome)).await;
        }
        if let Some(connection) = connection {
            end.certificate = connection.certificate();
            self.pool.put(connection, self.revision, self.identity());
        }
        end
    }

    /// `m`'s content: as leased, or read from the store when it was too large to be leased with it, holding one
    /// of the turns that bound how many large messages are in memory at once. `None` when it is gone.
    async fn content<'m>(
        &self,
        m: &'m LeasedMessage,
    ) -> Result<Option<(Cow<'m, [u8]>, Option<OwnedSemaphorePermit>)>, Failure> {
        if m.content.len() as u64 == m.size {
            return Ok(Some((Cow::Borrowed(&m.content), None)));
        }
        let unreadable = |e: String| Failure {
            class: Class::Transient,
            scope: Scope::Message,
            stage: Stage::Data,
            reply: None,
            error: format!("could not read the message from the outbox: {e}"),
            text: e,
            explanation: None,
        };
        let turn = self.large.clone().acquire_owned().await.map_err(|e| unreadable(e.to_string()))?;
        match self.app.store().message_content(m.id).await {
            Ok(Some(content)) => Ok(Some((Cow::Owned(content), Some(turn)))),
            Ok(None) => Ok(None),
            Err(e) => Err(unreadable(e.to_string())),
        }
    }

    /// The device account whose own mailbox sends the run; `None` for the relay account.
    fn identity(&self) -> Option<&str> {
        self.messages[0].mailbox_of.as_deref()
    }

    /// The relay settings for the run: the relay account's, or those of the device account's own mailbox
    /// whose messages they are.
    async fn settings(&self) -> Result<Arc<RelaySettings>, crate::smtp::error::SmtpError> {
        let Some(account) = self.identity() else { return Ok(self.settings.clone()) };
        let (user, tokens) = self.mailboxes.mailbox(account).await?;
        Ok(Arc::new(RelaySettings { auth: RelayAuth::OAuth2 { user, tokens }, ..(*self.settings).clone() }))
    }

    /// Sends `m` over the run's connection, a pooled one, or a new one, replacing one the relay closed
    /// meanwhile by a fresh one. The connection stays in `connection` while it is usable.
    async fn attempt(
        &self,
        settings: &RelaySettings,
        connection: &mut Option<Connection>,
        m: &LeasedMessage,
        content: &[u8],
        recipients: &[String],
        next: Option<Next<'_>>,
    ) -> (Vec<(String, outbox::RcptResult)>, Outcome) {
        let relay = settings.address();
        let (mut conn, reused) = match connection.take().or_else(|| self.pool.take(self.revision, self.identity())) {
            Some(c) => (c, true),
            None => match Connection::open(settings).await {
                Ok(c) => (c, false),
                Err(e) => return (Vec::new(), Outcome::Failed(e.to_failure(&relay))),
            },
        };
        let mut tx: Transaction = conn.send_before(&m.mail_from, recipients, content, next).await;
        if reused && matches!(&tx.result, Err(e) if e.is_connection_loss() && tx.recipients.is_empty()) {
            conn = match Connection::open(settings).await {
                Ok(c) => c,
                Err(e) => return (Vec::new(), Outcome::Failed(e.to_failure(&relay))),
            };
            tx = conn.send_before(&m.mail_from, recipients, content, next).await;
        }
        match tx.result {
            Ok(reply) => {
                *connection = Some(conn);
                (tx.recipients, Outcome::Accepted { reply })
            }
            Err(e) => {
                if !e.is_connection_loss() && !matches!(e.kind, crate::smtp::error::ErrorKind::Timeout(_)) {
                    *connection = Some(conn);
                }
                (tx.recipients, Outcome::Failed(e.to_failure(&relay)))
            }
        }
    }

    /// The outcome of `m`'s attempt, as the store records it.
    fn settle(
        &self,
        m: &LeasedMessage,
        started_at: chrono::DateTime<Utc>,
        recipients: Vec<(String, outbox::RcptResult)>,
        outcome: Outcome,
    ) -> Settled {
        let mut notes = notes(&self.settings);
        if let Outcome::Failed(f) = &outcome
            && f.scope != Scope::Message
        {
            notes.push(format!(
                "the {} is taken as down: messages for it wait, not attempted, until a probe finds it working \
                 (delivery.relay_backoff_first, delivery.relay_backoff_max)",
                if f.scope == Scope::Relay { "relay" } else { "identity Tidings sends as" }
            ));
        }
        let report = AttemptReport { started_at, finished_at: Utc::now(), recipients, outcome, notes };
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
        // What the relay took counts against the identity's day.
        let usage = matches!(report.outcome, Outcome::Accepted { .. }).then(|| Usage {
            identity: self.identity().map(str::to_owned),
            minute: budget::minute_of(report.finished_at),
            messages: 1,
            recipients: report.recipients.iter().filter(|(_, r)| *r == outbox::RcptResult::Accepted).count() as u32,
        });
        Settled { settlement: Settlement { id: m.id, owner: self.owner.clone(), settled }, usage }
    }
}

/// The recipients still to deliver to.
fn pending_recipients(m: &LeasedMessage) -> Vec<String> {
    m.recipients.iter().filter(|r| r.state == RecipientState::Pending).map(|r| r.address.clone()).collect()
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

/// The most outcomes one commit writes.
const SETTLE_BATCH: usize = 256;

/// Waits for a first item, then takes what else arrives within `window` of it (up to the batch size); 0 once
/// the channel is closed and empty.
async fn gather<T>(rx: &mut mpsc::Receiver<T>, batch: &mut Vec<T>, window: Duration) -> usize {
    if rx.recv_many(batch, SETTLE_BATCH).await == 0 {
        return 0;
    }
    let until = tokio::time::Instant::now() + window;
    while batch.len() < SETTLE_BATCH {
        let room = SETTLE_BATCH - batch.len();
        if !matches!(tokio::time::timeout_at(until, rx.recv_many(batch, room)).await, Ok(1..)) {
            break;
        }
    }
    batch.len()
}

/// Writes outcomes in batches: whatever arrives within `window` of the first, in one commit.
async fn settle_batches(app: App, mut rx: mpsc::Receiver<Settled>, wake: Arc<Notify>, window: Duration) {
    let mut batch = Vec::with_capacity(SETTLE_BATCH);
    while gather(&mut rx, &mut batch, window).await > 0 {
        let (settlements, usage): (Vec<Settlement>, Vec<Option<Usage>>) =
            batch.drain(..).map(|s| (s.settlement, s.usage)).unzip();
        let usage = budget::tally(usage.iter().flatten().map(|u| (u.identity.as_deref(), u.minute, u.recipients)));
        let mut delay = Duration::from_millis(100);
        loop {
            match app.store().settle(&settlements, &usage).await {
                Ok(()) => break,
                Err(e) => {
                    // Leases protect the messages meanwhile: if this never succeeds they are delivered again.
                    tracing::error!(error = %e, count = settlements.len(), "could not record delivery outcomes; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(10));
                }
            }
        }
        for s in &settlements {
            app.metrics().count("tidings_delivery_attempts_total", &s.settled.attempt.result);
        }
        // Deferred messages may now be due sooner than the engine planned.
        if settlements.iter().any(|s| s.settled.status == outbox::Status::Deferred) {
            wake.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leased(id: i64, mailbox_of: Option<&str>) -> LeasedMessage {
        LeasedMessage {
            id,
            mail_from: "alerts@example.com".into(),
            recipients: Vec::new(),
            content: Vec::new(),
            size: 0,
            attempts: 0,
            lifetime_start: Utc::now(),
            mailbox_of: mailbox_of.map(str::to_owned),
        }
    }

    /// Takes a run from `backlog` as the engine does, its first message popped first; the run's ids.
    fn run_of(backlog: &mut VecDeque<LeasedMessage>, free: usize) -> Vec<i64> {
        let first = backlog.pop_front().unwrap();
        run(first, backlog, free).iter().map(|m| m.id).collect()
    }

    #[test]
    fn a_run_is_the_backlogs_share_of_the_free_connections_for_one_identity() {
        let mut backlog: VecDeque<_> = (1..=10).map(|id| leased(id, None)).collect();
        assert_eq!(run_of(&mut backlog, 4), [1, 2, 3], "10 messages over 4 connections");
        assert_eq!(run_of(&mut backlog, 3), [4, 5, 6]);
        assert_eq!(run_of(&mut backlog, 8), [7], "fewer messages than connections: one each");

        let mut backlog: VecDeque<_> = (1..=100).map(|id| leased(id, None)).collect();
        assert_eq!(run_of(&mut backlog, 1).len(), MAX_RUN);

        let mut backlog: VecDeque<_> =
            [leased(1, None), leased(2, None), leased(3, Some("scanner")), leased(4, Some("scanner"))].into();
        assert_eq!(run_of(&mut backlog, 1), [1, 2], "a device account's own mailbox needs its own connection");
        assert_eq!(run_of(&mut backlog, 1), [3, 4]);
        assert!(backlog.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn outcomes_arriving_within_the_window_are_gathered_into_one_batch() {
        let (tx, mut rx) = mpsc::channel(16);
        let window = Duration::from_millis(20);
        tokio::spawn(async move {
            for (delay, item) in [(0, 1), (5, 2), (10, 3), (30, 4), (0, 5)] {
                tokio::time::sleep(Duration::from_millis(delay)).await;
                tx.send(item).await.unwrap();
            }
        });
        let mut batch = Vec::new();
        assert_eq!(gather(&mut rx, &mut batch, window).await, 3);
        assert_eq!(batch, [1, 2, 3], "the fourth came 45 ms after the first");
        batch.clear();
        assert_eq!(gather(&mut rx, &mut batch, window).await, 2);
        assert_eq!(batch, [4, 5]);
        batch.clear();
        assert_eq!(gather(&mut rx, &mut batch, window).await, 0, "closed");
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_batch_is_written_without_waiting_for_the_window() {
        let (tx, mut rx) = mpsc::channel(SETTLE_BATCH + 1);
        for i in 0..=SETTLE_BATCH {
            tx.send(i).await.unwrap();
        }
        let started = tokio::time::Instant::now();
        let mut batch = Vec::new();
        assert_eq!(gather(&mut rx, &mut batch, Duration::from_secs(60)).await, SETTLE_BATCH);
        assert_eq!(started.elapsed(), Duration::ZERO);
    }
}

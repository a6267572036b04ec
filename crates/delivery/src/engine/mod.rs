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

mod delivery;
mod relay;
mod settle;
mod shared;

pub use relay::{looking_at, relay_settings};

use crate::{
    pool::Pool,
    smtp::{RelaySettings, tls},
    token::{MailboxTokens, TokenSource},
};
use chrono::Utc;
use delivery::{Delivery, LARGE_AT_ONCE, RunEnd, pending_recipients};
use settle::{Settled, settle_batches};
use std::{
    collections::{HashMap, VecDeque},
    sync::Arc,
    time::{Duration, Instant},
};
use tidings_app::{App, later, outbox::Handoff, settings::Current};
use tidings_core::{
    Invalid,
    notify::EventKind,
    outbox::{
        budget::{self, Admit, Budgets, Limits},
        circuit::{Backoff, Change, Gate, Health, Seen},
        retry::RetryPolicy,
    },
};
use tidings_store::LeasedMessage;
use tokio::{
    sync::{Notify, Semaphore, mpsc, watch},
    task::{JoinError, JoinSet},
};
use tokio_util::sync::CancellationToken;

/// How often the identities' budgets are stored while they only count up.
const PUBLISH_BUDGETS: Duration = Duration::from_secs(5);
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
    settings: Result<Arc<RelaySettings>, Invalid>,
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
    /// The fingerprint of the relay's certificate as last recorded for its lifetime.
    recorded: Option<String>,
    /// The budgets as last stored, and when they are stored next even if no wait began or ended.
    published: (Vec<budget::Standing>, Instant),
    /// When the next identity that waits for its budget may go, as last seen.
    turns: Option<chrono::DateTime<Utc>>,
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
        // On a database other nodes share, an identity's limits are the cluster's (`shared`).
        let shared = self.app.store().shared();
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
            recorded: None,
            published: (Vec::new(), Instant::now()),
            turns: None,
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
            self.publish_budgets(&mut books, now, budget_turns).await;
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
                // Where limits hold on a shared database, the admission records what the run sends (`counted`).
                let counted = shared && books.budgets.limits().any();
                let (admit, slot) = if counted {
                    match shared::admit(&self.app, &mut books.budgets, identity.as_deref(), now, &recipients).await {
                        Ok(admitted) => admitted,
                        Err(e) => {
                            tracing::error!(error = %e, "could not ask the shared database for the identity's limits; the messages wait");
                            held.extend(messages.iter().map(|m| m.id));
                            look_at = look_at.min(Instant::now() + Duration::from_secs(1));
                            continue;
                        }
                    }
                } else {
                    (books.budgets.take(identity.as_deref(), now, &recipients), None)
                };
                match admit {
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
                    slot,
                    counted,
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
            self.record_certificate(&mut books.recorded, certificate, relay);
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

    /// Stores the identities' budgets when a wait for them began or ended (`turns`, from
    /// [`Budgets::hold`], changed), else at most every [`PUBLISH_BUDGETS`]: not on every turn of the loop.
    async fn publish_budgets(
        &self,
        books: &mut Books,
        now: chrono::DateTime<Utc>,
        turns: Option<chrono::DateTime<Utc>>,
    ) {
        let changed = std::mem::replace(&mut books.turns, turns) != turns;
        if !changed && Instant::now() < books.published.1 {
            return;
        }
        let standings = books.budgets.standings(now);
        if standings != books.published.0
            && let Err(e) = self.app.set_delivery_budgets(&standings).await
        {
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

    /// Records the relay's certificate for the credentials' lifetimes when it is not the one last recorded.
    fn record_certificate(&self, recorded: &mut Option<String>, certificate: &tls::Certificate, relay: &Relay) {
        let Ok(settings) = &relay.settings else { return };
        if recorded.as_deref() == Some(certificate.fingerprint.as_str()) {
            return;
        }
        *recorded = Some(certificate.fingerprint.clone());
        let (app, host, certificate) = (self.app.clone(), settings.host.clone(), certificate.clone());
        tokio::spawn(async move {
            let (fingerprint, subject) = (&certificate.fingerprint, &certificate.subject);
            if let Err(e) = app.relay_certificate_seen(&host, fingerprint, certificate.not_after, subject).await {
                tracing::warn!(error = %e, "could not record the relay's certificate");
            }
        });
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

#[cfg(test)]
mod tests {
    use super::*;

    fn leased(id: i64, mailbox_of: Option<&str>) -> LeasedMessage {
        LeasedMessage {
            id,
            origin: "api:test".into(),
            subject: None,
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
}

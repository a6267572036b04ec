//! One run: the attempts of a run of messages for one identity, on one connection while it stays usable, each
//! outcome settled as it ends; how the run ended, for the circuits.

use super::settle::Settled;
use crate::{
    pool::Pool,
    smtp::{Connection, Next, RelayAuth, RelaySettings, Transaction, tls},
    token::MailboxTokens,
};
use chrono::Utc;
use std::{borrow::Cow, sync::Arc};
use tidings_app::App;
use tidings_core::{
    config::Encryption,
    notify::{EventKind, dead_letter},
    outbox::{
        self, AttemptReport, Failure, Outcome, RecipientState,
        budget::{self, Usage},
        reply::{Class, Scope, Stage},
        retry::RetryPolicy,
    },
};
use tidings_store::{DeadLetter, LeasedMessage, NewEvent, Settlement};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

/// How many messages larger than [`tidings_store::CONTENT_PART`] are read into memory for sending at once: the
/// others wait for a turn, so that a burst of large scans costs two of them in memory, not one per connection.
pub(super) const LARGE_AT_ONCE: usize = 2;

/// How a run ended, for the circuits.
pub(super) struct RunEnd {
    pub(super) identity: Option<String>,
    /// The run was the probe of an open circuit.
    pub(super) probe: bool,
    /// The failure of the relay or identity that stopped it; `None` when it reached the relay.
    pub(super) failure: Option<Failure>,
    /// Messages it did not attempt (after such a failure): their leases go back, uncharged.
    pub(super) unattempted: Vec<i64>,
    /// The relay's certificate, as the run's connection saw it.
    pub(super) certificate: Option<Arc<tls::Certificate>>,
}

/// The attempts of a run of messages (see [`run`]) for one identity, on one connection where it stays usable.
pub(super) struct Delivery {
    pub(super) app: App,
    /// Turns for large messages read from the store (see [`LARGE_AT_ONCE`]).
    pub(super) large: Arc<Semaphore>,
    pub(super) messages: Vec<LeasedMessage>,
    pub(super) settings: Arc<RelaySettings>,
    pub(super) mailboxes: Arc<dyn MailboxTokens>,
    pub(super) revision: i64,
    pub(super) pool: Arc<Pool>,
    pub(super) policy: RetryPolicy,
    pub(super) owner: String,
    /// The probe of an open circuit.
    pub(super) probe: bool,
    /// On a shared database, the identity's connection slot, held while the run lasts.
    pub(super) slot: Option<tidings_store::Turn>,
    /// What the run sends was recorded when it was admitted (`shared.rs`): its outcomes carry no usage.
    pub(super) counted: bool,
}

impl Delivery {
    /// Attempts each message in turn, settling each as it ends, until a failure of the relay or the identity:
    /// the messages after it are not attempted.
    pub(super) async fn run(mut self, outcomes: mpsc::Sender<Settled>) -> RunEnd {
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
            match self.slot {
                // A session kept open would count against the identity's connections with no slot held: it
                // ends with the run, and the slot is given back once it has.
                Some(_) => connection.quit().await,
                None => self.pool.put(connection, self.revision, self.identity()),
            }
        }
        // Given back at once, so that this node's next run, or another node's, may take it.
        if let Some(slot) = self.slot.take() {
            slot.release().await;
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
            retry_after: None,
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
        if let (Some(api), RelayAuth::OAuth2 { user, tokens }) = (&settings.api, &settings.auth) {
            return crate::api::send(api, user, tokens.as_ref(), content, recipients).await;
        }
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
                tracing::info!(message_id = m.id, attempt = a.number, status = %settled.status, "delivered")
            }
            Outcome::Failed(f) => tracing::warn!(
                message_id = m.id,
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
        let usage = (!self.counted && matches!(report.outcome, Outcome::Accepted { .. })).then(|| Usage {
            identity: self.identity().map(str::to_owned),
            minute: budget::minute_of(report.finished_at),
            messages: 1,
            recipients: report.recipients.iter().filter(|(_, r)| *r == outbox::RcptResult::Accepted).count() as u32,
        });
        let dead_letter = (settled.status == outbox::Status::Failed).then(|| self.dead_letter(m, &settled));
        let waited = matches!(report.outcome, Outcome::Accepted { .. })
            .then(|| (report.finished_at - m.lifetime_start).to_std().unwrap_or_default());
        Settled { settlement: Settlement { id: m.id, owner: self.owner.clone(), settled, dead_letter }, usage, waited }
    }

    /// The `delivery.dead_letter` event of `m`, which ended failed (`notify::dead_letter` says what it holds and
    /// whether it is mailed).
    fn dead_letter(&self, m: &LeasedMessage, settled: &outbox::Settled) -> DeadLetter {
        let recipients: Vec<&str> = settled.recipients.iter().map(|r| r.address.as_str()).collect();
        let details = dead_letter::details(m.id, m.subject.as_deref(), &recipients, settled.last_error.as_deref());
        DeadLetter {
            event: NewEvent {
                kind: EventKind::DeadLetter,
                node: self.owner.split('/').next().unwrap_or_default().to_owned(),
                details,
                origin: "tidings".into(),
                received_at: Utc::now(),
            },
            mailed: dead_letter::mailed(&m.origin),
        }
    }
}

/// The recipients still to deliver to.
pub(super) fn pending_recipients(m: &LeasedMessage) -> Vec<String> {
    m.recipients.iter().filter(|r| r.state == RecipientState::Pending).map(|r| r.address.clone()).collect()
}

/// What the administrator should know about how attempts are made.
pub(super) fn notes(settings: &RelaySettings) -> Vec<String> {
    let mut notes = Vec::new();
    if let Some(api) = &settings.api {
        // The provider's API is reached over HTTPS; plain HTTP is allowed on loopback only (a local proxy or test).
        if api.endpoint.starts_with("http://") {
            notes.push(format!("the provider's API is reached over plain HTTP ({})", api.endpoint));
        }
        return notes;
    }
    if settings.encryption == Encryption::None {
        notes.push("the connection to the relay is not encrypted (smtp.encryption=none)".to_owned());
    } else if !settings.verify_certificates {
        notes.push("the relay's certificate was not verified (tls.verify_certificates=false)".to_owned());
    }
    notes
}

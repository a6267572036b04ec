//! The outbox service: accepting messages (validated, composed, durably stored before anyone is told "yes"),
//! and the operator's view of them: list, inspect, retry, purge.
//!
//! Acceptance comes in two forms: [`App::submit`] commits each message on its own (the CLI), and a
//! [`Committer`] gathers concurrent submissions into one commit (the daemon), so a burst does not cost one
//! disk sync per message.

use crate::{App, Error, Result};
use chrono::{DateTime, Utc};
use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};
use tidings_core::{
    EmailConfig, FieldError, ValidationErrors,
    audit::NewAuditEntry,
    message::{self, NewMessage, RawMessage},
    outbox::{self, Recipient, Status, budget::Standing, circuit::Health},
};
use tidings_store::{
    CONTENT_PART, LeasedMessage, MessageDetail, MessageFilter, MessageSummary, NewLease, NewOutboxMessage,
};
use tokio::sync::{Notify, mpsc, oneshot};

/// Where the delivery engine keeps the relay's and identities' circuits.
const DELIVERY_HEALTH: &str = "delivery.health";
/// Meta key: each identity's use of its day's budget ([`Standing`]), as the delivery engine last stored it.
const DELIVERY_BUDGETS: &str = "delivery.budgets";

/// What to send.
#[derive(Clone, Debug)]
pub enum Submission {
    /// Composed by Tidings, from the configured sender.
    Structured(NewMessage),
    /// Sent as it is (Date and Message-ID added when missing).
    Raw(RawMessage),
}

/// What an operator's retry did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryOutcome {
    Requeued,
    NotFound,
    /// The message is being delivered or was delivered, or has nobody left to send to: nothing to retry.
    NotRetryable(Status),
}

/// An accepted message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accepted {
    pub id: i64,
    /// The Message-ID header's value, without angle brackets.
    pub message_id: String,
}

/// Validates and composes a submission under `config`, ready for the outbox. Nothing is stored.
pub fn prepare(
    config: &EmailConfig,
    origin: &str,
    submission: Submission,
    now: DateTime<Utc>,
) -> Result<NewOutboxMessage> {
    let limit = config.delivery.max_message_size;
    let (mail_from, rcpt_to, content, subject, message_id) = match submission {
        Submission::Structured(msg) => {
            msg.validate()?;
            let sender = config.sender.clone().ok_or_else(|| {
                Error::NotConfigured("no sender address is configured; set `sender` in the email configuration".into())
            })?;
            let message_id = new_message_id(&sender);
            let rendered = message::render(&msg, &sender, &message_id, now);
            message::check_size(rendered.data.len(), limit, "text")?;
            (rendered.mail_from, rendered.rcpt_to, rendered.data, Some(msg.subject), message_id)
        }
        Submission::Raw(raw) => {
            message::check_size(raw.data.len(), limit, "raw")?;
            raw.validate()?;
            let message_id = new_message_id(&raw.mail_from);
            let data = message::ensure_date_and_message_id(raw.data, now, &message_id);
            let fields = message::header::fields(&data).0;
            let subject = message::header::find(&fields, "Subject");
            let message_id = message::header::find(&fields, "Message-ID")
                .map(|v| v.trim_matches(['<', '>']).to_owned())
                .unwrap_or(message_id);
            (raw.mail_from, raw.rcpt_to, data, subject, message_id)
        }
    };
    let mut recipients: Vec<Recipient> = Vec::with_capacity(rcpt_to.len());
    for address in rcpt_to {
        if !recipients.iter().any(|r| r.address.eq_ignore_ascii_case(&address)) {
            recipients.push(Recipient::pending(address));
        }
    }
    Ok(NewOutboxMessage {
        origin: origin.to_owned(),
        mail_from,
        recipients,
        subject,
        message_id: Some(message_id),
        content,
        created_at: now,
        mailbox_of: None,
    })
}

/// `<random>@<domain of the address>`.
fn new_message_id(address: &str) -> String {
    let random = format!("{:032x}", rand::random::<u128>());
    let domain = address.rsplit_once('@').map_or("tidings.invalid", |(_, d)| d);
    format!("{random}@{domain}")
}

impl App {
    /// Accepts one message: validated, composed and committed before this returns.
    pub async fn submit(&self, origin: &str, submission: Submission) -> Result<Accepted> {
        let config = self.current().await?.config;
        let prepared = prepare(&config, origin, submission, Utc::now())?;
        let message_id = prepared.message_id.clone().unwrap_or_default();
        let ids = self.store.enqueue(std::slice::from_ref(&prepared), None).await?;
        Ok(Accepted { id: ids[0], message_id })
    }

    pub async fn messages(
        &self,
        status: Option<Status>,
        limit: u32,
        before_id: Option<i64>,
    ) -> Result<Vec<MessageSummary>> {
        Ok(self.store.messages(&MessageFilter { status, limit, before_id }).await?)
    }

    /// One message with its delivery log and, while it waits for a relay or identity that is down, why.
    pub async fn message(&self, id: i64) -> Result<Option<MessageDetail>> {
        let Some(mut detail) = self.store.message(id).await? else { return Ok(None) };
        if !detail.summary.status.is_final() {
            detail.waiting = self.delivery_health().await?.holding(detail.mailbox_of.as_deref());
            detail.budget = self
                .delivery_budgets()
                .await?
                .into_iter()
                .find(|s| s.account == detail.mailbox_of && s.waiting_until.is_some());
        }
        Ok(Some(detail))
    }

    /// Asks the delivery engine to try now: a relay or identity taken as down is tried at once.
    pub fn resume_delivery(&self) {
        self.resume.notify_one();
    }

    /// Completes when [`App::resume_delivery`] is called (for the delivery engine).
    pub async fn delivery_resumed(&self) {
        self.resume.notified().await;
    }

    /// The relay's and the identities' circuits, as the delivery engine last stored them.
    pub async fn delivery_health(&self) -> Result<Health> {
        let Some(json) = self.store.meta(DELIVERY_HEALTH).await? else { return Ok(Health::default()) };
        Ok(serde_json::from_str(&json).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "the stored delivery health is unreadable; taking everything as up");
            Health::default()
        }))
    }

    /// Stores the circuits for everyone to see (the API, the web interface, the CLI in another process).
    pub async fn set_delivery_health(&self, health: &Health) -> Result<()> {
        let json = if health.is_up() { None } else { serde_json::to_string(health).ok() };
        Ok(self.store.set_meta(DELIVERY_HEALTH, json.as_deref()).await?)
    }

    /// Each identity's use of its day's budget, as the delivery engine last stored it.
    pub async fn delivery_budgets(&self) -> Result<Vec<Standing>> {
        let Some(json) = self.store.meta(DELIVERY_BUDGETS).await? else { return Ok(Vec::new()) };
        Ok(serde_json::from_str(&json).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "the stored delivery budgets are unreadable");
            Vec::new()
        }))
    }

    /// Stores the identities' budgets for everyone to see.
    pub async fn set_delivery_budgets(&self, standings: &[Standing]) -> Result<()> {
        let json = if standings.is_empty() { None } else { serde_json::to_string(standings).ok() };
        Ok(self.store.set_meta(DELIVERY_BUDGETS, json.as_deref()).await?)
    }

    /// Puts a failed or deferred message back in the queue now (`outbox::requeued` says what that means).
    pub async fn retry_message(&self, actor: &str, id: i64) -> Result<RetryOutcome> {
        // Should the message change between reading it and queuing it (a delivery ending), read it again.
        for _ in 0..3 {
            let Some(detail) = self.store.message(id).await? else { return Ok(RetryOutcome::NotFound) };
            let status = detail.summary.status;
            let recipients = match outbox::requeued(status, &detail.summary.recipients) {
                Ok(recipients) => recipients,
                Err(status) => return Ok(RetryOutcome::NotRetryable(status)),
            };
            if self.store.requeue(id, status, &recipients, Utc::now()).await? {
                self.store.record_audit(&audit(actor, "queue.retry", vec![id.to_string()])).await?;
                tracing::info!(message_id = id, actor, "message queued again by hand");
                self.resume_delivery();
                return Ok(RetryOutcome::Requeued);
            }
        }
        Err(Error::Conflict(format!("message {id} keeps changing while it is retried; try again")))
    }

    /// Deletes every message with a final status (`delivered` or `failed`).
    pub async fn purge(&self, actor: &str, status: Status) -> Result<u64> {
        if !status.is_final() {
            return Err(ValidationErrors(vec![FieldError::new(
                "status",
                format!("only delivered or failed messages can be purged, not {status}"),
            )])
            .into());
        }
        let purged = self.store.purge(status).await?;
        self.store.record_audit(&audit(actor, "queue.purge", vec![status.to_string(), purged.to_string()])).await?;
        Ok(purged)
    }
}

fn audit(actor: &str, action: &str, fields: Vec<String>) -> NewAuditEntry {
    NewAuditEntry { actor: actor.to_owned(), action: action.to_owned(), fields }
}

/// Gathers concurrent submissions into one durable commit, then wakes the delivery engine.
#[derive(Clone, Debug)]
pub struct Committer {
    jobs: mpsc::Sender<Job>,
    /// Commits made so far (each one disk sync), for metrics and tests.
    commits: Arc<AtomicU64>,
}

type Job = (NewOutboxMessage, oneshot::Sender<Result<i64>>);

/// The most messages one commit takes.
const MAX_BATCH: usize = 1024;

/// Hands freshly accepted messages straight to this process's delivery engine: the commit that stores them
/// also leases them to it, so the engine neither leases them again nor reads them back.
#[derive(Debug, Default)]
pub struct Handoff {
    taker: Mutex<Option<Taker>>,
}

#[derive(Debug)]
struct Taker {
    owner: String,
    lease: Duration,
    /// How many more messages the engine wants now.
    wanted: usize,
    to: mpsc::UnboundedSender<LeasedMessage>,
}

impl Handoff {
    /// The engine says who it is; the messages it wants come on the returned receiver.
    pub fn attach(&self, owner: &str) -> mpsc::UnboundedReceiver<LeasedMessage> {
        let (to, from) = mpsc::unbounded_channel();
        *self.lock() = Some(Taker { owner: owner.to_owned(), lease: Duration::ZERO, wanted: 0, to });
        from
    }

    /// How many messages the engine wants now (0 while it cannot deliver), leased for how long.
    pub fn want(&self, wanted: usize, lease: Duration) {
        if let Some(taker) = self.lock().as_mut() {
            (taker.wanted, taker.lease) = (wanted, lease);
        }
    }

    pub fn detach(&self) {
        *self.lock() = None;
    }

    /// Takes up to `count` of the engine's wants, as a lease to store with the messages.
    fn take(&self, count: usize, now: DateTime<Utc>) -> Option<(NewLease, mpsc::UnboundedSender<LeasedMessage>)> {
        let mut taker = self.lock();
        let taker = taker.as_mut().filter(|t| t.wanted > 0 && count > 0)?;
        let count = count.min(taker.wanted);
        taker.wanted -= count;
        Some((NewLease { owner: taker.owner.clone(), until: crate::later(now, taker.lease), count }, taker.to.clone()))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Taker>> {
        self.taker.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Committer {
    /// Starts the committing task; it ends when every `Committer` clone is dropped. Committed messages the
    /// engine wants go to it through `handoff`; it is woken through `committed` for the others.
    pub fn start(app: App, committed: Arc<Notify>, handoff: Arc<Handoff>) -> Self {
        let (jobs, mut rx) = mpsc::channel::<Job>(MAX_BATCH * 4);
        let commits = Arc::new(AtomicU64::new(0));
        let counter = commits.clone();
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(MAX_BATCH);
            while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
                let (messages, replies): (Vec<_>, Vec<_>) = batch.drain(..).unzip();
                let lease = handoff.take(messages.len(), Utc::now());
                match app.store.enqueue(&messages, lease.as_ref().map(|(l, _)| l)).await {
                    Ok(ids) => {
                        counter.fetch_add(1, Ordering::Relaxed);
                        for (m, id) in messages.iter().zip(&ids) {
                            tracing::info!(message_id = id, origin = %m.origin, recipients = m.recipients.len(), size = m.content.len(), "message accepted");
                        }
                        for (reply, id) in replies.into_iter().zip(&ids) {
                            let _ = reply.send(Ok(*id));
                        }
                        let handed = lease.as_ref().map_or(0, |(l, _)| l.count);
                        if handed < ids.len() {
                            // The engine finds the others in the store.
                            committed.notify_one();
                        }
                        if let Some((lease, to)) = lease {
                            for (m, id) in messages.into_iter().zip(ids).take(lease.count) {
                                // Should the engine be gone, the lease expires and the message is due again.
                                // A large message is read back when it is sent, not held while it waits.
                                let size = m.content.len() as u64;
                                let content = if m.content.len() > CONTENT_PART { Vec::new() } else { m.content };
                                let _ = to.send(LeasedMessage {
                                    id,
                                    origin: m.origin,
                                    subject: m.subject,
                                    mail_from: m.mail_from,
                                    recipients: m.recipients,
                                    content,
                                    size,
                                    attempts: 0,
                                    lifetime_start: m.created_at,
                                    mailbox_of: m.mailbox_of,
                                });
                            }
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, count = replies.len(), "could not store accepted messages");
                        for reply in replies {
                            let _ = reply
                                .send(Err(Error::Unavailable(format!("the outbox could not store the message: {e}"))));
                        }
                    }
                }
            }
        });
        Self { jobs, commits }
    }

    /// How many commits stored the messages accepted so far.
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// Stores a prepared message with whatever else is being submitted now; returns once it is durable.
    pub async fn commit(&self, message: NewOutboxMessage) -> Result<i64> {
        let (reply, answer) = oneshot::channel();
        self.jobs.send((message, reply)).await.map_err(|_| Error::Unavailable("the outbox is shutting down".into()))?;
        answer.await.map_err(|_| Error::Unavailable("the outbox is shutting down".into()))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> EmailConfig {
        EmailConfig { sender: Some("alerts@example.com".into()), ..Default::default() }
    }

    #[test]
    fn the_handoff_gives_the_engine_no_more_than_it_wants_and_nothing_once_detached() {
        let handoff = Handoff::default();
        let now = Utc::now();
        assert!(handoff.take(3, now).is_none(), "no engine yet");
        let _from = handoff.attach("node/1");
        assert!(handoff.take(3, now).is_none(), "the engine wants nothing yet");
        handoff.want(2, Duration::from_secs(60));
        let (lease, _) = handoff.take(3, now).unwrap();
        assert_eq!(
            (lease.owner.as_str(), lease.count, lease.until),
            ("node/1", 2, now + chrono::Duration::seconds(60))
        );
        assert!(handoff.take(1, now).is_none(), "both wanted were taken");
        handoff.want(5, Duration::from_secs(60));
        assert_eq!(handoff.take(1, now).unwrap().0.count, 1);
        handoff.detach();
        assert!(handoff.take(1, now).is_none());
    }

    #[test]
    fn structured_messages_are_composed_from_the_sender() {
        let msg = NewMessage {
            to: vec!["ops@example.com".into(), "OPS@example.com".into()],
            subject: "Hi".into(),
            text: "x".into(),
            ..Default::default()
        };
        let prepared = prepare(&config(), "cli:test", Submission::Structured(msg), Utc::now()).unwrap();
        assert_eq!(prepared.mail_from, "alerts@example.com");
        assert_eq!(prepared.recipients.len(), 1, "duplicates are sent once");
        assert!(prepared.message_id.as_deref().unwrap().ends_with("@example.com"));
        assert!(String::from_utf8(prepared.content).unwrap().contains("Subject: Hi\r\n"));
    }

    #[test]
    fn without_a_sender_structured_messages_are_refused() {
        let msg = NewMessage { to: vec!["ops@example.com".into()], ..Default::default() };
        let err = prepare(&EmailConfig::default(), "t", Submission::Structured(msg), Utc::now()).unwrap_err();
        assert!(matches!(err, Error::NotConfigured(_)), "{err}");
    }

    #[test]
    fn the_size_limit_applies_to_the_composed_message() {
        let mut cfg = config();
        cfg.delivery.max_message_size = 2048;
        let msg = NewMessage { to: vec!["ops@example.com".into()], text: "y".repeat(3000), ..Default::default() };
        let err = prepare(&cfg, "t", Submission::Structured(msg), Utc::now()).unwrap_err();
        let Error::Invalid(errors) = err else { panic!("{err}") };
        assert!(errors.has("text") && errors.to_string().contains("2048"), "{errors}");
    }

    #[test]
    fn raw_messages_keep_their_headers_and_gain_only_what_is_missing() {
        let raw = RawMessage {
            mail_from: "scanner@example.com".into(),
            rcpt_to: vec!["me@example.com".into()],
            data: b"From: scanner@example.com\r\nSubject: Scan\r\n  0042\r\nMessage-ID: <dev-1@scanner>\r\n\r\nPDF\r\n"
                .to_vec(),
        };
        let prepared = prepare(&config(), "gateway:scanner", Submission::Raw(raw), Utc::now()).unwrap();
        assert_eq!(prepared.subject.as_deref(), Some("Scan 0042"));
        assert_eq!(prepared.message_id.as_deref(), Some("dev-1@scanner"));
        let text = String::from_utf8(prepared.content).unwrap();
        assert!(text.starts_with("Date: ") && text.contains("From: scanner@example.com\r\n"), "{text}");
    }
}

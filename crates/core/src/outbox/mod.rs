//! The outbox's domain: a message's status and recipients, how an attempt's outcome settles them, when to
//! retry, and what provider replies mean.
//!
//! ```text
//! queued ──lease──▶ sending ──all accepted──▶ delivered
//!                     │  ╰──permanent refusal / gave up──▶ failed ──retry (operator)──▶ queued
//!                     ╰──transient, auth, re-authorization──▶ deferred ──due──▶ sending
//! ```
//! A lease that expires (the daemon died mid-delivery) makes a `sending` message due again.

use crate::Invalid;
pub mod budget;
pub mod circuit;
pub mod explain;
pub mod reply;
pub mod retry;

use chrono::{DateTime, Utc};
use reply::{Class, Reply, Scope, Stage};
use retry::RetryPolicy;
use serde::{Deserialize, Serialize};
use std::{fmt, str::FromStr};

/// Where a message stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Accepted, never tried.
    Queued,
    /// Leased by a delivery worker now.
    Sending,
    /// Tried, will be tried again.
    Deferred,
    Delivered,
    Failed,
}

impl Status {
    pub const ALL: [Status; 5] = [Status::Queued, Status::Sending, Status::Deferred, Status::Delivered, Status::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Sending => "sending",
            Status::Deferred => "deferred",
            Status::Delivered => "delivered",
            Status::Failed => "failed",
        }
    }

    /// Delivered or failed: nothing more will happen unless an operator retries.
    pub fn is_final(self) -> bool {
        matches!(self, Status::Delivered | Status::Failed)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Status {
    type Err = Invalid;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Status::ALL.into_iter().find(|st| st.as_str() == s).ok_or_else(|| {
            Invalid::new(format!("unknown status {s:?}: expected queued, sending, deferred, delivered or failed"))
        })
    }
}

/// One envelope recipient and how it fared.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recipient {
    pub address: String,
    pub state: RecipientState,
    /// The last reply concerning this recipient, when it was refused.
    pub reply: Option<String>,
}

impl Recipient {
    pub fn pending(address: impl Into<String>) -> Self {
        Self { address: address.into(), state: RecipientState::Pending, reply: None }
    }
}

/// A message that reached some of its recipients and not others: "partly delivered", not "failed".
pub fn partly_delivered(status: Status, recipients: &[Recipient]) -> bool {
    matches!(status, Status::Failed | Status::Deferred)
        && recipients.iter().any(|r| r.state == RecipientState::Delivered)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecipientState {
    Pending,
    Delivered,
    Failed,
}

/// What the relay said about one recipient during an attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RcptResult {
    Accepted,
    Refused(Reply),
}

/// How one delivery attempt ended, as the delivery engine reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttemptReport {
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    /// Per-recipient results, for the recipients the attempt got as far as naming.
    pub recipients: Vec<(String, RcptResult)>,
    pub outcome: Outcome,
    /// Things the administrator should know about how the attempt was made (e.g. certificate checks off).
    pub notes: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The relay accepted the message (for the recipients it accepted).
    Accepted {
        reply: Reply,
    },
    Failed(Failure),
}

/// Why an attempt failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub class: Class,
    /// Whether the failure concerns the message, the identity or the relay.
    pub scope: Scope,
    pub stage: Stage,
    /// The relay's reply, when the failure was one.
    pub reply: Option<Reply>,
    /// What happened, in one line: the reply with its codes for refusals, the local error otherwise.
    pub error: String,
    /// The same without the reply's codes (which the log keeps in their own fields).
    pub text: String,
    /// What to do, when known.
    pub explanation: Option<String>,
    /// How long the provider asked to be left alone (an HTTP `Retry-After`): the identity waits that long
    /// rather than the backoff's delay.
    pub retry_after: Option<std::time::Duration>,
}

/// A recorded attempt, as shown in the delivery log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attempt {
    pub number: u32,
    pub started_at: DateTime<Utc>,
    pub duration_ms: u64,
    /// `delivered`, or the failure's class.
    pub result: String,
    pub stage: Option<Stage>,
    pub reply_code: Option<u16>,
    pub enhanced_code: Option<String>,
    /// The server's reply text, or the local error.
    pub text: String,
    pub explanation: Option<String>,
    pub notes: Vec<String>,
}

/// A message's state before an attempt is settled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pending {
    pub created_at: DateTime<Utc>,
    /// Attempts made before this one.
    pub attempts: u32,
    pub recipients: Vec<Recipient>,
}

/// The state after settling an attempt: what to store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settled {
    pub status: Status,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub recipients: Vec<Recipient>,
    pub attempt: Attempt,
    /// The last failure's summary, kept on the message for listings.
    pub last_error: Option<String>,
}

/// Applies an attempt's report to a message: recipients' states, the next status, when to retry.
pub fn settle(message: &Pending, report: &AttemptReport, policy: &RetryPolicy) -> Settled {
    let mut recipients = message.recipients.clone();
    let number = message.attempts + 1;
    let mut refused_for_good = false;
    for (address, result) in &report.recipients {
        let Some(r) = recipients.iter_mut().find(|r| &r.address == address && r.state == RecipientState::Pending)
        else {
            continue;
        };
        if let RcptResult::Refused(reply) = result {
            r.reply = Some(reply.to_string());
            if reply.is_permanent() {
                r.state = RecipientState::Failed;
                refused_for_good = true;
            }
        } else if matches!(report.outcome, Outcome::Accepted { .. }) {
            r.state = RecipientState::Delivered;
            r.reply = None;
        }
    }
    let failure = match &report.outcome {
        Outcome::Accepted { .. } => None,
        Outcome::Failed(f) => Some(f),
    };
    if let Some(f) = failure
        && f.class == Class::Permanent
        && f.stage != Stage::RcptTo
    {
        for r in recipients.iter_mut().filter(|r| r.state == RecipientState::Pending) {
            r.state = RecipientState::Failed;
            r.reply = Some(f.error.clone());
        }
    }

    let age = (report.finished_at - message.created_at).to_std().unwrap_or_default();
    let mut last_error = failure.map(|f| f.error.clone());
    let pending = recipients.iter().any(|r| r.state == RecipientState::Pending);
    let (status, next_attempt_at) = if !pending {
        let all_delivered = recipients.iter().all(|r| r.state == RecipientState::Delivered);
        if refused_for_good && last_error.is_none() {
            last_error = recipients.iter().find_map(|r| r.reply.clone());
        }
        (if all_delivered { Status::Delivered } else { Status::Failed }, None)
    } else if policy.expired(age) {
        let why = format!(
            "gave up after {} of temporary failures{}",
            humanize(policy.give_up_after),
            last_error.as_deref().map(|e| format!("; last: {e}")).unwrap_or_default()
        );
        for r in recipients.iter_mut().filter(|r| r.state == RecipientState::Pending) {
            r.state = RecipientState::Failed;
            r.reply.get_or_insert_with(|| why.clone());
        }
        last_error = Some(why);
        (Status::Failed, None)
    } else {
        let delay = chrono::Duration::from_std(policy.delay(number)).unwrap_or(chrono::Duration::MAX);
        (Status::Deferred, Some(report.finished_at + delay))
    };

    let attempt = Attempt {
        number,
        started_at: report.started_at,
        duration_ms: (report.finished_at - report.started_at).num_milliseconds().max(0) as u64,
        result: failure.map_or("delivered", |f| f.class.as_str()).to_owned(),
        stage: failure.map(|f| f.stage),
        reply_code: match &report.outcome {
            Outcome::Accepted { reply } => Some(reply.code),
            Outcome::Failed(f) => f.reply.as_ref().map(|r| r.code),
        },
        enhanced_code: match &report.outcome {
            Outcome::Accepted { reply } => reply.enhanced.clone(),
            Outcome::Failed(f) => f.reply.as_ref().and_then(|r| r.enhanced.clone()),
        },
        text: match &report.outcome {
            Outcome::Accepted { reply } => reply.text.clone(),
            Outcome::Failed(f) => f.text.clone(),
        },
        explanation: failure.and_then(|f| f.explanation.clone()),
        notes: report.notes.clone(),
    };
    Settled { status, next_attempt_at, recipients, attempt, last_error }
}

/// `5d`, `1h`, `90s`: for messages.
fn humanize(d: std::time::Duration) -> String {
    let s = d.as_secs();
    match s {
        s if s >= 86400 && s % 86400 == 0 => format!("{}d", s / 86400),
        s if s >= 3600 && s % 3600 == 0 => format!("{}h", s / 3600),
        s if s >= 60 && s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// What an operator's retry does to a message: its failed recipients are pending again, and it is queued
/// with a new retry lifetime. `Err` with its status when it may not be retried: being delivered or delivered,
/// or nothing left to send.
pub fn requeued(status: Status, recipients: &[Recipient]) -> Result<Vec<Recipient>, Status> {
    if !matches!(status, Status::Failed | Status::Deferred | Status::Queued) {
        return Err(status);
    }
    let mut list = recipients.to_vec();
    for r in list.iter_mut().filter(|r| r.state == RecipientState::Failed) {
        r.state = RecipientState::Pending;
    }
    if list.iter().any(|r| r.state == RecipientState::Pending) { Ok(list) } else { Err(status) }
}

#[cfg(test)]
mod tests;

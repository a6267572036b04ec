//! Notifications: events come in (from the appliance, or raised by Tidings), are recorded, and become mails to
//! the admin contacts through the durable outbox: throttled per kind and node, rendered in the configured
//! language. Also the daily communication notice and the test email.
//!
//! Appliance events are recorded as `pending` and mailed by [`App::dispatch_events`], which the daemon runs
//! whenever events arrive (and every poll interval, for those recorded by other processes). While the
//! configuration cannot address a mail (no sender, no admin contact) events stay pending; they are mailed as
//! soon as it can.

use crate::{
    App, Error, Result,
    outbox::{Submission, prepare},
};
use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use chrono_tz::Tz;
use std::collections::BTreeMap;
use tidings_core::{
    EmailConfig, FieldError, ValidationErrors,
    config::{AuthMethod, Encryption},
    message::NewMessage,
    notify::{
        self, EventKind, Source,
        daily::{self, Due},
        template::{self, Facts, Repeats},
        throttle::{self, Decision},
    },
    outbox::Status,
};
use tidings_store::{EventFilter, EventHandling, EventRecord, EventRef, EventState, NewEvent, NewOutboxMessage};

/// Where the daily notice remembers the last local date it was sent for.
const DAILY_NOTICE_DATE: &str = "notify.daily_notice_date";
/// How many pending events one dispatch handles.
const DISPATCH_BATCH: u32 = 100;

/// Why notifications cannot be mailed under `config` now, naming the setting to fix.
pub fn mail_path_problem(config: &EmailConfig) -> Option<String> {
    if config.sender.is_none() {
        Some("no sender address is configured (`sender`)".into())
    } else if config.admin.addresses.is_empty() {
        Some("no admin contact address is configured (`admin.addresses`)".into())
    } else {
        None
    }
}

fn time_zone(config: &EmailConfig) -> Tz {
    config.admin.time_zone.parse().unwrap_or(chrono_tz::UTC)
}

/// What a dispatch did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Dispatched {
    /// Mails put into the outbox.
    pub mailed: u32,
    /// Occurrences counted inside their repeat window.
    pub counted: u32,
}

/// A test email put into the outbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TestEmail {
    pub event_id: i64,
    pub message_id: i64,
}

/// What became of a test email so far.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestOutcome {
    pub message_id: i64,
    /// `delivered`, `failed`, `deferred` (the relay answered, Tidings retries) or `pending` (no answer yet).
    pub result: String,
    /// The relay's reply or the local error, when an attempt failed.
    pub reply: Option<String>,
    /// What the reply means and what to do.
    pub explanation: Option<String>,
}

impl TestOutcome {
    /// Whether the relay has answered (or Tidings gave up).
    pub fn settled(&self) -> bool {
        self.result != "pending"
    }
}

/// What a recorded event's mail says.
fn facts_of(event: &EventRecord, repeats: Option<Repeats>) -> Facts<'_> {
    Facts { kind: event.kind, node: &event.node, at: event.received_at, details: &event.details, repeats }
}

/// The mail for an event, addressed to the admin contacts, in the configured language.
fn compose(config: &EmailConfig, facts: &Facts<'_>, now: DateTime<Utc>) -> Result<NewOutboxMessage> {
    let mail = template::render(facts, config.locale, time_zone(config));
    let message =
        NewMessage { to: config.admin.addresses.clone(), subject: mail.subject, text: mail.body, ..Default::default() };
    prepare(config, notify::dead_letter::NOTIFICATION_ORIGIN, Submission::Structured(message), now)
}

fn invalid(field: &str, message: impl Into<String>) -> Error {
    ValidationErrors(vec![FieldError { field: field.to_owned(), message: message.into() }]).into()
}

impl App {
    /// Records an event reported by the appliance (`POST /api/v1/events`, `tidings event emit`). Refuses an
    /// unknown kind, a kind only Tidings raises, and malformed details, naming what was wrong.
    pub async fn emit_event(
        &self,
        origin: &str,
        kind: &str,
        node: Option<&str>,
        details: BTreeMap<String, String>,
    ) -> Result<EventRecord> {
        let kind = EventKind::parse(kind.trim()).map_err(|e| invalid("kind", e))?;
        if kind.source() == Source::Tidings {
            return Err(invalid("kind", format!("{kind} is raised by Tidings itself and cannot be emitted")));
        }
        let node = match node.map(str::trim) {
            Some(n) if n.is_empty() || n.len() > 255 || n.chars().any(char::is_control) => {
                return Err(invalid("node", format!("{n:?} is not a node name: 1 to 255 characters, one line")));
            }
            Some(n) => n.to_owned(),
            None => self.membership().await?.name,
        };
        notify::check_details(&details).map_err(|e| invalid("details", e))?;
        let event = NewEvent { kind, node, details, origin: origin.to_owned(), received_at: Utc::now() };
        let id = self.store.record_event(&event).await?;
        self.event(id).await?.ok_or_else(|| Error::Unavailable(format!("event {id} vanished after it was recorded")))
    }

    pub async fn events(
        &self,
        kind: Option<EventKind>,
        limit: u32,
        before_id: Option<i64>,
    ) -> Result<Vec<EventRecord>> {
        Ok(self.store.events(&EventFilter { kind, limit, before_id }).await?)
    }

    pub async fn event(&self, id: i64) -> Result<Option<EventRecord>> {
        Ok(self.store.event(id).await?)
    }

    /// Mails pending events and the summaries of closed repeat windows, as of `now`.
    pub async fn dispatch_events(&self, now: DateTime<Utc>) -> Result<Dispatched> {
        self.dispatch_events_under(&self.current().await?.config, now).await
    }

    /// [`App::dispatch_events`] under a configuration the caller already holds (the daemon's, in memory).
    pub async fn dispatch_events_under(&self, config: &EmailConfig, now: DateTime<Utc>) -> Result<Dispatched> {
        let mut done = Dispatched::default();
        if mail_path_problem(config).is_some() {
            return Ok(done);
        }
        let window = config.admin.repeat_window;
        for event in self.store.pending_events(DISPATCH_BATCH).await? {
            let throttle = if event.kind.throttled() {
                Some(throttle::decide(self.store.throttle(event.kind, &event.node).await?.as_ref(), now, window))
            } else {
                None
            };
            let (mut state, repeats, mail) = match throttle.map(|(d, _)| d) {
                Some(Decision::Count) => (EventState::Counted, 0, None),
                Some(Decision::Mail { repeats, since }) => {
                    let repeats = since.map(|since| Repeats { count: repeats, since });
                    (
                        EventState::Mailed,
                        repeats.map_or(0, |r| r.count),
                        Some(compose(config, &facts_of(&event, repeats), now)),
                    )
                }
                None => (EventState::Mailed, 0, Some(compose(config, &facts_of(&event, None), now))),
            };
            // A mail that cannot be composed must not hold every later event back: the event stays recorded.
            let mail = match mail.transpose() {
                Ok(mail) => mail,
                Err(e) => {
                    tracing::error!(event = event.id, kind = %event.kind, error = %e, "cannot compose the event's mail; recorded only");
                    state = EventState::Recorded;
                    None
                }
            };
            match state {
                EventState::Counted => done.counted += 1,
                EventState::Mailed => done.mailed += 1,
                _ => {}
            }
            self.store
                .handle_event(&EventHandling {
                    event: EventRef::Recorded(event.id),
                    state,
                    repeats,
                    mail: mail.as_ref(),
                    throttle: throttle.map(|(_, t)| t),
                    meta: None,
                    at: now,
                })
                .await?;
        }
        for open in self.store.throttles_with_repeats().await? {
            if !throttle::summary_due(&open.throttle, now, window) {
                continue;
            }
            let Some(latest) = self.store.event(open.last_event_id).await? else { continue };
            let repeats = Repeats { count: open.throttle.repeats, since: open.throttle.repeats_since.unwrap_or(now) };
            let mail = compose(config, &facts_of(&latest, Some(repeats)), now)?;
            let (_, reset) = throttle::decide(Some(&open.throttle), now, std::time::Duration::ZERO);
            self.store
                .handle_event(&EventHandling {
                    event: EventRef::Recorded(latest.id),
                    state: EventState::Mailed,
                    repeats: repeats.count,
                    mail: Some(&mail),
                    throttle: Some(reset),
                    meta: None,
                    at: now,
                })
                .await?;
            done.mailed += 1;
        }
        Ok(done)
    }

    /// Records a notice raised by Tidings and puts its mail into the outbox at once (no throttling).
    async fn send_notice(
        &self,
        config: &EmailConfig,
        kind: EventKind,
        details: BTreeMap<String, String>,
        now: DateTime<Utc>,
        meta: Option<(&str, &str)>,
    ) -> Result<(i64, i64)> {
        if let Some(problem) = mail_path_problem(config) {
            return Err(Error::NotConfigured(format!("cannot send the {kind} mail: {problem}")));
        }
        let node = self.membership().await?.name;
        let event = NewEvent { kind, node, details, origin: "tidings".into(), received_at: now };
        let facts = Facts { kind, node: &event.node, at: now, details: &event.details, repeats: None };
        let mail = compose(config, &facts, now)?;
        let handling = EventHandling {
            event: EventRef::New(&event),
            state: EventState::Mailed,
            repeats: 0,
            mail: Some(&mail),
            throttle: None,
            meta,
            at: now,
        };
        let (event_id, message_id) = self.store.handle_event(&handling).await?;
        Ok((event_id, message_id.unwrap_or_default()))
    }

    /// Sends a test email to the admin contacts on behalf of `actor`.
    pub async fn send_test_email(&self, actor: &str) -> Result<TestEmail> {
        let config = self.current().await?.config;
        let relay = match &config.smtp.host {
            Some(host) => format!(
                "{host}:{} ({}, {})",
                config.smtp.effective_port(),
                match config.smtp.encryption {
                    Encryption::Tls => "TLS",
                    Encryption::Starttls => "STARTTLS",
                    Encryption::None => "no encryption",
                },
                match config.smtp.auth {
                    AuthMethod::None => "no authentication",
                    AuthMethod::Password => "password",
                    AuthMethod::Oauth2 => "OAuth2",
                }
            ),
            None => {
                return Err(invalid("smtp.host", "no SMTP relay is configured to send the test email through"));
            }
        };
        let details = BTreeMap::from([
            ("actor".to_owned(), actor.to_owned()),
            ("relay".to_owned(), relay),
            ("sender".to_owned(), config.sender.clone().unwrap_or_default()),
        ]);
        let (event_id, message_id) = self.send_notice(&config, EventKind::TestEmail, details, Utc::now(), None).await?;
        Ok(TestEmail { event_id, message_id })
    }

    /// What became of a test email so far: the first attempt's answer decides.
    pub async fn test_outcome(&self, message_id: i64) -> Result<TestOutcome> {
        let detail = self
            .message(message_id)
            .await?
            .ok_or_else(|| Error::Input(format!("message {message_id} is no longer in the outbox")))?;
        let last = detail.attempt_log.last();
        let result = match detail.summary.status {
            Status::Delivered => "delivered",
            Status::Failed => "failed",
            Status::Deferred if last.is_some() => "deferred",
            _ => "pending",
        };
        let failed = last.filter(|a| a.result != "delivered");
        Ok(TestOutcome {
            message_id,
            result: result.into(),
            reply: failed.map(|a| match (a.reply_code, &a.enhanced_code) {
                (Some(code), Some(enhanced)) => format!("{code} {enhanced} {}", a.text),
                (Some(code), None) => format!("{code} {}", a.text),
                _ => a.text.clone(),
            }),
            explanation: failed.and_then(|a| a.explanation.clone()),
        })
    }

    /// Waits up to `wait` for the relay's answer to a test email (delivered by the daemon), looking every 100 ms.
    pub async fn await_test_outcome(&self, message_id: i64, wait: std::time::Duration) -> Result<TestOutcome> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let outcome = self.test_outcome(message_id).await?;
            if outcome.settled() || tokio::time::Instant::now() >= deadline {
                return Ok(outcome);
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// Records an event Tidings raises itself (pending, throttled like any other).
    pub async fn raise_event(&self, kind: EventKind, details: BTreeMap<String, String>) -> Result<i64> {
        let node = self.membership().await?.name;
        let event = NewEvent { kind, node, details, origin: "tidings".into(), received_at: Utc::now() };
        Ok(self.store.record_event(&event).await?)
    }

    /// The daily notice, if due at `now`: sends it (once per local day, recorded atomically with the mail) and
    /// returns its outbox id. `started` is when the daemon started; `token` the token status in one line.
    pub async fn daily_notice(&self, now: DateTime<Utc>, started: DateTime<Utc>, token: &str) -> Result<Option<i64>> {
        self.daily_notice_under(&self.current().await?.config, now, started, token).await
    }

    /// [`App::daily_notice`] under a configuration the caller already holds.
    pub async fn daily_notice_under(
        &self,
        config: &EmailConfig,
        now: DateTime<Utc>,
        started: DateTime<Utc>,
        token: &str,
    ) -> Result<Option<i64>> {
        let last = self.store.meta(DAILY_NOTICE_DATE).await?;
        if !config.admin.daily_notice {
            if last.is_some() {
                // Switched off: forget, so switching it on again starts afresh instead of catching up.
                self.store.set_meta(DAILY_NOTICE_DATE, None).await?;
            }
            return Ok(None);
        }
        if mail_path_problem(config).is_some() {
            return Ok(None);
        }
        let tz = time_zone(config);
        let time = NaiveTime::parse_from_str(&config.admin.daily_notice_time, "%H:%M").unwrap_or_default();
        let last = last.and_then(|d| d.parse::<NaiveDate>().ok());
        match daily::due(now, time, tz, last) {
            Due::Nothing => Ok(None),
            Due::Start(date) => {
                // Only if still unset: a date recorded meanwhile (by another process) is not overwritten.
                self.store.init_meta(DAILY_NOTICE_DATE, &date.to_string()).await?;
                Ok(None)
            }
            Due::Send(date) => {
                let details = BTreeMap::from([
                    ("started".to_owned(), template::local_time(started, tz)),
                    ("queue".to_owned(), self.queue_summary().await?),
                    ("token".to_owned(), token.to_owned()),
                ]);
                let date = date.to_string();
                let (_, message_id) = self
                    .send_notice(config, EventKind::DailyNotice, details, now, Some((DAILY_NOTICE_DATE, &date)))
                    .await?;
                Ok(Some(message_id))
            }
        }
    }

    /// The outbox in one line: `2 queued, 1 deferred, 0 failed`.
    pub async fn queue_summary(&self) -> Result<String> {
        let counts = self.store.queue_counts().await?;
        let count = |s: Status| counts.iter().find(|(st, _)| *st == s).map_or(0, |(_, n)| *n);
        Ok(format!(
            "{} queued, {} sending, {} deferred, {} failed",
            count(Status::Queued),
            count(Status::Sending),
            count(Status::Deferred),
            count(Status::Failed)
        ))
    }
}

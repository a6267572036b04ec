//! Provider limits per identity (the mailbox Tidings sends as): connections at once, messages a minute, and
//! recipients in any 24 hours. Exchange Online allows 3 connections per mailbox (the 4th gets `432 4.3.2`),
//! delays more than 30 messages a minute, and locks the mailbox for a day after 10,000 recipients (`554 5.2.0`);
//! Gmail allows 2,000 messages a day per user. Tidings stays under them: past a budget, messages wait for the
//! window to turn instead of being refused, and the admin contacts are warned before the end of the day's.
//!
//! Pure: the engine asks before each run ([`Budgets::take`]), says when a run ended, and stores what was sent
//! ([`Usage`]) so that a restart does not forget the day.

use super::circuit::{Identity, Waiting};
use crate::config::{EmailConfig, Provider, Transport};
use chrono::{DateTime, Duration, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};

/// An identity's limits; `None`: no limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    pub connections: Option<u32>,
    pub messages_per_minute: Option<u32>,
    pub recipients_per_day: Option<u32>,
    /// The share of the day's recipients, in percent, at which the admin contacts are warned.
    pub warning_percent: u32,
}

impl Limits {
    /// Whether any limit holds (a relay without limits needs no bookkeeping before a run).
    pub fn any(&self) -> bool {
        self.connections.is_some() || self.messages_per_minute.is_some() || self.recipients_per_day.is_some()
    }
}

/// The limits of the provider the configuration sends through: by its preset, or by the relay's host name.
/// Microsoft: 3 connections, 30 messages a minute, 10,000 recipients a day (through Graph, 4 requests at once
/// per mailbox). Google: 2,000 a day, counted as recipients (never more lenient than its count of messages).
/// Any other relay: none.
pub fn provider_limits(cfg: &EmailConfig) -> Limits {
    let host = cfg.smtp.host.as_deref().unwrap_or("").to_ascii_lowercase();
    let provider = match (cfg.oauth.provider, cfg.delivery.transport) {
        (_, Transport::MicrosoftGraph) => Some(Provider::Microsoft),
        (_, Transport::GmailApi) => Some(Provider::Google),
        (Some(p @ (Provider::Microsoft | Provider::Google)), _) => Some(p),
        _ if host.ends_with(".office365.com") || host.ends_with(".outlook.com") => Some(Provider::Microsoft),
        _ if host == "smtp.gmail.com" || host == "smtp-relay.gmail.com" => Some(Provider::Google),
        _ => None,
    };
    let (connections, messages_per_minute, recipients_per_day) = match provider {
        Some(Provider::Microsoft) if cfg.delivery.transport == Transport::MicrosoftGraph => {
            (Some(4), Some(30), Some(10_000))
        }
        Some(Provider::Microsoft) => (Some(3), Some(30), Some(10_000)),
        Some(Provider::Google) => (None, None, Some(2_000)),
        _ => (None, None, None),
    };
    Limits { connections, messages_per_minute, recipients_per_day, warning_percent: 80 }
}

/// The limits in force: each key that is set wins over the provider's (0: no limit).
pub fn limits(cfg: &EmailConfig) -> Limits {
    let provider = provider_limits(cfg);
    let d = &cfg.delivery;
    let pick = |key: Option<u32>, preset: Option<u32>| match key {
        Some(0) => None,
        Some(n) => Some(n),
        None => preset,
    };
    Limits {
        connections: pick(d.identity_connections, provider.connections),
        messages_per_minute: pick(d.identity_messages_per_minute, provider.messages_per_minute),
        recipients_per_day: pick(d.identity_recipients_per_day, provider.recipients_per_day),
        warning_percent: d.identity_budget_warning,
    }
}

/// What an identity sent in one minute, as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Usage {
    pub identity: Option<String>,
    /// The minute's start.
    pub minute: DateTime<Utc>,
    pub messages: u32,
    pub recipients: u32,
}

/// The start of `t`'s minute.
pub fn minute_of(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(t.timestamp().div_euclid(60) * 60, 0).unwrap_or(t)
}

/// Sums messages sent (identity, when, recipients) into one [`Usage`] per identity and minute.
pub fn tally<'a>(sent: impl IntoIterator<Item = (Identity<'a>, DateTime<Utc>, u32)>) -> Vec<Usage> {
    let mut usage: Vec<Usage> = Vec::new();
    for (identity, at, recipients) in sent {
        let minute = minute_of(at);
        match usage.iter_mut().find(|u| u.identity.as_deref() == identity && u.minute == minute) {
            Some(u) => {
                u.messages += 1;
                u.recipients += recipients;
            }
            None => usage.push(Usage { identity: identity.map(str::to_owned), minute, messages: 1, recipients }),
        }
    }
    usage
}

/// How far back the day's recipients count.
pub fn day() -> TimeDelta {
    Duration::hours(24)
}

/// The answer to [`Budgets::take`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Admit {
    /// Send the first `count` messages (at least one); counted already. `warning`: the day's budget just
    /// passed its warning share.
    Go { count: usize, warning: Option<Warning> },
    /// As many connections as allowed are in use: wait for a run to end.
    Busy,
    /// The pace or the day's budget is spent: wait until then.
    Until(DateTime<Utc>),
}

/// An identity nears the end of its day's recipients.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    pub identity: Option<String>,
    pub used: u64,
    pub budget: u32,
    /// When the oldest of the day's recipients stop counting.
    pub easing_at: DateTime<Utc>,
}

/// An identity's use of its day's budget, for display.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Standing {
    /// The device account whose own mailbox it is; `None` for the relay account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// Recipients in the last 24 hours.
    pub last_day: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipients_per_day: Option<u32>,
    /// The day's budget is spent: its messages wait until then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_until: Option<DateTime<Utc>>,
}

/// One identity's account.
#[derive(Debug, Default)]
struct Ledger {
    running: u32,
    /// When each message of the last minute was sent, oldest first.
    recent: VecDeque<DateTime<Utc>>,
    /// Recipients per minute of the last 24 hours, oldest first.
    minutes: VecDeque<(DateTime<Utc>, u32)>,
    day_total: u64,
    warned: bool,
}

impl Ledger {
    fn forget_before(&mut self, now: DateTime<Utc>) {
        while self.recent.front().is_some_and(|t| *t <= now - Duration::minutes(1)) {
            self.recent.pop_front();
        }
        while let Some(&(minute, n)) = self.minutes.front()
            && minute <= now - day()
        {
            self.day_total -= u64::from(n);
            self.minutes.pop_front();
        }
    }

    fn add(&mut self, at: DateTime<Utc>, messages: u32, recipients: u32) {
        let minute = minute_of(at);
        for _ in 0..messages {
            self.recent.push_back(at);
        }
        match self.minutes.back_mut() {
            Some((m, n)) if *m == minute => *n += recipients,
            _ => self.minutes.push_back((minute, recipients)),
        }
        self.day_total += u64::from(recipients);
    }

    /// When the day's count falls to `room_for` below `budget`: when enough of its oldest minutes stop counting.
    fn easing(&self, budget: u32, room_for: u32) -> DateTime<Utc> {
        let mut total = self.day_total;
        for &(minute, n) in &self.minutes {
            total -= u64::from(n);
            if total + u64::from(room_for) <= u64::from(budget) {
                return minute + day();
            }
        }
        self.minutes.back().map_or_else(Utc::now, |(m, _)| *m + day())
    }

    /// Until when it must wait, if it must: `first` is the next message's recipients.
    fn wait(&self, limits: &Limits, first: u32) -> Option<DateTime<Utc>> {
        let pace = limits
            .messages_per_minute
            .filter(|&n| self.recent.len() >= n as usize)
            .and_then(|n| self.recent.get(self.recent.len() - n as usize))
            .map(|t| *t + Duration::minutes(1));
        pace.into_iter().chain(self.day_wait(limits, first)).max()
    }

    /// Until when the day's budget keeps a message of `first` recipients back. A message bigger than the whole
    /// budget goes when nothing else counts, or it never would.
    fn day_wait(&self, limits: &Limits, first: u32) -> Option<DateTime<Utc>> {
        limits
            .recipients_per_day
            .filter(|&b| self.day_total > 0 && self.day_total + u64::from(first) > u64::from(b))
            .map(|b| self.easing(b, first.min(b)))
    }
}

/// The budgets of every identity seen.
#[derive(Debug, Default)]
pub struct Budgets {
    limits: Limits,
    ledgers: HashMap<Option<String>, Ledger>,
}

impl Budgets {
    /// Budgets that remember what was sent (`usage`, from the store).
    pub fn new(limits: Limits, usage: &[Usage], now: DateTime<Utc>) -> Self {
        let mut budgets = Budgets { limits, ledgers: HashMap::new() };
        let mut usage: Vec<&Usage> = usage.iter().filter(|u| u.minute > now - day()).collect();
        usage.sort_by_key(|u| u.minute);
        for u in usage {
            budgets.ledgers.entry(u.identity.clone()).or_default().add(u.minute, u.messages, u.recipients);
        }
        for ledger in budgets.ledgers.values_mut() {
            ledger.forget_before(now);
            ledger.warned = budgets.limits.recipients_per_day.is_some_and(|b| passed(&budgets.limits, ledger, b));
        }
        budgets
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Takes what every node of a shared database sent as `identity` (`usage`, from the store, which
    /// includes this node's) as its day and minute, keeping this node's runs under way and its warning.
    pub fn sync(&mut self, identity: Identity<'_>, usage: &[Usage], now: DateTime<Utc>) {
        let mut fresh = Ledger::default();
        let mut mine: Vec<&Usage> = usage.iter().filter(|u| u.identity.as_deref() == identity).collect();
        mine.sort_by_key(|u| u.minute);
        for u in mine.into_iter().filter(|u| u.minute > now - day()) {
            fresh.add(u.minute, u.messages, u.recipients);
        }
        fresh.forget_before(now);
        let ledger = self.ledgers.entry(identity.map(str::to_owned)).or_default();
        fresh.running = ledger.running;
        fresh.warned = ledger.warned;
        *ledger = fresh;
    }

    /// New limits; what was sent still counts.
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// Asks to send a run of messages for `identity` now, `recipients` each (at least one message). Counts
    /// those it lets go, and one connection more until [`Budgets::ended`].
    pub fn take(&mut self, identity: Identity<'_>, now: DateTime<Utc>, recipients: &[u32]) -> Admit {
        let limits = self.limits;
        let ledger = self.ledgers.entry(identity.map(str::to_owned)).or_default();
        ledger.forget_before(now);
        if limits.connections.is_some_and(|n| ledger.running >= n) {
            return Admit::Busy;
        }
        if let Some(until) = ledger.wait(&limits, recipients.first().copied().unwrap_or(0)) {
            return Admit::Until(until);
        }
        let mut count = 0;
        for &r in recipients {
            if count > 0 && ledger.wait(&limits, r).is_some() {
                break;
            }
            ledger.add(now, 1, r);
            count += 1;
        }
        ledger.running += 1;
        let warning = match limits.recipients_per_day {
            Some(budget) if !ledger.warned && passed(&limits, ledger, budget) => {
                ledger.warned = true;
                Some(Warning {
                    identity: identity.map(str::to_owned),
                    used: ledger.day_total,
                    budget,
                    easing_at: ledger.minutes.front().map_or(now, |(m, _)| *m + day()),
                })
            }
            Some(budget) => {
                ledger.warned &= passed(&limits, ledger, budget);
                None
            }
            None => None,
        };
        Admit::Go { count, warning }
    }

    /// A run that [`Budgets::take`] let go ended: its connection is free.
    pub fn ended(&mut self, identity: Identity<'_>) {
        if let Some(ledger) = self.ledgers.get_mut(&identity.map(str::to_owned)) {
            ledger.running = ledger.running.saturating_sub(1);
        }
    }

    /// Adds the identities that must wait for their budget now to `waiting`; the earliest time one may go.
    pub fn hold(&mut self, now: DateTime<Utc>, waiting: &mut Waiting) -> Option<DateTime<Utc>> {
        let limits = self.limits;
        let mut next: Option<DateTime<Utc>> = None;
        for (identity, ledger) in &mut self.ledgers {
            ledger.forget_before(now);
            if let Some(until) = ledger.wait(&limits, 1) {
                waiting.add(identity.as_deref());
                next = Some(next.map_or(until, |n| n.min(until)));
            }
        }
        next
    }

    /// Every identity's use of its day's budget, the relay account first.
    pub fn standings(&self, now: DateTime<Utc>) -> Vec<Standing> {
        let mut out: Vec<Standing> = self
            .ledgers
            .iter()
            .map(|(identity, l)| Standing {
                account: identity.clone(),
                last_day: l.minutes.iter().filter(|(m, _)| *m > now - day()).map(|(_, n)| u64::from(*n)).sum(),
                recipients_per_day: self.limits.recipients_per_day,
                waiting_until: l.day_wait(&self.limits, 1).filter(|t| *t > now),
            })
            .filter(|s| s.last_day > 0)
            .collect();
        out.sort_by(|a, b| a.account.cmp(&b.account));
        out
    }
}

/// Whether the day's count reached the warning share of `budget`.
fn passed(limits: &Limits, ledger: &Ledger, budget: u32) -> bool {
    ledger.day_total * 100 >= u64::from(budget) * u64::from(limits.warning_percent)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    fn microsoft() -> Limits {
        Limits {
            connections: Some(3),
            messages_per_minute: Some(30),
            recipients_per_day: Some(10_000),
            warning_percent: 80,
        }
    }

    fn go(admit: Admit) -> usize {
        match admit {
            Admit::Go { count, .. } => count,
            other => panic!("expected to go, got {other:?}"),
        }
    }

    #[test]
    fn presets_and_keys() {
        let mut cfg = EmailConfig::default();
        assert_eq!(limits(&cfg), Limits { warning_percent: 80, ..Limits::default() }, "a custom relay: none");
        cfg.smtp.host = Some("smtp.office365.com".into());
        assert_eq!(limits(&cfg), microsoft(), "Exchange Online by its host name");
        cfg.delivery.identity_connections = Some(2);
        cfg.delivery.identity_messages_per_minute = Some(0);
        let l = limits(&cfg);
        assert_eq!((l.connections, l.messages_per_minute, l.recipients_per_day), (Some(2), None, Some(10_000)));
        let mut cfg = EmailConfig::default();
        cfg.oauth.provider = Some(Provider::Google);
        assert_eq!(limits(&cfg).recipients_per_day, Some(2_000));
    }

    #[test]
    fn no_more_connections_than_allowed() {
        let mut b = Budgets::new(microsoft(), &[], t(0));
        for _ in 0..3 {
            assert_eq!(go(b.take(None, t(0), &[1])), 1);
        }
        assert_eq!(b.take(None, t(0), &[1]), Admit::Busy);
        assert_eq!(go(b.take(Some("scanner"), t(0), &[1])), 1, "another mailbox has its own");
        b.ended(None);
        assert_eq!(go(b.take(None, t(1), &[1])), 1);
    }

    #[test]
    fn the_pace_lets_a_run_go_as_far_as_the_minute_allows_then_waits() {
        let limits = Limits { messages_per_minute: Some(30), ..microsoft() };
        let mut b = Budgets::new(Limits { connections: None, ..limits }, &[], t(0));
        assert_eq!(go(b.take(None, t(0), &[1; 8])), 8);
        assert_eq!(go(b.take(None, t(10), &[1; 8])), 8);
        assert_eq!(go(b.take(None, t(20), &[1; 8])), 8);
        assert_eq!(go(b.take(None, t(30), &[1; 8])), 6, "30 a minute");
        assert_eq!(b.take(None, t(31), &[1]), Admit::Until(t(60)), "the first of the minute turns at 60 s");
        let mut waiting = Waiting::default();
        assert_eq!(b.hold(t(31), &mut waiting), Some(t(60)));
        assert!(waiting.relay_account && !waiting.holds(Some("scanner")));
        assert_eq!(go(b.take(None, t(60), &[1; 20])), 8, "the first 8 of the minute turned");
    }

    #[test]
    fn the_day_budget_warns_once_then_waits_for_the_oldest_recipients_to_stop_counting() {
        let limits =
            Limits { connections: None, messages_per_minute: None, recipients_per_day: Some(100), warning_percent: 80 };
        let mut b = Budgets::new(limits, &[], t(0));
        assert_eq!(b.take(None, t(0), &[50]), Admit::Go { count: 1, warning: None });
        let Admit::Go { count: 1, warning: Some(w) } = b.take(None, t(3600), &[30]) else { panic!("warning") };
        assert_eq!((w.used, w.budget, w.easing_at), (80, 100, t(0) + day()));
        assert_eq!(b.take(None, t(3601), &[10]), Admit::Go { count: 1, warning: None }, "warned once");
        assert_eq!(go(b.take(None, t(3602), &[10, 5, 1])), 1, "the 5 would pass the budget");
        assert_eq!(b.take(None, t(3603), &[5]), Admit::Until(t(0) + day()), "the 50 of the first hour go first");
        assert_eq!(go(b.take(None, t(0) + day(), &[5])), 1);
        let standing = &b.standings(t(0) + day())[0];
        assert_eq!((standing.last_day, standing.waiting_until), (55, None));
    }

    #[test]
    fn a_message_larger_than_the_budget_goes_when_nothing_else_counts() {
        let limits = Limits { recipients_per_day: Some(10), ..Limits::default() };
        let mut b = Budgets::new(limits, &[], t(0));
        assert_eq!(go(b.take(None, t(0), &[25])), 1);
        assert_eq!(b.take(None, t(60), &[25]), Admit::Until(minute_of(t(0)) + day()));
    }

    #[test]
    fn a_restart_remembers_the_day_from_the_stored_usage() {
        let sent = [(None, t(0), 4000), (Some("scanner"), t(1), 5), (None, t(20), 4500), (None, t(70), 100)];
        let usage = tally(sent.iter().map(|&(i, at, r)| (i, at, r)));
        assert_eq!(usage.len(), 3, "one row per identity and minute");
        assert_eq!(usage[0].messages, 2);
        assert_eq!(usage[0].recipients, 8500);
        let mut b = Budgets::new(microsoft(), &usage, t(120));
        assert_eq!(b.take(None, t(120), &[1]), Admit::Go { count: 1, warning: None }, "warned before the restart");
        assert_eq!(b.standings(t(120))[0].last_day, 8601);
        assert_eq!(b.take(None, t(121), &[1500]), Admit::Until(minute_of(t(0)) + day()));
        let b = Budgets::new(microsoft(), &usage, t(0) + day() + Duration::minutes(5));
        assert!(b.standings(t(0)).is_empty(), "a day later, nothing counts");
    }
}

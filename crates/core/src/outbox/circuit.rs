//! Circuits: when the relay, or an identity Tidings sends as, fails in a way that is not one message's fault
//! (unreachable, TLS failing, `421`, credentials refused, a provider's limit), it is marked down. Messages for
//! it wait, uncharged, instead of each making its own failing connection; one probe at a time tries again
//! after a backoff that doubles from `first` to `max`. The first run that reaches the relay (and authenticates,
//! for an identity) brings it back up, and what waited flows at once.
//!
//! ```text
//! up ──relay/identity failure──▶ down (retry_at) ──time──▶ probing ──reached──▶ up
//!                                   ▲                          │
//!                                   ╰──────failed again────────╯   (backoff doubles)
//! ```
//!
//! Pure: the delivery engine reports what its runs saw and asks before starting one.

use super::{
    Failure,
    reply::{Scope, Stage},
    retry,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Who a message is sent as: `None` for the relay account, else the device account whose own mailbox sends it.
pub type Identity<'a> = Option<&'a str>;

/// The backoff between probes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
}

/// Why something is down, since when, and when it is tried again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Down {
    pub since: DateTime<Utc>,
    /// Failures in a row: the one that brought it down, then each failed probe.
    pub failures: u32,
    /// When the next probe may start.
    pub retry_at: DateTime<Utc>,
    /// A probe is under way.
    #[serde(default)]
    pub probing: bool,
    pub stage: Stage,
    /// The last failure, in one line.
    pub error: String,
    /// What to do about it, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explanation: Option<String>,
}

/// A device account's own mailbox that is down.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountDown {
    pub account: String,
    #[serde(flatten)]
    pub down: Down,
}

/// What holds a message back: the relay, or its identity, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    pub scope: Scope,
    #[serde(flatten)]
    pub down: Down,
}

/// The state of the relay and of every identity that is down; empty when everything is up.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// The relay itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relay: Option<Down>,
    /// The relay account (the identity of every message not sent from a device account's own mailbox).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relay_account: Option<Down>,
    /// Device accounts' own mailboxes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accounts: Vec<AccountDown>,
}

/// Whether a run for an identity may start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gate {
    Open,
    /// Down, and time to try: start one run of one message, and call [`Health::probing`].
    Probe,
    /// Down: wait (until [`Health::next_probe`], or until the probe under way ends).
    Wait,
}

/// Whose circuit: the relay's, or an identity's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Circuit<'a> {
    Relay,
    Identity(Identity<'a>),
}

/// What a run saw, for the circuits.
#[derive(Clone, Copy, Debug)]
pub enum Seen<'a> {
    /// It reached the relay and authenticated (whatever became of its messages).
    Reached,
    Failed(&'a Failure),
}

/// What a report changed, for the log and the alerts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    None,
    WentDown(Scope),
    StillDown(Scope),
    CameUp,
}

impl Health {
    pub fn is_up(&self) -> bool {
        self.relay.is_none() && self.relay_account.is_none() && self.accounts.is_empty()
    }

    /// Whether a run for `identity` may start now.
    pub fn gate(&self, identity: Identity<'_>, now: DateTime<Utc>) -> Gate {
        let Some(down) = self.relay.as_ref().or_else(|| self.identity(identity)) else { return Gate::Open };
        if !down.probing && now >= down.retry_at { Gate::Probe } else { Gate::Wait }
    }

    /// Marks the circuit that holds `identity` back as probed.
    pub fn probing(&mut self, identity: Identity<'_>) {
        if let Some(down) = self.relay.as_mut() {
            down.probing = true;
        } else if let Some(down) = self.identity_mut(identity) {
            down.probing = true;
        }
    }

    /// A run ended without saying what it saw (it panicked): no probe is under way any more, so the next may
    /// start when its time comes.
    pub fn probes_ended(&mut self) {
        for down in self
            .relay
            .iter_mut()
            .chain(self.relay_account.iter_mut())
            .chain(self.accounts.iter_mut().map(|a| &mut a.down))
        {
            down.probing = false;
        }
    }

    /// The identities that must wait now: those whose messages the engine should not lease (all of them,
    /// while the relay waits).
    pub fn waiting(&self, now: DateTime<Utc>) -> Waiting {
        let waits = |d: &Down| d.probing || now < d.retry_at;
        Waiting {
            everything: self.relay.as_ref().is_some_and(waits),
            relay_account: self.relay_account.as_ref().is_some_and(waits),
            accounts: self.accounts.iter().filter(|a| waits(&a.down)).map(|a| a.account.clone()).collect(),
        }
    }

    /// The earliest time a probe may start (`None`: nothing waits for time).
    pub fn next_probe(&self) -> Option<DateTime<Utc>> {
        self.downs().map(|(_, down)| down).filter(|d| !d.probing).map(|d| d.retry_at).min()
    }

    /// Everything that is down: the relay first, then the identities.
    pub fn downs(&self) -> impl Iterator<Item = (Circuit<'_>, &Down)> {
        let relay = self.relay.iter().map(|d| (Circuit::Relay, d));
        let account = self.relay_account.iter().map(|d| (Circuit::Identity(None), d));
        relay.chain(account).chain(self.accounts.iter().map(|a| (Circuit::Identity(Some(&a.account)), &a.down)))
    }

    /// Records what a run for `identity` saw. `probe`: the run was the probe (see [`Gate::Probe`]). A failure
    /// of a run that started before its circuit went down changes nothing: only probes grow the backoff.
    pub fn report(
        &mut self,
        identity: Identity<'_>,
        probe: bool,
        seen: Seen<'_>,
        now: DateTime<Utc>,
        backoff: Backoff,
    ) -> Change {
        if probe {
            if let Some(down) = self.relay.as_mut() {
                down.probing = false;
            }
            if let Some(down) = self.identity_mut(identity) {
                down.probing = false;
            }
        }
        let (scope, failure) = match seen {
            Seen::Failed(f) if f.scope != Scope::Message => (f.scope, f),
            _ => {
                // Reached: the relay is up, and so is this identity.
                let was_down = self.relay.take().is_some() | self.set_identity(identity, None);
                return if was_down { Change::CameUp } else { Change::None };
            }
        };
        let mut change = Change::None;
        if scope == Scope::Identity && self.relay.take().is_some() {
            // It got as far as authenticating: the relay is reachable again.
            change = Change::CameUp;
        }
        let current = match scope {
            Scope::Relay => self.relay.take(),
            _ => self.take_identity(identity),
        };
        let next = match current {
            None => {
                change = Change::WentDown(scope);
                Down {
                    since: now,
                    failures: 1,
                    retry_at: now + asked(failure).unwrap_or_else(|| delay(backoff, 1)),
                    probing: false,
                    stage: failure.stage,
                    error: failure.error.clone(),
                    explanation: failure.explanation.clone(),
                }
            }
            Some(mut down) if probe => {
                change = Change::StillDown(scope);
                down.failures += 1;
                down.retry_at = now + asked(failure).unwrap_or_else(|| delay(backoff, down.failures));
                down.stage = failure.stage;
                down.error = failure.error.clone();
                down.explanation = failure.explanation.clone();
                down
            }
            Some(down) => down,
        };
        match scope {
            Scope::Relay => self.relay = Some(next),
            _ => {
                self.set_identity(identity, Some(next));
            }
        }
        change
    }

    /// What holds `identity`'s messages back, if anything: the relay first.
    pub fn holding(&self, identity: Identity<'_>) -> Option<Held> {
        match (&self.relay, self.identity(identity)) {
            (Some(down), _) => Some(Held { scope: Scope::Relay, down: down.clone() }),
            (None, Some(down)) => Some(Held { scope: Scope::Identity, down: down.clone() }),
            (None, None) => None,
        }
    }

    fn identity(&self, identity: Identity<'_>) -> Option<&Down> {
        match identity {
            None => self.relay_account.as_ref(),
            Some(name) => self.accounts.iter().find(|a| a.account == name).map(|a| &a.down),
        }
    }

    fn identity_mut(&mut self, identity: Identity<'_>) -> Option<&mut Down> {
        match identity {
            None => self.relay_account.as_mut(),
            Some(name) => self.accounts.iter_mut().find(|a| a.account == name).map(|a| &mut a.down),
        }
    }

    fn take_identity(&mut self, identity: Identity<'_>) -> Option<Down> {
        match identity {
            None => self.relay_account.take(),
            Some(name) => {
                let at = self.accounts.iter().position(|a| a.account == name)?;
                Some(self.accounts.remove(at).down)
            }
        }
    }

    /// Sets or clears `identity`'s circuit; whether it was down.
    fn set_identity(&mut self, identity: Identity<'_>, down: Option<Down>) -> bool {
        match identity {
            None => std::mem::replace(&mut self.relay_account, down).is_some(),
            Some(name) => {
                let was = self.accounts.iter().any(|a| a.account == name);
                self.accounts.retain(|a| a.account != name);
                if let Some(down) = down {
                    self.accounts.push(AccountDown { account: name.to_owned(), down });
                }
                was
            }
        }
    }
}

/// The delay before the probe that follows `failures` failures in a row.
/// The wait the provider asked for, if any (at most a day).
fn asked(failure: &Failure) -> Option<chrono::Duration> {
    failure
        .retry_after
        .map(|d| chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX).min(chrono::Duration::days(1)))
}

fn delay(backoff: Backoff, failures: u32) -> chrono::Duration {
    let d = retry::doubling(backoff.first, backoff.max, failures);
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// The identities whose messages wait now (see [`Health::waiting`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Waiting {
    /// The relay waits: nothing is to be sent.
    pub everything: bool,
    /// Messages of the relay account wait.
    pub relay_account: bool,
    /// Messages of these device accounts' own mailboxes wait.
    pub accounts: Vec<String>,
}

impl Waiting {
    /// Makes the messages of `identity` wait too.
    pub fn add(&mut self, identity: Identity<'_>) {
        match identity {
            None => self.relay_account = true,
            Some(name) if !self.accounts.iter().any(|a| a == name) => self.accounts.push(name.to_owned()),
            Some(_) => {}
        }
    }

    /// Whether a message of `identity` waits.
    pub fn holds(&self, identity: Identity<'_>) -> bool {
        self.everything
            || match identity {
                None => self.relay_account,
                Some(name) => self.accounts.iter().any(|a| a == name),
            }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::reply::Class;

    const BACKOFF: Backoff = Backoff { first: Duration::from_secs(10), max: Duration::from_secs(40) };

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    fn failure(scope: Scope, stage: Stage, error: &str) -> Failure {
        Failure {
            class: Class::Transient,
            scope,
            stage,
            reply: None,
            error: error.into(),
            text: error.into(),
            retry_after: None,
            explanation: Some("what to do".into()),
        }
    }

    #[test]
    fn a_relay_failure_holds_every_identity_until_one_probe_reaches_it() {
        let mut h = Health::default();
        let tls = failure(Scope::Relay, Stage::Tls, "TLS failed: unknown issuer");
        assert_eq!(h.gate(None, t(0)), Gate::Open);
        assert_eq!(h.report(None, false, Seen::Failed(&tls), t(0), BACKOFF), Change::WentDown(Scope::Relay));
        // Runs that started before it went down fail too: nothing more changes.
        assert_eq!(h.report(Some("scanner"), false, Seen::Failed(&tls), t(1), BACKOFF), Change::None);
        let down = h.relay.clone().unwrap();
        assert_eq!((down.since, down.failures, down.retry_at, down.stage), (t(0), 1, t(10), Stage::Tls));
        assert_eq!(h.gate(None, t(5)), Gate::Wait);
        assert_eq!(h.gate(Some("scanner"), t(5)), Gate::Wait, "the relay holds every identity");
        assert!(h.waiting(t(5)).everything);
        assert_eq!(h.next_probe(), Some(t(10)));

        assert_eq!(h.gate(None, t(10)), Gate::Probe);
        assert!(!h.waiting(t(10)).everything, "time to probe: one message may be leased");
        h.probing(None);
        assert_eq!(h.gate(Some("scanner"), t(11)), Gate::Wait, "one probe at a time");
        assert!(h.waiting(t(11)).everything);
        assert_eq!(h.next_probe(), None);
        assert_eq!(h.report(None, true, Seen::Failed(&tls), t(12), BACKOFF), Change::StillDown(Scope::Relay));
        assert_eq!(h.relay.as_ref().map(|d| (d.failures, d.retry_at)), Some((2, t(32))), "backoff doubled");
        h.probing(None);
        h.report(None, true, Seen::Failed(&tls), t(32), BACKOFF);
        h.probing(None);
        h.report(None, true, Seen::Failed(&tls), t(72), BACKOFF);
        assert_eq!(h.relay.as_ref().map(|d| d.retry_at), Some(t(112)), "at most max");

        h.probing(None);
        h.probes_ended();
        assert_eq!(h.gate(None, t(112)), Gate::Probe, "a probe that ended abnormally does not hold the next");
        h.probing(None);
        assert_eq!(h.report(None, true, Seen::Reached, t(112), BACKOFF), Change::CameUp);
        assert!(h.is_up() && h.gate(Some("scanner"), t(112)) == Gate::Open);
    }

    #[test]
    fn an_identity_failure_holds_only_that_identity() {
        let mut h = Health::default();
        let refused = failure(Scope::Identity, Stage::Auth, "535 5.7.3 Authentication unsuccessful");
        assert_eq!(
            h.report(Some("scanner"), false, Seen::Failed(&refused), t(0), BACKOFF),
            Change::WentDown(Scope::Identity)
        );
        assert_eq!(h.gate(Some("scanner"), t(1)), Gate::Wait);
        assert_eq!(h.next_probe(), Some(t(10)));
        assert_eq!(h.gate(None, t(1)), Gate::Open, "the relay account still sends");
        assert_eq!(h.gate(Some("printer"), t(1)), Gate::Open);
        assert_eq!(h.waiting(t(1)), Waiting { accounts: vec!["scanner".into()], ..Waiting::default() });
        assert!(
            h.holding(Some("scanner")).is_some_and(|held| held.scope == Scope::Identity && held.down.failures == 1)
        );
        assert_eq!(h.holding(Some("printer")), None);

        // The relay account's credentials refused too; a message-level failure is no news about the relay.
        h.report(None, false, Seen::Failed(&refused), t(2), BACKOFF);
        let rcpt = failure(Scope::Message, Stage::RcptTo, "550 5.1.1 unknown");
        assert_eq!(h.report(Some("printer"), false, Seen::Failed(&rcpt), t(3), BACKOFF), Change::None);
        assert!(h.waiting(t(3)).relay_account);

        assert_eq!(h.gate(Some("scanner"), t(10)), Gate::Probe);
        h.probing(Some("scanner"));
        assert_eq!(h.report(Some("scanner"), true, Seen::Reached, t(11), BACKOFF), Change::CameUp);
        assert_eq!(h.gate(Some("scanner"), t(11)), Gate::Open);
        assert!(h.relay_account.is_some(), "the other identity stays down");
    }

    #[test]
    fn a_probe_that_authenticates_brings_the_relay_up_even_if_the_identity_then_fails() {
        let mut h = Health::default();
        h.report(None, false, Seen::Failed(&failure(Scope::Relay, Stage::Connect, "refused")), t(0), BACKOFF);
        h.probing(None);
        let refused = failure(Scope::Identity, Stage::Auth, "535");
        assert_eq!(h.report(None, true, Seen::Failed(&refused), t(10), BACKOFF), Change::WentDown(Scope::Identity));
        assert!(h.relay.is_none() && h.relay_account.is_some());
        assert!(!h.relay_account.as_ref().unwrap().probing);
    }

    #[test]
    fn health_is_stored_as_json_and_read_back() {
        let mut h = Health::default();
        h.report(Some("scanner"), false, Seen::Failed(&failure(Scope::Identity, Stage::Token, "x")), t(0), BACKOFF);
        let json = serde_json::to_string(&h).unwrap();
        assert!(json.contains(r#""account":"scanner""#) && json.contains(r#""stage":"token""#), "{json}");
        assert_eq!(serde_json::from_str::<Health>(&json).unwrap(), h);
        assert_eq!(serde_json::to_string(&Health::default()).unwrap(), "{}");
    }
}

//! What the status page says at a glance: each part of the mail path in one of three levels (always with words
//! beside the colour), the worst of them for the whole, and the one action that fits the state.

use std::time::Duration;

/// How a part is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Working, or not in use.
    Ok,
    /// Working, but someone should look (a backlog, a token failing for now, a credential ending soon).
    Warn,
    /// Mail does not go out until someone acts.
    Bad,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::Warn => "warn",
            Level::Bad => "bad",
        }
    }
}

/// The token as far as the glance cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Token {
    /// The relay does not use OAuth.
    NotUsed,
    /// A token is held, or can be obtained.
    Fine,
    /// Nobody signed in yet, or a sign-in is under way.
    Missing,
    /// Refreshes fail for now; Tidings keeps trying.
    Failing,
    /// The provider refused the authorization: someone must sign in again.
    Refused,
}

/// What is known of the mail path now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Facts {
    /// A relay (or an API) is configured.
    pub configured: bool,
    pub relay_down: bool,
    /// Some identity (a mailbox Tidings sends as) is held back: refused credentials, a provider's limit.
    pub identity_down: bool,
    pub token: Token,
    /// A gateway listener does not listen, or its certificate cannot be used and none is in force.
    pub gateway_stopped: bool,
    /// The gateway runs on a previous certificate: the new one is broken.
    pub gateway_degraded: bool,
    /// How long the message waiting longest has waited; its id.
    pub oldest_waiting: Option<(i64, Duration)>,
    /// The last message that failed, when it failed after the last delivery; its id.
    pub failed_since_delivery: Option<i64>,
    /// A credential in use has ended.
    pub credential_ended: bool,
    /// A credential in use ends within the first of `oauth.expiry_warnings`.
    pub credential_ending: bool,
    /// A message waiting longer than this is a backlog.
    pub backlog_after: Duration,
}

/// The one action that fits the state, most urgent first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Nothing is configured to send through.
    Configure,
    /// The provider refused the authorization, or nobody signed in yet.
    SignIn,
    /// Open the message that shows what fails.
    OpenMessage(i64),
    /// Walk the path to find what fails.
    RunDoctor,
    /// Everything works: prove it with a test mail.
    SendTestMail,
}

/// Each part's level, the whole's, and what to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Glance {
    pub mail: Level,
    pub relay: Level,
    pub token: Level,
    pub gateway: Level,
    pub credentials: Level,
    pub overall: Level,
    pub action: Action,
}

/// Looks at the facts.
pub fn assess(f: &Facts) -> Glance {
    let waited = f.oldest_waiting.map(|(_, waited)| waited);
    let backlog = waited.is_some_and(|w| w > f.backlog_after);
    let stuck = waited.is_some_and(|w| w > f.backlog_after * 4);
    let mail = if stuck || (backlog && f.relay_down) {
        Level::Bad
    } else if backlog || f.failed_since_delivery.is_some() {
        Level::Warn
    } else {
        Level::Ok
    };
    let relay = if !f.configured || f.relay_down {
        Level::Bad
    } else if f.identity_down {
        Level::Warn
    } else {
        Level::Ok
    };
    let token = match f.token {
        Token::NotUsed | Token::Fine => Level::Ok,
        Token::Missing | Token::Failing => Level::Warn,
        Token::Refused => Level::Bad,
    };
    let gateway = if f.gateway_stopped {
        Level::Bad
    } else if f.gateway_degraded {
        Level::Warn
    } else {
        Level::Ok
    };
    let credentials = if f.credential_ended {
        Level::Bad
    } else if f.credential_ending {
        Level::Warn
    } else {
        Level::Ok
    };
    let overall = [mail, relay, token, gateway, credentials].into_iter().max().unwrap_or(Level::Ok);
    let failing = f.oldest_waiting.filter(|_| f.relay_down || backlog).map(|(id, _)| id).or(f.failed_since_delivery);
    let action = if !f.configured {
        Action::Configure
    } else if matches!(f.token, Token::Refused | Token::Missing) {
        Action::SignIn
    } else if let Some(id) = failing {
        Action::OpenMessage(id)
    } else if overall != Level::Ok {
        Action::RunDoctor
    } else {
        Action::SendTestMail
    };
    Glance { mail, relay, token, gateway, credentials, overall, action }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn healthy() -> Facts {
        Facts {
            configured: true,
            relay_down: false,
            identity_down: false,
            token: Token::Fine,
            gateway_stopped: false,
            gateway_degraded: false,
            oldest_waiting: None,
            failed_since_delivery: None,
            credential_ended: false,
            credential_ending: false,
            backlog_after: Duration::from_secs(900),
        }
    }

    #[test]
    fn healthy_is_green_and_offers_a_test_mail() {
        let g = assess(&healthy());
        assert_eq!((g.overall, g.action), (Level::Ok, Action::SendTestMail));
        let young = Facts { oldest_waiting: Some((7, Duration::from_secs(30))), ..healthy() };
        assert_eq!(assess(&young).overall, Level::Ok, "a message on its way is no backlog");
    }

    #[test]
    fn a_relay_down_with_mail_waiting_is_red_and_points_at_the_message() {
        let f = Facts { relay_down: true, oldest_waiting: Some((42, Duration::from_secs(1000))), ..healthy() };
        let g = assess(&f);
        assert_eq!(
            (g.relay, g.mail, g.overall, g.action),
            (Level::Bad, Level::Bad, Level::Bad, Action::OpenMessage(42))
        );
        let idle = Facts { relay_down: true, ..healthy() };
        assert_eq!(assess(&idle).action, Action::RunDoctor, "no message to open: find what fails");
    }

    #[test]
    fn a_refused_token_asks_for_a_sign_in_before_anything_else() {
        let f = Facts { token: Token::Refused, oldest_waiting: Some((3, Duration::from_secs(5000))), ..healthy() };
        let g = assess(&f);
        assert_eq!((g.token, g.overall, g.action), (Level::Bad, Level::Bad, Action::SignIn));
        let failing = assess(&Facts { token: Token::Failing, ..healthy() });
        assert_eq!((failing.token, failing.action), (Level::Warn, Action::RunDoctor));
    }

    #[test]
    fn a_backlog_is_amber_then_red() {
        let amber = assess(&Facts { oldest_waiting: Some((9, Duration::from_secs(1000))), ..healthy() });
        assert_eq!((amber.mail, amber.action), (Level::Warn, Action::OpenMessage(9)));
        let red = assess(&Facts { oldest_waiting: Some((9, Duration::from_secs(4000))), ..healthy() });
        assert_eq!(red.mail, Level::Bad);
    }

    #[test]
    fn credentials_and_the_gateway_count_too() {
        assert_eq!(assess(&Facts { credential_ending: true, ..healthy() }).overall, Level::Warn);
        assert_eq!(assess(&Facts { credential_ended: true, ..healthy() }).overall, Level::Bad);
        assert_eq!(assess(&Facts { gateway_stopped: true, ..healthy() }).gateway, Level::Bad);
        let nothing = assess(&Facts { configured: false, ..healthy() });
        assert_eq!(nothing.action, Action::Configure);
    }
}

//! SMTP replies as the relay sends them, where in the conversation they came, and what they mean for a
//! message: the classification that drives retries.

use serde::{Deserialize, Serialize};
use std::fmt;

/// One reply: `250 2.0.0 OK`, possibly spread over several lines.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    pub code: u16,
    /// The RFC 3463 enhanced status code (`5.7.139`), when the server sent one.
    pub enhanced: Option<String>,
    /// The text, lines joined by a space, enhanced code removed.
    pub text: String,
}

impl Reply {
    /// Builds a reply from its lines as received, without the line endings (`250-first`, `250 last`).
    pub fn from_lines(code: u16, lines: &[String]) -> Self {
        let mut enhanced = None;
        let texts: Vec<&str> = lines
            .iter()
            .map(|line| {
                let text = line.get(4..).unwrap_or("").trim();
                match split_enhanced(text) {
                    Some((code, rest)) => {
                        enhanced.get_or_insert_with(|| code.to_owned());
                        rest
                    }
                    None => text,
                }
            })
            .collect();
        Self { code, enhanced, text: texts.join(" ").trim().to_owned() }
    }

    /// A reply as `Display` wrote it (`550 5.1.1 text`), such as a recipient's kept reply; `None` for what
    /// does not start with a three-digit code (a local error).
    pub fn parse_shown(shown: &str) -> Option<Self> {
        let code: u16 = shown.get(..3)?.parse().ok().filter(|c| (200..600).contains(c))?;
        (shown.len() == 3 || shown.as_bytes()[3] == b' ').then(|| Self::from_lines(code, &[shown.to_owned()]))
    }

    pub fn is_positive(&self) -> bool {
        (200..400).contains(&self.code)
    }
    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }
    pub fn is_permanent(&self) -> bool {
        self.code >= 500
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.enhanced {
            Some(enhanced) => write!(f, "{} {enhanced} {}", self.code, self.text),
            None => write!(f, "{} {}", self.code, self.text),
        }
    }
}

/// `5.7.139 rest` → (`5.7.139`, `rest`).
fn split_enhanced(text: &str) -> Option<(&str, &str)> {
    let (first, rest) = text.split_once(' ').unwrap_or((text, ""));
    let parts: Vec<&str> = first.split('.').collect();
    let valid = parts.len() == 3
        && matches!(parts[0], "2" | "4" | "5")
        && parts[1..].iter().all(|p| (1..=3).contains(&p.len()) && p.chars().all(|c| c.is_ascii_digit()));
    valid.then_some((first, rest.trim_start()))
}

/// Where in the conversation with the relay an attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Resolving and connecting.
    Connect,
    /// The implicit-TLS handshake, or the one after STARTTLS.
    Tls,
    /// The server's greeting.
    Greeting,
    Ehlo,
    Starttls,
    /// Obtaining an OAuth access token.
    Token,
    Auth,
    MailFrom,
    RcptTo,
    Data,
    /// The reply to the message's final dot.
    Message,
    /// The provider's HTTP API (`delivery.transport` microsoft_graph or gmail_api): the send request.
    Api,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Connect => "connect",
            Stage::Tls => "tls",
            Stage::Greeting => "greeting",
            Stage::Ehlo => "ehlo",
            Stage::Starttls => "starttls",
            Stage::Token => "token",
            Stage::Auth => "auth",
            Stage::MailFrom => "mail_from",
            Stage::RcptTo => "rcpt_to",
            Stage::Data => "data",
            Stage::Message => "message",
            Stage::Api => "api",
        }
    }
}

/// What a failure means for the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    /// Try again later: 4xx replies, network and TLS trouble, an unreachable token endpoint.
    Transient,
    /// The relay refused this message for good (5xx to the sender, recipients or content).
    Permanent,
    /// The relay refused Tidings' credentials. Not the message's fault: it waits, as Postfix does by default,
    /// while an administrator fixes the configuration.
    AuthFailed,
    /// The OAuth authorization is gone (revoked, expired): an administrator must authorize again.
    ReauthRequired,
}

impl Class {
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Transient => "transient",
            Class::Permanent => "permanent",
            Class::AuthFailed => "auth_failed",
            Class::ReauthRequired => "reauth_required",
        }
    }

    /// Whether the message waits for another attempt (rather than failing now).
    pub fn retries(self) -> bool {
        self != Class::Permanent
    }
}

/// What a failure tells about: the one message, the identity Tidings authenticates as, or the relay itself.
/// A failure beyond the message stops further attempts on that identity or relay for a while (see
/// [`super::circuit`]), instead of one attempt per waiting message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    Message,
    /// The account: its credentials refused, its limits reached. (A token that cannot be had reaches no relay:
    /// each message keeps its own retries, and a new authorization makes them due at once.)
    Identity,
    /// The relay: unreachable, TLS failing, not talking, closing (`421`).
    Relay,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Message => "message",
            Scope::Identity => "identity",
            Scope::Relay => "relay",
        }
    }
}

/// The scope of a failure at `stage`, with the relay's reply when it was one.
pub fn scope(stage: Stage, reply: Option<&Reply>) -> Scope {
    if let Some(reply) = reply {
        if reply.code == 421 {
            return Scope::Relay;
        }
        if is_identity_limit(reply) {
            return Scope::Identity;
        }
    }
    match stage {
        Stage::Connect | Stage::Tls | Stage::Greeting | Stage::Ehlo | Stage::Starttls => Scope::Relay,
        Stage::Auth => Scope::Identity,
        Stage::MailFrom | Stage::RcptTo
            if reply.is_some_and(|r| r.code == 530 || r.enhanced.as_deref() == Some("5.7.57")) =>
        {
            Scope::Identity
        }
        _ => Scope::Message,
    }
}

/// Replies that say the mailbox reached a provider's limit, not that the message is at fault: Exchange Online's
/// sender thread limit (`432 4.3.2`) and its daily submission quota (`554 5.2.0 ... SubmissionQuotaExceeded`).
fn is_identity_limit(reply: &Reply) -> bool {
    match (reply.code, reply.enhanced.as_deref()) {
        (432, Some("4.3.2")) => true,
        (554 | 550, Some("5.2.0")) => reply.text.contains("SubmissionQuotaExceeded"),
        _ => false,
    }
}

/// Classifies a negative reply received at `stage`.
pub fn classify(stage: Stage, reply: &Reply) -> Class {
    if is_identity_limit(reply) {
        // The mailbox is locked for a while (Exchange: 24 hours): the message waits, it is not refused.
        return Class::Transient;
    }
    match stage {
        // A server refusing our credentials, or refusing authentication altogether, is a configuration problem.
        Stage::Auth if reply.code >= 500 => Class::AuthFailed,
        // "Must authenticate first" style refusals are the same problem seen later.
        Stage::MailFrom | Stage::RcptTo if reply.code == 530 || reply.enhanced.as_deref() == Some("5.7.57") => {
            Class::AuthFailed
        }
        Stage::Connect | Stage::Greeting | Stage::Ehlo | Stage::Starttls | Stage::Tls | Stage::Token => {
            if reply.is_permanent() && stage == Stage::Greeting {
                // 554 at the greeting: the relay will not talk to us; may change, so keep trying.
                Class::Transient
            } else if reply.is_permanent() && stage == Stage::Starttls {
                Class::AuthFailed
            } else {
                Class::Transient
            }
        }
        _ if reply.is_permanent() => Class::Permanent,
        _ => Class::Transient,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(code: u16, lines: &[&str]) -> Reply {
        Reply::from_lines(code, &lines.iter().map(|l| (*l).to_owned()).collect::<Vec<_>>())
    }

    #[test]
    fn parses_enhanced_codes_and_multiline_text() {
        let r = reply(
            535,
            &["535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant."],
        );
        assert_eq!(r.enhanced.as_deref(), Some("5.7.139"));
        assert!(r.text.starts_with("Authentication unsuccessful"));
        assert_eq!(r.to_string(), format!("535 5.7.139 {}", r.text));
        let r = reply(250, &["250-smtp.example.com", "250-PIPELINING", "250 AUTH PLAIN"]);
        assert_eq!((r.enhanced, r.text.as_str()), (None, "smtp.example.com PIPELINING AUTH PLAIN"));
        let r = reply(451, &["451 4.3.0 Mail server temporarily rejected message."]);
        assert!(r.is_transient() && !r.is_permanent());
        assert_eq!(reply(250, &["250 1.2 not enhanced"]).enhanced, None);
        assert_eq!(reply(220, &["220"]).text, "");
    }

    #[test]
    fn classification() {
        let r550 = reply(550, &["550 5.1.1 User unknown"]);
        let r451 = reply(451, &["451 4.3.0 later"]);
        assert_eq!(classify(Stage::RcptTo, &r550), Class::Permanent);
        assert_eq!(classify(Stage::Message, &r550), Class::Permanent);
        assert_eq!(classify(Stage::RcptTo, &r451), Class::Transient);
        assert_eq!(classify(Stage::Auth, &reply(535, &["535 5.7.3 Authentication unsuccessful"])), Class::AuthFailed);
        assert_eq!(
            classify(Stage::Auth, &reply(454, &["454 4.7.0 Temporary authentication failure"])),
            Class::Transient
        );
        assert_eq!(classify(Stage::MailFrom, &reply(530, &["530 5.7.57 Client not authenticated"])), Class::AuthFailed);
        assert_eq!(classify(Stage::Greeting, &reply(554, &["554 go away"])), Class::Transient);
        assert_eq!(classify(Stage::MailFrom, &reply(554, &["554 5.2.252 SendAsDenied"])), Class::Permanent);
        assert!(Class::AuthFailed.retries() && Class::ReauthRequired.retries() && !Class::Permanent.retries());
        let quota = reply(
            554,
            &["554 5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException; Failed to process message"],
        );
        assert_eq!(classify(Stage::Message, &quota), Class::Transient, "the mailbox is locked, the message waits");
        assert_eq!(classify(Stage::Message, &reply(554, &["554 5.2.0 Other trouble"])), Class::Permanent);
    }

    #[test]
    fn scope_says_whether_the_message_the_identity_or_the_relay_failed() {
        let r = |code, line: &str| reply(code, &[line]);
        assert_eq!(scope(Stage::Connect, None), Scope::Relay);
        assert_eq!(scope(Stage::Tls, None), Scope::Relay);
        assert_eq!(scope(Stage::Ehlo, Some(&r(554, "554 go away"))), Scope::Relay);
        assert_eq!(scope(Stage::Message, Some(&r(421, "421 4.4.2 closing"))), Scope::Relay);
        assert_eq!(scope(Stage::Auth, Some(&r(535, "535 5.7.3 Authentication unsuccessful"))), Scope::Identity);
        assert_eq!(scope(Stage::Token, None), Scope::Message, "no token: nothing reached the relay");
        assert_eq!(scope(Stage::MailFrom, Some(&r(530, "530 5.7.57 Client not authenticated"))), Scope::Identity);
        let threads = r(432, "432 4.3.2 STOREDRV.ClientSubmit; sender thread limit exceeded");
        assert_eq!(scope(Stage::Message, Some(&threads)), Scope::Identity);
        assert_eq!(scope(Stage::Message, Some(&r(451, "451 4.3.0 later"))), Scope::Message);
        assert_eq!(scope(Stage::RcptTo, Some(&r(550, "550 5.1.1 unknown"))), Scope::Message);
        assert_eq!(scope(Stage::Message, None), Scope::Message, "a connection lost during one message's data");
    }
}

//! The submission session's state machine: which command is allowed when, what the server offers in EHLO,
//! and the policy checks that need no IO (TLS before AUTH, relay only for authenticated users or listed
//! networks, recipient domains, the sender an account may use, limits). The gateway drives it: it reads
//! commands, calls [`Session::command`], and performs the [`Step`] (a reply, a TLS handshake, an AUTH
//! exchange, reading the data).

use super::{command::Command, reply::Reply};

/// What the listener and the configuration allow.
#[derive(Clone, Debug)]
pub struct Policy {
    /// The name in the greeting and EHLO.
    pub host_name: String,
    /// The largest message, in octets (advertised with SIZE).
    pub max_size: u64,
    pub max_recipients: usize,
    /// STARTTLS can be offered (a certificate is configured and the connection is not TLS yet).
    pub starttls_available: bool,
    /// AUTH only once the connection is encrypted.
    pub auth_needs_tls: bool,
    /// MAIL is refused before STARTTLS.
    pub tls_required: bool,
    /// The client's address is in an allowed network: it may send without authenticating.
    pub trusted_network: bool,
    /// When not empty, only recipients in these domains are accepted.
    pub recipient_domains: Vec<String>,
    /// Refused commands (any 4xx or 5xx reply) after which the session is closed.
    pub max_errors: u32,
}

/// An authenticated device account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Login {
    pub username: String,
    /// Addresses it may send as (for the "allow user changes" policy); empty means only through rewriting.
    pub addresses: Vec<String>,
}

/// How the sender is decided; see the gateway's documentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SenderCheck {
    /// The envelope sender is rewritten anyway: any is accepted.
    Rewritten,
    /// The envelope sender must be one of the account's addresses.
    AccountAddresses,
    /// Only authenticated accounts may send (as their own mailbox); any envelope sender, rewritten.
    LoginRequired,
}

/// What the gateway must do next.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    Reply(Reply),
    /// Send `220 Ready to start TLS`, perform the handshake, then call [`Session::tls_started`].
    StartTls,
    /// Run the SASL exchange, then call [`Session::authenticated`] or send the refusal.
    Auth {
        mechanism: Mechanism,
        initial: Option<String>,
    },
    /// Send `354`, read the message, then call [`Session::data_done`] with its outcome.
    Data,
    /// Send `221` and close.
    Quit,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mechanism {
    Plain,
    Login,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Before EHLO/HELO.
    Connected,
    /// Greeted, no transaction.
    Ready,
    /// MAIL accepted.
    Mail,
    /// At least one RCPT accepted.
    Rcpt,
}

/// One client's session.
#[derive(Debug)]
pub struct Session {
    policy: Policy,
    sender_check: SenderCheck,
    phase: Phase,
    tls: bool,
    esmtp: bool,
    login: Option<Login>,
    mail_from: Option<String>,
    rcpt_to: Vec<String>,
    /// Refused commands so far.
    errors: u32,
}

/// A transaction ready to store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    pub login: Option<Login>,
}

fn domain_of(address: &str) -> &str {
    address.rsplit_once('@').map_or("", |(_, d)| d)
}

impl Session {
    pub fn new(policy: Policy, sender_check: SenderCheck, tls: bool) -> Self {
        Self {
            policy,
            sender_check,
            phase: Phase::Connected,
            tls,
            esmtp: false,
            login: None,
            mail_from: None,
            rcpt_to: Vec::new(),
            errors: 0,
        }
    }

    pub fn greeting(&self) -> Reply {
        Reply::plain(220, vec![format!("{} ESMTP Tidings", self.policy.host_name)])
    }

    pub fn login(&self) -> Option<&Login> {
        self.login.as_ref()
    }

    pub fn is_tls(&self) -> bool {
        self.tls
    }

    fn reset(&mut self) {
        self.mail_from = None;
        self.rcpt_to.clear();
        if self.phase != Phase::Connected {
            self.phase = Phase::Ready;
        }
    }

    fn ehlo_lines(&self, domain: &str) -> Vec<String> {
        let mut lines = vec![
            format!("{} greets {domain}", self.policy.host_name),
            "PIPELINING".into(),
            format!("SIZE {}", self.policy.max_size),
            "8BITMIME".into(),
            "ENHANCEDSTATUSCODES".into(),
        ];
        if self.policy.starttls_available && !self.tls {
            lines.push("STARTTLS".into());
        }
        if (self.tls || !self.policy.auth_needs_tls) && self.login.is_none() {
            lines.push("AUTH PLAIN LOGIN".into());
        }
        lines
    }

    /// The next step for a command.
    pub fn command(&mut self, command: Command) -> Step {
        use Command as C;
        let reply = |code, enhanced, text: &str| Step::Reply(Reply::new(code, enhanced, text));
        match command {
            C::Ehlo(domain) => {
                self.reset();
                self.phase = Phase::Ready;
                self.esmtp = true;
                Step::Reply(Reply::plain(250, self.ehlo_lines(&domain)))
            }
            C::Helo(domain) => {
                self.reset();
                self.phase = Phase::Ready;
                self.esmtp = false;
                Step::Reply(Reply::plain(250, vec![format!("{} greets {domain}", self.policy.host_name)]))
            }
            C::Quit => Step::Quit,
            C::Noop => reply(250, "2.0.0", "OK"),
            C::Rset => {
                self.reset();
                reply(250, "2.0.0", "OK")
            }
            C::Vrfy => reply(252, "2.5.0", "VRFY is disabled; send the message and see"),
            C::Expn => reply(502, "5.5.1", "EXPN is disabled"),
            C::Help => reply(214, "2.0.0", "See RFC 5321; Tidings accepts mail for delivery through its relay"),
            _ if self.phase == Phase::Connected => reply(503, "5.5.1", "say EHLO first"),
            C::StartTls if self.tls => reply(503, "5.5.1", "TLS is already active"),
            C::StartTls if !self.policy.starttls_available => reply(502, "5.5.1", "STARTTLS is not available here"),
            C::StartTls if self.phase != Phase::Ready => {
                reply(503, "5.5.1", "STARTTLS is not allowed during a transaction")
            }
            C::StartTls => Step::StartTls,
            C::Auth { .. } if self.login.is_some() => reply(503, "5.5.1", "already authenticated"),
            C::Auth { .. } if self.phase != Phase::Ready => {
                reply(503, "5.5.1", "AUTH is not allowed during a transaction")
            }
            C::Auth { .. } if self.policy.auth_needs_tls && !self.tls => {
                reply(538, "5.7.11", "encryption required for authentication: use STARTTLS first")
            }
            C::Auth { mechanism, initial } => match mechanism.as_str() {
                "PLAIN" => Step::Auth { mechanism: Mechanism::Plain, initial },
                "LOGIN" => Step::Auth { mechanism: Mechanism::Login, initial },
                _ => reply(504, "5.5.4", "unrecognized authentication mechanism; use PLAIN or LOGIN"),
            },
            C::Mail { .. } if self.phase != Phase::Ready => {
                reply(503, "5.5.1", "a transaction is already under way; RSET first")
            }
            C::Mail { .. } if self.policy.tls_required && !self.tls => {
                reply(530, "5.7.0", "must issue a STARTTLS command first")
            }
            C::Mail { .. } if self.login.is_none() && !self.policy.trusted_network => {
                reply(530, "5.7.0", "authentication required")
            }
            C::Mail { from, params } => self.mail(from, params),
            C::Rcpt { .. } if self.phase == Phase::Ready => reply(503, "5.5.1", "MAIL first"),
            C::Rcpt { params, .. } if !params.is_empty() => reply(
                555,
                "5.5.4",
                &format!("RCPT parameter {} is not supported (DSN is not offered); send without it", params[0].0),
            ),
            C::Rcpt { to, .. } => self.rcpt(to),
            C::Data if self.phase != Phase::Rcpt => {
                reply(503, "5.5.1", if self.phase == Phase::Mail { "no valid recipients" } else { "MAIL first" })
            }
            C::Data => Step::Data,
        }
    }

    fn mail(&mut self, from: String, params: super::command::Params) -> Step {
        for (key, value) in &params {
            match (key.as_str(), value) {
                ("SIZE", Some(v)) => match v.parse::<u64>() {
                    Ok(size) if size > self.policy.max_size => {
                        return Step::Reply(Reply::new(
                            552,
                            "5.3.4",
                            &format!("message too large: the limit is {} octets", self.policy.max_size),
                        ));
                    }
                    Ok(_) => {}
                    Err(_) => return Step::Reply(Reply::new(501, "5.5.4", "SIZE needs a number")),
                },
                ("BODY", Some(v)) if v.eq_ignore_ascii_case("8BITMIME") || v.eq_ignore_ascii_case("7BIT") => {}
                ("AUTH", _) => {}
                _ => return Step::Reply(Reply::new(555, "5.5.4", &format!("parameter {key} is not supported"))),
            }
        }
        if !from.is_empty()
            && let Err(why) = crate::address::validate(&from)
        {
            return Step::Reply(Reply::new(553, "5.1.7", &format!("the sender address is not valid: {why}")));
        }
        if self.sender_check == SenderCheck::LoginRequired && self.login.is_none() {
            return Step::Reply(Reply::new(
                530,
                "5.7.0",
                "authentication required: each account's messages are sent from its own mailbox",
            ));
        }
        if self.sender_check == SenderCheck::AccountAddresses {
            let allowed =
                self.login.as_ref().is_some_and(|l| l.addresses.iter().any(|a| a.eq_ignore_ascii_case(&from)));
            if !allowed {
                return Step::Reply(Reply::new(550, "5.7.1", &format!("this account may not send as <{from}>")));
            }
        }
        self.mail_from = Some(from);
        self.phase = Phase::Mail;
        Step::Reply(Reply::new(250, "2.1.0", "sender OK"))
    }

    fn rcpt(&mut self, to: String) -> Step {
        if self.rcpt_to.len() >= self.policy.max_recipients {
            return Step::Reply(Reply::new(452, "4.5.3", "too many recipients; send the rest in another message"));
        }
        if let Err(why) = crate::address::validate(&to) {
            return Step::Reply(Reply::new(501, "5.1.3", &format!("the recipient address is not valid: {why}")));
        }
        let domain = domain_of(&to);
        if !self.policy.recipient_domains.is_empty()
            && !self.policy.recipient_domains.iter().any(|d| d.eq_ignore_ascii_case(domain))
        {
            return Step::Reply(Reply::new(550, "5.7.1", &format!("relaying to {domain} is not allowed")));
        }
        self.rcpt_to.push(to);
        self.phase = Phase::Rcpt;
        Step::Reply(Reply::new(250, "2.1.5", "recipient OK"))
    }

    /// Every reply the gateway sends goes through here: a refusal counts towards [`Policy::max_errors`], and
    /// the one that reaches it is replaced by a `421` that closes the session (`Err`).
    pub fn judge(&mut self, reply: Reply) -> Result<Reply, Reply> {
        if reply.is_positive() {
            return Ok(reply);
        }
        self.errors += 1;
        if self.errors >= self.policy.max_errors.max(1) {
            Err(Reply::new(421, "4.7.0", "too many refused commands in this session; closing"))
        } else {
            Ok(reply)
        }
    }

    /// After a successful STARTTLS handshake: everything said before is forgotten (RFC 3207 §4.2).
    pub fn tls_started(&mut self) {
        self.tls = true;
        self.phase = Phase::Connected;
        self.login = None;
        self.mail_from = None;
        self.rcpt_to.clear();
    }

    /// After a successful AUTH exchange.
    pub fn authenticated(&mut self, login: Login) -> Reply {
        self.login = Some(login);
        Reply::new(235, "2.7.0", "authentication successful")
    }

    /// The transaction, once the data has been read; the session is ready for the next one whatever the
    /// outcome.
    pub fn take_envelope(&mut self) -> Option<Envelope> {
        let envelope = match (&self.mail_from, self.rcpt_to.is_empty()) {
            (Some(from), false) => {
                Some(Envelope { mail_from: from.clone(), rcpt_to: self.rcpt_to.clone(), login: self.login.clone() })
            }
            _ => None,
        };
        self.reset();
        envelope
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::submission::command::parse;

    fn policy() -> Policy {
        Policy {
            host_name: "tidings.test".into(),
            max_size: 1000,
            max_recipients: 2,
            starttls_available: true,
            auth_needs_tls: true,
            tls_required: false,
            trusted_network: false,
            recipient_domains: vec![],
            max_errors: 20,
        }
    }

    fn code(session: &mut Session, line: &str) -> u16 {
        match session.command(parse(line.as_bytes()).unwrap()) {
            Step::Reply(r) => r.code,
            Step::StartTls => 220,
            Step::Auth { .. } => 334,
            Step::Data => 354,
            Step::Quit => 221,
        }
    }

    #[test]
    fn an_unauthenticated_client_outside_the_networks_cannot_relay() {
        let mut s = Session::new(policy(), SenderCheck::Rewritten, false);
        assert_eq!(code(&mut s, "MAIL FROM:<a@b.c>"), 503);
        let Step::Reply(ehlo) = s.command(Command::Ehlo("dev".into())) else { panic!() };
        assert!(ehlo.lines.contains(&"STARTTLS".to_owned()) && !ehlo.lines.iter().any(|l| l.starts_with("AUTH")));
        assert_eq!(code(&mut s, "AUTH PLAIN"), 538, "no AUTH before TLS");
        assert_eq!(code(&mut s, "MAIL FROM:<a@b.c>"), 530);
        assert_eq!(code(&mut s, "RCPT TO:<x@y.z>"), 503);
        assert_eq!(code(&mut s, "DATA"), 503);
        assert_eq!(code(&mut s, "VRFY root"), 252);
    }

    #[test]
    fn after_starttls_the_session_starts_over_and_auth_is_offered() {
        let mut s = Session::new(policy(), SenderCheck::Rewritten, false);
        code(&mut s, "EHLO dev");
        assert_eq!(code(&mut s, "STARTTLS"), 220);
        s.tls_started();
        assert_eq!(code(&mut s, "MAIL FROM:<a@b.c>"), 503, "EHLO again after TLS");
        let Step::Reply(ehlo) = s.command(Command::Ehlo("dev".into())) else { panic!() };
        assert!(ehlo.lines.contains(&"AUTH PLAIN LOGIN".to_owned()) && !ehlo.lines.contains(&"STARTTLS".to_owned()));
        assert_eq!(code(&mut s, "AUTH PLAIN"), 334);
        s.authenticated(Login { username: "scanner".into(), addresses: vec![] });
        assert_eq!(code(&mut s, "AUTH PLAIN"), 503);
        assert_eq!(code(&mut s, "MAIL FROM:<scan@b.c> SIZE=1001"), 552);
        assert_eq!(code(&mut s, "MAIL FROM:<scan@b.c> SIZE=999"), 250);
        assert_eq!(code(&mut s, "RCPT TO:<a@x.y>"), 250);
        assert_eq!(code(&mut s, "RCPT TO:<b@x.y>"), 250);
        assert_eq!(code(&mut s, "RCPT TO:<c@x.y>"), 452, "the recipient limit");
        assert_eq!(code(&mut s, "DATA"), 354);
        let envelope = s.take_envelope().unwrap();
        assert_eq!((envelope.mail_from.as_str(), envelope.rcpt_to.len()), ("scan@b.c", 2));
        assert_eq!(code(&mut s, "DATA"), 503, "the next transaction starts with MAIL");
    }

    #[test]
    fn recipients_that_could_not_be_stored_are_refused_at_rcpt_and_dsn_parameters_too() {
        let mut p = policy();
        p.trusted_network = true;
        p.max_recipients = 10;
        let mut s = Session::new(p, SenderCheck::Rewritten, false);
        code(&mut s, "EHLO printer");
        assert_eq!(code(&mut s, "MAIL FROM:<.bad@example.com>"), 553);
        assert_eq!(code(&mut s, "MAIL FROM:<scan@example.com>"), 250);
        for bad in ["<x@other.org@dest.org>", "<.x@dest.org>", "<x..y@dest.org>", "<x@>", "<nobody>"] {
            let Step::Reply(r) = s.command(parse(format!("RCPT TO:{bad}").as_bytes()).unwrap()) else { panic!() };
            assert_eq!((r.code, r.enhanced), (501, Some("5.1.3")), "{bad}: {r:?}");
            assert!(r.lines[0].contains("not valid"), "{r:?}");
        }
        assert_eq!(code(&mut s, "RCPT TO:<ops@dest.org> NOTIFY=SUCCESS,FAILURE"), 555, "DSN is not offered");
        assert_eq!(code(&mut s, "RCPT TO:<ops@dest.org> ORCPT=rfc822;ops@dest.org"), 555);
        assert_eq!(code(&mut s, "RCPT TO:<ops@dest.org>"), 250);
        assert_eq!(code(&mut s, "DATA"), 354);
    }

    #[test]
    fn a_session_is_closed_after_too_many_refused_commands() {
        let mut p = policy();
        p.max_errors = 3;
        let mut s = Session::new(p, SenderCheck::Rewritten, false);
        let refused = || Reply::new(500, "5.5.2", "unrecognized command");
        assert!(s.judge(Reply::new(250, "2.0.0", "OK")).is_ok(), "a positive reply never counts");
        assert!(s.judge(refused()).is_ok() && s.judge(refused()).is_ok());
        let closing = s.judge(refused()).unwrap_err();
        assert_eq!((closing.code, closing.enhanced), (421, Some("4.7.0")));
    }

    #[test]
    fn listed_networks_domains_and_account_addresses() {
        let mut p = policy();
        p.trusted_network = true;
        p.recipient_domains = vec!["example.com".into()];
        let mut s = Session::new(p.clone(), SenderCheck::Rewritten, false);
        code(&mut s, "HELO printer");
        assert_eq!(code(&mut s, "MAIL FROM:<>"), 250, "trusted network, no authentication needed");
        assert_eq!(code(&mut s, "RCPT TO:<someone@elsewhere.org>"), 550);
        assert_eq!(code(&mut s, "RCPT TO:<Ops@EXAMPLE.com>"), 250);

        p.trusted_network = false;
        p.auth_needs_tls = false;
        let mut s = Session::new(p, SenderCheck::AccountAddresses, false);
        code(&mut s, "EHLO dev");
        s.authenticated(Login { username: "u".into(), addresses: vec!["scan@example.com".into()] });
        assert_eq!(code(&mut s, "MAIL FROM:<boss@example.com>"), 550);
        assert_eq!(code(&mut s, "MAIL FROM:<SCAN@example.com>"), 250);
    }

    #[test]
    fn the_login_user_policy_needs_an_account_even_from_a_trusted_network() {
        let mut p = policy();
        p.trusted_network = true;
        p.auth_needs_tls = false;
        let mut s = Session::new(p, SenderCheck::LoginRequired, false);
        code(&mut s, "EHLO dev");
        assert_eq!(code(&mut s, "MAIL FROM:<a@b.c>"), 530);
        s.authenticated(Login { username: "u".into(), addresses: vec!["scan@example.com".into()] });
        assert_eq!(code(&mut s, "MAIL FROM:<a@b.c>"), 250, "any envelope sender: it is rewritten");
    }

    #[test]
    fn tls_can_be_required_before_mail() {
        let mut p = policy();
        p.tls_required = true;
        p.trusted_network = true;
        let mut s = Session::new(p, SenderCheck::Rewritten, false);
        code(&mut s, "EHLO dev");
        assert_eq!(code(&mut s, "MAIL FROM:<a@b.c>"), 530);
    }
}

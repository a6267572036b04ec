//! Why an exchange with the relay failed, classified, with what an administrator can do about it.

use tidings_core::outbox::{
    Failure,
    explain::{Evidence, explain},
    reply::{Class, Reply, Scope, Stage, classify, scope},
};

use crate::token::TokenError;

/// A failed step of the conversation with the relay.
#[derive(Debug, thiserror::Error)]
#[error("{stage}: {kind}", stage = stage.as_str())]
pub struct SmtpError {
    pub stage: Stage,
    pub kind: ErrorKind,
    /// The JSON status a server sent in a `334` during XOAUTH2 (Gmail), decoded.
    pub xoauth2_status: Option<String>,
    /// What to do, when the step that failed knew it (a TLS handshake's certificate problem).
    pub explanation: Option<String>,
}

/// Why the relay could not be reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unreachable {
    /// Its name did not resolve.
    Unresolved,
    /// Nothing listens there (connection refused).
    Refused,
    /// Anything else (no route, reset).
    Other,
}

#[derive(Debug, thiserror::Error)]
pub enum ErrorKind {
    #[error("{0}")]
    Refused(Reply),
    #[error("cannot connect: {detail}")]
    Connect { why: Unreachable, detail: String },
    #[error("no reply within {0} s")]
    Timeout(u64),
    #[error("the relay closed the connection")]
    Closed,
    #[error("connection error: {0}")]
    Io(String),
    #[error("TLS failed: {0}")]
    Tls(String),
    #[error("the relay does not offer STARTTLS; nothing was sent unencrypted")]
    StarttlsUnavailable,
    #[error(
        "the relay sent data after its STARTTLS reply, before the TLS handshake; the connection was dropped (STARTTLS injection?)"
    )]
    StarttlsInjection,
    #[error("{0}")]
    AuthUnavailable(String),
    #[error("unexpected reply from the relay: {0}")]
    Protocol(String),
    #[error("{0}")]
    Token(TokenError),
}

impl SmtpError {
    pub fn new(stage: Stage, kind: ErrorKind) -> Self {
        Self { stage, kind, xoauth2_status: None, explanation: None }
    }

    pub fn explained(mut self, explanation: Option<String>) -> Self {
        self.explanation = explanation;
        self
    }

    pub fn refused(stage: Stage, reply: Reply) -> Self {
        Self::new(stage, ErrorKind::Refused(reply))
    }

    /// The relay's reply, when the failure was one.
    pub fn reply(&self) -> Option<&Reply> {
        match &self.kind {
            ErrorKind::Refused(reply) => Some(reply),
            _ => None,
        }
    }

    pub fn class(&self) -> Class {
        if self.xoauth2_status.is_some() {
            return Class::AuthFailed;
        }
        match &self.kind {
            ErrorKind::Refused(reply) => classify(self.stage, reply),
            ErrorKind::AuthUnavailable(_) => Class::AuthFailed,
            ErrorKind::Token(e) => e.class(),
            _ => Class::Transient,
        }
    }

    /// Whether the failure concerns this message, the identity, or the relay (see `tidings_core::outbox::circuit`).
    pub fn scope(&self) -> Scope {
        match &self.kind {
            // The relay answered, then went silent or away: a connection problem, unless it was one message's data.
            ErrorKind::Timeout(_) | ErrorKind::Closed | ErrorKind::Io(_) if self.stage == Stage::Message => {
                Scope::Message
            }
            _ if self.xoauth2_status.is_some() => Scope::Identity,
            _ => scope(self.stage, self.reply()),
        }
    }

    /// Whether the relay refused the credentials (worth one token refresh with OAuth2).
    pub fn is_auth_rejection(&self) -> bool {
        self.stage == Stage::Auth
            && (self.xoauth2_status.is_some()
                || matches!(&self.kind, ErrorKind::Refused(r) if r.code >= 500 || r.enhanced.as_deref() == Some("5.5.127")))
    }

    /// Whether the connection itself broke (as opposed to a refusal): a reused connection failing this way is
    /// replaced by a fresh one without counting an attempt.
    pub fn is_connection_loss(&self) -> bool {
        matches!(self.kind, ErrorKind::Closed | ErrorKind::Io(_))
    }

    /// The failure as the delivery log records it.
    pub fn to_failure(&self, relay: &str) -> Failure {
        let explanation = explain(Evidence {
            stage: self.stage,
            reply: self.reply(),
            xoauth2_status: self.xoauth2_status.as_deref(),
        })
        .or_else(|| self.explanation.clone())
        .or_else(|| self.local_explanation(relay));
        let status = self.xoauth2_status.as_deref().map(|json| format!(" (XOAUTH2 status {json})")).unwrap_or_default();
        let text = match self.reply() {
            Some(reply) => format!("{}{status}", reply.text),
            None => format!("{}{status}", self.kind),
        };
        Failure {
            class: self.class(),
            scope: self.scope(),
            stage: self.stage,
            reply: self.reply().cloned(),
            error: format!("{}{status}", self.kind),
            text,
            explanation,
            retry_after: None,
        }
    }

    /// What Tidings knows about failures that are not the relay's replies.
    fn local_explanation(&self, relay: &str) -> Option<String> {
        Some(match &self.kind {
            ErrorKind::Connect { why: Unreachable::Refused, .. } => format!(
                "Nothing accepts connections at {relay}. Check smtp.host and smtp.port, and that no firewall blocks the way."
            ),
            ErrorKind::Connect { why: Unreachable::Unresolved, .. } => {
                format!("The relay's name does not resolve ({relay}). Check smtp.host and the DNS settings.")
            }
            ErrorKind::Connect { why: Unreachable::Other, .. } => {
                format!("Tidings could not reach {relay}. Check smtp.host, smtp.port and the network.")
            }
            ErrorKind::Timeout(_) => {
                format!("The relay {relay} did not answer within delivery.timeout. Tidings retries later.")
            }
            ErrorKind::Tls(_) if self.stage == Stage::Tls => {
                "The TLS handshake failed. If the relay expects STARTTLS on this \
                 port (usually 587), set smtp.encryption=starttls; implicit TLS is usually port 465. Check \
                 tls.min_version and tls.max_version too."
                    .into()
            }
            ErrorKind::StarttlsUnavailable => {
                "The relay did not offer STARTTLS, so Tidings sent nothing (it never falls back \
                 to clear text). If the relay speaks implicit TLS (port 465), set smtp.encryption=tls; otherwise check \
                 smtp.port."
                    .into()
            }
            ErrorKind::StarttlsInjection => format!(
                "Something sent data on the connection to {relay} right after the relay agreed to STARTTLS, before \
                 encryption began: a broken relay, or something on the way tampering with the connection. Tidings \
                 dropped it and sent nothing; it tries again later. Check the network path to the relay."
            ),
            ErrorKind::AuthUnavailable(_) => "Check smtp.auth against what the relay supports; many relays offer \
                 authentication only after STARTTLS."
                .into(),
            ErrorKind::Token(TokenError::ReauthorizationRequired(_)) => {
                "Messages wait until Tidings is authorized with the provider again.".into()
            }
            _ => return None,
        })
    }
}

impl From<TokenError> for SmtpError {
    fn from(e: TokenError) -> Self {
        Self::new(Stage::Token, ErrorKind::Token(e))
    }
}

//! The SMTP client: one [`Connection`] to the relay, opened with the configured encryption and
//! authentication, sending any number of messages.

mod auth;
pub mod error;
pub mod tls;
mod wire;

use crate::token::{AccessToken, TokenSource};
use error::{ErrorKind, SmtpError, Unreachable};
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use std::{fmt, sync::Arc, time::Duration};
use tidings_core::{
    config::Encryption,
    outbox::{
        RcptResult,
        reply::{Reply, Stage},
    },
    secret::SecretString,
};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use wire::{Stream, Wire};

/// Everything needed to reach and authenticate to the relay.
#[derive(Clone)]
pub struct RelaySettings {
    pub host: String,
    pub port: u16,
    pub encryption: Encryption,
    pub auth: RelayAuth,
    pub tls: Arc<ClientConfig>,
    /// Whether `tls` verifies certificates (reported with every attempt when it does not).
    pub verify_certificates: bool,
    /// The limit for each step.
    pub timeout: Duration,
    /// The name given in EHLO.
    pub helo_name: String,
    /// Messages go through a provider's HTTP API instead (`delivery.transport`); `host` and `port` are then the
    /// API's, for the log.
    pub api: Option<std::sync::Arc<crate::api::ApiSettings>>,
}

impl fmt::Debug for RelaySettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RelaySettings")
            .field("relay", &self.address())
            .field("encryption", &self.encryption)
            .field("auth", &self.auth)
            .field("verify_certificates", &self.verify_certificates)
            .finish_non_exhaustive()
    }
}

impl RelaySettings {
    /// `host:port`, for messages.
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// How to authenticate.
#[derive(Clone)]
pub enum RelayAuth {
    None,
    Password { username: String, password: SecretString },
    OAuth2 { user: String, tokens: Arc<dyn TokenSource> },
}

impl fmt::Debug for RelayAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RelayAuth::None => f.write_str("None"),
            RelayAuth::Password { username, .. } => write!(f, "Password({username})"),
            RelayAuth::OAuth2 { user, .. } => write!(f, "OAuth2({user})"),
        }
    }
}

/// What the relay announced in its EHLO reply.
#[derive(Clone, Debug, Default)]
struct Capabilities {
    starttls: bool,
    /// Mechanisms, upper case.
    auth: Vec<String>,
    eight_bit_mime: bool,
    size: bool,
    pipelining: bool,
}

impl Capabilities {
    /// Reads the keywords from an EHLO reply's lines (`250-STARTTLS`, `250 AUTH PLAIN LOGIN`).
    fn parse(lines: &[String]) -> Self {
        let mut caps = Capabilities::default();
        for line in lines.iter().skip(1) {
            let upper = line.get(4..).unwrap_or_default().trim().to_ascii_uppercase();
            let mut words = upper.split([' ', '=']);
            match words.next() {
                Some("STARTTLS") => caps.starttls = true,
                Some("8BITMIME") => caps.eight_bit_mime = true,
                Some("SIZE") => caps.size = true,
                Some("PIPELINING") => caps.pipelining = true,
                Some("AUTH") => {
                    for m in words.filter(|m| !m.is_empty()) {
                        if !caps.auth.iter().any(|known| known == m) {
                            caps.auth.push(m.to_owned());
                        }
                    }
                }
                _ => {}
            }
        }
        caps
    }
}

/// The outcome of one message's transaction.
#[derive(Debug)]
pub struct Transaction {
    /// The relay's answer to each recipient it was given.
    pub recipients: Vec<(String, RcptResult)>,
    /// The reply to the message's final dot, or why the transaction did not get there.
    pub result: Result<Reply, SmtpError>,
}

/// An open, greeted, (encrypted,) authenticated session with the relay.
#[derive(Debug)]
pub struct Connection {
    wire: Wire,
    caps: Capabilities,
    /// An envelope of this many recipients went out with the last message's data; its replies are unread.
    ahead: Option<usize>,
    /// The relay's own certificate, read once when the connection was encrypted.
    certificate: Option<Arc<tls::Certificate>>,
}

/// What a relay shows before authentication ([`Connection::look`]).
#[derive(Debug)]
pub struct Shown {
    /// STARTTLS, SIZE, PIPELINING, 8BITMIME as offered.
    pub extensions: Vec<String>,
    /// The AUTH mechanisms offered, upper case.
    pub auth: Vec<String>,
    pub certificate: Option<Arc<tls::Certificate>>,
}

/// The message a caller sends next on the same connection (see [`Connection::send_before`]).
#[derive(Debug, Clone, Copy)]
pub struct Next<'a> {
    pub mail_from: &'a str,
    pub recipients: &'a [String],
    pub data: &'a [u8],
}

impl Connection {
    /// Opens a session. With OAuth2, a relay that rejects the access token gets one refreshed token and one
    /// more try on a fresh connection.
    pub async fn open(settings: &RelaySettings) -> Result<Self, SmtpError> {
        let RelayAuth::OAuth2 { tokens, .. } = &settings.auth else {
            return Self::open_with(settings, None).await;
        };
        let token = tokens.access_token().await?;
        match Self::open_with(settings, Some(&token)).await {
            Err(e) if e.is_auth_rejection() => match tokens.refresh(&token).await? {
                Some(fresh) => {
                    tracing::info!(relay = %settings.address(), "the relay rejected the access token; retrying once with a refreshed one");
                    Self::open_with(settings, Some(&fresh)).await
                }
                None => Err(e),
            },
            other => other,
        }
    }

    async fn open_with(settings: &RelaySettings, token: Option<&AccessToken>) -> Result<Self, SmtpError> {
        let (mut wire, caps) = Self::reach(settings).await?;
        match (&settings.auth, token) {
            (RelayAuth::None, _) => {}
            (RelayAuth::Password { username, password }, _) => {
                auth::password(&mut wire, &caps.auth, username, password).await?
            }
            (RelayAuth::OAuth2 { user, .. }, Some(token)) => {
                auth::xoauth2(&mut wire, &caps.auth, user, &token.0).await?
            }
            (RelayAuth::OAuth2 { .. }, None) => {
                return Err(SmtpError::new(Stage::Token, ErrorKind::Protocol("no access token".into())));
            }
        }
        let certificate = wire.peer_certificates().first().and_then(|der| tls::Certificate::parse(der)).map(Arc::new);
        Ok(Self { wire, caps, ahead: None, certificate })
    }

    /// The certificates the relay presents (its own first), after STARTTLS where configured, whether or not
    /// they would be trusted (`settings.tls` should accept any: `engine::looking_at`): for an administrator to
    /// inspect and pin. Nothing is authenticated or sent.
    pub async fn fetch_certificates(settings: &RelaySettings) -> Result<Vec<Vec<u8>>, SmtpError> {
        if settings.encryption == Encryption::None {
            return Err(SmtpError::new(
                Stage::Tls,
                ErrorKind::Protocol("smtp.encryption is none: the relay is not asked for a certificate".into()),
            ));
        }
        let (mut wire, _) = Self::reach(settings).await?;
        let certificates = wire.peer_certificates();
        let _ = wire.command(Stage::Data, "QUIT").await;
        Ok(certificates)
    }

    /// What the relay shows before anyone authenticates, encrypted as configured: its extensions and its own
    /// certificate. Nothing is authenticated or sent (the doctor).
    pub async fn look(settings: &RelaySettings) -> Result<Shown, SmtpError> {
        let (mut wire, caps) = Self::reach(settings).await?;
        let certificate = wire.peer_certificates().first().and_then(|der| tls::Certificate::parse(der)).map(Arc::new);
        let _ = wire.command(Stage::Data, "QUIT").await;
        let mut extensions: Vec<String> = Vec::new();
        for (on, name) in [
            (caps.starttls, "STARTTLS"),
            (caps.size, "SIZE"),
            (caps.pipelining, "PIPELINING"),
            (caps.eight_bit_mime, "8BITMIME"),
        ] {
            if on {
                extensions.push(name.into());
            }
        }
        Ok(Shown { extensions, auth: caps.auth, certificate })
    }

    /// Whether the relay takes mail from `sender` on this session: `MAIL FROM`, then `RSET`. Nothing is sent.
    pub async fn try_sender(&mut self, sender: &str) -> Result<Reply, SmtpError> {
        let reply = self.wire.command(Stage::MailFrom, &format!("MAIL FROM:<{sender}>")).await?;
        if reply.code != 250 {
            return Err(SmtpError::refused(Stage::MailFrom, reply));
        }
        let _ = self.wire.command(Stage::MailFrom, "RSET").await;
        Ok(reply)
    }

    /// The relay's own certificate, when the connection is encrypted.
    pub fn certificate(&self) -> Option<Arc<tls::Certificate>> {
        self.certificate.clone()
    }

    /// Connects, and encrypts as configured: the relay's capabilities, ready to authenticate.
    async fn reach(settings: &RelaySettings) -> Result<(Wire, Capabilities), SmtpError> {
        let tcp = connect(settings).await?;
        let stream = match settings.encryption {
            Encryption::Tls => handshake(settings, tcp).await?,
            Encryption::Starttls | Encryption::None => Stream::Plain(tcp),
        };
        let mut wire = Wire::new(stream, settings.timeout);
        let greeting = wire.read_reply(Stage::Greeting).await?;
        if greeting.code != 220 {
            return Err(SmtpError::refused(Stage::Greeting, greeting));
        }
        let mut caps = ehlo(&mut wire, &settings.helo_name).await?;
        if settings.encryption == Encryption::Starttls {
            if !caps.starttls {
                return Err(SmtpError::new(Stage::Starttls, ErrorKind::StarttlsUnavailable));
            }
            let reply = wire.command(Stage::Starttls, "STARTTLS").await?;
            if reply.code != 220 {
                return Err(SmtpError::refused(Stage::Starttls, reply));
            }
            // Anything that arrived with the 220 was sent before the handshake and cannot be trusted.
            if wire.has_buffered() {
                return Err(SmtpError::new(Stage::Starttls, ErrorKind::StarttlsInjection));
            }
            let Stream::Plain(tcp) = wire.into_stream() else {
                return Err(SmtpError::new(
                    Stage::Starttls,
                    ErrorKind::Protocol("STARTTLS on an encrypted stream".into()),
                ));
            };
            wire = Wire::new(handshake(settings, tcp).await?, settings.timeout);
            caps = ehlo(&mut wire, &settings.helo_name).await?;
        }
        Ok((wire, caps))
    }

    /// Sends one message to the recipients the relay accepts.
    pub async fn send(&mut self, mail_from: &str, recipients: &[String], data: &[u8]) -> Transaction {
        self.send_before(mail_from, recipients, data, None).await
    }

    /// Sends one message; with `next`, to a relay that pipelines, the next message's envelope goes in the
    /// same write as this message's data (RFC 2920: message content may start a group of commands), so each
    /// message after the first costs one round trip instead of two. The next call must then send `next`,
    /// whatever this message's outcome, unless the connection is dropped.
    pub async fn send_before(
        &mut self,
        mail_from: &str,
        recipients: &[String],
        data: &[u8],
        next: Option<Next<'_>>,
    ) -> Transaction {
        let mut results = Vec::with_capacity(recipients.len());
        let result = self.transact(mail_from, recipients, data, next, &mut results).await;
        if let Err(e) = &result
            && !e.is_connection_loss()
            && e.stage != Stage::Message
        {
            // Leave the session clean for the next message.
            let _ = self.wire.command(Stage::MailFrom, "RSET").await;
        }
        Transaction { recipients: results, result }
    }

    async fn transact(
        &mut self,
        mail_from: &str,
        recipients: &[String],
        data: &[u8],
        next: Option<Next<'_>>,
        results: &mut Vec<(String, RcptResult)>,
    ) -> Result<Reply, SmtpError> {
        match self.ahead.take() {
            Some(sent) => {
                debug_assert_eq!(sent, recipients.len(), "the envelope sent ahead was another message's");
                self.envelope_replies(recipients, results).await?;
            }
            None if self.caps.pipelining => {
                let commands = self.envelope_commands(mail_from, recipients, data);
                self.wire.send(Stage::MailFrom, commands.as_bytes()).await?;
                self.envelope_replies(recipients, results).await?;
            }
            None => self.envelope(&self.mail_command(mail_from, data), recipients, results).await?,
        }
        let mut content = dot_stuffed(data);
        let ahead = next.filter(|_| self.caps.pipelining).map(|next| {
            self.ahead = Some(next.recipients.len());
            self.envelope_commands(next.mail_from, next.recipients, next.data)
        });
        if let Some(commands) = &ahead {
            content.push(commands.as_bytes());
        }
        self.wire.send_pieces(Stage::Message, &content).await?;
        let reply = self.wire.read_reply(Stage::Message).await?;
        if reply.code != 250 {
            return Err(SmtpError::refused(Stage::Message, reply));
        }
        Ok(reply)
    }

    /// MAIL, RCPT and DATA one after the other, each waiting for its reply.
    async fn envelope(
        &mut self,
        mail: &str,
        recipients: &[String],
        results: &mut Vec<(String, RcptResult)>,
    ) -> Result<(), SmtpError> {
        let reply = self.wire.command(Stage::MailFrom, mail).await?;
        if reply.code != 250 {
            return Err(SmtpError::refused(Stage::MailFrom, reply));
        }
        for rcpt in recipients {
            let reply = self.wire.command(Stage::RcptTo, &format!("RCPT TO:<{rcpt}>")).await?;
            results.push((rcpt.clone(), rcpt_result(reply)));
        }
        any_accepted(results)?;
        let reply = self.wire.command(Stage::Data, "DATA").await?;
        if reply.code != 354 {
            return Err(SmtpError::refused(Stage::Data, reply));
        }
        Ok(())
    }

    /// `MAIL FROM` with the parameters the relay understands.
    fn mail_command(&self, mail_from: &str, data: &[u8]) -> String {
        let mut mail = format!("MAIL FROM:<{mail_from}>");
        if self.caps.size {
            mail.push_str(&format!(" SIZE={}", data.len()));
        }
        if self.caps.eight_bit_mime && !data.is_ascii() {
            mail.push_str(" BODY=8BITMIME");
        }
        mail
    }

    /// MAIL, every RCPT and DATA, for one write to a relay that pipelines (RFC 2920): one round trip
    /// instead of two and more.
    fn envelope_commands(&self, mail_from: &str, recipients: &[String], data: &[u8]) -> String {
        let mut commands = self.mail_command(mail_from, data);
        commands.push_str("\r\n");
        for rcpt in recipients {
            commands.push_str(&format!("RCPT TO:<{rcpt}>\r\n"));
        }
        commands.push_str("DATA\r\n");
        commands
    }

    /// The replies to [`Self::envelope_commands`], in order. A `354` the relay gives although nothing else
    /// was accepted is ended with an empty message's dot, so the session stays in step.
    async fn envelope_replies(
        &mut self,
        recipients: &[String],
        results: &mut Vec<(String, RcptResult)>,
    ) -> Result<(), SmtpError> {
        let mail_reply = self.wire.read_reply(Stage::MailFrom).await?;
        let mut rcpt_replies = Vec::with_capacity(recipients.len());
        for _ in recipients {
            rcpt_replies.push(self.wire.read_reply(Stage::RcptTo).await?);
        }
        let data_reply = self.wire.read_reply(Stage::Data).await?;
        let refusal = if mail_reply.code != 250 {
            Some(SmtpError::refused(Stage::MailFrom, mail_reply))
        } else {
            results.extend(recipients.iter().cloned().zip(rcpt_replies.into_iter().map(rcpt_result)));
            any_accepted(results).err()
        };
        match refusal {
            None if data_reply.code == 354 => Ok(()),
            None => Err(SmtpError::refused(Stage::Data, data_reply)),
            Some(refusal) => {
                if data_reply.code == 354 {
                    self.wire.send(Stage::Data, b".\r\n").await?;
                    self.wire.read_reply(Stage::Data).await?;
                }
                Err(refusal)
            }
        }
    }

    /// Says goodbye and closes.
    pub async fn quit(mut self) {
        let _ = self.wire.command(Stage::Data, "QUIT").await;
        self.wire.shutdown().await;
    }
}

async fn connect(settings: &RelaySettings) -> Result<TcpStream, SmtpError> {
    let address = settings.address();
    let host = settings.host.trim_start_matches('[').trim_end_matches(']');
    let attempt = async {
        let addresses: Vec<std::net::SocketAddr> = match tokio::net::lookup_host((host, settings.port)).await {
            Ok(found) => found.collect(),
            Err(e) => return Err((Unreachable::Unresolved, format!("cannot resolve {}: {e}", settings.host))),
        };
        if addresses.is_empty() {
            return Err((Unreachable::Unresolved, format!("{} has no address", settings.host)));
        }
        TcpStream::connect(&addresses[..]).await.map_err(|e| match e.kind() {
            std::io::ErrorKind::ConnectionRefused => (Unreachable::Refused, format!("connection refused by {address}")),
            _ => (Unreachable::Other, format!("{address}: {e}")),
        })
    };
    match tokio::time::timeout(settings.timeout, attempt).await {
        Ok(Ok(tcp)) => {
            let _ = tcp.set_nodelay(true);
            Ok(tcp)
        }
        Ok(Err((why, detail))) => Err(SmtpError::new(Stage::Connect, ErrorKind::Connect { why, detail })),
        Err(_) => Err(SmtpError::new(Stage::Connect, ErrorKind::Timeout(settings.timeout.as_secs()))),
    }
}

async fn handshake(settings: &RelaySettings, tcp: TcpStream) -> Result<Stream, SmtpError> {
    let name =
        ServerName::try_from(settings.host.trim_start_matches('[').trim_end_matches(']').to_owned()).map_err(|e| {
            SmtpError::new(Stage::Tls, ErrorKind::Tls(format!("{} is not a valid TLS server name: {e}", settings.host)))
        })?;
    let connector = TlsConnector::from(settings.tls.clone());
    match tokio::time::timeout(settings.timeout, connector.connect(name, tcp)).await {
        Ok(Ok(tls)) => Ok(Stream::Tls(Box::new(tls))),
        Ok(Err(e)) => {
            let explanation = e
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                .and_then(|tls| tls::explain(tls, &settings.address()));
            Err(SmtpError::new(Stage::Tls, ErrorKind::Tls(e.to_string())).explained(explanation))
        }
        Err(_) => Err(SmtpError::new(Stage::Tls, ErrorKind::Timeout(settings.timeout.as_secs()))),
    }
}

/// EHLO, falling back to HELO for a relay that does not know it.
async fn ehlo(wire: &mut Wire, name: &str) -> Result<Capabilities, SmtpError> {
    wire.send_line(Stage::Ehlo, &format!("EHLO {name}")).await?;
    let (reply, lines) = wire.read_reply_lines(Stage::Ehlo).await?;
    if reply.code == 250 {
        return Ok(Capabilities::parse(&lines));
    }
    let reply = wire.command(Stage::Ehlo, &format!("HELO {name}")).await?;
    if reply.code == 250 { Ok(Capabilities::default()) } else { Err(SmtpError::refused(Stage::Ehlo, reply)) }
}

/// A recipient's reply as its result: 250 and 251 accept it.
fn rcpt_result(reply: Reply) -> RcptResult {
    if matches!(reply.code, 250 | 251) { RcptResult::Accepted } else { RcptResult::Refused(reply) }
}

/// Refuses the transaction when no recipient was accepted, with the last refusal.
fn any_accepted(results: &[(String, RcptResult)]) -> Result<(), SmtpError> {
    if results.iter().any(|(_, r)| *r == RcptResult::Accepted) {
        return Ok(());
    }
    let reply = results
        .iter()
        .rev()
        .find_map(|(_, r)| match r {
            RcptResult::Refused(reply) => Some(reply.clone()),
            RcptResult::Accepted => None,
        })
        .unwrap_or_else(|| Reply { code: 554, enhanced: None, text: "no recipients".into() });
    Err(SmtpError::refused(Stage::RcptTo, reply))
}

/// The DATA payload, in pieces of `data` and what goes between them (never a copy of the message): lines
/// starting with `.` get another, the message ends with CRLF, then `.` CRLF.
fn dot_stuffed(data: &[u8]) -> Vec<&[u8]> {
    let mut pieces: Vec<&[u8]> = Vec::with_capacity(4);
    if data.first() == Some(&b'.') {
        pieces.push(b".");
    }
    let mut start = 0;
    for newline in memchr::memmem::find_iter(data, b"\n.") {
        pieces.push(&data[start..=newline]);
        pieces.push(b".");
        start = newline + 1;
    }
    pieces.push(&data[start..]);
    if !data.ends_with(b"\r\n") {
        pieces.push(b"\r\n");
    }
    pieces.push(b".\r\n");
    pieces
}

#[cfg(test)]
mod tests {
    use super::dot_stuffed;

    fn dot_stuff(data: &[u8]) -> Vec<u8> {
        dot_stuffed(data).concat()
    }

    #[test]
    fn dot_stuffing() {
        assert_eq!(dot_stuff(b"a\r\n.b\r\n..c\r\n"), b"a\r\n..b\r\n...c\r\n.\r\n");
        assert_eq!(dot_stuff(b".start"), b"..start\r\n.\r\n");
        assert_eq!(dot_stuff(b"x\r\n.\r\n"), b"x\r\n..\r\n.\r\n");
        assert_eq!(dot_stuff(b"\r\n.\n.\r\n."), b"\r\n..\n..\r\n..\r\n.\r\n");
        assert_eq!(dot_stuff(b""), b"\r\n.\r\n");
    }
}

//! One client's session: the protocol core's [`Session`] driven over a [`Wire`], with authentication against
//! device accounts, the per-address guard, the session deadline, and durable acceptance of each message.

use crate::{
    Shared,
    wire::{Line, ReadError, Wire},
};
use std::{net::SocketAddr, sync::Arc, time::Instant};
use tidings_app::attempts::Refusal;
use tidings_app::outbox::{Submission, prepare};
use tidings_core::{
    config::{
        EmailConfig,
        gateway::{Cidr, SenderPolicy},
    },
    message::RawMessage,
    secret::SecretString,
    submission::{
        command::{self, MAX_COMMAND_LINE},
        data::DataReader,
        policy::{self, Senders},
        reply::Reply,
        sasl,
        session::{Envelope, Mechanism, Policy, SenderCheck, Session, Step},
    },
};

/// How a session ended, for the log.
enum End {
    Quit,
    Closed,
    Idle,
    TooLong,
    TooSlow,
    Locked,
    Busy,
    TooManyErrors,
    Failed(String),
}

fn policy(config: &EmailConfig, host_name: &str, peer: SocketAddr, tls_available: bool, tls: bool) -> Policy {
    let g = &config.gateway;
    let trusted = g.allowed_networks.iter().filter_map(|n| Cidr::parse(n).ok()).any(|n| n.contains(peer.ip()));
    Policy {
        host_name: host_name.to_owned(),
        max_size: config.delivery.max_message_size,
        max_recipients: g.max_recipients as usize,
        starttls_available: tls_available && !tls,
        auth_needs_tls: !g.allow_plaintext_auth,
        tls_required: g.require_tls,
        trusted_network: trusted,
        recipient_domains: g.recipient_domains.clone(),
        max_errors: g.max_errors,
    }
}

/// Serves one connection (`tls`: the implicit-TLS listener, already handshaken).
pub async fn serve(shared: Arc<Shared>, wire: Wire, peer: SocketAddr, tls: bool) {
    let started = Instant::now();
    let end = run(&shared, wire, peer, tls).await;
    let (how, level_warn) = match &end {
        End::Quit => ("quit".to_owned(), false),
        End::Closed => ("closed by the client".into(), false),
        End::Idle => ("idle timeout".into(), true),
        End::TooLong => ("session timeout".into(), true),
        End::TooSlow => ("data slower than gateway.min_data_rate".into(), true),
        End::Locked => ("address locked out".into(), true),
        End::Busy => ("authentication refused for now (lockout, or too many at once)".into(), true),
        End::TooManyErrors => ("too many refused commands".into(), true),
        End::Failed(why) => (why.clone(), true),
    };
    if level_warn {
        tracing::warn!(%peer, ended = %how, seconds = started.elapsed().as_secs(), "gateway session ended");
    } else {
        tracing::debug!(%peer, ended = %how, "gateway session ended");
    }
}

async fn run(shared: &Shared, mut wire: Wire, peer: SocketAddr, tls: bool) -> End {
    let current = shared.config.borrow().clone();
    let config = &current.config;
    let g = &config.gateway;
    let deadline = tokio::time::Instant::now() + g.session_timeout;
    if shared.guard.locked(peer.ip()) {
        let _ = wire
            .send(
                &Reply::new(421, "4.7.0", "too many failed authentications from your address; try again later").wire(),
            )
            .await;
        return End::Locked;
    }
    let sender_check = match g.sender_policy {
        SenderPolicy::AllowUser => SenderCheck::AccountAddresses,
        SenderPolicy::LoginUser => SenderCheck::LoginRequired,
        SenderPolicy::Fixed | SenderPolicy::Bulk => SenderCheck::Rewritten,
    };
    let tls_available = shared.tls().is_some();
    let mut session = Session::new(policy(config, &shared.host_name, peer, tls_available, tls), sender_check, tls);
    if wire.send(&session.greeting().wire()).await.is_err() {
        return End::Closed;
    }
    // One timer for the whole session, not one per command.
    let too_long = tokio::time::sleep_until(deadline);
    tokio::pin!(too_long);
    loop {
        let line = tokio::select! {
            line = wire.line(MAX_COMMAND_LINE) => line,
            () = &mut too_long => {
                let _ = wire.send_now(&Reply::new(421, "4.4.2", "session too long; closing").wire()).await;
                return End::TooLong;
            }
        };
        let step = match line {
            Ok(Line::Text(line)) => match command::parse(&line) {
                Ok(cmd) => session.command(cmd),
                Err(reply) => Step::Reply(reply),
            },
            Ok(Line::TooLong) => Step::Reply(Reply::new(500, "5.5.2", "line too long")),
            Err(ReadError::Idle | ReadError::TooSlow) => {
                let _ = wire.send_now(&Reply::new(421, "4.4.2", "idle too long; closing").wire()).await;
                return End::Idle;
            }
            Err(ReadError::Closed) => return End::Closed,
            Err(ReadError::Io(e)) => return End::Failed(e.to_string()),
        };
        let reply = match step {
            Step::Reply(reply) => reply,
            Step::Quit => {
                let _ = wire.send_now(&Reply::new(221, "2.0.0", "bye").wire()).await;
                // TLS ends with its close_notify; plain TCP needs no call of its own, closing the socket ends it.
                if session.is_tls() {
                    wire.shutdown().await;
                }
                return End::Quit;
            }
            Step::StartTls => {
                let Some(acceptor) = shared.tls() else {
                    return End::Failed("STARTTLS without a certificate".into());
                };
                if wire.send_now(&Reply::new(220, "2.0.0", "ready to start TLS").wire()).await.is_err() {
                    return End::Closed;
                }
                match acceptor.accept(wire.into_io()).await {
                    Ok(stream) => {
                        wire = Wire::new(Box::new(stream), g.idle_timeout);
                        session.tls_started();
                        continue;
                    }
                    Err(e) => return End::Failed(format!("TLS handshake failed: {e}")),
                }
            }
            Step::Auth { mechanism, initial } => match credentials(&mut wire, mechanism, initial).await {
                Err(end) => return end,
                Ok(Err(reply)) => reply,
                Ok(Ok((user, password))) => match verify(shared, peer, g, &user, password).await {
                    Ok(login) => session.authenticated(login),
                    Err(Verdict::Refused(reply)) => reply,
                    Err(Verdict::Close(reply, end)) => {
                        let _ = wire.send_now(&reply.wire()).await;
                        return end;
                    }
                },
            },
            Step::Data => {
                if !shared.guard.message_allowed(peer.ip(), g.rate_limit) {
                    shared.app.metrics().count("tidings_gateway_messages_total", "rate_limited");
                    tracing::warn!(%peer, per_minute = g.rate_limit, "gateway: rate limit reached");
                    session.take_envelope();
                    Reply::new(451, "4.7.1", "rate limit reached; try again in a minute")
                } else {
                    if wire
                        .send(&Reply::plain(354, vec!["end data with <CR><LF>.<CR><LF>".into()]).wire())
                        .await
                        .is_err()
                    {
                        return End::Closed;
                    }
                    let mut reader = DataReader::new(config.delivery.max_message_size as usize, g.bare_newlines);
                    let data = match wire.data(&mut reader, g.min_data_rate).await {
                        Ok(data) => data,
                        Err(ReadError::Idle) => return End::Idle,
                        Err(ReadError::TooSlow) => {
                            let _ = wire.send_now(&Reply::new(421, "4.4.2", "data too slow; closing").wire()).await;
                            return End::TooSlow;
                        }
                        Err(ReadError::Closed) => return End::Closed,
                        Err(ReadError::Io(e)) => return End::Failed(e.to_string()),
                    };
                    let envelope = session.take_envelope();
                    let reply = match (data, envelope) {
                        (Ok(message), Some(envelope)) => accept(shared, peer, envelope, message).await,
                        (Err(e), _) => e.reply(),
                        (Ok(_), None) => Reply::new(503, "5.5.1", "no transaction"),
                    };
                    let outcome = if reply.is_positive() { "accepted" } else { "refused" };
                    shared.app.metrics().count("tidings_gateway_messages_total", outcome);
                    reply
                }
            }
        };
        let (reply, closing) = match session.judge(reply) {
            Ok(reply) => (reply, false),
            Err(closing) => (closing, true),
        };
        let sent = if closing { wire.send_now(&reply.wire()).await } else { wire.send(&reply.wire()).await };
        if sent.is_err() {
            return End::Closed;
        }
        if closing {
            return End::TooManyErrors;
        }
    }
}

/// Why an authentication did not succeed: a refusal the session goes on after, or one that ends it.
enum Verdict {
    Refused(Reply),
    Close(Reply, End),
}

/// Checks the credentials, counted against the address's limit before the password is checked.
async fn verify(
    shared: &Shared,
    peer: SocketAddr,
    g: &tidings_core::config::gateway::GatewaySettings,
    user: &str,
    password: String,
) -> Result<tidings_core::submission::session::Login, Verdict> {
    let metrics = shared.app.metrics();
    // Counted before any hash is computed; remembered credentials, and a check joining the same credentials'
    // check under way, are no new guess and are not counted.
    let admit = async || {
        let wait = shared.app.password_checks().wait();
        shared.guard.begin_auth(peer.ip(), g.auth_max_failures, g.auth_lockout, wait).await.map_err(|refusal| {
            tidings_app::Error::Busy(
                match refusal {
                    Refusal::Locked => "too many failed authentications from your address; try again later",
                    Refusal::TooManyAtOnce => "too many authentications at once from your address; try again later",
                }
                .into(),
            )
        })
    };
    match shared.app.verify_device(user, &SecretString::new(password), admit).await {
        Ok((Some(login), attempt)) => {
            if let Some(attempt) = attempt {
                attempt.succeeded();
            }
            metrics.count("tidings_gateway_authentications_total", "ok");
            tracing::info!(%peer, device = %login.username, "gateway authentication");
            Ok(login)
        }
        Ok((None, attempt)) => {
            metrics.count("tidings_gateway_authentications_total", "failed");
            if attempt.is_some_and(|a| a.failed()) {
                tracing::warn!(%peer, lockout = ?g.auth_lockout, "gateway: too many failed authentications; address locked out");
                let reply = Reply::new(421, "4.7.0", "too many failed authentications; try again later");
                return Err(Verdict::Close(reply, End::Locked));
            }
            Err(Verdict::Refused(Reply::new(535, "5.7.8", "authentication credentials invalid")))
        }
        Err(tidings_app::Error::Busy(why)) => {
            metrics.count("tidings_gateway_authentications_total", "refused_busy");
            Err(Verdict::Close(Reply::new(421, "4.7.0", &why), End::Busy))
        }
        Err(e) => {
            tracing::error!(error = %e, "gateway: cannot check credentials");
            Err(Verdict::Refused(Reply::new(454, "4.7.0", "temporary authentication failure")))
        }
    }
}

/// Runs the SASL exchange (`sasl::Exchange` decides) for the user name and password; `Ok(Err(reply))` when
/// the exchange fails, `Err` when the session ends.
async fn credentials(
    wire: &mut Wire,
    mechanism: Mechanism,
    initial: Option<String>,
) -> Result<Result<(String, String), Reply>, End> {
    let (mut exchange, mut next) = sasl::Exchange::start(mechanism, initial.as_deref());
    loop {
        match next {
            sasl::Next::Done { user, password } => return Ok(Ok((user, password))),
            sasl::Next::Refused(reply) => return Ok(Err(reply)),
            sasl::Next::Ask(prompt) => {
                wire.send(&format!("334 {prompt}\r\n")).await.map_err(|_| End::Closed)?;
                next = match wire.line(MAX_COMMAND_LINE * 4).await {
                    Ok(Line::Text(line)) => exchange.answer(&String::from_utf8_lossy(&line)),
                    Ok(Line::TooLong) => return Ok(Err(Reply::new(500, "5.5.6", "authentication answer too long"))),
                    Err(ReadError::Idle | ReadError::TooSlow) => return Err(End::Idle),
                    Err(ReadError::Closed) => return Err(End::Closed),
                    Err(ReadError::Io(e)) => return Err(End::Failed(e.to_string())),
                };
            }
        }
    }
}

/// Applies the sender policy and stores the message durably; the reply says whether it is queued.
async fn accept(shared: &Shared, peer: SocketAddr, envelope: Envelope, message: Vec<u8>) -> Reply {
    let current = shared.config.borrow().clone();
    let config = &current.config;
    let g = &config.gateway;
    // The login_user policy sends from the account's own mailbox: look it up for the decision.
    let own_mailbox = match (&envelope.login, g.sender_policy) {
        (Some(login), SenderPolicy::LoginUser) => match shared.app.mailbox_of(&login.username).await {
            Ok(record) => record.and_then(|r| r.account),
            Err(e) => return Reply::new(451, "4.3.0", &e.to_string()),
        },
        _ => None,
    };
    let senders = Senders {
        sender: config.sender.as_deref(),
        bulk_address: g.bulk_address.as_deref(),
        own_mailbox: own_mailbox.as_deref(),
    };
    let sent = match policy::apply(g.sender_policy, &envelope, senders, message) {
        Ok(sent) => sent,
        Err(refused) => return refused,
    };
    let device = match &envelope.login {
        Some(login) => login.username.clone(),
        None => peer.ip().to_string(),
    };
    let origin = format!("gateway:{device}");
    let raw = RawMessage { mail_from: sent.mail_from, rcpt_to: envelope.rcpt_to, data: sent.data };
    let prepared = match prepare(config, &origin, Submission::Raw(raw), chrono::Utc::now()) {
        Ok(mut p) => {
            p.mailbox_of = sent.mailbox_of;
            p
        }
        Err(tidings_app::Error::Invalid(errors)) => {
            let why: Vec<String> = errors.0.iter().map(|e| format!("{}: {}", e.field, e.message)).collect();
            return Reply::new(550, "5.6.0", &format!("the message cannot be accepted: {}", why.join("; ")));
        }
        Err(e) => return Reply::new(451, "4.3.0", &e.to_string()),
    };
    match shared.committer.commit(prepared).await {
        Ok(id) => {
            tracing::info!(%peer, message_id = id, origin = %origin, "gateway: message queued");
            let accepted = crate::Accepted { device, at: chrono::Utc::now(), id };
            *shared.last.lock().unwrap_or_else(|e| e.into_inner()) = Some(accepted);
            Reply::new(250, "2.0.0", &format!("queued as {id}"))
        }
        Err(e) => {
            tracing::error!(error = %e, "gateway: could not store a message");
            Reply::new(451, "4.3.0", "could not store the message; try again")
        }
    }
}

/// A session over an in-memory stream, against a real application on a temporary data directory: the protocol
/// as the gateway speaks it, without sockets.
#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::{guard::Guard, slots::Slots};
    use std::sync::RwLock;
    use std::time::Duration;
    use tidings_app::{
        App, InitOptions,
        data_dir::DataDir,
        outbox::{Committer, Handoff},
    };
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    /// The server's end of the pipe, counting its writes.
    struct Counted {
        inner: DuplexStream,
        writes: Arc<std::sync::atomic::AtomicUsize>,
    }

    impl tokio::io::AsyncRead for Counted {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
        }
    }

    impl tokio::io::AsyncWrite for Counted {
        fn poll_write(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> std::task::Poll<std::io::Result<usize>> {
            self.writes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
        }
        fn poll_flush(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::pin::Pin::new(&mut self.inner).poll_flush(cx)
        }
        fn poll_shutdown(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
        }
    }

    /// What a test holds while its session runs.
    struct Running {
        client: DuplexStream,
        /// How many writes the server made.
        writes: Arc<std::sync::atomic::AtomicUsize>,
        app: App,
        _config: tokio::sync::watch::Sender<Arc<tidings_app::settings::Current>>,
        _dir: tempfile::TempDir,
    }

    /// A session served over one end of a pipe; the other end, with the application behind the session.
    async fn session(edits: &[(&str, &str)]) -> Running {
        let dir = tempfile::tempdir().unwrap();
        let init = InitOptions { admin_username: "admin".into(), ..Default::default() };
        let app = App::init(DataDir::new(dir.path()), init).await.unwrap().app;
        let edits: Vec<(String, String)> = edits.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        app.update("test", &edits).await.unwrap();
        let current = Arc::new(app.current().await.unwrap());
        let (sender, config) = tokio::sync::watch::channel(current);
        let committer =
            Committer::start(app.clone(), Arc::new(tokio::sync::Notify::new()), Arc::new(Handoff::default()));
        let shared = Arc::new(Shared {
            app: app.clone(),
            config,
            committer,
            guard: Guard::default(),
            tls: RwLock::new(None),
            slots: Arc::new(Slots::default()),
            last: Default::default(),
            host_name: "gateway.test".into(),
        });
        let (client, server) = tokio::io::duplex(1 << 20);
        let writes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let wire = Wire::new(Box::new(Counted { inner: server, writes: writes.clone() }), Duration::from_secs(5));
        tokio::spawn(serve(shared, wire, "127.0.0.1:2525".parse().unwrap(), false));
        Running { client, writes, app, _config: sender, _dir: dir }
    }

    /// What arrives in one read, as text.
    async fn read_once(client: &mut DuplexStream) -> String {
        let mut buf = vec![0; 64 * 1024];
        let n = client.read(&mut buf).await.unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[tokio::test]
    async fn replies_to_pipelined_commands_come_together_and_the_message_is_stored_as_the_sender() {
        let Running { mut client, writes, app, .. } =
            session(&[("sender", "alerts@example.com"), ("gateway.allowed_networks", "127.0.0.1/32")]).await;
        assert!(read_once(&mut client).await.starts_with("220 gateway.test"));
        let before = writes.load(std::sync::atomic::Ordering::Relaxed);
        client
            .write_all(b"EHLO printer\r\nMAIL FROM:<scanner@printers.local>\r\nRCPT TO:<ops@example.com>\r\nDATA\r\n")
            .await
            .unwrap();
        let replies = read_once(&mut client).await;
        let codes: Vec<&str> = replies.lines().map(|l| &l[..4]).filter(|c| c.ends_with(' ')).collect();
        assert_eq!(codes, ["250 ", "250 ", "250 ", "354 "], "{replies:?}");
        assert_eq!(writes.load(std::sync::atomic::Ordering::Relaxed) - before, 1, "the four replies in one write");

        client
            .write_all(b"From: <scanner@printers.local>\r\nSubject: scan\r\n\r\n..dotted\r\n.\r\nQUIT\r\n")
            .await
            .unwrap();
        let end = read_once(&mut client).await;
        assert!(end.starts_with("250 2.0.0 queued as 1"), "{end:?}");
        let stored = String::from_utf8(app.store().message_content(1).await.unwrap().unwrap()).unwrap();
        assert!(stored.contains("From: alerts@example.com\r\nReply-To: <scanner@printers.local>\r\n"), "{stored}");
        assert!(stored.contains("\r\n\r\n.dotted\r\n"), "the dot undone: {stored}");
    }

    #[tokio::test]
    async fn a_message_too_large_is_refused_with_its_reply_and_the_session_goes_on() {
        let Running { mut client, .. } = session(&[
            ("sender", "alerts@example.com"),
            ("gateway.allowed_networks", "127.0.0.1/32"),
            ("delivery.max_message_size", "2048"),
        ])
        .await;
        read_once(&mut client).await;
        client
            .write_all(b"HELO printer\r\nMAIL FROM:<a@printers.local>\r\nRCPT TO:<ops@example.com>\r\nDATA\r\n")
            .await
            .unwrap();
        assert!(read_once(&mut client).await.ends_with("354 end data with <CR><LF>.<CR><LF>\r\n"));
        let line = format!("{}\r\n", "x".repeat(70));
        client.write_all(format!("Subject: big\r\n\r\n{}.\r\nNOOP\r\n", line.repeat(40)).as_bytes()).await.unwrap();
        let replies = read_once(&mut client).await;
        assert!(replies.starts_with("552 5.3.4 message too large\r\n250"), "{replies:?}");
    }
}

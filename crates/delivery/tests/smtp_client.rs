//! The SMTP client against a real SMTP server (aiosmtpd) on loopback: encryption modes, authentication
//! mechanisms, provider failure sequences and scripted trouble.

#![allow(clippy::unwrap_used)] // helpers of tests: a failed step is a failed test

use async_trait::async_trait;
use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};
use tidings_core::{
    config::{Encryption, TlsOptions},
    outbox::{
        RcptResult,
        reply::{Class, Stage},
    },
    secret::SecretString,
};
use tidings_delivery::{
    smtp::{
        Connection, Next, RelayAuth, RelaySettings,
        error::{ErrorKind, SmtpError},
        tls,
    },
    token::{AccessToken, TokenError, TokenSource},
};
use tidings_testkit::SmtpPeer;

fn settings(peer: &SmtpPeer, encryption: Encryption, auth: RelayAuth) -> RelaySettings {
    let options = TlsOptions { ca_file: peer.ca_file.as_ref().map(|p| p.display().to_string()), ..Default::default() };
    RelaySettings {
        host: "127.0.0.1".into(),
        port: peer.port,
        encryption,
        auth,
        tls: tls::client_config(&options).unwrap(),
        verify_certificates: true,
        timeout: Duration::from_secs(10),
        helo_name: "tidings.test".into(),
        api: None,
    }
}

/// A relay of the test's own on loopback, without authentication or a CA of its own.
fn loopback(port: u16, encryption: Encryption) -> RelaySettings {
    RelaySettings {
        host: "127.0.0.1".into(),
        port,
        encryption,
        auth: RelayAuth::None,
        tls: tls::client_config(&TlsOptions::default()).unwrap(),
        verify_certificates: true,
        timeout: Duration::from_secs(5),
        helo_name: "t".into(),
        api: None,
    }
}

/// A relay of the test's own on loopback: it greets with `greeting`, then writes whatever `answer` gives for
/// each line it reads, until `answer` gives `None` or the client stops. Its port, and every line it read.
async fn scripted_relay(
    greeting: &'static [u8],
    mut answer: impl FnMut(&str) -> Option<&'static [u8]> + Send + 'static,
) -> (u16, tokio::task::JoinHandle<Vec<String>>) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        let (read, mut write) = socket.into_split();
        let mut lines = BufReader::new(read).lines();
        write.write_all(greeting).await.unwrap();
        let mut read = Vec::new();
        while let Ok(Some(line)) = lines.next_line().await {
            let reply = answer(&line);
            read.push(line);
            let Some(reply) = reply else { break };
            write.write_all(reply).await.unwrap();
        }
        read
    });
    (port, server)
}

/// Sends to one recipient refused for now (451), one accepted and one unknown (550) to a relay scripted to
/// refuse that message after DATA: each recipient keeps its own result, and the message's refusal is the error.
async fn mixed_recipients_then_a_refused_message(conn: &mut Connection) -> SmtpError {
    let recipients = ["later@example.com".to_owned(), "ok@example.com".to_owned(), "unknown@example.com".to_owned()];
    let tx = conn.send("alerts@example.com", &recipients, MESSAGE).await;
    assert!(matches!(&tx.recipients[0].1, RcptResult::Refused(r) if r.code == 451));
    assert_eq!(tx.recipients[1].1, RcptResult::Accepted);
    assert!(matches!(&tx.recipients[2].1, RcptResult::Refused(r) if r.code == 550));
    let err = tx.result.unwrap_err();
    assert_eq!((err.stage, err.class()), (Stage::Message, Class::Permanent));
    err
}

fn password(user: &str, pass: &str) -> RelayAuth {
    RelayAuth::Password { username: user.into(), password: SecretString::new(pass) }
}

fn oauth(tokens: Arc<dyn TokenSource>) -> RelayAuth {
    RelayAuth::OAuth2 { user: "alerts@example.com".into(), tokens }
}

const MESSAGE: &[u8] =
    b"From: alerts@example.com\r\nTo: ops@example.com\r\nSubject: test\r\n\r\nHello\r\n.leading dot\r\n";

async fn send_one(connection: &mut Connection) {
    let tx = connection.send("alerts@example.com", &["ops@example.com".to_owned()], MESSAGE).await;
    assert_eq!(tx.result.unwrap().code, 250);
}

/// Hands out tokens from a list, counting refreshes.
#[derive(Debug)]
struct Tokens {
    first: String,
    refreshed: Option<String>,
    refreshes: AtomicUsize,
}

impl Tokens {
    fn new(first: &str, refreshed: Option<&str>) -> Arc<Self> {
        Arc::new(Self { first: first.into(), refreshed: refreshed.map(Into::into), refreshes: AtomicUsize::new(0) })
    }
}

#[async_trait]
impl TokenSource for Tokens {
    async fn access_token(&self) -> Result<AccessToken, TokenError> {
        Ok(AccessToken(SecretString::new(self.first.clone())))
    }
    async fn refresh(&self, _rejected: &AccessToken) -> Result<Option<AccessToken>, TokenError> {
        self.refreshes.fetch_add(1, Ordering::SeqCst);
        Ok(self.refreshed.clone().map(|t| AccessToken(SecretString::new(t))))
    }
}

#[tokio::test]
async fn starttls_with_a_private_ca_and_plain_auth() {
    let mut peer = SmtpPeer::start_tls(&[
        "--require-starttls",
        "--user",
        "device",
        "--password",
        "s3cret-pass",
        "--auth-required",
    ]);
    let mut conn =
        Connection::open(&settings(&peer, Encryption::Starttls, password("device", "s3cret-pass"))).await.unwrap();
    send_one(&mut conn).await;
    let got = peer.next_message().await;
    assert_eq!((got["auth_user"].as_str(), got["mail_from"].as_str()), (Some("device"), Some("alerts@example.com")));
    assert!(got["data"].as_str().unwrap().contains("\r\n.leading dot\r\n"), "dot-stuffing undone by the server: {got}");
    conn.quit().await;
}

#[tokio::test]
async fn login_when_plain_is_not_offered_and_a_reused_connection() {
    let mut peer =
        SmtpPeer::start_tls(&["--auth-mechanisms", "LOGIN", "--user", "device", "--password", "pw-for-login"]);
    let mut conn =
        Connection::open(&settings(&peer, Encryption::Starttls, password("device", "pw-for-login"))).await.unwrap();
    for _ in 0..3 {
        send_one(&mut conn).await;
    }
    for _ in 0..3 {
        assert_eq!(peer.next_message().await["auth_user"], "device");
    }
}

#[tokio::test]
async fn implicit_tls() {
    let mut peer = SmtpPeer::start_tls(&["--mode", "tls", "--user", "u", "--password", "implicit-pw"]);
    let mut conn = Connection::open(&settings(&peer, Encryption::Tls, password("u", "implicit-pw"))).await.unwrap();
    send_one(&mut conn).await;
    assert_eq!(peer.next_message().await["auth_user"], "u");
}

#[tokio::test]
async fn a_relay_without_starttls_gets_nothing_in_clear_text() {
    let peer = SmtpPeer::start_tls(&["--no-starttls", "--user", "u", "--password", "never-sent"]);
    let err = Connection::open(&settings(&peer, Encryption::Starttls, password("u", "never-sent"))).await.unwrap_err();
    assert!(matches!(err.kind, ErrorKind::StarttlsUnavailable), "{err}");
    assert_eq!((err.stage, err.class()), (Stage::Starttls, Class::Transient));
    let failure = err.to_failure("127.0.0.1:1");
    assert!(failure.explanation.unwrap().contains("smtp.encryption=tls"));
}

#[tokio::test]
async fn an_untrusted_certificate_is_refused_unless_verification_is_off() {
    let peer = SmtpPeer::start_tls(&["--mode", "tls"]);
    let mut untrusted = settings(&peer, Encryption::Tls, RelayAuth::None);
    untrusted.tls = tls::client_config(&TlsOptions::default()).unwrap();
    let err = Connection::open(&untrusted).await.unwrap_err();
    assert!(matches!(err.kind, ErrorKind::Tls(_)), "{err}");
    assert!(err.to_failure("x").explanation.unwrap().contains("tls.ca_file"));

    let unverified = TlsOptions { verify_certificates: false, ..Default::default() };
    untrusted.tls = tls::client_config(&unverified).unwrap();
    Connection::open(&untrusted).await.unwrap();
}

#[tokio::test]
async fn plain_text_relay_without_auth() {
    let mut peer = SmtpPeer::start(&[]);
    let mut conn = Connection::open(&settings(&peer, Encryption::None, RelayAuth::None)).await.unwrap();
    send_one(&mut conn).await;
    assert_eq!(peer.next_message().await["rcpt_tos"][0], "ops@example.com");
}

#[tokio::test]
async fn xoauth2_with_short_and_long_tokens() {
    let long = "eyJ0eXAiOiJKV1QiLCJub25jZSI6".repeat(40);
    assert!(long.len() > 1000);
    let mut peer = SmtpPeer::start_tls(&["--token", "short-token", "--token", &long]);
    let mut conn = Connection::open(&settings(&peer, Encryption::Starttls, oauth(Tokens::new("short-token", None))))
        .await
        .unwrap();
    send_one(&mut conn).await;
    assert_eq!(peer.next_message().await["auth_user"], "alerts@example.com");
    // The server refuses command lines over 512 octets: only the two-step exchange gets a long token through.
    let mut conn =
        Connection::open(&settings(&peer, Encryption::Starttls, oauth(Tokens::new(&long, None)))).await.unwrap();
    send_one(&mut conn).await;
    assert_eq!(peer.next_message().await["auth_user"], "alerts@example.com");
}

#[tokio::test]
async fn gmail_xoauth2_failure_sequence_carries_the_json_status() {
    let peer = SmtpPeer::start_tls(&["--mode", "tls", "--token", "good", "--gmail-failure"]);
    let tokens = Tokens::new("expired", None);
    let err = Connection::open(&settings(&peer, Encryption::Tls, oauth(tokens.clone()))).await.unwrap_err();
    assert_eq!(err.stage, Stage::Auth);
    assert_eq!(err.class(), Class::AuthFailed);
    assert!(err.xoauth2_status.as_deref().unwrap().contains("\"status\": \"401\""), "{err:?}");
    assert_eq!(err.reply().unwrap().code, 535);
    let failure = err.to_failure("x");
    assert!(failure.explanation.unwrap().contains("status 401"));
    assert!(failure.error.contains("XOAUTH2 status"));
    assert_eq!(tokens.refreshes.load(Ordering::SeqCst), 1, "one refresh was tried");
}

#[tokio::test]
async fn a_rejected_token_is_refreshed_once_and_retried_once() {
    let mut peer = SmtpPeer::start_tls(&["--token", "fresh"]);
    let tokens = Tokens::new("stale", Some("fresh"));
    let mut conn = Connection::open(&settings(&peer, Encryption::Starttls, oauth(tokens.clone()))).await.unwrap();
    send_one(&mut conn).await;
    peer.next_message().await;
    assert_eq!(tokens.refreshes.load(Ordering::SeqCst), 1);

    let still_bad = Tokens::new("stale", Some("also-stale"));
    let err = Connection::open(&settings(&peer, Encryption::Starttls, oauth(still_bad.clone()))).await.unwrap_err();
    assert_eq!((err.class(), still_bad.refreshes.load(Ordering::SeqCst)), (Class::AuthFailed, 1));
}

#[tokio::test]
async fn microsoft_smtp_auth_disabled_is_explained() {
    let peer = SmtpPeer::start_tls(&[
        "--token",
        "t",
        "--fail",
        "auth=535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant.",
    ]);
    let err =
        Connection::open(&settings(&peer, Encryption::Starttls, oauth(Tokens::new("t", None)))).await.unwrap_err();
    let failure = err.to_failure("x");
    assert_eq!(
        (failure.class, failure.reply.as_ref().unwrap().enhanced.as_deref()),
        (Class::AuthFailed, Some("5.7.139"))
    );
    assert!(failure.explanation.unwrap().contains("Authenticated SMTP"));
}

#[tokio::test]
async fn refusals_per_recipient_and_at_the_end_of_data() {
    let mut peer =
        SmtpPeer::start(&["--fail", "rcpt=451 4.3.0 Try again later*1", "--fail", "data=554 5.2.252 SendAsDenied*1"]);
    let mut conn = Connection::open(&settings(&peer, Encryption::None, RelayAuth::None)).await.unwrap();
    let err = mixed_recipients_then_a_refused_message(&mut conn).await;
    assert!(err.to_failure("x").explanation.unwrap().contains("Send As"));
    // The session stays usable.
    let tx = conn.send("alerts@example.com", &["ok@example.com".to_owned()], MESSAGE).await;
    assert_eq!(tx.result.unwrap().code, 250);
    assert_eq!(peer.next_message().await["rcpt_tos"][0], "ok@example.com");
}

#[tokio::test]
async fn a_connection_dropped_during_data_is_a_transient_failure() {
    let peer = SmtpPeer::start(&["--drop-data", "1"]);
    let mut conn = Connection::open(&settings(&peer, Encryption::None, RelayAuth::None)).await.unwrap();
    let err = conn.send("alerts@example.com", &["ops@example.com".to_owned()], MESSAGE).await.result.unwrap_err();
    assert_eq!((err.stage, err.class()), (Stage::Message, Class::Transient), "{err}");
    assert!(err.is_connection_loss());
}

#[tokio::test]
async fn a_closed_port_is_a_transient_connect_failure() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut s = loopback(port, Encryption::None);
    let err = Connection::open(&s).await.unwrap_err();
    assert_eq!((err.stage, err.class()), (Stage::Connect, Class::Transient));
    assert!(err.to_failure(&s.address()).explanation.unwrap().contains("Nothing accepts connections"));
    s.host = "::1".into();
    assert_eq!(s.address(), format!("[::1]:{port}"));
}

/// A relay (or a man in the middle) that sends a reply after its STARTTLS `220` in the same packet: the
/// client must not carry those bytes into the encrypted session (the STARTTLS injection attack).
#[tokio::test]
async fn data_sent_before_the_tls_handshake_is_not_trusted() {
    let (port, server) = scripted_relay(b"220 injector ESMTP\r\n", |line| {
        Some(match line {
            l if l.starts_with("EHLO") => b"250-injector\r\n250 STARTTLS\r\n",
            "STARTTLS" => b"220 2.0.0 Ready to start TLS\r\n250-injected\r\n250 AUTH PLAIN\r\n",
            _ => b"500 unexpected\r\n",
        })
    })
    .await;
    let settings = loopback(port, Encryption::Starttls);
    let err = Connection::open(&settings).await.unwrap_err();
    assert!(matches!(err.kind, ErrorKind::StarttlsInjection), "{err}");
    assert_eq!(err.stage, Stage::Starttls);
    server.abort();
}

/// A relay that offers PIPELINING gets MAIL, RCPT and DATA in one write; refusals of each are still told
/// apart, and the session stays usable after each of them.
#[tokio::test]
async fn a_pipelining_relay_gets_the_envelope_in_one_write_and_refusals_stay_apart() {
    let mut peer = SmtpPeer::start(&[
        "--pipelining",
        "--fail",
        "mail=451 4.3.0 Sender check failed*1",
        "--fail",
        "rcpt=451 4.3.0 Try again later*1",
        "--fail",
        "data=554 5.2.252 SendAsDenied*1",
    ]);
    let mut conn = Connection::open(&settings(&peer, Encryption::None, RelayAuth::None)).await.unwrap();
    let ok = ["ok@example.com".to_owned()];

    let tx = conn.send("alerts@example.com", &ok, MESSAGE).await;
    let err = tx.result.unwrap_err();
    assert_eq!((err.stage, err.class()), (Stage::MailFrom, Class::Transient), "{err}");
    assert!(tx.recipients.is_empty());

    mixed_recipients_then_a_refused_message(&mut conn).await;

    // Every recipient refused: the relay refuses DATA as well, and the recipient's refusal is what counts.
    let tx = conn.send("alerts@example.com", &["unknown@example.com".to_owned()], MESSAGE).await;
    let err = tx.result.unwrap_err();
    assert_eq!((err.stage, err.class()), (Stage::RcptTo, Class::Permanent), "{err}");

    send_one(&mut conn).await;
    let got = peer.next_message().await;
    assert_eq!(
        (got["mail_from"].as_str(), got["rcpt_tos"][0].as_str()),
        (Some("alerts@example.com"), Some("ops@example.com"))
    );
    assert!(got["data"].as_str().unwrap().contains("\r\n.leading dot\r\n"));
}

/// A relay that answers only once it has the whole envelope (which only a pipelining client sends before
/// waiting), and that says `354` although it refused the only recipient: the client ends that empty message
/// with its dot and reports the recipient's refusal.
#[tokio::test]
async fn a_354_after_every_recipient_was_refused_is_ended_with_a_dot() {
    // MAIL and RCPT get no answer of their own: all three come once DATA is there.
    let (port, server) = scripted_relay(b"220 strict ESMTP\r\n", |line| match line {
        l if l.starts_with("EHLO") => Some(b"250-strict\r\n250 PIPELINING\r\n"),
        "DATA" => Some(b"250 2.1.0 OK\r\n550 5.1.1 No such user\r\n354 Go ahead\r\n"),
        "." => Some(b"554 5.5.1 No valid recipients\r\n"),
        "RSET" => Some(b"250 2.0.0 OK\r\n"),
        "QUIT" => None,
        _ => Some(b""),
    })
    .await;
    let settings = loopback(port, Encryption::None);
    let mut conn = Connection::open(&settings).await.unwrap();
    let tx = conn.send("alerts@example.com", &["nobody@example.com".to_owned()], MESSAGE).await;
    let err = tx.result.unwrap_err();
    assert_eq!((err.stage, err.class()), (Stage::RcptTo, Class::Permanent), "{err}");
    assert!(matches!(&tx.recipients[0].1, RcptResult::Refused(r) if r.code == 550));
    conn.quit().await;
    // Everything it read but the greeting, the dot and the goodbyes.
    let envelope: Vec<String> = server
        .await
        .unwrap()
        .into_iter()
        .filter(|l| !l.starts_with("EHLO") && ![".", "RSET", "QUIT"].contains(&l.as_str()))
        .collect();
    assert_eq!(envelope, ["MAIL FROM:<alerts@example.com>", "RCPT TO:<nobody@example.com>", "DATA"].map(String::from));
}

/// Messages sent one after the other: each message's data goes in the same write as the next one's envelope,
/// so a relay that answers the data only once it has read that envelope still gets every message, and each
/// message keeps its own outcome.
#[tokio::test]
async fn each_message_after_the_first_shares_a_write_with_the_one_before() {
    // The relay holds its answer to each message's data until the next envelope's DATA is there, except after
    // the last message. A client that waited for that answer before sending the next envelope would hang.
    let mut dots = 0;
    let (port, server) = scripted_relay(b"220 strict ESMTP\r\n", move |line| match line {
        l if l.starts_with("EHLO") => Some(b"250-strict\r\n250 PIPELINING\r\n"),
        "DATA" => Some(match dots {
            0 => b"250 OK\r\n250 OK\r\n354 go\r\n",
            1 => b"554 5.6.0 first refused\r\n250 OK\r\n250 OK\r\n354 go\r\n",
            _ => b"250 2.0.0 second queued\r\n250 OK\r\n250 OK\r\n354 go\r\n",
        }),
        "." => {
            dots += 1;
            Some(if dots == 3 { b"250 2.0.0 third queued\r\n" } else { b"" })
        }
        "QUIT" => None,
        _ => Some(b""),
    })
    .await;
    let mut conn = Connection::open(&loopback(port, Encryption::None)).await.unwrap();
    let to = ["ops@example.com".to_owned()];
    let next = Next { mail_from: "alerts@example.com", recipients: &to, data: MESSAGE };

    let first = conn.send_before("alerts@example.com", &to, MESSAGE, Some(next)).await;
    let err = first.result.unwrap_err();
    assert_eq!((err.stage, err.class()), (Stage::Message, Class::Permanent), "{err}");
    let second = conn.send_before("alerts@example.com", &to, MESSAGE, Some(next)).await;
    assert_eq!(second.result.unwrap().text, "second queued");
    let third = conn.send_before("alerts@example.com", &to, MESSAGE, None).await;
    assert_eq!(third.result.unwrap().text, "third queued");
    conn.quit().await;

    let commands: Vec<String> = server.await.unwrap().into_iter().filter(|l| l.starts_with("MAIL")).collect();
    assert_eq!(commands.len(), 3, "one envelope per message");
}

/// The same against aiosmtpd: a message refused at the end of its data does not disturb the envelope sent
/// with it, and the following messages arrive whole and in order.
#[tokio::test]
async fn a_real_relay_takes_each_envelope_with_the_data_before_it() {
    let mut peer = SmtpPeer::start(&["--pipelining", "--fail", "data=554 5.6.0 Refused*1"]);
    let mut conn = Connection::open(&settings(&peer, Encryption::None, RelayAuth::None)).await.unwrap();
    let to = ["ops@example.com".to_owned()];
    let bodies: Vec<Vec<u8>> = (1..=3)
        .map(|n| format!("From: alerts@example.com\r\nSubject: {n}\r\n\r\nmessage {n}\r\n").into_bytes())
        .collect();
    let mut outcomes = Vec::new();
    for (i, body) in bodies.iter().enumerate() {
        let next = bodies.get(i + 1).map(|data| Next { mail_from: "alerts@example.com", recipients: &to, data });
        outcomes.push(conn.send_before("alerts@example.com", &to, body, next).await.result.map(|r| r.code));
    }
    assert!(
        matches!(&outcomes[0], Err(e) if e.stage == Stage::Message && e.class() == Class::Permanent),
        "{outcomes:?}"
    );
    assert_eq!((outcomes[1].as_ref().ok(), outcomes[2].as_ref().ok()), (Some(&250), Some(&250)));
    for n in 2..=3 {
        let got = peer.next_message().await;
        assert!(got["data"].as_str().unwrap().contains(&format!("message {n}")), "{got}");
    }
}

/// A relay that closes the session after taking a message, with the next envelope already sent: the next
/// message fails as a connection loss before any recipient was answered, which is what lets the engine send
/// it again over a fresh connection without counting an attempt.
#[tokio::test]
async fn a_connection_lost_with_an_envelope_sent_ahead_is_a_loss_before_any_recipient() {
    let (port, server) = scripted_relay(b"220 brief ESMTP\r\n", |line| match line {
        l if l.starts_with("EHLO") => Some(b"250-brief\r\n250 PIPELINING\r\n"),
        "DATA" => Some(b"250 OK\r\n250 OK\r\n354 go\r\n"),
        "." => Some(b"250 2.0.0 queued\r\n"),
        l if l.starts_with("MAIL") && l.contains("second") => None,
        _ => Some(b""),
    })
    .await;
    let mut conn = Connection::open(&loopback(port, Encryption::None)).await.unwrap();
    let to = ["ops@example.com".to_owned()];
    let next = Next { mail_from: "second@example.com", recipients: &to, data: MESSAGE };

    let first = conn.send_before("first@example.com", &to, MESSAGE, Some(next)).await;
    assert_eq!(first.result.unwrap().code, 250);
    let second = conn.send_before("second@example.com", &to, MESSAGE, None).await;
    let err = second.result.unwrap_err();
    assert!(err.is_connection_loss(), "{err}");
    assert_eq!(err.stage, Stage::MailFrom);
    assert!(second.recipients.is_empty());
    server.await.unwrap();
}

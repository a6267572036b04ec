//! The gateway under pressure and against an attacker: listeners that survive every change of the settings and
//! report what could not start, authentication attempts counted before the password is checked however many
//! arrive at once, connection slots per address, and refusals at `RCPT` of what could not be stored.

#![allow(clippy::unwrap_used)] // helpers of tests: a failed step is a failed test

mod support;

use base64::Engine;
use std::time::Duration;
use support::{Tidings, browser, eventually, relay, sign_in};
use tidings_core::{account::Role, secret::SecretString};
use tidings_testkit::SmtpPeer;
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::TcpStream,
};

const PASSWORD: &str = "scanner-password-3f";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A plain SMTP client that reads whole (multi-line) replies.
struct Client {
    stream: BufReader<TcpStream>,
}

impl Client {
    async fn connect(port: u16) -> (Self, u16, String) {
        let stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let mut client = Self { stream: BufReader::new(stream) };
        let (code, text) = client.reply().await;
        (client, code, text)
    }

    /// The next reply; `(0, "")` when the server closed the connection.
    async fn reply(&mut self) -> (u16, String) {
        let mut text = String::new();
        loop {
            let mut line = String::new();
            if self.stream.read_line(&mut line).await.unwrap_or(0) == 0 {
                return (0, text);
            }
            text.push_str(&line);
            if line.as_bytes().get(3) != Some(&b'-') {
                return (line[..3].parse().unwrap(), text);
            }
        }
    }

    async fn send(&mut self, line: &str) -> (u16, String) {
        if self.stream.get_mut().write_all(format!("{line}\r\n").as_bytes()).await.is_err() {
            return (0, String::new());
        }
        self.reply().await
    }

    async fn auth(&mut self, user: &str, password: &str) -> (u16, String) {
        let blob = base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"));
        self.send(&format!("AUTH PLAIN {blob}")).await
    }
}

struct Gateway {
    tidings: Tidings,
    port: u16,
}

/// Tidings with the gateway on a plain port, AUTH allowed without TLS, one device account.
async fn gateway(peer: &SmtpPeer, extra: &[(&str, &str)]) -> Gateway {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut settings = vec![("gateway.listen", listen.as_str()), ("gateway.allow_plaintext_auth", "true")];
    settings.extend_from_slice(extra);
    let tidings = Tidings::start(relay(peer, &settings)).await;
    tidings
        .app
        .create_device("test", "scanner", &SecretString::new(PASSWORD), &["scanner@printers.example.com".into()])
        .await
        .unwrap();
    eventually(&format!("the gateway never listened on {port}"), Duration::from_secs(10), async || {
        std::net::TcpStream::connect(("127.0.0.1", port)).map(drop).map_err(|e| e.to_string())
    })
    .await;
    Gateway { tidings, port }
}

fn write_cert(dir: &std::path::Path, name: &str) -> (String, String) {
    let generated = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let (cert, key) = (dir.join(format!("{name}.pem")), dir.join(format!("{name}.key")));
    std::fs::write(&cert, generated.cert.pem()).unwrap();
    std::fs::write(&key, generated.key_pair.serialize_pem()).unwrap();
    (cert.display().to_string(), key.display().to_string())
}

#[tokio::test]
async fn changing_the_settings_never_takes_a_listener_down_and_one_that_cannot_start_is_reported() {
    let peer = SmtpPeer::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = write_cert(dir.path(), "first");
    let gw = gateway(&peer, &[("gateway.cert_file", &cert), ("gateway.key_file", &key)]).await;
    // A session under way, held open through every change.
    let (mut held, code, _) = Client::connect(gw.port).await;
    assert_eq!(code, 220);
    assert_eq!(held.send("EHLO held").await.0, 250);

    let (cert2, key2) = write_cert(dir.path(), "second");
    let tls_port = free_port();
    let tls_listen = format!("127.0.0.1:{tls_port}");
    let changes: [&[(&str, &str)]; 4] = [
        &[("gateway.max_connections", "41")],
        &[("gateway.cert_file", &cert2), ("gateway.key_file", &key2)],
        &[("gateway.tls_listen", &tls_listen)],
        &[("gateway.max_connections", "42"), ("gateway.idle_timeout", "4m")],
    ];
    for change in changes {
        gw.tidings.reconfigure(change).await;
        for _ in 0..3 {
            let (mut client, code, text) = Client::connect(gw.port).await;
            assert_eq!(code, 220, "after {change:?} the plain listener answers: {text}");
            assert_eq!(client.send("QUIT").await.0, 221);
        }
        let (status, ready) = gw.tidings.request(reqwest::Method::GET, "/readyz", None, None).await;
        assert_eq!(status, 200, "after {change:?}: {ready}");
    }
    assert_eq!(held.send("NOOP").await.0, 250, "the session under way survived every change");
    TcpStream::connect(("127.0.0.1", tls_port)).await.expect("the implicit-TLS listener listens");

    // A listener whose port is taken: not ready, said in the metrics, the other listener unharmed.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_address = taken.local_addr().unwrap().to_string();
    gw.tidings.reconfigure(&[("gateway.tls_listen", &taken_address)]).await;
    let (status, ready) = gw.tidings.request(reqwest::Method::GET, "/readyz", None, None).await;
    assert_eq!(status, 503, "{ready}");
    let reason = ready["reason"].as_str().unwrap();
    assert!(
        reason.contains(&format!("cannot listen on {taken_address}")) && reason.contains("gateway.tls_listen"),
        "{reason}"
    );
    let listeners = ready["gateway"]["listeners"].as_array().unwrap();
    assert!(listeners.iter().any(|l| l["address"] == taken_address && l["listening"] == false), "{ready}");
    let metrics = gw.tidings.client.get(format!("{}/metrics", gw.tidings.base)).bearer_auth(&gw.tidings.token);
    let metrics = metrics.send().await.unwrap().text().await.unwrap();
    assert!(
        metrics.contains(&format!("tidings_gateway_listener_up{{address=\"{taken_address}\",tls=\"implicit\"}} 0")),
        "{metrics}"
    );
    assert!(
        metrics
            .contains(&format!("tidings_gateway_listener_up{{address=\"127.0.0.1:{}\",tls=\"starttls\"}} 1", gw.port))
    );
    assert_eq!(Client::connect(gw.port).await.1, 220);
    // Every page of the web interface says so.
    let web_password = "web-password-for-the-test-1";
    gw.tidings.app.create_account("test", "viewer", &SecretString::new(web_password), Role::Viewer).await.unwrap();
    let browser = browser();
    sign_in(&gw.tidings, &browser, "viewer", web_password).await;
    let page = browser.get(format!("{}/outbox", gw.tidings.base)).send().await.unwrap().text().await.unwrap();
    let banner = page.split("class=\"banner bad\"").nth(1).unwrap_or_else(|| panic!("no banner: {page}"));
    assert!(banner.contains("SMTP gateway") && banner.contains(&taken_address), "{banner}");
    // Freed, the port is taken up again without another change.
    drop(taken);
    eventually("the freed port was never listened on", Duration::from_secs(10), async || {
        let (status, ready) = gw.tidings.request(reqwest::Method::GET, "/readyz", None, None).await;
        if status == 200 { Ok(()) } else { Err(ready.to_string()) }
    })
    .await;

    // A broken certificate leaves the previous one in force, and says so.
    std::fs::write(&cert2, "not a certificate").unwrap();
    eventually("the broken certificate was never reported", Duration::from_secs(10), async || {
        let (_, ready) = gw.tidings.request(reqwest::Method::GET, "/readyz", None, None).await;
        let error = ready["gateway"]["certificate_error"].as_str().unwrap_or_default().to_owned();
        if error.contains("previous certificate stays in use") { Ok(()) } else { Err(ready.to_string()) }
    })
    .await;
    let (status, ready) = gw.tidings.request(reqwest::Method::GET, "/readyz", None, None).await;
    assert_eq!(
        (status.as_u16(), &ready["gateway"]["certificate_in_force"]),
        (200, &serde_json::json!(true)),
        "{ready}"
    );
    let (mut client, _, _) = Client::connect(gw.port).await;
    assert!(client.send("EHLO dev").await.1.contains("STARTTLS"), "STARTTLS still offered with the previous one");
    gw.tidings.stop().await;
}

/// A gateway that lets 100 sessions in from one address, locking it after 4 failed authentications.
async fn crowded_gateway(peer: &SmtpPeer) -> Gateway {
    let limits = [
        ("gateway.auth_max_failures", "4"),
        ("gateway.max_connections", "100"),
        ("gateway.max_connections_per_address", "100"),
    ];
    gateway(peer, &limits).await
}

/// `n` sessions at once, session `i` authenticating as the scanner with `password(i)`: each AUTH reply's code,
/// or the greeting's when it was not 220.
async fn authenticate_at_once(port: u16, n: usize, password: impl Fn(usize) -> String) -> Vec<u16> {
    let sessions: Vec<_> = (0..n)
        .map(|i| {
            let password = password(i);
            tokio::spawn(async move {
                let (mut c, greeting, _) = Client::connect(port).await;
                if greeting != 220 {
                    return greeting;
                }
                c.send("EHLO device").await;
                c.auth("scanner", &password).await.0
            })
        })
        .collect();
    let mut codes = Vec::with_capacity(n);
    for session in sessions {
        codes.push(session.await.unwrap());
    }
    codes
}

#[tokio::test]
async fn concurrent_wrong_passwords_get_no_more_guesses_than_the_limit() {
    let peer = SmtpPeer::start(&[]);
    let gw = crowded_gateway(&peer).await;
    let checks = gw.tidings.app.password_checks();
    let before = checks.hashes();
    // 48 sessions, each with its own wrong password, all at once.
    let codes = authenticate_at_once(gw.port, 48, |n| format!("guess-{n}")).await;
    let refused = codes.iter().filter(|c| **c == 535).count();
    let closed = codes.iter().filter(|c| **c == 421).count();
    assert!(refused <= 3 && refused + closed == 48, "at most 4 guesses, the 4th locking: {codes:?}");
    assert!(checks.hashes() - before <= 4, "{} hashes for 48 attempts", checks.hashes() - before);
    // Locked out: even the right password is not checked.
    let (mut c, code, text) = Client::connect(gw.port).await;
    assert_eq!(code, 421, "{text}");
    assert_eq!(c.auth("scanner", PASSWORD).await.0, 0, "closed");
    gw.tidings.stop().await;
}

#[tokio::test]
async fn forty_devices_with_the_right_password_at_once_cost_one_hash() {
    let peer = SmtpPeer::start(&[]);
    let gw = crowded_gateway(&peer).await;
    let before = gw.tidings.app.password_checks().hashes();
    let codes = authenticate_at_once(gw.port, 40, |_| PASSWORD.to_owned()).await;
    assert!(codes.iter().all(|c| *c == 235), "{codes:?}");
    assert_eq!(gw.tidings.app.password_checks().hashes() - before, 1, "one hash for forty identical logins");
    gw.tidings.stop().await;
}

#[tokio::test]
async fn one_address_cannot_take_every_slot_and_a_session_of_errors_is_closed() {
    let peer = SmtpPeer::start(&[]);
    let gw = gateway(&peer, &[("gateway.max_connections_per_address", "2"), ("gateway.max_errors", "3")]).await;
    let (_a, a, _) = Client::connect(gw.port).await;
    let (_b, b, _) = Client::connect(gw.port).await;
    let (_, c, text) = Client::connect(gw.port).await;
    assert_eq!((a, b, c), (220, 220, 421), "{text}");
    assert!(text.contains("from your address"), "{text}");
    drop((_a, _b));

    let mut client = eventually("a slot was never given back", Duration::from_secs(5), async || {
        let (client, code, text) = Client::connect(gw.port).await;
        if code == 220 { Ok(client) } else { Err(text) }
    })
    .await;
    assert_eq!(client.send("BOGUS").await.0, 500);
    assert_eq!(client.send("MAIL FROM:<x@y.example>").await.0, 503);
    let (code, text) = client.send("ALSO BOGUS").await;
    assert_eq!(code, 421, "the third refusal closes: {text}");
    assert_eq!(client.send("NOOP").await.0, 0, "closed");
    gw.tidings.stop().await;
}

#[tokio::test]
async fn what_could_not_be_stored_is_refused_at_rcpt_and_a_nul_says_so() {
    let peer = SmtpPeer::start(&[]);
    let gw = gateway(&peer, &[("gateway.allowed_networks", "127.0.0.1/32")]).await;
    let (mut c, _, _) = Client::connect(gw.port).await;
    c.send("EHLO printer").await;
    assert_eq!(c.send("MAIL FROM:<printer@printers.example.com>").await.0, 250);
    for bad in ["<x@other.org@dest.org>", "<.x@dest.org>", "<x..y@dest.org>"] {
        let (code, text) = c.send(&format!("RCPT TO:{bad}")).await;
        assert!(code == 501 && text.contains("5.1.3") && text.contains("not valid"), "{bad}: {code} {text}");
    }
    assert_eq!(c.send("RCPT TO:<ops@example.com> NOTIFY=SUCCESS").await.0, 555);
    assert_eq!(c.send("RCPT TO:<ops@example.com>").await.0, 250);
    assert_eq!(c.send("DATA").await.0, 354);
    let (code, text) = c.send("Subject: scan\r\n\r\nbefore\0after\r\n.").await;
    assert_eq!(code, 550, "{text}");
    assert!(text.contains("NUL") && !text.contains("configuration"), "{text}");
    gw.tidings.stop().await;
}

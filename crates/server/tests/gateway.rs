//! The SMTP submission gateway driven by a real client (Python's smtplib, `tests/peers/smtp_client.py`):
//! STARTTLS and implicit TLS, AUTH, the sender policies end to end to a real upstream server with XOAUTH2,
//! listed networks, no open relay, pipelining, the size limit, bare newlines and lockout.

#![allow(clippy::unwrap_used)] // helpers of tests: a failed step is a failed test

mod support;

use serde_json::{Value, json};
use std::process::Command;
use support::{Tidings, relay};
use tidings_core::secret::SecretString;
use tidings_testkit::{SmtpPeer, python, repo_root};

const DEVICE_PASSWORD: &str = "scanner-password-3f";

struct Gateway {
    tidings: Tidings,
    port: u16,
    tls_port: u16,
    ca: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Tidings delivering to `peer` with XOAUTH2 (a static token the peer accepts), the gateway on two ports.
async fn gateway(peer: &SmtpPeer, extra: &[(&str, &str)]) -> Gateway {
    let dir = tempfile::tempdir().unwrap();
    let generated = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let (cert, key, ca) = (dir.path().join("cert.pem"), dir.path().join("key.pem"), dir.path().join("ca.pem"));
    std::fs::write(&cert, generated.cert.pem()).unwrap();
    std::fs::write(&key, generated.key_pair.serialize_pem()).unwrap();
    std::fs::write(&ca, generated.cert.pem()).unwrap();
    let (port, tls_port) = (free_port(), free_port());
    let (listen, tls_listen) = (format!("127.0.0.1:{port}"), format!("127.0.0.1:{tls_port}"));
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    let mut settings = vec![
        ("smtp.auth", "oauth2"),
        ("smtp.allow_plaintext_auth", "true"),
        ("oauth.client_id", "client"),
        ("oauth.token_endpoint", "http://127.0.0.1:9/token"),
        ("oauth.static_access_token", "upstream-token"),
        ("gateway.listen", &listen),
        ("gateway.tls_listen", &tls_listen),
        ("gateway.cert_file", &cert),
        ("gateway.key_file", &key),
        ("gateway.auth_max_failures", "3"),
    ];
    settings.extend_from_slice(extra);
    let tidings = Tidings::start(relay(peer, &settings)).await;
    tidings
        .app
        .create_device("test", "scanner", &SecretString::new(DEVICE_PASSWORD), &["scanner@printers.example.com".into()])
        .await
        .unwrap();
    // Wait until the gateway answers.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "the gateway never listened on {port}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    Gateway { tidings, port, tls_port, ca, _dir: dir }
}

impl Gateway {
    /// Runs smtplib through the steps; one JSON answer a step (plus a first `before_tls` line with STARTTLS).
    async fn client(&self, tls: &str, steps: Value) -> Vec<Value> {
        let port = if tls == "implicit" { self.tls_port } else { self.port };
        let scenario = json!({ "host": "127.0.0.1", "port": port, "tls": tls, "ca": self.ca, "steps": steps });
        let file = self._dir.path().join(format!("scenario-{}.json", rand_suffix()));
        std::fs::write(&file, scenario.to_string()).unwrap();
        let out = tokio::task::spawn_blocking(move || {
            Command::new(python()).arg(repo_root().join("tests/peers/smtp_client.py")).arg(file).output().unwrap()
        })
        .await
        .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
}

fn scan(from: &str) -> String {
    format!("From: Scanner 3F <{from}>\nTo: ops@example.com\nSubject: Scan to email\n\nscanned page\n")
}

#[tokio::test]
async fn a_device_sends_over_starttls_and_the_message_goes_upstream_as_the_fixed_sender_with_xoauth2() {
    let mut peer = SmtpPeer::start(&["--token", "upstream-token"]);
    let gw = gateway(&peer, &[]).await;
    let answers = gw
        .client(
            "starttls",
            json!([
                {"features": true},
                {"login": ["scanner", "wrong-password-1"]},
                {"login": ["scanner", DEVICE_PASSWORD]},
                {"send": {"from": "scanner@printers.example.com", "to": ["ops@example.com"], "data": scan("scanner@printers.example.com")}},
            ]),
        )
        .await;
    let before: Vec<&str> = answers[0]["before_tls"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert!(before.contains(&"starttls") && !before.contains(&"auth"), "AUTH is offered only after TLS: {before:?}");
    let after = answers[1]["features"].as_array().unwrap();
    for keyword in ["auth", "size", "pipelining", "8bitmime", "enhancedstatuscodes"] {
        assert!(after.iter().any(|f| f == keyword), "{keyword} missing from {after:?}");
    }
    assert_eq!(
        (answers[2]["code"].as_i64(), answers[2]["text"].as_str().map(|t| t.starts_with("5.7.8"))),
        (Some(535), Some(true)),
        "{}",
        answers[2]
    );
    assert_eq!(answers[3]["code"], 235);
    assert_eq!(answers[4]["ok"], true, "{}", answers[4]);

    let got = peer.next_message().await;
    assert_eq!(got["mail_from"], "alerts@example.com", "the envelope is the configured sender");
    assert_eq!(got["auth_user"], "alerts@example.com", "upstream with XOAUTH2 as the relay account");
    let data = got["data"].as_str().unwrap();
    assert!(
        data.contains("\r\nFrom: alerts@example.com\r\nReply-To: Scanner 3F <scanner@printers.example.com>\r\n"),
        "{data}"
    );
    assert!(data.contains("Message-ID: <") && data.contains("Date: ") && data.contains("scanned page"), "{data}");
    let (_, listed) = gw.tidings.get("/api/v1/messages").await;
    assert_eq!(listed["messages"][0]["origin"], "gateway:scanner");
    gw.tidings.stop().await;
}

#[tokio::test]
async fn implicit_tls_and_the_allow_user_policy() {
    let mut peer = SmtpPeer::start(&["--token", "upstream-token"]);
    let gw = gateway(&peer, &[("gateway.sender_policy", "allow_user")]).await;
    let answers = gw
        .client(
            "implicit",
            json!([
                {"login": ["scanner", DEVICE_PASSWORD]},
                {"send": {"from": "boss@example.com", "to": ["ops@example.com"], "data": scan("boss@example.com")}},
                {"raw": "RSET"},
                {"send": {"from": "scanner@printers.example.com", "to": ["ops@example.com"], "data": scan("boss@example.com")}},
                {"send": {"from": "scanner@printers.example.com", "to": ["ops@example.com"], "data": scan("scanner@printers.example.com")}},
            ]),
        )
        .await;
    assert_eq!(answers[0]["code"], 235);
    assert_eq!(
        (answers[1]["code"].as_i64(), answers[1]["error"].as_str()),
        (Some(550), Some("SMTPSenderRefused")),
        "{}",
        answers[1]
    );
    assert!(answers[1]["text"].as_str().unwrap().starts_with("5.7.1"));
    assert_eq!(answers[3]["code"], 550, "a From header the account may not use: {}", answers[3]);
    assert_eq!(answers[4]["ok"], true, "{}", answers[4]);
    let got = peer.next_message().await;
    assert_eq!(got["mail_from"], "scanner@printers.example.com");
    assert!(
        got["data"].as_str().unwrap().contains("From: Scanner 3F <scanner@printers.example.com>"),
        "the device's From is kept"
    );
    gw.tidings.stop().await;
}

#[tokio::test]
async fn listed_networks_send_without_authentication_and_nobody_else_relays() {
    let mut peer = SmtpPeer::start(&["--token", "upstream-token"]);
    let gw =
        gateway(&peer, &[("gateway.allowed_networks", "127.0.0.1/32"), ("gateway.recipient_domains", "example.com")])
            .await;
    let answers = gw
        .client(
            "none",
            json!([
                {"send": {"from": "printer@printers.example.com", "to": ["ops@example.com"], "data": scan("printer@printers.example.com")}},
                {"send": {"from": "printer@printers.example.com", "to": ["someone@elsewhere.example.org"], "data": "Subject: x\n\nx\n"}},
            ]),
        )
        .await;
    assert_eq!(answers[0]["ok"], true, "{}", answers[0]);
    assert_eq!(answers[1]["code"], 550, "an unlisted recipient domain: {}", answers[1]);
    peer.next_message().await;

    // Outside the listed networks: authentication first, or nothing.
    gw.tidings.reconfigure(&[("gateway.allowed_networks", "::1/128")]).await;
    let answers = gw
        .client("none", json!([{"send": {"from": "x@printers.example.com", "to": ["ops@example.com"], "data": "Subject: x\n\nx\n"}}]))
        .await;
    assert_eq!(
        (answers[0]["code"].as_i64(), answers[0]["error"].as_str()),
        (Some(530), Some("SMTPSenderRefused")),
        "{}",
        answers[0]
    );
    let answers = gw.client("none", json!([{"raw": "AUTH PLAIN AHNjYW5uZXIAeA=="}])).await;
    assert_eq!(answers[0]["code"], 538, "no AUTH in clear text: {}", answers[0]);
    gw.tidings.stop().await;
}

#[tokio::test]
async fn pipelining_limits_bare_newlines_and_lockout() {
    let mut peer = SmtpPeer::start(&["--token", "upstream-token"]);
    let gw =
        gateway(&peer, &[("gateway.allowed_networks", "127.0.0.1/32"), ("delivery.max_message_size", "2048")]).await;
    let big = "x".repeat(100);
    let big_body: String = std::iter::repeat_n(format!("{big}\r\n"), 30).collect();
    let answers = gw
        .client(
            "none",
            json!([
                // Pipelined: MAIL, RCPT, DATA in one write; then the message.
                {"raw_bytes": "MAIL FROM:<p@printers.example.com>\r\nRCPT TO:<ops@example.com>\r\nDATA\r\n", "replies": 3},
                {"raw_bytes": "Subject: pipelined\r\n\r\nbody\r\n.\r\n", "replies": 1},
                {"raw": "MAIL FROM:<p@printers.example.com> SIZE=4096"},
                {"raw_bytes": format!("MAIL FROM:<p@printers.example.com>\r\nRCPT TO:<ops@example.com>\r\nDATA\r\nSubject: big\r\n\r\n{big_body}.\r\n"), "replies": 4},
                {"raw_bytes": "MAIL FROM:<p@printers.example.com>\r\nRCPT TO:<ops@example.com>\r\nDATA\r\nSubject: smuggle\r\n\r\na\n.\nMAIL FROM:<evil@x.example.com>\n.\r\nstill the message\r\n.\r\n", "replies": 4},
                {"raw": "VRFY postmaster"},
                {"raw": "NOOP"},
            ]),
        )
        .await;
    let codes = |a: &Value| {
        a["replies"]
            .as_array()
            .unwrap_or_else(|| panic!("{answers:?}"))
            .iter()
            .map(|r| r[0].as_i64().unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(codes(&answers[0]), [250, 250, 354]);
    assert_eq!(codes(&answers[1]), [250]);
    assert_eq!(answers[2]["code"], 552, "SIZE over the limit: {}", answers[2]);
    assert_eq!(codes(&answers[3]), [250, 250, 354, 552], "{}", answers[3]);
    assert_eq!(codes(&answers[4]), [250, 250, 354, 550], "bare LF refused, nothing smuggled: {}", answers[4]);
    assert_eq!(answers[5]["code"], 252);
    assert_eq!(answers[6]["code"], 250, "the session goes on after refusals");
    let got = peer.next_message().await;
    assert!(got["data"].as_str().unwrap().contains("Subject: pipelined"));
    assert!(peer.received_now().is_empty(), "only the pipelined message was accepted");

    // Three failed authentications lock the address out.
    let answers = gw
        .client(
            "starttls",
            json!([
                {"login": ["scanner", "bad-password-1"]},
                {"login": ["scanner", "bad-password-2"]},
            ]),
        )
        .await;
    // smtplib tries PLAIN then LOGIN for each login(): the second call meets the lockout.
    assert_eq!(answers[1]["code"], 535, "{answers:?}");
    assert!(answers[2]["code"] == 421 || answers[2]["error"] == "SMTPServerDisconnected", "{answers:?}");
    let answers = gw.client("none", json!([{"raw": "NOOP"}])).await;
    assert_eq!(
        (answers[0]["error"].as_str(), answers[0]["code"].as_i64()),
        (Some("SMTPConnectError"), Some(421)),
        "a locked-out address is turned away: {answers:?}"
    );
    gw.tidings.stop().await;
}

/// swaks (Debian), as an administrator would test the gateway by hand: STARTTLS and implicit TLS with AUTH.
#[tokio::test]
async fn swaks_sends_over_starttls_and_implicit_tls() {
    assert!(std::path::Path::new("/usr/bin/swaks").exists(), "swaks is missing: run ./scripts/test, which installs it");
    let mut peer = SmtpPeer::start(&["--token", "upstream-token"]);
    let gw = gateway(&peer, &[]).await;
    for (mode, port) in [("--tls", gw.port), ("--tls-on-connect", gw.tls_port)] {
        let port = port.to_string();
        let out = tokio::task::spawn_blocking(move || {
            Command::new("swaks")
                .args(["--server", "127.0.0.1", "--port", &port, mode, "--auth", "LOGIN"])
                .args(["--auth-user", "scanner", "--auth-password", DEVICE_PASSWORD])
                .args(["--from", "scanner@printers.example.com", "--to", "ops@example.com"])
                .args(["--header", &format!("Subject: swaks {mode}"), "--timeout", "20"])
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        let transcript = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "swaks {mode} failed:\n{transcript}\n{}", String::from_utf8_lossy(&out.stderr));
        assert!(transcript.contains("<~  250 2.0.0 queued as"), "{transcript}");
        let got = peer.next_message().await;
        assert!(got["data"].as_str().unwrap().contains(&format!("Subject: swaks {mode}")));
    }
    gw.tidings.stop().await;
}

#[tokio::test]
async fn connection_limit_rate_limit_and_idle_timeout_are_enforced_and_counted() {
    use tokio::io::AsyncBufReadExt;
    let mut peer = SmtpPeer::start(&["--token", "upstream-token"]);
    let gw = gateway(
        &peer,
        &[
            ("gateway.allowed_networks", "127.0.0.1/32"),
            ("gateway.rate_limit", "2"),
            ("gateway.max_connections", "1"),
            ("gateway.idle_timeout", "3s"),
        ],
    )
    .await;
    let message = |i: u32| json!({"send": {"from": "p@printers.example.com", "to": ["ops@example.com"], "data": format!("Subject: rate {i}\n\nx\n")}});
    let answers = gw.client("none", json!([message(1), message(2), message(3)])).await;
    assert_eq!((answers[0]["ok"].as_bool(), answers[1]["ok"].as_bool()), (Some(true), Some(true)), "{answers:?}");
    assert_eq!(answers[2]["code"], 451, "the third message in a minute: {answers:?}");
    assert!(answers[2]["text"].as_str().unwrap().starts_with("4.7.1"));
    peer.next_message().await;
    peer.next_message().await;

    // One connection held open: the next is turned away; the held one is closed when it stays silent.
    let held = tokio::net::TcpStream::connect(("127.0.0.1", gw.port)).await.unwrap();
    let mut held = tokio::io::BufReader::new(held);
    let mut greeting = String::new();
    held.read_line(&mut greeting).await.unwrap();
    assert!(greeting.starts_with("220 "), "{greeting}");
    let answers = gw.client("none", json!([])).await;
    assert_eq!(
        (answers[0]["error"].as_str(), answers[0]["code"].as_i64()),
        (Some("SMTPConnectError"), Some(421)),
        "{answers:?}"
    );
    let mut goodbye = String::new();
    held.read_line(&mut goodbye).await.unwrap();
    assert!(goodbye.starts_with("421 4.4.2"), "the idle client is told and disconnected: {goodbye}");

    let metrics = gw
        .tidings
        .client
        .get(format!("{}/metrics", gw.tidings.base))
        .bearer_auth(&gw.tidings.viewer)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "tidings_gateway_messages_total{outcome=\"accepted\"} 2",
        "tidings_gateway_messages_total{outcome=\"rate_limited\"} 1",
        "tidings_gateway_sessions_total{outcome=\"refused_busy\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} not in\n{metrics}");
    }
    gw.tidings.stop().await;
}

//! The SMTP submission gateway driven by real clients (Python's smtplib, `tests/peers/smtp_client.py`; swaks;
//! Postfix's smtp-source for load): STARTTLS and implicit TLS, AUTH, the sender policies end to end to a real
//! upstream server with XOAUTH2 (login_user with each account's own token from the provider's fake), listed
//! networks, no open relay, pipelining, the size limit, bare newlines, lockout and the limits.

#![allow(clippy::unwrap_used)] // helpers of tests: a failed step is a failed test

mod support;

use serde_json::{Value, json};
use std::{process::Command, time::Duration};
use support::{Tidings, eventually, relay};
use tidings_app::authorization::Owner;
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
    eventually(&format!("the gateway never listened on {port}"), Duration::from_secs(10), async || {
        std::net::TcpStream::connect(("127.0.0.1", port)).map(drop).map_err(|e| e.to_string())
    })
    .await;
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

/// A browser for the "My mailbox" page: keeps cookies, follows no redirects by itself.
struct Browser {
    client: reqwest::Client,
    base: String,
}

impl Browser {
    fn new(base: &str) -> Self {
        let client =
            reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Self { client, base: base.to_owned() }
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let r = self.client.get(format!("{}{path}", self.base)).send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    /// Posts a form with the CSRF token of `page`; returns the status, the Location header and the body.
    async fn post(&self, path: &str, page: &str, fields: &[(&str, &str)]) -> (u16, Option<String>, String) {
        let csrf = page.split("name=\"csrf\" value=\"").nth(1).and_then(|r| r.split('"').next()).unwrap().to_owned();
        let mut form: Vec<(&str, &str)> = vec![("csrf", &csrf)];
        form.extend_from_slice(fields);
        let r = self.client.post(format!("{}{path}", self.base)).form(&form).send().await.unwrap();
        let location = r.headers().get("location").map(|l| l.to_str().unwrap().to_owned());
        (r.status().as_u16(), location, r.text().await.unwrap())
    }
}

#[tokio::test]
async fn the_login_user_policy_sends_from_each_accounts_own_mailbox_with_its_own_token() {
    const CLIENT: &str = "6731de76-14a6-49ae-97bc-6eba6914391e";
    let fake = tidings_testkit::OAuthFake::start(3600, &[]);
    // The relay accepts only the access tokens the provider issued: the relay account's static token is not
    // one, so a delivery proves the device account's own token was used.
    let mut peer = SmtpPeer::start(&["--token-file", fake.access_tokens.to_str().unwrap()]);
    let token_endpoint = fake.token_endpoint("contoso.com");
    let authorization_endpoint = token_endpoint.replace("/token", "/authorize");
    let gw = gateway(
        &peer,
        &[
            ("oauth.client_id", CLIENT),
            ("oauth.token_endpoint", &token_endpoint),
            ("oauth.authorization_endpoint", &authorization_endpoint),
            ("oauth.device_authorization_endpoint", &token_endpoint.replace("/token", "/devicecode")),
            ("oauth.scopes", "https://outlook.office.com/SMTP.Send offline_access"),
            ("gateway.sender_policy", "login_user"),
            ("gateway.allowed_networks", "127.0.0.0/8"),
        ],
    )
    .await;
    let tidings = &gw.tidings;
    tidings.reconfigure(&[("public_base_url", &tidings.base)]).await;
    let jane = tidings
        .app
        .create_device("test", "jane-mfp", &SecretString::new(DEVICE_PASSWORD), &["jane@contoso.com".into()])
        .await
        .unwrap();
    let send = |login: bool| {
        let mut steps = vec![];
        if login {
            steps.push(json!({"login": ["jane-mfp", DEVICE_PASSWORD]}));
        }
        steps.push(json!({"send": {"from": "scanner@printers.example.com", "to": ["ops@example.com"], "data": scan("scanner@printers.example.com")}}));
        Value::from(steps)
    };

    // A listed network does not make an account: login_user needs one. An account without a connected
    // mailbox is told where to connect it.
    let answers = gw.client("starttls", send(false)).await;
    assert_eq!(answers[1]["code"], 530, "{answers:?}");
    let answers = gw.client("starttls", send(true)).await;
    assert_eq!(answers[2]["code"], 550, "{answers:?}");
    assert!(answers[2]["text"].as_str().unwrap().contains("/mailbox"), "{answers:?}");

    // The account signs in to its page with the device's credentials (a wrong password first).
    let browser = Browser::new(&tidings.base);
    let (_, page) = browser.get("/mailbox").await;
    assert!(page.contains("action=\"/mailbox/login\""), "{page}");
    let (status, _, refused) =
        browser.post("/mailbox/login", &page, &[("username", "jane-mfp"), ("password", "wrong-password")]).await;
    assert_eq!(status, 401);
    let (status, location, _) =
        browser.post("/mailbox/login", &refused, &[("username", "jane-mfp"), ("password", DEVICE_PASSWORD)]).await;
    assert_eq!((status, location.as_deref()), (303, Some("/mailbox")));
    let (_, page) = browser.get("/mailbox").await;
    assert!(page.contains("jane@contoso.com") && page.contains("Not connected"), "{page}");
    // The page reaches nothing else: the administrators' pages still ask for their sign-in.
    let (status, _) = browser.get("/email-config").await;
    assert_eq!(status, 303);

    // Connecting: to the provider and back to /login/smtp-verification, as the account's mailbox.
    let (status, location, _) = browser.post("/mailbox/connect", &page, &[]).await;
    assert_eq!(status, 303);
    let url = location.unwrap();
    assert!(url.contains("login_hint=jane%40contoso.com") && url.contains("code_challenge_method=S256"), "{url}");
    let back = browser.client.get(&url).send().await.unwrap().headers()["location"].to_str().unwrap().to_owned();
    let landing = browser.client.get(&back).send().await.unwrap();
    assert_eq!(landing.status(), 200);
    assert!(landing.text().await.unwrap().contains("jane@contoso.com"));
    let (_, page) = browser.get("/mailbox").await;
    assert!(page.contains("Connected as jane@contoso.com"), "{page}");
    assert!(tidings.app.refresh_token(Owner::Relay).await.unwrap().is_none(), "the relay account stays unauthorized");

    // Its messages go as its mailbox (envelope, From, XOAUTH2 user), the device's From kept in Reply-To.
    let answers = gw.client("starttls", send(true)).await;
    assert_eq!(answers[2]["ok"], true, "{answers:?}");
    let got = peer.next_message().await;
    assert_eq!(
        (got["auth_user"].as_str(), got["mail_from"].as_str()),
        (Some("jane@contoso.com"), Some("jane@contoso.com"))
    );
    let data = got["data"].as_str().unwrap();
    assert!(
        data.contains("\r\nFrom: jane@contoso.com\r\nReply-To: Scanner 3F <scanner@printers.example.com>\r\n"),
        "{data}"
    );

    // The administrators see the account's mailbox in the API (never the token); deleting it there makes the
    // next message refused again.
    let (_, listed) = tidings.get("/api/v1/devices").await;
    let listed = listed["devices"].as_array().unwrap().iter().find(|d| d["id"] == jane).unwrap().clone();
    assert_eq!(listed["mailbox"]["mailbox"], "jane@contoso.com", "{listed}");
    assert!(!listed.to_string().contains("0.AXoA"), "no token in {listed}");
    let (code, _) = tidings
        .request(reqwest::Method::DELETE, &format!("/api/v1/devices/{jane}/mailbox"), Some(&tidings.token), None)
        .await;
    assert_eq!(code, 204);
    let answers = gw.client("starttls", send(true)).await;
    assert_eq!(answers[2]["code"], 550, "{answers:?}");

    // Connecting again with a code entered on another device.
    let (_, page) = browser.get("/mailbox").await;
    let (status, location, _) = browser.post("/mailbox/device-code", &page, &[]).await;
    assert_eq!((status, location.as_deref()), (303, Some("/mailbox")), "a reload does not start another sign-in");
    let (_, shown) = browser.get("/mailbox").await;
    assert!(shown.contains("id=\"user-code\"") && shown.contains("microsoft.com/devicelogin"), "{shown}");
    fake.control("approve");
    eventually("the device sign-in never completed", Duration::from_secs(15), async || {
        tidings.app.mailbox_of("jane-mfp").await.unwrap().map(|_| ()).ok_or_else(|| "no mailbox".to_owned())
    })
    .await;
    let answers = gw.client("starttls", send(true)).await;
    assert_eq!(answers[2]["ok"], true, "{answers:?}");
    assert_eq!(peer.next_message().await["auth_user"], "jane@contoso.com");

    // With forget_token_on_sign_out, signing out deletes the token the account connected (pasting the
    // address the browser ended on, this time).
    tidings.reconfigure(&[("gateway.forget_token_on_sign_out", "true")]).await;
    let (_, page) = browser.get("/mailbox").await;
    let url = browser.post("/mailbox/connect", &page, &[]).await.1.unwrap();
    let back = browser.client.get(&url).send().await.unwrap().headers()["location"].to_str().unwrap().to_owned();
    let (status, location, _) = browser.post("/mailbox/paste", &page, &[("input", &back)]).await;
    assert_eq!((status, location.as_deref()), (303, Some("/mailbox")));
    let (_, pasted) = browser.get("/mailbox").await;
    assert!(pasted.contains("Connected as jane@contoso.com") && pasted.contains("signing out deletes"), "{pasted}");
    assert!(tidings.app.mailbox_of("jane-mfp").await.unwrap().is_some());
    let (status, location, _) = browser.post("/mailbox/logout", &pasted, &[]).await;
    assert_eq!((status, location.as_deref()), (303, Some("/mailbox")));
    assert!(tidings.app.mailbox_of("jane-mfp").await.unwrap().is_none(), "signing out deleted the token");
    let (_, page) = browser.get("/mailbox").await;
    assert!(page.contains("action=\"/mailbox/login\""), "signed out: {page}");
    let audit: Vec<String> =
        tidings.app.store().audit(50).await.unwrap().into_iter().map(|e| format!("{} {}", e.actor, e.action)).collect();
    for expected in
        ["mailbox:jane-mfp mailbox.authorize", "mailbox:jane-mfp mailbox.revoke", "mailbox:jane-mfp sign-out"]
    {
        assert!(audit.iter().any(|a| a == expected), "{expected} missing from {audit:?}");
    }
    gw.tidings.stop().await;
}

#[tokio::test]
async fn smtp_source_loads_the_gateway_and_every_accepted_message_is_delivered() {
    let sbin = repo_root().join("target/bench/postfix/usr/sbin");
    let mut peer = SmtpPeer::start(&["--token", "upstream-token"]);
    let gw = gateway(&peer, &[("gateway.allowed_networks", "127.0.0.1/32"), ("gateway.rate_limit", "10000")]).await;
    // Postfix's load client: 10 sessions at once, 4 KB messages, several messages per session.
    let port = gw.port;
    let out = tokio::task::spawn_blocking(move || {
        Command::new(sbin.join("smtp-source"))
            .env("LD_LIBRARY_PATH", sbin.join("../lib/postfix"))
            .args(["-s", "10", "-m", "200", "-l", "4096", "-f", "printer@example.com", "-t", "ops@example.com"])
            .arg(format!("127.0.0.1:{port}"))
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "smtp-source (run ./scripts/test to fetch it): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for _ in 0..200 {
        let got = peer.next_message().await;
        assert_eq!(got["mail_from"], "alerts@example.com", "the fixed sender");
        assert!(got["data"].as_str().unwrap().len() >= 4096);
    }
    // The relay has them all; the outcomes are recorded in batches a moment later.
    eventually("not all recorded as delivered", Duration::from_secs(10), async || {
        let (_, ready) = gw.tidings.get("/readyz").await;
        if ready["queue"]["delivered"] == 200 { Ok(()) } else { Err(ready.to_string()) }
    })
    .await;
    gw.tidings.stop().await;
}

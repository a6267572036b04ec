//! The web interface in a real browser: Debian's chromium driven by playwright-core (`tests/browser/ui.mjs`)
//! against a daemon, a real SMTP server and a real OAuth server (oidc-provider). Screenshots of the main pages
//! are kept in `target/screenshots/`.

#![allow(clippy::unwrap_used)] // helpers of tests: a failed step is a failed test

mod support;

use std::process::Command;
use support::{Tidings, relay};
use tidings_app::authorization::Owner;
use tidings_core::{account::Role, secret::SecretString};
use tidings_testkit::{OidcProvider, SmtpPeer, repo_root};

#[tokio::test(flavor = "multi_thread")]
async fn the_interface_in_a_real_browser() {
    let root = repo_root();
    assert!(
        std::path::Path::new("/usr/bin/chromium").exists()
            && root.join("tests/peers/node/node_modules/playwright-core").exists(),
        "chromium or playwright-core is missing: run ./scripts/test, which installs them"
    );
    let mut peer = SmtpPeer::start(&[
        "--fail",
        "data=554 5.2.252 SendAsDenied; alerts@example.com not allowed to send as boss@example.com*1",
    ]);
    let tidings = Tidings::start(relay(&peer, &[("smtp.allow_plaintext_auth", "true")])).await;
    let provider = OidcProvider::start(&format!("{}/login/smtp-verification/", tidings.base), 3600);
    tidings
        .reconfigure(&[
            ("oauth.client_id", "tidings"),
            ("oauth.client_secret", "tidings-secret"),
            ("oauth.authorization_endpoint", &provider.url("/auth")),
            ("oauth.token_endpoint", &provider.url("/token")),
            ("oauth.device_authorization_endpoint", &provider.url("/device/auth")),
            ("oauth.scopes", "openid offline_access smtp"),
            ("public_base_url", &tidings.base),
        ])
        .await;
    tidings
        .app
        .create_account("test", "operator", &SecretString::new("browser-test-password-1"), Role::Administrator)
        .await
        .unwrap();
    // A message the relay refuses, for the outbox page.
    let failed = tidings.send("Refused by the relay").await;
    tidings.wait_for_status(failed, "failed").await;

    let screenshots = root.join("target/screenshots");
    let run = {
        let (base, port, screenshots) = (tidings.base.clone(), peer.port.to_string(), screenshots.clone());
        let script = root.join("tests/browser/ui.mjs");
        tokio::task::spawn_blocking(move || {
            Command::new("node")
                .arg(script)
                .env("TIDINGS_URL", base)
                .env("TIDINGS_USER", "operator")
                .env("TIDINGS_PASSWORD", "browser-test-password-1")
                .env("SMTP_PORT", port)
                .env("FAILED_MESSAGE", failed.to_string())
                .env("SCREENSHOTS", screenshots)
                .output()
                .unwrap()
        })
    };
    let out = run.await.unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the browser test failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("all steps passed"), "{stdout}");

    // What the browser did, seen from outside: the test email reached the SMTP server, the token is active.
    // The refused message's dead-letter alert goes to the admin contacts too, in no fixed order.
    let mut subjects = Vec::new();
    while !subjects.iter().any(|d: &String| d.contains("requested by web:operator")) {
        assert!(subjects.len() < 3, "no test email among {subjects:?}");
        subjects.push(peer.next_message().await["data"].as_str().unwrap().to_owned());
    }
    let (_, status) = tidings.get("/api/v1/oauth/status").await;
    assert_eq!(status["state"], "active", "{status}");
    for name in [
        "email-config",
        "email-config-errors",
        "oauth-device",
        "oauth-active",
        "outbox-message",
        "accounts-de",
        "email-config-narrow",
        "outbox-narrow",
        "not-found",
        "email-config-preset-de",
        "outbox-message-de",
    ] {
        assert!(screenshots.join(format!("{name}.png")).exists(), "no screenshot {name}.png");
    }
    tidings.stop().await;
}

/// Runs `tests/browser/status.mjs` against `tidings` in one state; panics with its output when a step fails.
async fn status_page_in_browser(tidings: &Tidings, state: &str, expect: [&str; 4], live: bool) {
    let [level, says_en, says_de, action] = expect;
    let root = repo_root();
    let (base, screenshots) = (tidings.base.clone(), root.join("target/screenshots"));
    let env: Vec<(String, String)> = [
        ("TIDINGS_URL", base.as_str()),
        ("TIDINGS_USER", "operator"),
        ("TIDINGS_PASSWORD", "browser-test-password-1"),
        ("STATE", state),
        ("LEVEL", level),
        ("SAYS_EN", says_en),
        ("SAYS_DE", says_de),
        ("ACTION", action),
        ("LIVE", if live { "1" } else { "0" }),
        ("SCREENSHOTS", screenshots.to_str().unwrap()),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    let script = root.join("tests/browser/status.mjs");
    let out = tokio::task::spawn_blocking(move || Command::new("node").arg(script).envs(env).output().unwrap())
        .await
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && stdout.contains("all steps passed"), "{state}:\n{stdout}\n{stderr}");
    for shot in
        [format!("status-{state}.png"), format!("status-{state}-phone.png"), format!("status-{state}-de-phone.png")]
    {
        assert!(screenshots.join(&shot).exists(), "no screenshot {shot}");
    }
}

async fn operator(tidings: &Tidings) {
    let password = SecretString::new("browser-test-password-1");
    tidings.app.create_account("test", "operator", &password, Role::Administrator).await.unwrap();
}

/// The status page in each state an administrator meets, in Chromium at desktop and phone widths, in English
/// and German: healthy (and following the daemon without a reload), a token whose refreshes fail, the relay
/// down, a backlog.
#[tokio::test(flavor = "multi_thread")]
async fn the_status_page_in_a_real_browser_in_each_state() {
    let status = async |tidings: &Tidings, what: &str, done: &dyn Fn(&serde_json::Value) -> bool| {
        support::eventually(what, std::time::Duration::from_secs(30), async || {
            let (_, s) = tidings.get("/api/v1/status").await;
            if done(&s) { Ok(()) } else { Err(s.to_string()) }
        })
        .await
    };

    // Healthy.
    let mut peer = SmtpPeer::start(&[]);
    let tidings = Tidings::start(relay(&peer, &[("admin.addresses", "ops@example.com")])).await;
    operator(&tidings).await;
    let id = tidings.send("fine").await;
    peer.next_message().await;
    tidings.wait_for_status(id, "delivered").await;
    let healthy = ["ok", "Mail is flowing", "Mails werden zugestellt", "form"];
    let live = tokio::spawn(async move {
        // The message the page sends while it is open reaches the relay.
        peer.next_message().await;
        peer
    });
    status_page_in_browser(&tidings, "healthy", healthy, true).await;
    drop(live.await.unwrap());
    tidings.stop().await;

    // A token whose refreshes fail for now (the token endpoint does not answer): amber, find what fails.
    let peer = SmtpPeer::start(&[]);
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let endpoint = format!("http://127.0.0.1:{closed}/contoso.com/oauth2/v2.0/token");
    let oauth = [
        ("smtp.auth", "oauth2"),
        ("smtp.allow_plaintext_auth", "true"),
        ("oauth.client_id", "6731de76-14a6-49ae-97bc-6eba6914391e"),
        ("oauth.token_endpoint", endpoint.as_str()),
    ];
    let tidings = Tidings::start(relay(&peer, &oauth)).await;
    operator(&tidings).await;
    let token = SecretString::new("rt-from-a-sign-in");
    tidings.app.authorized(Owner::Relay, "test", Some(&token), Some("alerts@example.com")).await.unwrap();
    tidings.send("needs a token").await;
    status(&tidings, "the token failing", &|s| s["token"]["state"] == "failing").await;
    let failing = ["warn", "Mail flows, but something needs a look", "aber etwas braucht Aufmerksamkeit", "/doctor"];
    status_page_in_browser(&tidings, "token-failing", failing, false).await;
    tidings.stop().await;

    // The relay down: red, open the message that waits.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let down = [
        ("sender", "alerts@example.com"),
        ("smtp.host", "127.0.0.1"),
        ("smtp.encryption", "none"),
        ("delivery.timeout", "2s"),
        ("delivery.relay_backoff_first", "1m"),
    ];
    let mut edits: Vec<(String, String)> = down.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    edits.push(("smtp.port".into(), closed.to_string()));
    let tidings = Tidings::start(edits).await;
    operator(&tidings).await;
    let id = tidings.send("nobody listens").await;
    status(&tidings, "the relay down", &|s| s["relay"]["state"] == "down").await;
    let red = ["bad", "Mail is not going out", "Mails werden nicht zugestellt", &format!("/outbox/{id}")];
    status_page_in_browser(&tidings, "relay-down", red, false).await;
    tidings.stop().await;

    // A backlog: the relay answers, but defers every message; past four times delivery.backlog_warning, red.
    let peer = SmtpPeer::start(&["--fail", "rcpt=451 4.2.0 Mailbox busy, try again later"]);
    let slow = [("delivery.backlog_warning", "1s"), ("delivery.retry_first", "1m"), ("delivery.retry_max", "1m")];
    let tidings = Tidings::start(relay(&peer, &slow)).await;
    operator(&tidings).await;
    let id = tidings.send("busy").await;
    status(&tidings, "the backlog", &|s| s["mail"]["level"] == "bad").await;
    let backlog = ["bad", "Mail is not going out", "Mails werden nicht zugestellt", &format!("/outbox/{id}")];
    status_page_in_browser(&tidings, "backlog", backlog, false).await;
    tidings.stop().await;
}

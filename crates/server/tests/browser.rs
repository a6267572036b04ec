//! The web interface in a real browser: Debian's chromium driven by playwright-core (`tests/browser/ui.mjs`)
//! against a daemon, a real SMTP server and a real OAuth server (oidc-provider). Screenshots of the main pages
//! are kept in `target/screenshots/`.

#![allow(clippy::unwrap_used)] // helpers of tests: a failed step is a failed test

mod support;

use std::process::Command;
use support::{Tidings, relay};
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
    ] {
        assert!(screenshots.join(format!("{name}.png")).exists(), "no screenshot {name}.png");
    }
    tidings.stop().await;
}

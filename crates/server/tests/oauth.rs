//! OAuth with delivery, end to end: the relay accepts only access tokens valid now, tokens live 3 seconds, and
//! the provider (a fake of Microsoft's token endpoint) rotates refresh tokens and can revoke them.

#![allow(clippy::unwrap_used)] // helpers of tests: a failed step is a failed test

mod support;

use std::time::{Duration, Instant};
use support::{Tidings, relay};
use tidings_core::secret::SecretString;
use tidings_testkit::{OAuthFake, SmtpPeer};

const CLIENT: &str = "6731de76-14a6-49ae-97bc-6eba6914391e";

#[tokio::test]
async fn short_lived_tokens_never_fail_a_delivery_and_a_revocation_waits_for_a_new_authorization() {
    let fake = OAuthFake::start(3, &[]);
    fake.control("issue?refresh_token=rt-initial");
    let mut peer = SmtpPeer::start_tls(&["--token-file", fake.access_tokens.to_str().unwrap()]);
    let endpoint = fake.token_endpoint("contoso.com");
    let tidings = Tidings::start(relay(
        &peer,
        &[("smtp.auth", "oauth2"), ("oauth.client_id", CLIENT), ("oauth.token_endpoint", &endpoint)],
    ))
    .await;
    tidings
        .app
        .oauth_acquired("test", Some(&SecretString::new("rt-initial")), Some("alerts@example.com"))
        .await
        .unwrap();

    // A stream of messages across several token lifetimes; each needs a new connection, so a new AUTH.
    let mut ids = Vec::new();
    let mut every = tokio::time::interval(Duration::from_millis(400));
    for i in 0..20 {
        every.tick().await;
        ids.push(tidings.send(&format!("stream {i}")).await);
    }
    for _ in &ids {
        peer.next_message().await;
    }
    for id in &ids {
        let message = tidings.wait_for_status(*id, "delivered").await;
        assert_eq!(message["attempt_log"].as_array().unwrap().len(), 1, "no failed attempt: {message:#}");
    }
    assert!(tidings.app.oauth_record().await.unwrap().refreshed_at.is_some());
    assert_ne!(
        tidings.app.oauth_refresh_token().await.unwrap().unwrap().expose(),
        "rt-initial",
        "the rotated refresh token was stored"
    );

    // The provider revokes the grant. Once the last access token has expired, messages wait.
    fake.control("revoke");
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    while !std::fs::read_to_string(&fake.access_tokens).unwrap().trim().is_empty() {
        assert!(Instant::now() < deadline, "the access tokens never expired");
        tick.tick().await;
    }
    let id = tidings.send("during the revocation").await;
    let message = tidings.wait_for_status(id, "deferred").await;
    let attempt = &message["attempt_log"][0];
    assert_eq!(
        (attempt["result"].as_str(), attempt["stage"].as_str()),
        (Some("reauth_required"), Some("token")),
        "{attempt}"
    );
    assert!(
        attempt["text"].as_str().unwrap().contains("AADSTS") || attempt["text"].as_str().unwrap().contains("Authorize"),
        "{attempt}"
    );
    let (reason, explanation) = tidings.app.oauth_record().await.unwrap().failure.unwrap();
    assert!(
        reason.contains("AADSTS70000") && explanation.contains("Authorize Tidings again"),
        "{reason} / {explanation}"
    );

    // An administrator authorizes again; the waiting message goes at its next attempt.
    fake.control("issue?refresh_token=rt-again");
    tidings.app.oauth_acquired("test", Some(&SecretString::new("rt-again")), Some("alerts@example.com")).await.unwrap();
    let got = peer.next_message().await;
    assert!(got["data"].as_str().unwrap().contains("Subject: during the revocation"));
    tidings.wait_for_status(id, "delivered").await;
    tidings.stop().await;
}

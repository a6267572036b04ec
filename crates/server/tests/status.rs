//! The status page and `GET /api/v1/status` in each state an administrator meets: healthy, the relay down, the
//! token refused, a backlog; the same figures as `/readyz` and the metrics.

#![allow(clippy::unwrap_used)] // helpers of tests: a failed step is a failed test

mod support;

use serde_json::Value;
use std::time::Duration;
use support::{Tidings, relay};
use tidings_app::authorization::Owner;
use tidings_core::secret::SecretString;
use tidings_testkit::{OAuthFake, SmtpPeer};

/// The status once `done` holds of it.
async fn status_when(tidings: &Tidings, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    support::eventually(what, Duration::from_secs(20), async || {
        let (_, status) = tidings.get("/api/v1/status").await;
        if done(&status) { Ok(status) } else { Err(format!("{status:#}")) }
    })
    .await
}

#[tokio::test]
async fn healthy_mail_is_green_and_offers_a_test_mail() {
    let mut peer = SmtpPeer::start(&[]);
    let tidings = Tidings::start(relay(&peer, &[])).await;
    let id = tidings.send("fine").await;
    peer.next_message().await;
    tidings.wait_for_status(id, "delivered").await;
    let status = status_when(&tidings, "green", |s| s["overall"] == "ok").await;
    assert_eq!(status["action"]["kind"], "send_test_mail", "{status:#}");
    assert_eq!(status["mail"]["last_delivered"]["id"], id);
    assert_eq!((status["mail"]["waiting"].as_u64(), status["relay"]["state"].as_str()), (Some(0), Some("up")));
    assert!(status["relay"]["last_reply"].as_str().is_some(), "the relay's reply to the last delivery: {status:#}");
    assert_eq!(status["node"]["role"], "standalone");

    let page = tidings.page_as_viewer("/").await;
    assert!(page.contains("Mail is flowing") && page.contains("class=\"state ok\""), "{page}");
    assert!(page.contains("<a href=\"/\" class=\"active\""), "the status page is the first of the menu: {page}");
    assert!(!page.contains("Send a test mail"), "a viewer is not offered what it may not do");
    let panel = tidings.page_as_viewer("/status/panel").await;
    assert!(panel.starts_with("<div id=\"status-panel\"") && panel.contains("Mail is flowing"), "{panel}");
    // The same figures as the metrics'.
    let metrics =
        tidings.client.get(format!("{}/metrics", tidings.base)).bearer_auth(&tidings.token).send().await.unwrap();
    let metrics = metrics.text().await.unwrap();
    assert!(metrics.contains("tidings_oldest_waiting_seconds 0"), "{metrics}");
    let delivered_at =
        chrono::DateTime::parse_from_rfc3339(status["mail"]["last_delivered"]["at"].as_str().unwrap()).unwrap();
    assert!(
        metrics.contains(&format!("tidings_last_delivery_timestamp_seconds {}", delivered_at.timestamp())),
        "{metrics}"
    );
    tidings.stop().await;
}

#[tokio::test]
async fn a_relay_down_is_red_and_points_at_the_waiting_message() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let edits: Vec<(String, String)> = [
        ("sender", "alerts@example.com"),
        ("smtp.host", "127.0.0.1"),
        ("smtp.port", &closed.to_string()),
        ("smtp.encryption", "none"),
        ("delivery.retry_first", "1s"),
        ("delivery.relay_backoff_first", "30s"),
        ("delivery.timeout", "2s"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    let tidings = Tidings::start(edits).await;
    let id = tidings.send("nobody listens").await;
    let status = status_when(&tidings, "the relay down", |s| s["relay"]["state"] == "down").await;
    assert_eq!((status["overall"].as_str(), status["relay"]["level"].as_str()), (Some("bad"), Some("bad")));
    assert_eq!(status["action"], serde_json::json!({ "kind": "open_message", "message": id }), "{status:#}");
    assert_eq!(status["mail"]["oldest_waiting"]["id"], id);

    let page = tidings.page_in("/", "fr").await;
    assert!(page.contains("Les messages ne partent pas") && page.contains("Indisponible depuis"), "{page}");
    assert!(page.contains(&format!("href=\"/outbox/{id}\"")) && page.contains("Ouvrir le message en échec"), "{page}");
    let (_, ready) = tidings.get("/readyz").await;
    assert_eq!(ready["delivery"]["relay"]["state"], "down", "the same figures as /readyz: {ready:#}");
    tidings.stop().await;
}

#[tokio::test]
async fn a_refused_token_asks_for_a_sign_in() {
    let fake = OAuthFake::start(3600, &[]);
    let peer = SmtpPeer::start_tls(&["--token-file", fake.access_tokens.to_str().unwrap()]);
    let endpoint = fake.token_endpoint("contoso.com");
    let settings = [
        ("smtp.auth", "oauth2"),
        ("oauth.client_id", "6731de76-14a6-49ae-97bc-6eba6914391e"),
        ("oauth.token_endpoint", endpoint.as_str()),
    ];
    let tidings = Tidings::start(relay(&peer, &settings)).await;
    // A refresh token the provider does not know: refused as a revoked one.
    let unknown = SecretString::new("rt-nobody-issued");
    tidings.app.authorized(Owner::Relay, "test", Some(&unknown), Some("alerts@example.com")).await.unwrap();
    tidings.send("waits for a token").await;
    let status =
        status_when(&tidings, "the token refused", |s| s["token"]["state"] == "reauthorization_required").await;
    assert_eq!((status["token"]["level"].as_str(), status["overall"].as_str()), (Some("bad"), Some("bad")));
    assert_eq!(status["action"]["kind"], "sign_in", "{status:#}");
    assert_eq!(status["token"]["account"], "alerts@example.com");
    let page = tidings.page_as_viewer("/").await;
    assert!(page.contains("Sign in again") && page.contains("href=\"/oauth\""), "{page}");
    assert!(page.contains("Re-authorization required"), "{page}");
    tidings.stop().await;
}

#[tokio::test]
async fn a_backlog_turns_amber_then_red() {
    let peer = SmtpPeer::start(&["--fail", "rcpt=451 4.2.0 Mailbox busy, try again later"]);
    let tidings = Tidings::start(relay(
        &peer,
        &[("delivery.backlog_warning", "1s"), ("delivery.retry_first", "1m"), ("delivery.retry_max", "1m")],
    ))
    .await;
    let id = tidings.send("busy").await;
    let amber = status_when(&tidings, "amber", |s| s["mail"]["level"] == "warn").await;
    assert_eq!(amber["relay"]["state"], "up", "a refusal of one message is no outage: {amber:#}");
    assert_eq!(amber["action"], serde_json::json!({ "kind": "open_message", "message": id }));
    let red = status_when(&tidings, "red", |s| s["mail"]["level"] == "bad").await;
    assert_eq!(red["overall"], "bad");
    let page = tidings.page_as_viewer("/").await;
    assert!(page.contains("1 message waiting") && page.contains("Waiting longest"), "singular, in words: {page}");
    tidings.stop().await;
}

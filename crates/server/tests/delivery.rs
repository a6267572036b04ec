//! Delivery end to end: the daemon's API accepts, the engine delivers to a real SMTP server (aiosmtpd) on
//! loopback, retries what is temporary, fails what is permanent, explains what it knows.

#![allow(clippy::unwrap_used)] // helpers of tests: a failed step is a failed test

mod support;

use serde_json::json;
use support::{Tidings, relay};
use tidings_testkit::SmtpPeer;

#[tokio::test]
async fn a_message_is_delivered_over_starttls_with_a_password() {
    let mut peer = SmtpPeer::start_tls(&["--require-starttls", "--user", "device", "--password", "relay-pass-1"]);
    let tidings = Tidings::start(relay(
        &peer,
        &[("smtp.auth", "password"), ("smtp.username", "device"), ("smtp.password", "relay-pass-1")],
    ))
    .await;
    let (status, body) = tidings
        .post("/api/v1/messages", json!({"to": ["ops@example.com"], "cc": ["noc@example.com"], "bcc": ["audit@example.com"], "subject": "Ünïcode test", "text": "Line one\n.dot line", "html": "<p>hi</p>"}))
        .await;
    assert_eq!(status, 202, "{body}");
    let got = peer.next_message().await;
    assert_eq!(got["auth_user"], "device");
    assert_eq!(got["rcpt_tos"], json!(["ops@example.com", "noc@example.com", "audit@example.com"]));
    let data = got["data"].as_str().unwrap();
    assert!(data.contains("From: alerts@example.com\r\n") && data.contains("Subject: =?utf-8?b?"), "{data}");
    assert!(data.contains(&format!("Message-ID: <{}>", body["message_id"].as_str().unwrap())));
    assert!(!data.contains("audit@example.com"), "Bcc not in the headers");
    let message = tidings.wait_for_status(body["id"].as_i64().unwrap(), "delivered").await;
    assert_eq!(message["attempt_log"][0]["result"], "delivered");
    assert_eq!(message["attempt_log"][0]["reply_code"], 250);
    tidings.stop().await;
}

#[tokio::test]
async fn a_temporary_refusal_is_retried_and_then_delivered() {
    let mut peer = SmtpPeer::start(&["--fail", "rcpt=451 4.3.0 Mail server temporarily rejected message.*1"]);
    let tidings = Tidings::start(relay(&peer, &[])).await;
    let id = tidings.send("retry me").await;
    peer.next_message().await;
    let message = tidings.wait_for_status(id, "delivered").await;
    let log = message["attempt_log"].as_array().unwrap();
    assert_eq!(log.len(), 2, "{message:#}");
    assert_eq!(
        (log[0]["result"].as_str(), log[0]["reply_code"].as_i64(), log[0]["stage"].as_str()),
        (Some("transient"), Some(451), Some("rcpt_to"))
    );
    assert_eq!(log[1]["result"], "delivered");
    tidings.stop().await;
}

#[tokio::test]
async fn a_permanent_refusal_fails_at_once_with_an_explanation() {
    let peer = SmtpPeer::start(&[
        "--fail",
        "data=554 5.2.252 SendAsDenied; alerts@example.com not allowed to send as other@example.com",
    ]);
    let tidings = Tidings::start(relay(&peer, &[])).await;
    let id = tidings.send("refused").await;
    let message = tidings.wait_for_status(id, "failed").await;
    let attempt = &message["attempt_log"][0];
    assert_eq!((message["attempts"].as_i64(), attempt["result"].as_str()), (Some(1), Some("permanent")));
    assert_eq!((attempt["reply_code"].as_i64(), attempt["enhanced_code"].as_str()), (Some(554), Some("5.2.252")));
    assert!(attempt["text"].as_str().unwrap().starts_with("SendAsDenied"), "{attempt}");
    assert!(attempt["explanation"].as_str().unwrap().contains("Send As"));
    assert!(message["last_error"].as_str().unwrap().contains("554 5.2.252"));
    tidings.stop().await;
}

#[tokio::test]
async fn a_connection_dropped_during_data_is_retried() {
    let mut peer = SmtpPeer::start(&["--drop-data", "1"]);
    let tidings = Tidings::start(relay(&peer, &[])).await;
    let id = tidings.send("dropped").await;
    peer.next_message().await;
    let message = tidings.wait_for_status(id, "delivered").await;
    assert_eq!(message["attempt_log"][0]["result"], "transient");
    assert_eq!(message["attempt_log"][0]["stage"], "message");
    tidings.stop().await;
}

#[tokio::test]
async fn gmail_rejecting_the_token_keeps_the_message_until_the_token_is_fixed() {
    let mut peer = SmtpPeer::start_tls(&["--mode", "tls", "--token", "good-token", "--gmail-failure"]);
    let mut edits = relay(
        &peer,
        &[
            ("smtp.auth", "oauth2"),
            ("smtp.encryption", "tls"),
            ("oauth.client_id", "client"),
            ("oauth.token_endpoint", "http://127.0.0.1:9/token"),
            ("oauth.static_access_token", "expired-token"),
        ],
    );
    edits.retain(|(k, v)| !(k == "smtp.encryption" && v == "starttls"));
    // No automatic retry within the test: the retry below is what sends the message once the token is fixed.
    for (_, value) in edits.iter_mut().filter(|(k, _)| k == "delivery.retry_first" || k == "delivery.retry_max") {
        *value = "10m".into();
    }
    let tidings = Tidings::start(edits).await;
    let id = tidings.send("needs a token").await;
    let message = tidings.wait_for_status(id, "deferred").await;
    let attempt = &message["attempt_log"][0];
    assert_eq!(
        (attempt["result"].as_str(), attempt["stage"].as_str(), attempt["reply_code"].as_i64()),
        (Some("auth_failed"), Some("auth"), Some(535))
    );
    assert!(attempt["text"].as_str().unwrap().contains("XOAUTH2 status"), "{attempt}");
    assert!(attempt["explanation"].as_str().unwrap().contains("status 401"));

    tidings.reconfigure(&[("oauth.static_access_token", "good-token")]).await;
    let (status, _) = tidings.post(&format!("/api/v1/messages/{id}/retry"), json!({})).await;
    assert_eq!(status, 200);
    peer.next_message().await;
    tidings.wait_for_status(id, "delivered").await;
    tidings.stop().await;
}

#[tokio::test]
async fn known_provider_replies_are_explained_in_the_delivery_log() {
    let cases = [
        (
            "auth=535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant.",
            "auth_failed",
            "Authenticated SMTP",
        ),
        ("auth=535 5.7.3 Authentication unsuccessful", "auth_failed", "full address"),
        (
            "auth=550 5.7.30 Basic authentication is not supported for Client Submission.",
            "auth_failed",
            "smtp.auth=oauth2",
        ),
        ("auth=534 5.7.9 Application-specific password required.", "auth_failed", "app password"),
        ("mail=554 5.2.252 SendAsDenied; not allowed to send as alerts@example.com", "permanent", "Send As"),
    ];
    let first = SmtpPeer::start_tls(&[]);
    let tidings =
        Tidings::start(relay(&first, &[("smtp.auth", "password"), ("smtp.username", "u"), ("smtp.password", "p")]))
            .await;
    for (rule, result, needle) in cases {
        let peer = SmtpPeer::start_tls(&["--user", "u", "--password", "p", "--fail", rule]);
        let ca = peer.ca_file.as_ref().unwrap().display().to_string();
        tidings.reconfigure(&[("smtp.port", &peer.port.to_string()), ("tls.ca_file", &ca)]).await;
        let id = tidings.send(rule).await;
        let status = if result == "permanent" { "failed" } else { "deferred" };
        let message = tidings.wait_for_status(id, status).await;
        let attempt = &message["attempt_log"][0];
        assert_eq!(attempt["result"], result, "{rule}: {attempt}");
        assert!(attempt["explanation"].as_str().unwrap_or("").contains(needle), "{rule}: {attempt}");
    }
    tidings.stop().await;
}

#[tokio::test]
async fn a_burst_shares_a_few_connections() {
    let mut peer = SmtpPeer::start(&[]);
    // Idle connections kept long enough that a slow machine's burst still finds them (the tests' default is
    // 200 ms, so that other tests see new connections soon).
    let mut options = support::test_options();
    options.engine.idle_timeout = std::time::Duration::from_secs(30);
    let tidings = Tidings::start_with(relay(&peer, &[("delivery.connections", "3")]), options).await;
    let ids: Vec<i64> = futures_join(&tidings, 30).await;
    let mut ports = std::collections::BTreeSet::new();
    for _ in &ids {
        ports.insert(peer.next_message().await["client_port"].as_i64().unwrap());
    }
    assert!(ports.len() <= 3, "{} connections for 30 messages", ports.len());
    for id in ids {
        tidings.wait_for_status(id, "delivered").await;
    }
    tidings.stop().await;
}

async fn futures_join(tidings: &Tidings, n: usize) -> Vec<i64> {
    let mut set = tokio::task::JoinSet::new();
    for i in 0..n {
        let (client, base, token) = (tidings.client.clone(), tidings.base.clone(), tidings.token.clone());
        set.spawn(async move {
            let response = client
                .post(format!("{base}/api/v1/messages"))
                .bearer_auth(token)
                .json(&json!({"to": ["ops@example.com"], "subject": format!("burst {i}"), "text": "x"}))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 202);
            response.json::<serde_json::Value>().await.unwrap()["id"].as_i64().unwrap()
        });
    }
    set.join_all().await
}

#[tokio::test]
async fn messages_wait_while_no_relay_is_configured_and_go_once_one_is() {
    let mut peer = SmtpPeer::start(&[]);
    let tidings = Tidings::start(vec![("sender".into(), "alerts@example.com".into())]).await;
    let id = tidings.send("patience").await;
    let (_, message) = tidings.get(&format!("/api/v1/messages/{id}")).await;
    assert_eq!(message["status"], "queued");
    let port = peer.port.to_string();
    tidings.reconfigure(&[("smtp.host", "127.0.0.1"), ("smtp.port", &port), ("smtp.encryption", "none")]).await;
    peer.next_message().await;
    tidings.wait_for_status(id, "delivered").await;
    tidings.stop().await;
}

#[tokio::test]
async fn a_run_whose_connection_drops_resends_the_envelope_sent_ahead_without_counting_an_attempt() {
    // One connection and a backlog: the engine leases four of the five at once and sends them as one run, each
    // message's data in the same write as the next one's envelope. The relay closes the connection at the end of
    // the first message's data.
    let mut peer = SmtpPeer::start(&["--pipelining", "--drop-data", "1"]);
    // Queued first, with no relay to go to, so that they wait together.
    let (smtp, config): (Vec<_>, Vec<_>) =
        relay(&peer, &[("delivery.connections", "1")]).into_iter().partition(|(key, _)| key.starts_with("smtp."));
    let tidings = Tidings::start(config).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(tidings.send(&format!("run {i}")).await);
    }
    tidings.reconfigure(&smtp.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect::<Vec<_>>()).await;
    for _ in &ids {
        peer.next_message().await;
    }
    let mut attempts = Vec::new();
    for id in &ids {
        let message = tidings.wait_for_status(*id, "delivered").await;
        attempts.push(message["attempt_log"].as_array().unwrap().clone());
    }
    // The first message's end of data went unanswered: an attempt that may or may not have arrived.
    assert_eq!(attempts[0].len(), 2, "{:?}", attempts[0]);
    assert_eq!(
        (attempts[0][0]["result"].as_str(), attempts[0][0]["stage"].as_str()),
        (Some("transient"), Some("message"))
    );
    // The second one's envelope was on the wire when the connection went, before any recipient was answered:
    // sent again on a new connection, its one attempt the delivery.
    for log in &attempts[1..] {
        assert_eq!(log.len(), 1, "{log:?}");
        assert_eq!(log[0]["result"], "delivered", "{log:?}");
    }
    tidings.stop().await;
}

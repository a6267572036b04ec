//! A relay that fails for a while, with 2,000 messages queued: the relay (or the identity) is taken as down,
//! messages wait uncharged, one probe at a time tries again after a growing backoff, and once the relay is
//! fixed the whole backlog is delivered without anyone doing anything. The relay is a real aiosmtpd server
//! that counts the connections it accepts.

#![allow(clippy::unwrap_used)] // helpers of tests: a failed step is a failed test

mod support;

use chrono::Utc;
use std::{
    path::Path,
    time::{Duration, Instant},
};
use support::{Tidings, eventually, relay};
use tidings_core::{
    account::Role,
    outbox::{Recipient, Status},
    secret::SecretString,
};
use tidings_store::{MessageFilter, NewOutboxMessage};
use tidings_testkit::SmtpPeer;

const MESSAGES: usize = 2000;
const CONNECTIONS: usize = 4;

fn connections(count_file: &Path) -> usize {
    std::fs::read_to_string(count_file).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0)
}

/// Queues `MESSAGES` messages in one commit.
async fn queue(tidings: &Tidings) {
    let now = Utc::now();
    let messages: Vec<_> = (0..MESSAGES)
        .map(|i| NewOutboxMessage {
            origin: "api:test".into(),
            mail_from: "alerts@example.com".into(),
            recipients: vec![Recipient::pending("ops@example.com")],
            subject: Some(format!("backlog {i}")),
            message_id: Some(format!("backlog-{i}@example.com")),
            content: format!("From: alerts@example.com\r\nTo: ops@example.com\r\nSubject: backlog {i}\r\n\r\nbody\r\n")
                .into_bytes(),
            created_at: now,
            mailbox_of: None,
        })
        .collect();
    tidings.app.store().enqueue(&messages, None).await.unwrap();
}

/// A page of the web interface, as a viewer signed in sees it.
async fn signed_in_page(tidings: &Tidings, path: &str) -> String {
    const PASSWORD: &str = "correct-horse-battery-9";
    tidings.app.create_account("test", "watcher", &SecretString::new(PASSWORD), Role::Viewer).await.unwrap();
    let client = support::browser();
    let signed_in = support::sign_in(tidings, &client, "watcher", PASSWORD).await;
    assert_eq!(signed_in.status(), 303, "{:?}", signed_in.text().await);
    client.get(format!("{}{path}", tidings.base)).send().await.unwrap().text().await.unwrap()
}

/// Attempts charged to messages so far, over the whole queue.
async fn attempts(tidings: &Tidings) -> u64 {
    let filter = MessageFilter { status: None, limit: MESSAGES as u32 + 10, before_id: None };
    tidings.app.store().messages(&filter).await.unwrap().iter().map(|m| u64::from(m.attempts)).sum()
}

/// Drives the story for one kind of trouble (`tls` or `auth`); `scope` is what `/readyz` must show as down.
async fn backlog_survives(trouble: &str, extra: &[&str], edits: &[(&str, &str)], down_in: &str) {
    let dir = tempfile::tempdir().unwrap();
    let flag = dir.path().join("trouble");
    let count_file = dir.path().join("connections");
    std::fs::write(&flag, "").unwrap();
    let mut args = vec![
        "--trouble",
        trouble,
        "--trouble-while",
        flag.to_str().unwrap(),
        "--count-connections",
        count_file.to_str().unwrap(),
        "--pipelining",
    ];
    args.extend(extra);
    let mut peer = SmtpPeer::start_tls(&args);
    let connections_setting = CONNECTIONS.to_string();
    let mut all = vec![("delivery.connections", connections_setting.as_str())];
    all.extend(edits);
    let tidings = Tidings::start(relay(&peer, &all)).await;
    queue(&tidings).await;

    // It goes down at the first failures: at most one per connection.
    let ready = eventually("the relay or identity reported down", Duration::from_secs(20), async || {
        let (_, ready) = tidings.get("/readyz").await;
        let down = match down_in {
            "relay" => ready["delivery"]["relay"]["state"] == "down",
            _ => ready["delivery"]["identities_down"].as_array().is_some_and(|a| !a.is_empty()),
        };
        if down { Ok(ready) } else { Err(ready.to_string()) }
    })
    .await;
    assert_eq!(ready["status"], "ready", "a relay that is down does not make Tidings unready: {ready}");
    let went_down = Instant::now();
    let at_first = connections(&count_file);
    assert!((1..=CONNECTIONS).contains(&at_first), "{at_first} connections before it was taken as down");

    // Then one probe per backoff (1 s, then 2 s): over 5 s, a few connections, not one per message.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let during = connections(&count_file);
    let seconds = went_down.elapsed().as_secs() as usize;
    assert!(
        during <= at_first + seconds + 1,
        "{during} connections within {seconds} s of going down (first {at_first}): probes are one per backoff"
    );
    let charged = attempts(&tidings).await;
    assert!(
        charged as usize <= CONNECTIONS + seconds + 1,
        "{charged} attempts charged to {MESSAGES} messages: waiting messages are not charged"
    );

    // Each waiting message says why it waits, the metrics and the web interface's banner too.
    let (_, last) = tidings.get("/api/v1/messages?limit=1").await;
    let id = last["messages"][0]["id"].as_i64().unwrap();
    let (_, message) = tidings.get(&format!("/api/v1/messages/{id}")).await;
    assert_eq!(message["attempts"], 0, "{message:#}");
    assert_eq!(message["waiting"]["scope"], down_in, "{message:#}");
    assert!(message["waiting"]["explanation"].as_str().is_some_and(|e| !e.is_empty()), "{message:#}");
    assert!(message["waiting"]["since"].is_string() && message["waiting"]["retry_at"].is_string());
    let (_, metrics) = tidings.request(reqwest::Method::GET, "/metrics", Some(&tidings.token), None).await;
    let metrics = metrics.as_str().map(str::to_owned).unwrap_or_else(|| metrics.to_string());
    let relay_up = if down_in == "relay" { "tidings_relay_up 0" } else { "tidings_identity_down{account=\"\"} 1" };
    assert!(metrics.contains(relay_up), "{metrics}");
    let banner = if down_in == "relay" { "The relay is down since" } else { "Sending as the relay account fails" };
    let page = signed_in_page(&tidings, "/outbox").await;
    assert!(page.contains(banner), "the banner of every page: {page}");

    // Fixed: the backlog flows without anyone doing anything.
    std::fs::remove_file(&flag).unwrap();
    eventually("the whole backlog delivered", Duration::from_secs(90), async || {
        let counts = tidings.app.store().queue_counts().await.unwrap();
        let delivered = counts.iter().find(|(s, _)| *s == Status::Delivered).map_or(0, |(_, n)| *n);
        if delivered == MESSAGES as u64 { Ok(()) } else { Err(format!("{counts:?}")) }
    })
    .await;
    let mut received = 0;
    eventually("the relay's record of every message", Duration::from_secs(10), async || {
        received += peer.received_now().len();
        if received >= MESSAGES { Ok(()) } else { Err(format!("{received} recorded")) }
    })
    .await;
    assert_eq!(received, MESSAGES, "each message reached the relay once");
    let (_, ready) = tidings.get("/readyz").await;
    assert_eq!(ready["delivery"]["relay"]["state"], "up", "{ready}");
    assert_eq!(ready["delivery"]["identities_down"], serde_json::json!([]), "{ready}");
    tidings.stop().await;
}

#[tokio::test]
async fn a_relay_whose_tls_fails_is_probed_not_hammered_and_the_backlog_flows_once_it_is_fixed() {
    backlog_survives("tls", &[], &[], "relay").await;
}

#[tokio::test]
async fn a_relay_refusing_authentication_holds_the_identity_and_the_backlog_flows_once_it_accepts() {
    backlog_survives(
        "auth",
        &["--user", "device", "--password", "relay-pass-1"],
        &[("smtp.auth", "password"), ("smtp.username", "device"), ("smtp.password", "relay-pass-1")],
        "identity",
    )
    .await;
}

#[tokio::test]
async fn a_retry_tries_a_relay_account_taken_as_down_at_once_instead_of_at_the_next_probe() {
    let dir = tempfile::tempdir().unwrap();
    let flag = dir.path().join("trouble");
    std::fs::write(&flag, "").unwrap();
    let mut peer = SmtpPeer::start_tls(&[
        "--trouble",
        "auth",
        "--trouble-while",
        flag.to_str().unwrap(),
        "--user",
        "device",
        "--password",
        "relay-pass-1",
    ]);
    let tidings = Tidings::start(relay(
        &peer,
        &[
            ("smtp.auth", "password"),
            ("smtp.username", "device"),
            ("smtp.password", "relay-pass-1"),
            // No probe within the test: only the retry can make the messages go.
            ("delivery.relay_backoff_first", "10m"),
            ("delivery.relay_backoff_max", "10m"),
            ("delivery.retry_first", "10m"),
            ("delivery.retry_max", "10m"),
        ],
    ))
    .await;
    let refused = tidings.send("refused once").await;
    tidings.wait_for_status(refused, "deferred").await;
    let waiting = tidings.send("waits uncharged").await;
    let message = eventually("the second message waiting for the identity", Duration::from_secs(10), async || {
        let (_, m) = tidings.get(&format!("/api/v1/messages/{waiting}")).await;
        if m["waiting"]["scope"] == "identity" { Ok(m) } else { Err(m.to_string()) }
    })
    .await;
    assert_eq!(message["attempts"], 0, "{message:#}");

    std::fs::remove_file(&flag).unwrap();
    let (status, _) = tidings.post(&format!("/api/v1/messages/{refused}/retry"), serde_json::json!({})).await;
    assert_eq!(status, 200);
    peer.next_message().await;
    peer.next_message().await;
    tidings.wait_for_status(refused, "delivered").await;
    let delivered = tidings.wait_for_status(waiting, "delivered").await;
    assert_eq!(delivered["attempts"], 1, "charged only for the attempt that delivered it: {delivered:#}");
    tidings.stop().await;
}

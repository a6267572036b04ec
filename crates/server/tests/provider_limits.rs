//! Provider limits per identity, against a real aiosmtpd relay that behaves as Exchange Online does: more than
//! three sessions of one mailbox get `432 4.3.2`, and past its recipient quota `554 5.2.0
//! SubmissionQuotaExceeded`. Tidings keeps to the configured connections, pace and day's budget, warns before
//! the end of the day's, makes messages wait (never fail) past it, and remembers the day across a restart.

#![allow(clippy::unwrap_used)] // helpers of tests: a failed step is a failed test

mod support;

use chrono::Utc;
use serde_json::Value;
use std::{path::Path, time::Duration};
use support::{Tidings, eventually, relay};
use tidings_core::outbox::{Recipient, Status};
use tidings_store::NewOutboxMessage;
use tidings_testkit::SmtpPeer;

const MAILBOX: &str = "box@example.com";
const PASSWORD: &str = "relay-pass-1";

/// The relay's record of what each user did.
fn stats(file: &Path) -> Value {
    std::fs::read_to_string(file).ok().and_then(|s| serde_json::from_str(&s).ok()).unwrap_or(Value::Null)
}

/// Queues `count` messages of `recipients` recipients each, in one commit.
async fn queue(tidings: &Tidings, first: usize, count: usize, recipients: usize) {
    let now = Utc::now();
    let messages: Vec<_> = (first..first + count)
        .map(|i| NewOutboxMessage {
            origin: "api:test".into(),
            mail_from: "alerts@example.com".into(),
            recipients: (0..recipients).map(|r| Recipient::pending(format!("ops{r}@example.com"))).collect(),
            subject: Some(format!("limits {i}")),
            message_id: Some(format!("limits-{i}@example.com")),
            content: format!("From: alerts@example.com\r\nTo: ops0@example.com\r\nSubject: limits {i}\r\n\r\nbody\r\n")
                .into_bytes(),
            created_at: now,
            mailbox_of: None,
        })
        .collect();
    tidings.app.store().enqueue(&messages, None).await.unwrap();
}

async fn delivered(tidings: &Tidings) -> u64 {
    let counts = tidings.app.store().queue_counts().await.unwrap();
    counts.iter().find(|(s, _)| *s == Status::Delivered).map_or(0, |(_, n)| *n)
}

fn password_relay(peer: &SmtpPeer, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut edits = vec![
        ("smtp.auth", "password"),
        ("smtp.username", MAILBOX),
        ("smtp.password", PASSWORD),
        ("delivery.connections", "8"),
    ];
    edits.extend(extra);
    relay(peer, &edits)
}

#[tokio::test]
async fn connections_pace_and_the_days_budget_keep_an_exchange_like_relay_from_refusing() {
    let dir = tempfile::tempdir().unwrap();
    let stats_file = dir.path().join("stats.json");
    let mut peer = SmtpPeer::start_tls(&[
        "--user",
        MAILBOX,
        "--password",
        PASSWORD,
        "--thread-limit",
        "3",
        "--recipient-quota",
        "40",
        "--delay-data",
        "0.2",
        "--stats-out",
        stats_file.to_str().unwrap(),
    ]);
    let tidings = Tidings::start(password_relay(
        &peer,
        &[
            ("delivery.identity_connections", "3"),
            ("delivery.identity_messages_per_minute", "12"),
            ("delivery.identity_recipients_per_day", "40"),
        ],
    ))
    .await;
    // 20 messages of 2 recipients: 40, the whole day's budget; 12 may go in the first minute.
    queue(&tidings, 0, 20, 2).await;

    eventually("the first minute's 12 messages", Duration::from_secs(20), async || {
        let n = delivered(&tidings).await;
        if n >= 12 { Ok(()) } else { Err(format!("{n} delivered")) }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(delivered(&tidings).await, 12, "the pace holds the rest until the minute turns");
    let (_, newest) = tidings.get("/api/v1/messages?limit=1").await;
    let newest = &newest["messages"][0];
    assert_ne!(newest["status"], "delivered", "{newest}");
    assert_eq!(newest["attempts"], 0, "waiting for the pace costs no attempt: {newest}");

    eventually("all 20 delivered once the minute turned", Duration::from_secs(75), async || {
        let n = delivered(&tidings).await;
        if n == 20 { Ok(()) } else { Err(format!("{n} delivered")) }
    })
    .await;
    let seen = stats(&stats_file)[MAILBOX].clone();
    assert!(seen["peak_sessions"].as_u64().unwrap() <= 3, "at most 3 sessions of the mailbox at once: {seen}");
    assert_eq!(seen["refused"], 0, "no 432 and no 554 5.2.0: {seen}");
    assert_eq!(seen["recipients"], 40, "{seen}");
    let times: Vec<f64> = seen["submitted_at"].as_array().unwrap().iter().map(|t| t.as_f64().unwrap()).collect();
    for (i, start) in times.iter().enumerate() {
        let within = times[i..].iter().filter(|t| **t < start + 59.0).count();
        assert!(within <= 12, "{within} submissions within a minute of the {i}th: {times:?}");
    }
    let (_, events) = tidings.get("/api/v1/events?kind=delivery.budget_warning").await;
    let warning = events["events"].as_array().unwrap().iter().find(|e| e["kind"] == "delivery.budget_warning");
    let warning = warning.unwrap_or_else(|| panic!("the budget warning was raised at 80 %: {events}"));
    assert_eq!(warning["details"]["budget"], "40", "{warning}");
    assert!(warning["details"]["used"].as_str().unwrap().parse::<u32>().unwrap() >= 32, "{warning}");

    // The day's budget is spent: one more message waits, uncharged, and says until when.
    queue(&tidings, 20, 1, 1).await;
    let (_, last) = tidings.get("/api/v1/messages?limit=1").await;
    let id = last["messages"][0]["id"].as_i64().unwrap();
    let message = eventually("the message waiting for the day's budget", Duration::from_secs(10), async || {
        let (_, m) = tidings.get(&format!("/api/v1/messages/{id}")).await;
        if m["budget"]["waiting_until"].is_string() { Ok(m) } else { Err(m.to_string()) }
    })
    .await;
    assert_eq!((message["status"].as_str(), message["attempts"].as_u64()), (Some("queued"), Some(0)), "{message:#}");
    assert_eq!(message["budget"]["last_day"], 40, "{message:#}");
    // So do the metrics and the banner of every page.
    let (_, metrics) = tidings.request(reqwest::Method::GET, "/metrics", Some(&tidings.token), None).await;
    let metrics = metrics.as_str().map(str::to_owned).unwrap_or_else(|| metrics.to_string());
    assert!(metrics.contains("tidings_identity_budget_spent{account=\"\"} 1"), "{metrics}");
    assert!(metrics.contains("tidings_identity_recipients_last_day{account=\"\"} 40"), "{metrics}");
    const VIEWER_PASSWORD: &str = "correct-horse-battery-9";
    let role = tidings_core::account::Role::Viewer;
    let password = tidings_core::secret::SecretString::new(VIEWER_PASSWORD);
    tidings.app.create_account("test", "watcher", &password, role).await.unwrap();
    let browser = support::browser();
    assert_eq!(support::sign_in(&tidings, &browser, "watcher", VIEWER_PASSWORD).await.status(), 303);
    let page = browser.get(format!("{}/outbox", tidings.base)).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("reached its 40 recipients a day"), "the banner: {page}");

    // A restart remembers the day: the message still waits.
    let tidings = tidings.restart().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, m) = tidings.get(&format!("/api/v1/messages/{id}")).await;
    assert_eq!((m["status"].as_str(), m["attempts"].as_u64()), (Some("queued"), Some(0)), "{m:#}");
    assert_eq!(stats(&stats_file)[MAILBOX]["messages"], 20, "nothing more reached the relay");
    assert!(peer.received_now().len() <= 20);
    tidings.stop().await;
}

#[tokio::test]
async fn a_locked_mailbox_makes_messages_wait_with_an_explanation_instead_of_failing_them() {
    let dir = tempfile::tempdir().unwrap();
    let stats_file = dir.path().join("stats.json");
    let _peer = SmtpPeer::start_tls(&[
        "--user",
        MAILBOX,
        "--password",
        PASSWORD,
        "--recipient-quota",
        "3",
        "--stats-out",
        stats_file.to_str().unwrap(),
    ]);
    // No limit of Tidings' own: the relay's quota is met, as when another program sends as the same mailbox.
    let tidings = Tidings::start(password_relay(&_peer, &[("delivery.identity_recipients_per_day", "0")])).await;
    queue(&tidings, 0, 5, 1).await;
    let ready = eventually("the mailbox taken as down", Duration::from_secs(20), async || {
        let (_, ready) = tidings.get("/readyz").await;
        if ready["delivery"]["identities_down"].as_array().is_some_and(|a| !a.is_empty()) {
            Ok(ready)
        } else {
            Err(ready.to_string())
        }
    })
    .await;
    eventually("the first three delivered", Duration::from_secs(5), async || {
        let n = delivered(&tidings).await;
        if n == 3 { Ok(()) } else { Err(format!("{n} delivered")) }
    })
    .await;
    let down = &ready["delivery"]["identities_down"][0]["down"];
    assert!(down["error"].as_str().unwrap().contains("5.2.0"), "{down}");
    assert!(down["explanation"].as_str().unwrap().contains("identity_recipients_per_day"), "{down}");
    let counts = tidings.app.store().queue_counts().await.unwrap();
    assert!(!counts.iter().any(|(s, n)| *s == Status::Failed && *n > 0), "nothing failed: {counts:?}");
    tidings.stop().await;
}

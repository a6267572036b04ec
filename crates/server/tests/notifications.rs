//! Notifications through the daemon to a real SMTP server (aiosmtpd): every event kind in every language,
//! throttling with the repeat count, refused events, the daily notice on start, the test email on save and on
//! demand, and an alert that waits while the mail path is broken.

#![allow(clippy::unwrap_used)] // helpers of tests: a failed step is a failed test

mod support;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use support::{Tidings, relay};
use tidings_app::authorization::Owner;
use tidings_core::{
    config::Locale,
    notify::{EventKind, Source, template},
};
use tidings_store::NewEvent;
use tidings_testkit::SmtpPeer;

/// Subject and text of a message the SMTP peer received.
fn parse(received: &Value) -> (String, String) {
    let data = received["data"].as_str().unwrap();
    let message = mail_parser::MessageParser::default().parse(data.as_bytes()).unwrap();
    (message.subject().unwrap_or_default().to_owned(), message.body_text(0).unwrap_or_default().into_owned())
}

fn admin(peer: &SmtpPeer, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut all = vec![("admin.addresses", "ops@example.com")];
    all.extend_from_slice(extra);
    relay(peer, &all)
}

#[tokio::test]
async fn every_event_kind_is_mailed_in_every_language() {
    let mut peer = SmtpPeer::start(&[]);
    let tidings = Tidings::start(admin(&peer, &[])).await;
    let mut expected = HashMap::new();
    for (locale, code) in [(Locale::En, "en"), (Locale::Fr, "fr"), (Locale::De, "de"), (Locale::Nl, "nl")] {
        tidings.reconfigure(&[("locale", code)]).await;
        let node = format!("node-{code}");
        for &kind in EventKind::ALL {
            let details: BTreeMap<String, String> =
                kind.fields().iter().map(|f| ((*f).to_owned(), format!("{f}-value"))).collect();
            match kind.source() {
                Source::Appliance => {
                    let (status, body) = tidings
                        .post("/api/v1/events", json!({ "kind": kind.id(), "node": node, "details": details }))
                        .await;
                    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
                }
                // Tidings' own kinds are raised inside (here on a node per language, or the repeat window would
                // hold them back after the first language).
                Source::Tidings => {
                    let event = NewEvent {
                        kind,
                        node: node.clone(),
                        details: details.clone(),
                        origin: "tidings".into(),
                        received_at: chrono::Utc::now(),
                    };
                    tidings.app.store().record_event(&event).await.unwrap();
                }
            }
            let facts = template::Facts { kind, node: &node, at: chrono::Utc::now(), details: &details, repeats: None };
            expected.insert(template::render(&facts, locale, chrono_tz::UTC).subject, (kind, code, node.clone()));
        }
        // One language at a time: the next reconfiguration must not overtake this language's mails.
        for _ in 0..EventKind::ALL.len() {
            let got = peer.next_message().await;
            let (subject, text) = parse(&got);
            let (kind, code, node) = expected.remove(&subject).unwrap_or_else(|| panic!("unexpected mail {subject:?}"));
            assert_eq!(got["rcpt_tos"], json!(["ops@example.com"]), "{kind} {code}");
            assert!(text.contains(&node) && text.contains(kind.id()), "{kind} {code}: {text}");
            assert!(template::placeholders(&text).is_empty(), "{kind} {code}: unfilled placeholder in {text}");
            for f in kind.fields() {
                assert!(text.contains(&format!("{f}-value")), "{kind} {code}: {f} missing from {text}");
            }
        }
    }
    assert!(expected.is_empty(), "never mailed: {:?}", expected.values().collect::<Vec<_>>());
    let events = wait_for_events(&tidings, |e| e.iter().all(|e| e["message_status"] == "delivered")).await;
    assert_eq!(events.len(), 4 * EventKind::ALL.len());
    assert!(events.iter().all(|e| e["state"] == "mailed"));
    let (_, listed) = tidings.get("/api/v1/events?limit=1").await;
    assert_eq!(listed["mail_path"]["ready"], true);
    tidings.stop().await;
}

#[tokio::test]
async fn repeats_are_counted_and_reported_when_the_window_closes() {
    let mut peer = SmtpPeer::start(&[]);
    let tidings = Tidings::start(admin(&peer, &[("admin.repeat_window", "1h")])).await;
    let event =
        json!({ "kind": "failover.primary_probe_failed_auto", "node": "backup-7", "details": { "probe": "icmp" } });
    for _ in 0..15 {
        let (status, body) = tidings.post("/api/v1/events", event.clone()).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    }
    let (first, text) = parse(&peer.next_message().await);
    assert!(first.contains("backup-7") && text.contains("probe: icmp"), "{first}\n{text}");
    assert!(!text.contains("more times"), "{text}");
    // Every repeat is counted, none mailed.
    let events =
        wait_for_events(&tidings, |events| events.iter().filter(|e| e["state"] == "counted").count() == 14).await;
    assert_eq!(events.iter().filter(|e| e["state"] == "mailed").count(), 1);

    // Close the window: one summary reports the fourteen.
    tidings.reconfigure(&[("admin.repeat_window", "1s")]).await;
    let (summary, text) = parse(&peer.next_message().await);
    assert_eq!(summary, first);
    assert!(text.contains("This happened 14 more times since"), "{text}");
    assert!(peer.received_now().is_empty());
    tidings.stop().await;
}

async fn wait_for_events(tidings: &Tidings, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (_, listed) = tidings.get("/api/v1/events?limit=1000").await;
        let events = listed["events"].as_array().unwrap().clone();
        if done(&events) {
            return events;
        }
        assert!(std::time::Instant::now() < deadline, "events never got there: {listed:#}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn bad_events_are_refused_naming_what_is_wrong() {
    let peer = SmtpPeer::start(&[]);
    let tidings = Tidings::start(admin(&peer, &[])).await;
    for (body, status, field) in [
        (json!({ "kind": "failover.unknown" }), StatusCode::UNPROCESSABLE_ENTITY, "kind"),
        (json!({ "kind": "notice.daily" }), StatusCode::UNPROCESSABLE_ENTITY, "kind"),
        (
            json!({ "kind": "failover.takeover", "details": { "Not A Key": "x" } }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "details",
        ),
        (
            json!({ "kind": "failover.takeover", "details": { "nested": { "a": 1 } } }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "details.nested",
        ),
        (
            json!({ "kind": "failover.takeover", "details": { "note": "a\r\nb" } }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "details",
        ),
        (json!({ "kind": "failover.takeover", "colour": "red" }), StatusCode::BAD_REQUEST, ""),
        (json!({ "node": "x" }), StatusCode::BAD_REQUEST, ""),
    ] {
        let (got, answer) = tidings.post("/api/v1/events", body.clone()).await;
        assert_eq!(got, status, "{body} -> {answer}");
        if !field.is_empty() {
            assert_eq!(answer["error"]["fields"][0]["field"], field, "{answer}");
        }
        assert!(!answer["error"]["message"].as_str().unwrap().is_empty());
    }
    let viewer = tidings
        .request(Method::POST, "/api/v1/events", Some(&tidings.viewer), Some(json!({ "kind": "failover.takeover" })))
        .await;
    assert_eq!(viewer.0, StatusCode::FORBIDDEN);
    let anonymous = tidings.request(Method::GET, "/api/v1/events", None, None).await;
    assert_eq!(anonymous.0, StatusCode::UNAUTHORIZED);
    let (_, listed) = tidings.request(Method::GET, "/api/v1/events", Some(&tidings.viewer), None).await;
    assert_eq!(listed["events"], json!([]), "nothing refused was recorded");
    let (_, kinds) = tidings.get("/api/v1/events/kinds").await;
    assert_eq!(kinds["kinds"].as_array().unwrap().len(), EventKind::ALL.len());
    tidings.stop().await;
}

#[tokio::test]
async fn a_missed_daily_notice_is_sent_on_start_and_not_again_after_a_restart() {
    let mut peer = SmtpPeer::start(&[]);
    // The slot (00:00 UTC) passed today; the last notice went yesterday: the daemon was down at the slot.
    let tidings = Tidings::start(admin(
        &peer,
        &[("admin.daily_notice", "true"), ("admin.daily_notice_time", "00:00"), ("admin.time_zone", "UTC")],
    ))
    .await;
    let yesterday = (chrono::Utc::now() - chrono::Duration::days(1)).date_naive().to_string();
    tidings.app.store().set_meta("notify.daily_notice_date", Some(&yesterday)).await.unwrap();
    let (subject, text) = parse(&peer.next_message().await);
    assert!(subject.ends_with(": daily communication notice"), "{subject}");
    assert!(text.contains("Running since:") && text.contains("Queue: 0 queued"), "{text}");
    assert!(text.contains("OAuth token: not used"), "{text}");

    let tidings = tidings.restart().await;
    // Once the restarted notifier handled an event, it also looked at the notice: no second one.
    tidings.post("/api/v1/events", json!({ "kind": "failover.backup_disabled" })).await;
    let (after_restart, _) = parse(&peer.next_message().await);
    assert!(after_restart.contains("backup"), "{after_restart}");
    assert!(peer.received_now().is_empty());
    let (_, notices) = tidings.get("/api/v1/events?kind=notice.daily").await;
    assert_eq!(notices["events"].as_array().unwrap().len(), 1);
    tidings.stop().await;
}

#[tokio::test]
async fn saving_with_test_email_on_reports_delivery_within_the_request() {
    let mut peer = SmtpPeer::start(&[]);
    let tidings = Tidings::start(admin(&peer, &[])).await;
    let (status, saved) = tidings
        .request(
            Method::PATCH,
            "/api/v1/email-config",
            Some(&tidings.token),
            Some(
                json!({ "admin.test_email_on_save": true, "admin.addresses": ["ops@example.com", "noc@example.com"] }),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    assert_eq!(saved["test_email"]["result"], "delivered", "{saved}");
    let got = peer.next_message().await;
    assert_eq!(got["rcpt_tos"], json!(["ops@example.com", "noc@example.com"]));
    let (subject, text) = parse(&got);
    assert!(subject.ends_with(": test email") && text.contains("requested by api:operator"), "{subject}\n{text}");

    // On demand, too.
    let (status, outcome) = tidings.post("/api/v1/email-config/test", json!({})).await;
    assert_eq!((status, outcome["result"].as_str()), (StatusCode::OK, Some("delivered")), "{outcome}");
    peer.next_message().await;
    // A viewer may not.
    let (status, _) = tidings.request(Method::POST, "/api/v1/email-config/test", Some(&tidings.viewer), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    tidings.stop().await;
}

#[tokio::test]
async fn a_refused_test_email_reports_the_reply_and_its_explanation() {
    let peer =
        SmtpPeer::start(&["--fail", "data=554 5.2.252 SendAsDenied; alerts@example.com not allowed to send as x"]);
    let tidings = Tidings::start(admin(&peer, &[])).await;
    let (status, saved) = tidings
        .request(
            Method::PATCH,
            "/api/v1/email-config",
            Some(&tidings.token),
            Some(json!({ "admin.test_email_on_save": "true" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    let test = &saved["test_email"];
    assert_eq!(test["result"], "failed", "{saved}");
    assert!(test["reply"].as_str().unwrap().starts_with("554 5.2.252 SendAsDenied"), "{test}");
    assert!(test["explanation"].as_str().unwrap().contains("Send As"), "{test}");
    tidings.stop().await;
}

#[tokio::test]
async fn a_test_email_without_an_answer_in_time_is_reported_pending() {
    let mut peer = SmtpPeer::start(&["--fail", "rcpt=451 4.3.0 Try again later*1"]);
    let tidings = Tidings::start(admin(&peer, &[("admin.test_email_wait", "0s")])).await;
    let (status, outcome) = tidings.post("/api/v1/email-config/test", json!({})).await;
    assert_eq!((status, outcome["result"].as_str()), (StatusCode::ACCEPTED, Some("pending")), "{outcome}");
    let id = outcome["message_id"].as_i64().unwrap();
    // The caller polls the message: first deferred with the reply, then delivered.
    let message = tidings.wait_for_status(id, "delivered").await;
    assert_eq!(message["attempt_log"][0]["reply_code"], 451);
    peer.next_message().await;
    tidings.stop().await;
}

#[tokio::test]
async fn an_alert_waits_while_the_relay_refuses_us_and_goes_once_it_is_fixed() {
    let mut peer = SmtpPeer::start_tls(&["--user", "device", "--password", "right"]);
    let tidings = Tidings::start(admin(
        &peer,
        &[("smtp.auth", "password"), ("smtp.username", "device"), ("smtp.password", "wrong")],
    ))
    .await;
    tidings.app.token_failed(Owner::Relay, "invalid_grant: AADSTS70000", "Sign in again.").await.unwrap();
    // Recorded and shown at once, its mail waiting in the outbox while authentication fails.
    let events = wait_for_events(&tidings, |e| e.first().is_some_and(|e| e["message_status"] == "deferred")).await;
    assert_eq!(events[0]["kind"], "oauth.reauthorization_required");
    assert_eq!(events[0]["details"]["reason"], "invalid_grant: AADSTS70000");
    tidings.reconfigure(&[("smtp.password", "right")]).await;
    let (subject, text) = parse(&peer.next_message().await);
    assert!(subject.contains("sign in again") && text.contains("AADSTS70000"), "{subject}\n{text}");
    tidings.stop().await;
}

/// The client certificate in use, ending within the first of `oauth.expiry_warnings`: the admin contacts are
/// told once, whatever restarts and polls follow.
#[tokio::test]
async fn a_client_certificate_near_its_end_is_announced_once() {
    let mut peer = SmtpPeer::start(&[]);
    let tidings = Tidings::start(admin(&peer, &[])).await;
    let made = tidings.app.make_client_certificate("test", 10, false).await.unwrap();
    // Kept but not in use: nothing to say (the next mail is another event's).
    tidings.reconfigure(&[("oauth.expiry_warnings", "30d 7d")]).await;
    tidings.post("/api/v1/events", json!({ "kind": "failover.sync_failed" })).await;
    let (first, _) = parse(&peer.next_message().await);
    assert!(!first.contains("certificate"), "a certificate not in use is not announced: {first}");
    tidings.reconfigure(&[("oauth.client_credential", "certificate")]).await;
    let (subject, text) = parse(&peer.next_message().await);
    assert!(subject.contains("the OAuth client certificate expires in 9 days"), "{subject}");
    assert!(
        text.contains(&made.sha1_thumbprint()) && text.contains("tidings oauth certificate create --force"),
        "{text}"
    );

    let tidings = tidings.restart().await;
    tidings.post("/api/v1/events", json!({ "kind": "failover.backup_disabled" })).await;
    let (after_restart, _) = parse(&peer.next_message().await);
    assert!(after_restart.contains("backup"), "{after_restart}");
    assert!(peer.received_now().is_empty(), "told once a day");
    let (_, events) = tidings.get("/api/v1/events?kind=oauth.certificate_expiring").await;
    assert_eq!(events["events"].as_array().unwrap().len(), 1);
    tidings.stop().await;
}

/// The client secret's expiry as entered: told at the nearest warning it passed (not once per warning passed at
/// once), and told again for a new secret.
#[tokio::test]
async fn a_client_secret_near_its_end_is_announced_once_per_secret() {
    let mut peer = SmtpPeer::start(&[]);
    let tidings = Tidings::start(admin(&peer, &[])).await;
    let soon = (chrono::Utc::now() + chrono::Duration::days(5)).date_naive().to_string();
    tidings.reconfigure(&[("oauth.client_secret", "app-secret"), ("oauth.client_secret_expires", &soon)]).await;
    let (subject, text) = parse(&peer.next_message().await);
    assert!(subject.contains("the OAuth client secret expires in 4 days"), "{subject}");
    assert!(text.contains("tidings config set-secret oauth.client_secret"), "{text}");
    tidings.post("/api/v1/events", json!({ "kind": "failover.backup_disabled" })).await;
    let (next, _) = parse(&peer.next_message().await);
    assert!(next.contains("backup"), "told once, not at 30 days and again at 7: {next}");

    // A new secret, with its own date: raised again when its time comes (mailed unless within the repeat window
    // of the first, as any event is).
    let later = (chrono::Utc::now() + chrono::Duration::days(20)).date_naive().to_string();
    tidings.reconfigure(&[("oauth.client_secret", "new-secret"), ("oauth.client_secret_expires", &later)]).await;
    let raised = support::eventually("the new secret's event", std::time::Duration::from_secs(10), async || {
        let (_, events) = tidings.get("/api/v1/events?kind=oauth.client_secret_expiring").await;
        let events = events["events"].as_array().cloned().unwrap_or_default();
        if events.len() == 2 { Ok(events) } else { Err(format!("{events:?}")) }
    })
    .await;
    assert_eq!(raised[0]["details"]["days"], "19", "{raised:?}");
    tidings.stop().await;
}

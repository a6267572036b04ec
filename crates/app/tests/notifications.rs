//! Notifications on a real data directory under a controlled clock: the daily notice across restarts and a
//! daylight-saving change, the repeat window, dead letters and refused events.

#![allow(clippy::unwrap_used)] // helpers of tests: a failed step is a failed test

use chrono::{DateTime, Utc};
use std::{collections::BTreeMap, path::Path};
use tidings_app::authorization::Owner;
use tidings_app::{App, Error, InitOptions, data_dir::DataDir};
use tidings_core::{notify::EventKind, outbox::Status};
use tidings_store::EventState;

async fn fresh(dir: &Path, pairs: &[(&str, &str)]) -> App {
    let options = InitOptions { admin_username: "admin".into(), ..Default::default() };
    let app = App::init(DataDir::new(dir), options).await.unwrap().app;
    let mut edits = vec![
        ("sender".to_owned(), "alerts@example.com".to_owned()),
        ("smtp.host".to_owned(), "smtp.example.com".to_owned()),
        ("admin.addresses".to_owned(), "ops@example.com noc@example.com".to_owned()),
    ];
    edits.extend(pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    app.update("test", &edits).await.unwrap();
    app
}

/// A restart: the data directory opened afresh.
async fn reopen(dir: &Path) -> App {
    App::open(DataDir::new(dir), None).await.unwrap()
}

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

const STARTED: &str = "2026-11-20T06:00:00Z";

async fn notice(app: &App, now: &str) -> Option<i64> {
    app.daily_notice(at(now), at(STARTED), "active").await.unwrap()
}

#[tokio::test]
async fn the_daily_notice_goes_once_a_day_at_local_time_across_restarts() {
    let tmp = tempfile::tempdir().unwrap();
    let daily =
        [("admin.daily_notice", "true"), ("admin.daily_notice_time", "08:00"), ("admin.time_zone", "Europe/Brussels")];
    let app = fresh(tmp.path(), &daily).await;
    // Enabled at 10:00 local, after the slot: the first notice is tomorrow's.
    assert_eq!(notice(&app, "2026-11-22T09:00:00Z").await, None);
    assert_eq!(notice(&app, "2026-11-23T06:59:00Z").await, None, "before the slot (08:00 CET = 07:00 UTC)");
    let first = notice(&app, "2026-11-23T07:00:00Z").await.expect("the notice at the slot");
    assert_eq!(notice(&app, "2026-11-23T07:01:00Z").await, None, "once a day");

    // Restarted after the slot: not twice.
    let app = reopen(tmp.path()).await;
    assert_eq!(notice(&app, "2026-11-23T07:05:00Z").await, None);

    // Down from before the next slot until well after it: sent on start, once.
    let app = reopen(tmp.path()).await;
    let caught_up = notice(&app, "2026-11-24T11:30:00Z").await.expect("a missed notice is sent on start");
    assert_eq!(notice(&app, "2026-11-24T11:31:00Z").await, None);
    // Down for three days: one notice, not three.
    let app = reopen(tmp.path()).await;
    assert!(notice(&app, "2026-11-27T12:00:00Z").await.is_some());
    assert_eq!(notice(&app, "2026-11-27T12:00:01Z").await, None);

    let message = app.message(first).await.unwrap().unwrap();
    assert_eq!(message.summary.origin, "notification");
    assert_eq!(message.summary.subject.as_deref().map(|s| s.ends_with(": daily communication notice")), Some(true));
    let to: Vec<&str> = message.summary.recipients.iter().map(|r| r.address.as_str()).collect();
    assert_eq!(to, ["ops@example.com", "noc@example.com"]);
    assert!(app.message(caught_up).await.unwrap().is_some());
    let notices = app.events(Some(EventKind::DailyNotice), 10, None).await.unwrap();
    assert_eq!(notices.len(), 3);
    assert!(notices.iter().all(|e| e.state == EventState::Mailed && e.message_status == Some(Status::Queued)));
}

#[tokio::test]
async fn the_daily_notice_follows_daylight_saving_and_can_be_switched_off() {
    let tmp = tempfile::tempdir().unwrap();
    let daily =
        [("admin.daily_notice", "true"), ("admin.daily_notice_time", "08:00"), ("admin.time_zone", "Europe/Brussels")];
    let app = fresh(tmp.path(), &daily).await;
    assert_eq!(notice(&app, "2026-03-28T07:30:00Z").await, None, "enabled after Saturday's slot");
    // Sunday 29 March 2026 is the spring-forward day: 08:00 local is 06:00 UTC.
    assert_eq!(notice(&app, "2026-03-29T05:59:00Z").await, None);
    assert!(notice(&app, "2026-03-29T06:00:00Z").await.is_some());
    // Autumn: 25 October 2026, 08:00 local is 07:00 UTC again.
    assert!(notice(&app, "2026-10-24T06:00:00Z").await.is_some(), "Saturday, still summer time");
    assert_eq!(notice(&app, "2026-10-25T06:30:00Z").await, None);
    assert!(notice(&app, "2026-10-25T07:00:00Z").await.is_some());

    // Off: nothing, and switching it on again starts afresh instead of catching up.
    app.update("test", &[("admin.daily_notice".into(), "false".into())]).await.unwrap();
    assert_eq!(notice(&app, "2026-10-28T09:00:00Z").await, None);
    app.update("test", &[("admin.daily_notice".into(), "true".into())]).await.unwrap();
    assert_eq!(notice(&app, "2026-10-28T09:00:00Z").await, None);
    assert!(notice(&app, "2026-10-29T07:00:00Z").await.is_some());
}

fn detail(k: &str, v: &str) -> BTreeMap<String, String> {
    BTreeMap::from([(k.to_owned(), v.to_owned())])
}

#[tokio::test]
async fn repeats_inside_the_window_are_counted_and_reported_by_the_next_mail() {
    let tmp = tempfile::tempdir().unwrap();
    let app = fresh(tmp.path(), &[("admin.repeat_window", "1h"), ("locale", "fr")]).await;
    let t0 = Utc::now();
    let minutes = |m: i64| t0 + chrono::Duration::minutes(m);
    let emit = |node: &'static str| {
        let app = app.clone();
        async move {
            app.emit_event("api:monitor", "failover.sync_failed", Some(node), detail("attempt", "1")).await.unwrap()
        }
    };
    emit("primary-1").await;
    assert_eq!(app.dispatch_events(minutes(0)).await.unwrap().mailed, 1);
    for _ in 0..3 {
        emit("primary-1").await;
    }
    emit("primary-2").await; // another node has its own window
    let d = app.dispatch_events(minutes(10)).await.unwrap();
    assert_eq!((d.mailed, d.counted), (1, 3));
    assert_eq!(app.dispatch_events(minutes(59)).await.unwrap().mailed, 0, "the window is still open");

    // The window closes on three counted repeats: one summary reporting them.
    assert_eq!(app.dispatch_events(minutes(61)).await.unwrap().mailed, 1);
    assert_eq!(app.dispatch_events(minutes(62)).await.unwrap().mailed, 0);
    let events = app.events(Some(EventKind::SyncFailed), 100, None).await.unwrap();
    let states: Vec<(&str, EventState, u32)> =
        events.iter().rev().map(|e| (e.node.as_str(), e.state, e.repeats)).collect();
    assert_eq!(
        states,
        [
            ("primary-1", EventState::Mailed, 0),
            ("primary-1", EventState::Counted, 0),
            ("primary-1", EventState::Counted, 0),
            ("primary-1", EventState::Mailed, 3),
            ("primary-2", EventState::Mailed, 0),
        ]
    );
    let summary = app.message(events[1].message_id.unwrap()).await.unwrap().unwrap();
    let text =
        String::from_utf8_lossy(&app.store().message_content(summary.summary.id).await.unwrap().unwrap()).into_owned();
    assert!(text.contains("3 fois de plus"), "{text}");
}

#[tokio::test]
async fn events_wait_while_no_admin_contact_can_be_addressed() {
    let tmp = tempfile::tempdir().unwrap();
    let options = InitOptions { admin_username: "admin".into(), ..Default::default() };
    let app = App::init(DataDir::new(tmp.path()), options).await.unwrap().app;
    app.update("test", &[("sender".into(), "alerts@example.com".into())]).await.unwrap();
    app.token_failed(Owner::Relay, "invalid_grant: AADSTS70000", "Sign in again.").await.unwrap();
    assert_eq!(app.dispatch_events(Utc::now()).await.unwrap().mailed, 0);
    let alert = &app.events(None, 10, None).await.unwrap()[0];
    assert_eq!((alert.kind, alert.state), (EventKind::ReauthorizationRequired, EventState::Pending));
    assert_eq!(alert.details["reason"], "invalid_grant: AADSTS70000");
    assert!(matches!(app.send_test_email("cli:me").await, Err(Error::Invalid(_) | Error::NotConfigured(_))));

    app.update("test", &[("admin.addresses".into(), "ops@example.com".into())]).await.unwrap();
    assert_eq!(app.dispatch_events(Utc::now()).await.unwrap().mailed, 1);
    assert_eq!(app.event(alert.id).await.unwrap().unwrap().state, EventState::Mailed);
}

#[tokio::test]
async fn bad_events_are_refused_and_nothing_is_recorded() {
    let tmp = tempfile::tempdir().unwrap();
    let app = fresh(tmp.path(), &[]).await;
    let refused = |kind: &'static str, node: Option<&'static str>, details: BTreeMap<String, String>| {
        let app = app.clone();
        async move {
            match app.emit_event("api:x", kind, node, details).await {
                Err(Error::Invalid(e)) => (e.0[0].field.clone(), e.0[0].message.clone()),
                other => panic!("accepted {kind}: {other:?}"),
            }
        }
    };
    let (field, why) = refused("failover.nonsense", None, BTreeMap::new()).await;
    assert!(field == "kind" && why.contains("failover.takeover"), "{why}");
    let (field, why) = refused("delivery.dead_letter", None, BTreeMap::new()).await;
    assert!(field == "kind" && why.contains("raised by Tidings itself"), "{why}");
    let (field, why) = refused("failover.takeover", None, detail("Bad Key", "x")).await;
    assert!(field == "details" && why.contains("Bad Key"), "{why}");
    let (field, _) = refused("failover.takeover", None, detail("note", "two\nlines")).await;
    assert_eq!(field, "details");
    let (field, _) = refused("failover.takeover", Some(" "), BTreeMap::new()).await;
    assert_eq!(field, "node");
    assert!(app.events(None, 10, None).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_google_refusal_a_week_after_sign_in_is_explained_as_a_consent_screen_in_testing() {
    let tmp = tempfile::tempdir().unwrap();
    let google =
        [("smtp.auth", "oauth2"), ("oauth.provider", "google"), ("oauth.client_id", "1-x.apps.googleusercontent.com")];
    let app = fresh(tmp.path(), &google).await;
    let said = "invalid_grant: Token has been expired or revoked.";
    let general = "Google no longer accepts this authorization.";
    let sign_in = |ago: chrono::Duration| {
        let app = app.clone();
        async move {
            let audit = tidings_core::audit::NewAuditEntry {
                actor: "test".into(),
                action: "oauth.authorize".into(),
                fields: vec![],
            };
            let grant = tidings_store::Grant::Acquired {
                sealed_refresh_token: None,
                account: Some("alerts@example.com"),
                client_credentials: false,
                audit: &audit,
            };
            app.store().authorization_granted(Owner::Relay, grant, Utc::now() - ago).await.unwrap();
        }
    };

    sign_in(chrono::Duration::days(2)).await;
    assert_eq!(app.token_failed(Owner::Relay, said, general).await.unwrap(), general, "two days: not the sign");

    sign_in(chrono::Duration::days(7) + chrono::Duration::hours(1)).await;
    let recorded = app.token_failed(Owner::Relay, said, general).await.unwrap();
    assert!(recorded.contains("7 days after the sign-in") && recorded.contains("Testing"), "{recorded}");
    let record = app.authorization(Owner::Relay).await.unwrap().unwrap();
    assert_eq!(record.failure.map(|(_, explanation)| explanation), Some(recorded.clone()), "what the status shows");
    let alert = &app.events(None, 1, None).await.unwrap()[0];
    assert_eq!(
        (alert.kind, alert.details["explanation"].as_str()),
        (EventKind::ReauthorizationRequired, recorded.as_str())
    );
}

/// A certificate and key in PEM files, the certificate ending `days` from now.
fn certificate_files(dir: &Path, days: i64) -> (String, String) {
    use chrono::Datelike;
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    let end = (Utc::now() + chrono::Duration::days(days)).date_naive();
    params.not_after = rcgen::date_time_ymd(end.year(), end.month() as u8, end.day() as u8);
    params.distinguished_name.push(rcgen::DnType::CommonName, "gateway.example.com");
    let cert = params.self_signed(&key).unwrap();
    let (cert_file, key_file) = (dir.join("gateway.crt"), dir.join("gateway.key"));
    std::fs::write(&cert_file, cert.pem()).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    (cert_file.display().to_string(), key_file.display().to_string())
}

/// Every credential with an end is listed with it; those near it raise their events once, the relay's
/// certificate excepted (delivery raises that one).
#[tokio::test]
async fn every_credential_s_end_is_listed_and_announced_ahead() {
    let tmp = tempfile::tempdir().unwrap();
    let (cert_file, key_file) = certificate_files(tmp.path(), 10);
    let key_expires = (Utc::now() + chrono::Duration::days(60)).date_naive().to_string();
    let app = fresh(
        tmp.path(),
        &[
            ("smtp.auth", "oauth2"),
            ("oauth.provider", "google"),
            ("oauth.client_id", "1-x.apps.googleusercontent.com"),
            ("oauth.service_account_key_expires", &key_expires),
            ("gateway.listen", "127.0.0.1:2525"),
            ("gateway.cert_file", &cert_file),
            ("gateway.key_file", &key_file),
        ],
    )
    .await;
    // Google ends a refresh token unused for six months: this one was last used 170 days ago.
    let audit =
        tidings_core::audit::NewAuditEntry { actor: "test".into(), action: "oauth.authorize".into(), fields: vec![] };
    let grant = tidings_store::Grant::Acquired {
        sealed_refresh_token: None,
        account: Some("alerts@example.com"),
        client_credentials: false,
        audit: &audit,
    };
    let used = Utc::now() - chrono::Duration::days(170);
    app.store().authorization_granted(Owner::Relay, grant, used).await.unwrap();
    app.relay_certificate_seen("smtp.example.com", "AB:CD", Utc::now() + chrono::Duration::days(3), "CN=relay")
        .await
        .unwrap();
    let config = app.current().await.unwrap().config;

    let listed: Vec<(String, i64)> = app
        .lifetimes(&config)
        .await
        .unwrap()
        .iter()
        .map(|l| (l.credential.clone(), (l.ends_at - Utc::now()).num_days()))
        .collect();
    let names: Vec<&str> = listed.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["relay_certificate", "gateway_certificate", "authorization"], "soonest first: {listed:?}");
    assert!((9..=10).contains(&listed[1].1) && (11..=12).contains(&listed[2].1), "{listed:?}");
    // The service account's date applies only to a key file in use.
    assert!(!names.contains(&"service_account_key"));

    let raised = app.check_expiries(&config, Utc::now()).await.unwrap();
    assert_eq!(raised.len(), 2, "the gateway's certificate and the authorization");
    let events = app.events(None, 10, None).await.unwrap();
    let kinds: Vec<EventKind> = events.iter().map(|e| e.kind).collect();
    assert!(kinds.contains(&EventKind::ServerCertificateExpiring) && kinds.contains(&EventKind::AuthorizationUnused));
    let gateway = events.iter().find(|e| e.kind == EventKind::ServerCertificateExpiring).unwrap();
    assert_eq!(
        (gateway.details["service"].as_str(), gateway.details["file"].as_str()),
        ("SMTP gateway", cert_file.as_str())
    );
    assert!(gateway.details["subject"].contains("gateway.example.com"), "{:?}", gateway.details);
    let unused = events.iter().find(|e| e.kind == EventKind::AuthorizationUnused).unwrap();
    assert_eq!(unused.details["account"], "alerts@example.com");
    assert!(app.check_expiries(&config, Utc::now()).await.unwrap().is_empty(), "once at each warning");

    // A refresh moves the authorization's end; a new certificate in the same file is warned about again.
    app.token_refreshed(Owner::Relay, None).await.unwrap();
    certificate_files(tmp.path(), 5);
    let raised = app.check_expiries(&config, Utc::now()).await.unwrap();
    assert_eq!(raised.len(), 1, "the new certificate only");
    let authorization =
        app.lifetimes(&config).await.unwrap().into_iter().find(|l| l.credential == "authorization").unwrap();
    assert!((authorization.ends_at - Utc::now()).num_days() >= 181, "counted from the refresh");
}

/// The web interface's certificate, as the daemon records it at start: listed with its end; gone when the daemon
/// serves plain HTTP again.
#[tokio::test]
async fn the_https_certificate_the_daemon_serves_is_listed() {
    let tmp = tempfile::tempdir().unwrap();
    let app = fresh(tmp.path(), &[]).await;
    let (cert_file, _) = certificate_files(tmp.path(), 100);
    app.serving_https_with(Some(Path::new(&cert_file))).await.unwrap();
    let config = app.current().await.unwrap().config;
    let listed = app.lifetimes(&config).await.unwrap();
    let https = listed.iter().find(|l| l.credential == "https_certificate").expect("listed");
    assert!(
        https.subject.contains("gateway.example.com") && (99..=100).contains(&(https.ends_at - Utc::now()).num_days())
    );
    assert!(app.check_expiries(&config, Utc::now()).await.unwrap().is_empty(), "100 days: nothing to say yet");
    app.serving_https_with(None).await.unwrap();
    assert!(!app.lifetimes(&config).await.unwrap().iter().any(|l| l.credential == "https_certificate"));
}

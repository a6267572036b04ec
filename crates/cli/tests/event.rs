//! Events and test emails from the command line: emit, kinds, list, and `config test` / test on save.

#![allow(clippy::unwrap_used)] // helpers of tests: a failed step is a failed test

mod support;

use support::*;
use tidings_testkit::SmtpPeer;

#[test]
fn an_event_emitted_from_the_cli_is_mailed_by_the_daemon() {
    let mut peer = SmtpPeer::start(&[]);
    let tmp = tempfile::tempdir().unwrap();
    ok(tmp.path(), &["init"]);
    configure_relay(tmp.path(), peer.port, &["admin.addresses=ops@example.com", "locale=de"]);
    let out = ok(
        tmp.path(),
        &[
            "event",
            "emit",
            "failover.version_mismatch",
            "--node",
            "backup-2",
            "--detail",
            "primary_version=7.2",
            "--detail",
            "backup_version=7.1",
        ],
    );
    assert!(
        out.contains("Recorded event 1 (failover.version_mismatch on backup-2)")
            && out.contains("No daemon is running"),
        "{out}"
    );
    assert!(ok(tmp.path(), &["event", "list"]).contains("waiting to be mailed"));

    let _daemon = Daemon::start(tmp.path(), &["--queue-poll-interval", "200ms", "--notify-poll-interval", "200ms"]);
    let got = peer.next_message_blocking();
    let data = got["data"].as_str().unwrap();
    let message = mail_parser::MessageParser::default().parse(data.as_bytes()).unwrap();
    assert!(
        message
            .subject()
            .unwrap()
            .ends_with("backup-2: Primär- und Backup-Knoten haben unterschiedliche Produktversionen")
    );
    let text = message.body_text(0).unwrap();
    assert!(text.contains("primary_version: 7.2") && text.contains("backup_version: 7.1"), "{text}");
    eventually("the event's mail to be delivered", || {
        ok(tmp.path(), &["event", "list"]).contains("mailed as message 1 (delivered)")
    });
}

#[test]
fn bad_events_are_refused_and_the_catalogue_is_listed() {
    let tmp = tempfile::tempdir().unwrap();
    ok(tmp.path(), &["init"]);
    let err = fails(tmp.path(), &["event", "emit", "failover.nope"]);
    assert!(
        err.contains("kind: unknown event kind \"failover.nope\"") && err.contains("Nothing was recorded"),
        "{err}"
    );
    let err = fails(tmp.path(), &["event", "emit", "failover.takeover", "--detail", "novalue"]);
    assert!(err.contains("not key=value"), "{err}");
    let err = fails(tmp.path(), &["event", "emit", "oauth.reauthorization_required"]);
    assert!(err.contains("raised by Tidings itself"), "{err}");
    assert!(ok(tmp.path(), &["event", "list"]).contains("No events."));
    let kinds = ok(tmp.path(), &["event", "kinds"]);
    assert_eq!(kinds.lines().count(), 24, "{kinds}");
    assert!(kinds.contains("failover.takeover") && kinds.contains("critical"), "{kinds}");
    assert!(kinds.contains("Failover: the backup takes over"), "each kind with its title: {kinds}");
    let listed: serde_json::Value = serde_json::from_str(&ok(tmp.path(), &["event", "kinds", "--json"])).unwrap();
    let takeover = listed.as_array().unwrap().iter().find(|k| k["kind"] == "failover.takeover").unwrap();
    assert_eq!(
        (takeover["title"].as_str(), takeover["severity"].as_str()),
        (Some("Failover: the backup takes over"), Some("critical"))
    );
}

#[test]
fn config_test_and_test_on_save_report_what_the_relay_said() {
    let mut peer = SmtpPeer::start(&["--fail", "rcpt=550 5.1.1 User unknown*1"]);
    let tmp = tempfile::tempdir().unwrap();
    ok(tmp.path(), &["init"]);
    configure_relay(tmp.path(), peer.port, &["admin.addresses=ops@example.com"]);
    let out = ok(tmp.path(), &["config", "test"]);
    assert!(out.contains("Test email queued as message 1") && out.contains("No daemon is running"), "{out}");

    let _daemon = Daemon::start(tmp.path(), &["--queue-poll-interval", "200ms"]);
    // The first test email (queued above) meets the scripted refusal.
    eventually("message 1 to fail", || ok(tmp.path(), &["queue", "list", "--status", "failed"]).contains("test email"));
    let out = ok(tmp.path(), &["config", "set", "admin.test_email_on_save=true"]);
    assert!(out.contains("Saved revision") && out.contains("Delivered: the relay accepted the test email."), "{out}");
    let got = peer.next_message_blocking();
    assert!(got["data"].as_str().unwrap().contains("requested by cli:"));
}

//! The outbox from the command line: send, queue list / show / retry / purge, and API tokens.

#![allow(clippy::unwrap_used)] // helpers of tests: a failed step is a failed test

mod support;

use support::*;
use tidings_testkit::SmtpPeer;

#[test]
fn a_message_sent_from_the_cli_while_no_daemon_runs_is_delivered_once_one_starts() {
    let mut peer = SmtpPeer::start(&[]);
    let tmp = tempfile::tempdir().unwrap();
    ok(tmp.path(), &["init"]);
    configure_relay(tmp.path(), peer.port, &[]);
    let out = run(tmp.path(), &["send", "--to", "ops@example.com", "--subject", "From the CLI"], "Body from stdin\n");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).starts_with("Queued message 1 (Message-ID <"), "{}", stdout(&out));
    assert!(ok(tmp.path(), &["queue", "list"]).contains("queued"));

    let _daemon = Daemon::start(tmp.path(), &["--queue-poll-interval", "200ms"]);
    let got = peer.next_message_blocking();
    assert!(got["data"].as_str().unwrap().contains("Subject: From the CLI\r\n"));
    assert!(got["data"].as_str().unwrap().contains("Body from stdin"));
    eventually("message 1 to be delivered", || {
        ok(tmp.path(), &["queue", "list", "--status", "delivered"]).contains("From the CLI")
    });
    let shown = ok(tmp.path(), &["queue", "show", "1"]);
    assert!(
        shown.contains("Message 1 (delivered)") && shown.contains("#1 ") && shown.contains("delivered: 250"),
        "{shown}"
    );
    assert!(shown.contains("note: the connection to the relay is not encrypted"), "{shown}");
}

#[test]
fn bad_messages_are_refused_with_the_field_and_nothing_is_queued() {
    let tmp = tempfile::tempdir().unwrap();
    ok(tmp.path(), &["init"]);
    let err = fails(tmp.path(), &["send", "--to", "ops@example.com", "--body", "x"]);
    assert!(err.contains("no sender address is configured"), "{err}");
    ok(tmp.path(), &["config", "set", "sender=alerts@example.com"]);
    let err = fails(tmp.path(), &["send", "--to", "not an address", "--subject", "a\nb", "--body", "x"]);
    assert!(err.contains("to[0]") && err.contains("subject") && err.contains("Nothing was queued"), "{err}");
    assert!(ok(tmp.path(), &["queue", "list"]).contains("No messages"));
}

#[test]
fn failed_messages_are_retried_and_purged_from_the_cli() {
    let mut peer = SmtpPeer::start(&["--fail", "rcpt=550 5.1.1 no such user*1"]);
    let tmp = tempfile::tempdir().unwrap();
    ok(tmp.path(), &["init"]);
    configure_relay(tmp.path(), peer.port, &[]);
    let _daemon = Daemon::start(tmp.path(), &["--queue-poll-interval", "200ms"]);
    ok(tmp.path(), &["send", "--to", "ops@example.com", "--subject", "refused once", "--body", "x"]);
    eventually("the refusal", || ok(tmp.path(), &["queue", "list", "--status", "failed"]).contains("refused once"));
    let shown = ok(tmp.path(), &["queue", "show", "1"]);
    assert!(shown.contains("permanent at rcpt_to: 550 5.1.1 no such user") && shown.contains("what to do:"), "{shown}");
    assert!(fails(tmp.path(), &["queue", "retry", "99"]).contains("no message 99"));
    assert!(ok(tmp.path(), &["queue", "retry", "1"]).contains("queued again"));
    peer.next_message_blocking();
    eventually("the delivery", || ok(tmp.path(), &["queue", "list", "--status", "delivered"]).contains("refused once"));
    assert!(fails(tmp.path(), &["queue", "retry", "1"]).contains("is delivered"));
    assert!(fails(tmp.path(), &["queue", "purge", "--status", "queued"]).contains("only delivered or failed"));
    assert!(ok(tmp.path(), &["queue", "purge", "--status", "delivered"]).contains("Purged 1 delivered"));
    assert!(ok(tmp.path(), &["audit"]).contains("queue.purge"));
}

#[test]
fn api_tokens_are_shown_once_listed_without_value_and_revoked() {
    let tmp = tempfile::tempdir().unwrap();
    ok(tmp.path(), &["init"]);
    let out = run(tmp.path(), &["api-token", "create", "--name", "monitoring", "--role", "viewer"], "");
    let token = stdout(&out).trim().to_owned();
    assert!(token.starts_with("tdg_") && token.len() > 40, "{token}");
    assert!(stderr(&out).contains("shown only now"));
    let list = ok(tmp.path(), &["api-token", "list"]);
    assert!(
        list.contains("monitoring") && list.contains("viewer") && list.contains("never used") && !list.contains(&token)
    );
    assert!(
        fails(tmp.path(), &["api-token", "create", "--name", "x", "--role", "root"]).contains("network_administrator")
    );
    ok(tmp.path(), &["api-token", "revoke", "1"]);
    assert!(ok(tmp.path(), &["api-token", "list"]).contains("revoked"));
    assert!(fails(tmp.path(), &["api-token", "revoke", "1"]).contains("no active token 1"));
    for entry in std::fs::read_dir(tmp.path()).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(!bytes.windows(token.len()).any(|w| w == token.as_bytes()), "the token is stored only hashed");
    }
}

#[test]
fn queue_show_says_a_message_waits_for_its_identitys_day_budget() {
    let mut peer = SmtpPeer::start(&[]);
    let tmp = tempfile::tempdir().unwrap();
    ok(tmp.path(), &["init"]);
    configure_relay(tmp.path(), peer.port, &["delivery.identity_recipients_per_day=1"]);
    let _daemon = Daemon::start(tmp.path(), &["--queue-poll-interval", "200ms"]);
    ok(tmp.path(), &["send", "--to", "ops@example.com", "--subject", "first", "--body", "x"]);
    peer.next_message_blocking();
    eventually("the first delivered", || ok(tmp.path(), &["queue", "list", "--status", "delivered"]).contains("first"));
    ok(tmp.path(), &["send", "--to", "ops@example.com", "--subject", "second", "--body", "x"]);
    eventually("the second to wait for the budget", || ok(tmp.path(), &["queue", "show", "2"]).contains("waiting:"));
    let shown = ok(tmp.path(), &["queue", "show", "2"]);
    assert!(
        shown.contains("its identity sent to 1 recipients in 24 hours, its budget is 1")
            && shown.contains("delivery.identity_recipients_per_day"),
        "{shown}"
    );
    assert!(peer.received_now().is_empty(), "the second is not sent");
}

//! Durability: a daemon killed with SIGKILL in the middle of deliveries loses nothing it accepted. After a
//! restart every message is delivered, and a message that was being sent is sent at most once more.

#![allow(clippy::unwrap_used)] // helpers of tests: a failed step is a failed test

mod support;

use serde_json::json;
use std::collections::BTreeMap;
use support::*;
use tidings_testkit::SmtpPeer;

const MESSAGES: usize = 40;

#[test]
fn every_accepted_message_is_delivered_after_a_kill_and_restart() {
    // The relay takes 0.3 s to answer each DATA, so deliveries are under way when the daemon dies.
    let mut peer = SmtpPeer::start(&["--delay-data", "0.3"]);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    ok(dir, &["init"]);
    configure_relay(dir, peer.port, &["delivery.connections=4"]);
    let token =
        ok(dir, &["api-token", "create", "--name", "crash-test", "--role", "network_administrator"]).trim().to_owned();

    let daemon = Daemon::start(dir, &["--queue-poll-interval", "200ms"]);
    let mut ids = Vec::new();
    for i in 0..MESSAGES {
        let body = json!({"to": ["ops@example.com"], "subject": format!("crash {i}"), "text": "durable"});
        let (status, answer) = http(&daemon.address, "POST", "/api/v1/messages", Some(&token), Some(&body));
        assert_eq!(status, 202, "{answer}");
        ids.push(answer["id"].as_i64().unwrap());
    }
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let first = peer.next_message_blocking();
    *seen.entry(subject(&first)).or_default() += 1;
    daemon.kill9();

    let list: serde_json::Value =
        serde_json::from_str(&ok(dir, &["queue", "list", "--limit", "100", "--json"])).unwrap();
    let undelivered = list.as_array().unwrap().iter().filter(|m| m["status"] != "delivered").count();
    assert!(undelivered > MESSAGES / 2, "the kill came mid-way: {undelivered} of {MESSAGES} undelivered");

    let restarted = Daemon::start(dir, &["--queue-poll-interval", "200ms"]);
    while seen.len() < MESSAGES {
        let message = peer.next_message_blocking();
        *seen.entry(subject(&message)).or_default() += 1;
    }
    eventually("every message to be delivered", || {
        let (_, list) =
            http(&restarted.address, "GET", "/api/v1/messages?status=delivered&limit=1000", Some(&token), None);
        list["messages"].as_array().unwrap().len() == MESSAGES
    });
    // Copies that arrived after every subject was seen count too: at most one more send per message.
    for message in peer.received_now() {
        *seen.entry(subject(&message)).or_default() += 1;
    }
    assert_eq!(seen.len(), MESSAGES, "only the accepted messages arrived");
    for (subject, count) in &seen {
        assert!(*count <= 2, "{subject} was sent {count} times");
    }
}

fn subject(message: &serde_json::Value) -> String {
    let data = message["data"].as_str().unwrap();
    data.lines().find_map(|l| l.strip_prefix("Subject: ")).unwrap().to_owned()
}

/// A device sending through the gateway as fast as it can: every message answered `250` before the kill is
/// delivered after the restart.
#[test]
fn every_message_the_gateway_answered_250_is_delivered_after_a_kill() {
    let mut peer = SmtpPeer::start(&["--delay-data", "0.2"]);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    ok(dir, &["init"]);
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let listen = format!("gateway.listen=127.0.0.1:{port}");
    configure_relay(dir, peer.port, &["delivery.connections=2", &listen, "gateway.allowed_networks=127.0.0.1/32"]);
    let daemon = Daemon::start(dir, &["--queue-poll-interval", "200ms"]);
    eventually("the gateway to listen", || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());

    // The device: one session, message after message; prints each subject the gateway accepted.
    let script = format!(
        "import smtplib, sys\n\
         c = smtplib.SMTP('127.0.0.1', {port}, timeout=10)\n\
         for i in range(400):\n\
         \x20   s = f'gateway crash {{i}}'\n\
         \x20   try:\n\
         \x20       c.sendmail('printer@printers.example.com', ['ops@example.com'], f'Subject: {{s}}\\n\\nscan\\n')\n\
         \x20   except Exception as e:\n\
         \x20       sys.exit(0)\n\
         \x20   print(s, flush=True)\n"
    );
    let mut device = std::process::Command::new(tidings_testkit::python())
        .args(["-c", &script])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(device.stdout.take().unwrap()));
    let mut accepted: Vec<String> = Vec::new();
    while accepted.len() < 30 {
        accepted.push(lines.next().expect("the device stopped early").unwrap());
    }
    daemon.kill9();
    // Whatever else got its 250 before the kill counts too.
    accepted.extend(lines.map_while(Result::ok));
    device.wait().unwrap();
    assert!(accepted.len() < 400, "the kill came before the device finished");
    let list: serde_json::Value =
        serde_json::from_str(&ok(dir, &["queue", "list", "--limit", "1000", "--json"])).unwrap();
    let waiting = list.as_array().unwrap().iter().filter(|m| m["status"] != "delivered").count();
    assert!(waiting >= 10, "the kill came while most accepted messages waited: {waiting} waiting");
    assert!(list.as_array().unwrap().len() >= accepted.len(), "every 250 is in the outbox");

    let _restarted = Daemon::start(dir, &["--queue-poll-interval", "200ms"]);
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    while accepted.iter().any(|s| !seen.contains_key(s)) {
        *seen.entry(subject(&peer.next_message_blocking())).or_default() += 1;
    }
    for (subject, count) in &seen {
        assert!(*count <= 2, "{subject} was sent {count} times");
    }
}

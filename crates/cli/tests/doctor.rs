//! `tidings doctor` against real SMTP servers on loopback (aiosmtpd) and the OAuth fake: every step passing, then
//! each failing in turn, stopping there with what to change; nothing is ever sent.

#![allow(clippy::unwrap_used)] // a failed step is a failed test

mod support;

use serde_json::Value;
use std::path::Path;
use support::*;
use tidings_testkit::{OAuthFake, SmtpPeer};

/// The doctor's JSON report and whether the command succeeded.
fn doctor(dir: &Path) -> (Value, bool) {
    let out = run(dir, &["doctor", "--json"], "");
    (serde_json::from_str(&stdout(&out)).unwrap_or_else(|e| panic!("{e}: {}", stderr(&out))), out.status.success())
}

fn steps(report: &Value) -> Vec<(String, bool)> {
    report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["step"].as_str().unwrap().to_owned(), s["ok"] == true))
        .collect()
}

/// The failed step's name and explanation.
fn failed(report: &Value) -> (String, String) {
    let step = report["steps"].as_array().unwrap().iter().find(|s| s["ok"] == false).expect("a failed step");
    (step["step"].as_str().unwrap().to_owned(), step["explanation"].as_str().unwrap_or_default().to_owned())
}

fn with_password(dir: &Path, port: u16, extra: &[&str]) {
    let secret = run(dir, &["config", "set-secret", "smtp.password"], "relay-pass-1\n");
    assert!(secret.status.success(), "{}", stderr(&secret));
    let mut all = vec!["smtp.auth=password", "smtp.username=alerts@example.com"];
    all.extend_from_slice(extra);
    configure_relay(dir, port, &all);
}

#[test]
fn every_step_passes_against_a_working_relay_and_nothing_is_sent() {
    let mut peer =
        SmtpPeer::start_tls(&["--auth-required", "--user", "alerts@example.com", "--password", "relay-pass-1"]);
    let tmp = tempfile::tempdir().unwrap();
    ok(tmp.path(), &["init"]);
    let ca = format!("tls.ca_file={}", peer.ca_file.as_ref().unwrap().display());
    with_password(tmp.path(), peer.port, &["smtp.encryption=starttls", &ca]);
    let (report, success) = doctor(tmp.path());
    assert!(success && report["ok"] == true, "{report:#}");
    let names: Vec<String> = steps(&report).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["resolve", "connect", "tls", "ehlo", "auth", "mail_from"], "{report:#}");
    let ehlo = &report["steps"][3]["seen"];
    assert!(ehlo.to_string().contains("STARTTLS") || ehlo.to_string().contains("AUTH: "), "{ehlo}");
    assert!(peer.received_now().is_empty(), "the doctor sends nothing");
    // The human form, and the report kept for the API.
    let text = run(tmp.path(), &["doctor"], "");
    assert!(stdout(&text).contains("Every step passed; nothing was sent."), "{}", stdout(&text));
    // Asked for, a whole test message, and only that one.
    let out = run(tmp.path(), &["doctor", "--json", "--send-to", "ops@example.com"], "");
    assert!(out.status.success(), "{}", stderr(&out));
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["steps"].as_array().unwrap().last().unwrap()["step"], "message", "{report:#}");
    let got = peer.next_message_blocking();
    assert!(got["data"].as_str().unwrap().contains("Subject: Tidings doctor: a test message"), "{got}");
    assert_eq!(got["rcpt_tos"], serde_json::json!(["ops@example.com"]), "{got}");
    assert!(peer.received_now().is_empty());
    let err = fails(tmp.path(), &["doctor", "--send-to", "not an address"]);
    assert!(err.contains("--send-to"), "{err}");
}

#[test]
fn each_step_that_fails_stops_the_walk_and_says_what_to_change() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    ok(dir, &["init"]);

    // A closed port.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    configure_relay(dir, closed, &[]);
    let (report, success) = doctor(dir);
    assert!(!success);
    let (step, explanation) = failed(&report);
    assert_eq!(step, "connect", "{report:#}");
    assert!(explanation.contains("smtp.port"), "{explanation}");
    assert_eq!(steps(&report).len(), 2, "the walk stops at the failing step");

    // A self-signed certificate nobody said to trust.
    let self_signed = tmp.path().join("self-signed.pem");
    let peer = SmtpPeer::start(&["--self-signed-out", self_signed.to_str().unwrap()]);
    configure_relay(dir, peer.port, &["smtp.encryption=starttls"]);
    let (report, _) = doctor(dir);
    let (step, explanation) = failed(&report);
    assert_eq!(step, "tls", "{report:#}");
    assert!(explanation.contains("tls.ca_file") || explanation.contains("self-signed"), "{explanation}");

    // A certificate from a trusted CA that has expired, and one for another name.
    for (flaw, said, names) in [
        ("expired", "expired", "names: 127.0.0.1"),
        ("wrong-name", "does not carry the name", "names: mail.example.com"),
    ] {
        let ca = tmp.path().join(format!("{flaw}-ca.pem"));
        let peer = SmtpPeer::start(&["--flawed", flaw, "--flawed-ca-out", ca.to_str().unwrap()]);
        configure_relay(dir, peer.port, &["smtp.encryption=starttls", &format!("tls.ca_file={}", ca.display())]);
        let (report, _) = doctor(dir);
        let (step, explanation) = failed(&report);
        assert_eq!(step, "tls", "{flaw}: {report:#}");
        assert!(explanation.contains(said), "{flaw}: {explanation}");
        assert!(report.to_string().contains(names), "the refused certificate is shown: {report:#}");
    }
    ok(dir, &["config", "set", "tls.ca_file="]);

    // A relay that does not offer AUTH at all, for a configured password.
    let bare = SmtpPeer::start(&["--auth-mechanisms", "NONE"]);
    with_password(dir, bare.port, &["smtp.allow_plaintext_auth=true"]);
    let (report, _) = doctor(dir);
    let (step, explanation) = failed(&report);
    assert_eq!(step, "ehlo", "{report:#}");
    assert!(explanation.contains("does not offer AUTH PLAIN or LOGIN"), "{explanation}");

    // A relay that refuses the sender, as Exchange does without Send As.
    let refusing = SmtpPeer::start(&[
        "--user",
        "alerts@example.com",
        "--password",
        "relay-pass-1",
        "--fail",
        "mail=550 5.7.60 SMTP; Client does not have permissions to send as this sender",
    ]);
    with_password(dir, refusing.port, &["smtp.allow_plaintext_auth=true"]);
    let (report, _) = doctor(dir);
    let (step, _) = failed(&report);
    assert_eq!(step, "mail_from", "{report:#}");
    assert!(report.to_string().contains("5.7.60"), "the relay's reply, verbatim: {report:#}");
}

#[test]
fn a_token_for_graph_is_told_apart_from_one_for_exchange_smtp() {
    let fake = OAuthFake::start(3600, &["--roles", "Mail.Send"]);
    let peer = SmtpPeer::start(&["--token-file", fake.access_tokens.to_str().unwrap()]);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    ok(dir, &["init"]);
    let token_endpoint = format!("oauth.token_endpoint={}", fake.token_endpoint("contoso.com"));
    configure_relay(
        dir,
        peer.port,
        &[
            "smtp.auth=oauth2",
            "smtp.allow_plaintext_auth=true",
            "oauth.provider=custom",
            "oauth.client_id=6731de76-14a6-49ae-97bc-6eba6914391e",
            &token_endpoint,
            "oauth.scopes=https://graph.microsoft.com/.default",
        ],
    );
    let secret = run(dir, &["config", "set-secret", "oauth.client_secret"], "app-secret\n");
    assert!(secret.status.success(), "{}", stderr(&secret));
    ok(dir, &["oauth", "login", "--client-credentials"]);
    let (report, _) = doctor(dir);
    let (step, explanation) = failed(&report);
    assert_eq!(step, "token", "{report:#}");
    assert!(explanation.contains("for Microsoft Graph, not for Exchange SMTP"), "{explanation}");
    assert!(explanation.contains("https://outlook.office.com/SMTP.Send"), "{explanation}");
}

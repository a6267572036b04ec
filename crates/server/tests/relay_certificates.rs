//! Relays with a private or self-signed certificate (a real aiosmtpd server presenting it): refused with an
//! explanation in words that names the key to change, then trusted as the administrator chooses: the
//! certificate itself in `tls.ca_file`, its fingerprint pinned, or the Common Name accepted.

#![allow(clippy::unwrap_used)] // helpers of tests: a failed step is a failed test

mod support;

use std::time::Duration;
use support::{Tidings, relay};
use tidings_delivery::{
    engine::looking_at,
    smtp::{Connection, tls},
};
use tidings_testkit::SmtpPeer;

/// Sends one message and waits until its first attempt is logged; the attempt.
async fn first_attempt(tidings: &Tidings) -> (i64, serde_json::Value) {
    let id = tidings.send("certificate").await;
    let attempt = support::eventually("an attempt", Duration::from_secs(20), async || {
        let (_, message) = tidings.get(&format!("/api/v1/messages/{id}")).await;
        message["attempt_log"].get(0).cloned().ok_or_else(|| message.to_string())
    })
    .await;
    (id, attempt)
}

fn starttls(peer: &SmtpPeer, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut edits = relay(peer, extra);
    edits.retain(|(k, _)| k != "smtp.encryption");
    edits.push(("smtp.encryption".into(), "starttls".into()));
    edits
}

#[tokio::test]
async fn a_self_signed_relay_is_explained_then_trusted_when_given_in_ca_file() {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("relay.pem");
    let mut peer = SmtpPeer::start(&["--self-signed-out", cert.to_str().unwrap()]);
    let tidings = Tidings::start(starttls(&peer, &[])).await;
    let (id, attempt) = first_attempt(&tidings).await;
    assert_eq!((attempt["result"].as_str(), attempt["stage"].as_str()), (Some("transient"), Some("tls")));
    let why = attempt["explanation"].as_str().unwrap();
    assert!(why.contains("self-signed") && why.contains("tls.ca_file") && why.contains("pin"), "{why}");
    assert!(!why.contains("CaUsedAsEndEntity"), "no library error codes in the explanation: {why}");
    assert!(attempt["text"].as_str().unwrap().contains("CaUsedAsEndEntity"), "the raw error is kept beside it");

    tidings.reconfigure(&[("tls.ca_file", cert.to_str().unwrap())]).await;
    peer.next_message().await;
    tidings.wait_for_status(id, "delivered").await;

    // The certificate is valid for 30 days: no warning within the default 14, one within 60, once a day.
    let expiring = async || {
        let (_, events) = tidings.get("/api/v1/events?limit=50").await;
        let all = events["events"].as_array().unwrap().clone();
        all.into_iter().filter(|e| e["kind"] == "delivery.certificate_expiring").collect::<Vec<_>>()
    };
    assert!(expiring().await.is_empty());
    tidings.reconfigure(&[("tls.expiry_warning", "60d")]).await;
    for subject in ["soon", "sooner"] {
        let id = tidings.send(subject).await;
        peer.next_message().await;
        tidings.wait_for_status(id, "delivered").await;
    }
    let raised = support::eventually("the expiry warning", Duration::from_secs(10), async || {
        let raised = expiring().await;
        if raised.is_empty() { Err("none yet".into()) } else { Ok(raised) }
    })
    .await;
    assert_eq!(raised.len(), 1, "once a day per certificate: {raised:?}");
    let details = &raised[0]["details"];
    assert!(["29", "30"].contains(&details["days"].as_str().unwrap()), "{details}");
    assert!(details["relay"].as_str().unwrap().starts_with("127.0.0.1:"), "{details}");
    assert!(details["subject"].as_str().unwrap().contains("127.0.0.1"), "{details}");

    // Delivery keeps the certificate it saw for the credentials' lifetimes (the API, the doctor's page).
    let (_, listed) = tidings.get("/api/v1/expiries").await;
    let relay = listed["expiries"].as_array().unwrap().iter().find(|e| e["credential"] == "relay_certificate");
    let relay = relay.unwrap_or_else(|| panic!("{listed}"));
    assert!(relay["subject"].as_str().unwrap().contains("127.0.0.1") && relay["days_left"].as_i64() >= Some(29));
    assert_eq!(relay["event"], "delivery.certificate_expiring");
    let page = tidings.page_as_viewer("/doctor").await;
    assert!(page.contains("id=\"expiries-table\"") && page.contains("Relay's certificate"), "{page}");
    tidings.stop().await;
}

#[tokio::test]
async fn a_pinned_fingerprint_trusts_that_certificate_and_no_other() {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("relay.pem");
    let mut peer = SmtpPeer::start(&["--self-signed-out", cert.to_str().unwrap()]);
    let mut cfg = tidings_core::EmailConfig::default();
    cfg.smtp.host = Some("127.0.0.1".into());
    cfg.smtp.port = Some(u32::from(peer.port));
    let chain = Connection::fetch_certificates(&looking_at(&cfg).unwrap()).await.unwrap();
    let fetched = tls::Certificate::parse(&chain[0]).unwrap();
    assert!(fetched.self_signed && fetched.names == ["127.0.0.1"], "{fetched:?}");
    let on_disk = std::fs::read_to_string(&cert).unwrap();
    assert!(on_disk.contains("BEGIN CERTIFICATE"));

    // Another fingerprint pinned: still refused.
    let other = "00".repeat(32);
    let tidings = Tidings::start(starttls(&peer, &[("tls.pinned_certificate", &other)])).await;
    let (id, attempt) = first_attempt(&tidings).await;
    assert_eq!(attempt["stage"], "tls", "{attempt}");
    // The relay's own, as `openssl x509 -fingerprint -sha256` prints it, lower case: delivered.
    let pin = fetched.fingerprint.to_lowercase();
    tidings.reconfigure(&[("tls.pinned_certificate", &format!("{other} {pin}"))]).await;
    peer.next_message().await;
    tidings.wait_for_status(id, "delivered").await;
    tidings.stop().await;
}

#[tokio::test]
async fn a_name_only_in_the_common_name_is_accepted_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    let mut peer = SmtpPeer::start(&["--cn-only-ca-out", ca.to_str().unwrap()]);
    let tidings = Tidings::start(starttls(&peer, &[("tls.ca_file", ca.to_str().unwrap())])).await;
    let (id, attempt) = first_attempt(&tidings).await;
    assert_eq!(attempt["stage"], "tls", "{attempt}");
    let why = attempt["explanation"].as_str().unwrap();
    assert!(why.contains("does not carry the name") && why.contains("tls.match_common_name"), "{why}");

    tidings.reconfigure(&[("tls.match_common_name", "true")]).await;
    peer.next_message().await;
    tidings.wait_for_status(id, "delivered").await;
    tidings.stop().await;
}

#[tokio::test]
async fn the_web_interface_shows_the_relays_certificate_and_pins_it_when_asked() {
    use tidings_core::{account::Role, secret::SecretString};
    const PASSWORD: &str = "correct-horse-battery-9";
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("relay.pem");
    let mut peer = SmtpPeer::start(&["--self-signed-out", cert.to_str().unwrap()]);
    let tidings = Tidings::start(starttls(&peer, &[])).await;
    let (id, _) = first_attempt(&tidings).await;
    tidings
        .app
        .create_account("test", "netadmin", &SecretString::new(PASSWORD), Role::NetworkAdministrator)
        .await
        .unwrap();
    tidings.app.create_account("test", "watcher", &SecretString::new(PASSWORD), Role::Viewer).await.unwrap();

    // A viewer sees the certificate but is not offered to pin it.
    let viewer = support::browser();
    assert_eq!(support::sign_in(&tidings, &viewer, "watcher", PASSWORD).await.status(), 303);
    let seen = viewer.get(format!("{}/email-config/certificate", tidings.base)).send().await.unwrap();
    let seen = seen.text().await.unwrap();
    let fingerprint = tls::Certificate::parse(&{
        let pem = std::fs::read(&cert).unwrap();
        rustls_pki_types::pem::PemObject::from_pem_slice(&pem)
            .map(|c: rustls_pki_types::CertificateDer| c.to_vec())
            .unwrap()
    })
    .unwrap()
    .fingerprint;
    assert!(seen.contains(&fingerprint) && seen.contains("(self-signed)") && seen.contains("127.0.0.1"), "{seen}");
    assert!(!seen.contains("Pin this certificate"), "{seen}");
    let refused = viewer
        .post(format!("{}/email-config/certificate/pin", tidings.base))
        .form(&[("csrf", support::csrf_of(&seen)), ("fingerprint", fingerprint.clone())])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);

    // A network administrator pins it; the page says so after the redirect, and the message goes.
    let operator = support::browser();
    assert_eq!(support::sign_in(&tidings, &operator, "netadmin", PASSWORD).await.status(), 303);
    let config = operator.get(format!("{}/email-config", tidings.base)).send().await.unwrap().text().await.unwrap();
    assert!(config.contains("href=\"/email-config/certificate\""), "the TLS section links to it");
    let page = operator.get(format!("{}/email-config/certificate", tidings.base)).send().await.unwrap();
    let page = page.text().await.unwrap();
    assert!(page.contains("Pin this certificate"), "{page}");
    let pinned = operator
        .post(format!("{}/email-config/certificate/pin", tidings.base))
        .form(&[("csrf", support::csrf_of(&page)), ("fingerprint", fingerprint.clone())])
        .send()
        .await
        .unwrap();
    assert_eq!(pinned.status(), 303);
    assert_eq!(pinned.headers()["location"], "/email-config/certificate", "redirected after the POST");
    let after = operator.get(format!("{}/email-config/certificate", tidings.base)).send().await.unwrap();
    assert!(after.text().await.unwrap().contains("This certificate is pinned"));
    assert!(tidings.app.current().await.unwrap().config.tls.pins(&fingerprint));
    peer.next_message().await;
    tidings.wait_for_status(id, "delivered").await;
    tidings.stop().await;
}

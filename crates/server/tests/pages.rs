//! The web interface's pages as an administrator meets them, through HTTP as a browser sends it: a reload that
//! never repeats a form, a message delivered to some and refused for others, an unknown address, the audit
//! log's filters, the accounts' rules, the configuration form's errors and a provider's preset, events with
//! their titles, OAuth actions that cannot work, and banners that blame the right part; in English and French.

#![allow(clippy::unwrap_used)] // helpers of tests: a failed step is a failed test

mod support;

use reqwest::{StatusCode, header};
use std::time::Duration;
use support::{Tidings, browser, csrf_of, relay, shown};
use tidings_app::authorization::Owner;
use tidings_core::{account::Role, secret::SecretString};
use tidings_testkit::{OAuthFake, SmtpPeer};

const PASSWORD: &str = "correct-horse-battery-9";

async fn get(tidings: &Tidings, client: &reqwest::Client, path: &str) -> (StatusCode, String) {
    let answer = client.get(format!("{}{path}", tidings.base)).send().await.unwrap();
    (answer.status(), answer.text().await.unwrap())
}

async fn post(tidings: &Tidings, client: &reqwest::Client, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
    client.post(format!("{}{path}", tidings.base)).form(form).send().await.unwrap()
}

#[tokio::test]
async fn an_unknown_address_gets_a_page_with_a_way_back_and_the_api_its_error() {
    let tidings = Tidings::start(vec![]).await;
    let french = tidings.signed_in("marie", Role::Viewer, "fr").await;
    let (status, page) = get(&tidings, &french, "/nulle-part").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        page.contains("Page introuvable") && page.contains("/static/app.css") && page.contains("href=\"/\""),
        "{page}"
    );
    let anonymous = browser();
    let (status, page) = get(&tidings, &anonymous, "/nowhere").await;
    assert!(status == StatusCode::NOT_FOUND && page.contains("Page not found"), "{page}");
    let (status, body) = tidings.get("/api/v1/nowhere").await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")), "{body}");
    tidings.stop().await;
}

#[tokio::test]
async fn a_message_delivered_to_some_is_partly_delivered_with_each_refusal_explained() {
    let mut peer = SmtpPeer::start(&["--fail", "rcpt=550 5.1.1 User unknown*1"]);
    let tidings = Tidings::start(relay(&peer, &[])).await;
    let message = serde_json::json!({"to": ["gone@example.com", "ops@example.com"], "subject": "half", "text": "x"});
    let (_, accepted) = tidings.post("/api/v1/messages", message).await;
    let id = accepted["id"].as_i64().unwrap();
    peer.next_message().await;
    let detail = tidings.wait_for_status(id, "failed").await;
    assert_eq!(detail["partly_delivered"], true, "{detail:#}");
    let gone = detail["recipients"].as_array().unwrap().iter().find(|r| r["address"] == "gone@example.com").unwrap();
    assert!(gone["explanation"].as_str().is_some_and(|e| !e.is_empty()), "{gone}");

    let operator = tidings.signed_in("netadmin", Role::NetworkAdministrator, "en").await;
    let (_, page) = get(&tidings, &operator, &format!("/outbox/{id}")).await;
    assert!(page.contains("<dd><span class=\"status partly failed\">Partly delivered</span></dd>"), "{page}");
    assert!(page.contains("550 5.1.1 User unknown") && page.contains("class=\"explanation small\""), "{page}");
    assert!(page.contains("1 attempt<") && !page.contains("1 attempts"), "singular: {page}");
    assert!(page.contains("<article class=\"attempt delivered\">"), "one class attribute: {page}");
    let french = tidings.signed_in("marie", Role::Viewer, "fr").await;
    let (_, page) = get(&tidings, &french, &format!("/outbox/{id}")).await;
    assert!(page.contains("Remis en partie") && page.contains("remis</span>"), "{page}");
    assert!(page.contains("L'adresse du destinataire n'existe pas"), "the refusal explained in French: {page}");
    tidings.stop().await;
}

#[tokio::test]
async fn a_reload_after_a_form_repeats_nothing() {
    let mut peer = SmtpPeer::start(&[]);
    let tidings = Tidings::start(relay(&peer, &[("admin.addresses", "ops@example.com")])).await;
    let admin = tidings.signed_in("boss", Role::Administrator, "en").await;
    let (_, page) = get(&tidings, &admin, "/accounts").await;
    let csrf = csrf_of(&page);
    let answer =
        post(&tidings, &admin, "/tokens", &[("csrf", &csrf), ("name", "monitoring"), ("role", "viewer")]).await;
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    assert_eq!(answer.headers()[header::LOCATION], "/accounts");
    let page = shown(&tidings, &admin, answer).await;
    assert!(page.contains("tdg_"), "the token, once: {page}");
    let (_, reloaded) = get(&tidings, &admin, "/accounts").await;
    assert!(!reloaded.contains("tdg_"), "a reload shows it no more");
    assert_eq!(tidings.app.api_tokens().await.unwrap().iter().filter(|t| t.name == "monitoring").count(), 1);

    // The test mail from the status page goes back there, and says what the relay answered.
    let answer = post(&tidings, &admin, "/email-config/test", &[("csrf", &csrf), ("back", "/")]).await;
    assert_eq!(answer.headers()[header::LOCATION], "/");
    peer.next_message().await;
    let page = shown(&tidings, &admin, answer).await;
    assert!(page.contains("class=\"notice "), "the relay's answer, once: {page}");
    let (_, again) = get(&tidings, &admin, "/").await;
    assert!(!again.contains("class=\"notice"), "the notice is not shown twice");
    tidings.stop().await;
}

#[tokio::test]
async fn the_audit_log_filters_pages_and_shows_old_and_new_values() {
    let tidings = Tidings::start(vec![("sender".into(), "alerts@example.com".into())]).await;
    tidings.reconfigure(&[("locale", "fr"), ("smtp.password", "a-secret-value")]).await;
    let viewer = tidings.signed_in("auditor", Role::Viewer, "en").await;
    let (_, page) = get(&tidings, &viewer, "/audit?action=config.").await;
    assert!(page.contains("locale: en → fr") && page.contains("smtp.password: changed"), "{page}");
    assert!(!page.contains("a-secret-value") && !page.contains(">Signed in<"), "only configuration: {page}");
    assert!(page.contains("Configuration changed"), "the action in words: {page}");
    let (_, signs) = get(&tidings, &viewer, "/audit?actor=web%3Aauditor").await;
    assert!(signs.contains("Signed in") && !signs.contains("locale: en"), "{signs}");
    let (_, body) = tidings.get("/api/v1/audit?action=config.&limit=1").await;
    let first = &body["entries"][0];
    let (_, older) = tidings.get(&format!("/api/v1/audit?action=config.&limit=1&before={}", first["id"])).await;
    assert!(older["entries"][0]["id"].as_i64() < first["id"].as_i64(), "{older}");
    tidings.stop().await;
}

#[tokio::test]
async fn accounts_state_the_password_rule_and_ask_for_the_current_password() {
    let tidings = Tidings::start(vec![]).await;
    let admin = tidings.signed_in("boss", Role::Administrator, "en").await;
    tidings.app.create_account("test", "locked-one", &SecretString::new(PASSWORD), Role::Viewer).await.unwrap();
    let (_, page) = get(&tidings, &admin, "/accounts").await;
    assert!(page.contains("At least 12 characters"), "the rule before it fails: {page}");
    assert!(page.contains("aria-label=\"Role of locked-one\""), "every role selector has a label: {page}");
    assert!(!page.contains("name=\"unlock\""), "no account is locked: nothing to unlock");
    let csrf = csrf_of(&page);
    let wrong = post(
        &tidings,
        &admin,
        "/preferences",
        &[("csrf", &csrf), ("locale", ""), ("current_password", "not-it-at-all"), ("password", "a-new-password-123")],
    )
    .await;
    assert_eq!(wrong.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(wrong.text().await.unwrap().contains("current password"));
    let right = post(
        &tidings,
        &admin,
        "/preferences",
        &[
            ("csrf", &csrf),
            ("locale", ""),
            ("current_password", support::ACCOUNT_PASSWORD),
            ("password", "a-new-password-123"),
        ],
    )
    .await;
    assert_eq!(right.headers()[header::LOCATION], "/login", "a new password: sign in again");
    tidings.stop().await;
}

#[tokio::test]
async fn the_configuration_form_points_at_each_error_and_shows_a_provider_s_changes_first() {
    let peer = SmtpPeer::start(&[]);
    let tidings = Tidings::start(relay(&peer, &[])).await;
    let operator = tidings.signed_in("netadmin", Role::NetworkAdministrator, "en").await;
    let (_, page) = get(&tidings, &operator, "/email-config").await;
    let csrf = csrf_of(&page);
    let refused = post(&tidings, &operator, "/email-config", &[("csrf", &csrf), ("delivery.timeout", "forever")]).await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = refused.text().await.unwrap();
    assert!(page.contains("id=\"error-summary\"") && page.contains("href=\"#delivery.timeout\""), "{page}");
    assert!(page.contains("id=\"section-advanced\" open"), "the collapsed section with the error opens: {page}");
    assert!(page.contains("aria-invalid=\"true\" aria-describedby=\"error-delivery.timeout\""), "{page}");

    let answer =
        post(&tidings, &operator, "/email-config/validate", &[("csrf", &csrf), ("oauth.provider", "microsoft")]).await;
    let checked: serde_json::Value = answer.json().await.unwrap();
    let host = checked["preset"].as_array().unwrap().iter().find(|c| c["key"] == "smtp.host").unwrap();
    assert_eq!(
        (host["from"].as_str(), host["to"].as_str()),
        (Some("127.0.0.1"), Some("smtp.office365.com")),
        "{checked}"
    );
    // Kept: the administrator's relay stays.
    let kept = post(
        &tidings,
        &operator,
        "/email-config",
        &[
            ("csrf", &csrf),
            ("oauth.provider", "microsoft"),
            ("oauth.client_id", "6731de76-14a6-49ae-97bc-6eba6914391e"),
            ("keep", "smtp.host"),
            ("keep", "smtp.port"),
            ("smtp.host", "127.0.0.1"),
            ("smtp.port", &peer.port.to_string()),
        ],
    )
    .await;
    let status = kept.status();
    let text = kept.text().await.unwrap_or_default();
    let summary = text.split("id=\"error-summary\"").nth(1).unwrap_or("").chars().take(600).collect::<String>();
    assert_eq!(status, StatusCode::SEE_OTHER, "{summary}");
    let config = tidings.app.current().await.unwrap().config;
    assert_eq!((config.smtp.host.as_deref(), config.oauth.provider.is_some()), (Some("127.0.0.1"), true));
    tidings.stop().await;
}

#[tokio::test]
async fn events_have_titles_and_severities_in_words() {
    let tidings = Tidings::start(vec![]).await;
    tidings.post("/api/v1/events", serde_json::json!({ "kind": "failover.takeover" })).await;
    let french = tidings.signed_in("marie", Role::Viewer, "fr").await;
    let (_, page) = get(&tidings, &french, "/events").await;
    assert!(page.contains("Bascule : le nœud de secours prend le relais") && page.contains(">Critique<"), "{page}");
    let (_, kinds) = tidings.get("/api/v1/events/kinds").await;
    let takeover = kinds["kinds"].as_array().unwrap().iter().find(|k| k["kind"] == "failover.takeover").unwrap();
    assert_eq!(takeover["title"], "Failover: the backup takes over");
    tidings.stop().await;
}

#[tokio::test]
async fn oauth_actions_that_cannot_work_say_why_and_a_refused_token_is_blamed_not_the_relay() {
    let fake = OAuthFake::start(3600, &[]);
    let peer = SmtpPeer::start_tls(&["--token-file", fake.access_tokens.to_str().unwrap()]);
    let endpoint = fake.token_endpoint("contoso.com");
    let settings = [
        ("smtp.auth", "oauth2"),
        ("oauth.client_id", "6731de76-14a6-49ae-97bc-6eba6914391e"),
        ("oauth.token_endpoint", endpoint.as_str()),
        ("oauth.authorization_endpoint", &endpoint.replace("/token", "/authorize")),
    ];
    let tidings = Tidings::start(relay(&peer, &settings)).await;
    let operator = tidings.signed_in("netadmin", Role::NetworkAdministrator, "en").await;
    let (_, page) = get(&tidings, &operator, "/oauth").await;
    assert!(
        page.contains("disabled aria-describedby=\"why-not-connect\"") && page.contains("public_base_url"),
        "{page}"
    );
    assert!(page.contains("disabled aria-describedby=\"why-not-device\""), "no device endpoint: {page}");

    let unknown = SecretString::new("rt-nobody-issued");
    tidings.app.authorized(Owner::Relay, "test", Some(&unknown), Some("alerts@example.com")).await.unwrap();
    let id = tidings.send("waits").await;
    support::eventually("the message deferred", Duration::from_secs(20), async || {
        let (_, m) = tidings.get(&format!("/api/v1/messages/{id}")).await;
        if m["status"] == "deferred" { Ok(()) } else { Err(m.to_string()) }
    })
    .await;
    let (_, page) = get(&tidings, &operator, "/outbox").await;
    assert!(page.contains("class=\"banner bad\"") && page.contains("Re-authorization required"), "{page}");
    assert!(!page.contains("waiting for another attempt"), "the deferral is the token's, not the relay's: {page}");
    tidings.stop().await;
}

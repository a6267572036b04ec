//! The web interface and the API's access rules over HTTP: sign-in with secure cookies, CSRF on every change,
//! lockout, every route's roles, the OpenAPI document against the routes, /metrics and HTTPS.

#![allow(clippy::unwrap_used)] // helpers of tests: a failed step is a failed test

mod support;

use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};
use std::time::Duration;
use support::{Tidings, browser, csrf_of, relay, shown, sign_in, test_options};
use tidings_core::{account::Role, secret::SecretString};
use tidings_testkit::SmtpPeer;

const PASSWORD: &str = "correct-horse-battery-9";

async fn account(tidings: &Tidings, name: &str, role: Role) -> i64 {
    tidings.app.create_account("test", name, &SecretString::new(PASSWORD), role).await.unwrap()
}

#[tokio::test]
async fn sign_in_sets_a_guarded_session_and_every_change_needs_the_csrf_token() {
    let peer = SmtpPeer::start(&[]);
    let tidings = Tidings::start(relay(&peer, &[])).await;
    account(&tidings, "netadmin", Role::NetworkAdministrator).await;
    let client = browser();

    let away = client.get(format!("{}/email-config", tidings.base)).send().await.unwrap();
    assert_eq!(away.status(), StatusCode::SEE_OTHER);
    assert_eq!(away.headers()[header::LOCATION], "/login?next=/email-config");

    // A sign-in form posted from elsewhere (no matching login cookie) is refused.
    let forged = browser()
        .post(format!("{}/login", tidings.base))
        .form(&[("csrf", "forged"), ("username", "netadmin"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);

    let signed_in = sign_in(&tidings, &client, "netadmin", PASSWORD).await;
    assert_eq!(signed_in.status(), StatusCode::SEE_OTHER, "{:?}", signed_in.text().await);
    let cookie = signed_in
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("tidings_session="))
        .unwrap();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict") && !cookie.contains("Secure"),
        "{cookie}"
    );

    let page = client.get(format!("{}/email-config", tidings.base)).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("SMTP relay server") && page.contains("netadmin"), "{page}");
    let csrf = csrf_of(&page);

    // The configuration form: refused without the token, saved with it.
    let change =
        |token: &str| vec![("csrf".to_owned(), token.to_owned()), ("sender".to_owned(), "noc@example.com".to_owned())];
    let refused = client.post(format!("{}/email-config", tidings.base)).form(&change("wrong")).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert_eq!(tidings.app.current().await.unwrap().config.sender.as_deref(), Some("alerts@example.com"));
    let saved = client.post(format!("{}/email-config", tidings.base)).form(&change(&csrf)).send().await.unwrap();
    assert_eq!(saved.status(), StatusCode::SEE_OTHER, "a form that worked answers with a redirect");
    let text = shown(&tidings, &client, saved).await;
    assert!(text.contains("Saved revision") && text.contains("sender"), "{text}");
    let reloaded = client.get(format!("{}/email-config", tidings.base)).send().await.unwrap().text().await.unwrap();
    assert!(!reloaded.contains("Saved revision"), "a reload neither saves again nor says so again");
    assert_eq!(tidings.app.current().await.unwrap().config.sender.as_deref(), Some("noc@example.com"));

    // The API with the session: changes need the X-CSRF-Token header.
    let api = format!("{}/api/v1/email-config", tidings.base);
    let without = client.patch(&api).json(&json!({ "smtp.port": 2526 })).send().await.unwrap();
    assert_eq!(without.status(), StatusCode::FORBIDDEN);
    let with =
        client.patch(&api).header("x-csrf-token", &csrf).json(&json!({ "smtp.port": 2526 })).send().await.unwrap();
    assert_eq!(with.status(), StatusCode::OK);
    let me: Value = client.get(format!("{}/api/v1/me", tidings.base)).send().await.unwrap().json().await.unwrap();
    assert_eq!((me["actor"].as_str(), me["role"].as_str()), (Some("web:netadmin"), Some("network_administrator")));

    // Signing out ends the session.
    let out = client.post(format!("{}/logout", tidings.base)).form(&[("csrf", &csrf)]).send().await.unwrap();
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    let after = client.get(format!("{}/email-config", tidings.base)).send().await.unwrap();
    assert_eq!(after.status(), StatusCode::SEE_OTHER);
    let audit: Vec<String> =
        tidings.app.store().audit(20).await.unwrap().iter().map(|e| format!("{} {}", e.actor, e.action)).collect();
    for expected in ["web:netadmin sign-in", "web:netadmin config.update", "web:netadmin sign-out"] {
        assert!(audit.iter().any(|a| a == expected), "{expected} not in {audit:?}");
    }
    tidings.stop().await;
}

#[tokio::test]
async fn repeated_failures_lock_the_account_until_an_administrator_unlocks_it() {
    let mut options = test_options();
    options.sign_in.max_failures = 3;
    options.sign_in.lockout = Duration::from_secs(3600);
    let tidings = Tidings::start_with(vec![], options).await;
    let id = account(&tidings, "operator", Role::Viewer).await;
    for _ in 0..3 {
        let refused = sign_in(&tidings, &browser(), "operator", "wrong-password-1").await;
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    }
    let locked = sign_in(&tidings, &browser(), "operator", PASSWORD).await;
    assert_eq!(locked.status(), StatusCode::UNAUTHORIZED);
    // A locked account, an unknown user and a wrong password get the same answer: nothing tells which names
    // exist.
    let unknown = sign_in(&tidings, &browser(), "nobody", PASSWORD).await;
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
    let notice = |page: &str| page.split("class=\"notice").nth(1).map(|n| n.split("</").next().unwrap().to_owned());
    let (locked, unknown) = (locked.text().await.unwrap(), unknown.text().await.unwrap());
    assert!(notice(&unknown).unwrap().contains("Wrong user name or password"), "{unknown}");
    assert_eq!(notice(&locked), notice(&unknown));
    assert!(!locked.contains("until"), "{locked}");

    let (status, _) = tidings
        .request(
            Method::PATCH,
            &format!("/api/v1/accounts/{id}"),
            Some(&tidings.admin),
            Some(json!({ "unlock": true })),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(sign_in(&tidings, &browser(), "operator", PASSWORD).await.status(), StatusCode::SEE_OTHER);
    let refusals: Vec<String> = tidings
        .app
        .store()
        .audit(50)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "sign-in.refused")
        .map(|e| e.fields.join(" "))
        .collect();
    assert_eq!(refusals.len(), 5);
    assert!(refusals.iter().any(|r| r.ends_with("locked")), "the audit log keeps the real reason: {refusals:?}");
    tidings.stop().await;
}

/// Who may call a route: anyone with a token, operators (administrator, network administrator), or
/// administrators only.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Needs {
    Anyone,
    Operator,
    Administrator,
}

#[tokio::test]
async fn every_api_route_allows_exactly_the_roles_it_should() {
    let peer = SmtpPeer::start(&[]);
    let tidings =
        Tidings::start(relay(&peer, &[("admin.addresses", "ops@example.com"), ("admin.test_email_wait", "0s")])).await;
    let target = account(&tidings, "target", Role::Viewer).await;
    use Needs::*;
    let routes: Vec<(Method, String, Option<Value>, Needs)> = vec![
        (Method::GET, "/api/v1/messages".into(), None, Anyone),
        (
            Method::POST,
            "/api/v1/messages".into(),
            Some(json!({"to": ["a@example.com"], "subject": "s", "text": "t"})),
            Operator,
        ),
        (Method::GET, "/api/v1/messages/1".into(), None, Anyone),
        (Method::POST, "/api/v1/messages/1/retry".into(), None, Operator),
        (Method::DELETE, "/api/v1/messages?status=failed".into(), None, Operator),
        (Method::GET, "/api/v1/email-config".into(), None, Anyone),
        (Method::PATCH, "/api/v1/email-config".into(), Some(json!({"smtp.port": 2525})), Operator),
        (Method::POST, "/api/v1/email-config/validate".into(), Some(json!({"smtp.port": 0})), Operator),
        (Method::POST, "/api/v1/email-config/google-client".into(), Some(json!({"installed": {}})), Operator),
        (Method::POST, "/api/v1/email-config/google-service-account".into(), Some(json!({"type": "x"})), Operator),
        (Method::POST, "/api/v1/email-config/test".into(), None, Operator),
        (Method::GET, "/api/v1/events".into(), None, Anyone),
        (Method::POST, "/api/v1/events".into(), Some(json!({"kind": "failover.takeover"})), Operator),
        (Method::GET, "/api/v1/events/kinds".into(), None, Anyone),
        (Method::GET, "/api/v1/events/1".into(), None, Anyone),
        (Method::GET, "/api/v1/oauth/status".into(), None, Anyone),
        (Method::POST, "/api/v1/oauth/authorize".into(), None, Operator),
        (Method::POST, "/api/v1/oauth/complete".into(), Some(json!({"input": "x"})), Operator),
        (Method::POST, "/api/v1/oauth/device".into(), None, Operator),
        (Method::POST, "/api/v1/oauth/client-credentials".into(), None, Operator),
        (Method::POST, "/api/v1/oauth/check".into(), None, Operator),
        (Method::DELETE, "/api/v1/oauth/token".into(), None, Operator),
        (Method::GET, "/api/v1/oauth/certificate".into(), None, Anyone),
        (Method::GET, "/api/v1/doctor".into(), None, Anyone),
        (Method::GET, "/api/v1/expiries".into(), None, Anyone),
        (Method::GET, "/api/v1/status".into(), None, Anyone),
        (Method::POST, "/api/v1/doctor".into(), None, Operator),
        (Method::POST, "/api/v1/oauth/certificate".into(), Some(json!({"days": 30})), Operator),
        (Method::GET, "/api/v1/me".into(), None, Anyone),
        (Method::GET, "/api/v1/audit".into(), None, Anyone),
        (Method::GET, "/api/v1/accounts".into(), None, Administrator),
        (
            Method::POST,
            "/api/v1/accounts".into(),
            Some(json!({"username": "x", "password": "p", "role": "viewer"})),
            Administrator,
        ),
        (Method::PATCH, format!("/api/v1/accounts/{target}"), Some(json!({"role": "viewer"})), Administrator),
        (Method::DELETE, "/api/v1/accounts/999".into(), None, Administrator),
        (Method::GET, "/api/v1/api-tokens".into(), None, Administrator),
        (Method::POST, "/api/v1/api-tokens".into(), Some(json!({"name": "n", "role": "viewer"})), Administrator),
        (Method::DELETE, "/api/v1/api-tokens/999".into(), None, Administrator),
        (Method::GET, "/metrics".into(), None, Anyone),
        (Method::GET, "/api/v1/devices".into(), None, Anyone),
        (Method::GET, "/api/v1/cluster".into(), None, Anyone),
        (
            Method::POST,
            "/api/v1/cluster/nodes".into(),
            Some(json!({"name": "node-x", "role": "backup"})),
            Administrator,
        ),
        (Method::DELETE, "/api/v1/cluster/nodes/none".into(), None, Administrator),
        (Method::POST, "/api/v1/cluster/promote".into(), None, Administrator),
        (Method::POST, "/api/v1/cluster/demote".into(), None, Administrator),
        (Method::POST, "/api/v1/devices".into(), Some(json!({"username": "scanner", "password": "p"})), Operator),
        (Method::DELETE, "/api/v1/devices/999".into(), None, Operator),
        (Method::DELETE, "/api/v1/devices/999/mailbox".into(), None, Operator),
    ];
    let callers = [
        (Role::Viewer, tidings.viewer.clone()),
        (Role::NetworkAdministrator, tidings.token.clone()),
        (Role::Administrator, tidings.admin.clone()),
    ];
    for (method, path, body, needs) in &routes {
        let (status, answer) = tidings.request(method.clone(), path, None, body.clone()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path} without a token: {answer}");
        for (role, token) in &callers {
            let allowed = match needs {
                Anyone => true,
                Operator => role.may_configure_email(),
                Administrator => *role == Role::Administrator,
            };
            let (status, answer) = tidings.request(method.clone(), path, Some(token), body.clone()).await;
            if allowed {
                assert!(
                    status != StatusCode::UNAUTHORIZED
                        && status != StatusCode::FORBIDDEN
                        && status != StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {path} as {role}: {status} {answer}"
                );
            } else {
                assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path} as {role}: {answer}");
            }
        }
    }
    // The table covers every documented API route.
    let documented = documented_routes();
    for (method, path) in documented.iter().filter(|(_, p)| p.starts_with("/api/v1/") && p != "/api/v1/openapi.json") {
        let covered = routes.iter().any(|(m, p, _, _)| m.as_str().eq_ignore_ascii_case(method) && same_route(path, p));
        assert!(covered, "{method} {path} is documented but not in the access table");
    }
    tidings.stop().await;
}

/// Whether a concrete path (`/api/v1/messages/1?x`) matches a documented one (`/api/v1/messages/{id}`).
fn same_route(documented: &str, concrete: &str) -> bool {
    let concrete = concrete.split('?').next().unwrap();
    let (a, b): (Vec<&str>, Vec<&str>) = (documented.split('/').collect(), concrete.split('/').collect());
    a.len() == b.len() && a.iter().zip(&b).all(|(d, c)| d.starts_with('{') || d == c)
}

/// (method, path) of every operation in openapi.json.
fn documented_routes() -> Vec<(String, String)> {
    let doc: Value = serde_json::from_str(include_str!("../openapi.json")).unwrap();
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            out.push((method.to_uppercase(), path.clone()));
        }
    }
    out
}

/// (method, path) of every route the HTTP API modules declare (`.route("…", get(…).post(…))`), and of the page
/// the OAuth provider sends browsers back to (`ui/landing.rs`), which openapi.json documents too.
fn declared_routes() -> Vec<(String, String)> {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let files = std::fs::read_dir(src.join("http")).unwrap().map(|e| e.unwrap().path());
    let mut out = Vec::new();
    for file in files.chain([src.join("ui/landing.rs")]) {
        let text = std::fs::read_to_string(file).unwrap().replace('\n', " ");
        for piece in text.split(".route(\"").skip(1) {
            let (path, rest) = piece.split_once('"').unwrap();
            let handlers = rest.split(".route(").next().unwrap();
            let handlers = &handlers[..handlers.find("))").map_or(handlers.len(), |i| i + 2)];
            for method in ["get", "post", "patch", "put", "delete"] {
                if handlers.contains(&format!("{method}(")) {
                    out.push((method.to_uppercase(), path.to_owned()));
                }
            }
        }
    }
    out
}

#[test]
fn the_openapi_document_matches_the_routes() {
    let (declared, documented) = (declared_routes(), documented_routes());
    assert!(declared.len() > 30, "the scan found only {declared:?}");
    for route in &declared {
        assert!(documented.contains(route), "{} {} is served but not documented in openapi.json", route.0, route.1);
    }
    for route in &documented {
        assert!(declared.contains(route), "{} {} is documented but not served", route.0, route.1);
    }
}

#[tokio::test]
async fn metrics_count_the_queue_deliveries_and_events() {
    let mut peer = SmtpPeer::start(&[]);
    let tidings = Tidings::start(relay(&peer, &[])).await;
    let id = tidings.send("counted").await;
    peer.next_message().await;
    tidings.wait_for_status(id, "delivered").await;
    tidings.post("/api/v1/events", json!({ "kind": "failover.sync_failed" })).await;
    let response =
        tidings.client.get(format!("{}/metrics", tidings.base)).bearer_auth(&tidings.viewer).send().await.unwrap();
    assert!(response.headers()[header::CONTENT_TYPE].to_str().unwrap().starts_with("application/openmetrics-text"));
    let text = response.text().await.unwrap();
    for line in [
        "tidings_queue_messages{status=\"delivered\"} 1",
        "tidings_delivery_attempts_total{result=\"delivered\"} 1",
        "tidings_token_state{state=\"not_configured\"} 1",
        "# TYPE tidings_token_refreshes counter",
    ] {
        assert!(text.contains(line), "{line} not in\n{text}");
    }
    assert!(text.contains("tidings_events{kind=\"failover.sync_failed\""), "{text}");
    tidings.stop().await;
}

#[tokio::test]
async fn roles_hold_in_the_pages_too() {
    let tidings = Tidings::start(vec![]).await;
    account(&tidings, "viewer", Role::Viewer).await;
    account(&tidings, "netadmin", Role::NetworkAdministrator).await;
    let viewer = browser();
    sign_in(&tidings, &viewer, "viewer", PASSWORD).await;
    let page = viewer.get(format!("{}/email-config", tidings.base)).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("disabled") && !page.contains(">Save<"), "a viewer sees the configuration read-only");
    let csrf = csrf_of(&page);
    for (path, form) in [
        ("/email-config", vec![("csrf", csrf.as_str()), ("sender", "x@example.com")]),
        ("/oauth/delete", vec![("csrf", csrf.as_str())]),
        ("/oauth/certificate", vec![("csrf", csrf.as_str())]),
        ("/doctor", vec![("csrf", csrf.as_str())]),
        ("/outbox/purge", vec![("csrf", csrf.as_str()), ("status", "failed")]),
        (
            "/accounts",
            vec![("csrf", csrf.as_str()), ("username", "new"), ("password", PASSWORD), ("role", "administrator")],
        ),
        ("/devices", vec![("csrf", csrf.as_str()), ("username", "printer"), ("password", PASSWORD)]),
        ("/devices/1/mailbox/delete", vec![("csrf", csrf.as_str())]),
    ] {
        let answer = viewer.post(format!("{}{path}", tidings.base)).form(&form).send().await.unwrap();
        assert_eq!(answer.status(), StatusCode::FORBIDDEN, "viewer POST {path}");
    }
    let netadmin = browser();
    sign_in(&tidings, &netadmin, "netadmin", PASSWORD).await;
    let page = netadmin.get(format!("{}/accounts", tidings.base)).send().await.unwrap().text().await.unwrap();
    assert!(!page.contains("/tokens"), "API tokens are for administrators only");
    let csrf = csrf_of(&page);
    let answer = netadmin
        .post(format!("{}/tokens", tidings.base))
        .form(&[("csrf", csrf.as_str()), ("name", "t"), ("role", "administrator")])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::FORBIDDEN);
    assert_eq!(tidings.app.accounts().await.unwrap().len(), 3, "nothing was created");
    tidings.stop().await;
}

#[tokio::test]
async fn https_serves_the_interface_with_secure_cookies() {
    let dir = tempfile::tempdir().unwrap();
    let generated = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, generated.cert.pem()).unwrap();
    std::fs::write(&key, generated.key_pair.serialize_pem()).unwrap();
    let mut options = test_options();
    options.tls = Some(tidings_server::tls::TlsFiles { cert, key });
    let tidings = Tidings::start_with(vec![], options).await;
    assert!(tidings.base.starts_with("https://"));
    account(&tidings, "netadmin", Role::NetworkAdministrator).await;
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(generated.cert.pem().as_bytes()).unwrap())
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let health: Value = client.get(format!("{}/healthz", tidings.base)).send().await.unwrap().json().await.unwrap();
    assert_eq!(health["status"], "ok");
    let signed_in = sign_in(&tidings, &client, "netadmin", PASSWORD).await;
    let cookie = signed_in
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect::<Vec<_>>();
    assert!(cookie.iter().any(|c| c.starts_with("tidings_session=") && c.contains("; Secure")), "{cookie:?}");
    // A plain-HTTP client gets nothing.
    assert!(reqwest::get(format!("{}/healthz", tidings.base.replace("https", "http"))).await.is_err());
    tidings.stop().await;
}

#[tokio::test]
async fn unusable_certificate_files_are_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, "not a certificate").unwrap();
    std::fs::write(&key, "not a key").unwrap();
    let err = tidings_server::tls::server_config(&tidings_server::tls::TlsFiles { cert, key }).unwrap_err().to_string();
    assert!(err.contains("cert.pem") && err.contains("no certificate"), "{err}");
}

#[tokio::test]
async fn one_address_failing_across_accounts_is_throttled() {
    let mut options = test_options();
    options.sign_in.max_failures_per_address = 4;
    let tidings = Tidings::start_with(vec![], options).await;
    account(&tidings, "operator", Role::Viewer).await;
    for name in ["alice", "bob", "carol", "dave"] {
        assert_eq!(sign_in(&tidings, &browser(), name, "guess-password-1").await.status(), StatusCode::UNAUTHORIZED);
    }
    // Even the right password waits now: the address is throttled, not the account.
    let throttled = sign_in(&tidings, &browser(), "operator", PASSWORD).await;
    assert_eq!(throttled.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(throttled.text().await.unwrap().contains("Too many failed sign-ins from this address"));
    let account = tidings.app.accounts().await.unwrap().into_iter().find(|a| a.username == "operator").unwrap();
    assert!(account.locked_until.is_none(), "the account itself is not locked");
    tidings.stop().await;
}

#[tokio::test]
async fn concurrent_wrong_passwords_get_no_more_checks_than_the_limits() {
    let mut options = test_options();
    options.sign_in.max_failures = 5;
    options.sign_in.max_failures_per_address = 20;
    let tidings = Tidings::start_with(vec![], options).await;
    account(&tidings, "operator", Role::Viewer).await;
    let before = tidings.app.password_checks().hashes();
    let tidings = std::sync::Arc::new(tidings);
    let attempts: Vec<_> = (0..45)
        .map(|n| {
            let tidings = tidings.clone();
            tokio::spawn(async move {
                sign_in(&tidings, &browser(), "operator", &format!("guess-{n}-password")).await.status()
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in attempts {
        statuses.push(task.await.unwrap());
    }
    assert!(
        statuses.iter().all(|s| *s == StatusCode::UNAUTHORIZED || *s == StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    let hashes = tidings.app.password_checks().hashes() - before;
    assert!(hashes <= 20, "{hashes} password checks: no more than the address's limit");
    let audit = tidings.app.store().audit(100).await.unwrap();
    let guesses = audit.iter().filter(|e| e.fields.iter().any(|f| f.starts_with("wrong password"))).count();
    assert!(guesses <= 5, "{guesses} guesses checked against the account, past its limit of 5");
    let account = tidings.app.accounts().await.unwrap().into_iter().find(|a| a.username == "operator").unwrap();
    assert!(account.locked_until.is_some(), "the account is locked");
    // The right password no longer gets in, from this address or another.
    assert_ne!(sign_in(&tidings, &browser(), "operator", PASSWORD).await.status(), StatusCode::SEE_OTHER);
    std::sync::Arc::into_inner(tidings).unwrap().stop().await;
}

#[tokio::test]
async fn sign_in_accepts_only_paths_of_this_interface_small_bodies_and_sends_security_headers() {
    let tidings = Tidings::start(vec![]).await;
    account(&tidings, "operator", Role::Viewer).await;
    let client = browser();
    let page = client.get(format!("{}/login?next=/%09/evil.example", tidings.base)).send().await.unwrap();
    let headers = page.headers().clone();
    let page = page.text().await.unwrap();
    assert!(page.contains("name=\"next\" value=\"/\""), "the start page instead of /\\t/evil.example: {page}");
    for (name, value) in [
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "same-origin"),
        ("x-frame-options", "DENY"),
        ("cache-control", "no-store"),
    ] {
        assert_eq!(headers[name], value, "{name}");
    }
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("frame-ancestors 'none'") && csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    let api = tidings
        .client
        .get(format!("{}/api/v1/messages", tidings.base))
        .bearer_auth(&tidings.token)
        .send()
        .await
        .unwrap();
    assert_eq!(api.headers()["cache-control"], "no-store");
    let css = tidings.client.get(format!("{}/static/app.css", tidings.base)).send().await.unwrap();
    assert!(css.headers()["cache-control"].to_str().unwrap().contains("max-age"));

    // A next with a newline signs in and goes to the start page, never a 500.
    for next in ["/\n/evil.example", "/\t/evil.example", "//evil.example", "/\\evil.example"] {
        let client = browser();
        let page = client.get(format!("{}/login", tidings.base)).send().await.unwrap().text().await.unwrap();
        let form = [
            ("csrf", csrf_of(&page)),
            ("username", "operator".into()),
            ("password", PASSWORD.into()),
            ("next", next.into()),
        ];
        let signed_in = client.post(format!("{}/login", tidings.base)).form(&form).send().await.unwrap();
        assert_eq!(signed_in.status(), StatusCode::SEE_OTHER, "{next:?}");
        assert_eq!(signed_in.headers()[header::LOCATION], "/", "{next:?}");
    }

    // Before anyone is authenticated, a large body is not read.
    for path in ["/login", "/mailbox/login"] {
        let big = "username=x&password=".to_owned() + &"y".repeat(200 * 1024);
        let refused = browser()
            .post(format!("{}{path}", tidings.base))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(big)
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), StatusCode::PAYLOAD_TOO_LARGE, "{path}");
    }
    tidings.stop().await;
}

#[tokio::test]
async fn a_client_that_trickles_its_request_is_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut options = test_options();
    options.http = tidings_server::serve::HttpTimeouts {
        header_read: Duration::from_millis(300),
        body: Duration::from_millis(500),
    };
    let tidings = Tidings::start_with(vec![], options).await;
    let address = tidings.base.trim_start_matches("http://").to_owned();
    // Headers that never end, one byte at a time.
    let mut slow = tokio::net::TcpStream::connect(&address).await.unwrap();
    let started = std::time::Instant::now();
    let trickle = async {
        for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" {
            if slow.write_all(&[*byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    trickle.await;
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "the connection is closed after the header timeout, not kept open");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    // A body that never arrives whole.
    let mut slow = tokio::net::TcpStream::connect(&address).await.unwrap();
    let head = format!(
        "POST /api/v1/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{{",
        tidings.token
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(5), slow.read(&mut answer))
        .await
        .expect("answered, not left waiting")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]).to_string();
    assert!(answer.starts_with("HTTP/1.1 4"), "{answer}");
    tidings.stop().await;
}

/// The OAuth page makes the client's certificate, asks before replacing it, and offers it as a file.
#[tokio::test]
async fn the_oauth_page_makes_the_client_certificate_and_offers_it_for_download() {
    let settings = [
        ("sender", "alerts@contoso.com"),
        ("smtp.host", "127.0.0.1"),
        ("smtp.auth", "oauth2"),
        ("oauth.provider", "microsoft"),
        ("oauth.tenant", "contoso.com"),
        ("oauth.client_id", "6731de76-14a6-49ae-97bc-6eba6914391e"),
    ];
    let tidings = Tidings::start(settings.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()).await;
    account(&tidings, "netadmin", Role::NetworkAdministrator).await;
    let browser = browser();
    sign_in(&tidings, &browser, "netadmin", PASSWORD).await;
    let page = browser.get(format!("{}/oauth", tidings.base)).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("id=\"client-certificate\"") && page.contains("No client certificate is kept"), "{page}");
    assert!(page.contains("id=\"tenant-setup\""), "{page}");
    assert!(
        page.contains("Set-CASMailbox -Identity &#39;alerts@contoso.com&#39;")
            || page.contains("Set-CASMailbox -Identity 'alerts@contoso.com'"),
        "{page}"
    );
    let csrf = csrf_of(&page);
    let answer = browser
        .post(format!("{}/oauth/certificate", tidings.base))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    let page = shown(&tidings, &browser, answer).await;
    let held = tidings.app.client_certificate().await.unwrap().expect("made");
    assert!(page.contains(&held.sha1_thumbprint()) && page.contains("Download certificate"), "{page}");
    assert!(page.contains("data-confirm=\"Replace the certificate?"), "replacing asks first: {page}");
    // Without the form's confirmation, nothing is replaced.
    let page = browser
        .post(format!("{}/oauth/certificate", tidings.base))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("exists already"), "{page}");
    assert_eq!(tidings.app.client_certificate().await.unwrap().unwrap().pem, held.pem);
    let file = browser.get(format!("{}/oauth/certificate.pem", tidings.base)).send().await.unwrap();
    assert_eq!(file.headers()["content-type"], "application/x-pem-file");
    assert!(file.headers()["content-disposition"].to_str().unwrap().contains("tidings-client.pem"));
    let body = file.text().await.unwrap();
    assert_eq!(body, held.pem);
    assert!(!body.contains("PRIVATE"));
    tidings.stop().await;
}

/// The doctor's page: the last report for anyone, a run for an operator, which a reload does not repeat.
#[tokio::test]
async fn the_doctor_page_runs_the_doctor_and_shows_its_report() {
    let peer = SmtpPeer::start(&[]);
    let tidings = Tidings::start(relay(&peer, &[])).await;
    account(&tidings, "netadmin", Role::NetworkAdministrator).await;
    let browser = browser();
    sign_in(&tidings, &browser, "netadmin", PASSWORD).await;
    let page = browser.get(format!("{}/doctor", tidings.base)).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("The doctor has not run yet."), "{page}");
    let csrf = csrf_of(&page);
    let ran = browser.post(format!("{}/doctor", tidings.base)).form(&[("csrf", csrf.as_str())]).send().await.unwrap();
    assert_eq!(ran.status(), StatusCode::SEE_OTHER, "a reload shows the report, not another run");
    assert_eq!(ran.headers()[header::LOCATION], "/doctor");
    let page = browser.get(format!("{}/doctor", tidings.base)).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("id=\"doctor-report\"") && page.contains("Every step passed; nothing was sent."), "{page}");
    assert!(page.contains("Relay's name") && page.contains("Sender"), "the steps in words: {page}");
    let (_, report) = tidings.get("/api/v1/doctor").await;
    assert_eq!(report["ok"], true, "{report}");
    tidings.stop().await;
}

#[tokio::test]
async fn the_cluster_page_makes_a_join_code_for_an_administrator_only() {
    let tidings = Tidings::start(vec![]).await;
    account(&tidings, "netadmin", Role::NetworkAdministrator).await;
    account(&tidings, "boss", Role::Administrator).await;
    let netadmin = browser();
    sign_in(&tidings, &netadmin, "netadmin", PASSWORD).await;
    let page = netadmin.get(format!("{}/cluster", tidings.base)).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("No other nodes") && !page.contains("/cluster/nodes"), "only administrators add nodes");
    let csrf = csrf_of(&page);
    let answer = netadmin
        .post(format!("{}/cluster/nodes", tidings.base))
        .form(&[("csrf", csrf.as_str()), ("name", "backup-1"), ("role", "backup")])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::FORBIDDEN);

    let admin = browser();
    sign_in(&tidings, &admin, "boss", PASSWORD).await;
    let page = admin.get(format!("{}/cluster", tidings.base)).send().await.unwrap().text().await.unwrap();
    let csrf = csrf_of(&page);
    let answer = admin
        .post(format!("{}/cluster/nodes", tidings.base))
        .form(&[("csrf", csrf.as_str()), ("name", "backup-1"), ("role", "backup")])
        .send()
        .await
        .unwrap();
    let page = shown(&tidings, &admin, answer).await;
    assert!(page.contains("tidings-join:backup-1:"), "the code is shown once");
    let again = admin.get(format!("{}/cluster", tidings.base)).send().await.unwrap().text().await.unwrap();
    assert!(!again.contains("tidings-join:backup-1:"), "and only once: a reload does not show it again");
    assert!(page.contains("primary") && page.contains("invited"), "this node became the primary; the node is invited");
    let page = admin
        .post(format!("{}/cluster/nodes", tidings.base))
        .form(&[("csrf", csrf.as_str()), ("name", "bad name"), ("role", "backup")])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("is not a node name"), "a wrong name is explained");
    tidings.stop().await;
}

#[tokio::test]
async fn a_follower_says_on_every_page_whose_configuration_it_holds() {
    let tidings = Tidings::start(vec![("public_base_url".into(), "https://alpha.example.com".into())]).await;
    account(&tidings, "boss", Role::Administrator).await;
    let me = tidings_store::ClusterSelf {
        role: tidings_core::cluster::Role::Backup,
        primary_name: Some("alpha".into()),
        primary_url: Some("https://127.0.0.1:9443".into()),
        synced_revision: Some(7),
        synced_at: Some(chrono::Utc::now() - chrono::Duration::seconds(4)),
        ..tidings_store::ClusterSelf::primary("backup-1".into(), 2)
    };
    tidings.app.store().put_cluster_self(Some(&me), None).await.unwrap();
    let admin = browser();
    sign_in(&tidings, &admin, "boss", PASSWORD).await;
    for path in ["/email-config", "/outbox", "/cluster"] {
        let page = admin.get(format!("{}{path}", tidings.base)).send().await.unwrap().text().await.unwrap();
        assert!(page.contains("This node is a backup: its email configuration is the primary"), "{path}: {page}");
        assert!(page.contains("alpha, revision 7, received ") && page.contains(" s ago"), "{path}: {page}");
        assert!(page.contains("href=\"https://alpha.example.com\""), "the link goes to the primary: {path}");
    }
    tidings.stop().await;
}

/// Many doctor runs asked for at once: one session at a time at the relay, so that a burst of them never takes
/// the mailbox's connections from delivery (Exchange's thread limit, here 1).
#[tokio::test]
async fn a_burst_of_doctor_runs_opens_one_session_at_a_time() {
    let tmp = tempfile::tempdir().unwrap();
    let stats = tmp.path().join("stats.json");
    let peer = SmtpPeer::start(&[
        "--user",
        "alerts@example.com",
        "--password",
        "relay-pass",
        "--thread-limit",
        "1",
        "--stats-out",
        stats.to_str().unwrap(),
    ]);
    let tidings = Tidings::start(relay(
        &peer,
        &[
            ("smtp.auth", "password"),
            ("smtp.username", "alerts@example.com"),
            ("smtp.password", "relay-pass"),
            ("smtp.allow_plaintext_auth", "true"),
        ],
    ))
    .await;
    let runs = (0..8).map(|_| tidings.post("/api/v1/doctor", json!({})));
    for (code, report) in futures_util::future::join_all(runs).await {
        assert_eq!((code, report["ok"].as_bool()), (StatusCode::OK, Some(true)), "{report:#}");
    }
    let seen: Value = serde_json::from_str(&std::fs::read_to_string(&stats).unwrap()).unwrap();
    assert_eq!(seen["alerts@example.com"]["peak_sessions"], 1, "{seen}");
    assert_eq!(seen["alerts@example.com"]["refused"], 0, "{seen}");
    tidings.stop().await;
}

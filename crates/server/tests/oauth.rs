//! OAuth with delivery, end to end: the relay accepts only access tokens valid now, tokens live 3 seconds, and
//! the provider (a fake of Microsoft's token endpoint) rotates refresh tokens and can revoke them.

#![allow(clippy::unwrap_used)] // helpers of tests: a failed step is a failed test

mod support;

use reqwest::{Method, StatusCode};
use std::time::{Duration, Instant};
use support::{Tidings, eventually, relay};
use tidings_app::authorization::Owner;
use tidings_core::secret::SecretString;
use tidings_testkit::{OAuthFake, SmtpPeer};

const CLIENT: &str = "6731de76-14a6-49ae-97bc-6eba6914391e";

/// The Microsoft fake issuing tokens that live `lifetime` seconds, a relay accepting only those, and Tidings
/// authorized with `refresh_token`, mailing alerts to ops@example.com.
async fn authorized(lifetime: u64, refresh_token: &str, extra: &[(&str, &str)]) -> (OAuthFake, SmtpPeer, Tidings) {
    let fake = OAuthFake::start(lifetime, &[]);
    fake.control(&format!("issue?refresh_token={refresh_token}"));
    let peer = SmtpPeer::start_tls(&["--token-file", fake.access_tokens.to_str().unwrap()]);
    let endpoint = fake.token_endpoint("contoso.com");
    let mut settings = vec![
        ("smtp.auth", "oauth2"),
        ("oauth.client_id", CLIENT),
        ("oauth.token_endpoint", endpoint.as_str()),
        ("admin.addresses", "ops@example.com"),
    ];
    settings.extend_from_slice(extra);
    let tidings = Tidings::start(relay(&peer, &settings)).await;
    let token = SecretString::new(refresh_token);
    tidings.app.authorized(Owner::Relay, "test", Some(&token), Some("alerts@example.com")).await.unwrap();
    (fake, peer, tidings)
}

#[tokio::test]
async fn short_lived_tokens_never_fail_a_delivery_and_a_revocation_waits_for_a_new_authorization() {
    let (fake, mut peer, tidings) = authorized(3, "rt-initial", &[]).await;

    // A stream of messages across several token lifetimes; each needs a new connection, so a new AUTH.
    let mut ids = Vec::new();
    let mut every = tokio::time::interval(Duration::from_millis(400));
    for i in 0..20 {
        every.tick().await;
        ids.push(tidings.send(&format!("stream {i}")).await);
    }
    for _ in &ids {
        peer.next_message().await;
    }
    for id in &ids {
        let message = tidings.wait_for_status(*id, "delivered").await;
        assert_eq!(message["attempt_log"].as_array().unwrap().len(), 1, "no failed attempt: {message:#}");
    }
    assert!(tidings.app.authorization(Owner::Relay).await.unwrap().unwrap().refreshed_at.is_some());
    assert_ne!(
        tidings.app.refresh_token(Owner::Relay).await.unwrap().unwrap().expose(),
        "rt-initial",
        "the rotated refresh token was stored"
    );

    // The provider revokes the grant. Once the last access token has expired, messages wait.
    fake.control("revoke");
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    while !std::fs::read_to_string(&fake.access_tokens).unwrap().trim().is_empty() {
        assert!(Instant::now() < deadline, "the access tokens never expired");
        tick.tick().await;
    }
    let id = tidings.send("during the revocation").await;
    let message = tidings.wait_for_status(id, "deferred").await;
    let attempt = &message["attempt_log"][0];
    assert_eq!(
        (attempt["result"].as_str(), attempt["stage"].as_str()),
        (Some("reauth_required"), Some("token")),
        "{attempt}"
    );
    assert!(
        attempt["text"].as_str().unwrap().contains("AADSTS") || attempt["text"].as_str().unwrap().contains("Authorize"),
        "{attempt}"
    );
    let (reason, explanation) = tidings.app.authorization(Owner::Relay).await.unwrap().unwrap().failure.unwrap();
    assert!(
        reason.contains("AADSTS70000") && explanation.contains("Authorize Tidings again"),
        "{reason} / {explanation}"
    );

    // The alert is recorded and its mail waits with the message: the mail path is what broke.
    // (The notifier turns it into a mail at its next wake-up, within its poll interval.)
    let alert_id = eventually("the alert was never mailed", Duration::from_secs(10), async || {
        let (_, events) = tidings.get("/api/v1/events?kind=oauth.reauthorization_required").await;
        let alert = &events["events"][0];
        if alert["state"] == "mailed" { Ok(alert["message_id"].as_i64().unwrap()) } else { Err(format!("{events:#}")) }
    })
    .await;
    tidings.wait_for_status(alert_id, "deferred").await;

    // An administrator authorizes again; the waiting messages go at once, the alert among them.
    fake.control("issue?refresh_token=rt-again");
    tidings
        .app
        .authorized(Owner::Relay, "test", Some(&SecretString::new("rt-again")), Some("alerts@example.com"))
        .await
        .unwrap();
    let mut subjects: Vec<String> = [peer.next_message().await, peer.next_message().await]
        .iter()
        .map(|m| m["data"].as_str().unwrap().to_owned())
        .collect();
    subjects.sort_by_key(|d| !d.contains("Subject: during the revocation"));
    assert!(subjects[0].contains("Subject: during the revocation"), "{subjects:?}");
    assert!(subjects[1].contains("AADSTS70000"), "the alert names the provider's reason: {}", subjects[1]);
    tidings.wait_for_status(id, "delivered").await;
    tidings.wait_for_status(alert_id, "delivered").await;
    tidings.stop().await;
}

#[tokio::test]
async fn refreshes_failing_for_long_raise_one_alert_which_goes_when_the_provider_is_back() {
    let (fake, mut peer, tidings) = authorized(2, "rt-1", &[("admin.token_alert_after", "1s")]).await;
    let first = tidings.send("before the outage").await;
    peer.next_message().await;
    tidings.wait_for_status(first, "delivered").await;

    // The token endpoint answers 503 from now on: refreshes fail, the grant is not refused.
    fake.control("outage?count=100000");
    let alert = eventually("no refresh-failing alert", Duration::from_secs(30), async || {
        let (_, events) = tidings.get("/api/v1/events?kind=oauth.refresh_failing").await;
        events["events"].as_array().unwrap().first().cloned().ok_or_else(|| events.to_string())
    })
    .await;
    assert!(alert["details"]["reason"].as_str().unwrap().contains("503"), "{alert}");
    let (_, status) = tidings.get("/api/v1/oauth/status").await;
    assert_eq!(status["state"], "failing", "{status}");

    // The provider is back: the alert's mail goes, and one spell raised one alert.
    fake.control("outage?count=0");
    let got = peer.next_message().await;
    assert!(got["data"].as_str().unwrap().contains("refresh"), "{got}");
    let (_, events) = tidings.get("/api/v1/events?kind=oauth.refresh_failing").await;
    assert_eq!(events["events"].as_array().unwrap().len(), 1, "{events:#}");
    tidings.stop().await;
}

/// The provider's redirect, as a browser would receive it (not followed).
async fn provider_redirect(url: &str) -> String {
    let browser = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let response = browser.get(url).send().await.unwrap();
    assert_eq!(response.status(), 302, "{}", response.text().await.unwrap());
    response.headers()["location"].to_str().unwrap().to_owned()
}

#[tokio::test]
async fn signing_in_by_redirect_by_pasting_and_refusals() {
    use reqwest::Method;
    let fake = OAuthFake::start(3600, &[]);
    let mut peer = SmtpPeer::start_tls(&["--token-file", fake.access_tokens.to_str().unwrap()]);
    let (token_endpoint, authorization_endpoint) =
        (fake.token_endpoint("contoso.com"), fake.token_endpoint("contoso.com").replace("/token", "/authorize"));
    let tidings = Tidings::start(relay(
        &peer,
        &[
            ("smtp.auth", "oauth2"),
            ("oauth.client_id", CLIENT),
            ("oauth.token_endpoint", &token_endpoint),
            ("oauth.authorization_endpoint", &authorization_endpoint),
            ("oauth.scopes", "https://outlook.office.com/SMTP.Send offline_access"),
        ],
    ))
    .await;
    let (_, status) = tidings.get("/api/v1/oauth/status").await;
    assert_eq!(status["state"], "authorization_required");
    let (code, error) = tidings.post("/api/v1/oauth/authorize", serde_json::json!({})).await;
    assert_eq!((code.as_u16(), error["error"]["code"].as_str()), (409, Some("not_configured")));
    assert!(error["error"]["message"].as_str().unwrap().contains("public_base_url"));
    tidings.reconfigure(&[("public_base_url", &tidings.base)]).await;

    // Through the redirect to /login/smtp-verification/.
    let (_, started) = tidings.post("/api/v1/oauth/authorize", serde_json::json!({})).await;
    let url = started["url"].as_str().unwrap();
    assert!(url.contains("code_challenge_method=S256") && url.contains("login_hint=alerts%40example.com"), "{url}");
    let back = provider_redirect(url).await;
    assert!(back.starts_with(&format!("{}/login/smtp-verification/?code=", tidings.base)), "{back}");
    let landing = tidings.client.get(&back).send().await.unwrap();
    assert_eq!(landing.status(), 200);
    assert!(landing.text().await.unwrap().contains("Tidings is authorized"));
    let (_, status) = tidings.get("/api/v1/oauth/status").await;
    assert_eq!(
        (status["state"].as_str(), status["account"].as_str()),
        (Some("active"), Some("alerts@example.com")),
        "{status}"
    );
    assert!(status["acquired_at"].is_string());
    let id = tidings.send("after signing in").await;
    assert_eq!(peer.next_message().await["auth_user"], "alerts@example.com");
    tidings.wait_for_status(id, "delivered").await;

    // The same answer twice is refused: a state works once.
    let replay = tidings.client.get(&back).send().await.unwrap();
    assert_eq!(replay.status(), 400);
    assert!(replay.text().await.unwrap().contains("start the sign-in again"));

    // Pasting the address the browser ended on, or just the code.
    let (_, started) = tidings.post("/api/v1/oauth/authorize", serde_json::json!({})).await;
    let back = provider_redirect(started["url"].as_str().unwrap()).await;
    let (code, done) = tidings.post("/api/v1/oauth/complete", serde_json::json!({"input": back})).await;
    assert_eq!(code, 200, "{done}");
    let (_, started) = tidings.post("/api/v1/oauth/authorize", serde_json::json!({})).await;
    let back = provider_redirect(started["url"].as_str().unwrap()).await;
    let bare = back.split("code=").nth(1).unwrap().split('&').next().unwrap();
    let bare = url_decode(bare);
    let (code, done) = tidings.post("/api/v1/oauth/complete", serde_json::json!({"input": bare})).await;
    assert_eq!(code, 200, "{done}");
    let (code, error) = tidings
        .post(
            "/api/v1/oauth/complete",
            serde_json::json!({"input": "https://x/login/smtp-verification/?state=nope&code=abc"}),
        )
        .await;
    assert_eq!(code, 400, "{error}");

    // The user declines at the provider: the page and the API say so.
    fake.control("deny");
    let (_, started) = tidings.post("/api/v1/oauth/authorize", serde_json::json!({})).await;
    let back = provider_redirect(started["url"].as_str().unwrap()).await;
    let landing =
        tidings.client.get(back.replace("/login/smtp-verification/", "/login/smtp-verification")).send().await.unwrap();
    assert_eq!(landing.status(), 400);
    assert!(landing.text().await.unwrap().contains("declined"));

    // Checking the connection, then deleting the authorization.
    let (_, checked) = tidings.post("/api/v1/oauth/check", serde_json::json!({})).await;
    assert_eq!(checked["connected"], true, "{checked}");
    let (code, _) = tidings.request(Method::DELETE, "/api/v1/oauth/token", Some(&tidings.token), None).await;
    assert_eq!(code, 204);
    let (_, status) = tidings.get("/api/v1/oauth/status").await;
    assert_eq!(status["state"], "authorization_required", "{status}");
    assert_eq!(tidings.request(Method::DELETE, "/api/v1/oauth/token", Some(&tidings.viewer), None).await.0, 403);
    tidings.stop().await;
}

fn url_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes()).next().unwrap().1.into_owned()
}

#[tokio::test]
async fn a_device_sign_in_through_the_api_turns_the_status_active() {
    let fake = OAuthFake::start(3600, &[]);
    let peer = SmtpPeer::start_tls(&["--token-file", fake.access_tokens.to_str().unwrap()]);
    let token_endpoint = fake.token_endpoint("contoso.com");
    let device_endpoint = token_endpoint.replace("/token", "/devicecode");
    let tidings = Tidings::start(relay(
        &peer,
        &[
            ("smtp.auth", "oauth2"),
            ("oauth.client_id", CLIENT),
            ("oauth.token_endpoint", &token_endpoint),
            ("oauth.device_authorization_endpoint", &device_endpoint),
        ],
    ))
    .await;
    let (code, shown) = tidings.post("/api/v1/oauth/device", serde_json::json!({})).await;
    assert_eq!(code, 200, "{shown}");
    assert_eq!(shown["verification_uri"], "https://microsoft.com/devicelogin");
    assert!(shown["user_code"].as_str().unwrap().len() >= 6);
    let (_, status) = tidings.get("/api/v1/oauth/status").await;
    assert_eq!(status["state"], "authorization_pending", "{status}");
    assert_eq!(status["expires_at"], shown["expires_at"]);
    fake.control("approve");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tick.tick().await;
        let (_, status) = tidings.get("/api/v1/oauth/status").await;
        if status["state"] == "active" {
            break;
        }
        assert!(Instant::now() < deadline, "never active: {status}");
    }
    tidings.stop().await;
}

#[tokio::test]
async fn app_only_sending_with_client_credentials() {
    let fake = OAuthFake::start(3, &[]);
    let mut peer = SmtpPeer::start_tls(&["--token-file", fake.access_tokens.to_str().unwrap()]);
    let token_endpoint = fake.token_endpoint("contoso.com");
    let port = peer.port.to_string();
    let ca = peer.ca_file.as_ref().unwrap().display().to_string();
    let tidings = Tidings::start(
        [
            ("sender", "alerts@contoso.com"),
            ("oauth.provider", "microsoft"),
            ("oauth.tenant", "contoso.com"),
            ("oauth.client_id", CLIENT),
            ("oauth.token_endpoint", &token_endpoint),
            ("smtp.host", "127.0.0.1"),
            ("smtp.port", &port),
            ("tls.ca_file", &ca),
            ("delivery.retry_first", "1s"),
            ("delivery.retry_max", "2s"),
            ("delivery.timeout", "5s"),
            ("delivery.lease", "15s"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect(),
    )
    .await;
    let (code, error) = tidings.post("/api/v1/oauth/client-credentials", serde_json::json!({})).await;
    assert_eq!(code, 409, "{error}");
    assert!(error["error"]["message"].as_str().unwrap().contains("oauth.client_secret"), "{error}");

    tidings.reconfigure(&[("oauth.client_secret", "app-secret")]).await;
    let (code, done) = tidings.post("/api/v1/oauth/client-credentials", serde_json::json!({})).await;
    assert_eq!(code, 200, "{done}");
    assert!(tidings.app.refresh_token(Owner::Relay).await.unwrap().is_none(), "no refresh token for app-only tokens");
    let id = tidings.send("app-only").await;
    assert_eq!(peer.next_message().await["auth_user"], "alerts@contoso.com");
    tidings.wait_for_status(id, "delivered").await;

    // The 3 s token is renewed with the client's credentials.
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    while tidings.app.authorization(Owner::Relay).await.unwrap().unwrap().refreshed_at.is_none() {
        assert!(Instant::now() < deadline, "never renewed");
        tick.tick().await;
    }
    let (_, status) = tidings.get("/api/v1/oauth/status").await;
    assert_eq!(status["state"], "active", "{status}");
    tidings.stop().await;
}

/// App-only sending with the client's certificate instead of a secret: the certificate made through the API,
/// uploaded to the app registration (the fake's registered certificates), and each token request signed with it.
#[tokio::test]
async fn app_only_sending_with_a_certificate_instead_of_a_secret() {
    let tmp = tempfile::tempdir().unwrap();
    let registered = tmp.path().join("registered.pem");
    let fake = OAuthFake::start(3600, &["--client-certificates", registered.to_str().unwrap()]);
    let mut peer = SmtpPeer::start_tls(&["--token-file", fake.access_tokens.to_str().unwrap()]);
    let token_endpoint = fake.token_endpoint("contoso.com");
    let (port, ca) = (peer.port.to_string(), peer.ca_file.as_ref().unwrap().display().to_string());
    let settings = [
        ("sender", "alerts@contoso.com"),
        ("oauth.provider", "microsoft"),
        ("oauth.tenant", "contoso.com"),
        ("oauth.client_id", CLIENT),
        ("oauth.token_endpoint", &token_endpoint),
        ("smtp.host", "127.0.0.1"),
        ("smtp.port", &port),
        ("tls.ca_file", &ca),
    ];
    let tidings = Tidings::start(settings.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()).await;

    let (code, none) = tidings.get("/api/v1/oauth/certificate").await;
    assert_eq!(code, 404, "{none}");
    let (code, refused) = tidings
        .request(
            Method::PATCH,
            "/api/v1/email-config",
            Some(&tidings.admin),
            Some(serde_json::json!({"oauth.client_credential": "certificate"})),
        )
        .await;
    assert_eq!(code, 422, "no certificate yet: {refused}");
    assert!(refused.to_string().contains("tidings oauth certificate create"), "{refused}");
    let viewer = tidings
        .request(Method::POST, "/api/v1/oauth/certificate", Some(&tidings.viewer), Some(serde_json::json!({})))
        .await;
    assert_eq!(viewer.0, StatusCode::FORBIDDEN);
    let (code, made) = tidings.post("/api/v1/oauth/certificate", serde_json::json!({"days": 365})).await;
    assert_eq!(code, 201, "{made}");
    let pem = made["pem"].as_str().unwrap().to_owned();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----") && !made.to_string().contains("PRIVATE"), "{made}");
    assert_eq!(made["sha1_thumbprint"].as_str().unwrap().len(), 40);
    let (code, again) = tidings.post("/api/v1/oauth/certificate", serde_json::json!({})).await;
    assert_eq!(code, 409, "never replaced unasked: {again}");
    let (_, shown) = tidings.get("/api/v1/oauth/certificate").await;
    assert_eq!(shown["pem"], made["pem"]);

    // Uploaded to the app registration, chosen, and used: no client secret anywhere.
    std::fs::write(&registered, &pem).unwrap();
    tidings.reconfigure(&[("oauth.client_credential", "certificate")]).await;
    let (code, done) = tidings.post("/api/v1/oauth/client-credentials", serde_json::json!({})).await;
    assert_eq!(code, 200, "{done}");
    let id = tidings.send("signed, not secret").await;
    assert_eq!(peer.next_message().await["auth_user"], "alerts@contoso.com");
    tidings.wait_for_status(id, "delivered").await;
    tidings.stop().await;
}

/// A Google Workspace service account with domain-wide delegation, from its JSON key file: a JWT bearer grant for
/// the mailbox, checked by the fake as Google does (signature, issuer, audience, lifetime, delegated scopes); no
/// person signs in, no refresh token exists.
#[tokio::test]
async fn a_google_service_account_sends_as_the_domains_mailbox() {
    const ACCOUNT: &str = "tidings@appliances-1234.iam.gserviceaccount.com";
    let tmp = tempfile::tempdir().unwrap();
    let (certificate, bundle) =
        tidings_app::client_certificate::ClientCertificate::generate("service account key", 30).unwrap();
    let registered = tmp.path().join("keys.pem");
    std::fs::write(&registered, &certificate.pem).unwrap();
    let fake = OAuthFake::start(
        3600,
        &[
            "--google",
            "--client-certificates",
            registered.to_str().unwrap(),
            "--service-account",
            ACCOUNT,
            "--domain-users",
            "alerts@example.com",
        ],
    );
    let mut peer = SmtpPeer::start_tls(&["--token-file", fake.access_tokens.to_str().unwrap()]);
    let tidings = Tidings::start(relay(&peer, &[])).await;

    let private_key = &bundle.expose()[bundle.expose().find("-----BEGIN PRIVATE KEY").unwrap()..];
    let key_file = serde_json::json!({
        "type": "service_account", "project_id": "appliances-1234", "private_key_id": "9f86d081884c7d65",
        "private_key": private_key, "client_email": ACCOUNT, "client_id": "104729384756102938475",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth", "token_uri": fake.token_endpoint("google"),
    });
    let (code, refused) = tidings
        .post("/api/v1/email-config/google-service-account", serde_json::json!({"installed": {"client_id": "x"}}))
        .await;
    assert_eq!(code, 400, "an OAuth client's file is not a service account's: {refused}");
    assert!(refused.to_string().contains("import-google-client"), "{refused}");
    // Below administrator, the file's token endpoint (the fake's, not Google's) is refused as any endpoint is.
    let path = "/api/v1/email-config/google-service-account";
    let (code, refused) = tidings.post(path, key_file.clone()).await;
    assert_eq!(code, 422, "{refused}");
    let (code, saved) = tidings.request(Method::POST, path, Some(&tidings.admin), Some(key_file)).await;
    assert_eq!(code, 200, "{saved}");
    // The Google preset moved the relay to Gmail: back to the test's relay.
    let port = peer.port.to_string();
    tidings.reconfigure(&[("smtp.host", "127.0.0.1"), ("smtp.port", &port), ("smtp.encryption", "starttls")]).await;
    let export = serde_json::to_string(&tidings.app.export(true).await.unwrap()).unwrap();
    assert!(!export.contains("PRIVATE KEY") && export.contains("sealed:"), "the key leaves only sealed: {export}");

    // No delegation for the scope yet: Google's refusal, explained.
    let (code, refused) = tidings.post("/api/v1/oauth/client-credentials", serde_json::json!({})).await;
    assert_eq!(code, 409, "{refused}");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(message.contains("unauthorized_client") && message.contains("Domain Wide Delegation"), "{message}");

    fake.control("delegate?scopes=https://mail.google.com/");
    let (code, done) = tidings.post("/api/v1/oauth/client-credentials", serde_json::json!({})).await;
    assert_eq!(code, 200, "{done}");
    assert!(tidings.app.refresh_token(Owner::Relay).await.unwrap().is_none(), "no refresh token");
    let id = tidings.send("as a service account").await;
    assert_eq!(peer.next_message().await["auth_user"], "alerts@example.com");
    tidings.wait_for_status(id, "delivered").await;

    // Where no key may be downloaded: Tidings' own key, its certificate uploaded to the service account.
    let own = tidings.app.make_client_certificate("test", 30, false).await.unwrap();
    tidings.reconfigure(&[("oauth.service_account_key", ""), ("oauth.service_account_key_id", "")]).await;
    let (code, refused) = tidings.post("/api/v1/oauth/client-credentials", serde_json::json!({})).await;
    assert_eq!(code, 409, "not uploaded yet: {refused}");
    assert!(refused.to_string().contains("Invalid JWT Signature"), "{refused}");
    std::fs::write(&registered, &own.pem).unwrap();
    let (code, done) = tidings.post("/api/v1/oauth/client-credentials", serde_json::json!({})).await;
    assert_eq!(code, 200, "{done}");
    tidings.stop().await;
}

//! Signing in against a real OAuth server, oidc-provider from npm: the authorization-code flow with PKCE,
//! refresh with rotation, and the device flow, walked through its login and consent pages as a browser would.

#![allow(clippy::unwrap_used)] // helpers of tests: a failed step is a failed test

mod support;

use std::time::{Duration, Instant};
use support::{Tidings, relay};
use tidings_app::authorization::Owner;
use tidings_testkit::{OidcProvider, SmtpPeer};

/// A browser: keeps cookies, follows redirects by hand, fills the first form of each page (any login works
/// with oidc-provider's development pages) and submits it.
struct Browser {
    client: reqwest::Client,
}

enum Next {
    Get(String),
    Post(String, Vec<(String, String)>),
}

impl Browser {
    fn new() -> Self {
        Self {
            client: reqwest::Client::builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        }
    }

    /// Walks from `start` until a redirect to an address starting with `stop_at` (returned), or a page with no
    /// form (returns `None`).
    async fn walk(&self, start: &str, stop_at: &str) -> Option<String> {
        let mut next = Next::Get(start.to_owned());
        for _ in 0..20 {
            let (url, response) = match next {
                Next::Get(url) => (url.clone(), self.client.get(&url).send().await.unwrap()),
                Next::Post(url, form) => (url.clone(), self.client.post(&url).form(&form).send().await.unwrap()),
            };
            if response.status().is_redirection() {
                let location = response.headers()["location"].to_str().unwrap();
                let location = reqwest::Url::parse(&url).unwrap().join(location).unwrap().to_string();
                if location.starts_with(stop_at) {
                    return Some(location);
                }
                next = Next::Get(location);
                continue;
            }
            let page = response.text().await.unwrap();
            let (action, fields) = first_form(&page)?;
            next = Next::Post(reqwest::Url::parse(&url).unwrap().join(&action).unwrap().to_string(), fields);
        }
        panic!("the sign-in pages went on too long");
    }
}

/// The first form's action and fields, with `login` and `password` filled in.
fn first_form(page: &str) -> Option<(String, Vec<(String, String)>)> {
    let start = page.find("<form")?;
    let form = &page[start..page[start..].find("</form>").map_or(page.len(), |e| start + e)];
    let action = attribute(form, "action").unwrap_or_default();
    let mut fields = Vec::new();
    for input in form.split("<input").skip(1) {
        let tag = &input[..input.find('>').unwrap_or(input.len())];
        let Some(name) = attribute(tag, "name") else { continue };
        let value = match name.as_str() {
            "login" => "alerts@example.com".to_owned(),
            "password" => "any password".to_owned(),
            _ => attribute(tag, "value").unwrap_or_default(),
        };
        fields.push((name, value));
    }
    Some((action, fields))
}

fn attribute(tag: &str, name: &str) -> Option<String> {
    let at = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    Some(tag[at..at + tag[at..].find('"')?].replace("&amp;", "&"))
}

async fn configured(tidings: &Tidings, provider: &OidcProvider) {
    let (auth, token, device) = (provider.url("/auth"), provider.url("/token"), provider.url("/device/auth"));
    tidings
        .reconfigure(&[
            ("smtp.auth", "oauth2"),
            ("smtp.allow_plaintext_auth", "true"),
            ("oauth.client_id", "tidings"),
            ("oauth.client_secret", "tidings-secret"),
            ("oauth.authorization_endpoint", &auth),
            ("oauth.token_endpoint", &token),
            ("oauth.device_authorization_endpoint", &device),
            ("oauth.scopes", "openid offline_access smtp"),
            ("public_base_url", &tidings.base),
        ])
        .await;
}

async fn wait_for_state(tidings: &Tidings, state: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tick.tick().await;
        let (_, status) = tidings.get("/api/v1/oauth/status").await;
        if status["state"] == state {
            return status;
        }
        assert!(Instant::now() < deadline, "never {state}: {status}");
    }
}

#[tokio::test]
async fn authorization_code_with_pkce_then_refresh_with_rotation() {
    let peer = SmtpPeer::start(&[]);
    let tidings = Tidings::start(relay(&peer, &[])).await;
    let provider = OidcProvider::start(&format!("{}/login/smtp-verification/", tidings.base), 4);
    configured(&tidings, &provider).await;

    let (_, started) = tidings.post("/api/v1/oauth/authorize", serde_json::json!({})).await;
    let back = Browser::new()
        .walk(started["url"].as_str().unwrap(), &format!("{}/login/smtp-verification/", tidings.base))
        .await
        .unwrap();
    assert!(back.contains("code=") && back.contains("iss="), "{back}");
    let landing = tidings.client.get(&back).send().await.unwrap();
    assert_eq!(landing.status(), 200, "{}", landing.text().await.unwrap());
    wait_for_state(&tidings, "active").await;
    let first = tidings.app.refresh_token(Owner::Relay).await.unwrap().unwrap();

    // The access token lives 4 s: the daemon refreshes it at 80 %, and the server rotates the refresh token.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    while tidings.app.authorization(Owner::Relay).await.unwrap().unwrap().refreshed_at.is_none() {
        let (_, status) = tidings.get("/api/v1/oauth/status").await;
        assert!(
            Instant::now() < deadline,
            "no refresh: {status} {:?}",
            tidings.app.authorization(Owner::Relay).await.unwrap().unwrap()
        );
        tick.tick().await;
    }
    assert_ne!(
        tidings.app.refresh_token(Owner::Relay).await.unwrap().unwrap(),
        first,
        "the rotated refresh token is stored"
    );
    wait_for_state(&tidings, "active").await;
    tidings.stop().await;
}

#[tokio::test]
async fn the_device_flow() {
    let peer = SmtpPeer::start(&[]);
    let tidings = Tidings::start(relay(&peer, &[])).await;
    let provider = OidcProvider::start(&format!("{}/login/smtp-verification/", tidings.base), 3600);
    configured(&tidings, &provider).await;

    let (code, shown) = tidings.post("/api/v1/oauth/device", serde_json::json!({})).await;
    assert_eq!(code, 200, "{shown}");
    assert_eq!(shown["interval"], 5, "oidc-provider gives no interval: RFC 8628's 5 s applies");
    wait_for_state(&tidings, "authorization_pending").await;
    let complete = shown["verification_uri_complete"].as_str().unwrap();
    assert!(Browser::new().walk(complete, "http://never/").await.is_none());
    let status = wait_for_state(&tidings, "active").await;
    assert!(status["acquired_at"].is_string());
    tidings.stop().await;
}

//! The HTTP token endpoint against a fake that answers as Microsoft's v2.0 endpoint does.

#![allow(clippy::unwrap_used)] // helpers of tests: a failed step is a failed test

use tidings_core::{EmailConfig, secret::SecretString};
use tidings_oauth::{
    access_tokens::{Credential, EndpointError, TokenEndpoint},
    http::{ClientAuth, HttpEndpoint},
};
use tidings_testkit::OAuthFake;

fn rt(token: &str) -> Credential {
    Credential::RefreshToken(SecretString::new(token))
}

const CLIENT: &str = "6731de76-14a6-49ae-97bc-6eba6914391e";

fn config(fake: &OAuthFake, client_id: &str) -> EmailConfig {
    let mut cfg = EmailConfig::default();
    cfg.oauth.client_id = Some(client_id.into());
    cfg.oauth.token_endpoint = Some(fake.token_endpoint("contoso.com"));
    cfg.oauth.scopes = vec!["https://outlook.office.com/SMTP.Send".into(), "offline_access".into()];
    cfg
}

#[tokio::test]
async fn a_refresh_returns_the_token_and_the_rotated_refresh_token() {
    let fake = OAuthFake::start(3600, &[]);
    fake.control("issue?refresh_token=rt-one");
    let endpoint =
        HttpEndpoint::new(&config(&fake, CLIENT), ClientAuth::Secret(SecretString::new("client-secret"))).unwrap();
    let granted = endpoint.refresh(&rt("rt-one")).await.unwrap();
    assert!(granted.access_token.expose().starts_with("eyJ0"));
    assert_eq!(granted.expires_in.as_secs(), 3600);
    let rotated = granted.refresh_token.unwrap();
    assert!(rotated.expose().starts_with("0.AXoA-"));
    assert!(std::fs::read_to_string(&fake.access_tokens).unwrap().contains(granted.access_token.expose()));
    endpoint.refresh(&Credential::RefreshToken(rotated)).await.unwrap();
}

#[tokio::test]
async fn aadsts_refusals_are_explained_and_outages_are_passing() {
    let fake = OAuthFake::start(3600, &["--revoked-code", "700082"]);
    let endpoint = HttpEndpoint::new(&config(&fake, CLIENT), ClientAuth::Public).unwrap();
    match endpoint.refresh(&rt("stale")).await.unwrap_err() {
        EndpointError::Refused { said, explanation } => {
            assert!(said.starts_with("invalid_grant: AADSTS700082"), "{said}");
            assert!(!said.contains("Trace ID"), "first line only: {said}");
            assert!(explanation.contains("90 days"), "{explanation}");
        }
        other => panic!("{other:?}"),
    }
    fake.control("outage?count=1");
    let err = endpoint.refresh(&rt("stale")).await.unwrap_err();
    assert!(matches!(&err, EndpointError::Unavailable(why) if why.contains("503")), "{err:?}");

    let wrong_client =
        HttpEndpoint::new(&config(&fake, "00000000-0000-0000-0000-000000000000"), ClientAuth::Public).unwrap();
    match wrong_client.refresh(&rt("x")).await.unwrap_err() {
        EndpointError::Refused { explanation, .. } => assert!(explanation.contains("oauth.client_id"), "{explanation}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn an_unreachable_endpoint_is_passing_and_the_check_says_why() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut cfg = EmailConfig::default();
    cfg.oauth.client_id = Some(CLIENT.into());
    cfg.oauth.token_endpoint = Some(format!("http://127.0.0.1:{port}/common/oauth2/v2.0/token"));
    let endpoint = HttpEndpoint::new(&cfg, ClientAuth::Public).unwrap();
    let err = endpoint.refresh(&rt("x")).await.unwrap_err();
    // What failed and what to check, in words, with the library's own words kept after them.
    let said = |why: &str| {
        why.contains("no connection to 127.0.0.1")
            && why.contains("oauth.proxy_url")
            && why.contains("Connection refused")
    };
    assert!(matches!(&err, EndpointError::Unavailable(why) if said(why)), "{err:?}");
    assert!(said(&endpoint.check().await.unwrap_err().to_string()));

    let fake = OAuthFake::start(3600, &[]);
    HttpEndpoint::new(&config(&fake, CLIENT), ClientAuth::Public).unwrap().check().await.unwrap();
    cfg.oauth.token_endpoint = None;
    assert!(HttpEndpoint::new(&cfg, ClientAuth::Public).unwrap_err().reason().contains("oauth.token_endpoint"));
}

/// A forward proxy for plain-HTTP targets that answers every request itself and reports the request line.
fn proxy() -> (String, std::sync::mpsc::Receiver<String>) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let mut stream = stream.unwrap();
            let mut line = String::new();
            BufReader::new(stream.try_clone().unwrap()).read_line(&mut line).unwrap();
            let _ = tx.send(line.trim().to_owned());
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    (url, rx)
}

#[tokio::test]
async fn the_check_goes_through_the_configured_proxy() {
    let (proxy_url, seen) = proxy();
    let mut cfg = EmailConfig::default();
    cfg.oauth.client_id = Some(CLIENT.into());
    cfg.oauth.token_endpoint = Some("http://127.0.0.1:9/contoso.com/oauth2/v2.0/token".into());
    cfg.oauth.proxy_url = Some(proxy_url);
    HttpEndpoint::new(&cfg, ClientAuth::Public).unwrap().check().await.unwrap();
    assert_eq!(seen.recv().unwrap(), "GET http://127.0.0.1:9/contoso.com/oauth2/v2.0/token HTTP/1.1");

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    cfg.oauth.proxy_url = Some(format!("http://{closed}"));
    let err = HttpEndpoint::new(&cfg, ClientAuth::Public).unwrap().check().await.unwrap_err().to_string();
    assert!(err.contains("no connection to 127.0.0.1"), "{err}");
}

/// App-only tokens with the client's certificate instead of a secret: the fake checks each client assertion's
/// signature against the certificates registered for the app, and its audience, issuer and lifetime.
#[tokio::test]
async fn a_certificate_signs_the_client_assertion_entra_checks() {
    use tidings_app::client_certificate::ClientCertificate;
    let tmp = tempfile::tempdir().unwrap();
    let registered = tmp.path().join("registered.pem");
    let fake = OAuthFake::start(3600, &["--client-certificates", registered.to_str().unwrap()]);
    let (certificate, _) = ClientCertificate::generate("Tidings test", 30).unwrap();
    let mut cfg = config(&fake, CLIENT);
    cfg.oauth.scopes = vec!["https://outlook.office365.com/.default".into()];
    let endpoint = HttpEndpoint::new(&cfg, ClientAuth::Certificate(certificate.clone())).unwrap();
    let app_only = Credential::Client { authorized_at: None };

    // Not uploaded yet: Microsoft's refusal, and what to do.
    match endpoint.refresh(&app_only).await.unwrap_err() {
        EndpointError::Refused { said, explanation } => {
            assert!(said.starts_with("invalid_client: AADSTS700027"), "{said}");
            assert!(explanation.contains("tidings oauth certificate show"), "{explanation}");
        }
        other => panic!("{other:?}"),
    }
    // Uploaded: a token for each request, each with an assertion of its own.
    std::fs::write(&registered, &certificate.pem).unwrap();
    for _ in 0..2 {
        let granted = endpoint.refresh(&app_only).await.unwrap();
        assert!(granted.access_token.expose().starts_with("eyJ0") && granted.refresh_token.is_none());
    }
    // Another key under the same name is not the registered certificate.
    let (other, _) = ClientCertificate::generate("Tidings test", 30).unwrap();
    let impostor = HttpEndpoint::new(&cfg, ClientAuth::Certificate(other)).unwrap();
    assert!(
        matches!(impostor.refresh(&app_only).await.unwrap_err(), EndpointError::Refused { said, .. } if said.contains("AADSTS700027"))
    );
    // Each assertion names the endpoint it goes to as its audience (the fake checks it): another tenant's too.
    let mut elsewhere = cfg.clone();
    elsewhere.oauth.token_endpoint = Some(fake.token_endpoint("fabrikam.com"));
    let signed_for = HttpEndpoint::new(&elsewhere, ClientAuth::Certificate(certificate)).unwrap();
    signed_for.refresh(&app_only).await.unwrap();
}

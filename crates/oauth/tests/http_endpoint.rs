//! The HTTP token endpoint against a fake that answers as Microsoft's v2.0 endpoint does.

#![allow(clippy::unwrap_used)] // helpers of tests: a failed step is a failed test

use tidings_core::{EmailConfig, secret::SecretString};
use tidings_oauth::{
    access_tokens::{Credential, EndpointError, TokenEndpoint},
    http::HttpEndpoint,
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
    let endpoint = HttpEndpoint::new(&config(&fake, CLIENT), Some(SecretString::new("client-secret"))).unwrap();
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
    let endpoint = HttpEndpoint::new(&config(&fake, CLIENT), None).unwrap();
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

    let wrong_client = HttpEndpoint::new(&config(&fake, "00000000-0000-0000-0000-000000000000"), None).unwrap();
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
    let endpoint = HttpEndpoint::new(&cfg, None).unwrap();
    let err = endpoint.refresh(&rt("x")).await.unwrap_err();
    assert!(matches!(&err, EndpointError::Unavailable(why) if why.contains("cannot connect")), "{err:?}");
    assert!(endpoint.check().await.unwrap_err().to_string().contains("cannot connect"));

    let fake = OAuthFake::start(3600, &[]);
    HttpEndpoint::new(&config(&fake, CLIENT), None).unwrap().check().await.unwrap();
    cfg.oauth.token_endpoint = None;
    assert!(HttpEndpoint::new(&cfg, None).unwrap_err().reason().contains("oauth.token_endpoint"));
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
    HttpEndpoint::new(&cfg, None).unwrap().check().await.unwrap();
    assert_eq!(seen.recv().unwrap(), "GET http://127.0.0.1:9/contoso.com/oauth2/v2.0/token HTTP/1.1");

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    cfg.oauth.proxy_url = Some(format!("http://{closed}"));
    let err = HttpEndpoint::new(&cfg, None).unwrap().check().await.unwrap_err().to_string();
    assert!(err.contains("cannot connect"), "{err}");
}

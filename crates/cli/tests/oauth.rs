//! Signing in from the command line (pasting the address the browser ended on), then status, check, revoke.

#![allow(clippy::unwrap_used)] // helpers of tests: a failed step is a failed test

mod support;

use std::{
    io::{BufRead, BufReader, Read, Write},
    process::Stdio,
};
use support::*;
use tidings_testkit::OAuthFake;

const CLIENT: &str = "6731de76-14a6-49ae-97bc-6eba6914391e";

/// What a browser would be sent to by the provider (its Location header).
fn provider_redirect(url: &str) -> String {
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_once('/').unwrap();
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    write!(stream, "GET /{path} HTTP/1.0\r\nHost: {host}\r\n\r\n").unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer.lines().find_map(|l| l.strip_prefix("Location: ")).unwrap_or_else(|| panic!("{answer}")).trim().to_owned()
}

/// Configures `dir` for OAuth2 against the fake provider.
fn configure_oauth(dir: &std::path::Path, fake: &OAuthFake, extra: &[&str]) {
    let token = fake.token_endpoint("contoso.com");
    let endpoints = [
        format!("oauth.client_id={CLIENT}"),
        format!("oauth.token_endpoint={token}"),
        format!("oauth.authorization_endpoint={}", token.replace("/token", "/authorize")),
        format!("oauth.device_authorization_endpoint={}", token.replace("/token", "/devicecode")),
    ];
    let mut args = vec!["config", "set", "sender=alerts@contoso.com", "smtp.host=smtp.example.com", "smtp.auth=oauth2"];
    args.extend(endpoints.iter().map(String::as_str));
    args.extend_from_slice(extra);
    ok(dir, &args);
}

#[test]
fn sign_in_by_pasting_then_status_check_and_revoke() {
    let fake = OAuthFake::start(3600, &[]);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    ok(dir, &["init"]);
    configure_oauth(
        dir,
        &fake,
        &["oauth.scopes=https://outlook.office.com/SMTP.Send offline_access", "public_base_url=http://127.0.0.1:9"],
    );
    assert!(ok(dir, &["oauth", "status"]).contains("authorization required: run `tidings oauth login`"));

    let mut login = tidings()
        .arg("--data-dir")
        .arg(dir)
        .args(["oauth", "login", "--paste"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(login.stdout.take().unwrap());
    let url = loop {
        let mut line = String::new();
        assert!(out.read_line(&mut line).unwrap() > 0, "no address printed");
        if let Some(url) = line.trim().strip_prefix("http://") {
            break format!("http://{url}");
        }
    };
    assert!(url.contains("code_challenge_method=S256") && url.contains("state="), "{url}");
    let landed = provider_redirect(&url);
    assert!(landed.starts_with("http://127.0.0.1:9/login/smtp-verification/?code="), "{landed}");
    writeln!(login.stdin.take().unwrap(), "{landed}").unwrap();
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    assert!(login.wait().unwrap().success());
    assert!(rest.contains("Tidings is authorized to send as alerts@contoso.com"), "{rest}");

    let status = ok(dir, &["oauth", "status"]);
    assert!(status.contains("acquired") && status.contains("alerts@contoso.com"), "{status}");
    let json: serde_json::Value = serde_json::from_str(&ok(dir, &["oauth", "status", "--json"])).unwrap();
    assert_eq!(json["state"], "acquired");
    assert!(ok(dir, &["oauth", "check"]).contains("Connected"));
    assert!(ok(dir, &["audit"]).contains("oauth.authorize"));

    // Pasting something else is refused with what to do.
    let out = run(dir, &["oauth", "login", "--paste"], "https://x/login/smtp-verification/?code=abc&state=forged\n");
    assert!(!out.status.success() && stderr(&out).contains("start the sign-in again"), "{}", stderr(&out));

    ok(dir, &["oauth", "revoke"]);
    assert!(ok(dir, &["oauth", "status"]).contains("authorization required"));
    let unreachable = format!(
        "oauth.token_endpoint=http://127.0.0.1:{}/t",
        std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
    );
    ok(dir, &["config", "set", &unreachable]);
    assert!(fails(dir, &["oauth", "check"]).contains("not connected: cannot connect"));
}

#[test]
fn sign_in_with_a_device_code() {
    let fake = OAuthFake::start(3600, &[]);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    ok(dir, &["init"]);
    configure_oauth(dir, &fake, &[]);
    let mut login = tidings()
        .arg("--data-dir")
        .arg(dir)
        .args(["oauth", "login", "--device"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(login.stdout.take().unwrap());
    let mut shown = String::new();
    while !shown.contains("Waiting") {
        assert!(out.read_line(&mut shown).unwrap() > 0, "{shown}");
    }
    assert!(shown.contains("https://microsoft.com/devicelogin") && shown.contains("enter the code"), "{shown}");
    fake.control("approve");
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    assert!(login.wait().unwrap().success());
    assert!(rest.contains("Tidings is authorized to send as alerts@contoso.com"), "{rest}");
    assert!(ok(dir, &["oauth", "status"]).contains("acquired"));
}

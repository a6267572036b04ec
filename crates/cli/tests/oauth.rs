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
    let err = fails(dir, &["oauth", "check"]);
    assert!(err.contains("not connected: Tidings could not reach the OAuth provider: no connection"), "{err}");
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

/// The client's certificate from the command line: made, shown (never its key), replaced only with --force; an
/// export carries it sealed, which a node with the same key takes back and one with another key refuses; a
/// certificate of one's own is imported, checked to match its key.
#[test]
fn the_client_certificate_is_made_shown_exported_sealed_and_imported() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a");
    ok(&dir, &["init"]);
    let err = fails(&dir, &["oauth", "certificate", "show"]);
    assert!(err.contains("tidings oauth certificate create"), "{err}");
    let out = run(&dir, &["oauth", "certificate", "create", "--days", "400"], "");
    assert!(out.status.success(), "{}", stderr(&out));
    let pem = stdout(&out);
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----") && !pem.contains("PRIVATE"), "{pem}");
    assert!(stderr(&out).contains("Upload this certificate"), "{}", stderr(&out));
    assert_eq!(ok(&dir, &["oauth", "certificate", "show"]), pem);
    let shown: serde_json::Value =
        serde_json::from_str(&ok(&dir, &["oauth", "certificate", "show", "--json"])).unwrap();
    assert_eq!(shown["pem"], pem.as_str());
    let err = fails(&dir, &["oauth", "certificate", "create"]);
    assert!(err.contains("exists already") && err.contains("--force"), "{err}");
    let replaced = ok(&dir, &["oauth", "certificate", "create", "--force"]);
    assert_ne!(replaced, pem);

    // Exported sealed: the key never in clear; another node with the same key file takes it.
    let export = ok(&dir, &["config", "export", "--with-secrets"]);
    assert!(!export.contains("PRIVATE KEY") && export.contains("\"oauth.client_certificate\": \"sealed:"), "{export}");
    let file = tmp.path().join("export.json");
    std::fs::write(&file, &export).unwrap();
    let twin = tmp.path().join("twin");
    ok(&twin, &["init", "--join-key", dir.join("secret.key").to_str().unwrap()]);
    ok(&twin, &["config", "import", file.to_str().unwrap()]);
    assert_eq!(ok(&twin, &["oauth", "certificate", "show"]), replaced);
    let stranger = tmp.path().join("stranger");
    ok(&stranger, &["init"]);
    let err = fails(&stranger, &["config", "import", file.to_str().unwrap()]);
    assert!(err.contains("oauth.client_certificate") && err.contains("sealed with another key"), "{err}");

    // One's own certificate and key: checked to belong together.
    let own = rcgen::generate_simple_self_signed(vec!["tidings.example.com".to_owned()]).unwrap();
    let wrong = tmp.path().join("ec.pem");
    std::fs::write(&wrong, format!("{}{}", own.cert.pem(), own.key_pair.serialize_pem())).unwrap();
    let err = fails(&stranger, &["oauth", "certificate", "import", wrong.to_str().unwrap()]);
    assert!(err.contains("not an RSA key"), "{err}");
    let (made, bundle) = tidings_app::client_certificate::ClientCertificate::generate("our PKI", 90).unwrap();
    let right = tmp.path().join("rsa.pem");
    std::fs::write(&right, bundle.expose()).unwrap();
    ok(&stranger, &["oauth", "certificate", "import", right.to_str().unwrap()]);
    assert_eq!(ok(&stranger, &["oauth", "certificate", "show"]), made.pem);
}

/// The tenant's set-up from the configuration: every value filled in, for the mode asked or the one configured.
#[test]
fn the_setup_script_is_written_from_the_configuration() {
    let tmp = tempfile::tempdir().unwrap();
    ok(tmp.path(), &["init"]);
    let err = fails(tmp.path(), &["oauth", "setup-script"]);
    assert!(err.contains("oauth.client_id"), "{err}");
    ok(
        tmp.path(),
        &[
            "config",
            "set",
            "sender=alerts@contoso.com",
            "oauth.provider=microsoft",
            "oauth.tenant=contoso.com",
            "oauth.client_id=6731de76-14a6-49ae-97bc-6eba6914391e",
        ],
    );
    let delegated = ok(tmp.path(), &["oauth", "setup-script"]);
    assert!(
        delegated.contains("Set-CASMailbox -Identity 'alerts@contoso.com' -SmtpClientAuthenticationDisabled $false"),
        "{delegated}"
    );
    let app_only = ok(tmp.path(), &["oauth", "setup-script", "--mode", "app-only"]);
    assert!(
        app_only.contains("New-ManagementRoleAssignment -App $sp.Id -Role 'Application SMTP.SendAsApp'"),
        "{app_only}"
    );
    assert!(app_only.contains("PrimarySmtpAddress -eq 'alerts@contoso.com'") && !app_only.contains('<'), "{app_only}");
}

/// `tidings expiries`: the credential in use and its end, whichever it is.
#[test]
fn the_credentials_ends_are_listed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    ok(dir, &["init"]);
    assert!(ok(dir, &["expiries"]).contains("No credential in use ends on a known date"));
    ok(dir, &["oauth", "certificate", "create", "--days", "400"]);
    let microsoft = [
        "config",
        "set",
        "sender=alerts@contoso.com",
        "smtp.auth=oauth2",
        "oauth.provider=microsoft",
        "oauth.tenant=contoso.com",
        "oauth.client_id=00000000-0000-0000-0000-000000000001",
        "oauth.client_credential=certificate",
    ];
    ok(dir, &microsoft);
    let listed = |dir: &std::path::Path| -> Vec<(String, i64)> {
        let json: serde_json::Value = serde_json::from_str(&ok(dir, &["expiries", "--json"])).unwrap();
        json["expiries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["credential"].as_str().unwrap().to_owned(), e["days_left"].as_i64().unwrap()))
            .collect()
    };
    let got = listed(dir);
    assert!(matches!(&got[..], [(name, 399 | 400)] if name == "client_certificate"), "{got:?}");
    assert!(ok(dir, &["expiries"]).contains("client_certificate"));

    let date = (chrono::Utc::now() + chrono::Duration::days(20)).date_naive().to_string();
    let secret = run(dir, &["config", "set-secret", "oauth.client_secret"], "app-secret-value\n");
    assert!(secret.status.success(), "{}", stderr(&secret));
    ok(dir, &["config", "set", "oauth.client_credential=secret", &format!("oauth.client_secret_expires={date}")]);
    let got = listed(dir);
    assert!(
        matches!(&got[..], [(name, 19 | 20)] if name == "client_secret"),
        "the certificate kept is not in use: {got:?}"
    );
}

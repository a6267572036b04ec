//! The administrator's command line: init, config show / set / set-secret / validate / import / export,
//! Google's client file, and the audit log.

mod support;

use std::{fs, os::unix::fs::PermissionsExt};
use support::*;

const GUID: &str = "6731de76-14a6-49ae-97bc-6eba6914391e";

fn init(dir: &std::path::Path) {
    ok(dir, &["init"]);
}

#[test]
fn init_makes_a_private_data_dir_and_an_administrator() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let out = ok(&dir, &["init"]);
    assert!(out.contains("administrator account: admin"), "{out}");
    let password = out.lines().find_map(|l| l.trim().strip_prefix("password: ")).unwrap();
    assert_eq!(password.split(' ').next().unwrap().len(), 20);
    assert_eq!(fs::metadata(dir.join("secret.key")).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);

    let err = fails(&dir, &["init"]);
    assert!(err.contains("already initialised"), "{err}");

    let other = tmp.path().join("other");
    let password_file = tmp.path().join("pw");
    fs::write(&password_file, "a chosen long password\n").unwrap();
    let out = ok(&other, &["init", "--admin-user", "root", "--admin-password-file", password_file.to_str().unwrap()]);
    assert!(out.contains("administrator account: root") && !out.contains("password:"), "{out}");

    fs::write(&password_file, "short\n").unwrap();
    let err = fails(&tmp.path().join("third"), &["init", "--admin-password-file", password_file.to_str().unwrap()]);
    assert!(err.contains("at least 12 characters"), "{err}");
}

#[test]
fn commands_on_an_uninitialised_dir_say_what_to_do() {
    let tmp = tempfile::tempdir().unwrap();
    let err = fails(tmp.path(), &["config", "show"]);
    assert!(err.contains("tidings init --data-dir"), "{err}");
    let out = tidings().args(["config", "show"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("--data-dir DIR or set TIDINGS_DATA_DIR"));
}

#[test]
fn set_validates_everything_at_once_and_show_hides_secrets() {
    let tmp = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    init(tmp.path());
    let err = fails(
        tmp.path(),
        &["config", "set", "sender=nope", "smtp.port=70000", "smtp.host=a b", "smtp.encryptoin=tls", "broken"],
    );
    assert!(err.contains("expected KEY=VALUE"), "{err}");
    let err =
        fails(tmp.path(), &["config", "set", "sender=nope", "smtp.port=70000", "smtp.host=a b", "smtp.encryptoin=tls"]);
    for needle in [
        "sender:",
        "smtp.port: 70000 is outside 1-65535",
        "smtp.host:",
        "unknown key \"smtp.encryptoin\"",
        "Nothing was saved",
    ] {
        assert!(err.contains(needle), "{needle}: {err}");
    }

    let out = ok(
        tmp.path(),
        &[
            "config",
            "set",
            "sender=alerts@example.com",
            "smtp.host=smtp.example.com",
            "smtp.auth=password",
            "smtp.username=dev",
            "smtp.password=cli-visible-password",
        ],
    );
    assert!(out.contains("smtp.password"), "{out}");
    let out = run(tmp.path(), &["config", "set-secret", "oauth.client_secret"], "stdin-client-secret-value\n");
    assert!(out.status.success(), "{}", stderr(&out));
    let secret_file = elsewhere.path().join("secret.txt");
    fs::write(&secret_file, "file-smtp-password-value\n").unwrap();
    ok(tmp.path(), &["config", "set-secret", "smtp.password", "--file", secret_file.to_str().unwrap()]);
    assert!(fails(tmp.path(), &["config", "set-secret", "smtp.host"]).contains("not a secret"));

    let human = ok(tmp.path(), &["config", "show"]);
    let json: serde_json::Value = serde_json::from_str(&ok(tmp.path(), &["config", "show", "--json"])).unwrap();
    assert_eq!(json["secrets"]["smtp.password"], "set");
    assert_eq!(json["secrets"]["oauth.client_secret"], "set");
    assert_eq!(json["config"]["smtp"]["host"], "smtp.example.com");
    assert_eq!(json["derived"]["smtp.port"], 587);
    for text in [&human, &json.to_string(), &ok(tmp.path(), &["config", "export"]), &ok(tmp.path(), &["audit"])] {
        for secret in ["cli-visible-password", "stdin-client-secret-value", "file-smtp-password-value"] {
            assert!(!text.contains(secret), "{secret} shown in {text}");
        }
    }
    for entry in fs::read_dir(tmp.path()).unwrap() {
        let path = entry.unwrap().path();
        let bytes = fs::read(&path).unwrap();
        for secret in ["cli-visible-password", "stdin-client-secret-value", "file-smtp-password-value"] {
            assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()), "{secret} in {}", path.display());
        }
    }
}

#[test]
fn presets_fill_and_explicit_values_override() {
    let tmp = tempfile::tempdir().unwrap();
    init(tmp.path());
    ok(
        tmp.path(),
        &[
            "config",
            "set",
            "sender=alerts@contoso.com",
            "oauth.provider=microsoft",
            "oauth.tenant=contoso.com",
            &format!("oauth.client_id={GUID}"),
        ],
    );
    let json: serde_json::Value = serde_json::from_str(&ok(tmp.path(), &["config", "show", "--json"])).unwrap();
    assert_eq!(json["config"]["smtp"]["host"], "smtp.office365.com");
    assert_eq!(
        json["config"]["oauth"]["token_endpoint"],
        "https://login.microsoftonline.com/contoso.com/oauth2/v2.0/token"
    );
    ok(
        tmp.path(),
        &[
            "config",
            "set",
            "oauth.token_endpoint=https://login.example.net/token",
            "public_base_url=https://tidings.contoso.com/",
        ],
    );
    let json: serde_json::Value = serde_json::from_str(&ok(tmp.path(), &["config", "show", "--json"])).unwrap();
    assert_eq!(json["config"]["oauth"]["token_endpoint"], "https://login.example.net/token");
    assert_eq!(json["derived"]["oauth.redirect_uri"], "https://tidings.contoso.com/login/smtp-verification/");
}

#[test]
fn google_client_file_import_and_a_broken_one() {
    let tmp = tempfile::tempdir().unwrap();
    init(tmp.path());
    ok(tmp.path(), &["config", "set", "sender=alerts@example.com"]);
    let file = tmp.path().join("client_secret_1.json");
    fs::write(
        &file,
        r#"{"installed":{"client_id":"1-a.apps.googleusercontent.com","client_secret":"GOCSPX-cli-secret",
            "auth_uri":"https://accounts.google.com/o/oauth2/auth","token_uri":"https://oauth2.googleapis.com/token",
            "redirect_uris":["http://localhost"]}}"#,
    )
    .unwrap();
    let out = ok(tmp.path(), &["config", "import-google-client", file.to_str().unwrap()]);
    assert!(out.contains("oauth.client_id") && out.contains("oauth.client_secret"), "{out}");
    let shown = ok(tmp.path(), &["config", "show"]);
    assert!(
        shown.contains("smtp.gmail.com") && shown.contains("https://mail.google.com/") && !shown.contains("GOCSPX")
    );

    fs::write(&file, r#"{"type": "service_account"}"#).unwrap();
    let err = fails(tmp.path(), &["config", "import-google-client", file.to_str().unwrap()]);
    assert!(err.contains("client_secret_1.json") && err.contains("\"installed\" or \"web\""), "{err}");
    let err = fails(tmp.path(), &["config", "import-google-client", "/nonexistent/file.json"]);
    assert!(err.contains("/nonexistent/file.json cannot be read"), "{err}");
}

#[test]
fn export_validate_and_import_between_data_dirs() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    init(&a);
    init(&b);
    ok(
        &a,
        &[
            "config",
            "set",
            "sender=alerts@example.com",
            "smtp.host=relay.example.com",
            "smtp.auth=password",
            "smtp.username=u",
            "smtp.password=export-me-password",
            "admin.addresses=ops@example.com noc@example.com",
        ],
    );

    let plain = tmp.path().join("plain.json");
    ok(&a, &["config", "export", "-o", plain.to_str().unwrap()]);
    assert!(!fs::read_to_string(&plain).unwrap().contains("export-me-password"));
    let err = fails(&b, &["config", "import", plain.to_str().unwrap()]);
    assert!(err.contains("smtp.password: required"), "a plain export needs the secret supplied: {err}");

    let full = tmp.path().join("full.json");
    let out = run(&a, &["config", "export", "--with-secrets", "-o", full.to_str().unwrap()], "");
    assert!(stderr(&out).contains("clear text"));
    assert_eq!(fs::metadata(&full).unwrap().permissions().mode() & 0o777, 0o600);
    assert!(ok(&b, &["config", "validate", full.to_str().unwrap()]).contains("is valid"));
    ok(&b, &["config", "import", full.to_str().unwrap()]);
    assert_eq!(ok(&a, &["config", "export"]), ok(&b, &["config", "export"]));
    assert!(ok(&b, &["config", "validate"]).contains("valid"));

    fs::write(&full, "{\"format\": \"tidings-email-config\", \"version\": 1, \"config\": {\"smtp\": {\"port\": 0}}}")
        .unwrap();
    let err = fails(&b, &["config", "validate", full.to_str().unwrap()]);
    assert!(err.contains("smtp.port"), "{err}");
    fs::write(&full, "not json").unwrap();
    assert!(
        fails(&b, &["config", "import", full.to_str().unwrap()])
            .contains("full.json: not a Tidings configuration export")
    );
}

#[test]
fn the_audit_log_names_who_changed_which_fields() {
    let tmp = tempfile::tempdir().unwrap();
    init(tmp.path());
    ok(tmp.path(), &["config", "set", "locale=fr", "oauth.client_secret=audit-secret-value"]);
    let out = ok(tmp.path(), &["audit"]);
    let first = out.lines().next().unwrap();
    assert!(
        first.contains("cli:tester")
            && first.contains("config.update")
            && first.contains("locale: en → fr, oauth.client_secret: changed"),
        "{out}"
    );
    assert!(out.contains("account.create"));
    let json: serde_json::Value = serde_json::from_str(&ok(tmp.path(), &["audit", "--json", "--limit", "1"])).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 1);
    assert_eq!(json[0]["fields"][1], "oauth.client_secret: changed");
}

#[test]
fn keys_lists_every_field() {
    let tmp = tempfile::tempdir().unwrap();
    let out = ok(tmp.path(), &["config", "keys"]);
    for key in ["sender", "smtp.encryption", "oauth.device_authorization_endpoint", "admin.time_zone", "smtp.password"]
    {
        assert!(out.contains(key), "{key}");
    }
    assert!(out.contains("(secret)"));
}

#[test]
fn stored_text_is_printed_escaped_and_a_closed_pipe_ends_a_command_quietly() {
    let tmp = tempfile::tempdir().unwrap();
    ok(tmp.path(), &["init"]);
    // An actor name with a newline and a terminal escape (the CLI's actor comes from $USER).
    let forged = tidings()
        .env("USER", "mallory\n2026-01-01 00:00:00 UTC  cli:root  config.update\u{1b}[2J")
        .args(["--data-dir", tmp.path().to_str().unwrap(), "config", "set", "locale=de"])
        .output()
        .unwrap();
    assert!(forged.status.success(), "{}", String::from_utf8_lossy(&forged.stderr));
    let audit = ok(tmp.path(), &["audit"]);
    assert!(!audit.contains('\u{1b}'), "no raw escape sequence: {audit:?}");
    assert_eq!(audit.lines().filter(|l| l.contains("cli:root")).count(), 1, "no forged line: {audit}");
    assert!(audit.contains("cli:mallory\\n2026-01-01") && audit.contains("\\u{1b}[2J"), "{audit}");

    // The reader goes away before the command writes: no panic, a quiet success.
    let mut child = tidings()
        .args(["--data-dir", tmp.path().to_str().unwrap(), "audit", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && !err.contains("panicked"), "{:?}: {err}", out.status);
}

#[test]
fn fetch_certificate_shows_the_relays_certificate_and_pins_it_on_request() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    init(&dir);
    let err = fails(&dir, &["config", "fetch-certificate"]);
    assert!(err.contains("smtp.host"), "no relay yet: {err}");

    let cert = tmp.path().join("relay.pem");
    let peer = tidings_testkit::SmtpPeer::start(&["--self-signed-out", cert.to_str().unwrap()]);
    configure_relay(&dir, peer.port, &[]);
    let err = fails(&dir, &["config", "fetch-certificate"]);
    assert!(err.contains("smtp.encryption is none"), "{err}");
    ok(&dir, &["config", "set", "smtp.encryption=starttls"]);

    let out = ok(&dir, &["config", "fetch-certificate", "--json"]);
    let shown: serde_json::Value = serde_json::from_str(&out).unwrap();
    let own = &shown["certificates"][0];
    assert_eq!((own["self_signed"].as_bool(), own["names"][0].as_str()), (Some(true), Some("127.0.0.1")), "{out}");
    let fingerprint = own["sha256_fingerprint"].as_str().unwrap().to_owned();
    assert_eq!(fingerprint.len(), 95, "AB:CD:… as openssl prints it: {fingerprint}");
    let openssl = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(&cert)
        .output()
        .unwrap();
    let openssl = String::from_utf8_lossy(&openssl.stdout).into_owned();
    assert!(openssl.trim().ends_with(&fingerprint), "the fingerprint openssl prints: {openssl} / {fingerprint}");
    assert!(ok(&dir, &["config", "show"]).contains("tls.pinned_certificate"));
    assert!(!ok(&dir, &["config", "show"]).contains(&fingerprint), "nothing pinned without --pin");

    let out = run(&dir, &["config", "fetch-certificate", "--pin"], "");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("(self-signed)") && stdout(&out).contains(&fingerprint), "{}", stdout(&out));
    assert!(stderr(&out).contains("Pinned"), "{}", stderr(&out));
    assert!(ok(&dir, &["config", "show"]).contains(&fingerprint));
    assert!(ok(&dir, &["audit"]).contains("tls.pinned_certificate"), "the pin is audited");
    let again = run(&dir, &["config", "fetch-certificate", "--pin"], "");
    assert!(stderr(&again).contains("is pinned"), "pinned once: {}", stderr(&again));
}

#[test]
fn init_with_a_join_key_holds_that_key_and_a_wrong_file_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (first, second) = (tmp.path().join("first"), tmp.path().join("second"));
    ok(&first, &["init"]);
    let key_file = first.join("secret.key");
    ok(&second, &["init", "--join-key", key_file.to_str().unwrap()]);
    assert_eq!(std::fs::read(second.join("secret.key")).unwrap(), std::fs::read(&key_file).unwrap());
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(second.join("secret.key")).unwrap().permissions().mode() & 0o777, 0o600);
    let out = run(&second, &["config", "set-secret", "smtp.password"], "a-relay-password\n");
    assert!(out.status.success(), "the joined key seals secrets: {}", stderr(&out));

    let wrong = tmp.path().join("wrong.key");
    std::fs::write(&wrong, "not a key\n").unwrap();
    let err = fails(&tmp.path().join("third"), &["init", "--join-key", wrong.to_str().unwrap()]);
    assert!(err.contains("--join-key") && err.contains("wrong.key"), "{err}");
    let err = fails(&tmp.path().join("fourth"), &["init", "--join-key", "/dev/zero"]);
    assert!(err.contains("not a regular file"), "{err}");
}

/// A password against Microsoft 365's SMTP is saved, with Microsoft's timeline and the way to OAuth, and said
/// again by `config show`.
#[test]
fn a_password_against_microsoft_is_saved_with_a_warning_of_its_end() {
    let tmp = tempfile::tempdir().unwrap();
    ok(tmp.path(), &["init"]);
    let secret = run(tmp.path(), &["config", "set-secret", "smtp.password"], "Pa55-word\n");
    assert!(secret.status.success(), "{}", stderr(&secret));
    let out = run(
        tmp.path(),
        &[
            "config",
            "set",
            "sender=alerts@contoso.com",
            "smtp.host=smtp.office365.com",
            "smtp.auth=password",
            "smtp.username=alerts@contoso.com",
        ],
        "",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let said = format!("{}{}", stdout(&out), stderr(&out));
    assert!(said.contains("December 2026") && said.contains("oauth.provider=microsoft"), "{said}");
    let shown = ok(tmp.path(), &["config", "show"]);
    assert!(shown.contains("Warning: smtp.auth is password against Microsoft 365"), "{shown}");
    let json: serde_json::Value = serde_json::from_str(&ok(tmp.path(), &["config", "show", "--json"])).unwrap();
    assert_eq!(json["warnings"].as_array().unwrap().len(), 1, "{json}");
}

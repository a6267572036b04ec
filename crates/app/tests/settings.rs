//! The configuration service end to end on a real data directory.

#![allow(clippy::unwrap_used)] // helpers of tests: a failed step is a failed test

use std::{fs, path::Path};
use tidings_app::authorization::Owner;
use tidings_app::{App, Error, InitOptions, data_dir::DataDir, settings::ConfigDocument};
use tidings_core::{
    account::Role,
    secret::{SecretName, SecretString},
};

const GUID: &str = "6731de76-14a6-49ae-97bc-6eba6914391e";

async fn fresh(dir: &Path) -> App {
    let options = InitOptions { admin_username: "admin".into(), ..Default::default() };
    App::init(DataDir::new(dir), options).await.unwrap().app
}

fn edits(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

/// Every file of the data directory, as bytes (the database, its WAL and shared memory).
fn all_bytes(dir: &Path) -> Vec<(String, Vec<u8>)> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| (p.display().to_string(), fs::read(&p).unwrap()))
        .collect()
}

#[tokio::test]
async fn secrets_are_sealed_in_the_database_and_readable_through_the_app() {
    let tmp = tempfile::tempdir().unwrap();
    let app = fresh(tmp.path()).await;
    let password = "Pa55-unmistakable-smtp-password";
    let client_secret = "unmistakable~client~secret~value";
    app.update(
        "cli:test",
        &edits(&[
            ("sender", "alerts@example.com"),
            ("smtp.host", "smtp.example.com"),
            ("smtp.auth", "password"),
            ("smtp.username", "device"),
            ("smtp.password", password),
            ("oauth.client_secret", client_secret),
        ]),
    )
    .await
    .unwrap();
    for (file, bytes) in all_bytes(tmp.path()) {
        for needle in [password, client_secret] {
            assert!(!bytes.windows(needle.len()).any(|w| w == needle.as_bytes()), "{needle} found in {file}");
        }
    }
    assert!(
        all_bytes(tmp.path()).iter().any(|(f, b)| f.contains("tidings.db") && b.windows(6).any(|w| w == b"device")),
        "the grep can find plain values"
    );
    assert_eq!(app.secret(SecretName::SmtpPassword).await.unwrap(), Some(SecretString::new(password)));
    let current = app.current().await.unwrap();
    assert!(current.secrets.smtp_password && current.secrets.oauth_client_secret);
}

#[tokio::test]
async fn every_change_is_audited_with_its_values_and_secrets_only_as_changed() {
    let tmp = tempfile::tempdir().unwrap();
    let app = fresh(tmp.path()).await;
    app.update("cli:alice", &edits(&[("locale", "fr"), ("oauth.client_secret", "topsecret-value")])).await.unwrap();
    let entry = &app.store().audit(1).await.unwrap()[0];
    assert_eq!((entry.actor.as_str(), entry.action.as_str()), ("cli:alice", "config.update"));
    assert_eq!(entry.fields, ["locale: en → fr", "oauth.client_secret: changed"]);
    assert!(!format!("{entry:?}").contains("topsecret"));
    let oldest = app.store().audit(10).await.unwrap().pop().unwrap();
    assert_eq!((oldest.action.as_str(), oldest.fields[0].as_str()), ("account.create", "admin"));
}

#[tokio::test]
async fn an_invalid_change_stores_nothing_and_reports_every_field() {
    let tmp = tempfile::tempdir().unwrap();
    let app = fresh(tmp.path()).await;
    app.update("cli:test", &edits(&[("sender", "a@example.com"), ("smtp.host", "smtp.example.com")])).await.unwrap();
    let before = app.current().await.unwrap();
    let audit_before = app.store().audit(100).await.unwrap().len();
    let err = app
        .update(
            "cli:test",
            &edits(&[("smtp.port", "70000"), ("sender", "broken"), ("smtp.password", "x"), ("smtp.auth", "password")]),
        )
        .await
        .unwrap_err();
    let Error::Invalid(errors) = err else { panic!("expected validation errors, got {err:?}") };
    for field in ["smtp.port", "sender", "smtp.username"] {
        assert!(errors.has(field), "{field}: {errors}");
    }
    assert_eq!(app.current().await.unwrap(), before);
    assert_eq!(app.store().audit(100).await.unwrap().len(), audit_before);
    assert_eq!(app.secret(SecretName::SmtpPassword).await.unwrap(), None);
}

#[tokio::test]
async fn an_unchanged_value_saves_no_revision() {
    let tmp = tempfile::tempdir().unwrap();
    let app = fresh(tmp.path()).await;
    let first = app.update("cli:test", &edits(&[("locale", "de")])).await.unwrap();
    let again = app.update("cli:test", &edits(&[("locale", "de")])).await.unwrap();
    assert_eq!((again.revision, again.changed.len()), (first.revision, 0));
}

#[tokio::test]
async fn the_ca_file_must_exist_and_hold_a_certificate() {
    let tmp = tempfile::tempdir().unwrap();
    let app = fresh(&tmp.path().join("data")).await;
    let missing = tmp.path().join("missing.pem");
    let err = app.update("cli:test", &edits(&[("tls.ca_file", missing.to_str().unwrap())])).await.unwrap_err();
    assert!(err.to_string().contains("cannot be read"), "{err}");
    let junk = tmp.path().join("junk.pem");
    fs::write(&junk, "hello").unwrap();
    let err = app.update("cli:test", &edits(&[("tls.ca_file", junk.to_str().unwrap())])).await.unwrap_err();
    assert!(err.to_string().contains("no PEM certificate"), "{err}");
    let good = tmp.path().join("ca.pem");
    fs::write(&good, "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n").unwrap();
    app.update("cli:test", &edits(&[("tls.ca_file", good.to_str().unwrap())])).await.unwrap();
    app.validate_current().await.unwrap();
    fs::remove_file(&good).unwrap();
    assert!(app.validate_current().await.unwrap_err().to_string().contains("tls.ca_file"));
}

#[tokio::test]
async fn google_client_files_of_both_shapes() {
    let tmp = tempfile::tempdir().unwrap();
    let app = fresh(tmp.path()).await;
    app.update(
        "cli:test",
        &edits(&[("sender", "alerts@example.com"), ("public_base_url", "https://tidings.example.com")]),
    )
    .await
    .unwrap();

    let installed = r#"{"installed":{"client_id":"1-a.apps.googleusercontent.com","client_secret":"GOCSPX-one",
        "auth_uri":"https://accounts.google.com/o/oauth2/auth","token_uri":"https://oauth2.googleapis.com/token"}}"#;
    let saved = app.import_google_client("cli:test", Role::Administrator, installed).await.unwrap();
    assert!(saved.warnings.is_empty());
    let cfg = app.current().await.unwrap().config;
    assert_eq!(cfg.oauth.client_id.as_deref(), Some("1-a.apps.googleusercontent.com"));
    assert_eq!(cfg.oauth.authorization_endpoint.as_deref(), Some("https://accounts.google.com/o/oauth2/auth"));
    assert_eq!(cfg.smtp.host.as_deref(), Some("smtp.gmail.com"));
    assert_eq!(app.secret(SecretName::OAuthClientSecret).await.unwrap().unwrap().expose(), "GOCSPX-one");

    let web = r#"{"web":{"client_id":"2-b.apps.googleusercontent.com","client_secret":"GOCSPX-two",
        "auth_uri":"https://accounts.google.com/o/oauth2/auth","token_uri":"https://oauth2.googleapis.com/token",
        "redirect_uris":["https://elsewhere.example.com/callback"]}}"#;
    let saved = app.import_google_client("cli:test", Role::Administrator, web).await.unwrap();
    assert!(saved.warnings[0].contains("https://tidings.example.com/login/smtp-verification/"), "{:?}", saved.warnings);
    assert_eq!(app.current().await.unwrap().config.oauth.client_id.as_deref(), Some("2-b.apps.googleusercontent.com"));
    assert_eq!(app.store().audit(1).await.unwrap()[0].action, "config.import-google-client");

    let err = app.import_google_client("cli:test", Role::Administrator, "{ not json").await.unwrap_err();
    assert!(err.to_string().contains("not a JSON file"), "{err}");
}

#[tokio::test]
async fn export_leaves_secrets_out_unless_asked_and_import_restores() {
    let tmp = tempfile::tempdir().unwrap();
    let app = fresh(&tmp.path().join("a")).await;
    app.update(
        "cli:test",
        &edits(&[
            ("sender", "alerts@contoso.com"),
            ("oauth.provider", "microsoft"),
            ("oauth.tenant", "contoso.com"),
            ("oauth.client_id", GUID),
            ("oauth.client_secret", "ms-secret-value"),
            ("admin.addresses", "ops@contoso.com noc@contoso.com"),
        ]),
    )
    .await
    .unwrap();
    let plain = app.export(false).await.unwrap();
    assert!(plain.secrets.is_empty());
    assert!(!serde_json::to_string(&plain).unwrap().contains("ms-secret-value"));
    let full = app.export(true).await.unwrap();
    assert_eq!(full.secrets["oauth.client_secret"], "ms-secret-value");

    let other = fresh(&tmp.path().join("b")).await;
    let doc = ConfigDocument::parse(&serde_json::to_string(&full).unwrap()).unwrap();
    other.validate_document(&doc).await.unwrap();
    let saved = other.import("cli:test", &doc).await.unwrap();
    assert!(saved.changed.contains(&"oauth.client_secret".to_owned()));
    assert_eq!(other.current().await.unwrap().config, app.current().await.unwrap().config);
    assert_eq!(other.secret(SecretName::OAuthClientSecret).await.unwrap().unwrap().expose(), "ms-secret-value");

    for (text, needle) in [
        ("{}", "missing field"),
        (r#"{"format":"x","version":1,"config":{}}"#, "expected \"tidings-email-config\""),
        (r#"{"format":"tidings-email-config","version":1,"config":{"smtp":{"hots":"x"}}}"#, "unknown field `hots`"),
    ] {
        let err = ConfigDocument::parse(text).unwrap_err().to_string();
        assert!(err.contains(needle), "{text}: {err}");
    }
    let bad_secret: ConfigDocument = serde_json::from_str(
        r#"{"format":"tidings-email-config","version":1,"config":{},"secrets":{"smtp.pass":"x"}}"#,
    )
    .unwrap();
    assert!(other.import("cli:test", &bad_secret).await.unwrap_err().to_string().contains("secrets.smtp.pass"));
}

#[tokio::test]
async fn a_data_directory_opens_only_with_its_own_key() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = DataDir::new(tmp.path());
    fresh(tmp.path()).await.update("cli:test", &edits(&[("oauth.client_secret", "s")])).await.unwrap();
    App::open(dir.clone(), None).await.unwrap();
    let other_key = tidings_app::cipher::SecretKey::generate();
    let err = App::open(dir.clone(), Some(&other_key.to_base64())).await.unwrap_err();
    assert!(err.to_string().contains("does not match"), "{err}");
    fs::remove_file(dir.key_file()).unwrap();
    assert!(App::open(dir, None).await.unwrap_err().to_string().contains("missing"));
}

#[tokio::test]
async fn init_twice_is_refused_and_open_needs_init() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = DataDir::new(tmp.path().join("d"));
    assert!(matches!(App::open(dir.clone(), None).await, Err(Error::NotInitialised(_))));
    let done =
        App::init(dir.clone(), InitOptions { admin_username: "admin".into(), ..Default::default() }).await.unwrap();
    assert_eq!(done.generated_password.unwrap().expose().len(), 20);
    assert_eq!(done.app.accounts().await.unwrap()[0].username, "admin");
    let again = App::init(dir, InitOptions { admin_username: "admin".into(), ..Default::default() }).await;
    assert!(matches!(again, Err(Error::AlreadyInitialised(_))));
}

#[tokio::test]
async fn the_key_may_come_from_the_environment_instead_of_a_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = DataDir::new(tmp.path());
    let key = tidings_app::cipher::SecretKey::generate().to_base64().to_string();
    let options = InitOptions { key_from_env: Some(key.clone()), admin_username: "admin".into(), ..Default::default() };
    App::init(dir.clone(), options).await.unwrap();
    assert!(!dir.key_file().exists());
    App::open(dir, Some(&key)).await.unwrap();
}

#[tokio::test]
async fn concurrent_submissions_share_commits() {
    use std::sync::Arc;
    use tidings_app::outbox::{Committer, Submission, prepare};
    use tidings_core::message::NewMessage;

    let tmp = tempfile::tempdir().unwrap();
    let app = fresh(tmp.path()).await;
    app.update("cli:test", &edits(&[("sender", "alerts@example.com")])).await.unwrap();
    let config = app.current().await.unwrap().config;
    let committer = Committer::start(app.clone(), Arc::new(tokio::sync::Notify::new()), Default::default());
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..500 {
        let msg = NewMessage { to: vec![format!("u{i}@example.com")], subject: format!("n{i}"), ..Default::default() };
        let prepared = prepare(&config, "test", Submission::Structured(msg), chrono::Utc::now()).unwrap();
        let committer = committer.clone();
        tasks.spawn(async move { committer.commit(prepared).await.unwrap() });
    }
    let mut ids = tasks.join_all().await;
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 500, "every message stored once");
    assert!(committer.commits() < 100, "{} commits for 500 messages", committer.commits());
    assert_eq!(app.messages(None, 1000, None).await.unwrap().len(), 500);
}

#[tokio::test]
async fn the_refresh_token_is_sealed_rotated_and_forgotten() {
    let tmp = tempfile::tempdir().unwrap();
    let app = fresh(tmp.path()).await;
    assert_eq!(app.refresh_token(Owner::Relay).await.unwrap(), None);
    let first = SecretString::new("0.AXoA-first-refresh-token-value");
    app.authorized(Owner::Relay, "cli:test", Some(&first), Some("alerts@contoso.com")).await.unwrap();
    assert_eq!(app.refresh_token(Owner::Relay).await.unwrap(), Some(first.clone()));
    let record = app.authorization(Owner::Relay).await.unwrap().unwrap();
    assert_eq!(record.account.as_deref(), Some("alerts@contoso.com"));
    assert!(record.acquired_at.is_some() && record.refreshed_at.is_none());

    app.token_failed(Owner::Relay, "invalid_grant: AADSTS700082", "Authorize Tidings again.").await.unwrap();
    assert!(app.authorization(Owner::Relay).await.unwrap().unwrap().failure.is_some());
    let rotated = SecretString::new("0.AXoA-rotated-refresh-token-value");
    app.token_refreshed(Owner::Relay, Some(&rotated)).await.unwrap();
    assert_eq!(app.refresh_token(Owner::Relay).await.unwrap(), Some(rotated.clone()));
    let record = app.authorization(Owner::Relay).await.unwrap().unwrap();
    assert!(record.failure.is_none() && record.refreshed_at.is_some(), "a refresh clears the failure");
    app.token_refreshed(Owner::Relay, None).await.unwrap();
    assert_eq!(app.refresh_token(Owner::Relay).await.unwrap(), Some(rotated), "kept when not rotated");

    for (file, bytes) in all_bytes(tmp.path()) {
        for needle in [first.expose(), "0.AXoA-rotated-refresh-token-value"] {
            assert!(!bytes.windows(needle.len()).any(|w| w == needle.as_bytes()), "{needle} found in {file}");
        }
    }
    app.forget_authorization(Owner::Relay, "cli:test").await.unwrap();
    assert_eq!(app.refresh_token(Owner::Relay).await.unwrap(), None);
    assert_eq!(app.authorization(Owner::Relay).await.unwrap(), None);
    let actions: Vec<String> = app.store().audit(5).await.unwrap().into_iter().map(|e| e.action).collect();
    assert_eq!(&actions[..2], ["oauth.revoke", "oauth.authorize"]);
}

/// The field errors of a refused change.
fn refused(outcome: tidings_app::Result<tidings_app::settings::Saved>) -> Vec<(String, String)> {
    match outcome {
        Err(Error::Invalid(errors)) => errors.0.into_iter().map(|e| (e.field, e.message)).collect(),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_that_are_not_regular_or_not_what_they_claim_are_refused_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let app = fresh(tmp.path()).await;
    let fifo = tmp.path().join("ca.fifo");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let fifo = fifo.display().to_string();
    let big = tmp.path().join("big.pem");
    fs::write(&big, vec![b'A'; 2 * 1024 * 1024]).unwrap();
    let big = big.display().to_string();
    let dir = tmp.path().display().to_string();
    // Each is answered at once (a FIFO is not waited on, /dev/zero not read), naming what is wrong.
    let started = std::time::Instant::now();
    for (path, says) in
        [(fifo.as_str(), "FIFO"), ("/dev/zero", "a device"), (big.as_str(), "at most"), (dir.as_str(), "a directory")]
    {
        let change = tokio::spawn({
            let (app, path) = (app.clone(), path.to_owned());
            async move { app.update("test", &edits(&[("tls.ca_file", &path)])).await }
        });
        let outcome = tokio::time::timeout(std::time::Duration::from_secs(10), change).await;
        let errors = refused(outcome.unwrap_or_else(|_| panic!("{path}: still waiting after 10 s")).unwrap());
        assert_eq!(errors[0].0, "tls.ca_file");
        assert!(errors[0].1.contains(says), "{path}: {errors:?}");
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(10), "nothing waited: {:?}", started.elapsed());

    // The gateway's certificate and key are checked on save: what they are, and that they belong together.
    let one = rcgen::generate_simple_self_signed(vec!["a.test".to_owned()]).unwrap();
    let two = rcgen::generate_simple_self_signed(vec!["b.test".to_owned()]).unwrap();
    let (cert, key, other) = (tmp.path().join("c.pem"), tmp.path().join("k.pem"), tmp.path().join("o.pem"));
    fs::write(&cert, one.cert.pem()).unwrap();
    fs::write(&key, one.key_pair.serialize_pem()).unwrap();
    fs::write(&other, two.key_pair.serialize_pem()).unwrap();
    let (cert, key, other) = (cert.display().to_string(), key.display().to_string(), other.display().to_string());
    let passwd =
        refused(app.update("test", &edits(&[("gateway.cert_file", "/etc/passwd"), ("gateway.key_file", &key)])).await);
    assert_eq!(passwd[0].0, "gateway.cert_file");
    assert!(passwd[0].1.contains("no certificate"), "{passwd:?}");
    let mismatch =
        refused(app.update("test", &edits(&[("gateway.cert_file", &cert), ("gateway.key_file", &other)])).await);
    assert!(mismatch[0].1.contains("do not make a usable pair"), "{mismatch:?}");
    let fifo_key =
        refused(app.update("test", &edits(&[("gateway.cert_file", &cert), ("gateway.key_file", &fifo)])).await);
    assert_eq!(fifo_key[0].0, "gateway.key_file", "{fifo_key:?}");
    app.update("test", &edits(&[("gateway.cert_file", &cert), ("gateway.key_file", &key)])).await.unwrap();
    assert_eq!(app.current().await.unwrap().revision, 1, "only the good pair was saved");
}

#[tokio::test]
async fn an_open_relay_a_mistyped_address_and_oversized_or_control_values_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let app = fresh(tmp.path()).await;
    for wide in ["0.0.0.0/0", "::/0", "10.0.0.0/7", "fd00::/16"] {
        let errors = refused(app.update("test", &edits(&[("gateway.allowed_networks", wide)])).await);
        assert_eq!(errors[0].0, "gateway.allowed_networks");
        assert!(errors[0].1.contains("open relay") && errors[0].1.contains("gateway.recipient_domains"), "{errors:?}");
    }
    app.update("test", &edits(&[("gateway.allowed_networks", "10.0.0.0/8 fd00::/32")])).await.unwrap();
    app.update(
        "test",
        &edits(&[("gateway.allowed_networks", "0.0.0.0/0"), ("gateway.recipient_domains", "example.com")]),
    )
    .await
    .unwrap();
    app.update(
        "test",
        &edits(&[
            ("gateway.recipient_domains", ""),
            ("gateway.allowed_networks", "10.0.0.0/16"),
            ("gateway.widest_network_v4", "24"),
        ]),
    )
    .await
    .unwrap_err();

    let errors = refused(app.update("test", &edits(&[("sender", "a@example.com"), ("smtp.host", "256.1.1.1")])).await);
    assert!(errors.iter().any(|(f, m)| f == "smtp.host" && m.contains("neither an IP address")), "{errors:?}");
    let errors = refused(app.update("test", &edits(&[("smtp.username", "scan\u{1b}[31mner")])).await);
    assert!(errors.iter().any(|(f, m)| f == "smtp.username" && m.contains("control character")), "{errors:?}");
    let long = "x".repeat(50_000);
    let errors = refused(app.update("test", &edits(&[("oauth.client_id", &long)])).await);
    assert!(errors.iter().any(|(f, m)| f == "oauth.client_id" && m.contains("at most 4096")), "{errors:?}");
}

#[tokio::test]
async fn a_network_administrator_cannot_send_the_stored_secrets_elsewhere() {
    let tmp = tempfile::tempdir().unwrap();
    let app = fresh(tmp.path()).await;
    app.update(
        "admin",
        &edits(&[
            ("sender", "alerts@example.com"),
            ("smtp.host", "smtp.example.com"),
            ("smtp.encryption", "starttls"),
            ("smtp.auth", "password"),
            ("smtp.username", "device"),
            ("smtp.password", "relay-password-1"),
            ("oauth.client_id", "client"),
            ("oauth.token_endpoint", "https://idp.example.com/token"),
            ("oauth.client_secret", "client-secret-1"),
        ]),
    )
    .await
    .unwrap();
    // Endpoints by hand: refused, naming the key.
    for key in ["oauth.token_endpoint", "oauth.device_authorization_endpoint", "oauth.proxy_url"] {
        let value = if key == "oauth.proxy_url" { "http://evil.example:3128" } else { "https://evil.example/token" };
        let errors = refused(app.update_as("api:netadmin", Role::NetworkAdministrator, &edits(&[(key, value)])).await);
        assert_eq!(errors[0].0, key);
        assert!(errors[0].1.contains("only an administrator"), "{errors:?}");
    }
    // The relay moved: its password is cleared, and the answer says so.
    let saved = app
        .update_as("api:netadmin", Role::NetworkAdministrator, &edits(&[("smtp.host", "evil.example")]))
        .await
        .unwrap();
    assert!(saved.warnings.iter().any(|w| w.contains("smtp.password was cleared")), "{:?}", saved.warnings);
    assert_eq!(app.secret(SecretName::SmtpPassword).await.unwrap(), None);
    assert!(app.secret(SecretName::OAuthClientSecret).await.unwrap().is_some(), "what did not move stays");
    // With a new password in the same change, it is kept; an administrator moves things as they are.
    app.update_as(
        "api:netadmin",
        Role::NetworkAdministrator,
        &edits(&[("smtp.port", "2525"), ("smtp.password", "relay-password-2")]),
    )
    .await
    .unwrap();
    assert_eq!(app.secret(SecretName::SmtpPassword).await.unwrap(), Some(SecretString::new("relay-password-2")));
    app.update_as("api:admin", Role::Administrator, &edits(&[("oauth.token_endpoint", "https://idp2.example.com/t")]))
        .await
        .unwrap();
    assert!(app.secret(SecretName::OAuthClientSecret).await.unwrap().is_some());
    // A preset is anyone's, but what followed the old endpoint does not follow it: the client secret, the
    // refresh token.
    app.authorized(Owner::Relay, "api:admin", Some(&SecretString::new("refresh-token-1")), Some("alerts@example.com"))
        .await
        .unwrap();
    let refused_change = app
        .update_as(
            "api:netadmin",
            Role::NetworkAdministrator,
            &edits(&[("oauth.provider", "google"), ("smtp.port", "0")]),
        )
        .await;
    assert!(matches!(refused_change, Err(Error::Invalid(_))));
    assert!(app.refresh_token(Owner::Relay).await.unwrap().is_some(), "a refused change forgets nothing");
    let saved = app
        .update_as("api:netadmin", Role::NetworkAdministrator, &edits(&[("oauth.provider", "google")]))
        .await
        .unwrap();
    assert!(saved.warnings.iter().any(|w| w.contains("oauth.client_secret was cleared")), "{:?}", saved.warnings);
    assert!(saved.warnings.iter().any(|w| w.contains("authorization was forgotten")), "{:?}", saved.warnings);
    assert_eq!(app.secret(SecretName::OAuthClientSecret).await.unwrap(), None);
    assert!(app.refresh_token(Owner::Relay).await.unwrap().is_none());
}

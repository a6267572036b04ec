//! The device-code sign-in (RFC 8628) against the fake provider, in Microsoft's and Google's spellings.

#![allow(clippy::unwrap_used)] // helpers of tests: a failed step is a failed test

use std::time::{Duration, Instant};
use tidings_app::authorization::Owner;
use tidings_app::{App, InitOptions, data_dir::DataDir};
use tidings_oauth::flows::{self, FlowError};
use tidings_testkit::OAuthFake;

const CLIENT: &str = "6731de76-14a6-49ae-97bc-6eba6914391e";

async fn app(dir: &std::path::Path, fake: &OAuthFake, scopes: &str) -> App {
    let app = App::init(DataDir::new(dir), InitOptions { admin_username: "admin".into(), ..Default::default() })
        .await
        .unwrap()
        .app;
    let token = fake.token_endpoint("contoso.com");
    let edits: Vec<(String, String)> = [
        ("sender", "alerts@contoso.com"),
        ("oauth.client_id", CLIENT),
        ("oauth.token_endpoint", token.as_str()),
        ("oauth.device_authorization_endpoint", &token.replace("/token", "/devicecode")),
        ("oauth.scopes", scopes),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    app.update("test", &edits).await.unwrap();
    app
}

/// Approves (or declines) once the poller has started waiting.
fn decide_soon(fake: &OAuthFake, what: &'static str) -> std::thread::JoinHandle<()> {
    let port = fake.port;
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(s, "GET /control/{what} HTTP/1.0\r\n\r\n").unwrap();
        s.read_to_string(&mut String::new()).unwrap();
    })
}

#[tokio::test]
async fn a_device_account_connects_its_own_mailbox_with_a_code() {
    let fake = OAuthFake::start(3600, &[]);
    let tmp = tempfile::tempdir().unwrap();
    let app = app(tmp.path(), &fake, "https://outlook.office.com/SMTP.Send offline_access").await;
    let password = tidings_core::secret::SecretString::new("a-device-password-1");
    app.create_device("test", "bare-mfp", &password, &[]).await.unwrap();
    app.create_device("test", "jane-mfp", &password, &["jane@contoso.com".into()]).await.unwrap();
    let devices = app.devices().await.unwrap();
    // An account without an address has no mailbox to connect.
    match flows::start_device(&app, flows::Owner::Device(devices[0].clone())).await.unwrap_err() {
        FlowError::Unsuitable(why) => assert!(why.contains("bare-mfp has no address"), "{why}"),
        other => panic!("{other:?}"),
    }
    let device = flows::start_device(&app, flows::Owner::Device(devices[1].clone())).await.unwrap();
    let approve = decide_soon(&fake, "approve");
    let mailbox = device.finish(&app, None, "mailbox:jane-mfp").await.unwrap();
    approve.join().unwrap();
    assert_eq!(mailbox.as_deref(), Some("jane@contoso.com"));
    let record = app.mailbox_of("jane-mfp").await.unwrap().unwrap();
    assert_eq!(
        (record.account.as_deref(), record.acquired_by.as_deref()),
        (Some("jane@contoso.com"), Some("mailbox:jane-mfp"))
    );
    assert!(app.refresh_token(record.owner).await.unwrap().is_some());
    assert!(app.refresh_token(Owner::Relay).await.unwrap().is_none(), "the relay account's authorization is untouched");
}

#[tokio::test]
async fn microsoft_device_sign_in() {
    let fake = OAuthFake::start(3600, &[]);
    let tmp = tempfile::tempdir().unwrap();
    let app = app(tmp.path(), &fake, "https://outlook.office.com/SMTP.Send offline_access").await;
    let device = flows::start_device(&app, flows::Owner::Relay).await.unwrap();
    assert_eq!(device.shown.verification_uri, "https://microsoft.com/devicelogin");
    assert!(device.shown.message.as_deref().unwrap().contains(&device.shown.user_code));
    assert!(device.expires_at > chrono::Utc::now() + chrono::Duration::seconds(800));
    let approve = decide_soon(&fake, "approve");
    let account = device.finish(&app, None, "test").await.unwrap();
    approve.join().unwrap();
    assert_eq!(account.as_deref(), Some("alerts@contoso.com"));
    assert!(app.refresh_token(Owner::Relay).await.unwrap().is_some());
}

#[tokio::test]
async fn googles_spelling_and_polling_errors() {
    let fake = OAuthFake::start(3600, &["--google"]);
    let tmp = tempfile::tempdir().unwrap();
    let app = app(tmp.path(), &fake, "openid email").await;
    let device = flows::start_device(&app, flows::Owner::Relay).await.unwrap();
    assert_eq!(device.shown.verification_uri, "https://www.google.com/device", "verification_url accepted");
    let approve = decide_soon(&fake, "approve");
    device.finish(&app, None, "test").await.unwrap();
    approve.join().unwrap();
    assert!(app.refresh_token(Owner::Relay).await.unwrap().is_some());
}

#[tokio::test]
async fn slow_down_adds_five_seconds_to_the_interval() {
    let fake = OAuthFake::start(3600, &["--slow-down-once"]);
    let tmp = tempfile::tempdir().unwrap();
    let app = app(tmp.path(), &fake, "https://outlook.office.com/SMTP.Send offline_access").await;
    let device = flows::start_device(&app, flows::Owner::Relay).await.unwrap();
    let approve = decide_soon(&fake, "approve");
    let started = Instant::now();
    device.finish(&app, None, "test").await.unwrap();
    approve.join().unwrap();
    // 1 s, slow_down, then 1 + 5 s before the next poll.
    assert!(started.elapsed() >= Duration::from_secs(7), "{:?}", started.elapsed());
}

#[tokio::test]
async fn a_declined_or_expired_sign_in_stops_with_a_clear_message() {
    let fake = OAuthFake::start(3600, &["--device-expires", "3"]);
    let tmp = tempfile::tempdir().unwrap();
    let app = app(tmp.path(), &fake, "https://outlook.office.com/SMTP.Send offline_access").await;
    let device = flows::start_device(&app, flows::Owner::Relay).await.unwrap();
    let decline = decide_soon(&fake, "decline");
    match device.finish(&app, None, "test").await.unwrap_err() {
        FlowError::Refused { said, explanation } => {
            assert!(said.starts_with("authorization_declined"), "{said}");
            assert!(explanation.contains("refused or cancelled"), "{explanation}");
        }
        other => panic!("{other:?}"),
    }
    decline.join().unwrap();
    let device = flows::start_device(&app, flows::Owner::Relay).await.unwrap();
    match device.finish(&app, None, "test").await.unwrap_err() {
        FlowError::Refused { said, explanation } => {
            assert!(said == "expired_token" && explanation.contains("Start the device sign-in again"))
        }
        other => panic!("{other:?}"),
    }
    assert!(app.refresh_token(Owner::Relay).await.unwrap().is_none());
}

#[tokio::test]
async fn the_gmail_scope_is_refused_up_front() {
    let fake = OAuthFake::start(3600, &["--google"]);
    let tmp = tempfile::tempdir().unwrap();
    let app = app(tmp.path(), &fake, "https://mail.google.com/").await;
    match flows::start_device(&app, flows::Owner::Relay).await.unwrap_err() {
        FlowError::Unsuitable(why) => assert!(why.contains("authorization-code flow"), "{why}"),
        other => panic!("{other:?}"),
    }
}

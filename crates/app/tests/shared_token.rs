//! The access token nodes of a shared database keep for one another: sealed, bound to the authorization it came
//! from, gone with a new sign-in or a revocation; never stored with SQLite.

#![allow(clippy::unwrap_used)] // a failed step is a failed test

use chrono::{Duration, Utc};
use tidings_app::{
    App, InitOptions,
    authorization::{Owner, SharedAccessToken},
    data_dir::DataDir,
};
use tidings_core::secret::SecretString;
use tidings_store::PostgresUrl;
use tidings_testkit::Postgres;

fn token(text: &str) -> SharedAccessToken {
    let now = Utc::now();
    SharedAccessToken {
        token: SecretString::from(text.to_owned()),
        obtained_at: now,
        expires_at: now + Duration::hours(1),
    }
}

async fn node(dir: &std::path::Path, url: Option<&str>, join: bool) -> App {
    let url = url.map(|u| PostgresUrl::parse(u).unwrap());
    let data_dir = DataDir::new(dir).with_database_url(url);
    match join {
        false => {
            App::init(data_dir, InitOptions { admin_username: "admin".into(), ..Default::default() }).await.unwrap().app
        }
        true => App::open(data_dir, None).await.unwrap(),
    }
}

#[tokio::test]
async fn a_shared_access_token_serves_the_other_nodes_until_the_authorization_changes() {
    let server = Postgres::start();
    let url = server.database("shared_token");
    let tmp = tempfile::tempdir().unwrap();
    let a = node(tmp.path(), Some(&url), false).await;
    // A second handle on the same directory and database: another node, as far as the store is concerned.
    let b = node(tmp.path(), Some(&url), true).await;
    assert!(b.shared_access_token(Owner::Relay).await.unwrap().is_none(), "nothing before an authorization");
    a.authorized(Owner::Relay, "cli:test", Some(&SecretString::from("refresh-1".to_owned())), Some("box@example.com"))
        .await
        .unwrap();
    a.share_access_token(Owner::Relay, &token("access-1")).await.unwrap();
    let seen = b.shared_access_token(Owner::Relay).await.unwrap().expect("the token a obtained");
    assert_eq!(seen.token.expose(), "access-1");
    let raw = server.query_in("shared_token", "SELECT value FROM meta WHERE key = 'oauth.access_token'");
    assert!(!raw.is_empty() && !raw.contains("access-1"), "sealed at rest: {raw}");
    assert!(b.shared_access_token(Owner::Device(1)).await.unwrap().is_none(), "another owner's is apart");

    // A new sign-in (perhaps another mailbox): the token of the old one must not be used.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    a.authorized(
        Owner::Relay,
        "cli:test",
        Some(&SecretString::from("refresh-2".to_owned())),
        Some("other@example.com"),
    )
    .await
    .unwrap();
    assert!(b.shared_access_token(Owner::Relay).await.unwrap().is_none(), "gone with a new sign-in");
    a.share_access_token(Owner::Relay, &token("access-2")).await.unwrap();
    assert_eq!(b.shared_access_token(Owner::Relay).await.unwrap().unwrap().token.expose(), "access-2");
    // Revoked: gone too.
    assert!(a.forget_authorization(Owner::Relay, "cli:test").await.unwrap());
    assert!(b.shared_access_token(Owner::Relay).await.unwrap().is_none(), "gone with the authorization");
}

#[tokio::test]
async fn with_sqlite_access_tokens_stay_in_memory() {
    let tmp = tempfile::tempdir().unwrap();
    let app = node(tmp.path(), None, false).await;
    app.authorized(Owner::Relay, "cli:test", Some(&SecretString::from("refresh-1".to_owned())), None).await.unwrap();
    app.share_access_token(Owner::Relay, &token("access-1")).await.unwrap();
    assert!(app.shared_access_token(Owner::Relay).await.unwrap().is_none());
    assert!(app.store().meta("oauth.access_token").await.unwrap().is_none(), "nothing stored");
}

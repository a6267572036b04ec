//! A whole store copied from SQLite to a real PostgreSQL database and back: every record arrives as it was (times
//! to the millisecond, which is what PostgreSQL keeps), secrets still sealed, ids kept and new ids above them; a
//! target that holds data is refused unless replacing is asked for.

#![allow(clippy::unwrap_used)] // a failed step is a failed test

use chrono::{TimeZone, Utc};
use tidings_core::{
    EmailConfig,
    account::Role,
    audit::NewAuditEntry,
    notify::EventKind,
    outbox::{Attempt, Recipient, RecipientState, Settled, Status},
};
use tidings_store::{
    CONTENT_PART, ConfigSave, Database, Error, EventFilter, Grant, MessageFilter, NewAccount, NewDevice, NewEvent,
    NewOutboxMessage, Owner, PgStore, PostgresUrl, Settlement, SqliteStore, Store, Waiting,
};

fn audit(action: &str) -> NewAuditEntry {
    NewAuditEntry { actor: "cli:test".into(), action: action.into(), fields: vec!["sender".into()] }
}

fn message(subject: &str, size: usize) -> NewOutboxMessage {
    NewOutboxMessage {
        origin: "api:test".into(),
        mail_from: "alerts@example.com".into(),
        recipients: vec![Recipient::pending("ops@example.com"), Recipient::pending("noc@example.com")],
        subject: Some(subject.into()),
        message_id: Some(format!("<{subject}@example.com>")),
        content: (0..size).map(|i| (i % 251) as u8).collect(),
        created_at: Utc.timestamp_millis_opt(1_800_000_000_123).unwrap(),
        mailbox_of: None,
    }
}

/// Fills a store with one of everything.
async fn fill(store: &dyn Store) {
    let config = EmailConfig { sender: Some("alerts@example.com".into()), ..Default::default() };
    let secrets = vec![("smtp.password".to_owned(), Some(b"sealed-password".to_vec()))];
    store
        .save_config(ConfigSave {
            base_revision: 0,
            config: &config,
            secrets: &secrets,
            audit: &audit("config.update"),
        })
        .await
        .unwrap();
    let admin = NewAccount { username: "Admin".into(), password_hash: "$argon2id$h".into(), role: Role::Administrator };
    store.create_account(&admin, &audit("account.create")).await.unwrap();
    store.create_api_token("monitoring", Role::Viewer, &[7; 32], &audit("token.create")).await.unwrap();
    let device =
        NewDevice { username: "scanner".into(), password_hash: "h".into(), addresses: vec!["scan@example.com".into()] };
    let device = store.create_device(&device, &audit("device.create")).await.unwrap();
    let at = Utc.timestamp_millis_opt(1_800_000_100_456).unwrap();
    let grant = Grant::Acquired {
        sealed_refresh_token: Some(b"sealed-refresh"),
        account: Some("alerts@example.com"),
        client_credentials: false,
        audit: &audit("oauth.login"),
    };
    store.authorization_granted(Owner::Device(device), grant, at).await.unwrap();
    let ids = store.enqueue(&[message("small", 300), message("large", CONTENT_PART * 2 + 17)], None).await.unwrap();
    let leased = store.lease_due("n/1", at, at + chrono::Duration::minutes(5), 1, &Waiting::default()).await.unwrap();
    let settled = Settled {
        status: Status::Delivered,
        next_attempt_at: None,
        recipients: vec![Recipient {
            address: "ops@example.com".into(),
            state: RecipientState::Delivered,
            reply: None,
        }],
        attempt: Attempt {
            number: 1,
            started_at: at,
            duration_ms: 12,
            result: "delivered".into(),
            stage: None,
            reply_code: Some(250),
            enhanced_code: Some("2.0.0".into()),
            text: "OK queued".into(),
            explanation: None,
            notes: vec![],
        },
        last_error: None,
    };
    store
        .settle(&[Settlement { id: leased[0].id, owner: "n/1".into(), settled, dead_letter: None }], &[])
        .await
        .unwrap();
    assert_eq!(leased[0].id, ids[0]);
    let event = NewEvent {
        kind: EventKind::DeadLetter,
        node: "node-1".into(),
        details: [("reason".to_owned(), "550".to_owned())].into(),
        origin: "tidings".into(),
        received_at: at,
    };
    store.record_event(&event).await.unwrap();
}

/// Everything a store tells, in one comparable text (times to the millisecond).
async fn told(store: &dyn Store) -> String {
    let mut out = String::new();
    let config = store.config().await.unwrap().unwrap();
    out += &format!(
        "{} {} {:?} {}\n",
        config.revision,
        config.saved_by,
        config.config,
        config.saved_at.timestamp_millis()
    );
    out += &format!("{:?}\n", store.sealed_secrets().await.unwrap());
    for a in store.accounts().await.unwrap() {
        out += &format!("{} {} {:?} {}\n", a.id, a.username, a.role, a.created_at.timestamp_millis());
    }
    for t in store.api_tokens().await.unwrap() {
        out += &format!("{} {} {:?} {}\n", t.id, t.name, t.role, t.created_at.timestamp_millis());
    }
    out += &format!("{:?}\n", store.devices().await.unwrap());
    out += &format!("{:?}\n", store.authorizations().await.unwrap());
    for device in store.devices().await.unwrap() {
        out += &format!("{:?}\n", store.authorization(Owner::Device(device.id)).await.unwrap());
    }
    for m in store.messages(&MessageFilter { limit: 100, ..Default::default() }).await.unwrap() {
        out += &format!("{:?}\n", store.message(m.id).await.unwrap());
        let content = store.message_content(m.id).await.unwrap().unwrap();
        out += &format!("{} {}\n", content.len(), content.iter().map(|b| u64::from(*b)).sum::<u64>());
    }
    out += &format!("{:?}\n", store.events(&EventFilter { limit: 100, ..Default::default() }).await.unwrap());
    for e in store.audit(100).await.unwrap() {
        out += &format!("{} {} {} {:?} {}\n", e.id, e.actor, e.action, e.fields, e.at.timestamp_millis());
    }
    out
}

#[tokio::test]
async fn a_store_goes_to_postgres_and_back_unchanged() {
    let server = tidings_testkit::Postgres::start();
    let tmp = tempfile::tempdir().unwrap();
    let sqlite = tmp.path().join("tidings.db");
    let source = SqliteStore::open(&sqlite).await.unwrap();
    fill(&source).await;
    let before = told(&source).await;
    source.close().await;

    // A password in the URL (the test server trusts loopback, so any will do) is never shown.
    let url = server.database("copied").replace("postgres@", "postgres:pw-Secret9@");
    let postgres = Database::Postgres(PostgresUrl::parse(&url).unwrap());
    let copied = tidings_store::copy::copy(&Database::Sqlite(sqlite.clone()), &postgres, false).await.unwrap();
    let messages = copied.tables.iter().find(|(t, _)| t == "messages").unwrap().1;
    assert_eq!(messages, 2, "{copied:?}");
    let target = PgStore::open(&url).await.unwrap();
    assert_eq!(told(&target).await, before);
    // New rows take ids above the copied ones.
    let next = NewAccount { username: "second".into(), password_hash: "h".into(), role: Role::Viewer };
    let id = target.create_account(&next, &audit("account.create")).await.unwrap();
    assert!(id > 1, "{id}");
    let after = told(&target).await;
    target.close().await;

    // A target that holds data is refused, and kept, unless replacing is asked for.
    let err = tidings_store::copy::copy(&Database::Sqlite(sqlite.clone()), &postgres, false).await.unwrap_err();
    assert!(matches!(&err, Error::CopyRefused(why) if why.contains("--force") && why.contains("accounts: 2")), "{err}");
    assert!(!err.to_string().contains("pw-Secret9") && err.to_string().contains("postgres:***@"), "{err}");
    assert_eq!(told(&PgStore::open(&url).await.unwrap()).await, after);

    // And back, to a new SQLite file.
    let back = tmp.path().join("back.db");
    tidings_store::copy::copy(&postgres, &Database::Sqlite(back.clone()), false).await.unwrap();
    let returned = SqliteStore::open(&back).await.unwrap();
    assert_eq!(told(&returned).await, after);
    returned.close().await;

    // Replacing, when asked.
    tidings_store::copy::copy(&Database::Sqlite(sqlite.clone()), &postgres, true).await.unwrap();
    assert_eq!(told(&PgStore::open(&url).await.unwrap()).await, before);
    let same = tidings_store::copy::copy(&postgres, &postgres, true).await.unwrap_err();
    assert!(same.to_string().contains("the same database"), "{same}");
}

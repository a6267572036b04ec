//! The storage story every backend must tell the same way. Runs against SQLite in a temporary directory.

#![allow(clippy::unwrap_used)] // helpers of tests: a failed step is a failed test

use tidings_core::{EmailConfig, account::Role, audit::NewAuditEntry};
use tidings_store::{ConfigSave, Error, NewAccount, SqliteStore, Store};

fn audit(action: &str, fields: &[&str]) -> NewAuditEntry {
    NewAuditEntry {
        actor: "cli:test".into(),
        action: action.into(),
        fields: fields.iter().map(|f| (*f).to_owned()).collect(),
    }
}

fn config_with_sender(sender: &str) -> EmailConfig {
    EmailConfig { sender: Some(sender.into()), ..Default::default() }
}

async fn story(store: &dyn Store) {
    store.ping().await.unwrap();
    assert_eq!(store.config_revision().await.unwrap(), 0);
    assert!(store.config().await.unwrap().is_none());

    // First save.
    let cfg = config_with_sender("a@example.com");
    let secrets = vec![("smtp.password".to_owned(), Some(b"sealed-1".to_vec()))];
    let entry = audit("config.update", &["sender", "smtp.password"]);
    let rev = store
        .save_config(ConfigSave { base_revision: 0, config: &cfg, secrets: &secrets, audit: &entry })
        .await
        .unwrap();
    assert_eq!(rev, 1);
    let record = store.config().await.unwrap().unwrap();
    assert_eq!((record.revision, &record.saved_by, &record.config), (1, &"cli:test".to_owned(), &cfg));
    assert_eq!(store.sealed_secrets().await.unwrap()[0].sealed, b"sealed-1");

    // A save against a stale revision is a conflict and changes nothing.
    let stale = config_with_sender("stale@example.com");
    let err = store
        .save_config(ConfigSave { base_revision: 0, config: &stale, secrets: &[], audit: &entry })
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict { current: 1 }), "{err:?}");
    assert_eq!(store.config().await.unwrap().unwrap().config, cfg);

    // Secrets are replaced and deleted by name.
    let cfg2 = config_with_sender("b@example.com");
    let secrets =
        vec![("smtp.password".to_owned(), None), ("oauth.client_secret".to_owned(), Some(b"sealed-2".to_vec()))];
    let rev = store
        .save_config(ConfigSave {
            base_revision: 1,
            config: &cfg2,
            secrets: &secrets,
            audit: &audit("config.update", &["sender"]),
        })
        .await
        .unwrap();
    assert_eq!(rev, 2);
    let names: Vec<_> = store.sealed_secrets().await.unwrap().into_iter().map(|s| s.name).collect();
    assert_eq!(names, ["oauth.client_secret"]);

    // Accounts: unique names, whatever their case.
    let account =
        NewAccount { username: "admin".into(), password_hash: "$argon2id$x".into(), role: Role::Administrator };
    store.create_account(&account, &audit("account.create", &["admin"])).await.unwrap();
    let twin = NewAccount { username: "ADMIN".into(), ..account };
    assert!(matches!(
        store.create_account(&twin, &audit("account.create", &["ADMIN"])).await,
        Err(Error::DuplicateAccount(_))
    ));
    let accounts = store.accounts().await.unwrap();
    assert_eq!((accounts.len(), accounts[0].role), (1, Role::Administrator));

    // The audit log, newest first, one entry per change (the refused ones left none).
    store.record_audit(&audit("config.test", &[])).await.unwrap();
    let log = store.audit(10).await.unwrap();
    let actions: Vec<_> = log.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["config.test", "account.create", "config.update", "config.update"]);
    assert_eq!(log[3].fields, ["sender", "smtp.password"]);
    assert_eq!(store.audit(1).await.unwrap().len(), 1);

    // Meta values are set once.
    assert!(store.init_meta("key_check", "one").await.unwrap());
    assert!(!store.init_meta("key_check", "two").await.unwrap());
    assert_eq!(store.meta("key_check").await.unwrap().as_deref(), Some("one"));
}

#[tokio::test]
async fn sqlite_tells_the_story_and_keeps_it_across_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tidings.db");
    let store = SqliteStore::open(&path).await.unwrap();
    story(&store).await;
    store.close().await;

    let reopened = SqliteStore::open(&path).await.unwrap();
    assert_eq!(reopened.config_revision().await.unwrap(), 2);
    assert_eq!(reopened.accounts().await.unwrap().len(), 1);
}

#[tokio::test]
async fn two_handles_on_one_file_see_each_others_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tidings.db");
    let (a, b) = (SqliteStore::open(&path).await.unwrap(), SqliteStore::open(&path).await.unwrap());
    let cfg = config_with_sender("a@example.com");
    a.save_config(ConfigSave {
        base_revision: 0,
        config: &cfg,
        secrets: &[],
        audit: &audit("config.update", &["sender"]),
    })
    .await
    .unwrap();
    assert_eq!(b.config_revision().await.unwrap(), 1);
    let err = b
        .save_config(ConfigSave {
            base_revision: 0,
            config: &cfg,
            secrets: &[],
            audit: &audit("config.update", &["sender"]),
        })
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict { current: 1 }));
}

//! The storage story every backend must tell the same way: against SQLite in a temporary directory, and against a
//! throw-away PostgreSQL server (each story on a database of its own).

#![allow(clippy::unwrap_used)] // helpers of tests: a failed step is a failed test

use tidings_core::{EmailConfig, account::Role, audit::NewAuditEntry};
use tidings_store::{AuditFilter, ConfigSave, Error, NewAccount, PgStore, SqliteStore, Store};

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
    // Filtered by action (a prefix) and actor, and paged.
    let page = |action: Option<&str>, actor: Option<&str>, before_id: Option<i64>| {
        let filter =
            AuditFilter { action: action.map(str::to_owned), actor: actor.map(str::to_owned), before_id, limit: 10 };
        async move { store.audit_page(&filter).await.unwrap() }
    };
    let config = page(Some("config."), None, None).await;
    assert_eq!(
        config.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(),
        ["config.test", "config.update", "config.update"]
    );
    assert_eq!(
        page(None, Some(&log[0].actor), None).await.len(),
        log.iter().filter(|e| e.actor == log[0].actor).count()
    );
    assert!(page(None, Some("nobody"), None).await.is_empty());
    let older = page(None, None, Some(log[1].id)).await;
    assert_eq!(
        older.iter().map(|e| e.id).collect::<Vec<_>>(),
        [log[2].id, log[3].id],
        "entries older than the one given"
    );

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
    two_handles_story(&a, &b).await;
}

/// Two handles on one database (two processes, two nodes): each sees the other's writes, and a save against a
/// revision the other moved on is a conflict.
async fn two_handles_story(a: &dyn Store, b: &dyn Store) {
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

/// Two nodes leasing from one outbox at once: every message is leased by exactly one of them (and, where the
/// backend lets leases run side by side, `both` of them lease some).
async fn shared_outbox_story(a: &dyn Store, b: &dyn Store, both: bool) {
    use chrono::Utc;
    use tidings_core::outbox::{Recipient, circuit::Waiting};
    use tidings_store::NewOutboxMessage;
    let message = |n: usize| NewOutboxMessage {
        origin: "api:test".into(),
        mail_from: "a@example.com".into(),
        recipients: vec![Recipient::pending(format!("r{n}@example.com"))],
        subject: None,
        message_id: None,
        content: vec![b'x'; 64],
        created_at: Utc::now(),
        mailbox_of: None,
    };
    let mut ids = Vec::new();
    for chunk in (0..400).collect::<Vec<_>>().chunks(100) {
        ids.extend(a.enqueue(&chunk.iter().map(|n| message(*n)).collect::<Vec<_>>(), None).await.unwrap());
    }
    let drain = async |store: &dyn Store, owner: &str| {
        let mut taken = Vec::new();
        loop {
            let now = Utc::now();
            let until = now + chrono::Duration::minutes(5);
            let leased = store.lease_due(owner, now, until, 7, &Waiting::default()).await.unwrap();
            if leased.is_empty() {
                return taken;
            }
            taken.extend(leased.iter().map(|m| m.id));
        }
    };
    let (mut first, second) = tokio::join!(drain(a, "a/1"), drain(b, "b/1"));
    assert!(
        !both || (!first.is_empty() && !second.is_empty()),
        "both nodes leased: {} and {}",
        first.len(),
        second.len()
    );
    first.extend(second);
    first.sort_unstable();
    assert_eq!(first, ids, "every message leased once");
}

#[tokio::test]
async fn two_handles_on_one_file_share_the_outbox() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tidings.db");
    let (a, b) = (SqliteStore::open(&path).await.unwrap(), SqliteStore::open(&path).await.unwrap());
    shared_outbox_story(&a, &b, false).await;
}

/// A duty is held by one holder at a time; another takes it once the term ends.
async fn duty_story(store: &dyn Store) {
    use chrono::{Duration, TimeZone, Utc};
    let t0 = Utc.timestamp_opt(1_800_000_000, 0).unwrap();
    let term = |t| t + Duration::seconds(30);
    assert!(store.hold_duty("notifier", "a", t0, term(t0)).await.unwrap(), "a free duty is taken");
    assert!(!store.hold_duty("notifier", "b", t0, term(t0)).await.unwrap(), "not while a's term runs");
    assert!(store.hold_duty("reports", "b", t0, term(t0)).await.unwrap(), "another duty is apart");
    let later = t0 + Duration::seconds(20);
    assert!(store.hold_duty("notifier", "a", later, term(later)).await.unwrap(), "the holder keeps it");
    let after = term(later);
    assert!(store.hold_duty("notifier", "b", after, term(after)).await.unwrap(), "b takes it when a's term ended");
    assert!(!store.hold_duty("notifier", "a", after, term(after)).await.unwrap());
}

/// One node at a time holds a turn; the next waits for it, and a turn of another name is apart.
async fn turn_story(a: &dyn Store, b: &dyn Store) {
    use std::time::Duration;
    let held = a.turn("refresh:relay").await.unwrap();
    let _other = b.turn("refresh:device:1").await.unwrap();
    let waiting = tokio::time::timeout(Duration::from_millis(500), b.turn("refresh:relay")).await;
    assert!(waiting.is_err(), "b waits while a holds the turn");
    let (waited, ()) = tokio::join!(
        async {
            let started = std::time::Instant::now();
            let _turn = b.turn("refresh:relay").await.unwrap();
            started.elapsed()
        },
        async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            drop(held);
        }
    );
    assert!(waited >= Duration::from_millis(300), "b had it only once a's ended ({waited:?})");
}

/// Slots: at most as many holders as there are slots, across handles; a slot given back is taken again.
async fn slot_story(a: &dyn Store, b: &dyn Store) {
    let first = a.try_slot("connection:box", 2).await.unwrap().expect("a free slot");
    let second = b.try_slot("connection:box", 2).await.unwrap().expect("the second slot");
    assert!(a.try_slot("connection:box", 2).await.unwrap().is_none(), "both held");
    assert!(b.try_slot("connection:other", 2).await.unwrap().is_some(), "another name is apart");
    first.release().await;
    let third = b.try_slot("connection:box", 2).await.unwrap();
    assert!(third.is_some(), "a slot given back is free again at once");
    drop((second, third));
}

/// A change committed by one handle wakes the listeners of another, for what changed.
async fn changes_story(listening: &dyn Store, other: &dyn Store) {
    use std::time::Duration;
    use tidings_store::Listeners;
    let listeners = Listeners::default();
    assert!(listening.listen(listeners.clone()).await.unwrap());
    let told = async |notify: &tokio::sync::Notify, within: u64| {
        tokio::time::timeout(Duration::from_secs(within), notify.notified()).await.is_ok()
    };
    let cfg = config_with_sender("told@example.com");
    let base = other.config_revision().await.unwrap();
    let save = ConfigSave { base_revision: base, config: &cfg, secrets: &[], audit: &audit("config.update", &[]) };
    other.save_config(save).await.unwrap();
    assert!(told(&listeners.config, 10).await, "a saved configuration is told");
    let event = tidings_store::NewEvent {
        kind: tidings_core::notify::EventKind::DeadLetter,
        node: "n".into(),
        details: Default::default(),
        origin: "tidings".into(),
        received_at: chrono::Utc::now(),
    };
    other.record_event(&event).await.unwrap();
    assert!(told(&listeners.events, 10).await, "a recorded event is told");
    assert!(!told(&listeners.outbox, 1).await, "nothing was queued, so the delivery engine sleeps on");
}

/// The daemons that use the database: each one's last word, and the messages it holds leased.
async fn peers_story(store: &dyn Store) {
    use chrono::{Duration, Utc};
    use tidings_core::outbox::{Recipient, circuit::Waiting};
    use tidings_store::{NewOutboxMessage, Peer};
    let now = Utc::now();
    let peer = |node: &str| Peer {
        node: node.into(),
        instance: format!("{node}-dir"),
        version: "1.2.3".into(),
        address: Some("127.0.0.1:8080".into()),
        started_at: now,
        seen_at: now,
        leased: 0,
    };
    store.peer_seen(&peer("node-a")).await.unwrap();
    store.peer_seen(&peer("node-a_b")).await.unwrap();
    let message = NewOutboxMessage {
        origin: "api:test".into(),
        mail_from: "a@example.com".into(),
        recipients: vec![Recipient::pending("r@example.com")],
        subject: None,
        message_id: None,
        content: b"x".to_vec(),
        created_at: now,
        mailbox_of: None,
    };
    store.enqueue(&[message.clone(), message], None).await.unwrap();
    let leased = store.lease_due("node-a/1f2e", now, now + Duration::minutes(5), 10, &Waiting::default()).await;
    assert_eq!(leased.unwrap().len(), 2);
    let peers = store.peers().await.unwrap();
    assert_eq!(peers.iter().map(|p| (p.node.as_str(), p.leased)).collect::<Vec<_>>(), [("node-a", 2), ("node-a_b", 0)]);
    assert_eq!(peers[0].started_at.timestamp_millis(), now.timestamp_millis());
    let later = Peer { seen_at: now + Duration::seconds(10), ..peer("node-a") };
    store.peer_seen(&later).await.unwrap();
    assert_eq!(store.peers().await.unwrap()[0].seen_at.timestamp_millis(), later.seen_at.timestamp_millis());
    store.peer_gone("node-a").await.unwrap();
    assert_eq!(store.peers().await.unwrap().len(), 1);
}

#[tokio::test]
async fn sqlite_peers_story() {
    let dir = tempfile::tempdir().unwrap();
    peers_story(&SqliteStore::open(&dir.path().join("tidings.db")).await.unwrap()).await;
}

/// Every story again, against PostgreSQL: one server, a fresh database per story.
#[tokio::test]
async fn postgres_tells_every_story() {
    let server = tidings_testkit::Postgres::start();
    let fresh = async |name: &str| PgStore::open(&server.database(name)).await.unwrap();

    let url = server.database("story");
    let store = PgStore::open(&url).await.unwrap();
    story(&store).await;
    store.close().await;
    let reopened = PgStore::open(&url).await.unwrap();
    assert_eq!(reopened.config_revision().await.unwrap(), 2);
    assert_eq!(reopened.accounts().await.unwrap().len(), 1);

    let url = server.database("handles");
    let (a, b) = (PgStore::open(&url).await.unwrap(), PgStore::open(&url).await.unwrap());
    two_handles_story(&a, &b).await;
    let url = server.database("shared");
    let (a, b) = (PgStore::open(&url).await.unwrap(), PgStore::open(&url).await.unwrap());
    shared_outbox_story(&a, &b, true).await;

    let url = server.database("duties");
    let (a, b) = (PgStore::open(&url).await.unwrap(), PgStore::open(&url).await.unwrap());
    duty_story(&a).await;
    changes_story(&a, &b).await;
    turn_story(&a, &b).await;
    slot_story(&a, &b).await;

    peers_story(&fresh("peers").await).await;
    outbox::story(&fresh("outbox").await).await;
    outbox::waiting_story(&fresh("waiting").await).await;
    outbox::usage_story(&fresh("usage").await).await;
    outbox::large_content_story(&fresh("large").await).await;
    outbox::deferred_due_story(&fresh("deferred").await).await;
    authorizations::story(&fresh("authorizations").await).await;
    cluster::story(&fresh("cluster").await).await;
}

mod outbox {
    use super::audit;
    use chrono::{Duration, TimeZone, Utc};
    use std::collections::BTreeMap;
    use tidings_core::notify::EventKind;
    use tidings_core::{
        account::Role,
        outbox::{Attempt, Recipient, RecipientState, Settled, Status},
    };
    use tidings_store::{
        CONTENT_PART, DeadLetter, EventFilter, EventState, MessageFilter, NewEvent, NewLease, NewOutboxMessage,
        Settlement, SqliteStore, Store, Usage, Waiting,
    };

    /// Nothing waits.
    const NONE: Waiting = Waiting { everything: false, relay_account: false, accounts: Vec::new() };

    fn t(s: i64) -> chrono::DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000, 0).unwrap() + Duration::seconds(s)
    }

    fn new(subject: &str) -> NewOutboxMessage {
        NewOutboxMessage {
            origin: "api:test".into(),
            mail_from: "alerts@example.com".into(),
            recipients: vec![Recipient::pending("ops@example.com")],
            subject: Some(subject.into()),
            message_id: Some(format!("{subject}@example.com")),
            content: format!("Subject: {subject}\r\n\r\nbody\r\n").into_bytes(),
            created_at: t(0),
            mailbox_of: None,
        }
    }

    fn settled(status: Status, number: u32, next: Option<i64>) -> Settled {
        let state = if status == Status::Delivered { RecipientState::Delivered } else { RecipientState::Pending };
        Settled {
            status,
            next_attempt_at: next.map(t),
            recipients: vec![Recipient { address: "ops@example.com".into(), state, reply: None }],
            attempt: Attempt {
                number,
                started_at: t(1),
                duration_ms: 5,
                result: if status == Status::Delivered { "delivered".into() } else { "transient".into() },
                stage: None,
                reply_code: Some(250),
                enhanced_code: None,
                text: "OK".into(),
                explanation: None,
                notes: vec![],
            },
            last_error: None,
        }
    }

    pub(super) async fn story(store: &dyn Store) {
        let ids = store.enqueue(&[new("one"), new("two"), new("three")], None).await.unwrap();
        assert_eq!(ids.len(), 3);
        assert_eq!(store.next_due(&NONE).await.unwrap(), Some(t(0)));

        // Leasing takes due messages once; a second worker gets the rest.
        let first = store.lease_due("node-a/1", t(1), t(61), 2, &NONE).await.unwrap();
        assert_eq!(first.iter().map(|m| m.id).collect::<Vec<_>>(), ids[..2]);
        assert_eq!(first[0].content, b"Subject: one\r\n\r\nbody\r\n");
        let second = store.lease_due("node-b/1", t(1), t(61), 10, &NONE).await.unwrap();
        assert_eq!(second.iter().map(|m| m.id).collect::<Vec<_>>(), ids[2..]);
        assert!(store.lease_due("node-b/1", t(2), t(62), 10, &NONE).await.unwrap().is_empty());

        // Settle: one delivered, one deferred for later.
        store
            .settle(
                &[
                    Settlement {
                        dead_letter: None,
                        id: ids[0],
                        owner: "node-a/1".into(),
                        settled: settled(Status::Delivered, 1, None),
                    },
                    Settlement {
                        dead_letter: None,
                        id: ids[1],
                        owner: "node-a/1".into(),
                        settled: settled(Status::Deferred, 1, Some(300)),
                    },
                ],
                &[],
            )
            .await
            .unwrap();
        let detail = store.message(ids[0]).await.unwrap().unwrap();
        assert_eq!(
            (detail.summary.status, detail.summary.attempts, detail.attempt_log.len()),
            (Status::Delivered, 1, 1)
        );
        assert_eq!(detail.message_id.as_deref(), Some("one@example.com"));
        // At t(100) the deferred message is not due, but the third one's lease (until t(61)) has expired:
        // another worker takes it over, and the first owner's late outcome only joins the log.
        let taken = store.lease_due("node-a/2", t(100), t(160), 10, &NONE).await.unwrap();
        assert_eq!(taken.iter().map(|m| m.id).collect::<Vec<_>>(), [ids[2]]);
        store
            .settle(
                &[Settlement {
                    dead_letter: None,
                    id: ids[2],
                    owner: "node-b/1".into(),
                    settled: settled(Status::Delivered, 1, None),
                }],
                &[],
            )
            .await
            .unwrap();
        let late = store.message(ids[2]).await.unwrap().unwrap();
        assert_eq!((late.summary.status, late.attempt_log.len()), (Status::Sending, 1));
        assert_eq!(
            store.lease_due("node-a/2", t(300), t(360), 10, &NONE).await.unwrap()[0].id,
            ids[1],
            "due at t(300)"
        );

        // A restarted node expires its own leases at once.
        assert_eq!(store.expire_leases("node-a/").await.unwrap(), 2);
        assert_eq!(store.lease_due("node-a/3", t(301), t(361), 10, &NONE).await.unwrap().len(), 2);
        assert_eq!(store.expire_leases("node-b/").await.unwrap(), 0);

        // Listing, filtering, counting.
        let delivered = store
            .messages(&MessageFilter { status: Some(Status::Delivered), limit: 10, before_id: None })
            .await
            .unwrap();
        assert_eq!(delivered.iter().map(|m| m.id).collect::<Vec<_>>(), [ids[0]]);
        let page = store.messages(&MessageFilter { status: None, limit: 2, before_id: None }).await.unwrap();
        assert_eq!(page.iter().map(|m| m.id).collect::<Vec<_>>(), [ids[2], ids[1]]);
        let older = store.messages(&MessageFilter { status: None, limit: 2, before_id: Some(ids[1]) }).await.unwrap();
        assert_eq!(older[0].id, ids[0]);
        let counts = store.queue_counts().await.unwrap();
        assert!(counts.contains(&(Status::Sending, 2)) && counts.contains(&(Status::Delivered, 1)));
        let ages = store.queue_ages().await.unwrap();
        assert_eq!(
            (ages.oldest_waiting.map(|(id, _)| id), ages.last_delivered.map(|(id, _)| id), ages.last_failed),
            (Some(ids[1]), Some(ids[0]), None),
            "{ages:?}"
        );

        // Retry: only what is not being or was not delivered.
        store
            .settle(
                &[Settlement {
                    dead_letter: None,
                    id: ids[1],
                    owner: "node-a/3".into(),
                    settled: Settled { status: Status::Failed, ..settled(Status::Failed, 3, None) },
                }],
                &[],
            )
            .await
            .unwrap();
        // Requeued only from the status it was read in: a change meanwhile wins.
        let pending = vec![Recipient::pending("ops@example.com")];
        assert!(!store.requeue(ids[1], Status::Deferred, &pending, t(400)).await.unwrap(), "it is failed");
        assert!(store.requeue(ids[1], Status::Failed, &pending, t(400)).await.unwrap());
        let again = store.message(ids[1]).await.unwrap().unwrap();
        assert_eq!(
            (again.summary.status, again.summary.next_attempt_at, again.summary.recipients),
            (Status::Queued, Some(t(400)), pending.clone())
        );
        assert!(!store.requeue(9999, Status::Failed, &pending, t(400)).await.unwrap(), "no such message");

        // Purge removes a final status with its log.
        assert_eq!(store.purge(Status::Delivered).await.unwrap(), 1);
        assert!(store.message(ids[0]).await.unwrap().is_none());

        // A batch larger than one statement's rows: every message keeps its own content, outcome and log,
        // and only the ones that failed for good leave a dead letter.
        let bulk: Vec<_> = (0..40).map(|i| new(&format!("bulk {i}"))).collect();
        let bulk_ids = store.enqueue(&bulk, None).await.unwrap();
        assert!(bulk_ids.windows(2).all(|w| w[0] < w[1]), "{bulk_ids:?}");
        let leased: Vec<_> = store
            .lease_due("node-c/1", t(500), t(560), 100, &NONE)
            .await
            .unwrap()
            .into_iter()
            .filter(|m| bulk_ids.contains(&m.id))
            .collect();
        assert_eq!(leased.len(), 40);
        let failed = |id: i64| id % 3 == 0;
        let mut outcomes = Vec::new();
        for m in &leased {
            let i = bulk_ids.iter().position(|id| *id == m.id).unwrap();
            assert_eq!(m.content, bulk[i].content);
            let status = if failed(m.id) { Status::Failed } else { Status::Delivered };
            // The dead letters the engine gives with failed outcomes; every other one is not to be mailed.
            let dead_letter = failed(m.id).then(|| DeadLetter {
                event: NewEvent {
                    kind: EventKind::DeadLetter,
                    node: "node-c".into(),
                    details: BTreeMap::from([("subject".to_owned(), m.subject.clone().unwrap_or_default())]),
                    origin: "tidings".into(),
                    received_at: t(500),
                },
                mailed: m.id % 2 == 0,
            });
            outcomes.push(Settlement {
                dead_letter,
                id: m.id,
                owner: "node-c/1".into(),
                settled: settled(status, 1, None),
            });
        }
        let dead_before = store.events(&EventFilter { kind: Some(EventKind::DeadLetter), limit: 100, before_id: None });
        let dead_before = dead_before.await.unwrap().len();
        store.settle(&outcomes, &[]).await.unwrap();
        for id in &bulk_ids {
            let m = store.message(*id).await.unwrap().unwrap();
            let status = if failed(*id) { Status::Failed } else { Status::Delivered };
            assert_eq!((m.summary.status, m.attempt_log.len()), (status, 1), "message {id}");
        }
        let dead = store.events(&EventFilter { kind: Some(EventKind::DeadLetter), limit: 100, before_id: None });
        let dead: Vec<_> = dead.await.unwrap();
        let failed_ids: Vec<&i64> = bulk_ids.iter().filter(|id| failed(**id)).collect();
        assert_eq!(dead.len() - dead_before, failed_ids.len());
        assert!(dead.iter().any(|e| e.details.get("subject").is_some_and(|s| s.starts_with("bulk "))));
        let recorded = dead.iter().filter(|e| e.state == EventState::Recorded).count();
        assert_eq!(recorded, failed_ids.iter().filter(|id| **id % 2 != 0).count(), "those not to be mailed");
        // A dead letter whose outcome was not stored (its lease is not the owner's) is not recorded.
        let mut lost = outcomes.iter().find(|o| o.dead_letter.is_some()).unwrap().clone();
        lost.owner = "node-x/1".into();
        store.settle(&[lost], &[]).await.unwrap();
        let after = store.events(&EventFilter { kind: Some(EventKind::DeadLetter), limit: 100, before_id: None });
        assert_eq!(after.await.unwrap().len(), dead.len());

        // Stored and leased in one commit: the first two belong to the engine that accepted them at once, the
        // third waits for anyone; a restart of that engine's node takes its two back.
        let lease = NewLease { owner: "node-d/1".into(), until: t(700), count: 2 };
        let handed = store.enqueue(&[new("h1"), new("h2"), new("h3")], Some(&lease)).await.unwrap();
        let taken: Vec<i64> =
            store.lease_due("node-e/1", t(600), t(660), 100, &NONE).await.unwrap().iter().map(|m| m.id).collect();
        assert!(taken.contains(&handed[2]) && !taken.contains(&handed[0]) && !taken.contains(&handed[1]), "{taken:?}");
        assert_eq!(store.message(handed[0]).await.unwrap().unwrap().summary.status, Status::Sending);
        assert_eq!(store.expire_leases("node-d/").await.unwrap(), 2);
        // A lease that spans more messages than one statement writes.
        let many: Vec<_> = (0..20).map(|i| new(&format!("many {i}"))).collect();
        let lease = NewLease { owner: "node-f/1".into(), until: t(800), count: 18 };
        let many_ids = store.enqueue(&many, Some(&lease)).await.unwrap();
        for (i, id) in many_ids.iter().enumerate() {
            let status = store.message(*id).await.unwrap().unwrap().summary.status;
            assert_eq!(status, if i < 18 { Status::Sending } else { Status::Queued }, "message {i}");
        }
        // Settled, nothing failing, in more statements than one: each delivered, with its log.
        let outcomes: Vec<_> = many_ids[..18]
            .iter()
            .map(|id| Settlement {
                dead_letter: None,
                id: *id,
                owner: "node-f/1".into(),
                settled: settled(Status::Delivered, 1, None),
            })
            .collect();
        store.settle(&outcomes, &[]).await.unwrap();
        for id in &many_ids[..18] {
            let m = store.message(*id).await.unwrap().unwrap();
            assert_eq!((m.summary.status, m.attempt_log.len()), (Status::Delivered, 1), "message {id}");
        }
        assert_eq!(store.expire_leases("node-f/").await.unwrap(), 0);

        // API tokens: by hash, listed without it, revoked once.
        let id =
            store.create_api_token("ci", Role::Viewer, &[7; 32], &audit("api-token.create", &["ci"])).await.unwrap();
        assert_eq!(store.api_token_by_hash(&[7; 32]).await.unwrap().unwrap().name, "ci");
        assert!(store.api_token_by_hash(&[8; 32]).await.unwrap().is_none());
        store.touch_api_token(id, t(5)).await.unwrap();
        assert_eq!(store.api_tokens().await.unwrap()[0].last_used_at, Some(t(5)));
        assert!(store.revoke_api_token(id, &audit("api-token.revoke", &["ci"])).await.unwrap());
        assert!(!store.revoke_api_token(id, &audit("api-token.revoke", &["ci"])).await.unwrap());
        assert!(store.api_token_by_hash(&[7; 32]).await.unwrap().unwrap().revoked_at.is_some());
    }

    /// While the relay or an identity is down its messages are neither leased nor due; a lease given back is due
    /// again at once, uncharged.
    pub(super) async fn waiting_story(store: &dyn Store) {
        let scanner = NewOutboxMessage { mailbox_of: Some("scanner".into()), ..new("scanner's") };
        let printer = NewOutboxMessage { mailbox_of: Some("printer".into()), ..new("printer's") };
        let ids = store.enqueue(&[new("relay account's"), scanner, printer], None).await.unwrap();
        let everything = Waiting { everything: true, ..NONE };
        assert!(store.lease_due("n/1", t(1), t(61), 10, &everything).await.unwrap().is_empty());
        assert_eq!(store.next_due(&everything).await.unwrap(), None);

        let some = Waiting { everything: false, relay_account: true, accounts: vec!["scanner".into()] };
        assert_eq!(store.next_due(&some).await.unwrap(), Some(t(0)));
        let leased = store.lease_due("n/1", t(1), t(61), 10, &some).await.unwrap();
        assert_eq!(leased.iter().map(|m| m.id).collect::<Vec<_>>(), [ids[2]], "only the printer's");
        assert_eq!(store.next_due(&some).await.unwrap(), Some(t(61)), "the others wait: only the lease ends");

        let leased = store.lease_due("n/1", t(2), t(62), 10, &NONE).await.unwrap();
        assert_eq!(leased.iter().map(|m| m.id).collect::<Vec<_>>(), ids[..2]);
        assert_eq!(store.release("other/1", &ids).await.unwrap(), 0, "only the owner gives leases back");
        assert_eq!(store.release("n/1", &ids[..2]).await.unwrap(), 2);
        let again = store.lease_due("m/1", t(3), t(63), 10, &NONE).await.unwrap();
        assert_eq!(again.iter().map(|m| (m.id, m.attempts)).collect::<Vec<_>>(), [(ids[0], 0), (ids[1], 0)]);
    }

    /// What identities sent is added up per identity and minute, kept with the outcomes, and forgotten after two
    /// days.
    pub(super) async fn usage_story(store: &dyn Store) {
        let usage = |identity: Option<&str>, minute, messages, recipients| Usage {
            identity: identity.map(str::to_owned),
            minute,
            messages,
            recipients,
        };
        let old = Utc::now() - chrono::Duration::days(3);
        let old = chrono::DateTime::from_timestamp(old.timestamp() / 60 * 60, 0).unwrap();
        store.settle(&[], &[usage(None, old, 1, 1)]).await.unwrap();
        assert_eq!(store.usage_since(old).await.unwrap(), [], "older than two days: forgotten in the same commit");
        store.settle(&[], &[usage(None, t(0), 2, 7), usage(Some("scanner"), t(0), 1, 1)]).await.unwrap();
        store.settle(&[], &[usage(None, t(0), 1, 3), usage(None, t(60), 1, 1)]).await.unwrap();
        assert_eq!(
            store.usage_since(old).await.unwrap(),
            [usage(None, t(0), 3, 10), usage(Some("scanner"), t(0), 1, 1), usage(None, t(60), 1, 1)],
            "added up per identity and minute"
        );
        assert_eq!(store.usage_since(t(60)).await.unwrap(), [usage(None, t(60), 1, 1)]);
    }

    /// A large message is stored and read back in parts: leased without its content (read when it is sent),
    /// whole through `message_content`, its parts gone with it.
    pub(super) async fn large_content_story(store: &dyn Store) {
        let large: Vec<u8> = (0..3 * CONTENT_PART + 17).map(|i| (i % 251) as u8).collect();
        let exact: Vec<u8> = vec![b'x'; CONTENT_PART];
        let messages = vec![
            NewOutboxMessage { content: large.clone(), ..new("large") },
            NewOutboxMessage { content: exact.clone(), ..new("one part exactly") },
            new("small"),
        ];
        let lease = NewLease { owner: "n/1".into(), until: t(60), count: 1 };
        let ids = store.enqueue(&messages, Some(&lease)).await.unwrap();
        for (id, content) in ids.iter().zip([&large, &exact, &messages[2].content]) {
            assert_eq!(store.message_content(*id).await.unwrap().as_ref(), Some(content), "message {id}");
        }
        let leased = store.lease_due("n/2", t(1), t(61), 10, &NONE).await.unwrap();
        let by_id = |id: i64| leased.iter().find(|m| m.id == id).unwrap();
        assert_eq!((by_id(ids[1]).content.len(), by_id(ids[1]).size), (CONTENT_PART, CONTENT_PART as u64));
        assert_eq!(by_id(ids[2]).content, messages[2].content);
        assert!(leased.iter().all(|m| m.id != ids[0]), "the large one is leased to n/1 already");
        store.expire_leases("n/1").await.unwrap();
        let large_leased = store.lease_due("n/3", t(2), t(62), 10, &NONE).await.unwrap();
        assert_eq!(large_leased.len(), 1);
        assert!(large_leased[0].content.is_empty(), "read when it is sent, not held while leased");
        assert_eq!(large_leased[0].size, large.len() as u64);

        let done = |id: i64| Settlement {
            dead_letter: None,
            id,
            owner: "n/3".into(),
            settled: settled(Status::Delivered, 1, None),
        };
        store.settle(&[done(ids[0])], &[]).await.unwrap();
        assert_eq!(store.purge(Status::Delivered).await.unwrap(), 1);
        assert_eq!(store.message_content(ids[0]).await.unwrap(), None, "its parts went with it");
        let again = store.enqueue(&[NewOutboxMessage { content: large.clone(), ..new("again") }], None).await.unwrap();
        assert_eq!(store.message_content(again[0]).await.unwrap(), Some(large));
    }

    /// Deferred messages brought forward (a new authorization's doing): only those due later, only deferred ones.
    pub(super) async fn deferred_due_story(store: &dyn Store) {
        let ids = store.enqueue(&[new("later"), new("sooner"), new("queued")], None).await.unwrap();
        let leased = store.lease_due("n/1", t(1), t(61), 2, &NONE).await.unwrap();
        assert_eq!(leased.len(), 2);
        let defer = |id: i64, at: i64| Settlement {
            dead_letter: None,
            id,
            owner: "n/1".into(),
            settled: settled(Status::Deferred, 1, Some(at)),
        };
        store.settle(&[defer(ids[0], 600), defer(ids[1], 20)], &[]).await.unwrap();
        assert_eq!(store.deferred_due(t(30)).await.unwrap(), 1, "only the one due after t(30)");
        let due = store.lease_due("n/2", t(30), t(90), 10, &NONE).await.unwrap();
        assert_eq!(due.iter().map(|m| m.id).collect::<Vec<_>>(), ids, "all three due at t(30)");
    }

    #[tokio::test]
    async fn sqlite_deferred_due_story() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("tidings.db")).await.unwrap();
        deferred_due_story(&store).await;
    }

    #[tokio::test]
    async fn sqlite_large_content_story() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("tidings.db")).await.unwrap();
        large_content_story(&store).await;
    }

    #[tokio::test]
    async fn sqlite_usage_story() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("tidings.db")).await.unwrap();
        usage_story(&store).await;
    }

    #[tokio::test]
    async fn sqlite_outbox_story() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("tidings.db")).await.unwrap();
        story(&store).await;
    }

    #[tokio::test]
    async fn sqlite_waiting_story() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("tidings.db")).await.unwrap();
        waiting_story(&store).await;
    }
}

/// OAuth authorizations, one per owner (the relay account, each device account's own mailbox; sealed tokens
/// only), device sessions, sign-ins under way, and messages that remember whose mailbox sends them.
mod authorizations {
    use super::audit;
    use chrono::{Duration, TimeZone, Utc};
    use tidings_core::{notify::EventKind, outbox::Recipient};
    use tidings_store::{
        Grant, NewDevice, NewDeviceSession, NewEvent, NewOutboxMessage, Owner, PendingSignIn, SqliteStore, Store,
    };

    fn acquired<'a>(sealed: &'a [u8], account: &'a str, audit: &'a tidings_core::audit::NewAuditEntry) -> Grant<'a> {
        Grant::Acquired { sealed_refresh_token: Some(sealed), account: Some(account), client_credentials: false, audit }
    }

    pub(super) async fn story(store: &dyn Store) {
        let t0 = Utc.timestamp_opt(1_800_000_000, 0).unwrap();
        let device = NewDevice {
            username: "jane-mfp".into(),
            password_hash: "h".into(),
            addresses: vec!["jane@contoso.com".into()],
        };
        let id = store.create_device(&device, &audit("device.create", &["jane-mfp"])).await.unwrap();
        let jane = Owner::Device(id);
        assert!(store.authorization(jane).await.unwrap().is_none());
        assert!(store.authorization(Owner::Relay).await.unwrap().is_none());

        // Two owners, kept apart.
        let entry = audit("mailbox.authorize", &[]);
        store.authorization_granted(jane, acquired(b"sealed-1", "jane@contoso.com", &entry), t0).await.unwrap();
        let relay_entry = audit("oauth.authorize", &[]);
        let grant = acquired(b"relay-1", "alerts@contoso.com", &relay_entry);
        store.authorization_granted(Owner::Relay, grant, t0).await.unwrap();
        let (record, sealed) = store.authorization(jane).await.unwrap().unwrap();
        assert_eq!(
            (record.owner, record.account.as_deref(), sealed.as_deref(), record.acquired_at),
            (jane, Some("jane@contoso.com"), Some(&b"sealed-1"[..]), Some(t0))
        );
        assert_eq!(record.acquired_by.as_deref(), Some("cli:test"));
        let (relay, sealed) = store.authorization(Owner::Relay).await.unwrap().unwrap();
        assert_eq!((relay.account.as_deref(), sealed.as_deref()), (Some("alerts@contoso.com"), Some(&b"relay-1"[..])));
        let owners: Vec<Owner> = store.authorizations().await.unwrap().into_iter().map(|a| a.owner).collect();
        assert_eq!(owners, [Owner::Relay, jane], "the relay account's first");

        // A refresh keeps the token unless the provider rotated it.
        store
            .authorization_granted(
                jane,
                Grant::Refreshed { sealed_refresh_token: Some(b"sealed-2") },
                t0 + Duration::seconds(60),
            )
            .await
            .unwrap();
        store
            .authorization_granted(jane, Grant::Refreshed { sealed_refresh_token: None }, t0 + Duration::seconds(120))
            .await
            .unwrap();
        let (record, sealed) = store.authorization(jane).await.unwrap().unwrap();
        assert_eq!(
            (sealed.as_deref(), record.refreshed_at),
            (Some(&b"sealed-2"[..]), Some(t0 + Duration::seconds(120)))
        );
        assert_eq!(store.authorization(Owner::Relay).await.unwrap().unwrap().1.as_deref(), Some(&b"relay-1"[..]));

        let alert = NewEvent {
            kind: EventKind::ReauthorizationRequired,
            node: "n".into(),
            details: Default::default(),
            origin: "tidings".into(),
            received_at: t0,
        };
        store.authorization_failed(jane, "invalid_grant", "sign in again", t0, &alert).await.unwrap();
        let (record, _) = store.authorization(jane).await.unwrap().unwrap();
        assert_eq!(record.failure, Some(("invalid_grant".to_owned(), "sign in again".to_owned())));
        assert_eq!(store.pending_events(10).await.unwrap().len(), 1, "the alert is recorded with the failure");
        assert!(store.authorization(Owner::Relay).await.unwrap().unwrap().0.failure.is_none());
        store.authorization_granted(jane, Grant::Refreshed { sealed_refresh_token: None }, t0).await.unwrap();
        assert!(store.authorization(jane).await.unwrap().unwrap().0.failure.is_none(), "a refresh clears it");

        // App-only: no refresh token.
        let app_only = audit("oauth.authorize", &["client_credentials"]);
        let grant =
            Grant::Acquired { sealed_refresh_token: None, account: None, client_credentials: true, audit: &app_only };
        store.authorization_granted(Owner::Relay, grant, t0).await.unwrap();
        let (relay, sealed) = store.authorization(Owner::Relay).await.unwrap().unwrap();
        assert!(relay.client_credentials && sealed.is_none() && relay.account.is_none());

        // Sessions: live until they expire; the account's deletion ends them with its authorization.
        let session = NewDeviceSession {
            token_hash: vec![1; 32],
            device_id: id,
            csrf: "c".into(),
            created_at: Utc::now(),
            expires_at: Utc::now() + Duration::hours(1),
        };
        store.create_device_session(&session, &audit("sign-in", &[])).await.unwrap();
        let (found, csrf) = store.device_session(&[1; 32], Utc::now()).await.unwrap().unwrap();
        assert_eq!((found.id, csrf.as_str()), (id, "c"));
        assert!(store.device_session(&[1; 32], Utc::now() + Duration::hours(2)).await.unwrap().is_none());

        // A bare pasted code takes the newest sign-in of its own owner only.
        for (state, owner) in [("relay", Owner::Relay), ("jane", jane)] {
            let pending = PendingSignIn {
                state: state.into(),
                sealed_verifier: vec![0],
                redirect_uri: "https://t/".into(),
                created_at: Utc::now(),
                expires_at: Utc::now() + Duration::minutes(15),
                owner,
            };
            store.put_pending_sign_in(&pending).await.unwrap();
        }
        let taken = store.take_pending_sign_in(None, Owner::Relay, Utc::now()).await.unwrap().unwrap();
        assert_eq!((taken.state.as_str(), taken.owner), ("relay", Owner::Relay));
        let taken = store.take_pending_sign_in(Some("jane"), Owner::Relay, Utc::now()).await.unwrap().unwrap();
        assert_eq!(taken.owner, jane, "a state names its sign-in whoever started it");

        let message = NewOutboxMessage {
            origin: "gateway:jane-mfp".into(),
            mail_from: "jane@contoso.com".into(),
            recipients: vec![Recipient::pending("ops@example.com")],
            subject: None,
            message_id: None,
            content: b"Subject: s\r\n\r\nb\r\n".to_vec(),
            created_at: Utc::now(),
            mailbox_of: Some("jane-mfp".into()),
        };
        store.enqueue(&[message], None).await.unwrap();
        let leased = store
            .lease_due("n/1", Utc::now(), Utc::now() + Duration::minutes(5), 10, &tidings_store::Waiting::default())
            .await
            .unwrap();
        assert_eq!(leased[0].mailbox_of.as_deref(), Some("jane-mfp"));

        // Forgetting one owner's leaves the other's; a refresh of a forgotten authorization brings nothing back.
        assert!(store.authorization_forget(jane, &audit("mailbox.revoke", &[])).await.unwrap());
        assert!(!store.authorization_forget(jane, &audit("mailbox.revoke", &[])).await.unwrap());
        store.authorization_granted(jane, Grant::Refreshed { sealed_refresh_token: Some(b"late") }, t0).await.unwrap();
        assert!(store.authorization(jane).await.unwrap().is_none());
        assert!(store.authorization(Owner::Relay).await.unwrap().is_some());
        store.authorization_granted(jane, acquired(b"sealed-3", "jane@contoso.com", &entry), t0).await.unwrap();
        store.delete_device(id, &audit("device.delete", &[])).await.unwrap();
        assert!(store.authorization(jane).await.unwrap().is_none(), "deleting the account deletes its authorization");
        assert_eq!(store.authorizations().await.unwrap().len(), 1);
        assert!(store.device_session(&[1; 32], Utc::now()).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn sqlite_authorization_story() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("tidings.db")).await.unwrap();
        story(&store).await;
    }
}

/// This node's place in a cluster, the nodes it knows, and the accounts, tokens and devices replaced as a whole.
mod cluster {
    use super::audit;
    use chrono::{Duration, TimeZone, Utc};
    use tidings_core::{account::Role as AccountRole, cluster::Role};
    use tidings_store::{ClusterNode, ClusterSelf, NewAccount, NewDevice, SqliteStore, Store};

    pub(super) async fn story(store: &dyn Store) {
        let t0 = Utc.timestamp_opt(1_800_000_000, 0).unwrap();
        assert!(store.cluster_self().await.unwrap().is_none(), "standalone until told otherwise");
        let me = ClusterSelf {
            role: Role::Backup,
            name: "backup-1".into(),
            epoch: 3,
            primary_name: Some("alpha".into()),
            primary_url: Some("https://127.0.0.1:9443".into()),
            primary_fingerprint: Some("ab".repeat(32)),
            sealed_key: Some(vec![1, 2, 3]),
            synced_revision: Some(7),
            synced_digest: Some("d".into()),
            synced_at: Some(t0),
        };
        store.put_cluster_self(Some(&me), Some(&audit("cluster.joined", &[]))).await.unwrap();
        assert_eq!(store.cluster_self().await.unwrap(), Some(me.clone()));

        let invited = ClusterNode {
            name: "traffic-1".into(),
            role: Role::Traffic,
            code_hash: Some(vec![9; 32]),
            code_expires_at: Some(t0 + Duration::hours(1)),
            ..Default::default()
        };
        store.put_cluster_node(&invited, None).await.unwrap();
        let joined = ClusterNode {
            code_hash: None,
            code_expires_at: None,
            joined_at: Some(t0),
            sealed_key: Some(vec![4]),
            ..invited.clone()
        };
        let entry = audit("cluster.join", &[]);
        assert!(!store.join_cluster_node(&joined, &[8; 32], t0, &entry).await.unwrap(), "another code");
        let late = t0 + Duration::hours(2);
        assert!(!store.join_cluster_node(&joined, &[9; 32], late, &entry).await.unwrap(), "an expired code");
        assert!(store.join_cluster_node(&joined, &[9; 32], t0, &entry).await.unwrap());
        assert!(!store.join_cluster_node(&joined, &[9; 32], t0, &entry).await.unwrap(), "a code works once");
        assert_eq!(store.cluster_nodes().await.unwrap(), [joined], "one row per name");
        let other = ClusterNode { name: "backup-2".into(), role: Role::Backup, ..Default::default() };
        store.replace_cluster_nodes(std::slice::from_ref(&other)).await.unwrap();
        assert_eq!(store.cluster_nodes().await.unwrap(), [other]);
        assert!(store.remove_cluster_node("backup-2", &audit("cluster.remove", &[])).await.unwrap());
        assert!(!store.remove_cluster_node("backup-2", &audit("cluster.remove", &[])).await.unwrap());
        store.put_cluster_self(None, None).await.unwrap();
        assert!(store.cluster_self().await.unwrap().is_none());

        // Identities: taken whole, under the given ids, names swapped without tripping the unique index.
        let account = |name: &str| NewAccount {
            username: name.into(),
            password_hash: format!("hash-{name}"),
            role: AccountRole::Viewer,
        };
        store.create_account(&account("alice"), &audit("account.create", &[])).await.unwrap();
        store.create_account(&account("bob"), &audit("account.create", &[])).await.unwrap();
        let device = NewDevice { username: "scanner".into(), password_hash: "h".into(), addresses: vec![] };
        store.create_device(&device, &audit("device.create", &[])).await.unwrap();
        let mut wanted = store.identities().await.unwrap();
        assert_eq!((wanted.accounts.len(), wanted.devices.len()), (2, 1));
        let (first, second) = (wanted.accounts[0].0.username.clone(), wanted.accounts[1].0.username.clone());
        wanted.accounts[0].0.username = second;
        wanted.accounts[1].0.username = first;
        wanted.accounts[1].1 = "new-hash".into();
        wanted.devices.clear();
        store.replace_identities(&wanted, &audit("cluster.sync-accounts", &[])).await.unwrap();
        assert_eq!(store.identities().await.unwrap(), wanted);
        assert!(store.devices().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn sqlite_cluster_story() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("tidings.db")).await.unwrap();
        story(&store).await;
    }
}

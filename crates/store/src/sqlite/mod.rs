//! The embedded SQLite backend: one file in the data directory, WAL journal, every commit synced (`fdatasync`,
//! see `.cargo/config.toml`).
//!
//! Several processes may open the same file (the daemon and the CLI); SQLite serialises their writes and
//! `busy_timeout` makes a writer wait for another instead of failing. Within one process every write goes
//! through a single connection and reads through a second, read-only one.

mod accounts;
mod authorizations;
mod batch;
mod cluster;
mod device_sessions;
mod devices;
mod events;
mod identities;
mod outbox;
mod peers;
mod tokens;
mod writer;

use crate::{
    Account, AccountChange, ApiToken, AuditFilter, Authorization, ClusterNode, ClusterSelf, ConfigRecord, ConfigSave,
    Device, Error, EventFilter, EventHandling, EventRecord, EventState, Grant, Identities, LeasedMessage, LoginRecord,
    MessageDetail, MessageFilter, MessageSummary, NewAccount, NewDevice, NewDeviceSession, NewEvent, NewLease,
    NewOutboxMessage, NewSession, Owner, Peer, PendingSignIn, QueueAges, Result, SealedSecret, SessionRecord,
    Settlement, Store, ThrottleRecord, Usage, Waiting,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{
    Connection, Row, SqlitePool,
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};
use std::{path::Path, sync::Arc, time::Duration};
use tidings_core::{
    EmailConfig,
    account::Role,
    audit::{AuditEntry, NewAuditEntry},
    notify::{EventKind, throttle::Throttle},
    outbox::{Recipient, Status},
};
use writer::Writer;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// A Tidings database in one SQLite file.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    /// Every write goes through this one connection, so the daemon's own writers queue in order instead of
    /// meeting SQLite's lock and sleeping in its busy handler.
    writer: Arc<Writer>,
    /// Reads, on a read-only connection: they never wait for a commit, nor a commit for them (WAL).
    reader: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    pub async fn open(path: &Path) -> Result<Self> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a commit is on disk before it returns, also in WAL mode.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            // 256 KiB of page cache per connection (SQLite's default is 2 MiB): the hot rows are few, and the
            // daemon must stay small on an appliance.
            .pragma("cache_size", "-256")
            .foreign_keys(true);
        let writer = Arc::new(Writer::open(&options).await?);
        MIGRATOR.run(&mut *writer.lock().await?).await?;
        // The reader closes after 30 s unused, returning its cache (and thread) when idle. No ping before each
        // use: the database is a local file, and a ping is one more round trip to the connection's thread.
        let reader = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(0)
            .idle_timeout(Duration::from_secs(30))
            .test_before_acquire(false)
            .connect_with(options.read_only(true))
            .await?;
        Ok(Self { writer, reader })
    }

    /// Closes every connection, checkpointing the WAL.
    pub async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }
}

fn now() -> DateTime<Utc> {
    Utc::now()
}

use crate::stored::{corrupt, from_ms, ms};

fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_unique_violation())
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.reader).await?;
        Ok(())
    }

    async fn meta(&self, key: &str) -> Result<Option<String>> {
        let row = sqlx::query("SELECT value FROM meta WHERE key = ?").bind(key).fetch_optional(&self.reader).await?;
        Ok(row.map(|r| r.get("value")))
    }

    async fn set_meta(&self, key: &str, value: Option<&str>) -> Result<()> {
        match value {
            Some(value) => sqlx::query(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            )
            .bind(key)
            .bind(value)
            .execute(&mut *self.writer.lock().await?)
            .await?,
            None => {
                sqlx::query("DELETE FROM meta WHERE key = ?").bind(key).execute(&mut *self.writer.lock().await?).await?
            }
        };
        Ok(())
    }

    async fn init_meta(&self, key: &str, value: &str) -> Result<bool> {
        let done = sqlx::query("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING")
            .bind(key)
            .bind(value)
            .execute(&mut *self.writer.lock().await?)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn config(&self) -> Result<Option<ConfigRecord>> {
        let row = sqlx::query(
            "SELECT revision, saved_at, saved_by, document FROM email_config ORDER BY revision DESC LIMIT 1",
        )
        .fetch_optional(&self.reader)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let revision: i64 = row.get("revision");
        let document: String = row.get("document");
        let config: EmailConfig = serde_json::from_str(&document)
            .map_err(|e| Error::Corrupt { what: format!("configuration revision {revision}"), why: e.to_string() })?;
        Ok(Some(ConfigRecord { revision, saved_at: row.get("saved_at"), saved_by: row.get("saved_by"), config }))
    }

    async fn config_revision(&self) -> Result<i64> {
        let revision: Option<i64> =
            sqlx::query_scalar("SELECT MAX(revision) FROM email_config").fetch_one(&self.reader).await?;
        Ok(revision.unwrap_or(0))
    }

    async fn save_config(&self, save: ConfigSave<'_>) -> Result<i64> {
        let document = serde_json::to_string(save.config)
            .map_err(|e| Error::Corrupt { what: "configuration".into(), why: e.to_string() })?;
        let revision = save.base_revision + 1;
        let at = now();
        let mut writing = self.writer.lock().await?;
        let mut tx = writing.begin().await?;
        // Writing first takes SQLite's write lock at once; the primary key turns a concurrent save of the same
        // base revision into a conflict instead of a lost update.
        let inserted =
            sqlx::query("INSERT INTO email_config (revision, saved_at, saved_by, document) VALUES (?, ?, ?, ?)")
                .bind(revision)
                .bind(at)
                .bind(&save.audit.actor)
                .bind(&document)
                .execute(&mut *tx)
                .await;
        match inserted {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => {
                drop(tx);
                return Err(Error::Conflict { current: self.config_revision().await? });
            }
            Err(e) => return Err(e.into()),
        }
        let newest: i64 = sqlx::query_scalar("SELECT MAX(revision) FROM email_config").fetch_one(&mut *tx).await?;
        if newest != revision {
            return Err(Error::Conflict { current: newest });
        }
        for (name, sealed) in save.secrets {
            match sealed {
                Some(sealed) => upsert_secret(&mut tx, name, sealed, at).await?,
                None => {
                    sqlx::query("DELETE FROM secrets WHERE name = ?").bind(name).execute(&mut *tx).await?;
                }
            }
        }
        insert_audit(&mut tx, save.audit, at).await?;
        tx.commit().await?;
        Ok(revision)
    }

    async fn sealed_secrets(&self) -> Result<Vec<SealedSecret>> {
        let rows = sqlx::query("SELECT name, sealed FROM secrets ORDER BY name").fetch_all(&self.reader).await?;
        Ok(rows.into_iter().map(|r| SealedSecret { name: r.get("name"), sealed: r.get("sealed") }).collect())
    }

    async fn backup_into(&self, to: &std::path::Path) -> Result<()> {
        // A consistent snapshot, taken on the read-only connection: it neither waits for writes nor holds them.
        let to = to.to_str().ok_or_else(|| Error::Unsupported(format!("{}: not a UTF-8 path", to.display())))?;
        sqlx::query("VACUUM INTO ?").bind(to).execute(&self.reader).await?;
        Ok(())
    }

    async fn audit_page(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>> {
        let rows = sqlx::query(
            "SELECT id, at, actor, action, fields FROM audit_log
             WHERE (?1 IS NULL OR actor = ?1) AND (?2 IS NULL OR substr(action, 1, length(?2)) = ?2)
               AND (?3 IS NULL OR id < ?3)
             ORDER BY id DESC LIMIT ?4",
        )
        .bind(filter.actor.as_deref())
        .bind(filter.action.as_deref())
        .bind(filter.before_id)
        .bind(filter.limit)
        .fetch_all(&self.reader)
        .await?;
        rows.into_iter()
            .map(|r| {
                let id: i64 = r.get("id");
                let fields: String = r.get("fields");
                let fields = serde_json::from_str(&fields)
                    .map_err(|e| Error::Corrupt { what: format!("audit entry {id}"), why: e.to_string() })?;
                Ok(AuditEntry { id, at: r.get("at"), actor: r.get("actor"), action: r.get("action"), fields })
            })
            .collect()
    }

    async fn record_audit(&self, entry: &NewAuditEntry) -> Result<()> {
        let mut writing = self.writer.lock().await?;
        let mut tx = writing.begin().await?;
        insert_audit(&mut tx, entry, now()).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn create_account(&self, account: &NewAccount, audit: &NewAuditEntry) -> Result<i64> {
        let at = now();
        let mut writing = self.writer.lock().await?;
        let mut tx = writing.begin().await?;
        let inserted =
            sqlx::query("INSERT INTO accounts (username, password_hash, role, created_at) VALUES (?, ?, ?, ?)")
                .bind(&account.username)
                .bind(&account.password_hash)
                .bind(account.role.as_str())
                .bind(at)
                .execute(&mut *tx)
                .await;
        let id = match inserted {
            Ok(done) => done.last_insert_rowid(),
            Err(e) if is_unique_violation(&e) => {
                return Err(Error::DuplicateAccount(account.username.clone()));
            }
            Err(e) => return Err(e.into()),
        };
        insert_audit(&mut tx, audit, at).await?;
        tx.commit().await?;
        Ok(id)
    }

    async fn accounts(&self) -> Result<Vec<Account>> {
        accounts::list(&self.reader).await
    }
    async fn account_for_login(&self, username: &str) -> Result<Option<LoginRecord>> {
        accounts::for_login(&self.reader, username).await
    }
    async fn login_attempt(&self, id: i64, max_failures: u32, now: DateTime<Utc>) -> Result<Option<u32>> {
        accounts::login_attempt(&mut *self.writer.lock().await?, id, max_failures, now).await
    }
    async fn login_failed(&self, id: i64, lock_until: Option<DateTime<Utc>>, audit: &NewAuditEntry) -> Result<()> {
        accounts::login_failed(&mut *self.writer.lock().await?, id, lock_until, audit).await
    }
    async fn login_succeeded(&self, session: &NewSession, audit: &NewAuditEntry) -> Result<()> {
        accounts::login_succeeded(&mut *self.writer.lock().await?, session, audit).await
    }
    async fn session(
        &self,
        token_hash: &[u8],
        now: DateTime<Utc>,
        extend_to: DateTime<Utc>,
        absolute_max: chrono::Duration,
    ) -> Result<Option<SessionRecord>> {
        accounts::session(&mut *self.writer.lock().await?, token_hash, now, extend_to, absolute_max).await
    }
    async fn end_session(&self, token_hash: &[u8], audit: Option<&NewAuditEntry>) -> Result<()> {
        accounts::end_session(&mut *self.writer.lock().await?, token_hash, audit).await
    }
    async fn change_account(&self, id: i64, change: &AccountChange, audit: &NewAuditEntry) -> Result<bool> {
        accounts::change(&mut *self.writer.lock().await?, id, change, audit).await
    }
    async fn delete_account(&self, id: i64, audit: &NewAuditEntry) -> Result<bool> {
        accounts::delete(&mut *self.writer.lock().await?, id, audit).await
    }

    async fn enqueue(&self, messages: &[NewOutboxMessage], lease: Option<&NewLease>) -> Result<Vec<i64>> {
        outbox::enqueue(&mut self.writer.lock().await?, messages, lease).await
    }
    async fn lease_due(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: u32,
        waiting: &Waiting,
    ) -> Result<Vec<LeasedMessage>> {
        outbox::lease_due(&mut *self.writer.lock().await?, owner, now, until, limit, waiting).await
    }
    async fn release(&self, owner: &str, ids: &[i64]) -> Result<u64> {
        outbox::release(&mut *self.writer.lock().await?, owner, ids).await
    }
    async fn expire_leases(&self, owner_prefix: &str) -> Result<u64> {
        outbox::expire_leases(&mut *self.writer.lock().await?, owner_prefix).await
    }
    async fn settle(&self, settlements: &[Settlement], usage: &[Usage]) -> Result<()> {
        outbox::settle(&mut self.writer.lock().await?, settlements, usage).await
    }
    async fn usage_since(&self, since: DateTime<Utc>) -> Result<Vec<Usage>> {
        outbox::usage_since(&mut *self.writer.lock().await?, since).await
    }
    async fn deferred_due(&self, at: DateTime<Utc>) -> Result<u64> {
        outbox::deferred_due(&mut *self.writer.lock().await?, at).await
    }
    async fn next_due(&self, waiting: &Waiting) -> Result<Option<DateTime<Utc>>> {
        // The engine asks every poll interval: on the writer, so that the reader closes when nobody else reads.
        outbox::next_due(&mut *self.writer.lock().await?, waiting).await
    }
    async fn messages(&self, filter: &MessageFilter) -> Result<Vec<MessageSummary>> {
        outbox::messages(&self.reader, filter).await
    }
    async fn message(&self, id: i64) -> Result<Option<MessageDetail>> {
        outbox::message(&self.reader, id).await
    }
    async fn message_content(&self, id: i64) -> Result<Option<Vec<u8>>> {
        outbox::content(&self.reader, id).await
    }
    async fn requeue(&self, id: i64, from: Status, recipients: &[Recipient], now: DateTime<Utc>) -> Result<bool> {
        outbox::requeue(&mut *self.writer.lock().await?, id, from, recipients, now).await
    }
    async fn purge(&self, status: Status) -> Result<u64> {
        outbox::purge(&mut *self.writer.lock().await?, status).await
    }
    async fn queue_counts(&self) -> Result<Vec<(Status, u64)>> {
        outbox::queue_counts(&self.reader).await
    }
    async fn queue_ages(&self) -> Result<QueueAges> {
        outbox::queue_ages(&self.reader).await
    }

    async fn authorization(&self, owner: Owner) -> Result<Option<(Authorization, Option<Vec<u8>>)>> {
        authorizations::one(&self.reader, owner).await
    }
    async fn authorizations(&self) -> Result<Vec<Authorization>> {
        authorizations::all(&self.reader).await
    }
    async fn authorization_granted(&self, owner: Owner, grant: Grant<'_>, at: DateTime<Utc>) -> Result<()> {
        authorizations::granted(&mut *self.writer.lock().await?, owner, grant, at).await
    }
    async fn authorization_failed(
        &self,
        owner: Owner,
        reason: &str,
        explanation: &str,
        at: DateTime<Utc>,
        alert: &NewEvent,
    ) -> Result<()> {
        authorizations::failed(&mut *self.writer.lock().await?, owner, reason, explanation, at, alert).await
    }
    async fn authorization_forget(&self, owner: Owner, audit: &NewAuditEntry) -> Result<bool> {
        authorizations::forget(&mut *self.writer.lock().await?, owner, audit).await
    }

    async fn cluster_self(&self) -> Result<Option<ClusterSelf>> {
        cluster::this(&self.reader).await
    }
    async fn put_cluster_self(&self, state: Option<&ClusterSelf>, audit: Option<&NewAuditEntry>) -> Result<()> {
        cluster::put_this(&mut *self.writer.lock().await?, state, audit).await
    }
    async fn cluster_nodes(&self) -> Result<Vec<ClusterNode>> {
        cluster::nodes(&self.reader).await
    }
    async fn put_cluster_node(&self, node: &ClusterNode, audit: Option<&NewAuditEntry>) -> Result<()> {
        cluster::put_node(&mut *self.writer.lock().await?, node, audit).await
    }
    async fn join_cluster_node(
        &self,
        node: &ClusterNode,
        code_hash: &[u8],
        now: DateTime<Utc>,
        audit: &NewAuditEntry,
    ) -> Result<bool> {
        cluster::join_node(&mut *self.writer.lock().await?, node, code_hash, now, audit).await
    }
    async fn cluster_node_seen(&self, name: &str, version: &str, at: DateTime<Utc>, synced: Option<i64>) -> Result<()> {
        cluster::node_seen(&mut *self.writer.lock().await?, name, version, at, synced).await
    }
    async fn replace_cluster_nodes(&self, nodes: &[ClusterNode]) -> Result<()> {
        cluster::replace_nodes(&mut *self.writer.lock().await?, nodes).await
    }
    async fn remove_cluster_node(&self, name: &str, audit: &NewAuditEntry) -> Result<bool> {
        cluster::remove_node(&mut *self.writer.lock().await?, name, audit).await
    }
    async fn identities(&self) -> Result<Identities> {
        identities::all(&self.reader).await
    }
    async fn replace_identities(&self, with: &Identities, audit: &NewAuditEntry) -> Result<()> {
        identities::replace(&mut *self.writer.lock().await?, with, audit).await
    }

    async fn put_pending_sign_in(&self, pending: &PendingSignIn) -> Result<()> {
        authorizations::put_pending(&mut *self.writer.lock().await?, pending).await
    }
    async fn take_pending_sign_in(
        &self,
        state: Option<&str>,
        owner: Owner,
        now: DateTime<Utc>,
    ) -> Result<Option<PendingSignIn>> {
        authorizations::take_pending(&mut *self.writer.lock().await?, state, owner, now).await
    }

    async fn record_event(&self, event: &NewEvent) -> Result<i64> {
        events::record(&mut *self.writer.lock().await?, event).await
    }
    async fn pending_events(&self, limit: u32) -> Result<Vec<EventRecord>> {
        events::pending(&self.reader, limit).await
    }
    async fn throttle(&self, kind: EventKind, node: &str) -> Result<Option<Throttle>> {
        events::throttle(&self.reader, kind, node).await
    }
    async fn throttles_with_repeats(&self) -> Result<Vec<ThrottleRecord>> {
        events::with_repeats(&self.reader).await
    }
    async fn handle_event(&self, handling: &EventHandling<'_>) -> Result<(i64, Option<i64>)> {
        events::handle(&mut *self.writer.lock().await?, handling).await
    }
    async fn events(&self, filter: &EventFilter) -> Result<Vec<EventRecord>> {
        events::list(&self.reader, filter).await
    }
    async fn event(&self, id: i64) -> Result<Option<EventRecord>> {
        events::one(&self.reader, id).await
    }
    async fn event_counts(&self) -> Result<Vec<(EventKind, EventState, u64)>> {
        events::counts(&self.reader).await
    }

    async fn create_device(&self, device: &NewDevice, audit: &NewAuditEntry) -> Result<i64> {
        devices::create(&mut *self.writer.lock().await?, device, audit).await
    }
    async fn devices(&self) -> Result<Vec<Device>> {
        devices::list(&self.reader).await
    }
    async fn device_for_login(&self, username: &str) -> Result<Option<(Device, String)>> {
        devices::for_login(&self.reader, username).await
    }
    async fn delete_device(&self, id: i64, audit: &NewAuditEntry) -> Result<bool> {
        devices::delete(&mut *self.writer.lock().await?, id, audit).await
    }
    async fn create_device_session(&self, session: &NewDeviceSession, audit: &NewAuditEntry) -> Result<()> {
        device_sessions::create_session(&mut *self.writer.lock().await?, session, audit).await
    }
    async fn device_session(&self, token_hash: &[u8], now: DateTime<Utc>) -> Result<Option<(Device, String)>> {
        device_sessions::session(&self.reader, token_hash, now).await
    }
    async fn end_device_session(&self, token_hash: &[u8], audit: &NewAuditEntry) -> Result<()> {
        device_sessions::end_session(&mut *self.writer.lock().await?, token_hash, audit).await
    }

    async fn peer_seen(&self, peer: &Peer) -> Result<()> {
        peers::seen(&mut *self.writer.lock().await?, peer).await
    }
    async fn peers(&self) -> Result<Vec<Peer>> {
        peers::all(&self.reader).await
    }
    async fn peer_gone(&self, node: &str) -> Result<()> {
        peers::gone(&mut *self.writer.lock().await?, node).await
    }

    async fn create_api_token(&self, name: &str, role: Role, token_hash: &[u8], audit: &NewAuditEntry) -> Result<i64> {
        tokens::create(&mut *self.writer.lock().await?, name, role, token_hash, audit).await
    }
    async fn api_token_by_hash(&self, token_hash: &[u8]) -> Result<Option<ApiToken>> {
        tokens::by_hash(&self.reader, token_hash).await
    }
    async fn api_tokens(&self) -> Result<Vec<ApiToken>> {
        tokens::list(&self.reader).await
    }
    async fn revoke_api_token(&self, id: i64, audit: &NewAuditEntry) -> Result<bool> {
        tokens::revoke(&mut *self.writer.lock().await?, id, audit).await
    }
    async fn touch_api_token(&self, id: i64, at: DateTime<Utc>) -> Result<()> {
        tokens::touch(&mut *self.writer.lock().await?, id, at).await
    }
}

/// Stores a sealed secret under its name, replacing the previous value.
async fn upsert_secret(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    name: &str,
    sealed: &[u8],
    at: DateTime<Utc>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO secrets (name, sealed, updated_at) VALUES (?, ?, ?)
         ON CONFLICT (name) DO UPDATE SET sealed = excluded.sealed, updated_at = excluded.updated_at",
    )
    .bind(name)
    .bind(sealed)
    .bind(at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn insert_audit(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    entry: &NewAuditEntry,
    at: DateTime<Utc>,
) -> Result<()> {
    let fields = serde_json::to_string(&entry.fields)
        .map_err(|e| Error::Corrupt { what: "audit fields".into(), why: e.to_string() })?;
    sqlx::query("INSERT INTO audit_log (at, actor, action, fields) VALUES (?, ?, ?, ?)")
        .bind(at)
        .bind(&entry.actor)
        .bind(&entry.action)
        .bind(fields)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

//! The PostgreSQL backend: several Tidings nodes on one database, sharing one queue.
//!
//! Every method is one transaction on a pooled connection. Commits are durable (`synchronous_commit = on`, set on
//! every connection whatever the server's default), and concurrent commits share the server's WAL flush. Messages
//! are leased with `FOR UPDATE SKIP LOCKED`, so nodes sharing the outbox never take the same message while its
//! lease runs. Times are Unix milliseconds, as in SQLite.

mod accounts;
mod authorizations;
mod changes;
mod cluster;
mod devices;
mod events;
mod identities;
mod outbox;
mod peers;
mod tokens;

use crate::{
    Account, AccountChange, ApiToken, AuditFilter, Authorization, ClusterNode, ClusterSelf, ConfigRecord, ConfigSave,
    Device, Error, EventFilter, EventHandling, EventRecord, EventState, Grant, Identities, LeasedMessage, Listeners,
    LoginRecord, MessageDetail, MessageFilter, MessageSummary, NewAccount, NewDevice, NewDeviceSession, NewEvent,
    NewLease, NewOutboxMessage, NewSession, Owner, Peer, PendingSignIn, QueueAges, Result, SealedSecret, SessionRecord,
    Settlement, Store, ThrottleRecord, Turn, Usage, Waiting,
    stored::{corrupt, from_ms, ms},
};
use async_trait::async_trait;
use changes::{Topic, tell};
use chrono::{DateTime, Utc};
use sqlx::{
    PgPool, Postgres, Row, Transaction,
    postgres::{PgConnectOptions, PgPoolOptions},
};
use std::{str::FromStr, time::Duration};
use tidings_core::{
    EmailConfig,
    account::Role,
    audit::{AuditEntry, NewAuditEntry},
    notify::{EventKind, throttle::Throttle},
    outbox::{Recipient, Status},
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

type Tx<'a> = Transaction<'a, Postgres>;

/// The most connections one node opens: its delivery workers, the web interface and the gateway share them, and
/// a commit holds one only while it runs.
const CONNECTIONS: u32 = 16;

/// A Tidings database on a PostgreSQL server.
#[derive(Clone, Debug)]
pub struct PgStore {
    pool: PgPool,
    options: PgConnectOptions,
}

/// Why a first connection failed, and what to change in the URL.
fn unreachable(e: sqlx::Error) -> Error {
    // rustls's refusals come wrapped in an I/O error: told apart by their words.
    let text = e.to_string();
    let tls = matches!(e, sqlx::Error::Tls(_)) || text.contains("certificate") || text.contains("handshake");
    let hint = match &e {
        _ if tls => {
            "the TLS handshake failed: name the CA that signed the server's certificate with \
             sslrootcert=/path/to/ca.pem in the URL (with sslmode=verify-full, the server's name must be in it)"
        }
        sqlx::Error::Database(d) if d.message().contains("no encryption") => {
            "the server takes TLS connections only: add ?sslmode=verify-full&sslrootcert=/path/to/ca.pem to the URL"
        }
        _ => "check the host, port, user, password and database in the URL, and that the server listens there",
    };
    Error::Connect(format!("{e}; {hint}"))
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://user:password@host:port/database`) and brings its schema
    /// up to date; several nodes may do so at once (the migrations take a lock).
    pub async fn open(url: &str) -> Result<Self> {
        let options =
            PgConnectOptions::from_str(url)?.application_name("tidings").options([("synchronous_commit", "on")]);
        let pool = PgPoolOptions::new()
            .max_connections(CONNECTIONS)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .idle_timeout(Duration::from_secs(60))
            .connect_with(options.clone())
            .await
            .map_err(unreachable)?;
        MIGRATOR.run(&pool).await?;
        Ok(Self { pool, options })
    }

    /// Closes every connection.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// How to open one more connection to the same database (the change listener's).
    pub fn connect_options(&self) -> &PgConnectOptions {
        &self.options
    }

    async fn begin(&self) -> Result<Tx<'static>> {
        Ok(self.pool.begin().await?)
    }
}

/// Brings the database at `url` up to date with the PostgreSQL schema.
pub async fn migrate(url: &str) -> Result<()> {
    PgStore::open(url).await?.close().await;
    Ok(())
}

fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// Makes the identity of `table`'s `id` continue above the largest id, after rows were written under given ids
/// (a cluster's follower taking its primary's, a copy).
pub(crate) async fn identity_follows(tx: &mut Tx<'_>, table: &str) -> Result<()> {
    sqlx::query(&identity_follows_sql(table)).execute(&mut **tx).await?;
    Ok(())
}

pub(crate) fn identity_follows_sql(table: &str) -> String {
    format!(
        "SELECT setval(pg_get_serial_sequence('{table}', 'id'), GREATEST((SELECT MAX(id) FROM {table}), 0) + 1, false)"
    )
}

async fn insert_audit(tx: &mut Tx<'_>, entry: &NewAuditEntry, at: DateTime<Utc>) -> Result<()> {
    let fields = serde_json::to_string(&entry.fields).map_err(|e| corrupt("audit fields", e))?;
    sqlx::query("INSERT INTO audit_log (at, actor, action, fields) VALUES ($1, $2, $3, $4)")
        .bind(ms(at))
        .bind(&entry.actor)
        .bind(&entry.action)
        .bind(fields)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn upsert_meta(tx: &mut Tx<'_>, key: &str, value: &str) -> Result<()> {
    sqlx::query("INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value")
        .bind(key)
        .bind(value)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// A turn or slot: the transaction holding its advisory lock. Released by committing it (it wrote nothing), with
/// the others told when `tell` says so; dropped, it is rolled back as its connection returns to the pool.
struct Locked {
    tx: Tx<'static>,
    tell: Option<Topic>,
}

#[async_trait]
impl crate::Holding for Locked {
    async fn release(self: Box<Self>) {
        let Locked { mut tx, tell } = *self;
        if let Some(topic) = tell
            && let Err(e) = changes::tell(&mut tx, topic).await
        {
            tracing::warn!(error = %e, "could not tell the other nodes that a slot is free");
        }
        if let Err(e) = tx.commit().await {
            tracing::warn!(error = %e, "could not give a turn back; PostgreSQL does when the connection ends");
        }
    }
}

#[async_trait]
impl Store for PgStore {
    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn listen(&self, listeners: Listeners) -> Result<bool> {
        changes::listen(&self.pool, listeners).await?;
        Ok(true)
    }

    fn shared(&self) -> bool {
        true
    }

    async fn try_slot(&self, name: &str, slots: u32) -> Result<Option<Turn>> {
        // Slot k is the lock (name, k) of a transaction held open: released when the holder drops it, and by
        // PostgreSQL when the holder's connection goes (its node died).
        let mut tx = self.begin().await?;
        for slot in 0..slots.min(64) {
            let taken: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock(hashtext($1), $2)")
                .bind(name)
                .bind(slot as i32)
                .fetch_one(&mut *tx)
                .await?;
            if taken {
                return Ok(Some(Turn::held(Locked { tx, tell: Some(Topic::Outbox) })));
            }
        }
        Ok(None)
    }

    async fn turn(&self, name: &str) -> Result<Turn> {
        // A lock of the transaction's: released when it ends, also when a node dies holding it.
        let mut tx = self.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))").bind(name).execute(&mut *tx).await?;
        Ok(Turn::held(Locked { tx, tell: None }))
    }

    async fn hold_duty(&self, name: &str, holder: &str, now: DateTime<Utc>, until: DateTime<Utc>) -> Result<bool> {
        // `duty:NAME` = `HOLDER UNTIL_MS`; one statement, so that two nodes never both take a free duty.
        let done = sqlx::query(
            "INSERT INTO meta (key, value) VALUES ($1, $2 || ' ' || $3) ON CONFLICT (key) DO UPDATE
             SET value = excluded.value
             WHERE split_part(meta.value, ' ', 1) = $2 OR split_part(meta.value, ' ', 2)::BIGINT <= $4",
        )
        .bind(format!("duty:{name}"))
        .bind(holder)
        .bind(ms(until).to_string())
        .bind(ms(now))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn meta(&self, key: &str) -> Result<Option<String>> {
        Ok(sqlx::query_scalar("SELECT value FROM meta WHERE key = $1").bind(key).fetch_optional(&self.pool).await?)
    }

    async fn set_meta(&self, key: &str, value: Option<&str>) -> Result<()> {
        let mut tx = self.begin().await?;
        match value {
            Some(value) => upsert_meta(&mut tx, key, value).await?,
            None => {
                sqlx::query("DELETE FROM meta WHERE key = $1").bind(key).execute(&mut *tx).await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn init_meta(&self, key: &str, value: &str) -> Result<bool> {
        let done = sqlx::query("INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
            .bind(key)
            .bind(value)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn config(&self) -> Result<Option<ConfigRecord>> {
        let row = sqlx::query(
            "SELECT revision, saved_at, saved_by, document FROM email_config ORDER BY revision DESC LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let revision: i64 = row.get("revision");
        let document: String = row.get("document");
        let config: EmailConfig =
            serde_json::from_str(&document).map_err(|e| corrupt(&format!("configuration revision {revision}"), e))?;
        Ok(Some(ConfigRecord {
            revision,
            saved_at: from_ms(row.get("saved_at")),
            saved_by: row.get("saved_by"),
            config,
        }))
    }

    async fn config_revision(&self) -> Result<i64> {
        let revision: Option<i64> =
            sqlx::query_scalar("SELECT MAX(revision) FROM email_config").fetch_one(&self.pool).await?;
        Ok(revision.unwrap_or(0))
    }

    async fn save_config(&self, save: ConfigSave<'_>) -> Result<i64> {
        let document = serde_json::to_string(save.config).map_err(|e| corrupt("configuration", e))?;
        let revision = save.base_revision + 1;
        let at = Utc::now();
        let mut tx = self.begin().await?;
        // The primary key turns a concurrent save of the same base revision, on any node, into a conflict
        // instead of a lost update: the second insert waits for the first's commit, then fails.
        let inserted =
            sqlx::query("INSERT INTO email_config (revision, saved_at, saved_by, document) VALUES ($1, $2, $3, $4)")
                .bind(revision)
                .bind(ms(at))
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
                Some(sealed) => {
                    sqlx::query(
                        "INSERT INTO secrets (name, sealed, updated_at) VALUES ($1, $2, $3)
                         ON CONFLICT (name) DO UPDATE SET sealed = excluded.sealed, updated_at = excluded.updated_at",
                    )
                    .bind(name)
                    .bind(sealed)
                    .bind(ms(at))
                    .execute(&mut *tx)
                    .await?;
                }
                None => {
                    sqlx::query("DELETE FROM secrets WHERE name = $1").bind(name).execute(&mut *tx).await?;
                }
            }
        }
        insert_audit(&mut tx, save.audit, at).await?;
        tell(&mut tx, Topic::Config).await?;
        tx.commit().await?;
        Ok(revision)
    }

    async fn sealed_secrets(&self) -> Result<Vec<SealedSecret>> {
        let rows = sqlx::query("SELECT name, sealed FROM secrets ORDER BY name").fetch_all(&self.pool).await?;
        Ok(rows.into_iter().map(|r| SealedSecret { name: r.get("name"), sealed: r.get("sealed") }).collect())
    }

    async fn audit_page(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>> {
        let rows = sqlx::query(
            "SELECT id, at, actor, action, fields FROM audit_log
             WHERE ($1::TEXT IS NULL OR actor = $1) AND ($2::TEXT IS NULL OR left(action, length($2)) = $2)
               AND ($3::BIGINT IS NULL OR id < $3)
             ORDER BY id DESC LIMIT $4",
        )
        .bind(filter.actor.as_deref())
        .bind(filter.action.as_deref())
        .bind(filter.before_id)
        .bind(i64::from(filter.limit))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| {
                let id: i64 = r.get("id");
                let fields: String = r.get("fields");
                let fields = serde_json::from_str(&fields).map_err(|e| corrupt(&format!("audit entry {id}"), e))?;
                Ok(AuditEntry { id, at: from_ms(r.get("at")), actor: r.get("actor"), action: r.get("action"), fields })
            })
            .collect()
    }

    async fn record_audit(&self, entry: &NewAuditEntry) -> Result<()> {
        let mut tx = self.begin().await?;
        insert_audit(&mut tx, entry, Utc::now()).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn create_account(&self, account: &NewAccount, audit: &NewAuditEntry) -> Result<i64> {
        accounts::create(self.begin().await?, account, audit).await
    }
    async fn accounts(&self) -> Result<Vec<Account>> {
        accounts::list(&self.pool).await
    }
    async fn account_for_login(&self, username: &str) -> Result<Option<LoginRecord>> {
        accounts::for_login(&self.pool, username).await
    }
    async fn login_attempt(&self, id: i64, max_failures: u32, now: DateTime<Utc>) -> Result<Option<u32>> {
        accounts::login_attempt(&self.pool, id, max_failures, now).await
    }
    async fn login_failed(&self, id: i64, lock_until: Option<DateTime<Utc>>, audit: &NewAuditEntry) -> Result<()> {
        accounts::login_failed(self.begin().await?, id, lock_until, audit).await
    }
    async fn login_succeeded(&self, session: &NewSession, audit: &NewAuditEntry) -> Result<()> {
        accounts::login_succeeded(self.begin().await?, session, audit).await
    }
    async fn session(
        &self,
        token_hash: &[u8],
        now: DateTime<Utc>,
        extend_to: DateTime<Utc>,
        absolute_max: chrono::Duration,
    ) -> Result<Option<SessionRecord>> {
        accounts::session(&self.pool, token_hash, now, extend_to, absolute_max).await
    }
    async fn end_session(&self, token_hash: &[u8], audit: Option<&NewAuditEntry>) -> Result<()> {
        accounts::end_session(self.begin().await?, token_hash, audit).await
    }
    async fn change_account(&self, id: i64, change: &AccountChange, audit: &NewAuditEntry) -> Result<bool> {
        accounts::change(self.begin().await?, id, change, audit).await
    }
    async fn delete_account(&self, id: i64, audit: &NewAuditEntry) -> Result<bool> {
        accounts::delete(self.begin().await?, id, audit).await
    }

    async fn enqueue(&self, messages: &[NewOutboxMessage], lease: Option<&NewLease>) -> Result<Vec<i64>> {
        if messages.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.begin().await?;
        let ids = outbox::insert_messages(&mut tx, messages, lease).await?;
        tell(&mut tx, Topic::Outbox).await?;
        tx.commit().await?;
        Ok(ids)
    }
    async fn lease_due(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: u32,
        waiting: &Waiting,
    ) -> Result<Vec<LeasedMessage>> {
        outbox::lease_due(&self.pool, owner, now, until, limit, waiting).await
    }
    async fn release(&self, owner: &str, ids: &[i64]) -> Result<u64> {
        outbox::release(self.begin().await?, owner, ids).await
    }
    async fn expire_leases(&self, owner_prefix: &str) -> Result<u64> {
        outbox::expire_leases(self.begin().await?, owner_prefix).await
    }
    async fn settle(&self, settlements: &[Settlement], usage: &[Usage]) -> Result<()> {
        if settlements.is_empty() && usage.is_empty() {
            return Ok(());
        }
        outbox::settle(self.begin().await?, settlements, usage).await
    }
    async fn usage_since(&self, since: DateTime<Utc>) -> Result<Vec<Usage>> {
        outbox::usage_since(&self.pool, since).await
    }
    async fn deferred_due(&self, at: DateTime<Utc>) -> Result<u64> {
        outbox::deferred_due(self.begin().await?, at).await
    }
    async fn next_due(&self, waiting: &Waiting) -> Result<Option<DateTime<Utc>>> {
        outbox::next_due(&self.pool, waiting).await
    }
    async fn messages(&self, filter: &MessageFilter) -> Result<Vec<MessageSummary>> {
        outbox::messages(&self.pool, filter).await
    }
    async fn message(&self, id: i64) -> Result<Option<MessageDetail>> {
        outbox::message(&self.pool, id).await
    }
    async fn message_content(&self, id: i64) -> Result<Option<Vec<u8>>> {
        outbox::content(self.begin().await?, id).await
    }
    async fn requeue(&self, id: i64, from: Status, recipients: &[Recipient], now: DateTime<Utc>) -> Result<bool> {
        outbox::requeue(self.begin().await?, id, from, recipients, now).await
    }
    async fn purge(&self, status: Status) -> Result<u64> {
        outbox::purge(&self.pool, status).await
    }
    async fn queue_counts(&self) -> Result<Vec<(Status, u64)>> {
        outbox::queue_counts(&self.pool).await
    }
    async fn queue_ages(&self) -> Result<QueueAges> {
        outbox::queue_ages(&self.pool).await
    }

    async fn authorization(&self, owner: Owner) -> Result<Option<(Authorization, Option<Vec<u8>>)>> {
        authorizations::one(&self.pool, owner).await
    }
    async fn authorizations(&self) -> Result<Vec<Authorization>> {
        authorizations::all(&self.pool).await
    }
    async fn authorization_granted(&self, owner: Owner, grant: Grant<'_>, at: DateTime<Utc>) -> Result<()> {
        authorizations::granted(self.begin().await?, owner, grant, at).await
    }
    async fn authorization_failed(
        &self,
        owner: Owner,
        reason: &str,
        explanation: &str,
        at: DateTime<Utc>,
        alert: &NewEvent,
    ) -> Result<()> {
        authorizations::failed(self.begin().await?, owner, reason, explanation, at, alert).await
    }
    async fn authorization_forget(&self, owner: Owner, audit: &NewAuditEntry) -> Result<bool> {
        authorizations::forget(self.begin().await?, owner, audit).await
    }
    async fn put_pending_sign_in(&self, pending: &PendingSignIn) -> Result<()> {
        authorizations::put_pending(self.begin().await?, pending).await
    }
    async fn take_pending_sign_in(
        &self,
        state: Option<&str>,
        owner: Owner,
        now: DateTime<Utc>,
    ) -> Result<Option<PendingSignIn>> {
        authorizations::take_pending(&self.pool, state, owner, now).await
    }

    async fn record_event(&self, event: &NewEvent) -> Result<i64> {
        let mut tx = self.begin().await?;
        let id = events::insert(&mut tx, event).await?;
        tell(&mut tx, Topic::Events).await?;
        tx.commit().await?;
        Ok(id)
    }
    async fn pending_events(&self, limit: u32) -> Result<Vec<EventRecord>> {
        events::pending(&self.pool, limit).await
    }
    async fn throttle(&self, kind: EventKind, node: &str) -> Result<Option<Throttle>> {
        events::throttle(&self.pool, kind, node).await
    }
    async fn throttles_with_repeats(&self) -> Result<Vec<ThrottleRecord>> {
        events::with_repeats(&self.pool).await
    }
    async fn handle_event(&self, handling: &EventHandling<'_>) -> Result<(i64, Option<i64>)> {
        events::handle(self.begin().await?, handling).await
    }
    async fn events(&self, filter: &EventFilter) -> Result<Vec<EventRecord>> {
        events::list(&self.pool, filter).await
    }
    async fn event(&self, id: i64) -> Result<Option<EventRecord>> {
        events::one(&self.pool, id).await
    }
    async fn event_counts(&self) -> Result<Vec<(EventKind, EventState, u64)>> {
        events::counts(&self.pool).await
    }

    async fn create_device(&self, device: &NewDevice, audit: &NewAuditEntry) -> Result<i64> {
        devices::create(self.begin().await?, device, audit).await
    }
    async fn devices(&self) -> Result<Vec<Device>> {
        devices::list(&self.pool).await
    }
    async fn device_for_login(&self, username: &str) -> Result<Option<(Device, String)>> {
        devices::for_login(&self.pool, username).await
    }
    async fn delete_device(&self, id: i64, audit: &NewAuditEntry) -> Result<bool> {
        devices::delete(self.begin().await?, id, audit).await
    }
    async fn create_device_session(&self, session: &NewDeviceSession, audit: &NewAuditEntry) -> Result<()> {
        devices::create_session(self.begin().await?, session, audit).await
    }
    async fn device_session(&self, token_hash: &[u8], now: DateTime<Utc>) -> Result<Option<(Device, String)>> {
        devices::session(&self.pool, token_hash, now).await
    }
    async fn end_device_session(&self, token_hash: &[u8], audit: &NewAuditEntry) -> Result<()> {
        devices::end_session(self.begin().await?, token_hash, audit).await
    }

    async fn cluster_self(&self) -> Result<Option<ClusterSelf>> {
        cluster::this(&self.pool).await
    }
    async fn put_cluster_self(&self, state: Option<&ClusterSelf>, audit: Option<&NewAuditEntry>) -> Result<()> {
        cluster::put_this(self.begin().await?, state, audit).await
    }
    async fn cluster_nodes(&self) -> Result<Vec<ClusterNode>> {
        cluster::nodes(&self.pool).await
    }
    async fn put_cluster_node(&self, node: &ClusterNode, audit: Option<&NewAuditEntry>) -> Result<()> {
        cluster::put_node(self.begin().await?, node, audit).await
    }
    async fn join_cluster_node(
        &self,
        node: &ClusterNode,
        code_hash: &[u8],
        now: DateTime<Utc>,
        audit: &NewAuditEntry,
    ) -> Result<bool> {
        cluster::join_node(self.begin().await?, node, code_hash, now, audit).await
    }
    async fn cluster_node_seen(&self, name: &str, version: &str, at: DateTime<Utc>, synced: Option<i64>) -> Result<()> {
        cluster::node_seen(&self.pool, name, version, at, synced).await
    }
    async fn replace_cluster_nodes(&self, nodes: &[ClusterNode]) -> Result<()> {
        cluster::replace_nodes(self.begin().await?, nodes).await
    }
    async fn remove_cluster_node(&self, name: &str, audit: &NewAuditEntry) -> Result<bool> {
        cluster::remove_node(self.begin().await?, name, audit).await
    }
    async fn identities(&self) -> Result<Identities> {
        identities::all(&self.pool).await
    }
    async fn replace_identities(&self, with: &Identities, audit: &NewAuditEntry) -> Result<()> {
        identities::replace(self.begin().await?, with, audit).await
    }

    async fn peer_seen(&self, peer: &Peer) -> Result<()> {
        peers::seen(&self.pool, peer).await
    }
    async fn peers(&self) -> Result<Vec<Peer>> {
        peers::all(&self.pool).await
    }
    async fn peer_gone(&self, node: &str) -> Result<()> {
        peers::gone(&self.pool, node).await
    }

    async fn create_api_token(&self, name: &str, role: Role, token_hash: &[u8], audit: &NewAuditEntry) -> Result<i64> {
        tokens::create(self.begin().await?, name, role, token_hash, audit).await
    }
    async fn api_token_by_hash(&self, token_hash: &[u8]) -> Result<Option<ApiToken>> {
        tokens::by_hash(&self.pool, token_hash).await
    }
    async fn api_tokens(&self) -> Result<Vec<ApiToken>> {
        tokens::list(&self.pool).await
    }
    async fn revoke_api_token(&self, id: i64, audit: &NewAuditEntry) -> Result<bool> {
        tokens::revoke(self.begin().await?, id, audit).await
    }
    async fn touch_api_token(&self, id: i64, at: DateTime<Utc>) -> Result<()> {
        tokens::touch(&self.pool, id, at).await
    }
}

//! The outbox in SQLite: enqueue in batches, lease with an expiry, settle in batches.

use super::{batch::Batch, corrupt, events, from_ms, ms, writer::Writing};
use crate::stored;
use crate::{
    CONTENT_PART, DeadLetter, LeasedMessage, MessageDetail, MessageFilter, MessageSummary, NewLease, NewOutboxMessage,
    QueueAges, Result, Settlement, Waiting,
};
use chrono::{DateTime, Utc};
use sqlx::{Connection, Row, Sqlite, SqliteConnection, SqlitePool, Transaction, sqlite::SqliteRow};
use std::sync::LazyLock;
use tidings_core::outbox::{Recipient, Status, budget::Usage};

/// The most messages one statement writes: a batch takes few statements (each a round trip to the connection's
/// thread), and the statements of each size stay few in the statement cache.
const ROWS: usize = 8;

pub(super) async fn enqueue(
    writing: &mut Writing<'_>,
    messages: &[NewOutboxMessage],
    lease: Option<&NewLease>,
) -> Result<Vec<i64>> {
    if messages.is_empty() {
        return Ok(Vec::new());
    }
    let chunks = messages.chunks(ROWS);
    let parts: usize = messages.iter().map(|m| later_parts(&m.content).count()).sum();
    let mut batch = Batch::start(writing, chunks.len() + parts);
    let mut ids = Vec::with_capacity(messages.len());
    let mut to_lease = lease.map_or(0, |l| l.count);
    for chunk in chunks {
        let leased = to_lease.min(chunk.len());
        to_lease -= leased;
        let (sql, conn) = batch.next(&insert_sql(chunk.len()));
        let stored = insert_messages(conn, &sql, chunk, lease.map(|l| (l, leased))).await?;
        for (m, id) in chunk.iter().zip(&stored) {
            for (part, content) in later_parts(&m.content).enumerate() {
                let (sql, conn) = batch.next(INSERT_PART);
                insert_part(conn, &sql, *id, part + 1, content).await?;
            }
        }
        ids.extend(stored);
    }
    batch.finish();
    Ok(ids)
}

/// Stores a message as `queued` and due now, within `tx`.
pub(super) async fn insert_message(tx: &mut Transaction<'_, Sqlite>, m: &NewOutboxMessage) -> Result<i64> {
    let id = insert_messages(tx, &insert_sql(1), std::slice::from_ref(m), None).await?[0];
    for (part, content) in later_parts(&m.content).enumerate() {
        insert_part(tx, INSERT_PART, id, part + 1, content).await?;
    }
    Ok(id)
}

/// A content's parts after the first (which `message_content` holds).
fn later_parts(content: &[u8]) -> std::slice::Chunks<'_, u8> {
    content.get(CONTENT_PART..).unwrap_or_default().chunks(CONTENT_PART)
}

const INSERT_PART: &str = "INSERT INTO message_content_parts (message_id, part, content) VALUES (?, ?, ?)";

/// Stores one part of a message's content (`sql`: [`INSERT_PART`], perhaps framed by a [`Batch`]).
async fn insert_part(conn: &mut SqliteConnection, sql: &str, id: i64, part: usize, content: &[u8]) -> Result<()> {
    sqlx::query(sql).bind(id).bind(part as i64).bind(content).execute(conn).await?;
    Ok(())
}

/// A message's content, its parts put together in one buffer of its size; `None` when there is no such message.
pub(super) async fn content(reader: &SqlitePool, id: i64) -> Result<Option<Vec<u8>>> {
    // One read transaction: a purge meanwhile cannot leave the parts half read.
    let mut tx = reader.begin().await?;
    let first: Option<(Vec<u8>, i64)> = sqlx::query_as(
        "SELECT c.content, m.size FROM message_content c JOIN messages m ON m.id = c.message_id WHERE c.message_id = ?",
    )
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((first, size)) = first else { return Ok(None) };
    let size = usize::try_from(size).unwrap_or_default();
    if first.len() >= size {
        return Ok(Some(first));
    }
    let mut content = Vec::with_capacity(size);
    content.extend_from_slice(&first);
    drop(first);
    for part in 1..size.div_ceil(CONTENT_PART) {
        let piece: Vec<u8> =
            sqlx::query_scalar("SELECT content FROM message_content_parts WHERE message_id = ? AND part = ?")
                .bind(id)
                .bind(part as i64)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(|| corrupt("message content", format!("message {id} lacks part {part}")))?;
        content.extend_from_slice(&piece);
    }
    Ok(Some(content))
}

/// `(?, ?, …), (?, ?, …), …`: `rows` tuples of `columns` parameters.
fn values(rows: usize, columns: usize) -> String {
    let row = format!("({})", vec!["?"; columns].join(", "));
    vec![row; rows].join(", ")
}

/// Statements that store `rows` messages and their contents, returning the largest of the messages' ids.
///
/// The contents find their messages without a round trip for the ids: the rows one statement adds to an
/// `AUTOINCREMENT` table are numbered consecutively above every id the table ever had, so the `k`-th is the
/// new largest id minus `rows - k`. Were that ever not so, a content row would name a missing message or one
/// that has its content already (every message gets its content in the transaction that adds it), and the
/// foreign or primary key would fail the whole batch. The same numbering gives the caller the ids.
fn insert_sql(rows: usize) -> String {
    let numbered: Vec<String> = (1..=rows).map(|k| format!("({k}, ?)")).collect();
    format!(
        "INSERT INTO messages (status, lease_owner, lease_until, origin, mail_from, recipients, subject, message_id,
                               size, created_at, lifetime_start, updated_at, next_attempt_at, mailbox_of)
         SELECT * FROM (VALUES {});
         INSERT INTO message_content (message_id, content)
         SELECT (SELECT MAX(id) FROM messages) - {rows} + column1, column2 FROM (VALUES {});
         SELECT MAX(id) FROM messages",
        values(rows, 14),
        numbered.join(", ")
    )
}

/// Runs [`insert_sql`] (`sql`, perhaps framed by a [`Batch`]) for `messages`; their ids in the same order. The
/// first `count` of them are stored already leased (`sending`) when a lease is given, the others `queued`.
async fn insert_messages(
    conn: &mut SqliteConnection,
    sql: &str,
    messages: &[NewOutboxMessage],
    lease: Option<(&NewLease, usize)>,
) -> Result<Vec<i64>> {
    let recipients = messages
        .iter()
        .map(|m| stored::recipients_json(&m.recipients).map_err(|e| corrupt("recipients", e)))
        .collect::<Result<Vec<_>>>()?;
    let mut insert = sqlx::query_scalar::<_, i64>(sql);
    for (i, (m, recipients)) in messages.iter().zip(&recipients).enumerate() {
        let at = ms(m.created_at);
        let leased = lease.filter(|(_, count)| i < *count).map(|(l, _)| l);
        insert = insert
            .bind(if leased.is_some() { "sending" } else { "queued" })
            .bind(leased.map(|l| &l.owner))
            .bind(leased.map(|l| ms(l.until)))
            .bind(&m.origin)
            .bind(&m.mail_from)
            .bind(recipients)
            .bind(&m.subject)
            .bind(&m.message_id)
            .bind(m.content.len() as i64)
            .bind(at)
            .bind(at)
            .bind(at)
            .bind(at)
            .bind(&m.mailbox_of);
    }
    for m in messages {
        insert = insert.bind(&m.content[..m.content.len().min(CONTENT_PART)]);
    }
    // The messages' ids follow from the largest, as their contents' do; no RETURNING, which would gather the
    // ids in a temporary table first. `fetch_all`, not `fetch_one`: the SQL may end with a batch's COMMIT,
    // which only runs when every statement is driven to its end.
    let last = insert.fetch_all(conn).await?.pop().ok_or_else(|| corrupt("ids", "no messages were stored"))?;
    let first = last - messages.len() as i64 + 1;
    Ok((first..=last).collect())
}

pub(super) async fn lease_due(
    conn: &mut SqliteConnection,
    owner: &str,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
    limit: u32,
    waiting: &Waiting,
) -> Result<Vec<LeasedMessage>> {
    if waiting.everything {
        return Ok(Vec::new());
    }
    let rows = sqlx::query(&LEASE_DUE)
        .bind(owner)
        .bind(ms(until))
        .bind(ms(now))
        .bind(limit)
        .bind(waiting.relay_account)
        .bind(accounts_json(waiting))
        .fetch_all(&mut *conn)
        .await?;
    let mut leased = rows
        .into_iter()
        .map(|r| {
            Ok(LeasedMessage {
                id: r.get("id"),
                origin: r.get("origin"),
                subject: r.get("subject"),
                mail_from: r.get("mail_from"),
                recipients: recipients(&r)?,
                content: r.get::<Option<Vec<u8>>, _>("content").unwrap_or_default(),
                size: r.get::<i64, _>("size") as u64,
                attempts: r.get::<i64, _>("attempts") as u32,
                lifetime_start: from_ms(r.get("lifetime_start")),
                mailbox_of: r.get("mailbox_of"),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    leased.sort_by_key(|m| m.id);
    Ok(leased)
}

/// Leases due messages, each branch walking its own index in order and stopping at the limit: `?1` owner,
/// `?2` until, `?3` now, `?4` limit, then the identities that wait.
static LEASE_DUE: LazyLock<String> = LazyLock::new(|| {
    let not_waiting = not_waiting(5, 6);
    format!(
        "UPDATE messages SET status = 'sending', lease_owner = ?1, lease_until = ?2, updated_at = ?3
         WHERE id IN (
             SELECT id FROM (
                 SELECT * FROM (SELECT id, next_attempt_at AS due FROM messages
                                WHERE status = 'queued' AND next_attempt_at <= ?3 {not_waiting}
                                ORDER BY next_attempt_at LIMIT ?4)
                 UNION ALL
                 SELECT * FROM (SELECT id, next_attempt_at AS due FROM messages
                                WHERE status = 'deferred' AND next_attempt_at <= ?3 {not_waiting}
                                ORDER BY next_attempt_at LIMIT ?4)
                 UNION ALL
                 SELECT * FROM (SELECT id, lease_until AS due FROM messages
                                WHERE status = 'sending' AND lease_until <= ?3 {not_waiting}
                                ORDER BY lease_until LIMIT ?4))
             ORDER BY due, id
             LIMIT ?4)
         RETURNING id, origin, subject, mail_from, recipients, attempts, lifetime_start, mailbox_of, size,
                   CASE WHEN size <= {CONTENT_PART}
                        THEN (SELECT content FROM message_content WHERE message_id = messages.id) END AS content"
    )
});

/// When the next message that does not wait falls due, each branch walking its index to the first such message.
static NEXT_DUE: LazyLock<String> = LazyLock::new(|| {
    let not_waiting = not_waiting(1, 2);
    format!(
        "SELECT MIN(t) FROM (
             SELECT * FROM (SELECT next_attempt_at AS t FROM messages WHERE status = 'queued' {not_waiting}
                            ORDER BY next_attempt_at LIMIT 1)
             UNION ALL
             SELECT * FROM (SELECT next_attempt_at AS t FROM messages WHERE status = 'deferred' {not_waiting}
                            ORDER BY next_attempt_at LIMIT 1)
             UNION ALL
             SELECT * FROM (SELECT lease_until AS t FROM messages WHERE status = 'sending' {not_waiting}
                            ORDER BY lease_until LIMIT 1))"
    )
});

/// Leaves out the messages of identities that wait: parameter `relay` says whether the relay account's wait,
/// `accounts` is a JSON array of the device accounts whose own mailboxes wait.
fn not_waiting(relay: u8, accounts: u8) -> String {
    format!(
        "AND (mailbox_of IS NOT NULL OR ?{relay} = 0)
         AND (mailbox_of IS NULL OR mailbox_of NOT IN (SELECT value FROM json_each(?{accounts})))"
    )
}

fn accounts_json(waiting: &Waiting) -> String {
    serde_json::to_string(&waiting.accounts).unwrap_or_else(|_| "[]".into())
}

pub(super) async fn release(conn: &mut SqliteConnection, owner: &str, ids: &[i64]) -> Result<u64> {
    let ids = serde_json::to_string(ids).unwrap_or_else(|_| "[]".into());
    let done = sqlx::query(
        "UPDATE messages SET lease_until = 0
         WHERE status = 'sending' AND lease_owner = ? AND id IN (SELECT value FROM json_each(?))",
    )
    .bind(owner)
    .bind(ids)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected())
}

pub(super) async fn expire_leases(conn: &mut SqliteConnection, owner_prefix: &str) -> Result<u64> {
    let pattern = format!("{}%", owner_prefix.replace('%', "\\%").replace('_', "\\_"));
    let done =
        sqlx::query("UPDATE messages SET lease_until = 0 WHERE status = 'sending' AND lease_owner LIKE ? ESCAPE '\\'")
            .bind(pattern)
            .execute(&mut *conn)
            .await?;
    Ok(done.rows_affected())
}

pub(super) async fn settle(writing: &mut Writing<'_>, settlements: &[Settlement], usage: &[Usage]) -> Result<()> {
    let now = ms(Utc::now());
    if settlements.iter().any(|s| s.dead_letter.is_some()) {
        // Dead letters go in the same transaction, each written once the update said the lease was still the
        // owner's.
        let mut tx = writing.begin().await?;
        for chunk in settlements.chunks(ROWS) {
            let updated = settle_rows(&mut tx, &settle_sql(chunk.len()), chunk, now).await?;
            for s in chunk.iter().filter(|s| updated.contains(&s.id)) {
                if let Some(dead) = &s.dead_letter {
                    record_dead_letter(&mut tx, dead, now).await?;
                }
            }
        }
        if !usage.is_empty() {
            add_usage(&mut tx, &usage_sql(usage.len()), usage, now).await?;
        }
        tx.commit().await?;
    } else if !settlements.is_empty() || !usage.is_empty() {
        let chunks = settlements.chunks(ROWS);
        let mut batch = Batch::start(writing, chunks.len() + usize::from(!usage.is_empty()));
        for chunk in chunks {
            let (sql, conn) = batch.next(&settle_sql(chunk.len()));
            settle_rows(conn, &sql, chunk, now).await?;
        }
        if !usage.is_empty() {
            let (sql, conn) = batch.next(&usage_sql(usage.len()));
            add_usage(conn, &sql, usage, now).await?;
        }
        batch.finish();
    }
    Ok(())
}

/// Adds `rows` usage rows (one per identity and minute) and forgets what is older than two days.
fn usage_sql(rows: usize) -> String {
    format!(
        "INSERT INTO identity_usage (identity, minute, messages, recipients) VALUES {}
         ON CONFLICT (identity, minute) DO UPDATE
             SET messages = messages + excluded.messages, recipients = recipients + excluded.recipients;
         DELETE FROM identity_usage WHERE minute < ?",
        values(rows, 4)
    )
}

async fn add_usage(conn: &mut SqliteConnection, sql: &str, usage: &[Usage], now: i64) -> Result<()> {
    let mut statements = sqlx::query(sql);
    for u in usage {
        statements = statements
            .bind(u.identity.as_deref().unwrap_or(""))
            .bind(ms(u.minute))
            .bind(i64::from(u.messages))
            .bind(i64::from(u.recipients));
    }
    statements.bind(now - 2 * 24 * 3600 * 1000).execute(conn).await?;
    Ok(())
}

pub(super) async fn usage_since(conn: &mut SqliteConnection, since: DateTime<Utc>) -> Result<Vec<Usage>> {
    let rows = sqlx::query(
        "SELECT identity, minute, messages, recipients FROM identity_usage WHERE minute >= ? ORDER BY minute, identity",
    )
    .bind(ms(since))
    .fetch_all(conn)
    .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let identity: String = r.get("identity");
            Usage {
                identity: Some(identity).filter(|i| !i.is_empty()),
                minute: from_ms(r.get("minute")),
                messages: r.get::<i64, _>("messages") as u32,
                recipients: r.get::<i64, _>("recipients") as u32,
            }
        })
        .collect())
}

/// Two statements that settle `rows` messages, returning the ids of those settled, and log their attempts.
fn settle_sql(rows: usize) -> String {
    // Only the lease's owner settles: a message whose lease expired and went to another node is left alone.
    // The attempt is logged even when the lease was lost, unless the message is gone (purged meanwhile).
    format!(
        "UPDATE messages SET status = s.column2, recipients = s.column3, next_attempt_at = s.column4,
                             attempts = s.column5, last_error = s.column6, lease_owner = NULL, lease_until = NULL,
                             updated_at = ?
         FROM (VALUES {}) AS s
         WHERE messages.id = s.column1 AND messages.status = 'sending' AND messages.lease_owner = s.column7
         RETURNING messages.id;
         INSERT INTO attempts (message_id, record)
         SELECT column1, column2 FROM (VALUES {}) WHERE EXISTS (SELECT 1 FROM messages WHERE id = column1)",
        values(rows, 7),
        values(rows, 2)
    )
}

/// Runs [`settle_sql`] (`sql`, perhaps framed by a [`Batch`]) for `settlements`; the ids of those settled.
async fn settle_rows(conn: &mut SqliteConnection, sql: &str, settlements: &[Settlement], now: i64) -> Result<Vec<i64>> {
    let mut recipients = Vec::with_capacity(settlements.len());
    let mut records = Vec::with_capacity(settlements.len());
    for s in settlements {
        recipients.push(stored::recipients_json(&s.settled.recipients).map_err(|e| corrupt("recipients", e))?);
        records.push(stored::attempt_json(&s.settled.attempt).map_err(|e| corrupt("attempt", e))?);
    }
    let mut statements = sqlx::query_scalar::<_, i64>(sql).bind(now);
    for (s, recipients) in settlements.iter().zip(&recipients) {
        let st = &s.settled;
        statements = statements
            .bind(s.id)
            .bind(st.status.as_str())
            .bind(recipients)
            .bind(st.next_attempt_at.map(ms))
            .bind(st.attempt.number as i64)
            .bind(&st.last_error)
            .bind(&s.owner);
    }
    for (s, record) in settlements.iter().zip(&records) {
        statements = statements.bind(s.id).bind(record);
    }
    Ok(statements.fetch_all(conn).await?)
}

/// A settlement's dead-letter event (see `Store::settle`).
async fn record_dead_letter(tx: &mut Transaction<'_, Sqlite>, dead: &DeadLetter, now: i64) -> Result<()> {
    let id = events::insert(tx, &dead.event).await?;
    if !dead.mailed {
        sqlx::query("UPDATE events SET state = 'recorded', handled_at = ? WHERE id = ?")
            .bind(now)
            .bind(id)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

pub(super) async fn deferred_due(conn: &mut SqliteConnection, at: DateTime<Utc>) -> Result<u64> {
    let done = sqlx::query("UPDATE messages SET next_attempt_at = ? WHERE status = 'deferred' AND next_attempt_at > ?")
        .bind(ms(at))
        .bind(ms(at))
        .execute(&mut *conn)
        .await?;
    Ok(done.rows_affected())
}

pub(super) async fn next_due(conn: &mut SqliteConnection, waiting: &Waiting) -> Result<Option<DateTime<Utc>>> {
    if waiting.everything {
        return Ok(None);
    }
    let due: Option<i64> = sqlx::query_scalar(&NEXT_DUE)
        .bind(waiting.relay_account)
        .bind(accounts_json(waiting))
        .fetch_one(&mut *conn)
        .await?;
    Ok(due.map(from_ms))
}

const SUMMARY: &str = "id, status, origin, mail_from, recipients, subject, size, created_at, updated_at, attempts, next_attempt_at, last_error";

fn summary(r: &SqliteRow) -> Result<MessageSummary> {
    let status: String = r.get("status");
    Ok(MessageSummary {
        id: r.get("id"),
        status: status.parse().map_err(|why| corrupt("message status", why))?,
        origin: r.get("origin"),
        mail_from: r.get("mail_from"),
        recipients: recipients(r)?,
        subject: r.get("subject"),
        size: r.get::<i64, _>("size") as u64,
        created_at: from_ms(r.get("created_at")),
        updated_at: from_ms(r.get("updated_at")),
        attempts: r.get::<i64, _>("attempts") as u32,
        next_attempt_at: r.get::<Option<i64>, _>("next_attempt_at").map(from_ms),
        last_error: r.get("last_error"),
    })
}

fn recipients(r: &SqliteRow) -> Result<Vec<Recipient>> {
    stored::recipients_from(&r.get::<String, _>("recipients")).map_err(|e| corrupt("recipients", e))
}

pub(super) async fn messages(pool: &SqlitePool, filter: &MessageFilter) -> Result<Vec<MessageSummary>> {
    let rows = sqlx::query(&format!(
        "SELECT {SUMMARY} FROM messages WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR id < ?2) ORDER BY id DESC LIMIT ?3"
    ))
    .bind(filter.status.map(Status::as_str))
    .bind(filter.before_id)
    .bind(filter.limit)
    .fetch_all(pool)
    .await?;
    rows.iter().map(summary).collect()
}

pub(super) async fn message(pool: &SqlitePool, id: i64) -> Result<Option<MessageDetail>> {
    let Some(row) = sqlx::query(&format!("SELECT {SUMMARY}, message_id, mailbox_of FROM messages WHERE id = ?"))
        .bind(id)
        .fetch_optional(pool)
        .await?
    else {
        return Ok(None);
    };
    let records: Vec<String> = sqlx::query_scalar("SELECT record FROM attempts WHERE message_id = ? ORDER BY id")
        .bind(id)
        .fetch_all(pool)
        .await?;
    let attempt_log = records
        .iter()
        .map(|r| stored::attempt_from(r).map_err(|e| corrupt("attempt", e)))
        .collect::<Result<Vec<_>>>()?;
    Ok(Some(MessageDetail {
        summary: summary(&row)?,
        message_id: row.get("message_id"),
        attempt_log,
        mailbox_of: row.get("mailbox_of"),
        waiting: None,
        budget: None,
    }))
}

pub(super) async fn requeue(
    conn: &mut SqliteConnection,
    id: i64,
    from: Status,
    recipients: &[Recipient],
    now: DateTime<Utc>,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE messages SET status = 'queued', recipients = ?, next_attempt_at = ?, lifetime_start = ?, updated_at = ?
         WHERE id = ? AND status = ?",
    )
    .bind(stored::recipients_json(recipients).map_err(|e| corrupt("recipients", e))?)
    .bind(ms(now))
    .bind(ms(now))
    .bind(ms(now))
    .bind(id)
    .bind(from.as_str())
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub(super) async fn purge(conn: &mut SqliteConnection, status: Status) -> Result<u64> {
    let done = sqlx::query("DELETE FROM messages WHERE status = ?").bind(status.as_str()).execute(&mut *conn).await?;
    Ok(done.rows_affected())
}

pub(super) async fn queue_ages(pool: &SqlitePool) -> Result<QueueAges> {
    let one = async |sql: &str| -> Result<Option<(i64, DateTime<Utc>)>> {
        let row: Option<(i64, i64)> = sqlx::query_as(sql).fetch_optional(pool).await?;
        Ok(row.map(|(id, at)| (id, from_ms(at))))
    };
    Ok(QueueAges {
        oldest_waiting: one(
            "SELECT id, created_at FROM messages WHERE status IN ('queued', 'sending', 'deferred') ORDER BY id LIMIT 1",
        )
        .await?,
        last_delivered: one(
            "SELECT id, updated_at FROM messages WHERE status = 'delivered' ORDER BY updated_at DESC, id DESC LIMIT 1",
        )
        .await?,
        last_failed: one(
            "SELECT id, updated_at FROM messages WHERE status = 'failed' ORDER BY updated_at DESC, id DESC LIMIT 1",
        )
        .await?,
    })
}

pub(super) async fn queue_counts(pool: &SqlitePool) -> Result<Vec<(Status, u64)>> {
    let rows = sqlx::query("SELECT status, COUNT(*) AS n FROM messages GROUP BY status").fetch_all(pool).await?;
    let mut counts: Vec<(Status, u64)> = Status::ALL.iter().map(|s| (*s, 0)).collect();
    for r in rows {
        let status: Status = r.get::<String, _>("status").parse().map_err(|why| corrupt("message status", why))?;
        if let Some(slot) = counts.iter_mut().find(|(s, _)| *s == status) {
            slot.1 = r.get::<i64, _>("n") as u64;
        }
    }
    Ok(counts)
}

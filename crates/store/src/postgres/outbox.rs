//! The outbox in PostgreSQL: one queue for every node on the database. Messages are leased with
//! `FOR UPDATE SKIP LOCKED`, so that nodes leasing at once each take other messages and none waits for another's
//! transaction; a lease that runs out (its node died) makes the message due for whichever node leases next.

use super::{
    Tx,
    changes::{Topic, tell},
    events,
};
use crate::{
    CONTENT_PART, LeasedMessage, MessageDetail, MessageFilter, MessageSummary, NewLease, NewOutboxMessage, QueueAges,
    Result, Settlement, Waiting,
    stored::{self, corrupt, from_ms, ms},
};
use chrono::{DateTime, Utc};
use sqlx::{PgPool, Row, postgres::PgRow};
use std::sync::LazyLock;
use tidings_core::outbox::{Recipient, Status, budget::Usage};

/// Stores `messages` due now within `tx`, the first `lease.count` of them leased (`sending`); their ids in order.
/// Each column goes as one array, so that a burst is three statements whatever its size.
pub(super) async fn insert_messages(
    tx: &mut Tx<'_>,
    messages: &[NewOutboxMessage],
    lease: Option<&NewLease>,
) -> Result<Vec<i64>> {
    let leased = |i: usize| lease.filter(|l| i < l.count);
    let mut columns = Columns::default();
    for (i, m) in messages.iter().enumerate() {
        let lease = leased(i);
        columns.status.push(if lease.is_some() { "sending" } else { "queued" });
        columns.lease_owner.push(lease.map(|l| l.owner.as_str()));
        columns.lease_until.push(lease.map(|l| ms(l.until)));
        columns.recipients.push(stored::recipients_json(&m.recipients).map_err(|e| corrupt("recipients", e))?);
        columns.size.push(m.content.len() as i64);
        columns.at.push(ms(m.created_at));
    }
    // Identities are drawn in the order the rows are inserted, which is the arrays' order: the ids sorted are
    // the messages' in order.
    let mut ids: Vec<i64> = sqlx::query_scalar(
        "INSERT INTO messages (status, lease_owner, lease_until, origin, mail_from, recipients, subject, message_id,
                               size, created_at, lifetime_start, updated_at, next_attempt_at, mailbox_of)
         SELECT status, lease_owner, lease_until, origin, mail_from, recipients, subject, message_id, size, at, at,
                at, at, mailbox_of
         FROM UNNEST($1::TEXT[], $2::TEXT[], $3::BIGINT[], $4::TEXT[], $5::TEXT[], $6::TEXT[], $7::TEXT[],
                     $8::TEXT[], $9::BIGINT[], $10::BIGINT[], $11::TEXT[])
              WITH ORDINALITY AS m(status, lease_owner, lease_until, origin, mail_from, recipients, subject,
                                   message_id, size, at, mailbox_of, n)
         ORDER BY n
         RETURNING id",
    )
    .bind(&columns.status)
    .bind(&columns.lease_owner)
    .bind(&columns.lease_until)
    .bind(messages.iter().map(|m| m.origin.as_str()).collect::<Vec<_>>())
    .bind(messages.iter().map(|m| m.mail_from.as_str()).collect::<Vec<_>>())
    .bind(&columns.recipients)
    .bind(messages.iter().map(|m| m.subject.as_deref()).collect::<Vec<_>>())
    .bind(messages.iter().map(|m| m.message_id.as_deref()).collect::<Vec<_>>())
    .bind(&columns.size)
    .bind(&columns.at)
    .bind(messages.iter().map(|m| m.mailbox_of.as_deref()).collect::<Vec<_>>())
    .fetch_all(&mut **tx)
    .await?;
    ids.sort_unstable();
    if ids.len() != messages.len() {
        return Err(corrupt("ids", "not every message was stored"));
    }
    let firsts: Vec<&[u8]> = messages.iter().map(|m| &m.content[..m.content.len().min(CONTENT_PART)]).collect();
    sqlx::query("INSERT INTO message_content (message_id, content) SELECT * FROM UNNEST($1::BIGINT[], $2::BYTEA[])")
        .bind(&ids)
        .bind(&firsts)
        .execute(&mut **tx)
        .await?;
    for (m, id) in messages.iter().zip(&ids) {
        for (part, content) in m.content.get(CONTENT_PART..).unwrap_or_default().chunks(CONTENT_PART).enumerate() {
            sqlx::query("INSERT INTO message_content_parts (message_id, part, content) VALUES ($1, $2, $3)")
                .bind(id)
                .bind(part as i32 + 1)
                .bind(content)
                .execute(&mut **tx)
                .await?;
        }
    }
    Ok(ids)
}

/// The columns of new messages that are not simply their fields.
#[derive(Default)]
struct Columns<'a> {
    status: Vec<&'static str>,
    lease_owner: Vec<Option<&'a str>>,
    lease_until: Vec<Option<i64>>,
    recipients: Vec<String>,
    size: Vec<i64>,
    at: Vec<i64>,
}

/// A message's content, its parts put together in one buffer of its size; `None` when there is no such message.
pub(super) async fn content(mut tx: Tx<'_>, id: i64) -> Result<Option<Vec<u8>>> {
    // One transaction, repeatable: a purge meanwhile cannot leave the parts half read.
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(&mut *tx).await?;
    let first: Option<(Vec<u8>, i64)> = sqlx::query_as(
        "SELECT c.content, m.size FROM message_content c JOIN messages m ON m.id = c.message_id
         WHERE c.message_id = $1",
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
            sqlx::query_scalar("SELECT content FROM message_content_parts WHERE message_id = $1 AND part = $2")
                .bind(id)
                .bind(part as i32)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(|| corrupt("message content", format!("message {id} lacks part {part}")))?;
        content.extend_from_slice(&piece);
    }
    Ok(Some(content))
}

/// Leaves out the messages of identities that wait: `$relay` says whether the relay account's wait, `$accounts`
/// holds the device accounts whose own mailboxes wait.
fn not_waiting(relay: u8, accounts: u8) -> String {
    format!(
        "AND (mailbox_of IS NOT NULL OR NOT ${relay}::BOOLEAN)
         AND (mailbox_of IS NULL OR NOT (mailbox_of = ANY(${accounts}::TEXT[])))"
    )
}

/// Leases due messages: `$1` owner, `$2` until, `$3` now, `$4` limit, then the identities that wait. Rows that
/// another node is leasing at this moment are skipped, not waited for.
static LEASE_DUE: LazyLock<String> = LazyLock::new(|| {
    let not_waiting = not_waiting(5, 6);
    format!(
        "WITH due AS (
             SELECT id FROM messages
             WHERE ((status IN ('queued', 'deferred') AND next_attempt_at <= $3)
                    OR (status = 'sending' AND lease_until <= $3)) {not_waiting}
             ORDER BY CASE WHEN status = 'sending' THEN lease_until ELSE next_attempt_at END, id
             LIMIT $4
             FOR UPDATE SKIP LOCKED)
         UPDATE messages m SET status = 'sending', lease_owner = $1, lease_until = $2, updated_at = $3
         FROM due WHERE m.id = due.id
         RETURNING m.id, m.origin, m.subject, m.mail_from, m.recipients, m.attempts, m.lifetime_start, m.mailbox_of,
                   m.size,
                   CASE WHEN m.size <= {CONTENT_PART}
                        THEN (SELECT content FROM message_content WHERE message_id = m.id) END AS content"
    )
});

pub(super) async fn lease_due(
    pool: &PgPool,
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
        .bind(i64::from(limit))
        .bind(waiting.relay_account)
        .bind(&waiting.accounts)
        .fetch_all(pool)
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
                attempts: r.get::<i32, _>("attempts") as u32,
                lifetime_start: from_ms(r.get("lifetime_start")),
                mailbox_of: r.get("mailbox_of"),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    leased.sort_by_key(|m| m.id);
    Ok(leased)
}

/// When the next message that does not wait falls due, each branch walking its index to the first such message.
static NEXT_DUE: LazyLock<String> = LazyLock::new(|| {
    let not_waiting = not_waiting(1, 2);
    format!(
        "SELECT LEAST(
             (SELECT next_attempt_at FROM messages WHERE status = 'queued' {not_waiting}
              ORDER BY next_attempt_at LIMIT 1),
             (SELECT next_attempt_at FROM messages WHERE status = 'deferred' {not_waiting}
              ORDER BY next_attempt_at LIMIT 1),
             (SELECT lease_until FROM messages WHERE status = 'sending' {not_waiting}
              ORDER BY lease_until LIMIT 1))"
    )
});

pub(super) async fn next_due(pool: &PgPool, waiting: &Waiting) -> Result<Option<DateTime<Utc>>> {
    if waiting.everything {
        return Ok(None);
    }
    let due: Option<i64> =
        sqlx::query_scalar(&NEXT_DUE).bind(waiting.relay_account).bind(&waiting.accounts).fetch_one(pool).await?;
    Ok(due.map(from_ms))
}

pub(super) async fn release(mut tx: Tx<'_>, owner: &str, ids: &[i64]) -> Result<u64> {
    let done = sqlx::query(
        "UPDATE messages SET lease_until = 0 WHERE status = 'sending' AND lease_owner = $1 AND id = ANY($2)",
    )
    .bind(owner)
    .bind(ids)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() > 0 {
        tell(&mut tx, Topic::Outbox).await?;
    }
    tx.commit().await?;
    Ok(done.rows_affected())
}

pub(super) async fn expire_leases(mut tx: Tx<'_>, owner_prefix: &str) -> Result<u64> {
    let pattern = format!("{}%", owner_prefix.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_"));
    let done =
        sqlx::query("UPDATE messages SET lease_until = 0 WHERE status = 'sending' AND lease_owner LIKE $1 ESCAPE '\\'")
            .bind(pattern)
            .execute(&mut *tx)
            .await?;
    if done.rows_affected() > 0 {
        tell(&mut tx, Topic::Outbox).await?;
    }
    tx.commit().await?;
    Ok(done.rows_affected())
}

pub(super) async fn settle(mut tx: Tx<'_>, settlements: &[Settlement], usage: &[Usage]) -> Result<()> {
    let now = ms(Utc::now());
    if !settlements.is_empty() {
        let mut recipients = Vec::with_capacity(settlements.len());
        let mut records = Vec::with_capacity(settlements.len());
        for s in settlements {
            recipients.push(stored::recipients_json(&s.settled.recipients).map_err(|e| corrupt("recipients", e))?);
            records.push(stored::attempt_json(&s.settled.attempt).map_err(|e| corrupt("attempt", e))?);
        }
        let ids: Vec<i64> = settlements.iter().map(|s| s.id).collect();
        // Only the lease's owner settles: a message whose lease ran out and went to another node is left alone.
        let settled: Vec<i64> = sqlx::query_scalar(
            "UPDATE messages m SET status = s.status, recipients = s.recipients, next_attempt_at = s.next,
                                   attempts = s.attempts, last_error = s.error, lease_owner = NULL,
                                   lease_until = NULL, updated_at = $1
             FROM UNNEST($2::BIGINT[], $3::TEXT[], $4::TEXT[], $5::BIGINT[], $6::INTEGER[], $7::TEXT[], $8::TEXT[])
                  AS s(id, status, recipients, next, attempts, error, owner)
             WHERE m.id = s.id AND m.status = 'sending' AND m.lease_owner = s.owner
             RETURNING m.id",
        )
        .bind(now)
        .bind(&ids)
        .bind(settlements.iter().map(|s| s.settled.status.as_str()).collect::<Vec<_>>())
        .bind(&recipients)
        .bind(settlements.iter().map(|s| s.settled.next_attempt_at.map(ms)).collect::<Vec<_>>())
        .bind(settlements.iter().map(|s| s.settled.attempt.number as i32).collect::<Vec<_>>())
        .bind(settlements.iter().map(|s| s.settled.last_error.as_deref()).collect::<Vec<_>>())
        .bind(settlements.iter().map(|s| s.owner.as_str()).collect::<Vec<_>>())
        .fetch_all(&mut *tx)
        .await?;
        // The attempt is logged even when the lease was lost, unless the message is gone (purged meanwhile).
        sqlx::query(
            "INSERT INTO attempts (message_id, record)
             SELECT s.id, s.record FROM UNNEST($1::BIGINT[], $2::TEXT[]) WITH ORDINALITY AS s(id, record, n)
             WHERE EXISTS (SELECT 1 FROM messages WHERE id = s.id) ORDER BY s.n",
        )
        .bind(&ids)
        .bind(&records)
        .execute(&mut *tx)
        .await?;
        for s in settlements.iter().filter(|s| settled.contains(&s.id)) {
            if let Some(dead) = &s.dead_letter {
                tell(&mut tx, Topic::Events).await?;
                let id = events::insert(&mut tx, &dead.event).await?;
                if !dead.mailed {
                    sqlx::query("UPDATE events SET state = 'recorded', handled_at = $1 WHERE id = $2")
                        .bind(now)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                }
            }
        }
    }
    if !usage.is_empty() {
        // Summed per identity and minute first (one row may be named twice), and written in key order, so that
        // nodes adding to the same rows at once take their locks in the same order.
        sqlx::query(
            "INSERT INTO identity_usage (identity, minute, messages, recipients)
             SELECT identity, minute, SUM(messages), SUM(recipients)
             FROM UNNEST($1::TEXT[], $2::BIGINT[], $3::INTEGER[], $4::INTEGER[]) AS u(identity, minute, messages, recipients)
             GROUP BY identity, minute ORDER BY identity, minute
             ON CONFLICT (identity, minute) DO UPDATE
                 SET messages = identity_usage.messages + excluded.messages,
                     recipients = identity_usage.recipients + excluded.recipients",
        )
        .bind(usage.iter().map(|u| u.identity.as_deref().unwrap_or("")).collect::<Vec<_>>())
        .bind(usage.iter().map(|u| ms(u.minute)).collect::<Vec<_>>())
        .bind(usage.iter().map(|u| u.messages as i32).collect::<Vec<_>>())
        .bind(usage.iter().map(|u| u.recipients as i32).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM identity_usage WHERE minute < $1")
            .bind(now - 2 * 24 * 3600 * 1000)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

pub(super) async fn usage_since(pool: &PgPool, since: DateTime<Utc>) -> Result<Vec<Usage>> {
    // Nodes sharing the database record each admission at its time, so that their pace counts exactly: the last
    // two minutes come as recorded, older rows by the minute (the day's budget needs no more).
    let rows = sqlx::query(
        "SELECT identity, CASE WHEN minute >= $2 THEN minute ELSE minute - minute % 60000 END AS at,
                SUM(messages) AS messages, SUM(recipients) AS recipients
         FROM identity_usage WHERE minute >= $1
         GROUP BY identity, at ORDER BY at, identity",
    )
    .bind(ms(since))
    .bind(ms(Utc::now()) - 2 * 60 * 1000)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let identity: String = r.get("identity");
            Usage {
                identity: Some(identity).filter(|i| !i.is_empty()),
                minute: from_ms(r.get("at")),
                messages: r.get::<i64, _>("messages") as u32,
                recipients: r.get::<i64, _>("recipients") as u32,
            }
        })
        .collect())
}

pub(super) async fn deferred_due(mut tx: Tx<'_>, at: DateTime<Utc>) -> Result<u64> {
    let done =
        sqlx::query("UPDATE messages SET next_attempt_at = $1 WHERE status = 'deferred' AND next_attempt_at > $1")
            .bind(ms(at))
            .execute(&mut *tx)
            .await?;
    if done.rows_affected() > 0 {
        tell(&mut tx, Topic::Outbox).await?;
    }
    tx.commit().await?;
    Ok(done.rows_affected())
}

const SUMMARY: &str = "id, status, origin, mail_from, recipients, subject, size, created_at, updated_at, attempts, next_attempt_at, last_error";

fn summary(r: &PgRow) -> Result<MessageSummary> {
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
        attempts: r.get::<i32, _>("attempts") as u32,
        next_attempt_at: r.get::<Option<i64>, _>("next_attempt_at").map(from_ms),
        last_error: r.get("last_error"),
    })
}

fn recipients(r: &PgRow) -> Result<Vec<Recipient>> {
    stored::recipients_from(&r.get::<String, _>("recipients")).map_err(|e| corrupt("recipients", e))
}

pub(super) async fn messages(pool: &PgPool, filter: &MessageFilter) -> Result<Vec<MessageSummary>> {
    let rows = sqlx::query(&format!(
        "SELECT {SUMMARY} FROM messages WHERE ($1::TEXT IS NULL OR status = $1) AND ($2::BIGINT IS NULL OR id < $2)
         ORDER BY id DESC LIMIT $3"
    ))
    .bind(filter.status.map(Status::as_str))
    .bind(filter.before_id)
    .bind(i64::from(filter.limit))
    .fetch_all(pool)
    .await?;
    rows.iter().map(summary).collect()
}

pub(super) async fn message(pool: &PgPool, id: i64) -> Result<Option<MessageDetail>> {
    let Some(row) = sqlx::query(&format!("SELECT {SUMMARY}, message_id, mailbox_of FROM messages WHERE id = $1"))
        .bind(id)
        .fetch_optional(pool)
        .await?
    else {
        return Ok(None);
    };
    let records: Vec<String> = sqlx::query_scalar("SELECT record FROM attempts WHERE message_id = $1 ORDER BY id")
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
    mut tx: Tx<'_>,
    id: i64,
    from: Status,
    recipients: &[Recipient],
    now: DateTime<Utc>,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE messages SET status = 'queued', recipients = $1, next_attempt_at = $2, lifetime_start = $2,
                             updated_at = $2
         WHERE id = $3 AND status = $4",
    )
    .bind(stored::recipients_json(recipients).map_err(|e| corrupt("recipients", e))?)
    .bind(ms(now))
    .bind(id)
    .bind(from.as_str())
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() > 0 {
        tell(&mut tx, Topic::Outbox).await?;
    }
    tx.commit().await?;
    Ok(done.rows_affected() == 1)
}

pub(super) async fn purge(pool: &PgPool, status: Status) -> Result<u64> {
    let done = sqlx::query("DELETE FROM messages WHERE status = $1").bind(status.as_str()).execute(pool).await?;
    Ok(done.rows_affected())
}

pub(super) async fn queue_ages(pool: &PgPool) -> Result<QueueAges> {
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

pub(super) async fn queue_counts(pool: &PgPool) -> Result<Vec<(Status, u64)>> {
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

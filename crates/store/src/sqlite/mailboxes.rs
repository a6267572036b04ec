//! Device accounts' own mailboxes in SQLite: their OAuth authorizations and web sessions.

use super::{devices::to_device, events, from_ms, insert_audit, ms};
use crate::{Device, MailboxRecord, NewDeviceSession, NewEvent, Result};
use chrono::{DateTime, Utc};
use sqlx::{Connection, Row, SqliteConnection, SqlitePool, sqlite::SqliteRow};
use tidings_core::audit::NewAuditEntry;

fn to_record(r: &SqliteRow) -> MailboxRecord {
    let at = |column: &str| r.get::<Option<i64>, _>(column).map(from_ms);
    MailboxRecord {
        device_id: r.get("device_id"),
        mailbox: r.get("mailbox"),
        acquired_at: from_ms(r.get("acquired_at")),
        acquired_by: r.get("acquired_by"),
        refreshed_at: at("refreshed_at"),
        failure: r.get("failure"),
        explanation: r.get("explanation"),
        failed_at: at("failed_at"),
    }
}

pub(super) async fn list(pool: &SqlitePool) -> Result<Vec<MailboxRecord>> {
    let rows = sqlx::query("SELECT * FROM mailbox_authorizations ORDER BY device_id").fetch_all(pool).await?;
    Ok(rows.iter().map(to_record).collect())
}

pub(super) async fn of(pool: &SqlitePool, username: &str) -> Result<Option<(MailboxRecord, Vec<u8>)>> {
    let row = sqlx::query(
        "SELECT m.* FROM mailbox_authorizations m JOIN devices d ON d.id = m.device_id WHERE d.username = ?",
    )
    .bind(username)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|r| (to_record(&r), r.get("sealed_refresh_token"))))
}

pub(super) async fn acquired(
    conn: &mut SqliteConnection,
    device_id: i64,
    mailbox: &str,
    sealed: &[u8],
    at: DateTime<Utc>,
    audit: &NewAuditEntry,
) -> Result<()> {
    let mut tx = conn.begin().await?;
    sqlx::query(
        "INSERT OR REPLACE INTO mailbox_authorizations (device_id, mailbox, sealed_refresh_token, acquired_at, acquired_by)
         VALUES (?, ?, ?, ?, ?)",
    )
    .bind(device_id)
    .bind(mailbox)
    .bind(sealed)
    .bind(ms(at))
    .bind(&audit.actor)
    .execute(&mut *tx)
    .await?;
    insert_audit(&mut tx, audit, at).await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn refreshed(
    conn: &mut SqliteConnection,
    device_id: i64,
    sealed: Option<&[u8]>,
    at: DateTime<Utc>,
) -> Result<()> {
    sqlx::query(
        "UPDATE mailbox_authorizations
         SET sealed_refresh_token = COALESCE(?, sealed_refresh_token), refreshed_at = ?,
             failure = NULL, explanation = NULL, failed_at = NULL
         WHERE device_id = ?",
    )
    .bind(sealed)
    .bind(ms(at))
    .bind(device_id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub(super) async fn failure(
    conn: &mut SqliteConnection,
    device_id: i64,
    reason: &str,
    explanation: &str,
    at: DateTime<Utc>,
    alert: &NewEvent,
) -> Result<()> {
    let mut tx = conn.begin().await?;
    sqlx::query("UPDATE mailbox_authorizations SET failure = ?, explanation = ?, failed_at = ? WHERE device_id = ?")
        .bind(reason)
        .bind(explanation)
        .bind(ms(at))
        .bind(device_id)
        .execute(&mut *tx)
        .await?;
    events::insert(&mut tx, alert).await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn forget(conn: &mut SqliteConnection, device_id: i64, audit: &NewAuditEntry) -> Result<bool> {
    let mut tx = conn.begin().await?;
    let done =
        sqlx::query("DELETE FROM mailbox_authorizations WHERE device_id = ?").bind(device_id).execute(&mut *tx).await?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    insert_audit(&mut tx, audit, Utc::now()).await?;
    tx.commit().await?;
    Ok(true)
}

pub(super) async fn create_session(
    conn: &mut SqliteConnection,
    s: &NewDeviceSession,
    audit: &NewAuditEntry,
) -> Result<()> {
    let mut tx = conn.begin().await?;
    sqlx::query("DELETE FROM device_sessions WHERE expires_at <= ?").bind(ms(s.created_at)).execute(&mut *tx).await?;
    sqlx::query(
        "INSERT INTO device_sessions (token_hash, device_id, csrf, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
    )
    .bind(&s.token_hash)
    .bind(s.device_id)
    .bind(&s.csrf)
    .bind(ms(s.created_at))
    .bind(ms(s.expires_at))
    .execute(&mut *tx)
    .await?;
    insert_audit(&mut tx, audit, s.created_at).await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn session(
    pool: &SqlitePool,
    token_hash: &[u8],
    now: DateTime<Utc>,
) -> Result<Option<(Device, String)>> {
    let row = sqlx::query(
        "SELECT d.*, s.csrf FROM device_sessions s JOIN devices d ON d.id = s.device_id
         WHERE s.token_hash = ? AND s.expires_at > ?",
    )
    .bind(token_hash)
    .bind(ms(now))
    .fetch_optional(pool)
    .await?;
    row.map(|r| Ok((to_device(&r)?.0, r.get("csrf")))).transpose()
}

pub(super) async fn end_session(conn: &mut SqliteConnection, token_hash: &[u8], audit: &NewAuditEntry) -> Result<()> {
    let mut tx = conn.begin().await?;
    sqlx::query("DELETE FROM device_sessions WHERE token_hash = ?").bind(token_hash).execute(&mut *tx).await?;
    insert_audit(&mut tx, audit, Utc::now()).await?;
    tx.commit().await?;
    Ok(())
}

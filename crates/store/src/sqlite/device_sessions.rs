//! Device accounts' web sessions in SQLite (their "My mailbox" page).

use super::{devices::to_device, insert_audit, ms};
use crate::{Device, NewDeviceSession, Result};
use chrono::{DateTime, Utc};
use sqlx::{Connection, Row, SqliteConnection, SqlitePool};
use tidings_core::audit::NewAuditEntry;

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

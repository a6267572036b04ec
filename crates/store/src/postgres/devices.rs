//! Device accounts of the submission gateway, and their web sessions, in PostgreSQL.

use super::{Tx, insert_audit, is_unique_violation};
use crate::{
    Device, Error, NewDevice, NewDeviceSession, Result,
    stored::{corrupt, from_ms, ms},
};
use chrono::{DateTime, Utc};
use sqlx::{PgPool, Row, postgres::PgRow};
use tidings_core::audit::NewAuditEntry;

pub(super) fn to_device(r: &PgRow) -> Result<(Device, String)> {
    let addresses: String = r.get("addresses");
    Ok((
        Device {
            id: r.get("id"),
            username: r.get("username"),
            addresses: serde_json::from_str(&addresses).map_err(|e| corrupt("device addresses", e))?,
            created_at: from_ms(r.get("created_at")),
            created_by: r.get("created_by"),
        },
        r.get("password_hash"),
    ))
}

pub(super) async fn create(mut tx: Tx<'_>, device: &NewDevice, audit: &NewAuditEntry) -> Result<i64> {
    let addresses = serde_json::to_string(&device.addresses).map_err(|e| corrupt("device addresses", e))?;
    let inserted = sqlx::query_scalar(
        "INSERT INTO devices (username, password_hash, addresses, created_at, created_by) VALUES ($1, $2, $3, $4, $5)
         RETURNING id",
    )
    .bind(&device.username)
    .bind(&device.password_hash)
    .bind(addresses)
    .bind(ms(Utc::now()))
    .bind(&audit.actor)
    .fetch_one(&mut *tx)
    .await;
    let id = match inserted {
        Ok(id) => id,
        Err(e) if is_unique_violation(&e) => return Err(Error::DuplicateAccount(device.username.clone())),
        Err(e) => return Err(e.into()),
    };
    insert_audit(&mut tx, audit, Utc::now()).await?;
    tx.commit().await?;
    Ok(id)
}

pub(super) async fn list(pool: &PgPool) -> Result<Vec<Device>> {
    let rows = sqlx::query("SELECT * FROM devices ORDER BY lower(username)").fetch_all(pool).await?;
    rows.iter().map(|r| to_device(r).map(|(d, _)| d)).collect()
}

pub(super) async fn for_login(pool: &PgPool, username: &str) -> Result<Option<(Device, String)>> {
    let row = sqlx::query("SELECT * FROM devices WHERE lower(username) = lower($1)")
        .bind(username)
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(to_device).transpose()
}

pub(super) async fn delete(mut tx: Tx<'_>, id: i64, audit: &NewAuditEntry) -> Result<bool> {
    let done = sqlx::query("DELETE FROM devices WHERE id = $1").bind(id).execute(&mut *tx).await?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    insert_audit(&mut tx, audit, Utc::now()).await?;
    tx.commit().await?;
    Ok(true)
}

pub(super) async fn create_session(mut tx: Tx<'_>, s: &NewDeviceSession, audit: &NewAuditEntry) -> Result<()> {
    sqlx::query("DELETE FROM device_sessions WHERE expires_at <= $1").bind(ms(s.created_at)).execute(&mut *tx).await?;
    sqlx::query(
        "INSERT INTO device_sessions (token_hash, device_id, csrf, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
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

pub(super) async fn session(pool: &PgPool, token_hash: &[u8], now: DateTime<Utc>) -> Result<Option<(Device, String)>> {
    let row = sqlx::query(
        "SELECT d.*, s.csrf FROM device_sessions s JOIN devices d ON d.id = s.device_id
         WHERE s.token_hash = $1 AND s.expires_at > $2",
    )
    .bind(token_hash)
    .bind(ms(now))
    .fetch_optional(pool)
    .await?;
    row.map(|r| Ok((to_device(&r)?.0, r.get("csrf")))).transpose()
}

pub(super) async fn end_session(mut tx: Tx<'_>, token_hash: &[u8], audit: &NewAuditEntry) -> Result<()> {
    sqlx::query("DELETE FROM device_sessions WHERE token_hash = $1").bind(token_hash).execute(&mut *tx).await?;
    insert_audit(&mut tx, audit, Utc::now()).await?;
    tx.commit().await?;
    Ok(())
}

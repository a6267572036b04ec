//! Device accounts of the submission gateway in SQLite.

use super::{corrupt, from_ms, insert_audit, is_unique_violation, ms};
use crate::{Device, Error, NewDevice, Result};
use chrono::Utc;
use sqlx::{Connection, Row, SqliteConnection, SqlitePool, sqlite::SqliteRow};
use tidings_core::audit::NewAuditEntry;

pub(super) fn to_device(r: &SqliteRow) -> Result<(Device, String)> {
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

pub(super) async fn create(conn: &mut SqliteConnection, device: &NewDevice, audit: &NewAuditEntry) -> Result<i64> {
    let mut tx = conn.begin().await?;
    let addresses = serde_json::to_string(&device.addresses).map_err(|e| corrupt("device addresses", e))?;
    let inserted = sqlx::query(
        "INSERT INTO devices (username, password_hash, addresses, created_at, created_by) VALUES (?, ?, ?, ?, ?)",
    )
    .bind(&device.username)
    .bind(&device.password_hash)
    .bind(addresses)
    .bind(ms(Utc::now()))
    .bind(&audit.actor)
    .execute(&mut *tx)
    .await;
    let id = match inserted {
        Ok(done) => done.last_insert_rowid(),
        Err(e) if is_unique_violation(&e) => return Err(Error::DuplicateAccount(device.username.clone())),
        Err(e) => return Err(e.into()),
    };
    insert_audit(&mut tx, audit, Utc::now()).await?;
    tx.commit().await?;
    Ok(id)
}

pub(super) async fn list(pool: &SqlitePool) -> Result<Vec<Device>> {
    let rows = sqlx::query("SELECT * FROM devices ORDER BY username").fetch_all(pool).await?;
    rows.iter().map(|r| to_device(r).map(|(d, _)| d)).collect()
}

pub(super) async fn for_login(pool: &SqlitePool, username: &str) -> Result<Option<(Device, String)>> {
    let row = sqlx::query("SELECT * FROM devices WHERE username = ?").bind(username).fetch_optional(pool).await?;
    row.as_ref().map(to_device).transpose()
}

pub(super) async fn delete(conn: &mut SqliteConnection, id: i64, audit: &NewAuditEntry) -> Result<bool> {
    let mut tx = conn.begin().await?;
    let done = sqlx::query("DELETE FROM devices WHERE id = ?").bind(id).execute(&mut *tx).await?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    insert_audit(&mut tx, audit, Utc::now()).await?;
    tx.commit().await?;
    Ok(true)
}

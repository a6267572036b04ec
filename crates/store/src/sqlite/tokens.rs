//! API tokens in SQLite: only a token's SHA-256 is stored.

use super::{corrupt, insert_audit};
use crate::{ApiToken, Result};
use chrono::{DateTime, Utc};
use sqlx::{Connection, Row, SqliteConnection, SqlitePool, sqlite::SqliteRow};
use tidings_core::{account::Role, audit::NewAuditEntry};

const COLUMNS: &str = "id, name, role, created_at, created_by, last_used_at, revoked_at";

pub(super) fn token(r: &SqliteRow) -> Result<ApiToken> {
    let role: String = r.get("role");
    Ok(ApiToken {
        id: r.get("id"),
        name: r.get("name"),
        role: role.parse::<Role>().map_err(|why| corrupt("token role", why))?,
        created_at: r.get("created_at"),
        created_by: r.get("created_by"),
        last_used_at: r.get("last_used_at"),
        revoked_at: r.get("revoked_at"),
    })
}

pub(super) async fn create(
    conn: &mut SqliteConnection,
    name: &str,
    role: Role,
    hash: &[u8],
    audit: &NewAuditEntry,
) -> Result<i64> {
    let now = Utc::now();
    let mut tx = conn.begin().await?;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO api_tokens (name, role, token_hash, created_at, created_by) VALUES (?, ?, ?, ?, ?) RETURNING id",
    )
    .bind(name)
    .bind(role.as_str())
    .bind(hash)
    .bind(now)
    .bind(&audit.actor)
    .fetch_one(&mut *tx)
    .await?;
    insert_audit(&mut tx, audit, now).await?;
    tx.commit().await?;
    Ok(id)
}

pub(super) async fn by_hash(pool: &SqlitePool, hash: &[u8]) -> Result<Option<ApiToken>> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM api_tokens WHERE token_hash = ?"))
        .bind(hash)
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(token).transpose()
}

pub(super) async fn list(pool: &SqlitePool) -> Result<Vec<ApiToken>> {
    let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM api_tokens ORDER BY id")).fetch_all(pool).await?;
    rows.iter().map(token).collect()
}

pub(super) async fn revoke(conn: &mut SqliteConnection, id: i64, audit: &NewAuditEntry) -> Result<bool> {
    let now = Utc::now();
    let mut tx = conn.begin().await?;
    let done = sqlx::query("UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    insert_audit(&mut tx, audit, now).await?;
    tx.commit().await?;
    Ok(true)
}

pub(super) async fn touch(conn: &mut SqliteConnection, id: i64, at: DateTime<Utc>) -> Result<()> {
    sqlx::query("UPDATE api_tokens SET last_used_at = ? WHERE id = ?").bind(at).bind(id).execute(&mut *conn).await?;
    Ok(())
}

//! API tokens in PostgreSQL: only a token's SHA-256 is stored.

use super::{Tx, insert_audit};
use crate::{
    ApiToken, Result,
    stored::{corrupt, from_ms, ms},
};
use chrono::{DateTime, Utc};
use sqlx::{PgPool, Row, postgres::PgRow};
use tidings_core::{account::Role, audit::NewAuditEntry};

const COLUMNS: &str = "id, name, role, created_at, created_by, last_used_at, revoked_at";

pub(super) fn token(r: &PgRow) -> Result<ApiToken> {
    let role: String = r.get("role");
    let at = |column: &str| r.get::<Option<i64>, _>(column).map(from_ms);
    Ok(ApiToken {
        id: r.get("id"),
        name: r.get("name"),
        role: role.parse::<Role>().map_err(|why| corrupt("token role", why))?,
        created_at: from_ms(r.get("created_at")),
        created_by: r.get("created_by"),
        last_used_at: at("last_used_at"),
        revoked_at: at("revoked_at"),
    })
}

pub(super) async fn create(mut tx: Tx<'_>, name: &str, role: Role, hash: &[u8], audit: &NewAuditEntry) -> Result<i64> {
    let now = Utc::now();
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO api_tokens (name, role, token_hash, created_at, created_by) VALUES ($1, $2, $3, $4, $5)
         RETURNING id",
    )
    .bind(name)
    .bind(role.as_str())
    .bind(hash)
    .bind(ms(now))
    .bind(&audit.actor)
    .fetch_one(&mut *tx)
    .await?;
    insert_audit(&mut tx, audit, now).await?;
    tx.commit().await?;
    Ok(id)
}

pub(super) async fn by_hash(pool: &PgPool, hash: &[u8]) -> Result<Option<ApiToken>> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM api_tokens WHERE token_hash = $1"))
        .bind(hash)
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(token).transpose()
}

pub(super) async fn list(pool: &PgPool) -> Result<Vec<ApiToken>> {
    let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM api_tokens ORDER BY id")).fetch_all(pool).await?;
    rows.iter().map(token).collect()
}

pub(super) async fn revoke(mut tx: Tx<'_>, id: i64, audit: &NewAuditEntry) -> Result<bool> {
    let now = Utc::now();
    let done = sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
        .bind(ms(now))
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

pub(super) async fn touch(pool: &PgPool, id: i64, at: DateTime<Utc>) -> Result<()> {
    sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2").bind(ms(at)).bind(id).execute(pool).await?;
    Ok(())
}

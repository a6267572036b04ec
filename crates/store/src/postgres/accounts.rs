//! Accounts and browser sessions in PostgreSQL.

use super::{Tx, insert_audit, is_unique_violation};
use crate::{
    Account, AccountChange, Error, LoginRecord, NewAccount, NewSession, Result, SessionRecord,
    stored::{corrupt, from_ms, locale, locale_text, ms},
};
use chrono::{DateTime, Utc};
use sqlx::{PgPool, Row, postgres::PgRow};
use tidings_core::{account::Role, audit::NewAuditEntry};

const COLUMNS: &str = "a.id, a.username, a.role, a.created_at, a.locale, a.locked_until, a.last_login_at";

pub(super) fn to_account(r: &PgRow) -> Result<Account> {
    let role: String = r.get("role");
    Ok(Account {
        id: r.get("id"),
        username: r.get("username"),
        role: role.parse::<Role>().map_err(|why| corrupt("account role", why))?,
        created_at: from_ms(r.get("created_at")),
        locale: locale(r.get("locale"))?,
        locked_until: r.get::<Option<i64>, _>("locked_until").map(from_ms),
        last_login_at: r.get::<Option<i64>, _>("last_login_at").map(from_ms),
    })
}

pub(super) async fn create(mut tx: Tx<'_>, account: &NewAccount, audit: &NewAuditEntry) -> Result<i64> {
    let at = Utc::now();
    let inserted = sqlx::query_scalar(
        "INSERT INTO accounts (username, password_hash, role, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
    )
    .bind(&account.username)
    .bind(&account.password_hash)
    .bind(account.role.as_str())
    .bind(ms(at))
    .fetch_one(&mut *tx)
    .await;
    let id = match inserted {
        Ok(id) => id,
        Err(e) if is_unique_violation(&e) => return Err(Error::DuplicateAccount(account.username.clone())),
        Err(e) => return Err(e.into()),
    };
    insert_audit(&mut tx, audit, at).await?;
    tx.commit().await?;
    Ok(id)
}

pub(super) async fn list(pool: &PgPool) -> Result<Vec<Account>> {
    let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM accounts a ORDER BY a.id")).fetch_all(pool).await?;
    rows.iter().map(to_account).collect()
}

pub(super) async fn for_login(pool: &PgPool, username: &str) -> Result<Option<LoginRecord>> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS}, a.password_hash, a.failed_logins FROM accounts a WHERE lower(a.username) = lower($1)"
    ))
    .bind(username)
    .fetch_optional(pool)
    .await?;
    row.map(|r| {
        Ok(LoginRecord {
            account: to_account(&r)?,
            password_hash: r.get("password_hash"),
            failed_logins: r.get::<i32, _>("failed_logins") as u32,
        })
    })
    .transpose()
}

pub(super) async fn login_attempt(
    pool: &PgPool,
    id: i64,
    max_failures: u32,
    now: DateTime<Utc>,
) -> Result<Option<u32>> {
    // One statement: the row lock makes concurrent attempts, on any node, count one after the other. A lockout
    // that has ended clears the count it was reached with.
    let count: Option<i32> = sqlx::query_scalar(
        "UPDATE accounts SET
             failed_logins = (CASE WHEN locked_until <= $1 THEN 0 ELSE failed_logins END) + 1,
             locked_until = CASE WHEN locked_until <= $1 THEN NULL ELSE locked_until END
         WHERE id = $2 AND (locked_until IS NULL OR locked_until <= $1)
           AND (CASE WHEN locked_until <= $1 THEN 0 ELSE failed_logins END) < $3
         RETURNING failed_logins",
    )
    .bind(ms(now))
    .bind(id)
    .bind(i64::from(max_failures))
    .fetch_optional(pool)
    .await?;
    Ok(count.map(|n| n as u32))
}

pub(super) async fn login_failed(
    mut tx: Tx<'_>,
    id: i64,
    lock_until: Option<DateTime<Utc>>,
    audit: &NewAuditEntry,
) -> Result<()> {
    sqlx::query("UPDATE accounts SET locked_until = COALESCE($1, locked_until) WHERE id = $2")
        .bind(lock_until.map(ms))
        .bind(id)
        .execute(&mut *tx)
        .await?;
    insert_audit(&mut tx, audit, Utc::now()).await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn login_succeeded(mut tx: Tx<'_>, session: &NewSession, audit: &NewAuditEntry) -> Result<()> {
    let at = ms(session.created_at);
    sqlx::query("UPDATE accounts SET failed_logins = 0, locked_until = NULL, last_login_at = $1 WHERE id = $2")
        .bind(at)
        .bind(session.account_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM sessions WHERE expires_at <= $1").bind(at).execute(&mut *tx).await?;
    sqlx::query(
        "INSERT INTO sessions (token_hash, account_id, csrf, created_at, last_seen_at, expires_at)
         VALUES ($1, $2, $3, $4, $4, $5)",
    )
    .bind(&session.token_hash)
    .bind(session.account_id)
    .bind(&session.csrf)
    .bind(at)
    .bind(ms(session.expires_at))
    .execute(&mut *tx)
    .await?;
    insert_audit(&mut tx, audit, session.created_at).await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn session(
    pool: &PgPool,
    token_hash: &[u8],
    now: DateTime<Utc>,
    extend_to: DateTime<Utc>,
    absolute_max: chrono::Duration,
) -> Result<Option<SessionRecord>> {
    // Sliding expiry, never beyond the absolute limit from creation; the account in the same statement.
    let row = sqlx::query(&format!(
        "WITH s AS (
             UPDATE sessions SET last_seen_at = $1, expires_at = LEAST($2, created_at + $3)
             WHERE token_hash = $4 AND expires_at > $1
             RETURNING account_id, csrf, expires_at)
         SELECT {COLUMNS}, s.csrf, s.expires_at AS session_expires_at FROM s JOIN accounts a ON a.id = s.account_id"
    ))
    .bind(ms(now))
    .bind(ms(extend_to))
    .bind(absolute_max.num_milliseconds())
    .bind(token_hash)
    .fetch_optional(pool)
    .await?;
    row.map(|r| {
        Ok(SessionRecord {
            account: to_account(&r)?,
            csrf: r.get("csrf"),
            expires_at: from_ms(r.get("session_expires_at")),
        })
    })
    .transpose()
}

pub(super) async fn end_session(mut tx: Tx<'_>, token_hash: &[u8], audit: Option<&NewAuditEntry>) -> Result<()> {
    sqlx::query("DELETE FROM sessions WHERE token_hash = $1").bind(token_hash).execute(&mut *tx).await?;
    if let Some(audit) = audit {
        insert_audit(&mut tx, audit, Utc::now()).await?;
    }
    tx.commit().await?;
    Ok(())
}

pub(super) async fn change(mut tx: Tx<'_>, id: i64, change: &AccountChange, audit: &NewAuditEntry) -> Result<bool> {
    let updated = sqlx::query(
        "UPDATE accounts SET role = COALESCE($1, role), password_hash = COALESCE($2, password_hash),
             locale = CASE WHEN $3 THEN $4 ELSE locale END,
             failed_logins = CASE WHEN $5 THEN 0 ELSE failed_logins END,
             locked_until = CASE WHEN $5 THEN NULL ELSE locked_until END
         WHERE id = $6",
    )
    .bind(change.role.map(Role::as_str))
    .bind(&change.password_hash)
    .bind(change.locale.is_some())
    .bind(change.locale.flatten().map(locale_text))
    .bind(change.unlock)
    .bind(id)
    .execute(&mut *tx)
    .await?;
    if updated.rows_affected() == 0 {
        return Ok(false);
    }
    if change.password_hash.is_some() {
        // A new password ends the account's sessions on every node.
        sqlx::query("DELETE FROM sessions WHERE account_id = $1").bind(id).execute(&mut *tx).await?;
    }
    insert_audit(&mut tx, audit, Utc::now()).await?;
    tx.commit().await?;
    Ok(true)
}

pub(super) async fn delete(mut tx: Tx<'_>, id: i64, audit: &NewAuditEntry) -> Result<bool> {
    let deleted = sqlx::query("DELETE FROM accounts WHERE id = $1").bind(id).execute(&mut *tx).await?;
    if deleted.rows_affected() == 0 {
        return Ok(false);
    }
    insert_audit(&mut tx, audit, Utc::now()).await?;
    tx.commit().await?;
    Ok(true)
}

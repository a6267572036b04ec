//! Accounts and browser sessions in SQLite.

use super::{corrupt, from_ms, insert_audit, ms};
use crate::stored::{locale, locale_text};
use crate::{Account, AccountChange, LoginRecord, NewSession, Result, SessionRecord};
use chrono::{DateTime, Utc};
use sqlx::{Connection, Row, SqliteConnection, SqlitePool, sqlite::SqliteRow};
use tidings_core::{account::Role, audit::NewAuditEntry};

const COLUMNS: &str = "a.id, a.username, a.role, a.created_at, a.locale, a.locked_until, a.last_login_at";

pub(super) fn to_account(r: &SqliteRow) -> Result<Account> {
    let role: String = r.get("role");
    let role: Role = role.parse().map_err(|why| corrupt("account role", why))?;
    Ok(Account {
        id: r.get("id"),
        username: r.get("username"),
        role,
        created_at: r.get("created_at"),
        locale: locale(r.get("locale"))?,
        locked_until: r.get::<Option<i64>, _>("locked_until").map(from_ms),
        last_login_at: r.get::<Option<i64>, _>("last_login_at").map(from_ms),
    })
}

pub(super) async fn list(pool: &SqlitePool) -> Result<Vec<Account>> {
    let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM accounts a ORDER BY a.id")).fetch_all(pool).await?;
    rows.iter().map(to_account).collect()
}

pub(super) async fn for_login(pool: &SqlitePool, username: &str) -> Result<Option<LoginRecord>> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS}, a.password_hash, a.failed_logins FROM accounts a WHERE a.username = ?"
    ))
    .bind(username)
    .fetch_optional(pool)
    .await?;
    row.map(|r| {
        Ok(LoginRecord {
            account: to_account(&r)?,
            password_hash: r.get("password_hash"),
            failed_logins: r.get::<i64, _>("failed_logins") as u32,
        })
    })
    .transpose()
}

pub(super) async fn login_attempt(
    conn: &mut SqliteConnection,
    id: i64,
    max_failures: u32,
    now: DateTime<Utc>,
) -> Result<Option<u32>> {
    // A lockout that has ended clears the count it was reached with.
    let count: Option<i64> = sqlx::query_scalar(
        "UPDATE accounts SET
             failed_logins = (CASE WHEN locked_until <= ?1 THEN 0 ELSE failed_logins END) + 1,
             locked_until = CASE WHEN locked_until <= ?1 THEN NULL ELSE locked_until END
         WHERE id = ?2 AND (locked_until IS NULL OR locked_until <= ?1)
           AND (CASE WHEN locked_until <= ?1 THEN 0 ELSE failed_logins END) < ?3
         RETURNING failed_logins",
    )
    .bind(ms(now))
    .bind(id)
    .bind(i64::from(max_failures))
    .fetch_optional(&mut *conn)
    .await?;
    Ok(count.map(|n| n as u32))
}

pub(super) async fn login_failed(
    conn: &mut SqliteConnection,
    id: i64,
    lock_until: Option<DateTime<Utc>>,
    audit: &NewAuditEntry,
) -> Result<()> {
    let mut tx = conn.begin().await?;
    sqlx::query("UPDATE accounts SET locked_until = COALESCE(?, locked_until) WHERE id = ?")
        .bind(lock_until.map(ms))
        .bind(id)
        .execute(&mut *tx)
        .await?;
    insert_audit(&mut tx, audit, Utc::now()).await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn login_succeeded(
    conn: &mut SqliteConnection,
    session: &NewSession,
    audit: &NewAuditEntry,
) -> Result<()> {
    let mut tx = conn.begin().await?;
    let at = ms(session.created_at);
    sqlx::query("UPDATE accounts SET failed_logins = 0, locked_until = NULL, last_login_at = ? WHERE id = ?")
        .bind(at)
        .bind(session.account_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM sessions WHERE expires_at <= ?").bind(at).execute(&mut *tx).await?;
    sqlx::query(
        "INSERT INTO sessions (token_hash, account_id, csrf, created_at, last_seen_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(&session.token_hash)
    .bind(session.account_id)
    .bind(&session.csrf)
    .bind(at)
    .bind(at)
    .bind(ms(session.expires_at))
    .execute(&mut *tx)
    .await?;
    insert_audit(&mut tx, audit, session.created_at).await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn session(
    conn: &mut SqliteConnection,
    token_hash: &[u8],
    now: DateTime<Utc>,
    extend_to: DateTime<Utc>,
    absolute_max: chrono::Duration,
) -> Result<Option<SessionRecord>> {
    // Sliding expiry, never beyond the absolute limit from creation.
    let row = sqlx::query(
        "UPDATE sessions SET last_seen_at = ?1, expires_at = MIN(?2, created_at + ?3)
         WHERE token_hash = ?4 AND expires_at > ?1
         RETURNING account_id, csrf, expires_at",
    )
    .bind(ms(now))
    .bind(ms(extend_to))
    .bind(absolute_max.num_milliseconds())
    .bind(token_hash)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let account_id: i64 = row.get("account_id");
    let account = sqlx::query(&format!("SELECT {COLUMNS} FROM accounts a WHERE a.id = ?"))
        .bind(account_id)
        .fetch_optional(&mut *conn)
        .await?;
    let Some(account) = account else { return Ok(None) };
    Ok(Some(SessionRecord {
        account: to_account(&account)?,
        csrf: row.get("csrf"),
        expires_at: from_ms(row.get("expires_at")),
    }))
}

pub(super) async fn end_session(
    conn: &mut SqliteConnection,
    token_hash: &[u8],
    audit: Option<&NewAuditEntry>,
) -> Result<()> {
    let mut tx = conn.begin().await?;
    sqlx::query("DELETE FROM sessions WHERE token_hash = ?").bind(token_hash).execute(&mut *tx).await?;
    if let Some(audit) = audit {
        insert_audit(&mut tx, audit, Utc::now()).await?;
    }
    tx.commit().await?;
    Ok(())
}

pub(super) async fn change(
    conn: &mut SqliteConnection,
    id: i64,
    change: &AccountChange,
    audit: &NewAuditEntry,
) -> Result<bool> {
    let mut tx = conn.begin().await?;
    let updated = sqlx::query(
        "UPDATE accounts SET role = COALESCE(?, role), password_hash = COALESCE(?, password_hash),
             locale = CASE WHEN ? THEN ? ELSE locale END,
             failed_logins = CASE WHEN ? THEN 0 ELSE failed_logins END,
             locked_until = CASE WHEN ? THEN NULL ELSE locked_until END
         WHERE id = ?",
    )
    .bind(change.role.map(Role::as_str))
    .bind(&change.password_hash)
    .bind(change.locale.is_some())
    .bind(change.locale.flatten().map(locale_text))
    .bind(change.unlock)
    .bind(change.unlock)
    .bind(id)
    .execute(&mut *tx)
    .await?;
    if updated.rows_affected() == 0 {
        return Ok(false);
    }
    if change.password_hash.is_some() {
        // A new password ends the account's sessions (except none: the caller signs in again).
        sqlx::query("DELETE FROM sessions WHERE account_id = ?").bind(id).execute(&mut *tx).await?;
    }
    insert_audit(&mut tx, audit, Utc::now()).await?;
    tx.commit().await?;
    Ok(true)
}

pub(super) async fn delete(conn: &mut SqliteConnection, id: i64, audit: &NewAuditEntry) -> Result<bool> {
    let mut tx = conn.begin().await?;
    let deleted = sqlx::query("DELETE FROM accounts WHERE id = ?").bind(id).execute(&mut *tx).await?;
    if deleted.rows_affected() == 0 {
        return Ok(false);
    }
    insert_audit(&mut tx, audit, Utc::now()).await?;
    tx.commit().await?;
    Ok(true)
}

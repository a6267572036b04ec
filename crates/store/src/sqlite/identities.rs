//! Accounts, API tokens and device accounts as a whole, with their hashes: what a cluster's follower takes from
//! its primary, under the primary's ids.

use super::{accounts, corrupt, devices, insert_audit, ms, tokens};
use crate::{Identities, Result};
use chrono::Utc;
use sqlx::{Connection, Row, SqliteConnection, SqlitePool};
use tidings_core::audit::NewAuditEntry;

pub(super) async fn all(pool: &SqlitePool) -> Result<Identities> {
    let mut identities = Identities::default();
    for r in sqlx::query("SELECT a.*, a.password_hash FROM accounts a ORDER BY a.id").fetch_all(pool).await? {
        identities.accounts.push((accounts::to_account(&r)?, r.get("password_hash")));
    }
    for r in sqlx::query("SELECT * FROM api_tokens ORDER BY id").fetch_all(pool).await? {
        identities.api_tokens.push((tokens::token(&r)?, r.get("token_hash")));
    }
    for r in sqlx::query("SELECT * FROM devices ORDER BY id").fetch_all(pool).await? {
        identities.devices.push(devices::to_device(&r)?);
    }
    Ok(identities)
}

/// The ids as a JSON array, for `NOT IN (SELECT value FROM json_each(?))`.
fn ids(ids: impl Iterator<Item = i64>) -> String {
    serde_json::to_string(&ids.collect::<Vec<_>>()).unwrap_or_else(|_| "[]".into())
}

pub(super) async fn replace(conn: &mut SqliteConnection, with: &Identities, audit: &NewAuditEntry) -> Result<()> {
    let mut tx = conn.begin().await?;
    // Names move to placeholders first, so that two accounts swapping names never meet the unique index.
    let keep = ids(with.accounts.iter().map(|(a, _)| a.id));
    sqlx::query("DELETE FROM accounts WHERE id NOT IN (SELECT value FROM json_each(?))")
        .bind(&keep)
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE accounts SET username = '~' || id").execute(&mut *tx).await?;
    for (a, hash) in &with.accounts {
        sqlx::query(
            "INSERT INTO accounts (id, username, password_hash, role, created_at, locale) VALUES (?, ?, ?, ?, ?, ?)
             ON CONFLICT (id) DO UPDATE SET username = excluded.username, password_hash = excluded.password_hash,
                 role = excluded.role, locale = excluded.locale",
        )
        .bind(a.id)
        .bind(&a.username)
        .bind(hash)
        .bind(a.role.as_str())
        .bind(a.created_at)
        .bind(a.locale.map(crate::stored::locale_text))
        .execute(&mut *tx)
        .await?;
    }
    let keep = ids(with.api_tokens.iter().map(|(t, _)| t.id));
    sqlx::query("DELETE FROM api_tokens WHERE id NOT IN (SELECT value FROM json_each(?))")
        .bind(&keep)
        .execute(&mut *tx)
        .await?;
    for (t, hash) in &with.api_tokens {
        sqlx::query(
            "INSERT INTO api_tokens (id, name, role, token_hash, created_at, created_by, revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (id) DO UPDATE SET name = excluded.name, role = excluded.role, token_hash = excluded.token_hash,
                 revoked_at = excluded.revoked_at",
        )
        .bind(t.id)
        .bind(&t.name)
        .bind(t.role.as_str())
        .bind(hash)
        .bind(t.created_at)
        .bind(&t.created_by)
        .bind(t.revoked_at)
        .execute(&mut *tx)
        .await?;
    }
    let keep = ids(with.devices.iter().map(|(d, _)| d.id));
    sqlx::query("DELETE FROM devices WHERE id NOT IN (SELECT value FROM json_each(?))")
        .bind(&keep)
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE devices SET username = '~' || id").execute(&mut *tx).await?;
    for (d, hash) in &with.devices {
        let addresses = serde_json::to_string(&d.addresses).map_err(|e| corrupt("device addresses", e))?;
        sqlx::query(
            "INSERT INTO devices (id, username, password_hash, addresses, created_at, created_by) VALUES (?, ?, ?, ?, ?, ?)
             ON CONFLICT (id) DO UPDATE SET username = excluded.username, password_hash = excluded.password_hash,
                 addresses = excluded.addresses",
        )
        .bind(d.id)
        .bind(&d.username)
        .bind(hash)
        .bind(addresses)
        .bind(ms(d.created_at))
        .bind(&d.created_by)
        .execute(&mut *tx)
        .await?;
    }
    insert_audit(&mut tx, audit, Utc::now()).await?;
    tx.commit().await?;
    Ok(())
}

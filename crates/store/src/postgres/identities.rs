//! Accounts, API tokens and device accounts as a whole, with their hashes, in PostgreSQL.

use super::{Tx, accounts, devices, identity_follows, insert_audit, tokens};
use crate::{
    Identities, Result,
    stored::{corrupt, locale_text, ms},
};
use chrono::Utc;
use sqlx::{PgPool, Row};
use tidings_core::audit::NewAuditEntry;

pub(super) async fn all(pool: &PgPool) -> Result<Identities> {
    let mut identities = Identities::default();
    for r in sqlx::query("SELECT * FROM accounts a ORDER BY a.id").fetch_all(pool).await? {
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

pub(super) async fn replace(mut tx: Tx<'_>, with: &Identities, audit: &NewAuditEntry) -> Result<()> {
    // Names move to placeholders first, so that two accounts swapping names never meet the unique index.
    let keep: Vec<i64> = with.accounts.iter().map(|(a, _)| a.id).collect();
    sqlx::query("DELETE FROM accounts WHERE NOT (id = ANY($1))").bind(&keep).execute(&mut *tx).await?;
    sqlx::query("UPDATE accounts SET username = '~' || id").execute(&mut *tx).await?;
    for (a, hash) in &with.accounts {
        sqlx::query(
            "INSERT INTO accounts (id, username, password_hash, role, created_at, locale) VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (id) DO UPDATE SET username = excluded.username, password_hash = excluded.password_hash,
                 role = excluded.role, locale = excluded.locale",
        )
        .bind(a.id)
        .bind(&a.username)
        .bind(hash)
        .bind(a.role.as_str())
        .bind(ms(a.created_at))
        .bind(a.locale.map(locale_text))
        .execute(&mut *tx)
        .await?;
    }
    let keep: Vec<i64> = with.api_tokens.iter().map(|(t, _)| t.id).collect();
    sqlx::query("DELETE FROM api_tokens WHERE NOT (id = ANY($1))").bind(&keep).execute(&mut *tx).await?;
    for (t, hash) in &with.api_tokens {
        sqlx::query(
            "INSERT INTO api_tokens (id, name, role, token_hash, created_at, created_by, revoked_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (id) DO UPDATE SET name = excluded.name, role = excluded.role,
                 token_hash = excluded.token_hash, revoked_at = excluded.revoked_at",
        )
        .bind(t.id)
        .bind(&t.name)
        .bind(t.role.as_str())
        .bind(hash)
        .bind(ms(t.created_at))
        .bind(&t.created_by)
        .bind(t.revoked_at.map(ms))
        .execute(&mut *tx)
        .await?;
    }
    let keep: Vec<i64> = with.devices.iter().map(|(d, _)| d.id).collect();
    sqlx::query("DELETE FROM devices WHERE NOT (id = ANY($1))").bind(&keep).execute(&mut *tx).await?;
    sqlx::query("UPDATE devices SET username = '~' || id").execute(&mut *tx).await?;
    for (d, hash) in &with.devices {
        let addresses = serde_json::to_string(&d.addresses).map_err(|e| corrupt("device addresses", e))?;
        sqlx::query(
            "INSERT INTO devices (id, username, password_hash, addresses, created_at, created_by)
             VALUES ($1, $2, $3, $4, $5, $6)
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
    for table in ["accounts", "api_tokens", "devices"] {
        identity_follows(&mut tx, table).await?;
    }
    insert_audit(&mut tx, audit, Utc::now()).await?;
    tx.commit().await?;
    Ok(())
}

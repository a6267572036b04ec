//! OAuth authorizations in SQLite: one row per owner (`relay`, `device:<id>`), the refresh token sealed in it;
//! and the sign-ins under way that lead to them.

use super::{events, from_ms, insert_audit, ms};
use crate::stored::owner_key;
use crate::{Authorization, Grant, NewEvent, Owner, PendingSignIn, Result};
use chrono::{DateTime, Utc};
use sqlx::{Connection, Row, SqliteConnection, SqlitePool, sqlite::SqliteRow};
use tidings_core::audit::NewAuditEntry;

fn to_record(r: &SqliteRow) -> Authorization {
    let at = |column: &str| r.get::<Option<i64>, _>(column).map(from_ms);
    let failure: Option<String> = r.get("failure");
    let explanation: Option<String> = r.get("explanation");
    Authorization {
        owner: Owner::of_device(r.get("device_id")),
        account: r.get("account"),
        client_credentials: r.get::<i64, _>("client_credentials") != 0,
        acquired_at: at("acquired_at"),
        acquired_by: r.get("acquired_by"),
        refreshed_at: at("refreshed_at"),
        failure: failure.map(|f| (f, explanation.unwrap_or_default())),
        failed_at: at("failed_at"),
    }
}

pub(super) async fn one(pool: &SqlitePool, owner: Owner) -> Result<Option<(Authorization, Option<Vec<u8>>)>> {
    let row =
        sqlx::query("SELECT * FROM authorizations WHERE owner = ?").bind(owner_key(owner)).fetch_optional(pool).await?;
    Ok(row.map(|r| (to_record(&r), r.get("sealed_refresh_token"))))
}

pub(super) async fn all(pool: &SqlitePool) -> Result<Vec<Authorization>> {
    let rows =
        sqlx::query("SELECT * FROM authorizations ORDER BY device_id IS NOT NULL, device_id").fetch_all(pool).await?;
    Ok(rows.iter().map(to_record).collect())
}

pub(super) async fn granted(
    conn: &mut SqliteConnection,
    owner: Owner,
    grant: Grant<'_>,
    at: DateTime<Utc>,
) -> Result<()> {
    let mut tx = conn.begin().await?;
    match grant {
        Grant::Acquired { sealed_refresh_token, account, client_credentials, audit } => {
            sqlx::query(
                "INSERT OR REPLACE INTO authorizations
                     (owner, device_id, account, client_credentials, sealed_refresh_token, acquired_at, acquired_by)
                 VALUES (?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(owner_key(owner))
            .bind(owner.device_id())
            .bind(account)
            .bind(client_credentials)
            .bind(sealed_refresh_token)
            .bind(ms(at))
            .bind(&audit.actor)
            .execute(&mut *tx)
            .await?;
            insert_audit(&mut tx, audit, at).await?;
        }
        Grant::Refreshed { sealed_refresh_token } => {
            sqlx::query(
                "UPDATE authorizations
                 SET sealed_refresh_token = COALESCE(?, sealed_refresh_token), refreshed_at = ?,
                     failure = NULL, explanation = NULL, failed_at = NULL
                 WHERE owner = ?",
            )
            .bind(sealed_refresh_token)
            .bind(ms(at))
            .bind(owner_key(owner))
            .execute(&mut *tx)
            .await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

pub(super) async fn failed(
    conn: &mut SqliteConnection,
    owner: Owner,
    reason: &str,
    explanation: &str,
    at: DateTime<Utc>,
    alert: &NewEvent,
) -> Result<()> {
    let mut tx = conn.begin().await?;
    sqlx::query("UPDATE authorizations SET failure = ?, explanation = ?, failed_at = ? WHERE owner = ?")
        .bind(reason)
        .bind(explanation)
        .bind(ms(at))
        .bind(owner_key(owner))
        .execute(&mut *tx)
        .await?;
    events::insert(&mut tx, alert).await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn forget(conn: &mut SqliteConnection, owner: Owner, audit: &NewAuditEntry) -> Result<bool> {
    let mut tx = conn.begin().await?;
    let done =
        sqlx::query("DELETE FROM authorizations WHERE owner = ?").bind(owner_key(owner)).execute(&mut *tx).await?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    insert_audit(&mut tx, audit, Utc::now()).await?;
    tx.commit().await?;
    Ok(true)
}

pub(super) async fn put_pending(conn: &mut SqliteConnection, p: &PendingSignIn) -> Result<()> {
    let mut tx = conn.begin().await?;
    sqlx::query("DELETE FROM oauth_pending WHERE expires_at <= ?").bind(p.created_at).execute(&mut *tx).await?;
    sqlx::query("INSERT INTO oauth_pending (state, sealed_verifier, redirect_uri, created_at, expires_at, device_id) VALUES (?, ?, ?, ?, ?, ?)")
        .bind(&p.state)
        .bind(&p.sealed_verifier)
        .bind(&p.redirect_uri)
        .bind(p.created_at)
        .bind(p.expires_at)
        .bind(p.owner.device_id())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn take_pending(
    conn: &mut SqliteConnection,
    state: Option<&str>,
    owner: Owner,
    now: DateTime<Utc>,
) -> Result<Option<PendingSignIn>> {
    let row = sqlx::query(
        "DELETE FROM oauth_pending WHERE state = (
             SELECT state FROM oauth_pending
             WHERE (state = ?1 OR (?1 IS NULL AND device_id IS ?3)) AND expires_at > ?2 ORDER BY created_at DESC LIMIT 1)
         RETURNING state, sealed_verifier, redirect_uri, created_at, expires_at, device_id",
    )
    .bind(state)
    .bind(now)
    .bind(owner.device_id())
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.map(|r| PendingSignIn {
        state: r.get("state"),
        sealed_verifier: r.get("sealed_verifier"),
        redirect_uri: r.get("redirect_uri"),
        created_at: r.get("created_at"),
        expires_at: r.get("expires_at"),
        owner: Owner::of_device(r.get("device_id")),
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::{SqliteStore, Store};
    use sqlx::{migrate::Migrator, sqlite::SqliteConnectOptions};
    use std::borrow::Cow;

    /// A database of the version before (the relay's authorization in `oauth_authorization`, its refresh token in
    /// `secrets`, a device's in `mailbox_authorizations`) opens with every authorization where it was.
    #[tokio::test]
    async fn the_migration_moves_both_kinds_of_authorization_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tidings.db");
        let options = SqliteConnectOptions::new().filename(&path).create_if_missing(true).foreign_keys(true);
        let pool = SqlitePool::connect_with(options).await.unwrap();
        let before: Vec<_> = super::super::MIGRATOR.migrations.iter().filter(|m| m.version < 10).cloned().collect();
        let old = Migrator { migrations: Cow::Owned(before), ignore_missing: false, locking: true, no_tx: false };
        old.run(&pool).await.unwrap();

        let acquired = DateTime::parse_from_rfc3339("2026-11-30T08:15:42.123Z").unwrap().to_utc();
        let failed = acquired + chrono::Duration::days(3);
        sqlx::query(
            "INSERT INTO oauth_authorization (id, account, client_credentials, acquired_at, failure, explanation, failed_at)
             VALUES (1, 'alerts@contoso.com', 0, ?, 'invalid_grant', 'sign in again', ?)",
        )
        .bind(acquired)
        .bind(failed)
        .execute(&pool)
        .await
        .unwrap();
        for (name, sealed) in [("oauth.refresh_token", &b"relay-sealed"[..]), ("smtp.password", b"password-sealed")] {
            sqlx::query("INSERT INTO secrets (name, sealed, updated_at) VALUES (?, ?, ?)")
                .bind(name)
                .bind(sealed)
                .bind(acquired)
                .execute(&pool)
                .await
                .unwrap();
        }
        sqlx::query("INSERT INTO devices (id, username, password_hash, addresses, created_at, created_by) VALUES (7, 'jane-mfp', 'h', '[]', 0, 'admin')")
            .execute(&pool)
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO mailbox_authorizations (device_id, mailbox, sealed_refresh_token, acquired_at, acquired_by, refreshed_at)
             VALUES (7, 'jane@contoso.com', X'0102', ?, 'mailbox:jane-mfp', ?)",
        )
        .bind(ms(acquired))
        .bind(ms(failed))
        .execute(&pool)
        .await
        .unwrap();
        pool.close().await;

        let store = SqliteStore::open(&path).await.unwrap();
        let (relay, sealed) = store.authorization(Owner::Relay).await.unwrap().unwrap();
        assert_eq!(relay.account.as_deref(), Some("alerts@contoso.com"));
        assert_eq!((relay.acquired_at, relay.failed_at), (Some(acquired), Some(failed)));
        assert_eq!(relay.failure, Some(("invalid_grant".to_owned(), "sign in again".to_owned())));
        assert_eq!(sealed.as_deref(), Some(&b"relay-sealed"[..]));
        let (jane, sealed) = store.authorization(Owner::Device(7)).await.unwrap().unwrap();
        assert_eq!(
            (jane.account.as_deref(), jane.acquired_by.as_deref(), jane.refreshed_at, sealed.as_deref()),
            (Some("jane@contoso.com"), Some("mailbox:jane-mfp"), Some(failed), Some(&[1u8, 2][..]))
        );
        let secrets: Vec<_> = store.sealed_secrets().await.unwrap().into_iter().map(|s| s.name).collect();
        assert_eq!(secrets, ["smtp.password"], "the refresh token left the configuration's secrets");
    }
}

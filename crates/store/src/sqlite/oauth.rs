//! The OAuth authorization in SQLite: one row of state, the refresh token sealed in `secrets`.

use super::{events, insert_audit, upsert_secret};
use crate::{NewEvent, OAuthGrant, OAuthRecord, PendingSignIn, REFRESH_TOKEN, Result};
use chrono::{DateTime, Utc};
use sqlx::{Connection, Row, SqliteConnection, SqlitePool};
use tidings_core::audit::NewAuditEntry;

pub(super) async fn record(pool: &SqlitePool) -> Result<OAuthRecord> {
    let row = sqlx::query(
        "SELECT account, client_credentials, acquired_at, refreshed_at, failure, explanation, failed_at FROM oauth_authorization WHERE id = 1",
    )
        .fetch_optional(pool)
        .await?;
    Ok(row.map_or_else(OAuthRecord::default, |r| {
        let failure: Option<String> = r.get("failure");
        let explanation: Option<String> = r.get("explanation");
        OAuthRecord {
            account: r.get("account"),
            client_credentials: r.get::<i64, _>("client_credentials") != 0,
            acquired_at: r.get("acquired_at"),
            refreshed_at: r.get("refreshed_at"),
            failure: failure.map(|f| (f, explanation.unwrap_or_default())),
            failed_at: r.get("failed_at"),
        }
    }))
}

pub(super) async fn grant(conn: &mut SqliteConnection, grant: OAuthGrant<'_>, at: DateTime<Utc>) -> Result<()> {
    let mut tx = conn.begin().await?;
    match grant {
        OAuthGrant::Acquired { sealed_refresh_token, account, client_credentials } => {
            match sealed_refresh_token {
                Some(sealed) => upsert_secret(&mut tx, REFRESH_TOKEN, sealed, at).await?,
                None => {
                    sqlx::query("DELETE FROM secrets WHERE name = ?").bind(REFRESH_TOKEN).execute(&mut *tx).await?;
                }
            }
            sqlx::query(
                "INSERT INTO oauth_authorization (id, account, client_credentials, acquired_at, refreshed_at) VALUES (1, ?, ?, ?, NULL)
                 ON CONFLICT (id) DO UPDATE SET account = excluded.account, client_credentials = excluded.client_credentials,
                     acquired_at = excluded.acquired_at, refreshed_at = NULL, failure = NULL, explanation = NULL, failed_at = NULL",
            )
            .bind(account)
            .bind(client_credentials)
            .bind(at)
            .execute(&mut *tx)
            .await?;
        }
        OAuthGrant::Refreshed { sealed_refresh_token } => {
            if let Some(sealed) = sealed_refresh_token {
                upsert_secret(&mut tx, REFRESH_TOKEN, sealed, at).await?;
            }
            sqlx::query(
                "INSERT INTO oauth_authorization (id, refreshed_at) VALUES (1, ?)
                 ON CONFLICT (id) DO UPDATE SET refreshed_at = excluded.refreshed_at, failure = NULL, explanation = NULL, failed_at = NULL",
            )
            .bind(at)
            .execute(&mut *tx)
            .await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

pub(super) async fn failure(
    conn: &mut SqliteConnection,
    reason: &str,
    explanation: &str,
    at: DateTime<Utc>,
    alert: &NewEvent,
) -> Result<()> {
    let mut tx = conn.begin().await?;
    sqlx::query(
        "INSERT INTO oauth_authorization (id, failure, explanation, failed_at) VALUES (1, ?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET failure = excluded.failure, explanation = excluded.explanation, failed_at = excluded.failed_at",
    )
    .bind(reason)
    .bind(explanation)
    .bind(at)
    .execute(&mut *tx)
    .await?;
    events::insert(&mut tx, alert).await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn forget(conn: &mut SqliteConnection, audit: &NewAuditEntry) -> Result<()> {
    let mut tx = conn.begin().await?;
    sqlx::query("DELETE FROM secrets WHERE name = ?").bind(REFRESH_TOKEN).execute(&mut *tx).await?;
    sqlx::query("DELETE FROM oauth_authorization").execute(&mut *tx).await?;
    insert_audit(&mut tx, audit, Utc::now()).await?;
    tx.commit().await?;
    Ok(())
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
        .bind(p.device_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn take_pending(
    conn: &mut SqliteConnection,
    state: Option<&str>,
    device_id: Option<i64>,
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
    .bind(device_id)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.map(|r| PendingSignIn {
        state: r.get("state"),
        sealed_verifier: r.get("sealed_verifier"),
        redirect_uri: r.get("redirect_uri"),
        created_at: r.get("created_at"),
        expires_at: r.get("expires_at"),
        device_id: r.get("device_id"),
    }))
}

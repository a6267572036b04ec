//! OAuth authorizations in PostgreSQL: one row per owner (`relay`, `device:<id>`), the refresh token sealed in it;
//! and the sign-ins under way that lead to them.

use super::{
    Tx,
    changes::{Topic, tell},
    events, insert_audit,
};
use crate::stored::owner_key;
use crate::{
    Authorization, Grant, NewEvent, Owner, PendingSignIn, Result,
    stored::{from_ms, ms},
};
use chrono::{DateTime, Utc};
use sqlx::{PgPool, Row, postgres::PgRow};
use tidings_core::audit::NewAuditEntry;

fn to_record(r: &PgRow) -> Authorization {
    let at = |column: &str| r.get::<Option<i64>, _>(column).map(from_ms);
    let failure: Option<String> = r.get("failure");
    let explanation: Option<String> = r.get("explanation");
    Authorization {
        owner: Owner::of_device(r.get("device_id")),
        account: r.get("account"),
        client_credentials: r.get("client_credentials"),
        acquired_at: at("acquired_at"),
        acquired_by: r.get("acquired_by"),
        refreshed_at: at("refreshed_at"),
        failure: failure.map(|f| (f, explanation.unwrap_or_default())),
        failed_at: at("failed_at"),
    }
}

pub(super) async fn one(pool: &PgPool, owner: Owner) -> Result<Option<(Authorization, Option<Vec<u8>>)>> {
    let row = sqlx::query("SELECT * FROM authorizations WHERE owner = $1")
        .bind(owner_key(owner))
        .fetch_optional(pool)
        .await?;
    Ok(row.map(|r| (to_record(&r), r.get("sealed_refresh_token"))))
}

pub(super) async fn all(pool: &PgPool) -> Result<Vec<Authorization>> {
    let rows =
        sqlx::query("SELECT * FROM authorizations ORDER BY device_id IS NOT NULL, device_id").fetch_all(pool).await?;
    Ok(rows.iter().map(to_record).collect())
}

pub(super) async fn granted(mut tx: Tx<'_>, owner: Owner, grant: Grant<'_>, at: DateTime<Utc>) -> Result<()> {
    match grant {
        Grant::Acquired { sealed_refresh_token, account, client_credentials, audit } => {
            sqlx::query(
                "INSERT INTO authorizations
                     (owner, device_id, account, client_credentials, sealed_refresh_token, acquired_at, acquired_by)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (owner) DO UPDATE SET device_id = excluded.device_id, account = excluded.account,
                     client_credentials = excluded.client_credentials,
                     sealed_refresh_token = excluded.sealed_refresh_token, acquired_at = excluded.acquired_at,
                     acquired_by = excluded.acquired_by, refreshed_at = NULL, failure = NULL, explanation = NULL,
                     failed_at = NULL",
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
                 SET sealed_refresh_token = COALESCE($1, sealed_refresh_token), refreshed_at = $2,
                     failure = NULL, explanation = NULL, failed_at = NULL
                 WHERE owner = $3",
            )
            .bind(sealed_refresh_token)
            .bind(ms(at))
            .bind(owner_key(owner))
            .execute(&mut *tx)
            .await?;
        }
    }
    tell(&mut tx, Topic::Authorization).await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn failed(
    mut tx: Tx<'_>,
    owner: Owner,
    reason: &str,
    explanation: &str,
    at: DateTime<Utc>,
    alert: &NewEvent,
) -> Result<()> {
    sqlx::query("UPDATE authorizations SET failure = $1, explanation = $2, failed_at = $3 WHERE owner = $4")
        .bind(reason)
        .bind(explanation)
        .bind(ms(at))
        .bind(owner_key(owner))
        .execute(&mut *tx)
        .await?;
    events::insert(&mut tx, alert).await?;
    tell(&mut tx, Topic::Events).await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn forget(mut tx: Tx<'_>, owner: Owner, audit: &NewAuditEntry) -> Result<bool> {
    let done =
        sqlx::query("DELETE FROM authorizations WHERE owner = $1").bind(owner_key(owner)).execute(&mut *tx).await?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    insert_audit(&mut tx, audit, Utc::now()).await?;
    tell(&mut tx, Topic::Authorization).await?;
    tx.commit().await?;
    Ok(true)
}

pub(super) async fn put_pending(mut tx: Tx<'_>, p: &PendingSignIn) -> Result<()> {
    sqlx::query("DELETE FROM oauth_pending WHERE expires_at <= $1").bind(ms(p.created_at)).execute(&mut *tx).await?;
    sqlx::query(
        "INSERT INTO oauth_pending (state, sealed_verifier, redirect_uri, created_at, expires_at, device_id)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&p.state)
    .bind(&p.sealed_verifier)
    .bind(&p.redirect_uri)
    .bind(ms(p.created_at))
    .bind(ms(p.expires_at))
    .bind(p.owner.device_id())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn take_pending(
    pool: &PgPool,
    state: Option<&str>,
    owner: Owner,
    now: DateTime<Utc>,
) -> Result<Option<PendingSignIn>> {
    // The row lock makes a sign-in taken once, whichever node its redirect reaches.
    let row = sqlx::query(
        "DELETE FROM oauth_pending WHERE state = (
             SELECT state FROM oauth_pending
             WHERE (state = $1 OR ($1 IS NULL AND device_id IS NOT DISTINCT FROM $3)) AND expires_at > $2
             ORDER BY created_at DESC LIMIT 1 FOR UPDATE SKIP LOCKED)
         RETURNING state, sealed_verifier, redirect_uri, created_at, expires_at, device_id",
    )
    .bind(state)
    .bind(ms(now))
    .bind(owner.device_id())
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|r| PendingSignIn {
        state: r.get("state"),
        sealed_verifier: r.get("sealed_verifier"),
        redirect_uri: r.get("redirect_uri"),
        created_at: from_ms(r.get("created_at")),
        expires_at: from_ms(r.get("expires_at")),
        owner: Owner::of_device(r.get("device_id")),
    }))
}

//! This node's place in its cluster of primary, backup and traffic nodes, and the other nodes, in PostgreSQL.

use super::{Tx, insert_audit};
use crate::{
    ClusterNode, ClusterSelf, Result,
    stored::{corrupt, from_ms, ms},
};
use chrono::{DateTime, Utc};
use sqlx::{PgPool, Row, postgres::PgRow};
use tidings_core::{audit::NewAuditEntry, cluster::Role};

fn role(r: &PgRow) -> Result<Role> {
    r.get::<String, _>("role").parse().map_err(|why| corrupt("cluster role", why))
}

fn at(r: &PgRow, column: &str) -> Option<DateTime<Utc>> {
    r.get::<Option<i64>, _>(column).map(from_ms)
}

pub(super) async fn this(pool: &PgPool) -> Result<Option<ClusterSelf>> {
    let Some(r) = sqlx::query("SELECT * FROM cluster_self WHERE id = 1").fetch_optional(pool).await? else {
        return Ok(None);
    };
    Ok(Some(ClusterSelf {
        role: role(&r)?,
        name: r.get("name"),
        epoch: r.get("epoch"),
        primary_name: r.get("primary_name"),
        primary_url: r.get("primary_url"),
        primary_fingerprint: r.get("primary_fingerprint"),
        sealed_key: r.get("sealed_key"),
        synced_revision: r.get("synced_revision"),
        synced_digest: r.get("synced_digest"),
        synced_at: at(&r, "synced_at"),
    }))
}

pub(super) async fn put_this(mut tx: Tx<'_>, state: Option<&ClusterSelf>, audit: Option<&NewAuditEntry>) -> Result<()> {
    sqlx::query("DELETE FROM cluster_self").execute(&mut *tx).await?;
    if let Some(s) = state {
        sqlx::query(
            "INSERT INTO cluster_self (id, role, name, epoch, primary_name, primary_url, primary_fingerprint,
                 sealed_key, synced_revision, synced_digest, synced_at)
             VALUES (1, $1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(s.role.as_str())
        .bind(&s.name)
        .bind(s.epoch)
        .bind(&s.primary_name)
        .bind(&s.primary_url)
        .bind(&s.primary_fingerprint)
        .bind(&s.sealed_key)
        .bind(s.synced_revision)
        .bind(&s.synced_digest)
        .bind(s.synced_at.map(ms))
        .execute(&mut *tx)
        .await?;
    }
    if let Some(audit) = audit {
        insert_audit(&mut tx, audit, Utc::now()).await?;
    }
    tx.commit().await?;
    Ok(())
}

fn to_node(r: &PgRow) -> Result<ClusterNode> {
    Ok(ClusterNode {
        name: r.get("name"),
        role: role(r)?,
        advertise: r.get("advertise"),
        fingerprint: r.get("fingerprint"),
        sealed_key: r.get("sealed_key"),
        code_hash: r.get("code_hash"),
        code_expires_at: at(r, "code_expires_at"),
        joined_at: at(r, "joined_at"),
        last_contact_at: at(r, "last_contact_at"),
        version: r.get("version"),
        synced_revision: r.get("synced_revision"),
        synced_at: at(r, "synced_at"),
    })
}

pub(super) async fn nodes(pool: &PgPool) -> Result<Vec<ClusterNode>> {
    let rows = sqlx::query("SELECT * FROM cluster_nodes ORDER BY name").fetch_all(pool).await?;
    rows.iter().map(to_node).collect()
}

async fn insert(tx: &mut Tx<'_>, n: &ClusterNode) -> Result<()> {
    sqlx::query(
        "INSERT INTO cluster_nodes (name, role, advertise, fingerprint, sealed_key, code_hash, code_expires_at,
             joined_at, last_contact_at, version, synced_revision, synced_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
         ON CONFLICT (name) DO UPDATE SET role = excluded.role, advertise = excluded.advertise,
             fingerprint = excluded.fingerprint, sealed_key = excluded.sealed_key, code_hash = excluded.code_hash,
             code_expires_at = excluded.code_expires_at, joined_at = excluded.joined_at,
             last_contact_at = excluded.last_contact_at, version = excluded.version,
             synced_revision = excluded.synced_revision, synced_at = excluded.synced_at",
    )
    .bind(&n.name)
    .bind(n.role.as_str())
    .bind(&n.advertise)
    .bind(&n.fingerprint)
    .bind(&n.sealed_key)
    .bind(&n.code_hash)
    .bind(n.code_expires_at.map(ms))
    .bind(n.joined_at.map(ms))
    .bind(n.last_contact_at.map(ms))
    .bind(&n.version)
    .bind(n.synced_revision)
    .bind(n.synced_at.map(ms))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub(super) async fn put_node(mut tx: Tx<'_>, node: &ClusterNode, audit: Option<&NewAuditEntry>) -> Result<()> {
    insert(&mut tx, node).await?;
    if let Some(audit) = audit {
        insert_audit(&mut tx, audit, Utc::now()).await?;
    }
    tx.commit().await?;
    Ok(())
}

pub(super) async fn join_node(
    mut tx: Tx<'_>,
    n: &ClusterNode,
    code_hash: &[u8],
    now: DateTime<Utc>,
    audit: &NewAuditEntry,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE cluster_nodes SET advertise = $1, fingerprint = $2, sealed_key = $3, joined_at = $4,
             last_contact_at = $5, version = $6, code_hash = NULL, code_expires_at = NULL
         WHERE name = $7 AND code_hash = $8 AND code_expires_at > $9",
    )
    .bind(&n.advertise)
    .bind(&n.fingerprint)
    .bind(&n.sealed_key)
    .bind(n.joined_at.map(ms))
    .bind(n.last_contact_at.map(ms))
    .bind(&n.version)
    .bind(&n.name)
    .bind(code_hash)
    .bind(ms(now))
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    insert_audit(&mut tx, audit, now).await?;
    tx.commit().await?;
    Ok(true)
}

pub(super) async fn node_seen(
    pool: &PgPool,
    name: &str,
    version: &str,
    at: DateTime<Utc>,
    synced: Option<i64>,
) -> Result<()> {
    sqlx::query(
        "UPDATE cluster_nodes SET last_contact_at = $1, version = $2,
             synced_revision = COALESCE($3, synced_revision),
             synced_at = CASE WHEN $3::BIGINT IS NULL THEN synced_at ELSE $1 END
         WHERE name = $4",
    )
    .bind(ms(at))
    .bind(version)
    .bind(synced)
    .bind(name)
    .execute(pool)
    .await?;
    Ok(())
}

pub(super) async fn replace_nodes(mut tx: Tx<'_>, nodes: &[ClusterNode]) -> Result<()> {
    sqlx::query("DELETE FROM cluster_nodes").execute(&mut *tx).await?;
    for node in nodes {
        insert(&mut tx, node).await?;
    }
    tx.commit().await?;
    Ok(())
}

pub(super) async fn remove_node(mut tx: Tx<'_>, name: &str, audit: &NewAuditEntry) -> Result<bool> {
    let done = sqlx::query("DELETE FROM cluster_nodes WHERE name = $1").bind(name).execute(&mut *tx).await?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    insert_audit(&mut tx, audit, Utc::now()).await?;
    tx.commit().await?;
    Ok(true)
}

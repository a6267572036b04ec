//! The daemons that use the database, in PostgreSQL.

use crate::{
    Peer, Result,
    stored::{from_ms, ms},
};
use sqlx::{PgPool, Row};

/// A day, in milliseconds: a daemon not seen for so long is forgotten.
const FORGET_AFTER: i64 = 24 * 3600 * 1000;

pub(super) async fn seen(pool: &PgPool, p: &Peer) -> Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO peers (node, instance, version, address, started_at, seen_at) VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (node) DO UPDATE SET instance = excluded.instance, version = excluded.version,
             address = excluded.address, started_at = excluded.started_at, seen_at = excluded.seen_at",
    )
    .bind(&p.node)
    .bind(&p.instance)
    .bind(&p.version)
    .bind(&p.address)
    .bind(ms(p.started_at))
    .bind(ms(p.seen_at))
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM peers WHERE seen_at < $1").bind(ms(p.seen_at) - FORGET_AFTER).execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn all(pool: &PgPool) -> Result<Vec<Peer>> {
    // A lease's owner is `NODE/RANDOM` (the delivery engine's).
    let rows = sqlx::query(
        "SELECT p.*, (SELECT COUNT(*) FROM messages m
                      WHERE m.status = 'sending' AND split_part(m.lease_owner, '/', 1) = p.node) AS leased
         FROM peers p ORDER BY p.node",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .iter()
        .map(|r| Peer {
            node: r.get("node"),
            instance: r.get("instance"),
            version: r.get("version"),
            address: r.get("address"),
            started_at: from_ms(r.get("started_at")),
            seen_at: from_ms(r.get("seen_at")),
            leased: r.get::<i64, _>("leased") as u64,
        })
        .collect())
}

pub(super) async fn gone(pool: &PgPool, node: &str) -> Result<()> {
    sqlx::query("DELETE FROM peers WHERE node = $1").bind(node).execute(pool).await?;
    Ok(())
}

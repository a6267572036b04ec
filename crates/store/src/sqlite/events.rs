//! Events and their notifications in SQLite.

use super::{corrupt, from_ms, ms, outbox::insert_message};
use crate::stored::{event_kind, event_state};
use crate::{EventFilter, EventHandling, EventRecord, EventRef, EventState, NewEvent, Result, ThrottleRecord};
use sqlx::{Connection, Row, Sqlite, SqliteConnection, SqlitePool, Transaction, sqlite::SqliteRow};
use std::collections::BTreeMap;
use tidings_core::{
    notify::{EventKind, throttle::Throttle},
    outbox::Status,
};

const SELECT: &str = "SELECT e.id, e.kind, e.node, e.details, e.origin, e.received_at, e.state, e.message_id,
                             e.repeats, m.status AS message_status
                      FROM events e LEFT JOIN messages m ON m.id = e.message_id";

pub(super) async fn insert(tx: &mut Transaction<'_, Sqlite>, event: &NewEvent) -> Result<i64> {
    let details = serde_json::to_string(&event.details).map_err(|e| corrupt("event details", e))?;
    Ok(sqlx::query_scalar(
        "INSERT INTO events (kind, node, details, origin, received_at, state) VALUES (?, ?, ?, ?, ?, 'pending')
         RETURNING id",
    )
    .bind(event.kind.id())
    .bind(&event.node)
    .bind(details)
    .bind(&event.origin)
    .bind(ms(event.received_at))
    .fetch_one(&mut **tx)
    .await?)
}

pub(super) async fn record(conn: &mut SqliteConnection, event: &NewEvent) -> Result<i64> {
    let mut tx = conn.begin().await?;
    let id = insert(&mut tx, event).await?;
    tx.commit().await?;
    Ok(id)
}

pub(super) async fn counts(pool: &SqlitePool) -> Result<Vec<(EventKind, EventState, u64)>> {
    let rows = sqlx::query("SELECT kind, state, COUNT(*) AS n FROM events GROUP BY kind, state ORDER BY kind, state")
        .fetch_all(pool)
        .await?;
    rows.iter()
        .map(|r| Ok((event_kind(r.get("kind"))?, event_state(r.get("state"))?, r.get::<i64, _>("n") as u64)))
        .collect()
}

fn to_record(row: &SqliteRow) -> Result<EventRecord> {
    let details: String = row.get("details");
    let state_text: String = row.get("state");
    let status: Option<String> = row.get("message_status");
    Ok(EventRecord {
        id: row.get("id"),
        kind: event_kind(row.get("kind"))?,
        node: row.get("node"),
        details: serde_json::from_str::<BTreeMap<String, String>>(&details).map_err(|e| corrupt("event details", e))?,
        origin: row.get("origin"),
        received_at: from_ms(row.get("received_at")),
        state: event_state(&state_text)?,
        message_id: row.get("message_id"),
        message_status: status.map(|s| s.parse::<Status>().map_err(|e| corrupt("message status", e))).transpose()?,
        repeats: row.get::<i64, _>("repeats") as u32,
    })
}

pub(super) async fn pending(pool: &SqlitePool, limit: u32) -> Result<Vec<EventRecord>> {
    let rows = sqlx::query(&format!("{SELECT} WHERE e.state = 'pending' ORDER BY e.id LIMIT ?"))
        .bind(limit as i64)
        .fetch_all(pool)
        .await?;
    rows.iter().map(to_record).collect()
}

pub(super) async fn list(pool: &SqlitePool, filter: &EventFilter) -> Result<Vec<EventRecord>> {
    let rows = sqlx::query(&format!(
        "{SELECT} WHERE (?1 IS NULL OR e.kind = ?1) AND (?2 IS NULL OR e.id < ?2) ORDER BY e.id DESC LIMIT ?3"
    ))
    .bind(filter.kind.map(EventKind::id))
    .bind(filter.before_id)
    .bind(filter.limit as i64)
    .fetch_all(pool)
    .await?;
    rows.iter().map(to_record).collect()
}

pub(super) async fn one(pool: &SqlitePool, id: i64) -> Result<Option<EventRecord>> {
    let row = sqlx::query(&format!("{SELECT} WHERE e.id = ?")).bind(id).fetch_optional(pool).await?;
    row.as_ref().map(to_record).transpose()
}

fn to_throttle(row: &SqliteRow) -> Throttle {
    Throttle {
        last_mailed_at: from_ms(row.get("last_mailed_at")),
        repeats: row.get::<i64, _>("repeats") as u32,
        repeats_since: row.get::<Option<i64>, _>("repeats_since").map(from_ms),
    }
}

pub(super) async fn throttle(pool: &SqlitePool, kind: EventKind, node: &str) -> Result<Option<Throttle>> {
    let row = sqlx::query("SELECT * FROM event_throttle WHERE kind = ? AND node = ?")
        .bind(kind.id())
        .bind(node)
        .fetch_optional(pool)
        .await?;
    Ok(row.as_ref().map(to_throttle))
}

pub(super) async fn with_repeats(pool: &SqlitePool) -> Result<Vec<ThrottleRecord>> {
    let rows =
        sqlx::query("SELECT * FROM event_throttle WHERE repeats > 0 ORDER BY last_mailed_at").fetch_all(pool).await?;
    rows.iter()
        .map(|r| {
            Ok(ThrottleRecord {
                kind: event_kind(r.get("kind"))?,
                node: r.get("node"),
                throttle: to_throttle(r),
                last_event_id: r.get("last_event_id"),
            })
        })
        .collect()
}

pub(super) async fn handle(conn: &mut SqliteConnection, h: &EventHandling<'_>) -> Result<(i64, Option<i64>)> {
    let mut tx = conn.begin().await?;
    let id = match h.event {
        EventRef::Recorded(id) => id,
        EventRef::New(event) => insert(&mut tx, event).await?,
    };
    let message_id = match h.mail {
        Some(mail) => Some(insert_message(&mut tx, mail).await?),
        None => None,
    };
    sqlx::query(
        "UPDATE events SET state = ?, message_id = COALESCE(?, message_id), repeats = ?, handled_at = ? WHERE id = ?",
    )
    .bind(h.state.as_str())
    .bind(message_id)
    .bind(h.repeats as i64)
    .bind(ms(h.at))
    .bind(id)
    .execute(&mut *tx)
    .await?;
    if let Some(t) = &h.throttle {
        sqlx::query(
            "INSERT INTO event_throttle (kind, node, last_mailed_at, repeats, repeats_since, last_event_id)
             SELECT kind, node, ?, ?, ?, id FROM events WHERE id = ?
             ON CONFLICT (kind, node) DO UPDATE SET last_mailed_at = excluded.last_mailed_at,
                 repeats = excluded.repeats, repeats_since = excluded.repeats_since,
                 last_event_id = excluded.last_event_id",
        )
        .bind(ms(t.last_mailed_at))
        .bind(t.repeats as i64)
        .bind(t.repeats_since.map(ms))
        .bind(id)
        .execute(&mut *tx)
        .await?;
    }
    if let Some((key, value)) = h.meta {
        sqlx::query(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(key)
        .bind(value)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok((id, message_id))
}

//! The PostgreSQL backend's schema (`migrations/postgres/`): the same tables and columns as the SQLite
//! backend's, in PostgreSQL's types. The backend itself (the `Store` trait over it) is the next step of its issue;
//! this much lets its schema be held to SQLite's by a test against a real server.

use crate::Result;
use sqlx::{Connection, PgConnection};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Brings the database at `url` up to date with the PostgreSQL schema.
pub async fn migrate(url: &str) -> Result<()> {
    let mut conn = PgConnection::connect(url).await?;
    MIGRATOR.run(&mut conn).await?;
    Ok(())
}

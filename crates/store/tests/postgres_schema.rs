//! The PostgreSQL backend's schema against a real, throw-away PostgreSQL server: every table and column of the
//! SQLite backend's, and the same rules where SQLite's types carried them (user names unique whatever their case).

#![allow(clippy::unwrap_used)] // a failed step is a failed test

use sqlx::{Connection, PgConnection, Row, SqliteConnection};
use std::collections::BTreeSet;
use tidings_store::SqliteStore;
use tidings_testkit::Postgres;

/// Every (table, column) of the SQLite backend's schema, as migrated.
async fn sqlite_columns() -> BTreeSet<(String, String)> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tidings.db");
    drop(SqliteStore::open(&path).await.unwrap());
    let mut conn = SqliteConnection::connect(&format!("sqlite://{}", path.display())).await.unwrap();
    sqlx::query(
        "SELECT m.name AS t, p.name AS c FROM sqlite_master m, pragma_table_info(m.name) p
         WHERE m.type = 'table' AND m.name NOT IN ('sqlite_sequence', '_sqlx_migrations')",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get("t"), r.get("c")))
    .collect()
}

#[tokio::test]
async fn the_postgres_schema_has_every_table_and_column_of_sqlites() {
    let server = Postgres::start();
    tidings_store::postgres::migrate(&server.url).await.unwrap();
    tidings_store::postgres::migrate(&server.url).await.unwrap();
    let mut conn = PgConnection::connect(&server.url).await.unwrap();
    let postgres: BTreeSet<(String, String)> = sqlx::query(
        "SELECT table_name::text AS t, column_name::text AS c FROM information_schema.columns
         WHERE table_schema = 'public' AND table_name <> '_sqlx_migrations'",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get("t"), r.get("c")))
    .collect();
    let sqlite = sqlite_columns().await;
    let only_sqlite: Vec<_> = sqlite.difference(&postgres).collect();
    let only_postgres: Vec<_> = postgres.difference(&sqlite).collect();
    assert!(
        only_sqlite.is_empty() && only_postgres.is_empty(),
        "SQLite only: {only_sqlite:?}; PostgreSQL only: {only_postgres:?}"
    );

    // User names are unique whatever their case, as SQLite's NOCASE made them; given ids are kept.
    sqlx::query(
        "INSERT INTO accounts (id, username, password_hash, role, created_at) VALUES (7, 'Admin', 'h', 'viewer', 0)",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let again = sqlx::query(
        "INSERT INTO accounts (username, password_hash, role, created_at) VALUES ('admin', 'h', 'viewer', 0)",
    )
    .execute(&mut conn)
    .await;
    assert!(again.is_err(), "a user name differing only in case is refused");
}

//! A whole store copied to another database (`tidings store copy`): SQLite to PostgreSQL, back, or to another file.
//! Rows go as they are, secrets still sealed, ids kept; each value is converted only where the two schemas keep it
//! differently (a time as text in SQLite's older columns and as milliseconds in PostgreSQL, a flag as 0/1 or
//! boolean). The source is read in one snapshot; the target is written in one transaction, then every table's
//! rows are counted on both sides.

use crate::{Database, Error, PgStore, Result, SqliteStore, stored::corrupt};
use chrono::{DateTime, SecondsFormat, Utc};
use futures_util::TryStreamExt;
use sqlx::{
    Arguments, Connection, Executor, PgConnection, Row, SqliteConnection, TypeInfo, ValueRef,
    postgres::{PgArguments, PgRow},
    sqlite::{SqliteArguments, SqliteConnectOptions, SqliteRow},
};
use std::collections::BTreeMap;

/// Every table, parents before the tables that refer to them.
const TABLES: &[&str] = &[
    "meta",
    "email_config",
    "secrets",
    "audit_log",
    "accounts",
    "sessions",
    "api_tokens",
    "devices",
    "device_sessions",
    "oauth_pending",
    "authorizations",
    "messages",
    "message_content",
    "message_content_parts",
    "attempts",
    "events",
    "event_throttle",
    "identity_usage",
    "cluster_self",
    "cluster_nodes",
    "peers",
];

/// The tables whose ids PostgreSQL draws from an identity, which must continue above the copied ids.
const IDENTITIES: &[&str] = &["audit_log", "accounts", "messages", "attempts", "api_tokens", "devices", "events"];

/// What was copied: each table's rows.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Copied {
    pub tables: Vec<(String, u64)>,
}

/// A value as it travels.
#[derive(Debug)]
enum Cell {
    Null,
    Int(i64),
    Text(String),
    Bytes(Vec<u8>),
    Bool(bool),
}

/// How a target column keeps its values: PostgreSQL's data types, SQLite's declared ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Int,
    Text,
    Bytes,
    Bool,
}

/// An open database, either kind, on one connection.
enum Side {
    Sqlite(SqliteConnection),
    Postgres(PgConnection),
}

impl Side {
    async fn open(database: &Database) -> Result<Self> {
        // Opening the store first creates the schema, or brings it up to date.
        Ok(match database {
            Database::Sqlite(path) => {
                SqliteStore::open(path).await?.close().await;
                let options = SqliteConnectOptions::new().filename(path).foreign_keys(true);
                Side::Sqlite(SqliteConnection::connect_with(&options).await?)
            }
            Database::Postgres(url) => {
                PgStore::open(url.expose()).await?.close().await;
                Side::Postgres(PgConnection::connect(url.expose()).await?)
            }
        })
    }

    /// Each table's columns and how it keeps them.
    async fn columns(&mut self) -> Result<BTreeMap<String, Vec<(String, Kind)>>> {
        let mut tables: BTreeMap<String, Vec<(String, Kind)>> = BTreeMap::new();
        match self {
            Side::Sqlite(conn) => {
                let rows = sqlx::query(
                    "SELECT m.name AS t, p.name AS c, p.type AS k FROM sqlite_master m, pragma_table_info(m.name) p
                     WHERE m.type = 'table' AND m.name NOT IN ('sqlite_sequence', '_sqlx_migrations')
                     ORDER BY m.name, p.cid",
                )
                .fetch_all(&mut *conn)
                .await?;
                for r in rows {
                    let kind = match r.get::<String, _>("k").to_ascii_uppercase().as_str() {
                        "INTEGER" => Kind::Int,
                        "BLOB" => Kind::Bytes,
                        _ => Kind::Text,
                    };
                    tables.entry(r.get("t")).or_default().push((r.get("c"), kind));
                }
            }
            Side::Postgres(conn) => {
                let rows = sqlx::query(
                    "SELECT table_name::TEXT AS t, column_name::TEXT AS c, data_type::TEXT AS k
                     FROM information_schema.columns
                     WHERE table_schema = current_schema() AND table_name <> '_sqlx_migrations'
                     ORDER BY table_name, ordinal_position",
                )
                .fetch_all(&mut *conn)
                .await?;
                for r in rows {
                    let kind = match r.get::<String, _>("k").as_str() {
                        "bigint" | "integer" | "smallint" => Kind::Int,
                        "bytea" => Kind::Bytes,
                        "boolean" => Kind::Bool,
                        _ => Kind::Text,
                    };
                    tables.entry(r.get("t")).or_default().push((r.get("c"), kind));
                }
            }
        }
        Ok(tables)
    }

    async fn execute(&mut self, sql: &str) -> Result<()> {
        match self {
            Side::Sqlite(conn) => {
                conn.execute(sql).await?;
            }
            Side::Postgres(conn) => {
                conn.execute(sql).await?;
            }
        }
        Ok(())
    }

    async fn count(&mut self, table: &str) -> Result<u64> {
        let sql = format!("SELECT COUNT(*) FROM {table}");
        let n: i64 = match self {
            Side::Sqlite(conn) => sqlx::query_scalar(&sql).fetch_one(&mut *conn).await?,
            Side::Postgres(conn) => sqlx::query_scalar(&sql).fetch_one(&mut *conn).await?,
        };
        Ok(n as u64)
    }

    async fn insert(&mut self, table: &str, columns: &[(String, Kind)], cells: Vec<Cell>) -> Result<()> {
        let names: Vec<&str> = columns.iter().map(|(c, _)| c.as_str()).collect();
        match self {
            Side::Sqlite(conn) => {
                let sql = format!(
                    "INSERT INTO {table} ({}) VALUES ({})",
                    names.join(", "),
                    vec!["?"; names.len()].join(", ")
                );
                let mut args = SqliteArguments::default();
                for ((_, kind), cell) in columns.iter().zip(cells) {
                    bind_sqlite(&mut args, convert(cell, *kind, Target::Sqlite)?)?;
                }
                sqlx::query_with(&sql, args).execute(&mut *conn).await?;
            }
            Side::Postgres(conn) => {
                let marks: Vec<String> = (1..=names.len()).map(|n| format!("${n}")).collect();
                let sql = format!("INSERT INTO {table} ({}) VALUES ({})", names.join(", "), marks.join(", "));
                let mut args = PgArguments::default();
                for ((_, kind), cell) in columns.iter().zip(cells) {
                    bind_postgres(&mut args, convert(cell, *kind, Target::Postgres)?, *kind)?;
                }
                sqlx::query_with(&sql, args).execute(&mut *conn).await?;
            }
        }
        Ok(())
    }
}

/// Copies `table`'s rows from `source` to `target`, in `target`'s columns; how many.
async fn copy_table(source: &mut Side, target: &mut Side, table: &str, columns: &[(String, Kind)]) -> Result<u64> {
    let names: Vec<&str> = columns.iter().map(|(c, _)| c.as_str()).collect();
    let sql = format!("SELECT {} FROM {table}", names.join(", "));
    let mut copied = 0;
    match source {
        Side::Sqlite(conn) => {
            let mut rows = sqlx::query(&sql).fetch(&mut *conn);
            while let Some(row) = rows.try_next().await? {
                target.insert(table, columns, sqlite_cells(&row)?).await?;
                copied += 1;
            }
        }
        Side::Postgres(conn) => {
            let mut rows = sqlx::query(&sql).fetch(&mut *conn);
            while let Some(row) = rows.try_next().await? {
                target.insert(table, columns, postgres_cells(&row)?).await?;
                copied += 1;
            }
        }
    }
    Ok(copied)
}

fn sqlite_cells(row: &SqliteRow) -> Result<Vec<Cell>> {
    (0..row.len())
        .map(|i| {
            let raw = row.try_get_raw(i)?;
            if raw.is_null() {
                return Ok(Cell::Null);
            }
            Ok(match raw.type_info().name() {
                "INTEGER" => Cell::Int(row.try_get(i)?),
                "BLOB" => Cell::Bytes(row.try_get(i)?),
                "REAL" => Cell::Int(row.try_get::<f64, _>(i)? as i64),
                _ => Cell::Text(row.try_get(i)?),
            })
        })
        .collect()
}

fn postgres_cells(row: &PgRow) -> Result<Vec<Cell>> {
    (0..row.len())
        .map(|i| {
            let raw = row.try_get_raw(i)?;
            if raw.is_null() {
                return Ok(Cell::Null);
            }
            Ok(match raw.type_info().name() {
                "INT8" => Cell::Int(row.try_get(i)?),
                "INT4" => Cell::Int(i64::from(row.try_get::<i32, _>(i)?)),
                "INT2" => Cell::Int(i64::from(row.try_get::<i16, _>(i)?)),
                "BYTEA" => Cell::Bytes(row.try_get(i)?),
                "BOOL" => Cell::Bool(row.try_get(i)?),
                _ => Cell::Text(row.try_get(i)?),
            })
        })
        .collect()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Target {
    Sqlite,
    Postgres,
}

/// A value in the form the target column keeps: SQLite's older time columns hold text (what sqlx writes for a
/// time), PostgreSQL's milliseconds; a flag is a boolean in PostgreSQL and 0/1 in SQLite.
fn convert(cell: Cell, kind: Kind, target: Target) -> Result<Cell> {
    Ok(match (cell, kind) {
        (Cell::Null, _) => Cell::Null,
        (Cell::Text(text), Kind::Int) => Cell::Int(match text.parse::<i64>() {
            Ok(n) => n,
            Err(_) => time_from_text(&text)?.timestamp_millis(),
        }),
        (Cell::Bool(b), Kind::Int) => Cell::Int(i64::from(b)),
        (Cell::Int(n), Kind::Bool) => Cell::Bool(n != 0),
        (Cell::Int(ms), Kind::Text) if target == Target::Sqlite => Cell::Text(
            DateTime::from_timestamp_millis(ms)
                .ok_or_else(|| corrupt("time", ms))?
                .to_rfc3339_opts(SecondsFormat::AutoSi, false),
        ),
        (Cell::Int(n), Kind::Text) => Cell::Text(n.to_string()),
        (Cell::Text(text), Kind::Bytes) => Cell::Bytes(text.into_bytes()),
        (cell, _) => cell,
    })
}

fn time_from_text(text: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .or_else(|_| DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f%:z"))
        .map(|t| t.to_utc())
        .map_err(|e| corrupt(&format!("time {text:?}"), e))
}

fn bind_sqlite(args: &mut SqliteArguments<'_>, cell: Cell) -> Result<()> {
    match cell {
        Cell::Null => args.add(None::<i64>),
        Cell::Int(n) => args.add(n),
        Cell::Text(t) => args.add(t),
        Cell::Bytes(b) => args.add(b),
        Cell::Bool(b) => args.add(i64::from(b)),
    }
    .map_err(|e| corrupt("value", e))
}

fn bind_postgres(args: &mut PgArguments, cell: Cell, kind: Kind) -> Result<()> {
    match (cell, kind) {
        (Cell::Null, Kind::Int) => args.add(None::<i64>),
        (Cell::Null, Kind::Bytes) => args.add(None::<Vec<u8>>),
        (Cell::Null, Kind::Bool) => args.add(None::<bool>),
        (Cell::Null, Kind::Text) => args.add(None::<String>),
        (Cell::Int(n), _) => args.add(n),
        (Cell::Text(t), _) => args.add(t),
        (Cell::Bytes(b), _) => args.add(b),
        (Cell::Bool(b), _) => args.add(b),
    }
    .map_err(|e| corrupt("value", e))
}

/// Copies everything `from` holds to `to`, in one transaction on `to`; refuses a target that holds anything
/// unless `replace`, then empties it first. Fails, keeping nothing, when a table's rows do not all arrive.
pub async fn copy(from: &Database, to: &Database, replace: bool) -> Result<Copied> {
    if from == to {
        return Err(Error::CopyRefused("the source and the target are the same database".into()));
    }
    let mut source = Side::open(from).await?;
    let mut target = Side::open(to).await?;
    let (source_tables, target_tables) = (source.columns().await?, target.columns().await?);
    for tables in [&source_tables, &target_tables] {
        let known: Vec<&str> = tables.keys().map(String::as_str).collect();
        let mut expected = TABLES.to_vec();
        expected.sort_unstable();
        if known != expected {
            return Err(corrupt("schema", format!("tables {known:?}, where this version knows {expected:?}")));
        }
    }
    // One snapshot of the source, whatever is written to it meanwhile.
    source
        .execute(match &source {
            Side::Sqlite(_) => "BEGIN",
            Side::Postgres(_) => "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
        })
        .await?;
    target.execute(if matches!(target, Side::Sqlite(_)) { "BEGIN IMMEDIATE" } else { "BEGIN" }).await?;
    let mut held = Vec::new();
    for table in TABLES {
        let n = target.count(table).await?;
        if n > 0 {
            held.push(format!("{table}: {n}"));
        }
    }
    if !held.is_empty() {
        if !replace {
            return Err(Error::CopyRefused(format!(
                "{to} holds data already ({}); give --force to replace it",
                held.join(", ")
            )));
        }
        for table in TABLES.iter().rev() {
            target.execute(&format!("DELETE FROM {table}")).await?;
        }
    }
    let mut copied = Copied::default();
    for table in TABLES {
        let columns = &target_tables[*table];
        let source_columns: Vec<&str> = source_tables[*table].iter().map(|(c, _)| c.as_str()).collect();
        if let Some((missing, _)) = columns.iter().find(|(c, _)| !source_columns.contains(&c.as_str())) {
            return Err(corrupt("schema", format!("{from} lacks the column {table}.{missing}")));
        }
        let n = copy_table(&mut source, &mut target, table, columns).await?;
        let expected = source.count(table).await?;
        if n != expected {
            return Err(Error::CopyRefused(format!("{table}: {n} rows read of {expected}; nothing was kept")));
        }
        copied.tables.push(((*table).to_owned(), n));
    }
    if matches!(target, Side::Postgres(_)) {
        for table in IDENTITIES {
            target.execute(&crate::postgres::identity_follows_sql(table)).await?;
        }
    }
    target.execute("COMMIT").await?;
    source.execute("COMMIT").await?;
    // Counted again once committed: what the target holds now is what was read.
    for (table, n) in &copied.tables {
        let held = target.count(table).await?;
        if held != *n {
            return Err(Error::CopyRefused(format!(
                "{to} holds {held} rows of {table} after the copy, {n} were copied: check it before use"
            )));
        }
    }
    Ok(copied)
}

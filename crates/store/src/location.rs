//! Where a Tidings database is: an SQLite file in the data directory (the default), or a PostgreSQL database
//! named by its URL. The URL's password is never shown: not in errors, logs or `Debug` output.

use crate::{PgStore, Result, SqliteStore, Store};
use sqlx::postgres::PgConnectOptions;
use std::{fmt, path::PathBuf, str::FromStr, sync::Arc};
use tidings_core::Invalid;

/// A database to open.
#[derive(Clone, PartialEq, Eq)]
pub enum Database {
    Sqlite(PathBuf),
    Postgres(PostgresUrl),
}

impl Database {
    /// Opens it, bringing its schema up to date.
    pub async fn open(&self) -> Result<Arc<dyn Store>> {
        Ok(match self {
            Database::Sqlite(path) => Arc::new(SqliteStore::open(path).await?),
            Database::Postgres(url) => Arc::new(PgStore::open(url.expose()).await?),
        })
    }

    /// Whether several nodes may share it (and so the outbox, the configuration and every account).
    pub fn is_shared(&self) -> bool {
        matches!(self, Database::Postgres(_))
    }
}

impl fmt::Display for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Database::Sqlite(path) => write!(f, "SQLite {}", path.display()),
            Database::Postgres(url) => write!(f, "PostgreSQL {url}"),
        }
    }
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A `postgres://` URL, checked; shown with its password replaced by `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresUrl(String);

impl PostgresUrl {
    pub fn parse(text: &str) -> Result<Self, Invalid> {
        let text = text.trim();
        if !(text.starts_with("postgres://") || text.starts_with("postgresql://")) {
            return Err(Invalid::new(
                "the database URL must start with postgres:// (postgres://USER:PASSWORD@HOST:PORT/DATABASE); \
                 without --database-url, Tidings keeps its database in the data directory",
            ));
        }
        PgConnectOptions::from_str(text).map_err(|_| {
            Invalid::new(
                "the database URL cannot be read: write it as postgres://USER:PASSWORD@HOST:PORT/DATABASE, with \
                 any special character of the password percent-encoded (@ as %40, / as %2F)",
            )
        })?;
        Ok(Self(text.to_owned()))
    }

    /// The URL with its password, to connect.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PostgresUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // scheme://user:password@rest → scheme://user:***@rest; the password ends at the last '@' of the
        // authority (before the first '/' after the scheme).
        let (scheme, rest) = self.0.split_once("://").unwrap_or(("postgres", &self.0));
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(authority_end);
        match authority.rsplit_once('@') {
            Some((user_info, host)) => {
                let user = user_info.split_once(':').map_or(user_info, |(user, _)| user);
                let masked = if user_info.contains(':') { format!("{user}:***") } else { user.to_owned() };
                write!(f, "{scheme}://{masked}@{host}{}", strip_password_param(path))
            }
            None => write!(f, "{scheme}://{authority}{}", strip_password_param(path)),
        }
    }
}

/// The path and query with a `password=` parameter's value masked.
fn strip_password_param(path: &str) -> String {
    let Some((before, query)) = path.split_once('?') else { return path.to_owned() };
    let query: Vec<String> = query
        .split('&')
        .map(|p| match p.split_once('=') {
            Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
            _ => p.to_owned(),
        })
        .collect();
    format!("{before}?{}", query.join("&"))
}

impl fmt::Debug for PostgresUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_is_never_shown() {
        for (url, shown) in [
            ("postgres://tidings:s3cr%40t@db.example:5432/mail", "postgres://tidings:***@db.example:5432/mail"),
            ("postgresql://u:p@h/d?sslmode=require&password=x", "postgresql://u:***@h/d?sslmode=require&password=***"),
            ("postgres://u@h/d", "postgres://u@h/d"),
            ("postgres://h:5432/d", "postgres://h:5432/d"),
        ] {
            let parsed = PostgresUrl::parse(url).unwrap();
            assert_eq!(parsed.to_string(), shown);
            assert_eq!(format!("{:?}", Database::Postgres(parsed.clone())), format!("PostgreSQL {shown}"));
            assert_eq!(parsed.expose(), url);
        }
    }

    #[test]
    fn a_url_that_is_not_postgres_is_refused_with_the_form_to_use() {
        let err = PostgresUrl::parse("mysql://u:p@h/d").unwrap_err();
        assert!(err.reason().contains("postgres://USER:PASSWORD@HOST:PORT/DATABASE"), "{}", err.reason());
        let err = PostgresUrl::parse("postgres://u:p@h:notaport/d").unwrap_err();
        assert!(err.reason().contains("cannot be read"), "{}", err.reason());
        assert!(!err.reason().contains("u:p"), "{}", err.reason());
    }
}

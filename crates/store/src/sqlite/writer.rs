//! The connection every write of this process goes through, held for the store's life.
//!
//! Writers take turns on it through a lock. A pool of one connection would do the same, but a pool pings each
//! connection given back to it (a round trip to the connection's thread, from a task of its own) before the next
//! writer may have it. On the path of every accepted message, the wait for the writer before a commit was
//! 179–311 µs with the pool and 77–104 µs held, under the gateway benchmark's load (docs/BENCHMARKS.md).

use crate::{Error, Result};
use sqlx::{Connection, SqliteConnection, sqlite::SqliteConnectOptions};
use std::ops::{Deref, DerefMut};
use tokio::sync::{MappedMutexGuard, Mutex, MutexGuard};

#[derive(Debug)]
pub(super) struct Writer(Mutex<Option<Held>>);

#[derive(Debug)]
struct Held {
    conn: SqliteConnection,
    /// A batch began a transaction of its own and did not finish it (a statement failed, or its caller's future
    /// was dropped half-way): the next writer rolls it back first.
    unfinished: bool,
}

/// A writer's turn: the connection, until dropped.
#[derive(Debug)]
pub(super) struct Writing<'a>(MappedMutexGuard<'a, Held>);

impl Writer {
    pub(super) async fn open(options: &SqliteConnectOptions) -> Result<Self> {
        let conn = SqliteConnection::connect_with(options).await?;
        Ok(Self(Mutex::new(Some(Held { conn, unfinished: false }))))
    }

    /// Waits for the connection; fails once the store is closed.
    pub(super) async fn lock(&self) -> Result<Writing<'_>> {
        let mut held = MutexGuard::try_map(self.0.lock().await, Option::as_mut).map_err(|_| Error::Closed)?;
        if held.unfinished {
            // Fails harmlessly when the failed statement took the transaction with it.
            let _ = sqlx::query("ROLLBACK").execute(&mut held.conn).await;
            held.unfinished = false;
        }
        Ok(Writing(held))
    }

    /// Closes the connection, checkpointing the WAL; later writes fail.
    pub(super) async fn close(&self) {
        if let Some(held) = self.0.lock().await.take() {
            let _ = held.conn.close().await;
        }
    }
}

impl Writing<'_> {
    /// Marks a batch's own transaction as begun (true) or finished (false).
    pub(super) fn set_unfinished(&mut self, unfinished: bool) {
        self.0.unfinished = unfinished;
    }
}

impl Deref for Writing<'_> {
    type Target = SqliteConnection;
    fn deref(&self) -> &SqliteConnection {
        &self.0.conn
    }
}

impl DerefMut for Writing<'_> {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        &mut self.0.conn
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn after_closing_a_turn_is_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let options = SqliteConnectOptions::new().filename(dir.path().join("w.db")).create_if_missing(true);
        let writer = Writer::open(&options).await.unwrap();
        sqlx::query("CREATE TABLE t (n INTEGER)").execute(&mut *writer.lock().await.unwrap()).await.unwrap();
        writer.close().await;
        let err = writer.lock().await.unwrap_err();
        assert!(matches!(err, Error::Closed), "{err}");
        assert!(err.to_string().contains("shutting down"), "{err}");
    }
}

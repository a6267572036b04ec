//! A write transaction that travels with its statements.
//!
//! Each statement sqlx runs is a round trip to the connection's thread, and its own `BEGIN` and `COMMIT` are two
//! more, each waiting for the caller to take the answer. The outbox's hot writes (accepting a burst, settling
//! deliveries) instead send `BEGIN IMMEDIATE` with their first statement and `COMMIT` with their last: one round
//! trip per chunk of rows, the whole batch still one atomic, durable commit.

use super::writer::Writing;
use sqlx::SqliteConnection;

/// The writer's turn, taken for one batch. Should the batch not finish (a statement failed, or the caller's future
/// was dropped half-way), the writer rolls its transaction back before the next turn.
#[derive(Debug)]
pub(super) struct Batch<'a, 'w> {
    writing: &'a mut Writing<'w>,
    statements: usize,
    /// How many statements were framed so far: the first carries the `BEGIN`, the last the `COMMIT`.
    sent: usize,
}

impl<'a, 'w> Batch<'a, 'w> {
    /// A batch of `statements` statements (at least one) on the writer.
    pub(super) fn start(writing: &'a mut Writing<'w>, statements: usize) -> Self {
        writing.set_unfinished(true);
        Self { writing, statements: statements.max(1), sent: 0 }
    }

    /// The next statement's SQL, framed with the transaction's start or end where it is the first or last, and
    /// the connection to run it on.
    pub(super) fn next(&mut self, sql: &str) -> (String, &mut SqliteConnection) {
        self.sent += 1;
        let begin = if self.sent == 1 { "BEGIN IMMEDIATE;\n" } else { "" };
        let commit = if self.sent == self.statements { ";\nCOMMIT" } else { "" };
        (format!("{begin}{sql}{commit}"), &mut **self.writing)
    }

    /// The batch committed.
    pub(super) fn finish(self) {
        if self.sent == self.statements {
            self.writing.set_unfinished(false);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::{Result, sqlite::writer::Writer};
    use sqlx::sqlite::SqliteConnectOptions;

    async fn writer(dir: &tempfile::TempDir) -> Writer {
        let options = SqliteConnectOptions::new().filename(dir.path().join("batch.db")).create_if_missing(true);
        let writer = Writer::open(&options).await.unwrap();
        sqlx::query("CREATE TABLE t (n INTEGER PRIMARY KEY)")
            .execute(&mut *writer.lock().await.unwrap())
            .await
            .unwrap();
        writer
    }

    async fn rows(writer: &Writer) -> Vec<i64> {
        sqlx::query_scalar("SELECT n FROM t ORDER BY n").fetch_all(&mut *writer.lock().await.unwrap()).await.unwrap()
    }

    /// Runs `statements` as one batch; stops after `run` of them without finishing when `run` is fewer.
    async fn batch(writer: &Writer, statements: &[&str], run: usize) -> Result<()> {
        let mut writing = writer.lock().await?;
        let mut batch = Batch::start(&mut writing, statements.len());
        for sql in &statements[..run] {
            let (sql, conn) = batch.next(sql);
            sqlx::query(&sql).execute(conn).await?;
        }
        if run == statements.len() {
            batch.finish();
        }
        Ok(())
    }

    #[tokio::test]
    async fn a_batch_commits_all_its_statements_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let writer = writer(&dir).await;
        let statements = ["INSERT INTO t VALUES (1)", "INSERT INTO t VALUES (2), (3)", "INSERT INTO t VALUES (4)"];
        batch(&writer, &statements, 3).await.unwrap();
        assert_eq!(rows(&writer).await, [1, 2, 3, 4]);
    }

    #[tokio::test]
    async fn a_failed_statement_undoes_the_batch_and_leaves_the_writer_usable() {
        let dir = tempfile::tempdir().unwrap();
        let writer = writer(&dir).await;
        // The second statement breaks the primary key: the first one's row goes too.
        let err = batch(&writer, &["INSERT INTO t VALUES (1)", "INSERT INTO t VALUES (2), (2)"], 2).await.unwrap_err();
        assert!(err.to_string().contains("UNIQUE"), "{err}");
        assert_eq!(rows(&writer).await, Vec::<i64>::new());
        // Were the writer's next turn inside the failed transaction, this BEGIN would fail.
        batch(&writer, &["INSERT INTO t VALUES (5)", "INSERT INTO t VALUES (6)"], 2).await.unwrap();
        assert_eq!(rows(&writer).await, [5, 6]);
    }

    #[tokio::test]
    async fn a_batch_dropped_half_way_stores_nothing_and_leaves_the_writer_usable() {
        let dir = tempfile::tempdir().unwrap();
        let writer = writer(&dir).await;
        // As when the caller's future is dropped between two statements: the first one's BEGIN is open.
        batch(&writer, &["INSERT INTO t VALUES (1)", "INSERT INTO t VALUES (2)"], 1).await.unwrap();
        assert_eq!(rows(&writer).await, Vec::<i64>::new());
        batch(&writer, &["INSERT INTO t VALUES (3)"], 1).await.unwrap();
        assert_eq!(rows(&writer).await, [3]);
    }
}

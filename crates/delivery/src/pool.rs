//! Open relay connections kept for the next message, so a burst of notifications does not open a connection
//! each. Connections belong to one configuration revision and are not reused after it changes or after
//! sitting idle too long (relays drop idle sessions). A connection authenticated as a device account's own
//! mailbox serves only that account's messages.

use crate::smtp::Connection;
use std::{sync::Mutex, time::Duration};
use tokio::time::Instant;

/// Idle connections, newest last.
#[derive(Debug)]
pub struct Pool {
    idle: Mutex<Vec<Idle>>,
    max_idle: usize,
    idle_timeout: Duration,
}

#[derive(Debug)]
struct Idle {
    connection: Connection,
    revision: i64,
    /// The device account it is authenticated for; `None` for the relay account.
    identity: Option<String>,
    since: Instant,
}

impl Pool {
    pub fn new(max_idle: usize, idle_timeout: Duration) -> Self {
        Self { idle: Mutex::new(Vec::new()), max_idle, idle_timeout }
    }

    /// A connection opened under `revision` for `identity` that has not idled too long, if any. Stale ones
    /// are closed.
    pub fn take(&self, revision: i64, identity: Option<&str>) -> Option<Connection> {
        let mut stale = Vec::new();
        let found = {
            let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            let (keep, old): (Vec<Idle>, Vec<Idle>) =
                idle.drain(..).partition(|i| i.revision == revision && now.duration_since(i.since) < self.idle_timeout);
            *idle = keep;
            stale.extend(old);
            let mine = idle.iter().rposition(|i| i.identity.as_deref() == identity);
            mine.map(|at| idle.remove(at).connection)
        };
        close_all(stale);
        found
    }

    /// Keeps a connection for reuse (closing it when the pool is full).
    pub fn put(&self, connection: Connection, revision: i64, identity: Option<&str>) {
        let overflow = {
            let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
            if idle.len() >= self.max_idle {
                Some(connection)
            } else {
                idle.push(Idle { connection, revision, identity: identity.map(str::to_owned), since: Instant::now() });
                None
            }
        };
        if let Some(connection) = overflow {
            tokio::spawn(connection.quit());
        }
    }

    /// Closes every idle connection.
    pub fn clear(&self) {
        let all: Vec<Idle> = self.idle.lock().unwrap_or_else(|e| e.into_inner()).drain(..).collect();
        close_all(all);
    }
}

fn close_all(connections: Vec<Idle>) {
    for idle in connections {
        tokio::spawn(idle.connection.quit());
    }
}

//! Changes told to the other nodes: a write that others must act on sends `NOTIFY tidings, '<topic>'` in its own
//! transaction (so it is told once committed, and never when rolled back), and each daemon `LISTEN`s on one
//! connection of its own and wakes the part concerned. An idle daemon so learns of a change at once without
//! asking the database for it.

use super::Tx;
use crate::{Listeners, Result};
use sqlx::{PgPool, postgres::PgListener};
use std::time::Duration;

const CHANNEL: &str = "tidings";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Topic {
    Config,
    Outbox,
    Events,
    Authorization,
}

impl Topic {
    fn as_str(self) -> &'static str {
        match self {
            Topic::Config => "config",
            Topic::Outbox => "outbox",
            Topic::Events => "events",
            Topic::Authorization => "authorization",
        }
    }
}

/// Tells the other nodes about `topic` when `tx` commits.
pub(super) async fn tell(tx: &mut Tx<'_>, topic: Topic) -> Result<()> {
    sqlx::query("SELECT pg_notify($1, $2)").bind(CHANNEL).bind(topic.as_str()).execute(&mut **tx).await?;
    Ok(())
}

/// Starts listening: `LISTEN` on a connection of its own, then a task that wakes `listeners` for each change,
/// until the pool is closed. A lost connection is opened again, and everyone woken, as changes may have been
/// missed meanwhile.
pub(super) async fn listen(pool: &PgPool, listeners: Listeners) -> Result<()> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANNEL).await?;
    let pool = pool.clone();
    tokio::spawn(async move {
        loop {
            match listener.try_recv().await {
                Ok(Some(notification)) => match notification.payload() {
                    "config" => listeners.config.notify_one(),
                    "outbox" => listeners.outbox.notify_one(),
                    "events" => listeners.events.notify_one(),
                    "authorization" => listeners.authorization.notify_one(),
                    _ => {}
                },
                // The connection was lost; the next call connects again.
                Ok(None) => listeners.wake_all(),
                Err(_) if pool.is_closed() => return,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for other nodes' changes; trying again");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    listeners.wake_all();
                }
            }
        }
    });
    Ok(())
}

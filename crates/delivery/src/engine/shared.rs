//! Admission on a database other nodes share: an identity's connections, pace and day are the cluster's, not
//! this node's. Under the identity's turn (one node deciding at a time), a run takes one of the identity's
//! connection slots, takes the identity's ledger from what every node recorded, asks the budgets as usual, and
//! records what it lets go at once, for the next node to see. A slot is held until the run ends, or by no one once
//! its node dies.

use tidings_app::App;
use tidings_core::outbox::budget::{self, Admit, Budgets, Usage};
use tidings_store::Turn;

/// The names an identity's turn and slots go by.
fn key(identity: Option<&str>) -> String {
    identity.map_or_else(|| "relay".to_owned(), |account| format!("mailbox:{account}"))
}

/// A run's admission: what the budgets said, and the connection slot to hold while it runs when it may go.
pub(super) async fn admit(
    app: &App,
    budgets: &mut Budgets,
    identity: Option<&str>,
    now: chrono::DateTime<chrono::Utc>,
    recipients: &[u32],
) -> Result<(Admit, Option<Turn>), tidings_store::Error> {
    let key = key(identity);
    let turn = app.store().turn(&format!("admit:{key}")).await?;
    let admitted = admit_in_turn(app, budgets, identity, &key, now, recipients).await;
    turn.release().await;
    admitted
}

async fn admit_in_turn(
    app: &App,
    budgets: &mut Budgets,
    identity: Option<&str>,
    key: &str,
    now: chrono::DateTime<chrono::Utc>,
    recipients: &[u32],
) -> Result<(Admit, Option<Turn>), tidings_store::Error> {
    let store = app.store();
    let slot = match budgets.limits().connections {
        Some(n) => match store.try_slot(&format!("connection:{key}"), n).await? {
            Some(slot) => Some(slot),
            None => return Ok((Admit::Busy, None)),
        },
        None => None,
    };
    budgets.sync(identity, &store.usage_since(now - budget::day()).await?, now);
    let admit = budgets.take(identity, now, recipients);
    let Admit::Go { count, .. } = &admit else { return Ok((admit, None)) };
    // Recorded at the time it goes (not its minute), so that the others' pace counts it exactly.
    let went = Usage {
        identity: identity.map(str::to_owned),
        minute: now,
        messages: *count as u32,
        recipients: recipients[..*count].iter().sum(),
    };
    store.settle(&[], &[went]).await?;
    Ok((admit, slot))
}

//! Recording outcomes: whatever arrives within the settle window of the first goes into one commit, with what
//! each identity sent.

use std::{sync::Arc, time::Duration};
use tidings_app::App;
use tidings_core::outbox::{
    self,
    budget::{self, Usage},
};
use tidings_store::Settlement;
use tokio::sync::{Notify, mpsc};

/// An attempt's outcome for the store, and what it sent for the budgets.
pub(super) struct Settled {
    pub(super) settlement: Settlement,
    pub(super) usage: Option<Usage>,
    /// For a message delivered: how long since it was accepted (or retried by hand).
    pub(super) waited: Option<Duration>,
}

/// The most outcomes one commit writes.
pub(super) const SETTLE_BATCH: usize = 256;

/// Waits for a first item, then takes what else arrives within `window` of it (up to the batch size); 0 once
/// the channel is closed and empty.
pub(super) async fn gather<T>(rx: &mut mpsc::Receiver<T>, batch: &mut Vec<T>, window: Duration) -> usize {
    if rx.recv_many(batch, SETTLE_BATCH).await == 0 {
        return 0;
    }
    let until = tokio::time::Instant::now() + window;
    while batch.len() < SETTLE_BATCH {
        let room = SETTLE_BATCH - batch.len();
        if !matches!(tokio::time::timeout_at(until, rx.recv_many(batch, room)).await, Ok(1..)) {
            break;
        }
    }
    batch.len()
}

/// Writes outcomes in batches: whatever arrives within `window` of the first, in one commit.
pub(super) async fn settle_batches(app: App, mut rx: mpsc::Receiver<Settled>, wake: Arc<Notify>, window: Duration) {
    let mut batch = Vec::with_capacity(SETTLE_BATCH);
    while gather(&mut rx, &mut batch, window).await > 0 {
        let waited: Vec<Duration> = batch.iter().filter_map(|s| s.waited).collect();
        let (settlements, usage): (Vec<Settlement>, Vec<Option<Usage>>) =
            batch.drain(..).map(|s| (s.settlement, s.usage)).unzip();
        let usage = budget::tally(usage.iter().flatten().map(|u| (u.identity.as_deref(), u.minute, u.recipients)));
        let mut delay = Duration::from_millis(100);
        loop {
            match app.store().settle(&settlements, &usage).await {
                Ok(()) => break,
                Err(e) => {
                    // Leases protect the messages meanwhile: if this never succeeds they are delivered again.
                    tracing::error!(error = %e, count = settlements.len(), "could not record delivery outcomes; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(10));
                }
            }
        }
        let metrics = app.metrics();
        for s in &settlements {
            let attempt = &s.settled.attempt;
            metrics.count("tidings_delivery_attempts_total", &attempt.result);
            let stage = attempt.stage.map_or("complete", |stage| stage.as_str());
            metrics.attempt(stage, Duration::from_millis(attempt.duration_ms));
        }
        for waited in waited {
            metrics.delivered(waited);
        }
        // Deferred messages may now be due sooner than the engine planned.
        if settlements.iter().any(|s| s.settled.status == outbox::Status::Deferred) {
            wake.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn outcomes_arriving_within_the_window_are_gathered_into_one_batch() {
        let (tx, mut rx) = mpsc::channel(16);
        let window = Duration::from_millis(20);
        tokio::spawn(async move {
            for (delay, item) in [(0, 1), (5, 2), (10, 3), (30, 4), (0, 5)] {
                tokio::time::sleep(Duration::from_millis(delay)).await;
                tx.send(item).await.unwrap();
            }
        });
        let mut batch = Vec::new();
        assert_eq!(gather(&mut rx, &mut batch, window).await, 3);
        assert_eq!(batch, [1, 2, 3], "the fourth came 45 ms after the first");
        batch.clear();
        assert_eq!(gather(&mut rx, &mut batch, window).await, 2);
        assert_eq!(batch, [4, 5]);
        batch.clear();
        assert_eq!(gather(&mut rx, &mut batch, window).await, 0, "closed");
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_batch_is_written_without_waiting_for_the_window() {
        let (tx, mut rx) = mpsc::channel(SETTLE_BATCH + 1);
        for i in 0..=SETTLE_BATCH {
            tx.send(i).await.unwrap();
        }
        let started = tokio::time::Instant::now();
        let mut batch = Vec::new();
        assert_eq!(gather(&mut rx, &mut batch, Duration::from_secs(60)).await, SETTLE_BATCH);
        assert_eq!(started.elapsed(), Duration::ZERO);
    }
}

//! The configuration in force, kept current while the daemon runs.
//!
//! Other processes (the CLI above all) write the configuration straight to the database; a background task
//! compares the stored revision with the one in force every poll interval and, when it moved, loads the new
//! configuration and publishes it to every subscriber.

use std::{sync::Arc, time::Duration};
use tidings_app::{App, settings::Current};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// A handle on the configuration in force.
#[derive(Clone, Debug)]
pub struct LiveConfig {
    receiver: watch::Receiver<Arc<Current>>,
    sender: Arc<watch::Sender<Arc<Current>>>,
    app: App,
}

impl LiveConfig {
    /// Loads the configuration and starts watching for changes until `shutdown`.
    pub async fn start(app: App, every: Duration, shutdown: CancellationToken) -> tidings_app::Result<Self> {
        let first = app.current().await?;
        tracing::info!(revision = first.revision, "email configuration loaded");
        let (sender, receiver) = watch::channel(Arc::new(first));
        let sender = Arc::new(sender);
        let live = Self { receiver, sender: sender.clone(), app: app.clone() };
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(every);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    _ = ticker.tick() => {}
                }
                if let Err(e) = refresh(&app, &sender).await {
                    tracing::warn!(error = %e, "could not check the email configuration for changes; will retry");
                }
            }
        });
        Ok(live)
    }

    /// Loads a change this process just saved, so that what follows (a test email) already uses it.
    pub async fn refresh(&self) {
        if let Err(e) = refresh(&self.app, &self.sender).await {
            tracing::warn!(error = %e, "could not load the saved configuration; the next poll will");
        }
    }

    /// The configuration in force now.
    pub fn get(&self) -> Arc<Current> {
        self.receiver.borrow().clone()
    }

    /// A receiver that wakes on every change.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Current>> {
        self.receiver.clone()
    }
}

async fn refresh(app: &App, sender: &watch::Sender<Arc<Current>>) -> tidings_app::Result<()> {
    let stored = app.store().config_revision().await?;
    if stored == sender.borrow().revision {
        return Ok(());
    }
    let current = Arc::new(app.current().await?);
    // Published first, so that whoever reads the log line finds the new revision in force.
    sender.send_replace(current.clone());
    tracing::info!(
        revision = current.revision,
        saved_by = current.saved_by.as_deref().unwrap_or(""),
        "email configuration changed; now in force"
    );
    Ok(())
}

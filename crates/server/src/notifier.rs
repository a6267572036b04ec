//! The notifier: turns recorded events into mails (throttled), sends the daily notice when its slot passes,
//! and raises the "token refresh failing" alert. It runs on a wake-up (an event arrived through the API) and
//! on every poll (events recorded by other processes, the clock). On a database several nodes share, one of them
//! at a time holds the notifier's duty and does this for all, so that an event is mailed once, the daily notice
//! goes once a day, and the repeat window counts every node's events.

use chrono::{DateTime, Utc};
use std::{collections::BTreeMap, sync::Arc, time::Duration};
use tidings_app::{App, settings::Current};
use tidings_core::EmailConfig;
use tidings_core::notify::EventKind;
use tidings_oauth::{access_tokens::TokenManager, status::TokenStatus};
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

#[derive(Clone, Debug)]
pub struct NotifierOptions {
    /// How often to look for events recorded by other processes, and at the clock.
    pub poll_interval: Duration,
}

impl Default for NotifierOptions {
    fn default() -> Self {
        Self { poll_interval: Duration::from_secs(2) }
    }
}

pub(crate) struct Notifier {
    pub app: App,
    /// The configuration in force (read from memory: the notifier polls often and must stay cheap).
    pub config: watch::Receiver<Arc<Current>>,
    pub tokens: TokenManager,
    /// Woken when an event is recorded.
    pub wake: Arc<Notify>,
    /// Wakes the delivery engine when a mail was queued.
    pub deliver: Arc<Notify>,
    pub options: NotifierOptions,
}

impl Notifier {
    pub fn spawn(self, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let started = Utc::now();
            let holder = format!(
                "{}/{}/{}",
                tidings_app::host_name().unwrap_or_else(|| "node".into()),
                std::process::id(),
                started.timestamp_nanos_opt().unwrap_or_default()
            );
            // The failing spell already alerted about, so that one spell raises one alert.
            let mut alerted: Option<DateTime<Utc>> = None;
            // When the credentials' lifetimes were looked at, under which configuration revision.
            let mut expiries: Option<(i64, DateTime<Utc>)> = None;
            loop {
                let now = Utc::now();
                if let Err(e) = self.tick_on_duty(&holder, now, started, &mut alerted, &mut expiries).await {
                    tracing::warn!(error = %e, "notifications could not be handled; trying again");
                }
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep(self.options.poll_interval) => {}
                }
            }
        })
    }

    /// A tick, if this node holds the duty (taken for three polls, and kept by every tick).
    async fn tick_on_duty(
        &self,
        holder: &str,
        now: DateTime<Utc>,
        started: DateTime<Utc>,
        alerted: &mut Option<DateTime<Utc>>,
        expiries: &mut Option<(i64, DateTime<Utc>)>,
    ) -> tidings_app::Result<()> {
        let term = tidings_app::later(now, (self.options.poll_interval * 3).max(Duration::from_secs(10)));
        if !self.app.store().hold_duty("notifier", holder, now, term).await? {
            return Ok(());
        }
        self.tick(now, started, alerted, expiries).await
    }

    async fn tick(
        &self,
        now: DateTime<Utc>,
        started: DateTime<Utc>,
        alerted: &mut Option<DateTime<Utc>>,
        expiries: &mut Option<(i64, DateTime<Utc>)>,
    ) -> tidings_app::Result<()> {
        let current = self.config.borrow().clone();
        let config = &current.config;
        let status = self.tokens.status().borrow().clone();
        self.check_token(config, &status, now, alerted).await?;
        // Lifetimes are days long: looked at once a minute, and at once when the configuration changes.
        if expiries
            .is_none_or(|(revision, at)| revision != current.revision || now - at >= chrono::Duration::minutes(1))
        {
            self.app.check_expiries(config, now).await?;
            *expiries = Some((current.revision, now));
        }
        let dispatched = self.app.dispatch_events_under(config, now).await?;
        if dispatched.mailed > 0 || dispatched.counted > 0 {
            tracing::info!(mailed = dispatched.mailed, counted = dispatched.counted, "event notifications");
        }
        let notice = if config.admin.daily_notice {
            let token = tidings_oauth::status::report(&self.app, Some(status)).await?.status.summary();
            self.app.daily_notice_under(config, now, started, &token).await?
        } else {
            None
        };
        if let Some(id) = notice {
            tracing::info!(message_id = id, "daily communication notice queued");
        }
        if dispatched.mailed > 0 || notice.is_some() {
            self.deliver.notify_one();
        }
        Ok(())
    }

    /// Raises `oauth.refresh_failing` once per failing spell that lasts `admin.token_alert_after`.
    async fn check_token(
        &self,
        config: &EmailConfig,
        status: &TokenStatus,
        now: DateTime<Utc>,
        alerted: &mut Option<DateTime<Utc>>,
    ) -> tidings_app::Result<()> {
        let TokenStatus::Failing { reason, since } = status else {
            *alerted = None;
            return Ok(());
        };
        let after = config.admin.token_alert_after;
        let long = chrono::Duration::from_std(after).unwrap_or(chrono::TimeDelta::MAX);
        if *alerted == Some(*since) || now - *since < long {
            return Ok(());
        }
        let details = BTreeMap::from([
            ("reason".to_owned(), reason.clone()),
            ("since".to_owned(), since.format("%Y-%m-%d %H:%M UTC").to_string()),
        ]);
        self.app.raise_event(EventKind::RefreshFailing, details).await?;
        *alerted = Some(*since);
        Ok(())
    }
}

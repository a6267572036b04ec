//! What the status page, `GET /api/v1/status`, `/readyz` and the metrics read of the daemon now: the outbox's
//! counts and ends, the relay's circuits, the token, the gateway, this node's role and the credentials'
//! lifetimes, with the core's verdict on them (`tidings_core::glance`).

use super::{Context, oauth::live_report};
use chrono::{DateTime, Utc};
use tidings_app::expiry::Lifetime;
use tidings_core::{
    glance::{self, Facts, Glance, Token},
    outbox::{
        Attempt, Status,
        circuit::{Circuit, Down, Health},
    },
};
use tidings_oauth::status::{TokenReport, TokenStatus};

/// The daemon at one moment.
#[derive(Debug)]
pub struct Snapshot {
    pub at: DateTime<Utc>,
    pub queue: Vec<(Status, u64)>,
    pub ages: tidings_store::QueueAges,
    /// The last delivery's last attempt: the relay's reply.
    pub last_reply: Option<Attempt>,
    pub relay: Option<String>,
    pub health: Health,
    pub token: TokenReport,
    pub gateway: tidings_gateway::Report,
    pub gateway_connections: usize,
    pub last_accepted: Option<tidings_gateway::Accepted>,
    pub membership: tidings_app::cluster::Membership,
    pub lifetimes: Vec<Lifetime>,
    pub glance: Glance,
}

impl Snapshot {
    /// The relay's circuit when it is down.
    pub fn relay_down(&self) -> Option<&Down> {
        self.health.relay.as_ref()
    }

    /// The identities held back, by account (`None`: the relay account).
    pub fn identities_down(&self) -> impl Iterator<Item = (Option<&str>, &Down)> {
        self.health.downs().filter_map(|(circuit, down)| match circuit {
            Circuit::Identity(account) => Some((account, down)),
            Circuit::Relay => None,
        })
    }

    pub fn waiting(&self) -> u64 {
        self.queue.iter().filter(|(s, _)| !s.is_final()).map(|(_, n)| n).sum()
    }
}

/// Reads everything the status page shows.
pub async fn snapshot(context: &Context) -> tidings_app::Result<Snapshot> {
    let inner = &context.inner;
    let app = &inner.app;
    let now = Utc::now();
    let current = inner.config.get();
    let config = &current.config;
    let store = app.store();
    let queue = store.queue_counts().await?;
    let ages = store.queue_ages().await?;
    let last_reply = match ages.last_delivered {
        Some((id, _)) => app.message(id).await?.and_then(|m| m.attempt_log.last().cloned()),
        None => None,
    };
    let health = app.delivery_health().await?;
    let token = live_report(context).await?;
    let gateway = inner.gateway.report();
    let lifetimes = lifetimes(context, &current).await?;
    let soon = config.oauth.expiry_warnings.iter().max().copied().unwrap_or_default();
    let facts = Facts {
        configured: config.smtp.host.is_some() || config.delivery.transport != tidings_core::config::Transport::Smtp,
        relay_down: health.relay.is_some(),
        identity_down: health.downs().any(|(c, _)| matches!(c, Circuit::Identity(_))),
        token: match &token.status {
            TokenStatus::NotConfigured => Token::NotUsed,
            TokenStatus::Acquired | TokenStatus::Active { .. } => Token::Fine,
            TokenStatus::AuthorizationRequired | TokenStatus::AuthorizationPending { .. } => Token::Missing,
            TokenStatus::Failing { .. } => Token::Failing,
            TokenStatus::ReauthorizationRequired { .. } => Token::Refused,
        },
        gateway_stopped: !gateway.stops().is_empty(),
        gateway_degraded: !gateway.problems().is_empty(),
        oldest_waiting: ages.oldest_waiting.map(|(id, at)| (id, (now - at).to_std().unwrap_or_default())),
        failed_since_delivery: ages
            .last_failed
            .filter(|(_, failed)| ages.last_delivered.is_none_or(|(_, delivered)| delivered < *failed))
            .map(|(id, _)| id),
        credential_ended: lifetimes.iter().any(|l| l.ends_at <= now),
        credential_ending: lifetimes.iter().any(|l| (l.ends_at - now).to_std().is_ok_and(|left| left <= soon)),
        backlog_after: config.delivery.backlog_warning,
    };
    Ok(Snapshot {
        at: now,
        queue,
        ages,
        last_reply,
        relay: config.smtp.host.as_ref().map(|host| format!("{host}:{}", config.smtp.effective_port())),
        health,
        token,
        gateway,
        gateway_connections: inner.gateway.connections(),
        last_accepted: inner.gateway.last_accepted(),
        membership: app.membership().await?,
        lifetimes,
        glance: glance::assess(&facts),
    })
}

/// How long the credentials' lifetimes are read again at most once: they change over days, or with the
/// configuration (read again at once then).
const LIFETIMES_KEPT: std::time::Duration = std::time::Duration::from_secs(30);

/// The credentials' lifetimes, read at most once per [`LIFETIMES_KEPT`] and configuration revision, however many
/// pages, probes and scrapes ask.
async fn lifetimes(context: &Context, current: &tidings_app::settings::Current) -> tidings_app::Result<Vec<Lifetime>> {
    let kept = context.inner.lifetimes.lock().unwrap_or_else(|e| e.into_inner()).clone();
    if let Some((at, revision, lifetimes)) = kept
        && revision == current.revision
        && at.elapsed() < LIFETIMES_KEPT
    {
        return Ok(lifetimes);
    }
    let fresh = context.inner.app.lifetimes(&current.config).await?;
    let entry = (std::time::Instant::now(), current.revision, fresh.clone());
    *context.inner.lifetimes.lock().unwrap_or_else(|e| e.into_inner()) = Some(entry);
    Ok(fresh)
}

//! `GET /metrics`: the OpenMetrics text format, written by `prometheus-client`. The gauges are read when
//! scraped, from the same service as the status page and `/readyz` (`service::status`); deliveries, token
//! refreshes, sign-ins and the gateway's sessions are this process's counters and histograms
//! (`tidings_app::metrics`).

use super::{Context, error::ApiError};
use crate::service::caller::Caller;
use axum::{Router, extract::State, http::header, response::IntoResponse, routing::get};
use prometheus_client::{
    encoding::text::encode,
    metrics::{counter::ConstCounter, family::Family, gauge::Gauge},
    registry::{Registry, Unit},
};
use tidings_app::metrics::Labels;
use tidings_core::outbox::circuit::Circuit;

pub fn router() -> Router<Context> {
    Router::new().route("/metrics", get(metrics))
}

/// A gauge family filled with `values`, one per label set.
fn gauges(values: impl IntoIterator<Item = (Labels, i64)>) -> Family<Labels, Gauge> {
    let family = Family::<Labels, Gauge>::default();
    for (labels, value) in values {
        family.get_or_create(&labels).set(value);
    }
    family
}

fn gauge(value: i64) -> Gauge {
    let gauge = Gauge::default();
    gauge.set(value);
    gauge
}

fn label(name: &str, value: &str) -> Labels {
    vec![(name.to_owned(), value.to_owned())]
}

async fn metrics(State(context): State<Context>, _caller: Caller) -> Result<impl IntoResponse, ApiError> {
    let app = &context.inner.app;
    // The same figures as the status page's and `/readyz`'s.
    let snapshot = crate::service::status::snapshot(&context).await?;
    let now = snapshot.at;
    let mut r = Registry::default();
    r.register(
        "tidings_queue_messages",
        "Messages in the outbox by status.",
        gauges(snapshot.queue.iter().map(|(status, n)| (label("status", status.as_str()), *n as i64))),
    );
    let events = app.store().event_counts().await.map_err(tidings_app::Error::from)?;
    r.register(
        "tidings_events",
        "Events recorded, by kind and what became of them.",
        gauges(events.iter().map(|(kind, state, n)| {
            (vec![("kind".into(), kind.id().into()), ("state".into(), state.as_str().into())], *n as i64)
        })),
    );
    r.register_with_unit(
        "tidings_oldest_waiting",
        "How long the message waiting longest (queued, sending or deferred) has waited; 0 when none waits.",
        Unit::Seconds,
        gauge(snapshot.ages.oldest_waiting.map_or(0, |(_, at)| (now - at).num_seconds().max(0))),
    );
    r.register(
        "tidings_last_delivery_timestamp_seconds",
        "When the last message was delivered (Unix time; 0: none yet).",
        gauge(snapshot.ages.last_delivered.map_or(0, |(_, at)| at.timestamp())),
    );
    if let Some(nodes) = context.nodes().await? {
        r.register(
            "tidings_database_nodes",
            "Daemons sharing this database and heard from within three heartbeats.",
            gauge(nodes.iter().filter(|n| n.live).count() as i64),
        );
        r.register(
            "tidings_node_leased_messages",
            "Messages each daemon of the database holds leased now.",
            gauges(nodes.iter().map(|n| (label("node", &n.peer.node), n.peer.leased as i64))),
        );
    }
    r.register(
        "tidings_token_state",
        "The OAuth token's state (1 for the current one).",
        gauges([(label("state", snapshot.token.status.as_str()), 1)]),
    );
    let health = &snapshot.health;
    r.register(
        "tidings_relay_up",
        "Whether the relay is taken as up (1) or down (0: messages wait for a probe).",
        gauge(i64::from(health.relay.is_none())),
    );
    r.register(
        "tidings_relay_down_since_seconds",
        "When the relay went down (Unix time; 0 while it is up).",
        gauge(health.relay.as_ref().map_or(0, |d| d.since.timestamp())),
    );
    let down = health.downs().filter_map(|(circuit, _)| match circuit {
        Circuit::Identity(account) => Some((label("account", account.unwrap_or("")), 1)),
        Circuit::Relay => None,
    });
    r.register(
        "tidings_identity_down",
        "Identities taken as down (credentials or token refused, a provider's limit), by device account (empty: the relay account).",
        gauges(down),
    );
    let standings = app.delivery_budgets().await?;
    let account = |s: &tidings_core::outbox::budget::Standing| label("account", s.account.as_deref().unwrap_or(""));
    r.register(
        "tidings_identity_recipients_last_day",
        "Recipients sent in the last 24 hours, by identity (empty: the relay account); stored every few seconds.",
        gauges(standings.iter().map(|s| (account(s), s.last_day as i64))),
    );
    r.register(
        "tidings_identity_budget_spent",
        "Whether the identity's recipients a day are spent (1: its messages wait).",
        gauges(standings.iter().map(|s| (account(s), i64::from(s.waiting_until.is_some())))),
    );
    let listeners = snapshot.gateway.listeners.iter().map(|l| {
        let tls = if l.implicit_tls { "implicit" } else { "starttls" };
        (vec![("address".into(), l.address.clone()), ("tls".into(), tls.into())], i64::from(l.error.is_none()))
    });
    r.register(
        "tidings_gateway_listener_up",
        "Whether each configured gateway listener listens (1) or could not start (0).",
        gauges(listeners),
    );
    r.register("tidings_gateway_connections", "Gateway sessions open now.", gauge(snapshot.gateway_connections as i64));
    r.register(
        "tidings_credential_expiry_timestamp_seconds",
        "When each credential in use ends (Unix time): tidings expiries lists them.",
        gauges(snapshot.lifetimes.iter().map(|l| (label("credential", &l.credential), l.ends_at.timestamp()))),
    );
    r.register(
        "tidings_password_hashes",
        "Password hashes computed (sign-ins and gateway authentications).",
        ConstCounter::new(app.password_checks().hashes()),
    );
    app.metrics().register(&mut r);
    let mut out = String::new();
    encode(&mut out, &r).map_err(|e| tidings_app::Error::Input(format!("the metrics cannot be written: {e}")))?;
    Ok(([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], out))
}

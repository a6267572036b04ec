//! `GET /metrics`: Prometheus' text format. The queue by status and events by kind come from the database;
//! deliveries, token refreshes and sign-ins are this process's counters.

use super::{Context, error::ApiError};
use crate::service::caller::Caller;
use axum::{Router, extract::State, http::header, response::IntoResponse, routing::get};
use std::fmt::Write;
use tidings_app::metrics::escape;
use tidings_core::outbox::circuit::Circuit;

pub fn router() -> Router<Context> {
    Router::new().route("/metrics", get(metrics))
}

async fn metrics(State(context): State<Context>, _caller: Caller) -> Result<impl IntoResponse, ApiError> {
    let app = &context.inner.app;
    // The same figures as the status page's and `/readyz`'s.
    let snapshot = crate::service::status::snapshot(&context).await?;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP tidings_queue_messages Messages in the outbox by status.\n# TYPE tidings_queue_messages gauge"
    );
    for (status, n) in &snapshot.queue {
        let _ = writeln!(out, "tidings_queue_messages{{status=\"{status}\"}} {n}");
    }
    let _ = writeln!(
        out,
        "# HELP tidings_events Events recorded, by kind and what became of them.\n# TYPE tidings_events gauge"
    );
    for (kind, state, n) in app.store().event_counts().await.map_err(tidings_app::Error::from)? {
        let _ = writeln!(out, "tidings_events{{kind=\"{}\",state=\"{}\"}} {n}", escape(kind.id()), state.as_str());
    }
    if let Some(nodes) = context.nodes().await? {
        let _ = writeln!(
            out,
            "# HELP tidings_database_nodes Daemons sharing this database and heard from within three heartbeats.\n# TYPE tidings_database_nodes gauge\ntidings_database_nodes {}",
            nodes.iter().filter(|n| n.live).count()
        );
        let _ = writeln!(
            out,
            "# HELP tidings_node_leased_messages Messages each daemon of the database holds leased now.\n# TYPE tidings_node_leased_messages gauge"
        );
        for n in &nodes {
            let _ =
                writeln!(out, "tidings_node_leased_messages{{node=\"{}\"}} {}", escape(&n.peer.node), n.peer.leased);
        }
    }
    let now = snapshot.at;
    let _ = writeln!(
        out,
        "# HELP tidings_oldest_waiting_seconds How long the message waiting longest (queued, sending or deferred) has waited; 0 when none waits.\n# TYPE tidings_oldest_waiting_seconds gauge\ntidings_oldest_waiting_seconds {}",
        snapshot.ages.oldest_waiting.map_or(0, |(_, at)| (now - at).num_seconds().max(0))
    );
    let _ = writeln!(
        out,
        "# HELP tidings_last_delivery_timestamp_seconds When the last message was delivered (Unix time; 0: none yet).\n# TYPE tidings_last_delivery_timestamp_seconds gauge\ntidings_last_delivery_timestamp_seconds {}",
        snapshot.ages.last_delivered.map_or(0, |(_, at)| at.timestamp())
    );
    let live = &snapshot.token.status;
    let _ = writeln!(
        out,
        "# HELP tidings_token_state The OAuth token's state (1 for the current one).\n# TYPE tidings_token_state gauge"
    );
    let _ = writeln!(out, "tidings_token_state{{state=\"{}\"}} 1", live.as_str());
    let health = &snapshot.health;
    let _ = writeln!(
        out,
        "# HELP tidings_relay_up Whether the relay is taken as up (1) or down (0: messages wait for a probe).\n# TYPE tidings_relay_up gauge\ntidings_relay_up {}",
        u8::from(health.relay.is_none())
    );
    let _ = writeln!(
        out,
        "# HELP tidings_relay_down_since_seconds When the relay went down (Unix time; 0 while it is up).\n# TYPE tidings_relay_down_since_seconds gauge\ntidings_relay_down_since_seconds {}",
        health.relay.as_ref().map_or(0, |d| d.since.timestamp())
    );
    let _ = writeln!(
        out,
        "# HELP tidings_identity_down Identities taken as down (credentials or token refused, a provider's limit), by device account (empty: the relay account).\n# TYPE tidings_identity_down gauge"
    );
    for (circuit, _) in health.downs() {
        if let Circuit::Identity(account) = circuit {
            let _ = writeln!(out, "tidings_identity_down{{account=\"{}\"}} 1", escape(account.unwrap_or("")));
        }
    }
    let standings = app.delivery_budgets().await?;
    let _ = writeln!(
        out,
        "# HELP tidings_identity_recipients_last_day Recipients sent in the last 24 hours, by identity (empty: the relay account); stored every few seconds.\n# TYPE tidings_identity_recipients_last_day gauge"
    );
    for s in &standings {
        let account = escape(s.account.as_deref().unwrap_or(""));
        let _ = writeln!(out, "tidings_identity_recipients_last_day{{account=\"{account}\"}} {}", s.last_day);
    }
    let _ = writeln!(
        out,
        "# HELP tidings_identity_budget_spent Whether the identity's recipients a day are spent (1: its messages wait).\n# TYPE tidings_identity_budget_spent gauge"
    );
    for s in &standings {
        let account = escape(s.account.as_deref().unwrap_or(""));
        let _ = writeln!(
            out,
            "tidings_identity_budget_spent{{account=\"{account}\"}} {}",
            u8::from(s.waiting_until.is_some())
        );
    }
    let gateway = &context.inner.gateway;
    let _ = writeln!(
        out,
        "# HELP tidings_gateway_listener_up Whether each configured gateway listener listens (1) or could not start (0).\n# TYPE tidings_gateway_listener_up gauge"
    );
    for l in gateway.report().listeners {
        let tls = if l.implicit_tls { "implicit" } else { "starttls" };
        let up = u8::from(l.error.is_none());
        let _ = writeln!(out, "tidings_gateway_listener_up{{address=\"{}\",tls=\"{tls}\"}} {up}", escape(&l.address));
    }
    let _ = writeln!(
        out,
        "# HELP tidings_gateway_connections Gateway sessions open now.\n# TYPE tidings_gateway_connections gauge\ntidings_gateway_connections {}",
        gateway.connections()
    );
    let _ = writeln!(
        out,
        "# HELP tidings_password_hashes_total Password hashes computed (sign-ins and gateway authentications).\n# TYPE tidings_password_hashes_total counter\ntidings_password_hashes_total {}",
        app.password_checks().hashes()
    );
    app.metrics().render(&mut out);
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out))
}

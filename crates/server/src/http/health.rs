//! `/healthz` (the process answers) and `/readyz` (it can do its work: the database answers, a configuration
//! is loaded, every configured gateway listener listens with a usable certificate), plus the OpenAPI document that describes the HTTP interface.

use super::{Context, wire};
use axum::{Json, Router, extract::State, http::StatusCode, response::IntoResponse, routing::get};
use serde_json::json;
use tidings_core::outbox::circuit::{Circuit, Health};

const OPENAPI: &str = include_str!("../../openapi.json");

pub fn router() -> Router<Context> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/api/v1/openapi.json", get(openapi))
}

async fn healthz() -> impl IntoResponse {
    Json(json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }))
}

async fn readyz(State(context): State<Context>) -> impl IntoResponse {
    let inner = &context.inner;
    if let Err(e) = inner.app.store().ping().await {
        tracing::warn!(error = %e, "readiness check: the database does not answer");
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "unavailable", "reason": "the database does not answer" })),
        );
    }
    let config = inner.config.get();
    // The same figures as the status page's and the metrics'.
    let snapshot = match crate::service::status::snapshot(&context).await {
        Ok(snapshot) => snapshot,
        Err(e) => {
            tracing::warn!(error = %e, "readiness check: cannot read the outbox");
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "unavailable", "reason": "the outbox cannot be read" })),
            );
        }
    };
    let queue: serde_json::Map<String, serde_json::Value> =
        snapshot.queue.iter().map(|(status, n)| (status.to_string(), json!(n))).collect();
    let problems = snapshot.gateway.stops();
    let listeners: Vec<_> = snapshot
        .gateway
        .listeners
        .iter()
        .map(|l| json!({ "address": l.address, "implicit_tls": l.implicit_tls, "listening": l.error.is_none(), "error": l.error }))
        .collect();
    let gateway = json!({
        "listeners": listeners,
        "certificate_error": snapshot.gateway.certificate_error,
        "certificate_in_force": snapshot.gateway.certificate_in_force,
        "connections": snapshot.gateway_connections,
    });
    let health = &snapshot.health;
    let nodes = match context.nodes().await {
        Ok(nodes) => nodes,
        Err(e) => {
            tracing::warn!(error = %e, "readiness check: cannot read the nodes of the database");
            None
        }
    };
    let mut body = json!({
        "status": "ready",
        "config_revision": config.revision,
        "uptime_seconds": inner.started.elapsed().as_secs(),
        "queue": queue,
        "gateway": gateway,
        "delivery": delivery(health),
    });
    if let Some(nodes) = nodes {
        body["nodes"] = json!(nodes.iter().map(wire::Node::from).collect::<Vec<_>>());
    }
    if problems.is_empty() {
        return (StatusCode::OK, Json(body));
    }
    body["status"] = json!("unavailable");
    body["reason"] = json!(problems.join("; "));
    (StatusCode::SERVICE_UNAVAILABLE, Json(body))
}

/// The relay's and the identities' circuits: a relay that is down does not make Tidings unready (it still
/// accepts and keeps every message), it is reported.
pub(crate) fn delivery(health: &Health) -> serde_json::Value {
    let mut relay = json!({ "state": "up" });
    let mut identities = Vec::new();
    for (circuit, down) in health.downs() {
        match circuit {
            Circuit::Relay => relay = json!({ "state": "down", "down": wire::Down::from(down) }),
            Circuit::Identity(account) => {
                identities.push(json!({ "account": account, "down": wire::Down::from(down) }))
            }
        }
    }
    json!({ "relay": relay, "identities_down": identities })
}

async fn openapi() -> impl IntoResponse {
    ([(axum::http::header::CONTENT_TYPE, "application/json")], OPENAPI)
}

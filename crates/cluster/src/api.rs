//! The primary's side: the routes of its cluster listener (`serve --cluster-listen`), over HTTPS with its own
//! certificate. Joining needs a join code; every other call, a joined node's bearer.

use crate::{
    NODE_HEADER, VERSION_HEADER,
    protocol::{Health, JoinAnswer, JoinRequest, Refusal, SnapshotMessage},
};
use axum::{
    Json, Router,
    extract::{Query, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use std::{collections::HashMap, time::Duration};
use tidings_app::{App, cipher::SecretKey, cluster::Joining};
use tidings_core::secret::SecretString;
use tokio::time::Instant;

/// How often a long poll looks whether the snapshot changed.
const LOOK_EVERY: Duration = Duration::from_millis(250);
/// The longest a long poll waits.
const LONGEST_WAIT: Duration = Duration::from_secs(60);

pub fn router(app: App) -> Router {
    Router::new()
        .route("/cluster/v1/join", post(join))
        .route("/cluster/v1/snapshot", get(snapshot))
        .route("/cluster/v1/health", get(health))
        .with_state(app)
}

fn refused(status: StatusCode, error: impl Into<String>) -> Response {
    (status, Json(Refusal { error: error.into() })).into_response()
}

fn failed(e: &tidings_app::Error) -> Response {
    use tidings_app::Error as E;
    let status = match e {
        E::Refused(_) => StatusCode::FORBIDDEN,
        E::Conflict(_) => StatusCode::CONFLICT,
        E::Input(_) | E::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
        E::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        _ => {
            tracing::error!(error = %e, "cluster: internal error");
            return refused(StatusCode::INTERNAL_SERVER_ERROR, "internal error; see the primary's log");
        }
    };
    refused(status, e.to_string())
}

async fn health(State(app): State<App>) -> Response {
    match app.membership().await {
        Ok(m) => {
            Json(Health { name: m.name, role: m.role.to_string(), epoch: m.epoch, version: crate::VERSION.to_owned() })
                .into_response()
        }
        Err(e) => failed(&e),
    }
}

async fn join(State(app): State<App>, Json(request): Json<JoinRequest>) -> Response {
    let key = match SecretKey::from_base64(&request.key, "the joining node's key") {
        Ok(key) => key,
        Err(e) => return failed(&e),
    };
    let joining = Joining {
        code_secret: SecretString::new(request.code),
        name: request.name,
        advertise: request.advertise,
        fingerprint: request.fingerprint,
        key,
        version: request.version,
    };
    let name = joining.name.clone();
    match app.accept_join(joining).await {
        Ok(accepted) => {
            tracing::info!(node = %name, role = %accepted.role, "cluster: a node joined");
            Json(JoinAnswer::from(&accepted)).into_response()
        }
        Err(e) => {
            tracing::warn!(node = %name, error = %e, "cluster: a join was refused");
            failed(&e)
        }
    }
}

async fn snapshot(
    State(app): State<App>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let presented = text(header::AUTHORIZATION.as_str());
    let presented = presented.strip_prefix("Bearer ").unwrap_or_default();
    let node = match app.node_calling(&text(NODE_HEADER), presented, &text(VERSION_HEADER)).await {
        Ok(Some(node)) => node,
        Ok(None) => return refused(StatusCode::UNAUTHORIZED, "not a node of this cluster (removed, or never joined)"),
        Err(e) => return failed(&e),
    };
    let wait =
        query.get("wait").and_then(|w| w.parse().ok()).map(Duration::from_secs).unwrap_or_default().min(LONGEST_WAIT);
    let since = query.get("since");
    let until = Instant::now() + wait;
    loop {
        let digest = match app.snapshot_digest().await {
            Ok(digest) => digest,
            Err(e) => return failed(&e),
        };
        if since != Some(&digest) {
            return match app.snapshot_for(&node).await {
                Ok(snapshot) => Json(SnapshotMessage::from(&snapshot)).into_response(),
                Err(e) => failed(&e),
            };
        }
        if Instant::now() >= until {
            return StatusCode::NO_CONTENT.into_response();
        }
        tokio::time::sleep(LOOK_EVERY).await;
    }
}

//! The primary's side: the routes of its cluster listener (`serve --cluster-listen`), over HTTPS with its own
//! certificate. Joining needs a join code; every other call, a joined node's bearer.

use crate::{
    NODE_HEADER, VERSION_HEADER,
    protocol::{AccessTokenMessage, Health, JoinAnswer, JoinRequest, Refusal, SnapshotMessage},
};
use axum::{
    Json, Router,
    extract::{Query, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use base64::{Engine, engine::general_purpose::STANDARD};
use std::sync::Arc;
use std::{collections::HashMap, time::Duration};
use tidings_app::{App, cipher::SecretKey, cluster::Joining};
use tidings_core::secret::SecretString;
use tidings_delivery::token::{MailboxTokens, TokenError, TokenSource};
use tokio::time::Instant;

/// How often a long poll looks whether the snapshot changed.
const LOOK_EVERY: Duration = Duration::from_millis(250);
/// The longest a long poll waits.
const LONGEST_WAIT: Duration = Duration::from_secs(60);

/// What the routes use: the application, and the node's own token source (a follower asks this one's).
#[derive(Clone, Debug)]
pub struct Node {
    pub app: App,
    pub tokens: Arc<dyn TokenSource>,
    pub mailboxes: Arc<dyn MailboxTokens>,
    /// The snapshot's digest as last computed, and when: however many followers wait, it is computed at most
    /// once per look.
    digest: Arc<tokio::sync::Mutex<Option<(Instant, String)>>>,
}

impl Node {
    async fn digest(&self) -> Result<String, tidings_app::Error> {
        let mut kept = self.digest.lock().await;
        if let Some((at, digest)) = kept.as_ref()
            && at.elapsed() < LOOK_EVERY
        {
            return Ok(digest.clone());
        }
        let digest = self.app.snapshot_digest().await?;
        *kept = Some((Instant::now(), digest.clone()));
        Ok(digest)
    }
}

pub fn router(app: App, tokens: Arc<dyn TokenSource>, mailboxes: Arc<dyn MailboxTokens>) -> Router {
    Router::new()
        .route("/cluster/v1/join", post(join))
        .route("/cluster/v1/snapshot", get(snapshot))
        .route("/cluster/v1/health", get(health))
        .route("/cluster/v1/access-token", get(access_token))
        .with_state(Node { app, tokens, mailboxes, digest: Arc::default() })
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

/// The relay account's access token, for a follower: only the primary obtains and refreshes it.
async fn access_token(
    State(node): State<Node>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let caller = match calling(&node.app, &headers).await {
        Ok(caller) => caller,
        Err(refusal) => return refusal,
    };
    match node.app.membership().await {
        Ok(me) if me.role == tidings_core::cluster::Role::Primary => {}
        Ok(_) => return refused(StatusCode::CONFLICT, "this node is not the primary"),
        Err(e) => return failed(&e),
    }
    let source = match query.get("mailbox") {
        Some(account) => match node.mailboxes.mailbox(account).await {
            Ok((_, source)) => source,
            Err(TokenError::ReauthorizationRequired(why)) => return refused(StatusCode::FORBIDDEN, why),
            Err(TokenError::Unavailable(why)) => return refused(StatusCode::SERVICE_UNAVAILABLE, why),
        },
        None => node.tokens.clone(),
    };
    let mut token = source.access_token().await;
    if query.get("refresh").is_some_and(|r| r == "true")
        && let Ok(current) = &token
    {
        token = match source.refresh(current).await {
            Ok(Some(fresh)) => Ok(fresh),
            Ok(None) => Ok(current.clone()),
            Err(e) => Err(e),
        };
    }
    let token = match token {
        Ok(token) => token,
        Err(TokenError::ReauthorizationRequired(why)) => return refused(StatusCode::FORBIDDEN, why),
        Err(TokenError::Unavailable(why)) => return refused(StatusCode::SERVICE_UNAVAILABLE, why),
    };
    match node.app.seal_for_node(&caller, "access_token", &token.0).await {
        Ok(sealed) => Json(AccessTokenMessage { token: STANDARD.encode(sealed) }).into_response(),
        Err(e) => failed(&e),
    }
}

/// The joined node making this request, or the refusal to answer.
async fn calling(app: &App, headers: &HeaderMap) -> Result<tidings_store::ClusterNode, Response> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let presented = text(header::AUTHORIZATION.as_str());
    let presented = presented.strip_prefix("Bearer ").unwrap_or_default();
    match app.node_calling(&text(NODE_HEADER), presented, &text(VERSION_HEADER)).await {
        Ok(Some(node)) => Ok(node),
        Ok(None) => Err(refused(StatusCode::UNAUTHORIZED, "not a node of this cluster (removed, or never joined)")),
        Err(e) => Err(failed(&e)),
    }
}

async fn health(State(Node { app, .. }): State<Node>) -> Response {
    match app.membership().await {
        Ok(m) => {
            Json(Health { name: m.name, role: m.role.to_string(), epoch: m.epoch, version: crate::VERSION.to_owned() })
                .into_response()
        }
        Err(e) => failed(&e),
    }
}

async fn join(State(Node { app, .. }): State<Node>, Json(request): Json<JoinRequest>) -> Response {
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
    State(node_state): State<Node>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let app = &node_state.app;
    let node = match calling(app, &headers).await {
        Ok(node) => node,
        Err(refusal) => return refusal,
    };
    let theirs = headers.get(crate::EPOCH_HEADER).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<i64>().ok());
    match app.membership().await {
        Ok(me) if me.role != tidings_core::cluster::Role::Primary => {
            return refused(StatusCode::CONFLICT, format!("{} is not the primary (it is a {})", me.name, me.role));
        }
        Ok(me) if theirs.is_some_and(|e| e > me.epoch) => {
            return refused(
                StatusCode::CONFLICT,
                format!(
                    "{} is the primary of epoch {}, replaced since (epoch {})",
                    me.name,
                    me.epoch,
                    theirs.unwrap_or_default()
                ),
            );
        }
        Ok(_) => {}
        Err(e) => return failed(&e),
    }
    let wait =
        query.get("wait").and_then(|w| w.parse().ok()).map(Duration::from_secs).unwrap_or_default().min(LONGEST_WAIT);
    let since = query.get("since");
    let until = Instant::now() + wait;
    loop {
        let digest = match node_state.digest().await {
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

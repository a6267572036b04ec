//! The cluster: this node's place and the nodes it knows (`GET /api/v1/cluster`), join codes, removal, promotion
//! and demotion.

use super::{Context, error::ApiError, json::Body, wire};
use crate::service::{self, caller::Caller};
use axum::{
    Json, Router,
    extract::{Path, State},
    http::StatusCode,
    response::IntoResponse,
    routing::{delete, get, post},
};
use serde::Deserialize;
use serde_json::json;

pub fn router() -> Router<Context> {
    Router::new()
        .route("/api/v1/cluster", get(show))
        .route("/api/v1/cluster/nodes", post(add_node))
        .route("/api/v1/cluster/nodes/{name}", delete(remove))
        .route("/api/v1/cluster/promote", post(promote))
        .route("/api/v1/cluster/demote", post(demote))
}

async fn show(State(context): State<Context>, _caller: Caller) -> Result<impl IntoResponse, ApiError> {
    let app = &context.inner.app;
    let membership = app.membership().await?;
    let nodes = app.cluster_nodes().await?;
    let read_only = app.read_only_reason().await?;
    Ok(Json(wire::Cluster::new(&membership, &nodes, read_only, app.last_hook().await?)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewNode {
    name: String,
    role: String,
    /// Seconds the code works.
    expires_in: Option<u64>,
    /// This node's name when it becomes the primary by this (default: the host name).
    primary_name: Option<String>,
}

async fn add_node(
    State(context): State<Context>,
    caller: Caller,
    Body(body): Body<NewNode>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require_administrator()?;
    let expires = body.expires_in.map_or(service::cluster::CODE_LIFETIME, std::time::Duration::from_secs);
    let primary_name = body.primary_name.as_deref();
    let code =
        service::cluster::add_node(&context, &caller.actor, &body.name, &body.role, expires, primary_name).await?;
    Ok((StatusCode::CREATED, Json(json!({ "name": body.name, "code": code, "expires_in": expires.as_secs() }))))
}

async fn remove(
    State(context): State<Context>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require_administrator()?;
    if context.inner.app.remove_node(&caller.actor, &name).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!("no node named {name:?}")))
    }
}

async fn promote(State(context): State<Context>, caller: Caller) -> Result<impl IntoResponse, ApiError> {
    caller.require_administrator()?;
    let me = service::cluster::promote(&context, &caller.actor).await?;
    Ok(Json(json!({ "role": me.role.as_str(), "epoch": me.epoch })))
}

async fn demote(State(context): State<Context>, caller: Caller) -> Result<impl IntoResponse, ApiError> {
    caller.require_administrator()?;
    let me = service::cluster::demote(&context, &caller.actor).await?;
    Ok(Json(json!({ "role": me.role.as_str(), "epoch": me.epoch, "primary": me.primary_name })))
}

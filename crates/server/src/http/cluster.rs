//! `GET /api/v1/cluster`: this node's place in its cluster and the nodes it knows.

use super::{Context, error::ApiError, wire};
use crate::service::caller::Caller;
use axum::{Json, Router, extract::State, response::IntoResponse, routing::get};

pub fn router() -> Router<Context> {
    Router::new().route("/api/v1/cluster", get(show))
}

async fn show(State(context): State<Context>, _caller: Caller) -> Result<impl IntoResponse, ApiError> {
    let app = &context.inner.app;
    let membership = app.membership().await?;
    let nodes = app.cluster_nodes().await?;
    let read_only = app.read_only_reason().await?;
    Ok(Json(wire::Cluster::new(&membership, &nodes, read_only)))
}

//! `GET /api/v1/status` (any role): the status page's figures.

use super::{Context, error::ApiError, wire};
use crate::service::{caller::Caller, status};
use axum::{Json, Router, extract::State, response::IntoResponse, routing::get};

pub fn router() -> Router<Context> {
    Router::new().route("/api/v1/status", get(show))
}

async fn show(State(context): State<Context>, _caller: Caller) -> Result<impl IntoResponse, ApiError> {
    let snapshot = status::snapshot(&context).await?;
    Ok(Json(wire::StatusReport::from(&snapshot)))
}

//! `GET /api/v1/expiries` (any role): the credentials in use that end on a known date, soonest first.

use super::{Context, error::ApiError};
use crate::service::caller::Caller;
use axum::{Json, Router, extract::State, response::IntoResponse, routing::get};

pub fn router() -> Router<Context> {
    Router::new().route("/api/v1/expiries", get(list))
}

async fn list(State(context): State<Context>, _caller: Caller) -> Result<impl IntoResponse, ApiError> {
    let app = &context.inner.app;
    let config = app.current().await?.config;
    let now = chrono::Utc::now();
    let all: Vec<serde_json::Value> = app.lifetimes(&config).await?.iter().map(|l| l.to_json(now)).collect();
    Ok(Json(serde_json::json!({ "expiries": all })))
}

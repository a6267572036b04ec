//! `/api/v1/doctor`: run the doctor (network administrators and administrators), or read its last report (any
//! role).

use super::{Context, error::ApiError};
use crate::service::{caller::Caller, doctor};
use axum::{
    Json, Router,
    extract::{Query, State},
    response::IntoResponse,
    routing::get,
};

pub fn router() -> Router<Context> {
    Router::new().route("/api/v1/doctor", get(last).post(run))
}

async fn run(
    State(context): State<Context>,
    caller: Caller,
    Query(query): Query<std::collections::HashMap<String, String>>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require_operator()?;
    let send_to = query.get("send_to").map(String::as_str).filter(|to| !to.is_empty());
    Ok(Json(doctor::run(&context, send_to).await?))
}

async fn last(State(context): State<Context>, _caller: Caller) -> Result<impl IntoResponse, ApiError> {
    match context.inner.app.last_doctor_report().await? {
        Some(report) => Ok(Json(report)),
        None => Err(ApiError::NotFound("the doctor has not run yet: POST /api/v1/doctor runs it".into())),
    }
}

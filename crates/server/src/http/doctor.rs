//! `/api/v1/doctor`: run the doctor (network administrators and administrators), or read its last report (any
//! role).

use super::{Context, error::ApiError};
use crate::service::{caller::Caller, doctor};
use axum::{Json, Router, extract::State, response::IntoResponse, routing::get};

pub fn router() -> Router<Context> {
    Router::new().route("/api/v1/doctor", get(last).post(run))
}

async fn run(State(context): State<Context>, caller: Caller) -> Result<impl IntoResponse, ApiError> {
    caller.require_operator()?;
    Ok(Json(doctor::run(&context).await?))
}

async fn last(State(context): State<Context>, _caller: Caller) -> Result<impl IntoResponse, ApiError> {
    match context.inner.app.last_doctor_report().await? {
        Some(report) => Ok(Json(report)),
        None => Err(ApiError::NotFound("the doctor has not run yet: POST /api/v1/doctor runs it".into())),
    }
}

//! `/api/v1/devices`: device accounts of the SMTP submission gateway (operators manage them; anyone reads).

use super::{Context, error::ApiError, json::Body, wire};
use crate::service::caller::Caller;
use axum::{
    Json, Router,
    extract::{Path, State},
    http::StatusCode,
    response::IntoResponse,
    routing::{delete, get},
};
use serde::Deserialize;
use serde_json::json;
use tidings_app::authorization::Owner;
use tidings_core::secret::SecretString;

pub fn router() -> Router<Context> {
    Router::new()
        .route("/api/v1/devices", get(list).post(create))
        .route("/api/v1/devices/{id}", delete(remove))
        .route("/api/v1/devices/{id}/mailbox", delete(forget_mailbox))
}

async fn list(State(context): State<Context>, _caller: Caller) -> Result<impl IntoResponse, ApiError> {
    let devices = context.inner.app.devices_with_mailboxes().await?;
    let devices: Vec<_> = devices.iter().map(|d| wire::Device::new(&d.device, d.mailbox.as_ref())).collect();
    Ok(Json(json!({ "devices": devices })))
}

/// Deletes the token of a device account's own mailbox (the `login_user` policy).
async fn forget_mailbox(
    State(context): State<Context>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require_operator()?;
    let app = &context.inner.app;
    let device = app.device(id).await.map_err(|_| ApiError::NotFound(format!("no device account {id}")))?;
    if app.forget_authorization(Owner::Device(device.id), &caller.actor).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!("device account {} has no mailbox token", device.username)))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewDeviceBody {
    username: String,
    password: String,
    #[serde(default)]
    addresses: Vec<String>,
}

async fn create(
    State(context): State<Context>,
    caller: Caller,
    Body(body): Body<NewDeviceBody>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require_operator()?;
    let password = SecretString::new(body.password);
    let id = context.inner.app.create_device(&caller.actor, &body.username, &password, &body.addresses).await?;
    Ok((StatusCode::CREATED, Json(json!({ "id": id }))))
}

async fn remove(
    State(context): State<Context>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require_operator()?;
    if context.inner.app.delete_device(&caller.actor, id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!("no device account {id}")))
    }
}

//! Signing Tidings in with the provider through `/api/v1/oauth/…`: start a sign-in, complete it with a pasted
//! answer, see the token's status, check the connection to the provider, and delete the authorization. (The
//! page the provider sends the browser back to is the web interface's, `ui/landing.rs`.)

use super::{Context, error::ApiError, json::Body, wire};
use crate::service::{
    caller::Caller,
    oauth::{check_connection, flow_message, forget_authorization, live_report, start_device},
};
use axum::{
    Json, Router,
    extract::State,
    http::StatusCode,
    response::IntoResponse,
    routing::{get, post},
};
use serde::Deserialize;
use serde_json::json;
use tidings_oauth::flows::{self, FlowError, Owner};

pub fn router() -> Router<Context> {
    Router::new()
        .route("/api/v1/oauth/authorize", post(authorize))
        .route("/api/v1/oauth/complete", post(complete))
        .route("/api/v1/oauth/device", post(device))
        .route("/api/v1/oauth/client-credentials", post(client_credentials))
        .route("/api/v1/oauth/status", get(status))
        .route("/api/v1/oauth/check", post(check))
        .route("/api/v1/oauth/token", axum::routing::delete(forget))
        .route("/api/v1/oauth/certificate", get(certificate).post(make_certificate))
}

/// The client's certificate (never its key); `404` while none is kept.
async fn certificate(State(context): State<Context>, _caller: Caller) -> Result<impl IntoResponse, ApiError> {
    match context.inner.app.client_certificate().await? {
        Some(held) => Ok(Json(wire::ClientCertificate::from(&held))),
        None => Err(ApiError::NotFound(
            "no client certificate is kept; make one with POST /api/v1/oauth/certificate".into(),
        )),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MakeCertificate {
    /// Valid for this many days (730 when absent).
    #[serde(default = "two_years")]
    days: u32,
    /// Replace the certificate kept now.
    #[serde(default)]
    replace: bool,
}

fn two_years() -> u32 {
    730
}

/// Makes the client's key pair and certificate; `409` when one is kept and `replace` is not set.
async fn make_certificate(
    State(context): State<Context>,
    caller: Caller,
    Body(body): Body<MakeCertificate>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require_operator()?;
    if !(1..=3650).contains(&body.days) {
        return Err(ApiError::BadRequest("days must be between 1 and 3650".into()));
    }
    let made = context.inner.app.make_client_certificate(&caller.actor, body.days, body.replace).await?;
    Ok((StatusCode::CREATED, Json(wire::ClientCertificate::from(&made))))
}

impl From<FlowError> for ApiError {
    fn from(e: FlowError) -> Self {
        match e {
            FlowError::Unsuitable(m) => ApiError::Conflict { code: "not_configured", message: m },
            FlowError::BadAnswer(m) => ApiError::BadRequest(m),
            e @ FlowError::Refused { .. } => ApiError::Conflict { code: "provider_refused", message: flow_message(e) },
            FlowError::Unavailable(m) => ApiError::Unavailable(m),
            FlowError::App(e) => e.into(),
        }
    }
}

async fn authorize(State(context): State<Context>, caller: Caller) -> Result<impl IntoResponse, ApiError> {
    caller.require_operator()?;
    let started = flows::start(&context.inner.app, &Owner::Relay).await?;
    Ok(Json(json!({ "url": started.url, "expires_in": started.expires_in.as_secs() })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CompleteBody {
    /// The whole address the browser ended on, or just the code.
    input: String,
}

async fn complete(
    State(context): State<Context>,
    caller: Caller,
    Body(body): Body<CompleteBody>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require_operator()?;
    let inner = &context.inner;
    let account = flows::complete(&inner.app, Some(&inner.tokens), &caller.actor, &body.input, &Owner::Relay).await?;
    Ok(Json(json!({ "authorized": true, "account": account })))
}

/// Authorizes app-only sending (the client-credentials grant).
async fn client_credentials(State(context): State<Context>, caller: Caller) -> Result<impl IntoResponse, ApiError> {
    caller.require_operator()?;
    let inner = &context.inner;
    let account = flows::client_credentials(&inner.app, Some(&inner.tokens), &caller.actor).await?;
    Ok(Json(json!({ "authorized": true, "account": account })))
}

async fn status(State(context): State<Context>, _caller: Caller) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(wire::TokenReport::from(&live_report(&context).await?)))
}

/// Starts a device-code sign-in; the daemon polls until the user finishes it (watch `/api/v1/oauth/status`).
async fn device(State(context): State<Context>, caller: Caller) -> Result<impl IntoResponse, ApiError> {
    caller.require_operator()?;
    let (shown, expires_at) = start_device(&context, caller.actor).await?;
    Ok(Json(json!({
        "verification_uri": shown.verification_uri,
        "verification_uri_complete": shown.verification_uri_complete,
        "user_code": shown.user_code,
        "expires_in": shown.expires_in,
        "expires_at": expires_at,
        "interval": shown.interval,
        "message": shown.message,
    })))
}

async fn check(State(context): State<Context>, caller: Caller) -> Result<impl IntoResponse, ApiError> {
    caller.require_operator()?;
    Ok(Json(match check_connection(&context).await? {
        Ok(()) => json!({ "connected": true }),
        Err(error) => json!({ "connected": false, "error": error.to_string() }),
    }))
}

async fn forget(State(context): State<Context>, caller: Caller) -> Result<impl IntoResponse, ApiError> {
    caller.require_operator()?;
    forget_authorization(&context, &caller.actor).await?;
    Ok(StatusCode::NO_CONTENT)
}

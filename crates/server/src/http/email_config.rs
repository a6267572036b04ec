//! `/api/v1/email-config`: read and change the email configuration, and send a test email. A save with
//! `admin.test_email_on_save` on sends one and reports what the relay said.

use super::{Context, error::ApiError, json::Body, wire};
use crate::service::{
    caller::Caller,
    email::{save, send_test},
};
use axum::{
    Json, Router,
    extract::State,
    http::StatusCode,
    response::IntoResponse,
    routing::{get, post},
};
use serde_json::{Map, Value, json};
use tidings_app::settings::GoogleFile;
use tidings_core::{FieldError, secret::SecretName};

pub fn router() -> Router<Context> {
    Router::new()
        .route("/api/v1/email-config", get(show).patch(change))
        .route("/api/v1/email-config/test", post(test))
        .route("/api/v1/email-config/validate", post(validate))
        .route("/api/v1/email-config/google-client", post(google_client))
        .route("/api/v1/email-config/google-service-account", post(google_service_account))
}

async fn show(State(context): State<Context>, _caller: Caller) -> Result<impl IntoResponse, ApiError> {
    let current = context.inner.app.current().await?;
    let secrets: Map<String, Value> =
        SecretName::ALL.iter().map(|n| (n.key().to_owned(), json!(current.secrets.has(*n)))).collect();
    Ok(Json(json!({
        "revision": current.revision,
        "saved_at": current.saved_at,
        "saved_by": current.saved_by,
        "config": current.config,
        "secrets": secrets,
        "derived": {
            "smtp.port": current.config.smtp.effective_port(),
            "oauth.redirect_uri": current.config.redirect_uri(),
        },
        "warnings": tidings_core::config::advice::advice(&current.config).iter().map(|a| a.text()).collect::<Vec<_>>(),
    })))
}

/// Edits as dotted keys: `{"smtp.host": "smtp.office365.com", "smtp.port": 587, "smtp.password": "…"}`.
/// Strings, numbers and booleans are taken as `tidings config set` takes their text; `null` or `""` clears.
/// The body's keys and values as `config set` edits.
fn edits_of(body: Map<String, Value>) -> Result<Vec<(String, String)>, ApiError> {
    let mut edits = Vec::with_capacity(body.len());
    let mut errors = Vec::new();
    for (key, value) in body {
        let text = match value {
            Value::String(s) => s,
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Null => String::new(),
            Value::Array(items) if items.iter().all(Value::is_string) => {
                items.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" ")
            }
            _ => {
                errors.push(FieldError::new(&key, "expected a string, number, boolean, list of strings or null"));
                continue;
            }
        };
        edits.push((key, text));
    }
    if edits.is_empty() && errors.is_empty() {
        return Err(ApiError::BadRequest(
            "nothing to change: send an object of configuration keys, such as {\"smtp.host\": \"smtp.example.com\"}"
                .into(),
        ));
    }
    if !errors.is_empty() {
        return Err(ApiError::Invalid(errors));
    }
    Ok(edits)
}

async fn change(
    State(context): State<Context>,
    caller: Caller,
    Body(body): Body<Map<String, Value>>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require_operator()?;
    let edits = edits_of(body)?;
    let (saved, test) = save(&context, &caller, &edits).await?;
    let mut out = json!({ "revision": saved.revision, "changed": saved.changed, "warnings": saved.warnings });
    if let Some(test) = test {
        out["test_email"] = match test {
            Ok(outcome) => json!(wire::TestOutcome::from(&outcome)),
            Err(e) => json!({ "result": "not_sent", "reply": e.to_string() }),
        };
    }
    Ok(Json(out))
}

async fn test(State(context): State<Context>, caller: Caller) -> Result<impl IntoResponse, ApiError> {
    caller.require_operator()?;
    let outcome = send_test(&context, &caller).await?;
    let status = if outcome.settled() { StatusCode::OK } else { StatusCode::ACCEPTED };
    Ok((status, Json(wire::TestOutcome::from(&outcome))))
}

/// What saving these edits would give, saving nothing: `{"valid": true}` or `{"valid": false, "errors": […]}`.
async fn validate(
    State(context): State<Context>,
    caller: Caller,
    Body(body): Body<Map<String, Value>>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require_operator()?;
    let edits = edits_of(body)?;
    Ok(Json(match context.inner.app.validate_edits(&edits).await {
        Ok(()) => json!({ "valid": true, "errors": [] }),
        Err(tidings_app::Error::Invalid(errors)) => json!({ "valid": false, "errors": errors.0 }),
        Err(e) => return Err(e.into()),
    }))
}

/// Sends as a Google service account: its key file (the body is the file's JSON, as downloaded).
async fn google_service_account(
    State(context): State<Context>,
    caller: Caller,
    Body(body): Body<Value>,
) -> Result<impl IntoResponse, ApiError> {
    import_google(&context, &caller, GoogleFile::ServiceAccount, &body).await
}

/// Imports Google's OAuth client file (the body is the file's JSON, as downloaded).
async fn google_client(
    State(context): State<Context>,
    caller: Caller,
    Body(body): Body<Value>,
) -> Result<impl IntoResponse, ApiError> {
    import_google(&context, &caller, GoogleFile::Client, &body).await
}

async fn import_google(
    context: &Context,
    caller: &Caller,
    file: GoogleFile,
    body: &Value,
) -> Result<Json<Value>, ApiError> {
    caller.require_operator()?;
    let saved = context.inner.app.import_google(&caller.actor, caller.role, file, &body.to_string()).await?;
    context.inner.config.refresh().await;
    Ok(Json(json!({ "revision": saved.revision, "changed": saved.changed, "warnings": saved.warnings })))
}

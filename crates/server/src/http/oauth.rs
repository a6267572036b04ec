//! Signing Tidings in with the provider: the redirect page at `/login/smtp-verification`, and
//! `/api/v1/oauth/…` to start a sign-in, complete it with a pasted answer, see the token's status, check the
//! connection to the provider, and delete the authorization.

use super::{Context, auth::Caller, error::ApiError, json::Body};
use axum::{
    Json, Router,
    extract::{RawQuery, State},
    http::{HeaderMap, StatusCode},
    response::{Html, IntoResponse},
    routing::{get, post},
};
use serde::Deserialize;
use serde_json::json;
use tidings_core::oauth::response::DeviceAuthorization;
use tidings_oauth::{
    flows::{self, FlowError, Owner},
    http::HttpEndpoint,
    status::{TokenReport, TokenStatus, report},
};

pub fn router() -> Router<Context> {
    Router::new()
        .route("/login/smtp-verification", get(landing))
        .route("/login/smtp-verification/", get(landing))
        .route("/api/v1/oauth/authorize", post(authorize))
        .route("/api/v1/oauth/complete", post(complete))
        .route("/api/v1/oauth/device", post(device))
        .route("/api/v1/oauth/client-credentials", post(client_credentials))
        .route("/api/v1/oauth/status", get(status))
        .route("/api/v1/oauth/check", post(check))
        .route("/api/v1/oauth/token", axum::routing::delete(forget))
}

impl From<FlowError> for ApiError {
    fn from(e: FlowError) -> Self {
        match e {
            FlowError::Unsuitable(m) => ApiError::Conflict { code: "not_configured", message: m },
            FlowError::BadAnswer(m) => ApiError::BadRequest(m),
            FlowError::Refused { said, explanation } => {
                ApiError::Conflict { code: "provider_refused", message: format!("{said}. {explanation}") }
            }
            FlowError::Unavailable(m) => ApiError::Unavailable(m),
            FlowError::App(e) => e.into(),
        }
    }
}

/// Where the provider sends the browser back. Says in plain words, in the browser's language, whether it
/// worked.
async fn landing(State(context): State<Context>, headers: HeaderMap, RawQuery(query): RawQuery) -> impl IntoResponse {
    let inner = &context.inner;
    let tr = crate::ui::i18n::negotiate(None, &headers);
    let query = query.unwrap_or_default();
    let (status, title, text) =
        match flows::complete(&inner.app, Some(&inner.tokens), "browser", &format!("?{query}"), &Owner::Relay).await {
            Ok(account) => {
                let account = account.unwrap_or_else(|| tr.t("landing.mailbox").to_owned());
                (StatusCode::OK, tr.t("landing.authorized_title"), tr.f("landing.authorized", &[("account", &account)]))
            }
            Err(FlowError::Refused { said, explanation }) => (
                StatusCode::BAD_REQUEST,
                tr.t("landing.refused_title"),
                tr.f("landing.refused", &[("explanation", &explanation), ("said", &said)]),
            ),
            Err(e) => (StatusCode::BAD_REQUEST, tr.t("landing.failed_title"), e.to_string()),
        };
    (status, Html(page(tr.code(), title, &text)))
}

fn page(lang: &str, title: &str, text: &str) -> String {
    let escape = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    format!(
        "<!doctype html><html lang=\"{lang}\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
         <title>{t}</title></head><body style=\"font-family:sans-serif;max-width:40em;margin:3em auto;padding:0 1em\">\
         <h1>{t}</h1><p>{x}</p><p><a href=\"/oauth\">Tidings</a></p></body></html>",
        t = escape(title),
        x = escape(text)
    )
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
    Ok(Json(live_report(&context).await?))
}

/// The token status as the daemon sees it, with a device sign-in under way.
pub(crate) async fn live_report(context: &Context) -> Result<TokenReport, ApiError> {
    let live = context.inner.tokens.status().borrow().clone();
    let mut report = report(&context.inner.app, Some(live)).await?;
    let pending = *context.inner.device.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(expires_at) = pending.filter(|at| *at > chrono::Utc::now())
        && !matches!(report.status, TokenStatus::Active { .. })
    {
        report.status = TokenStatus::AuthorizationPending { expires_at };
    }
    Ok(report)
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

/// Starts a device sign-in and the task that waits for it; returns what to show and when it expires.
pub(crate) async fn start_device(
    context: &Context,
    actor: String,
) -> Result<(DeviceAuthorization, chrono::DateTime<chrono::Utc>), ApiError> {
    let signing_in = flows::start_device(&context.inner.app, Owner::Relay).await?;
    let shown = signing_in.shown.clone();
    let expires_at = signing_in.expires_at;
    *context.inner.device.lock().unwrap_or_else(|e| e.into_inner()) = Some(expires_at);
    let waiting = context.clone();
    tokio::spawn(async move {
        let inner = &waiting.inner;
        match signing_in.finish(&inner.app, Some(&inner.tokens), &actor).await {
            Ok(account) => tracing::info!(account = account.as_deref().unwrap_or(""), "device sign-in completed"),
            Err(e) => tracing::warn!(error = %e, "device sign-in did not complete"),
        }
        let mut device = inner.device.lock().unwrap_or_else(|e| e.into_inner());
        if *device == Some(expires_at) {
            *device = None;
        }
    });
    Ok((shown, expires_at))
}

async fn check(State(context): State<Context>, caller: Caller) -> Result<impl IntoResponse, ApiError> {
    caller.require_operator()?;
    Ok(Json(match check_connection(&context).await? {
        Ok(()) => json!({ "connected": true }),
        Err(error) => json!({ "connected": false, "error": error }),
    }))
}

/// Reaches the token endpoint (through the configured proxy).
pub(crate) async fn check_connection(context: &Context) -> Result<Result<(), String>, ApiError> {
    let inner = &context.inner;
    let secret = inner.app.secret(tidings_core::secret::SecretName::OAuthClientSecret).await?;
    let endpoint = HttpEndpoint::new(&inner.config.get().config, secret)
        .map_err(|m| ApiError::Conflict { code: "not_configured", message: m })?;
    Ok(endpoint.check().await)
}

async fn forget(State(context): State<Context>, caller: Caller) -> Result<impl IntoResponse, ApiError> {
    caller.require_operator()?;
    forget_authorization(&context, &caller.actor).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn forget_authorization(context: &Context, actor: &str) -> Result<(), ApiError> {
    context.inner.app.oauth_forget(actor).await?;
    context.inner.tokens.forget();
    Ok(())
}

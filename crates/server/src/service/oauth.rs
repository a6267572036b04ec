//! The relay account's OAuth authorization as the running daemon knows it: the live status (with a device
//! sign-in under way), starting a device sign-in and the task that waits for it, reaching the token endpoint,
//! and forgetting the authorization.

use super::Context;
use tidings_core::oauth::response::DeviceAuthorization;
use tidings_oauth::{
    flows::{self, FlowError, Owner},
    http::HttpEndpoint,
    status::{TokenReport, TokenStatus, report},
};

/// The token status as the daemon sees it, with a device sign-in under way.
pub async fn live_report(context: &Context) -> Result<TokenReport, tidings_app::Error> {
    let live = context.inner.tokens.status().borrow().clone();
    let mut report = report(&context.inner.app, Some(live)).await?;
    if let Some((_, expires_at)) = pending_device(context)
        && !matches!(report.status, TokenStatus::Active { .. })
    {
        report.status = TokenStatus::AuthorizationPending { expires_at };
    }
    Ok(report)
}

/// The device sign-in under way and not expired: what the user is shown, and when it expires.
pub fn pending_device(
    context: &Context,
) -> Option<(tidings_core::oauth::response::DeviceAuthorization, chrono::DateTime<chrono::Utc>)> {
    let device = context.inner.device.lock().unwrap_or_else(|e| e.into_inner());
    device.clone().filter(|(_, at)| *at > chrono::Utc::now())
}

/// Starts a device sign-in and the task that waits for it; returns what to show and when it expires.
pub async fn start_device(
    context: &Context,
    actor: String,
) -> Result<(DeviceAuthorization, chrono::DateTime<chrono::Utc>), FlowError> {
    let signing_in = flows::start_device(&context.inner.app, Owner::Relay).await?;
    let shown = signing_in.shown.clone();
    let expires_at = signing_in.expires_at;
    *context.inner.device.lock().unwrap_or_else(|e| e.into_inner()) = Some((shown.clone(), expires_at));
    let waiting = context.clone();
    tokio::spawn(async move {
        let inner = &waiting.inner;
        match signing_in.finish(&inner.app, Some(&inner.tokens), &actor).await {
            Ok(account) => tracing::info!(account = account.as_deref().unwrap_or(""), "device sign-in completed"),
            Err(e) => tracing::warn!(error = %e, "device sign-in did not complete"),
        }
        let mut device = inner.device.lock().unwrap_or_else(|e| e.into_inner());
        if device.as_ref().is_some_and(|(_, at)| *at == expires_at) {
            *device = None;
        }
    });
    Ok((shown, expires_at))
}

/// Reaches the token endpoint (through the configured proxy).
pub async fn check_connection(
    context: &Context,
) -> Result<Result<(), tidings_oauth::access_tokens::EndpointError>, tidings_app::Error> {
    let inner = &context.inner;
    // Only reached, not asked for a token: no credential is sent.
    let endpoint = HttpEndpoint::new(&inner.config.get().config, tidings_oauth::http::ClientAuth::Public)
        .map_err(|why| tidings_app::Error::NotConfigured(why.into()))?;
    Ok(endpoint.check().await)
}

/// Deletes the relay account's authorization, and the token held in memory.
pub async fn forget_authorization(context: &Context, actor: &str) -> Result<(), tidings_app::Error> {
    context.inner.app.forget_authorization(tidings_app::authorization::Owner::Relay, actor).await?;
    context.inner.tokens.forget();
    Ok(())
}

/// A failed sign-in step in words for people: the provider's own, then what to do.
pub fn flow_message(e: FlowError) -> String {
    match e {
        FlowError::Unsuitable(m) | FlowError::BadAnswer(m) | FlowError::Unavailable(m) => m,
        FlowError::Refused { said, explanation } => format!("{said}. {explanation}"),
        FlowError::App(e) => super::described(&e).message,
    }
}

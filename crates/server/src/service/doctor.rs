//! Running the doctor in the daemon, with the daemon's own tokens, and keeping its report.

use super::Context;
use std::sync::Arc;
use tidings_delivery::{doctor, engine::relay_settings, token::TokenSource};
use tidings_oauth::source::DaemonTokens;

/// One walk at a time: each opens a session as the mailbox, and a burst of them must not take the connections
/// the provider allows it (Exchange's 3) from delivery. Callers meanwhile wait their turn.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Walks the path a message takes with the configuration in force; the report, kept as the last one.
pub async fn run(context: &Context, send_to: Option<&str>) -> Result<serde_json::Value, tidings_app::Error> {
    let _turn = ONE_AT_A_TIME.lock().await;
    if let Some(to) = send_to {
        tidings_core::address::validate(to)
            .map_err(|e| tidings_app::Error::Input(format!("send_to: {}", e.reason())))?;
    }
    let inner = &context.inner;
    let current = inner.config.get();
    let tokens: Arc<dyn TokenSource> = Arc::new(DaemonTokens::new(inner.tokens.clone(), inner.app.clone()));
    let settings = relay_settings(&inner.app, &current, tokens)
        .await
        .map_err(|e| tidings_app::Error::NotConfigured(e.reason().to_owned()))?;
    let sender = current.config.sender.clone().unwrap_or_default();
    let report = serde_json::to_value(doctor::examine(&settings, &sender, send_to).await).unwrap_or_default();
    inner.app.keep_doctor_report(&report).await?;
    Ok(report)
}

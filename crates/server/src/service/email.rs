//! The email configuration as the running daemon changes it: saved (and put in force at once), then the test
//! email when the configuration asks for one on save; the test email on demand.

use super::{Context, caller::Caller};
use tidings_app::{notifications::TestOutcome, settings::Saved};

/// Saves `edits` as `caller`, puts them in force, and sends the test email when `admin.test_email_on_save`
/// asks for it: what was saved, and what became of the test email (`None`: none was asked for).
pub async fn save(
    context: &Context,
    caller: &Caller,
    edits: &[(String, String)],
) -> Result<(Saved, Option<Result<TestOutcome, tidings_app::Error>>), tidings_app::Error> {
    let saved = context.inner.app.update_as(&caller.actor, caller.role, edits).await?;
    context.inner.config.refresh().await;
    let test = if context.inner.config.get().config.admin.test_email_on_save {
        Some(send_test(context, caller).await)
    } else {
        None
    };
    Ok((saved, test))
}

/// Sends a test email and waits up to `admin.test_email_wait` for the relay's answer.
pub async fn send_test(context: &Context, caller: &Caller) -> Result<TestOutcome, tidings_app::Error> {
    let app = &context.inner.app;
    let sent = app.send_test_email(&caller.actor).await?;
    context.wake_engine();
    let wait = context.inner.config.get().config.admin.test_email_wait;
    app.await_test_outcome(sent.message_id, wait).await
}

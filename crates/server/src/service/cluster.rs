//! The cluster operations both edges offer: a join code, removing a node, promoting, demoting.

use super::Context;
use std::time::Duration;
use tidings_app::{Error, cluster::Membership};
use tidings_core::cluster::joining_role;

/// How long a join code made without an expiry works.
pub const CODE_LIFETIME: Duration = Duration::from_secs(3600);

/// A join code for a new node (`role`: backup or traffic), valid for `expires`; a standalone node becomes the
/// primary, named `primary_name` (default: the host name).
pub async fn add_node(
    context: &Context,
    actor: &str,
    name: &str,
    role: &str,
    expires: Duration,
    primary_name: Option<&str>,
) -> Result<String, Error> {
    let role = joining_role(role).map_err(|why| {
        Error::Invalid(tidings_core::ValidationErrors(vec![tidings_core::FieldError::new("role", why)]))
    })?;
    context.inner.app.add_node(actor, name, role, expires, primary_name).await
}

/// Makes this backup the primary now.
pub async fn promote(context: &Context, actor: &str) -> Result<Membership, Error> {
    context.inner.app.promote(actor).await
}

/// Makes this primary follow the primary of a higher epoch that a known node reports.
pub async fn demote(context: &Context, actor: &str) -> Result<Membership, Error> {
    let app = &context.inner.app;
    let me = app.membership().await?;
    let Some((primary, health)) = tidings_cluster::watch::newer_primary(app, me.epoch, Duration::from_secs(5)).await
    else {
        return Err(Error::Conflict(format!(
            "no node reports a primary of an epoch above this one ({}): promote a backup first",
            me.epoch
        )));
    };
    app.follow(actor, &primary, health.epoch).await
}

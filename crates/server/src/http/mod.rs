//! The HTTP interface. Each area is a module exporting `router()`; they are merged here over one [`Context`].

mod accounts;
pub(crate) mod auth;
mod cluster;
mod devices;
pub(crate) mod doctor;
pub(crate) mod email_config;
pub(crate) mod error;
mod events;
pub(crate) mod expiries;
mod health;
mod json;
mod messages;
mod metrics;
pub(crate) mod oauth;
mod paging;
pub(crate) mod status;
pub mod wire;

pub(crate) use crate::service::Context;
use axum::{Router, extract::DefaultBodyLimit};

/// The largest request body the API reads (a raw message in JSON, with room above the default 25 MiB limit
/// of `delivery.max_message_size`).
const MAX_BODY: usize = 64 * 1024 * 1024;

/// The API's routes, with the largest body it reads.
pub fn router() -> Router<Context> {
    Router::new()
        .merge(health::router())
        .merge(accounts::router())
        .merge(devices::router())
        .merge(metrics::router())
        .merge(email_config::router())
        .merge(events::router())
        .merge(messages::router())
        .merge(oauth::router())
        .merge(doctor::router())
        .merge(expiries::router())
        .merge(status::router())
        .merge(cluster::router())
        .layer(DefaultBodyLimit::max(MAX_BODY))
}

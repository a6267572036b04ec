//! The cluster's traffic between nodes: a node joins the primary with a one-time code (pinning the primary's
//! certificate, handing it a key of its own), then follows it: it asks for the primary's configuration in a long
//! poll and takes every new snapshot. Everything goes over HTTPS to the primary's cluster listener; the follower
//! authenticates with a bearer derived from its key, the primary by the certificate the follower pinned.
//!
//! - [`protocol`]: the JSON the nodes exchange (`/cluster/v1/…`).
//! - [`tls`]: the pinned-certificate client and the node's own server certificate.
//! - [`client`]: joining, and asking the primary for its snapshot.
//! - [`api`]: the primary's side of it, served on `serve --cluster-listen`.
//! - [`follow`]: the follower's task.
//! - [`tokens`]: a follower's access tokens, asked of the primary.
//! - [`watch`]: the failover checks, takeovers and fencing, and the promote and demote hooks.

pub mod api;
pub mod client;
pub mod follow;
pub mod protocol;
pub mod tls;
pub mod tokens;
pub mod watch;

/// The header a follower names itself in.
pub const NODE_HEADER: &str = "x-tidings-node";
/// The header it gives its epoch in: a primary of an older epoch refuses to serve it.
pub const EPOCH_HEADER: &str = "x-tidings-epoch";
/// The header it gives its version in.
pub const VERSION_HEADER: &str = "x-tidings-version";
pub use tidings_app::cluster::VERSION;

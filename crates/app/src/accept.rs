//! Accepting connections (the HTTP interface, the SMTP gateway) without spinning when the process is out of
//! file descriptors: the waiting connection stays queued and `accept` fails again at once, so a listener that
//! retried at once would take a whole core and fill the log for as long as a flood of connections lasts.

use std::{net::SocketAddr, time::Duration};
use tokio::net::{TcpListener, TcpStream};

/// How long to pause after an accept that failed for want of resources.
pub const PAUSE: Duration = Duration::from_millis(100);

/// The next connection. A connection that went away before it was accepted is skipped; any other failure (too
/// many open files) pauses [`PAUSE`] before the next try, and is logged once for each run of failures.
pub async fn next(listener: &TcpListener, what: &str) -> (TcpStream, SocketAddr) {
    let mut failing = false;
    loop {
        match listener.accept().await {
            Ok(pair) => {
                if failing {
                    tracing::info!(listener = what, "accepting connections again");
                }
                return pair;
            }
            Err(e)
                if matches!(e.kind(), std::io::ErrorKind::ConnectionAborted | std::io::ErrorKind::ConnectionReset) => {}
            Err(e) => {
                if !failing {
                    tracing::warn!(listener = what, error = %e, "cannot accept connections; pausing between tries");
                    failing = true;
                }
                tokio::time::sleep(PAUSE).await;
            }
        }
    }
}

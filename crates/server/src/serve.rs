//! Serving the HTTP interface, over plain TCP or TLS, with the limits an interface reachable by anyone needs:
//! request headers must arrive whole within [`HttpTimeouts::header_read`], a request body within
//! [`HttpTimeouts::body`] (a client that trickles bytes is cut off either way), and a graceful stop that lets
//! requests under way finish (up to 30 s).

use axum::{
    Router,
    body::Body,
    extract::{ConnectInfo, Request},
    middleware::Next,
    response::Response,
};
use hyper::server::conn::http1;
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
};
use std::{
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};
use tokio::{
    net::TcpListener,
    time::{Instant, Sleep},
};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// How long a client may take to send a request; both configurable (`tidings serve`).
#[derive(Clone, Copy, Debug)]
pub struct HttpTimeouts {
    /// From the first byte of a request to the end of its headers.
    pub header_read: Duration,
    /// From the end of the headers to the end of the body.
    pub body: Duration,
}

impl Default for HttpTimeouts {
    fn default() -> Self {
        Self { header_read: Duration::from_secs(10), body: Duration::from_secs(120) }
    }
}

/// Serves `router` on `listener` (over TLS with `tls`) until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<TlsAcceptor>,
    timeouts: HttpTimeouts,
    shutdown: CancellationToken,
) {
    let graceful = GracefulShutdown::new();
    // HTTP/1.1 only: a device's admin pages gain nothing from HTTP/2, and leaving it out keeps the binary (most
    // of the daemon's resident memory) smaller.
    let mut builder = http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(timeouts.header_read);
    let router = router.layer(axum::middleware::from_fn(move |request: Request, next: Next| {
        body_deadline(request, next, timeouts.body)
    }));
    loop {
        let (tcp, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = tidings_app::accept::next(&listener, "http") => accepted,
        };
        // Handlers read the client's address from ConnectInfo, put in each request (cheaper than a layer over
        // every route for each connection).
        let router = router.clone();
        let service = hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
            let mut request = request.map(Body::new);
            request.extensions_mut().insert(ConnectInfo(peer));
            router.clone().oneshot(request)
        });
        let (builder, watcher, tls) = (builder.clone(), graceful.watcher(), tls.clone());
        tokio::spawn(async move {
            let served = match tls {
                Some(acceptor) => {
                    let stream = match tokio::time::timeout(timeouts.header_read, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => stream,
                        Ok(Err(e)) => return tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => return tracing::debug!(%peer, "TLS handshake timed out"),
                    };
                    watcher.watch(builder.serve_connection(TokioIo::new(stream), service)).await
                }
                None => watcher.watch(builder.serve_connection(TokioIo::new(tcp), service)).await,
            };
            if let Err(e) = served {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    if tokio::time::timeout(Duration::from_secs(30), graceful.shutdown()).await.is_err() {
        tracing::warn!("some HTTP connections were still open after 30 s; closing them");
    }
}

/// Gives the request's body a deadline: read after it, the body fails and the request ends.
async fn body_deadline(request: Request, next: Next, limit: Duration) -> Response {
    let (parts, body) = request.into_parts();
    let deadline = Instant::now() + limit;
    let body = Body::new(Deadline { body, deadline, timer: None, limit });
    next.run(Request::from_parts(parts, body)).await
}

/// A body that fails once its deadline has passed. The timer is set only when the body is not there at once
/// (most bodies arrive with their headers), and once set it is looked at before every read.
struct Deadline {
    body: Body,
    deadline: Instant,
    timer: Option<Pin<Box<Sleep>>>,
    limit: Duration,
}

impl Deadline {
    fn expired(&self) -> Poll<Option<Result<http_body::Frame<axum::body::Bytes>, axum::Error>>> {
        let why = format!("the request body did not arrive within {} s", self.limit.as_secs());
        Poll::Ready(Some(Err(axum::Error::new(why))))
    }
}

impl http_body::Body for Deadline {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        if self.timer.as_mut().is_some_and(|t| t.as_mut().poll(cx).is_ready()) {
            return self.expired();
        }
        if let Poll::Ready(frame) = Pin::new(&mut self.body).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        let deadline = self.deadline;
        let timer = self.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if timer.as_mut().poll(cx).is_ready() {
            return self.expired();
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

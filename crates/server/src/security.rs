//! What every answer carries to keep browsers safe: a Content-Security-Policy without inline script (the
//! interface's one script is a file), no framing, no MIME sniffing, no referrer beyond this site, and
//! `Cache-Control: no-store` on everything but the static files (pages and answers show tokens' and
//! secrets' states). Also the body limit of requests read before anyone is authenticated.

use axum::{
    extract::DefaultBodyLimit,
    http::{HeaderValue, header},
    response::Response,
};

/// The largest body read before the caller is authenticated (the sign-in forms).
pub const UNAUTHENTICATED_BODY: usize = 16 * 1024;

/// The limit for routes that read a body before authentication.
pub fn unauthenticated_body() -> DefaultBodyLimit {
    DefaultBodyLimit::max(UNAUTHENTICATED_BODY)
}

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; \
                   base-uri 'none'; frame-ancestors 'none'";

pub async fn headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

//! Post, then redirect, then get: a form that worked answers with a redirect to the page, which shows what the
//! form did once. Reloading that page shows it without submitting the form again (a second API token, a
//! device sign-in or a test mail started twice). What to show waits here, in memory, under a random id the
//! browser holds in a short-lived cookie, bound to the session that posted, and is taken by the next page.

use super::{
    Viewer,
    login::{cookie_header, random},
};
use crate::service::{Context, caller::cookie};
use axum::{
    http::{HeaderMap, header},
    response::{IntoResponse, Redirect, Response},
};
use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

const COOKIE: &str = "tidings_flash";
/// How long a notice waits for its page.
const KEPT: Duration = Duration::from_secs(120);

/// A notice: `ok`, `warning` or `error`, and its words.
pub type Notice = (&'static str, String);

/// The notices waiting for their page.
#[derive(Debug, Default)]
pub struct Flashes(Mutex<HashMap<String, Waiting>>);

#[derive(Debug)]
struct Waiting {
    /// The session that posted (its CSRF token, which is the session's own).
    session: String,
    put_at: Instant,
    notices: Vec<Notice>,
}

impl Flashes {
    fn all(&self) -> std::sync::MutexGuard<'_, HashMap<String, Waiting>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes what waits for this browser's session; nothing for a cookie that is not its own.
    pub fn take(&self, headers: &HeaderMap, session: &str) -> Vec<Notice> {
        let Some(id) = cookie(headers, COOKIE) else { return Vec::new() };
        let mut all = self.all();
        match all.remove(id) {
            Some(w) if w.session == session && w.put_at.elapsed() < KEPT => w.notices,
            Some(other) => {
                if other.session != session {
                    all.insert(id.to_owned(), other);
                }
                Vec::new()
            }
            None => Vec::new(),
        }
    }

    fn put(&self, session: &str, notices: Vec<Notice>) -> String {
        let id = random();
        let mut all = self.all();
        all.retain(|_, w| w.put_at.elapsed() < KEPT);
        all.insert(id.clone(), Waiting { session: session.to_owned(), put_at: Instant::now(), notices });
        id
    }
}

/// Answers a form that worked: to `to` (303 See Other), where `notices` are shown once.
pub fn redirect(context: &Context, viewer: &Viewer, to: &str, notices: Vec<Notice>) -> Response {
    redirect_session(context, viewer.csrf(), to, notices)
}

/// The same for a session known by its CSRF token (a device account's own page).
pub fn redirect_session(context: &Context, session: &str, to: &str, notices: Vec<Notice>) -> Response {
    let mut response = Redirect::to(to).into_response();
    if !notices.is_empty() {
        let id = context.inner.flashes.put(session, notices);
        let max_age = KEPT.as_secs() as i64;
        response.headers_mut().append(header::SET_COOKIE, cookie_header(context, COOKIE, &id, Some(max_age)));
    }
    response
}

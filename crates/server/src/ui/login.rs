//! Signing in and out. The sign-in form is protected against cross-site posting by a double-submit token (a
//! cookie and a form field that must match); a session cookie is HttpOnly, SameSite=Strict, and Secure over
//! HTTPS.

use super::{UiError, Viewer, i18n, notice};
use crate::service::{
    Context,
    caller::{SESSION_COOKIE, cookie},
};
use axum::{
    Form, Router,
    extract::{ConnectInfo, Query, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use base64::Engine;
use maud::{DOCTYPE, Markup, html};
use serde::Deserialize;
use std::net::SocketAddr;
use tidings_core::secret::SecretString;

pub(super) const LOGIN_COOKIE: &str = "tidings_login";

pub fn router() -> Router<Context> {
    Router::new()
        .route("/login", get(form).post(sign_in).layer(crate::security::unauthenticated_body()))
        .route("/logout", post(sign_out))
}

#[derive(Debug, Deserialize)]
struct Next {
    next: Option<String>,
}

/// Only a path of this interface: one leading `/` and no second one right after it (which browsers read as
/// another host), no backslash, and printable ASCII only (browsers drop tabs and newlines, turning
/// `/\t/evil.example` into `//evil.example`; a header cannot carry the rest). Anything else goes to the start
/// page: never an open redirect.
pub(super) fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n[1..].starts_with('/')
                && n.chars().all(|c| c.is_ascii_graphic() && c != '\\') =>
        {
            n.to_owned()
        }
        _ => "/".into(),
    }
}

pub(super) fn cookie_header(context: &Context, name: &str, value: &str, max_age: Option<i64>) -> HeaderValue {
    let secure = if context.inner.secure_cookies { "; Secure" } else { "" };
    let age = max_age.map(|s| format!("; Max-Age={s}")).unwrap_or_default();
    HeaderValue::from_str(&format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict{secure}{age}"))
        .unwrap_or(HeaderValue::from_static(""))
}

pub(super) fn random() -> String {
    let mut bytes = [0u8; 24];
    rand_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn rand_bytes(bytes: &mut [u8]) {
    use rand::RngCore;
    rand::rngs::OsRng.fill_bytes(bytes);
}

/// A page outside the signed-in layout (the sign-in pages): `title` in the tab, `heading` above `body`.
pub(super) fn standalone(tr: i18n::Tr, title: &str, heading: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang=(tr.code()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Tidings" }
                link rel="stylesheet" href="/static/app.css";
            }
            body.login { main { h1 { (heading) } (body) } }
        }
    }
}

fn login_page(tr: i18n::Tr, next: &str, token: &str, error: Option<&str>, username: &str) -> Markup {
    let form = html! {
        @if let Some(error) = error { (notice("error", error)) }
        form method="post" action="/login" {
            input type="hidden" name="csrf" value=(token);
            input type="hidden" name="next" value=(next);
            label { (tr.t("login.username")) input name="username" autocomplete="username" required value=(username) autofocus; }
            label { (tr.t("login.password")) input name="password" type="password" autocomplete="current-password" required; }
            button type="submit" { (tr.t("login.submit")) }
        }
    };
    standalone(tr, tr.t("login.title"), "Tidings", form)
}

async fn form(
    State(context): State<Context>,
    viewer: Option<Viewer>,
    headers: HeaderMap,
    Query(next): Query<Next>,
) -> Response {
    let next = safe_next(next.next.as_deref());
    if viewer.is_some() {
        return Redirect::to(&next).into_response();
    }
    let tr = i18n::negotiate(None, &headers);
    let token = random();
    let mut response = login_page(tr, &next, &token, None, "").into_response();
    response.headers_mut().append(header::SET_COOKIE, cookie_header(&context, LOGIN_COOKIE, &token, Some(3600)));
    response
}

#[derive(Debug, Deserialize)]
pub(super) struct SignInForm {
    pub csrf: String,
    next: Option<String>,
    pub username: String,
    pub password: String,
}

impl SignInForm {
    /// Whether the form carries the token the sign-in page set in its cookie (double submit).
    pub(super) fn csrf_matches(&self, headers: &HeaderMap) -> bool {
        !self.csrf.is_empty() && cookie(headers, LOGIN_COOKIE) == Some(self.csrf.as_str())
    }
}

/// Goes on to `next` with the new session's cookie, and the sign-in form's token cleared.
pub(super) fn signed_in(
    context: &Context,
    next: &str,
    cookie: &str,
    token: &str,
    expires_at: chrono::DateTime<chrono::Utc>,
) -> Response {
    let mut response = Redirect::to(next).into_response();
    let max_age = (expires_at - chrono::Utc::now()).num_seconds().max(60);
    let headers = response.headers_mut();
    headers.append(header::SET_COOKIE, cookie_header(context, cookie, token, Some(max_age)));
    headers.append(header::SET_COOKIE, cookie_header(context, LOGIN_COOKIE, "", Some(0)));
    response
}

async fn sign_in(
    State(context): State<Context>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<SignInForm>,
) -> Response {
    let tr = i18n::negotiate(None, &headers);
    let next = safe_next(form.next.as_deref());
    if !form.csrf_matches(&headers) {
        return UiError::Csrf.into_response();
    }
    let password = SecretString::new(form.password);
    let outcome = context.inner.app.sign_in(form.username.trim(), &password, peer.ip(), &context.inner.sign_in).await;
    let username = shown_back(&form.username);
    match outcome {
        Ok(session) => signed_in(&context, &next, SESSION_COOKIE, session.token.expose(), session.expires_at),
        Err(tidings_app::Error::Refused(_)) => {
            (StatusCode::UNAUTHORIZED, login_page(tr, &next, &form.csrf, Some(tr.t("login.refused")), username))
                .into_response()
        }
        Err(e @ (tidings_app::Error::Busy(_) | tidings_app::Error::Throttled(_))) => {
            (StatusCode::TOO_MANY_REQUESTS, login_page(tr, &next, &form.csrf, Some(tr.t(throttled_key(&e))), username))
                .into_response()
        }
        Err(e) => UiError::from(e).into_response(),
    }
}

#[derive(Debug, Deserialize)]
struct CsrfForm {
    csrf: String,
}

async fn sign_out(
    State(context): State<Context>,
    viewer: Viewer,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Result<Response, UiError> {
    viewer.check_csrf(&form.csrf)?;
    if let Some(token) = cookie(&headers, SESSION_COOKIE) {
        context.inner.app.sign_out(token, viewer.username()).await?;
    }
    let mut response = Redirect::to("/login").into_response();
    response.headers_mut().append(header::SET_COOKIE, cookie_header(&context, SESSION_COOKIE, "", Some(0)));
    Ok(response)
}

/// The words for a sign-in refused for now: the address's limit, or too many checks at once in the daemon.
pub(super) fn throttled_key(e: &tidings_app::Error) -> &'static str {
    if matches!(e, tidings_app::Error::Busy(_)) { "login.busy" } else { "login.throttled" }
}

/// The user name to show again in the form: trimmed, and cut where a name can no longer be valid.
pub(super) fn shown_back(username: &str) -> &str {
    let name = username.trim();
    match name.char_indices().nth(64) {
        Some((end, _)) => &name[..end],
        None => name,
    }
}

#[cfg(test)]
mod tests {
    use super::{safe_next, throttled_key};

    #[test]
    fn a_refusal_for_now_names_its_cause() {
        assert_eq!(throttled_key(&tidings_app::Error::Busy("checks".into())), "login.busy");
        assert_eq!(throttled_key(&tidings_app::Error::Throttled("address".into())), "login.throttled");
    }

    #[test]
    fn next_is_only_ever_a_path_of_this_interface() {
        for good in ["/", "/email-config", "/outbox?status=deferred", "/a/b"] {
            assert_eq!(safe_next(Some(good)), good);
        }
        for bad in [
            "//evil.example",
            "/\\evil.example",
            "/\t/evil.example",
            "/\n/evil.example",
            "/\r/evil.example",
            "/\x0b/evil.example",
            "/ /evil.example",
            "/é",
            "https://evil.example/",
            "evil.example",
            "",
        ] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(safe_next(None), "/");
    }
}

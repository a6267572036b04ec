//! Who is calling: an API token's holder or a web session's account, with the role that says what they may do.
//! The API reads callers from bearer tokens and sessions (`http/auth.rs`), the web interface from sessions.

use super::Context;
use axum::http::{HeaderMap, Method, header};
use tidings_core::account::Role;
use tidings_store::Account;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "tidings_session";

/// An authenticated caller.
#[derive(Clone, Debug)]
pub struct Caller {
    /// `api:<token name>` or `web:<user name>`, for audit entries and message origins.
    pub actor: String,
    pub role: Role,
    /// The signed-in account, for session callers.
    pub account: Option<Account>,
    /// The session's CSRF token, for session callers.
    pub csrf: Option<String>,
}

/// A cookie's value from the `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(name)?.strip_prefix('='))
}

/// The session of a request's cookie, when live.
pub async fn session_caller(headers: &HeaderMap, context: &Context) -> Result<Option<Caller>, tidings_app::Error> {
    let Some(token) = cookie(headers, SESSION_COOKIE) else { return Ok(None) };
    let Some(session) = context.inner.app.session(token, &context.inner.sign_in).await? else { return Ok(None) };
    Ok(Some(Caller {
        actor: format!("web:{}", session.account.username),
        role: session.account.role,
        account: Some(session.account),
        csrf: Some(session.csrf),
    }))
}

/// Whether a method changes state (and so needs the CSRF token from a session).
pub fn changes_state(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

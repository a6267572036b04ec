//! Who is calling: a bearer token in `Authorization` (automation), or a browser's session cookie (the web
//! interface and its scripts), and what the role allows. A session's state-changing request must carry the
//! session's CSRF token (`X-CSRF-Token` header for scripts, a `csrf` form field for pages).

use super::{Context, error::ApiError};
use axum::{
    extract::FromRequestParts,
    http::{HeaderMap, Method, header, request::Parts},
};
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

impl Caller {
    /// Refuses callers whose role may not change things (Viewers).
    pub fn require_operator(&self) -> Result<(), ApiError> {
        if self.role.may_configure_email() {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "the {} role is read-only; this needs the administrator or network_administrator role",
                self.role
            )))
        }
    }

    /// Refuses everyone but administrators (accounts and API tokens).
    pub fn require_administrator(&self) -> Result<(), ApiError> {
        if self.role == Role::Administrator {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "the {} role may not manage accounts and API tokens; this needs the administrator role",
                self.role
            )))
        }
    }
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
pub async fn session_caller(headers: &HeaderMap, context: &Context) -> Result<Option<Caller>, ApiError> {
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

impl FromRequestParts<Context> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, context: &Context) -> Result<Self, Self::Rejection> {
        let Some(header) = parts.headers.get(header::AUTHORIZATION) else {
            let caller = session_caller(&parts.headers, context).await?.ok_or_else(|| {
                ApiError::Unauthorized(
                    "send an API token as `Authorization: Bearer TOKEN` (create one with `tidings api-token create`), or sign in to the web interface"
                        .into(),
                )
            })?;
            if changes_state(&parts.method) {
                let sent = parts.headers.get("x-csrf-token").and_then(|v| v.to_str().ok());
                if sent.is_none() || sent != caller.csrf.as_deref() {
                    return Err(ApiError::Forbidden(
                        "missing or wrong X-CSRF-Token header: a signed-in browser's changes must carry the page's CSRF token"
                            .into(),
                    ));
                }
            }
            return Ok(caller);
        };
        let token = header
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim)
            .ok_or_else(|| ApiError::Unauthorized("the Authorization header must be `Bearer TOKEN`".into()))?;
        match context.inner.app.authenticate_api_token(token).await? {
            Some(t) => Ok(Caller { actor: format!("api:{}", t.name), role: t.role, account: None, csrf: None }),
            None => Err(ApiError::Unauthorized("the API token is unknown or revoked".into())),
        }
    }
}

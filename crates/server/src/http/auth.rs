//! Who is calling the API: a bearer token in `Authorization` (automation), or a browser's session cookie (the
//! web interface and its scripts), and what the role allows. A session's state-changing request must carry the
//! session's CSRF token (`X-CSRF-Token` header for scripts, a `csrf` form field for pages).

use super::{Context, error::ApiError};
use crate::service::caller::{Caller, changes_state, session_caller};
use axum::{
    extract::FromRequestParts,
    http::{header, request::Parts},
};
use tidings_core::account::Role;

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

//! Who is calling: the bearer token in `Authorization`, and what its role allows.

use super::{Context, error::ApiError};
use axum::{extract::FromRequestParts, http::request::Parts};
use tidings_core::account::Role;

/// An authenticated API caller.
#[derive(Clone, Debug)]
pub struct Caller {
    /// `api:<token name>`, for audit entries and message origins.
    pub actor: String,
    pub role: Role,
}

impl Caller {
    /// Refuses callers whose role may not change things (Viewers).
    pub fn require_operator(&self) -> Result<(), ApiError> {
        if self.role.may_configure_email() {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "this token's role ({}) is read-only; use a token with the administrator or network_administrator role",
                self.role
            )))
        }
    }
}

impl FromRequestParts<Context> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, context: &Context) -> Result<Self, Self::Rejection> {
        let header = parts.headers.get(axum::http::header::AUTHORIZATION).ok_or_else(|| {
            ApiError::Unauthorized(
                "send an API token as `Authorization: Bearer TOKEN` (create one with `tidings api-token create`)"
                    .into(),
            )
        })?;
        let token = header
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim)
            .ok_or_else(|| ApiError::Unauthorized("the Authorization header must be `Bearer TOKEN`".into()))?;
        match context.inner.app.authenticate_api_token(token).await? {
            Some(t) => Ok(Caller { actor: format!("api:{}", t.name), role: t.role }),
            None => Err(ApiError::Unauthorized("the API token is unknown or revoked".into())),
        }
    }
}

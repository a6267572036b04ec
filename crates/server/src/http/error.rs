//! The API's errors: each variant is an HTTP outcome with a JSON body
//! `{"error": {"code": "...", "message": "...", "fields": [{"field": "...", "message": "..."}]}}`.
//! Internal errors are logged and answered with a plain 500 that reveals nothing.

use crate::service::{Described, described};
use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::json;
use tidings_core::FieldError;

#[derive(Debug)]
pub enum ApiError {
    /// 401: no valid bearer token.
    Unauthorized(String),
    /// 403: the token's role may not do this.
    Forbidden(String),
    NotFound(String),
    /// 400: the request cannot be read (malformed JSON, unknown field).
    BadRequest(String),
    /// 422: the request was read but its values are wrong, field by field.
    Invalid(Vec<FieldError>),
    /// 409: the state does not allow it (not retryable, nothing configured).
    Conflict {
        code: &'static str,
        message: String,
    },
    PayloadTooLarge(String),
    /// 429: too many attempts at once or from this address; try again later.
    TooMany(String),
    /// 503: try again later.
    Unavailable(String),
    /// 500: logged, never shown.
    Internal(String),
    /// An application error, as [`described`] says it.
    App(Described),
}

impl From<tidings_app::Error> for ApiError {
    fn from(e: tidings_app::Error) -> Self {
        ApiError::App(described(&e))
    }
}

impl ApiError {
    /// The message shown to people (the web interface shows it in its notices).
    pub fn message(self) -> String {
        self.parts().2
    }

    fn parts(self) -> (StatusCode, &'static str, String, Vec<FieldError>) {
        match self {
            ApiError::Unauthorized(m) => (StatusCode::UNAUTHORIZED, "unauthorized", m, vec![]),
            ApiError::Forbidden(m) => (StatusCode::FORBIDDEN, "forbidden", m, vec![]),
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, "not_found", m, vec![]),
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, "bad_request", m, vec![]),
            ApiError::Invalid(fields) => {
                let summary = fields.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
                (StatusCode::UNPROCESSABLE_ENTITY, "invalid", summary, fields)
            }
            ApiError::Conflict { code, message } => (StatusCode::CONFLICT, code, message, vec![]),
            ApiError::PayloadTooLarge(m) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", m, vec![]),
            ApiError::TooMany(m) => (StatusCode::TOO_MANY_REQUESTS, "too_many", m, vec![]),
            ApiError::Unavailable(m) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable", m, vec![]),
            ApiError::App(Described { status, code, message, fields }) => (status, code, message, fields),
            ApiError::Internal(detail) => {
                tracing::error!(error = %detail, "internal error answering an API request");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error; see the daemon's log".to_owned(),
                    vec![],
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message, fields) = self.parts();
        let mut body = json!({ "error": { "code": code, "message": message } });
        if !fields.is_empty() {
            body["error"]["fields"] = json!(fields);
        }
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_during_shutdown_is_unavailable_not_an_internal_error() {
        let (status, code, message, _) =
            ApiError::from(tidings_app::Error::Store(tidings_store::Error::Closed)).parts();
        assert_eq!((status, code), (StatusCode::SERVICE_UNAVAILABLE, "unavailable"));
        assert!(message.contains("shutting down"), "{message}");
    }
}

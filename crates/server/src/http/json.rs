//! A JSON body extractor whose refusals are the API's own errors: what was wrong, and where.

use super::error::ApiError;
use axum::{
    extract::{FromRequest, Request, rejection::JsonRejection},
    http::StatusCode,
};
use serde::de::DeserializeOwned;

/// Like `axum::Json`, answering malformed bodies with a JSON error that names the problem.
#[derive(Debug)]
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Body(value)),
            Err(JsonRejection::JsonDataError(e)) => Err(ApiError::BadRequest(
                e.body_text()
                    .trim_start_matches("Failed to deserialize the JSON body into the target type: ")
                    .to_owned(),
            )),
            Err(JsonRejection::JsonSyntaxError(e)) => {
                Err(ApiError::BadRequest(format!("the body is not valid JSON: {}", e.body_text())))
            }
            Err(JsonRejection::MissingJsonContentType(_)) => {
                Err(ApiError::BadRequest("send the body as JSON with `Content-Type: application/json`".into()))
            }
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Err(ApiError::PayloadTooLarge("the request body is larger than the API accepts".into()))
            }
            Err(e) => Err(ApiError::BadRequest(e.body_text())),
        }
    }
}

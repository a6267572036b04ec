//! `/api/v1/messages`: submit, list, inspect, retry and purge outbox messages.

use super::{Context, error::ApiError, json::Body, paging::Page, wire};
use crate::service::caller::Caller;
use axum::{
    Json, Router,
    extract::{Path, Query, State},
    http::{StatusCode, header},
    response::IntoResponse,
    routing::{get, post},
};
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;
use std::collections::HashMap;
use tidings_app::outbox::RetryOutcome;
use tidings_app::outbox::{Submission, prepare};
use tidings_core::{
    FieldError,
    message::{NewMessage, RawMessage},
    outbox::Status,
};

pub fn router() -> Router<Context> {
    Router::new()
        .route("/api/v1/messages", post(submit).get(list).delete(purge))
        .route("/api/v1/messages/{id}", get(show))
        .route("/api/v1/messages/{id}/retry", post(retry))
}

/// A structured message (`to`, `cc`, `bcc`, `subject`, `text`, `html`) or a raw one (`raw` with `envelope`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SubmitBody {
    #[serde(default)]
    to: Vec<String>,
    #[serde(default)]
    cc: Vec<String>,
    #[serde(default)]
    bcc: Vec<String>,
    subject: Option<String>,
    text: Option<String>,
    html: Option<String>,
    raw: Option<String>,
    envelope: Option<Envelope>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope {
    mail_from: String,
    rcpt_to: Vec<String>,
}

impl SubmitBody {
    fn into_submission(self) -> Result<Submission, ApiError> {
        let structured = !self.to.is_empty()
            || !self.cc.is_empty()
            || !self.bcc.is_empty()
            || self.subject.is_some()
            || self.text.is_some()
            || self.html.is_some();
        match (self.raw, self.envelope) {
            (Some(_), _) if structured => {
                Err(invalid("raw", "give either raw with envelope, or to/cc/bcc/subject/text/html, not both"))
            }
            (Some(_), None) => {
                Err(invalid("envelope", "a raw message needs its envelope: {\"mail_from\": ..., \"rcpt_to\": [...]}"))
            }
            (Some(raw), Some(envelope)) => Ok(Submission::Raw(RawMessage {
                mail_from: envelope.mail_from,
                rcpt_to: envelope.rcpt_to,
                data: raw.into_bytes(),
            })),
            (None, Some(_)) => Err(invalid("envelope", "envelope goes with raw; a structured message takes to/cc/bcc")),
            (None, None) => Ok(Submission::Structured(NewMessage {
                to: self.to,
                cc: self.cc,
                bcc: self.bcc,
                subject: self.subject.unwrap_or_default(),
                text: self.text.unwrap_or_default(),
                html: self.html,
            })),
        }
    }
}

fn invalid(field: &str, message: &str) -> ApiError {
    ApiError::Invalid(vec![FieldError::new(field, message)])
}

async fn submit(
    State(context): State<Context>,
    caller: Caller,
    Body(body): Body<SubmitBody>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require_operator()?;
    let inner = &context.inner;
    let config = inner.config.get();
    let prepared = prepare(&config.config, &caller.actor, body.into_submission()?, Utc::now())?;
    let message_id = prepared.message_id.clone();
    let id = inner.committer.commit(prepared).await?;
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, format!("/api/v1/messages/{id}"))],
        Json(json!({ "id": id, "status": "queued", "message_id": message_id })),
    ))
}

async fn list(
    State(context): State<Context>,
    _caller: Caller,
    Query(mut query): Query<HashMap<String, String>>,
) -> Result<impl IntoResponse, ApiError> {
    let mut errors = Vec::new();
    let page = Page::take(&mut query, "a message", &mut errors);
    let mut status = None;
    for (key, value) in &query {
        match key.as_str() {
            "status" => match value.parse::<Status>() {
                Ok(s) => status = Some(s),
                Err(why) => errors.push(FieldError::new("status", why)),
            },
            other => errors.push(FieldError::new(other, "unknown parameter; expected status, limit or before")),
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::Invalid(errors));
    }
    let messages = context.inner.app.messages(status, page.limit, page.before).await?;
    let next_before = page.next_before(messages.iter().map(|m| m.id));
    Ok(Json(json!({ "messages": wire::all::<_, wire::MessageSummary>(&messages), "next_before": next_before })))
}

fn parse_id(id: &str) -> Result<i64, ApiError> {
    id.parse().map_err(|_| ApiError::NotFound(format!("no message {id:?}: message ids are numbers")))
}

async fn show(
    State(context): State<Context>,
    _caller: Caller,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let id = parse_id(&id)?;
    match context.inner.app.message(id).await? {
        Some(detail) => Ok(Json(wire::MessageDetail::from(&detail))),
        None => Err(ApiError::NotFound(format!("no message {id}"))),
    }
}

async fn retry(
    State(context): State<Context>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require_operator()?;
    let id = parse_id(&id)?;
    match context.inner.app.retry_message(&caller.actor, id).await? {
        RetryOutcome::Requeued => {
            context.wake_engine();
            Ok(Json(json!({ "id": id, "status": "queued" })))
        }
        RetryOutcome::NotFound => Err(ApiError::NotFound(format!("no message {id}"))),
        RetryOutcome::NotRetryable(status) => Err(ApiError::Conflict {
            code: "not_retryable",
            message: format!(
                "message {id} is {status}; only failed, deferred or queued messages with undelivered recipients can be retried"
            ),
        }),
    }
}

async fn purge(
    State(context): State<Context>,
    caller: Caller,
    Query(query): Query<HashMap<String, String>>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require_operator()?;
    let status = query
        .get("status")
        .ok_or_else(|| invalid("status", "required: delivered or failed"))?
        .parse::<Status>()
        .map_err(|why| ApiError::Invalid(vec![FieldError::new("status", why)]))?;
    let purged = context.inner.app.purge(&caller.actor, status).await?;
    Ok(Json(json!({ "purged": purged })))
}

//! `/api/v1/events`: the appliance reports events; everyone may read what came in and what was mailed.

use super::{Context, error::ApiError, json::Body, paging::Page, wire};
use crate::service::caller::Caller;
use axum::{
    Json, Router,
    extract::{Path, Query, State},
    http::{StatusCode, header},
    response::IntoResponse,
    routing::get,
};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use tidings_app::notifications::mail_path_problem;
use tidings_core::{FieldError, notify::EventKind};

pub fn router() -> Router<Context> {
    Router::new()
        .route("/api/v1/events", get(list).post(emit))
        .route("/api/v1/events/kinds", get(kinds))
        .route("/api/v1/events/{id}", get(show))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EmitBody {
    kind: String,
    node: Option<String>,
    #[serde(default)]
    details: BTreeMap<String, Value>,
}

/// Detail values are strings; numbers and booleans are taken as their text.
fn detail_text(key: &str, value: Value) -> Result<String, FieldError> {
    match value {
        Value::String(s) => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => Err(FieldError::new(
            format!("details.{key}"),
            format!(
                "must be a string (or a number or boolean), not {}",
                match other {
                    Value::Null => "null",
                    Value::Array(_) => "an array",
                    _ => "an object",
                }
            ),
        )),
    }
}

async fn emit(
    State(context): State<Context>,
    caller: Caller,
    Body(body): Body<EmitBody>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require_operator()?;
    let mut details = BTreeMap::new();
    let mut errors = Vec::new();
    for (key, value) in body.details {
        match detail_text(&key, value) {
            Ok(text) => {
                details.insert(key, text);
            }
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::Invalid(errors));
    }
    let event = context.inner.app.emit_event(&caller.actor, &body.kind, body.node.as_deref(), details).await?;
    context.wake_notifier();
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, format!("/api/v1/events/{}", event.id))],
        Json(wire::Event::from(&event)),
    ))
}

async fn list(
    State(context): State<Context>,
    _caller: Caller,
    Query(mut query): Query<HashMap<String, String>>,
) -> Result<impl IntoResponse, ApiError> {
    let mut errors = Vec::new();
    let page = Page::take(&mut query, "an event", &mut errors);
    let mut kind = None;
    for (key, value) in &query {
        match key.as_str() {
            "kind" => match EventKind::parse(value) {
                Ok(k) => kind = Some(k),
                Err(why) => errors.push(FieldError::new("kind", why)),
            },
            other => errors.push(FieldError::new(other, "unknown parameter; expected kind, limit or before")),
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::Invalid(errors));
    }
    let events = context.inner.app.events(kind, page.limit, page.before).await?;
    let next_before = page.next_before(events.iter().map(|e| e.id));
    let problem = mail_path_problem(&context.inner.config.get().config);
    Ok(Json(json!({
        "events": wire::all::<_, wire::Event>(&events),
        "next_before": next_before,
        "mail_path": { "ready": problem.is_none(), "problem": problem },
    })))
}

async fn show(
    State(context): State<Context>,
    _caller: Caller,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let id: i64 = id.parse().map_err(|_| ApiError::NotFound(format!("no event {id:?}: event ids are numbers")))?;
    match context.inner.app.event(id).await? {
        Some(event) => Ok(Json(wire::Event::from(&event))),
        None => Err(ApiError::NotFound(format!("no event {id}"))),
    }
}

async fn kinds(_caller: Caller) -> impl IntoResponse {
    let kinds: Vec<Value> = EventKind::ALL
        .iter()
        .map(|k| json!({ "kind": k, "title": k.title(), "severity": k.severity(), "source": k.source(), "summary": k.summary() }))
        .collect();
    Json(json!({ "kinds": kinds }))
}

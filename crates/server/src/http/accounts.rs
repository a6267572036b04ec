//! `/api/v1/accounts` and `/api/v1/api-tokens` (administrators), `/api/v1/me` (anyone signed in or holding a
//! token), `/api/v1/audit` (anyone).

use super::{Context, error::ApiError, json::Body, wire};
use crate::service::caller::Caller;
use axum::{
    Json, Router,
    extract::{Path, Query, State},
    http::StatusCode,
    response::IntoResponse,
    routing::{delete, get, patch},
};
use serde::Deserialize;
use serde_json::json;
use std::collections::HashMap;
use tidings_app::sign_in::AccountUpdate;
use tidings_core::{FieldError, account::Role, config::Locale, secret::SecretString};

pub fn router() -> Router<Context> {
    Router::new()
        .route("/api/v1/me", get(me))
        .route("/api/v1/accounts", get(list).post(create))
        .route("/api/v1/accounts/{id}", patch(change).delete(remove))
        .route("/api/v1/api-tokens", get(tokens).post(create_token))
        .route("/api/v1/api-tokens/{id}", delete(revoke_token))
        .route("/api/v1/audit", get(audit))
}

async fn me(caller: Caller) -> impl IntoResponse {
    Json(
        json!({ "actor": caller.actor, "role": caller.role, "account": caller.account.as_ref().map(wire::Account::from) }),
    )
}

async fn list(State(context): State<Context>, caller: Caller) -> Result<impl IntoResponse, ApiError> {
    caller.require_administrator()?;
    Ok(Json(json!({ "accounts": wire::all::<_, wire::Account>(&context.inner.app.accounts().await?) })))
}

fn parse_role(role: &str) -> Result<Role, ApiError> {
    role.parse().map_err(|why: tidings_core::Invalid| ApiError::Invalid(vec![FieldError::new("role", why)]))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewAccountBody {
    username: String,
    password: String,
    role: String,
}

async fn create(
    State(context): State<Context>,
    caller: Caller,
    Body(body): Body<NewAccountBody>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require_administrator()?;
    let role = parse_role(&body.role)?;
    let id = context
        .inner
        .app
        .create_account(&caller.actor, &body.username, &SecretString::new(body.password), role)
        .await?;
    Ok((StatusCode::CREATED, Json(json!({ "id": id }))))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChangeBody {
    role: Option<String>,
    password: Option<String>,
    /// The password now; when given with `password`, checked first.
    current_password: Option<String>,
    /// `en`, `fr`, `de`, `nl`, or null for the browser's language.
    #[serde(default, with = "double_option")]
    locale: Option<Option<Locale>>,
    #[serde(default)]
    unlock: bool,
}

/// Tells an absent field (leave alone) from `null` (clear).
mod double_option {
    use serde::{Deserialize, Deserializer};
    pub fn deserialize<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(d).map(Some)
    }
}

/// Administrators change any account; every account may change its own password and language.
async fn change(
    State(context): State<Context>,
    caller: Caller,
    Path(id): Path<i64>,
    Body(body): Body<ChangeBody>,
) -> Result<impl IntoResponse, ApiError> {
    let own = caller.account.as_ref().is_some_and(|a| a.id == id);
    if !own || body.role.is_some() || body.unlock {
        caller.require_administrator()?;
    }
    let update = AccountUpdate {
        role: body.role.as_deref().map(parse_role).transpose()?,
        password: body.password.map(SecretString::new),
        current_password: body.current_password.map(SecretString::new),
        locale: body.locale,
        unlock: body.unlock,
    };
    context.inner.app.update_account(&caller.actor, id, update).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn remove(
    State(context): State<Context>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require_administrator()?;
    context.inner.app.delete_account(&caller.actor, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn tokens(State(context): State<Context>, caller: Caller) -> Result<impl IntoResponse, ApiError> {
    caller.require_administrator()?;
    Ok(Json(json!({ "api_tokens": wire::all::<_, wire::ApiToken>(&context.inner.app.api_tokens().await?) })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTokenBody {
    name: String,
    role: String,
}

/// The token's value is in this answer only.
async fn create_token(
    State(context): State<Context>,
    caller: Caller,
    Body(body): Body<NewTokenBody>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require_administrator()?;
    let role = parse_role(&body.role)?;
    let created = context.inner.app.create_api_token(&caller.actor, &body.name, role).await?;
    Ok((StatusCode::CREATED, Json(json!({ "id": created.id, "token": created.token.expose() }))))
}

async fn revoke_token(
    State(context): State<Context>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require_administrator()?;
    if context.inner.app.revoke_api_token(&caller.actor, id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!("no API token {id}, or it was revoked already")))
    }
}

async fn audit(
    State(context): State<Context>,
    _caller: Caller,
    Query(query): Query<HashMap<String, String>>,
) -> Result<impl IntoResponse, ApiError> {
    let limit = match query.get("limit").map(|v| v.parse::<u32>()) {
        None => 100,
        Some(Ok(n)) if (1..=1000).contains(&n) => n,
        Some(_) => return Err(ApiError::Invalid(vec![FieldError::new("limit", "expected 1 to 1000")])),
    };
    let before_id = match query.get("before").map(|v| v.parse::<i64>()) {
        None => None,
        Some(Ok(id)) => Some(id),
        Some(Err(_)) => return Err(ApiError::Invalid(vec![FieldError::new("before", "expected an entry's id")])),
    };
    let text = |name: &str| query.get(name).filter(|v| !v.is_empty()).cloned();
    let filter = tidings_store::AuditFilter { actor: text("actor"), action: text("action"), before_id, limit };
    let entries = context.inner.app.store().audit_page(&filter).await.map_err(tidings_app::Error::from)?;
    Ok(Json(json!({ "entries": wire::all::<_, wire::AuditEntry>(&entries) })))
}

//! The outbox: messages by status, each with its attempts, the relay's replies and their explanations; retry
//! and purge.

use super::{Need, UiError, Viewer, csrf_field, flash, i18n::Tr, notice, page, prose, when};
use crate::service::Context;
use axum::{
    Form, Router,
    extract::{Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use maud::{Markup, html};
use serde::Deserialize;
use tidings_app::outbox::RetryOutcome;
use tidings_core::outbox::{
    Attempt, RecipientState, Status,
    explain::{Evidence, explain_in, explain_refusal},
    reply::Reply,
};

pub fn router() -> Router<Context> {
    Router::new()
        .route("/outbox", get(list))
        .route("/outbox/purge", post(purge))
        .route("/outbox/{id}", get(show))
        .route("/outbox/{id}/retry", post(retry))
}

/// What an attempt's reply means, in the viewer's language when it is a reply Tidings knows; else as it was
/// explained when it came (a connection, TLS or token failure, in English).
fn attempt_explanation(tr: Tr, a: &Attempt) -> Option<String> {
    let reply = a.reply_code.map(|code| Reply { code, enhanced: a.enhanced_code.clone(), text: a.text.clone() });
    let known =
        a.stage.and_then(|stage| explain_in(Evidence { stage, reply: reply.as_ref(), xoauth2_status: None }, tr.0));
    known.or_else(|| a.explanation.clone())
}

/// A message's status in words, "partly delivered" when some recipients got it and others did not.
fn status_badge(tr: Tr, status: Status, recipients: &[tidings_core::outbox::Recipient]) -> Markup {
    if tidings_core::outbox::partly_delivered(status, recipients) {
        html! { span class={"status partly " (status)} { (tr.t("status.partly_delivered")) } }
    } else {
        html! { span class={"status " (status)} { (tr.t(status_key(status))) } }
    }
}

fn recipient_class(state: RecipientState) -> &'static str {
    match state {
        RecipientState::Pending => "queued",
        RecipientState::Delivered => "delivered",
        RecipientState::Failed => "failed",
    }
}

fn recipient_key(state: RecipientState) -> &'static str {
    match state {
        RecipientState::Pending => "status.queued",
        RecipientState::Delivered => "status.delivered",
        RecipientState::Failed => "status.failed",
    }
}

#[derive(Debug, Deserialize)]
struct Filter {
    status: Option<String>,
    before: Option<i64>,
}

pub(super) fn status_key(s: Status) -> &'static str {
    match s {
        Status::Queued => "status.queued",
        Status::Sending => "status.sending",
        Status::Deferred => "status.deferred",
        Status::Delivered => "status.delivered",
        Status::Failed => "status.failed",
    }
}

async fn list_page(
    context: &Context,
    viewer: &Viewer,
    filter: Filter,
    notices: Vec<(&str, String)>,
) -> Result<Response, UiError> {
    let tr = viewer.tr;
    let status = filter.status.as_deref().filter(|s| !s.is_empty()).and_then(|s| s.parse::<Status>().ok());
    let messages = context.inner.app.messages(status, 50, filter.before).await?;
    let counts = context.inner.app.store().queue_counts().await.map_err(tidings_app::Error::from)?;
    let body = html! {
        @for (kind, text) in &notices { (notice(kind, text)) }
        nav.filters {
            a href="/outbox" class=[status.is_none().then_some("active")] { (tr.t("outbox.all")) }
            @for s in Status::ALL {
                @let n = counts.iter().find(|(st, _)| *st == s).map_or(0, |(_, n)| *n);
                a href={"/outbox?status=" (s)} class=[(status == Some(s)).then_some("active")] { (tr.t(status_key(s))) " (" (n) ")" }
            }
        }
        @if messages.is_empty() {
            p { (tr.t("outbox.empty")) }
        } @else {
            table {
                thead { tr { th { "#" } th { (tr.t("outbox.subject")) } th { (tr.t("outbox.recipients")) } th { (tr.t("outbox.status")) } th { (tr.t("outbox.updated")) } th { (tr.t("outbox.last_error")) } } }
                tbody {
                    @for m in &messages {
                        tr {
                            td { a href={"/outbox/" (m.id)} { (m.id) } }
                            td { a href={"/outbox/" (m.id)} { (m.subject.clone().unwrap_or_else(|| "—".into())) } }
                            td { (m.recipients.iter().map(|r| r.address.as_str()).collect::<Vec<_>>().join(", ")) }
                            td { (status_badge(tr, m.status, &m.recipients)) }
                            td { (when(&m.updated_at)) }
                            td.small { (m.last_error.clone().unwrap_or_default()) }
                        }
                    }
                }
            }
            @if messages.len() == 50 {
                @if let Some(last) = messages.last() {
                    a href={"/outbox?status=" (status.map(|s| s.to_string()).unwrap_or_default()) "&before=" (last.id)} { (tr.t("outbox.older")) }
                }
            }
        }
        @if viewer.may_operate() {
            section.actions {
                @for s in [Status::Delivered, Status::Failed] {
                    form method="post" action="/outbox/purge" data-confirm=(tr.t("outbox.purge_confirm")) {
                        (csrf_field(viewer))
                        input type="hidden" name="status" value=(s);
                        button.secondary type="submit" { (tr.f("outbox.purge", &[("status", tr.t(status_key(s)))])) }
                    }
                }
            }
        }
    };
    Ok(page(context, viewer, "/outbox", tr.t("nav.outbox"), body).await.into_response())
}

async fn list(
    State(context): State<Context>,
    viewer: Viewer,
    Query(filter): Query<Filter>,
) -> Result<Response, UiError> {
    list_page(&context, &viewer, filter, vec![]).await
}

async fn show_page(
    context: &Context,
    viewer: &Viewer,
    id: i64,
    notices: Vec<(&str, String)>,
) -> Result<Response, UiError> {
    let tr = viewer.tr;
    let Some(m) = context.inner.app.message(id).await? else {
        let body = html! { p { (tr.f("outbox.no_message", &[("id", &id.to_string())])) } };
        return Ok(
            (StatusCode::NOT_FOUND, page(context, viewer, "/outbox", tr.t("nav.outbox"), body).await).into_response()
        );
    };
    let s = &m.summary;
    let body = html! {
        @for (kind, text) in &notices { (notice(kind, text)) }
        dl {
            dt { (tr.t("outbox.status")) } dd { (status_badge(tr, s.status, &s.recipients)) }
            dt { (tr.t("outbox.subject")) } dd { (s.subject.clone().unwrap_or_else(|| "—".into())) }
            dt { (tr.t("outbox.from")) } dd { (s.mail_from) }
            dt { (tr.t("outbox.origin")) } dd { (s.origin) }
            dt { (tr.t("outbox.created")) } dd { (when(&s.created_at)) }
            @if let Some(next) = &s.next_attempt_at { dt { (tr.t("outbox.next_attempt")) } dd { (when(next)) } }
        }
        h2 { (tr.t("outbox.recipients")) }
        ul.recipients {
            @for r in &s.recipients {
                li class={"recipient " (recipient_class(r.state))} {
                    span.mono { (r.address) } " — " span class={"status " (recipient_class(r.state))} { (tr.t(recipient_key(r.state))) }
                    @if let Some(reply) = &r.reply {
                        " · " code { (reply) }
                        @if let Some(why) = explain_refusal(reply, tr.0) { p.explanation.small { strong { (tr.t("outbox.explanation")) } " " (prose(&why)) } }
                    }
                }
            }
        }
        h2 { (tr.n("outbox.attempts_count", m.attempt_log.len() as i64, &[])) }
        @for a in &m.attempt_log {
            article class={"attempt " (a.result)} {
                header {
                    strong { "#" (a.number) } " " (when(&a.started_at)) " · " (a.duration_ms) " ms · "
                    span.result { (tr.t(&format!("outbox.result.{}", a.result))) }
                    @if let Some(stage) = &a.stage { " · " (tr.t("outbox.stage")) " " (tr.t(&format!("stage.{}", stage.as_str()))) }
                }
                p.reply { code { @if let Some(c) = a.reply_code { (c) " " } @if let Some(e) = &a.enhanced_code { (e) " " } (a.text) } }
                @if let Some(explanation) = attempt_explanation(tr, a) { p.explanation { strong { (tr.t("outbox.explanation")) } " " (prose(&explanation)) } }
                @for note in &a.notes { p.small { (prose(note)) } }
            }
        }
        @if viewer.may_operate() && matches!(s.status, Status::Failed | Status::Deferred) {
            form method="post" action={"/outbox/" (id) "/retry"} { (csrf_field(viewer)) button type="submit" { (tr.t("outbox.retry")) } }
        }
        p { a href="/outbox" { (tr.t("outbox.back")) } }
    };
    let title = tr.f("outbox.message_title", &[("id", &id.to_string())]);
    Ok(page(context, viewer, "/outbox", &title, body).await.into_response())
}

async fn show(State(context): State<Context>, viewer: Viewer, Path(id): Path<i64>) -> Result<Response, UiError> {
    show_page(&context, &viewer, id, vec![]).await
}

#[derive(Debug, Deserialize)]
struct ActionForm {
    csrf: String,
    #[serde(default)]
    status: String,
}

async fn retry(
    State(context): State<Context>,
    viewer: Viewer,
    Path(id): Path<i64>,
    Form(form): Form<ActionForm>,
) -> Result<Response, UiError> {
    viewer.permit(&form.csrf, Need::Operator)?;
    let tr = viewer.tr;
    let notice = match context.inner.app.retry_message(&viewer.caller.actor, id).await? {
        RetryOutcome::Requeued => {
            context.wake_engine();
            let notice = ("ok", tr.t("outbox.requeued").to_owned());
            return Ok(flash::redirect(&context, &viewer, &format!("/outbox/{id}"), vec![notice]));
        }
        RetryOutcome::NotFound => ("error", tr.f("outbox.no_message", &[("id", &id.to_string())])),
        RetryOutcome::NotRetryable(status) => {
            ("error", tr.f("outbox.not_retryable", &[("status", tr.t(status_key(status)))]))
        }
    };
    show_page(&context, &viewer, id, vec![notice]).await
}

async fn purge(
    State(context): State<Context>,
    viewer: Viewer,
    Form(form): Form<ActionForm>,
) -> Result<Response, UiError> {
    viewer.permit(&form.csrf, Need::Operator)?;
    let tr = viewer.tr;
    let status = form.status.parse::<Status>().map_err(|why| UiError::BadRequest(why.into()))?;
    let purged = context.inner.app.purge(&viewer.caller.actor, status).await?;
    let notice = ("ok", tr.n("outbox.purged", purged as i64, &[]));
    Ok(flash::redirect(&context, &viewer, "/outbox", vec![notice]))
}

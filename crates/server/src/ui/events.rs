//! Events that came in and the notifications sent for them; the audit log.

use super::{UiError, Viewer, page, url_escape, when};
use crate::service::Context;
use axum::{
    Router,
    extract::{Query, State},
    response::{IntoResponse, Response},
    routing::get,
};
use maud::html;
use serde::Deserialize;
use tidings_app::notifications::mail_path_problem;
use tidings_store::{AuditFilter, EventState};

pub fn router() -> Router<Context> {
    Router::new().route("/events", get(events)).route("/audit", get(audit))
}

async fn events(State(context): State<Context>, viewer: Viewer) -> Result<Response, UiError> {
    let tr = viewer.tr;
    let events = context.inner.app.events(None, 200, None).await?;
    let problem = mail_path_problem(&context.inner.config.get().config);
    let body = html! {
        @if let Some(problem) = problem { p.notice.error { (tr.f("events.cannot_mail", &[("problem", &problem)])) } }
        @if events.is_empty() {
            p { (tr.t("events.empty")) }
        } @else {
            table {
                thead { tr { th { "#" } th { (tr.t("events.received")) } th { (tr.t("events.kind")) } th { (tr.t("events.node")) } th { (tr.t("events.details")) } th { (tr.t("events.mail")) } } }
                tbody {
                    @for e in &events {
                        tr class={"severity-" (e.kind.severity().as_str())} {
                            td { (e.id) }
                            td { (when(&e.received_at)) }
                            td {
                                strong { (tr.t(&format!("event.title.{}", e.kind.id()))) }
                                br;
                                span class={"severity " (e.kind.severity().as_str())} { (tr.t(&format!("event.severity.{}", e.kind.severity().as_str()))) }
                                " · " code.small { (e.kind.id()) }
                            }
                            td { (e.node) }
                            td.small { @for (k, v) in &e.details { strong { (tr.get(&format!("event.detail.{k}")).unwrap_or(k)) } ": " (v) br; } }
                            td {
                                @match (e.state, e.message_id) {
                                    (EventState::Mailed, Some(id)) => {
                                        a href={"/outbox/" (id)} { (tr.f("events.mailed", &[("id", &id.to_string())])) }
                                        @if let Some(status) = e.message_status { " (" (tr.t(super::outbox::status_key(status))) ")" }
                                        @if e.repeats > 0 { " · " (tr.n("events.repeats", i64::from(e.repeats), &[])) }
                                    }
                                    (EventState::Counted, _) => (tr.t("events.counted")),
                                    (EventState::Recorded, _) => (tr.t("events.recorded")),
                                    _ => (tr.t("events.pending")),
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(page(&context, &viewer, "/events", tr.t("nav.events"), body).await.into_response())
}

/// The audit log's filters and page, from the query.
#[derive(Debug, Default, Deserialize)]
struct AuditQuery {
    #[serde(default)]
    actor: String,
    #[serde(default)]
    action: String,
    before: Option<i64>,
}

/// The groups of actions the filter offers: the prefix of the actions each covers, and its name's key.
const ACTION_GROUPS: [(&str, &str); 9] = [
    ("config.", "audit.group.config"),
    ("sign-", "audit.group.sign-in"),
    ("account.", "audit.group.account"),
    ("api-token.", "audit.group.api-token"),
    ("oauth.", "audit.group.oauth"),
    ("device.", "audit.group.device"),
    ("mailbox.", "audit.group.mailbox"),
    ("queue.", "audit.group.queue"),
    ("cluster.", "audit.group.cluster"),
];

const AUDIT_PAGE: u32 = 100;

async fn audit(
    State(context): State<Context>,
    viewer: Viewer,
    Query(query): Query<AuditQuery>,
) -> Result<Response, UiError> {
    let tr = viewer.tr;
    let actor = Some(query.actor.trim().to_owned()).filter(|a| !a.is_empty());
    let action = Some(query.action.clone()).filter(|a| ACTION_GROUPS.iter().any(|(prefix, _)| prefix == a));
    let filter =
        AuditFilter { actor: actor.clone(), action: action.clone(), before_id: query.before, limit: AUDIT_PAGE };
    let entries = context.inner.app.store().audit_page(&filter).await.map_err(tidings_app::Error::from)?;
    let body = html! {
        form.inline method="get" action="/audit" {
            label { (tr.t("audit.filter.actor")) " " input name="actor" value=[actor.as_deref()] placeholder="web:admin"; }
            label { (tr.t("audit.filter.action")) " "
                select name="action" {
                    option value="" { (tr.t("audit.filter.all")) }
                    @for (prefix, name) in ACTION_GROUPS { option value=(prefix) selected[action.as_deref() == Some(prefix)] { (tr.t(name)) } }
                }
            }
            button.secondary type="submit" { (tr.t("audit.filter.apply")) }
        }
        @if entries.is_empty() {
            p { (tr.t("audit.empty")) }
        } @else {
            table #audit {
                thead { tr { th { (tr.t("audit.at")) } th { (tr.t("audit.actor")) } th { (tr.t("audit.action")) } th { (tr.t("audit.fields")) } } }
                tbody {
                    @for e in &entries {
                        tr {
                            td { (when(&e.at)) }
                            td.mono { (e.actor) }
                            td { (tr.get(&format!("audit.action.{}", e.action)).unwrap_or(&e.action)) br; code.small { (e.action) } }
                            td.small { @for field in &e.fields { div { (field) } } }
                        }
                    }
                }
            }
            @if entries.len() == AUDIT_PAGE as usize && let Some(last) = entries.last() {
                p { a href={"/audit?actor=" (url_escape(actor.as_deref().unwrap_or_default())) "&action=" (action.as_deref().unwrap_or_default()) "&before=" (last.id)} { (tr.t("audit.older")) } }
            }
        }
    };
    Ok(page(&context, &viewer, "/audit", tr.t("nav.audit"), body).await.into_response())
}

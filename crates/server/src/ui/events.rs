//! Events that came in and the notifications sent for them; the audit log.

use super::{UiError, Viewer, page, when};
use crate::service::Context;
use axum::{
    Router,
    extract::State,
    response::{IntoResponse, Response},
    routing::get,
};
use maud::html;
use tidings_app::notifications::mail_path_problem;
use tidings_store::EventState;

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
                            td.small { @for (k, v) in &e.details { (k) ": " (v) br; } }
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

async fn audit(State(context): State<Context>, viewer: Viewer) -> Result<Response, UiError> {
    let tr = viewer.tr;
    let entries = context.inner.app.store().audit(200).await.map_err(tidings_app::Error::from)?;
    let body = html! {
        table {
            thead { tr { th { (tr.t("audit.at")) } th { (tr.t("audit.actor")) } th { (tr.t("audit.action")) } th { (tr.t("audit.fields")) } } }
            tbody {
                @for e in &entries {
                    tr { td { (when(&e.at)) } td { (e.actor) } td { code { (e.action) } } td.small { (e.fields.join(", ")) } }
                }
            }
        }
    };
    Ok(page(&context, &viewer, "/audit", tr.t("nav.audit"), body).await.into_response())
}

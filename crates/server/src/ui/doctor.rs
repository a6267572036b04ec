//! Management > Email Configuration > Doctor: the last report of the doctor (any role), and running it again
//! (network administrators and administrators), as `tidings doctor` does.

use super::{Need, UiError, Viewer, credential_name, csrf_field, notice, page, when};
use crate::service::{Context, doctor};
use axum::{
    Form, Router,
    extract::State,
    response::{IntoResponse, Redirect, Response},
    routing::get,
};
use maud::html;
use serde::Deserialize;

pub fn router() -> Router<Context> {
    Router::new().route("/doctor", get(show).post(run))
}

async fn show(State(context): State<Context>, viewer: Viewer) -> Result<Response, UiError> {
    let tr = viewer.tr;
    let app = &context.inner.app;
    let report = app.last_doctor_report().await?;
    let config = app.current().await?.config;
    let lifetimes = app.lifetimes(&config).await?;
    let soon = config.oauth.expiry_warnings.iter().max().copied().unwrap_or_default();
    let now = chrono::Utc::now();
    let body = html! {
        p { (tr.t("doctor.intro")) }
        @if viewer.may_operate() {
            form method="post" action="/doctor" {
                (csrf_field(&viewer))
                label { (tr.t("doctor.send_to")) " " input type="email" name="send_to" placeholder="ops@example.com"; }
                " "
                button type="submit" { (tr.t("doctor.run")) }
            }
        }
        @match &report {
            None => p #doctor-report { (tr.t("doctor.never")) },
            Some(report) => {
                @let at = report["at"].as_str().and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
                @let ok = report["ok"] == true;
                @let sent = report["steps"].as_array().into_iter().flatten().any(|s| s["step"] == "message");
                @let said = match (ok, sent) { (false, _) => "doctor.stopped", (true, true) => "doctor.all_passed_sent", (true, false) => "doctor.all_passed" };
                (notice(if ok { "ok" } else { "error" }, tr.t(said)))
                @if let Some(at) = at { p.meta { (tr.f("doctor.at", &[("at", &when(&at.to_utc()))])) } }
                table #doctor-report {
                    thead { tr { th { (tr.t("doctor.step")) } th { (tr.t("doctor.result")) } th { (tr.t("doctor.took")) } th { (tr.t("doctor.seen")) } } }
                    tbody {
                        @for step in report["steps"].as_array().into_iter().flatten() {
                            @let passed = step["ok"] == true;
                            tr class=(if passed { "passed" } else { "failed" }) {
                                td { (tr.t(&format!("doctor.step.{}", step["step"].as_str().unwrap_or_default()))) }
                                td { span class={"state " (if passed { "ok" } else { "bad" })} { (tr.t(if passed { "doctor.passed" } else { "doctor.failed" })) } }
                                td { (step["took_ms"].as_u64().unwrap_or_default()) " ms" }
                                td {
                                    @for line in step["seen"].as_array().into_iter().flatten() { div.mono { (line.as_str().unwrap_or_default()) } }
                                    @if let Some(explanation) = step["explanation"].as_str() {
                                        p.explain { strong { (tr.t("doctor.what_to_do")) } " " (super::prose(explanation)) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 #expiries { (tr.t("expiries.title")) }
        p { (tr.t("expiries.intro")) }
        @if lifetimes.is_empty() {
            p { (tr.t("expiries.none")) }
        } @else {
            table #expiries-table {
                thead { tr { th { (tr.t("expiries.credential")) } th { (tr.t("expiries.what")) } th { (tr.t("expiries.ends")) } th { (tr.t("expiries.left")) } } }
                tbody {
                    @for lifetime in &lifetimes {
                        @let left = lifetime.ends_at - now;
                        @let state = if left <= chrono::TimeDelta::zero() { "bad" } else if left.to_std().is_ok_and(|l| l <= soon) { "warn" } else { "ok" };
                        tr data-credential=(lifetime.credential) {
                            td { (credential_name(tr, &lifetime.credential)) }
                            td {
                                span.mono { (lifetime.subject) }
                                @if let Some(used) = lifetime.used_at { div.meta { (tr.f("expiries.if_unused", &[("at", &when(&used))])) } }
                            }
                            td { (lifetime.ends_at.format("%Y-%m-%d")) }
                            td { span class={"state " (state)} {
                                @if state == "bad" { (tr.t("expiries.ended")) } @else { (tr.f("expiries.days_left", &[("days", &left.num_days().to_string())])) }
                            } }
                        }
                    }
                }
            }
        }
    };
    Ok(page(&context, &viewer, "/email-config", tr.t("doctor.title"), body).await.into_response())
}

#[derive(Debug, Deserialize)]
struct RunForm {
    csrf: String,
    /// Also send a whole test message here.
    #[serde(default)]
    send_to: String,
}

/// Runs the doctor, then shows its report (a reload shows it again rather than running it again).
async fn run(State(context): State<Context>, viewer: Viewer, Form(form): Form<RunForm>) -> Result<Response, UiError> {
    viewer.permit(&form.csrf, Need::Operator)?;
    let send_to = Some(form.send_to.trim()).filter(|to| !to.is_empty());
    doctor::run(&context, send_to).await?;
    Ok(Redirect::to("/doctor").into_response())
}

//! Management > Email Configuration > TLS: the certificate the relay presents (subject, issuer, validity,
//! names, SHA-256 fingerprint), for an administrator to compare with the relay's own and pin
//! (`tls.pinned_certificate`). The same as `tidings config fetch-certificate [--pin]`.

use super::{Need, UiError, Viewer, csrf_field, notice, page, when};
use crate::service::Context;
use axum::{
    Form, Router,
    extract::State,
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use maud::html;
use tidings_delivery::certificates::presented;

pub fn router() -> Router<Context> {
    Router::new().route("/email-config/certificate", get(show)).route("/email-config/certificate/pin", post(pin))
}

/// Connects to the relay and shows what it presents; nothing is authenticated or sent.
async fn show(State(context): State<Context>, viewer: Viewer) -> Result<Response, UiError> {
    let tr = viewer.tr;
    let current = context.inner.app.current().await?;
    let tls = &current.config.tls;
    let now = chrono::Utc::now();
    let body = match presented(&current.config).await {
        Err(why) => html! {
            (notice("error", &tr.f("cert.failed", &[("error", &why.to_string())])))
            p { a href="/email-config#section-tls" { (tr.t("cert.back")) } }
        },
        Ok(found) => {
            let own = &found.certificates[0];
            let pinned = tls.pins(&own.fingerprint);
            html! {
                p { (tr.f("cert.intro", &[("relay", &found.relay)])) }
                @for (i, c) in found.certificates.iter().enumerate() {
                    section.certificate {
                        h2 { (tr.t(if i == 0 { "cert.own" } else { "cert.chain" })) }
                        dl {
                            dt { (tr.t("cert.subject")) } dd { (c.subject) }
                            dt { (tr.t("cert.issuer")) }
                            dd { (c.issuer) @if c.self_signed { " " strong { (tr.t("cert.self_signed")) } } }
                            dt { (tr.t("cert.valid")) }
                            dd {
                                (when(&c.not_before)) " – " (when(&c.not_after))
                                @if c.not_after < now { " " strong.bad { (tr.t("cert.expired")) } }
                                @else if c.not_before > now { " " strong.bad { (tr.t("cert.not_yet_valid")) } }
                            }
                            dt { (tr.t("cert.names")) } dd { (c.names.join(" ")) }
                            dt { (tr.t("cert.fingerprint")) } dd { code { (c.fingerprint) } }
                        }
                    }
                }
                @if pinned {
                    (notice("ok", tr.t("cert.pinned")))
                } @else {
                    p { (tr.t("cert.compare")) }
                    @if viewer.may_operate() {
                        form method="post" action="/email-config/certificate/pin" {
                            (csrf_field(&viewer))
                            input type="hidden" name="fingerprint" value=(own.fingerprint);
                            button type="submit" { (tr.t("cert.pin")) }
                        }
                    }
                }
                p { a href="/email-config#section-tls" { (tr.t("cert.back")) } }
            }
        }
    };
    Ok(page(&context, &viewer, "/email-config", tr.t("cert.title"), body).await.into_response())
}

#[derive(serde::Deserialize)]
struct PinForm {
    csrf: String,
    fingerprint: String,
}

/// Pins the fingerprint shown (the one the administrator compared), then shows the page again.
async fn pin(State(context): State<Context>, viewer: Viewer, Form(form): Form<PinForm>) -> Result<Response, UiError> {
    viewer.permit(&form.csrf, Need::Operator)?;
    let current = context.inner.app.current().await?;
    if tidings_core::config::parse_fingerprint(&form.fingerprint).is_none() {
        return Err(UiError::BadRequest("fingerprint: expected a SHA-256 fingerprint (64 hex digits)".into()));
    }
    let value = current.config.tls.pinned_with(&form.fingerprint);
    let edits = [("tls.pinned_certificate".to_owned(), value)];
    context.inner.app.update_as(&viewer.caller.actor, viewer.caller.role, &edits).await?;
    context.inner.config.refresh().await;
    Ok(Redirect::to("/email-config/certificate").into_response())
}

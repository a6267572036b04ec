//! The OAuth page: the token's status at a glance, connect with the provider (the browser comes back to
//! `/login/smtp-verification`), paste the address for browsers that cannot reach Tidings, the device code
//! panel (large user code, a live countdown, the status updating by itself), app-only authorization, the
//! connection check, deleting the authorization, and the client's certificate (made here, downloaded to be
//! uploaded to the app registration).

use super::{Need, UiError, Viewer, csrf_field, i18n::Tr, notice, page, when};
use crate::service::{
    Context,
    oauth::{check_connection, flow_message, forget_authorization, live_report, start_device},
};
use axum::{
    Form, Router,
    extract::State,
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use maud::{Markup, html};
use serde::Deserialize;
use tidings_core::{
    config::{AuthMethod, ClientCredential},
    oauth::response::DeviceAuthorization,
};
use tidings_oauth::{
    flows::{self, Owner},
    status::TokenStatus,
};

pub fn router() -> Router<Context> {
    Router::new()
        .route("/oauth", get(show))
        .route("/oauth/connect", post(connect))
        .route("/oauth/paste", post(paste))
        .route("/oauth/device", post(device))
        .route("/oauth/client-credentials", post(client_credentials))
        .route("/oauth/check", post(check))
        .route("/oauth/delete", post(delete))
        .route("/oauth/certificate", post(make_certificate))
        .route("/oauth/certificate.pem", get(download_certificate))
}

#[derive(Debug, Deserialize)]
struct CsrfForm {
    csrf: String,
    #[serde(default)]
    input: String,
}

/// The status in words, with a CSS class for its colour.
pub fn status_words(viewer: &Viewer, status: &TokenStatus) -> (String, &'static str) {
    let tr = viewer.tr;
    match status {
        TokenStatus::NotConfigured => (tr.t("oauth.state.not_configured").into(), "muted"),
        TokenStatus::AuthorizationRequired => (tr.t("oauth.state.authorization_required").into(), "warn"),
        TokenStatus::AuthorizationPending { .. } => (tr.t("oauth.state.pending").into(), "warn"),
        TokenStatus::Acquired => (tr.t("oauth.state.acquired").into(), "ok"),
        TokenStatus::Active { .. } => (tr.t("oauth.state.active").into(), "ok"),
        TokenStatus::ReauthorizationRequired { .. } => (tr.t("oauth.state.reauthorization_required").into(), "bad"),
        TokenStatus::Failing { .. } => (tr.t("oauth.state.failing").into(), "bad"),
    }
}

async fn render(context: &Context, viewer: &Viewer, notices: Vec<(&str, String)>) -> Result<Response, UiError> {
    let tr = viewer.tr;
    let report = live_report(context).await?;
    // The device sign-in under way, with its code, until it completes or expires.
    let device = crate::service::oauth::pending_device(context).map(|(shown, expires_at)| {
        let left = (expires_at - chrono::Utc::now()).num_seconds().max(0);
        let live = html! {
            p #device-countdown { (tr.t("oauth.device_expires_in")) " " span #countdown { (left) " s" } }
            p #device-done hidden { (tr.t("oauth.device_done")) }
            p #device-expired hidden { (tr.t("oauth.device_expired")) }
        };
        device_panel(tr, &shown, Some(expires_at), live)
    });
    let config = context.inner.config.get();
    let (words, class) = status_words(viewer, &report.status);
    let oauth = config.config.smtp.auth == AuthMethod::Oauth2;
    let certificate = context.inner.app.client_certificate().await?;
    let in_use = config.config.oauth.client_credential == ClientCredential::Certificate;
    let relay = tidings_app::authorization::Owner::Relay;
    let app_only = context.inner.app.authorization(relay).await?.is_some_and(|a| a.client_credentials);
    let setup_script = {
        use tidings_core::oauth::setup;
        setup::script(&config.config, setup::mode_of(&config.config, app_only))
    };
    let suitable = flows::suitable(&context.inner.app).await.map_err(|e| UiError::BadRequest(flow_message(e)))?;
    let body = html! {
        @for (kind, text) in &notices { (notice(kind, text)) }
        section.status #token-status data-status-url="/api/v1/oauth/status" aria-live="polite" {
            h2 { (tr.t("oauth.status")) }
            dl {
                dt { (tr.t("oauth.state")) } dd { span #token-state class={"state " (class)} { (words) } }
                dt { (tr.t("oauth.account")) } dd #token-account { (report.account.clone().unwrap_or_else(|| "—".into())) }
                dt { (tr.t("oauth.acquired_at")) } dd { (report.acquired_at.as_ref().map(when).unwrap_or_else(|| "—".into())) }
                dt { (tr.t("oauth.refreshed_at")) } dd { (report.refreshed_at.as_ref().map(when).unwrap_or_else(|| "—".into())) }
                dt { (tr.t("oauth.expires_at")) }
                dd #token-expires { @match &report.status { TokenStatus::Active { expires_at } => (when(expires_at)), _ => "—" } }
            }
            @match &report.status {
                TokenStatus::ReauthorizationRequired { reason, explanation } => {
                    p.explain { strong { (tr.t("oauth.provider_said")) } " " (reason) } p.explain { (super::prose(explanation)) }
                }
                TokenStatus::Failing { reason, since } => {
                    p.explain { (tr.f("oauth.failing_since", &[("since", &when(since)), ("reason", reason)])) }
                }
                _ => {}
            }
        }
        @if let Some(device) = device { (device) }
        @if !oauth {
            p { (tr.t("oauth.not_oauth")) " " a href="/email-config" { (tr.t("nav.email_config")) } }
        } @else if viewer.may_operate() {
            section.actions {
                h2 { (tr.t("oauth.connect_title")) }
                (action(viewer, "/oauth/connect", "oauth.connect", &suitable.code, "connect"))
                (action(viewer, "/oauth/device", "oauth.device", &suitable.device, "device"))
                (action(viewer, "/oauth/client-credentials", "oauth.client_credentials", &suitable.client_credentials, "client-credentials"))
                h2 { (tr.t("oauth.paste_title")) }
                p.small { (tr.t("oauth.paste_help")) }
                form method="post" action="/oauth/paste" {
                    (csrf_field(viewer))
                    input name="input" required placeholder="https://…/login/smtp-verification/?code=…&state=…";
                    button type="submit" { (tr.t("oauth.paste")) }
                }
                h2 { (tr.t("oauth.maintenance")) }
                form method="post" action="/oauth/check" { (csrf_field(viewer)) button.secondary type="submit" { (tr.t("oauth.check")) } }
                form method="post" action="/oauth/delete" data-confirm=(tr.t("oauth.delete_confirm")) {
                    (csrf_field(viewer)) button.danger type="submit" { (tr.t("oauth.delete")) }
                }
            }
        }
        @if oauth && let Ok(script) = &setup_script {
            details #tenant-setup {
                summary { (tr.t("oauth.setup_title")) }
                p.small { (tr.t("oauth.setup_help")) }
                pre.mono { (script) }
            }
        }
        @if oauth {
            section #client-certificate {
                h2 { (tr.t("oauth.certificate_title")) }
                p.small { (tr.t("oauth.certificate_help")) }
                @match &certificate {
                    Some(held) => {
                        dl {
                            dt { (tr.t("oauth.certificate_subject")) } dd { (held.subject) }
                            dt { (tr.t("oauth.certificate_thumbprint")) } dd.mono #certificate-thumbprint { (held.sha1_thumbprint()) }
                            dt { (tr.t("oauth.certificate_valid_until")) } dd { (when(&held.not_after)) }
                            dt { (tr.t("oauth.certificate_in_use")) } dd { (tr.t(if in_use { "yes" } else { "no" })) }
                        }
                        p { a.button href="/oauth/certificate.pem" download="tidings-client.pem" { (tr.t("oauth.certificate_download")) } }
                    }
                    None => p { (tr.t("oauth.certificate_none")) },
                }
                @if viewer.may_operate() {
                    @let replace = certificate.is_some();
                    form method="post" action="/oauth/certificate" data-confirm=[replace.then(|| tr.t("oauth.certificate_replace_confirm"))] {
                        (csrf_field(viewer))
                        @if replace { input type="hidden" name="replace" value="true"; }
                        button.secondary type="submit" { (tr.t(if replace { "oauth.certificate_replace" } else { "oauth.certificate_create" })) }
                    }
                }
            }
        }
    };
    Ok(page(context, viewer, "/oauth", tr.t("nav.oauth"), body).await.into_response())
}

async fn show(State(context): State<Context>, viewer: Viewer) -> Result<Response, UiError> {
    render(&context, &viewer, vec![]).await
}

/// A refused or failed flow in the API's words.
pub(super) fn flow_error(e: flows::FlowError) -> String {
    flow_message(e)
}

/// What a completed authorization says.
pub(super) fn authorized(tr: Tr, result: Result<Option<String>, flows::FlowError>) -> (&'static str, String) {
    match result {
        Ok(account) => ("ok", tr.f("oauth.authorized", &[("account", account.as_deref().unwrap_or("—"))])),
        Err(e) => ("error", flow_error(e)),
    }
}

/// Sends the browser to the provider; it comes back to `/login/smtp-verification`.
async fn connect(
    State(context): State<Context>,
    viewer: Viewer,
    Form(form): Form<CsrfForm>,
) -> Result<Response, UiError> {
    viewer.permit(&form.csrf, Need::Operator)?;
    match flows::start(&context.inner.app, &Owner::Relay).await {
        Ok(started) => Ok(Redirect::to(&started.url).into_response()),
        Err(e) => render(&context, &viewer, vec![("error", flow_error(e))]).await,
    }
}

async fn paste(
    State(context): State<Context>,
    viewer: Viewer,
    Form(form): Form<CsrfForm>,
) -> Result<Response, UiError> {
    viewer.permit(&form.csrf, Need::Operator)?;
    let inner = &context.inner;
    let notice = authorized(
        viewer.tr,
        flows::complete(&inner.app, Some(&inner.tokens), &viewer.caller.actor, &form.input, &Owner::Relay).await,
    );
    answer(&context, &viewer, notice).await
}

async fn device(
    State(context): State<Context>,
    viewer: Viewer,
    Form(form): Form<CsrfForm>,
) -> Result<Response, UiError> {
    viewer.permit(&form.csrf, Need::Operator)?;
    match start_device(&context, viewer.caller.actor.clone()).await {
        // The page shows the code while the sign-in is under way: a reload does not start another.
        Ok(_) => Ok(Redirect::to("/oauth#device").into_response()),
        Err(e) => render(&context, &viewer, vec![("error", flow_message(e))]).await,
    }
}

async fn client_credentials(
    State(context): State<Context>,
    viewer: Viewer,
    Form(form): Form<CsrfForm>,
) -> Result<Response, UiError> {
    viewer.permit(&form.csrf, Need::Operator)?;
    let inner = &context.inner;
    let notice =
        authorized(viewer.tr, flows::client_credentials(&inner.app, Some(&inner.tokens), &viewer.caller.actor).await);
    answer(&context, &viewer, notice).await
}

async fn check(
    State(context): State<Context>,
    viewer: Viewer,
    Form(form): Form<CsrfForm>,
) -> Result<Response, UiError> {
    viewer.permit(&form.csrf, Need::Operator)?;
    let notice = match check_connection(&context).await {
        Ok(Ok(())) => ("ok", viewer.tr.t("oauth.check_ok").to_owned()),
        Ok(Err(why)) => ("error", why.to_string()),
        Err(e) => ("error", crate::service::described(&e).message),
    };
    answer(&context, &viewer, notice).await
}

async fn delete(
    State(context): State<Context>,
    viewer: Viewer,
    Form(form): Form<CsrfForm>,
) -> Result<Response, UiError> {
    viewer.permit(&form.csrf, Need::Operator)?;
    forget_authorization(&context, &viewer.caller.actor).await?;
    answer(&context, &viewer, ("ok", viewer.tr.t("oauth.deleted").to_owned())).await
}

#[derive(Debug, Deserialize)]
struct CertificateForm {
    csrf: String,
    /// Set by the form when a certificate is kept: the confirmation asked first.
    #[serde(default)]
    replace: bool,
}

async fn make_certificate(
    State(context): State<Context>,
    viewer: Viewer,
    Form(form): Form<CertificateForm>,
) -> Result<Response, UiError> {
    viewer.permit(&form.csrf, Need::Operator)?;
    let notice = match context.inner.app.make_client_certificate(&viewer.caller.actor, 730, form.replace).await {
        Ok(_) => ("ok", viewer.tr.t("oauth.certificate_made").to_owned()),
        Err(e) => ("error", crate::service::described(&e).message),
    };
    answer(&context, &viewer, notice).await
}

/// The certificate as a file, to upload to the app registration.
async fn download_certificate(State(context): State<Context>, _viewer: Viewer) -> Result<Response, UiError> {
    let Some(held) = context.inner.app.client_certificate().await? else {
        return Ok((axum::http::StatusCode::NOT_FOUND, "no client certificate is kept").into_response());
    };
    let headers = [
        (axum::http::header::CONTENT_TYPE, "application/x-pem-file"),
        (axum::http::header::CONTENT_DISPOSITION, "attachment; filename=\"tidings-client.pem\""),
    ];
    Ok((headers, held.pem).into_response())
}

/// Where to enter the code of a device sign-in, followed by `after`; with `expires_at`, `static/app.js` counts
/// down and follows the status.
pub(super) fn device_panel(
    tr: Tr,
    shown: &DeviceAuthorization,
    expires_at: Option<chrono::DateTime<chrono::Utc>>,
    after: Markup,
) -> Markup {
    let link = shown.verification_uri_complete.as_deref().unwrap_or(&shown.verification_uri);
    html! {
        section.device #device data-expires-at=[expires_at.map(|at| at.to_rfc3339())] {
            h2 { (tr.t("oauth.device_title")) }
            p { (tr.t("oauth.device_open")) " " a #device-link href=(link) target="_blank" rel="noopener" { (shown.verification_uri) } }
            p { (tr.t("oauth.device_enter")) }
            p.user-code #user-code { (shown.user_code) }
            (after)
        }
    }
}

/// A sign-in's button; disabled, with the reason beside it, when the configuration does not allow it.
fn action(viewer: &Viewer, to: &str, label: &str, suitable: &Result<(), String>, id: &str) -> Markup {
    let reason_id = format!("why-not-{id}");
    html! {
        form method="post" action=(to) {
            (csrf_field(viewer))
            @match suitable {
                Ok(()) => button type="submit" { (viewer.tr.t(label)) },
                Err(why) => {
                    button type="submit" disabled aria-describedby=(reason_id) { (viewer.tr.t(label)) }
                    " " span.small.reason id=(reason_id) { (why) }
                }
            }
        }
    }
}

/// An action that worked goes back to the page, which says so once; a refusal is shown with the page.
async fn answer(context: &Context, viewer: &Viewer, notice: super::flash::Notice) -> Result<Response, UiError> {
    match notice.0 {
        "ok" => Ok(super::flash::redirect(context, viewer, "/oauth", vec![notice])),
        _ => render(context, viewer, vec![notice]).await,
    }
}

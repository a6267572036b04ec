//! "My mailbox": where a device account of the gateway connects its own mailbox with OAuth (the
//! `login_user` sender policy), sees its token's status, and deletes it. The account signs in with its gateway
//! user name and password; its session (cookie `tidings_mailbox`) reaches this page only. The sign-in form has
//! the same double-submit protection and per-address throttling as the administrators' one.

use super::{
    UiError, connected, i18n,
    login::{LOGIN_COOKIE, SignInForm, cookie_header, random, shown_back, signed_in, standalone, throttled_key},
    notice,
    oauth::{authorized, device_panel, flow_error},
    when,
};
use crate::service::{Context, caller::cookie};
use axum::{
    Form, Router,
    extract::{ConnectInfo, FromRequestParts, State},
    http::{HeaderMap, StatusCode, header, request::Parts},
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use maud::{Markup, html};
use serde::Deserialize;
use std::net::SocketAddr;
use tidings_app::authorization;
use tidings_core::{config::gateway::SenderPolicy, secret::SecretString};
use tidings_oauth::flows::{self, Owner};
use tidings_store::Device;

const COOKIE: &str = "tidings_mailbox";

pub fn router() -> Router<Context> {
    Router::new()
        .route("/mailbox", get(show))
        .route("/mailbox/login", post(sign_in).layer(crate::security::unauthenticated_body()))
        .route("/mailbox/logout", post(sign_out))
        .route("/mailbox/connect", post(connect))
        .route("/mailbox/paste", post(paste))
        .route("/mailbox/device-code", post(device_code))
        .route("/mailbox/forget", post(forget))
}

/// A device account signed in to its page.
struct Holder {
    device: Device,
    csrf: String,
    token: String,
    tr: i18n::Tr,
    /// What the form that redirected here did, shown once.
    flash: Vec<super::flash::Notice>,
}

impl FromRequestParts<Context> for Holder {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, context: &Context) -> Result<Self, Self::Rejection> {
        let tr = i18n::negotiate(None, &parts.headers);
        let Some(token) = cookie(&parts.headers, COOKIE) else { return Err(Redirect::to("/mailbox").into_response()) };
        match context.inner.app.device_session(token).await {
            Ok(Some((device, csrf))) => {
                let flash = match parts.method {
                    axum::http::Method::GET => context.inner.flashes.take(&parts.headers, &csrf),
                    _ => Vec::new(),
                };
                Ok(Holder { device, csrf, token: token.to_owned(), tr, flash })
            }
            Ok(None) => Err(Redirect::to("/mailbox").into_response()),
            Err(e) => Err(UiError::from(e).into_response()),
        }
    }
}

impl Holder {
    fn check(&self, csrf: &str) -> Result<(), UiError> {
        if !csrf.is_empty() && csrf == self.csrf { Ok(()) } else { Err(UiError::Csrf) }
    }
}

fn shell(tr: i18n::Tr, body: Markup) -> Markup {
    standalone(tr, tr.t("mailbox.title"), tr.t("mailbox.title"), body)
}

fn sign_in_page(tr: i18n::Tr, token: &str, error: Option<&str>, username: &str) -> Markup {
    shell(
        tr,
        html! {
            p { (tr.t("mailbox.intro")) }
            @if let Some(error) = error { (notice("error", error)) }
            form method="post" action="/mailbox/login" {
                input type="hidden" name="csrf" value=(token);
                label { (tr.t("mailbox.device_name")) input name="username" autocomplete="username" required value=(username) autofocus; }
                label { (tr.t("login.password")) input name="password" type="password" autocomplete="current-password" required; }
                button type="submit" { (tr.t("login.submit")) }
            }
        },
    )
}

/// The account's page, or the sign-in form.
async fn show(State(context): State<Context>, headers: HeaderMap, holder: Result<Holder, Response>) -> Response {
    match holder {
        Ok(holder) => render(&context, &holder, Vec::new()).await.unwrap_or_else(IntoResponse::into_response),
        Err(_) => {
            let tr = i18n::negotiate(None, &headers);
            let token = random();
            let mut response = sign_in_page(tr, &token, None, "").into_response();
            response
                .headers_mut()
                .append(header::SET_COOKIE, cookie_header(&context, LOGIN_COOKIE, &token, Some(3600)));
            response
        }
    }
}

/// The account's page: its mailbox, the token's status, and what it can do.
async fn render(context: &Context, holder: &Holder, notices: Vec<(&str, String)>) -> Result<Response, UiError> {
    let tr = holder.tr;
    // The device sign-in under way, with its code, until it completes or expires.
    let pending = {
        let devices = context.inner.mailbox_devices.lock().unwrap_or_else(|e| e.into_inner());
        devices.get(&holder.device.id).filter(|(_, at)| *at > chrono::Utc::now()).cloned()
    };
    let extra =
        pending.map(|(shown, _)| device_panel(tr, &shown, None, html! { p { (tr.t("mailbox.device_reload")) } }));
    let app = &context.inner.app;
    let record = app.mailbox_of(&holder.device.username).await?;
    let current = context.inner.config.get();
    let gateway = &current.config.gateway;
    let mailbox = holder.device.addresses.first();
    let csrf = html! { input type="hidden" name="csrf" value=(holder.csrf); };
    let page = shell(
        tr,
        html! {
            @for (kind, text) in holder.flash.iter().map(|(k, t)| (*k, t)).chain(notices.iter().map(|(k, t)| (*k, t))) { (notice(kind, text)) }
            @if gateway.sender_policy != SenderPolicy::LoginUser { (notice("error", tr.t("mailbox.policy_off"))) }
            dl {
                dt { (tr.t("mailbox.device_name")) } dd { (holder.device.username) }
                dt { (tr.t("mailbox.address")) } dd { (mailbox.map_or("—", String::as_str)) }
                dt { (tr.t("mailbox.status")) }
                dd #mailbox-status {
                    @match &record {
                        None => (tr.t("mailbox.not_connected")),
                        Some(r) if r.failure.is_some() => {
                            strong { (tr.t("mailbox.reconnect")) } br;
                            @if let Some((said, explanation)) = &r.failure { (said) br; (explanation) }
                        }
                        Some(r) => {
                            (connected(tr, r))
                            @if let Some(at) = &r.refreshed_at { br; (tr.f("mailbox.refreshed", &[("at", &when(at))])) }
                        }
                    }
                }
            }
            @if let Some(extra) = extra { (extra) }
            @if mailbox.is_none() {
                (notice("error", tr.t("mailbox.no_address")))
            } @else {
                form method="post" action="/mailbox/connect" { (csrf) button type="submit" { (tr.t("mailbox.connect")) } }
                form method="post" action="/mailbox/device-code" { (csrf) button.secondary type="submit" { (tr.t("oauth.device")) } }
                form method="post" action="/mailbox/paste" {
                    (csrf)
                    label { (tr.t("oauth.paste_help")) input name="input" required; }
                    button.secondary type="submit" { (tr.t("oauth.paste")) }
                }
            }
            @if record.is_some() {
                form method="post" action="/mailbox/forget" { (csrf) button.danger type="submit" { (tr.t("mailbox.forget")) } }
            }
            form method="post" action="/mailbox/logout" {
                (csrf)
                button.link type="submit" { (tr.t("nav.sign_out")) }
                @if gateway.forget_token_on_sign_out { " " small { (tr.t("mailbox.sign_out_forgets")) } }
            }
        },
    );
    Ok(page.into_response())
}

async fn sign_in(
    State(context): State<Context>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<SignInForm>,
) -> Response {
    let tr = i18n::negotiate(None, &headers);
    if !form.csrf_matches(&headers) {
        return UiError::Csrf.into_response();
    }
    let username = shown_back(&form.username);
    let password = SecretString::new(form.password);
    let app = &context.inner.app;
    match app.device_sign_in(form.username.trim(), &password, peer.ip(), &context.inner.sign_in).await {
        Ok(session) => signed_in(&context, "/mailbox", COOKIE, session.token.expose(), session.expires_at),
        Err(tidings_app::Error::Refused(_)) => {
            let page = sign_in_page(tr, &form.csrf, Some(tr.t("login.refused")), username);
            (StatusCode::UNAUTHORIZED, page).into_response()
        }
        Err(e @ (tidings_app::Error::Busy(_) | tidings_app::Error::Throttled(_))) => {
            let page = sign_in_page(tr, &form.csrf, Some(tr.t(throttled_key(&e))), username);
            (StatusCode::TOO_MANY_REQUESTS, page).into_response()
        }
        Err(e) => UiError::from(e).into_response(),
    }
}

#[derive(Debug, Deserialize)]
struct CsrfForm {
    csrf: String,
    #[serde(default)]
    input: String,
}

fn actor(holder: &Holder) -> String {
    format!("mailbox:{}", holder.device.username)
}

/// Sends the browser to the provider; it comes back to `/login/smtp-verification`.
async fn connect(
    State(context): State<Context>,
    holder: Holder,
    Form(form): Form<CsrfForm>,
) -> Result<Response, UiError> {
    holder.check(&form.csrf)?;
    match flows::start(&context.inner.app, &Owner::Device(holder.device.clone())).await {
        Ok(started) => Ok(Redirect::to(&started.url).into_response()),
        Err(e) => render(&context, &holder, vec![("error", flow_error(e))]).await,
    }
}

async fn paste(
    State(context): State<Context>,
    holder: Holder,
    Form(form): Form<CsrfForm>,
) -> Result<Response, UiError> {
    holder.check(&form.csrf)?;
    let owner = Owner::Device(holder.device.clone());
    let notice =
        authorized(holder.tr, flows::complete(&context.inner.app, None, &actor(&holder), &form.input, &owner).await);
    match notice.0 {
        "ok" => Ok(super::flash::redirect_session(&context, &holder.csrf, "/mailbox", vec![notice])),
        _ => render(&context, &holder, vec![notice]).await,
    }
}

/// Starts the device-code flow; a task waits for the account to finish it (reload the page to see).
async fn device_code(
    State(context): State<Context>,
    holder: Holder,
    Form(form): Form<CsrfForm>,
) -> Result<Response, UiError> {
    holder.check(&form.csrf)?;
    let signing_in = match flows::start_device(&context.inner.app, Owner::Device(holder.device.clone())).await {
        Ok(s) => s,
        Err(e) => return render(&context, &holder, vec![("error", flow_error(e))]).await,
    };
    let (id, expires_at) = (holder.device.id, signing_in.expires_at);
    let pending = (signing_in.shown.clone(), expires_at);
    context.inner.mailbox_devices.lock().unwrap_or_else(|e| e.into_inner()).insert(id, pending);
    let (app, actor, waiting) = (context.inner.app.clone(), actor(&holder), context.clone());
    tokio::spawn(async move {
        if let Err(e) = signing_in.finish(&app, None, &actor).await {
            tracing::warn!(error = %e, %actor, "mailbox device sign-in did not complete");
        }
        let mut pending = waiting.inner.mailbox_devices.lock().unwrap_or_else(|e| e.into_inner());
        if pending.get(&id).is_some_and(|(_, at)| *at == expires_at) {
            pending.remove(&id);
        }
    });
    // The page shows the code while the sign-in is under way: a reload does not start another.
    Ok(Redirect::to("/mailbox").into_response())
}

async fn forget(
    State(context): State<Context>,
    holder: Holder,
    Form(form): Form<CsrfForm>,
) -> Result<Response, UiError> {
    holder.check(&form.csrf)?;
    context.inner.app.forget_authorization(authorization::Owner::Device(holder.device.id), &actor(&holder)).await?;
    let notice = ("ok", holder.tr.t("mailbox.forgotten").to_owned());
    Ok(super::flash::redirect_session(&context, &holder.csrf, "/mailbox", vec![notice]))
}

async fn sign_out(
    State(context): State<Context>,
    holder: Holder,
    Form(form): Form<CsrfForm>,
) -> Result<Response, UiError> {
    holder.check(&form.csrf)?;
    let forget = context.inner.config.get().config.gateway.forget_token_on_sign_out;
    context.inner.app.device_sign_out(&holder.token, &holder.device, forget).await?;
    let mut response = Redirect::to("/mailbox").into_response();
    response.headers_mut().append(header::SET_COOKIE, cookie_header(&context, COOKIE, "", Some(0)));
    Ok(response)
}

//! The web interface: server-rendered pages (maud), in four languages, for signed-in accounts. Forms work
//! without scripts; `static/app.js` adds what must be live (validation as you type, the device-code countdown
//! and status). Every form that changes something carries the session's CSRF token.
//!
//! Pages: `login.rs` (sign in and out), `email_config.rs`, `oauth.rs`, `outbox.rs`, `events.rs` (events and
//! the audit log), `accounts.rs` (accounts, API tokens, the account's own language and password), `mailbox.rs`
//! (a device account's own mailbox, with its own sign-in).

mod accounts;
mod cluster;
mod doctor;
mod email_config;
mod events;
pub(crate) mod flash;
pub mod i18n;
mod landing;
mod login;
mod mailbox;
mod oauth;
mod outbox;
mod relay_certificate;
mod status;

use crate::service::{
    Context,
    caller::{Caller, session_caller},
    described,
};
use axum::{
    Router,
    extract::{FromRequestParts, OptionalFromRequestParts},
    http::{StatusCode, header, request::Parts},
    response::{IntoResponse, Redirect, Response},
    routing::get,
};
use i18n::Tr;
use maud::{DOCTYPE, Markup, html};
use tidings_core::{
    account::Role,
    outbox::{Status, circuit::Circuit},
};
use tidings_oauth::status::TokenStatus;

/// The static files change only with the binary: cached briefly, revalidated after.
const STATIC_CACHE: (header::HeaderName, &str) = (header::CACHE_CONTROL, "public, max-age=300");

pub fn router() -> Router<Context> {
    Router::new()
        .route("/static/app.css", get(|| async { ([(header::CONTENT_TYPE, "text/css"), STATIC_CACHE], STYLE) }))
        .route("/static/app.js", get(|| async { ([(header::CONTENT_TYPE, "text/javascript"), STATIC_CACHE], SCRIPT) }))
        .merge(login::router())
        .merge(status::router())
        .merge(landing::router())
        .merge(email_config::router())
        .merge(relay_certificate::router())
        .merge(doctor::router())
        .merge(oauth::router())
        .merge(outbox::router())
        .merge(events::router())
        .merge(accounts::router())
        .merge(cluster::router())
        .merge(mailbox::router())
}

const STYLE: &str = include_str!("../../static/app.css");
const SCRIPT: &str = include_str!("../../static/app.js");

/// A signed-in account viewing a page, in its language.
#[derive(Clone, Debug)]
pub struct Viewer {
    pub caller: Caller,
    pub tr: Tr,
    /// What the form that redirected here did, shown once at the top of the page.
    pub flash: Vec<flash::Notice>,
}

impl Viewer {
    pub fn csrf(&self) -> &str {
        self.caller.csrf.as_deref().unwrap_or("")
    }

    pub fn username(&self) -> &str {
        self.caller.account.as_ref().map_or("", |a| a.username.as_str())
    }

    pub fn may_operate(&self) -> bool {
        self.caller.role.may_configure_email()
    }

    /// Refuses a form whose CSRF token is not the session's.
    pub fn check_csrf(&self, sent: &str) -> Result<(), UiError> {
        if !sent.is_empty() && sent == self.csrf() { Ok(()) } else { Err(UiError::Csrf) }
    }

    /// Refuses a form without the session's CSRF token, or from a role that may not do this.
    pub fn permit(&self, csrf: &str, need: Need) -> Result<(), UiError> {
        self.check_csrf(csrf)?;
        let allowed = match need {
            Need::Anyone => true,
            Need::Operator => self.may_operate(),
            Need::Administrator => self.caller.role == Role::Administrator,
        };
        if allowed { Ok(()) } else { Err(UiError::Forbidden) }
    }
}

/// Who may submit a form.
#[derive(Clone, Copy, Debug)]
pub enum Need {
    Anyone,
    /// Administrators and network administrators.
    Operator,
    Administrator,
}

/// Why a page could not be shown.
#[derive(Debug)]
pub enum UiError {
    /// Not signed in: go to the sign-in page, then come back.
    SignIn(String),
    Forbidden,
    Csrf,
    /// The request cannot be read (a form's value that is not one).
    BadRequest(String),
    App(tidings_app::Error),
}

impl From<tidings_app::Error> for UiError {
    fn from(e: tidings_app::Error) -> Self {
        UiError::App(e)
    }
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        let plain = |status: StatusCode, text: &str| {
            let page = html! { (DOCTYPE) html { head { meta charset="utf-8"; title { (text) } link rel="stylesheet" href="/static/app.css"; }
            body { main { h1 { (text) } p { a href="/" { "Tidings" } } } } } };
            (status, page).into_response()
        };
        match self {
            UiError::SignIn(next) => Redirect::to(&format!("/login?next={}", url_escape(&next))).into_response(),
            UiError::Forbidden => plain(
                StatusCode::FORBIDDEN,
                "Your role does not allow this. / Votre rôle ne le permet pas. / Ihre Rolle erlaubt das nicht. / Uw rol staat dit niet toe.",
            ),
            UiError::Csrf => plain(
                StatusCode::FORBIDDEN,
                "The form expired or did not come from Tidings: reload the page and try again.",
            ),
            UiError::BadRequest(why) => plain(StatusCode::BAD_REQUEST, &why),
            UiError::App(e) => {
                let described = described(&e);
                plain(described.status, &described.message)
            }
        }
    }
}

/// An address that is not one of the interface's or the API's: a page in the interface's style, in the
/// browser's language, with a way back; the API's own error shape under `/api/`.
pub async fn not_found(uri: axum::http::Uri, headers: axum::http::HeaderMap) -> Response {
    let path = uri.path();
    if path.starts_with("/api/") {
        let message = format!("no such route: {path}; the routes are listed in /api/v1/openapi.json");
        let body = serde_json::json!({ "error": { "code": "not_found", "message": message } });
        return (StatusCode::NOT_FOUND, axum::Json(body)).into_response();
    }
    let tr = i18n::negotiate(None, &headers);
    let body = html! {
        p { (tr.f("notfound.text", &[("path", path)])) }
        p { a.button href="/" { (tr.t("notfound.back")) } }
    };
    let page = login::standalone(tr, tr.t("notfound.title"), tr.t("notfound.title"), body);
    (StatusCode::NOT_FOUND, page).into_response()
}

/// Percent-encodes a path for a query value.
pub fn url_escape(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'/' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl FromRequestParts<Context> for Viewer {
    type Rejection = UiError;

    async fn from_request_parts(parts: &mut Parts, context: &Context) -> Result<Self, Self::Rejection> {
        let caller = session_caller(&parts.headers, context).await?;
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
        let caller = caller.ok_or(UiError::SignIn(path))?;
        let tr = i18n::negotiate(caller.account.as_ref().and_then(|a| a.locale), &parts.headers);
        let flash = match parts.method {
            axum::http::Method::GET => {
                context.inner.flashes.take(&parts.headers, caller.csrf.as_deref().unwrap_or_default())
            }
            _ => Vec::new(),
        };
        Ok(Viewer { caller, tr, flash })
    }
}

impl OptionalFromRequestParts<Context> for Viewer {
    type Rejection = UiError;

    async fn from_request_parts(parts: &mut Parts, context: &Context) -> Result<Option<Self>, Self::Rejection> {
        match <Viewer as FromRequestParts<Context>>::from_request_parts(parts, context).await {
            Ok(v) => Ok(Some(v)),
            Err(UiError::SignIn(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// What needs action, for the banner on every page.
async fn banners(context: &Context, tr: Tr) -> Vec<Banner> {
    let mut out: Vec<Banner> = Vec::new();
    // The token refused or failing: deferred messages wait for it, not for the relay.
    let mut token_refused = false;
    if let Ok(me) = context.inner.app.membership().await
        && me.role.follows()
    {
        let age = me.synced_at.map(|at| tidings_core::cluster::shown_age((chrono::Utc::now() - at).num_seconds()));
        let link =
            context.inner.config.get().config.public_base_url.clone().or(me.primary_url.clone()).unwrap_or_default();
        out.push(Banner::warn(
            tr.f(
                "banner.follower",
                &[
                    ("role", tr.t(&format!("cluster.role.{}", me.role))),
                    ("primary", me.primary_name.as_deref().unwrap_or_default()),
                    ("revision", &me.synced_revision.unwrap_or(0).to_string()),
                    ("age", &age.unwrap_or_else(|| tr.t("cluster.never").to_owned())),
                ],
            ),
            link,
        ));
    }
    if let Ok(report) = crate::service::oauth::live_report(context).await {
        match report.status {
            TokenStatus::ReauthorizationRequired { reason, .. } => {
                token_refused = true;
                out.push(Banner::bad(tr.f("banner.reauth", &[("reason", &reason)]), "/oauth".into()));
            }
            TokenStatus::Failing { since, .. } => {
                token_refused = true;
                out.push(Banner::warn(
                    tr.f("banner.token_failing", &[("since", &since.format("%Y-%m-%d %H:%M UTC").to_string())]),
                    "/oauth".into(),
                ));
            }
            _ => {}
        }
    }
    let mut relay_down = false;
    if let Ok(health) = context.inner.app.delivery_health().await {
        let at = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%d %H:%M:%S UTC").to_string();
        for (circuit, down) in health.downs() {
            let (key, account) = match circuit {
                Circuit::Relay => {
                    relay_down = true;
                    ("banner.relay_down", "")
                }
                Circuit::Identity(account) => {
                    ("banner.identity_down", account.unwrap_or_else(|| tr.t("banner.relay_account")))
                }
            };
            let why = down.explanation.as_deref().map(|e| format!(" {e}")).unwrap_or_default();
            out.push(Banner::bad(
                tr.f(
                    key,
                    &[
                        ("since", &at(down.since)),
                        ("error", &format!("{}{why}", down.error)),
                        ("retry_at", &at(down.retry_at)),
                        ("account", account),
                    ],
                ),
                "/outbox".into(),
            ));
        }
    }
    if let Ok(standings) = context.inner.app.delivery_budgets().await {
        for spent in standings.iter().filter(|s| s.waiting_until.is_some()) {
            let account = spent.account.as_deref().unwrap_or_else(|| tr.t("banner.relay_account"));
            let until = spent.waiting_until.map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string()).unwrap_or_default();
            let budget = spent.recipients_per_day.map(|b| b.to_string()).unwrap_or_default();
            out.push(Banner::warn(
                tr.f("banner.budget_spent", &[("account", account), ("budget", &budget), ("until", &until)]),
                "/outbox".into(),
            ));
        }
    }
    for problem in context.inner.gateway.report().problems() {
        out.push(Banner::bad(tr.f("banner.gateway", &[("problem", &problem)]), "/email-config#section-gateway".into()));
    }
    if let Ok(counts) = context.inner.app.store().queue_counts().await {
        let count = |s: Status| counts.iter().find(|(st, _)| *st == s).map_or(0, |(_, n)| *n);
        // Deferred messages whose cause another banner already tells (the token, the relay down) are not
        // blamed on the relay again.
        let deferred = count(Status::Deferred) as i64;
        if deferred > 0 && !token_refused && !relay_down {
            out.push(Banner::warn(tr.n("banner.deferred", deferred, &[]), "/outbox?status=deferred".into()));
        }
        let waiting = count(Status::Queued) + count(Status::Deferred);
        if waiting >= QUEUE_GROWING {
            out.push(Banner::warn(tr.n("banner.queue_growing", waiting as i64, &[]), "/outbox".into()));
        }
    }
    out
}

/// A banner: how serious (`bad` in red, `warn` in amber), what it says, where to act.
struct Banner {
    level: &'static str,
    text: String,
    href: String,
}

impl Banner {
    fn bad(text: String, href: String) -> Self {
        Self { level: "bad", text, href }
    }

    fn warn(text: String, href: String) -> Self {
        Self { level: "warn", text, href }
    }
}

/// Waiting messages from which the banner warns that the queue grows.
const QUEUE_GROWING: u64 = 100;

/// The page around `body`: navigation, the banner, the account's menu.
pub async fn page(context: &Context, viewer: &Viewer, active: &str, title: &str, body: Markup) -> Markup {
    let tr = viewer.tr;
    let banners = banners(context, tr).await;
    let nav = [
        ("/", "nav.status"),
        ("/email-config", "nav.email_config"),
        ("/oauth", "nav.oauth"),
        ("/outbox", "nav.outbox"),
        ("/events", "nav.events"),
        ("/audit", "nav.audit"),
        ("/accounts", "nav.accounts"),
        ("/cluster", "nav.cluster"),
    ];
    html! {
        (DOCTYPE)
        html lang=(tr.code()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="csrf-token" content=(viewer.csrf());
                title { (title) " · Tidings" }
                link rel="stylesheet" href="/static/app.css";
                script src="/static/app.js" defer {}
            }
            body {
                a.skip href="#main" { (tr.t("nav.skip")) }
                header {
                    a.brand href="/" { "Tidings" }
                    nav aria-label=(tr.t("nav.label")) {
                        @for (href, key) in nav {
                            a href=(href) class=[(active == href).then_some("active")] aria-current=[(active == href).then_some("page")] { (tr.t(key)) }
                        }
                    }
                    div.account {
                        span { (viewer.username()) " · " (tr.t(role_key(viewer.caller.role))) }
                        form method="post" action="/logout" {
                            input type="hidden" name="csrf" value=(viewer.csrf());
                            button.link type="submit" { (tr.t("nav.sign_out")) }
                        }
                    }
                }
                @for banner in &banners {
                    div class={"banner " (banner.level)} role="alert" {
                        strong { (tr.t(&format!("glance.level.{}", banner.level))) ": " } (prose(&banner.text)) " " a href=(banner.href) { (tr.t("banner.open")) }
                    }
                }
                main #main {
                    h1 { (title) }
                    @for (kind, text) in &viewer.flash { (notice(kind, text)) }
                    (body)
                }
            }
        }
    }
}

pub fn role_key(role: Role) -> &'static str {
    match role {
        Role::Administrator => "role.administrator",
        Role::NetworkAdministrator => "role.network_administrator",
        Role::Viewer => "role.viewer",
    }
}

/// A hidden CSRF field.
pub fn csrf_field(viewer: &Viewer) -> Markup {
    html! { input type="hidden" name="csrf" value=(viewer.csrf()); }
}

/// A notice above a page's content: `ok` or `error`.
pub fn notice(kind: &str, text: &str) -> Markup {
    html! { p class={"notice " (kind)} role="status" { (prose(text)) } }
}

/// Words from the core or a provider, where a command or a key is written between backticks: shown as code,
/// never as the backticks themselves.
pub fn prose(text: &str) -> Markup {
    html! {
        @for (i, part) in text.split('`').enumerate() {
            @if i % 2 == 1 { code { (part) } } @else { (part) }
        }
    }
}

/// A time as `2026-11-22 09:30 UTC`.
pub fn when(at: &chrono::DateTime<chrono::Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// "MAILBOX, connected WHEN": an authorization that works, on the devices' list and the account's own page.
pub fn connected(tr: Tr, authorization: &tidings_app::authorization::Authorization) -> String {
    let at = authorization.acquired_at.as_ref().map(when).unwrap_or_default();
    tr.f("mailbox.connected", &[("mailbox", authorization.account.as_deref().unwrap_or_default()), ("at", &at)])
}

/// A credential's name in the viewer's language (`authorization:USER` is a device account's).
pub fn credential_name(tr: Tr, credential: &str) -> String {
    match credential.strip_prefix("authorization:") {
        Some(user) => tr.f("expiries.name.device_authorization", &[("user", user)]),
        None => tr.t(&format!("expiries.name.{credential}")).to_string(),
    }
}

/// Text with line breaks kept.
pub fn multiline(text: &str) -> Markup {
    html! { @for (i, line) in text.lines().enumerate() { @if i > 0 { br; } (line) } }
}

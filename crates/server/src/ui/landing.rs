//! `/login/smtp-verification`: where the provider sends the browser back after signing Tidings in. It completes
//! the sign-in and says in plain words, in the browser's language, whether it worked.

use crate::service::Context;
use axum::{
    Router,
    extract::{RawQuery, State},
    http::{HeaderMap, StatusCode},
    response::{Html, IntoResponse},
    routing::get,
};
use tidings_oauth::flows::{self, FlowError, Owner};

pub fn router() -> Router<Context> {
    Router::new().route("/login/smtp-verification", get(landing)).route("/login/smtp-verification/", get(landing))
}

/// Where the provider sends the browser back. Says in plain words, in the browser's language, whether it
/// worked.
async fn landing(State(context): State<Context>, headers: HeaderMap, RawQuery(query): RawQuery) -> impl IntoResponse {
    let inner = &context.inner;
    let tr = super::i18n::negotiate(None, &headers);
    let query = query.unwrap_or_default();
    let (status, title, text) =
        match flows::complete(&inner.app, Some(&inner.tokens), "browser", &format!("?{query}"), &Owner::Relay).await {
            Ok(account) => {
                let account = account.unwrap_or_else(|| tr.t("landing.mailbox").to_owned());
                (StatusCode::OK, tr.t("landing.authorized_title"), tr.f("landing.authorized", &[("account", &account)]))
            }
            Err(FlowError::Refused { said, explanation }) => (
                StatusCode::BAD_REQUEST,
                tr.t("landing.refused_title"),
                tr.f("landing.refused", &[("explanation", &explanation), ("said", &said)]),
            ),
            Err(e) => (StatusCode::BAD_REQUEST, tr.t("landing.failed_title"), e.to_string()),
        };
    (status, Html(page(tr, title, &text)))
}

/// The page in the interface's style, in the browser's language, with the way on to the OAuth page.
fn page(tr: super::i18n::Tr, title: &str, text: &str) -> String {
    let body = maud::html! {
        p role="status" { (text) }
        p { a.button href="/oauth" { (tr.t("landing.continue")) } }
    };
    super::login::standalone(tr, title, title, body).into_string()
}

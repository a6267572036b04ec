//! Management > Email Configuration, laid out like the vendor page: the sender, the SMTP relay (with the
//! password or OAuth2 fields), the admin contact, Save. Field errors appear beside their fields, also while
//! typing (`/email-config/validate`, used by `app.js`). Secrets are write-only. Google's client file can be
//! imported, and the redirect URI to register is shown with a copy button.

use super::{Need, UiError, Viewer, csrf_field, flash, notice, page};
use crate::service::{
    Context,
    email::{save, send_test},
};
use axum::{
    Form, Json, Router,
    extract::{Multipart, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use maud::{Markup, html};
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use tidings_app::{
    notifications::TestOutcome,
    settings::{Current, GoogleFile},
};
use tidings_core::{
    FieldError,
    config::keys::{self, KEYS},
    secret::SecretName,
};

pub fn router() -> Router<Context> {
    Router::new()
        .route("/email-config", get(show).post(save_form))
        .route("/email-config/validate", post(validate))
        .route("/email-config/google", post(import_google))
        .route("/email-config/test", post(test))
}

/// The page's sections: a title key and which configuration keys it holds.
/// Whether a configuration key belongs to a section.
type Belongs = fn(&str) -> bool;

const SECTIONS: &[(&str, &str, Belongs)] = &[
    ("sender", "config.section.sender", |k| k == "sender"),
    ("relay", "config.section.relay", |k| k.starts_with("smtp.")),
    // The private keys are made or imported, never typed: the OAuth page and the import commands hold them.
    ("oauth", "config.section.oauth", |k| {
        k.starts_with("oauth.")
            && k != "oauth.static_access_token"
            && !SecretName::from_key(k).is_some_and(SecretName::is_private_key)
    }),
    ("admin", "config.section.admin", |k| k.starts_with("admin.")),
    ("tls", "config.section.tls", |k| k.starts_with("tls.")),
    ("gateway", "config.section.gateway", |k| k.starts_with("gateway.")),
    ("cluster", "config.section.cluster", |k| k.starts_with("cluster.")),
    ("advanced", "config.section.advanced", |k| {
        k == "public_base_url"
            || k == "locale"
            || k.starts_with("delivery.")
            || k.starts_with("graph.")
            || k.starts_with("gmail.")
            || k == "oauth.static_access_token"
    }),
];

/// The choices of the keys shown as lists: (value, label key or literal label).
fn choices(key: &str) -> Option<&'static [(&'static str, &'static str)]> {
    Some(match key {
        "smtp.encryption" => &[("tls", "TLS"), ("starttls", "STARTTLS"), ("none", "option.none")],
        "smtp.auth" => &[("none", "option.none"), ("password", "option.password"), ("oauth2", "OAuth2")],
        "delivery.transport" => &[("smtp", "SMTP"), ("microsoft_graph", "Microsoft Graph"), ("gmail_api", "Gmail API")],
        "oauth.client_credential" => &[
            ("secret", "option.secret"),
            ("certificate", "option.certificate"),
            ("service_account", "option.service_account"),
        ],
        "oauth.provider" => {
            &[("", "option.choose"), ("microsoft", "Microsoft"), ("google", "Google"), ("custom", "option.custom")]
        }
        "tls.min_version" | "tls.max_version" => &[("", "option.default"), ("1.2", "TLS 1.2"), ("1.3", "TLS 1.3")],
        "locale" => &[("en", "English"), ("fr", "Français"), ("de", "Deutsch"), ("nl", "Nederlands")],
        "gateway.sender_policy" => &[
            ("fixed", "option.fixed"),
            ("allow_user", "option.allow_user"),
            ("bulk", "option.bulk"),
            ("login_user", "option.login_user"),
        ],
        "gateway.bare_newlines" => &[("reject", "option.reject"), ("normalize", "option.normalize")],
        _ => return None,
    })
}

fn is_flag(key: &str) -> bool {
    matches!(
        key,
        "smtp.allow_plaintext_auth"
            | "tls.verify_certificates"
            | "tls.match_common_name"
            | "admin.daily_notice"
            | "admin.test_email_on_save"
            | "gateway.require_tls"
            | "gateway.allow_plaintext_auth"
            | "gateway.forget_token_on_sign_out"
            | "cluster.auto_failover"
            | "cluster.backup_enabled"
    )
}

/// What the page shows beside the form.
#[derive(Default)]
struct Outcome {
    notices: Vec<(&'static str, String)>,
    errors: BTreeMap<String, String>,
    /// Submitted values to show again after a refusal.
    values: HashMap<String, String>,
}

fn field_label(viewer: &Viewer, key: &str) -> String {
    viewer.tr.t(&format!("field.{key}")).to_owned()
}

fn form(viewer: &Viewer, current: &Current, outcome: &Outcome) -> Markup {
    let tr = viewer.tr;
    let value =
        |key: &str| outcome.values.get(key).cloned().or_else(|| keys::get(&current.config, key)).unwrap_or_default();
    let readonly = !viewer.may_operate();
    html! {
        form #config method="post" action="/email-config" data-validate="/email-config/validate" novalidate {
            (csrf_field(viewer))
            // Filled by static/app.js when a newly chosen provider would change other fields.
            div.notice.warning #preset-effect hidden role="status" aria-live="polite" data-title=(tr.t("config.preset_title")) data-apply=(tr.t("config.preset_apply")) data-keep=(tr.t("config.preset_keep")) data-kept=(tr.t("config.preset_kept")) {}
            @for (id, title, belongs) in SECTIONS {
                @let body = html! {
                    @for info in KEYS.iter().filter(|k| belongs(k.key)) {
                        @let key = info.key;
                        @let error = outcome.errors.get(key);
                        div class={ "field" @if error.is_some() { " invalid" } } data-key=(key) {
                            @if is_flag(key) {
                                label.check {
                                    input type="checkbox" name=(key) value="true" checked[value(key) == "true"] disabled[readonly];
                                    (field_label(viewer, key))
                                }
                            } @else {
                                label for=(key) { (field_label(viewer, key)) }
                                @if let Some(options) = choices(key) {
                                    select id=(key) name=(key) disabled[readonly] aria-invalid=[error.map(|_| "true")] aria-describedby={"error-" (key)} {
                                        @for (v, label) in options {
                                            option value=(v) selected[value(key) == *v] { (tr.t(label)) }
                                        }
                                    }
                                } @else if info.secret {
                                    @let set = SecretName::from_key(key).is_some_and(|n| current.secrets.has(n));
                                    input id=(key) name=(key) type="password" autocomplete="new-password" disabled[readonly]
                                        aria-invalid=[error.map(|_| "true")] aria-describedby={"error-" (key)}
                                        placeholder=(if set { tr.t("config.secret_set") } else { tr.t("config.secret_unset") });
                                    @if set {
                                        label.check.small { input type="checkbox" name={"clear:" (key)} value="true" disabled[readonly]; (tr.t("config.secret_clear")) }
                                    }
                                } @else {
                                    input id=(key) name=(key) value=(value(key)) disabled[readonly]
                                        aria-invalid=[error.map(|_| "true")] aria-describedby={"error-" (key)}
                                        type=(match key { "smtp.port" => "number", "admin.daily_notice_time" => "time", _ => "text" });
                                }
                            }
                            small.error id={"error-" (key)} data-error-for=(key) { @if let Some(e) = error { (e) } }
                        }
                    }
                };
                // A collapsed section with an error opens, so that the error is seen.
                @let wrong = KEYS.iter().any(|k| belongs(k.key) && outcome.errors.contains_key(k.key));
                @if *id == "tls" {
                    details.section id={"section-" (id)} open[wrong] {
                        summary { (tr.t(title)) }
                        (body)
                        p { a href="/email-config/certificate" { (tr.t("cert.fetch")) } }
                    }
                } @else if matches!(*id, "advanced" | "gateway") {
                    details.section id={"section-" (id)} open[wrong] { summary { (tr.t(title)) } (body) }
                } @else {
                    fieldset.section id={"section-" (id)} { legend { (tr.t(title)) } (body) }
                }
            }
            @if !readonly {
                button type="submit" { (tr.t("config.save")) }
            }
        }
    }
}

async fn render(context: &Context, viewer: &Viewer, outcome: Outcome, status: StatusCode) -> Result<Response, UiError> {
    let tr = viewer.tr;
    let current = context.inner.app.current().await?;
    let redirect = current.config.redirect_uri();
    let body = html! {
        @for (kind, text) in &outcome.notices { (notice(kind, text)) }
        @if !outcome.errors.is_empty() {
            div.error-summary #error-summary role="alert" tabindex="-1" {
                p { strong { (tr.t("config.not_saved")) } }
                ul {
                    @for (key, message) in &outcome.errors {
                        @let label = if keys::info(key).is_some() { field_label(viewer, key) } else { key.clone() };
                        li { a href={"#" (key)} { (label) } ": " (message) }
                    }
                }
            }
        }
        @for advice in tidings_core::config::advice::advice(&current.config) { (notice("warning", tr.t(advice.key()))) }
        p.meta {
            @match (&current.saved_at, &current.saved_by) {
                (Some(at), Some(by)) => (tr.f("config.revision", &[("n", &current.revision.to_string()), ("at", &super::when(at)), ("by", by)])),
                _ => (tr.t("config.never_saved")),
            }
        }
        div.redirect {
            strong { (tr.t("config.redirect_uri")) }
            @match &redirect {
                Some(uri) => { code #redirect-uri { (uri) } button.copy type="button" data-copy="#redirect-uri" data-copied=(tr.t("config.copied")) data-copy-failed=(tr.t("config.copy_failed")) { (tr.t("config.copy")) } span.copy-said role="status" aria-live="polite" {} }
                None => { span { (tr.t("config.redirect_needs_base")) } }
            }
        }
        (form(viewer, &current, &outcome))
        @if viewer.may_operate() {
            section.side {
                h2 { (tr.t("config.google_import")) }
                form method="post" action="/email-config/google" enctype="multipart/form-data" {
                    (csrf_field(viewer))
                    input type="file" name="file" accept="application/json,.json" required;
                    button type="submit" { (tr.t("config.import")) }
                }
                h2 { (tr.t("config.google_service_account_import")) }
                p.small { (tr.t("config.google_service_account_help")) }
                form method="post" action="/email-config/google" enctype="multipart/form-data" {
                    (csrf_field(viewer))
                    input type="hidden" name="kind" value="service_account";
                    input type="file" name="file" accept="application/json,.json" required;
                    button type="submit" { (tr.t("config.import")) }
                }
                h2 { (tr.t("doctor.title")) }
                p.small { a href="/doctor" { (tr.t("doctor.link")) } }
                h2 { (tr.t("config.test_title")) }
                form method="post" action="/email-config/test" {
                    (csrf_field(viewer))
                    button type="submit" { (tr.t("config.test_send")) }
                }
            }
        }
    };
    Ok((status, page(context, viewer, "/email-config", tr.t("nav.email_config"), body).await).into_response())
}

async fn show(State(context): State<Context>, viewer: Viewer) -> Result<Response, UiError> {
    render(&context, &viewer, Outcome::default(), StatusCode::OK).await
}

/// The form's fields as edits: only what differs from the configuration in force (so that a provider preset
/// fills what the administrator did not touch), secrets only when typed or cleared.
fn edits(current: &Current, fields: &[(String, String)]) -> (Vec<(String, String)>, HashMap<String, String>) {
    let submitted: HashMap<String, String> = fields.iter().cloned().collect();
    let mut edits = Vec::new();
    for info in KEYS {
        let key = info.key;
        if info.secret {
            match submitted.get(key) {
                Some(v) if !v.is_empty() => edits.push((key.to_owned(), v.clone())),
                _ if submitted.contains_key(&format!("clear:{key}")) => edits.push((key.to_owned(), String::new())),
                _ => {}
            }
            continue;
        }
        let value = if is_flag(key) {
            if submitted.contains_key(key) { "true".to_owned() } else { "false".to_owned() }
        } else {
            match submitted.get(key) {
                Some(v) => v.clone(),
                None => continue,
            }
        };
        // A value kept against a provider's preset is sent even unchanged, so that it overrides the preset.
        let kept = fields.iter().any(|(k, v)| k == "keep" && v == key);
        if kept || keys::get(&current.config, key).as_deref() != Some(value.trim()) {
            edits.push((key.to_owned(), value));
        }
    }
    let shown = submitted.into_iter().filter(|(k, _)| keys::info(k).is_some_and(|i| !i.secret)).collect();
    (edits, shown)
}

/// The CSRF field of a form read as a list of fields.
fn form_csrf(fields: &[(String, String)]) -> &str {
    fields.iter().find(|(k, _)| k == "csrf").map_or("", |(_, v)| v.as_str())
}

fn field_errors(e: tidings_app::Error) -> Result<BTreeMap<String, String>, UiError> {
    match e {
        tidings_app::Error::Invalid(errors) => {
            let mut out = BTreeMap::new();
            for FieldError { field, message } in errors.0 {
                out.entry(field)
                    .and_modify(|m: &mut String| {
                        m.push_str("; ");
                        m.push_str(&message)
                    })
                    .or_insert(message);
            }
            Ok(out)
        }
        other => Err(other.into()),
    }
}

fn test_notice(viewer: &Viewer, outcome: &TestOutcome) -> (&'static str, String) {
    let tr = viewer.tr;
    match outcome.result.as_str() {
        "delivered" => ("ok", tr.t("config.test_delivered").to_owned()),
        "pending" => ("info", tr.f("config.test_pending", &[("id", &outcome.message_id.to_string())])),
        _ => {
            let reply = outcome.reply.clone().unwrap_or_default();
            let explanation = outcome.explanation.clone().unwrap_or_default();
            ("error", tr.f("config.test_failed", &[("reply", &reply), ("explanation", &explanation)]))
        }
    }
}

async fn save_form(
    State(context): State<Context>,
    viewer: Viewer,
    Form(fields): Form<Vec<(String, String)>>,
) -> Result<Response, UiError> {
    viewer.permit(form_csrf(&fields), Need::Operator)?;
    let current = context.inner.app.current().await?;
    let (edits, values) = edits(&current, &fields);
    let mut outcome = Outcome::default();
    match save(&context, &viewer.caller, &edits).await {
        Ok((saved, test)) => {
            let tr = viewer.tr;
            outcome.notices.push(if saved.changed.is_empty() {
                ("info", tr.t("config.nothing_changed").to_owned())
            } else {
                (
                    "ok",
                    tr.f("config.saved", &[("n", &saved.revision.to_string()), ("fields", &saved.changed.join(", "))]),
                )
            });
            outcome.notices.extend(saved.warnings.into_iter().map(|w| ("info", w)));
            if let Some(test) = test {
                outcome.notices.push(match test {
                    Ok(test) => test_notice(&viewer, &test),
                    Err(e) => ("error", e.to_string()),
                });
            }
            Ok(flash::redirect(&context, &viewer, "/email-config", outcome.notices))
        }
        Err(e) => {
            outcome.errors = field_errors(e)?;
            outcome.values = values;
            render(&context, &viewer, outcome, StatusCode::UNPROCESSABLE_ENTITY).await
        }
    }
}

async fn validate(
    State(context): State<Context>,
    viewer: Viewer,
    Form(fields): Form<Vec<(String, String)>>,
) -> Result<Response, UiError> {
    viewer.permit(form_csrf(&fields), Need::Anyone)?;
    let current = context.inner.app.current().await?;
    let (edits, _) = edits(&current, &fields);
    let errors = match context.inner.app.validate_edits(&edits).await {
        Ok(()) => BTreeMap::new(),
        Err(e) => field_errors(e)?,
    };
    // What a newly chosen provider would change, for the page to show before anything is saved.
    let preset: Vec<_> = tidings_core::config::change::preset_effect(&current.config, &edits)
        .into_iter()
        .map(|(key, from, to)| json!({ "key": key, "label": field_label(&viewer, &key), "from": from, "to": to }))
        .collect();
    Ok(Json(json!({ "errors": errors, "preset": preset })).into_response())
}

async fn import_google(
    State(context): State<Context>,
    viewer: Viewer,
    mut multipart: Multipart,
) -> Result<Response, UiError> {
    let (mut csrf, mut file, mut kind) = (String::new(), None, String::new());
    while let Ok(Some(field)) = multipart.next_field().await {
        match field.name() {
            Some("csrf") => csrf = field.text().await.unwrap_or_default(),
            Some("file") => file = field.text().await.ok(),
            Some("kind") => kind = field.text().await.unwrap_or_default(),
            _ => {}
        }
    }
    viewer.permit(&csrf, Need::Operator)?;
    let tr = viewer.tr;
    let mut outcome = Outcome::default();
    let (app, actor, role, text) =
        (&context.inner.app, &viewer.caller.actor, viewer.caller.role, file.unwrap_or_default());
    let file = if kind == "service_account" { GoogleFile::ServiceAccount } else { GoogleFile::Client };
    match app.import_google(actor, role, file, &text).await {
        Ok(saved) => {
            context.inner.config.refresh().await;
            outcome.notices.push(("ok", tr.f("config.imported", &[("fields", &saved.changed.join(", "))])));
            outcome.notices.extend(saved.warnings.into_iter().map(|w| ("info", w)));
            return Ok(flash::redirect(&context, &viewer, "/email-config", outcome.notices));
        }
        Err(tidings_app::Error::Input(why)) => {
            outcome.notices.push(("error", tr.f("config.import_failed", &[("why", &why)])))
        }
        Err(e) => outcome.errors = field_errors(e)?,
    }
    render(&context, &viewer, outcome, StatusCode::OK).await
}

async fn test(
    State(context): State<Context>,
    viewer: Viewer,
    Form(fields): Form<Vec<(String, String)>>,
) -> Result<Response, UiError> {
    viewer.permit(form_csrf(&fields), Need::Operator)?;
    let notice = match send_test(&context, &viewer.caller).await {
        Ok(test) => test_notice(&viewer, &test),
        Err(e) => ("error", e.to_string()),
    };
    // Back to the page the button was on (the status page has one too).
    let back = fields.iter().find(|(k, _)| k == "back").map(|(_, v)| v.as_str());
    Ok(flash::redirect(&context, &viewer, &super::login::safe_next(back.or(Some("/email-config"))), vec![notice]))
}

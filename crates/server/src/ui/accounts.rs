//! Accounts and API tokens (administrators), and every account's own language and password.

use super::{Need, UiError, Viewer, connected, csrf_field, flash, i18n, notice, page, role_key, when};
use crate::service::Context;
use axum::{
    Form, Router,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use maud::html;
use serde::Deserialize;
use tidings_app::{authorization::Owner, mailboxes::DeviceWithMailbox, sign_in::AccountUpdate};
use tidings_core::account::MIN_PASSWORD_LEN;
use tidings_core::{account::Role, secret::SecretString};

pub fn router() -> Router<Context> {
    Router::new()
        .route("/accounts", get(show).post(create))
        .route("/accounts/{id}", post(change))
        .route("/accounts/{id}/delete", post(delete))
        .route("/tokens", post(create_token))
        .route("/tokens/{id}/revoke", post(revoke_token))
        .route("/preferences", post(preferences))
        .route("/devices", post(create_device))
        .route("/devices/{id}/delete", post(delete_device))
        .route("/devices/{id}/mailbox/delete", post(forget_mailbox))
}

async fn render(
    context: &Context,
    viewer: &Viewer,
    notices: Vec<(&str, String)>,
    status: StatusCode,
) -> Result<Response, UiError> {
    let tr = viewer.tr;
    let admin = viewer.caller.role == Role::Administrator;
    let app = &context.inner.app;
    let accounts = if admin { app.accounts().await? } else { vec![] };
    let tokens = if admin { app.api_tokens().await? } else { vec![] };
    let devices = app.devices_with_mailboxes().await?;
    let own_locale = viewer.caller.account.as_ref().and_then(|a| a.locale);
    // Every selector has its name for assistive technology, the account's when it sits in the account's row.
    let role_select = |selected: Role, whose: &str| {
        let label = if whose.is_empty() {
            tr.t("accounts.role").to_owned()
        } else {
            tr.f("accounts.role_of", &[("name", whose)])
        };
        html! {
            select name="role" aria-label=(label) {
                @for r in Role::ALL { option value=(r.as_str()) selected[r == selected] { (tr.t(role_key(r))) } }
            }
        }
    };
    let body = html! {
        @for (kind, text) in &notices { (notice(kind, text)) }
        section {
            h2 { (tr.t("accounts.mine")) }
            form.inline method="post" action="/preferences" {
                (csrf_field(viewer))
                label for="locale" { (tr.t("accounts.language")) }
                select #locale name="locale" {
                    option value="" selected[own_locale.is_none()] { (tr.t("accounts.language_browser")) }
                    @for (locale, code, name) in i18n::languages() { option value=(code) selected[own_locale == Some(locale)] { (name) } }
                }
                label for="current-password" { (tr.t("accounts.current_password")) }
                input #current-password name="current_password" type="password" autocomplete="current-password";
                label for="new-password" { (tr.t("accounts.new_password")) }
                input #new-password name="password" type="password" autocomplete="new-password" minlength=(MIN_PASSWORD_LEN) aria-describedby="password-rule";
                small #password-rule { (tr.f("accounts.password_rule", &[("n", &MIN_PASSWORD_LEN.to_string())])) }
                button type="submit" { (tr.t("accounts.save")) }
            }
        }
        section {
            h2 { (tr.t("devices.title")) }
            p.small { (tr.t("devices.help")) }
            @if devices.is_empty() { p { (tr.t("devices.empty")) } } @else {
                table {
                    thead { tr { th { (tr.t("accounts.username")) } th { (tr.t("devices.addresses")) } th { (tr.t("mailbox.title")) } th { (tr.t("tokens.created")) } th {} } }
                    tbody {
                        @for DeviceWithMailbox { device: d, mailbox } in &devices {
                            tr {
                                td { (d.username) } td { (d.addresses.join(", ")) }
                                td {
                                    @match mailbox {
                                        None => "—",
                                        Some(m) if m.failure.is_some() => { (m.account.as_deref().unwrap_or_default()) ": " (tr.t("mailbox.reconnect")) }
                                        Some(m) => (connected(tr, m)),
                                    }
                                    @if mailbox.is_some() && viewer.may_operate() {
                                        form method="post" action={"/devices/" (d.id) "/mailbox/delete"} {
                                            (csrf_field(viewer)) button.link type="submit" { (tr.t("devices.forget_token")) }
                                        }
                                    }
                                }
                                td { (when(&d.created_at)) " · " (d.created_by) }
                                td {
                                    @if viewer.may_operate() {
                                        form method="post" action={"/devices/" (d.id) "/delete"} data-confirm=(tr.t("devices.delete_confirm")) {
                                            (csrf_field(viewer)) button.danger type="submit" { (tr.t("accounts.delete")) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if viewer.may_operate() {
                form.inline method="post" action="/devices" {
                    (csrf_field(viewer))
                    label { (tr.t("accounts.username")) input name="username" required autocomplete="off"; }
                    label { (tr.t("accounts.password")) input name="password" type="password" required autocomplete="new-password"; }
                    label { (tr.t("devices.addresses")) input name="addresses" placeholder="scanner@example.com"; }
                    button type="submit" { (tr.t("devices.create")) }
                }
            }
        }
        @if admin {
            section {
                h2 { (tr.t("accounts.title")) }
                table {
                    thead { tr { th { (tr.t("accounts.username")) } th { (tr.t("accounts.role")) } th { (tr.t("accounts.last_login")) } th {} } }
                    tbody {
                        @for a in &accounts {
                            tr {
                                td { (a.username) @if a.locked_until.is_some_and(|u| u > chrono::Utc::now()) { " " span.state.bad { (tr.t("accounts.locked")) } } }
                                td {
                                    form.inline method="post" action={"/accounts/" (a.id)} {
                                        (csrf_field(viewer)) (role_select(a.role, &a.username))
                                        @if a.locked_until.is_some_and(|u| u > chrono::Utc::now()) {
                                            label.check.small { input type="checkbox" name="unlock" value="true"; (tr.t("accounts.unlock")) }
                                        }
                                        button.secondary type="submit" { (tr.t("accounts.save")) }
                                    }
                                }
                                td { (a.last_login_at.as_ref().map(when).unwrap_or_else(|| "—".into())) }
                                td {
                                    form method="post" action={"/accounts/" (a.id) "/delete"} data-confirm=(tr.t("accounts.delete_confirm")) {
                                        (csrf_field(viewer)) button.danger type="submit" { (tr.t("accounts.delete")) }
                                    }
                                }
                            }
                        }
                    }
                }
                h3 { (tr.t("accounts.create")) }
                form.inline method="post" action="/accounts" {
                    (csrf_field(viewer))
                    label { (tr.t("accounts.username")) input name="username" required autocomplete="off"; }
                    label { (tr.t("accounts.password")) input name="password" type="password" required autocomplete="new-password" minlength=(MIN_PASSWORD_LEN) aria-describedby="new-account-rule"; }
                    small #new-account-rule { (tr.f("accounts.password_rule", &[("n", &MIN_PASSWORD_LEN.to_string())])) }
                    label { (tr.t("accounts.role")) (role_select(Role::Viewer, "")) }
                    button type="submit" { (tr.t("accounts.create_button")) }
                }
            }
            section {
                h2 { (tr.t("tokens.title")) }
                table {
                    thead { tr { th { (tr.t("tokens.name")) } th { (tr.t("accounts.role")) } th { (tr.t("tokens.created")) } th { (tr.t("tokens.last_used")) } th {} } }
                    tbody {
                        @for t in &tokens {
                            tr {
                                td { (t.name) } td { (tr.t(role_key(t.role))) } td { (when(&t.created_at)) " · " (t.created_by) }
                                td { (t.last_used_at.as_ref().map(when).unwrap_or_else(|| "—".into())) }
                                td {
                                    @if t.revoked_at.is_some() { (tr.t("tokens.revoked")) } @else {
                                        form method="post" action={"/tokens/" (t.id) "/revoke"} data-confirm=(tr.t("tokens.revoke_confirm")) {
                                            (csrf_field(viewer)) button.danger type="submit" { (tr.t("tokens.revoke")) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                form.inline method="post" action="/tokens" {
                    (csrf_field(viewer))
                    label { (tr.t("tokens.name")) input name="name" required; }
                    label { (tr.t("accounts.role")) (role_select(Role::NetworkAdministrator, "")) }
                    button type="submit" { (tr.t("tokens.create")) }
                }
            }
        }
    };
    Ok((status, page(context, viewer, "/accounts", tr.t("nav.accounts"), body).await).into_response())
}

async fn show(State(context): State<Context>, viewer: Viewer) -> Result<Response, UiError> {
    render(&context, &viewer, vec![], StatusCode::OK).await
}

/// The page again, saying what an action did: its own words when it worked, the refusal when it did not.
async fn answer<T>(
    context: &Context,
    viewer: &Viewer,
    result: tidings_app::Result<T>,
    done: impl FnOnce(T) -> String,
) -> Result<Response, UiError> {
    match result {
        Ok(value) => Ok(flash::redirect(context, viewer, "/accounts", vec![("ok", done(value))])),
        Err(e) => render(context, viewer, vec![("error", refusal(e)?)], StatusCode::UNPROCESSABLE_ENTITY).await,
    }
}

fn refusal(e: tidings_app::Error) -> Result<String, UiError> {
    match e {
        tidings_app::Error::Input(m) | tidings_app::Error::Conflict(m) => Ok(m),
        tidings_app::Error::Store(tidings_store::Error::DuplicateAccount(name)) => {
            Ok(format!("{name}: exists already"))
        }
        other => Err(other.into()),
    }
}

#[derive(Debug, Deserialize)]
struct CreateForm {
    csrf: String,
    username: String,
    password: String,
    role: String,
}

async fn create(
    State(context): State<Context>,
    viewer: Viewer,
    Form(form): Form<CreateForm>,
) -> Result<Response, UiError> {
    viewer.permit(&form.csrf, Need::Administrator)?;
    let role: Role = form.role.parse().map_err(|_| UiError::Forbidden)?;
    let app = &context.inner.app;
    let result =
        app.create_account(&viewer.caller.actor, form.username.trim(), &SecretString::new(form.password), role).await;
    answer(&context, &viewer, result, |_| viewer.tr.f("accounts.created", &[("name", form.username.trim())])).await
}

#[derive(Debug, Deserialize)]
struct ChangeForm {
    csrf: String,
    role: String,
    #[serde(default)]
    unlock: Option<String>,
}

async fn change(
    State(context): State<Context>,
    viewer: Viewer,
    Path(id): Path<i64>,
    Form(form): Form<ChangeForm>,
) -> Result<Response, UiError> {
    viewer.permit(&form.csrf, Need::Administrator)?;
    let role: Role = form.role.parse().map_err(|_| UiError::Forbidden)?;
    let update = AccountUpdate { role: Some(role), unlock: form.unlock.is_some(), ..Default::default() };
    let result = context.inner.app.update_account(&viewer.caller.actor, id, update).await;
    answer(&context, &viewer, result, |_| viewer.tr.t("accounts.changed").to_owned()).await
}

#[derive(Debug, Deserialize)]
struct CsrfForm {
    csrf: String,
}

async fn delete(
    State(context): State<Context>,
    viewer: Viewer,
    Path(id): Path<i64>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, UiError> {
    viewer.permit(&form.csrf, Need::Administrator)?;
    let result = context.inner.app.delete_account(&viewer.caller.actor, id).await;
    answer(&context, &viewer, result, |_| viewer.tr.t("accounts.deleted").to_owned()).await
}

#[derive(Debug, Deserialize)]
struct TokenForm {
    csrf: String,
    name: String,
    role: String,
}

async fn create_token(
    State(context): State<Context>,
    viewer: Viewer,
    Form(form): Form<TokenForm>,
) -> Result<Response, UiError> {
    viewer.permit(&form.csrf, Need::Administrator)?;
    let role: Role = form.role.parse().map_err(|_| UiError::Forbidden)?;
    let result = context.inner.app.create_api_token(&viewer.caller.actor, form.name.trim(), role).await;
    answer(&context, &viewer, result, |created| {
        viewer.tr.f("tokens.created_once", &[("token", created.token.expose())])
    })
    .await
}

async fn revoke_token(
    State(context): State<Context>,
    viewer: Viewer,
    Path(id): Path<i64>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, UiError> {
    viewer.permit(&form.csrf, Need::Administrator)?;
    context.inner.app.revoke_api_token(&viewer.caller.actor, id).await?;
    Ok(flash::redirect(&context, &viewer, "/accounts", vec![("ok", viewer.tr.t("tokens.revoked_now").to_owned())]))
}

#[derive(Debug, Deserialize)]
struct PreferencesForm {
    csrf: String,
    locale: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    current_password: String,
}

/// Every account may choose its language and change its password.
async fn preferences(
    State(context): State<Context>,
    viewer: Viewer,
    Form(form): Form<PreferencesForm>,
) -> Result<Response, UiError> {
    viewer.check_csrf(&form.csrf)?;
    let Some(account) = &viewer.caller.account else { return Err(UiError::Forbidden) };
    let password = (!form.password.is_empty()).then(|| SecretString::new(form.password));
    let changed_password = password.is_some();
    // One's own password is changed only by whoever knows it now (not whoever found the session open).
    let current_password = changed_password.then(|| SecretString::new(form.current_password));
    let update = AccountUpdate {
        locale: Some(i18n::locale_from_code(&form.locale)),
        password,
        current_password,
        ..Default::default()
    };
    match context.inner.app.update_account(&viewer.caller.actor, account.id, update).await {
        // A new password ends the sessions: sign in again with it.
        Ok(()) if changed_password => Ok(Redirect::to("/login").into_response()),
        Ok(()) => Ok(Redirect::to("/accounts").into_response()),
        Err(e) => render(&context, &viewer, vec![("error", refusal(e)?)], StatusCode::UNPROCESSABLE_ENTITY).await,
    }
}

#[derive(Debug, Deserialize)]
struct DeviceForm {
    csrf: String,
    username: String,
    password: String,
    #[serde(default)]
    addresses: String,
}

async fn create_device(
    State(context): State<Context>,
    viewer: Viewer,
    Form(form): Form<DeviceForm>,
) -> Result<Response, UiError> {
    viewer.permit(&form.csrf, Need::Operator)?;
    let addresses: Vec<String> =
        form.addresses.split([' ', ',', ';']).filter(|a| !a.is_empty()).map(str::to_owned).collect();
    let app = &context.inner.app;
    let result = app
        .create_device(&viewer.caller.actor, form.username.trim(), &SecretString::new(form.password), &addresses)
        .await;
    answer(&context, &viewer, result, |_| viewer.tr.f("devices.created", &[("name", form.username.trim())])).await
}

async fn delete_device(
    State(context): State<Context>,
    viewer: Viewer,
    Path(id): Path<i64>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, UiError> {
    viewer.permit(&form.csrf, Need::Operator)?;
    context.inner.app.delete_device(&viewer.caller.actor, id).await?;
    Ok(flash::redirect(&context, &viewer, "/accounts", vec![("ok", viewer.tr.t("devices.deleted").to_owned())]))
}

async fn forget_mailbox(
    State(context): State<Context>,
    viewer: Viewer,
    Path(id): Path<i64>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, UiError> {
    viewer.permit(&form.csrf, Need::Operator)?;
    let app = &context.inner.app;
    let device = app.device(id).await?;
    app.forget_authorization(Owner::Device(device.id), &viewer.caller.actor).await?;
    let text = viewer.tr.f("devices.token_deleted", &[("name", &device.username)]);
    Ok(flash::redirect(&context, &viewer, "/accounts", vec![("ok", text)]))
}

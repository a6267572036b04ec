//! The status page, where the interface opens (`/`): mail flowing, the relay, the token, the gateway, this node
//! and the credentials, each green, amber or red with words, and the one action that fits. The panel is
//! served alone too (`/status/panel`) so that the page follows the daemon without a reload; without JavaScript
//! a reload shows the same.

use super::{UiError, Viewer, credential_name, csrf_field, i18n::Tr, page, when};
use crate::service::{
    Context,
    status::{Snapshot, snapshot},
};
use axum::{
    Router,
    extract::State,
    response::{Html, IntoResponse, Response},
    routing::get,
};
use maud::{Markup, html};
use tidings_core::glance::{Action, Level};
use tidings_oauth::status::TokenStatus;

pub fn router() -> Router<Context> {
    Router::new().route("/", get(show)).route("/status/panel", get(panel))
}

async fn show(State(context): State<Context>, viewer: Viewer) -> Result<Response, UiError> {
    let now = snapshot(&context).await?;
    let body = html! { (panel_of(&viewer, &now)) };
    Ok(page(&context, &viewer, "/", viewer.tr.t("glance.title"), body).await.into_response())
}

async fn panel(State(context): State<Context>, viewer: Viewer) -> Result<Response, UiError> {
    let now = snapshot(&context).await?;
    Ok(Html(panel_of(&viewer, &now).into_string()).into_response())
}

/// A level in words beside its colour.
fn level(tr: Tr, level: Level) -> Markup {
    html! { span class={"state " (level.as_str())} { (tr.t(&format!("glance.level.{}", level.as_str()))) } }
}

fn heading(tr: Tr, title: &str, l: Level) -> Markup {
    html! { h2 { (tr.t(title)) " " (level(tr, l)) } }
}

fn panel_of(viewer: &Viewer, s: &Snapshot) -> Markup {
    let tr = viewer.tr;
    let g = &s.glance;
    let at = s.at;
    html! {
        div #status-panel data-refresh="/status/panel" data-every="5000" {
            div class={"overall " (g.overall.as_str())} data-part="overall" role="status" aria-live="polite" {
                strong { (tr.t(&format!("glance.overall.{}", g.overall.as_str()))) }
                " "
                (action(viewer, g.action))
            }
            div.cards data-part="cards" {
                section.card #glance-mail {
                    (heading(tr, "glance.mail", g.mail))
                    dl {
                        dt { (tr.t("glance.mail.last_delivered")) }
                        dd { @match s.ages.last_delivered {
                            Some((id, when_at)) => { a href={"/outbox/" (id)} { (tr.ago(when_at, at)) } " " span.small { (when(&when_at)) } },
                            None => { (tr.t("glance.mail.never")) },
                        } }
                        dt { (tr.t("glance.mail.queue")) }
                        dd { (tr.n("glance.mail.waiting", s.waiting() as i64, &[])) }
                        @if let Some((id, since)) = s.ages.oldest_waiting {
                            dt { (tr.t("glance.mail.oldest")) }
                            dd { a href={"/outbox/" (id)} { "#" (id) } " · " (tr.ago(since, at)) }
                        }
                        @if let Some((id, failed)) = s.ages.last_failed {
                            dt { (tr.t("glance.mail.last_failed")) }
                            dd { a href={"/outbox/" (id)} { "#" (id) } " · " (tr.ago(failed, at)) }
                        }
                    }
                    p.small {
                        @for (i, (status, n)) in s.queue.iter().enumerate() {
                            @if i > 0 { " · " }
                            (tr.t(super::outbox::status_key(*status))) " " (n)
                        }
                    }
                }
                section.card #glance-relay {
                    (heading(tr, "glance.relay", g.relay))
                    dl {
                        @match &s.relay {
                            Some(address) => { dt { (tr.t("glance.relay")) } dd.mono { (address) } },
                            None => { dt { (tr.t("glance.relay")) } dd { (tr.t("glance.relay.not_configured")) } },
                        }
                        @match s.relay_down() {
                            Some(down) => {
                                dt { (tr.t("outbox.status")) }
                                dd { (tr.f("glance.relay.down_since", &[("at", &tr.ago(down.since, at))])) " · " (tr.f("glance.relay.next_try", &[("in", &tr.until(down.retry_at, at))])) }
                                dt { (tr.t("glance.relay.last_reply")) }
                                dd { span.mono { (down.error) } @if let Some(e) = &down.explanation { p.small { (super::prose(e)) } } }
                            },
                            None => { @if s.relay.is_some() {
                                dt { (tr.t("outbox.status")) } dd { (tr.t("glance.relay.up")) }
                                @if let Some(reply) = &s.last_reply {
                                    dt { (tr.t("glance.relay.last_reply")) } dd.mono { (reply.text) }
                                }
                            } },
                        }
                        @let held: Vec<String> = s.identities_down().map(|(a, _)| a.map_or_else(|| tr.t("glance.relay.relay_account").to_owned(), str::to_owned)).collect();
                        @if !held.is_empty() {
                            dt { (tr.t("glance.relay.held_back")) } dd { (held.join(", ")) }
                        }
                    }
                }
                section.card #glance-token {
                    (heading(tr, "glance.token", g.token))
                    dl {
                        dt { (tr.t("oauth.state")) }
                        dd { (super::oauth::status_words(viewer, &s.token.status).0) }
                        @match &s.token.status {
                            TokenStatus::Active { expires_at } => { dt { } dd { (tr.f("glance.token.expires", &[("in", &tr.until(*expires_at, at))])) } },
                            TokenStatus::Failing { reason, since } => { dt { } dd { (tr.f("glance.token.failing_since", &[("ago", &tr.ago(*since, at))])) p.small.mono { (reason) } } },
                            TokenStatus::ReauthorizationRequired { explanation, .. } => { dt { } dd { (super::prose(explanation)) } },
                            _ => {},
                        }
                        @match (s.token.refreshed_at, s.token.acquired_at) {
                            (Some(refreshed), _) => { dt { } dd { (tr.f("glance.token.refreshed", &[("ago", &tr.ago(refreshed, at))])) } },
                            (None, Some(signed_in)) => { dt { } dd { (tr.f("glance.token.signed_in", &[("ago", &tr.ago(signed_in, at))])) } },
                            (None, None) => {},
                        }
                        @if let Some(account) = &s.token.account {
                            dt { (tr.t("glance.token.account")) } dd.mono { (account) }
                        }
                    }
                }
                section.card #glance-gateway {
                    (heading(tr, "glance.gateway", g.gateway))
                    dl {
                        @if s.gateway.listeners.is_empty() {
                            dt { (tr.t("glance.gateway")) } dd { (tr.t("glance.gateway.off")) }
                        } @else {
                            dt { (tr.t("glance.gateway.listening")) }
                            dd.mono { @for l in &s.gateway.listeners { @if l.error.is_none() { div { (l.address) @if l.implicit_tls { " (TLS)" } } } } }
                            dt { (tr.t("glance.gateway.connections")) } dd { (s.gateway_connections) }
                            dt { (tr.t("glance.gateway.last_device")) }
                            dd { @match &s.last_accepted {
                                Some(last) => { span.mono { (last.device) } " · " a href={"/outbox/" (last.id)} { (tr.ago(last.at, at)) } },
                                None => { (tr.t("glance.gateway.none_yet")) },
                            } }
                        }
                        @for problem in s.gateway.problems() { dt { } dd.small { (problem) } }
                    }
                }
                section.card #glance-node {
                    h2 { (tr.t("glance.node")) }
                    dl {
                        dt { (tr.t("cluster.role")) } dd { (tr.t(&format!("cluster.role.{}", s.membership.role.as_str()))) }
                        dt { } dd.mono { (s.membership.name) }
                    }
                }
                section.card #glance-credentials {
                    (heading(tr, "glance.credentials", g.credentials))
                    @if s.lifetimes.is_empty() {
                        p { (tr.t("glance.credentials.none")) }
                    } @else {
                        dl {
                            @for l in &s.lifetimes {
                                dt { (credential_name(tr, &l.credential)) }
                                dd { (l.ends_at.format("%Y-%m-%d")) " · " (tr.until(l.ends_at, at)) }
                            }
                        }
                    }
                    p.small { a href="/doctor#expiries" { (tr.t("glance.credentials.all")) } }
                }
            }
            p.small data-part="updated" { (tr.f("glance.updated", &[("at", &when(&at))])) }
        }
    }
}

/// The button of the action that fits.
fn action(viewer: &Viewer, action: Action) -> Markup {
    let tr = viewer.tr;
    match action {
        Action::Configure => html! { a.button href="/email-config" { (tr.t("glance.action.configure")) } },
        Action::SignIn => html! { a.button href="/oauth" { (tr.t("glance.action.sign_in")) } },
        Action::OpenMessage(id) => html! { a.button href={"/outbox/" (id)} { (tr.t("glance.action.open_message")) } },
        Action::RunDoctor => html! { a.button href="/doctor" { (tr.t("glance.action.run_doctor")) } },
        Action::SendTestMail if viewer.may_operate() => html! {
            form.inline method="post" action="/email-config/test" {
                (csrf_field(viewer))
                input type="hidden" name="back" value="/";
                button type="submit" { (tr.t("glance.action.send_test_mail")) }
            }
        },
        Action::SendTestMail => html! {},
    }
}

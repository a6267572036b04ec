//! The cluster page: this node's role, its primary and last sync, the nodes it knows; for administrators, a join
//! code for a new node, removing one, promoting and demoting.

use super::{Need, UiError, Viewer, csrf_field, flash, notice, page, when};
use crate::service::{self, Context};
use axum::{
    Form, Router,
    extract::{Path, State},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use maud::html;
use serde::Deserialize;
use tidings_core::cluster::shown_age;

pub fn router() -> Router<Context> {
    Router::new()
        .route("/cluster", get(show))
        .route("/cluster/nodes", post(add_node))
        .route("/cluster/nodes/{name}/remove", post(remove))
        .route("/cluster/promote", post(promote))
        .route("/cluster/demote", post(demote))
}

async fn show(State(context): State<Context>, viewer: Viewer) -> Result<Response, UiError> {
    render(&context, &viewer, Vec::new()).await
}

async fn render(context: &Context, viewer: &Viewer, notices: Vec<(&'static str, String)>) -> Result<Response, UiError> {
    let tr = viewer.tr;
    let app = &context.inner.app;
    if let Some(nodes) = context.nodes().await? {
        return Ok(shared(context, viewer, &nodes, notices).await);
    }
    let me = app.membership().await?;
    let nodes = app.cluster_nodes().await?;
    let admin = viewer.caller.role == tidings_core::account::Role::Administrator;
    let role_key = format!("cluster.role.{}", me.role);
    let role = tr.t(&role_key);
    let body = html! {
        @for (kind, text) in &notices { (notice(kind, text)) }
        dl {
            dt { (tr.t("cluster.this_node")) } dd { (me.name) }
            dt { (tr.t("cluster.role")) } dd #cluster-role { (role) }
            dt { (tr.t("cluster.epoch")) } dd { (me.epoch) }
            @if me.role.follows() {
                dt { (tr.t("cluster.primary")) }
                dd { (me.primary_name.as_deref().unwrap_or("?")) " (" (me.primary_url.as_deref().unwrap_or_default()) ")" }
                dt { (tr.t("cluster.synced")) }
                dd {
                    @match (me.synced_revision, me.synced_at) {
                        (Some(revision), Some(at)) => (tr.f("cluster.synced_at", &[
                            ("revision", &revision.to_string()),
                            ("age", &shown_age((chrono::Utc::now() - at).num_seconds())),
                        ])),
                        _ => (tr.t("cluster.never")),
                    }
                }
            }
        }
        h2 { (tr.t("cluster.nodes")) }
        @if nodes.is_empty() {
            p { (tr.t("cluster.no_nodes")) }
        } @else {
            table {
                thead { tr {
                    th { (tr.t("cluster.node")) } th { (tr.t("cluster.role")) } th { (tr.t("cluster.address")) }
                    th { (tr.t("cluster.version")) } th { (tr.t("cluster.last_contact")) } @if admin && me.role == tidings_core::cluster::Role::Primary { th {} }
                } }
                tbody {
                    @for node in &nodes {
                        tr {
                            td { (node.name) }
                            td { (tr.t(&format!("cluster.role.{}", node.role))) @if node.joined_at.is_none() { " · " (tr.t("cluster.invited")) } }
                            td { (node.advertise.as_deref().unwrap_or("—")) }
                            td { (node.version.as_deref().unwrap_or("—")) }
                            td { (node.last_contact_at.as_ref().map(when).unwrap_or_else(|| "—".into())) }
                            @if admin && me.role == tidings_core::cluster::Role::Primary {
                                td { form method="post" action={"/cluster/nodes/" (node.name) "/remove"} {
                                    (csrf_field(viewer)) button.link type="submit" { (tr.t("cluster.remove")) }
                                } }
                            }
                        }
                    }
                }
            }
        }
        @if admin && !me.role.follows() {
            h2 { (tr.t("cluster.add_node")) }
            form method="post" action="/cluster/nodes" {
                (csrf_field(viewer))
                label { (tr.t("cluster.node")) input name="name" required pattern="[A-Za-z0-9][A-Za-z0-9._-]{0,62}"; }
                label { (tr.t("cluster.role")) select name="role" {
                    option value="backup" { (tr.t("cluster.role.backup")) }
                    option value="traffic" { (tr.t("cluster.role.traffic")) }
                } }
                button type="submit" { (tr.t("cluster.make_code")) }
            }
        }
        @if admin && me.role == tidings_core::cluster::Role::Backup {
            form method="post" action="/cluster/promote" { (csrf_field(viewer)) button type="submit" { (tr.t("cluster.promote")) } }
        }
        @if admin && me.role == tidings_core::cluster::Role::Primary {
            form method="post" action="/cluster/demote" { (csrf_field(viewer)) button.link type="submit" { (tr.t("cluster.demote")) } }
        }
        p.small { (tr.t("cluster.docs")) }
    };
    Ok(page(context, viewer, "/cluster", tr.t("nav.cluster"), body).await.into_response())
}

/// The page of a node whose database other nodes share: the peers, what each holds, whether it is heard from.
async fn shared(
    context: &Context,
    viewer: &Viewer,
    nodes: &[service::Node],
    notices: Vec<(&'static str, String)>,
) -> Response {
    let tr = viewer.tr;
    let body = html! {
        @for (kind, text) in &notices { (notice(kind, text)) }
        p #cluster-shared { (tr.t("cluster.shared")) }
        table #database-nodes {
            thead { tr {
                th { (tr.t("cluster.node")) } th { (tr.t("cluster.address")) } th { (tr.t("cluster.version")) }
                th { (tr.t("cluster.started")) } th { (tr.t("cluster.last_heard")) } th { (tr.t("cluster.leased")) }
                th { (tr.t("cluster.state")) }
            } }
            tbody {
                @for n in nodes {
                    tr {
                        td { (n.peer.node) @if n.this { " (" (tr.t("cluster.this")) ")" } }
                        td { (n.peer.address.as_deref().unwrap_or("—")) }
                        td { (n.peer.version) }
                        td { (when(&n.peer.started_at)) }
                        td { (when(&n.peer.seen_at)) }
                        td { (n.peer.leased) }
                        td { @if n.live { (tr.t("cluster.live")) } @else { strong { (tr.t("cluster.silent")) } } }
                    }
                }
            }
        }
        p.small { (tr.t("cluster.shared_docs")) }
    };
    page(context, viewer, "/cluster", tr.t("nav.cluster"), body).await.into_response()
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

#[derive(Deserialize)]
struct NewNode {
    csrf: String,
    name: String,
    role: String,
}

async fn add_node(
    State(context): State<Context>,
    viewer: Viewer,
    Form(form): Form<NewNode>,
) -> Result<Response, UiError> {
    viewer.permit(&form.csrf, Need::Administrator)?;
    let tr = viewer.tr;
    let notice = match service::cluster::add_node(
        &context,
        &viewer.caller.actor,
        form.name.trim(),
        &form.role,
        service::cluster::CODE_LIFETIME,
        None,
    )
    .await
    {
        Ok(code) => ("ok", tr.f("cluster.code", &[("name", form.name.trim()), ("code", &code)])),
        Err(e) => ("error", service::described(&e).message),
    };
    answer(&context, &viewer, notice).await
}

async fn remove(
    State(context): State<Context>,
    viewer: Viewer,
    Path(name): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, UiError> {
    viewer.permit(&form.csrf, Need::Administrator)?;
    context.inner.app.remove_node(&viewer.caller.actor, &name).await?;
    answer(&context, &viewer, ("ok", viewer.tr.f("cluster.removed", &[("name", &name)]))).await
}

async fn promote(
    State(context): State<Context>,
    viewer: Viewer,
    Form(form): Form<CsrfForm>,
) -> Result<Response, UiError> {
    viewer.permit(&form.csrf, Need::Administrator)?;
    let notice = match service::cluster::promote(&context, &viewer.caller.actor).await {
        Ok(me) => ("ok", viewer.tr.f("cluster.promoted", &[("epoch", &me.epoch.to_string())])),
        Err(e) => ("error", service::described(&e).message),
    };
    answer(&context, &viewer, notice).await
}

async fn demote(
    State(context): State<Context>,
    viewer: Viewer,
    Form(form): Form<CsrfForm>,
) -> Result<Response, UiError> {
    viewer.permit(&form.csrf, Need::Administrator)?;
    let notice = match service::cluster::demote(&context, &viewer.caller.actor).await {
        Ok(me) => {
            ("ok", viewer.tr.f("cluster.demoted", &[("primary", me.primary_name.as_deref().unwrap_or_default())]))
        }
        Err(e) => ("error", service::described(&e).message),
    };
    answer(&context, &viewer, notice).await
}

/// A change that worked goes back to the page, which says so once; a refusal is shown with the page.
async fn answer(context: &Context, viewer: &Viewer, notice: flash::Notice) -> Result<Response, UiError> {
    match notice.0 {
        "ok" => Ok(flash::redirect(context, viewer, "/cluster", vec![notice])),
        _ => render(context, viewer, vec![notice]).await,
    }
}

//! `tidings cluster …`: this node in a cluster of primary, backup and traffic nodes.

use super::actor;
use crate::{cli::ClusterCommand, output::shown};
use anyhow::{Result, anyhow, bail};
use std::process::ExitCode;
use tidings_app::App;
use tidings_core::cluster::{joining_role, shown_age};
use tidings_server::http::wire;

pub async fn run(app: &App, command: ClusterCommand) -> Result<ExitCode> {
    match command {
        ClusterCommand::AddNode { name, role, expires, primary_name } => {
            let role = joining_role(&role)?;
            let code = app.add_node(&actor(), &name, role, expires, primary_name.as_deref()).await?;
            eprintln!(
                "Join code for {name} ({role}), valid for {}; on that node run:\n\n  tidings cluster join https://THIS-NODE:PORT CODE --advertise https://THAT-NODE:PORT\n",
                humantime::format_duration(expires)
            );
            say!("{code}");
        }
        ClusterCommand::Join { url, code, advertise } => {
            let accepted =
                tidings_cluster::client::join(app, &actor(), &url, &code, &advertise).await.map_err(|e| anyhow!(e))?;
            say!(
                "Joined {} as a {} (epoch {}). The configuration follows the primary's once this node's daemon runs.",
                shown(&accepted.primary),
                accepted.role,
                accepted.epoch
            );
        }
        ClusterCommand::Status { json } => {
            let membership = app.membership().await?;
            let last_hook = app.last_hook().await?;
            let shown_json = wire::Cluster::new(&membership, &[], app.read_only_reason().await?, last_hook.clone());
            if json {
                say!("{}", serde_json::to_string_pretty(&shown_json)?);
            } else {
                say!("node:    {}", shown(&membership.name));
                say!("role:    {}", membership.role);
                say!("epoch:   {}", membership.epoch);
                if membership.role.follows() {
                    say!(
                        "primary: {} ({})",
                        shown(membership.primary_name.as_deref().unwrap_or("unknown")),
                        shown(membership.primary_url.as_deref().unwrap_or_default())
                    );
                    let sync = match (membership.synced_revision, membership.synced_at) {
                        (Some(revision), Some(at)) => {
                            format!("revision {revision}, {} ago", shown_age((chrono::Utc::now() - at).num_seconds()))
                        }
                        _ => "not yet".to_owned(),
                    };
                    say!("synced:  {sync}");
                }
                if let Some(hook) = &last_hook {
                    say!("hook:    {}", shown(hook));
                }
            }
        }
        ClusterCommand::Nodes { json } => {
            let nodes = app.cluster_nodes().await?;
            if json {
                let shown_json: Vec<wire::ClusterNode> = nodes.iter().map(wire::ClusterNode::from).collect();
                say!("{}", serde_json::to_string_pretty(&shown_json)?);
            } else if nodes.is_empty() {
                say!("No other nodes.");
            } else {
                for node in &nodes {
                    let shown_node = wire::ClusterNode::from(node);
                    let ago = |at: chrono::DateTime<chrono::Utc>| shown_age((chrono::Utc::now() - at).num_seconds());
                    let mut contact = node
                        .last_contact_at
                        .map(|at| format!("last contact {} ago", ago(at)))
                        .unwrap_or_else(|| "no contact yet".into());
                    if let (Some(revision), Some(at)) = (node.synced_revision, node.synced_at) {
                        contact.push_str(&format!(", synced revision {revision} {} ago", ago(at)));
                    }
                    say!(
                        "{:<20} {:<8} {:<8} {:<10} {}  {}",
                        shown(&node.name),
                        node.role,
                        shown_node.state,
                        shown(node.version.as_deref().unwrap_or("-")),
                        shown(node.advertise.as_deref().unwrap_or("-")),
                        contact
                    );
                }
            }
        }
        ClusterCommand::Promote => {
            let me = app.promote(&actor()).await?;
            say!("This node is now the primary (epoch {}). Its daemon runs the promote hook.", me.epoch);
        }
        ClusterCommand::Leave => {
            app.leave(&actor()).await?;
            say!("This node is standalone again; its configuration is its own from now on.");
        }
        ClusterCommand::Demote => {
            let me = app.membership().await?;
            let Some((primary, health)) =
                tidings_cluster::watch::newer_primary(app, me.epoch, std::time::Duration::from_secs(5)).await
            else {
                bail!(
                    "no node reports a primary of an epoch above this one ({}): promote a backup first (tidings cluster promote on it)",
                    me.epoch
                );
            };
            app.follow(&actor(), &primary, health.epoch).await?;
            say!("This node now follows {} (epoch {}).", shown(&primary), health.epoch);
        }
        ClusterCommand::Remove { name } => {
            if !app.remove_node(&actor(), &name).await? {
                bail!("no node named {name:?}; `tidings cluster nodes` lists them");
            }
            say!("Removed {name}.");
        }
    }
    Ok(ExitCode::SUCCESS)
}

//! `tidings event …`: report events and read what became of them. Events recorded here are mailed by the
//! running daemon within its poll interval.

use super::actor;
use crate::cli::EventCommand;
use crate::output::shown;
use anyhow::{Result, anyhow, bail};
use serde_json::json;
use std::{collections::BTreeMap, process::ExitCode};
use tidings_app::{App, Error, notifications::mail_path_problem};
use tidings_core::notify::{self, EventKind};
use tidings_server::http::wire;
use tidings_store::EventRecord;

pub async fn run(app: &App, command: EventCommand) -> Result<ExitCode> {
    match command {
        EventCommand::Emit { kind, node, details } => {
            let details = details
                .iter()
                .map(|d| notify::parse_detail(d).map_err(|e| anyhow!(e)))
                .collect::<Result<BTreeMap<_, _>>>()?;
            let event = match app.emit_event(&actor(), &kind, node.as_deref(), details).await {
                Ok(event) => event,
                Err(Error::Invalid(errors)) => {
                    let lines: Vec<String> = errors.0.iter().map(|e| format!("{}: {}", e.field, e.message)).collect();
                    bail!("{}\nNothing was recorded.", lines.join("\n"));
                }
                Err(other) => return Err(other.into()),
            };
            say!("Recorded event {} ({} on {}).", event.id, event.kind, event.node);
            match mail_path_problem(&app.current().await?.config) {
                Some(problem) => {
                    say!("It is not mailed yet: {problem}. It will be once that is fixed.")
                }
                None if !app.data_dir().daemon_running() => {
                    say!("No daemon is running: it is mailed when `tidings serve` starts.")
                }
                None => say!("The daemon mails it to the admin contacts."),
            }
        }
        EventCommand::Kinds { json } => {
            if json {
                let kinds: Vec<_> = EventKind::ALL
                    .iter()
                    .map(|k| json!({ "kind": k, "title": k.title(), "severity": k.severity(), "source": k.source(), "summary": k.summary() }))
                    .collect();
                say!("{}", serde_json::to_string_pretty(&kinds)?);
            } else {
                for k in EventKind::ALL {
                    let own = if k.source() == notify::Source::Tidings { " (raised by Tidings)" } else { "" };
                    say!("{:<40} {:<8} {}: {}{own}", k.id(), k.severity().as_str(), k.title(), k.summary());
                }
            }
        }
        EventCommand::List { kind, limit, json } => {
            let kind = kind.map(|k| EventKind::parse(&k).map_err(|e| anyhow!(e))).transpose()?;
            let events = app.events(kind, limit, None).await?;
            if json {
                say!("{}", serde_json::to_string_pretty(&wire::all::<_, wire::Event>(&events))?);
            } else {
                print_events(&events);
                if let Some(problem) = mail_path_problem(&app.current().await?.config) {
                    say!("\nEvents cannot be mailed now: {problem}.");
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_events(events: &[EventRecord]) {
    if events.is_empty() {
        say!("No events.");
        return;
    }
    for e in events {
        let mail = match (e.state.as_str(), e.message_id, e.message_status) {
            ("mailed", Some(id), Some(status)) => format!("mailed as message {id} ({status})"),
            ("mailed", Some(id), None) => format!("mailed as message {id} (purged)"),
            ("counted", ..) => "counted, reported with the next mail".into(),
            ("recorded", ..) => "recorded, not mailed".into(),
            _ => "waiting to be mailed".into(),
        };
        let repeats = if e.repeats > 0 { format!(", reporting {} repeats", e.repeats) } else { String::new() };
        say!(
            "{:>6}  {}  {:<40} {:<20} {mail}{repeats}",
            e.id,
            e.received_at.format("%Y-%m-%d %H:%M:%S"),
            e.kind.id(),
            shown(&e.node)
        );
        for (k, v) in &e.details {
            say!("        {}: {}", shown(k), shown(v));
        }
    }
}

//! `tidings send` and `tidings queue …`: the outbox from the command line. Messages queued here are stored
//! durably at once; a running daemon delivers them within its queue poll interval.

use super::actor;
use crate::cli::{QueueCommand, SendArgs};
use crate::output::shown;
use anyhow::{Context, Result, anyhow, bail};
use std::{
    io::{IsTerminal, Read},
    process::ExitCode,
};
use tidings_app::outbox::RetryOutcome;
use tidings_app::{App, Error, outbox::Submission};
use tidings_core::{
    message::NewMessage,
    outbox::{Status, reply::Scope},
};
use tidings_server::http::wire;
use tidings_store::MessageSummary;

pub async fn send(app: &App, args: SendArgs) -> Result<ExitCode> {
    let text = match args.body {
        Some(body) => body,
        None => {
            if std::io::stdin().is_terminal() {
                eprintln!("Type the message, then Ctrl-D on a line of its own:");
            }
            let mut body = String::new();
            std::io::stdin().read_to_string(&mut body).context("cannot read the body from standard input")?;
            body
        }
    };
    let html = args.html_file.map(|path| super::read_file(&path, tidings_app::files::TEXT_LIMIT)).transpose()?;
    let message = NewMessage { to: args.to, cc: args.cc, bcc: args.bcc, subject: args.subject, text, html };
    match app.submit(&actor(), Submission::Structured(message)).await {
        Ok(accepted) => {
            say!("Queued message {} (Message-ID <{}>)", accepted.id, accepted.message_id);
            Ok(ExitCode::SUCCESS)
        }
        Err(Error::Invalid(errors)) => bail!(
            "{}\nNothing was queued.",
            errors.to_string().replace("the email configuration is not valid", "the message is not valid")
        ),
        Err(e) => Err(e.into()),
    }
}

pub async fn run(app: &App, command: QueueCommand) -> Result<ExitCode> {
    match command {
        QueueCommand::List { status, limit, json } => {
            let status = status.map(|s| s.parse::<Status>().map_err(|e| anyhow!(e))).transpose()?;
            let messages = app.messages(status, limit, None).await?;
            if json {
                say!("{}", serde_json::to_string_pretty(&wire::all::<_, wire::MessageSummary>(&messages))?);
            } else {
                for m in &messages {
                    print_summary(m);
                }
                if messages.is_empty() {
                    say!("No messages{}.", status.map(|s| format!(" with status {s}")).unwrap_or_default());
                }
            }
        }
        QueueCommand::Show { id, json } => {
            let detail = app.message(id).await?.ok_or_else(|| anyhow!("no message {id}"))?;
            if json {
                say!("{}", serde_json::to_string_pretty(&wire::MessageDetail::from(&detail))?);
                return Ok(ExitCode::SUCCESS);
            }
            let m = &detail.summary;
            say!("Message {} ({})", m.id, m.status);
            say!("  from:        {}", m.mail_from);
            for r in &m.recipients {
                say!(
                    "  to:          {} [{:?}]{}",
                    r.address,
                    r.state,
                    r.reply.as_deref().map(|x| format!(" {}", shown(x))).unwrap_or_default()
                );
            }
            say!("  subject:     {}", shown(m.subject.as_deref().unwrap_or("")));
            say!("  message-id:  <{}>", detail.message_id.as_deref().unwrap_or(""));
            say!("  origin:      {}", m.origin);
            say!("  accepted:    {}", m.created_at.format("%Y-%m-%d %H:%M:%S UTC"));
            if let Some(next) = m.next_attempt_at.filter(|_| matches!(m.status, Status::Queued | Status::Deferred)) {
                say!("  next try:    {}", next.format("%Y-%m-%d %H:%M:%S UTC"));
            }
            say!("  attempts:    {}", m.attempts);
            if let Some(held) = &detail.waiting {
                let what = if held.scope == Scope::Relay { "the relay is down" } else { "its identity is down" };
                say!(
                    "  waiting:     {what} since {} ({}); next probe {}",
                    held.down.since.format("%Y-%m-%d %H:%M:%S UTC"),
                    shown(&held.down.error),
                    held.down.retry_at.format("%Y-%m-%d %H:%M:%S UTC")
                );
                if let Some(why) = &held.down.explanation {
                    say!("      what to do: {why}");
                }
            }
            if let Some(budget) = &detail.budget
                && let Some(until) = budget.waiting_until
            {
                say!(
                    "  waiting:     its identity sent to {} recipients in 24 hours, its budget is {} \
                     (delivery.identity_recipients_per_day); it goes at {}",
                    budget.last_day,
                    budget.recipients_per_day.map_or_else(|| "none".to_owned(), |b| b.to_string()),
                    until.format("%Y-%m-%d %H:%M:%S UTC")
                );
            }
            for a in &detail.attempt_log {
                let code = a
                    .reply_code
                    .map(|c| format!("{c} {}", a.enhanced_code.as_deref().unwrap_or("")))
                    .unwrap_or_default();
                let stage = a.stage.map(|s| format!(" at {}", s.as_str())).unwrap_or_default();
                say!(
                    "  #{} {} {}{stage}: {} {}",
                    a.number,
                    a.started_at.format("%Y-%m-%d %H:%M:%S"),
                    a.result,
                    code.trim(),
                    shown(&a.text)
                );
                if let Some(why) = &a.explanation {
                    say!("      what to do: {why}");
                }
                for note in &a.notes {
                    say!("      note: {note}");
                }
            }
        }
        QueueCommand::Retry { id } => match app.retry_message(&actor(), id).await? {
            RetryOutcome::Requeued => say!("Message {id} is queued again."),
            RetryOutcome::NotFound => bail!("no message {id}"),
            RetryOutcome::NotRetryable(status) => {
                bail!("message {id} is {status}; only failed or deferred messages can be retried")
            }
        },
        QueueCommand::Purge { status } => {
            let status = status.parse::<Status>().map_err(|e| anyhow!(e))?;
            let purged = app.purge(&actor(), status).await?;
            say!("Purged {purged} {status} message(s).");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_summary(m: &MessageSummary) {
    let to: Vec<&str> = m.recipients.iter().map(|r| r.address.as_str()).collect();
    say!(
        "{:>6}  {:<9} {}  {:<30} {}{}",
        m.id,
        m.status.as_str(),
        m.created_at.format("%Y-%m-%d %H:%M"),
        to.join(","),
        shown(m.subject.as_deref().unwrap_or("")),
        m.last_error.as_deref().map(|e| format!("  [{}]", shown(e))).unwrap_or_default()
    );
}

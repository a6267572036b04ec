//! `tidings doctor [--json]`: the doctor, run from the command line with the relay account's tokens; its report
//! is kept as the last one (`GET /api/v1/doctor`).

use anyhow::{Result, anyhow};
use std::{process::ExitCode, sync::Arc};
use tidings_app::App;
use tidings_delivery::{doctor, engine::relay_settings};

pub async fn run(app: &App, json: bool, send_to: Option<String>) -> Result<ExitCode> {
    if let Some(to) = &send_to {
        tidings_core::address::validate(to).map_err(|e| anyhow!("--send-to: {e}"))?;
    }
    let current = Arc::new(app.current().await?);
    let tokens = Arc::new(tidings_oauth::source::standalone(app, current.clone()));
    let settings = relay_settings(app, &current, tokens).await.map_err(|e| anyhow!("{}", e.reason()))?;
    let sender = current.config.sender.clone().unwrap_or_default();
    let report = doctor::examine(&settings, &sender, send_to.as_deref()).await;
    app.keep_doctor_report(&serde_json::to_value(&report)?).await?;
    if json {
        say!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for step in &report.steps {
            say!(
                "{:<10} {:<6} {:>6} ms  {}",
                step.step,
                if step.ok { "ok" } else { "FAILED" },
                step.took_ms,
                step.seen.first().map_or("", String::as_str)
            );
            for line in step.seen.iter().skip(1) {
                say!("{:<32}{line}", "");
            }
            if let Some(explanation) = &step.explanation {
                say!("\n  What to do: {explanation}");
            }
        }
        if report.ok {
            say!(
                "\nEvery step passed; {}",
                if send_to.is_some() { "the test message was sent." } else { "nothing was sent." }
            );
        }
    }
    Ok(if report.ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

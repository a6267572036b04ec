//! `tidings expiries [--json]`: the credentials in use that end on a known date, soonest first.

use anyhow::Result;
use std::process::ExitCode;
use tidings_app::App;

pub async fn run(app: &App, json: bool) -> Result<ExitCode> {
    let config = app.current().await?.config;
    let lifetimes = app.lifetimes(&config).await?;
    let now = chrono::Utc::now();
    if json {
        let all: Vec<serde_json::Value> = lifetimes.iter().map(|l| l.to_json(now)).collect();
        say!("{}", serde_json::to_string_pretty(&serde_json::json!({ "expiries": all }))?);
        return Ok(ExitCode::SUCCESS);
    }
    if lifetimes.is_empty() {
        say!("No credential in use ends on a known date (see docs/oauth.md, \"Credential lifetimes\").");
    }
    for lifetime in &lifetimes {
        let left = (lifetime.ends_at - now).num_days();
        let when = if left < 0 { format!("ended {} days ago", -left) } else { format!("in {left} days") };
        let unused =
            lifetime.used_at.map(|at| format!(", if unused: last used {}", at.format("%Y-%m-%d"))).unwrap_or_default();
        say!(
            "{:<28} {}  ({when}{unused})  {}",
            lifetime.credential,
            lifetime.ends_at.format("%Y-%m-%d"),
            lifetime.subject
        );
    }
    Ok(ExitCode::SUCCESS)
}

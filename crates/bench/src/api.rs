//! `tidings-bench --scenario api`: the daemon's memory (`VmHWM`, reset before each step) when it sends through
//! Microsoft Graph's `sendMail` instead of SMTP (`delivery.transport=microsoft_graph`), against the fake of
//! `tests/peers/mail_api_fake.py`: idle; a burst of 4 KB messages from 40 gateway sessions with AUTH PLAIN, until
//! every one is accepted by the API; one message of 2.5 MB through the REST API (base64 makes it a 3.4 MB
//! request, under Graph's 4 MB); idle again. Targets as the SMTP path's: the burst at most 64 MB, the large
//! message at most 64 MB + twice its size, idle at most 12 MB. Exchange's pacing per mailbox is lifted (it would
//! measure the pacing, not Tidings).

use super::{
    Args, DEVICE, Process, delivered, free_port, readyz, reset_peak, rss_kib, serve, status_kib, tidings,
    tidings_with_input, until_delivered,
};
use crate::memory::{Step, burst, idle, large_body, print_steps};
use anyhow::{Context, Result, bail};
use serde_json::json;
use std::{
    io::BufRead,
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};

/// The access token the fake accepts (given to Tidings as `oauth.static_access_token`).
const TOKEN: &str = "bench-graph-access-token";
const MAILBOX: &str = "bench@contoso.com";

/// Starts the fake of Graph and Gmail; its port. Its lines (one per message accepted) are drained.
fn start_fake(dir: &Path) -> Result<(Process, u16)> {
    let tokens = dir.join("access-tokens");
    std::fs::write(&tokens, TOKEN)?;
    let mut child = Command::new(".venv/bin/python")
        .arg("tests/peers/mail_api_fake.py")
        .arg("--access-tokens")
        .arg(&tokens)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start tests/peers/mail_api_fake.py (scripts/bench makes .venv)")?;
    let mut lines = std::io::BufReader::new(child.stdout.take().context("no stdout")?).lines();
    let ready = lines.next().context("the fake exited before it was ready")??;
    let port = ready.strip_prefix("READY ").context("the fake did not say READY")?.trim().parse()?;
    std::thread::spawn(move || lines.map_while(std::result::Result::ok).for_each(drop));
    Ok((Process(child), port))
}

pub async fn run(args: &Args) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let (_fake, api_port) = start_fake(dir.path())?;
    let gateway_port = free_port()?;
    let size = 2_500_000;
    tidings(args, &data, &["init"])?;
    tidings_with_input(args, &data, &["config", "set-secret", "oauth.static_access_token"], TOKEN)?;
    tidings(
        args,
        &data,
        &[
            "config",
            "set",
            &format!("sender={MAILBOX}"),
            "oauth.provider=microsoft",
            "oauth.tenant=contoso.com",
            "oauth.client_id=6731de76-14a6-49ae-97bc-6eba6914391e",
            "oauth.token_endpoint=http://127.0.0.1:9/token",
            "delivery.transport=microsoft_graph",
            &format!("graph.endpoint=http://127.0.0.1:{api_port}"),
            &format!("delivery.max_message_size={}", size + 1024 * 1024),
            // Exchange's limits per mailbox (30 messages a minute) would pace the burst: lifted, to measure Tidings.
            "delivery.identity_messages_per_minute=1000000",
            "delivery.identity_recipients_per_day=100000000",
            &format!("gateway.listen=127.0.0.1:{gateway_port}"),
            "gateway.allow_plaintext_auth=true",
            "gateway.max_connections_per_address=64",
            "gateway.rate_limit=100000",
        ],
    )?;
    let token = tidings(args, &data, &["api-token", "create", "--name", "bench", "--role", "network_administrator"])?
        .trim()
        .to_owned();
    tidings_with_input(args, &data, &["device", "add", DEVICE.0], DEVICE.1)?;
    let port = free_port()?;
    let base = format!("http://127.0.0.1:{port}");
    let daemon = serve(args, &data, port, Some(gateway_port), &[]).await?;
    let pid = daemon.0.id();
    let client = reqwest::Client::new();
    let mut steps = vec![idle(pid, "idle, 3 s after start", Duration::from_secs(3)).await?];

    steps.push(burst(&client, &base, pid, gateway_port, args.messages, " sent on through Graph").await?);

    // One large message through the REST API, sent as one sendMail request.
    let count = delivered(&readyz(&client, &base).await?);
    reset_peak(pid)?;
    let before = rss_kib(pid)?;
    let raw = format!("From: {MAILBOX}\r\nTo: sink@example.com\r\nSubject: a scan\r\n\r\n{}", large_body(size));
    let body = json!({"raw": raw, "envelope": {"mail_from": MAILBOX, "rcpt_to": ["sink@example.com"]}});
    drop(raw);
    let response = client.post(format!("{base}/api/v1/messages")).bearer_auth(&token).json(&body).send().await?;
    if response.status() != 202 {
        bail!("the API refused the message: {} {}", response.status(), response.text().await?);
    }
    drop(body);
    until_delivered(&client, &base, count + 1).await?;
    let peak = status_kib(pid, "VmHWM:")?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    steps.push(Step {
        name: format!(
            "one {:.1} MB message through the REST API, one Graph request (after: 5 s later)",
            size as f64 / 1e6
        ),
        before,
        peak,
        after: rss_kib(pid)?,
        target: Some(64 * 1024 + 2 * size as u64 / 1024),
    });
    steps.push(idle(pid, "idle again, 45 s later", Duration::from_secs(45)).await?);
    print_steps(pid, &steps)
}

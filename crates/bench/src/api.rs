//! `tidings-bench --scenario api`: the daemon's memory (`VmHWM`, reset before each step) when it sends through
//! Microsoft Graph's `sendMail` instead of SMTP (`delivery.transport=microsoft_graph`), against the fake of
//! `tests/peers/mail_api_fake.py`: idle; a burst of 4 KB messages from 40 gateway sessions with AUTH PLAIN, until
//! every one is accepted by the API; one message of 2.5 MB through the REST API (base64 makes it a 3.4 MB
//! request, under Graph's 4 MB); idle again. Targets as the SMTP path's: the burst at most 64 MB, the large
//! message at most 64 MB + twice its size, idle at most 12 MB. Exchange's pacing per mailbox is lifted (it would
//! measure the pacing, not Tidings).

use super::{Args, DEVICE, Process, free_port, python_peer, serve, tidings, tidings_with_input};
use crate::memory::{burst, idle, large_step, print_steps, through_api};
use anyhow::Result;
use std::{path::Path, time::Duration};

/// The access token the fake accepts (given to Tidings as `oauth.static_access_token`).
const TOKEN: &str = "bench-graph-access-token";
const MAILBOX: &str = "bench@contoso.com";

/// Starts the fake of Graph and Gmail; its port.
fn start_fake(dir: &Path) -> Result<(Process, u16)> {
    let tokens = dir.join("access-tokens");
    std::fs::write(&tokens, TOKEN)?;
    python_peer("tests/peers/mail_api_fake.py", &["--access-tokens".as_ref(), tokens.as_os_str()], || {})
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
    let name =
        format!("one {:.1} MB message through the REST API, one Graph request (after: 5 s later)", size as f64 / 1e6);
    steps.push(large_step(&client, &base, pid, name, size, through_api(&client, &base, &token, MAILBOX, size)).await?);
    steps.push(idle(pid, "idle again, 45 s later", Duration::from_secs(45)).await?);
    print_steps(pid, &steps)
}

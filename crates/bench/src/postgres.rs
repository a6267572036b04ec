//! `tidings-bench --scenario postgres`: two daemons on one throw-away PostgreSQL database (issue 21).
//!
//! 1. API acceptance through both nodes at once (`--concurrency` clients, alternating nodes), no relay yet:
//!    each `202` follows a PostgreSQL commit with `synchronous_commit` on. Target: at least 2,000 a second.
//! 2. The backlog delivered by both nodes to the STARTTLS + XOAUTH2 relay of the realistic scenario.
//! 3. The gateway: 10 sessions with AUTH PLAIN through one node against the same load straight to the relay
//!    (STARTTLS and XOAUTH2 from each session), in alternating rounds. Target: at least 0.5× the direct rate.
//!
//! Each node's peak memory (`VmHWM`, reset before each step) and resident memory after it.

use super::{Args, DEVICE, free_port, readyz, reset_peak, rss_kib, serve, status_kib, tidings, tidings_with_input};
use crate::realistic::{MAILBOX, TOKEN, Target, round, start_relay, tls_connector};
use anyhow::{Result, bail};
use serde_json::json;
use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

pub async fn run(args: &Args) -> Result<()> {
    let server = tidings_testkit::Postgres::start();
    let url = server.database("bench");
    let dir = tempfile::tempdir()?;
    let relay = start_relay(dir.path())?;
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let db = ["--database-url", url.as_str()];
    let with_db = |rest: &[&'static str]| -> Vec<&str> { db.iter().copied().chain(rest.iter().copied()).collect() };
    tidings(args, &a, &with_db(&["init"]))?;
    let key = a.join("secret.key");
    let key = key.to_str().unwrap_or_default();
    tidings(args, &b, &[db[0], db[1], "init", "--join-key", key])?;
    let sender = format!("sender={MAILBOX}");
    tidings(args, &a, &[db[0], db[1], "config", "set", &sender, "delivery.timeout=30s"])?;
    let token = tidings(args, &a, &with_db(&["api-token", "create", "--name", "bench", "--role", "administrator"]))?
        .trim()
        .to_owned();
    let (port_a, port_b) = (free_port()?, free_port()?);
    let node_a = serve(args, &a, port_a, None, &[db[0], db[1], "--node-id", "a"]).await?;
    let node_b = serve(args, &b, port_b, None, &[db[0], db[1], "--node-id", "b"]).await?;
    let (pid_a, pid_b) = (node_a.0.id(), node_b.0.id());
    let bases = [format!("http://127.0.0.1:{port_a}"), format!("http://127.0.0.1:{port_b}")];
    let client = reqwest::Client::builder().pool_max_idle_per_host(args.concurrency).build()?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    println!("| step | result | node a: peak / after | node b: peak / after |");
    println!("| --- | --- | --- | --- |");
    let memory = |pid: u32| -> Result<String> {
        Ok(format!("{:.1} / {:.1} MB", status_kib(pid, "VmHWM:")? as f64 / 1024.0, rss_kib(pid)? as f64 / 1024.0))
    };
    println!("| idle | | {} | {} |", memory(pid_a)?, memory(pid_b)?);

    // 1. Acceptance, both nodes at once.
    reset_peak(pid_a)?;
    reset_peak(pid_b)?;
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..args.concurrency {
        let (client, base, token, next, total) =
            (client.clone(), bases[c % 2].clone(), token.clone(), next.clone(), args.messages);
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    return Ok::<_, anyhow::Error>(());
                }
                let body = json!({"to": ["sink@example.com"], "subject": format!("pg {i}"), "text": "x".repeat(3000)});
                let response =
                    client.post(format!("{base}/api/v1/messages")).bearer_auth(&token).json(&body).send().await?;
                if response.status() != 202 {
                    bail!("message {i}: {} {}", response.status(), response.text().await?);
                }
            }
        });
    }
    for result in tasks.join_all().await {
        result?;
    }
    let accepted = args.messages as f64 / started.elapsed().as_secs_f64();
    println!(
        "| API acceptance, {} messages through both nodes, {} clients | **{accepted:.0} per second** (target ≥ 2,000) | {} | {} |",
        args.messages,
        args.concurrency,
        memory(pid_a)?,
        memory(pid_b)?
    );

    // 2. The backlog, delivered by both nodes to the relay (the token first, so that no message meets the relay
    // without it).
    tidings_with_input(args, &a, &[db[0], db[1], "config", "set-secret", "oauth.static_access_token"], TOKEN)?;
    reset_peak(pid_a)?;
    reset_peak(pid_b)?;
    let before = relay.received.load(Ordering::Relaxed);
    let started = Instant::now();
    let gateway_port = free_port()?;
    tidings(
        args,
        &a,
        &[
            db[0],
            db[1],
            "config",
            "set",
            "smtp.host=127.0.0.1",
            &format!("smtp.port={}", relay.port),
            "smtp.encryption=starttls",
            &format!("tls.ca_file={}", relay.ca.display()),
            "smtp.auth=oauth2",
            &format!("oauth.account={MAILBOX}"),
            "oauth.client_id=bench",
            "oauth.token_endpoint=http://127.0.0.1:9/token",
            &format!("delivery.connections={}", args.connections),
            &format!("gateway.listen=127.0.0.1:{gateway_port}"),
            "gateway.allow_plaintext_auth=true",
            "gateway.max_connections_per_address=64",
            "gateway.rate_limit=100000",
        ],
    )?;
    tidings_with_input(args, &a, &[db[0], db[1], "device", "add", DEVICE.0], DEVICE.1)?;
    while relay.received.load(Ordering::Relaxed) < before + args.messages {
        if started.elapsed() > Duration::from_secs(900) {
            bail!("the relay did not receive the backlog within 15 minutes: {}", readyz(&client, &bases[0]).await?);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let delivered = args.messages as f64 / started.elapsed().as_secs_f64();
    println!(
        "| the backlog delivered by both nodes (STARTTLS + XOAUTH2, {} connections each) | {delivered:.0} per second | {} | {} |",
        args.connections,
        memory(pid_a)?,
        memory(pid_b)?
    );

    // 3. The gateway through node a (node b cannot take the same port on this one machine), against the limit.
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", gateway_port)).is_err() {
        if started.elapsed() > Duration::from_secs(30) {
            bail!("the gateway did not listen");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let direct = Target::Relay { port: relay.port, tls: tls_connector(&relay.ca)? };
    let through = Target::Gateway(gateway_port);
    round(direct.clone(), &relay, 10, 100).await?;
    round(through.clone(), &relay, 10, 100).await?;
    let burst = args.messages / 2;
    let mut shares = Vec::new();
    for r in 1..=args.rounds {
        reset_peak(pid_a)?;
        reset_peak(pid_b)?;
        let limit = round(direct.clone(), &relay, 10, burst).await?;
        let via = round(through.clone(), &relay, 10, burst).await?;
        let share = limit.as_secs_f64() / via.as_secs_f64();
        shares.push(share);
        let rate = |d: Duration| burst as f64 / d.as_secs_f64();
        println!(
            "| gateway round {r}: {burst} messages, 10 sessions | straight {:.0}/s, through node a {:.0}/s: {share:.2}× | {} | {} |",
            rate(limit),
            rate(via),
            memory(pid_a)?,
            memory(pid_b)?
        );
    }
    shares.sort_by(f64::total_cmp);
    println!(
        "| gateway, median of {} rounds | **{:.2}×** (target ≥ 0.5×) | | |",
        args.rounds,
        shares[shares.len() / 2]
    );
    drop((node_a, node_b));
    Ok(())
}

//! `tidings-bench --scenario memory`: the daemon's memory as the kernel sees it (`VmHWM`, reset before each step,
//! and `VmRSS` after it), step by step: idle; one large message (25 MB by default) through the gateway and then
//! through the API, each until delivered to `smtp-sink`; the 40-session AUTH PLAIN burst of 4 KB messages; and
//! idle again. Targets (issue 18): a large message at most 64 MB + twice its size, the burst at most 64 MB, idle
//! at most 12 MB.

use super::{
    Args, DEVICE, Process, auth_session, delivered, expect, free_port, readyz, reset_peak, rss_kib, serve, status_kib,
    tidings, tidings_with_input, until_delivered,
};
use anyhow::{Result, bail};
use serde_json::json;
use std::{
    process::{Command, Stdio},
    time::Duration,
};
use tokio::io::AsyncWriteExt;

/// One step's figures, in KiB.
pub(crate) struct Step {
    pub(crate) name: String,
    pub(crate) before: u64,
    pub(crate) peak: u64,
    pub(crate) after: u64,
    /// What the step may peak at, in KiB.
    pub(crate) target: Option<u64>,
}

/// A message body of `size` octets in lines of 76 characters, as a base64 attachment is.
pub(crate) fn large_body(size: usize) -> String {
    let line = format!("{}\r\n", "Q".repeat(76));
    line.repeat(size / line.len() + 1)
}

/// Sends one message of `size` octets through the gateway (no authentication: the bench's address is allowed).
async fn through_gateway(port: u16, size: usize) -> Result<()> {
    let mut stream = tokio::io::BufReader::new(tokio::net::TcpStream::connect(("127.0.0.1", port)).await?);
    expect(&mut stream, "220").await?;
    stream.get_mut().write_all(b"EHLO bench\r\n").await?;
    expect(&mut stream, "250").await?;
    stream.get_mut().write_all(b"MAIL FROM:<scanner@example.com>\r\nRCPT TO:<sink@example.com>\r\nDATA\r\n").await?;
    for code in ["250", "250", "354"] {
        expect(&mut stream, code).await?;
    }
    let head = "From: scanner@example.com\r\nTo: sink@example.com\r\nSubject: a scan\r\n\r\n";
    // Written in pieces, as a device sends it, not as one buffer of the bench's.
    stream.get_mut().write_all(head.as_bytes()).await?;
    let body = large_body(size);
    for chunk in body.as_bytes().chunks(64 * 1024) {
        stream.get_mut().write_all(chunk).await?;
    }
    drop(body);
    stream.get_mut().write_all(b".\r\n").await?;
    expect(&mut stream, "250").await?;
    stream.get_mut().write_all(b"QUIT\r\n").await?;
    Ok(())
}

/// One message of `size` octets from `from` through the REST API (`raw` in JSON).
pub(crate) async fn through_api(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    from: &str,
    size: usize,
) -> Result<()> {
    let raw = format!("From: {from}\r\nTo: sink@example.com\r\nSubject: a scan\r\n\r\n{}", large_body(size));
    let body = json!({"raw": raw, "envelope": {"mail_from": from, "rcpt_to": ["sink@example.com"]}});
    drop(raw);
    let response = client.post(format!("{base}/api/v1/messages")).bearer_auth(token).json(&body).send().await?;
    if response.status() != 202 {
        bail!("the API refused the message: {} {}", response.status(), response.text().await?);
    }
    Ok(())
}

/// One large message of `size` octets sent by `work`, until delivered: at most 64 MB + twice its size.
pub(crate) async fn large_step(
    client: &reqwest::Client,
    base: &str,
    pid: u32,
    name: String,
    size: usize,
    work: impl Future<Output = Result<()>>,
) -> Result<Step> {
    let count = delivered(&readyz(client, base).await?);
    reset_peak(pid)?;
    let before = rss_kib(pid)?;
    work.await?;
    until_delivered(client, base, count + 1).await?;
    let peak = status_kib(pid, "VmHWM:")?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    Ok(Step { name, before, peak, after: rss_kib(pid)?, target: Some(64 * 1024 + 2 * size as u64 / 1024) })
}

/// The 40-session AUTH PLAIN burst of 4 KB messages through the gateway, until every one is delivered: at most
/// 64 MB. `how` says where they go on to, for the step's name.
pub(crate) async fn burst(
    client: &reqwest::Client,
    base: &str,
    pid: u32,
    gateway_port: u16,
    messages: usize,
    how: &str,
) -> Result<Step> {
    const SESSIONS: usize = 40;
    let messages = messages / SESSIONS * SESSIONS;
    let count = delivered(&readyz(client, base).await?);
    reset_peak(pid)?;
    let before = rss_kib(pid)?;
    let started = std::time::Instant::now();
    let mut sessions = tokio::task::JoinSet::new();
    for _ in 0..SESSIONS {
        sessions.spawn(auth_session(gateway_port, messages / SESSIONS));
    }
    for result in sessions.join_all().await {
        result?;
    }
    until_delivered(client, base, count + messages).await?;
    let rate = messages as f64 / started.elapsed().as_secs_f64();
    let peak = status_kib(pid, "VmHWM:")?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    Ok(Step {
        name: format!(
            "{SESSIONS} gateway sessions with AUTH PLAIN, {messages} messages of 4 KB{how} ({rate:.0} per second; after: 5 s later)"
        ),
        before,
        peak,
        after: rss_kib(pid)?,
        target: Some(64 * 1024),
    })
}

/// The daemon left alone for `wait`, its peak started over: at most 12 MB.
pub(crate) async fn idle(pid: u32, name: &str, wait: Duration) -> Result<Step> {
    reset_peak(pid)?;
    tokio::time::sleep(wait).await;
    let resident = rss_kib(pid)?;
    Ok(Step {
        name: name.into(),
        before: resident,
        peak: status_kib(pid, "VmHWM:")?,
        after: resident,
        target: Some(12 * 1024),
    })
}

pub async fn run(args: &Args) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let sink_port = free_port()?;
    let _sink = Process(
        Command::new(&args.smtp_sink)
            .args(["-u", "nobody", &format!("127.0.0.1:{sink_port}"), "100"])
            .stdout(Stdio::null())
            .spawn()?,
    );
    let gateway_port = free_port()?;
    let size = args.size;
    tidings(args, &data, &["init"])?;
    tidings(
        args,
        &data,
        &[
            "config",
            "set",
            "sender=scanner@example.com",
            "smtp.host=127.0.0.1",
            &format!("smtp.port={sink_port}"),
            "smtp.encryption=none",
            &format!("delivery.max_message_size={}", size + 1024 * 1024),
            &format!("gateway.listen=127.0.0.1:{gateway_port}"),
            "gateway.allowed_networks=127.0.0.1/32",
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
    let mb = size as f64 / 1e6;

    steps.push(
        large_step(
            &client,
            &base,
            pid,
            format!("one {mb:.0} MB message through the gateway, until delivered (after: 5 s later)"),
            size,
            through_gateway(gateway_port, size),
        )
        .await?,
    );
    steps.push(
        large_step(
            &client,
            &base,
            pid,
            format!("one {mb:.0} MB message through the API (raw), until delivered (after: 5 s later)"),
            size,
            through_api(&client, &base, &token, "scanner@example.com", size),
        )
        .await?,
    );
    steps.push(burst(&client, &base, pid, gateway_port, args.messages, "").await?);
    steps.push(idle(pid, "idle again, 45 s later", Duration::from_secs(45)).await?);

    print_steps(pid, &steps)
}

/// The steps as a table, with what the last idle figure is made of.
pub(crate) fn print_steps(pid: u32, steps: &[Step]) -> Result<()> {
    let anon = status_kib(pid, "RssAnon:")?;
    let file = status_kib(pid, "RssFile:")?;
    let mib = |k: u64| k as f64 / 1024.0;
    println!("| step | VmRSS before | VmHWM during | VmRSS after | target (peak) |");
    println!("| --- | --- | --- | --- | --- |");
    for s in steps {
        let target = match s.target {
            Some(t) => format!("{:.1} MB: {}", mib(t), if s.peak <= t { "met" } else { "**missed**" }),
            None => String::new(),
        };
        println!(
            "| {} | {:.1} MB | {:.1} MB | {:.1} MB | {target} |",
            s.name,
            mib(s.before),
            mib(s.peak),
            mib(s.after)
        );
    }
    println!(
        "| of the last idle figure: anonymous (heap, stacks, caches) / the binary's pages | {:.1} / {:.1} MB | | | |",
        mib(anon),
        mib(file)
    );
    Ok(())
}

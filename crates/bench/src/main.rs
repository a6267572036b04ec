//! Measures Tidings as an operator would run it (the release binary, its HTTP API, a real SMTP sink):
//!
//! 1. idle memory of a freshly started daemon;
//! 2. messages accepted per second through `POST /api/v1/messages`, each durably committed before its 202,
//!    with no relay configured so that acceptance is measured alone;
//! 3. messages delivered per second once the relay (Postfix's `smtp-sink`) is configured, draining that
//!    backlog;
//! 4. the SMTP submission gateway: Postfix's `smtp-source` (10 sessions, 4 KB messages) through Tidings, each
//!    message durable before its `250`, against the same load sent straight to `smtp-sink` (the limit) and
//!    through a Postfix relay (`scripts/postfix-relay`);
//! 5. the gateway with AUTH PLAIN: 40 sessions at once, each authenticating as a device account, together
//!    sending as many messages as the API step, with the daemon's peak memory (`VmHWM`, reset before the step)
//!    and resident memory after it.
//!
//! `scripts/bench` builds everything in release mode, extracts Postfix's tools and runs this. Results are printed
//! as a Markdown table for docs/BENCHMARKS.md.

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

mod api;
mod cluster;
mod memory;
mod postgres;
mod realistic;

struct Args {
    /// `throughput` (the default: the steps above), `memory` ([`memory`]), `realistic` ([`realistic`]),
    /// `cluster` ([`cluster`]), `postgres` ([`postgres`]) or `api` ([`api`]).
    scenario: String,
    /// The large message's size in the memory scenario, in octets.
    size: usize,
    tidings: PathBuf,
    smtp_sink: PathBuf,
    messages: usize,
    concurrency: usize,
    connections: u32,
    rounds: usize,
}

fn args() -> Result<Args> {
    let mut args = Args {
        scenario: "throughput".into(),
        size: 25_000_000,
        tidings: PathBuf::from("target/release/tidings"),
        smtp_sink: PathBuf::from("smtp-sink"),
        messages: 20_000,
        concurrency: 64,
        connections: 8,
        rounds: 3,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--scenario" => args.scenario = value,
            "--size" => args.size = value.parse()?,
            "--tidings" => args.tidings = value.into(),
            "--smtp-sink" => args.smtp_sink = value.into(),
            "--messages" => args.messages = value.parse()?,
            "--concurrency" => args.concurrency = value.parse()?,
            "--connections" => args.connections = value.parse()?,
            "--rounds" => args.rounds = value.parse::<usize>()?.max(1),
            other => bail!(
                "unknown flag {other}; expected --scenario throughput|memory|realistic|cluster|postgres, --tidings, --smtp-sink, --messages, \
                 --concurrency, --connections, --rounds, --size"
            ),
        }
    }
    Ok(args)
}

/// A child process killed when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a Python test peer (`tests/peers/…`, in `.venv`) that says `READY <port>` first and then a line per
/// message it takes; its port, and the rest of its lines, handed to `each_line` on a thread of their own.
fn python_peer(
    script: &str,
    args: &[&std::ffi::OsStr],
    each_line: impl Fn() + Send + 'static,
) -> Result<(Process, u16)> {
    use std::io::BufRead;
    let mut child = Command::new(".venv/bin/python")
        .arg(script)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot start {script} (scripts/bench makes .venv)"))?;
    let mut lines = std::io::BufReader::new(child.stdout.take().context("no stdout")?).lines();
    let ready = lines.next().with_context(|| format!("{script} exited before it was ready"))??;
    let port = ready.strip_prefix("READY ").with_context(|| format!("{script} did not say READY"))?.trim().parse()?;
    std::thread::spawn(move || lines.map_while(std::result::Result::ok).for_each(|_| each_line()));
    Ok((Process(child), port))
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn tidings(args: &Args, dir: &Path, rest: &[&str]) -> Result<String> {
    let out = Command::new(&args.tidings).arg("--data-dir").arg(dir).args(rest).output()?;
    if !out.status.success() {
        bail!("tidings {rest:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> Result<u64> {
    status_kib(pid, "VmRSS:")
}

/// A memory figure of `/proc/PID/status` (`VmRSS:`, `VmHWM:`), in KiB.
fn status_kib(pid: u32, field: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status.lines().find(|l| l.starts_with(field)).with_context(|| format!("no {field}"))?;
    Ok(line.split_whitespace().nth(1).with_context(|| format!("malformed {field}"))?.parse()?)
}

/// Starts the peak (`VmHWM`) over from the current resident memory, so that a step's own peak is measured.
fn reset_peak(pid: u32) -> Result<()> {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").context("cannot reset VmHWM (/proc/PID/clear_refs)")
}

/// The device account the AUTH step authenticates as.
const DEVICE: (&str, &str) = ("bench-scanner", "bench-scanner-password-1");

/// Reads replies until the last line of one; fails unless it starts with `code`.
async fn expect<S: AsyncRead + Unpin>(stream: &mut BufReader<S>, code: &str) -> Result<()> {
    loop {
        let mut line = String::new();
        if stream.read_line(&mut line).await? == 0 {
            bail!("the server closed the session, expecting {code}");
        }
        if !line.starts_with(code) {
            bail!("expected {code}, got {line:?}");
        }
        if line.as_bytes().get(3) != Some(&b'-') {
            return Ok(());
        }
    }
}

/// One gateway session: EHLO, AUTH PLAIN as [`DEVICE`], then [`send_messages`].
async fn auth_session(port: u16, messages: usize) -> Result<()> {
    let mut stream = BufReader::new(tokio::net::TcpStream::connect(("127.0.0.1", port)).await?);
    expect(&mut stream, "220").await?;
    let credentials = base64_plain(DEVICE.0, DEVICE.1);
    stream.get_mut().write_all(format!("EHLO bench\r\nAUTH PLAIN {credentials}\r\n").as_bytes()).await?;
    expect(&mut stream, "250").await?;
    expect(&mut stream, "235").await?;
    send_messages(&mut stream, messages).await
}

/// Sends `messages` messages of 4 KB (in lines of 78 octets) over a ready session, the envelope and `DATA`
/// pipelined, each waiting for its `250`; then QUIT.
async fn send_messages<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut BufReader<S>, messages: usize) -> Result<()> {
    let body = format!("Subject: scan\r\n\r\n{}.\r\n", format!("{}\r\n", "x".repeat(76)).repeat(52));
    for _ in 0..messages {
        stream
            .get_mut()
            .write_all(b"MAIL FROM:<printer@example.com>\r\nRCPT TO:<sink@example.com>\r\nDATA\r\n")
            .await?;
        for code in ["250", "250", "354"] {
            expect(stream, code).await?;
        }
        stream.get_mut().write_all(body.as_bytes()).await?;
        expect(stream, "250").await?;
    }
    stream.get_mut().write_all(b"QUIT\r\n").await?;
    Ok(())
}

/// Runs `tidings --data-dir DIR REST…` with `input` on its standard input (a password, a secret).
fn tidings_with_input(args: &Args, dir: &Path, rest: &[&str], input: &str) -> Result<()> {
    use std::io::Write;
    let mut child = Command::new(&args.tidings)
        .arg("--data-dir")
        .arg(dir)
        .args(rest)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()?;
    child.stdin.take().context("no stdin")?.write_all(format!("{input}\n").as_bytes())?;
    if !child.wait()?.success() {
        bail!("tidings {rest:?} failed");
    }
    Ok(())
}

/// Starts `tidings serve` on `port` (logs at `warn`, `extra` flags after) and waits until `/readyz` answers
/// and, when given, the gateway's port accepts connections.
async fn serve(args: &Args, dir: &Path, port: u16, gateway: Option<u16>, extra: &[&str]) -> Result<Process> {
    let daemon = Process(
        Command::new(&args.tidings)
            .arg("--data-dir")
            .arg(dir)
            .args(["--log", "warn", "serve", "--listen", &format!("127.0.0.1:{port}")])
            .args(extra)
            .spawn()?,
    );
    let (client, base) = (reqwest::Client::new(), format!("http://127.0.0.1:{port}"));
    let started = Instant::now();
    while readyz(&client, &base).await.is_err()
        || gateway.is_some_and(|g| std::net::TcpStream::connect(("127.0.0.1", g)).is_err())
    {
        if started.elapsed() > Duration::from_secs(30) {
            bail!("the daemon did not become ready");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(daemon)
}

/// `\0user\0password` in base64, for AUTH PLAIN.
fn base64_plain(user: &str, password: &str) -> String {
    base64(format!("\0{user}\0{password}").as_bytes())
}

/// Standard base64, with padding.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            out.push(if i <= chunk.len() { ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char } else { '=' });
        }
    }
    out
}

async fn readyz(client: &reqwest::Client, base: &str) -> Result<Value> {
    Ok(client.get(format!("{base}/readyz")).send().await?.json().await?)
}

fn delivered(ready: &Value) -> usize {
    ready["queue"]["delivered"].as_u64().unwrap_or(0) as usize
}

/// Waits until `/readyz` counts `count` messages delivered; fails on a failed message or after 10 minutes.
async fn until_delivered(client: &reqwest::Client, base: &str, count: usize) -> Result<()> {
    let started = Instant::now();
    loop {
        let ready = readyz(client, base).await?;
        if delivered(&ready) >= count {
            return Ok(());
        }
        if ready["queue"]["failed"].as_u64().unwrap_or(0) > 0 {
            bail!("deliveries failed: {ready}");
        }
        if started.elapsed() > Duration::from_secs(600) {
            bail!("not all delivered after 10 minutes: {ready}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = args()?;
    match args.scenario.as_str() {
        "throughput" => throughput(&args).await,
        "memory" => memory::run(&args).await,
        "realistic" => realistic::run(&args).await,
        "cluster" => cluster::run(&args).await,
        "postgres" => postgres::run(&args).await,
        "api" => api::run(&args).await,
        other => bail!("unknown scenario {other}; expected throughput, memory, realistic, cluster, postgres or api"),
    }
}

/// The steps listed at the top.
async fn throughput(args: &Args) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");

    let sink_port = free_port()?;
    let _sink = Process(
        Command::new(&args.smtp_sink)
            .args(["-u", "nobody", &format!("127.0.0.1:{sink_port}"), "1000"])
            .stdout(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start {} (scripts/bench installs it)", args.smtp_sink.display()))?,
    );

    tidings(args, &data, &["init"])?;
    let connections = format!("delivery.connections={}", args.connections);
    tidings(
        args,
        &data,
        &["config", "set", "sender=bench@example.com", &connections, "delivery.timeout=30s", "delivery.lease=5m"],
    )?;
    let token = tidings(args, &data, &["api-token", "create", "--name", "bench", "--role", "network_administrator"])?
        .trim()
        .to_owned();

    let port = free_port()?;
    let base = format!("http://127.0.0.1:{port}");
    let daemon = serve(args, &data, port, None, &["--config-poll-interval", "100ms"]).await?;
    let client = reqwest::Client::builder().pool_max_idle_per_host(args.concurrency).build()?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let idle_rss = rss_kib(daemon.0.id())?;

    // Acceptance: every 202 means committed and synced.
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let t0 = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..args.concurrency {
        let (client, base, token, next, total) =
            (client.clone(), base.clone(), token.clone(), next.clone(), args.messages);
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= total {
                    return Ok::<_, anyhow::Error>(latencies);
                }
                let body =
                    json!({"to": ["sink@example.com"], "subject": format!("bench {i}"), "text": "x".repeat(3000)});
                let sent = Instant::now();
                let response =
                    client.post(format!("{base}/api/v1/messages")).bearer_auth(&token).json(&body).send().await?;
                if response.status() != 202 {
                    bail!("message {i}: {} {}", response.status(), response.text().await?);
                }
                latencies.push(sent.elapsed());
            }
        });
    }
    let mut latencies: Vec<Duration> = Vec::with_capacity(args.messages);
    for result in tasks.join_all().await {
        latencies.extend(result?);
    }
    let accept_time = t0.elapsed();
    latencies.sort();
    let loaded_rss = rss_kib(daemon.0.id())?;

    // Delivery: configure the relay and drain the backlog.
    let t1 = Instant::now();
    tidings(
        args,
        &data,
        &["config", "set", "smtp.host=127.0.0.1", &format!("smtp.port={sink_port}"), "smtp.encryption=none"],
    )?;
    until_delivered(&client, &base, args.messages).await?;
    let deliver_time = t1.elapsed();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after_rss = rss_kib(daemon.0.id())?;
    tokio::time::sleep(Duration::from_secs(40)).await;
    let settled_rss = rss_kib(daemon.0.id())?;

    // The gateway: smtp-source through Tidings, and straight to the sink, in the same run.
    let gateway_port = free_port()?;
    tidings(
        args,
        &data,
        &[
            "config",
            "set",
            &format!("gateway.listen=127.0.0.1:{gateway_port}"),
            "gateway.allowed_networks=127.0.0.1/32",
            "gateway.rate_limit=100000",
        ],
    )?;
    let connect_deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", gateway_port)).is_err() {
        if Instant::now() > connect_deadline {
            bail!("the gateway did not listen");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let source = args.smtp_sink.with_file_name("smtp-source");
    let gateway_messages = args.messages / 2;
    let run_source = |port: u16| -> Result<Duration> {
        let t = Instant::now();
        let status = Command::new(&source)
            .args(["-s", "10", "-m", &gateway_messages.to_string(), "-l", "4096"])
            .args(["-f", "printer@example.com", "-t", "sink@example.com", &format!("127.0.0.1:{port}")])
            .status()
            .with_context(|| format!("cannot run {}", source.display()))?;
        if !status.success() {
            bail!("smtp-source failed: {status}");
        }
        Ok(t.elapsed())
    };
    // Rounds of the limit then Tidings, each pair back to back: the machine's CPU steal varies from minute to
    // minute, so a pair measured together is comparable, and several pairs show the spread.
    let mut rounds = Vec::with_capacity(args.rounds);
    for _ in 0..args.rounds {
        let direct = run_source(sink_port)?;
        let before = delivered(&readyz(&client, &base).await?);
        let ticks = cpu_ticks();
        let gateway = run_source(gateway_port)?;
        let steal = steal_share(ticks, cpu_ticks());
        let t2 = Instant::now();
        until_delivered(&client, &base, before + gateway_messages).await?;
        rounds.push(Round { direct, gateway, drained: gateway + t2.elapsed(), steal });
    }

    // The gateway with AUTH PLAIN: 40 sessions at once, each a device that authenticates.
    tidings_with_input(args, &data, &["device", "add", DEVICE.0], DEVICE.1)?;
    tidings(
        args,
        &data,
        &["config", "set", "gateway.allow_plaintext_auth=true", "gateway.max_connections_per_address=64"],
    )?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    const AUTH_SESSIONS: usize = 40;
    let auth_messages = args.messages / AUTH_SESSIONS * AUTH_SESSIONS;
    let pid = daemon.0.id();
    let before = delivered(&readyz(&client, &base).await?);
    reset_peak(pid)?;
    let auth_rss_before = rss_kib(pid)?;
    let t3 = Instant::now();
    let mut sessions = tokio::task::JoinSet::new();
    for _ in 0..AUTH_SESSIONS {
        sessions.spawn(auth_session(gateway_port, auth_messages / AUTH_SESSIONS));
    }
    for result in sessions.join_all().await {
        result?;
    }
    let auth_time = t3.elapsed();
    until_delivered(&client, &base, before + auth_messages).await?;
    let auth_drained = t3.elapsed();
    let (auth_hwm, auth_rss) = (status_kib(pid, "VmHWM:")?, rss_kib(pid)?);

    // The same load through a Postfix relay on the same path (its queue on the same disk), for comparison.
    let postfix = postfix_relay(&run_source, sink_port, gateway_messages, dir.path()).await;
    // Idle again after everything, the gateway's sessions included (the Postfix step takes a while of its own).
    tokio::time::sleep(Duration::from_secs(45)).await;
    let final_rss = rss_kib(daemon.0.id())?;

    let n = args.messages as f64;
    let g = gateway_messages as f64;
    let pct = |p: f64| latencies[((latencies.len() as f64 - 1.0) * p) as usize].as_secs_f64() * 1000.0;
    println!("| measure | result |");
    println!("| --- | --- |");
    println!(
        "| messages | {} (3 KB text each), {} concurrent API clients, {} relay connections |",
        args.messages, args.concurrency, args.connections
    );
    println!(
        "| accepted per second (API, durable commit) | {:.0} ({:.2} s) |",
        n / accept_time.as_secs_f64(),
        accept_time.as_secs_f64()
    );
    println!("| acceptance latency p50 / p99 | {:.1} ms / {:.1} ms |", pct(0.5), pct(0.99));
    println!(
        "| delivered per second (to smtp-sink, from relay configured to all delivered) | {:.0} ({:.2} s) |",
        n / deliver_time.as_secs_f64(),
        deliver_time.as_secs_f64()
    );
    for (i, r) in rounds.iter().enumerate() {
        println!(
            "| gateway round {}: smtp-source ({gateway_messages} messages, 10 sessions, 4 KB) straight to smtp-sink (the limit) / through Tidings, each durable before 250 / until all delivered to smtp-sink | {:.0} / {:.0} ({:.0} %) / {:.0} ({:.0} %) per second; CPU steal {:.0} % |",
            i + 1,
            g / r.direct.as_secs_f64(),
            g / r.gateway.as_secs_f64(),
            100.0 * r.accepted_share(),
            g / r.drained.as_secs_f64(),
            100.0 * r.delivered_share(),
            100.0 * r.steal.unwrap_or(f64::NAN)
        );
    }
    let median = |share: fn(&Round) -> f64| {
        let mut shares: Vec<f64> = rounds.iter().map(share).collect();
        shares.sort_by(f64::total_cmp);
        let mid = shares.len() / 2;
        if shares.len().is_multiple_of(2) { (shares[mid - 1] + shares[mid]) / 2.0 } else { shares[mid] }
    };
    println!(
        "| gateway: share of the limit, median of {} rounds (durable before 250 / all delivered) | {:.0} % / {:.0} % |",
        rounds.len(),
        100.0 * median(Round::accepted_share),
        100.0 * median(Round::delivered_share)
    );
    println!(
        "| gateway with AUTH PLAIN: {AUTH_SESSIONS} sessions at once, {auth_messages} messages of 4 KB, durable before 250 / until all delivered | {:.0} / {:.0} per second |",
        auth_messages as f64 / auth_time.as_secs_f64(),
        auth_messages as f64 / auth_drained.as_secs_f64()
    );
    println!(
        "| gateway with AUTH PLAIN: resident memory before / peak during (VmHWM, reset before the step) / after | {:.1} / {:.1} / {:.1} MB |",
        auth_rss_before as f64 / 1024.0,
        auth_hwm as f64 / 1024.0,
        auth_rss as f64 / 1024.0
    );
    match postfix {
        Ok((accepted, drained)) => {
            println!(
                "| Postfix relay: smtp-source through Postfix (its queue, fsync before 250) | {:.0} per second |",
                g / accepted.as_secs_f64()
            );
            println!(
                "| Postfix relay: from the first message to all delivered to smtp-sink | {:.0} per second ({:.2} s) |",
                g / drained.as_secs_f64(),
                drained.as_secs_f64()
            );
        }
        Err(e) => println!("| Postfix relay | not measured: {e:#} |"),
    }
    println!("| resident memory, idle after start | {:.1} MB |", idle_rss as f64 / 1024.0);
    println!("| resident memory, after accepting the batch | {:.1} MB |", loaded_rss as f64 / 1024.0);
    println!("| resident memory, 5 s after delivering the batch | {:.1} MB |", after_rss as f64 / 1024.0);
    println!("| resident memory, 45 s after delivering the batch (idle) | {:.1} MB |", settled_rss as f64 / 1024.0);
    println!("| resident memory, idle after the gateway and Postfix steps | {:.1} MB |", final_rss as f64 / 1024.0);
    Ok(())
}

/// One round of the gateway step.
struct Round {
    direct: Duration,
    gateway: Duration,
    drained: Duration,
    /// The share of CPU time the hypervisor took while the load went through Tidings.
    steal: Option<f64>,
}

impl Round {
    fn accepted_share(&self) -> f64 {
        self.direct.as_secs_f64() / self.gateway.as_secs_f64()
    }

    fn delivered_share(&self) -> f64 {
        self.direct.as_secs_f64() / self.drained.as_secs_f64()
    }
}

/// The machine's CPU time so far from `/proc/stat`: (stolen, total), in ticks.
fn cpu_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let fields: Vec<u64> =
        stat.lines().next()?.split_whitespace().skip(1).map(|f| f.parse().ok()).collect::<Option<_>>()?;
    Some((*fields.get(7)?, fields.iter().take(8).sum()))
}

fn steal_share(before: Option<(u64, u64)>, after: Option<(u64, u64)>) -> Option<f64> {
    let ((s0, t0), (s1, t1)) = (before?, after?);
    (t1 > t0).then(|| (s1 - s0) as f64 / (t1 - t0) as f64)
}

/// Runs the gateway's load through Postfix (`scripts/postfix-relay`) relaying to the sink: the time to accept
/// it, and the time until Postfix logged every message sent.
async fn postfix_relay(
    run_source: &impl Fn(u16) -> Result<Duration>,
    sink_port: u16,
    messages: usize,
    dir: &Path,
) -> Result<(Duration, Duration)> {
    let relay_dir = dir.join("postfix");
    let relay_dir_text = relay_dir.display().to_string();
    let port = free_port()?;
    let started = Command::new("scripts/postfix-relay")
        .args(["start", &relay_dir_text, &port.to_string(), &sink_port.to_string()])
        .status()
        .context("cannot run scripts/postfix-relay")?;
    if !started.success() {
        bail!("scripts/postfix-relay could not start Postfix (it needs root)");
    }
    let result = async {
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                bail!("Postfix did not listen");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // A first run starts Postfix's smtpd processes (a one-time cost, left out of the figures).
        run_source(port)?;
        let log = relay_dir.join("data/maillog");
        let sent = || std::fs::read_to_string(&log).map(|l| l.matches("status=sent").count()).unwrap_or(0);
        let before = sent();
        let t = Instant::now();
        let accepted = run_source(port)?;
        while sent() < before + messages {
            if t.elapsed() > Duration::from_secs(600) {
                bail!("Postfix did not deliver everything");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok((accepted, t.elapsed()))
    }
    .await;
    let _ = Command::new("scripts/postfix-relay").args(["stop", &relay_dir_text]).status();
    result
}

#[cfg(test)]
mod tests {
    #[test]
    fn auth_plain_credentials_are_base64() {
        // printf '\0a\0b' | base64; and the three padding cases.
        assert_eq!(super::base64_plain("a", "b"), "AGEAYg==");
        assert_eq!(super::base64_plain("ab", "b"), "AGFiAGI=");
        assert_eq!(super::base64_plain("abc", "b"), "AGFiYwBi");
    }
}

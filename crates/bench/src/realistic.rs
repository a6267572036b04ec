//! `tidings-bench --scenario realistic`: the path of issue 18 as a site runs it. Devices authenticate to the
//! gateway with AUTH PLAIN and send 4 KB messages; Tidings delivers them to a relay that speaks STARTTLS and
//! XOAUTH2 as Microsoft's and Google's do (`tests/peers/smtp_server.py`: aiosmtpd, a throw-away CA, an access
//! token it accepts). The same load sent straight to that relay, with STARTTLS and XOAUTH2 from each session,
//! is the limit. At 10 and at 40 sessions, in alternating rounds: the end-to-end rate (until the relay has every
//! message) through Tidings against the direct one, and Tidings' own CPU per 1,000 messages (`utime + stime`
//! from `/proc/PID/stat`). Targets: at least 0.75× the direct rate, at most 0.5 CPU-seconds per 1,000.

use super::{
    Args, DEVICE, Process, auth_session, base64, expect, free_port, python_peer, send_messages, serve, tidings,
    tidings_with_input,
};
use anyhow::{Context, Result, bail};
use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};
use tokio::io::{AsyncWriteExt, BufReader};

/// The access token the relay accepts.
pub(crate) const TOKEN: &str = "bench-relay-access-token";
/// The mailbox Tidings and the direct sessions authenticate as.
pub(crate) const MAILBOX: &str = "bench@example.com";

/// Where a session sends.
#[derive(Clone)]
pub(crate) enum Target {
    /// The gateway, with AUTH PLAIN as the bench's device account, without TLS (a device on the LAN).
    Gateway(u16),
    /// The relay, with STARTTLS (trusting `ca`) and XOAUTH2, as Tidings itself does.
    Relay { port: u16, tls: tokio_rustls::TlsConnector },
}

/// One device's session.
async fn session(target: Target, messages: usize) -> Result<()> {
    match target {
        Target::Gateway(port) => auth_session(port, messages).await,
        Target::Relay { port, tls } => {
            let mut plain = BufReader::new(tokio::net::TcpStream::connect(("127.0.0.1", port)).await?);
            expect(&mut plain, "220").await?;
            plain.get_mut().write_all(b"EHLO bench\r\n").await?;
            expect(&mut plain, "250").await?;
            plain.get_mut().write_all(b"STARTTLS\r\n").await?;
            expect(&mut plain, "220").await?;
            let name = rustls_pki_types::ServerName::try_from("127.0.0.1")?;
            let mut stream = BufReader::new(tls.connect(name, plain.into_inner()).await?);
            stream.get_mut().write_all(b"EHLO bench\r\n").await?;
            expect(&mut stream, "250").await?;
            let blob = format!("user={MAILBOX}\x01auth=Bearer {TOKEN}\x01\x01");
            stream.get_mut().write_all(format!("AUTH XOAUTH2 {}\r\n", base64(blob.as_bytes())).as_bytes()).await?;
            expect(&mut stream, "235").await?;
            send_messages(&mut stream, messages).await
        }
    }
}

/// The relay: the peer server with STARTTLS, XOAUTH2 and pipelining; counts what it received.
pub(crate) struct Relay {
    _process: Process,
    pub(crate) port: u16,
    pub(crate) ca: PathBuf,
    pub(crate) received: Arc<AtomicUsize>,
}

pub(crate) fn start_relay(dir: &Path) -> Result<Relay> {
    let ca = dir.join("relay-ca.pem");
    let received = Arc::new(AtomicUsize::new(0));
    let counter = received.clone();
    let args: [&std::ffi::OsStr; 6] = [
        "--pipelining".as_ref(),
        "--auth-required".as_ref(),
        "--token".as_ref(),
        TOKEN.as_ref(),
        "--tls-ca-out".as_ref(),
        ca.as_os_str(),
    ];
    let (process, port) = python_peer("tests/peers/smtp_server.py", &args, move || {
        counter.fetch_add(1, Ordering::Relaxed);
    })?;
    Ok(Relay { _process: process, port, ca, received })
}

pub(crate) fn tls_connector(ca: &Path) -> Result<tokio_rustls::TlsConnector> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_file_iter(ca)? {
        roots.add(cert?)?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// `utime + stime` of a process, in seconds.
fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')').context("malformed stat")?.1.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    let per_second: f64 = String::from_utf8(Command::new("getconf").arg("CLK_TCK").output()?.stdout)?.trim().parse()?;
    Ok(ticks as f64 / per_second)
}

/// Runs `sessions` sessions of `messages / sessions` messages each to `target`; the time until the relay has
/// received them all.
pub(crate) async fn round(target: Target, relay: &Relay, sessions: usize, messages: usize) -> Result<Duration> {
    let before = relay.received.load(Ordering::Relaxed);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..sessions {
        tasks.spawn(session(target.clone(), messages / sessions));
    }
    for result in tasks.join_all().await {
        result?;
    }
    while relay.received.load(Ordering::Relaxed) < before + messages / sessions * sessions {
        if started.elapsed() > Duration::from_secs(600) {
            bail!("the relay did not receive every message within 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(started.elapsed())
}

pub async fn run(args: &Args) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let relay = start_relay(dir.path())?;
    let gateway_port = free_port()?;
    tidings(args, &data, &["init"])?;
    tidings(
        args,
        &data,
        &[
            "config",
            "set",
            &format!("sender={MAILBOX}"),
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
    tidings_with_input(args, &data, &["config", "set-secret", "oauth.static_access_token"], TOKEN)?;
    tidings_with_input(args, &data, &["device", "add", DEVICE.0], DEVICE.1)?;
    let daemon = serve(args, &data, free_port()?, Some(gateway_port), &[]).await?;
    let pid = daemon.0.id();
    let direct = Target::Relay { port: relay.port, tls: tls_connector(&relay.ca)? };
    let through = Target::Gateway(gateway_port);
    // Warm up both paths (the first connections, the token, the device's password check).
    round(direct.clone(), &relay, 10, 100).await?;
    round(through.clone(), &relay, 10, 100).await?;

    println!(
        "| sessions | round | straight to the relay (the limit) | through Tidings, until the relay has all | share | Tidings' CPU per 1,000 messages |"
    );
    println!("| --- | --- | --- | --- | --- | --- |");
    let messages = args.messages;
    for sessions in [10, 40] {
        let mut shares = Vec::new();
        let mut cpus = Vec::new();
        for r in 1..=args.rounds {
            let limit = round(direct.clone(), &relay, sessions, messages).await?;
            let cpu_before = cpu_seconds(pid)?;
            let via = round(through.clone(), &relay, sessions, messages).await?;
            let cpu = (cpu_seconds(pid)? - cpu_before) * 1000.0 / messages as f64;
            let rate = |d: Duration| messages as f64 / d.as_secs_f64();
            let share = limit.as_secs_f64() / via.as_secs_f64();
            shares.push(share);
            cpus.push(cpu);
            println!(
                "| {sessions} | {r} | {:.0} per second | {:.0} per second | {:.2}× | {cpu:.2} s |",
                rate(limit),
                rate(via),
                share
            );
        }
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        println!(
            "| {sessions} | median of {} | | | **{:.2}×** (target ≥ 0.75×) | **{:.2} s** (target ≤ 0.5 s) |",
            args.rounds,
            median(&mut shares),
            median(&mut cpus)
        );
    }
    Ok(())
}

//! `tidings-bench --scenario cluster`: how long a change on the primary takes to be in force on a backup and on a
//! traffic node (issue 20's target: within 5 s), with the daemons' default timings (the follower's long poll,
//! `serve --config-poll-interval` 2 s), over `--rounds` × 10 changes; and each node's memory (`VmHWM` and `VmRSS`)
//! after them. Every change is measured from the `config set` on the primary until the follower's `/readyz` shows
//! a new revision in force.

use super::{Args, free_port, readyz, serve, status_kib, tidings};
use anyhow::{Result, bail};
use std::time::{Duration, Instant};

/// The target: a change in force on every follower within this.
const TARGET: Duration = Duration::from_secs(5);

pub async fn run(args: &Args) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let client = reqwest::Client::new();
    let mut nodes = Vec::new();
    for name in ["primary", "backup-1", "traffic-1"] {
        let data = dir.path().join(name);
        tidings(args, &data, &["init"])?;
        let (port, cluster_port) = (free_port()?, free_port()?);
        let listen = format!("127.0.0.1:{cluster_port}");
        let daemon = serve(args, &data, port, None, &["--cluster-listen", &listen]).await?;
        nodes.push((name, data, format!("http://127.0.0.1:{port}"), format!("https://{listen}"), daemon));
    }
    let primary = nodes[0].1.clone();
    let primary_url = nodes[0].3.clone();
    for (name, data, _, url, _) in &nodes[1..] {
        let role = if name.starts_with("backup") { "backup" } else { "traffic" };
        let code = tidings(args, &primary, &["cluster", "add-node", name, "--role", role])?;
        tidings(args, data, &["cluster", "join", &primary_url, code.trim(), "--advertise", url])?;
    }
    let revision = |base: String| {
        let client = client.clone();
        async move { readyz(&client, &base).await.map(|r| r["config_revision"].as_i64().unwrap_or(0)) }
    };
    // The first snapshot (the join) in force on both followers.
    let started = Instant::now();
    for (_, _, base, _, _) in &nodes[1..] {
        while revision(base.clone()).await? == 0 {
            if started.elapsed() > Duration::from_secs(30) {
                bail!("a follower never took the primary's configuration");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let changes = args.rounds * 10;
    let mut latencies: Vec<Vec<Duration>> = vec![Vec::new(); 2];
    for i in 0..changes {
        let before: Vec<i64> = {
            let mut seen = Vec::new();
            for (_, _, base, _, _) in &nodes[1..] {
                seen.push(revision(base.clone()).await?);
            }
            seen
        };
        let locale = if i % 2 == 0 { "locale=fr" } else { "locale=en" };
        let at = Instant::now();
        tidings(args, &primary, &["config", "set", locale])?;
        let mut pending: Vec<usize> = vec![0, 1];
        while !pending.is_empty() {
            if at.elapsed() > Duration::from_secs(60) {
                bail!("change {i} never reached every follower");
            }
            let mut still = Vec::new();
            for k in pending {
                if revision(nodes[k + 1].2.clone()).await? > before[k] {
                    latencies[k].push(at.elapsed());
                } else {
                    still.push(k);
                }
            }
            pending = still;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    println!("| node | changes | median | slowest | target | met |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for (k, measured) in latencies.iter_mut().enumerate() {
        measured.sort();
        let (median, slowest) = (measured[measured.len() / 2], measured[measured.len() - 1]);
        println!(
            "| {} | {} | {:.2} s | {:.2} s | {:.0} s | {} |",
            nodes[k + 1].0,
            measured.len(),
            median.as_secs_f64(),
            slowest.as_secs_f64(),
            TARGET.as_secs_f64(),
            if slowest <= TARGET { "yes" } else { "no" }
        );
    }
    println!();
    println!("| node | VmHWM | VmRSS |");
    println!("| --- | --- | --- |");
    for (name, _, _, _, daemon) in &nodes {
        let pid = daemon.0.id();
        println!(
            "| {name} | {:.1} MB | {:.1} MB |",
            status_kib(pid, "VmHWM:")? as f64 / 1024.0,
            status_kib(pid, "VmRSS:")? as f64 / 1024.0
        );
    }
    Ok(())
}

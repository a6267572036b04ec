//! What monitoring reads: every metric a scrape gives is documented in docs/operations.md with its type (and
//! every documented one is given), the alert rules pass `promtool check rules` and name only metrics that
//! exist, and so does the Grafana dashboard.

#![allow(clippy::unwrap_used)] // helpers of tests: a failed step is a failed test

mod support;

use std::collections::BTreeMap;
use support::{Tidings, relay};
use tidings_testkit::{SmtpPeer, repo_root};

/// The documented metrics: name and type, from the table of docs/operations.md.
fn documented() -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(repo_root().join("docs/operations.md")).unwrap();
    let section = text.split("## Metrics").nth(1).unwrap().split("\n## ").next().unwrap();
    section
        .lines()
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let name = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
            Some((name.to_owned(), (*cells.get(2)?).to_owned()))
        })
        .collect()
}

/// The metrics a scrape gives: name (counters with their `_total`) and type.
fn scraped(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| {
            let (name, kind) = l.split_once(' ').unwrap();
            let name = if kind == "counter" { format!("{name}_total") } else { name.to_owned() };
            (name, kind.to_owned())
        })
        .collect()
}

#[tokio::test]
async fn every_metric_is_documented_with_its_type_and_the_rules_and_dashboard_name_real_ones() {
    let mut peer = SmtpPeer::start(&[]);
    let tidings = Tidings::start(relay(&peer, &[])).await;
    let id = tidings.send("measured").await;
    peer.next_message().await;
    tidings.wait_for_status(id, "delivered").await;
    let response = tidings.client.get(format!("{}/metrics", tidings.base)).bearer_auth(&tidings.viewer).send().await;
    let response = response.unwrap();
    let kind = response.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(kind.starts_with("application/openmetrics-text"), "{kind}");
    let text = response.text().await.unwrap();
    assert!(text.trim_end().ends_with("# EOF"), "{text}");
    assert!(text.contains("tidings_delivery_latency_seconds_count 1"), "the delivery was measured: {text}");
    assert!(text.contains("tidings_attempt_duration_seconds_count{stage=\"complete\"} 1"), "{text}");

    let (documented, scraped) = (documented(), scraped(&text));
    for (name, kind) in &scraped {
        assert_eq!(documented.get(name), Some(kind), "{name} ({kind}) is not in docs/operations.md's table as such");
    }
    let shared_database_only = ["tidings_database_nodes", "tidings_node_leased_messages"];
    for name in documented.keys().filter(|n| !shared_database_only.contains(&n.as_str())) {
        assert!(scraped.contains_key(name), "{name} is documented but not given");
    }

    // The alert rules are valid, and so are the names they and the dashboard use.
    let rules = repo_root().join("packaging/monitoring/tidings.rules.yml");
    let checked = std::process::Command::new("promtool").arg("check").arg("rules").arg(&rules).output();
    let checked = checked.expect("promtool is missing: run ./scripts/test, which installs it (Debian prometheus)");
    assert!(
        checked.status.success(),
        "{}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
    for file in ["packaging/monitoring/tidings.rules.yml", "packaging/monitoring/grafana-dashboard.json"] {
        let text = std::fs::read_to_string(repo_root().join(file)).unwrap();
        for used in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).filter(|w| w.starts_with("tidings_"))
        {
            let base = ["_bucket", "_count", "_sum"].iter().fold(used, |n, s| n.strip_suffix(s).unwrap_or(n));
            assert!(documented.contains_key(base), "{file} uses {used}, which Tidings does not give");
        }
    }
    tidings.stop().await;
}

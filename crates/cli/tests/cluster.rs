//! Three real daemons on loopback as one cluster: a primary, a backup and a traffic node, each with its own data
//! directory and ports. Joining with a code; the primary's configuration (secrets included) in force on both
//! followers; a test mail from the traffic node through the primary's relay; changes refused on the followers
//! except their own keys; secrets absent from the followers' logs, API and files; nodes listed and removed.

#![allow(clippy::unwrap_used)] // a failed step is a failed test

mod support;

use serde_json::{Value, json};
use support::*;
use tidings_testkit::SmtpPeer;

const RELAY_PASSWORD: &str = "S3cret-relay-pass-7Qx";

fn start(dir: &std::path::Path) -> (Daemon, String) {
    ok(dir, &["init"]);
    let mut daemon = Daemon::start(
        dir,
        &["--cluster-listen", "127.0.0.1:0", "--config-poll-interval", "100ms", "--cluster-wait", "2s"],
    );
    let listening = daemon.wait_for_log(|v| v["message"] == "Tidings cluster is listening");
    let url = format!("https://{}", listening["address"].as_str().unwrap());
    (daemon, url)
}

fn token(dir: &std::path::Path) -> String {
    let out = run(dir, &["api-token", "create", "--name", "test", "--role", "administrator"], "");
    stdout(&out).trim().to_owned()
}

/// A file holding a device account's password.
fn password_file(dir: &std::path::Path) -> std::path::PathBuf {
    let file = dir.join("device-password");
    std::fs::write(&file, "device-pass-0123456789\n").unwrap();
    file
}

/// Everything a daemon logged so far, as text.
fn logs(daemon: &mut Daemon) -> String {
    daemon.wait_for_log(|v| v["message"] == "Tidings cluster is listening");
    daemon.seen.iter().map(Value::to_string).collect::<Vec<_>>().join("\n")
}

#[test]
fn followers_take_the_primary_configuration_and_refuse_their_own_changes() {
    let tmp = tempfile::tempdir().unwrap();
    let (primary_dir, backup_dir, traffic_dir) =
        (tmp.path().join("primary"), tmp.path().join("backup"), tmp.path().join("traffic"));
    let (_primary, primary_url) = start(&primary_dir);
    let (mut backup, backup_url) = start(&backup_dir);
    let (mut traffic, traffic_url) = start(&traffic_dir);

    // Joining: a code from the primary, used once, for the name it was made for.
    let code = ok(&primary_dir, &["cluster", "add-node", "backup-1", "--role", "backup", "--primary-name", "alpha"])
        .trim()
        .to_owned();
    assert!(code.starts_with("tidings-join:backup-1:"), "{code}");
    assert_eq!(primary_name(&primary_dir), "alpha");
    let joined = ok(&backup_dir, &["cluster", "join", &primary_url, &code, "--advertise", &backup_url]);
    assert!(joined.contains("Joined alpha as a backup"), "{joined}");
    let stranger = tmp.path().join("stranger");
    ok(&stranger, &["init"]);
    let err = fails(&stranger, &["cluster", "join", &primary_url, &code, "--advertise", "https://127.0.0.1:1"]);
    assert!(err.contains("not valid (wrong, used, or expired)"), "a code works once: {err}");
    let err =
        fails(&stranger, &["cluster", "join", &primary_url, "tidings-join:x", "--advertise", "https://127.0.0.1:1"]);
    assert!(err.contains("not a join code"), "{err}");
    let code = ok(&primary_dir, &["cluster", "add-node", "traffic-1", "--role", "traffic"]).trim().to_owned();
    // A code carries the primary's certificate: a node that reaches something else refuses to talk to it.
    let (head, _) = code.rsplit_once(':').unwrap();
    let wrong = format!("{head}:{}", "0".repeat(64));
    let err = fails(&traffic_dir, &["cluster", "join", &primary_url, &wrong, "--advertise", &traffic_url]);
    assert!(err.contains("another certificate than the one pinned"), "{err}");
    ok(&traffic_dir, &["cluster", "join", &primary_url, &code, "--advertise", &traffic_url]);

    // A change on the primary, secrets included, reaches both followers.
    let mut peer = SmtpPeer::start(&["--auth-required", "--user", "relay", "--password", RELAY_PASSWORD]);
    let password = format!("smtp.password={RELAY_PASSWORD}");
    configure_relay(
        &primary_dir,
        peer.port,
        &[
            "smtp.auth=password",
            "smtp.username=relay",
            &password,
            "smtp.allow_plaintext_auth=true",
            "admin.addresses=ops@example.com",
        ],
    );
    for dir in [&backup_dir, &traffic_dir] {
        eventually("the primary's relay on a follower", || {
            let shown = config(dir);
            shown["config"]["smtp"]["port"] == peer.port && shown["config"]["smtp"]["username"] == "relay"
        });
    }
    traffic.wait_for_log(|v| v["message"] == "cluster: took the primary's configuration");
    let by = format!("cluster:{}", primary_name(&primary_dir));
    traffic
        .wait_for_log(|v| v["message"] == "email configuration changed; now in force" && v["saved_by"] == by.as_str());
    let out = ok(&traffic_dir, &["config", "test"]);
    assert!(out.contains("Delivered"), "the traffic node sends through the primary's relay with its password: {out}");
    let got = peer.next_message_blocking();
    assert_eq!(got["auth_user"], "relay");

    // Followers refuse changes to the primary's keys, in the CLI and the API, and keep their own.
    let err = fails(&backup_dir, &["config", "set", "smtp.port=2626"]);
    assert!(
        err.contains("This node is a backup: its email configuration is the primary's")
            && err.contains("Change it on the primary"),
        "{err}"
    );
    // Accounts, API tokens and device accounts are the primary's too: a token made there works on a follower.
    let api = token(&primary_dir);
    ok(&primary_dir, &["device", "add", "scanner-3", "--password-file", password_file(tmp.path()).to_str().unwrap()]);
    eventually("the primary's device account on the traffic node", || {
        ok(&traffic_dir, &["device", "list"]).contains("scanner-3")
    });
    eventually("the primary's token on the backup", || {
        http(&backup.address, "GET", "/api/v1/cluster", Some(&api), None).0 == 200
    });
    let err = fails(&backup_dir, &["api-token", "create", "--name", "local", "--role", "viewer"]);
    assert!(err.contains("This node is a backup"), "{err}");
    let err = fails(&backup_dir, &["oauth", "revoke"]);
    assert!(err.contains("This node is a backup"), "the relay account's authorization is the primary's: {err}");
    let (code, body) =
        http(&backup.address, "PATCH", "/api/v1/email-config", Some(&api), Some(&json!({"smtp.port": "2626"})));
    assert_eq!(code, 409, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("This node is a backup"), "{body}");
    ok(&backup_dir, &["config", "set", "gateway.listen=127.0.0.1:0"]);
    ok(&primary_dir, &["config", "set", "locale=de"]);
    eventually("the next change on the backup", || config(&backup_dir)["config"]["locale"] == "de");
    assert_eq!(config(&backup_dir)["config"]["gateway"]["listen"], "127.0.0.1:0", "the backup's own listener is kept");

    // Where the followers stand, and what the primary knows of them.
    let shown = status(&backup_dir);
    assert_eq!(
        (shown["role"].as_str(), shown["primary"]["url"].as_str()),
        (Some("backup"), Some(primary_url.as_str()))
    );
    assert!(shown["synced_revision"].as_i64().unwrap() >= 2, "{shown}");
    let nodes = ok(&primary_dir, &["cluster", "nodes"]);
    assert!(nodes.contains("backup-1") && nodes.contains("traffic-1") && nodes.contains("joined"), "{nodes}");
    assert!(nodes.contains("synced revision"), "the primary records each node's sync: {nodes}");
    let (code, cluster) = http(&_primary.address, "GET", "/api/v1/cluster", Some(&api), None);
    assert_eq!((code, cluster["role"].as_str()), (200, Some("primary")), "{cluster}");
    assert!(cluster["nodes"].as_array().unwrap().iter().all(|n| n["last_contact_at"].is_string()), "{cluster}");

    // The secret never shows on a follower: not in its logs, its API, its CLI or its files.
    let (_, api_config) = http(&traffic.address, "GET", "/api/v1/email-config", Some(&api), None);
    for (what, text) in [
        ("the traffic node's log", logs(&mut traffic)),
        ("the backup's log", logs(&mut backup)),
        ("the traffic node's API", api_config.to_string()),
        ("the traffic node's CLI", ok(&traffic_dir, &["config", "show"])),
        ("the backup's cluster status", ok(&backup_dir, &["cluster", "status", "--json"])),
    ] {
        assert!(!text.contains(RELAY_PASSWORD), "the relay's password in {what}");
    }
    for dir in [&backup_dir, &traffic_dir] {
        for entry in std::fs::read_dir(dir).unwrap() {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap_or_default();
            assert!(!bytes.windows(RELAY_PASSWORD.len()).any(|w| w == RELAY_PASSWORD.as_bytes()), "stored in clear");
        }
    }

    // A removed node is refused by the primary and keeps its last copy.
    ok(&primary_dir, &["cluster", "remove", "traffic-1"]);
    ok(&primary_dir, &["config", "set", "locale=fr"]);
    traffic.wait_for_log(|v| {
        v["message"] == "cluster: cannot take the primary's configuration; the last copy stays in force"
    });
    assert_eq!(config(&traffic_dir)["config"]["smtp"]["port"], peer.port, "nothing is lost or reset");
    assert!(fails(&primary_dir, &["cluster", "remove", "traffic-1"]).contains("no node named"));
    // The removed node leaves: standalone again, keeping what it holds, and its configuration is its own again.
    ok(&traffic_dir, &["cluster", "leave"]);
    assert_eq!(status(&traffic_dir)["role"], "standalone");
    assert_eq!(config(&traffic_dir)["config"]["smtp"]["port"], peer.port);
    ok(&traffic_dir, &["config", "set", "locale=nl"]);
}

/// The configuration in force on `dir`, as JSON.
fn config(dir: &std::path::Path) -> Value {
    serde_json::from_str(&ok(dir, &["config", "show", "--json"])).unwrap()
}

fn primary_name(dir: &std::path::Path) -> String {
    let status: Value = serde_json::from_str(&ok(dir, &["cluster", "status", "--json"])).unwrap();
    status["name"].as_str().unwrap().to_owned()
}

/// Joins `dir` to the primary at `primary_url` as `name` with `role`.
fn join(primary_dir: &std::path::Path, primary_url: &str, dir: &std::path::Path, url: &str, name: &str, role: &str) {
    let code = ok(primary_dir, &["cluster", "add-node", name, "--role", role]).trim().to_owned();
    ok(dir, &["cluster", "join", primary_url, &code, "--advertise", url]);
}

fn status(dir: &std::path::Path) -> Value {
    serde_json::from_str(&ok(dir, &["cluster", "status", "--json"])).unwrap()
}

fn events(dir: &std::path::Path) -> String {
    ok(dir, &["event", "list"])
}

#[test]
fn the_backup_takes_over_from_a_killed_primary_and_the_old_primary_follows_it_on_return() {
    let tmp = tempfile::tempdir().unwrap();
    let (primary_dir, backup_dir, traffic_dir) =
        (tmp.path().join("primary"), tmp.path().join("backup"), tmp.path().join("traffic"));
    let promoted = tmp.path().join("promoted");
    let (primary, primary_url) = start(&primary_dir);
    ok(&backup_dir, &["init"]);
    let hook = format!("echo $TIDINGS_CLUSTER_EPOCH > {}", promoted.display());
    let mut backup = Daemon::start(
        &backup_dir,
        &[
            "--cluster-listen",
            "127.0.0.1:0",
            "--config-poll-interval",
            "100ms",
            "--cluster-wait",
            "2s",
            "--cluster-retry-max",
            "1s",
            "--cluster-on-promote",
            &hook,
        ],
    );
    let backup_url = format!(
        "https://{}",
        backup.wait_for_log(|v| v["message"] == "Tidings cluster is listening")["address"].as_str().unwrap()
    );
    let (mut traffic, traffic_url) = start(&traffic_dir);
    join(&primary_dir, &primary_url, &backup_dir, &backup_url, "backup-1", "backup");
    join(&primary_dir, &primary_url, &traffic_dir, &traffic_url, "traffic-1", "traffic");

    let mut peer = SmtpPeer::start(&[]);
    let test_address = format!("cluster.test_addresses=127.0.0.1:{}", peer.port);
    configure_relay(
        &primary_dir,
        peer.port,
        &[
            "admin.addresses=ops@example.com",
            "cluster.auto_failover=true",
            "cluster.probe_interval=1s",
            "cluster.takeover_after=3s",
            &test_address,
            // Not among this machine's addresses: the primary says so.
            "cluster.shared_address=127.0.0.2",
        ],
    );
    eventually("the shared address reported missing", || {
        events(&primary_dir).contains("failover.shared_ip_not_listed")
    });
    for dir in [&backup_dir, &traffic_dir] {
        eventually("the failover settings on a follower", || config(dir)["config"]["cluster"]["auto_failover"] == true);
    }
    // The backup holds every node's key before it is needed.
    eventually("the backup to know the traffic node", || ok(&backup_dir, &["cluster", "nodes"]).contains("traffic-1"));

    primary.kill9();
    eventually("the backup's probe event", || events(&backup_dir).contains("failover.primary_probe_failed_auto"));
    eventually("the takeover", || status(&backup_dir)["role"] == "primary");
    assert_eq!(status(&backup_dir)["epoch"], 2);
    assert!(events(&backup_dir).contains("failover.takeover"), "{}", events(&backup_dir));
    eventually("the promote hook", || std::fs::read_to_string(&promoted).is_ok_and(|t| t.trim() == "2"));
    backup.wait_for_log(|v| v["message"] == "cluster: the promote hook succeeded");
    assert!(status(&backup_dir)["last_hook"].as_str().unwrap().ends_with("promote hook: succeeded"), "shown");
    // The traffic node finds the new primary by its epoch and follows it.
    eventually("the traffic node to follow the new primary", || status(&traffic_dir)["primary"]["name"] == "backup-1");
    traffic.wait_for_log(|v| v["message"] == "cluster: this node now follows another primary");
    // The new primary delivers, and its changes reach the traffic node.
    let out = ok(&backup_dir, &["config", "test"]);
    assert!(out.contains("Delivered"), "{out}");
    peer.next_message_blocking();
    ok(&backup_dir, &["config", "set", "locale=nl"]);
    eventually("the new primary's change on the traffic node", || config(&traffic_dir)["config"]["locale"] == "nl");

    // The old primary comes back (on another port): it asks the nodes it knows, finds a higher epoch, follows.
    let mut returned = Daemon::start(
        &primary_dir,
        &["--cluster-listen", "127.0.0.1:0", "--config-poll-interval", "100ms", "--cluster-wait", "2s"],
    );
    returned.wait_for_log(|v| v["message"] == "cluster: this node now follows another primary");
    let back = status(&primary_dir);
    assert_eq!((back["role"].as_str(), back["primary"]["name"].as_str()), (Some("backup"), Some("backup-1")), "{back}");
    assert_eq!(back["epoch"], 2);
    eventually("the old primary to take the new one's configuration", || {
        config(&primary_dir)["config"]["locale"] == "nl"
    });
    let err = fails(&primary_dir, &["config", "set", "locale=en"]);
    assert!(err.contains("This node is a backup"), "{err}");
}

#[test]
fn the_primary_warns_when_no_backup_synchronised_within_the_window() {
    let tmp = tempfile::tempdir().unwrap();
    let (primary_dir, backup_dir) = (tmp.path().join("primary"), tmp.path().join("backup"));
    let (_primary, primary_url) = start(&primary_dir);
    let (backup, backup_url) = start(&backup_dir);
    join(&primary_dir, &primary_url, &backup_dir, &backup_url, "backup-1", "backup");
    ok(
        &primary_dir,
        &["config", "set", "cluster.probe_interval=1s", "cluster.takeover_after=1s", "cluster.sync_failed_after=3s"],
    );
    eventually("the backup's first sync", || status(&backup_dir)["synced_revision"] == 1);
    std::thread::sleep(std::time::Duration::from_secs(4));
    assert!(!events(&primary_dir).contains("failover.sync_failed"), "a backup that keeps asking is in sync");
    backup.kill9();
    eventually("the sync warning", || events(&primary_dir).contains("failover.sync_failed"));
}

#[test]
fn a_traffic_node_sends_with_the_access_token_its_primary_obtains() {
    const CLIENT: &str = "6731de76-14a6-49ae-97bc-6eba6914391e";
    let fake = tidings_testkit::OAuthFake::start(3600, &[]);
    let mut peer = SmtpPeer::start_tls(&["--token-file", fake.access_tokens.to_str().unwrap()]);
    let tmp = tempfile::tempdir().unwrap();
    let (primary_dir, traffic_dir) = (tmp.path().join("primary"), tmp.path().join("traffic"));
    let (_primary, primary_url) = start(&primary_dir);
    let (_traffic, traffic_url) = start(&traffic_dir);
    join(&primary_dir, &primary_url, &traffic_dir, &traffic_url, "traffic-1", "traffic");
    let settings = [
        "sender=alerts@contoso.com".to_owned(),
        "admin.addresses=ops@contoso.com".to_owned(),
        "smtp.host=127.0.0.1".to_owned(),
        format!("smtp.port={}", peer.port),
        "smtp.encryption=starttls".to_owned(),
        format!("tls.ca_file={}", peer.ca_file.as_ref().unwrap().display()),
        "smtp.auth=oauth2".to_owned(),
        "oauth.provider=microsoft".to_owned(),
        "oauth.tenant=contoso.com".to_owned(),
        format!("oauth.client_id={CLIENT}"),
        format!("oauth.token_endpoint={}", fake.token_endpoint("contoso.com")),
        "oauth.client_secret=app-secret-of-the-primary".to_owned(),
        "delivery.retry_first=1s".to_owned(),
    ];
    let mut args = vec!["config", "set"];
    args.extend(settings.iter().map(String::as_str));
    ok(&primary_dir, &args);
    ok(&primary_dir, &["oauth", "login", "--client-credentials"]);
    eventually("the authorization on the traffic node", || {
        let status: Value = serde_json::from_str(&ok(&traffic_dir, &["oauth", "status", "--json"])).unwrap();
        status["acquired_at"].is_string()
    });

    let out = ok(&traffic_dir, &["config", "test"]);
    assert!(out.contains("Delivered"), "the traffic node authenticated with the primary's token: {out}");
    assert_eq!(peer.next_message_blocking()["auth_user"], "alerts@contoso.com");
    let status: Value = serde_json::from_str(&ok(&traffic_dir, &["oauth", "status", "--json"])).unwrap();
    assert!(!status.to_string().contains("app-secret-of-the-primary"), "{status}");
}

#[test]
fn a_backup_cut_off_from_everything_says_so_and_does_not_take_over() {
    let tmp = tempfile::tempdir().unwrap();
    let (primary_dir, backup_dir) = (tmp.path().join("primary"), tmp.path().join("backup"));
    let (primary, primary_url) = start(&primary_dir);
    let (_backup, backup_url) = start(&backup_dir);
    join(&primary_dir, &primary_url, &backup_dir, &backup_url, "backup-1", "backup");
    // A test address nothing listens on: once the primary is gone too, the backup reaches nothing.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let test_address = format!("cluster.test_addresses={closed}");
    ok(
        &primary_dir,
        &[
            "config",
            "set",
            "cluster.auto_failover=true",
            "cluster.probe_interval=1s",
            "cluster.takeover_after=2s",
            &test_address,
        ],
    );
    eventually("the settings on the backup", || config(&backup_dir)["config"]["cluster"]["auto_failover"] == true);
    eventually("the test address reported unreachable", || {
        events(&backup_dir).contains("failover.test_ips_unreachable")
    });
    primary.kill9();
    eventually("the isolation event", || events(&backup_dir).contains("failover.backup_isolated"));
    std::thread::sleep(std::time::Duration::from_secs(4));
    assert_eq!(status(&backup_dir)["role"], "backup", "a backup that reaches nothing does not take over");
    assert!(!events(&backup_dir).contains("failover.takeover"));

    // Its own switch off: it says so and stops checking.
    ok(&backup_dir, &["config", "set", "cluster.backup_enabled=false"]);
    eventually("the backup_disabled event", || events(&backup_dir).contains("failover.backup_disabled"));
}

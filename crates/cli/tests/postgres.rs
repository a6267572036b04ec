//! Several real daemons on one throw-away PostgreSQL database on loopback: one configuration, one set of accounts
//! and API tokens, one outbox. A change made on one node is in force on the others without polling (their poll
//! intervals are an hour here: only the database's notifications can tell them); messages accepted by either node
//! are delivered once each; a node killed with SIGKILL under load loses nothing it acknowledged.

#![allow(clippy::unwrap_used)] // a failed step is a failed test

mod support;

use serde_json::{Value, json};
use std::{collections::BTreeMap, path::Path};
use support::*;
use tidings_testkit::{Postgres, SmtpPeer};

/// `tidings --database-url URL ARGS…` on `dir`, which must succeed.
#[track_caller]
fn db_ok(dir: &Path, url: &str, args: &[&str]) -> String {
    let mut all = vec!["--database-url", url];
    all.extend_from_slice(args);
    ok(dir, &all)
}

#[track_caller]
fn db_fails(dir: &Path, url: &str, args: &[&str]) -> String {
    let mut all = vec!["--database-url", url];
    all.extend_from_slice(args);
    fails(dir, &all)
}

/// A daemon on `dir` and the shared database, which only the database's notifications can tell of changes; named
/// after its directory (the nodes of these tests share one host name).
fn serve(dir: &Path, url: &str, extra: &[&str]) -> Daemon {
    let name = dir.file_name().unwrap().to_str().unwrap();
    let mut args = vec![
        "--database-url",
        url,
        "--node-id",
        name,
        "--config-poll-interval",
        "1h",
        "--notify-poll-interval",
        "1h",
        "--queue-poll-interval",
        "1h",
    ];
    args.extend_from_slice(extra);
    Daemon::start(dir, &args)
}

/// The first node initialises the database (the administrator's password in `a/admin-password`); the second joins
/// it with the first one's key.
fn two_nodes(tmp: &Path, url: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let (a, b) = (tmp.join("a"), tmp.join("b"));
    let made = db_ok(&a, url, &["init"]);
    assert!(made.contains("administrator account: admin"), "{made}");
    let password = made.lines().find_map(|l| l.trim().strip_prefix("password: ")).unwrap();
    std::fs::write(tmp.join("admin-password"), password.split(' ').next().unwrap()).unwrap();
    let key = a.join("secret.key");
    let joined = db_ok(&b, url, &["init", "--join-key", key.to_str().unwrap()]);
    assert!(joined.contains("no account was created"), "{joined}");
    (a, b)
}

fn submit(address: &str, token: &str, subject: &str) {
    let body = json!({"to": ["ops@example.com"], "subject": subject, "text": "shared queue"});
    let (status, answer) = http(address, "POST", "/api/v1/messages", Some(token), Some(&body));
    assert_eq!(status, 202, "{answer}");
}

/// One HTTP/1.1 exchange as text (head and body), with `cookie` sent when given.
fn exchange(address: &str, method: &str, path: &str, cookie: Option<&str>, form: Option<&str>) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    let body = form.unwrap_or_default();
    let cookie = cookie.map(|c| format!("Cookie: {c}\r\n")).unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n{cookie}Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

/// The `name=value` of each cookie a response sets.
fn cookies(response: &str) -> Vec<String> {
    response
        .lines()
        .filter_map(|l| l.strip_prefix("set-cookie: ").or_else(|| l.strip_prefix("Set-Cookie: ")))
        .map(|c| c.split(';').next().unwrap().to_owned())
        .collect()
}

/// Signs in as `admin` on the node at `address`; the session cookie.
fn sign_in(address: &str, password: &str) -> String {
    let page = exchange(address, "GET", "/login", None, None);
    let login_cookie = cookies(&page).join("; ");
    let csrf = page.split("name=\"csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
    let form = format!("csrf={csrf}&username=admin&password={password}&next=%2F");
    let signed_in = exchange(address, "POST", "/login", Some(&login_cookie), Some(&form));
    assert!(signed_in.starts_with("HTTP/1.1 303"), "{signed_in}");
    cookies(&signed_in).into_iter().find(|c| !c.ends_with('=')).unwrap()
}

fn subject(message: &Value) -> String {
    let data = message["data"].as_str().unwrap();
    data.lines().find_map(|l| l.strip_prefix("Subject: ")).unwrap().to_owned()
}

#[test]
fn nodes_on_one_database_share_the_configuration_the_accounts_and_the_outbox() {
    let server = Postgres::start();
    let url = server.database("tidings");
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = two_nodes(tmp.path(), &url);

    // A node without the key is refused, and told how to join; the password in the URL is never shown.
    let stranger = tmp.path().join("stranger");
    let err = db_fails(&stranger, &url, &["init"]);
    assert!(err.contains("initialised already") && err.contains("--join-key"), "{err}");
    let with_password = url.replace("postgres@", "postgres:Hunter2-db-pass@");
    let err = db_fails(&stranger, &with_password, &["init"]);
    assert!(!err.contains("Hunter2-db-pass") && err.contains("postgres:***@"), "{err}");
    let wrong_key = tmp.path().join("wrong.key");
    std::fs::write(&wrong_key, "q3Vn7bMGpwAH9bYfqXyNsNHm4l4wSLGMCyqEx5c1T2Q=\n").unwrap();
    let err = db_fails(&stranger, &url, &["init", "--join-key", wrong_key.to_str().unwrap()]);
    assert!(err.contains("not the one the database"), "{err}");

    let mut peer = SmtpPeer::start(&[]);
    let port = format!("smtp.port={}", peer.port);
    db_ok(
        &a,
        &url,
        &["config", "set", "sender=alerts@example.com", "smtp.host=127.0.0.1", &port, "smtp.encryption=none"],
    );
    let mut node_a = serve(&a, &url, &[]);
    let mut node_b = serve(&b, &url, &[]);
    node_b.wait_for_log(|v| v["message"] == "listening for changes made by the other nodes of the database");

    // One set of API tokens: made on one node, accepted by the other.
    let token =
        db_ok(&a, &url, &["api-token", "create", "--name", "shared", "--role", "administrator"]).trim().to_owned();
    let (status, config) = http(&node_b.address, "GET", "/api/v1/email-config", Some(&token), None);
    assert_eq!((status, config["config"]["sender"].as_str()), (200, Some("alerts@example.com")), "{config}");

    // A change made through one node's API is in force on the other, told by the database (it polls hourly).
    let (status, answer) = http(
        &node_a.address,
        "PATCH",
        "/api/v1/email-config",
        Some(&token),
        Some(&json!({"sender": "ops@example.com"})),
    );
    assert_eq!(status, 200, "{answer}");
    let changed = |v: &Value| v["message"] == "email configuration changed; now in force" && v["revision"] == 2;
    node_b.wait_for_log(changed);
    node_a.wait_for_log(changed);

    // One set of web sessions: signed in on one node, signed in on the other, which lists both nodes.
    let password = std::fs::read_to_string(tmp.path().join("admin-password")).unwrap();
    let session = sign_in(&node_a.address, &password);
    let page = exchange(&node_b.address, "GET", "/cluster", Some(&session), None);
    assert!(page.starts_with("HTTP/1.1 200") && page.contains("id=\"database-nodes\""), "{page}");
    assert!(page.contains("b (this node)") && page.contains(">a<"), "both nodes, this one marked: {page}");
    let (_, ready) = http(&node_b.address, "GET", "/readyz", None, None);
    let nodes: Vec<(&str, bool, bool)> = ready["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["node"].as_str().unwrap(), n["live"].as_bool().unwrap(), n["this"].as_bool().unwrap()))
        .collect();
    assert_eq!(nodes, [("a", true, false), ("b", true, true)], "{ready}");
    let metrics = exchange(&node_a.address, "GET", "/metrics", Some(&session), None);
    assert!(metrics.contains("tidings_database_nodes 2"), "{metrics}");

    // One outbox: messages accepted by both nodes are each delivered once.
    for i in 0..100 {
        submit(if i % 2 == 0 { &node_a.address } else { &node_b.address }, &token, &format!("shared {i}"));
    }
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    while seen.len() < 100 {
        *seen.entry(subject(&peer.next_message_blocking())).or_default() += 1;
    }
    eventually("both nodes to see every message delivered", || {
        [&node_a, &node_b].iter().all(|node| {
            let (_, list) =
                http(&node.address, "GET", "/api/v1/messages?status=delivered&limit=1000", Some(&token), None);
            list["messages"].as_array().is_some_and(|m| m.len() == 100)
        })
    });
    seen.extend(peer.received_now().iter().map(|m| (subject(m), 2)));
    assert!(seen.values().all(|n| *n == 1), "delivered once each: {seen:?}");

    // A third node that takes a live node's name is refused before it touches the queue.
    let c = tmp.path().join("c");
    db_ok(&c, &url, &["init", "--join-key", a.join("secret.key").to_str().unwrap()]);
    let refused = tidings()
        .args(["--database-url", &url, "--data-dir", c.to_str().unwrap(), "serve", "--listen", "127.0.0.1:0"])
        .args(["--node-id", "a"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success() && said.contains("another node named \"a\" uses this database"), "{said}");
    assert!(said.contains("--node-id"), "{said}");

    // Nodes of one database are peers: the roles of a primary/backup cluster are refused, with the reason.
    let err = db_fails(&b, &url, &["cluster", "add-node", "backup-1", "--role", "backup"]);
    assert!(err.contains("peers already"), "{err}");
}

/// A device on loopback sending `subjects` through the gateway at `port` in one session, with Python's smtplib;
/// the subjects answered `250`.
fn send_through_gateway(port: u16, subjects: &[String]) -> Vec<String> {
    let script = format!(
        "import smtplib, sys, json\n\
         c = smtplib.SMTP('127.0.0.1', {port}, timeout=30)\n\
         for s in json.load(sys.stdin):\n\
         \x20   c.sendmail('printer@printers.example.com', ['ops@example.com'], f'Subject: {{s}}\\n\\nscan\\n')\n\
         \x20   print(s, flush=True)\n\
         c.quit()\n"
    );
    let mut device = std::process::Command::new(tidings_testkit::python())
        .args(["-c", &script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    serde_json::to_writer(device.stdin.take().unwrap(), subjects).unwrap();
    let out = device.wait_with_output().unwrap();
    assert!(out.status.success(), "the device failed");
    String::from_utf8(out.stdout).unwrap().lines().map(str::to_owned).collect()
}

/// Three nodes on one database, each with its gateway on an address of its own (`--gateway-listen`, as they share
/// one host): 5,000 messages, half through the nodes' APIs and half through their gateways from a real SMTP client,
/// each delivered once to a real SMTP server; a change made on one node in force on the two others; the daily
/// notice sent once for the cluster.
#[test]
fn three_nodes_deliver_five_thousand_messages_from_their_apis_and_gateways_once_each() {
    const MESSAGES: usize = 5_000;
    let server = Postgres::start();
    let url = server.database("three");
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = two_nodes(tmp.path(), &url);
    let c = tmp.path().join("c");
    db_ok(&c, &url, &["init", "--join-key", a.join("secret.key").to_str().unwrap()]);
    let mut peer = SmtpPeer::start(&[]);
    let port = format!("smtp.port={}", peer.port);
    let free = || std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let configured = format!("gateway.listen=127.0.0.1:{}", free());
    db_ok(
        &a,
        &url,
        &[
            "config",
            "set",
            "sender=alerts@example.com",
            "smtp.host=127.0.0.1",
            &port,
            "smtp.encryption=none",
            "admin.addresses=admin@example.com",
            "admin.daily_notice=true",
            "admin.daily_notice_time=00:00",
            "admin.time_zone=UTC",
            &configured,
            "gateway.allowed_networks=127.0.0.1/32",
            "gateway.rate_limit=100000",
        ],
    );
    // The day's notice is due: the last one went yesterday.
    let yesterday = (chrono::Utc::now() - chrono::Duration::days(1)).date_naive();
    server.query_in(
        "three",
        &format!(
            "INSERT INTO meta (key, value) VALUES ('notify.daily_notice_date', '{yesterday}') \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value"
        ),
    );
    let token =
        db_ok(&a, &url, &["api-token", "create", "--name", "load", "--role", "administrator"]).trim().to_owned();
    let gateways = [free(), free(), free()];
    let mut nodes: Vec<Daemon> = [&a, &b, &c]
        .iter()
        .zip(gateways)
        .map(|(dir, port)| serve(dir, &url, &["--gateway-listen", &format!("127.0.0.1:{port}")]))
        .collect();
    for (node, port) in nodes.iter_mut().zip(gateways) {
        node.wait_for_log(|v| v["message"] == "gateway listening" && v["address"] == format!("127.0.0.1:{port}"));
    }

    // A change made on the third node is in force on the two others.
    let (status, answer) = http(
        &nodes[2].address,
        "PATCH",
        "/api/v1/email-config",
        Some(&token),
        Some(&json!({"sender": "ops@example.com"})),
    );
    assert_eq!(status, 200, "{answer}");
    for node in &mut nodes {
        node.wait_for_log(|v| v["message"] == "email configuration changed; now in force" && v["revision"] == 2);
    }

    // Six devices and programs at once: each node's API and each node's gateway.
    let subjects: Vec<String> = (0..MESSAGES).map(|i| format!("three {i}")).collect();
    let addresses: Vec<String> = nodes.iter().map(|n| n.address.clone()).collect();
    let accepted: Vec<String> = std::thread::scope(|s| {
        let tasks: Vec<_> = (0..6)
            .map(|k| {
                let mine: Vec<String> = subjects.iter().skip(k).step_by(6).cloned().collect();
                let (address, gateway) = (&addresses[k % 3], gateways[k % 3]);
                let token = &token;
                s.spawn(move || match k < 3 {
                    true => {
                        mine.iter().for_each(|subject| submit(address, token, subject));
                        mine
                    }
                    false => send_through_gateway(gateway, &mine),
                })
            })
            .collect();
        tasks.into_iter().flat_map(|t| t.join().unwrap()).collect()
    });
    assert_eq!(accepted.len(), MESSAGES, "every message was accepted");

    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut notices = 0;
    while seen.len() < MESSAGES {
        let message = peer.next_message_blocking();
        match subject(&message) {
            s if s.ends_with("daily communication notice") => notices += 1,
            s => *seen.entry(s).or_default() += 1,
        }
    }
    eventually("every node to see every message delivered", || {
        nodes.iter().all(|node| {
            let (_, list) = http(&node.address, "GET", "/api/v1/messages?status=queued&limit=1", Some(&token), None);
            list["messages"].as_array().is_some_and(Vec::is_empty)
        })
    });
    for message in peer.received_now() {
        match subject(&message) {
            s if s.ends_with("daily communication notice") => notices += 1,
            s => *seen.entry(s).or_default() += 1,
        }
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "delivered more than once: {twice:?}");
    assert_eq!(seen.len(), MESSAGES, "only the accepted messages arrived");
    assert_eq!(notices, 1, "one daily notice for the cluster");
}

#[test]
fn a_node_killed_under_load_loses_nothing_the_other_delivers_its_messages() {
    let server = Postgres::start();
    let url = server.database("tidings");
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = two_nodes(tmp.path(), &url);
    // Each delivery takes 0.1 s at the relay, so that messages are in flight when the node dies.
    let mut peer = SmtpPeer::start(&["--delay-data", "0.1"]);
    let port = format!("smtp.port={}", peer.port);
    db_ok(
        &a,
        &url,
        &[
            "config",
            "set",
            "sender=alerts@example.com",
            "smtp.host=127.0.0.1",
            &port,
            "smtp.encryption=none",
            "delivery.connections=2",
            "delivery.timeout=1s",
            "delivery.lease=3s",
            "delivery.retry_first=1s",
        ],
    );
    let token =
        db_ok(&a, &url, &["api-token", "create", "--name", "load", "--role", "administrator"]).trim().to_owned();
    let node_a = serve(&a, &url, &[]);
    let node_b = serve(&b, &url, &[]);

    const MESSAGES: usize = 300;
    for i in 0..MESSAGES {
        submit(if i % 2 == 0 { &node_a.address } else { &node_b.address }, &token, &format!("load {i}"));
    }
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    while seen.len() < 20 {
        *seen.entry(subject(&peer.next_message_blocking())).or_default() += 1;
    }
    node_a.kill9();

    // Node b delivers the rest, node a's leased messages once their lease runs out.
    while seen.len() < MESSAGES {
        *seen.entry(subject(&peer.next_message_blocking())).or_default() += 1;
    }
    eventually("every message to be delivered", || {
        let (_, list) =
            http(&node_b.address, "GET", "/api/v1/messages?status=delivered&limit=1000", Some(&token), None);
        list["messages"].as_array().is_some_and(|m| m.len() == MESSAGES)
    });
    for message in peer.received_now() {
        *seen.entry(subject(&message)).or_default() += 1;
    }
    // The killed node comes back under its name (its data directory tells it from another node of that name).
    let _back = serve(&a, &url, &[]);
    let duplicates: usize = seen.values().map(|n| n - 1).sum();
    eprintln!("{MESSAGES} messages, {duplicates} delivered twice (in flight on the killed node)");
    assert_eq!(seen.len(), MESSAGES, "only the accepted messages arrived");
    // At most what node a had in flight: its two connections, and the outcomes of its last settle window.
    assert!(duplicates <= 4, "{duplicates} duplicates: {seen:?}");
    assert!(seen.values().all(|n| *n <= 2));
}

/// An idle node learns of changes through the database's notifications, so it asks the database little: counted
/// as the statements PostgreSQL logs for it over 20 seconds, with the default intervals.
#[test]
fn an_idle_node_asks_the_database_about_once_a_second_at_most() {
    let server = Postgres::start();
    let url = server.database("tidings");
    let tmp = tempfile::tempdir().unwrap();
    let (a, _) = two_nodes(tmp.path(), &url);
    server.query("ALTER SYSTEM SET log_statement = 'all'");
    server.query("SELECT pg_reload_conf()");
    let mut node = Daemon::start(&a, &["--database-url", &url]);
    node.wait_for_log(|v| v["message"] == "listening for changes made by the other nodes of the database");
    std::thread::sleep(std::time::Duration::from_secs(5));
    let before = server.log().len();
    std::thread::sleep(std::time::Duration::from_secs(20));
    let log = server.log();
    let asked: Vec<&str> =
        log[before..].lines().filter(|l| l.contains("LOG:  execute ") || l.contains("LOG:  statement: ")).collect();
    eprintln!("an idle node, 20 s: {} statements\n{}", asked.len(), asked.join("\n"));
    assert!(asked.len() <= 30, "{} statements in 20 s", asked.len());
    assert!(!asked.is_empty(), "the log shows the node's statements (the safety-net polls)");
}

/// A node moves from its SQLite database to PostgreSQL with `tidings store copy`, and runs there with what it had.
#[test]
fn a_data_directory_moves_to_postgres_with_store_copy() {
    let server = Postgres::start();
    let url = server.database("moved");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("node");
    ok(&dir, &["init"]);
    ok(&dir, &["config", "set", "sender=alerts@example.com", "smtp.host=127.0.0.1", "smtp.port=1"]);
    let sent = run(&dir, &["send", "--to", "ops@example.com", "--subject", "moved along", "--body", "hi"], "");
    assert!(sent.status.success(), "{}", stderr(&sent));
    ok(&dir, &["api-token", "create", "--name", "monitoring", "--role", "viewer"]);

    {
        let _daemon = Daemon::start(&dir, &[]);
        let err = fails(&dir, &["store", "copy", "--to", &url]);
        assert!(err.contains("a daemon is running") && err.contains("stop it first"), "{err}");
    }
    let out = ok(&dir, &["store", "copy", "--to", &url]);
    assert!(out.contains("messages: 1") && out.contains("Every row arrived"), "{out}");
    let err = fails(&dir, &["store", "copy", "--to", &url]);
    assert!(err.contains("holds data already") && err.contains("--force"), "{err}");

    // The same directory, its database now PostgreSQL's: the message, the token, the configuration.
    let listed = db_ok(&dir, &url, &["queue", "list"]);
    assert!(listed.contains("moved along"), "{listed}");
    assert!(db_ok(&dir, &url, &["api-token", "list"]).contains("monitoring"));
    assert!(db_ok(&dir, &url, &["config", "show"]).contains("alerts@example.com"));

    // And back to a file.
    let back = tmp.path().join("back.db");
    let out = db_ok(&dir, &url, &["store", "copy", "--to", back.to_str().unwrap()]);
    assert!(out.contains("messages: 1"), "{out}");
    let err = fails(&dir, &["store", "copy", "--to", "mysql://u:Secret-db-9@h/d"]);
    assert!(err.contains("postgres://") && !err.contains("Secret-db-9"), "{err}");
}

/// Two nodes sending as one mailbox to a relay that behaves as Exchange Online does (more than three sessions of a
/// mailbox get `432 4.3.2`): the mailbox's connections and pace are the cluster's, not each node's.
#[test]
fn the_limits_of_one_mailbox_hold_across_the_nodes() {
    const MAILBOX: &str = "box@example.com";
    let server = Postgres::start();
    let url = server.database("limits");
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = two_nodes(tmp.path(), &url);
    let stats_file = tmp.path().join("stats.json");
    let peer = SmtpPeer::start_tls(&[
        "--user",
        MAILBOX,
        "--password",
        "relay-pass-1",
        "--thread-limit",
        "3",
        "--delay-data",
        "0.3",
        "--stats-out",
        stats_file.to_str().unwrap(),
    ]);
    let port = format!("smtp.port={}", peer.port);
    let ca = format!("tls.ca_file={}", peer.ca_file.as_ref().unwrap().display());
    let user = format!("smtp.username={MAILBOX}");
    let secret = run(&a, &["--database-url", &url, "config", "set-secret", "smtp.password"], "relay-pass-1\n");
    assert!(secret.status.success(), "{}", stderr(&secret));
    db_ok(
        &a,
        &url,
        &[
            "config",
            "set",
            "sender=box@example.com",
            "smtp.host=127.0.0.1",
            &port,
            "smtp.encryption=starttls",
            &ca,
            "smtp.auth=password",
            &user,
            "delivery.connections=4",
            "delivery.identity_connections=3",
            "delivery.identity_messages_per_minute=12",
        ],
    );
    let token = db_ok(&a, &url, &["api-token", "create", "--name", "t", "--role", "administrator"]).trim().to_owned();
    let nodes = [serve(&a, &url, &[]), serve(&b, &url, &[])];
    for i in 0..30 {
        submit(&nodes[i % 2].address, &token, &format!("limits {i}"));
    }
    let stats = || -> Value {
        std::fs::read_to_string(&stats_file).ok().and_then(|s| serde_json::from_str(&s).ok()).unwrap_or(Value::Null)
    };
    let delivered = || {
        let (_, list) =
            http(&nodes[0].address, "GET", "/api/v1/messages?status=delivered&limit=100", Some(&token), None);
        list["messages"].as_array().map_or(0, Vec::len)
    };
    eventually("the minute's 12 messages", || delivered() >= 12);
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert_eq!(delivered(), 12, "the pace holds the rest, whichever node leased them, until the minute turns");
    let seen = stats()[MAILBOX].clone();
    assert!(seen["peak_sessions"].as_u64().unwrap() <= 3, "at most 3 sessions of the mailbox at once: {seen}");
    assert_eq!(seen["refused"], 0, "no 432: {seen}");
    assert_eq!(seen["messages"], 12, "{seen}");
}

/// Two nodes refreshing the relay account's token from a provider that takes each refresh token once (rotation
/// with reuse refused): they take turns, each with the token the other stored, and none is ever refused.
#[test]
fn the_nodes_take_turns_to_refresh_a_token_that_works_once() {
    use std::io::{BufRead, BufReader, Read, Write};
    const CLIENT: &str = "6731de76-14a6-49ae-97bc-6eba6914391e";
    let tmp = tempfile::tempdir().unwrap();
    let grants = tmp.path().join("grants");
    // Each refresh takes 2 s at the provider: without turns, the two nodes' refreshes would overlap.
    let fake = tidings_testkit::OAuthFake::start(
        8,
        &["--single-use-refresh", "--refresh-delay", "2", "--grants-out", grants.to_str().unwrap()],
    );
    let server = Postgres::start();
    let url = server.database("refresh");
    let (a, b) = two_nodes(tmp.path(), &url);
    let token_endpoint = fake.token_endpoint("contoso.com");
    let settings = [
        "config".to_owned(),
        "set".to_owned(),
        "sender=alerts@contoso.com".to_owned(),
        "smtp.host=smtp.example.com".to_owned(),
        "smtp.auth=oauth2".to_owned(),
        format!("oauth.client_id={CLIENT}"),
        format!("oauth.token_endpoint={token_endpoint}"),
        format!("oauth.authorization_endpoint={}", token_endpoint.replace("/token", "/authorize")),
        "oauth.scopes=https://outlook.office.com/SMTP.Send offline_access".to_owned(),
        "public_base_url=http://127.0.0.1:9".to_owned(),
    ];
    db_ok(&a, &url, &settings.iter().map(String::as_str).collect::<Vec<_>>());

    // Signed in once, by pasting where the provider sent the browser.
    let mut login = tidings()
        .args(["--database-url", &url, "--data-dir", a.to_str().unwrap(), "oauth", "login", "--paste"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(login.stdout.take().unwrap());
    let address = loop {
        let mut line = String::new();
        assert!(out.read_line(&mut line).unwrap() > 0, "no address printed");
        if let Some(rest) = line.trim().strip_prefix("http://") {
            break rest.to_owned();
        }
    };
    let (host, path) = address.split_once('/').unwrap();
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    write!(stream, "GET /{path} HTTP/1.0\r\nHost: {host}\r\n\r\n").unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let landed = answer.lines().find_map(|l| l.strip_prefix("Location: ")).unwrap().trim().to_owned();
    writeln!(login.stdin.take().unwrap(), "{landed}").unwrap();
    std::io::copy(&mut out, &mut std::io::sink()).unwrap();
    assert!(login.wait().unwrap().success());

    // Both nodes fetch a token at start, at once, and refresh it at 80 % of its 8 s lifetime; one node's refresh
    // serves both: the other finds the new token when its turn comes.
    let token = db_ok(&a, &url, &["api-token", "create", "--name", "t", "--role", "viewer"]).trim().to_owned();
    let nodes = [serve(&a, &url, &[]), serve(&b, &url, &[])];
    let refreshed =
        || -> Vec<String> { std::fs::read_to_string(&grants).unwrap_or_default().lines().map(str::to_owned).collect() };
    eventually("three refreshes", || refreshed().iter().filter(|l| *l == "GRANT refresh_token ok").count() >= 3);
    let seen = refreshed();
    assert!(!seen.iter().any(|l| l.contains("refused")), "a refresh token was used twice: {seen:?}");
    for node in &nodes {
        let (_, status) = http(&node.address, "GET", "/api/v1/oauth/status", Some(&token), None);
        assert_eq!(status["state"], "active", "{status}");
    }
    let logs: Vec<Value> = nodes.into_iter().flat_map(|n| n.terminate().1).collect();
    let count = |what: &str| logs.iter().filter(|v| v["message"] == what).count();
    let (own, taken) =
        (count("access token refreshed"), count("access token taken from the node of the database that refreshed it"));
    eprintln!("refreshed {own}, taken from the other node {taken}");
    // Each refresh served both nodes (the last may not have reached the other before the end).
    assert!(taken + 1 >= own && taken >= 2, "refreshed {own} times, taken {taken} times: {logs:#?}");
}

/// A PostgreSQL that takes TLS connections only: reached with `sslmode=verify-full` and its CA named, every
/// connection encrypted; without TLS, or without the CA, refused with what to put in the URL.
#[test]
fn a_database_that_takes_tls_only_is_reached_over_verified_tls() {
    let server = Postgres::start_tls();
    let url = server.database("secure");
    let ca = server.ca_file.as_ref().unwrap().display().to_string();
    let tmp = tempfile::tempdir().unwrap();

    let err = db_fails(&tmp.path().join("plain"), &format!("{url}?sslmode=disable"), &["init"]);
    assert!(err.contains("takes TLS connections only") && err.contains("sslmode=verify-full"), "{err}");
    let err = db_fails(&tmp.path().join("unverified"), &format!("{url}?sslmode=verify-full"), &["init"]);
    assert!(err.contains("sslrootcert="), "{err}");

    let secure = format!("{url}?sslmode=verify-full&sslrootcert={ca}");
    let dir = tmp.path().join("node");
    db_ok(&dir, &secure, &["init"]);
    db_ok(&dir, &secure, &["config", "set", "sender=alerts@example.com"]);
    let mut node = serve(&dir, &secure, &[]);
    node.wait_for_log(|v| v["message"] == "listening for changes made by the other nodes of the database");
    let (status, _) = http(&node.address, "GET", "/readyz", None, None);
    assert_eq!(status, 200);
    // The server's own view: Tidings' connections, the listener's among them, all encrypted.
    let seen = server.query(
        "SELECT count(*) FILTER (WHERE s.ssl), count(*) FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) \
         WHERE a.application_name = 'tidings'",
    );
    let (encrypted, all) = seen.split_once('|').unwrap();
    assert!(all.parse::<u32>().unwrap() >= 2 && encrypted == all, "encrypted|all: {seen}");
}

//! `tidings serve` as an operator runs it: first start, health, live configuration changes, one daemon per data
//! directory, graceful shutdown.

mod support;

use support::*;

#[test]
fn first_serve_initialises_the_data_dir_and_answers_health_checks() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let mut daemon = Daemon::start(&dir, &[]);

    let init = daemon.wait_for_log(|v| v["message"] == "initialised a new data directory");
    let password_file = init["password_file"].as_str().unwrap().to_owned();
    assert!(!init.to_string().contains(std::fs::read_to_string(&password_file).unwrap().trim()), "password logged");
    let password = std::fs::read_to_string(&password_file).unwrap();
    assert_eq!(password.trim().len(), 20);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&password_file).unwrap().permissions().mode() & 0o777, 0o600);

    let (status, body) = daemon.get("/healthz");
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
    let (status, body) = daemon.get("/readyz");
    assert_eq!((status, body["status"].as_str(), body["config_revision"].as_i64()), (200, Some("ready"), Some(0)));
    let (status, body) = daemon.get("/api/v1/openapi.json");
    assert_eq!(status, 200);
    assert!(body["paths"]["/readyz"].is_object());

    // The first administrator exists and the second start does not initialise again.
    let (status, logs) = daemon.terminate();
    assert!(status.success(), "{status:?}");
    assert!(logs.iter().any(|v| v["message"] == "Tidings stopped"), "graceful shutdown: {logs:#?}");
    let mut again = Daemon::start(&dir, &[]);
    again.wait_for_log(|v| v["message"] == "email configuration loaded");
    assert!(!again.seen.iter().any(|v| v["message"] == "initialised a new data directory"));
}

#[test]
fn a_second_daemon_on_the_same_data_dir_is_refused_and_harms_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let first = Daemon::start(tmp.path(), &[]);
    let out = run(tmp.path(), &["serve", "--listen", "127.0.0.1:0"], "");
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("another Tidings daemon") && err.contains(&format!("pid {}", first.child.id())), "{err}");
    assert_eq!(first.get("/readyz").0, 200);
    ok(tmp.path(), &["config", "set", "locale=nl"]);
    assert!(ok(tmp.path(), &["config", "show"]).contains("nl"));
}

#[test]
fn configuration_changes_from_the_cli_reach_a_running_daemon() {
    let tmp = tempfile::tempdir().unwrap();
    let mut daemon = Daemon::start(tmp.path(), &["--config-poll-interval", "100ms"]);
    assert_eq!(daemon.get("/readyz").1["config_revision"], 0);

    let out =
        ok(tmp.path(), &["config", "set", "sender=alerts@example.com", "smtp.host=smtp.example.com", "smtp.port=2525"]);
    assert!(out.contains("Saved revision 1"), "{out}");
    let changed = daemon.wait_for_log(|v| v["message"] == "email configuration changed; now in force");
    assert_eq!((changed["revision"].as_i64(), changed["saved_by"].as_str()), (Some(1), Some("cli:tester")));
    assert_eq!(daemon.get("/readyz").1["config_revision"], 1);

    // A refused change leaves the daemon's configuration alone.
    fails(tmp.path(), &["config", "set", "smtp.port=0"]);
    ok(tmp.path(), &["config", "set", "locale=de"]);
    daemon.wait_for_log(|v| v["message"] == "email configuration changed; now in force" && v["revision"] == 2);
    assert_eq!(daemon.get("/readyz").1["config_revision"], 2);
}

#[test]
fn serve_on_a_busy_address_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = holder.local_addr().unwrap().to_string();
    let err = fails(tmp.path(), &["serve", "--listen", &address]);
    assert!(err.contains(&format!("cannot listen on {address}")), "{err}");
}

#[test]
fn a_data_dir_whose_database_was_emptied_is_never_initialised_again() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    ok(dir, &["init"]);
    ok(dir, &["config", "set", "locale=nl"]);
    // The database emptied by mistake, its log still there (what a crash during a copy leaves).
    let (database, wal) = (dir.join("tidings.db"), dir.join("tidings.db-wal"));
    std::fs::write(&database, b"").unwrap();
    let log: Vec<u8> = (0..4096u32).flat_map(|n| n.to_le_bytes()).collect();
    std::fs::write(&wal, &log).unwrap();
    for args in [&["serve", "--listen", "127.0.0.1:0"][..], &["init"], &["config", "show"]] {
        let err = fails(dir, args);
        assert!(
            err.contains("was used before")
                && err.contains("secret.key")
                && err.contains("tidings.db-wal")
                && err.contains("restore the directory from a backup"),
            "tidings {args:?}: {err}"
        );
    }
    assert_eq!(std::fs::read(&wal).unwrap(), log, "the log is left as it was");
    assert_eq!(std::fs::metadata(&database).unwrap().len(), 0, "no new database was made");
    assert!(!dir.join("initial-admin-password").exists(), "no new administrator");

    // A key alone (the database removed) is refused the same way.
    std::fs::remove_file(&database).unwrap();
    std::fs::remove_file(&wal).unwrap();
    let err = fails(dir, &["serve", "--listen", "127.0.0.1:0"]);
    assert!(err.contains("was used before (") && err.contains("secret.key"), "{err}");
    assert!(!database.exists());

    // Without a key file (one kept in TIDINGS_SECRET_KEY), a first password file left behind tells the same.
    std::fs::remove_file(dir.join("secret.key")).unwrap();
    std::fs::write(dir.join("initial-admin-password"), "x\n").unwrap();
    let err = fails(dir, &["init"]);
    assert!(err.contains("initial-admin-password"), "{err}");
    // An empty directory (a first start took its lock) is initialised as ever.
    std::fs::remove_file(dir.join("initial-admin-password")).unwrap();
    let first = tmp.path().join("fresh");
    let mut daemon = Daemon::start(&first, &[]);
    daemon.wait_for_log(|v| v["message"] == "initialised a new data directory");
}

/// JSON lines with the documented fields (docs/operations.md, "Logs"), and the message's id on each line about
/// a message, from its acceptance to its delivery.
#[test]
fn json_logs_have_stable_fields_and_the_message_id_on_each_line_about_a_message() {
    let mut peer = tidings_testkit::SmtpPeer::start(&[]);
    let tmp = tempfile::tempdir().unwrap();
    ok(tmp.path(), &["init"]);
    configure_relay(tmp.path(), peer.port, &[]);
    let sent = ok(tmp.path(), &["send", "--to", "ops@example.com", "--subject", "logged", "--body", "x"]);
    let id: i64 = sent.split(|c: char| !c.is_ascii_digit()).find(|w| !w.is_empty()).unwrap().parse().unwrap();
    let mut daemon = Daemon::start(tmp.path(), &[]);
    let delivered = daemon.wait_for_log(|v| v["message"] == "delivered");
    peer.received_now();
    assert_eq!(delivered["message_id"].as_i64(), Some(id), "{delivered}");
    for field in ["timestamp", "level", "target", "attempt", "status"] {
        assert!(!delivered[field].is_null(), "{field} missing in {delivered}");
    }
    assert!(chrono::DateTime::parse_from_rfc3339(delivered["timestamp"].as_str().unwrap()).is_ok(), "{delivered}");
    assert_eq!(delivered["level"], "INFO");
    // Accepted by the daemon: the line says so, with the id.
    let token = ok(tmp.path(), &["api-token", "create", "--name", "logs", "--role", "network_administrator"]);
    let message = serde_json::json!({ "to": ["ops@example.com"], "subject": "via the API", "text": "x" });
    let (status, body) = http(&daemon.address, "POST", "/api/v1/messages", Some(token.trim()), Some(&message));
    assert_eq!(status, 202, "{body}");
    let second = body["id"].as_i64().unwrap();
    let accepted = daemon.wait_for_log(|v| v["message"] == "message accepted" && v["message_id"] == second);
    assert_eq!(accepted["origin"], "api:logs", "{accepted}");
    daemon.wait_for_log(|v| v["message"] == "delivered" && v["message_id"] == second);
    let (_, logs) = daemon.terminate();
    assert!(logs.iter().all(|v| v.is_object()), "every line is JSON");
}

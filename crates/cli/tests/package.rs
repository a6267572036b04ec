//! The Debian package, built by `scripts/package-deb` from this build's binary, installed on this machine with
//! `dpkg -i`: the user, the state directory, the unit, the manual pages and completions; the service's command
//! line run under the package's user (systemd is not the init here) tells systemd's socket it is ready and answers
//! `/healthz`; an upgrade keeps the data, a removal keeps it, a purge takes it and the user away.

#![allow(clippy::unwrap_used)] // a failed step is a failed test

mod support;

use std::{
    io::{BufRead, BufReader},
    os::unix::{fs::MetadataExt, fs::PermissionsExt, net::UnixDatagram},
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};
use support::http_get;
use tidings_testkit::repo_root;

fn sh(program: &str, args: &[&str]) -> std::process::Output {
    Command::new(program).args(args).output().unwrap_or_else(|e| panic!("{program}: {e}"))
}

#[track_caller]
fn must(program: &str, args: &[&str]) -> String {
    let out = sh(program, args);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{program} {args:?}:\n{stdout}\n{stderr}");
    stdout.into_owned()
}

fn user_exists() -> bool {
    sh("getent", &["passwd", "tidings"]).status.success()
}

#[test]
fn the_package_installs_starts_answers_upgrades_and_goes() {
    assert_eq!(must("id", &["-u"]).trim(), "0", "dpkg -i needs root: the CI runs the suite as root");
    let out = tempfile::tempdir().unwrap();
    let built = Command::new(repo_root().join("scripts/package-deb"))
        .args(["--binary", env!("CARGO_BIN_EXE_tidings"), "--out"])
        .arg(out.path())
        .output()
        .unwrap();
    assert!(built.status.success(), "{}", String::from_utf8_lossy(&built.stderr));
    let package = String::from_utf8_lossy(&built.stdout).trim().to_owned();
    // What an earlier run may have left: its daemon, its package.
    let _ = sh("pkill", &["-9", "-u", "tidings"]);
    let _ = sh("dpkg", &["--purge", "tidings"]);
    must("dpkg", &["-i", &package]);

    for file in [
        "/usr/bin/tidings",
        "/lib/systemd/system/tidings.service",
        "/etc/default/tidings",
        "/usr/share/man/man1/tidings.1.gz",
        "/usr/share/man/man1/tidings-serve.1.gz",
        "/usr/share/man/man1/tidings-backup.1.gz",
        "/usr/share/bash-completion/completions/tidings",
        "/usr/share/zsh/vendor-completions/_tidings",
        "/usr/share/fish/vendor_completions.d/tidings.fish",
        "/usr/share/doc/tidings/monitoring/tidings.rules.yml",
    ] {
        assert!(Path::new(file).exists(), "{file} was not installed");
    }
    assert!(user_exists(), "the system user");
    let state = std::fs::metadata("/var/lib/tidings").unwrap();
    let uid: u32 = must("id", &["-u", "tidings"]).trim().parse().unwrap();
    assert_eq!(
        (state.permissions().mode() & 0o777, state.uid()),
        (0o700, uid),
        "/var/lib/tidings, private, the user's"
    );
    let unit = std::fs::read_to_string("/lib/systemd/system/tidings.service").unwrap();
    assert!(unit.contains("Type=notify") && unit.contains("ProtectSystem=strict"), "{unit}");

    // The unit's command line, as its user, with a notify socket standing for systemd's.
    let sockets = tempfile::tempdir().unwrap();
    std::fs::set_permissions(sockets.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let socket_path = sockets.path().join("notify");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    std::fs::set_permissions(&socket_path, std::fs::Permissions::from_mode(0o777)).unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut daemon = Command::new("setpriv")
        .args([
            "--reuid=tidings",
            "--regid=tidings",
            "--init-groups",
            "--",
            "/usr/bin/tidings",
            "serve",
            "--listen",
            "127.0.0.1:0",
        ])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("TIDINGS_DATA_DIR", "/var/lib/tidings")
        .env("TIDINGS_LOG_FORMAT", "json")
        .env("NOTIFY_SOCKET", &socket_path)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = [0u8; 64];
    let n = socket.recv(&mut ready).expect("READY=1 on the notify socket");
    assert_eq!(&ready[..n], b"READY=1\n");
    let mut logs = BufReader::new(daemon.stderr.take().unwrap()).lines();
    let address = logs
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| {
            let v: serde_json::Value = serde_json::from_str(&l).ok()?;
            v["address"].as_str().filter(|_| v["message"] == "Tidings is listening").map(str::to_owned)
        })
        .expect("the daemon listens");
    // Its log keeps being read, as the journal would.
    std::thread::spawn(move || logs.for_each(drop));
    let (status, health) = http_get(&address, "/healthz");
    assert_eq!((status, health["status"].as_str()), (200, Some("ok")), "{health}");
    let _ = Command::new("kill").arg(daemon.id().to_string()).status();
    let stopped = daemon.wait().unwrap();
    if !stopped.success() {
        let _ = sh("pkill", &["-9", "-u", "tidings"]);
    }
    assert!(stopped.success(), "a clean stop on SIGTERM: {stopped:?}");
    let password = std::fs::metadata("/var/lib/tidings/initial-admin-password").unwrap();
    assert_eq!((password.uid(), password.permissions().mode() & 0o777), (uid, 0o600), "the first start initialised");

    must("dpkg", &["-i", &package]);
    assert!(Path::new("/var/lib/tidings/tidings.db").exists(), "an upgrade keeps the data");
    must("dpkg", &["-r", "tidings"]);
    assert!(!Path::new("/usr/bin/tidings").exists(), "removed");
    assert!(
        Path::new("/var/lib/tidings/tidings.db").exists() && user_exists(),
        "a removal keeps the data and the user"
    );
    must("dpkg", &["--purge", "tidings"]);
    assert!(!Path::new("/var/lib/tidings").exists() && !user_exists(), "a purge takes the data and the user");
}

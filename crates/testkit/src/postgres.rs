//! A throw-away PostgreSQL server of the test's own: its own data directory, a free loopback port, its socket in
//! that directory; stopped when dropped. The server refuses to run as root, so as root it runs as `postgres`.
//! Debian's `postgresql` package provides it (`./scripts/test` installs it when missing).

use std::{
    path::{Path, PathBuf},
    process::Command,
};

/// A running server; `url` reaches its `postgres` database as the `postgres` superuser (trust, loopback only).
#[derive(Debug)]
pub struct Postgres {
    pub url: String,
    port: u16,
    bin: PathBuf,
    data: PathBuf,
    owner: Option<String>,
    _dir: tempfile::TempDir,
}

/// The directory of `initdb` and `pg_ctl`, newest version first.
fn binaries() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    found.sort();
    found.pop().expect(
        "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): run ./scripts/test, which installs \
         Debian's postgresql package",
    )
}

/// `program args…`, as `owner` when given.
fn run(owner: Option<&str>, program: &Path, args: &[&str]) {
    let mut command = match owner {
        Some(user) => {
            let mut c = Command::new("runuser");
            c.args(["-u", user, "--"]).arg(program);
            c
        }
        None => Command::new(program),
    };
    let out = command.args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{} {args:?} failed: {}{}",
        program.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Postgres {
    pub fn start() -> Self {
        let bin = binaries();
        let dir = tempfile::tempdir().unwrap();
        // As root, the server and its files belong to `postgres`.
        let owner = (is_root()).then(|| "postgres".to_owned());
        if owner.is_some() {
            let ids = Command::new("id").args(["-u", "postgres"]).output().unwrap();
            let uid: u32 = String::from_utf8_lossy(&ids.stdout).trim().parse().expect("no postgres user");
            let gids = Command::new("id").args(["-g", "postgres"]).output().unwrap();
            let gid: u32 = String::from_utf8_lossy(&gids.stdout).trim().parse().unwrap();
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap();
        }
        let data = dir.path().join("data");
        let data_text = data.display().to_string();
        run(
            owner.as_deref(),
            &bin.join("initdb"),
            &["-D", &data_text, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"],
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let options = format!("-p {port} -k {} -c listen_addresses=127.0.0.1", dir.path().display());
        let log = dir.path().join("log").display().to_string();
        run(owner.as_deref(), &bin.join("pg_ctl"), &["-D", &data_text, "-o", &options, "-l", &log, "-w", "start"]);
        Self { url: format!("postgres://postgres@127.0.0.1:{port}/postgres"), port, bin, data, owner, _dir: dir }
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("log")).unwrap_or_default()
    }

    /// Runs `sql` on the `postgres` database with `psql`; its output, unaligned, without headers.
    pub fn query(&self, sql: &str) -> String {
        self.query_in("postgres", sql)
    }

    /// Runs `sql` on `database` with `psql`; its output, unaligned, without headers.
    pub fn query_in(&self, database: &str, sql: &str) -> String {
        let port = self.port.to_string();
        let out = Command::new("psql")
            .args(["-h", "127.0.0.1", "-p", &port, "-U", "postgres", "-d", database, "-tAc", sql])
            .output()
            .unwrap();
        assert!(out.status.success(), "psql {sql:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Creates a database of its own named `name` (letters, digits and `_`) on this server; its URL.
    pub fn database(&self, name: &str) -> String {
        let port = self.port.to_string();
        run(None, &self.bin.join("createdb"), &["-h", "127.0.0.1", "-p", &port, "-U", "postgres", name]);
        format!("postgres://postgres@127.0.0.1:{port}/{name}")
    }
}

/// Whether this process runs as root (from `/proc/self/status`, without `unsafe`).
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false)
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.data.display().to_string();
        let mut command = match &self.owner {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(self.bin.join("pg_ctl"));
                c
            }
            None => Command::new(self.bin.join("pg_ctl")),
        };
        let _ = command.args(["-D", &data, "-m", "immediate", "-w", "stop"]).output();
    }
}

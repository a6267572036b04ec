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
    /// With [`Postgres::start_tls`]: the certificate to trust (`sslrootcert`).
    pub ca_file: Option<PathBuf>,
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
        Self::spawn(false)
    }

    /// A server that takes TLS connections only (`hostssl`; a plain one is rejected), with a certificate for
    /// `127.0.0.1` and `localhost` whose file is `ca_file`.
    pub fn start_tls() -> Self {
        Self::spawn(true)
    }

    fn spawn(tls: bool) -> Self {
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
        let ca_file = tls.then(|| {
            let made =
                rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
            let (cert, key) = (made.cert.pem(), made.key_pair.serialize_pem());
            write_owned(&data.join("server.crt"), &cert, owner.is_some());
            write_owned(&data.join("server.key"), &key, owner.is_some());
            let hba =
                "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostnossl all all 127.0.0.1/32 reject\n";
            write_owned(&data.join("pg_hba.conf"), hba, owner.is_some());
            let ca = dir.path().join("ca.pem");
            std::fs::write(&ca, cert).unwrap();
            ca
        });
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let ssl = if tls { " -c ssl=on" } else { "" };
        let options = format!("-p {port} -k {} -c listen_addresses=127.0.0.1{ssl}", dir.path().display());
        let log = dir.path().join("log").display().to_string();
        run(owner.as_deref(), &bin.join("pg_ctl"), &["-D", &data_text, "-o", &options, "-l", &log, "-w", "start"]);
        Self {
            url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
            port,
            bin,
            data,
            owner,
            ca_file,
            _dir: dir,
        }
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

/// Writes `text` to `path`, readable by its owner only, and owned by `postgres` when `as_postgres`.
fn write_owned(path: &Path, text: &str, as_postgres: bool) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    if as_postgres {
        let status = Command::new("chown").args(["postgres:postgres"]).arg(path).status().unwrap();
        assert!(status.success(), "chown {}", path.display());
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

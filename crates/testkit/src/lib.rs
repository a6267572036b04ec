//! Test support: the real peers Tidings' tests talk to, started on loopback.
//!
//! The peers come from `./scripts/test`, which installs them (a Python virtual environment with aiosmtpd under
//! `.venv/`). A test that cannot find them fails and says so: it never skips.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test support: a failed step is a failed test

mod postgres;

pub use postgres::Postgres;
use serde_json::Value;
use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex, mpsc},
    time::Duration,
};

/// How long a test waits for a message to arrive.
const WAIT: Duration = Duration::from_secs(30);

/// The repository's root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// The Python interpreter of the test peers' virtual environment.
pub fn python() -> PathBuf {
    let python = std::env::var_os("TIDINGS_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".venv/bin/python"));
    assert!(
        python.exists(),
        "the test peers are not installed ({} is missing): run ./scripts/test, which installs them",
        python.display()
    );
    python
}

/// A real SMTP server (aiosmtpd, `tests/peers/smtp_server.py`) on 127.0.0.1.
#[derive(Debug)]
pub struct SmtpPeer {
    child: Child,
    pub port: u16,
    /// The CA that signed the server's certificate, when started with TLS.
    pub ca_file: Option<PathBuf>,
    messages: Arc<Mutex<mpsc::Receiver<Value>>>,
    _dir: tempfile::TempDir,
}

impl SmtpPeer {
    /// Starts a plain server (no TLS) with these options of `smtp_server.py`.
    pub fn start(args: &[&str]) -> Self {
        Self::spawn(args, false)
    }

    /// Starts a server with a certificate from a throw-away CA: STARTTLS in `--mode plain`, implicit TLS with
    /// `--mode tls`.
    pub fn start_tls(args: &[&str]) -> Self {
        Self::spawn(args, true)
    }

    /// The fake of Microsoft Graph's sendMail and the Gmail API's send (`tests/peers/mail_api_fake.py`), taking
    /// the access tokens listed in `access_tokens` (an [`OAuthFake`]'s); its messages are received as the SMTP
    /// peer's are (`api`, `mailbox`, `data`), and [`SmtpPeer::control`] steers it.
    pub fn mail_api(access_tokens: &std::path::Path, args: &[&str]) -> Self {
        let tokens = access_tokens.display().to_string();
        let mut all = vec!["--access-tokens", tokens.as_str()];
        all.extend_from_slice(args);
        Self::spawn_script("tests/peers/mail_api_fake.py", &all, false)
    }

    /// Calls a control endpoint of the mail API fake (`throttle?count=1&retry_after=2`); its JSON answer.
    pub fn control(&self, what: &str) -> Value {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(stream, "GET /control/{what} HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200") || answer.starts_with("HTTP/1.0 200"), "control {what}: {answer}");
        serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap_or("null")).unwrap_or(Value::Null)
    }

    fn spawn(args: &[&str], tls: bool) -> Self {
        Self::spawn_script("tests/peers/smtp_server.py", args, tls)
    }

    fn spawn_script(script: &str, args: &[&str], tls: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ca_file = tls.then(|| dir.path().join("ca.pem"));
        let mut command = Command::new(python());
        command.arg(repo_root().join(script)).args(args);
        if let Some(ca) = &ca_file {
            command.arg("--tls-ca-out").arg(ca);
        }
        let mut child = command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let ready = lines.next().expect("the SMTP peer exited before it was ready").unwrap();
        let port = ready
            .strip_prefix("READY ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line {ready:?}"));
        let (tx, messages) = mpsc::channel();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if tx.send(serde_json::from_str(&line).unwrap_or(Value::String(line))).is_err() {
                    return;
                }
            }
        });
        Self { child, port, ca_file, messages: Arc::new(Mutex::new(messages)), _dir: dir }
    }

    /// The next message the server accepted, waiting up to 30 s.
    pub async fn next_message(&mut self) -> Value {
        let messages = self.messages.clone();
        tokio::task::spawn_blocking(move || receive(&messages)).await.unwrap()
    }

    /// The next message, for tests without a runtime.
    pub fn next_message_blocking(&mut self) -> Value {
        receive(&self.messages)
    }

    /// Messages received so far and not yet taken.
    pub fn received_now(&mut self) -> Vec<Value> {
        let messages = self.messages.lock().unwrap();
        std::iter::from_fn(|| messages.try_recv().ok()).collect()
    }
}

fn receive(messages: &Mutex<mpsc::Receiver<Value>>) -> Value {
    match messages.lock().unwrap().recv_timeout(WAIT) {
        Ok(message) => message,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("no message reached the SMTP peer within {} s", WAIT.as_secs()),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("the SMTP peer stopped"),
    }
}

impl Drop for SmtpPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The fake of Microsoft's token endpoint (`tests/peers/oauth_fake.py`) on 127.0.0.1.
#[derive(Debug)]
pub struct OAuthFake {
    child: Child,
    pub port: u16,
    /// The access tokens valid now, one a line: give it to [`SmtpPeer`] as `--token-file`.
    pub access_tokens: PathBuf,
    _dir: tempfile::TempDir,
}

impl OAuthFake {
    /// Starts the fake; `lifetime` is the access tokens' lifetime in seconds.
    pub fn start(lifetime: u64, extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let access_tokens = dir.path().join("access-tokens");
        let mut child = Command::new(python())
            .arg(repo_root().join("tests/peers/oauth_fake.py"))
            .arg("--lifetime")
            .arg(lifetime.to_string())
            .arg("--access-tokens")
            .arg(&access_tokens)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
        let port = first
            .trim()
            .strip_prefix("READY ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line {first:?}"));
        Self { child, port, access_tokens, _dir: dir }
    }

    /// The token endpoint for a tenant.
    pub fn token_endpoint(&self, tenant: &str) -> String {
        format!("http://127.0.0.1:{}/{tenant}/oauth2/v2.0/token", self.port)
    }

    /// Calls a control endpoint: `issue?refresh_token=X`, `revoke`, `outage?count=N`.
    pub fn control(&self, what: &str) {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(stream, "GET /control/{what} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.0 200"), "control {what}: {answer}");
    }
}

impl Drop for OAuthFake {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A real OAuth 2.0 server, `oidc-provider` from npm (`tests/peers/node/oidc_server.mjs`), on 127.0.0.1, with
/// one client `tidings` / `tidings-secret` allowed to redirect to `redirect_uri`.
#[derive(Debug)]
pub struct OidcProvider {
    child: Child,
    pub port: u16,
}

impl OidcProvider {
    pub fn start(redirect_uri: &str, access_token_ttl: u64) -> Self {
        let dir = repo_root().join("tests/peers/node");
        assert!(
            dir.join("node_modules/oidc-provider").exists(),
            "oidc-provider is not installed: run ./scripts/test, which installs the test peers"
        );
        let mut child = Command::new("node")
            .arg(dir.join("oidc_server.mjs"))
            .arg(redirect_uri)
            .arg(access_token_ttl.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        stdout.read_line(&mut first).unwrap();
        let port = first
            .trim()
            .strip_prefix("READY ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line {first:?}"));
        // Keep reading: Node dies of EPIPE when its standard output is closed.
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        Self { child, port }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

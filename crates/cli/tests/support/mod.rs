//! Running the real `tidings` binary: commands, a daemon in the background, and plain HTTP/1.1 requests to it.

#![allow(dead_code, clippy::unwrap_used)] // test support: a failed step is a failed test

use serde_json::Value;
use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

pub fn tidings() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tidings"));
    cmd.env_remove("TIDINGS_DATA_DIR").env_remove("TIDINGS_SECRET_KEY").env("USER", "tester");
    cmd
}

/// Runs `tidings --data-dir DIR ARGS…`, feeding `stdin`.
pub fn run(dir: &Path, args: &[&str], stdin: &str) -> Output {
    let mut child = tidings()
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs a command that must succeed, returning its standard output.
#[track_caller]
pub fn ok(dir: &Path, args: &[&str]) -> String {
    let out = run(dir, args, "");
    assert!(out.status.success(), "tidings {args:?} failed: {}{}", stdout(&out), stderr(&out));
    stdout(&out)
}

/// Runs a command that must fail, returning its standard error.
#[track_caller]
pub fn fails(dir: &Path, args: &[&str]) -> String {
    let out = run(dir, args, "");
    assert!(!out.status.success(), "tidings {args:?} should have failed: {}", stdout(&out));
    stderr(&out)
}

/// A `tidings serve` in the background, with JSON logs read line by line.
pub struct Daemon {
    pub child: Child,
    pub address: String,
    pub data_dir: PathBuf,
    logs: mpsc::Receiver<Value>,
    pub seen: Vec<Value>,
}

impl Daemon {
    /// Starts a daemon on a free loopback port and waits until it listens.
    pub fn start(dir: &Path, extra: &[&str]) -> Self {
        Self::start_from(tidings(), dir, extra)
    }

    /// The same, with the resource limits `prlimit` sets (`--nofile=64`): the daemon keeps its pid.
    pub fn start_limited(limits: &[&str], dir: &Path, extra: &[&str]) -> Self {
        let mut command = Command::new("prlimit");
        command.args(limits).arg("--").arg(env!("CARGO_BIN_EXE_tidings"));
        command.env_remove("TIDINGS_DATA_DIR").env_remove("TIDINGS_SECRET_KEY").env("USER", "tester");
        Self::start_from(command, dir, extra)
    }

    fn start_from(mut command: Command, dir: &Path, extra: &[&str]) -> Self {
        let mut child = command
            .args(["--log-format", "json", "serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, logs) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let value = serde_json::from_str(&line).unwrap_or(Value::String(line));
                if tx.send(value).is_err() {
                    return;
                }
            }
        });
        let mut daemon = Self { child, address: String::new(), data_dir: dir.to_owned(), logs, seen: Vec::new() };
        let listening = daemon.wait_for_log(|v| v["message"] == "Tidings is listening");
        daemon.address = listening["address"].as_str().unwrap().to_owned();
        daemon
    }

    /// Waits (up to 20 s) for a log line matching `pred`, returning it.
    #[track_caller]
    pub fn wait_for_log(&mut self, pred: impl Fn(&Value) -> bool) -> Value {
        if let Some(found) = self.seen.iter().find(|v| pred(v)) {
            return found.clone();
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.logs.recv_timeout(left) {
                Ok(value) => {
                    self.seen.push(value.clone());
                    if pred(&value) {
                        return value;
                    }
                }
                Err(_) => panic!("no such log line within 20 s; saw {:#?}", self.seen),
            }
        }
    }

    pub fn get(&self, path: &str) -> (u16, Value) {
        http_get(&self.address, path)
    }

    /// Kills the daemon with SIGKILL, as a crash or power loss would, and waits for it to be gone.
    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Sends SIGTERM and waits for the exit.
    pub fn terminate(mut self) -> (std::process::ExitStatus, Vec<Value>) {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
        let status = self.child.wait().unwrap();
        let rest: Vec<Value> = self.logs.iter().collect();
        let mut seen = std::mem::take(&mut self.seen);
        seen.extend(rest);
        (status, seen)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plain HTTP/1.1 GET; returns the status and the JSON body.
pub fn http_get(address: &str, path: &str) -> (u16, Value) {
    http(address, "GET", path, None, None)
}

/// A plain HTTP/1.1 request with an optional bearer token and JSON body.
pub fn http(address: &str, method: &str, path: &str, token: Option<&str>, body: Option<&Value>) -> (u16, Value) {
    let mut stream = TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let body = body.map(Value::to_string).unwrap_or_default();
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, serde_json::from_str(body).unwrap_or(Value::String(body.to_owned())))
}

/// Configures `dir` to deliver to a local test relay quickly (1 s first retry, short timeouts).
pub fn configure_relay(dir: &Path, port: u16, extra: &[&str]) {
    let port = format!("smtp.port={port}");
    let mut args = vec![
        "config",
        "set",
        "sender=alerts@example.com",
        "smtp.host=127.0.0.1",
        &port,
        "smtp.encryption=none",
        "delivery.retry_first=1s",
        "delivery.retry_max=2s",
        "delivery.timeout=5s",
        "delivery.lease=15s",
    ];
    args.extend_from_slice(extra);
    ok(dir, &args);
}

/// Polls `check` every 50 ms until it returns true, for at most 20 s.
#[track_caller]
pub fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

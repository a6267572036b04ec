//! Sending through Microsoft Graph and the Gmail API instead of SMTP (`delivery.transport`), against a fake of
//! both that checks each request's shape (the bearer token, the mailbox in the path, base64 or raw MIME) and
//! answers as they do: accepted, throttled with `Retry-After`, refused with their error bodies.

#![allow(clippy::unwrap_used)] // a failed step is a failed test

mod support;

use serde_json::{Value, json};
use support::Tidings;
use tidings_testkit::{OAuthFake, SmtpPeer};

const CLIENT: &str = "6731de76-14a6-49ae-97bc-6eba6914391e";

async fn through(transport: &str, api_args: &[&str], extra: &[(&str, &str)]) -> (Tidings, SmtpPeer, OAuthFake, u16) {
    through_with(transport, &[], api_args, extra).await
}

async fn through_with(
    transport: &str,
    oauth_args: &[&str],
    api_args: &[&str],
    extra: &[(&str, &str)],
) -> (Tidings, SmtpPeer, OAuthFake, u16) {
    let fake = OAuthFake::start(3600, oauth_args);
    let api = SmtpPeer::mail_api(&fake.access_tokens, api_args);
    let gateway = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let endpoint = format!("http://127.0.0.1:{}", api.port);
    let settings = [
        ("sender", "alerts@contoso.com".to_owned()),
        ("oauth.provider", "microsoft".into()),
        ("oauth.tenant", "contoso.com".into()),
        ("oauth.client_id", CLIENT.into()),
        ("oauth.token_endpoint", fake.token_endpoint("contoso.com")),
        ("oauth.client_secret", "app-secret".into()),
        ("delivery.transport", transport.into()),
        ("graph.endpoint", endpoint.clone()),
        ("gmail.endpoint", endpoint),
        ("delivery.retry_first", "1s".into()),
        ("delivery.relay_backoff_first", "1s".into()),
        ("delivery.relay_backoff_max", "2s".into()),
        ("delivery.timeout", "5s".into()),
        ("gateway.listen", format!("127.0.0.1:{gateway}")),
        ("gateway.allowed_networks", "127.0.0.1/32".into()),
    ];
    let mut edits: Vec<(String, String)> = settings.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect();
    edits.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    let tidings = Tidings::start(edits).await;
    let (code, done) = tidings.post("/api/v1/oauth/client-credentials", json!({})).await;
    assert_eq!(code, 200, "{done}");
    (tidings, api, fake, gateway)
}

/// A device's message through the gateway, with a blind copy only its envelope names (off the runtime, which
/// runs the daemon).
async fn device_sends(port: u16, subject: &'static str) {
    tokio::task::spawn_blocking(move || smtplib_sends(port, subject)).await.unwrap();
}

fn smtplib_sends(port: u16, subject: &str) {
    let script = format!(
        "import smtplib\n\
         c = smtplib.SMTP('127.0.0.1', {port}, timeout=10)\n\
         c.sendmail('scanner@contoso.com', ['ops@contoso.com', 'hidden@contoso.com'], \
         'From: scanner@contoso.com\\nTo: ops@contoso.com\\nSubject: {subject}\\n\\nscan\\n')\n\
         c.quit()\n"
    );
    let out = std::process::Command::new(tidings_testkit::python()).args(["-c", &script]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

fn subject(message: &Value) -> String {
    let data = message["data"].as_str().unwrap();
    data.lines().find_map(|l| l.strip_prefix("Subject: ")).unwrap_or_default().trim().to_owned()
}

async fn attempts(tidings: &Tidings, id: i64, status: &str) -> Vec<Value> {
    let message = tidings.wait_for_status(id, status).await;
    message["attempt_log"].as_array().unwrap().clone()
}

#[tokio::test]
async fn microsoft_graph_sends_the_mime_message_and_its_refusals_are_explained() {
    let (tidings, mut graph, _fake, gateway) = through("microsoft_graph", &[], &[]).await;
    // The Microsoft preset, with Graph: its scopes.
    let config = tidings.app.current().await.unwrap().config;
    assert_eq!(config.oauth.scopes, ["https://graph.microsoft.com/Mail.Send", "offline_access"]);

    device_sends(gateway, "scan to Graph").await;
    let got = graph.next_message().await;
    assert_eq!((got["api"].as_str(), got["mailbox"].as_str()), (Some("graph"), Some("alerts@contoso.com")));
    let data = got["data"].as_str().unwrap();
    assert!(data.starts_with("Bcc: hidden@contoso.com\r\n") && data.contains("Subject: scan to Graph"), "{data}");

    // Throttled: the mailbox waits as long as Graph said, then the message goes.
    graph.control("throttle?count=1&retry_after=2");
    let id = tidings.send("after the throttle").await;
    assert_eq!(subject(&graph.next_message().await), "after the throttle");
    let tried = attempts(&tidings, id, "delivered").await;
    assert_eq!(tried.len(), 2, "{tried:#?}");
    assert_eq!((tried[0]["stage"].as_str(), tried[0]["result"].as_str()), (Some("api"), Some("transient")));
    assert!(tried[0]["text"].as_str().unwrap().contains("HTTP 429 ApplicationThrottled"), "{tried:#?}");
    let at = |a: &Value| chrono::DateTime::parse_from_rfc3339(a["started_at"].as_str().unwrap()).unwrap();
    assert!(at(&tried[1]) - at(&tried[0]) >= chrono::Duration::milliseconds(1900), "waited Retry-After: {tried:#?}");
    assert_eq!(tried[1]["reply_code"], 202);

    // Refused for good: explained, and the message fails.
    graph.control("refuse?status=403&code=ErrorSendAsDenied&count=1");
    let id = tidings.send("not as this sender").await;
    let tried = attempts(&tidings, id, "failed").await;
    assert!(tried[0]["explanation"].as_str().unwrap().contains("Send As"), "{tried:#?}");

    // Too large for one request: failed at once, saying which permission would let it through.
    let big = "x".repeat(3_400_000);
    let (code, answer) =
        tidings.post("/api/v1/messages", json!({"to": ["ops@contoso.com"], "subject": "big", "text": big})).await;
    assert_eq!(code, 202, "{answer}");
    let tried = attempts(&tidings, answer["id"].as_i64().unwrap(), "failed").await;
    assert!(tried[0]["explanation"].as_str().unwrap().contains("Mail.ReadWrite"), "{tried:#?}");
    tidings.stop().await;
}

#[tokio::test]
async fn the_gmail_api_sends_the_raw_message_and_waits_when_google_limits_the_mailbox() {
    let (tidings, mut gmail, _fake, gateway) = through("gmail_api", &[], &[]).await;
    device_sends(gateway, "scan to Gmail").await;
    let got = gmail.next_message().await;
    assert_eq!((got["api"].as_str(), got["mailbox"].as_str()), (Some("gmail"), Some("alerts@contoso.com")));
    assert!(got["data"].as_str().unwrap().contains("Subject: scan to Gmail"));

    gmail.control("throttle?count=1&retry_after=2");
    let id = tidings.send("after Google's limit").await;
    assert_eq!(subject(&gmail.next_message().await), "after Google's limit");
    let tried = attempts(&tidings, id, "delivered").await;
    assert!(tried[0]["text"].as_str().unwrap().contains("rateLimitExceeded"), "{tried:#?}");
    assert_eq!(tried[1]["reply_code"], 200);

    gmail.control("refuse?status=400&code=failedPrecondition&count=1");
    let id = tidings.send("no delegation").await;
    // The mailbox waits (an administrator must act), then sends once Google takes it again.
    assert_eq!(subject(&gmail.next_message().await), "no delegation");
    let tried = attempts(&tidings, id, "delivered").await;
    assert!(tried[0]["explanation"].as_str().unwrap().contains("domain-wide delegation"), "{tried:#?}");
    let stats = gmail.control("stats");
    assert!(stats["requests"].as_u64().unwrap() >= 5, "{stats}");
    tidings.stop().await;
}

/// A burst for one mailbox through Graph: never more than 4 requests at once, whatever delivery.connections
/// allows.
#[tokio::test]
async fn graph_gets_at_most_four_requests_at_once_per_mailbox() {
    let (tidings, mut graph, _fake, _) =
        through("microsoft_graph", &["--delay", "0.3"], &[("delivery.connections", "8")]).await;
    for i in 0..16 {
        tidings.send(&format!("burst {i}")).await;
    }
    for _ in 0..16 {
        graph.next_message().await;
    }
    let stats = graph.control("stats");
    assert_eq!(stats["peak"], 4, "four at once, not eight: {stats}");
    tidings.stop().await;
}

/// A message too large for one sendMail request, with an app holding Mail.ReadWrite: a draft, its small
/// attachment in one request, its large one through an upload session in chunks, then sent. Every byte arrives.
#[tokio::test]
async fn a_large_message_goes_to_graph_as_a_draft_with_an_upload_session() {
    use base64::Engine;
    use sha2::Digest;
    let (tidings, mut graph, _fake, _) =
        through_with("microsoft_graph", &["--roles", "Mail.Send Mail.ReadWrite"], &[], &[]).await;
    let large: Vec<u8> = (0..4_500_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    let small = b"a small note".to_vec();
    let b64 = |bytes: &[u8]| {
        let text = base64::engine::general_purpose::STANDARD.encode(bytes);
        text.as_bytes().chunks(76).map(|c| std::str::from_utf8(c).unwrap()).collect::<Vec<_>>().join("\r\n")
    };
    let raw = format!(
        "From: alerts@contoso.com\r\nTo: ops@contoso.com\r\nSubject: the big scan\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=sep\r\n\r\n--sep\r\nContent-Type: text/plain\r\n\r\nAttached.\r\n\
         --sep\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=scan.pdf\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{}\r\n--sep\r\nContent-Type: text/plain\r\n\
         Content-Disposition: attachment; filename=note.txt\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n--sep--\r\n",
        b64(&large),
        b64(&small)
    );
    let envelope = json!({"mail_from": "alerts@contoso.com", "rcpt_to": ["ops@contoso.com", "hidden@contoso.com"]});
    let (code, answer) = tidings.post("/api/v1/messages", json!({"raw": raw, "envelope": envelope})).await;
    assert_eq!(code, 202, "{answer}");
    let got = graph.next_message().await;
    assert_eq!((got["api"].as_str(), got["subject"].as_str()), (Some("graph-draft"), Some("the big scan")), "{got}");
    assert_eq!(got["bcc"], json!(["hidden@contoso.com"]), "{got}");
    let sha = |bytes: &[u8]| format!("{:x}", sha2::Sha256::digest(bytes));
    assert_eq!(
        got["attachments"],
        json!([
            {"name": "scan.pdf", "size": large.len(), "sha256": sha(&large)},
            {"name": "note.txt", "size": small.len(), "sha256": sha(&small)},
        ]),
    );
    let delivered = tidings.wait_for_status(answer["id"].as_i64().unwrap(), "delivered").await;
    let notes = delivered["attempt_log"][0]["notes"].to_string();
    assert!(notes.contains("plain HTTP") && !notes.contains("smtp.encryption"), "the API's own note: {notes}");
    tidings.stop().await;
}

/// A plain HTTP proxy on loopback that forwards each request (absolute-form, `Connection: close`) and tells the
/// request lines it forwarded.
fn forwarding_proxy() -> (String, std::sync::mpsc::Receiver<String>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let (mut client, tx) = (stream.unwrap(), tx.clone());
            std::thread::spawn(move || {
                let mut reader = BufReader::new(client.try_clone().unwrap());
                let mut head = Vec::new();
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap();
                    if let Some(n) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = n.trim().parse().unwrap();
                    }
                    let end = line == "\r\n";
                    if !line.to_ascii_lowercase().starts_with("connection:") && !end {
                        head.push(line);
                    }
                    if end {
                        break;
                    }
                }
                let mut body = vec![0; length];
                reader.read_exact(&mut body).unwrap();
                let _ = tx.send(head[0].trim().to_owned());
                let mut parts = head[0].split(' ');
                let (method, target) = (parts.next().unwrap().to_owned(), parts.next().unwrap().to_owned());
                let rest = target.strip_prefix("http://").unwrap();
                let (authority, path) = rest.split_at(rest.find('/').unwrap());
                let mut upstream = std::net::TcpStream::connect(authority).unwrap();
                head[0] = format!("{method} {path} HTTP/1.1\r\n");
                head.push("Connection: close\r\n\r\n".into());
                upstream.write_all(head.concat().as_bytes()).unwrap();
                upstream.write_all(&body).unwrap();
                let mut answer = Vec::new();
                upstream.read_to_end(&mut answer).unwrap();
                let _ = client.write_all(&answer);
            });
        }
    });
    (url, rx)
}

/// With oauth.proxy_url set, the API is reached through the proxy, as the token endpoint is.
#[tokio::test]
async fn the_api_goes_through_the_configured_proxy() {
    let (proxy, seen) = forwarding_proxy();
    let (tidings, mut graph, _fake, _) =
        through_with("microsoft_graph", &[], &[], &[("oauth.proxy_url", proxy.as_str())]).await;
    let id = tidings.send("through the proxy").await;
    assert_eq!(subject(&graph.next_message().await), "through the proxy");
    tidings.wait_for_status(id, "delivered").await;
    let lines: Vec<String> = seen.try_iter().collect();
    assert!(lines.iter().any(|l| l.starts_with("POST http://127.0.0.1:") && l.contains("/token ")), "{lines:?}");
    assert!(lines.iter().any(|l| l.contains("/v1.0/users/alerts@contoso.com/sendMail ")), "{lines:?}");

    // The doctor reaches the API the same way, and sends a test message when asked.
    let (code, report) = tidings.post("/api/v1/doctor?send_to=ops@contoso.com", json!({})).await;
    assert_eq!(code, 200, "{report}");
    let steps: Vec<&str> = report["steps"].as_array().unwrap().iter().map(|s| s["step"].as_str().unwrap()).collect();
    assert_eq!((report["ok"].as_bool(), steps), (Some(true), vec!["connect", "token", "message"]), "{report:#}");
    assert_eq!(subject(&graph.next_message().await), "Tidings doctor: a test message");
    let lines: Vec<String> = seen.try_iter().collect();
    assert!(
        lines.iter().any(|l| l.starts_with("GET http://127.0.0.1:")),
        "the doctor went through the proxy: {lines:?}"
    );
    tidings.stop().await;
}

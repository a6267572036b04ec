//! Large messages (scans of several megabytes) at once through the gateway and the API, to a real aiosmtpd
//! relay over STARTTLS with pipelining: each arrives exactly as sent, its lines starting with a dot included,
//! although it is stored in parts, read back a part at a time and written in pieces.

#![allow(clippy::unwrap_used)] // helpers of tests: a failed step is a failed test

mod support;

use serde_json::json;
use std::time::Duration;
use support::{Tidings, eventually, relay};
use tidings_testkit::SmtpPeer;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// A body of about `size` octets in lines of up to 76 characters, some starting with a dot (SMTP doubles
/// those on the wire), numbered so that a part out of place shows.
fn body(size: usize, seed: usize) -> String {
    let mut out = String::with_capacity(size + 100);
    let mut n = 0;
    while out.len() < size {
        let line = match n % 7 {
            0 => format!(".{seed}-{n} a line that starts with a dot"),
            3 => ".".to_owned(),
            _ => format!("{seed}-{n} {}", "QUJD".repeat(15)),
        };
        out.push_str(&line);
        out.push_str("\r\n");
        n += 1;
    }
    out
}

/// Sends one message through the gateway as a device does, its data in pieces.
async fn through_gateway(port: u16, subject: &str, body: &str) {
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut stream = BufReader::new(stream);
    async fn expect(stream: &mut BufReader<tokio::net::TcpStream>, code: &str) {
        loop {
            let mut line = String::new();
            assert!(stream.read_line(&mut line).await.unwrap() > 0, "closed, expecting {code}");
            assert!(line.starts_with(code), "expected {code}, got {line:?}");
            if line.as_bytes().get(3) != Some(&b'-') {
                return;
            }
        }
    }
    expect(&mut stream, "220").await;
    stream.get_mut().write_all(b"EHLO scanner\r\n").await.unwrap();
    expect(&mut stream, "250").await;
    stream.get_mut().write_all(b"MAIL FROM:<scanner@example.com>\r\n").await.unwrap();
    expect(&mut stream, "250").await;
    stream.get_mut().write_all(b"RCPT TO:<ops@example.com>\r\n").await.unwrap();
    expect(&mut stream, "250").await;
    stream.get_mut().write_all(b"DATA\r\n").await.unwrap();
    expect(&mut stream, "354").await;
    let head = format!("From: scanner@example.com\r\nTo: ops@example.com\r\nSubject: {subject}\r\n\r\n");
    stream.get_mut().write_all(head.as_bytes()).await.unwrap();
    // Dot-stuffed as a client must, in pieces of 7 KB.
    let stuffed = body.replace("\r\n.", "\r\n..");
    let stuffed = if stuffed.starts_with('.') { format!(".{stuffed}") } else { stuffed };
    for piece in stuffed.as_bytes().chunks(7 * 1024) {
        stream.get_mut().write_all(piece).await.unwrap();
    }
    stream.get_mut().write_all(b".\r\n").await.unwrap();
    expect(&mut stream, "250").await;
    stream.get_mut().write_all(b"QUIT\r\n").await.unwrap();
}

#[tokio::test]
async fn large_messages_at_once_arrive_exactly_as_sent() {
    let mut peer = SmtpPeer::start_tls(&["--pipelining"]);
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let listen = format!("127.0.0.1:{port}");
    let tidings = Tidings::start(relay(
        &peer,
        &[
            ("gateway.listen", &listen),
            ("gateway.allowed_networks", "127.0.0.1/32"),
            ("delivery.connections", "4"),
            ("delivery.max_message_size", "8000000"),
        ],
    ))
    .await;
    eventually("the gateway listening", Duration::from_secs(10), async || {
        std::net::TcpStream::connect(("127.0.0.1", port)).map(drop).map_err(|e| e.to_string())
    })
    .await;

    // Five scans at once (more than the two read back at a time), one through the API, and a small one.
    let mut expected = std::collections::HashMap::new();
    let mut sessions = tokio::task::JoinSet::new();
    for i in 0..5 {
        let (subject, text) = (format!("scan {i}"), body(1_500_000 + 4099 * i, i));
        expected.insert(subject.clone(), text.clone());
        sessions.spawn(async move { through_gateway(port, &subject, &text).await });
    }
    let api_body = body(1_200_000, 9);
    expected.insert("by the API".into(), api_body.clone());
    let raw = format!("From: alerts@example.com\r\nTo: ops@example.com\r\nSubject: by the API\r\n\r\n{api_body}");
    let (status, answer) = tidings
        .post(
            "/api/v1/messages",
            json!({"raw": raw, "envelope": {"mail_from": "alerts@example.com", "rcpt_to": ["ops@example.com"]}}),
        )
        .await;
    assert_eq!(status, 202, "{answer}");
    expected.insert("small".into(), "a small one\r\n".into());
    through_gateway(port, "small", "a small one\r\n").await;
    while let Some(done) = sessions.join_next().await {
        done.unwrap();
    }

    for _ in 0..expected.len() {
        let record = peer.next_message().await;
        let data = record["data"].as_str().unwrap().replace('\n', "\r\n").replace("\r\r\n", "\r\n");
        let (head, got) = data.split_once("\r\n\r\n").unwrap();
        let subject = head.lines().find_map(|l| l.strip_prefix("Subject: ")).unwrap().trim().to_owned();
        let want = expected.remove(&subject).unwrap_or_else(|| panic!("an unexpected or repeated message: {head}"));
        assert!(
            got == want,
            "{subject}: {} octets arrived, {} sent, first difference at {:?}",
            got.len(),
            want.len(),
            got.bytes().zip(want.bytes()).position(|(a, b)| a != b)
        );
    }
    assert!(expected.is_empty(), "not delivered: {:?}", expected.keys());
    tidings.stop().await;
}

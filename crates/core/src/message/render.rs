//! Turning a [`NewMessage`] into RFC 5322 bytes, and the few repairs a raw message may need.
//!
//! Bodies are UTF-8 in quoted-printable (readable in the raw form, 7-bit safe for every relay); a subject
//! that is not plain ASCII becomes RFC 2047 encoded words; with an HTML body the message is
//! `multipart/alternative`. Lines end in CRLF.

use super::NewMessage;
use base64::{Engine, engine::general_purpose::STANDARD};
use chrono::{DateTime, Utc};

/// A composed message with its envelope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendered {
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    pub data: Vec<u8>,
}

/// Composes `msg` as sent by `from`. `message_id` is the bare id (`abc@example.com`), `date` the Date header.
pub fn render(msg: &NewMessage, from: &str, message_id: &str, date: DateTime<Utc>) -> Rendered {
    let mut out = String::new();
    header(&mut out, "Date", &date.to_rfc2822());
    header(&mut out, "From", from);
    if !msg.to.is_empty() {
        address_header(&mut out, "To", &msg.to);
    }
    if !msg.cc.is_empty() {
        address_header(&mut out, "Cc", &msg.cc);
    }
    header(&mut out, "Subject", &encode_words(&msg.subject));
    header(&mut out, "Message-ID", &format!("<{message_id}>"));
    header(&mut out, "MIME-Version", "1.0");
    match &msg.html {
        None => {
            text_part_headers(&mut out, "text/plain");
            out.push_str("\r\n");
            out.push_str(&quoted_printable(&msg.text));
        }
        Some(html) => {
            let boundary = format!("=_tidings_{}", message_id.split('@').next().unwrap_or("part"));
            header(&mut out, "Content-Type", &format!("multipart/alternative; boundary=\"{boundary}\""));
            out.push_str("\r\n");
            for (kind, body) in [("text/plain", msg.text.as_str()), ("text/html", html.as_str())] {
                out.push_str(&format!("--{boundary}\r\n"));
                text_part_headers(&mut out, kind);
                out.push_str("\r\n");
                out.push_str(&quoted_printable(body));
                out.push_str("\r\n");
            }
            out.push_str(&format!("--{boundary}--\r\n"));
        }
    }
    Rendered { mail_from: from.to_owned(), rcpt_to: msg.envelope_recipients(), data: out.into_bytes() }
}

fn header(out: &mut String, name: &str, value: &str) {
    out.push_str(name);
    out.push_str(": ");
    out.push_str(value);
    out.push_str("\r\n");
}

/// An address list, folded so that no line grows past 78 characters where it can be helped.
fn address_header(out: &mut String, name: &str, addresses: &[String]) {
    let mut line_len = name.len() + 2;
    out.push_str(name);
    out.push_str(": ");
    for (i, addr) in addresses.iter().enumerate() {
        if i > 0 {
            out.push(',');
            if line_len + addr.len() + 2 > 78 {
                out.push_str("\r\n ");
                line_len = 1;
            } else {
                out.push(' ');
                line_len += 2;
            }
        }
        out.push_str(addr);
        line_len += addr.len();
    }
    out.push_str("\r\n");
}

fn text_part_headers(out: &mut String, kind: &str) {
    header(out, "Content-Type", &format!("{kind}; charset=utf-8"));
    header(out, "Content-Transfer-Encoding", "quoted-printable");
}

/// RFC 2047: plain ASCII stays as it is; anything else becomes base64 encoded words of at most 75 characters,
/// split on character boundaries.
pub(crate) fn encode_words(text: &str) -> String {
    if text.is_ascii() && !text.contains("=?") {
        return text.to_owned();
    }
    let mut words = Vec::new();
    let mut chunk = String::new();
    for c in text.chars() {
        // 39 bytes make 52 base64 characters: with `Subject: ` and the word's frame, a line stays within 78.
        if chunk.len() + c.len_utf8() > 39 {
            words.push(std::mem::take(&mut chunk));
        }
        chunk.push(c);
    }
    if !chunk.is_empty() {
        words.push(chunk);
    }
    words.iter().map(|w| format!("=?utf-8?b?{}?=", STANDARD.encode(w))).collect::<Vec<_>>().join("\r\n ")
}

/// RFC 2045 quoted-printable with CRLF line breaks and soft breaks keeping lines within 76 characters.
pub(crate) fn quoted_printable(text: &str) -> String {
    let normalized = text.replace("\r\n", "\n").replace('\r', "\n");
    let mut out = String::with_capacity(normalized.len() + normalized.len() / 8);
    for (i, line) in normalized.split('\n').enumerate() {
        if i > 0 {
            out.push_str("\r\n");
        }
        let bytes = line.as_bytes();
        let mut len = 0;
        for (j, &b) in bytes.iter().enumerate() {
            let last = j + 1 == bytes.len();
            let literal = (b == b' ' || b == b'\t') && !last || (33..=126).contains(&b) && b != b'=';
            // A leading dot is encoded so that no relay can mistake or mangle it.
            let literal = literal && !(len == 0 && b == b'.');
            let piece = if literal { (b as char).to_string() } else { format!("={b:02X}") };
            if len + piece.len() > 75 {
                out.push_str("=\r\n");
                len = 0;
            }
            out.push_str(&piece);
            len += piece.len();
        }
    }
    if !out.ends_with("\r\n") {
        out.push_str("\r\n");
    }
    out
}

/// Whether data starts with a header field (`Name: value`).
pub(crate) fn has_header_section(data: &[u8]) -> bool {
    let first = data.split(|&b| b == b'\n').next().unwrap_or_default();
    match first.iter().position(|&b| b == b':') {
        Some(colon) if colon > 0 => first[..colon].iter().all(|&b| (33..=126).contains(&b)),
        _ => false,
    }
}

/// Normalises line endings to CRLF and adds `Date` and `Message-ID` headers when missing, as RFC 5322
/// requires; nothing else of the message changes.
pub fn ensure_date_and_message_id(data: Vec<u8>, date: DateTime<Utc>, message_id: &str) -> Vec<u8> {
    let mut data = if has_bare_newline(&data) { crlf(&data) } else { data };
    let present = super::header::fields(&data).0;
    let has = |name: &str| present.iter().any(|f| super::header::name_is(f, name));
    let mut added = String::new();
    if !has("Date") {
        added.push_str(&format!("Date: {}\r\n", date.to_rfc2822()));
    }
    if !has("Message-ID") {
        added.push_str(&format!("Message-ID: <{message_id}>\r\n"));
    }
    // Added where it is: a message of many megabytes is not copied.
    data.splice(..0, added.into_bytes());
    data
}

/// Whether a CR or LF stands alone somewhere (most messages have none, and are not copied to fix them).
fn has_bare_newline(data: &[u8]) -> bool {
    memchr::memchr2_iter(b'\r', b'\n', data).any(|i| match data[i] {
        b'\r' => data.get(i + 1) != Some(&b'\n'),
        _ => i == 0 || data[i - 1] != b'\r',
    })
}

/// Every lone CR or LF becomes CRLF.
fn crlf(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 32);
    let mut i = 0;
    while i < data.len() {
        match data[i] {
            b'\r' if data.get(i + 1) == Some(&b'\n') => {
                out.extend_from_slice(b"\r\n");
                i += 1;
            }
            b'\r' | b'\n' => out.extend_from_slice(b"\r\n"),
            b => out.push(b),
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn date() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 22, 8, 30, 0).unwrap()
    }

    fn text(r: &Rendered) -> String {
        String::from_utf8(r.data.clone()).unwrap()
    }

    #[test]
    fn a_plain_message() {
        let msg = NewMessage {
            to: vec!["ops@example.com".into()],
            cc: vec!["noc@example.com".into()],
            bcc: vec!["audit@example.com".into()],
            subject: "Test from Tidings".into(),
            text: "Hello,\nall is well.\n".into(),
            html: None,
        };
        let r = render(&msg, "alerts@example.com", "m1@example.com", date());
        let t = text(&r);
        assert!(t.starts_with("Date: Sun, 22 Nov 2026 08:30:00 +0000\r\nFrom: alerts@example.com\r\nTo: ops@example.com\r\nCc: noc@example.com\r\n"), "{t}");
        assert!(t.contains("Subject: Test from Tidings\r\nMessage-ID: <m1@example.com>\r\nMIME-Version: 1.0\r\n"));
        assert!(t.contains("\r\n\r\nHello,\r\nall is well.\r\n"), "{t}");
        assert!(!t.contains("audit@example.com"), "Bcc stays out of the headers");
        assert_eq!(r.rcpt_to, ["ops@example.com", "noc@example.com", "audit@example.com"]);
        assert!(!t.replace("\r\n", "").contains('\n'), "only CRLF line endings");
    }

    #[test]
    fn non_ascii_subjects_and_bodies_are_encoded() {
        let msg = NewMessage {
            to: vec!["a@example.com".into()],
            subject: "Échec de la synchronisation du nœud de secours — vérifiez".into(),
            text: "Prüfung: 100 % grün = gut\n.leading dot".into(),
            ..Default::default()
        };
        let t = text(&render(&msg, "a@example.com", "m@example.com", date()));
        assert!(t.is_ascii());
        assert!(t.contains("Subject: =?utf-8?b?"));
        assert!(t.lines().all(|l| l.len() <= 78), "{t}");
        assert!(t.contains("Pr=C3=BCfung: 100 % gr=C3=BCn =3D gut\r\n=2Eleading dot"), "{t}");
        let words: Vec<&str> = t.lines().filter(|l| l.contains("=?utf-8?b?")).collect();
        let decoded: String = words
            .iter()
            .map(|w| {
                let b64 =
                    w.trim().trim_start_matches("Subject: ").trim_start_matches("=?utf-8?b?").trim_end_matches("?=");
                String::from_utf8(STANDARD.decode(b64).unwrap()).unwrap()
            })
            .collect();
        assert_eq!(decoded, msg.subject);
    }

    #[test]
    fn long_lines_get_soft_breaks() {
        let long = "x".repeat(200);
        let qp = quoted_printable(&long);
        assert!(qp.lines().all(|l| l.len() <= 76), "{qp}");
        assert_eq!(qp.replace("=\r\n", "").trim_end(), long);
        assert_eq!(quoted_printable("trailing space "), "trailing space=20\r\n");
    }

    #[test]
    fn html_makes_multipart_alternative() {
        let msg = NewMessage {
            to: vec!["a@example.com".into()],
            subject: "s".into(),
            text: "plain".into(),
            html: Some("<p>rich</p>".into()),
            ..Default::default()
        };
        let t = text(&render(&msg, "a@example.com", "abc@example.com", date()));
        assert!(t.contains("Content-Type: multipart/alternative; boundary=\"=_tidings_abc\""));
        assert!(t.contains("--=_tidings_abc\r\nContent-Type: text/plain; charset=utf-8"));
        assert!(t.contains("--=_tidings_abc\r\nContent-Type: text/html; charset=utf-8"));
        assert!(t.trim_end().ends_with("--=_tidings_abc--"));
    }

    #[test]
    fn many_recipients_are_folded() {
        let to: Vec<String> = (0..10).map(|i| format!("recipient-{i}@example.com")).collect();
        let msg = NewMessage { to, subject: "s".into(), ..Default::default() };
        let t = text(&render(&msg, "a@example.com", "m@example.com", date()));
        assert!(t.lines().all(|l| l.len() <= 78), "{t}");
        assert!(t.contains(",\r\n recipient-"));
    }

    #[test]
    fn raw_messages_get_missing_date_and_message_id_only() {
        let raw = b"From: scanner@example.com\nSubject: scan\n\nbody\n";
        let fixed = String::from_utf8(ensure_date_and_message_id(raw.to_vec(), date(), "id@example.com")).unwrap();
        assert_eq!(
            fixed,
            "Date: Sun, 22 Nov 2026 08:30:00 +0000\r\nMessage-ID: <id@example.com>\r\nFrom: scanner@example.com\r\nSubject: scan\r\n\r\nbody\r\n"
        );
        let complete = b"Date: Mon, 1 Jan 2024 00:00:00 +0000\r\nmessage-id: <x@y>\r\n\r\nDate: in the body\r\n";
        assert_eq!(ensure_date_and_message_id(complete.to_vec(), date(), "id@example.com"), complete.to_vec());
        // A lone CR is a bare newline too, wherever it stands.
        for lone in [&b"a\rb\r\n"[..], b"\ra\r\n", b"a\r\n\r"] {
            assert!(has_bare_newline(lone), "{lone:?}");
        }
        assert!(!has_bare_newline(b"a\r\nb\r\n") && !has_bare_newline(b"no newline"));
        assert!(has_header_section(b"Subject: x\r\n\r\n"));
        assert!(!has_header_section(b"just text\r\n"));
        assert!(!has_header_section(b": x\r\n"));
    }
}

//! The sender policies' changes to a device's message: reading the From header, and sending as another
//! address with the device's From kept in Reply-To. Only header fields change; the body is untouched.

use crate::message::header::{fields, name_is, value};

/// The address of the From header (`Name <a@b>` or `a@b`), if any.
pub fn from_address(data: &[u8]) -> Option<String> {
    let (fields, _) = fields(data);
    let from = value(fields.iter().find(|f| name_is(f, "From"))?);
    let address = match (from.rfind('<'), from.rfind('>')) {
        (Some(open), Some(close)) if open < close => from[open + 1..close].trim().to_owned(),
        _ => from.split(',').next().unwrap_or("").trim().to_owned(),
    };
    address.contains('@').then_some(address)
}

/// The message sent as `sender`: From (and Sender) replaced, the device's From kept in Reply-To unless the
/// message has one.
pub fn send_as(mut data: Vec<u8>, sender: &str) -> Vec<u8> {
    let (fields, body) = fields(&data);
    let original = fields.iter().find(|f| name_is(f, "From")).map(|f| value(f));
    let has_reply_to = fields.iter().any(|f| name_is(f, "Reply-To"));
    let mut head = format!("From: {sender}\r\n").into_bytes();
    if let Some(original) = original.filter(|o| !has_reply_to && !o.is_empty()) {
        head.extend_from_slice(format!("Reply-To: {original}\r\n").as_bytes());
    }
    for field in fields.iter().filter(|f| !name_is(f, "From") && !name_is(f, "Sender")) {
        head.extend_from_slice(field);
    }
    // The header is replaced where it is: a message of many megabytes is not copied.
    let head_len = data.len() - body.len();
    data.splice(..head_len, head);
    data
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCAN: &[u8] = b"From: \"Scanner 3F\" <scanner@printers.local>\r\nSender: x@y\r\nTo: ops@example.com\r\nSubject: Scan\r\n  continued\r\n\r\nbody\r\nFrom: not a header\r\n";

    #[test]
    fn the_from_header_is_read() {
        assert_eq!(from_address(SCAN).as_deref(), Some("scanner@printers.local"));
        assert_eq!(from_address(b"from: a@b.c\r\n\r\nx").as_deref(), Some("a@b.c"));
        assert_eq!(from_address(b"Subject: x\r\n\r\nFrom: a@b.c\r\n"), None);
    }

    #[test]
    fn sending_as_the_fixed_address_keeps_the_device_in_reply_to() {
        let out = String::from_utf8(send_as(SCAN.to_vec(), "alerts@example.com")).unwrap_or_default();
        assert!(out.starts_with("From: alerts@example.com\r\nReply-To: \"Scanner 3F\" <scanner@printers.local>\r\nTo: ops@example.com\r\n"), "{out}");
        assert!(
            out.contains("Subject: Scan\r\n  continued\r\n\r\nbody\r\nFrom: not a header\r\n")
                && !out.contains("Sender:"),
            "{out}"
        );
        let kept = String::from_utf8(send_as(b"From: a@b.c\r\nReply-To: r@b.c\r\n\r\nx".to_vec(), "s@e.com"))
            .unwrap_or_default();
        assert_eq!(kept, "From: s@e.com\r\nReply-To: r@b.c\r\n\r\nx");
    }
}

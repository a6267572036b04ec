//! Messages Tidings is asked to send: structured ones (recipients, subject, text and HTML) that Tidings turns
//! into RFC 5322, and raw ones (a complete message with its envelope) passed on unchanged.
//!
//! Validation reports every problem with the field it concerns (`to[1]`, `subject`), so an API caller or a
//! CLI user knows what to fix; nothing invalid reaches the outbox.

pub mod header;
mod render;

use crate::{FieldError, ValidationErrors, address};
use serde::{Deserialize, Serialize};

pub use render::{Rendered, ensure_date_and_message_id, render};

/// The most recipients one message may have (RFC 5321 §4.5.3.1.8 requires relays to take at least 100).
pub const MAX_RECIPIENTS: usize = 100;
const MAX_SUBJECT: usize = 998;

/// A message to compose and send to the given recipients. The sender is the configuration's.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewMessage {
    #[serde(default)]
    pub to: Vec<String>,
    #[serde(default)]
    pub cc: Vec<String>,
    /// Envelope recipients not shown in the headers.
    #[serde(default)]
    pub bcc: Vec<String>,
    #[serde(default)]
    pub subject: String,
    /// The plain-text body.
    #[serde(default)]
    pub text: String,
    /// An HTML alternative to the text, optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
}

impl NewMessage {
    /// Every envelope recipient, in order: to, cc, bcc.
    pub fn envelope_recipients(&self) -> Vec<String> {
        self.to.iter().chain(&self.cc).chain(&self.bcc).cloned().collect()
    }

    /// Checks recipients and headers; the size is checked on the rendered message.
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut errors = Vec::new();
        let count = self.to.len() + self.cc.len() + self.bcc.len();
        if count == 0 {
            errors.push(FieldError::new("to", "at least one recipient (to, cc or bcc) is required"));
        } else if count > MAX_RECIPIENTS {
            errors.push(FieldError::new("to", format!("{count} recipients; at most {MAX_RECIPIENTS} per message")));
        }
        for (field, list) in [("to", &self.to), ("cc", &self.cc), ("bcc", &self.bcc)] {
            for (i, addr) in list.iter().enumerate() {
                if let Err(why) = address::validate(addr) {
                    errors.push(FieldError::new(format!("{field}[{i}]"), why));
                }
            }
        }
        if self.subject.contains(['\r', '\n']) {
            errors.push(FieldError::new("subject", "contains a line break (CR or LF); a subject is one line"));
        } else if self.subject.chars().any(|c| c.is_control() && c != '\t') {
            errors.push(FieldError::new("subject", "contains a control character"));
        } else if self.subject.len() > MAX_SUBJECT {
            errors.push(FieldError::new("subject", format!("is longer than {MAX_SUBJECT} bytes")));
        }
        if self.text.contains('\0') || self.html.as_deref().is_some_and(|h| h.contains('\0')) {
            errors.push(FieldError::new("text", "contains a NUL character"));
        }
        if errors.is_empty() { Ok(()) } else { Err(ValidationErrors(errors)) }
    }
}

/// A complete message with its envelope, sent as it is (the SMTP gateway's, or an API caller's).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawMessage {
    /// The envelope sender (MAIL FROM).
    pub mail_from: String,
    /// The envelope recipients (RCPT TO).
    pub rcpt_to: Vec<String>,
    /// The RFC 5322 message.
    pub data: Vec<u8>,
}

impl RawMessage {
    /// Checks the envelope and that the data is a message (headers, then a blank line, then the body).
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut errors = Vec::new();
        if let Err(why) = address::validate(&self.mail_from) {
            errors.push(FieldError::new("envelope.mail_from", why));
        }
        if self.rcpt_to.is_empty() {
            errors.push(FieldError::new("envelope.rcpt_to", "at least one recipient is required"));
        } else if self.rcpt_to.len() > MAX_RECIPIENTS {
            errors
                .push(FieldError::new("envelope.rcpt_to", format!("at most {MAX_RECIPIENTS} recipients per message")));
        }
        for (i, addr) in self.rcpt_to.iter().enumerate() {
            if let Err(why) = address::validate(addr) {
                errors.push(FieldError::new(format!("envelope.rcpt_to[{i}]"), why));
            }
        }
        if self.data.contains(&0) {
            errors.push(FieldError::new("raw", "contains a NUL byte"));
        } else if !render::has_header_section(&self.data) {
            errors.push(FieldError::new(
                "raw",
                "is not a message: expected header lines (Name: value) before the first blank line",
            ));
        }
        if errors.is_empty() { Ok(()) } else { Err(ValidationErrors(errors)) }
    }
}

/// Checks a rendered message against the size limit.
pub fn check_size(size: usize, limit: u64, field: &str) -> Result<(), ValidationErrors> {
    if size as u64 > limit {
        return Err(ValidationErrors(vec![FieldError::new(
            field,
            format!("the message is {size} bytes, over the limit of {limit} (delivery.max_message_size)"),
        )]));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(to: &[&str]) -> NewMessage {
        NewMessage {
            to: to.iter().map(|s| (*s).to_owned()).collect(),
            subject: "Hi".into(),
            text: "Body".into(),
            ..Default::default()
        }
    }

    #[test]
    fn valid_message() {
        assert_eq!(msg(&["a@example.com"]).validate(), Ok(()));
        let bcc_only = NewMessage { bcc: vec!["a@example.com".into()], ..Default::default() };
        assert_eq!(bcc_only.validate(), Ok(()));
    }

    #[test]
    fn bad_messages_name_their_fields() {
        let err = msg(&[]).validate().unwrap_err();
        assert!(err.has("to"), "{err}");
        let err = msg(&["a@example.com", "not-an-address"]).validate().unwrap_err();
        assert!(err.has("to[1]") && !err.has("to[0]"), "{err}");
        let mut m = msg(&["a@example.com"]);
        m.cc = vec!["x@example.com\r\nBcc: victim@example.com".into()];
        m.subject = "Hello\r\nBcc: victim@example.com".into();
        let err = m.validate().unwrap_err();
        assert!(err.has("cc[0]") && err.has("subject"), "{err}");
        assert!(err.to_string().contains("line break"));
        let many: Vec<String> = (0..101).map(|i| format!("u{i}@example.com")).collect();
        let err = NewMessage { to: many, ..Default::default() }.validate().unwrap_err();
        assert!(err.to_string().contains("at most 100"));
    }

    #[test]
    fn raw_messages() {
        let good = RawMessage {
            mail_from: "scanner@example.com".into(),
            rcpt_to: vec!["a@example.com".into()],
            data: b"Subject: scan\r\nFrom: scanner@example.com\r\n\r\nbody\r\n".to_vec(),
        };
        assert_eq!(good.validate(), Ok(()));
        let bad = RawMessage { mail_from: "x".into(), rcpt_to: vec![], data: b"no headers here".to_vec() };
        let err = bad.validate().unwrap_err();
        assert!(err.has("envelope.mail_from") && err.has("envelope.rcpt_to") && err.has("raw"), "{err}");
    }

    #[test]
    fn size_limit() {
        assert!(check_size(100, 100, "text").is_ok());
        let err = check_size(101, 100, "text").unwrap_err();
        assert!(err.has("text") && err.to_string().contains("101 bytes"));
    }
}

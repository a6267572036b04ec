//! The dead-letter event: what a message that ends failed raises, and when it is not mailed.

use super::MAX_DETAIL_VALUE;
use std::collections::BTreeMap;

/// The origin of the mails notifications send.
pub const NOTIFICATION_ORIGIN: &str = "notification";

/// The details of message `id`'s dead-letter event: its subject, recipients and why it failed, each cut to
/// [`MAX_DETAIL_VALUE`] characters, control characters made spaces.
pub fn details(id: i64, subject: Option<&str>, recipients: &[&str], error: Option<&str>) -> BTreeMap<String, String> {
    let cut = |text: &str| -> String {
        text.chars().take(MAX_DETAIL_VALUE).map(|c| if c.is_control() { ' ' } else { c }).collect()
    };
    BTreeMap::from([
        ("message".to_owned(), id.to_string()),
        ("subject".to_owned(), cut(subject.unwrap_or_default())),
        ("recipients".to_owned(), cut(&recipients.join(", "))),
        ("error".to_owned(), cut(error.unwrap_or_default())),
    ])
}

/// Whether the dead letter of a message from `origin` is mailed: not a notification's own, or a broken mail
/// path would loop, each failed alert raising another; it is recorded and shown instead.
pub fn mailed(origin: &str) -> bool {
    origin != NOTIFICATION_ORIGIN
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn details_are_cut_and_a_notifications_own_dead_letter_is_not_mailed() {
        let long = "x".repeat(MAX_DETAIL_VALUE + 10);
        let d = details(7, Some("Scan\r\nBcc: x"), &["a@example.com", "b@example.com"], Some(&long));
        assert_eq!(d["message"], "7");
        assert_eq!(d["subject"], "Scan  Bcc: x");
        assert_eq!(d["recipients"], "a@example.com, b@example.com");
        assert_eq!(d["error"].chars().count(), MAX_DETAIL_VALUE);
        assert!(mailed("gateway:scanner") && mailed("api:ci") && !mailed(NOTIFICATION_ORIGIN));
    }
}

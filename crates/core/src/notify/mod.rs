//! Notifications: the event [`catalog`], the mails they become ([`template`]), how repeats are throttled
//! ([`throttle`]) and when the daily notice is due ([`daily`]). Detail keys and values are checked here too.

use crate::Invalid;
pub mod catalog;
pub mod daily;
pub mod dead_letter;
pub mod template;
pub mod throttle;

pub use catalog::{EventKind, Severity, Source};

use std::collections::BTreeMap;

/// The most details one event may carry.
pub const MAX_DETAILS: usize = 32;
/// The longest detail value.
pub const MAX_DETAIL_VALUE: usize = 1000;

/// Checks an event's details: keys of lower-case letters, digits, `_`, `-` and `.` (at most 64), values of at
/// most 1000 characters without control characters. The error names the detail and what is expected.
pub fn check_details(details: &BTreeMap<String, String>) -> Result<(), Invalid> {
    if details.len() > MAX_DETAILS {
        return Err(format!("{} details given; at most {MAX_DETAILS} are accepted", details.len()).into());
    }
    for (key, value) in details {
        let key_ok = !key.is_empty()
            && key.len() <= 64
            && key.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_-.".contains(c));
        if !key_ok {
            return Err(format!(
                "detail key {key:?} is not valid: use 1 to 64 lower-case letters, digits, '_', '-' or '.'"
            )
            .into());
        }
        if value.chars().count() > MAX_DETAIL_VALUE {
            return Err(format!("detail {key} is too long: at most {MAX_DETAIL_VALUE} characters").into());
        }
        if value.chars().any(char::is_control) {
            return Err(
                format!("detail {key} contains a control character (such as a line break); send one line").into()
            );
        }
    }
    Ok(())
}

/// Parses `key=value` (the CLI's `--detail`).
pub fn parse_detail(text: &str) -> Result<(String, String), Invalid> {
    match text.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.to_owned())),
        _ => Err(format!("detail {text:?} is not key=value, such as --detail primary_version=7.2").into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn details_are_checked() {
        let ok = BTreeMap::from([("primary_version".to_owned(), "7.2.1".to_owned())]);
        assert!(check_details(&ok).is_ok());
        for (k, v, want) in [
            ("Bad Key", "x", "detail key \"Bad Key\""),
            ("note", "a\nb", "control character"),
            ("note", &"x".repeat(1001), "too long"),
        ] {
            let err = check_details(&BTreeMap::from([(k.to_owned(), v.to_owned())])).unwrap_err();
            assert!(err.reason().contains(want), "{err}");
        }
        assert_eq!(parse_detail("a=b=c"), Ok(("a".into(), "b=c".into())));
        assert!(parse_detail("novalue").unwrap_err().reason().contains("key=value"));
    }
}

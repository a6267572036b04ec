//! Mail addresses (RFC 5321 `Mailbox`): what Tidings accepts as a sender, a contact or an OAuth account.
//!
//! Deliberately the SMTP subset: a dot-atom or quoted local part, `@`, and a host name or address literal.
//! Display names and comments (`Jane <jane@example.com>`) belong in headers, not in these fields.

use crate::Invalid;
use crate::net;

/// The longest address SMTP carries (RFC 5321 §4.5.3.1.3 path limit less the angle brackets).
const MAX_ADDRESS: usize = 254;
const MAX_LOCAL_PART: usize = 64;

/// Checks one address, returning what is wrong in words an administrator can act on.
pub fn validate(address: &str) -> Result<(), Invalid> {
    let hint = "expected an address like alerts@example.com";
    if address.is_empty() {
        return Err(format!("empty address; {hint}").into());
    }
    // A space is legal only inside a quoted local part; the part checks below catch it elsewhere.
    if let Some(c) = address.chars().find(|&c| (c.is_whitespace() && c != ' ') || c.is_control()) {
        return Err(format!("{address:?} contains {}; {hint}", describe_char(c)).into());
    }
    if !address.is_ascii() {
        return Err(format!("{address:?} has non-ASCII characters, which need SMTPUTF8; use an ASCII address").into());
    }
    if address.len() > MAX_ADDRESS {
        return Err(format!("{address:?} is longer than {MAX_ADDRESS} characters").into());
    }
    if address.starts_with('<') || address.contains(['<', '>']) {
        return Err(format!("{address:?}: give the bare address without a display name or angle brackets").into());
    }
    if address.contains(' ') && !address.starts_with('"') {
        return Err(format!("{address:?} contains a space; {hint}").into());
    }
    let Some(at) = address.rfind('@') else {
        return Err(format!("{address:?} has no '@'; {hint}").into());
    };
    let (local, domain) = (&address[..at], &address[at + 1..]);
    if domain.contains(' ') {
        return Err(format!("{address:?} contains a space after the '@'").into());
    }
    validate_local_part(local).map_err(|why| format!("{address:?}: {why}"))?;
    validate_domain(domain).map_err(|why| Invalid::new(format!("{address:?}: {why}")))
}

fn validate_local_part(local: &str) -> Result<(), Invalid> {
    if local.is_empty() {
        return Err("nothing before the '@'".into());
    }
    if local.len() > MAX_LOCAL_PART {
        return Err(format!("the part before '@' is longer than {MAX_LOCAL_PART} characters").into());
    }
    if let Some(quoted) = local.strip_prefix('"').and_then(|rest| rest.strip_suffix('"')) {
        return validate_quoted(quoted);
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Err("the part before '@' may not start or end with '.' or hold '..'".into());
    }
    match local.chars().find(|&c| !(is_atext(c) || c == '.')) {
        Some(bad) => Err(format!("{} is not allowed before the '@' unless quoted", describe_char(bad)).into()),
        None => Ok(()),
    }
}

fn validate_quoted(inner: &str) -> Result<(), Invalid> {
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.next().is_none() => {
                return Err("the quoted part ends with a lone '\\'".into());
            }
            '\\' => {}
            '"' => return Err("an unescaped '\"' inside the quoted part".into()),
            _ => {}
        }
    }
    Ok(())
}

fn validate_domain(domain: &str) -> Result<(), Invalid> {
    if domain.is_empty() {
        return Err("nothing after the '@'".into());
    }
    if let Some(literal) = domain.strip_prefix('[').and_then(|rest| rest.strip_suffix(']')) {
        let ip = literal.strip_prefix("IPv6:").unwrap_or(literal);
        return ip
            .parse::<std::net::IpAddr>()
            .map(|_| ())
            .map_err(|_| Invalid::new(format!("[{literal}] is not an IP address literal")));
    }
    net::validate_host_name(domain).map_err(|why| Invalid::new(format!("the domain {why}")))
}

/// RFC 5322 `atext`.
fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c)
}

fn describe_char(c: char) -> String {
    match c {
        ' ' => "a space".into(),
        '\r' => "a carriage return (CR)".into(),
        '\n' => "a line feed (LF)".into(),
        '\t' => "a tab".into(),
        c if c.is_control() => format!("the control character U+{:04X}", c as u32),
        c => format!("{c:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::validate;

    #[test]
    fn accepts_ordinary_and_unusual_valid_addresses() {
        for good in [
            "alerts@example.com",
            "first.last+tag@sub.example.co.uk",
            "root@localhost",
            "o'brien@example.ie",
            "\"john smith\"@example.com",
            "admin@[127.0.0.1]",
            "admin@[IPv6:::1]",
            "x@example.com.",
        ] {
            assert_eq!(validate(good), Ok(()), "{good}");
        }
    }

    #[test]
    fn rejects_malformed_addresses_saying_why() {
        for (bad, why) in [
            ("", "empty"),
            ("alerts.example.com", "no '@'"),
            ("@example.com", "nothing before"),
            ("alerts@", "nothing after"),
            ("al erts@example.com", "a space"),
            ("alerts@example.com\r\nBcc: x@evil.test", "carriage return"),
            ("Jane <jane@example.com>", "display name"),
            ("<jane@example.com>", "angle brackets"),
            (".alerts@example.com", "start or end with '.'"),
            ("a..b@example.com", "'..'"),
            ("a(b)@example.com", "'('"),
            ("alerts@exa_mple.com", "the domain"),
            ("alerts@-example.com", "the domain"),
            ("alerts@[300.1.1.1]", "not an IP address"),
            ("jürgen@example.de", "non-ASCII"),
        ] {
            let err = validate(bad).expect_err(bad);
            assert!(err.reason().contains(why), "{bad:?}: {err}");
        }
        let long_local = format!("{}@example.com", "a".repeat(65));
        assert!(validate(&long_local).unwrap_err().reason().contains("64"));
        let long = format!("a@{}.com", "b.".repeat(130));
        assert!(validate(&long).unwrap_err().reason().contains("254"));
    }
}

//! Host names, IP addresses and URLs as the configuration uses them, and what counts as loopback.

use crate::Invalid;
use std::net::{IpAddr, Ipv6Addr};
use url::Url;

/// Checks a relay host: a DNS host name, an IPv4 address, or an IPv6 address (bare or in brackets).
pub fn validate_host(host: &str) -> Result<(), Invalid> {
    if host.is_empty() {
        return Err("is empty".into());
    }
    if host.contains(char::is_whitespace) {
        return Err(format!("{host:?} contains a space; give one host name or IP address").into());
    }
    if host.contains("://") || host.contains('/') {
        return Err(format!("{host:?} looks like a URL; give only the host name, such as smtp.example.com").into());
    }
    if parse_ip(host).is_some() {
        return Ok(());
    }
    if host.contains(':') {
        return Err(format!("{host:?} holds a ':'; put the port in its own field").into());
    }
    // A name whose last label is all digits is no DNS name (RFC 3696 §2): a mistyped IPv4 address.
    if host
        .trim_end_matches('.')
        .rsplit('.')
        .next()
        .is_some_and(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(format!("{host:?} is neither an IP address (four numbers 0-255) nor a host name").into());
    }
    validate_host_name(host)
}

/// Checks a DNS host name (letters, digits and hyphens in dot-separated labels), as used after `@` too.
pub fn validate_host_name(name: &str) -> Result<(), Invalid> {
    let trimmed = name.strip_suffix('.').unwrap_or(name);
    if trimmed.is_empty() || trimmed.len() > 253 {
        return Err(format!("{name:?} is not a host name (1 to 253 characters)").into());
    }
    for label in trimmed.split('.') {
        if label.is_empty() {
            return Err(format!("{name:?} has an empty label (two dots in a row?)").into());
        }
        if label.len() > 63 {
            return Err(format!("{name:?} has a label longer than 63 characters").into());
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!("{name:?}: a label may not start or end with '-'").into());
        }
        if let Some(bad) = label.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '-')) {
            return Err(format!("{name:?} holds {bad:?}; host names use letters, digits, '-' and '.'").into());
        }
    }
    Ok(())
}

fn parse_ip(host: &str) -> Option<IpAddr> {
    let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    bare.parse().ok()
}

/// Whether a host name or address stays on this machine: `localhost`, `*.localhost`, 127.0.0.0/8 and `::1`.
pub fn is_loopback_host(host: &str) -> bool {
    let lower = host.trim_end_matches('.').to_ascii_lowercase();
    if lower == "localhost" || lower.ends_with(".localhost") {
        return true;
    }
    match parse_ip(&lower) {
        Some(IpAddr::V4(v4)) => v4.is_loopback(),
        Some(IpAddr::V6(v6)) => v6 == Ipv6Addr::LOCALHOST || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
        None => false,
    }
}

/// Which URL schemes a field accepts.
#[derive(Clone, Copy, Debug)]
pub enum UrlKind {
    /// An OAuth endpoint or a public base URL: `https`, or `http` to a loopback host (for testing).
    Endpoint,
    /// A proxy for outgoing HTTP(S) traffic: `http` or `https`.
    Proxy,
}

/// Parses and checks a URL field.
pub fn validate_url(value: &str, kind: UrlKind) -> Result<Url, Invalid> {
    if value.contains(char::is_whitespace) {
        return Err(format!("{value:?} contains a space").into());
    }
    let url = Url::parse(value).map_err(|e| format!("{value:?} is not a URL ({e}); expected https://host/path"))?;
    let host = match url.host_str() {
        Some(host) if !host.is_empty() => host.to_owned(),
        _ => return Err(format!("{value:?} has no host").into()),
    };
    if url.fragment().is_some() {
        return Err(format!("{value:?} has a '#' fragment, which this field cannot use").into());
    }
    match (kind, url.scheme()) {
        (UrlKind::Endpoint, "https") | (UrlKind::Proxy, "http" | "https") => {}
        (UrlKind::Endpoint, "http") if is_loopback_host(&host) => {}
        (UrlKind::Endpoint, "http") => {
            return Err(format!(
                "{value:?} uses http; OAuth traffic must use https (http is allowed only on loopback, for testing)"
            )
            .into());
        }
        (UrlKind::Endpoint, scheme) => {
            return Err(format!("{value:?} uses {scheme}:; expected https://").into());
        }
        (UrlKind::Proxy, scheme) => {
            return Err(format!("{value:?} uses {scheme}:; expected an http:// or https:// proxy").into());
        }
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        for good in
            ["smtp.office365.com", "relay", "192.0.2.10", "::1", "[::1]", "smtp.example.com.", "mx-1.example.org"]
        {
            assert_eq!(validate_host(good), Ok(()), "{good}");
        }
        for (bad, why) in [
            ("smtp office365.com", "space"),
            ("", "empty"),
            ("smtp://smtp.example.com", "URL"),
            ("smtp.example.com:587", "port"),
            ("smtp..example.com", "empty label"),
            ("-smtp.example.com", "'-'"),
            ("smtp_relay.example.com", "'_'"),
        ] {
            let err = validate_host(bad).expect_err(bad);
            assert!(err.reason().contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn loopback() {
        for host in
            ["localhost", "LOCALHOST", "app.localhost", "127.0.0.1", "127.9.9.9", "::1", "[::1]", "::ffff:127.0.0.1"]
        {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in ["example.com", "10.0.0.1", "localhost.example.com", "::2"] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }

    #[test]
    fn urls() {
        assert!(validate_url("https://login.microsoftonline.com/common/oauth2/v2.0/token", UrlKind::Endpoint).is_ok());
        assert!(validate_url("http://127.0.0.1:9000/token", UrlKind::Endpoint).is_ok());
        assert!(validate_url("http://[::1]:9000/token", UrlKind::Endpoint).is_ok());
        assert!(validate_url("http://proxy.corp:3128", UrlKind::Proxy).is_ok());
        for (bad, kind, why) in [
            ("http://login.example.com/token", UrlKind::Endpoint, "must use https"),
            ("ftp://example.com/token", UrlKind::Endpoint, "ftp:"),
            ("login.example.com/token", UrlKind::Endpoint, "not a URL"),
            ("https://example.com/a b", UrlKind::Endpoint, "space"),
            ("https://example.com/token#x", UrlKind::Endpoint, "fragment"),
            ("socks5://proxy:1080", UrlKind::Proxy, "socks5:"),
        ] {
            let err = validate_url(bad, kind).expect_err(bad);
            assert!(err.reason().contains(why), "{bad}: {err}");
        }
    }
}

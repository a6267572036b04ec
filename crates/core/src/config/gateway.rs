//! The SMTP submission gateway's settings: where it listens, who may send through it, and as whom.

use crate::Invalid;
use crate::submission::data::BareNewlines;
use serde::{Deserialize, Serialize};
use std::{net::IpAddr, time::Duration};

/// The gateway; off while neither listener is set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewaySettings {
    /// `ADDR:PORT` of the plain listener (STARTTLS offered when a certificate is set), such as `0.0.0.0:587`.
    pub listen: Option<String>,
    /// `ADDR:PORT` of the implicit-TLS listener, such as `0.0.0.0:465`.
    pub tls_listen: Option<String>,
    /// PEM certificate chain and key for STARTTLS and the TLS listener.
    pub cert_file: Option<String>,
    pub key_file: Option<String>,
    /// Refuse MAIL on the plain listener until STARTTLS.
    pub require_tls: bool,
    /// Allow AUTH without TLS (only for devices on an isolated network that cannot do TLS).
    pub allow_plaintext_auth: bool,
    /// Networks (CIDR) whose devices may send without authenticating.
    pub allowed_networks: Vec<String>,
    /// When not empty, only recipients in these domains.
    pub recipient_domains: Vec<String>,
    pub sender_policy: SenderPolicy,
    /// The one address of the `bulk` policy; must be the configured sender.
    pub bulk_address: Option<String>,
    /// Under `login_user`: delete an account's mailbox token when it signs out of the web interface.
    pub forget_token_on_sign_out: bool,
    pub max_recipients: u32,
    pub max_connections: u32,
    /// Connections at once from one client address (a print server sending for many devices needs more).
    pub max_connections_per_address: u32,
    /// Refused commands in one session after which it is closed.
    pub max_errors: u32,
    /// The slowest message data accepted, in octets per second, after the first `idle_timeout`.
    pub min_data_rate: u32,
    /// The widest IPv4 network (smallest prefix length) `allowed_networks` may list while
    /// `recipient_domains` is empty.
    pub widest_network_v4: u8,
    /// The same for IPv6.
    pub widest_network_v6: u8,
    /// Messages per minute from one client address.
    pub rate_limit: u32,
    /// Failed authentications from one client address before it is locked out for `auth_lockout`.
    pub auth_max_failures: u32,
    #[serde(with = "humantime_serde")]
    pub auth_lockout: Duration,
    /// A client silent this long is disconnected.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// The longest a session may last.
    #[serde(with = "humantime_serde")]
    pub session_timeout: Duration,
    pub bare_newlines: BareNewlines,
}

impl Default for GatewaySettings {
    fn default() -> Self {
        Self {
            listen: None,
            tls_listen: None,
            cert_file: None,
            key_file: None,
            require_tls: false,
            allow_plaintext_auth: false,
            allowed_networks: Vec::new(),
            recipient_domains: Vec::new(),
            sender_policy: SenderPolicy::Fixed,
            bulk_address: None,
            forget_token_on_sign_out: false,
            max_recipients: 100,
            max_connections: 50,
            max_connections_per_address: 10,
            max_errors: 20,
            min_data_rate: 1024,
            widest_network_v4: 8,
            widest_network_v6: 32,
            rate_limit: 120,
            auth_max_failures: 5,
            auth_lockout: Duration::from_secs(15 * 60),
            idle_timeout: Duration::from_secs(5 * 60),
            session_timeout: Duration::from_secs(30 * 60),
            bare_newlines: BareNewlines::Reject,
        }
    }
}

/// As whom a device's message is sent (as multifunction-printer fleets configure it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SenderPolicy {
    /// Every message goes as the configured sender: From and envelope rewritten, the device's From kept in
    /// Reply-To.
    #[default]
    Fixed,
    /// The device's From is kept when the account may send as that address; refused otherwise.
    AllowUser,
    /// One configured address for all (`gateway.bulk_address`, equal to the sender), rewritten like `fixed`.
    Bulk,
    /// Each account's messages go as its own mailbox (its first address), with the OAuth token the account
    /// connected itself; rewritten like `fixed`. Only authenticated accounts may send.
    LoginUser,
}

/// A network in CIDR notation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// `192.168.10.0/24`, `fd00::/8`, or a single address.
    pub fn parse(text: &str) -> Result<Self, Invalid> {
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let network: IpAddr =
            addr.trim().parse().map_err(|_| format!("{text:?} is not an IP network such as 192.168.10.0/24"))?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{text:?}: the prefix must be 0-{max}"))?,
            None => max,
        };
        Ok(Self { network, prefix })
    }

    /// The prefix length: `/24` is 24.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    pub fn is_ipv4(&self) -> bool {
        self.network.is_ipv4()
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.network, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = if self.prefix == 0 { 0 } else { u32::MAX << (32 - self.prefix) };
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = if self.prefix == 0 { 0 } else { u128::MAX << (128 - self.prefix) };
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks() {
        let lan = Cidr::parse("127.0.0.0/24").unwrap_or_else(|e| panic!("{e}"));
        assert!(lan.contains("127.0.0.77".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))));
        assert!(!lan.contains("127.0.1.1".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))));
        assert!(lan.contains("::ffff:127.0.0.5".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))));
        let one = Cidr::parse("::1").unwrap_or_else(|e| panic!("{e}"));
        assert!(one.contains("::1".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))));
        assert!(Cidr::parse("127.0.0.0/33").is_err() && Cidr::parse("printer").is_err());
    }
}

//! A cluster of Tidings nodes, as the appliance runs them: one primary whose email configuration every backup
//! and traffic node takes, keeping only what is each node's own. Pure: the roles, the join code, which keys stay
//! a node's own, the merge of the primary's configuration with them, and what a follower says when asked to
//! change it.

use crate::{EmailConfig, Invalid, config::keys};
use std::{fmt, str::FromStr};

/// What a node is in its cluster.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Role {
    /// No cluster: the node's configuration is its own.
    #[default]
    Standalone,
    /// The node whose configuration every other node takes.
    Primary,
    /// Takes the primary's configuration, checks the primary's health, and takes over when it fails.
    Backup,
    /// Takes the primary's configuration and carries traffic; never takes over.
    Traffic,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Standalone, Role::Primary, Role::Backup, Role::Traffic];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Standalone => "standalone",
            Role::Primary => "primary",
            Role::Backup => "backup",
            Role::Traffic => "traffic",
        }
    }

    /// A backup or traffic node: its configuration is the primary's.
    pub fn follows(self) -> bool {
        matches!(self, Role::Backup | Role::Traffic)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = Invalid;
    fn from_str(s: &str) -> Result<Self, Invalid> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| Invalid::new(format!("unknown role {s:?}: expected standalone, primary, backup or traffic")))
    }
}

/// The role a node joins with: backup or traffic.
pub fn joining_role(text: &str) -> Result<Role, Invalid> {
    match text.parse()? {
        role @ (Role::Backup | Role::Traffic) => Ok(role),
        role => Err(Invalid::new(format!("a node joins as backup or traffic, not {role}"))),
    }
}

/// The configuration keys that stay each node's own: where it listens and with which certificate. Every other
/// key is the primary's.
pub const NODE_LOCAL_KEYS: &[&str] =
    &["gateway.listen", "gateway.tls_listen", "gateway.cert_file", "gateway.key_file", "cluster.backup_enabled"];

/// Whether a follower may change `key` itself.
pub fn is_node_local(key: &str) -> bool {
    NODE_LOCAL_KEYS.contains(&key)
}

/// The primary's configuration with this node's own keys kept.
pub fn merged(primary: &EmailConfig, local: &EmailConfig) -> EmailConfig {
    let mut merged = primary.clone();
    for key in NODE_LOCAL_KEYS {
        // The value came from a configuration that held it: setting it back cannot fail.
        let _ = keys::set(&mut merged, key, &keys::get(local, key).unwrap_or_default());
    }
    merged
}

/// A node's name: what the others and the mails call it.
pub fn validate_node_name(name: &str) -> Result<(), Invalid> {
    let ok = (1..=63).contains(&name.len())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        && name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(Invalid::new(format!(
            "{name:?} is not a node name: 1 to 63 letters, digits, '-', '_' or '.', starting with a letter or digit"
        )))
    }
}

/// What joining needs from the primary, printed once by `add-node` and given to `join`: the node's name, a
/// secret that works once, and the fingerprint of the primary's cluster certificate (which the joining node
/// pins).
#[derive(Clone, PartialEq, Eq)]
pub struct JoinCode {
    pub name: String,
    pub secret: String,
    /// SHA-256 of the primary's certificate, hex.
    pub fingerprint: String,
}

impl fmt::Debug for JoinCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinCode")
            .field("name", &self.name)
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

const JOIN_PREFIX: &str = "tidings-join:";

impl JoinCode {
    /// `tidings-join:NAME:SECRET:FINGERPRINT`.
    pub fn encode(&self) -> String {
        format!("{JOIN_PREFIX}{}:{}:{}", self.name, self.secret, self.fingerprint)
    }

    pub fn parse(text: &str) -> Result<Self, Invalid> {
        let wrong = || {
            Invalid::new(
                "not a join code: expected tidings-join:NAME:SECRET:FINGERPRINT as `tidings cluster add-node` printed it",
            )
        };
        let rest = text.trim().strip_prefix(JOIN_PREFIX).ok_or_else(wrong)?;
        let mut parts = rest.split(':');
        let (Some(name), Some(secret), Some(fingerprint), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(wrong());
        };
        validate_node_name(name)?;
        let hex64 = fingerprint.len() == 64 && fingerprint.chars().all(|c| c.is_ascii_hexdigit());
        if secret.len() < 32 || !hex64 {
            return Err(wrong());
        }
        Ok(Self { name: name.to_owned(), secret: secret.to_owned(), fingerprint: fingerprint.to_ascii_lowercase() })
    }
}

/// What a follower answers to a change of the primary's configuration: which node it follows, the revision in
/// force and how old it is, and where to make the change instead.
pub fn read_only_reason(role: Role, primary: &str, revision: i64, age_seconds: Option<i64>, url: &str) -> String {
    let received = match age_seconds {
        Some(age) => format!("received {} ago", shown_age(age)),
        None => "not received yet".to_owned(),
    };
    format!(
        "This node is a {role}: its email configuration is the primary's — {primary}, revision {revision}, {received}. \
         Change it on the primary: {url}"
    )
}

/// `4 s`, `3 min`, `2 h`, `5 d`.
pub fn shown_age(seconds: i64) -> String {
    let s = seconds.max(0);
    match s {
        0..120 => format!("{s} s"),
        120..7200 => format!("{} min", s / 60),
        7200..172_800 => format!("{} h", s / 3600),
        _ => format!("{} d", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_join_code_round_trips_and_a_wrong_one_says_what_is_expected() {
        let code = JoinCode { name: "backup-1".into(), secret: "s".repeat(43), fingerprint: "AB".repeat(32) };
        let parsed = JoinCode::parse(&format!("  {}\n", code.encode())).unwrap();
        assert_eq!(parsed.fingerprint, "ab".repeat(32));
        assert_eq!((parsed.name.as_str(), parsed.secret.as_str()), ("backup-1", code.secret.as_str()));
        for wrong in ["", "tidings-join:", "tidings-join:b:short:ab", &code.encode().replace("tidings-join", "x")] {
            assert!(JoinCode::parse(wrong).unwrap_err().reason().contains("not a join code"), "{wrong}");
        }
        assert!(!format!("{code:?}").contains(&code.secret), "the secret never prints");
    }

    #[test]
    fn a_follower_keeps_its_own_listeners_and_takes_everything_else() {
        let mut primary = EmailConfig::default();
        keys::set(&mut primary, "smtp.host", "relay.example.com").unwrap();
        keys::set(&mut primary, "gateway.listen", "0.0.0.0:587").unwrap();
        let mut local = EmailConfig::default();
        keys::set(&mut local, "smtp.host", "old.example.com").unwrap();
        keys::set(&mut local, "gateway.listen", "127.0.0.1:2525").unwrap();
        let taken = merged(&primary, &local);
        assert_eq!(keys::get(&taken, "smtp.host").as_deref(), Some("relay.example.com"));
        assert_eq!(keys::get(&taken, "gateway.listen").as_deref(), Some("127.0.0.1:2525"));
        let unset = merged(&primary, &EmailConfig::default());
        assert_eq!(unset.gateway.listen, None, "a key the node does not set stays unset");
    }

    #[test]
    fn roles_and_names() {
        assert_eq!(joining_role("traffic").unwrap(), Role::Traffic);
        assert!(joining_role("primary").unwrap_err().reason().contains("backup or traffic"));
        assert!(validate_node_name("node-2.dc1").is_ok());
        assert!(validate_node_name("-x").is_err() && validate_node_name("a b").is_err());
        assert_eq!(shown_age(4), "4 s");
        assert_eq!(shown_age(600), "10 min");
        let words = read_only_reason(Role::Backup, "alpha", 7, Some(4), "https://alpha:8443");
        assert!(
            words.starts_with("This node is a backup: its email configuration is the primary's — alpha, revision 7")
        );
    }
}

/// What a backup's probes saw in one round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seen {
    /// The primary answered at its address.
    pub primary: bool,
    /// The primary's host name resolved and the primary answered at it; `None` when its address is an IP.
    pub primary_by_name: Option<bool>,
    /// At least one test address answered; `None` when none is configured.
    pub test_addresses: Option<bool>,
    /// This node's own cluster listener answered.
    pub itself: bool,
}

/// What a backup concludes from a round: the conditions that hold (each raised as its event when it begins), and
/// whether to take over now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    pub conditions: Vec<crate::notify::EventKind>,
    pub take_over: bool,
}

/// Judges a round of probes. `down_for` is how long the primary has not answered (zero when it just did).
/// A backup takes over only when automatic failover is on, the primary stayed unreachable for `takeover_after`,
/// and a test address answers: a backup that reaches nothing is the one cut off.
pub fn judge(seen: Seen, settings: &crate::config::ClusterSettings, down_for: std::time::Duration) -> Verdict {
    use crate::notify::EventKind as K;
    let mut verdict = Verdict::default();
    if !settings.backup_enabled {
        verdict.conditions.push(K::BackupDisabled);
        return verdict;
    }
    if !seen.itself {
        verdict.conditions.push(K::SelfProbeFailed);
    }
    if seen.primary_by_name == Some(false) && seen.primary {
        verdict.conditions.push(K::PrimaryHostnameUnreachable);
    }
    match (seen.primary, seen.test_addresses) {
        (false, Some(false)) => verdict.conditions.push(K::BackupIsolated),
        (false, reachable) => {
            verdict.conditions.push(if settings.auto_failover {
                K::PrimaryProbeFailedAuto
            } else {
                K::PrimaryProbeFailedManual
            });
            verdict.take_over =
                settings.auto_failover && reachable == Some(true) && seen.itself && down_for >= settings.takeover_after;
        }
        (true, Some(false)) => verdict.conditions.push(K::TestIpsUnreachable),
        (true, _) => {}
    }
    verdict
}

#[cfg(test)]
mod judging {
    use super::*;
    use crate::{config::ClusterSettings, notify::EventKind as K};
    use std::time::Duration;

    fn seen(primary: bool, tests: Option<bool>) -> Seen {
        Seen { primary, primary_by_name: None, test_addresses: tests, itself: true }
    }

    #[test]
    fn a_backup_takes_over_only_when_the_primary_is_gone_and_it_is_not_the_one_cut_off() {
        let auto =
            ClusterSettings { auto_failover: true, takeover_after: Duration::from_secs(30), ..Default::default() };
        let long = Duration::from_secs(31);
        assert_eq!(judge(seen(true, Some(true)), &auto, Duration::ZERO), Verdict::default());
        let v = judge(seen(false, Some(true)), &auto, Duration::from_secs(10));
        assert_eq!((v.conditions.as_slice(), v.take_over), (&[K::PrimaryProbeFailedAuto][..], false));
        assert!(judge(seen(false, Some(true)), &auto, long).take_over);
        let isolated = judge(seen(false, Some(false)), &auto, long);
        assert_eq!((isolated.conditions.as_slice(), isolated.take_over), (&[K::BackupIsolated][..], false));
        assert!(!judge(seen(false, None), &auto, long).take_over, "without test addresses it cannot tell");
        let manual = ClusterSettings::default();
        let v = judge(seen(false, Some(true)), &manual, long);
        assert_eq!((v.conditions.as_slice(), v.take_over), (&[K::PrimaryProbeFailedManual][..], false));
        assert_eq!(judge(seen(true, Some(false)), &auto, long).conditions, [K::TestIpsUnreachable]);
        let sick = Seen { itself: false, ..seen(false, Some(true)) };
        let v = judge(sick, &auto, long);
        assert!(v.conditions.contains(&K::SelfProbeFailed) && !v.take_over, "a node that fails itself stays");
        let named = Seen { primary_by_name: Some(false), ..seen(true, Some(true)) };
        assert_eq!(judge(named, &auto, long).conditions, [K::PrimaryHostnameUnreachable]);
        let off = ClusterSettings { backup_enabled: false, ..auto };
        assert_eq!(
            judge(seen(false, Some(true)), &off, long),
            Verdict { conditions: vec![K::BackupDisabled], take_over: false }
        );
    }
}

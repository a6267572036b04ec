//! The catalogue of events Tidings mails to the admin contacts: a stable identifier, a severity, and where each
//! comes from.

use crate::Invalid;
use serde::Serialize;
use std::fmt;

/// How urgent an event is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Someone must act now: the service or the mail path is down or about to be.
    Critical,
    /// Something is wrong and will hurt if left alone.
    Warning,
    /// For the record: notices and tests.
    Info,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

/// Who raises an event of a kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The appliance's other components, through `POST /api/v1/events` or `tidings event emit`.
    Appliance,
    /// Tidings itself; refused from outside.
    Tidings,
}

macro_rules! kinds {
    ($($variant:ident = $id:literal, $severity:ident, $source:ident, [$($field:literal),*], $summary:literal;)*) => {
        /// An event kind. Identifiers are stable: appliances and filters depend on them.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum EventKind { $($variant),* }

        impl EventKind {
            pub const ALL: &[EventKind] = &[$(EventKind::$variant),*];

            /// The stable identifier, such as `failover.takeover`.
            pub fn id(self) -> &'static str {
                match self { $(EventKind::$variant => $id),* }
            }
            pub fn severity(self) -> Severity {
                match self { $(EventKind::$variant => Severity::$severity),* }
            }
            pub fn source(self) -> Source {
                match self { $(EventKind::$variant => Source::$source),* }
            }
            /// The details Tidings always supplies for its own kinds; their templates may name them.
            pub fn fields(self) -> &'static [&'static str] {
                match self { $(EventKind::$variant => &[$($field),*]),* }
            }
            /// One line in English, for listings.
            pub fn summary(self) -> &'static str {
                match self { $(EventKind::$variant => $summary),* }
            }
        }
    };
}

kinds! {
    VersionMismatch = "failover.version_mismatch", Warning, Appliance, [],
        "during a failover operation, the primary and backup nodes run different product versions";
    SharedIpInterfaceDisabled = "failover.shared_ip_interface_disabled", Critical, Appliance, [],
        "this node is the primary and a shared IP address is configured, but its network interface is not enabled";
    SharedIpNotListed = "failover.shared_ip_not_listed", Warning, Appliance, [],
        "a shared IP address is configured but is not among this appliance's IP addresses";
    BackupIsolated = "failover.backup_isolated", Critical, Appliance, [],
        "the backup node could reach neither the primary node nor any configured test IP address";
    TestIpsUnreachable = "failover.test_ips_unreachable", Warning, Appliance, [],
        "the backup node could not reach any of the configured test IP addresses";
    BackupDisabled = "failover.backup_disabled", Warning, Appliance, [],
        "backup operations of the backup node are disabled";
    SelfProbeFailed = "failover.self_probe_failed", Critical, Appliance, [],
        "the backup node failed to probe itself: it is not working properly";
    PrimaryHostnameUnreachable = "failover.primary_hostname_unreachable", Warning, Appliance, [],
        "the backup node could not reach the primary node by the primary's host name";
    PrimaryProbeFailedManual = "failover.primary_probe_failed_manual", Critical, Appliance, [],
        "automatic failover is disabled and the backup node failed to probe the primary node";
    PrimaryProbeFailedAuto = "failover.primary_probe_failed_auto", Warning, Appliance, [],
        "automatic failover is enabled and the backup node failed to probe the primary; it takes over if this goes on";
    Takeover = "failover.takeover", Critical, Appliance, [],
        "automatic failover: the backup node is becoming the primary, the primary was unreachable for too long";
    SyncFailed = "failover.sync_failed", Warning, Appliance, [],
        "the primary failed to synchronize data to the backup node in the last 24 hours";
    ReauthorizationRequired = "oauth.reauthorization_required", Critical, Tidings, ["reason", "explanation"],
        "the OAuth provider refused the stored authorization: an administrator must sign in again";
    RefreshFailing = "oauth.refresh_failing", Warning, Tidings, ["reason", "since"],
        "OAuth token refreshes have been failing for a long time";
    DeadLetter = "delivery.dead_letter", Warning, Tidings, ["message", "subject", "recipients", "error"],
        "a message could not be delivered and was given up (dead letter)";
    BudgetWarning = "delivery.budget_warning", Warning, Tidings, ["account", "used", "budget", "easing_at"],
        "a mailbox Tidings sends as nears its provider's daily recipient limit; past it, messages wait";
    CertificateExpiring = "delivery.certificate_expiring", Warning, Tidings, ["relay", "subject", "expires", "days"],
        "the relay's TLS certificate expires soon";
    ClientSecretExpiring = "oauth.client_secret_expiring", Warning, Tidings, ["expires", "days"],
        "the client secret Tidings authenticates to the OAuth provider with expires soon";
    ClientCertificateExpiring = "oauth.certificate_expiring", Warning, Tidings, ["subject", "thumbprint", "expires", "days"],
        "the certificate Tidings authenticates to the OAuth provider with expires soon";
    ServiceAccountKeyExpiring = "oauth.service_account_key_expiring", Warning, Tidings, ["account", "expires", "days"],
        "the Google service account key Tidings signs its assertions with expires soon";
    AuthorizationUnused = "oauth.authorization_unused", Warning, Tidings, ["account", "used", "expires", "days"],
        "a refresh token was not used for long: the provider ends it at its inactivity limit";
    ServerCertificateExpiring = "tls.certificate_expiring", Warning, Tidings, ["service", "file", "subject", "expires", "days"],
        "a certificate Tidings presents (the gateway's, the web interface's) expires soon";
    DailyNotice = "notice.daily", Info, Tidings, ["started", "queue", "token"],
        "the daily communication notice: the alert path works";
    TestEmail = "notice.test", Info, Tidings, ["actor", "relay", "sender"],
        "a test email, sent on demand or when the configuration was saved";
}

impl EventKind {
    /// A short title, in English (the web interface has it in each language: `event.title.<kind>` in its
    /// catalogues, checked against this).
    pub fn title(self) -> &'static str {
        match self {
            EventKind::VersionMismatch => "Version mismatch between the nodes",
            EventKind::SharedIpInterfaceDisabled => "Shared IP's interface disabled",
            EventKind::SharedIpNotListed => "Shared IP not on this appliance",
            EventKind::BackupIsolated => "Backup node isolated",
            EventKind::TestIpsUnreachable => "Test IP addresses unreachable",
            EventKind::BackupDisabled => "Backup operations disabled",
            EventKind::SelfProbeFailed => "Backup node failed its self-check",
            EventKind::PrimaryHostnameUnreachable => "Primary unreachable by its name",
            EventKind::PrimaryProbeFailedManual => "Primary not answering (manual failover)",
            EventKind::PrimaryProbeFailedAuto => "Primary not answering (automatic failover)",
            EventKind::Takeover => "Failover: the backup takes over",
            EventKind::SyncFailed => "Synchronization to the backup failed",
            EventKind::ReauthorizationRequired => "Re-authorization required",
            EventKind::RefreshFailing => "Token refreshes failing",
            EventKind::DeadLetter => "Message given up",
            EventKind::BudgetWarning => "Daily recipient limit nearly reached",
            EventKind::CertificateExpiring => "Relay's certificate expiring",
            EventKind::ClientSecretExpiring => "Client secret expiring",
            EventKind::ClientCertificateExpiring => "Client certificate expiring",
            EventKind::ServiceAccountKeyExpiring => "Service account key expiring",
            EventKind::AuthorizationUnused => "Authorization unused for long",
            EventKind::ServerCertificateExpiring => "Tidings' certificate expiring",
            EventKind::DailyNotice => "Daily notice",
            EventKind::TestEmail => "Test email",
        }
    }

    /// Looks a kind up by its identifier.
    pub fn parse(id: &str) -> Result<Self, Invalid> {
        Self::ALL.iter().copied().find(|k| k.id() == id).ok_or_else(|| {
            let external: Vec<&str> =
                Self::ALL.iter().filter(|k| k.source() == Source::Appliance).map(|k| k.id()).collect();
            Invalid::new(format!(
                "unknown event kind {id:?}; expected one of {} (`tidings event kinds` lists them)",
                external.join(", ")
            ))
        })
    }

    /// Notices are sent every time they are asked for; alerts are throttled.
    pub fn throttled(self) -> bool {
        !matches!(self, EventKind::DailyNotice | EventKind::TestEmail)
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

impl Serialize for EventKind {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_unique_and_parse_back() {
        for (i, kind) in EventKind::ALL.iter().enumerate() {
            assert_eq!(EventKind::parse(kind.id()), Ok(*kind));
            assert!(EventKind::ALL[..i].iter().all(|k| k.id() != kind.id()));
            assert!(kind.id().chars().all(|c| c.is_ascii_lowercase() || c == '.' || c == '_'), "{kind}");
        }
        let err = EventKind::parse("failover.bogus").unwrap_err();
        assert!(err.reason().contains("failover.takeover") && !err.reason().contains("notice.daily"), "{err}");
    }

    #[test]
    fn the_twelve_failover_kinds_come_from_the_appliance() {
        let appliance = EventKind::ALL.iter().filter(|k| k.source() == Source::Appliance).count();
        assert_eq!(appliance, 12);
        assert!(
            EventKind::ALL.iter().filter(|k| k.source() == Source::Tidings).all(|k| !k.id().starts_with("failover."))
        );
    }
}

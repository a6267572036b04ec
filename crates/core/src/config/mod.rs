//! The administrator's email configuration: the sender, the SMTP relay, OAuth 2.0, TLS options, the admin
//! contact and the locale.
//!
//! The model is plain data with serde; [`keys`] names every field as a dotted key (`smtp.port`) for the CLI and
//! the audit log, [`change`] applies a set of edits (with provider [`preset`]s) and [`validate`] decides whether
//! the result may be stored. Secrets are not part of the model: the edges keep them encrypted, and validation
//! only learns whether each is set.

pub mod advice;
pub mod change;
pub mod custody;
pub mod gateway;
pub mod google;
pub mod keys;
pub mod preset;
pub mod validate;

use serde::{Deserialize, Serialize};
use std::{fmt, time::Duration};

pub use change::{Changes, SecretUpdate, apply};
pub use validate::{SecretsPresent, validate};

/// The path under the public base URL where the OAuth provider sends the browser back.
pub const REDIRECT_PATH: &str = "/login/smtp-verification/";

/// The whole email configuration, as stored (secrets excluded).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmailConfig {
    /// The From address of the messages Tidings sends on its own (alerts, notices, tests).
    pub sender: Option<String>,
    pub smtp: SmtpRelay,
    pub oauth: OAuthClient,
    pub tls: TlsOptions,
    pub admin: AdminContact,
    /// Where administrators' browsers reach Tidings (`https://tidings.example.com`); the OAuth redirect URI is
    /// derived from it.
    pub public_base_url: Option<String>,
    /// Language of outgoing mail and of the interface.
    pub locale: Locale,
    /// How the outbox delivers: retries, limits, connections.
    pub delivery: DeliverySettings,
    /// The SMTP submission gateway for legacy devices.
    pub gateway: gateway::GatewaySettings,
    /// The failover checks of a cluster's backup and primary (docs/cluster.md).
    pub cluster: ClusterSettings,
    /// Microsoft Graph, for `delivery.transport=microsoft_graph`.
    pub graph: ApiEndpoint,
    /// The Gmail API, for `delivery.transport=gmail_api`.
    pub gmail: ApiEndpoint,
}

/// How messages leave: SMTP to the relay, or a provider's HTTP API.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    #[default]
    Smtp,
    /// `POST /v1.0/users/{mailbox}/sendMail` with the MIME message, base64.
    MicrosoftGraph,
    /// `POST /upload/gmail/v1/users/{mailbox}/messages/send?uploadType=media` with the MIME message.
    GmailApi,
}

impl Transport {
    /// Whether messages go over an HTTP API (with an OAuth token) rather than SMTP.
    pub fn is_api(self) -> bool {
        self != Transport::Smtp
    }
}

/// Where a provider's HTTP API is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiEndpoint {
    /// The base URL (`https://graph.microsoft.com`); `http://` only on loopback, for tests.
    pub endpoint: String,
}

/// Microsoft Graph's base URL.
pub const GRAPH_ENDPOINT: &str = "https://graph.microsoft.com";
/// The Gmail API's base URL.
pub const GMAIL_ENDPOINT: &str = "https://gmail.googleapis.com";

impl Default for EmailConfig {
    fn default() -> Self {
        Self {
            sender: None,
            smtp: SmtpRelay::default(),
            oauth: OAuthClient::default(),
            tls: TlsOptions::default(),
            admin: AdminContact::default(),
            public_base_url: None,
            locale: Locale::default(),
            delivery: DeliverySettings::default(),
            gateway: gateway::GatewaySettings::default(),
            cluster: ClusterSettings::default(),
            graph: ApiEndpoint { endpoint: GRAPH_ENDPOINT.into() },
            gmail: ApiEndpoint { endpoint: GMAIL_ENDPOINT.into() },
        }
    }
}

/// How a cluster's backup watches its primary, and when it takes over.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterSettings {
    /// How often the backup probes the primary, the test addresses and itself.
    #[serde(with = "humantime_serde")]
    pub probe_interval: Duration,
    /// Take over when the primary stays unreachable this long (while a test address answers).
    pub auto_failover: bool,
    #[serde(with = "humantime_serde")]
    pub takeover_after: Duration,
    /// `HOST:PORT` the backup reaches over TCP to tell a dead primary from its own isolation.
    pub test_addresses: Vec<String>,
    /// The address that moves to the primary (the primary checks that it holds it).
    pub shared_address: Option<String>,
    /// The primary raises `failover.sync_failed` when no backup took its configuration this long.
    #[serde(with = "humantime_serde")]
    pub sync_failed_after: Duration,
    /// A backup's own switch (its node's key): false stops its checks and takeovers, and says so.
    pub backup_enabled: bool,
}

impl Default for ClusterSettings {
    fn default() -> Self {
        Self {
            probe_interval: Duration::from_secs(10),
            auto_failover: false,
            takeover_after: Duration::from_secs(60),
            test_addresses: Vec::new(),
            shared_address: None,
            sync_failed_after: Duration::from_secs(24 * 3600),
            backup_enabled: true,
        }
    }
}

impl EmailConfig {
    /// The redirect URI to register with the OAuth provider, once a public base URL is known.
    /// The mailbox Tidings authenticates as (the XOAUTH2 user, a service account's subject, the API's mailbox):
    /// `oauth.account`, or the sender.
    pub fn mailbox(&self) -> Option<&str> {
        self.oauth.account.as_deref().or(self.sender.as_deref())
    }

    pub fn redirect_uri(&self) -> Option<String> {
        self.public_base_url.as_deref().map(|base| format!("{}{REDIRECT_PATH}", base.trim_end_matches('/')))
    }
}

/// The SMTP relay Tidings delivers through.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmtpRelay {
    /// Host name or IP address; unset means no relay is configured yet.
    pub host: Option<String>,
    /// Port; unset means the usual port for the encryption (465, 587 or 25).
    pub port: Option<u32>,
    pub encryption: Encryption,
    pub auth: AuthMethod,
    /// User name for `password` authentication.
    pub username: Option<String>,
    /// Permits authentication without encryption, and only to a loopback relay (a local test server or a
    /// co-located MTA): credentials never cross a network in clear text.
    pub allow_plaintext_auth: bool,
}

impl SmtpRelay {
    /// The port in use: the configured one, or the customary one for the encryption.
    pub fn effective_port(&self) -> u32 {
        self.port.unwrap_or(match self.encryption {
            Encryption::Tls => 465,
            Encryption::Starttls => 587,
            Encryption::None => 25,
        })
    }
}

/// How the connection to the relay is protected.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encryption {
    /// Implicit TLS from the first byte (usually port 465).
    Tls,
    /// Plain connection upgraded with STARTTLS, which must succeed (usually port 587).
    #[default]
    Starttls,
    /// No encryption.
    None,
}

/// How Tidings authenticates to the relay.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMethod {
    #[default]
    None,
    /// User name and password (AUTH PLAIN or LOGIN).
    Password,
    /// SASL XOAUTH2 with an OAuth 2.0 access token.
    Oauth2,
}

/// The OAuth 2.0 client Tidings uses to obtain tokens for the relay.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OAuthClient {
    pub provider: Option<Provider>,
    /// Microsoft Entra tenant: `common`, `consumers`, `organizations`, a tenant GUID or a verified domain.
    pub tenant: Option<String>,
    /// The application (client) id the provider issued.
    pub client_id: Option<String>,
    /// How the client proves itself at the token endpoint: its secret, or an assertion its certificate signs.
    pub client_credential: ClientCredential,
    /// The service account's address (`client_email` of Google's key file), with `service_account`.
    pub service_account: Option<String>,
    /// The id of the service account's key (`private_key_id`), sent as the assertion's `kid`.
    pub service_account_key_id: Option<String>,
    /// When the client secret expires (as Entra showed it when it was made), for the warnings ahead of it.
    pub client_secret_expires: Option<chrono::NaiveDate>,
    /// When the service account's key expires (Google's key files do not say; an organization policy sets it).
    pub service_account_key_expires: Option<chrono::NaiveDate>,
    /// An authorization whose refresh token was not used for this long is refreshed, so that it never reaches the
    /// provider's inactivity limit (Microsoft: 90 days); zero: never.
    #[serde(with = "humantime_serde")]
    pub keep_alive: Duration,
    /// How long ahead of its end a credential in use (the client secret, the client certificate) raises an
    /// event: once at each of these; none: never.
    #[serde(with = "durations")]
    pub expiry_warnings: Vec<Duration>,
    pub scopes: Vec<String>,
    pub authorization_endpoint: Option<String>,
    pub token_endpoint: Option<String>,
    pub device_authorization_endpoint: Option<String>,
    /// The mailbox to authenticate as (the XOAUTH2 user); the sender address when unset.
    pub account: Option<String>,
    /// HTTP(S) proxy for traffic to the OAuth endpoints.
    pub proxy_url: Option<String>,
}

impl Default for OAuthClient {
    fn default() -> Self {
        Self {
            provider: None,
            tenant: None,
            client_id: None,
            client_credential: ClientCredential::default(),
            service_account: None,
            service_account_key_id: None,
            client_secret_expires: None,
            service_account_key_expires: None,
            keep_alive: Duration::from_secs(30 * 24 * 3600),
            expiry_warnings: vec![Duration::from_secs(30 * 24 * 3600), Duration::from_secs(7 * 24 * 3600)],
            scopes: Vec::new(),
            authorization_endpoint: None,
            token_endpoint: None,
            device_authorization_endpoint: None,
            account: None,
            proxy_url: None,
        }
    }
}

/// A list of durations as humantime's words (`["30days", "7days"]`).
mod durations {
    use serde::{Deserialize, Deserializer, Serializer, ser::SerializeSeq};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(list: &[Duration], s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(list.len()))?;
        for d in list {
            seq.serialize_element(&humantime::format_duration(*d).to_string())?;
        }
        seq.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Duration>, D::Error> {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|t| humantime::parse_duration(t).map_err(serde::de::Error::custom))
            .collect()
    }
}

/// How the OAuth client authenticates to the token endpoint.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientCredential {
    /// `oauth.client_secret` (or none: a public client).
    #[default]
    Secret,
    /// A `client_assertion` signed with the key of `oauth.client_certificate` (`private_key_jwt`).
    Certificate,
    /// A Google service account with domain-wide delegation: a JWT bearer grant (RFC 7523) for the mailbox,
    /// signed with `oauth.service_account_key` (or the client certificate's key).
    #[serde(rename = "service_account")]
    ServiceAccount,
}

/// Who issues the OAuth tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// Microsoft Entra ID (Microsoft 365, Outlook.com).
    Microsoft,
    /// Google (Workspace, Gmail).
    Google,
    /// Any other OAuth 2.0 server; endpoints are entered by hand.
    Custom,
}

/// TLS options for connections Tidings makes (to the relay and the OAuth endpoints).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsOptions {
    /// Verify the server's certificate chain and host name. Only an administrator turns this off.
    pub verify_certificates: bool,
    /// A PEM file of extra CA certificates to trust, besides the system's.
    pub ca_file: Option<String>,
    pub min_version: Option<TlsVersion>,
    pub max_version: Option<TlsVersion>,
    /// SHA-256 fingerprints of relay certificates trusted as they are (a self-signed relay's own), written as
    /// `openssl x509 -noout -fingerprint -sha256` prints them; colons and case do not matter.
    pub pinned_certificate: Vec<String>,
    /// Accept a certificate that names the relay only in its Common Name (no subjectAltName), as older internal
    /// CAs issue them.
    pub match_common_name: bool,
    /// A relay certificate that expires within this raises an event; zero: never.
    #[serde(with = "humantime_serde")]
    pub expiry_warning: Duration,
}

impl Default for TlsOptions {
    fn default() -> Self {
        Self {
            verify_certificates: true,
            ca_file: None,
            min_version: None,
            max_version: None,
            pinned_certificate: Vec::new(),
            match_common_name: false,
            expiry_warning: Duration::from_secs(14 * 24 * 3600),
        }
    }
}

impl TlsOptions {
    /// Whether the certificate of this fingerprint is pinned.
    pub fn pins(&self, fingerprint: &str) -> bool {
        let wanted = parse_fingerprint(fingerprint);
        wanted.is_some() && self.pinned_certificate.iter().any(|p| parse_fingerprint(p) == wanted)
    }

    /// The value of `tls.pinned_certificate` with `fingerprint` added.
    pub fn pinned_with(&self, fingerprint: &str) -> String {
        let mut pins = self.pinned_certificate.clone();
        if !self.pins(fingerprint) {
            pins.push(fingerprint.to_owned());
        }
        pins.join(" ")
    }
}

/// A SHA-256 fingerprint as 32 bytes, from hex with or without colons; `None` when it is not one.
pub fn parse_fingerprint(text: &str) -> Option<[u8; 32]> {
    let hex: String = text.chars().filter(|c| *c != ':').collect();
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// A fingerprint as `openssl x509 -fingerprint -sha256` prints it (`AB:CD:…`).
pub fn format_fingerprint(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
}

/// TLS protocol versions Tidings can speak (older ones are broken and refused by Microsoft and Google).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum TlsVersion {
    #[serde(rename = "1.2")]
    V1_2,
    #[serde(rename = "1.3")]
    V1_3,
}

/// Who hears about problems, and how.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminContact {
    /// Where alerts, notices and test mails go.
    pub addresses: Vec<String>,
    /// Send one "Tidings is alive" notice a day.
    pub daily_notice: bool,
    /// Local time of the daily notice, `HH:MM`.
    pub daily_notice_time: String,
    /// IANA time zone of `daily_notice_time`, such as `Europe/Brussels`.
    pub time_zone: String,
    /// Send a test mail to the addresses whenever the configuration is saved.
    pub test_email_on_save: bool,
    /// The same event kind from the same node is mailed at most once per window; repeats are counted and
    /// reported in the next mail.
    #[serde(with = "humantime_serde")]
    pub repeat_window: Duration,
    /// Token refreshes failing this long (while the provider has not refused the grant) raise an alert.
    #[serde(with = "humantime_serde")]
    pub token_alert_after: Duration,
    /// How long a save with the test email on waits for the relay's answer before reporting it as pending.
    #[serde(with = "humantime_serde")]
    pub test_email_wait: Duration,
}

impl Default for AdminContact {
    fn default() -> Self {
        Self {
            addresses: Vec::new(),
            daily_notice: false,
            daily_notice_time: "08:00".into(),
            time_zone: "UTC".into(),
            test_email_on_save: false,
            repeat_window: Duration::from_secs(3600),
            token_alert_after: Duration::from_secs(3600),
            test_email_wait: Duration::from_secs(20),
        }
    }
}

/// How the outbox delivers. Every timing is configurable; the defaults follow Postfix's spirit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeliverySettings {
    /// Delay before the first retry of a deferred message; it doubles with each attempt.
    #[serde(with = "humantime_serde")]
    pub retry_first: Duration,
    /// The longest delay between two attempts.
    #[serde(with = "humantime_serde")]
    pub retry_max: Duration,
    /// A message not delivered this long after it was accepted fails.
    #[serde(with = "humantime_serde")]
    pub give_up_after: Duration,
    /// The largest message accepted, in bytes.
    pub max_message_size: u64,
    /// Connections to the relay used at once (and kept open for reuse).
    pub connections: u32,
    /// How long to wait for the relay at each step of the conversation.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// A message waiting longer than this is a backlog on the status page (amber; red at four times it).
    #[serde(with = "humantime_serde")]
    pub backlog_warning: Duration,
    /// How long a delivery worker holds a message; when a daemon dies mid-delivery the message is due again
    /// after this.
    #[serde(with = "humantime_serde")]
    pub lease: Duration,
    /// After a failure of the relay or of an identity (not of one message), the wait before the first probe;
    /// it doubles after each failed probe.
    #[serde(with = "humantime_serde")]
    pub relay_backoff_first: Duration,
    /// The longest wait between two probes of a relay or identity that is down.
    #[serde(with = "humantime_serde")]
    pub relay_backoff_max: Duration,
    /// Connections at once per identity (the mailbox Tidings sends as). Unset: the provider's limit
    /// ([`crate::outbox::budget::provider_limits`]); 0: no limit.
    pub identity_connections: Option<u32>,
    /// Messages a minute per identity. Unset: the provider's; 0: no limit.
    pub identity_messages_per_minute: Option<u32>,
    /// Recipients per identity in any 24 hours. Unset: the provider's; 0: no limit.
    pub identity_recipients_per_day: Option<u32>,
    /// The share of the daily recipients, in percent, at which the admin contacts are warned.
    pub identity_budget_warning: u32,
    /// SMTP to the relay, or a provider's HTTP API.
    pub transport: Transport,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        Self {
            transport: Transport::Smtp,
            retry_first: Duration::from_secs(5 * 60),
            retry_max: Duration::from_secs(60 * 60),
            give_up_after: Duration::from_secs(5 * 24 * 3600),
            max_message_size: 25 * 1024 * 1024,
            connections: 4,
            timeout: Duration::from_secs(60),
            backlog_warning: Duration::from_secs(15 * 60),
            lease: Duration::from_secs(5 * 60),
            relay_backoff_first: Duration::from_secs(30),
            relay_backoff_max: Duration::from_secs(10 * 60),
            identity_connections: None,
            identity_messages_per_minute: None,
            identity_recipients_per_day: None,
            identity_budget_warning: 80,
        }
    }
}

impl DeliverySettings {
    pub fn retry_policy(&self) -> crate::outbox::retry::RetryPolicy {
        crate::outbox::retry::RetryPolicy {
            first: self.retry_first,
            max: self.retry_max,
            give_up_after: self.give_up_after,
        }
    }

    /// The backoff between probes of a relay or identity that is down.
    pub fn relay_backoff(&self) -> crate::outbox::circuit::Backoff {
        crate::outbox::circuit::Backoff { first: self.relay_backoff_first, max: self.relay_backoff_max }
    }
}

/// The languages Tidings speaks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Locale {
    #[default]
    En,
    Fr,
    De,
    Nl,
}

/// One problem with one field.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    /// The dotted configuration key, such as `smtp.port`.
    pub field: String,
    /// What is wrong and what is expected.
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Every problem found, so that an administrator can fix them all in one go.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the email configuration is not valid:\n{}", list(.0))]
pub struct ValidationErrors(pub Vec<FieldError>);

impl ValidationErrors {
    /// Whether some problem concerns this field.
    pub fn has(&self, field: &str) -> bool {
        self.0.iter().any(|e| e.field == field)
    }
}

fn list(errors: &[FieldError]) -> String {
    errors.iter().map(|e| format!("  - {e}")).collect::<Vec<_>>().join("\n")
}

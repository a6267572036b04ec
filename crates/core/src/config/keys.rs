//! Every configuration field as a dotted key (`smtp.port`), with its help text: the vocabulary of
//! `tidings config set`, `config show` and the audit log.

use super::{
    AuthMethod, ClientCredential, EmailConfig, Encryption, Locale, Provider, TlsVersion, Transport,
    gateway::SenderPolicy,
};
use crate::Invalid;
use crate::submission::data::BareNewlines;

/// One editable field.
#[derive(Clone, Copy, Debug)]
pub struct KeyInfo {
    pub key: &'static str,
    pub help: &'static str,
    /// Stored encrypted, shown only as "set" / "not set".
    pub secret: bool,
}

const fn key(key: &'static str, help: &'static str) -> KeyInfo {
    KeyInfo { key, help, secret: false }
}

const fn secret(key: &'static str, help: &'static str) -> KeyInfo {
    KeyInfo { key, help, secret: true }
}

/// All keys, in the order the configuration page shows them.
pub const KEYS: &[KeyInfo] = &[
    key("sender", "From address of the messages Tidings sends (alerts, notices, tests)"),
    key("smtp.host", "SMTP relay host name or IP address"),
    key("smtp.port", "SMTP relay port, 1-65535 (empty: 465 for tls, 587 for starttls, 25 for none)"),
    key("smtp.encryption", "tls (implicit TLS), starttls (required upgrade) or none"),
    key("smtp.auth", "none, password or oauth2"),
    key("smtp.username", "user name for password authentication"),
    secret("smtp.password", "password for password authentication"),
    key("smtp.allow_plaintext_auth", "true to allow authentication with encryption none, to a loopback relay only"),
    key(
        "oauth.provider",
        "microsoft, google or custom; microsoft and google fill in their endpoints, scopes and relay",
    ),
    key("oauth.tenant", "Microsoft tenant: common, consumers, organizations, a tenant GUID or domain"),
    key("oauth.client_id", "application (client) id issued by the provider"),
    secret("oauth.client_secret", "client secret issued by the provider"),
    key(
        "oauth.client_credential",
        "secret (oauth.client_secret), certificate (oauth.client_certificate) or service_account (Google)",
    ),
    key("oauth.service_account", "the Google service account's address (client_email), with service_account"),
    key("oauth.service_account_key_id", "the id of the service account's key (private_key_id), if any"),
    secret("oauth.service_account_key", "the service account's RSA private key, PEM (from Google's JSON key file)"),
    key("oauth.client_secret_expires", "the client secret's expiry date, YYYY-MM-DD (Entra shows it)"),
    key("oauth.service_account_key_expires", "the service account key's expiry date, YYYY-MM-DD, if it has one"),
    key(
        "oauth.keep_alive",
        "refresh an authorization unused this long, before the provider's inactivity limit (30d; 0s: never)",
    ),
    key(
        "oauth.expiry_warnings",
        "how long ahead of its end a credential in use raises an event, space-separated (30d 7d; empty: never)",
    ),
    secret(
        "oauth.client_certificate",
        "the client's certificate and RSA key, PEM (made by `tidings oauth certificate create`)",
    ),
    key("oauth.scopes", "space-separated scopes"),
    key("oauth.authorization_endpoint", "authorization endpoint URL (https)"),
    key("oauth.token_endpoint", "token endpoint URL (https)"),
    key("oauth.device_authorization_endpoint", "device authorization endpoint URL (https)"),
    key("oauth.account", "mailbox to authenticate as (empty: the sender address)"),
    key("oauth.proxy_url", "http:// or https:// proxy for OAuth traffic (and Graph or the Gmail API)"),
    key("tls.verify_certificates", "verify server certificates (true unless you must turn it off)"),
    key("tls.ca_file", "absolute path of a PEM file of extra CA certificates to trust"),
    key("tls.min_version", "lowest TLS version: 1.2 or 1.3"),
    key("tls.max_version", "highest TLS version: 1.2 or 1.3"),
    key(
        "tls.pinned_certificate",
        "SHA-256 fingerprints of relay certificates to trust as they are (self-signed), separated by spaces",
    ),
    key("tls.match_common_name", "true to accept a certificate naming the relay only in its Common Name (false)"),
    key("tls.expiry_warning", "raise an event when the relay's certificate expires within this; 0s: never (14d)"),
    key("admin.addresses", "admin contact addresses, separated by spaces"),
    key("admin.daily_notice", "true to send a daily communication notice"),
    key("admin.daily_notice_time", "local time of the daily notice, HH:MM"),
    key("admin.time_zone", "IANA time zone of the daily notice, such as Europe/Brussels"),
    key("admin.test_email_on_save", "true to send a test email when the configuration is saved"),
    key("admin.repeat_window", "the same event from the same node is mailed at most once per window (1h)"),
    key("admin.token_alert_after", "alert when token refreshes keep failing this long (1h)"),
    key(
        "admin.test_email_wait",
        "how long a save waits for the test email's outcome before reporting it pending (20s)",
    ),
    key("public_base_url", "URL where browsers reach Tidings; the OAuth redirect URI derives from it"),
    key("locale", "language of mail and interface: en, fr, de or nl"),
    key("delivery.retry_first", "delay before the first retry, doubling after each attempt (5m)"),
    key("delivery.retry_max", "longest delay between attempts (1h)"),
    key("delivery.give_up_after", "a message undelivered this long after acceptance fails (5d)"),
    key("delivery.max_message_size", "largest message accepted, in bytes (26214400)"),
    key("delivery.connections", "connections to the relay at once, 1-64 (4)"),
    key("delivery.timeout", "how long to wait for the relay at each step (60s)"),
    key("delivery.backlog_warning", "a message waiting longer is a backlog on the status page (15m)"),
    key("delivery.lease", "how long a worker holds a message before another may take it over (5m)"),
    key(
        "delivery.relay_backoff_first",
        "wait before probing a relay or identity that failed (unreachable, TLS, 421, credentials refused) (30s)",
    ),
    key("delivery.relay_backoff_max", "longest wait between probes of a relay or identity that is down (10m)"),
    key(
        "delivery.identity_connections",
        "connections at once per mailbox sent as; empty: the provider's (Microsoft 3), 0: no limit",
    ),
    key(
        "delivery.identity_messages_per_minute",
        "messages a minute per mailbox sent as; empty: the provider's (Microsoft 30), 0: no limit",
    ),
    key(
        "delivery.identity_recipients_per_day",
        "recipients per mailbox sent as in any 24 hours; empty: the provider's (Microsoft 10000, Google 2000), 0: no \
         limit",
    ),
    key("delivery.identity_budget_warning", "warn the admin contacts at this percentage of the daily recipients (80)"),
    key("delivery.transport", "smtp (the relay), microsoft_graph (Graph's sendMail) or gmail_api (Gmail's send)"),
    key("graph.endpoint", "Microsoft Graph's base URL (https://graph.microsoft.com)"),
    key("gmail.endpoint", "the Gmail API's base URL (https://gmail.googleapis.com)"),
    key("gateway.listen", "ADDR:PORT of the submission gateway's plain listener (STARTTLS offered with a certificate)"),
    key("gateway.tls_listen", "ADDR:PORT of the submission gateway's implicit-TLS listener"),
    key("gateway.cert_file", "absolute path of the gateway's PEM certificate chain"),
    key("gateway.key_file", "absolute path of the gateway's PEM private key"),
    key("gateway.require_tls", "true to refuse MAIL on the plain listener before STARTTLS"),
    key("gateway.allow_plaintext_auth", "true to allow AUTH without TLS (isolated networks only)"),
    key("gateway.allowed_networks", "networks (CIDR) whose devices may send without authenticating"),
    key("gateway.recipient_domains", "when set, the only recipient domains the gateway accepts"),
    key(
        "gateway.sender_policy",
        "fixed (the sender), allow_user (the account's own addresses), bulk, or login_user (each account's own \
         mailbox and OAuth token)",
    ),
    key("gateway.bulk_address", "the one address of the bulk policy; must equal sender"),
    key(
        "gateway.forget_token_on_sign_out",
        "true to delete a device account's mailbox token when it signs out of the web interface (false)",
    ),
    key("gateway.max_recipients", "recipients per message (100)"),
    key("gateway.max_connections", "simultaneous gateway connections (50)"),
    key(
        "gateway.max_connections_per_address",
        "simultaneous gateway connections from one client address (10; raise it for a print server)",
    ),
    key("gateway.max_errors", "refused commands after which a gateway session is closed (20)"),
    key("gateway.min_data_rate", "slowest message data accepted, in bytes per second, after idle_timeout (1024)"),
    key(
        "gateway.widest_network_v4",
        "widest IPv4 prefix allowed_networks may list without recipient_domains (8: a /8 at most)",
    ),
    key(
        "gateway.widest_network_v6",
        "widest IPv6 prefix allowed_networks may list without recipient_domains (32: a /32 at most)",
    ),
    key("gateway.rate_limit", "messages per minute from one client address (120)"),
    key("gateway.auth_max_failures", "failed authentications from one address before a lockout (5)"),
    key("gateway.auth_lockout", "how long an address is locked out after too many failed authentications (15m)"),
    key("gateway.idle_timeout", "a silent client is disconnected after this (5m)"),
    key("gateway.session_timeout", "the longest a gateway session may last (30m)"),
    key("gateway.bare_newlines", "reject or normalize messages with a bare CR or LF (reject)"),
    key("cluster.probe_interval", "how often a backup probes the primary, the test addresses and itself (10s)"),
    key("cluster.auto_failover", "true: the backup takes over when the primary stays unreachable (false)"),
    key("cluster.takeover_after", "how long the primary must stay unreachable before the backup takes over (1m)"),
    key(
        "cluster.test_addresses",
        "HOST:PORT the backup reaches over TCP to tell a dead primary from its own isolation (space-separated)",
    ),
    key("cluster.shared_address", "the IP address that moves to the primary; the primary checks it holds it"),
    key("cluster.sync_failed_after", "the primary warns when no backup took its configuration this long (24h)"),
    key("cluster.backup_enabled", "this backup's own switch: false stops its checks and takeovers (true)"),
    secret(
        "oauth.static_access_token",
        "a fixed OAuth access token, used while no authorization is stored (for testing)",
    ),
];

/// Looks a key up.
pub fn info(key: &str) -> Option<&'static KeyInfo> {
    KEYS.iter().find(|k| k.key == key)
}

/// The value of a non-secret key as `config set` would take it back (empty when unset); `None` for a secret
/// or unknown key.
pub fn get(cfg: &EmailConfig, key: &str) -> Option<String> {
    let opt = |v: &Option<String>| v.clone().unwrap_or_default();
    Some(match key {
        "sender" => opt(&cfg.sender),
        "smtp.host" => opt(&cfg.smtp.host),
        "smtp.port" => cfg.smtp.port.map(|p| p.to_string()).unwrap_or_default(),
        "smtp.encryption" => encryption_name(cfg.smtp.encryption).into(),
        "smtp.auth" => auth_name(cfg.smtp.auth).into(),
        "smtp.username" => opt(&cfg.smtp.username),
        "smtp.allow_plaintext_auth" => cfg.smtp.allow_plaintext_auth.to_string(),
        "oauth.provider" => cfg.oauth.provider.map(provider_name).unwrap_or_default().into(),
        "oauth.tenant" => opt(&cfg.oauth.tenant),
        "oauth.client_id" => opt(&cfg.oauth.client_id),
        "oauth.client_credential" => name_of(CLIENT_CREDENTIALS, cfg.oauth.client_credential).into(),
        "oauth.service_account" => opt(&cfg.oauth.service_account),
        "oauth.service_account_key_id" => opt(&cfg.oauth.service_account_key_id),
        "oauth.client_secret_expires" => cfg.oauth.client_secret_expires.map(|d| d.to_string()).unwrap_or_default(),
        "oauth.service_account_key_expires" => {
            cfg.oauth.service_account_key_expires.map(|d| d.to_string()).unwrap_or_default()
        }
        "oauth.keep_alive" => duration_text(cfg.oauth.keep_alive),
        "oauth.expiry_warnings" => {
            cfg.oauth.expiry_warnings.iter().map(|d| duration_text(*d)).collect::<Vec<_>>().join(" ")
        }
        "oauth.scopes" => cfg.oauth.scopes.join(" "),
        "oauth.authorization_endpoint" => opt(&cfg.oauth.authorization_endpoint),
        "oauth.token_endpoint" => opt(&cfg.oauth.token_endpoint),
        "oauth.device_authorization_endpoint" => opt(&cfg.oauth.device_authorization_endpoint),
        "oauth.account" => opt(&cfg.oauth.account),
        "oauth.proxy_url" => opt(&cfg.oauth.proxy_url),
        "tls.verify_certificates" => cfg.tls.verify_certificates.to_string(),
        "tls.ca_file" => opt(&cfg.tls.ca_file),
        "tls.min_version" => cfg.tls.min_version.map(tls_name).unwrap_or_default().into(),
        "tls.max_version" => cfg.tls.max_version.map(tls_name).unwrap_or_default().into(),
        "tls.pinned_certificate" => cfg.tls.pinned_certificate.join(" "),
        "tls.match_common_name" => cfg.tls.match_common_name.to_string(),
        "tls.expiry_warning" => duration_text(cfg.tls.expiry_warning),
        "admin.addresses" => cfg.admin.addresses.join(" "),
        "admin.daily_notice" => cfg.admin.daily_notice.to_string(),
        "admin.daily_notice_time" => cfg.admin.daily_notice_time.clone(),
        "admin.time_zone" => cfg.admin.time_zone.clone(),
        "admin.test_email_on_save" => cfg.admin.test_email_on_save.to_string(),
        "admin.repeat_window" => duration_text(cfg.admin.repeat_window),
        "admin.token_alert_after" => duration_text(cfg.admin.token_alert_after),
        "admin.test_email_wait" => duration_text(cfg.admin.test_email_wait),
        "public_base_url" => opt(&cfg.public_base_url),
        "locale" => locale_name(cfg.locale).into(),
        "delivery.retry_first" => duration_text(cfg.delivery.retry_first),
        "delivery.retry_max" => duration_text(cfg.delivery.retry_max),
        "delivery.give_up_after" => duration_text(cfg.delivery.give_up_after),
        "delivery.max_message_size" => cfg.delivery.max_message_size.to_string(),
        "delivery.connections" => cfg.delivery.connections.to_string(),
        "delivery.timeout" => duration_text(cfg.delivery.timeout),
        "delivery.backlog_warning" => duration_text(cfg.delivery.backlog_warning),
        "delivery.lease" => duration_text(cfg.delivery.lease),
        "delivery.relay_backoff_first" => duration_text(cfg.delivery.relay_backoff_first),
        "delivery.relay_backoff_max" => duration_text(cfg.delivery.relay_backoff_max),
        "delivery.identity_connections" => opt_number(cfg.delivery.identity_connections),
        "delivery.identity_messages_per_minute" => opt_number(cfg.delivery.identity_messages_per_minute),
        "delivery.identity_recipients_per_day" => opt_number(cfg.delivery.identity_recipients_per_day),
        "delivery.identity_budget_warning" => cfg.delivery.identity_budget_warning.to_string(),
        "delivery.transport" => name_of(TRANSPORTS, cfg.delivery.transport).into(),
        "graph.endpoint" => cfg.graph.endpoint.clone(),
        "gmail.endpoint" => cfg.gmail.endpoint.clone(),
        "gateway.listen" => opt(&cfg.gateway.listen),
        "gateway.tls_listen" => opt(&cfg.gateway.tls_listen),
        "gateway.cert_file" => opt(&cfg.gateway.cert_file),
        "gateway.key_file" => opt(&cfg.gateway.key_file),
        "gateway.require_tls" => cfg.gateway.require_tls.to_string(),
        "gateway.allow_plaintext_auth" => cfg.gateway.allow_plaintext_auth.to_string(),
        "gateway.allowed_networks" => cfg.gateway.allowed_networks.join(" "),
        "gateway.recipient_domains" => cfg.gateway.recipient_domains.join(" "),
        "gateway.sender_policy" => name_of(SENDER_POLICIES, cfg.gateway.sender_policy).into(),
        "gateway.bulk_address" => opt(&cfg.gateway.bulk_address),
        "gateway.forget_token_on_sign_out" => cfg.gateway.forget_token_on_sign_out.to_string(),
        "gateway.max_recipients" => cfg.gateway.max_recipients.to_string(),
        "gateway.max_connections" => cfg.gateway.max_connections.to_string(),
        "gateway.max_connections_per_address" => cfg.gateway.max_connections_per_address.to_string(),
        "gateway.max_errors" => cfg.gateway.max_errors.to_string(),
        "gateway.min_data_rate" => cfg.gateway.min_data_rate.to_string(),
        "gateway.widest_network_v4" => cfg.gateway.widest_network_v4.to_string(),
        "gateway.widest_network_v6" => cfg.gateway.widest_network_v6.to_string(),
        "gateway.rate_limit" => cfg.gateway.rate_limit.to_string(),
        "gateway.auth_max_failures" => cfg.gateway.auth_max_failures.to_string(),
        "gateway.auth_lockout" => duration_text(cfg.gateway.auth_lockout),
        "gateway.idle_timeout" => duration_text(cfg.gateway.idle_timeout),
        "gateway.session_timeout" => duration_text(cfg.gateway.session_timeout),
        "gateway.bare_newlines" => name_of(BARE_NEWLINES, cfg.gateway.bare_newlines).into(),
        "cluster.probe_interval" => duration_text(cfg.cluster.probe_interval),
        "cluster.auto_failover" => cfg.cluster.auto_failover.to_string(),
        "cluster.takeover_after" => duration_text(cfg.cluster.takeover_after),
        "cluster.test_addresses" => cfg.cluster.test_addresses.join(" "),
        "cluster.shared_address" => opt(&cfg.cluster.shared_address),
        "cluster.sync_failed_after" => duration_text(cfg.cluster.sync_failed_after),
        "cluster.backup_enabled" => cfg.cluster.backup_enabled.to_string(),
        _ => return None,
    })
}

/// Sets a non-secret key from its text form. Errors say what the value should look like; an unknown key or a
/// secret key is refused (secrets travel separately, see [`super::change`]).
pub fn set(cfg: &mut EmailConfig, key: &str, value: &str) -> Result<(), Invalid> {
    let value = value.trim();
    let opt = || (!value.is_empty()).then(|| value.to_owned());
    match key {
        "sender" => cfg.sender = opt(),
        "smtp.host" => cfg.smtp.host = opt(),
        "smtp.port" => cfg.smtp.port = parse_port(value)?,
        "smtp.encryption" => cfg.smtp.encryption = parse_encryption(value)?,
        "smtp.auth" => cfg.smtp.auth = parse_auth(value)?,
        "smtp.username" => cfg.smtp.username = opt(),
        "smtp.allow_plaintext_auth" => cfg.smtp.allow_plaintext_auth = parse_bool(value)?,
        "oauth.provider" => cfg.oauth.provider = parse_provider(value)?,
        "oauth.tenant" => cfg.oauth.tenant = opt(),
        "oauth.client_id" => cfg.oauth.client_id = opt(),
        "oauth.client_credential" => cfg.oauth.client_credential = choose(value, CLIENT_CREDENTIALS)?,
        "oauth.service_account" => cfg.oauth.service_account = opt(),
        "oauth.service_account_key_id" => cfg.oauth.service_account_key_id = opt(),
        "oauth.client_secret_expires" => cfg.oauth.client_secret_expires = date(value)?,
        "oauth.service_account_key_expires" => cfg.oauth.service_account_key_expires = date(value)?,
        "oauth.keep_alive" => cfg.oauth.keep_alive = parse_duration(value)?,
        "oauth.expiry_warnings" => {
            cfg.oauth.expiry_warnings = split_list(value).iter().map(|v| parse_duration(v)).collect::<Result<_, _>>()?
        }
        "oauth.scopes" => cfg.oauth.scopes = split_list(value),
        "oauth.authorization_endpoint" => cfg.oauth.authorization_endpoint = opt(),
        "oauth.token_endpoint" => cfg.oauth.token_endpoint = opt(),
        "oauth.device_authorization_endpoint" => cfg.oauth.device_authorization_endpoint = opt(),
        "oauth.account" => cfg.oauth.account = opt(),
        "oauth.proxy_url" => cfg.oauth.proxy_url = opt(),
        "tls.verify_certificates" => cfg.tls.verify_certificates = parse_bool(value)?,
        "tls.ca_file" => cfg.tls.ca_file = opt(),
        "tls.min_version" => cfg.tls.min_version = parse_tls(value)?,
        "tls.max_version" => cfg.tls.max_version = parse_tls(value)?,
        "tls.pinned_certificate" => cfg.tls.pinned_certificate = split_list(value),
        "tls.match_common_name" => cfg.tls.match_common_name = parse_bool(value)?,
        "tls.expiry_warning" => cfg.tls.expiry_warning = parse_duration(value)?,
        "admin.addresses" => cfg.admin.addresses = split_list(value),
        "admin.daily_notice" => cfg.admin.daily_notice = parse_bool(value)?,
        "admin.daily_notice_time" => cfg.admin.daily_notice_time = value.to_owned(),
        "admin.time_zone" => cfg.admin.time_zone = value.to_owned(),
        "admin.test_email_on_save" => cfg.admin.test_email_on_save = parse_bool(value)?,
        "admin.repeat_window" => cfg.admin.repeat_window = parse_duration(value)?,
        "admin.token_alert_after" => cfg.admin.token_alert_after = parse_duration(value)?,
        "admin.test_email_wait" => cfg.admin.test_email_wait = parse_duration(value)?,
        "public_base_url" => cfg.public_base_url = opt(),
        "locale" => cfg.locale = parse_locale(value)?,
        "delivery.retry_first" => cfg.delivery.retry_first = parse_duration(value)?,
        "delivery.retry_max" => cfg.delivery.retry_max = parse_duration(value)?,
        "delivery.give_up_after" => cfg.delivery.give_up_after = parse_duration(value)?,
        "delivery.max_message_size" => cfg.delivery.max_message_size = parse_number(value)?,
        "delivery.connections" => cfg.delivery.connections = parse_number(value)?,
        "delivery.timeout" => cfg.delivery.timeout = parse_duration(value)?,
        "delivery.backlog_warning" => cfg.delivery.backlog_warning = parse_duration(value)?,
        "delivery.lease" => cfg.delivery.lease = parse_duration(value)?,
        "delivery.relay_backoff_first" => cfg.delivery.relay_backoff_first = parse_duration(value)?,
        "delivery.relay_backoff_max" => cfg.delivery.relay_backoff_max = parse_duration(value)?,
        "delivery.identity_connections" => cfg.delivery.identity_connections = parse_opt_number(value)?,
        "delivery.identity_messages_per_minute" => cfg.delivery.identity_messages_per_minute = parse_opt_number(value)?,
        "delivery.identity_recipients_per_day" => cfg.delivery.identity_recipients_per_day = parse_opt_number(value)?,
        "delivery.identity_budget_warning" => cfg.delivery.identity_budget_warning = parse_number(value)?,
        "delivery.transport" => cfg.delivery.transport = choose(value, TRANSPORTS)?,
        "graph.endpoint" => cfg.graph.endpoint = or_default(value, super::GRAPH_ENDPOINT),
        "gmail.endpoint" => cfg.gmail.endpoint = or_default(value, super::GMAIL_ENDPOINT),
        "gateway.listen" => cfg.gateway.listen = opt(),
        "gateway.tls_listen" => cfg.gateway.tls_listen = opt(),
        "gateway.cert_file" => cfg.gateway.cert_file = opt(),
        "gateway.key_file" => cfg.gateway.key_file = opt(),
        "gateway.require_tls" => cfg.gateway.require_tls = parse_bool(value)?,
        "gateway.allow_plaintext_auth" => cfg.gateway.allow_plaintext_auth = parse_bool(value)?,
        "gateway.allowed_networks" => cfg.gateway.allowed_networks = split_list(value),
        "gateway.recipient_domains" => cfg.gateway.recipient_domains = split_list(value),
        "gateway.sender_policy" => cfg.gateway.sender_policy = choose(value, SENDER_POLICIES)?,
        "gateway.bulk_address" => cfg.gateway.bulk_address = opt(),
        "gateway.forget_token_on_sign_out" => cfg.gateway.forget_token_on_sign_out = parse_bool(value)?,
        "gateway.max_recipients" => cfg.gateway.max_recipients = parse_number(value)?,
        "gateway.max_connections" => cfg.gateway.max_connections = parse_number(value)?,
        "gateway.max_connections_per_address" => cfg.gateway.max_connections_per_address = parse_number(value)?,
        "gateway.max_errors" => cfg.gateway.max_errors = parse_number(value)?,
        "gateway.min_data_rate" => cfg.gateway.min_data_rate = parse_number(value)?,
        "gateway.widest_network_v4" => cfg.gateway.widest_network_v4 = parse_number(value)?,
        "gateway.widest_network_v6" => cfg.gateway.widest_network_v6 = parse_number(value)?,
        "gateway.rate_limit" => cfg.gateway.rate_limit = parse_number(value)?,
        "gateway.auth_max_failures" => cfg.gateway.auth_max_failures = parse_number(value)?,
        "gateway.auth_lockout" => cfg.gateway.auth_lockout = parse_duration(value)?,
        "gateway.idle_timeout" => cfg.gateway.idle_timeout = parse_duration(value)?,
        "gateway.session_timeout" => cfg.gateway.session_timeout = parse_duration(value)?,
        "gateway.bare_newlines" => cfg.gateway.bare_newlines = choose(value, BARE_NEWLINES)?,
        "cluster.probe_interval" => cfg.cluster.probe_interval = parse_duration(value)?,
        "cluster.auto_failover" => cfg.cluster.auto_failover = parse_bool(value)?,
        "cluster.takeover_after" => cfg.cluster.takeover_after = parse_duration(value)?,
        "cluster.test_addresses" => cfg.cluster.test_addresses = split_list(value),
        "cluster.shared_address" => cfg.cluster.shared_address = opt(),
        "cluster.sync_failed_after" => cfg.cluster.sync_failed_after = parse_duration(value)?,
        "cluster.backup_enabled" => cfg.cluster.backup_enabled = parse_bool(value)?,
        _ => return Err(unknown_key(key).into()),
    }
    Ok(())
}

/// The message for a key that does not exist, with the nearest real key when there is one.
pub fn unknown_key(key: &str) -> String {
    let nearest = KEYS.iter().map(|k| k.key).find(|k| k.ends_with(&format!(".{key}")) || key.ends_with(k));
    match nearest {
        Some(k) => {
            format!("unknown key {key:?}; did you mean {k}? (`tidings config keys` lists them all)")
        }
        None => format!("unknown key {key:?}; `tidings config keys` lists them all"),
    }
}

/// Splits a list entered the way vendor pages take it: separated by spaces (commas and semicolons work too).
/// An optional date: empty clears it.
fn date(value: &str) -> Result<Option<chrono::NaiveDate>, Invalid> {
    match value {
        "" => Ok(None),
        v => v.parse().map(Some).map_err(|_| Invalid::new(format!("expected a date such as 2028-06-30, got {v:?}"))),
    }
}

fn split_list(value: &str) -> Vec<String> {
    value
        .split(|c: char| c.is_whitespace() || c == ',' || c == ';')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn parse_port(value: &str) -> Result<Option<u32>, Invalid> {
    if value.is_empty() {
        return Ok(None);
    }
    value
        .parse::<u32>()
        .map(Some)
        .map_err(|_| Invalid::new(format!("expected a port number from 1 to 65535, got {value:?}")))
}

fn parse_duration(value: &str) -> Result<std::time::Duration, Invalid> {
    humantime::parse_duration(value)
        .map_err(|e| Invalid::new(format!("expected a duration such as 90s, 5m, 1h or 5d, got {value:?} ({e})")))
}

fn duration_text(d: std::time::Duration) -> String {
    humantime::format_duration(d).to_string()
}

fn parse_number<T: std::str::FromStr>(value: &str) -> Result<T, Invalid> {
    value.parse().map_err(|_| Invalid::new(format!("expected a whole number, got {value:?}")))
}

/// A number that may be left empty.
fn parse_opt_number(value: &str) -> Result<Option<u32>, Invalid> {
    if value.is_empty() { Ok(None) } else { parse_number(value).map(Some) }
}

fn opt_number(n: Option<u32>) -> String {
    n.map(|n| n.to_string()).unwrap_or_default()
}

fn parse_bool(value: &str) -> Result<bool, Invalid> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Ok(true),
        "false" | "no" | "off" | "0" => Ok(false),
        _ => Err(format!("expected true or false, got {value:?}").into()),
    }
}

fn choose<T: Copy>(value: &str, options: &[(&str, T)]) -> Result<T, Invalid> {
    let lower = value.to_ascii_lowercase();
    options.iter().find(|(name, _)| *name == lower).map(|(_, v)| *v).ok_or_else(|| {
        let names: Vec<_> = options.iter().map(|(n, _)| *n).collect();
        Invalid::new(format!("expected one of {}, got {value:?}", names.join(", ")))
    })
}

const ENCRYPTIONS: &[(&str, Encryption)] =
    &[("tls", Encryption::Tls), ("starttls", Encryption::Starttls), ("none", Encryption::None)];
const AUTHS: &[(&str, AuthMethod)] =
    &[("none", AuthMethod::None), ("password", AuthMethod::Password), ("oauth2", AuthMethod::Oauth2)];
const PROVIDERS: &[(&str, Provider)] =
    &[("microsoft", Provider::Microsoft), ("google", Provider::Google), ("custom", Provider::Custom)];
const TRANSPORTS: &[(&str, Transport)] =
    &[("smtp", Transport::Smtp), ("microsoft_graph", Transport::MicrosoftGraph), ("gmail_api", Transport::GmailApi)];
/// An empty value gives the default back.
fn or_default(value: &str, default: &str) -> String {
    if value.is_empty() { default.to_owned() } else { value.to_owned() }
}
const CLIENT_CREDENTIALS: &[(&str, ClientCredential)] = &[
    ("secret", ClientCredential::Secret),
    ("certificate", ClientCredential::Certificate),
    ("service_account", ClientCredential::ServiceAccount),
];
const TLS_VERSIONS: &[(&str, TlsVersion)] = &[("1.2", TlsVersion::V1_2), ("1.3", TlsVersion::V1_3)];
const SENDER_POLICIES: &[(&str, SenderPolicy)] = &[
    ("fixed", SenderPolicy::Fixed),
    ("allow_user", SenderPolicy::AllowUser),
    ("bulk", SenderPolicy::Bulk),
    ("login_user", SenderPolicy::LoginUser),
];
const BARE_NEWLINES: &[(&str, BareNewlines)] =
    &[("reject", BareNewlines::Reject), ("normalize", BareNewlines::Normalize)];
const LOCALES: &[(&str, Locale)] = &[("en", Locale::En), ("fr", Locale::Fr), ("de", Locale::De), ("nl", Locale::Nl)];

fn name_of<T: Copy + PartialEq>(options: &[(&'static str, T)], value: T) -> &'static str {
    options.iter().find(|(_, v)| *v == value).map(|(n, _)| *n).unwrap_or_default()
}

fn parse_encryption(value: &str) -> Result<Encryption, Invalid> {
    choose(value, ENCRYPTIONS)
}
fn parse_auth(value: &str) -> Result<AuthMethod, Invalid> {
    choose(value, AUTHS)
}
fn parse_provider(value: &str) -> Result<Option<Provider>, Invalid> {
    if value.is_empty() { Ok(None) } else { choose(value, PROVIDERS).map(Some) }
}
fn parse_tls(value: &str) -> Result<Option<TlsVersion>, Invalid> {
    match value {
        "" => Ok(None),
        "1.0" | "1.1" => Err(format!(
            "TLS {value} is not supported: it is insecure and refused by Microsoft and Google; expected 1.2 or 1.3"
        )
        .into()),
        _ => choose(value, TLS_VERSIONS).map(Some),
    }
}
fn parse_locale(value: &str) -> Result<Locale, Invalid> {
    choose(value, LOCALES)
}

pub fn encryption_name(v: Encryption) -> &'static str {
    name_of(ENCRYPTIONS, v)
}
pub fn auth_name(v: AuthMethod) -> &'static str {
    name_of(AUTHS, v)
}
pub fn provider_name(v: Provider) -> &'static str {
    name_of(PROVIDERS, v)
}
pub fn tls_name(v: TlsVersion) -> &'static str {
    name_of(TLS_VERSIONS, v)
}
pub fn locale_name(v: Locale) -> &'static str {
    name_of(LOCALES, v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_plain_key_round_trips_through_get_and_set() {
        let mut cfg = EmailConfig::default();
        let samples = [
            ("sender", "alerts@example.com"),
            ("smtp.host", "smtp.example.com"),
            ("smtp.port", "2525"),
            ("smtp.encryption", "tls"),
            ("smtp.auth", "password"),
            ("smtp.username", "device"),
            ("smtp.allow_plaintext_auth", "true"),
            ("oauth.provider", "custom"),
            ("oauth.tenant", "contoso.com"),
            ("oauth.client_id", "abc"),
            ("oauth.client_credential", "certificate"),
            ("oauth.service_account", "tidings@project.iam.gserviceaccount.com"),
            ("oauth.service_account_key_id", "0123abcd"),
            ("oauth.client_secret_expires", "2028-06-30"),
            ("oauth.service_account_key_expires", "2027-03-31"),
            ("oauth.keep_alive", "14days"),
            ("oauth.expiry_warnings", "20days 2days"),
            ("oauth.scopes", "a b"),
            ("oauth.authorization_endpoint", "https://idp.example.com/auth"),
            ("oauth.token_endpoint", "https://idp.example.com/token"),
            ("oauth.device_authorization_endpoint", "https://idp.example.com/device"),
            ("oauth.account", "box@example.com"),
            ("oauth.proxy_url", "http://proxy:3128"),
            ("tls.verify_certificates", "false"),
            ("tls.ca_file", "/etc/ca.pem"),
            ("tls.min_version", "1.2"),
            ("tls.max_version", "1.3"),
            (
                "tls.pinned_certificate",
                "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89",
            ),
            ("tls.match_common_name", "true"),
            ("tls.expiry_warning", "30days"),
            ("admin.addresses", "a@example.com b@example.com"),
            ("admin.daily_notice", "true"),
            ("admin.daily_notice_time", "07:30"),
            ("admin.time_zone", "Europe/Paris"),
            ("admin.test_email_on_save", "true"),
            ("admin.repeat_window", "30m"),
            ("admin.token_alert_after", "2h"),
            ("admin.test_email_wait", "5s"),
            ("public_base_url", "https://tidings.example.com"),
            ("locale", "nl"),
            ("delivery.retry_first", "1s"),
            ("delivery.retry_max", "2m"),
            ("delivery.give_up_after", "3days"),
            ("delivery.max_message_size", "1048576"),
            ("delivery.connections", "8"),
            ("delivery.timeout", "30s"),
            ("delivery.backlog_warning", "30m"),
            ("delivery.lease", "10m"),
            ("delivery.relay_backoff_first", "5s"),
            ("delivery.relay_backoff_max", "2m"),
            ("delivery.identity_connections", "2"),
            ("delivery.identity_messages_per_minute", "0"),
            ("delivery.identity_recipients_per_day", "500"),
            ("delivery.identity_budget_warning", "90"),
            ("delivery.transport", "microsoft_graph"),
            ("graph.endpoint", "https://graph.microsoft.us"),
            ("gmail.endpoint", "http://127.0.0.1:8080"),
            ("gateway.listen", "127.0.0.1:587"),
            ("gateway.tls_listen", "[::1]:465"),
            ("gateway.cert_file", "/etc/tidings/cert.pem"),
            ("gateway.key_file", "/etc/tidings/key.pem"),
            ("gateway.require_tls", "true"),
            ("gateway.allow_plaintext_auth", "true"),
            ("gateway.allowed_networks", "127.0.0.0/8 ::1/128"),
            ("gateway.recipient_domains", "example.com example.org"),
            ("gateway.sender_policy", "allow_user"),
            ("gateway.bulk_address", "scans@example.com"),
            ("gateway.forget_token_on_sign_out", "true"),
            ("gateway.max_recipients", "20"),
            ("gateway.max_connections", "10"),
            ("gateway.max_connections_per_address", "4"),
            ("gateway.max_errors", "5"),
            ("gateway.min_data_rate", "4096"),
            ("gateway.widest_network_v4", "16"),
            ("gateway.widest_network_v6", "48"),
            ("gateway.rate_limit", "30"),
            ("gateway.auth_max_failures", "3"),
            ("gateway.auth_lockout", "1h"),
            ("gateway.idle_timeout", "1m"),
            ("gateway.session_timeout", "10m"),
            ("gateway.bare_newlines", "normalize"),
            ("cluster.probe_interval", "5s"),
            ("cluster.auto_failover", "true"),
            ("cluster.takeover_after", "30s"),
            ("cluster.test_addresses", "192.0.2.1:443 gw.example.com:53"),
            ("cluster.shared_address", "192.0.2.10"),
            ("cluster.sync_failed_after", "12h"),
            ("cluster.backup_enabled", "false"),
        ];
        let plain: Vec<_> = KEYS.iter().filter(|k| !k.secret).map(|k| k.key).collect();
        assert_eq!(plain, samples.iter().map(|(k, _)| *k).collect::<Vec<_>>(), "every key has a sample");
        for (key, value) in samples {
            set(&mut cfg, key, value).unwrap();
            assert_eq!(get(&cfg, key).as_deref(), Some(value), "{key}");
        }
    }

    #[test]
    fn lists_take_spaces_commas_and_semicolons() {
        let mut cfg = EmailConfig::default();
        set(&mut cfg, "admin.addresses", " a@x.com  b@x.com,c@x.com;d@x.com ").unwrap();
        assert_eq!(cfg.admin.addresses, ["a@x.com", "b@x.com", "c@x.com", "d@x.com"]);
    }

    #[test]
    fn empty_values_unset_optional_fields() {
        let mut cfg = EmailConfig::default();
        set(&mut cfg, "smtp.port", "25").unwrap();
        set(&mut cfg, "smtp.port", "").unwrap();
        assert_eq!(cfg.smtp.port, None);
        set(&mut cfg, "sender", "  ").unwrap();
        assert_eq!(cfg.sender, None);
    }

    #[test]
    fn bad_values_say_what_is_expected() {
        let mut cfg = EmailConfig::default();
        for (key, value, expected) in [
            ("smtp.port", "abc", "1 to 65535"),
            ("smtp.port", "-1", "1 to 65535"),
            ("smtp.encryption", "ssl", "tls, starttls, none"),
            ("smtp.auth", "login", "none, password, oauth2"),
            ("oauth.provider", "yahoo", "microsoft, google, custom"),
            ("tls.min_version", "1.0", "insecure"),
            ("tls.max_version", "2", "1.2, 1.3"),
            ("admin.daily_notice", "maybe", "true or false"),
            ("locale", "es", "en, fr, de, nl"),
            ("smtp.hots", "x", "unknown key"),
            ("delivery.retry_first", "soon", "90s, 5m"),
            ("delivery.connections", "many", "whole number"),
        ] {
            let err = set(&mut cfg, key, value).expect_err(key);
            assert!(err.reason().contains(expected), "{key}={value}: {err}");
        }
        assert!(unknown_key("port").contains("smtp.port"));
    }

    #[test]
    fn every_key_is_documented() {
        let doc = include_str!("../../../../docs/configuration.md");
        for k in KEYS {
            assert!(doc.contains(&format!("| `{}` |", k.key)), "{} is missing from docs/configuration.md", k.key);
        }
    }

    #[test]
    fn secret_keys_are_not_plain_fields() {
        let cfg = EmailConfig::default();
        for k in KEYS.iter().filter(|k| k.secret) {
            assert_eq!(get(&cfg, k.key), None);
        }
    }
}

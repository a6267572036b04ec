//! Validation of a whole configuration: every field, every cross-field rule, all problems at once.
//!
//! A configuration that fails here is never stored; the one in force stays. Files named by the configuration
//! (the CA bundle) are checked by the edge that can read them, not here.

use super::{AuthMethod, ClientCredential, EmailConfig, Encryption, FieldError, Provider, ValidationErrors};
use crate::Invalid;
use crate::{address, net, secret::SecretName};
use chrono::NaiveTime;

/// Which secrets are stored; validation needs to know whether they are set, never their values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SecretsPresent {
    pub smtp_password: bool,
    pub oauth_client_secret: bool,
    pub static_access_token: bool,
    pub oauth_client_certificate: bool,
    pub service_account_key: bool,
}

impl SecretsPresent {
    pub fn has(&self, name: SecretName) -> bool {
        match name {
            SecretName::SmtpPassword => self.smtp_password,
            SecretName::OAuthClientSecret => self.oauth_client_secret,
            SecretName::StaticAccessToken => self.static_access_token,
            SecretName::OAuthClientCertificate => self.oauth_client_certificate,
            SecretName::ServiceAccountKey => self.service_account_key,
        }
    }

    pub fn set(&mut self, name: SecretName, present: bool) {
        match name {
            SecretName::SmtpPassword => self.smtp_password = present,
            SecretName::OAuthClientSecret => self.oauth_client_secret = present,
            SecretName::StaticAccessToken => self.static_access_token = present,
            SecretName::OAuthClientCertificate => self.oauth_client_certificate = present,
            SecretName::ServiceAccountKey => self.service_account_key = present,
        }
    }
}

/// The longest value of any one key, in bytes (a list counts as a whole).
pub const MAX_VALUE: usize = 4096;

/// Checks `cfg`, returning every problem found.
pub fn validate(cfg: &EmailConfig, secrets: SecretsPresent) -> Result<(), ValidationErrors> {
    let mut errors = Vec::new();
    let mut fail = |field: &str, message: String| errors.push(FieldError::new(field, message));

    for info in super::keys::KEYS.iter().filter(|k| !k.secret) {
        if let Some(len) = super::keys::get(cfg, info.key).map(|v| v.len()).filter(|len| *len > MAX_VALUE) {
            fail(info.key, format!("is {len} bytes long; a value holds at most {MAX_VALUE}"));
        }
    }

    // Sender.
    match &cfg.sender {
        Some(sender) => {
            if let Err(why) = address::validate(sender) {
                fail("sender", why.into());
            }
        }
        None if cfg.smtp.host.is_some() => {
            fail("sender", "required once an SMTP relay is set: the From address of Tidings' messages".into());
        }
        None => {}
    }

    // SMTP relay.
    let smtp = &cfg.smtp;
    if let Some(host) = &smtp.host {
        if let Err(why) = net::validate_host(host) {
            fail("smtp.host", why.into());
        }
    } else if (smtp.auth != AuthMethod::None || smtp.port.is_some()) && !cfg.delivery.transport.is_api() {
        fail("smtp.host", "required: the relay's host name or IP address, such as smtp.office365.com".into());
    }
    if cfg.delivery.transport.is_api() && smtp.auth != AuthMethod::Oauth2 {
        fail(
            "delivery.transport",
            "the provider's API takes an OAuth token: set smtp.auth=oauth2 with the provider's OAuth client".into(),
        );
    }
    for (field, value) in [("graph.endpoint", &cfg.graph.endpoint), ("gmail.endpoint", &cfg.gmail.endpoint)] {
        if let Err(why) = net::validate_url(value, net::UrlKind::Endpoint) {
            fail(field, why.into());
        }
    }
    if let Some(port) = smtp.port
        && !(1..=65535).contains(&port)
    {
        fail("smtp.port", format!("{port} is outside 1-65535; the usual ports are 465 (tls), 587 (starttls) and 25"));
    }
    if let Some(user) = &smtp.username
        && let Some(c) = user.chars().find(|c| c.is_control())
    {
        fail("smtp.username", format!("contains the control character {c:?}; give the user name alone"));
    }
    let relay_is_loopback = smtp.host.as_deref().is_some_and(net::is_loopback_host);
    if smtp.encryption == Encryption::None && smtp.auth != AuthMethod::None {
        if !smtp.allow_plaintext_auth {
            fail(
                "smtp.encryption",
                "none would send credentials in clear text; choose tls or starttls (for a loopback test relay, \
                 set smtp.allow_plaintext_auth=true)"
                    .into(),
            );
        } else if !relay_is_loopback {
            fail(
                "smtp.encryption",
                "none with authentication is allowed only for a loopback relay (localhost, 127.0.0.1, ::1); \
                 choose tls or starttls"
                    .into(),
            );
        }
    }
    if smtp.allow_plaintext_auth && smtp.host.is_some() && !relay_is_loopback {
        fail("smtp.allow_plaintext_auth", "may be true only when smtp.host is a loopback address".into());
    }
    match smtp.auth {
        AuthMethod::Password => {
            if smtp.username.is_none() {
                fail("smtp.username", "required for password authentication".into());
            }
            if !secrets.smtp_password {
                fail("smtp.password", "required for password authentication".into());
            }
        }
        AuthMethod::Oauth2 => {
            if cfg.oauth.client_id.is_none() {
                fail("oauth.client_id", "required for oauth2 authentication: the application (client) id".into());
            }
            if cfg.oauth.token_endpoint.is_none() {
                fail(
                    "oauth.token_endpoint",
                    "required for oauth2 authentication (choose oauth.provider=microsoft or google to fill it)".into(),
                );
            }
        }
        AuthMethod::None => {}
    }

    // OAuth client.
    let oauth = &cfg.oauth;
    match (oauth.provider, &oauth.tenant) {
        (Some(Provider::Microsoft), None) => fail(
            "oauth.tenant",
            "required for Microsoft: common, consumers, organizations, a tenant GUID or domain".into(),
        ),
        (Some(Provider::Microsoft), Some(tenant)) => {
            if let Err(why) = validate_tenant(tenant) {
                fail("oauth.tenant", why.into());
            }
        }
        (_, Some(_)) => {
            fail("oauth.tenant", "only Microsoft has tenants; clear it or choose oauth.provider=microsoft".into())
        }
        (_, None) => {}
    }
    if let Some(id) = &oauth.client_id {
        if id.chars().any(|c| c.is_whitespace() || c.is_control()) {
            fail("oauth.client_id", "contains spaces or control characters; paste the id exactly".into());
        } else if oauth.provider == Some(Provider::Microsoft) && !is_guid(id) {
            fail(
                "oauth.client_id",
                format!(
                    "{id:?} is not a Microsoft application (client) id, which looks like 00000000-0000-0000-0000-000000000000"
                ),
            );
        }
    }
    if oauth.client_credential == ClientCredential::Certificate && !secrets.oauth_client_certificate {
        fail(
            "oauth.client_credential",
            "certificate needs the client's certificate: make one with `tidings oauth certificate create` (or on \
             the OAuth page), upload it to the app registration, then choose certificate"
                .into(),
        );
    }
    if oauth.client_credential == ClientCredential::ServiceAccount {
        match &oauth.service_account {
            None => fail(
                "oauth.client_credential",
                "service_account needs the service account's address in oauth.service_account: import Google's key \
                 file with `tidings config import-google-service-account FILE`"
                    .into(),
            ),
            Some(address) if address::validate(address).is_err() => fail(
                "oauth.service_account",
                format!("{address:?} is not an address such as tidings@project.iam.gserviceaccount.com"),
            ),
            Some(_) => {}
        }
        if !secrets.service_account_key && !secrets.oauth_client_certificate {
            fail(
                "oauth.client_credential",
                "service_account needs a key: import Google's key file with `tidings config \
                 import-google-service-account FILE`, or make a certificate with `tidings oauth certificate create` \
                 and upload it to the service account's keys"
                    .into(),
            );
        }
    }
    for scope in &oauth.scopes {
        if scope.chars().any(|c| c.is_control() || c == '"' || c == '\\') {
            fail("oauth.scopes", format!("{scope:?} holds a character scopes may not contain"));
        }
    }
    for (field, value) in [
        ("oauth.authorization_endpoint", &oauth.authorization_endpoint),
        ("oauth.token_endpoint", &oauth.token_endpoint),
        ("oauth.device_authorization_endpoint", &oauth.device_authorization_endpoint),
        ("public_base_url", &cfg.public_base_url),
    ] {
        if let Some(url) = value
            && let Err(why) = net::validate_url(url, net::UrlKind::Endpoint)
        {
            fail(field, why.into());
        }
    }
    if let Some(base) = &cfg.public_base_url
        && let Ok(url) = url::Url::parse(base)
        && (url.query().is_some() || url.path().contains(super::REDIRECT_PATH.trim_end_matches('/')))
    {
        fail(
            "public_base_url",
            "give only the base, such as https://tidings.example.com; the redirect path is added to it".into(),
        );
    }
    if let Some(proxy) = &oauth.proxy_url
        && let Err(why) = net::validate_url(proxy, net::UrlKind::Proxy)
    {
        fail("oauth.proxy_url", why.into());
    }
    if let Some(account) = &oauth.account
        && let Err(why) = address::validate(account)
    {
        fail("oauth.account", why.into());
    }

    // TLS options.
    let tls = &cfg.tls;
    if let Some(path) = &tls.ca_file
        && !path.starts_with('/')
    {
        fail("tls.ca_file", format!("{path:?} is not an absolute path; give the full path of a PEM file"));
    }
    for pin in &tls.pinned_certificate {
        if super::parse_fingerprint(pin).is_none() {
            fail(
                "tls.pinned_certificate",
                format!(
                    "{pin:?} is not a SHA-256 fingerprint: give the 64 hex digits `openssl x509 -noout -fingerprint \
                     -sha256` prints (colons optional), or fetch it with `tidings config fetch-certificate`"
                ),
            );
        }
    }
    if let (Some(min), Some(max)) = (tls.min_version, tls.max_version)
        && min > max
    {
        fail("tls.min_version", "is higher than tls.max_version; no TLS version would be left".into());
    }

    // Admin contact.
    let admin = &cfg.admin;
    for (i, addr) in admin.addresses.iter().enumerate() {
        if let Err(why) = address::validate(addr) {
            fail("admin.addresses", why.into());
        } else if admin.addresses[..i].iter().any(|earlier| earlier.eq_ignore_ascii_case(addr)) {
            fail("admin.addresses", format!("{addr} is listed twice"));
        }
    }
    if admin.addresses.is_empty() {
        if admin.daily_notice {
            fail("admin.addresses", "required for the daily notice: at least one admin contact address".into());
        }
        if admin.test_email_on_save {
            fail("admin.addresses", "required for the test email on save: at least one admin contact address".into());
        }
    }
    if admin.test_email_on_save && smtp.host.is_none() {
        fail("admin.test_email_on_save", "needs an SMTP relay (smtp.host) to send the test email through".into());
    }
    if NaiveTime::parse_from_str(&admin.daily_notice_time, "%H:%M").is_err() || admin.daily_notice_time.len() != 5 {
        fail(
            "admin.daily_notice_time",
            format!("{:?} is not a time of day; expected HH:MM, such as 08:00", admin.daily_notice_time),
        );
    }
    if admin.time_zone.parse::<chrono_tz::Tz>().is_err() {
        fail(
            "admin.time_zone",
            format!(
                "{:?} is not a known time zone; expected an IANA name such as Europe/Brussels or UTC",
                admin.time_zone
            ),
        );
    }
    let second = std::time::Duration::from_secs(1);
    if admin.repeat_window < second {
        fail("admin.repeat_window", "must be at least 1s".into());
    }
    if admin.token_alert_after < second {
        fail("admin.token_alert_after", "must be at least 1s".into());
    }
    if admin.test_email_wait > std::time::Duration::from_secs(120) {
        fail("admin.test_email_wait", "must be at most 2m: a save should not keep a browser waiting longer".into());
    }

    // Delivery.
    let d = &cfg.delivery;
    if d.retry_first < second {
        fail("delivery.retry_first", "must be at least 1s".into());
    }
    if d.retry_max < d.retry_first {
        fail("delivery.retry_max", "must not be shorter than delivery.retry_first".into());
    }
    if d.relay_backoff_first < second {
        fail("delivery.relay_backoff_first", "must be at least 1s".into());
    }
    if d.relay_backoff_max < d.relay_backoff_first {
        fail("delivery.relay_backoff_max", "must not be shorter than delivery.relay_backoff_first".into());
    }
    if d.give_up_after < d.retry_first {
        fail("delivery.give_up_after", "must not be shorter than delivery.retry_first".into());
    }
    if d.max_message_size < 1024 {
        fail("delivery.max_message_size", format!("{} bytes is too small; at least 1024", d.max_message_size));
    }
    if !(1..=64).contains(&d.connections) {
        fail("delivery.connections", format!("{} is outside 1-64", d.connections));
    }
    if d.timeout < second || d.timeout > std::time::Duration::from_secs(600) {
        fail("delivery.timeout", "must be between 1s and 10m".into());
    }
    if d.lease < d.timeout * 3 {
        fail(
            "delivery.lease",
            "must be at least three times delivery.timeout, or a slow delivery could be taken over while it runs"
                .into(),
        );
    }
    if d.identity_connections.is_some_and(|n| n > 64) {
        fail("delivery.identity_connections", "must be 0 (no limit) to 64; empty for the provider's".into());
    }
    if !(1..=100).contains(&d.identity_budget_warning) {
        fail("delivery.identity_budget_warning", format!("{} is outside 1-100 (percent)", d.identity_budget_warning));
    }

    validate_gateway(cfg, &mut fail);
    validate_cluster(cfg, &mut fail);

    if errors.is_empty() { Ok(()) } else { Err(ValidationErrors(errors)) }
}

fn validate_cluster(cfg: &EmailConfig, fail: &mut impl FnMut(&str, String)) {
    let c = &cfg.cluster;
    if c.probe_interval < std::time::Duration::from_secs(1) {
        fail("cluster.probe_interval", "at least 1s".into());
    }
    if c.takeover_after < c.probe_interval {
        fail("cluster.takeover_after", "at least cluster.probe_interval: one probe must fail first".into());
    }
    for address in &c.test_addresses {
        let port = address.rsplit_once(':').and_then(|(host, port)| (!host.is_empty()).then_some(port));
        if port.and_then(|p| p.parse::<u16>().ok()).is_none_or(|p| p == 0) {
            fail("cluster.test_addresses", format!("{address:?} is not HOST:PORT, such as 192.0.2.1:443"));
        }
    }
    if let Some(shared) = &c.shared_address
        && shared.parse::<std::net::IpAddr>().is_err()
    {
        fail("cluster.shared_address", format!("{shared:?} is not an IP address"));
    }
}

fn validate_gateway(cfg: &EmailConfig, fail: &mut impl FnMut(&str, String)) {
    use super::gateway::{Cidr, SenderPolicy};
    let g = &cfg.gateway;
    for (key, value) in [("gateway.listen", &g.listen), ("gateway.tls_listen", &g.tls_listen)] {
        if let Some(v) = value
            && v.parse::<std::net::SocketAddr>().is_err()
        {
            fail(key, format!("{v:?} is not ADDR:PORT, such as 0.0.0.0:587 or [::]:465"));
        }
    }
    if g.listen.is_some() && g.listen == g.tls_listen {
        fail("gateway.tls_listen", "must differ from gateway.listen".into());
    }
    let needs_certificate = g.tls_listen.is_some() || g.require_tls;
    for (key, value) in [("gateway.cert_file", &g.cert_file), ("gateway.key_file", &g.key_file)] {
        match value {
            None if needs_certificate => fail(key, "required for the TLS listener and for require_tls".into()),
            Some(path) if !path.starts_with('/') => fail(key, format!("{path:?} must be an absolute path")),
            _ => {}
        }
    }
    if g.cert_file.is_some() != g.key_file.is_some() {
        fail("gateway.key_file", "the certificate and the key go together: set both or neither".into());
    }
    for network in &g.allowed_networks {
        let (widest, family) =
            if network.contains(':') { (g.widest_network_v6, "IPv6") } else { (g.widest_network_v4, "IPv4") };
        match Cidr::parse(network) {
            Err(why) => fail("gateway.allowed_networks", why.into()),
            Ok(cidr) if cidr.prefix() < widest && g.recipient_domains.is_empty() => fail(
                "gateway.allowed_networks",
                format!(
                    "{network} is wider than /{widest}: every device in it could send anywhere without \
                     authenticating, an open relay; list the devices' own networks, or restrict the recipients with \
                     gateway.recipient_domains (gateway.widest_network_{} sets this bound for {family})",
                    if cidr.is_ipv4() { "v4" } else { "v6" }
                ),
            ),
            Ok(_) => {}
        }
    }
    for domain in &g.recipient_domains {
        if let Err(why) = net::validate_host_name(domain) {
            fail("gateway.recipient_domains", format!("{domain}: {why}"));
        }
    }
    let gateway_on = g.listen.is_some() || g.tls_listen.is_some();
    match g.sender_policy {
        SenderPolicy::Fixed if gateway_on && cfg.sender.is_none() => {
            fail("gateway.sender_policy", "fixed sends every message as the sender: set sender".into())
        }
        SenderPolicy::LoginUser if gateway_on && cfg.smtp.auth != AuthMethod::Oauth2 => fail(
            "gateway.sender_policy",
            "login_user sends with each account's own OAuth token: set smtp.auth to oauth2".into(),
        ),
        SenderPolicy::Bulk => match (&g.bulk_address, &cfg.sender) {
            (None, _) => fail("gateway.bulk_address", "required for the bulk policy".into()),
            (Some(b), Some(s)) if b.eq_ignore_ascii_case(s) => {}
            (Some(b), _) => {
                fail("gateway.bulk_address", format!("{b} must equal the administrator's address (sender)"))
            }
        },
        _ => {}
    }
    if let Some(b) = &g.bulk_address
        && let Err(why) = address::validate(b)
    {
        fail("gateway.bulk_address", why.into());
    }
    let ranges = [
        ("gateway.max_recipients", g.max_recipients, 1, 1000),
        ("gateway.max_connections", g.max_connections, 1, 10_000),
        ("gateway.rate_limit", g.rate_limit, 1, 100_000),
        ("gateway.auth_max_failures", g.auth_max_failures, 1, 1000),
        ("gateway.max_connections_per_address", g.max_connections_per_address, 1, 10_000),
        ("gateway.max_errors", g.max_errors, 1, 10_000),
        ("gateway.min_data_rate", g.min_data_rate, 1, 100_000_000),
        ("gateway.widest_network_v4", u32::from(g.widest_network_v4), 0, 32),
        ("gateway.widest_network_v6", u32::from(g.widest_network_v6), 0, 128),
    ];
    for (key, value, low, high) in ranges {
        if !(low..=high).contains(&value) {
            fail(key, format!("{value} is outside {low}-{high}"));
        }
    }
    let second = std::time::Duration::from_secs(1);
    for (key, value) in [
        ("gateway.auth_lockout", g.auth_lockout),
        ("gateway.idle_timeout", g.idle_timeout),
        ("gateway.session_timeout", g.session_timeout),
    ] {
        if value < second {
            fail(key, "must be at least 1s".into());
        }
    }
}

/// `common`, `consumers`, `organizations`, a GUID, or a domain name.
fn validate_tenant(tenant: &str) -> Result<(), Invalid> {
    if matches!(tenant, "common" | "consumers" | "organizations") || is_guid(tenant) {
        return Ok(());
    }
    if tenant.contains('.') && net::validate_host_name(tenant).is_ok() {
        return Ok(());
    }
    Err(format!(
        "{tenant:?} is not a tenant; expected common, consumers, organizations, a tenant GUID or a domain such as contoso.onmicrosoft.com"
    ).into())
}

/// `8-4-4-4-12` hexadecimal digits.
fn is_guid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups.iter().zip([8, 4, 4, 4, 12]).all(|(g, n)| g.len() == n && g.chars().all(|c| c.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{keys, preset};

    const GUID: &str = "6731de76-14a6-49ae-97bc-6eba6914391e";

    fn with(pairs: &[(&str, &str)]) -> EmailConfig {
        let mut cfg = EmailConfig::default();
        for (k, v) in pairs {
            keys::set(&mut cfg, k, v).unwrap();
        }
        cfg
    }

    fn errors(cfg: &EmailConfig, secrets: SecretsPresent) -> Vec<FieldError> {
        validate(cfg, secrets).err().map(|e| e.0).unwrap_or_default()
    }

    /// Asserts that `cfg` fails on `field` with a message containing `needle`.
    #[track_caller]
    fn fails(cfg: &EmailConfig, field: &str, needle: &str) {
        let errs = errors(cfg, SecretsPresent::default());
        assert!(
            errs.iter().any(|e| e.field == field && e.message.contains(needle)),
            "expected {field}: …{needle}… in {errs:#?}"
        );
    }

    #[track_caller]
    fn passes(cfg: &EmailConfig, secrets: SecretsPresent) {
        assert_eq!(errors(cfg, secrets), vec![], "{cfg:#?}");
    }

    const RELAY: &[(&str, &str)] = &[("sender", "alerts@example.com"), ("smtp.host", "smtp.example.com")];

    #[test]
    fn the_empty_configuration_is_valid() {
        passes(&EmailConfig::default(), SecretsPresent::default());
    }

    #[test]
    fn sender() {
        passes(&with(RELAY), SecretsPresent::default());
        fails(&with(&[("smtp.host", "smtp.example.com")]), "sender", "required");
        fails(&with(&[("sender", "not an address")]), "sender", "a space");
        fails(&with(&[("sender", "alerts@")]), "sender", "nothing after");
    }

    #[test]
    fn relay_host_and_port() {
        fails(&with(&[("sender", "a@example.com"), ("smtp.host", "smtp example.com")]), "smtp.host", "space");
        fails(&with(&[("smtp.port", "25")]), "smtp.host", "required");
        fails(&with(&[("smtp.auth", "password")]), "smtp.host", "required");
        for port in ["0", "65536", "70000"] {
            fails(&with(&[RELAY, &[("smtp.port", port)]].concat()), "smtp.port", "outside 1-65535");
        }
        for port in ["1", "25", "65535"] {
            passes(&with(&[RELAY, &[("smtp.port", port)]].concat()), SecretsPresent::default());
        }
        passes(&with(&[("sender", "a@example.com"), ("smtp.host", "192.0.2.1")]), SecretsPresent::default());
        passes(&with(&[("sender", "a@example.com"), ("smtp.host", "[2001:db8::1]")]), SecretsPresent::default());
    }

    #[test]
    fn password_authentication_needs_user_and_password() {
        let cfg = with(&[RELAY, &[("smtp.auth", "password")]].concat());
        fails(&cfg, "smtp.username", "required");
        fails(&cfg, "smtp.password", "required");
        let cfg = with(&[RELAY, &[("smtp.auth", "password"), ("smtp.username", "dev")]].concat());
        passes(&cfg, SecretsPresent { smtp_password: true, ..Default::default() });
    }

    #[test]
    fn oauth2_needs_client_id_and_token_endpoint() {
        let cfg = with(&[RELAY, &[("smtp.auth", "oauth2")]].concat());
        fails(&cfg, "oauth.client_id", "required");
        fails(&cfg, "oauth.token_endpoint", "required");
        let cfg = with(
            &[
                RELAY,
                &[
                    ("smtp.auth", "oauth2"),
                    ("oauth.client_id", "abc"),
                    ("oauth.token_endpoint", "https://idp.example.com/token"),
                ],
            ]
            .concat(),
        );
        passes(&cfg, SecretsPresent::default());
    }

    #[test]
    fn encryption_none_with_credentials() {
        let base = [
            ("sender", "a@example.com"),
            ("smtp.encryption", "none"),
            ("smtp.auth", "password"),
            ("smtp.username", "u"),
        ];
        let secrets = SecretsPresent { smtp_password: true, ..Default::default() };
        fails(&with(&[&base[..], &[("smtp.host", "127.0.0.1")]].concat()), "smtp.encryption", "clear text");
        let remote =
            with(&[&base[..], &[("smtp.host", "smtp.example.com"), ("smtp.allow_plaintext_auth", "true")]].concat());
        fails(&remote, "smtp.encryption", "only for a loopback relay");
        fails(&remote, "smtp.allow_plaintext_auth", "loopback");
        for host in ["127.0.0.1", "::1", "localhost"] {
            passes(
                &with(&[&base[..], &[("smtp.host", host), ("smtp.allow_plaintext_auth", "true")]].concat()),
                secrets,
            );
        }
        // Without authentication, no encryption is the administrator's call.
        passes(&with(&[RELAY, &[("smtp.encryption", "none")]].concat()), secrets);
    }

    #[test]
    fn endpoints_must_be_https_except_on_loopback() {
        for field in [
            "oauth.authorization_endpoint",
            "oauth.token_endpoint",
            "oauth.device_authorization_endpoint",
            "public_base_url",
        ] {
            fails(&with(&[(field, "http://idp.example.com/x")]), field, "must use https");
            fails(&with(&[(field, "idp.example.com")]), field, "not a URL");
            passes(&with(&[(field, "http://127.0.0.1:8080")]), SecretsPresent::default());
            passes(&with(&[(field, "https://idp.example.com")]), SecretsPresent::default());
        }
        fails(
            &with(&[("public_base_url", "https://t.example.com/login/smtp-verification/")]),
            "public_base_url",
            "only the base",
        );
        fails(&with(&[("oauth.proxy_url", "socks5://p:1080")]), "oauth.proxy_url", "http:// or https://");
        passes(&with(&[("oauth.proxy_url", "http://proxy.example.com:3128")]), SecretsPresent::default());
    }

    #[test]
    fn microsoft_tenant_and_client_id() {
        let mut cfg = with(RELAY);
        cfg.oauth.tenant = Some("contoso.onmicrosoft.com".into());
        preset::apply_provider(&mut cfg, Provider::Microsoft);
        cfg.oauth.client_id = Some(GUID.into());
        passes(&cfg, SecretsPresent::default());
        for tenant in ["common", "consumers", "organizations", GUID, "contoso.com"] {
            cfg.oauth.tenant = Some(tenant.into());
            passes(&cfg, SecretsPresent::default());
        }
        cfg.oauth.tenant = Some("contoso".into());
        fails(&cfg, "oauth.tenant", "not a tenant");
        cfg.oauth.tenant = None;
        fails(&cfg, "oauth.tenant", "required");
        cfg.oauth.tenant = Some("common".into());
        cfg.oauth.client_id = Some("my-app".into());
        fails(&cfg, "oauth.client_id", "00000000-0000");
        cfg.oauth.client_id = Some("6731de76 14a6".into());
        fails(&cfg, "oauth.client_id", "spaces");
        fails(&with(&[("oauth.provider", "google"), ("oauth.tenant", "common")]), "oauth.tenant", "only Microsoft");
    }

    #[test]
    fn oauth_account_and_scopes() {
        fails(&with(&[("oauth.account", "mailbox")]), "oauth.account", "no '@'");
        passes(&with(&[("oauth.account", "mailbox@contoso.com")]), SecretsPresent::default());
        let mut cfg = EmailConfig::default();
        cfg.oauth.scopes = vec!["bad\"scope".into()];
        fails(&cfg, "oauth.scopes", "may not contain");
    }

    #[test]
    fn tls_options() {
        fails(&with(&[("tls.ca_file", "certs/ca.pem")]), "tls.ca_file", "absolute path");
        passes(&with(&[("tls.ca_file", "/etc/tidings/ca.pem")]), SecretsPresent::default());
        fails(&with(&[("tls.min_version", "1.3"), ("tls.max_version", "1.2")]), "tls.min_version", "higher");
        passes(&with(&[("tls.min_version", "1.2"), ("tls.max_version", "1.3")]), SecretsPresent::default());
        passes(&with(&[("tls.verify_certificates", "false")]), SecretsPresent::default());
        let pin = "ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89";
        passes(&with(&[("tls.pinned_certificate", pin)]), SecretsPresent::default());
        passes(&with(&[("tls.pinned_certificate", &pin.replace(':', ""))]), SecretsPresent::default());
        fails(&with(&[("tls.pinned_certificate", "ab:cd")]), "tls.pinned_certificate", "fetch-certificate");
        fails(&with(&[("tls.pinned_certificate", &pin.replace('a', "g"))]), "tls.pinned_certificate", "SHA-256");
    }

    #[test]
    fn admin_contact() {
        fails(&with(&[("admin.addresses", "ops@example.com nope")]), "admin.addresses", "no '@'");
        fails(&with(&[("admin.addresses", "ops@example.com OPS@example.com")]), "admin.addresses", "twice");
        fails(&with(&[("admin.daily_notice", "true")]), "admin.addresses", "daily notice");
        fails(&with(&[("admin.test_email_on_save", "true")]), "admin.addresses", "test email");
        fails(&with(&[("admin.test_email_on_save", "true")]), "admin.test_email_on_save", "smtp.host");
        for bad in ["8:00", "24:00", "08:60", "noon", "08:00:00"] {
            fails(&with(&[("admin.daily_notice_time", bad)]), "admin.daily_notice_time", "HH:MM");
        }
        passes(&with(&[("admin.daily_notice_time", "23:59")]), SecretsPresent::default());
        fails(&with(&[("admin.time_zone", "Europe/Atlantis")]), "admin.time_zone", "IANA");
        fails(&with(&[("admin.time_zone", "CEST")]), "admin.time_zone", "IANA");
        passes(&with(&[("admin.time_zone", "America/New_York")]), SecretsPresent::default());
        let full = with(
            &[
                RELAY,
                &[
                    ("admin.addresses", "ops@example.com noc@example.com"),
                    ("admin.daily_notice", "true"),
                    ("admin.test_email_on_save", "true"),
                ],
            ]
            .concat(),
        );
        passes(&full, SecretsPresent::default());
    }

    #[test]
    fn delivery_settings() {
        passes(
            &with(&[("delivery.retry_first", "1s"), ("delivery.retry_max", "2s"), ("delivery.give_up_after", "1m")]),
            SecretsPresent::default(),
        );
        fails(&with(&[("delivery.retry_first", "500ms")]), "delivery.retry_first", "at least 1s");
        fails(&with(&[("delivery.retry_first", "2h")]), "delivery.retry_max", "shorter");
        fails(&with(&[("delivery.relay_backoff_first", "0s")]), "delivery.relay_backoff_first", "at least 1s");
        fails(&with(&[("delivery.relay_backoff_first", "1h")]), "delivery.relay_backoff_max", "shorter");
        fails(&with(&[("delivery.give_up_after", "1m")]), "delivery.give_up_after", "shorter");
        fails(&with(&[("delivery.max_message_size", "100")]), "delivery.max_message_size", "too small");
        fails(&with(&[("delivery.connections", "0")]), "delivery.connections", "1-64");
        fails(&with(&[("delivery.connections", "65")]), "delivery.connections", "1-64");
        fails(&with(&[("delivery.timeout", "0s")]), "delivery.timeout", "between");
        fails(&with(&[("delivery.identity_connections", "65")]), "delivery.identity_connections", "64");
        fails(&with(&[("delivery.identity_budget_warning", "0")]), "delivery.identity_budget_warning", "1-100");
        fails(&with(&[("delivery.timeout", "3m")]), "delivery.lease", "three times");
    }

    #[test]
    fn all_problems_are_reported_at_once() {
        let cfg = with(&[
            ("sender", "bad"),
            ("smtp.host", "a b"),
            ("smtp.port", "0"),
            ("smtp.auth", "oauth2"),
            ("admin.time_zone", "Mars/Olympus"),
        ]);
        let fields: Vec<_> = errors(&cfg, SecretsPresent::default()).into_iter().map(|e| e.field).collect();
        for field in ["sender", "smtp.host", "smtp.port", "oauth.client_id", "oauth.token_endpoint", "admin.time_zone"]
        {
            assert!(fields.iter().any(|f| f == field), "{field} missing from {fields:?}");
        }
    }
}

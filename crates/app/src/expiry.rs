//! Credentials that end on a known date, and the events ahead of their ends: the client secret and the service
//! account key (their dates as entered), the client certificate, the certificates Tidings presents (the gateway's
//! and the web interface's, read from their files) and the relay's (as delivery last saw it), and each
//! authorization's refresh token, which the provider ends when it goes unused for long. Each raises its event
//! once at each of `oauth.expiry_warnings` (30 and 7 days by default), whichever node asks and however often;
//! the relay's certificate is raised by delivery itself (`tls.expiry_warning`).

use crate::{App, Result, authorization::Owner};
use chrono::{DateTime, Utc};
use std::{collections::BTreeMap, path::Path};
use tidings_core::{EmailConfig, config::ClientCredential, notify::EventKind, secret::SecretName};

/// A credential in use and its end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lifetime {
    /// Stable name: `client_secret`, `service_account_key`, `client_certificate`, `relay_certificate`,
    /// `gateway_certificate`, `https_certificate`, `authorization` (the relay account's) or
    /// `authorization:USER` (a device account's own mailbox).
    pub credential: String,
    /// What it is, in words: the certificate's subject, the account.
    pub subject: String,
    pub ends_at: DateTime<Utc>,
    /// For an authorization: when its refresh token was last used (its end is counted from it).
    pub used_at: Option<DateTime<Utc>>,
    /// The event raised ahead of the end.
    pub kind: EventKind,
    /// Tells this credential from the one before it (a new date, a new certificate's fingerprint).
    id: String,
    details: BTreeMap<String, String>,
}

impl Lifetime {
    /// What the API and `tidings expiries --json` show: the credential, what it is, its end and the days left, when
    /// its refresh token was last used, and the event raised ahead of its end.
    pub fn to_json(&self, now: DateTime<Utc>) -> serde_json::Value {
        serde_json::json!({
            "credential": self.credential,
            "subject": self.subject,
            "expires_at": self.ends_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "days_left": (self.ends_at - now).num_days(),
            "used_at": self.used_at.map(|at| at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            "event": self.kind.id(),
        })
    }
}

/// The `meta` key where delivery keeps the relay's certificate as it last saw it.
const RELAY_CERTIFICATE: &str = "relay.certificate";

impl App {
    /// Raises the events of the credentials in use that end within one of `oauth.expiry_warnings` and were not
    /// warned about at that one yet; their ids.
    pub async fn check_expiries(&self, config: &EmailConfig, now: DateTime<Utc>) -> Result<Vec<i64>> {
        let mut raised = Vec::new();
        for ending in self.lifetimes(config).await? {
            if ending.kind == EventKind::CertificateExpiring {
                continue; // Delivery raises it, at `tls.expiry_warning`.
            }
            let left = ending.ends_at - now;
            let crossed = config
                .oauth
                .expiry_warnings
                .iter()
                .filter(|w| left.to_std().map_or(true, |left| left <= **w))
                .min()
                .map(|w| w.as_secs());
            let Some(crossed) = crossed else { continue };
            let key = format!("notify.expiry.{}", ending.credential);
            let warned = self.store.meta(&key).await?.and_then(|v| {
                let (id, secs) = v.rsplit_once(' ')?;
                (id == ending.id).then(|| secs.parse::<u64>().ok()).flatten()
            });
            if warned.is_some_and(|w| w <= crossed) {
                continue;
            }
            self.store.set_meta(&key, Some(&format!("{} {crossed}", ending.id))).await?;
            let mut details = ending.details;
            details.insert("expires".into(), ending.ends_at.format("%Y-%m-%d %H:%M UTC").to_string());
            details.insert("days".into(), left.num_days().max(0).to_string());
            tracing::warn!(credential = ending.credential, expires = %ending.ends_at, "a credential in use expires soon");
            raised.push(self.raise_event(ending.kind, details).await?);
        }
        Ok(raised)
    }

    /// The credentials in use that end on a known date, soonest first.
    pub async fn lifetimes(&self, config: &EmailConfig) -> Result<Vec<Lifetime>> {
        let mut all = self.client_credentials(config).await?;
        all.extend(self.presented_certificates(config).await?);
        all.extend(self.unused_authorizations(config).await?);
        all.sort_by_key(|l| l.ends_at);
        Ok(all)
    }

    /// The client's secret, key or certificate, whichever proves it to the provider.
    async fn client_credentials(&self, config: &EmailConfig) -> Result<Vec<Lifetime>> {
        let mut endings = Vec::new();
        let midnight = |date: chrono::NaiveDate| date.and_time(chrono::NaiveTime::MIN).and_utc();
        let dated = |credential: &str, kind, date: chrono::NaiveDate, subject: String, details| Lifetime {
            credential: credential.to_owned(),
            subject,
            ends_at: midnight(date),
            used_at: None,
            kind,
            id: date.to_string(),
            details,
        };
        let oauth = &config.oauth;
        // Which secrets are stored, without opening any.
        let stored = self.current().await?.secrets;
        let key_file = stored.has(SecretName::ServiceAccountKey);
        match oauth.client_credential {
            ClientCredential::Secret => {
                if let Some(date) = oauth.client_secret_expires
                    && stored.has(SecretName::OAuthClientSecret)
                {
                    let client = oauth.client_id.clone().unwrap_or_default();
                    endings.push(dated(
                        "client_secret",
                        EventKind::ClientSecretExpiring,
                        date,
                        client,
                        BTreeMap::new(),
                    ));
                }
            }
            ClientCredential::ServiceAccount if key_file => {
                if let Some(date) = oauth.service_account_key_expires {
                    let account = oauth.service_account.clone().unwrap_or_default();
                    let details = BTreeMap::from([("account".to_owned(), account.clone())]);
                    endings.push(dated(
                        "service_account_key",
                        EventKind::ServiceAccountKeyExpiring,
                        date,
                        account,
                        details,
                    ));
                }
            }
            ClientCredential::Certificate | ClientCredential::ServiceAccount => {
                if let Some(held) = self.client_certificate().await? {
                    endings.push(Lifetime {
                        credential: "client_certificate".into(),
                        subject: held.subject.clone(),
                        ends_at: held.not_after,
                        used_at: None,
                        kind: EventKind::ClientCertificateExpiring,
                        id: held.sha1_thumbprint(),
                        details: BTreeMap::from([
                            ("subject".to_owned(), held.subject.clone()),
                            ("thumbprint".to_owned(), held.sha1_thumbprint()),
                        ]),
                    });
                }
            }
        }
        Ok(endings)
    }

    /// The certificates of the gateway and of the web interface (read from their files now), and the relay's.
    async fn presented_certificates(&self, config: &EmailConfig) -> Result<Vec<Lifetime>> {
        let mut files = Vec::new();
        let gateway_on = config.gateway.listen.is_some() || config.gateway.tls_listen.is_some();
        if gateway_on && let Some(file) = &config.gateway.cert_file {
            files.push(("gateway_certificate", "SMTP gateway", file.clone()));
        }
        let node = self.membership().await?.name;
        if let Some(file) = self.store.meta(&https_key(&node)).await? {
            files.push(("https_certificate", "web interface", file));
        }
        let mut endings = Vec::new();
        for (credential, service, file) in files {
            let Some(certificate) = read_certificate(Path::new(&file)) else { continue };
            endings.push(Lifetime {
                credential: credential.into(),
                subject: certificate.subject.clone(),
                ends_at: certificate.not_after,
                used_at: None,
                kind: EventKind::ServerCertificateExpiring,
                id: certificate.fingerprint,
                details: BTreeMap::from([
                    ("service".to_owned(), service.to_owned()),
                    ("file".to_owned(), file),
                    ("subject".to_owned(), certificate.subject),
                ]),
            });
        }
        let relay = self.store.meta(RELAY_CERTIFICATE).await?;
        let relay = relay.as_deref().and_then(|v| {
            let mut parts = v.splitn(4, '\t');
            Some((parts.next()?, parts.next()?, parts.next()?.parse::<DateTime<Utc>>().ok()?, parts.next()?))
        });
        if let Some((host, fingerprint, not_after, subject)) = relay
            && Some(host) == config.smtp.host.as_deref()
        {
            endings.push(Lifetime {
                credential: "relay_certificate".into(),
                subject: subject.to_owned(),
                ends_at: not_after,
                used_at: None,
                kind: EventKind::CertificateExpiring,
                id: fingerprint.to_owned(),
                details: BTreeMap::new(),
            });
        }
        Ok(endings)
    }

    /// Each authorization's refresh token and the day its provider ends it if it stays unused.
    async fn unused_authorizations(&self, config: &EmailConfig) -> Result<Vec<Lifetime>> {
        let Some(limit) = tidings_core::oauth::lifetime::refresh_token_unused_limit(config.oauth.provider) else {
            return Ok(Vec::new());
        };
        let mut endings = Vec::new();
        for record in self.authorizations().await? {
            let used = record.refreshed_at.or(record.acquired_at);
            let (Some(used), false, None) = (used, record.client_credentials, &record.failure) else { continue };
            let (credential, account) = match record.owner {
                Owner::Relay => ("authorization".to_owned(), record.account.clone().unwrap_or_default()),
                Owner::Device(id) => {
                    let device = self.device(id).await?.username;
                    (format!("authorization:{device}"), record.account.clone().unwrap_or(device))
                }
            };
            let ends_at = used + limit;
            endings.push(Lifetime {
                credential,
                subject: account.clone(),
                ends_at,
                used_at: Some(used),
                kind: EventKind::AuthorizationUnused,
                id: ends_at.timestamp().to_string(),
                details: BTreeMap::from([
                    ("account".to_owned(), account),
                    ("used".to_owned(), used.format("%Y-%m-%d %H:%M UTC").to_string()),
                ]),
            });
        }
        Ok(endings)
    }

    /// Records the certificate file this node's web interface presents (none: plain HTTP), for its lifetime.
    pub async fn serving_https_with(&self, cert: Option<&Path>) -> Result<()> {
        let node = self.membership().await?.name;
        let file = cert.map(|c| std::path::absolute(c).unwrap_or_else(|_| c.to_path_buf()));
        Ok(self.store.set_meta(&https_key(&node), file.as_deref().and_then(Path::to_str)).await?)
    }

    /// Records the relay's certificate as delivery saw it at `host`, for its lifetime.
    pub async fn relay_certificate_seen(
        &self,
        host: &str,
        fingerprint: &str,
        not_after: DateTime<Utc>,
        subject: &str,
    ) -> Result<()> {
        let value = format!("{host}\t{fingerprint}\t{}\t{subject}", not_after.to_rfc3339());
        Ok(self.store.set_meta(RELAY_CERTIFICATE, Some(&value)).await?)
    }
}

fn https_key(node: &str) -> String {
    format!("https.certificate.{node}")
}

/// The first certificate of a PEM file: its subject, end and SHA-256 fingerprint. `None` when the file cannot be
/// read (the gateway and the daemon say why where they load it).
fn read_certificate(file: &Path) -> Option<Read> {
    let pem = crate::files::read_regular(file, crate::files::PEM_LIMIT).ok()?;
    let (_, block) = x509_parser::pem::parse_x509_pem(&pem).ok()?;
    let parsed = block.parse_x509().ok()?;
    let digest = ring::digest::digest(&ring::digest::SHA256, &block.contents);
    Some(Read {
        subject: parsed.subject().to_string(),
        not_after: DateTime::from_timestamp(parsed.validity().not_after.timestamp(), 0)?,
        fingerprint: digest.as_ref().iter().map(|b| format!("{b:02X}")).collect(),
    })
}

struct Read {
    subject: String,
    not_after: DateTime<Utc>,
    fingerprint: String,
}

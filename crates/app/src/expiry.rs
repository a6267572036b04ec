//! Credentials in use that end on a known date: the client secret (its expiry as entered with it) and the client
//! certificate (its own). Each raises an event ahead of its end, once at each of `oauth.expiry_warnings` (30 and 7
//! days by default), whichever node asks and however often.

use crate::{App, Result};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use tidings_core::{EmailConfig, config::ClientCredential, notify::EventKind, secret::SecretName};

/// One credential's end, and what its event says.
struct Ending {
    /// Names the credential in `meta`.
    name: &'static str,
    /// Tells this credential from the one before it (a new secret's date, a new certificate's thumbprint).
    id: String,
    at: DateTime<Utc>,
    kind: EventKind,
    details: BTreeMap<String, String>,
}

impl App {
    /// Raises the events of the credentials in use that end within one of `oauth.expiry_warnings` and were not
    /// warned about at that one yet; their ids.
    pub async fn check_expiries(&self, config: &EmailConfig, now: DateTime<Utc>) -> Result<Vec<i64>> {
        let mut raised = Vec::new();
        for ending in self.endings(config).await? {
            let left = ending.at - now;
            let crossed = config
                .oauth
                .expiry_warnings
                .iter()
                .filter(|w| left.to_std().map_or(true, |left| left <= **w))
                .min()
                .map(|w| w.as_secs());
            let Some(crossed) = crossed else { continue };
            let key = format!("notify.expiry.{}", ending.name);
            let warned = self.store.meta(&key).await?.and_then(|v| {
                let (id, secs) = v.split_once(' ')?;
                (id == ending.id).then(|| secs.parse::<u64>().ok()).flatten()
            });
            if warned.is_some_and(|w| w <= crossed) {
                continue;
            }
            self.store.set_meta(&key, Some(&format!("{} {crossed}", ending.id))).await?;
            let mut details = ending.details;
            details.insert("expires".into(), ending.at.format("%Y-%m-%d %H:%M UTC").to_string());
            details.insert("days".into(), left.num_days().max(0).to_string());
            tracing::warn!(credential = ending.name, expires = %ending.at, "a credential in use expires soon");
            raised.push(self.raise_event(ending.kind, details).await?);
        }
        Ok(raised)
    }

    /// The credentials in use that end on a known date.
    async fn endings(&self, config: &EmailConfig) -> Result<Vec<Ending>> {
        let mut endings = Vec::new();
        let secret_in_use = config.oauth.client_credential == ClientCredential::Secret;
        if let Some(date) = config.oauth.client_secret_expires.filter(|_| secret_in_use)
            && self.secret(SecretName::OAuthClientSecret).await?.is_some()
        {
            endings.push(Ending {
                name: "client_secret",
                id: date.to_string(),
                at: date.and_time(chrono::NaiveTime::MIN).and_utc(),
                kind: EventKind::ClientSecretExpiring,
                details: BTreeMap::new(),
            });
        }
        let certificate_in_use = match config.oauth.client_credential {
            ClientCredential::Certificate => true,
            ClientCredential::ServiceAccount => self.secret(SecretName::ServiceAccountKey).await?.is_none(),
            ClientCredential::Secret => false,
        };
        if certificate_in_use && let Some(held) = self.client_certificate().await? {
            endings.push(Ending {
                name: "client_certificate",
                id: held.sha1_thumbprint(),
                at: held.not_after,
                kind: EventKind::ClientCertificateExpiring,
                details: BTreeMap::from([
                    ("subject".to_owned(), held.subject.clone()),
                    ("thumbprint".to_owned(), held.sha1_thumbprint()),
                ]),
            });
        }
        Ok(endings)
    }
}

//! The email configuration service: read it, change it, import and export it. Every change is validated as a
//! whole, its secrets sealed, and stored with its audit entry in one transaction; an invalid change stores
//! nothing and the configuration in force stays.

use crate::{App, Error, Result, authorization::Owner, files, tls_files::Culprit};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::{collections::BTreeMap, path::Path};
use tidings_core::{
    EmailConfig, FieldError, ValidationErrors,
    account::Role,
    audit::NewAuditEntry,
    config::{self, SecretUpdate, SecretsPresent, google::GoogleClient, keys},
    secret::{SecretName, SecretString},
};
use tidings_store::{ConfigSave, Error as StoreError};

/// How often a save is retried when another writer saved in between.
const SAVE_ATTEMPTS: usize = 5;

/// The configuration in force.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Current {
    /// 0 until the first save.
    pub revision: i64,
    pub saved_at: Option<DateTime<Utc>>,
    pub saved_by: Option<String>,
    pub config: EmailConfig,
    pub secrets: SecretsPresent,
}

/// The outcome of a change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Saved {
    /// The revision in force afterwards.
    pub revision: i64,
    /// The keys that changed; empty when the edits changed nothing (and nothing was stored).
    pub changed: Vec<String>,
    /// Things the administrator should know that do not prevent saving.
    pub warnings: Vec<String>,
}

/// Which of Google's JSON files an import reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GoogleFile {
    /// An OAuth client's (`client_secret_….json`).
    Client,
    /// A service account's key (`project-….json`).
    ServiceAccount,
}

/// The export and import format.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigDocument {
    /// Always `tidings-email-config`.
    pub format: String,
    /// Format version, 1.
    pub version: u32,
    pub config: EmailConfig,
    /// Secret values by key; present only in an export made with secrets.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<String, String>,
}

pub const DOCUMENT_FORMAT: &str = "tidings-email-config";

impl ConfigDocument {
    /// Parses an import file's text.
    pub fn parse(text: &str) -> Result<Self> {
        let doc: Self = serde_json::from_str(text).map_err(|e| {
            Error::Input(format!("not a Tidings configuration export (line {}, column {}): {e}", e.line(), e.column()))
        })?;
        if doc.format != DOCUMENT_FORMAT || doc.version != 1 {
            return Err(Error::Input(format!(
                "format {:?} version {} is not one this Tidings reads; expected {DOCUMENT_FORMAT:?} version 1",
                doc.format, doc.version
            )));
        }
        Ok(doc)
    }

    /// The edits that turn any configuration into this one (secrets absent from the document are kept).
    fn edits(&self) -> Result<Vec<(String, String)>> {
        let mut edits: Vec<(String, String)> =
            keys::KEYS.iter().filter_map(|k| keys::get(&self.config, k.key).map(|v| (k.key.to_owned(), v))).collect();
        for (key, value) in &self.secrets {
            if SecretName::from_key(key).is_none() {
                return Err(Error::Input(format!(
                    "secrets.{key} is not a secret Tidings keeps; expected one of {}",
                    SecretName::ALL.map(SecretName::key).join(", ")
                )));
            }
            edits.push((key.clone(), value.clone()));
        }
        Ok(edits)
    }
}

impl App {
    /// The configuration in force.
    pub async fn current(&self) -> Result<Current> {
        let record = self.store.config().await?;
        let mut secrets = SecretsPresent::default();
        for sealed in self.store.sealed_secrets().await? {
            if let Some(name) = SecretName::from_key(&sealed.name) {
                secrets.set(name, true);
            }
        }
        Ok(match record {
            Some(r) => Current {
                revision: r.revision,
                saved_at: Some(r.saved_at),
                saved_by: Some(r.saved_by),
                config: r.config,
                secrets,
            },
            None => Current { revision: 0, saved_at: None, saved_by: None, config: EmailConfig::default(), secrets },
        })
    }

    /// Applies `key=value` edits (`tidings config set`, an administrator).
    pub async fn update(&self, actor: &str, edits: &[(String, String)]) -> Result<Saved> {
        self.save_edits(actor, "config.update", edits, Vec::new(), true).await
    }

    /// Applies edits made by a caller of `role`: below administrator, the OAuth endpoints may not be set by hand
    /// and moving the relay or the token endpoint clears the secrets that would follow (see
    /// [`config::custody`]); the warnings say which.
    pub async fn update_as(&self, actor: &str, role: Role, edits: &[(String, String)]) -> Result<Saved> {
        self.save_edits(actor, "config.update", edits, Vec::new(), role == Role::Administrator).await
    }

    /// Replaces the configuration with an exported document's.
    pub async fn import(&self, actor: &str, doc: &ConfigDocument) -> Result<Saved> {
        self.save_edits(actor, "config.import", &doc.edits()?, Vec::new(), true).await
    }

    /// Fills the OAuth client from Google's client file (`client_secret_….json`), for a caller of `role` (see
    /// [`App::update_as`]: the file's endpoints must be Google's own below administrator).
    pub async fn import_google_client(&self, actor: &str, role: Role, text: &str) -> Result<Saved> {
        let client = GoogleClient::parse(text)?;
        let redirect = self.current().await?.config.redirect_uri();
        let warnings = client.redirect_warning(redirect.as_deref()).into_iter().collect();
        let may_move_secrets = role == Role::Administrator;
        self.save_edits(actor, "config.import-google-client", &client.changes(), warnings, may_move_secrets).await
    }

    /// Imports one of Google's JSON files, for a caller of `role`.
    pub async fn import_google(&self, actor: &str, role: Role, file: GoogleFile, text: &str) -> Result<Saved> {
        match file {
            GoogleFile::Client => self.import_google_client(actor, role, text).await,
            GoogleFile::ServiceAccount => self.import_google_service_account(actor, role, text).await,
        }
    }

    /// Sends as a Google service account with domain-wide delegation, from its key file (`project-….json`), for a
    /// caller of `role` (see [`App::import_google_client`]). The key is checked and sealed.
    pub async fn import_google_service_account(&self, actor: &str, role: Role, text: &str) -> Result<Saved> {
        let account = config::google::GoogleServiceAccount::parse(text)?;
        let may_move_secrets = role == Role::Administrator;
        let action = "config.import-google-service-account";
        self.save_edits(actor, action, &account.changes(), Vec::new(), may_move_secrets).await
    }

    /// The configuration as an export document; secret values only when asked for.
    pub async fn export(&self, with_secrets: bool) -> Result<ConfigDocument> {
        let current = self.current().await?;
        let mut secrets = BTreeMap::new();
        if with_secrets {
            for name in SecretName::ALL {
                if let Some(value) = self.secret(name).await? {
                    // A private key leaves the node sealed only.
                    let shown = match name.is_private_key() {
                        true => self.private_key_exported(name, &value),
                        false => value.expose().to_owned(),
                    };
                    secrets.insert(name.key().to_owned(), shown);
                }
            }
        }
        Ok(ConfigDocument { format: DOCUMENT_FORMAT.into(), version: 1, config: current.config, secrets })
    }

    /// Checks the configuration in force, including the files it names (which may have changed since).
    pub async fn validate_current(&self) -> Result<()> {
        let current = self.current().await?;
        let mut errors = config::validate(&current.config, current.secrets).err().map(|e| e.0).unwrap_or_default();
        errors.extend(check_files(&current.config).await);
        if errors.is_empty() { Ok(()) } else { Err(ValidationErrors(errors).into()) }
    }

    /// Checks what applying `edits` would give, storing nothing (validation as an administrator types).
    pub async fn validate_edits(&self, edits: &[(String, String)]) -> Result<()> {
        let current = self.current().await?;
        let changes = config::apply(&current.config, edits, current.secrets)?;
        let errors = check_files(&changes.config).await;
        if errors.is_empty() { Ok(()) } else { Err(ValidationErrors(errors).into()) }
    }

    /// Checks what importing `doc` would give, storing nothing.
    pub async fn validate_document(&self, doc: &ConfigDocument) -> Result<()> {
        self.validate_edits(&doc.edits()?).await
    }

    /// A stored secret, decrypted, for the part that uses it.
    pub async fn secret(&self, name: SecretName) -> Result<Option<SecretString>> {
        let sealed = self.store.sealed_secrets().await?.into_iter().find(|s| s.name == name.key());
        sealed.map(|s| self.cipher.open(name.key(), &s.sealed)).transpose()
    }

    pub(crate) async fn save_edits(
        &self,
        actor: &str,
        action: &str,
        edits: &[(String, String)],
        warnings: Vec<String>,
        may_move_secrets: bool,
    ) -> Result<Saved> {
        let edits = &self.private_keys_checked(edits)?;
        for _ in 0..SAVE_ATTEMPTS {
            let current = self.current().await?;
            let mut changes = config::apply(&current.config, edits, current.secrets)?;
            let mut warnings = warnings.clone();
            let forget = !may_move_secrets && keep_custody(&current, edits, &mut changes, &mut warnings)?;
            let file_errors = check_files(&changes.config).await;
            if !file_errors.is_empty() {
                return Err(ValidationErrors(file_errors).into());
            }
            if changes.changed.is_empty() {
                return Ok(Saved { revision: current.revision, changed: Vec::new(), warnings });
            }
            if changes.changed.iter().any(|key| !tidings_core::cluster::is_node_local(key))
                && let Some(reason) = self.read_only_reason().await?
            {
                return Err(Error::Conflict(reason));
            }
            if forget {
                // Before the save: should it fail, the tokens are gone and the change is not made, never the
                // other way round.
                self.forget_authorizations(actor, &mut warnings).await?;
            }
            let sealed: Vec<(String, Option<Vec<u8>>)> = changes
                .secrets
                .iter()
                .map(|(name, update)| {
                    let value = match update {
                        SecretUpdate::Set(secret) => Some(self.cipher.seal(name.key(), secret.expose())),
                        SecretUpdate::Clear => None,
                    };
                    (name.key().to_owned(), value)
                })
                .collect();
            let fields = config::change::audited(&current.config, &changes.config, &changes.changed);
            let audit = NewAuditEntry { actor: actor.to_owned(), action: action.to_owned(), fields };
            let save = ConfigSave {
                base_revision: current.revision,
                config: &changes.config,
                secrets: &sealed,
                audit: &audit,
            };
            warnings.extend(config::advice::advice(&changes.config).iter().map(|a| a.text().to_owned()));
            match self.store.save_config(save).await {
                Ok(revision) => {
                    tracing::info!(revision, actor, action, fields = ?changes.changed, "email configuration saved");
                    return Ok(Saved { revision, changed: changes.changed, warnings });
                }
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::Input("the configuration is being changed by someone else right now; try again".into()))
    }

    /// Forgets the refresh tokens (the relay account's and the device accounts' own) that would follow a moved
    /// token endpoint, saying which in `warnings`.
    async fn forget_authorizations(&self, actor: &str, warnings: &mut Vec<String>) -> Result<()> {
        for held in self.authorizations().await?.into_iter().filter(|a| !a.client_credentials) {
            self.forget_authorization(held.owner, actor).await?;
            warnings.push(match held.owner {
                Owner::Relay => {
                    "the OAuth authorization was forgotten because the token endpoint changed; sign in again".into()
                }
                Owner::Device(id) => format!(
                    "device account {}'s mailbox token was forgotten because the token endpoint changed",
                    self.device(id).await.map(|d| d.username).unwrap_or_else(|_| id.to_string())
                ),
            });
        }
        Ok(())
    }
}

/// What a change by someone who may not choose where secrets go must also do: refuse endpoints set by hand,
/// clear the secrets that would follow a moved relay or token endpoint (said in `warnings`); true when the
/// refresh tokens must be forgotten too.
fn keep_custody(
    current: &Current,
    edits: &[(String, String)],
    changes: &mut config::Changes,
    warnings: &mut Vec<String>,
) -> Result<bool> {
    let set: Vec<SecretName> =
        changes.secrets.iter().filter(|(_, u)| matches!(u, SecretUpdate::Set(_))).map(|(n, _)| *n).collect();
    let custody =
        config::custody::without_custody(&current.config, &changes.config, edits.iter().map(|(k, _)| k.as_str()), &set);
    if !custody.refused.is_empty() {
        return Err(ValidationErrors(custody.refused).into());
    }
    for (secret, because) in custody.clear.into_iter().filter(|(s, _)| current.secrets.has(*s)) {
        changes.secrets.push((secret, SecretUpdate::Clear));
        changes.changed.push(secret.key().to_owned());
        warnings.push(format!(
            "{} was cleared because {because} changed: a stored secret never follows a change made without the \
             administrator role; enter it again",
            secret.key()
        ));
    }
    Ok(custody.forget_authorizations)
}

/// Checks the files the configuration names, off the async threads: the CA bundle must be a regular PEM file
/// with a certificate, the gateway's certificate and key must load and belong together. Each file is read
/// with [`files`]' limits, so that a FIFO or a device can neither freeze nor exhaust the daemon.
async fn check_files(cfg: &EmailConfig) -> Vec<FieldError> {
    let (ca_file, gateway) = (cfg.tls.ca_file.clone(), cfg.gateway.cert_file.clone().zip(cfg.gateway.key_file.clone()));
    if ca_file.is_none() && gateway.is_none() {
        return Vec::new();
    }
    tokio::task::spawn_blocking(move || {
        let mut errors = Vec::new();
        if let Some(path) = ca_file {
            match files::read_text(Path::new(&path), files::PEM_LIMIT) {
                Ok(text) if text.contains("-----BEGIN CERTIFICATE-----") => {}
                Ok(_) => errors.push(FieldError::new(
                    "tls.ca_file",
                    format!("{path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)"),
                )),
                Err(why) => errors.push(FieldError::new("tls.ca_file", why.to_string())),
            }
        }
        if let Some((cert, key)) = gateway
            && let Err(why) = crate::tls_files::server_config(Path::new(&cert), Path::new(&key))
        {
            let field = if why.culprit == Culprit::Key { "gateway.key_file" } else { "gateway.cert_file" };
            errors.push(FieldError::new(field, why.to_string()));
        }
        errors
    })
    .await
    .unwrap_or_default()
}

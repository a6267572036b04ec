//! Bearer tokens for the API: `tdg_` and 43 characters of randomness, shown once at creation; only their
//! SHA-256 is stored, so the database alone cannot be used to call the API.

use crate::{App, Error, Result};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::Utc;
use rand::RngCore;
use sha2::{Digest, Sha256};
use tidings_core::{account::Role, audit::NewAuditEntry, secret::SecretString};
use tidings_store::ApiToken;

const PREFIX: &str = "tdg_";

/// A token just created: the only time its value exists outside the caller.
#[derive(Debug)]
pub struct CreatedToken {
    pub id: i64,
    pub token: SecretString,
}

/// The SHA-256 under which a bearer token or a session cookie's value is stored.
pub(crate) fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

impl App {
    pub async fn create_api_token(&self, actor: &str, name: &str, role: Role) -> Result<CreatedToken> {
        self.refuse_on_follower().await?;
        if name.trim().is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
            return Err(Error::Input(format!(
                "token name {name:?}: give 1 to 64 printable characters, such as ci-alerts"
            )));
        }
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let token = SecretString::new(format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes)));
        let audit = NewAuditEntry {
            actor: actor.to_owned(),
            action: "api-token.create".into(),
            fields: vec![name.to_owned(), role.to_string()],
        };
        let id = self.store.create_api_token(name, role, &token_hash(token.expose()), &audit).await?;
        Ok(CreatedToken { id, token })
    }

    pub async fn api_tokens(&self) -> Result<Vec<ApiToken>> {
        Ok(self.store.api_tokens().await?)
    }

    /// Revokes a token; false when it does not exist or was revoked already.
    pub async fn revoke_api_token(&self, actor: &str, id: i64) -> Result<bool> {
        self.refuse_on_follower().await?;
        let audit =
            NewAuditEntry { actor: actor.to_owned(), action: "api-token.revoke".into(), fields: vec![id.to_string()] };
        Ok(self.store.revoke_api_token(id, &audit).await?)
    }

    /// The valid (not revoked) token a caller presented, if any. Notes its use at most once a minute.
    pub async fn authenticate_api_token(&self, presented: &str) -> Result<Option<ApiToken>> {
        if !presented.starts_with(PREFIX) {
            return Ok(None);
        }
        let Some(token) = self.store.api_token_by_hash(&token_hash(presented)).await? else { return Ok(None) };
        if token.revoked_at.is_some() {
            return Ok(None);
        }
        let now = Utc::now();
        if token.last_used_at.is_none_or(|last| now - last > chrono::Duration::seconds(60)) {
            self.store.touch_api_token(token.id, now).await?;
        }
        Ok(Some(token))
    }
}

//! Google's OAuth client file (`client_secret_….json`, downloaded from Google Cloud console > APIs & Services >
//! Credentials), turned into configuration edits.
//!
//! The file holds one top-level object, `installed` (desktop app) or `web` (web application), with `client_id`,
//! `client_secret`, `auth_uri`, `token_uri` and, for `web`, the registered `redirect_uris`.

use crate::Invalid;
use serde::Deserialize;
use serde_json::Value;
use std::fmt;

/// Where in Google's console to download the file, for error messages.
const WHERE: &str =
    "download it from Google Cloud console > APIs & Services > Credentials > your OAuth client > Download JSON";

/// The client described by the file.
#[derive(Clone, PartialEq, Eq)]
pub struct GoogleClient {
    pub kind: ClientKind,
    pub client_id: String,
    pub client_secret: Option<String>,
    pub auth_uri: Option<String>,
    pub token_uri: Option<String>,
    pub redirect_uris: Vec<String>,
}

impl fmt::Debug for GoogleClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GoogleClient")
            .field("kind", &self.kind)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret.as_ref().map(|_| "<redacted>"))
            .field("auth_uri", &self.auth_uri)
            .field("token_uri", &self.token_uri)
            .field("redirect_uris", &self.redirect_uris)
            .finish()
    }
}

/// The two shapes Google's console produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientKind {
    /// "Desktop app": the `installed` object.
    Installed,
    /// "Web application": the `web` object.
    Web,
}

#[derive(Deserialize)]
struct Inner {
    client_id: Option<String>,
    client_secret: Option<String>,
    auth_uri: Option<String>,
    token_uri: Option<String>,
    #[serde(default)]
    redirect_uris: Vec<String>,
}

impl GoogleClient {
    /// Parses the file's text; errors say what is wrong and where the right file comes from.
    pub fn parse(text: &str) -> Result<Self, Invalid> {
        let value: Value = serde_json::from_str(text)
            .map_err(|e| format!("not a JSON file (line {}, column {}: {e}); {WHERE}", e.line(), e.column()))?;
        let Value::Object(top) = value else {
            return Err(format!("expected a JSON object with \"installed\" or \"web\" at the top; {WHERE}").into());
        };
        let (kind, name) = if top.contains_key("installed") {
            (ClientKind::Installed, "installed")
        } else if top.contains_key("web") {
            (ClientKind::Web, "web")
        } else {
            let found: Vec<_> = top.keys().map(String::as_str).collect();
            return Err(format!(
                "expected a top-level \"installed\" or \"web\" object, found {}; this does not look like a Google \
                 OAuth client file ({WHERE})",
                if found.is_empty() { "nothing".to_owned() } else { format!("{found:?}") }
            )
            .into());
        };
        let inner: Inner =
            serde_json::from_value(top[name].clone()).map_err(|e| format!("\"{name}\" is malformed: {e}; {WHERE}"))?;
        let client_id = inner
            .client_id
            .filter(|id| !id.trim().is_empty())
            .ok_or_else(|| format!("\"{name}.client_id\" is missing; {WHERE}"))?;
        Ok(Self {
            kind,
            client_id,
            client_secret: inner.client_secret.filter(|s| !s.is_empty()),
            auth_uri: inner.auth_uri,
            token_uri: inner.token_uri,
            redirect_uris: inner.redirect_uris,
        })
    }

    /// The configuration edits this file stands for: the Google preset, then the file's own values.
    /// The client secret, if any, is returned last under its secret key.
    pub fn changes(&self) -> Vec<(String, String)> {
        let mut changes = vec![
            ("oauth.provider".to_owned(), "google".to_owned()),
            ("oauth.client_id".into(), self.client_id.clone()),
        ];
        if let Some(uri) = &self.auth_uri {
            changes.push(("oauth.authorization_endpoint".into(), uri.clone()));
        }
        if let Some(uri) = &self.token_uri {
            changes.push(("oauth.token_endpoint".into(), uri.clone()));
        }
        if let Some(secret) = &self.client_secret {
            changes.push(("oauth.client_secret".into(), secret.clone()));
        }
        changes
    }

    /// For a `web` client: a warning when Tidings' redirect URI is not among the registered ones, since Google
    /// refuses any redirect it does not know.
    pub fn redirect_warning(&self, redirect_uri: Option<&str>) -> Option<String> {
        if self.kind != ClientKind::Web {
            return None;
        }
        match redirect_uri {
            Some(uri) if self.redirect_uris.iter().any(|r| r == uri || r.trim_end_matches('/') == uri.trim_end_matches('/')) => None,
            Some(uri) => Some(format!(
                "this web client does not list {uri} among its authorized redirect URIs; add it in Google Cloud \
                 console, or Google will refuse the sign-in"
            )),
            None => Some(
                "set public_base_url so that Tidings knows its redirect URI, and register that URI with this web client"
                    .into(),
            ),
        }
    }
}

/// Where in Google's console a service account's key file comes from, for error messages.
const KEY_WHERE: &str = "make one in Google Cloud console > IAM & Admin > Service accounts > the account > Keys > Add key > \
                         Create new key > JSON";

/// A Google service account's key file (`project-….json`): who the account is and its private key.
#[derive(Clone, PartialEq, Eq)]
pub struct GoogleServiceAccount {
    pub client_email: String,
    /// The numeric id domain-wide delegation is granted to.
    pub client_id: String,
    pub private_key_id: Option<String>,
    pub private_key: String,
    pub token_uri: Option<String>,
}

impl fmt::Debug for GoogleServiceAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GoogleServiceAccount")
            .field("client_email", &self.client_email)
            .field("client_id", &self.client_id)
            .field("private_key_id", &self.private_key_id)
            .field("private_key", &"<redacted>")
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct KeyFile {
    #[serde(rename = "type")]
    kind: Option<String>,
    client_email: Option<String>,
    client_id: Option<String>,
    private_key_id: Option<String>,
    private_key: Option<String>,
    token_uri: Option<String>,
}

impl GoogleServiceAccount {
    /// Parses the key file's text; errors say what is wrong and where the right file comes from.
    pub fn parse(text: &str) -> Result<Self, Invalid> {
        let file: KeyFile = serde_json::from_str(text)
            .map_err(|e| format!("not a JSON key file (line {}, column {}: {e}); {KEY_WHERE}", e.line(), e.column()))?;
        if file.kind.as_deref() != Some("service_account") {
            return Err(format!(
                "\"type\" is {:?}, not \"service_account\": this is not a service account's key file (an OAuth \
                 client's file goes to `tidings config import-google-client`); {KEY_WHERE}",
                file.kind.unwrap_or_default()
            )
            .into());
        }
        let field = |value: Option<String>, name: &str| {
            value.filter(|v| !v.trim().is_empty()).ok_or_else(|| format!("\"{name}\" is missing; {KEY_WHERE}"))
        };
        Ok(Self {
            client_email: field(file.client_email, "client_email")?,
            client_id: field(file.client_id, "client_id")?,
            private_key: field(file.private_key, "private_key")?,
            private_key_id: file.private_key_id.filter(|v| !v.is_empty()),
            token_uri: file.token_uri,
        })
    }

    /// The configuration edits this file stands for: the Google preset, the account and its key (under its
    /// secret key), the service-account credential, and sending with OAuth.
    pub fn changes(&self) -> Vec<(String, String)> {
        let mut changes = vec![
            ("oauth.provider".to_owned(), "google".to_owned()),
            ("smtp.auth".into(), "oauth2".into()),
            ("oauth.client_id".into(), self.client_id.clone()),
            ("oauth.client_credential".into(), "service_account".into()),
            ("oauth.service_account".into(), self.client_email.clone()),
            ("oauth.service_account_key_id".into(), self.private_key_id.clone().unwrap_or_default()),
            ("oauth.service_account_key".into(), self.private_key.clone()),
        ];
        if let Some(uri) = &self.token_uri {
            changes.push(("oauth.token_endpoint".into(), uri.clone()));
        }
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_account_key_file_becomes_its_settings_and_nothing_else_is_taken_for_one() {
        let file = r#"{"type": "service_account", "project_id": "p", "private_key_id": "abc123",
            "private_key": "-----BEGIN PRIVATE KEY-----\nMII\n-----END PRIVATE KEY-----\n",
            "client_email": "tidings@p.iam.gserviceaccount.com", "client_id": "1234567890",
            "token_uri": "https://oauth2.googleapis.com/token"}"#;
        let account = GoogleServiceAccount::parse(file).unwrap();
        assert!(!format!("{account:?}").contains("PRIVATE"));
        let changes = account.changes();
        assert!(changes.contains(&("oauth.service_account".into(), "tidings@p.iam.gserviceaccount.com".into())));
        assert!(changes.contains(&("oauth.client_credential".into(), "service_account".into())));
        let client = r#"{"installed": {"client_id": "x"}}"#;
        assert!(GoogleServiceAccount::parse(client).unwrap_err().reason().contains("import-google-client"));
        let missing = r#"{"type": "service_account", "client_email": "a@b.c"}"#;
        assert!(GoogleServiceAccount::parse(missing).unwrap_err().reason().contains("client_id"));
    }

    const INSTALLED: &str = r#"{"installed":{"client_id":"123-abc.apps.googleusercontent.com","project_id":"tidings-test",
        "auth_uri":"https://accounts.google.com/o/oauth2/auth","token_uri":"https://oauth2.googleapis.com/token",
        "auth_provider_x509_cert_url":"https://www.googleapis.com/oauth2/v1/certs","client_secret":"GOCSPX-secret",
        "redirect_uris":["http://localhost"]}}"#;
    const WEB: &str = r#"{"web":{"client_id":"456-def.apps.googleusercontent.com","project_id":"tidings-test",
        "auth_uri":"https://accounts.google.com/o/oauth2/auth","token_uri":"https://oauth2.googleapis.com/token",
        "client_secret":"GOCSPX-web","redirect_uris":["https://tidings.example.com/login/smtp-verification/"],
        "javascript_origins":["https://tidings.example.com"]}}"#;

    #[test]
    fn installed_client() {
        let client = GoogleClient::parse(INSTALLED).unwrap();
        assert_eq!(client.kind, ClientKind::Installed);
        assert_eq!(client.client_id, "123-abc.apps.googleusercontent.com");
        assert_eq!(client.client_secret.as_deref(), Some("GOCSPX-secret"));
        let changes = client.changes();
        assert_eq!(changes[0], ("oauth.provider".into(), "google".into()));
        assert!(
            changes
                .contains(&("oauth.authorization_endpoint".into(), "https://accounts.google.com/o/oauth2/auth".into()))
        );
        assert!(changes.contains(&("oauth.token_endpoint".into(), "https://oauth2.googleapis.com/token".into())));
        assert!(changes.contains(&("oauth.client_secret".into(), "GOCSPX-secret".into())));
        assert_eq!(client.redirect_warning(None), None);
        assert!(!format!("{client:?}").contains("GOCSPX"));
    }

    #[test]
    fn web_client_and_its_redirect_uris() {
        let client = GoogleClient::parse(WEB).unwrap();
        assert_eq!(client.kind, ClientKind::Web);
        assert_eq!(client.redirect_warning(Some("https://tidings.example.com/login/smtp-verification/")), None);
        let warning = client.redirect_warning(Some("https://other.example.com/login/smtp-verification/")).unwrap();
        assert!(warning.contains("other.example.com"), "{warning}");
        assert!(client.redirect_warning(None).unwrap().contains("public_base_url"));
    }

    #[test]
    fn broken_files_get_clear_errors() {
        for (text, needle) in [
            ("{\"installed\": {", "not a JSON file (line 1"),
            ("[1,2]", "JSON object"),
            (r#"{"type":"service_account","client_email":"x"}"#, "\"installed\" or \"web\""),
            (r#"{"installed":{"client_secret":"x"}}"#, "installed.client_id\" is missing"),
            (r#"{"web":{"client_id":""}}"#, "web.client_id\" is missing"),
            (r#"{"web":"nope"}"#, "\"web\" is malformed"),
        ] {
            let err = GoogleClient::parse(text).expect_err(text);
            assert!(err.reason().contains(needle), "{text}: {err}");
            assert!(err.reason().contains("Google Cloud console"), "{err}");
        }
    }
}

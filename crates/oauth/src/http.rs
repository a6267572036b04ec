//! The provider's token endpoint over HTTPS, through the configured proxy, trusting what delivery trusts
//! (the system's store, `tls.ca_file`, `tls.verify_certificates`).

use crate::access_tokens::{Credential, EndpointError, Granted, TokenEndpoint};
use async_trait::async_trait;
use std::time::Duration;
use tidings_app::{
    App,
    client_certificate::{AssertionKey, ClientCertificate},
};
use tidings_core::Invalid;
use tidings_core::{
    EmailConfig,
    config::{ClientCredential, Provider},
    oauth::{
        error::{Verdict, explain},
        response::{ErrorResponse, TokenResponse},
    },
    secret::{SecretName, SecretString},
};
use tidings_delivery::smtp::tls;

/// The configured OAuth client, ready to call the provider.
#[derive(Clone, Debug)]
pub struct HttpEndpoint {
    http: reqwest::Client,
    provider: Option<Provider>,
    token_endpoint: String,
    client_id: String,
    client_auth: ClientAuth,
    scopes: Vec<String>,
    /// What app-only tokens (the client-credentials grant) are asked for.
    app_only_scope: String,
}

/// How the client proves itself at the token endpoint.
#[derive(Clone, Debug, Default)]
pub enum ClientAuth {
    /// A public client: its id only.
    #[default]
    Public,
    /// `client_secret`.
    Secret(SecretString),
    /// A `client_assertion` signed with the certificate's key (`private_key_jwt`), made for each request.
    Certificate(ClientCertificate),
    /// A Google service account acting for `subject` (domain-wide delegation): app-only tokens come from a JWT
    /// bearer grant (RFC 7523) signed with its key.
    ServiceAccount { key: AssertionKey, account: String, key_id: Option<String>, subject: String },
}

/// The client authentication the configuration chooses, with what it needs from the store.
pub async fn client_auth(app: &App, cfg: &EmailConfig) -> Result<ClientAuth, tidings_app::Error> {
    match cfg.oauth.client_credential {
        ClientCredential::Certificate => match app.client_certificate().await? {
            Some(certificate) => Ok(ClientAuth::Certificate(certificate)),
            None => Err(tidings_app::Error::NotConfigured(
                "oauth.client_credential is certificate, but no client certificate is kept: make one with \
                 `tidings oauth certificate create`"
                    .into(),
            )),
        },
        ClientCredential::ServiceAccount => {
            let unset = |what: &str| {
                tidings_app::Error::NotConfigured(format!(
                    "oauth.client_credential is service_account, but {what}: import the service account's key file \
                     with `tidings config import-google-service-account FILE`"
                ))
            };
            let key = app.service_account_key().await?.ok_or_else(|| unset("no key is kept"))?;
            let account = cfg.oauth.service_account.clone().ok_or_else(|| unset("oauth.service_account is not set"))?;
            let subject = cfg.mailbox().map(str::to_owned).ok_or_else(|| {
                tidings_app::Error::NotConfigured(
                    "a service account acts for a mailbox: set oauth.account, or the sender".into(),
                )
            })?;
            Ok(ClientAuth::ServiceAccount { key, account, key_id: cfg.oauth.service_account_key_id.clone(), subject })
        }
        ClientCredential::Secret => {
            Ok(app.secret(SecretName::OAuthClientSecret).await?.map_or(ClientAuth::Public, ClientAuth::Secret))
        }
    }
}

/// How an HTTP call to the provider failed.
#[derive(Debug)]
pub enum Answer {
    /// No answer: connection, TLS, proxy, timeout, or an unreadable body.
    Unreachable(String),
    /// An OAuth error response.
    Provider(ErrorResponse),
    /// An HTTP error without an OAuth error body.
    Status(u16),
}

/// RFC 7523's grant type: a JWT as the authorization grant.
const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// RFC 7523's client assertion type.
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// A lifetime assumed when a provider omits `expires_in`.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);

impl HttpEndpoint {
    /// An endpoint for the configured OAuth client; errors name the setting at fault.
    pub fn new(cfg: &EmailConfig, client_auth: ClientAuth) -> Result<Self, Invalid> {
        let token_endpoint = cfg.oauth.token_endpoint.clone().ok_or("oauth.token_endpoint is not set")?;
        let client_id = cfg.oauth.client_id.clone().ok_or("oauth.client_id is not set")?;
        let http = tidings_delivery::api::http_client(cfg, &*tls::client_config(&cfg.tls)?)?;
        Ok(Self {
            http,
            provider: cfg.oauth.provider,
            token_endpoint,
            client_id,
            client_auth,
            scopes: cfg.oauth.scopes.clone(),
            app_only_scope: match cfg.oauth.provider {
                Some(Provider::Microsoft) => tidings_core::config::preset::microsoft_app_only_scope(cfg).to_owned(),
                _ => cfg.oauth.scopes.join(" "),
            },
        })
    }

    pub fn provider(&self) -> Option<Provider> {
        self.provider
    }

    pub fn token_endpoint(&self) -> &str {
        &self.token_endpoint
    }

    /// Posts a form to `url` with the client's authentication and reads a JSON answer of type `T`.
    pub async fn post<T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
        mut form: Vec<(&'static str, String)>,
    ) -> Result<T, Answer> {
        match &self.client_auth {
            // The assertion of the grant itself says who the service account is.
            ClientAuth::ServiceAccount { .. } => {}
            ClientAuth::Public => form.push(("client_id", self.client_id.clone())),
            ClientAuth::Secret(secret) => {
                form.push(("client_id", self.client_id.clone()));
                form.push(("client_secret", secret.expose().to_owned()));
            }
            ClientAuth::Certificate(certificate) => {
                form.push(("client_id", self.client_id.clone()));
                let assertion = certificate
                    .assertion(&self.client_id, url, chrono::Utc::now())
                    .map_err(|why| Answer::Unreachable(format!("cannot sign the client assertion: {why}")))?;
                form.push(("client_assertion_type", JWT_BEARER.to_owned()));
                form.push(("client_assertion", assertion));
            }
        }
        let response = self
            .http
            .post(url)
            .header(reqwest::header::ACCEPT, "application/json")
            .form(&form)
            .send()
            .await
            .map_err(|e| Answer::Unreachable(describe(url, &e)))?;
        let status = response.status();
        let body = response.text().await.map_err(|e| Answer::Unreachable(describe(url, &e)))?;
        if status.is_success() {
            return serde_json::from_str(&body)
                .map_err(|e| Answer::Unreachable(format!("{url} answered something unexpected ({e})")));
        }
        // Providers answer errors with 400 or 401, and Google's device polling with 403 and 428: the JSON decides.
        match serde_json::from_str::<ErrorResponse>(&body) {
            Ok(error) => Err(Answer::Provider(error)),
            Err(_) => Err(Answer::Status(status.as_u16())),
        }
    }

    /// Posts a token request and classifies a failure as passing or needing an administrator.
    pub async fn token_request(&self, form: Vec<(&'static str, String)>) -> Result<TokenResponse, EndpointError> {
        self.post(&self.token_endpoint, form).await.map_err(|answer| self.classify(answer))
    }

    /// What a failed answer means for a token request.
    pub fn classify(&self, answer: Answer) -> EndpointError {
        match answer {
            Answer::Unreachable(why) => EndpointError::Unavailable(why),
            Answer::Provider(error) => {
                let explained = explain(self.provider, &error);
                match explained.verdict {
                    Verdict::Retry | Verdict::Pending | Verdict::SlowDown => EndpointError::Unavailable(explained.said),
                    _ => EndpointError::Refused { said: explained.said, explanation: explained.explanation },
                }
            }
            Answer::Status(status) if status >= 500 || status == 429 => {
                EndpointError::Unavailable(format!("the token endpoint answered HTTP {status}"))
            }
            Answer::Status(status) => EndpointError::Refused {
                said: format!("the token endpoint answered HTTP {status}"),
                explanation: format!("Check oauth.token_endpoint ({}) and oauth.proxy_url.", self.token_endpoint),
            },
        }
    }

    /// Whether the token endpoint can be reached (through the proxy, with the TLS settings): any HTTP answer
    /// counts as connected.
    pub async fn check(&self) -> Result<(), EndpointError> {
        self.http
            .get(&self.token_endpoint)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| EndpointError::Unavailable(describe(&self.token_endpoint, &e)))
    }
}

#[async_trait]
impl TokenEndpoint for HttpEndpoint {
    async fn refresh(&self, credential: &Credential) -> Result<Granted, EndpointError> {
        let form = match credential {
            Credential::RefreshToken(refresh_token) => {
                let mut form = vec![
                    ("grant_type", "refresh_token".to_owned()),
                    ("refresh_token", refresh_token.expose().to_owned()),
                ];
                // RFC 6749 §6: without `scope` the original grant's scopes apply, and a scope beyond them is
                // refused. Microsoft's v2.0 endpoint documents `scope` as required on refresh, so it gets them.
                if self.provider == Some(Provider::Microsoft) && !self.scopes.is_empty() {
                    form.push(("scope", self.scopes.join(" ")));
                }
                form
            }
            Credential::Client { .. }
                if let ClientAuth::ServiceAccount { key, account, key_id, subject } = &self.client_auth =>
            {
                let now = chrono::Utc::now().timestamp();
                let claims = serde_json::json!({
                    "iss": account,
                    "sub": subject,
                    "scope": self.scopes.join(" "),
                    "aud": self.token_endpoint,
                    "iat": now,
                    "exp": now + 3600,
                });
                let header = match key_id {
                    Some(id) => serde_json::json!({ "kid": id }),
                    None => serde_json::json!({}),
                };
                let assertion = key.jwt(header, &claims).map_err(EndpointError::Unavailable)?;
                vec![("grant_type", JWT_BEARER_GRANT.to_owned()), ("assertion", assertion)]
            }
            Credential::Client { .. } => {
                vec![("grant_type", "client_credentials".to_owned()), ("scope", self.app_only_scope.clone())]
            }
        };
        Ok(granted(self.token_request(form).await?))
    }
}

/// A token response as a grant.
pub fn granted(answer: TokenResponse) -> Granted {
    Granted {
        access_token: SecretString::new(answer.access_token),
        expires_in: answer.expires_in.map(Duration::from_secs).unwrap_or(DEFAULT_LIFETIME),
        refresh_token: answer.refresh_token.map(SecretString::new),
    }
}

/// An HTTP failure in words: what failed (the name, the connection, TLS, the proxy, the time) and what to check,
/// with the library's own words kept after it.
fn describe(url: &str, e: &reqwest::Error) -> String {
    let chain = tidings_app::error_chain(e);
    let host =
        reqwest::Url::parse(url).ok().and_then(|u| u.host_str().map(str::to_owned)).unwrap_or_else(|| url.into());
    let lower = chain.to_ascii_lowercase();
    let (what, check) = if lower.contains("dns error") || lower.contains("failed to lookup address") {
        (
            format!("the name {host} does not resolve"),
            "this machine's DNS servers, or the \"Proxy for OAuth\" field (oauth.proxy_url) if the network allows the way out only through a proxy",
        )
    } else if lower.contains("proxy") || lower.contains("tunnel") {
        (
            format!("the proxy refused or did not reach {host}"),
            "the \"Proxy for OAuth\" field (oauth.proxy_url): its address, and that it allows CONNECT to this host",
        )
    } else if lower.contains("certificate") || lower.contains("tls") || lower.contains("handshake") {
        (
            format!("the TLS connection to {host} failed"),
            "tls.ca_file if a proxy inspects TLS, and this machine's clock",
        )
    } else if e.is_timeout() {
        (
            format!("{host} did not answer in time"),
            "the firewall's way out to port 443, or the \"Proxy for OAuth\" field (oauth.proxy_url)",
        )
    } else if e.is_connect() {
        (
            format!("no connection to {host}"),
            "the firewall's way out to port 443, or the \"Proxy for OAuth\" field (oauth.proxy_url)",
        )
    } else {
        (
            format!("{host} could not be reached"),
            "the network's way out, and the \"Proxy for OAuth\" field (oauth.proxy_url)",
        )
    };
    format!("Tidings could not reach the OAuth provider: {what}. Check {check}. ({url}: {chain})")
}

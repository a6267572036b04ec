//! Signing in with the provider: the authorization-code flow with PKCE (S256) and `state`, completed by the
//! redirect to `/login/smtp-verification` or by an administrator pasting the URL (or code) the browser ended
//! on. A completed sign-in stores the refresh token and hands the access token to the token manager.

use crate::{
    access_tokens::{EndpointError, TokenManager},
    http::{Answer, HttpEndpoint, granted},
};
use rand::RngCore;
use std::time::Duration;
use tidings_app::{App, authorization};
use tidings_core::{
    oauth::{
        authorize,
        error::{Verdict, explain},
        pkce, redirect,
        response::{DeviceAuthorization, TokenResponse},
    },
    secret::SecretString,
};
use tidings_store::Device;

/// How long a started sign-in waits for the provider's redirect.
pub const SIGN_IN_TTL: Duration = Duration::from_secs(15 * 60);

/// Why a sign-in could not start or finish, in words for the administrator.
#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    /// The configuration does not allow this flow (what to set is in the message).
    #[error("{0}")]
    Unsuitable(String),
    /// What came back is not a usable answer (no code, an unknown or expired `state`).
    #[error("{0}")]
    BadAnswer(String),
    /// The provider refused: its words, and what to do.
    #[error("{said}: {explanation}")]
    Refused { said: String, explanation: String },
    /// The provider could not be reached; try again.
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    App(#[from] tidings_app::Error),
}

/// Whose mailbox a sign-in authorizes: the relay account Tidings sends as, or a device account's own
/// mailbox (the gateway's `login_user` policy), which is its first address.
#[derive(Clone, Debug)]
pub enum Owner {
    Relay,
    Device(Device),
}

impl Owner {
    /// Whose authorization it is, as it is kept.
    fn key(&self) -> authorization::Owner {
        match self {
            Owner::Relay => authorization::Owner::Relay,
            Owner::Device(d) => authorization::Owner::Device(d.id),
        }
    }

    /// The mailbox being authorized.
    fn account(&self, config: &tidings_core::EmailConfig) -> Result<Option<String>, FlowError> {
        match self {
            Owner::Relay => Ok(config.oauth.account.clone().or(config.sender.clone())),
            Owner::Device(d) => d.addresses.first().cloned().map(Some).ok_or_else(|| {
                FlowError::Unsuitable(format!(
                    "device account {} has no address: an administrator adds its mailbox address first",
                    d.username
                ))
            }),
        }
    }
}

/// A started sign-in.
#[derive(Clone, Debug)]
pub struct Started {
    /// Open this in a browser.
    pub url: String,
    pub expires_in: Duration,
}

fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes
}

/// Which sign-ins can start with the configuration in force, each with why not: for the pages to offer only
/// what can work.
#[derive(Debug)]
pub struct Suitable {
    pub code: Result<(), String>,
    pub device: Result<(), String>,
    pub client_credentials: Result<(), String>,
}

pub async fn suitable(app: &App) -> Result<Suitable, FlowError> {
    let config = app.current().await?.config;
    let auth = crate::http::client_auth(app, &config).await?;
    let confidential = !matches!(auth, crate::http::ClientAuth::Public);
    Ok(Suitable {
        code: authorize::check_code_flow(&config).map_err(|e| e.0),
        device: authorize::check_device_flow(&config).map_err(|e| e.0),
        client_credentials: authorize::check_client_credentials(&config, confidential).map_err(|e| e.0),
    })
}

/// Starts an authorization-code sign-in: remembers its `state` and PKCE verifier, returns the URL to open.
pub async fn start(app: &App, owner: &Owner) -> Result<Started, FlowError> {
    let mut config = app.current().await?.config;
    // The provider's sign-in page suggests the mailbox being authorized (`login_hint`).
    config.oauth.account = owner.account(&config)?;
    let redirect_uri = config.redirect_uri().ok_or_else(|| {
        FlowError::Unsuitable("set public_base_url first: the redirect URI is derived from it".into())
    })?;
    let verifier = SecretString::new(pkce::verifier(&random::<32>()));
    let state = pkce::state(&random::<16>());
    let url = authorize::authorization_url(&config, &redirect_uri, &state, &pkce::challenge(verifier.expose()))
        .map_err(|e| FlowError::Unsuitable(e.0))?;
    app.begin_sign_in(owner.key(), &state, &verifier, &redirect_uri, SIGN_IN_TTL).await?;
    Ok(Started { url: url.into(), expires_in: SIGN_IN_TTL })
}

/// Finishes a sign-in from the redirect's query or what was pasted: the sign-in its `state` names, whoever
/// started it, or for a bare code the newest of `pasted_by`. Returns the account.
pub async fn complete(
    app: &App,
    manager: Option<&TokenManager>,
    actor: &str,
    answer: &str,
    pasted_by: &Owner,
) -> Result<Option<String>, FlowError> {
    let config = app.current().await?.config;
    let (code, state) = match redirect::parse(answer).map_err(|why| FlowError::BadAnswer(why.into()))? {
        redirect::Returned::Code { code, state } => (code, state),
        redirect::Returned::Refused { error, description } => {
            let explained = tidings_core::oauth::error::explain(
                config.oauth.provider,
                &tidings_core::oauth::response::ErrorResponse {
                    error,
                    error_description: description,
                    error_codes: vec![],
                    error_uri: None,
                },
            );
            return Err(FlowError::Refused { said: explained.said, explanation: explained.explanation });
        }
    };
    let sign_in = app.take_sign_in(state.as_deref(), pasted_by.key()).await?.ok_or_else(|| {
        FlowError::BadAnswer(
            "this answer does not belong to a sign-in Tidings started (or it expired after 15 minutes, or was already used); start the sign-in again"
                .into(),
        )
    })?;
    let owner = match sign_in.owner {
        authorization::Owner::Relay => Owner::Relay,
        authorization::Owner::Device(id) => Owner::Device(app.device(id).await?),
    };
    let auth = crate::http::client_auth(app, &config).await?;
    let endpoint = HttpEndpoint::new(&config, auth).map_err(|why| FlowError::Unsuitable(why.into()))?;
    let form = vec![
        ("grant_type", "authorization_code".to_owned()),
        ("code", code),
        ("redirect_uri", sign_in.redirect_uri),
        ("code_verifier", sign_in.verifier.expose().to_owned()),
    ];
    let answer = endpoint.token_request(form).await.map_err(|e| match e {
        EndpointError::Unavailable(why) => FlowError::Unavailable(why),
        EndpointError::Refused { said, explanation } => FlowError::Refused { said, explanation },
    })?;
    let account = owner.account(&config)?;
    store(app, manager, actor, &owner, account, answer).await
}

/// Stores what a completed sign-in granted and hands the access token to the manager. Returns the account.
async fn store(
    app: &App,
    manager: Option<&TokenManager>,
    actor: &str,
    owner: &Owner,
    account: Option<String>,
    answer: TokenResponse,
) -> Result<Option<String>, FlowError> {
    let granted = granted(answer);
    let Some(refresh_token) = &granted.refresh_token else {
        return Err(FlowError::Refused {
            said: "the provider issued no refresh token".into(),
            explanation: "Tidings needs one to keep sending: for Microsoft include the offline_access scope; Google issues one with \
                          access_type=offline and prompt=consent, which Tidings asks for."
                .into(),
        });
    };
    app.authorized(owner.key(), actor, Some(refresh_token), account.as_deref()).await?;
    // A device's token manager notices the new authorization at its next use.
    if let (Owner::Relay, Some(manager)) = (owner, manager) {
        manager.authorized(&granted);
    }
    tracing::info!(account = account.as_deref().unwrap_or(""), "OAuth sign-in completed");
    Ok(account)
}

/// A device-code sign-in (RFC 8628) under way: show `shown` to the administrator, then [`DeviceSignIn::finish`].
#[derive(Debug)]
pub struct DeviceSignIn {
    /// The verification URI, the user code, when it expires, and Microsoft's ready-made message.
    pub shown: DeviceAuthorization,
    pub expires_at: chrono::DateTime<chrono::Utc>,
    endpoint: HttpEndpoint,
    owner: Owner,
    /// The mailbox being authorized, as configured when the sign-in started.
    account: Option<String>,
}

/// Starts a device-code sign-in; refuses up front what cannot work (Gmail's scope, a missing endpoint).
pub async fn start_device(app: &App, owner: Owner) -> Result<DeviceSignIn, FlowError> {
    let config = app.current().await?.config;
    let account = owner.account(&config)?;
    authorize::check_device_flow(&config).map_err(|e| FlowError::Unsuitable(e.0))?;
    let url = config.oauth.device_authorization_endpoint.clone().unwrap_or_default();
    let auth = crate::http::client_auth(app, &config).await?;
    let endpoint = HttpEndpoint::new(&config, auth).map_err(|why| FlowError::Unsuitable(why.into()))?;
    let shown: DeviceAuthorization = endpoint
        .post(&url, vec![("scope", config.oauth.scopes.join(" "))])
        .await
        .map_err(|answer| provider_failure(&endpoint, answer))?;
    let expires_at = chrono::Utc::now() + chrono::Duration::seconds(shown.expires_in as i64);
    Ok(DeviceSignIn { shown, expires_at, endpoint, owner, account })
}

impl DeviceSignIn {
    /// Polls the token endpoint at the given interval (5 s when none was given, 5 s more after each
    /// `slow_down`) until the user finishes, declines, or the code expires. Returns the account.
    pub async fn finish(
        self,
        app: &App,
        manager: Option<&TokenManager>,
        actor: &str,
    ) -> Result<Option<String>, FlowError> {
        let mut interval = Duration::from_secs(self.shown.interval.max(1));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(self.shown.expires_in);
        loop {
            tokio::time::sleep(interval).await;
            if tokio::time::Instant::now() >= deadline {
                return Err(FlowError::Refused {
                    said: "expired_token".into(),
                    explanation: "The code expired before the sign-in was finished. Start the device sign-in again."
                        .into(),
                });
            }
            let form = vec![
                ("grant_type", "urn:ietf:params:oauth:grant-type:device_code".to_owned()),
                ("device_code", self.shown.device_code.clone()),
            ];
            match self.endpoint.post::<TokenResponse>(self.endpoint.token_endpoint(), form).await {
                Ok(answer) => return store(app, manager, actor, &self.owner, self.account, answer).await,
                Err(Answer::Provider(error)) => {
                    let explained = explain(self.endpoint.provider(), &error);
                    match explained.verdict {
                        Verdict::Pending | Verdict::Retry => {}
                        Verdict::SlowDown => interval += Duration::from_secs(5),
                        _ => {
                            return Err(FlowError::Refused {
                                said: explained.said,
                                explanation: explained.explanation,
                            });
                        }
                    }
                }
                Err(Answer::Unreachable(why)) => {
                    tracing::warn!(error = %why, "device sign-in: polling failed; trying again")
                }
                Err(Answer::Status(status)) if status >= 500 => {}
                Err(other) => return Err(provider_failure(&self.endpoint, other)),
            }
        }
    }
}

fn provider_failure(endpoint: &HttpEndpoint, answer: Answer) -> FlowError {
    match endpoint.classify(answer) {
        EndpointError::Unavailable(why) => FlowError::Unavailable(why),
        EndpointError::Refused { said, explanation } => FlowError::Refused { said, explanation },
    }
}

/// Authorizes app-only sending with the client-credentials grant: no user signs in; the client's own id and
/// secret are redeemed for each access token. For Microsoft the scope is `https://outlook.office365.com/.default`
/// and a specific tenant is required; an Exchange administrator must have granted the application access to the
/// mailbox (see docs/oauth.md).
pub async fn client_credentials(
    app: &App,
    manager: Option<&TokenManager>,
    actor: &str,
) -> Result<Option<String>, FlowError> {
    let config = app.current().await?.config;
    let auth = crate::http::client_auth(app, &config).await?;
    let confidential = !matches!(auth, crate::http::ClientAuth::Public);
    authorize::check_client_credentials(&config, confidential).map_err(|e| FlowError::Unsuitable(e.0))?;
    let endpoint = HttpEndpoint::new(&config, auth).map_err(|why| FlowError::Unsuitable(why.into()))?;
    let granted = crate::access_tokens::TokenEndpoint::refresh(
        &endpoint,
        &crate::access_tokens::Credential::Client { authorized_at: None },
    )
    .await
    .map_err(|e| match e {
        EndpointError::Unavailable(why) => FlowError::Unavailable(why),
        EndpointError::Refused { said, explanation } => FlowError::Refused { said, explanation },
    })?;
    let account = Owner::Relay.account(&config)?;
    app.authorized(authorization::Owner::Relay, actor, None, account.as_deref()).await?;
    if let Some(manager) = manager {
        manager.authorized(&granted);
    }
    tracing::info!(account = account.as_deref().unwrap_or(""), "app-only (client credentials) authorization completed");
    Ok(account)
}

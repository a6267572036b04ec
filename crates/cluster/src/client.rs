//! A node talking to its primary: joining, then asking for the configuration.

use crate::{
    EPOCH_HEADER, NODE_HEADER, VERSION, VERSION_HEADER,
    protocol::{AccessTokenMessage, Health, JoinAnswer, JoinRequest, Refusal, SnapshotMessage},
    tls,
};
use reqwest::StatusCode;
use std::time::Duration;
use tidings_app::{
    App,
    cipher::SecretKey,
    cluster::{Accepted, bearer},
};
use tidings_core::{
    Invalid,
    cluster::{JoinCode, Role},
};

/// Why talking to the primary failed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// The primary could not be reached (or answered nothing usable): try again.
    #[error("{0}")]
    Unreachable(String),
    /// The primary refused, in its words.
    #[error("the primary refused: {0}")]
    Refused(String),
    /// The primary has no authorization to give (`403`): someone must sign in on it.
    #[error("{0}")]
    Unauthorized(String),
    #[error(transparent)]
    App(#[from] tidings_app::Error),
}

/// The primary, reached at `url` with its pinned certificate.
#[derive(Debug, Clone)]
pub struct Primary {
    http: reqwest::Client,
    url: String,
}

impl Primary {
    /// `url` is the primary's cluster listener (`https://host:port`); `wait` bounds one request (a long poll
    /// waits less than that).
    pub fn new(url: &str, fingerprint: &str, wait: Duration) -> Result<Self, Invalid> {
        let url = url.trim_end_matches('/');
        if !url.starts_with("https://") {
            return Err(Invalid::new(format!("{url:?}: the primary's cluster address is https://HOST:PORT")));
        }
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls::pinned_client(fingerprint)?)
            .no_proxy()
            .connect_timeout(Duration::from_secs(5))
            .timeout(wait)
            .build()
            .map_err(|e| Invalid::new(format!("cannot make the cluster client: {e}")))?;
        Ok(Self { http, url: url.to_owned() })
    }

    pub async fn join(&self, request: &JoinRequest) -> Result<JoinAnswer, ClusterError> {
        let answer =
            self.http.post(format!("{}/cluster/v1/join", self.url)).json(request).send().await.map_err(|e| {
                match unreachable(&self.url, &e) {
                    ClusterError::Unreachable(why) => ClusterError::Unreachable(format!(
                        "{why}. Is the primary's daemon running with --cluster-listen on that address?"
                    )),
                    other => other,
                }
            })?;
        read(answer).await?.ok_or_else(|| ClusterError::Unreachable("the primary answered nothing".into()))
    }

    /// The primary's snapshot once its digest differs from `since` (waiting up to `wait`); `None` when nothing
    /// changed meanwhile.
    pub async fn snapshot(
        &self,
        node: &str,
        epoch: i64,
        key: &SecretKey,
        since: Option<&str>,
        wait: Duration,
    ) -> Result<Option<SnapshotMessage>, ClusterError> {
        let mut query = vec![("wait", wait.as_secs().to_string())];
        if let Some(since) = since {
            query.push(("since", since.to_owned()));
        }
        let answer = self
            .http
            .get(format!("{}/cluster/v1/snapshot", self.url))
            .query(&query)
            .bearer_auth(bearer(key))
            .header(NODE_HEADER, node)
            .header(VERSION_HEADER, VERSION)
            .header(EPOCH_HEADER, epoch.to_string())
            .send()
            .await
            .map_err(|e| unreachable(&self.url, &e))?;
        read(answer).await
    }
}

impl Primary {
    /// An access token the primary holds (the relay account's, or with `mailbox` a device account's own), fresh when
    /// `refresh`; encrypted for this node.
    pub async fn access_token(
        &self,
        node: &str,
        key: &SecretKey,
        mailbox: Option<&str>,
        refresh: bool,
    ) -> Result<AccessTokenMessage, ClusterError> {
        let mut query = vec![("refresh", refresh.to_string())];
        if let Some(account) = mailbox {
            query.push(("mailbox", account.to_owned()));
        }
        let answer = self
            .http
            .get(format!("{}/cluster/v1/access-token", self.url))
            .query(&query)
            .bearer_auth(bearer(key))
            .header(NODE_HEADER, node)
            .header(VERSION_HEADER, VERSION)
            .send()
            .await
            .map_err(|e| unreachable(&self.url, &e))?;
        read(answer).await?.ok_or_else(|| ClusterError::Unreachable("the primary answered nothing".into()))
    }
}

/// Asks the node at `url` (pinned to `fingerprint`) who it is; `wait` bounds the whole exchange.
pub async fn health(url: &str, fingerprint: &str, wait: Duration) -> Result<Health, ClusterError> {
    let node = Primary::new(url, fingerprint, wait)?;
    let answer =
        node.http.get(format!("{}/cluster/v1/health", node.url)).send().await.map_err(|e| unreachable(url, &e))?;
    read(answer).await?.ok_or_else(|| ClusterError::Unreachable(format!("{url} answered nothing")))
}

fn unreachable(url: &str, e: &reqwest::Error) -> ClusterError {
    ClusterError::Unreachable(format!("{url}: {}", tidings_app::error_chain(e)))
}

async fn read<T: serde::de::DeserializeOwned>(answer: reqwest::Response) -> Result<Option<T>, ClusterError> {
    let status = answer.status();
    if status == StatusCode::NO_CONTENT {
        return Ok(None);
    }
    let body = answer.bytes().await.map_err(|e| ClusterError::Unreachable(e.to_string()))?;
    if status.is_success() {
        return serde_json::from_slice(&body)
            .map(Some)
            .map_err(|e| ClusterError::Unreachable(format!("the primary's answer is not understood: {e}")));
    }
    let said = serde_json::from_slice::<Refusal>(&body).map(|r| r.error).unwrap_or_else(|_| format!("HTTP {status}"));
    Err(if status == StatusCode::FORBIDDEN { ClusterError::Unauthorized(said) } else { ClusterError::Refused(said) })
}

/// Joins the primary at `url` with the code `add-node` printed there, as `advertise` (this node's own cluster
/// address). The node must be standalone.
pub async fn join(app: &App, actor: &str, url: &str, code: &str, advertise: &str) -> Result<Accepted, ClusterError> {
    let code = JoinCode::parse(code)?;
    if !advertise.starts_with("https://") {
        return Err(Invalid::new(format!(
            "--advertise {advertise:?}: this node's cluster address is https://HOST:PORT"
        ))
        .into());
    }
    let me = app.membership().await?;
    if me.role != Role::Standalone {
        return Err(Invalid::new(format!(
            "this node is a {} of a cluster already; a node joins one cluster once",
            me.role
        ))
        .into());
    }
    let identity = app.cluster_identity().await?;
    let key = SecretKey::generate();
    let primary = Primary::new(url, &code.fingerprint, Duration::from_secs(30))?;
    let request = JoinRequest {
        name: code.name.clone(),
        code: code.secret.clone(),
        advertise: advertise.to_owned(),
        fingerprint: identity.fingerprint,
        key: key.to_base64().to_string(),
        version: VERSION.to_owned(),
    };
    let accepted = Accepted::try_from(primary.join(&request).await?)?;
    app.joined(actor, &code.name, url.trim_end_matches('/'), &code.fingerprint, &key, &accepted).await?;
    Ok(accepted)
}

//! What the configured relay presents, for an administrator to inspect and pin (`tidings config
//! fetch-certificate`, the web interface's TLS section). Nothing is authenticated or sent.

use crate::{
    engine::looking_at,
    smtp::{Connection, tls::Certificate},
};
use tidings_core::{EmailConfig, Invalid, outbox::Failure};

/// Why the relay's certificates could not be had.
#[derive(Debug, thiserror::Error)]
pub enum NotPresented {
    /// The configuration names no usable relay.
    #[error(transparent)]
    Unusable(#[from] Invalid),
    /// The connection failed; the failure says where and what to do.
    #[error("{}{}", .0.error, .0.explanation.as_ref().map(|x| format!("\n{x}")).unwrap_or_default())]
    Failed(Failure),
    /// The relay finished TLS without a certificate: `host:port`.
    #[error("{0} presented no certificate")]
    NoCertificate(String),
}

/// The relay's certificates, whether or not they would be trusted.
#[derive(Clone, Debug)]
pub struct Presented {
    /// `host:port`.
    pub relay: String,
    /// Its own certificate first, then the rest of the chain it sent.
    pub certificates: Vec<Certificate>,
}

/// Connects to the configured relay (after STARTTLS where configured) and reads its certificates; the error
/// says what went wrong, with its explanation.
pub async fn presented(cfg: &EmailConfig) -> Result<Presented, NotPresented> {
    let settings = looking_at(cfg)?;
    let relay = settings.address();
    let chain =
        Connection::fetch_certificates(&settings).await.map_err(|e| NotPresented::Failed(e.to_failure(&relay)))?;
    let certificates: Vec<Certificate> = chain.iter().filter_map(|der| Certificate::parse(der)).collect();
    if certificates.is_empty() {
        return Err(NotPresented::NoCertificate(relay));
    }
    Ok(Presented { relay, certificates })
}

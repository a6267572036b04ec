//! What the configured relay presents, for an administrator to inspect and pin (`tidings config
//! fetch-certificate`, the web interface's TLS section). Nothing is authenticated or sent.

use crate::{
    engine::looking_at,
    smtp::{Connection, tls::Certificate},
};
use tidings_core::EmailConfig;

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
pub async fn presented(cfg: &EmailConfig) -> Result<Presented, String> {
    let settings = looking_at(cfg)?;
    let relay = settings.address();
    let chain = Connection::fetch_certificates(&settings).await.map_err(|e| {
        let failure = e.to_failure(&relay);
        format!("{}{}", failure.error, failure.explanation.map(|x| format!("\n{x}")).unwrap_or_default())
    })?;
    let certificates: Vec<Certificate> = chain.iter().filter_map(|der| Certificate::parse(der)).collect();
    if certificates.is_empty() {
        return Err(format!("{relay} presented no certificate"));
    }
    Ok(Presented { relay, certificates })
}

//! Serving HTTPS: the certificate chain and key from PEM files (`tidings serve --tls-cert --tls-key`), TLS 1.2
//! and 1.3, and a graceful stop like plain HTTP's.

use axum::{Router, extract::ConnectInfo};
use hyper::server::conn::http1;
use hyper_util::{rt::TokioIo, server::graceful::GracefulShutdown, service::TowerToHyperService};
use rustls::{ServerConfig, crypto::ring};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use std::{path::PathBuf, sync::Arc, time::Duration};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

/// The certificate chain and private key files.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Loads the files into a server configuration; the error names the file and what is wrong.
pub fn server_config(files: &TlsFiles) -> Result<Arc<ServerConfig>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|e| format!("{}: cannot read the certificate chain (PEM): {e}", files.cert.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{}: no certificate found; expected PEM \"BEGIN CERTIFICATE\" blocks",
            files.cert.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| {
        format!("{}: cannot read the private key (PEM, PKCS#8, PKCS#1 or SEC1): {e}", files.key.display())
    })?;
    let config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("{} and {} do not make a usable pair: {e}", files.cert.display(), files.key.display()))?;
    Ok(Arc::new(config))
}

/// Serves `router` over TLS until `shutdown`, then lets requests under way finish (up to 30 s).
pub async fn serve(listener: TcpListener, router: Router, config: Arc<ServerConfig>, shutdown: CancellationToken) {
    let acceptor = TlsAcceptor::from(config);
    let graceful = GracefulShutdown::new();
    // HTTP/1.1 only, as over plain HTTP: a device's admin pages gain nothing from HTTP/2, and leaving it out
    // keeps the binary (most of the daemon's resident memory) smaller.
    let builder = http1::Builder::new();
    loop {
        let (tcp, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(error = %e, "could not accept a connection");
                    continue;
                }
            },
        };
        let acceptor = acceptor.clone();
        // Handlers read the client's address as with plain HTTP.
        let service = TowerToHyperService::new(router.clone().layer(axum::Extension(ConnectInfo(peer))));
        let builder = builder.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => return tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => return tracing::debug!(%peer, "TLS handshake timed out"),
            };
            let connection = builder.serve_connection(TokioIo::new(tls), service);
            if let Err(e) = watcher.watch(connection).await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    if tokio::time::timeout(Duration::from_secs(30), graceful.shutdown()).await.is_err() {
        tracing::warn!("some HTTPS connections were still open after 30 s; closing them");
    }
}

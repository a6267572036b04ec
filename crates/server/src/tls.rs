//! HTTPS: the certificate chain and key from PEM files (`tidings serve --tls-cert --tls-key`), TLS 1.2 and
//! 1.3; `serve.rs` serves over it.

use rustls::ServerConfig;
use std::{path::PathBuf, sync::Arc};

/// The certificate chain and private key files.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Loads the files into a server configuration; the error names the file and what is wrong.
pub fn server_config(files: &TlsFiles) -> Result<Arc<ServerConfig>, tidings_app::tls_files::PairError> {
    tidings_app::tls_files::server_config(&files.cert, &files.key)
}

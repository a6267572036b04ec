//! A TLS server's certificate chain and key from PEM files, for the HTTPS interface and the gateway alike,
//! read with [`crate::files`]' limits and checked to belong together.

use crate::files::{PEM_LIMIT, read_regular};
use rustls::{ServerConfig, crypto::ring};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use std::{path::Path, sync::Arc};

/// Which of the two files is wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Culprit {
    Certificate,
    Key,
    /// Each is readable, but the key is not the certificate's.
    Pair,
}

/// Why the pair is not usable, naming the file and what is wrong with it.
#[derive(Debug, thiserror::Error)]
#[error("{why}")]
pub struct PairError {
    pub culprit: Culprit,
    why: String,
}

fn wrong(culprit: Culprit, why: impl ToString) -> PairError {
    PairError { culprit, why: why.to_string() }
}

/// A server configuration (TLS 1.2 and 1.3) from the chain in `cert` and the key in `key`; the error names the
/// file and what is wrong with it.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, PairError> {
    let (cert_name, key_name) = (cert.display(), key.display());
    let chain_pem = read_regular(cert, PEM_LIMIT).map_err(|e| wrong(Culprit::Certificate, e))?;
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(&chain_pem).collect::<Result<_, _>>().map_err(|e| {
            wrong(Culprit::Certificate, format!("{cert_name}: cannot read the certificate chain (PEM): {e}"))
        })?;
    if chain.is_empty() {
        return Err(wrong(
            Culprit::Certificate,
            format!("{cert_name}: no certificate found; expected PEM \"BEGIN CERTIFICATE\" blocks"),
        ));
    }
    let key_pem = read_regular(key, PEM_LIMIT).map_err(|e| wrong(Culprit::Key, e))?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        wrong(Culprit::Key, format!("{key_name}: cannot read the private key (PEM, PKCS#8, PKCS#1 or SEC1): {e}"))
    })?;
    let config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| wrong(Culprit::Pair, e))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| wrong(Culprit::Pair, format!("{cert_name} and {key_name} do not make a usable pair: {e}")))?;
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_pair_that_does_not_belong_together_or_is_no_pem_is_refused_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let one = rcgen::generate_simple_self_signed(vec!["a.test".to_owned()]).unwrap();
        let two = rcgen::generate_simple_self_signed(vec!["b.test".to_owned()]).unwrap();
        let path = |name: &str, text: String| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        let (cert, key) = (path("cert.pem", one.cert.pem()), path("key.pem", one.key_pair.serialize_pem()));
        let other_key = path("other.pem", two.key_pair.serialize_pem());
        assert!(server_config(&cert, &key).is_ok());
        let mismatch = server_config(&cert, &other_key).unwrap_err();
        assert_eq!(mismatch.culprit, Culprit::Pair);
        let bad_key = server_config(&cert, &cert).unwrap_err();
        assert_eq!(bad_key.culprit, Culprit::Key, "{bad_key}");
        let mismatch = mismatch.to_string();
        assert!(mismatch.contains("do not make a usable pair"), "{mismatch}");
        let passwd = server_config(Path::new("/etc/passwd"), &key).unwrap_err().to_string();
        assert!(passwd.contains("/etc/passwd") && passwd.contains("no certificate"), "{passwd}");
        let device = server_config(Path::new("/dev/zero"), &key).unwrap_err().to_string();
        assert!(device.contains("not a regular file"), "{device}");
    }
}

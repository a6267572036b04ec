//! The OAuth client's own certificate, Microsoft Entra's certificate credential: an RSA key pair made here, whose
//! certificate the administrator uploads to the app registration, and whose key signs each token request's
//! `client_assertion` (RFC 7523, `private_key_jwt`) instead of sending a client secret. Kept as one sealed secret,
//! `oauth.client_certificate`: the certificate's PEM followed by the key's PKCS#8 PEM. Also the other private key
//! Tidings keeps, a Google service account's (`oauth.service_account_key`), and what both have in common: they are
//! checked when stored, leave the node only sealed, and sign JWTs ([`AssertionKey`]).

use crate::{App, Error, Result};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Duration, Utc};
use rustls::{SignatureScheme, crypto::ring::sign::any_supported_type, sign::SigningKey};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, pem::PemObject};
use std::{fmt, sync::Arc};
use tidings_core::{FieldError, ValidationErrors, secret::SecretName, secret::SecretString};

/// How an export carries a private key: sealed with the data directory's key, never in clear.
const SEALED: &str = "sealed:";

/// The bits of a key made here (Entra's minimum is 2048).
const KEY_BITS: usize = 2048;
/// How long an assertion is valid: long enough for a slow token endpoint, short enough not to be worth stealing.
const ASSERTION_LIFETIME: i64 = 600;

/// An RSA private key that signs JWTs with RS256.
#[derive(Clone)]
pub struct AssertionKey(Arc<dyn SigningKey>);

impl fmt::Debug for AssertionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AssertionKey(<redacted>)")
    }
}

impl AssertionKey {
    /// The first private key of `pem`, which must be RSA; the error says what is wrong.
    pub fn from_pem(pem: &str) -> Result<Self, String> {
        let key = PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|_| {
            "the private key cannot be read: expected an RSA key in PEM (-----BEGIN PRIVATE KEY-----)".to_owned()
        })?;
        let key = any_supported_type(&key).map_err(|e| format!("the private key cannot be used: {e}"))?;
        if key.choose_scheme(&[SignatureScheme::RSA_PKCS1_SHA256]).is_none() {
            return Err("the private key is not an RSA key: assertions are signed with RSA (RS256)".into());
        }
        Ok(Self(key))
    }

    /// A JWT of `header` (to which `alg` and `typ` are added) and `claims`, signed RS256.
    pub fn jwt(&self, mut header: serde_json::Value, claims: &serde_json::Value) -> Result<String, String> {
        header["alg"] = "RS256".into();
        header["typ"] = "JWT".into();
        let signing_input =
            format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
        let signer = self.0.choose_scheme(&[SignatureScheme::RSA_PKCS1_SHA256]).ok_or("the key cannot sign RS256")?;
        let signature = signer.sign(signing_input.as_bytes()).map_err(|e| format!("cannot sign the assertion: {e}"))?;
        Ok(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }
}

/// A certificate with its private key, ready to sign assertions.
#[derive(Clone)]
pub struct ClientCertificate {
    /// The certificate as PEM: what the administrator uploads.
    pub pem: String,
    der: Vec<u8>,
    pub subject: String,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
    key: AssertionKey,
}

impl fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCertificate")
            .field("subject", &self.subject)
            .field("not_after", &self.not_after)
            .field("sha1", &self.sha1_thumbprint())
            .finish_non_exhaustive()
    }
}

impl ClientCertificate {
    /// A new RSA key and a self-signed certificate for it named `subject`, valid from now for `days`; with the
    /// bundle to seal.
    pub fn generate(subject: &str, days: u32) -> Result<(Self, SecretString), String> {
        use rsa::pkcs8::EncodePrivateKey;
        let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, KEY_BITS)
            .map_err(|e| format!("cannot make an RSA key: {e}"))?;
        let key_der = key.to_pkcs8_der().map_err(|e| format!("cannot encode the key: {e}"))?;
        let pkcs8 = PrivatePkcs8KeyDer::from(key_der.as_bytes().to_vec());
        let signer = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&pkcs8, &rcgen::PKCS_RSA_SHA256)
            .map_err(|e| format!("cannot use the RSA key: {e}"))?;
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(|e| e.to_string())?;
        params.distinguished_name.push(rcgen::DnType::CommonName, subject);
        let day = |t: DateTime<Utc>| {
            use chrono::Datelike;
            rcgen::date_time_ymd(t.year(), t.month() as u8, t.day() as u8)
        };
        let now = Utc::now();
        params.not_before = day(now - Duration::days(1));
        params.not_after = day(now + Duration::days(i64::from(days)));
        let cert = params.self_signed(&signer).map_err(|e| format!("cannot sign the certificate: {e}"))?;
        let key_pem =
            key.to_pkcs8_pem(rsa::pkcs8::LineEnding::LF).map_err(|e| format!("cannot encode the key: {e}"))?;
        let bundle = SecretString::new(format!("{}{}", cert.pem(), key_pem.as_str()));
        Ok((Self::parse(bundle.expose())?, bundle))
    }

    /// The certificate and key of a bundle (PEM: one certificate, one RSA private key in PKCS#8), checked to
    /// belong together; the error says what is wrong.
    pub fn parse(bundle: &str) -> Result<Self, String> {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(bundle.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| format!("the certificate cannot be read (PEM): {e}"))?;
        let [cert] = &certs[..] else {
            return Err(format!(
                "expected one certificate (-----BEGIN CERTIFICATE-----) followed by its private key, found {} certificates",
                certs.len()
            ));
        };
        let key = AssertionKey::from_pem(bundle)?;
        let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref())
            .map_err(|e| format!("the certificate cannot be read: {e}"))?;
        let time = |t: x509_parser::time::ASN1Time| DateTime::from_timestamp(t.timestamp(), 0).unwrap_or_default();
        let key_matches = key.0.public_key().is_some_and(|k| k.as_ref() == parsed.public_key().raw);
        if !key_matches {
            return Err("the private key is not the certificate's".into());
        }
        Ok(Self {
            pem: pem_of(cert.as_ref()),
            der: cert.as_ref().to_vec(),
            subject: parsed.subject().to_string(),
            not_before: time(parsed.validity().not_before),
            not_after: time(parsed.validity().not_after),
            key,
        })
    }

    /// The SHA-1 thumbprint in hexadecimal, as the Entra admin center lists uploaded certificates.
    pub fn sha1_thumbprint(&self) -> String {
        let digest = ::ring::digest::digest(&::ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &self.der);
        digest.as_ref().iter().map(|b| format!("{b:02X}")).collect()
    }

    /// The SHA-256 thumbprint, base64url: the assertion's `x5t#S256` header.
    pub fn sha256_thumbprint(&self) -> String {
        URL_SAFE_NO_PAD.encode(::ring::digest::digest(&::ring::digest::SHA256, &self.der))
    }

    /// The key that signs for this certificate.
    pub fn key(&self) -> &AssertionKey {
        &self.key
    }

    /// A client assertion for `client_id` at `audience` (the token endpoint posted to), signed RS256.
    pub fn assertion(&self, client_id: &str, audience: &str, now: DateTime<Utc>) -> Result<String, String> {
        let id: [u8; 16] = rand::random();
        let claims = serde_json::json!({
            "aud": audience,
            "iss": client_id,
            "sub": client_id,
            "jti": URL_SAFE_NO_PAD.encode(id),
            "iat": now.timestamp(),
            "nbf": now.timestamp(),
            "exp": now.timestamp() + ASSERTION_LIFETIME,
        });
        self.key.jwt(serde_json::json!({"x5t#S256": self.sha256_thumbprint()}), &claims)
    }
}

impl App {
    /// The OAuth client's certificate, if one was made or imported.
    pub async fn client_certificate(&self) -> Result<Option<ClientCertificate>> {
        let Some(bundle) = self.secret(SecretName::OAuthClientCertificate).await? else { return Ok(None) };
        ClientCertificate::parse(bundle.expose())
            .map(Some)
            .map_err(|why| Error::Input(format!("{}: {why}", SecretName::OAuthClientCertificate)))
    }

    /// The key a Google service account signs with: the one imported from its key file, else the client
    /// certificate's (uploaded to the service account's keys).
    pub async fn service_account_key(&self) -> Result<Option<AssertionKey>> {
        if let Some(pem) = self.secret(SecretName::ServiceAccountKey).await? {
            let key = AssertionKey::from_pem(pem.expose())
                .map_err(|why| Error::Input(format!("{}: {why}", SecretName::ServiceAccountKey)))?;
            return Ok(Some(key));
        }
        Ok(self.client_certificate().await?.map(|c| c.key))
    }

    /// Makes the OAuth client's key pair and certificate (valid `days`), and keeps it sealed. One that exists is
    /// replaced only when `replace` says so: the app registration must then be given the new certificate.
    pub async fn make_client_certificate(&self, actor: &str, days: u32, replace: bool) -> Result<ClientCertificate> {
        self.refuse_to_replace(replace).await?;
        let subject = format!("Tidings {}", crate::host_name().unwrap_or_else(|| "OAuth client".into()));
        let (made, bundle) = ClientCertificate::generate(&subject, days).map_err(Error::Input)?;
        self.keep_client_certificate(actor, "oauth.certificate.create", bundle).await?;
        Ok(made)
    }

    /// Keeps a certificate and RSA key of the organisation's own (PEM, the certificate first), checked to belong
    /// together; one that exists is replaced only when `replace` says so.
    pub async fn import_client_certificate(&self, actor: &str, pem: &str, replace: bool) -> Result<ClientCertificate> {
        let imported = ClientCertificate::parse(pem).map_err(Error::Input)?;
        self.refuse_to_replace(replace).await?;
        self.keep_client_certificate(actor, "oauth.certificate.import", SecretString::new(pem.to_owned())).await?;
        Ok(imported)
    }

    async fn refuse_to_replace(&self, replace: bool) -> Result<()> {
        match self.client_certificate().await? {
            Some(held) if !replace => Err(Error::Conflict(format!(
                "a client certificate exists already (SHA-1 {}, valid until {}); a new one replaces it, and the app \
                 registration must then be given the new certificate before token requests work again: pass --force \
                 to replace it (replace: true in the API)",
                held.sha1_thumbprint(),
                held.not_after.format("%Y-%m-%d")
            ))),
            _ => Ok(()),
        }
    }

    async fn keep_client_certificate(&self, actor: &str, action: &str, bundle: SecretString) -> Result<()> {
        let edits = [(SecretName::OAuthClientCertificate.key().to_owned(), bundle.expose().to_owned())];
        self.save_edits(actor, action, &edits, Vec::new(), true).await.map(|_| ())
    }

    /// A private key's value as an export carries it: sealed with this data directory's key.
    pub(crate) fn private_key_exported(&self, name: SecretName, value: &SecretString) -> String {
        let sealed = self.cipher.seal(name.key(), value.expose());
        format!("{SEALED}{}", base64::engine::general_purpose::STANDARD.encode(sealed))
    }

    /// Edits as the configuration takes them: each private key checked (and opened, when an import carries it
    /// sealed); an error names the field and what is wrong.
    pub(crate) fn private_keys_checked(&self, edits: &[(String, String)]) -> Result<Vec<(String, String)>> {
        let mut checked = edits.to_vec();
        for (key, value) in checked.iter_mut().filter(|(_, v)| !v.is_empty()) {
            let Some(name) = SecretName::from_key(key).filter(|n| n.is_private_key()) else { continue };
            let wrong = |why: String| Error::from(ValidationErrors(vec![FieldError::new(name.key(), why)]));
            if let Some(sealed) = value.strip_prefix(SEALED) {
                let opened = base64::engine::general_purpose::STANDARD
                    .decode(sealed.trim())
                    .ok()
                    .and_then(|bytes| self.cipher.open(name.key(), &bytes).ok())
                    .ok_or_else(|| {
                        wrong(
                            "sealed with another key: import it on a node holding the same secret.key, or make or \
                             import the key anew"
                                .into(),
                        )
                    })?;
                *value = opened.expose().to_owned();
            }
            match name {
                SecretName::OAuthClientCertificate => ClientCertificate::parse(value).map(|_| ()),
                _ => AssertionKey::from_pem(value).map(|_| ()),
            }
            .map_err(wrong)?;
        }
        Ok(checked)
    }
}

fn pem_of(der: &[u8]) -> String {
    let text = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = text.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).unwrap_or_default()).collect();
    format!("-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n", lines.join("\n"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_made_certificate_signs_assertions_its_public_key_verifies() {
        let (made, bundle) = ClientCertificate::generate("Tidings mail.example.com", 730).unwrap();
        assert!(made.pem.starts_with("-----BEGIN CERTIFICATE-----\n") && !made.pem.contains("PRIVATE"));
        assert!(bundle.expose().contains("-----BEGIN PRIVATE KEY-----"));
        assert!(made.subject.contains("Tidings mail.example.com"), "{}", made.subject);
        assert!((made.not_after - Utc::now()).num_days() >= 729, "{}", made.not_after);
        assert_eq!(made.sha1_thumbprint().len(), 40);
        let again = ClientCertificate::parse(bundle.expose()).unwrap();
        assert_eq!(again.sha256_thumbprint(), made.sha256_thumbprint());
        assert!(!format!("{again:?}").contains("PRIVATE"));

        let jwt = made.assertion("client-1", "https://login.example/token", Utc::now()).unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        let header: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(
            (header["alg"].as_str(), header["x5t#S256"].as_str()),
            (Some("RS256"), Some(&*made.sha256_thumbprint()))
        );
        let claims: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(claims["aud"], "https://login.example/token");
        assert_eq!((claims["iss"].as_str(), claims["sub"].as_str()), (Some("client-1"), Some("client-1")));
        let (_, cert) = x509_parser::parse_x509_certificate(&made.der).unwrap();
        let public = ::ring::signature::UnparsedPublicKey::new(
            &::ring::signature::RSA_PKCS1_2048_8192_SHA256,
            cert.public_key().subject_public_key.data.to_vec(),
        );
        let signed = format!("{}.{}", parts[0], parts[1]);
        public.verify(signed.as_bytes(), &URL_SAFE_NO_PAD.decode(parts[2]).unwrap()).unwrap();
    }

    #[test]
    fn a_wrong_bundle_is_refused_saying_what_is_wrong() {
        let (one, one_bundle) = ClientCertificate::generate("one", 30).unwrap();
        let (_, two_bundle) = ClientCertificate::generate("two", 30).unwrap();
        let key_of = |b: &SecretString| b.expose()[b.expose().find("-----BEGIN PRIVATE KEY").unwrap()..].to_owned();
        let mixed = format!("{}{}", one.pem, key_of(&two_bundle));
        assert!(ClientCertificate::parse(&mixed).unwrap_err().contains("not the certificate's"));
        assert!(ClientCertificate::parse(&one.pem).unwrap_err().contains("private key cannot be read"));
        assert!(ClientCertificate::parse(&key_of(&one_bundle)).unwrap_err().contains("found 0 certificates"));
        let ec = rcgen::generate_simple_self_signed(vec!["a.test".to_owned()]).unwrap();
        let ec_bundle = format!("{}{}", ec.cert.pem(), ec.key_pair.serialize_pem());
        assert!(ClientCertificate::parse(&ec_bundle).unwrap_err().contains("not an RSA key"));
    }
}

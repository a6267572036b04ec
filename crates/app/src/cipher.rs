//! Sealing secrets at rest: XChaCha20-Poly1305 with the data directory's 256-bit key.
//!
//! A sealed secret is `1 || nonce (24 bytes) || ciphertext+tag`. The secret's name is bound in as associated
//! data, so a sealed value cannot be moved to another name. A key check value stored in the database tells a
//! wrong key apart from damaged data before anything is decrypted.

use crate::{Error, Result};
use base64::{Engine, engine::general_purpose::STANDARD};
use chacha20poly1305::{
    XChaCha20Poly1305, XNonce,
    aead::{Aead, KeyInit, OsRng, Payload, rand_core::RngCore},
};
use std::fmt;
use tidings_core::secret::SecretString;
use zeroize::Zeroizing;

const VERSION: u8 = 1;
const NONCE_LEN: usize = 24;
pub const KEY_LEN: usize = 32;
const KEY_CHECK_NAME: &str = "tidings.key-check";
const KEY_CHECK_TEXT: &str = "tidings key check";

/// The data directory's secret key.
#[derive(Clone)]
pub struct SecretKey(Zeroizing<[u8; KEY_LEN]>);

impl SecretKey {
    pub fn generate() -> Self {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        OsRng.fill_bytes(key.as_mut());
        Self(key)
    }

    /// Reads a key written as base64 (the key file's format, and `TIDINGS_SECRET_KEY`'s).
    pub fn from_base64(text: &str, origin: &str) -> Result<Self> {
        let bytes = Zeroizing::new(STANDARD.decode(text.trim()).map_err(|_| {
            Error::Key(format!(
                "{origin} is not base64; a key is 32 random bytes in base64 (`openssl rand -base64 32`)"
            ))
        })?);
        let key: [u8; KEY_LEN] = bytes.as_slice().try_into().map_err(|_| {
            Error::Key(format!("{origin} holds {} bytes; a key is exactly {KEY_LEN} bytes in base64", bytes.len()))
        })?;
        Ok(Self(Zeroizing::new(key)))
    }

    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(STANDARD.encode(self.0.as_ref()))
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

/// Seals and opens secrets with one key.
pub struct Cipher {
    aead: XChaCha20Poly1305,
}

impl fmt::Debug for Cipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Cipher")
    }
}

impl Cipher {
    pub fn new(key: &SecretKey) -> Self {
        Self { aead: XChaCha20Poly1305::new(key.0.as_ref().into()) }
    }

    /// Encrypts `plaintext`, bound to `name`.
    pub fn seal(&self, name: &str, plaintext: &str) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        OsRng.fill_bytes(&mut nonce);
        let ciphertext = self
            .aead
            .encrypt(XNonce::from_slice(&nonce), Payload { msg: plaintext.as_bytes(), aad: aad(name).as_bytes() })
            .expect("XChaCha20-Poly1305 encryption cannot fail for in-memory buffers");
        let mut sealed = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len());
        sealed.push(VERSION);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ciphertext);
        sealed
    }

    /// Decrypts a value sealed under `name`.
    pub fn open(&self, name: &str, sealed: &[u8]) -> Result<SecretString> {
        let damaged = || {
            Error::Key(format!(
                "the stored secret {name} cannot be decrypted: it was sealed with another key, or is damaged"
            ))
        };
        if sealed.len() < 1 + NONCE_LEN || sealed[0] != VERSION {
            return Err(damaged());
        }
        let (nonce, ciphertext) = sealed[1..].split_at(NONCE_LEN);
        let plain = Zeroizing::new(
            self.aead
                .decrypt(XNonce::from_slice(nonce), Payload { msg: ciphertext, aad: aad(name).as_bytes() })
                .map_err(|_| damaged())?,
        );
        let text = String::from_utf8(plain.to_vec()).map_err(|_| damaged())?;
        Ok(SecretString::new(text))
    }

    /// A value to store once, proving later which key the data directory's secrets were sealed with.
    pub fn key_check(&self) -> String {
        STANDARD.encode(self.seal(KEY_CHECK_NAME, KEY_CHECK_TEXT))
    }

    /// Whether this cipher's key is the one that made `stored` (a [`Cipher::key_check`] value).
    pub fn matches_key_check(&self, stored: &str) -> bool {
        STANDARD
            .decode(stored)
            .ok()
            .and_then(|sealed| self.open(KEY_CHECK_NAME, &sealed).ok())
            .is_some_and(|text| text.expose() == KEY_CHECK_TEXT)
    }
}

fn aad(name: &str) -> String {
    format!("tidings:{name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_and_open_round_trip_and_hide_the_plaintext() {
        let cipher = Cipher::new(&SecretKey::generate());
        let sealed = cipher.seal("smtp.password", "correct horse battery staple");
        assert!(!sealed.windows(7).any(|w| w == b"correct"));
        assert_eq!(cipher.open("smtp.password", &sealed).unwrap().expose(), "correct horse battery staple");
        assert_ne!(sealed, cipher.seal("smtp.password", "correct horse battery staple"), "fresh nonce every time");
    }

    #[test]
    fn a_sealed_value_is_bound_to_its_name_and_key() {
        let cipher = Cipher::new(&SecretKey::generate());
        let sealed = cipher.seal("smtp.password", "x");
        assert!(cipher.open("oauth.client_secret", &sealed).is_err());
        assert!(Cipher::new(&SecretKey::generate()).open("smtp.password", &sealed).is_err());
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(cipher.open("smtp.password", &tampered).is_err());
        assert!(cipher.open("smtp.password", &[1, 2, 3]).is_err());
    }

    #[test]
    fn key_check_tells_keys_apart() {
        let key = SecretKey::generate();
        let check = Cipher::new(&key).key_check();
        assert!(Cipher::new(&key).matches_key_check(&check));
        assert!(!Cipher::new(&SecretKey::generate()).matches_key_check(&check));
        assert!(!Cipher::new(&key).matches_key_check("garbage"));
    }

    #[test]
    fn keys_in_base64() {
        let key = SecretKey::generate();
        let again = SecretKey::from_base64(&key.to_base64(), "test").unwrap();
        assert_eq!(key.0.as_ref(), again.0.as_ref());
        assert!(
            SecretKey::from_base64("not base64!", "TIDINGS_SECRET_KEY")
                .unwrap_err()
                .to_string()
                .contains("TIDINGS_SECRET_KEY is not base64")
        );
        assert!(SecretKey::from_base64("c2hvcnQ=", "the key file").unwrap_err().to_string().contains("5 bytes"));
        assert!(!format!("{key:?}").contains(&*key.to_base64()));
    }
}

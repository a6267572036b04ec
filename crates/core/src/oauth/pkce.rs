//! PKCE (RFC 7636) with S256, and the `state` that ties a redirect to the request that caused it.
//!
//! Values are made from random bytes the caller supplies (from the operating system's generator), so that
//! this module stays pure and testable with the RFC's own example.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};

/// A code verifier: 32 random bytes in base64url, 43 characters (RFC 7636 §4.1 asks for 43 to 128).
pub fn verifier(random: &[u8; 32]) -> String {
    URL_SAFE_NO_PAD.encode(random)
}

/// The S256 challenge of a verifier: `BASE64URL(SHA256(verifier))`.
pub fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// A `state` value: 16 random bytes in base64url.
pub fn state(random: &[u8; 16]) -> String {
    URL_SAFE_NO_PAD.encode(random)
}

/// Compares a returned `state` with the expected one without leaking, through timing, how much matched.
pub fn state_matches(expected: &str, returned: &str) -> bool {
    expected.len() == returned.len()
        && expected.bytes().zip(returned.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_7636_appendix_b_example() {
        // The RFC's verifier and its S256 challenge.
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        assert_eq!(challenge(verifier), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
    }

    #[test]
    fn verifiers_are_43_unreserved_characters() {
        let v = verifier(&[0xAB; 32]);
        assert_eq!(v.len(), 43);
        assert!(v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        assert_ne!(v, verifier(&[0xAC; 32]));
    }

    #[test]
    fn state_comparison() {
        let s = state(&[7; 16]);
        assert!(state_matches(&s, &s.clone()));
        assert!(!state_matches(&s, &state(&[8; 16])));
        assert!(!state_matches(&s, ""));
    }
}

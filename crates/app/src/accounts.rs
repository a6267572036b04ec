//! Sign-in accounts: creating them with argon2id-hashed passwords, and generating first passwords.

use crate::{App, Error, Result};
use argon2::{
    Algorithm, Argon2, Block, Params, PasswordHash, PasswordHasher, Version,
    password_hash::{SaltString, rand_core::OsRng},
};
use rand::{Rng, distributions::Slice};
use tidings_core::{
    account::{self, Role},
    audit::NewAuditEntry,
    secret::SecretString,
};
use tidings_store::Account;

/// Letters and digits that cannot be mistaken for one another when read aloud or copied by hand.
const ALPHABET: &[char] = &[
    'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'j', 'k', 'm', 'n', 'p', 'q', 'r', 's', 't', 'u', 'v', 'w', 'x', 'y', 'z',
    'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'J', 'K', 'L', 'M', 'N', 'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X', 'Y',
    'Z', '2', '3', '4', '5', '6', '7', '8', '9',
];

/// A random password of 20 characters (about 114 bits).
pub fn generate_password() -> SecretString {
    let dist = Slice::new(ALPHABET).expect("the alphabet is not empty");
    SecretString::new(rand::rngs::OsRng.sample_iter(dist).take(20).collect::<String>())
}

/// A hash to check against when the name is unknown, so that the answer takes as long either way: argon2id
/// with the parameters of [`hash_password`], of a random password nobody kept (whatever it matches, an unknown
/// name is refused). A constant, so that no process computes (and allocates) a hash for it.
pub const DECOY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$o7zGBm/Avgo9bRXkIcE1Hg$8/xH1ePEZS6zl2QPFkFUuxB56+s30mu31eV6rKxRWYY";

/// Hashes a password with argon2id and a fresh salt.
pub fn hash_password(password: &SecretString) -> Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.expose().as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| Error::Input(format!("cannot hash the password: {e}")))
}

/// Whether `password` matches a stored hash, computed in `blocks`: grown to the hash's memory cost and kept by
/// the caller for the next check, so that checks reuse one buffer instead of allocating (and the allocator
/// keeping) 19 MB each time.
pub fn verify_password_in(password: &SecretString, hash: &str, blocks: &mut Vec<Block>) -> bool {
    let Ok(parsed) = PasswordHash::new(hash) else { return false };
    let (Ok(algorithm), Some(salt), Some(expected)) = (Algorithm::try_from(parsed.algorithm), parsed.salt, parsed.hash)
    else {
        return false;
    };
    let (Ok(version), Ok(params)) =
        (parsed.version.map(Version::try_from).transpose().map(Option::unwrap_or_default), Params::try_from(&parsed))
    else {
        return false;
    };
    let mut salt_bytes = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else { return false };
    blocks.resize(params.block_count(), Block::default());
    let mut out = vec![0u8; expected.len()];
    Argon2::new(algorithm, version, params)
        .hash_password_into_with_memory(password.expose().as_bytes(), salt, &mut out, &mut blocks[..])
        .is_ok()
        && argon2::password_hash::Output::new(&out).is_ok_and(|computed| computed == expected)
}

impl App {
    /// Creates an account, checking the name and password first.
    pub async fn create_account(
        &self,
        actor: &str,
        username: &str,
        password: &SecretString,
        role: Role,
    ) -> Result<i64> {
        self.refuse_on_follower().await?;
        account::validate_username(username).map_err(|why| Error::Input(format!("user name {username:?}: {why}")))?;
        account::validate_password(password.expose()).map_err(|why| Error::Input(format!("password: {why}")))?;
        let new =
            tidings_store::NewAccount { username: username.to_owned(), password_hash: hash_password(password)?, role };
        let audit = NewAuditEntry {
            actor: actor.to_owned(),
            action: "account.create".into(),
            fields: vec![username.to_owned(), role.to_string()],
        };
        Ok(self.store.create_account(&new, &audit).await?)
    }

    pub async fn accounts(&self) -> Result<Vec<Account>> {
        Ok(self.store.accounts().await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_passwords_are_long_random_and_unambiguous() {
        let (a, b) = (generate_password(), generate_password());
        assert_eq!(a.expose().len(), 20);
        assert_ne!(a, b);
        assert!(a.expose().chars().all(|c| ALPHABET.contains(&c)));
        assert!(account::validate_password(a.expose()).is_ok());
    }

    #[test]
    fn the_decoy_has_the_parameters_of_a_new_hash() {
        let new = hash_password(&SecretString::new("a long enough password")).unwrap_or_default();
        let params = |h: &str| h.split('$').take(4).collect::<Vec<_>>().join("$");
        assert_eq!(params(DECOY_HASH), params(&new), "a decoy must cost what a real check costs");
        assert!(!verify_password_in(&SecretString::new("a long enough password"), DECOY_HASH, &mut Vec::new()));
    }

    #[test]
    fn hashes_verify_only_their_password() {
        let password = SecretString::new("a long enough password");
        let hash = hash_password(&password).unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(!hash.contains("a long enough password"));
        let mut blocks = Vec::new();
        assert!(verify_password_in(&password, &hash, &mut blocks));
        assert_eq!(blocks.len(), 19 * 1024, "argon2id's default memory cost, in 1 KiB blocks, kept for the next");
        assert!(!verify_password_in(&SecretString::new("another password"), &hash, &mut blocks));
        assert!(!verify_password_in(&password, "not a hash", &mut blocks));
    }
}

//! Sign-in accounts: creating them with argon2id-hashed passwords, and generating first passwords.

use crate::{App, Error, Result};
use argon2::{
    Argon2, PasswordHash, PasswordHasher, PasswordVerifier,
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

/// Hashes a password with argon2id and a fresh salt.
pub fn hash_password(password: &SecretString) -> Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.expose().as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| Error::Input(format!("cannot hash the password: {e}")))
}

/// Whether `password` matches a stored hash.
pub fn verify_password(password: &SecretString, hash: &str) -> bool {
    PasswordHash::new(hash)
        .is_ok_and(|parsed| Argon2::default().verify_password(password.expose().as_bytes(), &parsed).is_ok())
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
    fn hashes_verify_only_their_password() {
        let password = SecretString::new("a long enough password");
        let hash = hash_password(&password).unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(!hash.contains("a long enough password"));
        assert!(verify_password(&password, &hash));
        assert!(!verify_password(&SecretString::new("another password"), &hash));
        assert!(!verify_password(&password, "not a hash"));
    }
}

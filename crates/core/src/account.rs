//! Accounts: the roles an account can hold and what a valid user name is.

use crate::Invalid;
use serde::{Deserialize, Serialize};
use std::{fmt, str::FromStr};

/// What an account may do. Changing the email or OAuth configuration needs `Administrator` or
/// `NetworkAdministrator`, as on the appliances Tidings serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything, including accounts and API tokens.
    Administrator,
    /// The email configuration, OAuth and the queue.
    NetworkAdministrator,
    /// Read-only.
    Viewer,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Administrator, Role::NetworkAdministrator, Role::Viewer];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Administrator => "administrator",
            Role::NetworkAdministrator => "network_administrator",
            Role::Viewer => "viewer",
        }
    }

    /// Whether this role may change the email configuration and OAuth settings.
    pub fn may_configure_email(self) -> bool {
        matches!(self, Role::Administrator | Role::NetworkAdministrator)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = Invalid;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL.into_iter().find(|role| role.as_str() == s).ok_or_else(|| {
            Invalid::new(format!("unknown role {s:?}: expected administrator, network_administrator or viewer"))
        })
    }
}

/// Checks a user name: 1 to 64 characters of letters, digits, `.`, `_`, `-` and `@`.
pub fn validate_username(name: &str) -> Result<(), Invalid> {
    if name.is_empty() || name.len() > 64 {
        return Err("a user name has 1 to 64 characters".into());
    }
    if let Some(bad) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))) {
        return Err(format!("a user name may hold letters, digits, '.', '_', '-' and '@', not {bad:?}").into());
    }
    Ok(())
}

/// A name as given at a sign-in, fit for the audit log: a valid user name as it is, anything else quoted with
/// its control characters escaped and cut to 64 characters, so that no input forges a line or a terminal
/// sequence.
pub fn shown_name(name: &str) -> String {
    if validate_username(name).is_ok() {
        return name.to_owned();
    }
    let cut: String = name.chars().take(64).collect();
    let more = if cut.len() < name.len() { "…" } else { "" };
    format!("{:?}{more}", cut)
}

/// The shortest password Tidings accepts for an account.
pub const MIN_PASSWORD_LEN: usize = 12;

/// Checks an account password's length (the only rule that does not annoy people into worse passwords).
pub fn validate_password(password: &str) -> Result<(), Invalid> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(format!("a password needs at least {MIN_PASSWORD_LEN} characters").into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_given_at_sign_in_is_shown_escaped_and_cut() {
        assert_eq!(shown_name("jane.doe"), "jane.doe");
        assert_eq!(shown_name("x\n2026-01-01 forged\u{1b}[2J"), "\"x\\n2026-01-01 forged\\u{1b}[2J\"");
        let long = shown_name(&"é".repeat(100_000));
        assert!(long.chars().count() < 70 && long.ends_with('…'), "{long}");
    }

    #[test]
    fn roles_parse_and_print() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
        }
        assert!("root".parse::<Role>().unwrap_err().reason().contains("administrator"));
        assert!(Role::NetworkAdministrator.may_configure_email());
        assert!(!Role::Viewer.may_configure_email());
    }

    #[test]
    fn usernames() {
        assert!(validate_username("admin").is_ok());
        assert!(validate_username("jane.doe@example.com").is_ok());
        assert!(validate_username("").is_err());
        assert!(validate_username("has space").unwrap_err().reason().contains("' '"));
        assert!(validate_username(&"a".repeat(65)).is_err());
    }

    #[test]
    fn passwords() {
        assert!(validate_password("short").is_err());
        assert!(validate_password("twelve chars").is_ok());
    }
}

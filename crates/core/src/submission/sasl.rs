//! SASL PLAIN (RFC 4616) and LOGIN payloads, base64 as SMTP carries them.

use base64::{Engine, engine::general_purpose::STANDARD};

/// The LOGIN mechanism's prompts, base64 of `Username:` and `Password:`.
pub const LOGIN_USERNAME: &str = "VXNlcm5hbWU6";
pub const LOGIN_PASSWORD: &str = "UGFzc3dvcmQ6";

/// Decodes a base64 line; `*` (the client cancelling) and bad base64 are errors.
pub fn decode(line: &str) -> Result<Vec<u8>, &'static str> {
    if line.trim() == "*" {
        return Err("authentication cancelled");
    }
    STANDARD.decode(line.trim()).map_err(|_| "the answer is not base64")
}

/// PLAIN's `authzid NUL authcid NUL password`: the user name and password. An authorization identity other
/// than the user's is refused (no proxy authorization).
pub fn plain(decoded: &[u8]) -> Result<(String, String), &'static str> {
    let mut parts = decoded.split(|b| *b == 0);
    let (Some(authz), Some(user), Some(password), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("malformed PLAIN answer");
    };
    let text = |b: &[u8]| String::from_utf8(b.to_vec()).map_err(|_| "the user name and password must be UTF-8");
    let (authz, user, password) = (text(authz)?, text(user)?, text(password)?);
    if !authz.is_empty() && authz != user {
        return Err("acting for another user is not allowed");
    }
    if user.is_empty() {
        return Err("empty user name");
    }
    Ok((user, password))
}

/// One LOGIN answer as text.
pub fn login_part(decoded: &[u8]) -> Result<String, &'static str> {
    String::from_utf8(decoded.to_vec()).map_err(|_| "the user name and password must be UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_login() {
        assert_eq!(plain(b"\0scanner\0secret"), Ok(("scanner".into(), "secret".into())));
        assert_eq!(plain(b"scanner\0scanner\0secret"), Ok(("scanner".into(), "secret".into())));
        assert!(plain(b"admin\0scanner\0secret").is_err());
        assert!(plain(b"scanner\0secret").is_err());
        assert_eq!(decode("AHNjYW5uZXIAc2VjcmV0").map(|d| plain(&d)), Ok(Ok(("scanner".into(), "secret".into()))));
        assert!(decode("*").is_err() && decode("!!").is_err());
        assert_eq!(STANDARD.decode(LOGIN_USERNAME).unwrap_or_default(), b"Username:");
    }
}

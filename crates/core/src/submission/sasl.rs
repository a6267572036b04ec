//! SASL PLAIN (RFC 4616) and LOGIN: their payloads, base64 as SMTP carries them, and the exchange that asks for
//! them one answer at a time ([`Exchange`]); the gateway only sends the prompts and reads the answers.

use super::{reply::Reply, session::Mechanism};
use base64::{Engine, engine::general_purpose::STANDARD};

/// What comes next in an exchange.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Next {
    /// Send `334 PROMPT` and give the client's answer to [`Exchange::answer`].
    Ask(&'static str),
    Done {
        user: String,
        password: String,
    },
    /// The exchange failed; the reply says why.
    Refused(Reply),
}

/// An authentication exchange under way.
#[derive(Debug)]
pub struct Exchange {
    mechanism: Mechanism,
    /// LOGIN's user name, once given.
    user: Option<String>,
}

impl Exchange {
    /// Starts an exchange with the `AUTH` command's initial response, if any (`=` is an empty one).
    pub fn start(mechanism: Mechanism, initial: Option<&str>) -> (Self, Next) {
        let mut exchange = Exchange { mechanism, user: None };
        let next = match (mechanism, initial) {
            (Mechanism::Plain, Some("=")) => exchange.plain(Ok(Vec::new())),
            (Mechanism::Plain, Some(text)) => exchange.answer(text),
            (Mechanism::Plain, None) => Next::Ask(""),
            (Mechanism::Login, Some(text)) => exchange.answer(text),
            (Mechanism::Login, None) => Next::Ask(LOGIN_USERNAME),
        };
        (exchange, next)
    }

    /// Takes the client's answer to the last prompt.
    pub fn answer(&mut self, line: &str) -> Next {
        let decoded = decode(line);
        match self.mechanism {
            Mechanism::Plain => self.plain(decoded),
            Mechanism::Login => match (decoded.and_then(|d| login_part(&d)), self.user.take()) {
                (Err(why), _) => refused(why),
                (Ok(user), None) => {
                    self.user = Some(user);
                    Next::Ask(LOGIN_PASSWORD)
                }
                (Ok(password), Some(user)) => Next::Done { user, password },
            },
        }
    }

    fn plain(&self, decoded: Result<Vec<u8>, &'static str>) -> Next {
        match decoded.and_then(|d| plain(&d)) {
            Ok((user, password)) => Next::Done { user, password },
            Err(why) => refused(why),
        }
    }
}

fn refused(why: &str) -> Next {
    Next::Refused(Reply::new(501, "5.5.2", why))
}

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

    fn done(user: &str, password: &str) -> Next {
        Next::Done { user: user.into(), password: password.into() }
    }

    #[test]
    fn exchanges_ask_one_answer_at_a_time() {
        let secret = STANDARD.encode("\0scanner\0secret");
        assert_eq!(Exchange::start(Mechanism::Plain, Some(&secret)).1, done("scanner", "secret"), "initial response");
        let (mut plain, next) = Exchange::start(Mechanism::Plain, None);
        assert_eq!(next, Next::Ask(""));
        assert_eq!(plain.answer(&secret), done("scanner", "secret"));
        assert!(matches!(Exchange::start(Mechanism::Plain, Some("=")).1, Next::Refused(r) if r.code == 501));

        let (mut login, next) = Exchange::start(Mechanism::Login, None);
        assert_eq!(next, Next::Ask(LOGIN_USERNAME));
        assert_eq!(login.answer(&STANDARD.encode("scanner")), Next::Ask(LOGIN_PASSWORD));
        assert_eq!(login.answer(&STANDARD.encode("secret")), done("scanner", "secret"));
        let (mut login, next) = Exchange::start(Mechanism::Login, Some(&STANDARD.encode("scanner")));
        assert_eq!(next, Next::Ask(LOGIN_PASSWORD), "the user name as initial response");
        assert!(matches!(login.answer("*"), Next::Refused(r) if r.lines[0].contains("cancelled")));
    }
}

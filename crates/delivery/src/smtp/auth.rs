//! SASL over SMTP: PLAIN and LOGIN for passwords, XOAUTH2 for OAuth access tokens.
//!
//! Credentials are never logged. An initial response that would make the command line longer than 512
//! octets (RFC 5321's command limit, which Microsoft's relays enforce and Microsoft's tokens exceed) is sent
//! after the server's `334` instead.

use super::{
    error::{ErrorKind, SmtpError},
    wire::Wire,
};
use base64::{Engine, engine::general_purpose::STANDARD};
use tidings_core::{outbox::reply::Stage, secret::SecretString};
use zeroize::Zeroizing;

/// The longest command line, CRLF excluded.
const MAX_COMMAND: usize = 510;

/// Authenticates with a password: PLAIN if offered, else LOGIN.
pub(crate) async fn password(
    wire: &mut Wire,
    offered: &[String],
    username: &str,
    password: &SecretString,
) -> Result<(), SmtpError> {
    if offered.iter().any(|m| m == "PLAIN") {
        let raw = Zeroizing::new(format!("\0{username}\0{}", password.expose()));
        let blob = Zeroizing::new(STANDARD.encode(raw.as_bytes()));
        return initial_response(wire, "PLAIN", &blob).await;
    }
    if offered.iter().any(|m| m == "LOGIN") {
        expect(wire.command(Stage::Auth, "AUTH LOGIN").await?, 334)?;
        expect(wire.command(Stage::Auth, &STANDARD.encode(username)).await?, 334)?;
        let blob = Zeroizing::new(STANDARD.encode(password.expose()));
        return expect(wire.command(Stage::Auth, &blob).await?, 235);
    }
    Err(unavailable(offered, "PLAIN or LOGIN (for smtp.auth=password)"))
}

/// Authenticates with XOAUTH2. Gmail's refusal (`334 <base64 JSON>`) is answered with an empty line, as the
/// mechanism requires, and reported with its JSON status.
pub(crate) async fn xoauth2(
    wire: &mut Wire,
    offered: &[String],
    user: &str,
    token: &SecretString,
) -> Result<(), SmtpError> {
    if !offered.iter().any(|m| m == "XOAUTH2") {
        return Err(unavailable(offered, "XOAUTH2 (for smtp.auth=oauth2)"));
    }
    let raw = Zeroizing::new(format!("user={user}\x01auth=Bearer {}\x01\x01", token.expose()));
    let blob = Zeroizing::new(STANDARD.encode(raw.as_bytes()));
    let reply = if "AUTH XOAUTH2 ".len() + blob.len() <= MAX_COMMAND {
        wire.command(Stage::Auth, &Zeroizing::new(format!("AUTH XOAUTH2 {}", blob.as_str()))).await?
    } else {
        expect(wire.command(Stage::Auth, "AUTH XOAUTH2").await?, 334)?;
        wire.command(Stage::Auth, &blob).await?
    };
    if reply.code == 334 {
        // The server's error status, then it waits for an empty response before the final reply.
        let status = STANDARD
            .decode(reply.text.trim())
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .unwrap_or_else(|| reply.text.clone());
        let final_reply = wire.command(Stage::Auth, "").await?;
        let mut error = SmtpError::refused(Stage::Auth, final_reply);
        error.xoauth2_status = Some(status);
        return Err(error);
    }
    expect(reply, 235)
}

async fn initial_response(wire: &mut Wire, mechanism: &str, blob: &str) -> Result<(), SmtpError> {
    let reply = if "AUTH  ".len() + mechanism.len() + blob.len() <= MAX_COMMAND {
        wire.command(Stage::Auth, &Zeroizing::new(format!("AUTH {mechanism} {blob}"))).await?
    } else {
        expect(wire.command(Stage::Auth, &format!("AUTH {mechanism}")).await?, 334)?;
        wire.command(Stage::Auth, blob).await?
    };
    expect(reply, 235)
}

fn expect(reply: tidings_core::outbox::reply::Reply, code: u16) -> Result<(), SmtpError> {
    if reply.code == code { Ok(()) } else { Err(SmtpError::refused(Stage::Auth, reply)) }
}

fn unavailable(offered: &[String], wanted: &str) -> SmtpError {
    let offers =
        if offered.is_empty() { "no authentication at all".to_owned() } else { format!("AUTH {}", offered.join(" ")) };
    SmtpError::new(
        Stage::Auth,
        ErrorKind::AuthUnavailable(format!("the relay offers {offers}; Tidings needs {wanted}")),
    )
}

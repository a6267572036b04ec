//! What known provider replies mean, and what an administrator should do about them. Shown beside the raw
//! reply in the delivery log; the raw reply is always kept.

use super::reply::{Reply, Stage};

/// A failure's evidence: the reply, where it came, and the JSON status a server sent during XOAUTH2 (Gmail
/// sends `334 <base64 JSON>` before refusing).
#[derive(Clone, Copy, Debug)]
pub struct Evidence<'a> {
    pub stage: Stage,
    pub reply: Option<&'a Reply>,
    pub xoauth2_status: Option<&'a str>,
}

/// The explanation of a recipient's refusal, from its kept reply (`550 5.1.1 …`), when Tidings knows one.
pub fn explain_refusal(shown: &str) -> Option<String> {
    let reply = Reply::parse_shown(shown)?;
    explain(Evidence { stage: Stage::RcptTo, reply: Some(&reply), xoauth2_status: None })
}

/// The explanation for a failure, when Tidings knows one.
pub fn explain(evidence: Evidence<'_>) -> Option<String> {
    if let Some(json) = evidence.xoauth2_status {
        return Some(explain_xoauth2_status(json));
    }
    let reply = evidence.reply?;
    let enhanced = reply.enhanced.as_deref().unwrap_or("");
    let text = reply.text.to_ascii_lowercase();
    let known: &str = match (reply.code, enhanced) {
        (535, "5.7.139") => {
            "Microsoft 365 refused authentication because SMTP AUTH is disabled for the tenant or this mailbox. \
             Enable Authenticated SMTP in the Microsoft 365 admin center: Users > Active users > the mailbox > Mail > \
             Manage email apps > Authenticated SMTP (and check that security defaults do not block it)."
        }
        (535, "5.7.3") => {
            "Microsoft 365 did not accept the account or its credentials. Check that the user (oauth.account, or \
             smtp.username) is the mailbox's full address and that the password or authorization belongs to it."
        }
        (501, "5.5.124") | (501, "5.5.2") if evidence.stage == Stage::Auth => {
            "The user name sent with XOAUTH2 is not the address of the mailbox the token was issued for. Set \
             oauth.account to the mailbox's primary address (or leave it empty to use the sender)."
        }
        (432, "4.3.2") => {
            "Exchange Online allows 3 connections at once per mailbox (sender thread limit). Tidings keeps to it \
             when delivery.identity_connections is 3 (the Microsoft default); something else sending as the same \
             mailbox at the same time also counts. The mailbox waits and is tried again."
        }
        (554 | 550, "5.2.0") if text.contains("submissionquotaexceeded") => {
            "The mailbox reached Exchange Online's limit of recipients a day (10,000) and is locked for up to 24 \
             hours. Messages wait, they are not refused. Keep under it with delivery.identity_recipients_per_day, \
             or spread the mail over several mailboxes."
        }
        (_, "5.5.127") => {
            "The access token had too little time left (Microsoft's High Volume Email wants at least 10 minutes). \
             Tidings refreshes the token and retries; it refreshes ahead of expiry on its own."
        }
        (552, "5.2.2") => {
            "The mailbox is over its storage quota (Exchange counts the Sent Items a relayed message leaves \
             behind). Make room in the mailbox or raise its quota."
        }
        (554, "5.2.252") | (550, "5.7.60") => {
            "The account is not allowed to send as the From address. Set sender to the authenticated mailbox's own \
             address, or have an Exchange administrator grant that mailbox Send As permission for the sender."
        }
        (550, "5.7.30") | (535, "5.7.30") => {
            "Basic authentication (user name and password) is no longer supported by this tenant. Switch to OAuth2: \
             smtp.auth=oauth2 with a registered application (see docs/providers.md)."
        }
        (534, "5.7.9") => {
            "Gmail requires an application-specific password for this account (2-Step Verification is on). Create an \
             app password in the Google account's security settings, or better, switch to OAuth2."
        }
        (535, "5.7.8") if text.contains("username and password not accepted") => {
            "Gmail did not accept the user name and password. Google no longer allows plain passwords for most \
             accounts: use an app password or switch to OAuth2."
        }
        (530, "5.7.0") if text.contains("starttls") => {
            "The relay requires encryption before anything else. Set smtp.encryption=starttls (port 587) or tls \
             (port 465)."
        }
        (530, _) | (_, "5.7.57") => {
            "The relay requires authentication before accepting mail. Set smtp.auth to password or oauth2."
        }
        (421, _) | (451, "4.7.500") | (452, "4.5.3") if text.contains("too many") || text.contains("throttl") => {
            "The relay is throttling Tidings (too many connections or messages). Tidings retries later; if it \
             persists, lower delivery.connections."
        }
        (552, _) | (_, "5.3.4") => {
            "The message is larger than the relay accepts. Lower delivery.max_message_size to the relay's limit \
             and send smaller messages."
        }
        (550, "5.1.1") | (550, "5.1.10") | (550, "5.4.1") => {
            "The recipient's address does not exist at its domain. Correct the address."
        }
        _ => return None,
    };
    Some(known.to_owned())
}

/// Gmail's XOAUTH2 failure: `{"status":"401","schemes":"bearer","scope":"https://mail.google.com/"}`.
fn explain_xoauth2_status(json: &str) -> String {
    let status = serde_json::from_str::<serde_json::Value>(json)
        .ok()
        .and_then(|v| v.get("status").and_then(|s| s.as_str().map(str::to_owned)))
        .unwrap_or_default();
    match status.as_str() {
        "401" => "The relay rejected the OAuth access token (XOAUTH2 status 401): it has expired or was revoked, or \
                  lacks the scope https://mail.google.com/. Tidings refreshes the token once and retries; if this \
                  persists, authorize again."
            .to_owned(),
        "400" => "The relay could not parse the XOAUTH2 request (status 400): check that oauth.account is the \
                  mailbox's address."
            .to_owned(),
        other => format!("The relay refused XOAUTH2 with status {other:?} ({json})."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn explained(stage: Stage, code: u16, line: &str) -> String {
        let reply = Reply::from_lines(code, &[line.to_owned()]);
        explain(Evidence { stage, reply: Some(&reply), xoauth2_status: None }).unwrap_or_default()
    }

    #[test]
    fn known_provider_replies() {
        for (stage, code, line, needle) in [
            (
                Stage::Auth,
                535,
                "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant. Visit https://aka.ms/smtp_auth_disabled for more information.",
                "Authenticated SMTP",
            ),
            (Stage::Auth, 535, "535 5.7.3 Authentication unsuccessful", "full address"),
            (Stage::Auth, 501, "501 5.5.124 Invalid XOAUTH2 user", "oauth.account"),
            (
                Stage::Message,
                554,
                "554 5.2.252 SendAsDenied; alerts@contoso.com not allowed to send as other@contoso.com",
                "Send As",
            ),
            (
                Stage::Auth,
                550,
                "550 5.7.30 Basic authentication is not supported for Client Submission.",
                "smtp.auth=oauth2",
            ),
            (Stage::Auth, 534, "534-5.7.9 Application-specific password required.", "app password"),
            (
                Stage::Auth,
                535,
                "535 5.7.8 Username and Password not accepted. For more information, go to",
                "app password",
            ),
            (Stage::MailFrom, 530, "530 5.7.0 Must issue a STARTTLS command first.", "smtp.encryption=starttls"),
            (
                Stage::RcptTo,
                550,
                "550 5.1.1 The email account that you tried to reach does not exist.",
                "does not exist",
            ),
            (Stage::Message, 432, "432 4.3.2 STOREDRV.ClientSubmit; sender thread limit exceeded", "3 connections"),
            (
                Stage::Message,
                554,
                "554 5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException; Failed to process message",
                "identity_recipients_per_day",
            ),
            (Stage::Auth, 535, "535 5.5.127 The token will expire soon", "refreshes"),
            (Stage::Message, 552, "552 5.2.2 Mailbox full", "quota"),
            (
                Stage::MailFrom,
                550,
                "550 5.7.60 SMTP; Client does not have permissions to send as this sender",
                "Send As",
            ),
        ] {
            let got = explained(stage, code, line);
            assert!(got.contains(needle), "{line}: {got}");
        }
        assert_eq!(explained(Stage::RcptTo, 550, "550 5.7.1 Relaying denied"), "");
    }

    #[test]
    fn gmail_xoauth2_json_status() {
        let json = r#"{"status":"401","schemes":"bearer","scope":"https://mail.google.com/"}"#;
        let got = explain(Evidence { stage: Stage::Auth, reply: None, xoauth2_status: Some(json) }).unwrap();
        assert!(got.contains("status 401") && got.contains("refreshes"), "{got}");
        let got =
            explain(Evidence { stage: Stage::Auth, reply: None, xoauth2_status: Some(r#"{"status":"400"}"#) }).unwrap();
        assert!(got.contains("oauth.account"), "{got}");
    }
}

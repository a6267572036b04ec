//! What known provider replies mean, and what an administrator should do about them. Shown beside the raw
//! reply in the delivery log; the raw reply is always kept.

use super::reply::{Reply, Stage};
use crate::config::Locale;

/// A failure's evidence: the reply, where it came, and the JSON status a server sent during XOAUTH2 (Gmail
/// sends `334 <base64 JSON>` before refusing).
#[derive(Clone, Copy, Debug)]
pub struct Evidence<'a> {
    pub stage: Stage,
    pub reply: Option<&'a Reply>,
    pub xoauth2_status: Option<&'a str>,
}

/// The explanation of a recipient's refusal, from its kept reply (`550 5.1.1 …`), in `locale`, when Tidings knows
/// one.
pub fn explain_refusal(shown: &str, locale: Locale) -> Option<String> {
    let reply = Reply::parse_shown(shown)?;
    explain_in(Evidence { stage: Stage::RcptTo, reply: Some(&reply), xoauth2_status: None }, locale)
}

/// The explanation for a failure, when Tidings knows one (in English: kept with the attempt, logged).
pub fn explain(evidence: Evidence<'_>) -> Option<String> {
    explain_in(evidence, Locale::En)
}

/// The explanation for a failure in `locale` (English where a translation is missing).
pub fn explain_in(evidence: Evidence<'_>, locale: Locale) -> Option<String> {
    if let Some(json) = evidence.xoauth2_status {
        return Some(explain_xoauth2_status(json));
    }
    let reply = evidence.reply?;
    let enhanced = reply.enhanced.as_deref().unwrap_or("");
    let text = reply.text.to_ascii_lowercase();
    let key: &str = match (reply.code, enhanced) {
        (535, "5.7.139") => "ms_auth_disabled",
        (535, "5.7.3") => "ms_bad_credentials",
        (501, "5.5.124") | (501, "5.5.2") if evidence.stage == Stage::Auth => "xoauth2_wrong_user",
        (432, "4.3.2") => "ms_thread_limit",
        (554 | 550, "5.2.0") if text.contains("submissionquotaexceeded") => "ms_daily_quota",
        (_, "5.5.127") => "token_expiring",
        (552, "5.2.2") => "mailbox_full",
        (554, "5.2.252") | (550, "5.7.60") => "send_as_denied",
        (550, "5.7.30") | (535, "5.7.30") => "basic_auth_disabled",
        (534, "5.7.9") => "gmail_app_password",
        (535, "5.7.8") if text.contains("username and password not accepted") => "gmail_password_refused",
        (530, "5.7.0") if text.contains("starttls") => "starttls_required",
        (530, _) | (_, "5.7.57") => "auth_required",
        (421, _) | (451, "4.7.500") | (452, "4.5.3") if text.contains("too many") || text.contains("throttl") => {
            "throttled"
        }
        (552, _) | (_, "5.3.4") => "too_large",
        (550, "5.1.1") | (550, "5.1.10") | (550, "5.4.1") => "no_such_recipient",
        _ => return None,
    };
    Some(explained_text(key, locale))
}

/// The text of `key` in `locale`, from `templates/explanations.<lang>.txt`, or English's.
fn explained_text(key: &str, locale: Locale) -> String {
    let find = |locale: Locale| {
        let file =
            crate::notify::template::file(&format!("explanations.{}", crate::notify::template::language(locale)))?;
        file.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix(" = ")).map(str::to_owned)
    };
    find(locale).or_else(|| find(Locale::En)).unwrap_or_default()
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

    #[test]
    fn every_explanation_is_in_every_language() {
        let keys: Vec<String> = crate::notify::template::file("explanations.en")
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split_once(" = ").map(|(k, _)| k.to_owned()))
            .collect();
        assert_eq!(keys.len(), 16);
        for locale in [Locale::Fr, Locale::De, Locale::Nl] {
            for key in &keys {
                let (english, there) = (explained_text(key, Locale::En), explained_text(key, locale));
                assert!(!there.is_empty() && there != english, "{key} is not translated in {locale:?}");
            }
        }
        let reply = Reply::from_lines(550, &["550 5.1.1 User unknown".to_owned()]);
        let french =
            explain_in(Evidence { stage: Stage::RcptTo, reply: Some(&reply), xoauth2_status: None }, Locale::Fr);
        assert_eq!(
            french.as_deref(),
            Some("L'adresse du destinataire n'existe pas dans son domaine. Corrigez l'adresse.")
        );
    }
}

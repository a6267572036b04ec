//! Microsoft Graph's `sendMail` with a MIME message: `POST /v1.0/users/{mailbox}/sendMail`, the message in
//! base64 as `text/plain`, `202 Accepted` when taken. Graph saves a copy in the mailbox's Sent Items.

use super::{Answer, ApiSettings, failed};
use base64::Engine;
use tidings_core::outbox::{
    Failure,
    reply::{Class, Scope},
};

/// The most a request carries: Graph takes about 4 MB per request, the base64 included.
pub const REQUEST_LIMIT: usize = 4 * 1024 * 1024;

/// Whether the message is too large for one `sendMail` request.
pub(super) fn too_large(message: &[u8]) -> bool {
    message.len().div_ceil(3) * 4 > REQUEST_LIMIT
}

pub(super) fn request(
    api: &ApiSettings,
    mailbox: &str,
    message: &[u8],
) -> Result<reqwest::RequestBuilder, Box<Failure>> {
    let encoded = base64::engine::general_purpose::STANDARD.encode(message);
    if encoded.len() > REQUEST_LIMIT {
        return Err(Box::new(failed(
            Class::Permanent,
            Scope::Message,
            format!(
                "the message is {:.1} MB once encoded; Microsoft Graph's sendMail takes about 4 MB per request",
                encoded.len() as f64 / 1_048_576.0
            ),
            Some(
                "Graph sends a larger message only as a draft whose attachments go through upload sessions, which \
                 needs the permission Mail.ReadWrite, and the token does not carry it. Add Mail.ReadWrite \
                 (application, or delegated) to the app registration with admin consent and authorize again, or \
                 send such messages through SMTP (delivery.transport=smtp)."
                    .into(),
            ),
        )));
    }
    let url = format!("{}/v1.0/users/{}/sendMail", api.endpoint, urlencode(mailbox));
    Ok(api.client.post(url).header(reqwest::header::CONTENT_TYPE, "text/plain").body(encoded))
}

/// What a refusal means, with what to do.
pub(super) fn failure(answer: &Answer, mailbox: &str) -> Failure {
    let (code, message, _) = super::error_of(&answer.body);
    let said = match (code.is_empty(), message.is_empty()) {
        (true, _) => format!("Microsoft Graph answered HTTP {}", answer.status),
        (false, true) => format!("Microsoft Graph answered HTTP {} {code}", answer.status),
        (false, false) => format!("Microsoft Graph answered HTTP {} {code}: {message}", answer.status),
    };
    let (class, scope, explanation) = match (answer.status, code.as_str()) {
        (_, "ErrorSendAsDenied") => (
            Class::Permanent,
            Scope::Message,
            format!(
                "The mailbox {mailbox} may not send as this message's From address. Give it Send As on that \
                 address in Exchange (Add-RecipientPermission), or send from {mailbox} itself."
            ),
        ),
        (_, "ErrorMessageSizeExceeded") | (413, _) => (
            Class::Permanent,
            Scope::Message,
            "The message is larger than the mailbox or the organisation accepts (Exchange's message size limits)."
                .into(),
        ),
        (_, "MailboxNotEnabledForRESTAPI") => (
            Class::Transient,
            Scope::Identity,
            format!(
                "{mailbox} has no Exchange Online mailbox Graph can use (an on-premises mailbox, or no licence): \
                 Graph cannot send from it. Its messages wait."
            ),
        ),
        (_, "ErrorQuotaExceeded") => (
            Class::Transient,
            Scope::Identity,
            format!(
                "The mailbox {mailbox} is full: Graph keeps a copy of each message in Sent Items. Free space or raise \
                 its quota; its messages wait."
            ),
        ),
        (403, _) | (_, "ErrorAccessDenied" | "AccessDenied") => (
            Class::Transient,
            Scope::Identity,
            format!(
                "Graph refused the application access to {mailbox}: an application access policy or an RBAC for \
                 Applications scope leaves the mailbox out, or the app lacks the permission Mail.Send with admin \
                 consent. Test-ServicePrincipalAuthorization (or Test-ApplicationAccessPolicy) says which. Its \
                 messages wait."
            ),
        ),
        (401, _) => (
            Class::AuthFailed,
            Scope::Identity,
            "Graph refused the token even freshly refreshed: it is probably for another audience (Exchange SMTP's). \
             With delivery.transport=microsoft_graph the scopes must be Graph's (https://graph.microsoft.com/Mail.Send, \
             or https://graph.microsoft.com/.default for app-only tokens): fix oauth.scopes, then authorize again."
                .into(),
        ),
        (429 | 503 | 504, _) => (
            Class::Transient,
            Scope::Identity,
            format!(
                "Microsoft Graph is throttling {mailbox}{}: its messages wait, then go on.",
                answer.retry_after.map(|d| format!(" for {} s (Retry-After)", d.as_secs())).unwrap_or_default()
            ),
        ),
        (status, _) if status >= 500 => {
            (Class::Transient, Scope::Relay, "Microsoft Graph had trouble; Tidings tries again later.".into())
        }
        _ => (Class::Permanent, Scope::Message, "Microsoft Graph refused this message.".into()),
    };
    let mut failure = failed(class, scope, said, Some(explanation));
    if matches!(answer.status, 429 | 503 | 504) {
        failure.retry_after = answer.retry_after;
    }
    failure
}

/// A mailbox as one path segment.
pub(super) fn urlencode(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'@' | b'+' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: &str) -> Answer {
        Answer { status, retry_after: Some(std::time::Duration::from_secs(7)), body: body.into() }
    }

    #[test]
    fn graphs_refusals_are_explained_and_classified() {
        let body = |code: &str| format!(r#"{{"error": {{"code": "{code}", "message": "text of {code}"}}}}"#);
        let f = failure(&answer(403, &body("ErrorSendAsDenied")), "box@contoso.com");
        assert_eq!((f.class, f.scope), (Class::Permanent, Scope::Message));
        assert!(f.error.contains("ErrorSendAsDenied: text of ErrorSendAsDenied"), "{}", f.error);
        let f = failure(&answer(403, &body("ErrorAccessDenied")), "box@contoso.com");
        assert_eq!((f.class, f.scope), (Class::Transient, Scope::Identity));
        assert!(f.explanation.unwrap().contains("application access policy"));
        let f = failure(&answer(404, &body("MailboxNotEnabledForRESTAPI")), "box@contoso.com");
        assert_eq!(f.scope, Scope::Identity);
        let f = failure(&answer(413, ""), "box@contoso.com");
        assert_eq!(f.class, Class::Permanent);
        let f = failure(&answer(401, &body("InvalidAuthenticationToken")), "box@contoso.com");
        assert!(f.explanation.unwrap().contains("https://graph.microsoft.com/Mail.Send"));
        let f = failure(&answer(429, &body("ApplicationThrottled")), "box@contoso.com");
        assert_eq!((f.scope, f.retry_after), (Scope::Identity, Some(std::time::Duration::from_secs(7))));
        let f = failure(&answer(400, &body("ErrorQuotaExceeded")), "box@contoso.com");
        assert!(f.explanation.unwrap().contains("Sent Items"));
    }
}

//! The Gmail API's `messages/send` with a MIME message: `POST /upload/gmail/v1/users/{mailbox}/messages/send
//! ?uploadType=media`, the message as it is (`message/rfc822`, up to 35 MB), `200` with the sent message's id.

use super::{Answer, ApiSettings, failed, graph::urlencode};
use tidings_core::outbox::{
    Failure,
    reply::{Class, Scope},
};

pub(super) fn request(api: &ApiSettings, mailbox: &str, message: &[u8]) -> reqwest::RequestBuilder {
    let url = format!("{}/upload/gmail/v1/users/{}/messages/send?uploadType=media", api.endpoint, urlencode(mailbox));
    api.client.post(url).header(reqwest::header::CONTENT_TYPE, "message/rfc822").body(message.to_vec())
}

/// What a refusal means, with what to do.
pub(super) fn failure(answer: &Answer, mailbox: &str) -> Failure {
    let (_, message, reason) = super::error_of(&answer.body);
    let reason = reason.unwrap_or_default();
    let said = format!(
        "the Gmail API answered HTTP {}{}{}",
        answer.status,
        if reason.is_empty() { String::new() } else { format!(" {reason}") },
        if message.is_empty() { String::new() } else { format!(": {message}") }
    );
    let (class, scope, explanation) = match (answer.status, reason.as_str()) {
        (403, "insufficientPermissions") | (403, "ACCESS_TOKEN_SCOPE_INSUFFICIENT") => (
            Class::AuthFailed,
            Scope::Identity,
            "The token does not carry a Gmail sending scope: oauth.scopes needs https://www.googleapis.com/auth/gmail.send \
             (granted to the service account's domain-wide delegation, or consented at sign-in); then authorize again."
                .to_owned(),
        ),
        (429, _) | (403, "rateLimitExceeded" | "userRateLimitExceeded") => (
            Class::Transient,
            Scope::Identity,
            format!(
                "Google limits how fast {mailbox} sends{}: its messages wait, then go on.",
                answer.retry_after.map(|d| format!(" (for {} s, Retry-After)", d.as_secs())).unwrap_or_default()
            ),
        ),
        (400, "failedPrecondition") => (
            Class::Transient,
            Scope::Identity,
            format!(
                "Google refused to send as {mailbox}: a service account sends only with domain-wide delegation (the \
                 Admin console's API controls), and only as a user of the domain with Gmail enabled. Its messages wait."
            ),
        ),
        (401, _) => (
            Class::AuthFailed,
            Scope::Identity,
            "Google refused the token even freshly refreshed: authorize Tidings again.".to_owned(),
        ),
        (413, _) => (
            Class::Permanent,
            Scope::Message,
            "The message is larger than the Gmail API takes (35 MB).".to_owned(),
        ),
        (status, _) if status >= 500 => {
            (Class::Transient, Scope::Relay, "The Gmail API had trouble; Tidings tries again later.".to_owned())
        }
        _ => (Class::Permanent, Scope::Message, "The Gmail API refused this message.".to_owned()),
    };
    let mut failure = failed(class, scope, said, Some(explanation));
    if matches!(answer.status, 429 | 403 | 503) && scope == Scope::Identity && class == Class::Transient {
        failure.retry_after = answer.retry_after;
    }
    failure
}

#[cfg(test)]
mod tests {
    use super::*;

    fn google(status: u16, reason: &str) -> Answer {
        let body = format!(
            r#"{{"error": {{"code": {status}, "message": "said {reason}", "errors": [{{"message": "said", "domain": "global", "reason": "{reason}"}}], "status": "X"}}}}"#
        );
        Answer { status, retry_after: None, body }
    }

    #[test]
    fn gmails_refusals_are_explained_and_classified() {
        let f = failure(&google(403, "insufficientPermissions"), "a@example.com");
        assert!(f.explanation.unwrap().contains("gmail.send"));
        let f = failure(&google(429, "rateLimitExceeded"), "a@example.com");
        assert_eq!((f.class, f.scope), (Class::Transient, Scope::Identity));
        let f = failure(&google(403, "userRateLimitExceeded"), "a@example.com");
        assert_eq!(f.scope, Scope::Identity);
        let f = failure(&google(400, "failedPrecondition"), "a@example.com");
        assert!(f.explanation.unwrap().contains("domain-wide delegation"));
        let f = failure(&google(400, "invalidArgument"), "a@example.com");
        assert_eq!(f.class, Class::Permanent);
    }
}

//! Sending through a provider's HTTP API instead of SMTP (`delivery.transport`): Microsoft Graph's `sendMail`
//! and the Gmail API's `messages/send`, each with the MIME message as it is, an OAuth access token, and the
//! provider's refusals turned into the outcomes the outbox settles (the same classes, scopes and explanations as
//! SMTP replies, with `Retry-After` pausing the mailbox for the time given).

mod draft;
mod gmail;
mod graph;

use crate::token::{AccessToken, TokenError, TokenSource};
use std::time::Duration;
use tidings_core::{
    config::Transport,
    outbox::{
        Failure, Outcome, RcptResult,
        reply::{Class, Reply, Scope, Stage},
    },
};

/// Where and how the run's messages are sent.
#[derive(Clone, Debug)]
pub struct ApiSettings {
    pub transport: Transport,
    /// The base URL (`https://graph.microsoft.com`), without a trailing slash.
    pub endpoint: String,
    /// Trusting what delivery trusts (the system's store, `tls.ca_file`), with the delivery timeout.
    pub client: reqwest::Client,
}

impl ApiSettings {
    /// What the log calls the place messages go to.
    pub fn address(&self) -> String {
        let name = match self.transport {
            Transport::GmailApi => "the Gmail API",
            _ => "Microsoft Graph",
        };
        format!("{name} at {}", self.endpoint)
    }
}

/// The HTTP client for the provider's endpoints (the OAuth ones and the APIs): trusting `tls` (what delivery
/// trusts), with the delivery timeout, through `oauth.proxy_url` when one is set.
pub fn http_client(cfg: &tidings_core::EmailConfig, tls: &rustls::ClientConfig) -> Result<reqwest::Client, String> {
    let builder = reqwest::Client::builder()
        .use_preconfigured_tls(tls.clone())
        .timeout(cfg.delivery.timeout)
        .user_agent(concat!("Tidings/", env!("CARGO_PKG_VERSION")));
    let builder = match &cfg.oauth.proxy_url {
        Some(proxy) => builder.proxy(reqwest::Proxy::all(proxy).map_err(|e| format!("oauth.proxy_url: {e}"))?),
        None => builder.no_proxy(),
    };
    builder.build().map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// A provider's answer to one send request.
#[derive(Debug)]
pub(crate) struct Answer {
    pub status: u16,
    pub retry_after: Option<Duration>,
    pub body: String,
}

/// Sends `content` as `mailbox` to `recipients` (the envelope's: any not named in the message's headers are added
/// as `Bcc`, which the provider strips). A token the provider rejects is refreshed once.
pub async fn send(
    api: &ApiSettings,
    mailbox: &str,
    tokens: &dyn TokenSource,
    content: &[u8],
    recipients: &[String],
) -> (Vec<(String, RcptResult)>, Outcome) {
    let message = with_envelope_recipients(content, recipients);
    let mut token = match tokens.access_token().await {
        Ok(token) => token,
        Err(e) => return (Vec::new(), Outcome::Failed(token_failure(&e))),
    };
    let mut refreshed = false;
    loop {
        let answer = match post(api, mailbox, &token, &message).await {
            Ok(answer) => answer,
            Err(failure) => return (Vec::new(), Outcome::Failed(*failure)),
        };
        if (200..300).contains(&answer.status) {
            let reply =
                Reply { code: answer.status, enhanced: None, text: format!("{} accepted the message", api.address()) };
            let accepted = recipients.iter().map(|r| (r.clone(), RcptResult::Accepted)).collect();
            return (accepted, Outcome::Accepted { reply });
        }
        if answer.status == 401 && !refreshed {
            refreshed = true;
            match tokens.refresh(&token).await {
                Ok(Some(fresh)) => {
                    token = fresh;
                    continue;
                }
                Ok(None) => {}
                Err(e) => return (Vec::new(), Outcome::Failed(token_failure(&e))),
            }
        }
        let failure = match api.transport {
            Transport::GmailApi => gmail::failure(&answer, mailbox),
            _ => graph::failure(&answer, mailbox),
        };
        return (Vec::new(), Outcome::Failed(failure));
    }
}

async fn post(api: &ApiSettings, mailbox: &str, token: &AccessToken, message: &[u8]) -> Result<Answer, Box<Failure>> {
    let request = match api.transport {
        Transport::GmailApi => gmail::request(api, mailbox, message),
        _ if graph::too_large(message) && draft::may_draft(token) => {
            return draft::send(api, mailbox, token, message, &[]).await;
        }
        _ => graph::request(api, mailbox, message)?,
    };
    answer_of(request.bearer_auth(token.0.expose())).await.map_err(|e| Box::new(unreachable(api, &e)))
}

/// The answer to a request: its status, its `Retry-After` in seconds, its body.
pub(crate) async fn answer_of(request: reqwest::RequestBuilder) -> Result<Answer, reqwest::Error> {
    let response = request.send().await?;
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let body = response.text().await.unwrap_or_default();
    Ok(Answer { status, retry_after, body })
}

/// A failure of the send request, as the outbox records it.
pub(crate) fn failed(class: Class, scope: Scope, error: String, explanation: Option<String>) -> Failure {
    Failure { class, scope, stage: Stage::Api, reply: None, text: error.clone(), error, explanation, retry_after: None }
}

pub(crate) fn unreachable(api: &ApiSettings, e: &reqwest::Error) -> Failure {
    let what = if e.is_timeout() { "did not answer in time" } else { "cannot be reached" };
    let chain = tidings_app::error_chain(e);
    let mut failure = failed(
        Class::Transient,
        Scope::Relay,
        format!("{} {what} ({chain})", api.address()),
        Some(format!(
            "Check that this machine reaches {} (DNS, firewall, proxy) and that tls.ca_file trusts it.",
            api.endpoint
        )),
    );
    failure.stage = Stage::Connect;
    failure
}

fn token_failure(e: &TokenError) -> Failure {
    let mut failure = failed(e.class(), Scope::Message, e.to_string(), None);
    failure.stage = Stage::Token;
    failure
}

/// The message with a `Bcc:` header naming the envelope recipients its headers do not: the APIs send to the
/// addresses in the headers, and a device's envelope may hold others (a blind copy).
fn with_envelope_recipients<'a>(content: &'a [u8], recipients: &[String]) -> std::borrow::Cow<'a, [u8]> {
    let head_end = memchr::memmem::find(content, b"\r\n\r\n").or_else(|| memchr::memmem::find(content, b"\n\n"));
    let head = String::from_utf8_lossy(&content[..head_end.unwrap_or(content.len())]).to_ascii_lowercase();
    let named = |address: &str| {
        let address = address.to_ascii_lowercase();
        head.match_indices(&address).any(|(at, _)| {
            let before = head[..at].chars().next_back();
            let after = head[at + address.len()..].chars().next();
            let edge = |c: Option<char>| c.is_none_or(|c| !(c.is_alphanumeric() || "._%+-@".contains(c)));
            edge(before) && edge(after)
        })
    };
    let missing: Vec<&str> = recipients.iter().map(String::as_str).filter(|r| !named(r)).collect();
    if missing.is_empty() {
        return std::borrow::Cow::Borrowed(content);
    }
    let mut out = format!("Bcc: {}\r\n", missing.join(", ")).into_bytes();
    out.extend_from_slice(content);
    std::borrow::Cow::Owned(out)
}

/// The provider's error body: `{"error": {"code": …, "message": …}}`; the reason Gmail also gives.
pub(crate) fn error_of(body: &str) -> (String, String, Option<String>) {
    let value: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    let error = &value["error"];
    let code = match &error["code"] {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) => n.to_string(),
        _ => String::new(),
    };
    let message = error["message"].as_str().unwrap_or("").to_owned();
    let reason = error["errors"][0]["reason"].as_str().map(str::to_owned);
    (code, message, reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_recipients_missing_from_the_headers_become_a_bcc() {
        let message = b"From: a@example.com\r\nTo: Ops <ops@example.com>\r\nSubject: x\r\n\r\nbody bcc@example.com\r\n";
        let recipients = vec!["ops@example.com".to_owned(), "bcc@example.com".to_owned()];
        let sent = with_envelope_recipients(message, &recipients);
        assert!(sent.starts_with(b"Bcc: bcc@example.com\r\nFrom:"), "{}", String::from_utf8_lossy(&sent));
        let all = with_envelope_recipients(message, &recipients[..1]);
        assert!(matches!(all, std::borrow::Cow::Borrowed(_)), "nothing added when the headers name everyone");
        let lookalike = with_envelope_recipients(b"To: xops@example.com\r\n\r\n", &recipients[..1]);
        assert!(lookalike.starts_with(b"Bcc: ops@example.com"), "a longer address is not the same one");
    }
}

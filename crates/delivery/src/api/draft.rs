//! Microsoft Graph's way for a message too large for one `sendMail` request: the message becomes a draft in the
//! mailbox (subject, recipients, body), each attachment is added to it (in one request when small, through an
//! upload session in chunks when not), and the draft is sent. It needs the permission `Mail.ReadWrite`. A draft
//! left by a failure is deleted.

use super::{Answer, ApiSettings, graph};
use crate::token::AccessToken;
use base64::Engine;
use mail_parser::{MessageParser, MimeHeaders};
use serde_json::{Value, json};
use tidings_core::outbox::Failure;

/// An attachment smaller than this goes in one request; larger ones through an upload session.
const SMALL: usize = 3 * 1024 * 1024;
/// An upload session's chunk: a multiple of 320 KiB, as Graph asks, under its 4 MB a request.
const CHUNK: usize = 10 * 320 * 1024;

/// Whether the token carries `Mail.ReadWrite` (an app-only token's `roles`, a delegated one's `scp`). A token
/// that is not a readable JWT carries nothing Tidings can see.
pub fn may_draft(token: &AccessToken) -> bool {
    let Some(payload) = token.0.expose().split('.').nth(1) else { return false };
    let Ok(bytes) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')) else {
        return false;
    };
    let claims: Value = serde_json::from_slice(&bytes).unwrap_or_default();
    let roles = claims["roles"].as_array().into_iter().flatten().filter_map(Value::as_str);
    let scopes = claims["scp"].as_str().unwrap_or("").split(' ');
    roles
        .chain(scopes)
        .any(|p| p.eq_ignore_ascii_case("Mail.ReadWrite") || p.eq_ignore_ascii_case("Mail.ReadWrite.Shared"))
}

/// One attachment of the message.
struct Attachment {
    name: String,
    kind: String,
    /// The content id of an inline one (an image the HTML body shows).
    inline: Option<String>,
    bytes: Vec<u8>,
}

/// The draft's JSON and its attachments from the MIME message; envelope recipients the headers do not name
/// become blind copies.
fn draft_of(message: &[u8], recipients: &[String]) -> Option<(Value, Vec<Attachment>)> {
    let parsed = MessageParser::default().parse(message)?;
    let addresses = |list: Option<&mail_parser::Address<'_>>| -> Vec<String> {
        list.map(|a| a.iter().filter_map(|a| a.address().map(str::to_owned)).collect()).unwrap_or_default()
    };
    let (to, cc, mut bcc) = (addresses(parsed.to()), addresses(parsed.cc()), addresses(parsed.bcc()));
    let named: Vec<String> = to.iter().chain(&cc).chain(&bcc).map(|a| a.to_ascii_lowercase()).collect();
    bcc.extend(recipients.iter().filter(|r| !named.contains(&r.to_ascii_lowercase())).cloned());
    let people =
        |list: &[String]| -> Vec<Value> { list.iter().map(|a| json!({"emailAddress": {"address": a}})).collect() };
    // mail-parser makes an HTML body of a text one: the message's own HTML only when it has one.
    let html = parsed.html_part(0).filter(|p| p.is_content_type("text", "html")).and_then(|_| parsed.body_html(0));
    let body = match html {
        Some(html) => json!({"contentType": "HTML", "content": html}),
        None => json!({"contentType": "Text", "content": parsed.body_text(0).unwrap_or_default()}),
    };
    let mut draft = json!({
        "subject": parsed.subject().unwrap_or(""),
        "body": body,
        "toRecipients": people(&to),
        "ccRecipients": people(&cc),
        "bccRecipients": people(&bcc),
    });
    if let Some(from) = parsed.from().and_then(|f| f.first()).and_then(|a| a.address()) {
        draft["from"] = json!({"emailAddress": {"address": from}});
    }
    let attachments = parsed
        .attachments()
        .map(|part| {
            let kind = part
                .content_type()
                .map(|t| format!("{}/{}", t.ctype(), t.subtype().unwrap_or("octet-stream")))
                .unwrap_or_else(|| "application/octet-stream".into());
            let name = part.attachment_name().unwrap_or("attachment").to_owned();
            let inline = part.content_id().map(|id| id.trim_matches(['<', '>']).to_owned());
            Attachment { name, kind, inline, bytes: part.contents().to_vec() }
        })
        .collect();
    Some((draft, attachments))
}

/// Sends `message` as a draft with its attachments; the send's answer, or the first failing step's.
pub(super) async fn send(
    api: &ApiSettings,
    mailbox: &str,
    token: &AccessToken,
    message: &[u8],
    recipients: &[String],
) -> Result<Answer, Box<Failure>> {
    let Some((draft, attachments)) = draft_of(message, recipients) else {
        return Err(Box::new(super::failed(
            tidings_core::outbox::reply::Class::Permanent,
            tidings_core::outbox::reply::Scope::Message,
            "the message cannot be read as MIME, so it cannot become a Graph draft".into(),
            None,
        )));
    };
    if draft.to_string().len() > graph::REQUEST_LIMIT {
        return Err(Box::new(super::failed(
            tidings_core::outbox::reply::Class::Permanent,
            tidings_core::outbox::reply::Scope::Message,
            "the message's body alone is larger than Microsoft Graph takes in one request (about 4 MB)".into(),
            Some(
                "Only attachments can be uploaded in parts; a body this large cannot go through Graph. Send it \
                 through SMTP (delivery.transport=smtp), or move the content into an attachment."
                    .into(),
            ),
        )));
    }
    let messages = format!("{}/v1.0/users/{}/messages", api.endpoint, graph::urlencode(mailbox));
    let created = call(api, api.client.post(&messages).json(&draft), token).await?;
    if created.status != 201 {
        return Ok(created);
    }
    let Some(id) = serde_json::from_str::<Value>(&created.body).ok().and_then(|v| v["id"].as_str().map(str::to_owned))
    else {
        return Ok(Answer { status: 502, retry_after: None, body: created.body });
    };
    let draft_url = format!("{messages}/{id}");
    let outcome = attach_and_send(api, token, &draft_url, attachments).await;
    if !matches!(&outcome, Ok(answer) if (200..300).contains(&answer.status)) {
        // Best effort: a draft left behind is only clutter.
        let _ = api.client.delete(&draft_url).bearer_auth(token.0.expose()).send().await;
    }
    outcome
}

async fn attach_and_send(
    api: &ApiSettings,
    token: &AccessToken,
    draft_url: &str,
    attachments: Vec<Attachment>,
) -> Result<Answer, Box<Failure>> {
    for Attachment { name, kind, inline, bytes } in attachments {
        let answer = if bytes.len() < SMALL {
            let attachment = json!({
                "@odata.type": "#microsoft.graph.fileAttachment",
                "name": name, "contentType": kind, "isInline": inline.is_some(), "contentId": inline,
                "contentBytes": base64::engine::general_purpose::STANDARD.encode(&bytes),
            });
            call(api, api.client.post(format!("{draft_url}/attachments")).json(&attachment), token).await?
        } else {
            upload(api, token, draft_url, &name, &kind, inline.as_deref(), &bytes).await?
        };
        if !(200..300).contains(&answer.status) {
            return Ok(answer);
        }
    }
    call(api, api.client.post(format!("{draft_url}/send")).header(reqwest::header::CONTENT_LENGTH, "0"), token).await
}

/// One attachment through an upload session: the session, then the bytes in chunks to its pre-authorised URL.
async fn upload(
    api: &ApiSettings,
    token: &AccessToken,
    draft_url: &str,
    name: &str,
    kind: &str,
    inline: Option<&str>,
    bytes: &[u8],
) -> Result<Answer, Box<Failure>> {
    let item = json!({"AttachmentItem": {
        "attachmentType": "file", "name": name, "size": bytes.len(), "contentType": kind,
        "isInline": inline.is_some(), "contentId": inline,
    }});
    let session =
        call(api, api.client.post(format!("{draft_url}/attachments/createUploadSession")).json(&item), token).await?;
    if session.status != 201 {
        return Ok(session);
    }
    let Some(url) =
        serde_json::from_str::<Value>(&session.body).ok().and_then(|v| v["uploadUrl"].as_str().map(str::to_owned))
    else {
        return Ok(Answer { status: 502, retry_after: None, body: session.body });
    };
    let mut last = session;
    for (i, chunk) in bytes.chunks(CHUNK).enumerate() {
        let start = i * CHUNK;
        let range = format!("bytes {start}-{}/{}", start + chunk.len() - 1, bytes.len());
        // The URL carries its own authorisation: no bearer token goes with the bytes.
        let request = api.client.put(&url).header(reqwest::header::CONTENT_RANGE, range).body(chunk.to_vec());
        last = super::answer_of(request).await.map_err(|e| Box::new(super::unreachable(api, &e)))?;
        if !(200..300).contains(&last.status) {
            return Ok(last);
        }
    }
    Ok(last)
}

async fn call(
    api: &ApiSettings,
    request: reqwest::RequestBuilder,
    token: &AccessToken,
) -> Result<Answer, Box<Failure>> {
    super::answer_of(request.bearer_auth(token.0.expose())).await.map_err(|e| Box::new(super::unreachable(api, &e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_token_carrying_mail_readwrite_may_draft() {
        let token = |claims: &str| {
            AccessToken(tidings_core::secret::SecretString::new(format!(
                "eyJhbGciOiJSUzI1NiJ9.{}.c2ln",
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims)
            )))
        };
        assert!(may_draft(&token(r#"{"roles": ["Mail.Send", "Mail.ReadWrite"]}"#)));
        assert!(may_draft(&token(r#"{"scp": "Mail.Send Mail.ReadWrite User.Read"}"#)));
        assert!(!may_draft(&token(r#"{"roles": ["Mail.Send"]}"#)));
        assert!(!may_draft(&AccessToken(tidings_core::secret::SecretString::new("opaque"))));
    }

    #[test]
    fn a_mime_message_becomes_a_draft_with_its_attachments_and_blind_copies() {
        let mime = "From: a@contoso.com\r\nTo: Ops <ops@contoso.com>\r\nSubject: scan\r\nMIME-Version: 1.0\r\n\
                    Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n\
                    --b\r\nContent-Type: application/pdf; name=scan.pdf\r\nContent-Disposition: attachment; filename=scan.pdf\r\n\
                    Content-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n--b--\r\n";
        let (draft, attachments) =
            draft_of(mime.as_bytes(), &["ops@contoso.com".into(), "hidden@contoso.com".into()]).unwrap();
        assert_eq!(draft["subject"], "scan");
        assert_eq!(draft["toRecipients"][0]["emailAddress"]["address"], "ops@contoso.com");
        assert_eq!(draft["bccRecipients"][0]["emailAddress"]["address"], "hidden@contoso.com");
        assert_eq!(draft["body"]["content"].as_str().unwrap().trim(), "hello");
        assert_eq!(attachments.len(), 1);
        assert_eq!((attachments[0].name.as_str(), attachments[0].kind.as_str()), ("scan.pdf", "application/pdf"));
        assert_eq!(attachments[0].bytes, b"%PDF-");
    }
}

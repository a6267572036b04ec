//! The outbox API's rules: who may call what, bad input refused by field with nothing queued, raw messages,
//! listing, retry and purge.

#![allow(clippy::unwrap_used)] // helpers of tests: a failed step is a failed test

mod support;

use reqwest::Method;
use serde_json::{Value, json};
use support::{Tidings, relay};
use tidings_testkit::SmtpPeer;

#[tokio::test]
async fn tokens_and_roles() {
    let peer = SmtpPeer::start(&[]);
    let tidings = Tidings::start(relay(&peer, &[])).await;
    let message = json!({"to": ["ops@example.com"], "subject": "s", "text": "t"});

    let (status, body) = tidings.request(Method::GET, "/api/v1/messages", None, None).await;
    assert_eq!((status.as_u16(), body["error"]["code"].as_str()), (401, Some("unauthorized")));
    let response = tidings.client.get(format!("{}/api/v1/messages", tidings.base)).send().await.unwrap();
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    let (status, _) = tidings.request(Method::GET, "/api/v1/messages", Some("tdg_not-a-real-token"), None).await;
    assert_eq!(status, 401);

    // A viewer reads, but changes nothing.
    assert_eq!(tidings.request(Method::GET, "/api/v1/messages", Some(&tidings.viewer), None).await.0, 200);
    let (status, body) =
        tidings.request(Method::POST, "/api/v1/messages", Some(&tidings.viewer), Some(message.clone())).await;
    assert_eq!((status.as_u16(), body["error"]["code"].as_str()), (403, Some("forbidden")));
    assert_eq!(tidings.request(Method::POST, "/api/v1/messages/1/retry", Some(&tidings.viewer), None).await.0, 403);
    assert_eq!(
        tidings.request(Method::DELETE, "/api/v1/messages?status=failed", Some(&tidings.viewer), None).await.0,
        403
    );

    // A revoked token stops working at once.
    let created =
        tidings.app.create_api_token("test", "short-lived", tidings_core::account::Role::Administrator).await.unwrap();
    let token = created.token.expose().to_owned();
    assert_eq!(tidings.request(Method::POST, "/api/v1/messages", Some(&token), Some(message.clone())).await.0, 202);
    assert!(tidings.app.revoke_api_token("test", created.id).await.unwrap());
    assert_eq!(tidings.request(Method::POST, "/api/v1/messages", Some(&token), Some(message)).await.0, 401);
    let audit: Vec<String> = tidings.app.store().audit(10).await.unwrap().into_iter().map(|e| e.action).collect();
    assert!(audit.contains(&"api-token.revoke".to_owned()) && audit.contains(&"api-token.create".to_owned()));
    tidings.stop().await;
}

async fn refused(tidings: &Tidings, body: Value) -> (u16, Value) {
    let (status, answer) = tidings.post("/api/v1/messages", body).await;
    assert!(status.is_client_error(), "{answer}");
    (status.as_u16(), answer["error"].clone())
}

fn fields(error: &Value) -> Vec<String> {
    error["fields"]
        .as_array()
        .map(|f| f.iter().map(|e| e["field"].as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn bad_input_is_refused_naming_the_field_and_nothing_is_queued() {
    let peer = SmtpPeer::start(&[]);
    let tidings = Tidings::start(relay(&peer, &[("delivery.max_message_size", "2048")])).await;

    let (status, error) =
        refused(&tidings, json!({"to": ["ops@example.com"], "subject": "Hi\r\nBcc: victim@example.com", "text": "x"}))
            .await;
    assert_eq!((status, fields(&error)), (422, vec!["subject".to_owned()]));
    assert!(error["message"].as_str().unwrap().contains("line break"));

    let (status, error) =
        refused(&tidings, json!({"to": ["ops@example.com", "ops@example.com\nBcc: x@example.com"], "text": "x"})).await;
    assert_eq!((status, fields(&error)), (422, vec!["to[1]".to_owned()]));

    let (_, error) = refused(&tidings, json!({"to": ["not-an-address"], "cc": ["also bad"]})).await;
    assert_eq!(fields(&error), ["to[0]", "cc[0]"]);

    let (_, error) = refused(&tidings, json!({"subject": "nobody", "text": "x"})).await;
    assert_eq!(fields(&error), ["to"]);
    assert!(error["fields"][0]["message"].as_str().unwrap().contains("at least one recipient"));

    let (_, error) = refused(&tidings, json!({"to": ["ops@example.com"], "text": "y".repeat(3000)})).await;
    assert_eq!(fields(&error), ["text"]);
    assert!(error["message"].as_str().unwrap().contains("delivery.max_message_size"));

    let (status, error) = refused(&tidings, json!({"to": ["ops@example.com"], "body": "misnamed"})).await;
    assert_eq!((status, error["code"].as_str()), (400, Some("bad_request")));
    assert!(error["message"].as_str().unwrap().contains("unknown field `body`"), "{error}");

    let (status, error) = refused(&tidings, json!({"to": "ops@example.com"})).await;
    assert!(status == 400 && error["message"].as_str().unwrap().contains("to"), "{error}");

    let (_, error) = refused(&tidings, json!({"raw": "Subject: x\r\n\r\nbody"})).await;
    assert_eq!(fields(&error), ["envelope"]);
    let (_, error) = refused(&tidings, json!({"raw": "Subject: x\r\n\r\nb", "to": ["a@example.com"], "envelope": {"mail_from": "a@example.com", "rcpt_to": ["b@example.com"]}})).await;
    assert_eq!(fields(&error), ["raw"]);
    let (_, error) =
        refused(&tidings, json!({"raw": "no headers", "envelope": {"mail_from": "bad", "rcpt_to": []}})).await;
    assert_eq!(fields(&error), ["envelope.mail_from", "envelope.rcpt_to", "raw"]);

    let response = tidings
        .client
        .post(format!("{}/api/v1/messages", tidings.base))
        .bearer_auth(&tidings.token)
        .header("content-type", "application/json")
        .body("{\"to\": [")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert!(response.text().await.unwrap().contains("not valid JSON"));

    let (_, list) = tidings.get("/api/v1/messages").await;
    assert_eq!(list["messages"], json!([]), "nothing was queued");
    tidings.stop().await;
}

#[tokio::test]
async fn a_raw_message_goes_unchanged_but_for_missing_headers() {
    let mut peer = SmtpPeer::start(&[]);
    let tidings = Tidings::start(relay(&peer, &[])).await;
    let raw =
        "From: Scanner <scanner@example.com>\r\nTo: me@example.com\r\nSubject: Scan 0042\r\n\r\n%PDF-1.4\r\n.\r\n";
    let (status, body) = tidings
        .post(
            "/api/v1/messages",
            json!({"raw": raw, "envelope": {"mail_from": "scanner@example.com", "rcpt_to": ["me@example.com"]}}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let got = peer.next_message().await;
    let data = got["data"].as_str().unwrap();
    assert!(data.starts_with("Date: ") && data.contains("Message-ID: <"), "missing headers are added: {data}");
    assert!(
        data.ends_with(
            "From: Scanner <scanner@example.com>\r\nTo: me@example.com\r\nSubject: Scan 0042\r\n\r\n%PDF-1.4\r\n.\r\n"
        ),
        "the rest is unchanged: {data:?}"
    );
    assert_eq!(got["mail_from"], "scanner@example.com");
    let (_, detail) = tidings.get(&format!("/api/v1/messages/{}", body["id"])).await;
    assert_eq!(detail["subject"], "Scan 0042");
    tidings.stop().await;
}

#[tokio::test]
async fn list_show_retry_and_purge() {
    let mut peer = SmtpPeer::start(&["--fail", "rcpt=550 5.1.1 no such user*1"]);
    let tidings = Tidings::start(relay(&peer, &[])).await;
    let failed = tidings.send("first, refused").await;
    tidings.wait_for_status(failed, "failed").await;
    let delivered = tidings.send("second").await;
    peer.next_message().await;
    tidings.wait_for_status(delivered, "delivered").await;

    let (_, all) = tidings.get("/api/v1/messages").await;
    let ids: Vec<i64> = all["messages"].as_array().unwrap().iter().map(|m| m["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, [delivered, failed], "newest first");
    let (_, only_failed) = tidings.get("/api/v1/messages?status=failed").await;
    assert_eq!(only_failed["messages"][0]["id"], failed);
    let (_, page) = tidings.get("/api/v1/messages?limit=1").await;
    assert_eq!((page["messages"].as_array().unwrap().len(), page["next_before"].as_i64()), (1, Some(delivered)));
    let (_, older) = tidings.get(&format!("/api/v1/messages?limit=1&before={delivered}")).await;
    assert_eq!(older["messages"][0]["id"], failed);
    let (status, error) = tidings.get("/api/v1/messages?status=lost&limit=0&colour=red").await;
    assert_eq!(status, 422);
    let mut bad: Vec<String> = fields(&error["error"]);
    bad.sort();
    assert_eq!(bad, ["colour", "limit", "status"]);

    assert_eq!(tidings.get("/api/v1/messages/999999").await.0, 404);
    assert_eq!(tidings.get("/api/v1/messages/abc").await.0, 404);
    let (status, error) = tidings.post(&format!("/api/v1/messages/{delivered}/retry"), json!({})).await;
    assert_eq!((status.as_u16(), error["error"]["code"].as_str()), (409, Some("not_retryable")));

    // The refused recipient is tried again, and this time the relay takes it.
    let (status, _) = tidings.post(&format!("/api/v1/messages/{failed}/retry"), json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(peer.next_message().await["rcpt_tos"][0], "ops@example.com");
    tidings.wait_for_status(failed, "delivered").await;

    let (status, error) =
        tidings.request(Method::DELETE, "/api/v1/messages?status=queued", Some(&tidings.token), None).await;
    assert_eq!((status.as_u16(), fields(&error["error"])), (422, vec!["status".to_owned()]));
    let (status, purged) =
        tidings.request(Method::DELETE, "/api/v1/messages?status=delivered", Some(&tidings.token), None).await;
    assert_eq!((status.as_u16(), purged["purged"].as_u64()), (200, Some(2)));
    let (_, empty) = tidings.get("/api/v1/messages").await;
    assert_eq!(empty["messages"], json!([]));
    tidings.stop().await;
}

#[tokio::test]
async fn a_network_administrators_change_never_sends_the_stored_secrets_elsewhere() {
    let peer = SmtpPeer::start(&[]);
    let tidings = Tidings::start(relay(&peer, &[])).await;
    let setup = json!({"smtp.host": "127.0.0.1", "smtp.auth": "password", "smtp.username": "device",
                       "smtp.password": "relay-password-1", "smtp.allow_plaintext_auth": true});
    let (status, body) =
        tidings.request(Method::PATCH, "/api/v1/email-config", Some(&tidings.admin), Some(setup)).await;
    assert_eq!(status, 200, "{body}");
    // The network administrator's token: endpoints by hand are refused, a moved relay clears the password.
    let (status, body) = tidings
        .request(
            Method::PATCH,
            "/api/v1/email-config",
            Some(&tidings.token),
            Some(json!({"oauth.token_endpoint": "https://evil.example/token"})),
        )
        .await;
    assert_eq!(
        (status.as_u16(), body["error"]["fields"][0]["field"].as_str()),
        (422, Some("oauth.token_endpoint")),
        "{body}"
    );
    let (status, body) = tidings
        .request(Method::PATCH, "/api/v1/email-config", Some(&tidings.token), Some(json!({"smtp.port": 2526})))
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["warnings"][0].as_str().unwrap().contains("smtp.password was cleared"), "{body}");
    let (_, config) = tidings.get("/api/v1/email-config").await;
    assert_eq!(config["secrets"]["smtp.password"], false, "{config}");
    tidings.stop().await;
}

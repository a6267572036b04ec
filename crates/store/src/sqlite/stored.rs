//! The JSON the database keeps inside its columns (a message's recipients, its delivery log), apart from the
//! domain types and from the API's: renaming a domain field changes neither what is stored nor what was
//! stored before. Field names here are the columns' format and change only with a migration.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tidings_core::outbox::{Attempt, Recipient, RecipientState, reply::Stage};

#[derive(Serialize, Deserialize)]
pub(super) struct StoredRecipient {
    address: String,
    state: RecipientState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reply: Option<String>,
}

impl From<&Recipient> for StoredRecipient {
    fn from(r: &Recipient) -> Self {
        Self { address: r.address.clone(), state: r.state, reply: r.reply.clone() }
    }
}

impl From<StoredRecipient> for Recipient {
    fn from(r: StoredRecipient) -> Self {
        Self { address: r.address, state: r.state, reply: r.reply }
    }
}

#[derive(Serialize, Deserialize)]
pub(super) struct StoredAttempt {
    number: u32,
    started_at: DateTime<Utc>,
    duration_ms: u64,
    result: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    stage: Option<Stage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reply_code: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    enhanced_code: Option<String>,
    text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    explanation: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    notes: Vec<String>,
}

impl From<&Attempt> for StoredAttempt {
    fn from(a: &Attempt) -> Self {
        Self {
            number: a.number,
            started_at: a.started_at,
            duration_ms: a.duration_ms,
            result: a.result.clone(),
            stage: a.stage,
            reply_code: a.reply_code,
            enhanced_code: a.enhanced_code.clone(),
            text: a.text.clone(),
            explanation: a.explanation.clone(),
            notes: a.notes.clone(),
        }
    }
}

impl From<StoredAttempt> for Attempt {
    fn from(a: StoredAttempt) -> Self {
        Self {
            number: a.number,
            started_at: a.started_at,
            duration_ms: a.duration_ms,
            result: a.result,
            stage: a.stage,
            reply_code: a.reply_code,
            enhanced_code: a.enhanced_code,
            text: a.text,
            explanation: a.explanation,
            notes: a.notes,
        }
    }
}

/// A message's recipients as their column holds them.
pub(super) fn recipients_json(recipients: &[Recipient]) -> serde_json::Result<String> {
    serde_json::to_string(&recipients.iter().map(StoredRecipient::from).collect::<Vec<_>>())
}

/// A message's recipients from their column.
pub(super) fn recipients_from(json: &str) -> serde_json::Result<Vec<Recipient>> {
    Ok(serde_json::from_str::<Vec<StoredRecipient>>(json)?.into_iter().map(Recipient::from).collect())
}

/// One attempt as its row holds it.
pub(super) fn attempt_json(attempt: &Attempt) -> serde_json::Result<String> {
    serde_json::to_string(&StoredAttempt::from(attempt))
}

/// One attempt from its row.
pub(super) fn attempt_from(json: &str) -> serde_json::Result<Attempt> {
    serde_json::from_str::<StoredAttempt>(json).map(Attempt::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What migrations and earlier versions wrote reads back, field for field.
    #[test]
    fn reads_what_was_stored_before() {
        let json = r#"{"number":2,"started_at":"2026-01-02T03:04:05Z","duration_ms":40,"result":"transient",
            "stage":"rcpt_to","reply_code":451,"enhanced_code":"4.7.1","text":"try later","explanation":"wait",
            "notes":["certificate checks are off"]}"#;
        let attempt = attempt_from(json).unwrap();
        assert_eq!(attempt.stage, Some(Stage::RcptTo));
        assert_eq!(attempt.reply_code, Some(451));
        assert_eq!(attempt.notes, vec!["certificate checks are off".to_owned()]);
        assert_eq!(attempt_from(&attempt_json(&attempt).unwrap()).unwrap(), attempt);

        let recipients = recipients_from(
            r#"[{"address":"a@example.com","state":"failed","reply":"550 no"},
            {"address":"b@example.com","state":"pending"}]"#,
        )
        .unwrap();
        assert_eq!(recipients[0].state, RecipientState::Failed);
        assert_eq!(recipients[1].reply, None);
        assert_eq!(recipients_from(&recipients_json(&recipients).unwrap()).unwrap(), recipients);
    }
}

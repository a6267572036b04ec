//! The forms both backends keep in their columns: times as Unix milliseconds, a locale as its code, and the JSON
//! inside columns (a message's recipients, its delivery log), apart from the domain types and from the API's:
//! renaming a domain field changes neither what is stored nor what was stored before. Field names here are the
//! columns' format and change only with a migration.

use crate::{Error, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use tidings_core::{
    config::Locale,
    outbox::{Attempt, Recipient, RecipientState, reply::Stage},
};

/// Unix milliseconds, the stored time format.
pub(crate) fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub(crate) fn from_ms(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

pub(crate) fn corrupt(what: &str, why: impl ToString) -> Error {
    Error::Corrupt { what: what.to_owned(), why: why.to_string() }
}

/// An authorization's owner as its column holds it (`relay`, `device:<id>`).
pub(crate) fn owner_key(owner: crate::Owner) -> String {
    match owner {
        crate::Owner::Relay => "relay".to_owned(),
        crate::Owner::Device(id) => format!("device:{id}"),
    }
}

/// An event's kind from its column.
pub(crate) fn event_kind(text: &str) -> Result<tidings_core::notify::EventKind> {
    tidings_core::notify::EventKind::parse(text).map_err(|e| corrupt("event kind", e))
}

/// An event's state from its column.
pub(crate) fn event_state(text: &str) -> Result<crate::EventState> {
    use crate::EventState;
    Ok(match text {
        "pending" => EventState::Pending,
        "mailed" => EventState::Mailed,
        "counted" => EventState::Counted,
        "recorded" => EventState::Recorded,
        other => return Err(corrupt("event state", other)),
    })
}

/// An account's interface language from its column.
pub(crate) fn locale(text: Option<String>) -> Result<Option<Locale>> {
    text.map(|t| serde_json::from_value(serde_json::Value::String(t)).map_err(|e| corrupt("account locale", e)))
        .transpose()
}

/// An account's interface language as its column holds it.
pub(crate) fn locale_text(locale: Locale) -> String {
    serde_json::to_value(locale).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

// Borrowed when written (a message's recipients and each attempt are written on the delivery path, and need no
// copy to become JSON), owned when read.

#[derive(Serialize, Deserialize)]
pub(crate) struct StoredRecipient<'a> {
    address: Cow<'a, str>,
    state: RecipientState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reply: Option<Cow<'a, str>>,
}

impl<'a> From<&'a Recipient> for StoredRecipient<'a> {
    fn from(r: &'a Recipient) -> Self {
        Self { address: Cow::Borrowed(&r.address), state: r.state, reply: r.reply.as_deref().map(Cow::Borrowed) }
    }
}

impl From<StoredRecipient<'_>> for Recipient {
    fn from(r: StoredRecipient<'_>) -> Self {
        Self { address: r.address.into_owned(), state: r.state, reply: r.reply.map(Cow::into_owned) }
    }
}

#[derive(Serialize, Deserialize)]
pub(crate) struct StoredAttempt<'a> {
    number: u32,
    started_at: DateTime<Utc>,
    duration_ms: u64,
    result: Cow<'a, str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    stage: Option<Stage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reply_code: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    enhanced_code: Option<Cow<'a, str>>,
    text: Cow<'a, str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    explanation: Option<Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "<[String]>::is_empty")]
    notes: Cow<'a, [String]>,
}

impl<'a> From<&'a Attempt> for StoredAttempt<'a> {
    fn from(a: &'a Attempt) -> Self {
        Self {
            number: a.number,
            started_at: a.started_at,
            duration_ms: a.duration_ms,
            result: Cow::Borrowed(&a.result),
            stage: a.stage,
            reply_code: a.reply_code,
            enhanced_code: a.enhanced_code.as_deref().map(Cow::Borrowed),
            text: Cow::Borrowed(&a.text),
            explanation: a.explanation.as_deref().map(Cow::Borrowed),
            notes: Cow::Borrowed(&a.notes),
        }
    }
}

impl From<StoredAttempt<'_>> for Attempt {
    fn from(a: StoredAttempt<'_>) -> Self {
        Self {
            number: a.number,
            started_at: a.started_at,
            duration_ms: a.duration_ms,
            result: a.result.into_owned(),
            stage: a.stage,
            reply_code: a.reply_code,
            enhanced_code: a.enhanced_code.map(Cow::into_owned),
            text: a.text.into_owned(),
            explanation: a.explanation.map(Cow::into_owned),
            notes: a.notes.into_owned(),
        }
    }
}

/// A message's recipients as their column holds them.
pub(crate) fn recipients_json(recipients: &[Recipient]) -> serde_json::Result<String> {
    serde_json::to_string(&recipients.iter().map(StoredRecipient::from).collect::<Vec<_>>())
}

/// A message's recipients from their column.
pub(crate) fn recipients_from(json: &str) -> serde_json::Result<Vec<Recipient>> {
    Ok(serde_json::from_str::<Vec<StoredRecipient>>(json)?.into_iter().map(Recipient::from).collect())
}

/// One attempt as its row holds it.
pub(crate) fn attempt_json(attempt: &Attempt) -> serde_json::Result<String> {
    serde_json::to_string(&StoredAttempt::from(attempt))
}

/// One attempt from its row.
pub(crate) fn attempt_from(json: &str) -> serde_json::Result<Attempt> {
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

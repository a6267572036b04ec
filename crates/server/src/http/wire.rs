//! The API's JSON, and the CLI's `--json`: the shapes openapi.json describes, built from the domain's and the
//! store's records. Renaming a field there changes nothing here; renaming one here is an API change (and the
//! test below holds each shape to openapi.json).

use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::BTreeMap;
use tidings_app::{cluster, notifications};
use tidings_core::{
    account::Role,
    audit,
    config::Locale,
    notify::EventKind,
    outbox::{
        self, RecipientState, Status,
        budget::Standing,
        circuit::{self, Held},
        reply::{Scope, Stage},
    },
};
use tidings_oauth::status::{self, TokenStatus};
use tidings_store as store;

#[derive(Debug, Serialize)]
pub struct Account {
    pub id: i64,
    pub username: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
    pub locale: Option<Locale>,
    pub locked_until: Option<DateTime<Utc>>,
    pub last_login_at: Option<DateTime<Utc>>,
}

impl From<&store::Account> for Account {
    fn from(a: &store::Account) -> Self {
        Self {
            id: a.id,
            username: a.username.clone(),
            role: a.role,
            created_at: a.created_at,
            locale: a.locale,
            locked_until: a.locked_until,
            last_login_at: a.last_login_at,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ApiToken {
    pub id: i64,
    pub name: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl From<&store::ApiToken> for ApiToken {
    fn from(t: &store::ApiToken) -> Self {
        Self {
            id: t.id,
            name: t.name.clone(),
            role: t.role,
            created_at: t.created_at,
            created_by: t.created_by.clone(),
            last_used_at: t.last_used_at,
            revoked_at: t.revoked_at,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Recipient {
    pub address: String,
    pub state: RecipientState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply: Option<String>,
    /// What the refusal means, when Tidings knows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explanation: Option<String>,
}

impl From<&outbox::Recipient> for Recipient {
    fn from(r: &outbox::Recipient) -> Self {
        let explanation = r
            .reply
            .as_deref()
            .and_then(|reply| outbox::explain::explain_refusal(reply, tidings_core::config::Locale::En));
        Self { address: r.address.clone(), state: r.state, reply: r.reply.clone(), explanation }
    }
}

#[derive(Debug, Serialize)]
pub struct MessageSummary {
    pub id: i64,
    pub status: Status,
    pub origin: String,
    pub mail_from: String,
    pub recipients: Vec<Recipient>,
    pub subject: Option<String>,
    pub size: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub attempts: u32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    /// Delivered to some recipients and refused for others (the status stays `failed` or `deferred`).
    pub partly_delivered: bool,
}

impl From<&store::MessageSummary> for MessageSummary {
    fn from(m: &store::MessageSummary) -> Self {
        Self {
            id: m.id,
            status: m.status,
            origin: m.origin.clone(),
            mail_from: m.mail_from.clone(),
            recipients: m.recipients.iter().map(Recipient::from).collect(),
            subject: m.subject.clone(),
            size: m.size,
            created_at: m.created_at,
            updated_at: m.updated_at,
            attempts: m.attempts,
            next_attempt_at: m.next_attempt_at,
            last_error: m.last_error.clone(),
            partly_delivered: outbox::partly_delivered(m.status, &m.recipients),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Attempt {
    pub number: u32,
    pub started_at: DateTime<Utc>,
    pub duration_ms: u64,
    pub result: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage: Option<Stage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply_code: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enhanced_code: Option<String>,
    pub text: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explanation: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl From<&outbox::Attempt> for Attempt {
    fn from(a: &outbox::Attempt) -> Self {
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

/// A relay or identity taken as down.
#[derive(Debug, Serialize)]
pub struct Down {
    pub since: DateTime<Utc>,
    pub failures: u32,
    pub retry_at: DateTime<Utc>,
    pub probing: bool,
    pub stage: Stage,
    pub error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explanation: Option<String>,
}

impl From<&circuit::Down> for Down {
    fn from(d: &circuit::Down) -> Self {
        Self {
            since: d.since,
            failures: d.failures,
            retry_at: d.retry_at,
            probing: d.probing,
            stage: d.stage,
            error: d.error.clone(),
            explanation: d.explanation.clone(),
        }
    }
}

/// A daemon that shares this node's database (`/readyz`).
#[derive(Debug, Serialize)]
pub struct Node {
    pub node: String,
    pub version: String,
    pub address: Option<String>,
    pub started_at: DateTime<Utc>,
    pub seen_at: DateTime<Utc>,
    /// Heard from within three heartbeats.
    pub live: bool,
    /// Messages it holds leased now.
    pub leased: u64,
    /// The daemon that answers.
    pub this: bool,
}

impl From<&crate::service::Node> for Node {
    fn from(n: &crate::service::Node) -> Self {
        let p = &n.peer;
        Self {
            node: p.node.clone(),
            version: p.version.clone(),
            address: p.address.clone(),
            started_at: p.started_at,
            seen_at: p.seen_at,
            live: n.live,
            leased: p.leased,
            this: n.this,
        }
    }
}

/// What holds a message back.
#[derive(Debug, Serialize)]
pub struct Waiting {
    pub scope: Scope,
    #[serde(flatten)]
    pub down: Down,
}

impl From<&Held> for Waiting {
    fn from(h: &Held) -> Self {
        Self { scope: h.scope, down: Down::from(&h.down) }
    }
}

/// An identity's use of its day's budget.
#[derive(Debug, Serialize)]
pub struct Budget {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    pub last_day: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recipients_per_day: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting_until: Option<DateTime<Utc>>,
}

impl From<&Standing> for Budget {
    fn from(s: &Standing) -> Self {
        Self {
            account: s.account.clone(),
            last_day: s.last_day,
            recipients_per_day: s.recipients_per_day,
            waiting_until: s.waiting_until,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct MessageDetail {
    #[serde(flatten)]
    pub summary: MessageSummary,
    pub message_id: Option<String>,
    pub attempt_log: Vec<Attempt>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mailbox_of: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting: Option<Waiting>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget: Option<Budget>,
}

impl From<&store::MessageDetail> for MessageDetail {
    fn from(d: &store::MessageDetail) -> Self {
        Self {
            summary: MessageSummary::from(&d.summary),
            message_id: d.message_id.clone(),
            attempt_log: d.attempt_log.iter().map(Attempt::from).collect(),
            mailbox_of: d.mailbox_of.clone(),
            waiting: d.waiting.as_ref().map(Waiting::from),
            budget: d.budget.as_ref().map(Budget::from),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Event {
    pub id: i64,
    pub kind: EventKind,
    pub node: String,
    pub details: BTreeMap<String, String>,
    pub origin: String,
    pub received_at: DateTime<Utc>,
    pub state: &'static str,
    pub message_id: Option<i64>,
    pub message_status: Option<Status>,
    pub repeats: u32,
}

impl From<&store::EventRecord> for Event {
    fn from(e: &store::EventRecord) -> Self {
        Self {
            id: e.id,
            kind: e.kind,
            node: e.node.clone(),
            details: e.details.clone(),
            origin: e.origin.clone(),
            received_at: e.received_at,
            state: e.state.as_str(),
            message_id: e.message_id,
            message_status: e.message_status,
            repeats: e.repeats,
        }
    }
}

/// A device account's own mailbox authorization, never its token.
#[derive(Debug, Serialize)]
pub struct Mailbox {
    pub device_id: i64,
    pub mailbox: String,
    pub acquired_at: DateTime<Utc>,
    pub acquired_by: String,
    pub refreshed_at: Option<DateTime<Utc>>,
    pub failure: Option<String>,
    pub explanation: Option<String>,
    pub failed_at: Option<DateTime<Utc>>,
}

impl From<&store::Authorization> for Mailbox {
    fn from(m: &store::Authorization) -> Self {
        let (failure, explanation) = m.failure.clone().unzip();
        Self {
            device_id: m.owner.device_id().unwrap_or_default(),
            mailbox: m.account.clone().unwrap_or_default(),
            acquired_at: m.acquired_at.unwrap_or_default(),
            acquired_by: m.acquired_by.clone().unwrap_or_default(),
            refreshed_at: m.refreshed_at,
            failure,
            explanation,
            failed_at: m.failed_at,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Device {
    pub id: i64,
    pub username: String,
    pub addresses: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    pub mailbox: Option<Mailbox>,
}

impl Device {
    pub fn new(device: &store::Device, mailbox: Option<&store::Authorization>) -> Self {
        Self {
            id: device.id,
            username: device.username.clone(),
            addresses: device.addresses.clone(),
            created_at: device.created_at,
            created_by: device.created_by.clone(),
            mailbox: mailbox.map(Mailbox::from),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct AuditEntry {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub fields: Vec<String>,
}

impl From<&audit::AuditEntry> for AuditEntry {
    fn from(e: &audit::AuditEntry) -> Self {
        Self { id: e.id, at: e.at, actor: e.actor.clone(), action: e.action.clone(), fields: e.fields.clone() }
    }
}

/// A test email's outcome so far.
#[derive(Debug, Serialize)]
pub struct TestOutcome {
    pub message_id: i64,
    pub result: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explanation: Option<String>,
}

impl From<&notifications::TestOutcome> for TestOutcome {
    fn from(o: &notifications::TestOutcome) -> Self {
        Self {
            message_id: o.message_id,
            result: o.result.clone(),
            reply: o.reply.clone(),
            explanation: o.explanation.clone(),
        }
    }
}

/// The OAuth client's certificate: what the administrator uploads, and how to recognise it (never the key).
#[derive(Debug, Serialize)]
pub struct ClientCertificate {
    pub pem: String,
    pub subject: String,
    /// Hexadecimal, as the Entra admin center lists certificates.
    pub sha1_thumbprint: String,
    /// Base64url, as the client assertion's `x5t#S256` header carries it.
    pub sha256_thumbprint: String,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
}

impl From<&tidings_app::client_certificate::ClientCertificate> for ClientCertificate {
    fn from(c: &tidings_app::client_certificate::ClientCertificate) -> Self {
        Self {
            pem: c.pem.clone(),
            subject: c.subject.clone(),
            sha1_thumbprint: c.sha1_thumbprint(),
            sha256_thumbprint: c.sha256_thumbprint(),
            not_before: c.not_before,
            not_after: c.not_after,
        }
    }
}

/// The relay account's token: its state, with the fields that state has, and the facts around it.
#[derive(Debug, Serialize)]
pub struct TokenReport {
    pub state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explanation: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<DateTime<Utc>>,
    pub account: Option<String>,
    pub acquired_at: Option<DateTime<Utc>>,
    pub refreshed_at: Option<DateTime<Utc>>,
}

impl From<&status::TokenReport> for TokenReport {
    fn from(r: &status::TokenReport) -> Self {
        let mut report = Self {
            state: r.status.as_str(),
            expires_at: None,
            reason: None,
            explanation: None,
            since: None,
            account: r.account.clone(),
            acquired_at: r.acquired_at,
            refreshed_at: r.refreshed_at,
        };
        match &r.status {
            TokenStatus::AuthorizationPending { expires_at } | TokenStatus::Active { expires_at } => {
                report.expires_at = Some(*expires_at)
            }
            TokenStatus::ReauthorizationRequired { reason, explanation } => {
                report.reason = Some(reason.clone());
                report.explanation = Some(explanation.clone());
            }
            TokenStatus::Failing { reason, since } => {
                report.reason = Some(reason.clone());
                report.since = Some(*since);
            }
            TokenStatus::NotConfigured | TokenStatus::AuthorizationRequired | TokenStatus::Acquired => {}
        }
        report
    }
}

/// This node in its cluster, and the nodes it knows (never a key or a join code's secret).
#[derive(Debug, Serialize)]
pub struct Cluster {
    pub role: &'static str,
    pub name: String,
    pub epoch: i64,
    /// For a backup or traffic node: the primary it follows.
    pub primary: Option<ClusterPrimary>,
    /// For a backup or traffic node: the primary's revision last taken, and when.
    pub synced_revision: Option<i64>,
    pub synced_at: Option<DateTime<Utc>>,
    /// For a backup or traffic node: why its configuration is read-only here.
    pub read_only: Option<String>,
    /// The last promote or demote hook's outcome.
    pub last_hook: Option<String>,
    pub nodes: Vec<ClusterNode>,
}

#[derive(Debug, Serialize)]
pub struct ClusterPrimary {
    pub name: Option<String>,
    pub url: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ClusterNode {
    pub name: String,
    pub role: &'static str,
    /// `joined`, or `invited` while its join code is not used yet.
    pub state: &'static str,
    pub advertise: Option<String>,
    pub fingerprint: Option<String>,
    pub joined_at: Option<DateTime<Utc>>,
    pub last_contact_at: Option<DateTime<Utc>>,
    pub version: Option<String>,
    pub code_expires_at: Option<DateTime<Utc>>,
    /// The primary's revision the node last took, and when (known on the primary).
    pub synced_revision: Option<i64>,
    pub synced_at: Option<DateTime<Utc>>,
}

impl Cluster {
    pub fn new(
        m: &cluster::Membership,
        nodes: &[store::ClusterNode],
        read_only: Option<String>,
        last_hook: Option<String>,
    ) -> Self {
        Self {
            role: m.role.as_str(),
            name: m.name.clone(),
            epoch: m.epoch,
            primary: m
                .role
                .follows()
                .then(|| ClusterPrimary { name: m.primary_name.clone(), url: m.primary_url.clone() }),
            synced_revision: m.synced_revision,
            synced_at: m.synced_at,
            read_only,
            last_hook,
            nodes: nodes.iter().map(ClusterNode::from).collect(),
        }
    }
}

impl From<&store::ClusterNode> for ClusterNode {
    fn from(n: &store::ClusterNode) -> Self {
        Self {
            name: n.name.clone(),
            role: n.role.as_str(),
            state: if n.joined_at.is_some() { "joined" } else { "invited" },
            advertise: n.advertise.clone(),
            fingerprint: n.fingerprint.clone(),
            joined_at: n.joined_at,
            last_contact_at: n.last_contact_at,
            version: n.version.clone(),
            code_expires_at: n.code_expires_at,
            synced_revision: n.synced_revision,
            synced_at: n.synced_at,
        }
    }
}

/// Each record of a list in its wire shape.
pub fn all<'a, R: 'a, W: From<&'a R>>(records: &'a [R]) -> Vec<W> {
    records.iter().map(W::from).collect()
}

/// The status page's figures (`GET /api/v1/status`): each part with its level, the whole's, and the action.
#[derive(Debug, Serialize)]
pub struct StatusReport {
    pub at: DateTime<Utc>,
    pub overall: &'static str,
    pub action: StatusAction,
    pub mail: StatusMail,
    pub relay: StatusRelay,
    pub token: StatusToken,
    pub gateway: StatusGateway,
    pub node: StatusNode,
    pub credentials: StatusCredentials,
}

#[derive(Debug, Serialize)]
pub struct StatusAction {
    /// `configure`, `sign_in`, `open_message`, `run_doctor` or `send_test_mail`.
    pub kind: &'static str,
    pub message: Option<i64>,
}

/// A message by its id and a time.
#[derive(Debug, Serialize)]
pub struct MessageAt {
    pub id: i64,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Serialize)]
pub struct StatusMail {
    pub level: &'static str,
    pub queue: BTreeMap<String, u64>,
    pub waiting: u64,
    pub oldest_waiting: Option<MessageAt>,
    pub last_delivered: Option<MessageAt>,
    pub last_failed: Option<MessageAt>,
}

#[derive(Debug, Serialize)]
pub struct StatusRelay {
    pub level: &'static str,
    pub address: Option<String>,
    /// `up` or `down`.
    pub state: &'static str,
    pub down: Option<Down>,
    /// The relay's reply to the last message delivered.
    pub last_reply: Option<String>,
    pub identities_down: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct StatusToken {
    pub level: &'static str,
    #[serde(flatten)]
    pub report: TokenReport,
}

#[derive(Debug, Serialize)]
pub struct StatusGateway {
    pub level: &'static str,
    pub listeners: Vec<String>,
    pub problems: Vec<String>,
    pub connections: usize,
    pub last_accepted: Option<StatusAccepted>,
}

#[derive(Debug, Serialize)]
pub struct StatusAccepted {
    pub device: String,
    pub at: DateTime<Utc>,
    pub id: i64,
}

#[derive(Debug, Serialize)]
pub struct StatusNode {
    pub name: String,
    pub role: &'static str,
}

#[derive(Debug, Serialize)]
pub struct StatusCredentials {
    pub level: &'static str,
    pub expiries: Vec<serde_json::Value>,
}

impl From<&crate::service::status::Snapshot> for StatusReport {
    fn from(s: &crate::service::status::Snapshot) -> Self {
        use tidings_core::glance::Action;
        let at = |m: Option<(i64, DateTime<Utc>)>| m.map(|(id, at)| MessageAt { id, at });
        let g = &s.glance;
        let (kind, message) = match g.action {
            Action::Configure => ("configure", None),
            Action::SignIn => ("sign_in", None),
            Action::OpenMessage(id) => ("open_message", Some(id)),
            Action::RunDoctor => ("run_doctor", None),
            Action::SendTestMail => ("send_test_mail", None),
        };
        Self {
            at: s.at,
            overall: g.overall.as_str(),
            action: StatusAction { kind, message },
            mail: StatusMail {
                level: g.mail.as_str(),
                queue: s.queue.iter().map(|(status, n)| (status.to_string(), *n)).collect(),
                waiting: s.waiting(),
                oldest_waiting: at(s.ages.oldest_waiting),
                last_delivered: at(s.ages.last_delivered),
                last_failed: at(s.ages.last_failed),
            },
            relay: StatusRelay {
                level: g.relay.as_str(),
                address: s.relay.clone(),
                state: if s.relay_down().is_some() { "down" } else { "up" },
                down: s.relay_down().map(Down::from),
                last_reply: s.last_reply.as_ref().map(|a| a.text.clone()),
                identities_down: s.identities_down().map(|(account, _)| account.unwrap_or("").to_owned()).collect(),
            },
            token: StatusToken { level: g.token.as_str(), report: TokenReport::from(&s.token) },
            gateway: StatusGateway {
                level: g.gateway.as_str(),
                listeners: s
                    .gateway
                    .listeners
                    .iter()
                    .filter(|l| l.error.is_none())
                    .map(|l| l.address.clone())
                    .collect(),
                problems: s.gateway.problems(),
                connections: s.gateway_connections,
                last_accepted: s.last_accepted.as_ref().map(|a| StatusAccepted {
                    device: a.device.clone(),
                    at: a.at,
                    id: a.id,
                }),
            },
            node: StatusNode { name: s.membership.name.clone(), role: s.membership.role.as_str() },
            credentials: StatusCredentials {
                level: g.credentials.as_str(),
                expiries: s.lifetimes.iter().map(|l| l.to_json(s.at)).collect(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use std::collections::BTreeSet;

    fn at() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    fn some() -> Option<String> {
        Some("x".into())
    }

    fn attempt() -> Attempt {
        Attempt {
            number: 1,
            started_at: at(),
            duration_ms: 5,
            result: "transient".into(),
            stage: Some(Stage::RcptTo),
            reply_code: Some(451),
            enhanced_code: some(),
            text: "x".into(),
            explanation: some(),
            notes: vec!["x".into()],
        }
    }

    fn down() -> Down {
        Down {
            since: at(),
            failures: 1,
            retry_at: at(),
            probing: true,
            stage: Stage::Connect,
            error: "x".into(),
            explanation: some(),
        }
    }

    fn budget() -> Budget {
        Budget { account: some(), last_day: 3, recipients_per_day: Some(10), waiting_until: Some(at()) }
    }

    fn summary() -> MessageSummary {
        MessageSummary {
            id: 1,
            status: Status::Deferred,
            origin: "x".into(),
            mail_from: "x".into(),
            recipients: vec![Recipient {
                address: "x".into(),
                state: RecipientState::Failed,
                reply: some(),
                explanation: some(),
            }],
            subject: some(),
            size: 1,
            created_at: at(),
            updated_at: at(),
            attempts: 1,
            next_attempt_at: Some(at()),
            last_error: some(),
            partly_delivered: true,
        }
    }

    fn mailbox() -> Mailbox {
        Mailbox {
            device_id: 1,
            mailbox: "x".into(),
            acquired_at: at(),
            acquired_by: "x".into(),
            refreshed_at: Some(at()),
            failure: some(),
            explanation: some(),
            failed_at: Some(at()),
        }
    }

    /// The properties a schema of openapi.json names, through `allOf` and `$ref`.
    fn documented(doc: &Value, schema: &Value) -> BTreeSet<String> {
        if let Some(reference) = schema["$ref"].as_str() {
            let name = reference.rsplit('/').next().unwrap();
            return documented(doc, &doc["components"]["schemas"][name]);
        }
        let mut names: BTreeSet<String> =
            schema["properties"].as_object().map(|p| p.keys().cloned().collect()).unwrap_or_default();
        for part in schema["allOf"].as_array().into_iter().flatten() {
            names.extend(documented(doc, part));
        }
        names
    }

    fn sent(value: impl Serialize) -> BTreeSet<String> {
        serde_json::to_value(value).unwrap().as_object().unwrap().keys().cloned().collect()
    }

    /// Every shape, filled in to its last optional field, sends exactly the fields openapi.json documents.
    #[test]
    fn every_shape_is_the_documented_one() {
        let doc: Value = serde_json::from_str(include_str!("../../openapi.json")).unwrap();
        let schema = |name: &str| doc["components"]["schemas"][name].clone();
        let audit = &doc["paths"]["/api/v1/audit"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
            ["properties"]["entries"]["items"];
        let device = Device {
            id: 1,
            username: "x".into(),
            addresses: vec!["x".into()],
            created_at: at(),
            created_by: "x".into(),
            mailbox: Some(mailbox()),
        };
        let mut cases: Vec<(&str, Value, BTreeSet<String>)> = vec![
            (
                "Account",
                schema("Account"),
                sent(Account {
                    id: 1,
                    username: "x".into(),
                    role: Role::Viewer,
                    created_at: at(),
                    locale: Some(Locale::Fr),
                    locked_until: Some(at()),
                    last_login_at: Some(at()),
                }),
            ),
            (
                "ApiToken",
                schema("ApiToken"),
                sent(ApiToken {
                    id: 1,
                    name: "x".into(),
                    role: Role::Viewer,
                    created_at: at(),
                    created_by: "x".into(),
                    last_used_at: Some(at()),
                    revoked_at: Some(at()),
                }),
            ),
            ("MessageSummary", schema("MessageSummary"), sent(summary())),
            ("Recipient", schema("Recipient"), sent(&summary().recipients[0])),
            ("Attempt", schema("Attempt"), sent(attempt())),
            (
                "MessageDetail",
                schema("MessageDetail"),
                sent(MessageDetail {
                    summary: summary(),
                    message_id: some(),
                    attempt_log: vec![attempt()],
                    mailbox_of: some(),
                    waiting: Some(Waiting { scope: Scope::Identity, down: down() }),
                    budget: Some(budget()),
                }),
            ),
            ("Down", schema("Down"), sent(down())),
            ("Waiting", schema("Waiting"), sent(Waiting { scope: Scope::Relay, down: down() })),
            ("Budget", schema("Budget"), sent(budget())),
            (
                "Event",
                schema("Event"),
                sent(Event {
                    id: 1,
                    kind: EventKind::TestEmail,
                    node: "x".into(),
                    details: BTreeMap::from([("a".into(), "b".into())]),
                    origin: "x".into(),
                    received_at: at(),
                    state: "mailed",
                    message_id: Some(1),
                    message_status: Some(Status::Delivered),
                    repeats: 1,
                }),
            ),
            ("Device", schema("Device"), sent(&device)),
            ("Device.mailbox", schema("Device")["properties"]["mailbox"].clone(), sent(mailbox())),
            (
                "audit entry",
                audit.clone(),
                sent(AuditEntry { id: 1, at: at(), actor: "x".into(), action: "x".into(), fields: vec![] }),
            ),
        ];
        let outcome =
            notifications::TestOutcome { message_id: 1, result: "failed".into(), reply: some(), explanation: some() };
        cases.push(("TestOutcome", schema("TestOutcome"), sent(TestOutcome::from(&outcome))));
        // The token's fields depend on its state: together, the states send every documented field.
        let states = [
            TokenStatus::NotConfigured,
            TokenStatus::AuthorizationRequired,
            TokenStatus::AuthorizationPending { expires_at: at() },
            TokenStatus::Acquired,
            TokenStatus::Active { expires_at: at() },
            TokenStatus::ReauthorizationRequired { reason: "x".into(), explanation: "x".into() },
            TokenStatus::Failing { reason: "x".into(), since: at() },
        ];
        let mut token = BTreeSet::new();
        for status in states {
            let report = status::TokenReport { status, account: some(), acquired_at: Some(at()), refreshed_at: None };
            let wire = serde_json::to_value(TokenReport::from(&report)).unwrap();
            let state = wire["state"].as_str().unwrap();
            let allowed = &doc["components"]["schemas"]["TokenReport"]["properties"]["state"]["enum"];
            assert!(allowed.as_array().unwrap().iter().any(|s| s == state), "state {state} is not in openapi.json");
            token.extend(wire.as_object().unwrap().keys().cloned());
        }
        cases.push(("TokenReport", schema("TokenReport"), token));
        let node = store::ClusterNode {
            name: "b".into(),
            role: tidings_core::cluster::Role::Backup,
            advertise: some(),
            fingerprint: some(),
            joined_at: Some(at()),
            last_contact_at: Some(at()),
            version: some(),
            code_expires_at: Some(at()),
            synced_revision: Some(2),
            synced_at: Some(at()),
            ..Default::default()
        };
        let membership = cluster::Membership {
            role: tidings_core::cluster::Role::Traffic,
            name: "t".into(),
            epoch: 1,
            primary_name: some(),
            primary_url: some(),
            synced_revision: Some(3),
            synced_at: Some(at()),
        };
        let shown = Cluster::new(&membership, std::slice::from_ref(&node), some(), some());
        cases.push(("Cluster", schema("Cluster"), sent(&shown)));
        cases.push(("ClusterNode", schema("ClusterNode"), sent(&shown.nodes[0])));
        let primary = schema("Cluster")["properties"]["primary"].clone();
        cases.push(("Cluster.primary", primary, sent(shown.primary.as_ref().unwrap())));
        let node = crate::service::Node {
            peer: tidings_app::peers::Peer {
                node: "node-a".into(),
                instance: "1".into(),
                version: "0.1.0".into(),
                address: some(),
                started_at: at(),
                seen_at: at(),
                leased: 2,
            },
            live: true,
            this: true,
        };
        cases.push(("Node", schema("Node"), sent(Node::from(&node))));
        let shown = StatusReport {
            at: at(),
            overall: "ok",
            action: StatusAction { kind: "open_message", message: Some(1) },
            mail: StatusMail {
                level: "ok",
                queue: BTreeMap::new(),
                waiting: 0,
                oldest_waiting: Some(MessageAt { id: 1, at: at() }),
                last_delivered: None,
                last_failed: None,
            },
            relay: StatusRelay {
                level: "ok",
                address: some(),
                state: "down",
                down: Some(down()),
                last_reply: some(),
                identities_down: vec![],
            },
            token: StatusToken {
                level: "ok",
                report: TokenReport::from(&status::TokenReport {
                    status: TokenStatus::Acquired,
                    account: some(),
                    acquired_at: None,
                    refreshed_at: None,
                }),
            },
            gateway: StatusGateway {
                level: "ok",
                listeners: vec![],
                problems: vec![],
                connections: 0,
                last_accepted: Some(StatusAccepted { device: "x".into(), at: at(), id: 1 }),
            },
            node: StatusNode { name: "x".into(), role: "standalone" },
            credentials: StatusCredentials { level: "ok", expiries: vec![] },
        };
        let part = |name: &str| schema("Status")["properties"][name].clone();
        cases.push(("Status", schema("Status"), sent(&shown)));
        cases.push(("Status.action", part("action"), sent(&shown.action)));
        cases.push(("Status.mail", part("mail"), sent(&shown.mail)));
        cases.push(("Status.relay", part("relay"), sent(&shown.relay)));
        cases.push(("Status.gateway", part("gateway"), sent(&shown.gateway)));
        cases.push((
            "Status.gateway.last_accepted",
            part("gateway")["properties"]["last_accepted"].clone(),
            sent(shown.gateway.last_accepted.as_ref().unwrap()),
        ));
        cases.push(("Status.node", part("node"), sent(&shown.node)));
        cases.push(("Status.credentials", part("credentials"), sent(&shown.credentials)));
        cases.push(("MessageAt", schema("MessageAt"), sent(shown.mail.oldest_waiting.as_ref().unwrap())));
        for (name, schema, sent) in cases {
            assert_eq!(sent, documented(&doc, &schema), "{name}: the fields sent differ from openapi.json's");
        }
    }
}

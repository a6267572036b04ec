//! The audit log's entries: who changed what, and when. Never a secret value: only the names of the fields.

use chrono::{DateTime, Utc};
/// One recorded change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEntry {
    pub id: i64,
    pub at: DateTime<Utc>,
    /// Who made the change: `cli:USER` for the command line, an account name for the web interface and API.
    pub actor: String,
    /// What kind of change: `config.update`, `config.import`, `account.create`, ...
    pub action: String,
    /// The configuration keys (or other names) that changed. Secret fields appear by name only.
    pub fields: Vec<String>,
}

/// An entry about to be written; the store assigns its id and time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewAuditEntry {
    pub actor: String,
    pub action: String,
    pub fields: Vec<String>,
}

-- Tidings' first schema. Never edit a migration that has landed: add a new one.

-- Facts about this data directory (schema notes, the key check value of the secret key).
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- Every saved email configuration, newest revision in force. The document is the JSON of
-- tidings_core::EmailConfig; secrets are never part of it.
CREATE TABLE email_config (
    revision INTEGER PRIMARY KEY,
    saved_at TEXT    NOT NULL,
    saved_by TEXT    NOT NULL,
    document TEXT    NOT NULL
);

-- Secrets, sealed (AEAD) by the application before they reach this table.
CREATE TABLE secrets (
    name       TEXT PRIMARY KEY,
    sealed     BLOB NOT NULL,
    updated_at TEXT NOT NULL
);

-- Who changed what, and when. `fields` is a JSON array of key names, never values.
CREATE TABLE audit_log (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    at     TEXT NOT NULL,
    actor  TEXT NOT NULL,
    action TEXT NOT NULL,
    fields TEXT NOT NULL
);

CREATE TABLE accounts (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    username      TEXT NOT NULL UNIQUE COLLATE NOCASE,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('administrator', 'network_administrator', 'viewer')),
    created_at    TEXT NOT NULL
);

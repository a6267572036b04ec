-- The outbox and API tokens. Times in the outbox are Unix milliseconds (INTEGER), compared on hot paths.

CREATE TABLE messages (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    status          TEXT    NOT NULL CHECK (status IN ('queued', 'sending', 'deferred', 'delivered', 'failed')),
    -- Who submitted it: api:<token name>, cli:<user>, notification, gateway:<account>.
    origin          TEXT    NOT NULL,
    mail_from       TEXT    NOT NULL,
    -- JSON array of tidings_core::outbox::Recipient.
    recipients      TEXT    NOT NULL,
    subject         TEXT,
    message_id      TEXT,
    size            INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    -- Start of the retry lifetime: acceptance, or the last manual retry.
    lifetime_start  INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    -- When a queued or deferred message is due.
    next_attempt_at INTEGER,
    attempts        INTEGER NOT NULL DEFAULT 0,
    lease_owner     TEXT,
    lease_until     INTEGER,
    last_error      TEXT
);
CREATE INDEX messages_due ON messages (status, next_attempt_at);
CREATE INDEX messages_lease ON messages (status, lease_until);

-- The message itself, apart, so that queue operations never read through message bodies.
CREATE TABLE message_content (
    message_id INTEGER PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,
    content    BLOB NOT NULL
);

-- The delivery log: one row per attempt, the JSON of tidings_core::outbox::Attempt.
CREATE TABLE attempts (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    record     TEXT    NOT NULL
);
CREATE INDEX attempts_message ON attempts (message_id, id);

-- Bearer tokens for the API; only their SHA-256 is kept.
CREATE TABLE api_tokens (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    name         TEXT NOT NULL,
    role         TEXT NOT NULL CHECK (role IN ('administrator', 'network_administrator', 'viewer')),
    token_hash   BLOB NOT NULL UNIQUE,
    created_at   TEXT NOT NULL,
    created_by   TEXT NOT NULL,
    last_used_at TEXT,
    revoked_at   TEXT
);

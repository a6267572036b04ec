-- Signing in to the web interface: per-account language, failed attempts and lockout; sessions.

-- The account's interface language (en, fr, de, nl); NULL follows the browser.
ALTER TABLE accounts ADD COLUMN locale TEXT;
-- Consecutive failed sign-ins, and until when (Unix ms) the account is locked after too many.
ALTER TABLE accounts ADD COLUMN failed_logins INTEGER NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN locked_until INTEGER;
ALTER TABLE accounts ADD COLUMN last_login_at INTEGER;

-- Browser sessions; only the SHA-256 of the cookie's value is kept. Times are Unix ms.
CREATE TABLE sessions (
    token_hash   BLOB    PRIMARY KEY,
    account_id   INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    -- The CSRF token every state-changing request of this session must carry.
    csrf         TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL
);
CREATE INDEX sessions_account ON sessions (account_id);

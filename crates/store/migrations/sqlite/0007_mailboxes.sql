-- The gateway's login_user sender policy: each device account connects its own mailbox with OAuth, and its
-- messages go upstream as that mailbox with that account's token. Times are Unix ms.

-- A device account's authorization. The refresh token is sealed by the application, bound to the device.
CREATE TABLE mailbox_authorizations (
    device_id            INTEGER PRIMARY KEY REFERENCES devices (id) ON DELETE CASCADE,
    -- The mailbox the token is for: XOAUTH2's user, and the From of the account's messages.
    mailbox              TEXT    NOT NULL,
    sealed_refresh_token BLOB    NOT NULL,
    acquired_at          INTEGER NOT NULL,
    acquired_by          TEXT    NOT NULL,
    refreshed_at         INTEGER,
    -- When the account must sign in again: the provider's words and what to do.
    failure              TEXT,
    explanation          TEXT,
    failed_at            INTEGER
);

-- Web sessions of device accounts (the "My mailbox" page); only the SHA-256 of the cookie is kept.
CREATE TABLE device_sessions (
    token_hash   BLOB    PRIMARY KEY,
    device_id    INTEGER NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    csrf         TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL
);
CREATE INDEX device_sessions_device ON device_sessions (device_id);

-- Whose sign-in a pending authorization-code flow is: NULL for the relay account, else a device account.
ALTER TABLE oauth_pending ADD COLUMN device_id INTEGER REFERENCES devices (id) ON DELETE CASCADE;

-- The device account whose own mailbox and token send this message (login_user policy); NULL for the relay
-- account.
ALTER TABLE messages ADD COLUMN mailbox_of TEXT;

-- Device accounts: what printers and scanners authenticate as on the submission gateway.
CREATE TABLE devices (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    username      TEXT NOT NULL UNIQUE COLLATE NOCASE,
    password_hash TEXT NOT NULL,
    -- JSON array of the addresses the device may send as (the allow_user policy).
    addresses     TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    created_by    TEXT NOT NULL
);

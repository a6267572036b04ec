-- What each identity sent, per minute, for the provider limits (tidings_core::outbox::budget): kept for a day
-- and a bit, so that a restart remembers the day's recipients. The relay account's identity is ''.
CREATE TABLE identity_usage (
    identity   TEXT    NOT NULL,
    -- The minute's start, Unix ms.
    minute     INTEGER NOT NULL,
    messages   INTEGER NOT NULL,
    recipients INTEGER NOT NULL,
    PRIMARY KEY (identity, minute)
);
CREATE INDEX identity_usage_minute ON identity_usage (minute);

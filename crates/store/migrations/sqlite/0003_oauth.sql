-- The relay account's OAuth authorization. The refresh token itself is a sealed secret named
-- `oauth.refresh_token` in `secrets`; this row says what became of it.
CREATE TABLE oauth_authorization (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    account      TEXT,
    acquired_at  TEXT,
    refreshed_at TEXT,
    -- When an administrator must act: the provider's words and what to do.
    failure      TEXT,
    explanation  TEXT,
    failed_at    TEXT
);

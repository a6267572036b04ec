-- The relay account's OAuth authorization. The refresh token itself is a sealed secret named
-- `oauth.refresh_token` in `secrets`; this row says what became of it.
CREATE TABLE oauth_authorization (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    account      TEXT,
    -- 1 when authorized with the client-credentials grant (app-only): no refresh token, the client's own
    -- credentials are redeemed for each access token.
    client_credentials INTEGER NOT NULL DEFAULT 0,
    acquired_at  TEXT,
    refreshed_at TEXT,
    -- When an administrator must act: the provider's words and what to do.
    failure      TEXT,
    explanation  TEXT,
    failed_at    TEXT
);

-- Sign-ins under way: the authorization-code flow's state and (sealed) PKCE verifier, until the provider's
-- redirect comes back or they expire.
CREATE TABLE oauth_pending (
    state           TEXT PRIMARY KEY,
    sealed_verifier BLOB NOT NULL,
    redirect_uri    TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    expires_at      TEXT NOT NULL
);

-- One table for every OAuth authorization Tidings holds, keyed by its owner: the relay account's ('relay') and
-- each device account's own mailbox ('device:<id>'). Before, the relay account's lived in oauth_authorization
-- (its refresh token in secrets) and the devices' in mailbox_authorizations; both move here unchanged, times
-- becoming Unix milliseconds like every newer table's.
CREATE TABLE authorizations (
    owner                TEXT    PRIMARY KEY,
    -- The device account for 'device:<id>' (deleting the account deletes its authorization); NULL for 'relay'.
    device_id            INTEGER UNIQUE REFERENCES devices (id) ON DELETE CASCADE,
    -- The mailbox the token is for (XOAUTH2's user), when known.
    account              TEXT,
    -- 1 for an app-only authorization (the client-credentials grant): no refresh token is kept.
    client_credentials   INTEGER NOT NULL DEFAULT 0,
    -- Sealed by the application; NULL for app-only.
    sealed_refresh_token BLOB,
    acquired_at          INTEGER,
    acquired_by          TEXT,
    refreshed_at         INTEGER,
    -- When someone must sign in again: the provider's words and what to do.
    failure              TEXT,
    explanation          TEXT,
    failed_at            INTEGER,
    CHECK ((owner = 'relay' AND device_id IS NULL) OR owner = 'device:' || device_id)
);

INSERT INTO authorizations (owner, account, client_credentials, sealed_refresh_token, acquired_at, refreshed_at,
                            failure, explanation, failed_at)
SELECT 'relay', account, client_credentials,
       (SELECT sealed FROM secrets WHERE name = 'oauth.refresh_token'),
       CAST(round((julianday(acquired_at) - 2440587.5) * 86400000) AS INTEGER),
       CAST(round((julianday(refreshed_at) - 2440587.5) * 86400000) AS INTEGER),
       failure, explanation,
       CAST(round((julianday(failed_at) - 2440587.5) * 86400000) AS INTEGER)
FROM oauth_authorization;

INSERT INTO authorizations (owner, device_id, account, sealed_refresh_token, acquired_at, acquired_by, refreshed_at,
                            failure, explanation, failed_at)
SELECT 'device:' || device_id, device_id, mailbox, sealed_refresh_token, acquired_at, acquired_by, refreshed_at,
       failure, explanation, failed_at
FROM mailbox_authorizations;

DELETE FROM secrets WHERE name = 'oauth.refresh_token';
DROP TABLE oauth_authorization;
DROP TABLE mailbox_authorizations;

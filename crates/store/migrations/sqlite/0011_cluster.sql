-- This node in its cluster (one row once it has joined one or become a primary; none while standalone).
CREATE TABLE cluster_self (
    id                  INTEGER PRIMARY KEY CHECK (id = 1),
    -- primary, backup or traffic.
    role                TEXT    NOT NULL,
    name                TEXT    NOT NULL,
    -- Raised by every promotion; a node that learns of a higher one follows its primary.
    epoch               INTEGER NOT NULL,
    -- For a follower: the primary it takes its configuration from, its certificate's SHA-256 (pinned), and the
    -- key exchanged with it when joining (sealed).
    primary_name        TEXT,
    primary_url         TEXT,
    primary_fingerprint TEXT,
    sealed_key          BLOB,
    -- The primary's configuration revision last taken, when, and the snapshot's digest.
    synced_revision     INTEGER,
    synced_digest       TEXT,
    synced_at           INTEGER
);

-- The other nodes, as this node knows them: on the primary, every node that joined (and the pending join codes);
-- on a follower, the list the primary last sent.
CREATE TABLE cluster_nodes (
    name            TEXT    PRIMARY KEY,
    role            TEXT    NOT NULL,
    -- https://host:port of its cluster listener, and its certificate's SHA-256.
    advertise       TEXT,
    fingerprint     TEXT,
    -- The key exchanged when it joined (sealed); only on the primary.
    sealed_key      BLOB,
    -- A join code not used yet: the SHA-256 of its secret, until when it works.
    code_hash       BLOB,
    code_expires_at INTEGER,
    joined_at       INTEGER,
    last_contact_at INTEGER,
    version         TEXT,
    -- The primary's configuration revision the node last took, and when.
    synced_revision INTEGER,
    synced_at       INTEGER
);

-- Events reported to Tidings or raised by it, and the notifications mailed for them. Times are Unix ms.

CREATE TABLE events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    -- A tidings_core::notify::EventKind identifier, such as failover.takeover.
    kind        TEXT    NOT NULL,
    -- The node the event is about (reported by), such as the appliance's host name.
    node        TEXT    NOT NULL,
    -- JSON object of string details.
    details     TEXT    NOT NULL,
    -- Who reported it: api:<token name>, cli:<user>, tidings.
    origin      TEXT    NOT NULL,
    received_at INTEGER NOT NULL,
    -- pending: not handled yet; mailed: its mail is in the outbox (message_id); counted: inside the repeat
    -- window, reported by a later mail; recorded: kept without a mail (a notification's own dead letter).
    state       TEXT    NOT NULL CHECK (state IN ('pending', 'mailed', 'counted', 'recorded')),
    -- The outbox message of its mail (no foreign key: purging the outbox keeps the event history).
    message_id  INTEGER,
    -- For a mailed event: the earlier occurrences its mail reported.
    repeats     INTEGER NOT NULL DEFAULT 0,
    handled_at  INTEGER
);
CREATE INDEX events_state ON events (state, id);

-- The repeat window per kind and node.
CREATE TABLE event_throttle (
    kind           TEXT    NOT NULL,
    node           TEXT    NOT NULL,
    last_mailed_at INTEGER NOT NULL,
    repeats        INTEGER NOT NULL,
    repeats_since  INTEGER,
    -- The latest occurrence (mailed or counted).
    last_event_id  INTEGER NOT NULL,
    PRIMARY KEY (kind, node)
);

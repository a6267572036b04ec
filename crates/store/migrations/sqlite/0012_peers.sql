-- The daemons that use this database, as each last said (on a PostgreSQL database several nodes share it; an
-- SQLite database has at most its one daemon). `node` is a daemon's name (--node-id), `instance` the id of its
-- data directory, so that a node restarted is told apart from another node of the same name.
CREATE TABLE peers (
    node       TEXT    PRIMARY KEY,
    instance   TEXT    NOT NULL,
    version    TEXT    NOT NULL,
    address    TEXT,
    started_at INTEGER NOT NULL,
    seen_at    INTEGER NOT NULL
);

-- The daemons that use this database, as each last said (see the SQLite migration 0012_peers.sql).
CREATE TABLE peers (
    node       TEXT   PRIMARY KEY,
    instance   TEXT   NOT NULL,
    version    TEXT   NOT NULL,
    address    TEXT,
    started_at BIGINT NOT NULL,
    seen_at    BIGINT NOT NULL
);

-- The status page and the metrics ask for the last message delivered (and failed) without reading the outbox
-- through (see the SQLite migration 0013_status_page.sql).
CREATE INDEX messages_settled ON messages (status, updated_at);

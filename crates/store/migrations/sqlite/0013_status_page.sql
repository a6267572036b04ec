-- The status page and the metrics ask for the last message delivered (and failed) without reading the outbox
-- through.
CREATE INDEX messages_settled ON messages (status, updated_at);

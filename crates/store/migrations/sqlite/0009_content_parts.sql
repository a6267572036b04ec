-- A message's content beyond its first part (message_content holds the first CONTENT_PART octets): written and
-- read a part at a time, so that a message of many megabytes is never held by SQLite, or by sqlx, in one piece.
CREATE TABLE message_content_parts (
    message_id INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    -- 1, 2, …: the part's place after the first.
    part       INTEGER NOT NULL,
    content    BLOB    NOT NULL,
    PRIMARY KEY (message_id, part)
);

-- Outbox bodies are stored LZ4-compressed in packed_body (the block format,
-- led by the uncompressed length as four little-endian bytes). A 7.7 KB
-- GitHub push packs to about 2.3 KB: on SQLite its row then fits in one
-- page instead of three, so a batch writes, syncs and later checkpoints a
-- third of the pages. body_size is the unpacked length, by which a claim
-- limits how much it reads at once.
--
-- Rows queued before this migration keep their text in body; every row has
-- exactly one of the two. (BYTEA is PostgreSQL's name; SQLite keeps the
-- bytes as they are under any type name.)

CREATE TABLE outbox_packed (
    id              TEXT PRIMARY KEY,
    message_id      TEXT NOT NULL,
    topic           TEXT NOT NULL,
    body            TEXT,
    packed_body     BYTEA,
    body_size       BIGINT NOT NULL,
    headers         TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    locked_until    BIGINT NOT NULL DEFAULT 0,
    state           TEXT NOT NULL DEFAULT 'pending',
    last_error      TEXT,
    CHECK ((body IS NULL) <> (packed_body IS NULL))
);

INSERT INTO outbox_packed (id, message_id, topic, body, packed_body, body_size, headers,
                           created_at, attempts, next_attempt_at, locked_until, state,
                           last_error)
SELECT id, message_id, topic, body, NULL, octet_length(body), headers,
       created_at, attempts, next_attempt_at, locked_until, state, last_error
FROM outbox;

DROP TABLE outbox;
ALTER TABLE outbox_packed RENAME TO outbox;
CREATE INDEX outbox_due ON outbox (state, next_attempt_at);

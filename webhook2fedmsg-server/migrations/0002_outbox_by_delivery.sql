-- The outbox is keyed by the id of the delivery that queued the message.
-- Delivery ids are UUIDv7, so new rows are appended at the end of the key
-- instead of landing at random places, as the random message ids did.
--
-- A delivery's outcome is no longer updated when its message is published:
-- it is read from the outbox (queued or failed while the row is there,
-- published once it is gone), so publishing only deletes outbox rows.

CREATE TABLE outbox_by_delivery (
    id              TEXT PRIMARY KEY,
    message_id      TEXT NOT NULL,
    topic           TEXT NOT NULL,
    body            TEXT NOT NULL,
    headers         TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    locked_until    BIGINT NOT NULL DEFAULT 0,
    state           TEXT NOT NULL DEFAULT 'pending',
    last_error      TEXT
);

-- A message whose delivery was already purged keeps its message id as its
-- row id: both are UUIDs, so it cannot collide with a delivery's.
INSERT INTO outbox_by_delivery (id, message_id, topic, body, headers, created_at,
                                attempts, next_attempt_at, locked_until, state, last_error)
SELECT COALESCE((SELECT d.id FROM deliveries d WHERE d.message_id = o.message_id LIMIT 1),
                o.message_id),
       o.message_id, o.topic, o.body, o.headers, o.created_at,
       o.attempts, o.next_attempt_at, o.locked_until, o.state, o.last_error
FROM outbox o;

DROP TABLE outbox;
ALTER TABLE outbox_by_delivery RENAME TO outbox;
CREATE INDEX outbox_due ON outbox (state, next_attempt_at);

-- Messages were found by id only to update their delivery's outcome.
DROP INDEX deliveries_message;
ALTER TABLE deliveries DROP COLUMN published_at;

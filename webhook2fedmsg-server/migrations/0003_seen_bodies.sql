-- Body digests of published deliveries that are past the dedupe window.
-- A published message carries its body and signature, so without these a
-- body could be sent again, and published anew, once its delivery is
-- forgotten. They are small, and kept until their token is removed.
CREATE TABLE seen_bodies (
    token_id    TEXT NOT NULL REFERENCES tokens (id) ON DELETE CASCADE,
    body_digest TEXT NOT NULL,
    PRIMARY KEY (token_id, body_digest)
);

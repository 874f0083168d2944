-- The whole schema, written once for SQLite and PostgreSQL alike: only
-- TEXT and BIGINT columns, times in Unix milliseconds, ids as text.

CREATE TABLE users (
    username      TEXT PRIMARY KEY,
    email         TEXT,
    groups_json   TEXT NOT NULL DEFAULT '[]',
    created_at    BIGINT NOT NULL,
    last_login_at BIGINT
);

CREATE TABLE tokens (
    id           TEXT PRIMARY KEY,
    hook_id      TEXT NOT NULL UNIQUE,
    owner        TEXT NOT NULL REFERENCES users (username),
    service      TEXT NOT NULL,
    name         TEXT NOT NULL,
    enabled      BIGINT NOT NULL DEFAULT 1,
    instance_url TEXT,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT
);
CREATE INDEX tokens_owner ON tokens (owner);
CREATE INDEX tokens_service ON tokens (service);

-- A token has one current secret (expires_at NULL) and, during a rotation,
-- old ones that keep verifying until expires_at.
CREATE TABLE token_secrets (
    id         TEXT PRIMARY KEY,
    token_id   TEXT NOT NULL REFERENCES tokens (id) ON DELETE CASCADE,
    sealed     TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT
);
CREATE INDEX token_secrets_token ON token_secrets (token_id);

-- Every accepted delivery, kept for the retention window: the unique
-- indexes are the dedupe of redeliveries (same delivery id) and replays
-- (same body) on one token.
CREATE TABLE deliveries (
    id           TEXT PRIMARY KEY,
    token_id     TEXT NOT NULL REFERENCES tokens (id) ON DELETE CASCADE,
    delivery_id  TEXT,
    body_digest  TEXT NOT NULL,
    received_at  BIGINT NOT NULL,
    topic        TEXT NOT NULL,
    message_id   TEXT,
    outcome      TEXT NOT NULL,
    reason       TEXT,
    published_at BIGINT
);
CREATE UNIQUE INDEX deliveries_delivery_id ON deliveries (token_id, delivery_id);
CREATE UNIQUE INDEX deliveries_body ON deliveries (token_id, body_digest);
CREATE INDEX deliveries_recent ON deliveries (token_id, received_at);
CREATE INDEX deliveries_message ON deliveries (message_id);
CREATE INDEX deliveries_age ON deliveries (received_at);

-- Messages not yet on the broker. Not tied to tokens: removing a token
-- never drops a message that was accepted.
CREATE TABLE outbox (
    message_id      TEXT PRIMARY KEY,
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
CREATE INDEX outbox_due ON outbox (state, next_attempt_at);

CREATE TABLE sessions (
    id_hash    TEXT PRIMARY KEY,
    username   TEXT NOT NULL REFERENCES users (username) ON DELETE CASCADE,
    csrf_token TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX sessions_expiry ON sessions (expires_at);

-- Login attempts in flight: state, nonce and PKCE verifier until callback.
CREATE TABLE logins (
    state_hash    TEXT PRIMARY KEY,
    nonce         TEXT NOT NULL,
    pkce_verifier TEXT NOT NULL,
    next_path     TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    username     TEXT NOT NULL REFERENCES users (username) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    key_hash     TEXT NOT NULL UNIQUE,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked_at   BIGINT
);
CREATE INDEX api_keys_user ON api_keys (username);

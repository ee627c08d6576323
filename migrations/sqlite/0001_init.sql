-- Portable schema: ids and JSON are TEXT, timestamps are BIGINT unix milliseconds and flags are
-- BIGINT 0/1, so the same statements (through sqlx's Any driver) serve Postgres and SQLite.

CREATE TABLE namespaces (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    auth        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE webhooks (
    id                      TEXT PRIMARY KEY,
    namespace_id            TEXT NOT NULL REFERENCES namespaces(id) ON DELETE CASCADE,
    url                     TEXT NOT NULL,
    events                  TEXT NOT NULL,
    secret                  TEXT NOT NULL,
    previous_secret         TEXT,
    previous_secret_until   BIGINT,
    reply                   BIGINT NOT NULL DEFAULT 0,
    durable                 BIGINT NOT NULL DEFAULT 0,
    timeout_ms              BIGINT NOT NULL,
    headers                 TEXT NOT NULL,
    enabled                 BIGINT NOT NULL DEFAULT 1,
    created_at              BIGINT NOT NULL,
    updated_at              BIGINT NOT NULL
);
CREATE INDEX webhooks_namespace_idx ON webhooks(namespace_id);

CREATE TABLE api_keys (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    namespaces    TEXT NOT NULL,
    key_hash      TEXT NOT NULL UNIQUE,
    prefix        TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    last_used_at  BIGINT,
    revoked_at    BIGINT
);

CREATE TABLE deliveries (
    id               TEXT PRIMARY KEY,
    webhook_id       TEXT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    event            TEXT NOT NULL,
    payload          TEXT NOT NULL,
    status           TEXT NOT NULL,
    attempts         BIGINT NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT,
    last_status      BIGINT,
    last_error       TEXT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);
CREATE INDEX deliveries_due_idx ON deliveries(status, next_attempt_at);
CREATE INDEX deliveries_webhook_idx ON deliveries(webhook_id, created_at);

-- One row; every admin change bumps it so that every node notices and reloads its catalog.
CREATE TABLE catalog_version (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    version  BIGINT NOT NULL
);
INSERT INTO catalog_version (id, version) VALUES (1, 0);

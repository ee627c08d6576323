-- The durable outbox: deliveries carry their socket and sequence number, their size (for the
-- byte budget), a lease (which process holds the row while it is queued or in flight), whether
-- the next attempt is a single manual one, and the history of their attempts (JSON).

ALTER TABLE deliveries ADD COLUMN socket_id TEXT;
ALTER TABLE deliveries ADD COLUMN seq BIGINT;
ALTER TABLE deliveries ADD COLUMN size BIGINT NOT NULL DEFAULT 0;
ALTER TABLE deliveries ADD COLUMN lease_owner TEXT;
ALTER TABLE deliveries ADD COLUMN lease_until BIGINT;
ALTER TABLE deliveries ADD COLUMN manual BIGINT NOT NULL DEFAULT 0;
ALTER TABLE deliveries ADD COLUMN history TEXT NOT NULL DEFAULT '[]';
UPDATE deliveries SET size = LENGTH(payload);

-- Listing newest first is by id (msg_ + UUIDv7, time-ordered); pruning by status and age; the
-- byte budget sums sizes per status and webhook from the index alone.
DROP INDEX deliveries_webhook_idx;
CREATE INDEX deliveries_webhook_idx ON deliveries(webhook_id, id);
CREATE INDEX deliveries_status_updated_idx ON deliveries(status, updated_at);
CREATE INDEX deliveries_usage_idx ON deliveries(status, webhook_id, size);

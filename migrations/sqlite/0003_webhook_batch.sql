-- Batched webhooks: the bounds of one POST as JSON ({"max_events", "max_bytes",
-- "max_wait_ms"}), NULL for a webhook that sends one POST per delivery.
ALTER TABLE webhooks ADD COLUMN batch TEXT;

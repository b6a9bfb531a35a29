-- Migration 045: idempotency_records, the table that stores every API result keyed by the
-- client's idempotency key, with a time to live.
-- Runs in one transaction (sqlx wraps each file; with psql use --single-transaction).

-- Re-applying a migration that is already there fails with one clear sentence instead of
-- "relation already exists", and the transaction leaves nothing half-applied.
DO $$
BEGIN
    IF to_regclass('idempotency_records') IS NOT NULL THEN
        RAISE EXCEPTION 'migration 045 is already applied: table idempotency_records already exists (nothing was changed)'
            USING ERRCODE = 'duplicate_table';
    END IF;
END
$$;

CREATE TABLE idempotency_records (
    request_id UUID PRIMARY KEY,           -- Unique request identifier
    operation VARCHAR(100) NOT NULL,       -- Operation name for debugging
    result_payload TEXT NOT NULL,          -- JSON serialized result
    status_code INTEGER,                   -- HTTP status code
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    expires_at TIMESTAMPTZ NOT NULL,       -- TTL expiry timestamp
    CONSTRAINT chk_expires_at CHECK (expires_at > created_at)
);

-- Speeds up cleanup queries (finding expired records).
CREATE INDEX idx_idempotency_expires ON idempotency_records (expires_at);

-- Optional index for analytics/monitoring.
CREATE INDEX idx_idempotency_operation ON idempotency_records (operation);

COMMENT ON TABLE idempotency_records IS 'Stored API results keyed by idempotency key, with a TTL (migration 045)';

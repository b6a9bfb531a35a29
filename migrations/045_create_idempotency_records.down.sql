-- Down migration 045: removes the table and, with it, its indexes and constraint.
DROP INDEX IF EXISTS idx_idempotency_operation;
DROP INDEX IF EXISTS idx_idempotency_expires;
DROP TABLE IF EXISTS idempotency_records;

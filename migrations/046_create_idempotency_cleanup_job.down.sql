-- Down migration 046: removes the cleanup function.
DROP FUNCTION IF EXISTS cleanup_expired_idempotency_records();

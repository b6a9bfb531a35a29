-- Down migration 046 (partitioned layout): removes the cleanup function. The partitions stay.
DROP FUNCTION IF EXISTS cleanup_expired_idempotency_records();

-- Down migration 045 (partitioned layout): removes the functions and the table with all its
-- partitions, indexes and constraints. A partition already detached (a plain table) stays.
DROP FUNCTION IF EXISTS create_idempotency_partitions(integer, integer);
DROP FUNCTION IF EXISTS idempotency_records_partitions();
DROP TABLE IF EXISTS idempotency_records;

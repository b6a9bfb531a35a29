-- Migration 045 (partitioned layout): idempotency_records partitioned by RANGE (expires_at) into
-- hourly partitions, so expired rows are removed by dropping whole partitions instead of DELETE.
-- An alternative to migrations/045_create_idempotency_records.up.sql, never both: see
-- migrations/partitioned/README.md, and read the uniqueness trade-off there first.
-- Runs in one transaction (sqlx wraps each file; with psql use --single-transaction).

DO $$
BEGIN
    IF to_regclass('idempotency_records') IS NOT NULL THEN
        RAISE EXCEPTION 'migration 045 is already applied: table idempotency_records already exists (nothing was changed)'
            USING ERRCODE = 'duplicate_table';
    END IF;
END
$$;

-- Same columns, types, nullability, default and CHECK as the unpartitioned table. The primary key
-- must contain the partition key, so it is (request_id, expires_at): the database no longer
-- enforces that request_id alone is unique (README.md says what the application does instead).
CREATE TABLE idempotency_records (
    request_id UUID NOT NULL,              -- Unique request identifier (enforced per expires_at only)
    operation VARCHAR(100) NOT NULL,       -- Operation name for debugging
    result_payload TEXT NOT NULL,          -- JSON serialized result
    status_code INTEGER,                   -- HTTP status code
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    expires_at TIMESTAMPTZ NOT NULL,       -- TTL expiry timestamp, and the partition key
    CONSTRAINT idempotency_records_pkey PRIMARY KEY (request_id, expires_at),
    CONSTRAINT chk_expires_at CHECK (expires_at > created_at)
) PARTITION BY RANGE (expires_at);

-- Partitioned indexes: every partition gets its own copy.
CREATE INDEX idx_idempotency_expires ON idempotency_records (expires_at);
CREATE INDEX idx_idempotency_operation ON idempotency_records (operation);

COMMENT ON TABLE idempotency_records IS 'Stored API results keyed by idempotency key, with a TTL; hourly partitions on expires_at (migration 045, partitioned layout)';

-- idempotency_records_partitions(): one row per partition with its bounds (NULL = unbounded, or
-- the DEFAULT partition), for the functions below and for people:
--   SELECT * FROM idempotency_records_partitions();
CREATE FUNCTION idempotency_records_partitions()
RETURNS TABLE (partition_name name, lower_bound timestamptz, upper_bound timestamptz,
               is_default boolean)
LANGUAGE sql STABLE
AS $$
    SELECT c.relname,
           CASE WHEN b[1] ~ '^''[^'']*''$' THEN btrim(b[1], '''')::timestamptz END,
           CASE WHEN b[2] ~ '^''[^'']*''$' THEN btrim(b[2], '''')::timestamptz END,
           pg_get_expr(c.relpartbound, 0) = 'DEFAULT'
      FROM pg_inherits inh
      JOIN pg_class c ON c.oid = inh.inhrelid
      LEFT JOIN LATERAL regexp_match(pg_get_expr(c.relpartbound, 0),
                                     '^FOR VALUES FROM \((.*)\) TO \((.*)\)$') b ON true
     WHERE inh.inhparent = 'idempotency_records'::regclass
     ORDER BY 3 NULLS FIRST, 1;
$$;

COMMENT ON FUNCTION idempotency_records_partitions() IS 'Partitions of idempotency_records with their bounds (migration 045, partitioned layout)';

-- create_idempotency_partitions(hours_ahead, hours_back): makes sure an hourly partition exists
-- for every hour from hours_back hours before the current hour (UTC) to hours_ahead hours after
-- it, so rows expiring up to at least now() + hours_ahead can be inserted. Partitions are named
-- idempotency_records_pYYYYMMDDHH (the UTC hour of their lower bound) and hold
-- [that hour, the next hour). Idempotent: an hour already covered by any partition (whatever its
-- name) is skipped. Returns how many partitions it created.
--
-- Each partition is created as a plain table, then ATTACHed: ATTACH PARTITION takes only a
-- SHARE UPDATE EXCLUSIVE lock on the parent (reads and writes go on), whereas
-- CREATE TABLE ... PARTITION OF takes an ACCESS EXCLUSIVE lock and would queue behind every long
-- query on the table. When it cannot attach a partition within lock_timeout (5 s) it stops with a
-- WARNING and returns; the next call goes on.
--
-- There is no DEFAULT partition, on purpose (README.md): an insert whose expires_at lies beyond
-- the newest partition fails (SQLSTATE 23514, "no partition of relation found for row"). Run this
-- function (or cleanup_expired_idempotency_records(), which calls it) at least hourly and keep
-- hours_ahead above the longest TTL the application uses.
CREATE FUNCTION create_idempotency_partitions(hours_ahead integer DEFAULT 48, hours_back integer DEFAULT 48)
RETURNS integer
LANGUAGE plpgsql
SET lock_timeout = '5s'
AS $$
DECLARE
    parent regclass := to_regclass('idempotency_records');
    nsp name;
    first_hour timestamptz := date_trunc('hour', now(), 'UTC');
    lo timestamptz;
    hi timestamptz;
    part text;
    created integer := 0;
BEGIN
    IF parent IS NULL THEN
        RAISE EXCEPTION 'table idempotency_records does not exist (apply migration 045 first)';
    END IF;
    IF hours_ahead IS NULL OR hours_back IS NULL OR hours_ahead < 0 OR hours_back < 0 THEN
        RAISE EXCEPTION 'hours_ahead and hours_back must be 0 or more (got % and %)', hours_ahead, hours_back;
    END IF;
    IF hours_ahead + hours_back > 24 * 366 THEN
        RAISE EXCEPTION 'refusing to create more than a year of hourly partitions (% hours)', hours_ahead + hours_back;
    END IF;
    SELECT n.nspname INTO nsp
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.oid = parent;

    FOR i IN -hours_back .. hours_ahead LOOP
        lo := first_hour + make_interval(hours => i);
        hi := lo + interval '1 hour';
        CONTINUE WHEN EXISTS (
            SELECT 1 FROM idempotency_records_partitions() p
             WHERE NOT p.is_default
               AND (p.lower_bound IS NULL OR p.lower_bound < hi)
               AND (p.upper_bound IS NULL OR p.upper_bound > lo)
        );
        part := 'idempotency_records_p' || to_char(lo AT TIME ZONE 'UTC', 'YYYYMMDDHH24');
        IF to_regclass(format('%I.%I', nsp, part)) IS NOT NULL THEN
            RAISE WARNING 'table %.% exists but is not a partition of %; hour % is not covered',
                nsp, part, parent, lo;
            CONTINUE;
        END IF;
        BEGIN
            EXECUTE format('CREATE TABLE %I.%I (LIKE %s INCLUDING DEFAULTS INCLUDING CONSTRAINTS)',
                           nsp, part, parent);
            EXECUTE format('ALTER TABLE %s ATTACH PARTITION %I.%I FOR VALUES FROM (%L) TO (%L)',
                           parent, nsp, part,
                           to_char(lo AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || '+00',
                           to_char(hi AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || '+00');
        EXCEPTION WHEN lock_not_available THEN
            RAISE WARNING 'could not attach partition %.% within lock_timeout: a transaction holds a conflicting lock on %; the next call retries',
                nsp, part, parent;
            RETURN created;
        END;
        created := created + 1;
    END LOOP;
    RETURN created;
END;
$$;

COMMENT ON FUNCTION create_idempotency_partitions(integer, integer) IS 'Creates the missing hourly partitions of idempotency_records around now(), returns how many (migration 045, partitioned layout)';

-- Pin the functions to this schema, so that pg_cron (or a session with another search_path)
-- finds idempotency_records.
DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION idempotency_records_partitions() SET search_path = %I', current_schema());
    EXECUTE format('ALTER FUNCTION create_idempotency_partitions(integer, integer) SET search_path = %I', current_schema());
END
$$;

-- Partitions for the past and the next 48 hours, so inserts work right away.
DO $$
BEGIN
    PERFORM create_idempotency_partitions();
END
$$;

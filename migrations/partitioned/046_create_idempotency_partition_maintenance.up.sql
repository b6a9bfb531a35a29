-- Migration 046 (partitioned layout): cleanup_expired_idempotency_records() with the same
-- contract as the unpartitioned one: afterwards no row with expires_at <= now() (the server's
-- clock) is left, and it returns how many rows it removed:
--   SELECT * FROM cleanup_expired_idempotency_records();   -- one row, column deleted_count (bigint)
-- Instead of deleting row by row it
--   1. creates the partitions for the next 48 hours (create_idempotency_partitions(48, 0)), so an
--      hourly pg_cron run also keeps the table ready for inserts;
--   2. deletes the expired rows of the partition that straddles now() (and of a DEFAULT
--      partition, if someone added one);
--   3. counts the rows of every fully expired partition (upper bound <= now()) and drops it:
--      no per-row WAL, no dead tuples, no VACUUM afterwards.
-- Dropping a partition needs an ACCESS EXCLUSIVE lock on idempotency_records. The function runs
-- with lock_timeout = 1s (while it waits for that lock, the application's queries on the table
-- queue behind it): when a long query on the table keeps it from dropping within that time, it
-- deletes the rows of the partitions it could not drop instead (slower, same result) and raises
-- a WARNING; the next run drops the emptied partitions.
-- The drops hold their lock until the calling transaction ends: call it on its own
-- (autocommit, or pg_cron), not inside a long transaction.
DO $$
BEGIN
    IF to_regprocedure('cleanup_expired_idempotency_records()') IS NOT NULL THEN
        RAISE EXCEPTION 'migration 046 is already applied: function cleanup_expired_idempotency_records() already exists (nothing was changed)'
            USING ERRCODE = 'duplicate_function';
    END IF;
    IF to_regprocedure('create_idempotency_partitions(integer, integer)') IS NULL THEN
        RAISE EXCEPTION 'migration 046 (partitioned layout) needs migration 045 of the partitioned layout (migrations/partitioned/045_create_idempotency_records_partitioned.up.sql)'
            USING ERRCODE = 'undefined_function';
    END IF;
END
$$;

CREATE FUNCTION cleanup_expired_idempotency_records()
RETURNS TABLE (deleted_count BIGINT)
LANGUAGE plpgsql
SET lock_timeout = '1s'
AS $$
DECLARE
    cutoff timestamptz := now();
    nsp name;
    p record;
    n bigint;
    total bigint := 0;
    droppable name[] := '{}';
    counted bigint[] := '{}';
    failed name[] := '{}';
    contended boolean := false;
BEGIN
    SELECT n2.nspname INTO nsp
      FROM pg_class c JOIN pg_namespace n2 ON n2.oid = c.relnamespace
     WHERE c.oid = 'idempotency_records'::regclass;

    -- 1. Keep the partitions ahead (never recreate past hours: hours_back = 0).
    PERFORM create_idempotency_partitions(48, 0);

    -- 2. Partitions that may hold both expired and live rows: delete the expired ones.
    FOR p IN SELECT * FROM idempotency_records_partitions() x
              WHERE coalesce(x.upper_bound > cutoff, true)
                AND coalesce(x.lower_bound <= cutoff, true)
    LOOP
        EXECUTE format('DELETE FROM %I.%I WHERE expires_at <= $1', nsp, p.partition_name) USING cutoff;
        GET DIAGNOSTICS n = ROW_COUNT;
        total := total + n;
    END LOOP;

    -- 3a. Fully expired partitions: count their rows, holding a SHARE lock so that none is
    --     added before the drop (reads go on).
    FOR p IN SELECT * FROM idempotency_records_partitions() x
              WHERE x.upper_bound <= cutoff
              ORDER BY x.upper_bound
    LOOP
        IF NOT contended THEN
            BEGIN
                EXECUTE format('LOCK TABLE %I.%I IN SHARE MODE', nsp, p.partition_name);
                EXECUTE format('SELECT count(*) FROM %I.%I', nsp, p.partition_name) INTO n;
                droppable := droppable || p.partition_name;
                counted := counted || n;
                CONTINUE;
            EXCEPTION WHEN lock_not_available OR deadlock_detected THEN
                contended := true;
            END;
        END IF;
        failed := failed || p.partition_name;
    END LOOP;

    -- 3b. Drop them. Each drop takes an ACCESS EXCLUSIVE lock on idempotency_records until the
    --     end of the transaction, so this comes last. After the first lock timeout the rest are
    --     not tried (each would wait lock_timeout again).
    FOR i IN 1 .. coalesce(array_length(droppable, 1), 0) LOOP
        IF NOT contended THEN
            BEGIN
                EXECUTE format('DROP TABLE %I.%I', nsp, droppable[i]);
                total := total + counted[i];
                CONTINUE;
            EXCEPTION WHEN lock_not_available OR deadlock_detected THEN
                contended := true;
            END;
        END IF;
        failed := failed || droppable[i];
    END LOOP;

    -- 3c. What could not be dropped in time: delete its rows instead.
    IF cardinality(failed) > 0 THEN
        RAISE WARNING 'could not lock idempotency_records within lock_timeout to drop % expired partition(s) (a long query holds a lock on it); deleted their rows instead',
            cardinality(failed);
    END IF;
    FOR i IN 1 .. coalesce(array_length(failed, 1), 0) LOOP
        EXECUTE format('DELETE FROM %I.%I WHERE expires_at <= $1', nsp, failed[i]) USING cutoff;
        GET DIAGNOSTICS n = ROW_COUNT;
        total := total + n;
    END LOOP;

    RETURN QUERY SELECT total;
END;
$$;

COMMENT ON FUNCTION cleanup_expired_idempotency_records() IS 'Drops the fully expired partitions of idempotency_records, deletes the expired rows of the current one, creates partitions ahead; returns deleted_count (migration 046, partitioned layout)';

DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION cleanup_expired_idempotency_records() SET search_path = %I', current_schema());
END
$$;

-- Pin the function's search_path to the schema it was created in: a pg_cron job (or any caller)
-- runs it with its own search_path, which could otherwise resolve idempotency_records to a
-- same-named table in another schema.
DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION cleanup_expired_idempotency_records() SET search_path = %I, pg_temp',
                   current_schema());
END
$$;

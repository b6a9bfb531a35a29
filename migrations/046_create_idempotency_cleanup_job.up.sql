-- Migration 046: cleanup_expired_idempotency_records(), deletes every record whose
-- expires_at <= now() (the server's clock) and returns how many it deleted:
--   SELECT * FROM cleanup_expired_idempotency_records();   -- one row, column deleted_count (bigint)
DO $$
BEGIN
    IF to_regprocedure('cleanup_expired_idempotency_records()') IS NOT NULL THEN
        RAISE EXCEPTION 'migration 046 is already applied: function cleanup_expired_idempotency_records() already exists (nothing was changed)'
            USING ERRCODE = 'duplicate_function';
    END IF;
END
$$;

CREATE FUNCTION cleanup_expired_idempotency_records()
RETURNS TABLE (deleted_count BIGINT)
LANGUAGE plpgsql
AS $$
DECLARE
    n BIGINT;
BEGIN
    DELETE FROM idempotency_records WHERE expires_at <= NOW();
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN QUERY SELECT n;
END;
$$;

COMMENT ON FUNCTION cleanup_expired_idempotency_records() IS 'Deletes expired idempotency records, returns deleted_count (migration 046)';

-- Pin the function's search_path to the schema it was created in: a pg_cron job (or any caller)
-- runs it with its own search_path, which could otherwise resolve idempotency_records to a
-- same-named table in another schema.
DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION cleanup_expired_idempotency_records() SET search_path = %I, pg_temp',
                   current_schema());
END
$$;

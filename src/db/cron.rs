//! pg_cron: the `cleanup-idempotency` job, its runs, scheduling it.

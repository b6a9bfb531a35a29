//! The sweep: the heap in physical order by TID ranges (PostgreSQL 14+), row by row where a range hits a lock.

use super::*;

/// The DELETE of one sweep batch: the rows of a range of heap pages that the rule lets go.
/// `lo`, `hi` (page numbers, `hi` excluded) and `bound` (the rule's bound: `cutoff - ttl`) are
/// SQL expressions; the done values and the stale bound are `$4` and `$5` when the rule binds
/// them.
pub(super) fn sweep_sql(
    table: &TableRef,
    rule: &DeleteRule,
    lo: &str,
    hi: &str,
    bound: &str,
) -> String {
    format!(
        "DELETE FROM {} WHERE ctid >= format('(%s,0)', {lo})::tid AND ctid < format('(%s,0)', {hi})::tid AND {}",
        table.qualified(),
        rule.deletable("", bound, "$4", "$5")
    )
}

/// A connection of its own (session settings, the advisory lock) and the pages to sweep.
pub(super) struct Sweeper {
    pub(super) conn: PgConnection,
    pub(super) pages: u64,
}

/// Advisory lock key of the sweep of one table: two sweeps of a table would only wait for
/// each other's rows, so a second cleanup walks the index (with `SKIP LOCKED`) instead.
pub(crate) fn sweep_lock_key(oid: u32) -> i64 {
    (0x1de7_i64 << 32) | i64::from(oid)
}

/// Prepare a sweep: `None` (walk instead) when the server cannot range-scan tuple ids (before
/// PostgreSQL 14 the plan is a sequential scan per batch) or another sweep of the table runs.
pub(super) async fn start_sweep(
    mut conn: PgConnection,
    table: &TableRef,
    rule: &DeleteRule,
    oid: u32,
) -> Result<Option<Sweeper>> {
    // The lock, the batches' session settings and the pages to sweep, in one round trip (the
    // settings do not matter when the lock is not taken: the connection is closed then, which
    // also releases the lock when the sweep is given up below).
    let (locked, _, _, pages): (bool, String, String, i64) = sqlx::query_as(
        "SELECT pg_try_advisory_lock($1), set_config('statement_timeout', $2, false),
                set_config('lock_timeout', $3, false),
                pg_relation_size($4::oid) / current_setting('block_size')::int8",
    )
    .bind(sweep_lock_key(oid))
    .bind(BATCH_STATEMENT_TIMEOUT)
    .bind(BATCH_LOCK_TIMEOUT)
    .bind(Oid(oid))
    .fetch_one(&mut conn)
    .await?;
    if !locked {
        tracing::info!("another cleanup sweeps {table}: this one walks the index");
        let _ = sqlx::Connection::close(conn).await;
        return Ok(None);
    }
    let pages = pages.max(0) as u64;
    // Without a TID range scan every batch would read the whole table. A small heap (at most 4
    // batches of at most 16 MB, see sweep_floor_pages) is not worth the check: even then its
    // batches read at most 4 x 64 MB.
    if pages > SMALL_SWEEP_PAGES {
        // The parameters of the real statement are $1..$5; EXPLAIN gets constants instead.
        let probe = sweep_sql(table, rule, "0", "1", "now()")
            .replace("$4", "'{}'::text[]")
            .replace("$5", "NULL::timestamptz");
        let plan: Result<Vec<String>, sqlx::Error> =
            sqlx::query_scalar(&format!("EXPLAIN {probe}"))
                .fetch_all(&mut conn)
                .await;
        let plan = match plan {
            Ok(plan) => plan,
            Err(e) => {
                let _ = sqlx::Connection::close(conn).await;
                return Err(explain_cleanup_error(&e, table));
            }
        };
        if !plan.iter().any(|l| l.contains("Tid Range Scan")) {
            tracing::info!("no TID range scan on this server: cleanup walks the index");
            let _ = sqlx::Connection::close(conn).await;
            return Ok(None);
        }
    }
    Ok(Some(Sweeper { conn, pages }))
}

/// Sweep the heap in ranges of pages, each its own statement (autocommit), the range sized to
/// take about `sweep_batch`. Returns the connection (it still holds the sweep's advisory lock
/// until closed) and (deleted, batches, why it stopped).
pub(super) async fn sweep<F: FnMut(&CleanupProgress)>(
    sweeper: Sweeper,
    run: &Run<'_>,
    reporter: &mut Reporter<'_, F>,
) -> Result<(PgConnection, (u64, u64, StopReason))> {
    let Sweeper { mut conn, pages } = sweeper;
    let sql = sweep_sql(run.table, run.rule, "$1::int8", "$2::int8", "$3");
    let deleting = Instant::now();
    let (mut deleted, mut batches, mut retries) = (0u64, 0u64, 0u32);
    let mut next = 0u64;
    let floor = sweep_floor_pages(pages);
    let mut size = SWEEP_INITIAL_PAGES.max(floor);
    let stopped = loop {
        if next >= pages {
            break StopReason::CaughtUp;
        }
        if let Some(stopped) = run.should_stop() {
            break stopped;
        }
        let end = next.saturating_add(size).min(pages);
        let t0 = Instant::now();
        let q = sqlx::query(&sql)
            .bind(next as i64)
            .bind(end as i64)
            .bind(run.rule.bound(run.cutoff));
        let done = run.rule.bind_query(q, run.cutoff).execute(&mut conn).await;
        let took = t0.elapsed();
        let rows = match done {
            Ok(r) => {
                retries = 0;
                r.rows_affected()
            }
            // A row of the range is locked by another session past the lock timeout: take the
            // range row by row, skipping what stays locked (counted as left behind at the end),
            // the way the walk skips locked rows.
            Err(e)
                if db_sqlstate(&e).as_deref() == Some("55P03")
                    && end - next <= ROW_BY_ROW_MAX_PAGES =>
            {
                match sweep_row_by_row(&mut conn, run, next, end).await {
                    Ok(rows) => {
                        retries = 0;
                        size = SWEEP_INITIAL_PAGES.max(floor);
                        rows
                    }
                    Err(e) => {
                        let _ = sqlx::Connection::close(conn).await;
                        return Err(run.failed(&e, deleted, batches));
                    }
                }
            }
            Err(e) if db_sqlstate(&e).as_deref() == Some("55P03") => {
                tracing::info!("a row of pages {next}..{end} is locked: narrowing the range");
                size = ROW_BY_ROW_MAX_PAGES;
                continue;
            }
            Err(e) if is_transient(&e) && retries < MAX_RETRIES => {
                retries += 1;
                tracing::warn!("cleanup sweep of pages {next}..{end} failed, retrying: {e}");
                size = (size / 4).max(1);
                run.retry_pause(retries).await;
                continue;
            }
            Err(e) => {
                let _ = sqlx::Connection::close(conn).await;
                return Err(run.failed(&e, deleted, batches));
            }
        };
        deleted += rows;
        batches += 1;
        next = end;
        reporter.report(CleanupProgress {
            batch_size: rows.min(u64::from(u32::MAX)) as u32,
            last_batch: took,
            method: Method::Sweep,
            pages_done: Some(next),
            pages_total: Some(pages),
            ..run.progress(deleted, batches, deleting)
        });
        size = next_sweep_pages(size, took, run.opts.sweep_batch, floor);
    };
    Ok((conn, (deleted, batches, stopped)))
}

/// A sweep range that hits a locked row is taken row by row when it is at most this many pages
/// (a larger one is first narrowed to this).
pub(super) const ROW_BY_ROW_MAX_PAGES: u64 = 64;
/// How long the row-by-row pass waits for one row's lock before it skips the row.
pub(super) const ROW_LOCK_TIMEOUT: &str = "100ms";

/// Delete the expired rows of pages `lo..hi` one at a time, each in its own transaction with a
/// short lock timeout; a row still locked then is skipped. Returns the rows deleted.
pub(super) async fn sweep_row_by_row(
    conn: &mut PgConnection,
    run: &Run<'_>,
    lo: u64,
    hi: u64,
) -> Result<u64, sqlx::Error> {
    let t = run.table.qualified();
    let rule = run.rule;
    let select = format!(
        "SELECT ctid::text FROM {t}
          WHERE ctid >= format('(%s,0)', $1::int8)::tid AND ctid < format('(%s,0)', $2::int8)::tid
            AND {}",
        rule.deletable("", "$3", "$4", "$5")
    );
    let q = sqlx::query_scalar(&select)
        .bind(lo as i64)
        .bind(hi as i64)
        .bind(rule.bound(run.cutoff));
    let ids: Vec<String> = rule
        .bind_scalar(q, run.cutoff)
        .fetch_all(&mut *conn)
        .await?;
    // The row's own condition again: it may have changed (finished, or back in flight) since.
    let delete = format!(
        "DELETE FROM {t} WHERE ctid = $1::tid AND {}",
        rule.deletable("", "$2", "$3", "$4")
    );
    let mut deleted = 0;
    let mut skipped = 0;
    for id in ids {
        let mut tx = sqlx::Connection::begin(&mut *conn).await?;
        sqlx::query("SELECT set_config('lock_timeout', $1, true)")
            .bind(ROW_LOCK_TIMEOUT)
            .execute(&mut *tx)
            .await?;
        let q = sqlx::query(&delete).bind(&id).bind(rule.bound(run.cutoff));
        match rule.bind_query(q, run.cutoff).execute(&mut *tx).await {
            Ok(r) => {
                tx.commit().await?;
                deleted += r.rows_affected();
            }
            Err(e) if db_sqlstate(&e).as_deref() == Some("55P03") => {
                tx.rollback().await?;
                skipped += 1;
            }
            Err(e) => return Err(e),
        }
    }
    if skipped > 0 {
        tracing::warn!("{skipped} expired rows of pages {lo}..{hi} are locked by another session: left for the next run");
    }
    Ok(deleted)
}

/// Fewest pages in a sweep batch (1 MB of heap: at most that much in full-page images per
/// commit). A batch's time includes its commit's WAL flush, a fixed cost: where that flush alone
/// takes longer than the target (a slow or shared disk), scaling to the target shrank the range
/// to one or two pages, and the fixed costs ruled (146k rows in 3,014 batches and 18.6 s
/// against 0.85 s with 20 ms batches, on this machine). With 32 pages a 100k-row cleanup still
/// took 141 batches of ~16 ms (a commit here waits ~8 ms for its flush): 0.17x the DELETE.
pub(super) const SWEEP_MIN_PAGES: u64 = 128;

/// A heap of at most this many pages (64 MB) is a small sweep: see [`sweep_floor_pages`].
pub(super) const SMALL_SWEEP_PAGES: u64 = 8192;
/// The largest range of a small sweep (16 MB of heap): at most 4 of them.
pub(super) const SMALL_SWEEP_RANGE: u64 = 2048;

/// The fewest pages in a sweep batch of a heap of `pages` pages. A small heap (at most
/// [`SMALL_SWEEP_PAGES`]) goes in the fewest equal ranges of at most [`SMALL_SWEEP_RANGE`]
/// pages (one for a heap of up to 16 MB, four at 64 MB): a batch's fixed costs (its round
/// trip, its commit's flush) were most of the time of a 2 ms batch, and a 100k-row table took
/// 35 of them where the single DELETE takes one statement (which, at that size, left the
/// inserts' p99 at 1-2x idle). A larger heap keeps [`SWEEP_MIN_PAGES`], its batches sized by
/// the time target: a long run of large commits is what makes the inserts wait.
pub(super) fn sweep_floor_pages(pages: u64) -> u64 {
    if pages <= SMALL_SWEEP_PAGES {
        let ranges = pages.div_ceil(SMALL_SWEEP_RANGE).max(1);
        pages
            .div_ceil(ranges)
            .clamp(SWEEP_MIN_PAGES, SMALL_SWEEP_RANGE)
    } else {
        SWEEP_MIN_PAGES
    }
}

/// The next sweep range: the last range scaled to the target duration, at most twice the last,
/// within `[floor, SWEEP_MAX_PAGES]` (`floor`: [`sweep_floor_pages`], at least
/// [`SWEEP_MIN_PAGES`]).
pub(super) fn next_sweep_pages(current: u64, took: Duration, target: Duration, floor: u64) -> u64 {
    let grown = current.saturating_mul(2);
    let proposed = if took.is_zero() {
        grown as f64
    } else {
        current as f64 * target.as_secs_f64() / took.as_secs_f64()
    };
    let floor = floor.clamp(SWEEP_MIN_PAGES, SWEEP_MAX_PAGES);
    (proposed.min(grown as f64).round() as u64).clamp(floor, SWEEP_MAX_PAGES)
}

//! The sweep: the heap in physical order by TID ranges (PostgreSQL 14+), row by row where a range hits a lock.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

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
    /// `wal_compression` as the sweep's sessions set it (see [`compress_full_pages`]).
    pub(super) wal_compression: Option<String>,
}

/// The session settings of every sweep connection, `$1` to `$3`: the batches' statement and
/// lock timeouts and their commits: with `$3` (the default) each waits for its own flush (a
/// role or database whose `synchronous_commit` is `off` gets `on` in these sessions: the sweep
/// then skips its final waiting commit, so its batches must not skip theirs; `local` and the
/// replication levels stay), else asynchronous (`--sweep-async-commit`).
const SWEEP_SESSION_SETTINGS: &str = "set_config('statement_timeout', $1, false),
        set_config('lock_timeout', $2, false),
        CASE WHEN NOT $3 THEN set_config('synchronous_commit', 'off', false)
             WHEN current_setting('synchronous_commit') = 'off'
             THEN set_config('synchronous_commit', 'on', false)
             ELSE current_setting('synchronous_commit') END";

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
    server_version_num: i32,
    sync_commit: bool,
) -> Result<Option<Sweeper>> {
    // Each batch waits for its own WAL flush (the default): the sweep then never runs ahead of
    // the disk, and the application's commits wait behind at most a batch's WAL. Measured at
    // 10M rows (insert p99 2.5x idle, 0.93x the single DELETE); asynchronous commits
    // (`--sweep-async-commit`) went 1.13x at 4.6x, and on a table whose pages compress better
    // let the WAL run ahead until every insert stalled for 60-90 ms. With them a crash can lose
    // the last batches' deletes, never anything else: those rows come back as they were,
    // expired, for the next cleanup; the sweep ends with a commit that waits for all of them
    // (see `sweep`).
    // The lock, the batches' session settings and the pages to sweep, in one round trip (the
    // settings do not matter when the lock is not taken: the connection is closed then, which
    // also releases the lock when the sweep is given up below).
    let (_, _, _, locked, pages): (String, String, String, bool, i64) = sqlx::query_as(&format!(
        "SELECT {SWEEP_SESSION_SETTINGS}, pg_try_advisory_lock($4),
                pg_relation_size($5::oid) / current_setting('block_size')::int8"
    ))
    .bind(BATCH_STATEMENT_TIMEOUT)
    .bind(BATCH_LOCK_TIMEOUT)
    .bind(sync_commit)
    .bind(sweep_lock_key(oid))
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
    let wal_compression = compress_full_pages(&mut conn, server_version_num).await;
    Ok(Some(Sweeper {
        conn,
        pages,
        wal_compression,
    }))
}

/// Compress the sweep's full-page images when the server does not already and the role may
/// set `wal_compression` (a superuser, or `GRANT SET ON PARAMETER wal_compression`, PostgreSQL
/// 15+): the first change of a page after a checkpoint writes the whole 8 kB page to the WAL,
/// and a cleanup changes every page it deletes from, so its WAL is mostly those images (3.7 GB
/// for 6M rows of 417 B). Less WAL is less for every commit on the server to wait for, and
/// fewer checkpoints forced by `max_wal_size` in the middle of the run. Only this session's
/// WAL is compressed; the setting dies with the connection. `lz4` where the server has it,
/// then `zstd`, then `pglz`. Returns the value set.
async fn compress_full_pages(conn: &mut PgConnection, server_version_num: i32) -> Option<String> {
    let sql = if server_version_num >= 150_000 {
        "SELECT CASE WHEN current_setting('wal_compression') = 'off'
                      AND has_parameter_privilege('wal_compression', 'SET')
                THEN set_config('wal_compression',
                       (SELECT CASE WHEN 'lz4' = ANY (enumvals) THEN 'lz4'
                                    WHEN 'zstd' = ANY (enumvals) THEN 'zstd'
                                    ELSE 'pglz' END
                          FROM pg_settings WHERE name = 'wal_compression'), false) END"
    } else {
        "SELECT CASE WHEN current_setting('wal_compression') = 'off'
                      AND (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
                THEN set_config('wal_compression', 'on', false) END"
    };
    match sqlx::query_scalar::<_, Option<String>>(sql)
        .fetch_one(&mut *conn)
        .await
    {
        Ok(set) => set,
        Err(e) => {
            tracing::info!("wal_compression left as it is: {e}");
            None
        }
    }
}

/// Sweep the heap in ranges of pages, each its own statement (autocommit), the range sized to
/// take about `sweep_batch`, on the sweeper's connection and its helpers at once: each takes the
/// next range when it is done with one, so while one waits for its commit's flush the other
/// deletes. Returns the lead connection (it still holds the sweep's advisory lock until closed)
/// and (deleted, batches, why it stopped), and whether a range met a locked row (the count of
/// what is left is then needed). The helpers are closed.
pub(super) async fn sweep<F: FnMut(&CleanupProgress) + Send>(
    sweeper: Sweeper,
    mut helpers: Vec<PgConnection>,
    run: &Run<'_>,
    reporter: &mut Reporter<'_, F>,
) -> Result<(PgConnection, (u64, u64, StopReason), bool)> {
    let Sweeper {
        mut conn, pages, ..
    } = sweeper;
    let sql = sweep_sql(run.table, run.rule, "$1::int8", "$2::int8", "$3");
    let shared = SweepShared {
        next: AtomicU64::new(0),
        deleted: AtomicU64::new(0),
        batches: AtomicU64::new(0),
        pages_done: AtomicU64::new(0),
        stopped: Mutex::new(None),
        failed: AtomicBool::new(false),
        locked: AtomicBool::new(false),
        deleting: Instant::now(),
        pages,
        floor: sweep_floor_pages(pages),
    };
    let reporter = Mutex::new(reporter);
    let workers = std::iter::once(&mut conn)
        .chain(helpers.iter_mut())
        .map(|c| sweep_worker(c, &sql, run, &shared, &reporter));
    let results = futures::future::join_all(workers).await;
    for h in helpers {
        let _ = sqlx::Connection::close(h).await;
    }
    if let Some(e) = results.into_iter().find_map(|r| r.err()) {
        let _ = sqlx::Connection::close(conn).await;
        return Err(e);
    }
    // Unless each batch waited for its own flush, the batches committed without waiting for
    // their WAL to reach the disk (see `SWEEP_SESSION_SETTINGS`); one commit that waits for it
    // makes every batch before it durable before the deleted rows are reported.
    if !run.opts.sweep_sync_commit {
        sqlx::query("SELECT set_config('synchronous_commit', 'on', false), txid_current()")
            .execute(&mut conn)
            .await
            .map_err(|e| {
                anyhow!("the deleted rows could not be made durable (the server may lose the last batches, which the next cleanup deletes again): {e}")
            })?;
    }
    let stopped = shared
        .stopped
        .lock()
        .ok()
        .and_then(|s| *s)
        .unwrap_or(StopReason::CaughtUp);
    Ok((
        conn,
        (
            shared.deleted.load(Ordering::Relaxed),
            shared.batches.load(Ordering::Relaxed),
            stopped,
        ),
        shared.locked.load(Ordering::Relaxed),
    ))
}

/// What the sweep's connections share: the next page to take and the running totals.
struct SweepShared {
    next: AtomicU64,
    deleted: AtomicU64,
    batches: AtomicU64,
    pages_done: AtomicU64,
    stopped: Mutex<Option<StopReason>>,
    failed: AtomicBool,
    /// A range met a row locked by another session.
    locked: AtomicBool,
    deleting: Instant,
    pages: u64,
    floor: u64,
}

/// One connection of the sweep: takes the next range until none is left, the run stops, or
/// another connection failed.
async fn sweep_worker<F: FnMut(&CleanupProgress)>(
    conn: &mut PgConnection,
    sql: &str,
    run: &Run<'_>,
    shared: &SweepShared,
    reporter: &Mutex<&mut Reporter<'_, F>>,
) -> Result<()> {
    let mut size = SWEEP_INITIAL_PAGES.max(shared.floor);
    loop {
        if shared.failed.load(Ordering::Relaxed) {
            return Ok(());
        }
        if let Some(stopped) = run.should_stop() {
            if let Ok(mut s) = shared.stopped.lock() {
                s.get_or_insert(stopped);
            }
            return Ok(());
        }
        let lo = shared.next.fetch_add(size, Ordering::Relaxed);
        if lo >= shared.pages {
            return Ok(());
        }
        let hi = lo.saturating_add(size).min(shared.pages);
        let t0 = Instant::now();
        let rows = match delete_range(conn, sql, run, lo, hi, &shared.locked).await {
            Ok(rows) => rows,
            Err(e) => {
                shared.failed.store(true, Ordering::Relaxed);
                return Err(run.failed(
                    &e,
                    shared.deleted.load(Ordering::Relaxed),
                    shared.batches.load(Ordering::Relaxed),
                ));
            }
        };
        let took = t0.elapsed();
        let deleted = shared.deleted.fetch_add(rows, Ordering::Relaxed) + rows;
        let batches = shared.batches.fetch_add(1, Ordering::Relaxed) + 1;
        let done = shared.pages_done.fetch_add(hi - lo, Ordering::Relaxed) + (hi - lo);
        if let Ok(mut r) = reporter.lock() {
            r.report(CleanupProgress {
                batch_size: rows.min(u64::from(u32::MAX)) as u32,
                last_batch: took,
                method: Method::Sweep,
                pages_done: Some(done),
                pages_total: Some(shared.pages),
                ..run.progress(deleted, batches, shared.deleting)
            });
        }
        size = next_sweep_pages(size, took, run.opts.sweep_batch, shared.floor);
    }
}

/// Delete the expired rows of pages `lo..hi`: one statement; where a row of the range stays
/// locked past the batch's lock timeout, pieces of at most [`ROW_BY_ROW_MAX_PAGES`], a piece
/// that hits the lock row by row (skipping what stays locked, counted as left behind at the
/// end, as the walk skips locked rows); after a transient failure, the rest of the range in
/// pieces a quarter the size, up to [`MAX_RETRIES`] failures in a row.
async fn delete_range(
    conn: &mut PgConnection,
    sql: &str,
    run: &Run<'_>,
    lo: u64,
    hi: u64,
    locked: &AtomicBool,
) -> Result<u64, sqlx::Error> {
    let (mut total, mut retries) = (0, 0);
    let mut step = hi - lo;
    let mut p = lo;
    while p < hi {
        let q = p.saturating_add(step).min(hi);
        match range_batch(conn, sql, run, p, q).await {
            Ok(rows) => {
                total += rows;
                retries = 0;
                p = q;
            }
            Err(e) if db_sqlstate(&e).as_deref() == Some("55P03") => {
                locked.store(true, Ordering::Relaxed);
                if q - p <= ROW_BY_ROW_MAX_PAGES {
                    total += sweep_row_by_row(conn, run, p, q).await?;
                    p = q;
                } else {
                    tracing::info!("a row of pages {p}..{q} is locked: narrowing the range");
                    step = ROW_BY_ROW_MAX_PAGES;
                }
            }
            Err(e) if is_transient(&e) && retries < MAX_RETRIES => {
                retries += 1;
                tracing::warn!("cleanup sweep of pages {p}..{q} failed, retrying: {e}");
                step = (step / 4).max(1);
                run.retry_pause(retries).await;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(total)
}

/// One sweep statement over pages `lo..hi`: the rows it deleted.
async fn range_batch(
    conn: &mut PgConnection,
    sql: &str,
    run: &Run<'_>,
    lo: u64,
    hi: u64,
) -> Result<u64, sqlx::Error> {
    let q = sqlx::query(sql)
        .bind(lo as i64)
        .bind(hi as i64)
        .bind(run.rule.bound(run.cutoff));
    Ok(run
        .rule
        .bind_query(q, run.cutoff)
        .execute(&mut *conn)
        .await?
        .rows_affected())
}

/// Helper connections for a sweep of `workers` connections in all: each from the pool (its
/// session set up as the pool sets every connection up: the time zone the rule's bound is read
/// in), detached from it (their session settings must not go back), with the batches' timeouts.
/// Fewer, or none, when the pool has no more to give within a second: the sweep then runs on
/// what it has.
pub(super) async fn sweep_helpers(
    pool: &PgPool,
    workers: u32,
    wal_compression: Option<&str>,
    sync_commit: bool,
) -> Vec<PgConnection> {
    let mut helpers = Vec::new();
    for _ in 1..workers.max(1) {
        let conn = match tokio::time::timeout(Duration::from_secs(1), pool.acquire()).await {
            Ok(Ok(c)) => c.detach(),
            Ok(Err(e)) => {
                tracing::info!("no helper connection for the sweep ({e}): fewer connections");
                break;
            }
            Err(_) => {
                tracing::info!("no helper connection for the sweep within 1 s: fewer connections");
                break;
            }
        };
        let mut conn = conn;
        let set: Result<(String, String, String, Option<String>), sqlx::Error> =
            sqlx::query_as(&format!(
                "SELECT {SWEEP_SESSION_SETTINGS},
                        CASE WHEN $4::text IS NOT NULL THEN set_config('wal_compression', $4, false) END"
            ))
            .bind(BATCH_STATEMENT_TIMEOUT)
            .bind(BATCH_LOCK_TIMEOUT)
            .bind(sync_commit)
            .bind(wal_compression)
            .fetch_one(&mut conn)
            .await;
        match set {
            Ok(_) => helpers.push(conn),
            Err(e) => {
                tracing::info!("a helper connection for the sweep failed ({e}): fewer connections");
                let _ = sqlx::Connection::close(conn).await;
                break;
            }
        }
    }
    helpers
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

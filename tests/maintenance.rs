//! Maintenance against a real server: batched cleanup (while live rows keep arriving, two at
//! once, cancelled half-way, dry run, max duration, on a partitioned table), its privilege and
//! read-only errors, ANALYZE/VACUUM and their ownership check, VACUUM progress, and the
//! headless `idemtop cleanup` command.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use common::*;
use idemtop::db::connect::ConnectConfig;
use idemtop::db::maintenance::{
    self, CleanupOptions, CleanupProgress, CleanupSummary, Method, MethodChoice, StopReason,
};
use idemtop::ident::TableRef;
use sqlx::{Executor, PgConnection, PgPool};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

fn guide() -> TableRef {
    TableRef::default()
}

fn db_name(url: &str) -> String {
    url.rsplit('/').next().unwrap().to_string()
}

async fn pool(url: &str) -> PgPool {
    ConnectConfig::from_url(url).pool(4).await.unwrap()
}

/// What cleanup uses for a large backlog on this server: the heap sweep needs TID range scans
/// (PostgreSQL 14+); 13 walks the index and says why.
async fn bulk_method(conn: &mut PgConnection) -> Method {
    if server_version_num(conn).await >= 140_000 {
        Method::Sweep
    } else {
        Method::Walk
    }
}

const NO_SWEEP_ON_13: &str = "PostgreSQL 13 has no TID range scan to sweep with";

/// `n` expired rows, three to an `expires_at` (so the keyset must handle ties).
async fn insert_expired(conn: &mut PgConnection, table: &TableRef, n: i64) {
    sqlx::query(&format!(
        "INSERT INTO {} (request_id, operation, result_payload, status_code, created_at, expires_at)
         SELECT gen_random_uuid(), 'expired', '{{}}', 200, now() - interval '3 days',
                now() - interval '2 days' + (g / 3) * interval '1 ms'
           FROM generate_series(1, $1) g",
        table.qualified()
    ))
    .bind(n)
    .execute(conn)
    .await
    .unwrap();
}

async fn insert_live(conn: &mut PgConnection, table: &TableRef, n: i64) {
    sqlx::query(&format!(
        "INSERT INTO {} (request_id, operation, result_payload, status_code, created_at, expires_at)
         SELECT gen_random_uuid(), 'live', '{{}}', 201, now(), now() + interval '1 hour'
           FROM generate_series(1, $1) g",
        table.qualified()
    ))
    .bind(n)
    .execute(conn)
    .await
    .unwrap();
}

async fn count(conn: &mut PgConnection, table: &TableRef, condition: &str) -> i64 {
    sqlx::query_scalar(&format!(
        "SELECT count(*) FROM {} WHERE {condition}",
        table.qualified()
    ))
    .fetch_one(conn)
    .await
    .unwrap()
}

/// Rows left: (expired, live), by the `operation` the inserts gave them.
async fn left(conn: &mut PgConnection, table: &TableRef) -> (i64, i64) {
    (
        count(conn, table, "operation = 'expired'").await,
        count(conn, table, "operation = 'live'").await,
    )
}

async fn expired_by(conn: &mut PgConnection, table: &TableRef, cutoff: DateTime<Utc>) -> i64 {
    sqlx::query_scalar(&format!(
        "SELECT count(*) FROM {} WHERE expires_at <= $1",
        table.qualified()
    ))
    .bind(cutoff)
    .fetch_one(conn)
    .await
    .unwrap()
}

async fn run_cleanup(pool: &PgPool, table: &TableRef, opts: &CleanupOptions) -> CleanupSummary {
    maintenance::cleanup(pool, table, opts, &CancellationToken::new(), |_| {})
        .await
        .unwrap()
}

async fn dry_run(pool: &PgPool, table: &TableRef) -> CleanupSummary {
    let opts = CleanupOptions {
        dry_run: true,
        ..CleanupOptions::default()
    };
    run_cleanup(pool, table, &opts).await
}

/// A login role (cluster-wide, so named after the test's database) and a URL for it.
async fn role_url(
    url: &str,
    conn: &mut PgConnection,
    prefix: &str,
    grants: &str,
) -> (String, String) {
    let role = format!("{prefix}_{}", db_name(url));
    conn.execute(format!("CREATE ROLE {role} LOGIN").as_str())
        .await
        .unwrap();
    if !grants.is_empty() {
        conn.execute(format!("GRANT {grants} ON idempotency_records TO {role}").as_str())
            .await
            .unwrap();
    }
    (
        role.clone(),
        server()
            .url_for(&db_name(url))
            .replace("postgres@", &format!("{role}@")),
    )
}

#[tokio::test]
async fn cleanup_deletes_exactly_the_expired_rows_while_live_rows_arrive() {
    let url = migrated_db().await;
    let table = guide();
    let mut conn = connect(&url).await;
    insert_expired(&mut conn, &table, 20_000).await;
    insert_live(&mut conn, &table, 5_000).await;

    // Another session keeps inserting live rows (with ids we remember) during the cleanup.
    let stop = Arc::new(AtomicBool::new(false));
    let (first_tx, first_rx) = tokio::sync::oneshot::channel();
    let inserter = tokio::spawn({
        let stop = stop.clone();
        let url = url.clone();
        async move {
            let mut conn = connect(&url).await;
            let mut ids = Vec::new();
            let mut first = Some(first_tx);
            while !stop.load(Ordering::Relaxed) {
                let batch: Vec<Uuid> = (0..50).map(|_| Uuid::new_v4()).collect();
                sqlx::query(
                    "INSERT INTO idempotency_records (request_id, operation, result_payload, status_code, expires_at)
                     SELECT id, 'arriving', '{}', 201, now() + interval '10 minutes' FROM unnest($1::uuid[]) id",
                )
                .bind(&batch)
                .execute(&mut conn)
                .await
                .unwrap();
                ids.extend(batch);
                if let Some(tx) = first.take() {
                    let _ = tx.send(());
                }
                tokio::task::yield_now().await;
            }
            ids
        }
    });
    first_rx.await.unwrap();

    let pool = pool(&url).await;
    let mut seen: Vec<CleanupProgress> = Vec::new();
    let summary = maintenance::cleanup(
        &pool,
        &table,
        &CleanupOptions::default(),
        &CancellationToken::new(),
        |p| seen.push(p.clone()),
    )
    .await
    .unwrap();
    stop.store(true, Ordering::Relaxed);
    let arrived = inserter.await.unwrap();

    assert_eq!(summary.deleted, 20_000);
    assert_eq!(summary.expired_at_start, Some(20_000));
    assert_eq!(summary.stopped, StopReason::CaughtUp);
    assert!(!summary.dry_run);
    assert_eq!(expired_by(&mut conn, &table, summary.cutoff).await, 0);
    assert_eq!(count(&mut conn, &table, "operation = 'live'").await, 5_000);
    let present: i64 =
        sqlx::query_scalar("SELECT count(*) FROM idempotency_records WHERE request_id = ANY($1)")
            .bind(&arrived)
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(
        present as usize,
        arrived.len(),
        "every arriving live row is still there"
    );

    // A backlog of 80% of the table is swept in physical order (14+; 13 walks the index).
    let method = bulk_method(&mut conn).await;
    assert_eq!(summary.method, method);
    if method == Method::Walk {
        assert_eq!(summary.method_reason, NO_SWEEP_ON_13);
    }
    // Progress: at most one report per batch (a sweep reports every 100 ms), monotonic,
    // ending at the summary's totals (and, for a sweep, the last page of the table).
    assert!(!seen.is_empty() && seen.len() as u64 <= summary.batches);
    assert!(seen.windows(2).all(|w| w[0].deleted <= w[1].deleted));
    let last = seen.last().unwrap();
    assert_eq!(last.deleted, 20_000);
    assert_eq!(last.remaining_estimate, Some(0));
    assert_eq!(last.batches, summary.batches);
    assert!(seen.iter().all(|p| p.method == method));
    if method == Method::Sweep {
        assert!(seen
            .windows(2)
            .all(|w| w[0].pages_done.unwrap() < w[1].pages_done.unwrap()));
        assert_eq!(last.pages_done, last.pages_total);
        assert!(last.pages_total.unwrap() > 0);
    }
    println!(
        "cleanup: {} rows in {} batches, {:?}, batch sizes {:?}, {} live rows arrived meanwhile",
        summary.deleted,
        summary.batches,
        summary.duration,
        seen.iter().map(|p| p.batch_size).collect::<Vec<_>>(),
        arrived.len()
    );
}

/// Expired and live rows interleaved on every page (as after a backfill in random order).
async fn insert_mixed(conn: &mut PgConnection, table: &TableRef, n: i64) {
    insert_mixed_padded(conn, table, n, 0).await
}

/// [`insert_mixed`] with `pad` bytes of payload per row (a larger heap: a heap of up to 16 MB
/// is swept in one batch).
async fn insert_mixed_padded(conn: &mut PgConnection, table: &TableRef, n: i64, pad: i32) {
    sqlx::query(&format!(
        "INSERT INTO {} (request_id, operation, result_payload, status_code, created_at, expires_at)
         SELECT gen_random_uuid(), CASE WHEN g % 3 = 0 THEN 'live' ELSE 'expired' END,
                CASE WHEN $2 > 0 THEN jsonb_build_object('pad', repeat('x', $2)) ELSE '{{}}' END, 200,
                now() - interval '3 days',
                CASE WHEN g % 3 = 0 THEN now() + interval '1 hour' ELSE now() - interval '1 day' END
           FROM generate_series(1, $1) g",
        table.qualified()
    ))
    .bind(n)
    .bind(pad)
    .execute(conn)
    .await
    .unwrap();
}

#[tokio::test]
async fn walk_and_sweep_delete_the_same_rows_and_auto_picks_by_share() {
    let url = migrated_db().await;
    let table = guide();
    let mut conn = connect(&url).await;
    insert_mixed(&mut conn, &table, 30_000).await;
    conn.execute("ANALYZE idempotency_records").await.unwrap();
    let pool = pool(&url).await;
    // Forced walk on one half of the story...
    let walked = run_cleanup(
        &pool,
        &table,
        &CleanupOptions {
            method: MethodChoice::Walk,
            ..CleanupOptions::default()
        },
    )
    .await;
    assert_eq!(walked.method, Method::Walk);
    assert_eq!(walked.deleted, 20_000);
    assert_eq!(count(&mut conn, &table, "operation = 'live'").await, 10_000);
    assert_eq!(count(&mut conn, &table, "true").await, 10_000);

    // ...and auto sweeps the same data set (2/3 of the table expired), with the same result.
    insert_mixed(&mut conn, &table, 30_000).await;
    conn.execute("ANALYZE idempotency_records").await.unwrap();
    let swept = run_cleanup(&pool, &table, &CleanupOptions::default()).await;
    assert_eq!(swept.method, bulk_method(&mut conn).await, "{swept:?}");
    assert_eq!(swept.deleted, 20_000);
    assert_eq!(swept.expired_at_start, Some(20_000));
    assert_eq!(expired_by(&mut conn, &table, swept.cutoff).await, 0);
    assert_eq!(count(&mut conn, &table, "operation = 'live'").await, 20_000);

    // A small share (1/9 of the table here) walks the index, even when it is 10k+ rows.
    insert_live(&mut conn, &table, 60_000).await;
    insert_expired(&mut conn, &table, 10_000).await;
    conn.execute("ANALYZE idempotency_records").await.unwrap();
    let dry = dry_run(&pool, &table).await;
    assert_eq!(
        (dry.method, dry.expired_at_start),
        (Method::Walk, Some(10_000))
    );
    let small = run_cleanup(&pool, &table, &CleanupOptions::default()).await;
    assert_eq!((small.method, small.deleted), (Method::Walk, 10_000));
}

/// A small heap (at most 16 MB) is swept in one range: it deletes exactly the rows expired by
/// the cutoff, none that expires a moment later, and says nothing was left behind; the dry run
/// gives the same figures.
#[tokio::test]
async fn a_small_heap_is_swept_in_one_batch_and_deletes_exactly_the_expired_rows() {
    if !needs_major(14, "the heap sweep (a TID range scan)") {
        return;
    }
    let url = migrated_db().await;
    let table = guide();
    let mut conn = connect(&url).await;
    insert_mixed(&mut conn, &table, 30_000).await;
    // Rows on both sides of the cutoff: expired a millisecond ago, or expiring in a minute.
    sqlx::query(&format!(
        "INSERT INTO {} (request_id, operation, result_payload, status_code, created_at, expires_at)
         SELECT gen_random_uuid(), CASE WHEN g % 2 = 0 THEN 'expired' ELSE 'live' END, '{{}}', 200,
                now() - interval '1 day',
                CASE WHEN g % 2 = 0 THEN now() - interval '1 millisecond' ELSE now() + interval '1 minute' END
           FROM generate_series(1, 2000) g",
        table.qualified()
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    conn.execute("ANALYZE idempotency_records").await.unwrap();
    let pool = pool(&url).await;
    let dry = dry_run(&pool, &table).await;
    assert_eq!(
        (dry.method, dry.expired_at_start),
        (Method::Sweep, Some(21_000))
    );
    let s = run_cleanup(&pool, &table, &CleanupOptions::default()).await;
    assert_eq!(
        (s.method, s.batches, s.deleted, s.skipped, s.stopped),
        (Method::Sweep, 1, 21_000, 0, StopReason::CaughtUp),
        "{s:?}"
    );
    assert_eq!(s.expired_at_start, dry.expired_at_start);
    assert_eq!(expired_by(&mut conn, &table, s.cutoff).await, 0);
    assert_eq!(left(&mut conn, &table).await, (0, 11_000));
}

/// A heap of several ranges is swept on two connections at once: exactly the rows expired by
/// the cutoff go, none expiring a minute later, every page is reported done; chosen on the
/// planner's estimate, the run counts the backlog as it deletes it (`expired_at_start` is what
/// it deleted, nothing is left). One connection gives the same.
#[tokio::test]
async fn a_sweep_on_two_connections_deletes_exactly_the_expired_rows() {
    if !needs_major(14, "the heap sweep (a TID range scan)") {
        return;
    }
    let url = migrated_db().await;
    let table = guide();
    let mut conn = connect(&url).await;
    let pool = pool(&url).await;
    // Synchronous batch commits (the default) on two connections and on one, and asynchronous
    // ones (`--sweep-async-commit`, with the final commit that waits for all of them).
    for (workers, sync_commit) in [(2, true), (1, true), (2, false)] {
        // About 45 MB of heap: swept in three ranges.
        insert_mixed_padded(&mut conn, &table, 60_000, 600).await;
        sqlx::query(&format!(
            "INSERT INTO {} (request_id, operation, result_payload, status_code, created_at, expires_at)
             SELECT gen_random_uuid(), 'live', '{{}}', 200, now() - interval '1 day', now() + interval '1 minute'
               FROM generate_series(1, 500)",
            table.qualified()
        ))
        .execute(&mut conn)
        .await
        .unwrap();
        conn.execute("ANALYZE idempotency_records").await.unwrap();
        let mut seen = Vec::new();
        let s = maintenance::cleanup(
            &pool,
            &table,
            &CleanupOptions {
                sweep_workers: workers,
                sweep_sync_commit: sync_commit,
                ..CleanupOptions::default()
            },
            &CancellationToken::new(),
            |p| seen.push(p.clone()),
        )
        .await
        .unwrap();
        assert_eq!(
            (s.method, s.deleted, s.skipped, s.stopped),
            (Method::Sweep, 40_000, 0, StopReason::CaughtUp),
            "{workers} connections, synchronous commits {sync_commit}: {s:?}"
        );
        assert!(s.batches >= 3, "{s:?}");
        assert_eq!(s.sweep_connections, Some(workers), "{s:?}");
        assert!(s.method_reason.contains("planner's estimate"), "{s:?}");
        assert_eq!(s.expired_at_start, Some(40_000), "{s:?}");
        let last = seen.last().expect("progress was reported");
        assert_eq!(last.pages_done, last.pages_total, "{last:?}");
        assert_eq!(last.deleted, 40_000);
        assert_eq!(expired_by(&mut conn, &table, s.cutoff).await, 0);
        assert_eq!(left(&mut conn, &table).await, (0, 20_500));
        conn.execute("TRUNCATE idempotency_records").await.unwrap();
    }
}

#[tokio::test]
async fn a_sweep_waits_for_a_locked_row_then_deletes_it() {
    if !needs_major(14, "the heap sweep (a TID range scan)") {
        return;
    }
    let url = migrated_db().await;
    let table = guide();
    let mut conn = connect(&url).await;
    insert_expired(&mut conn, &table, 12_000).await;
    // The application holds one expired row locked for a moment.
    let mut app = connect(&url).await;
    app.execute("BEGIN").await.unwrap();
    let locked: Uuid = sqlx::query_scalar(
        "SELECT request_id FROM idempotency_records ORDER BY expires_at DESC LIMIT 1 FOR UPDATE",
    )
    .fetch_one(&mut app)
    .await
    .unwrap();
    let release = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(700)).await;
        app.execute("COMMIT").await.unwrap();
        app
    });
    let s = run_cleanup(
        &pool(&url).await,
        &table,
        &CleanupOptions {
            method: MethodChoice::Sweep,
            ..CleanupOptions::default()
        },
    )
    .await;
    release.await.unwrap();
    assert_eq!(s.method, Method::Sweep);
    assert_eq!((s.deleted, s.stopped), (12_000, StopReason::CaughtUp));
    let left: i64 =
        sqlx::query_scalar("SELECT count(*) FROM idempotency_records WHERE request_id = $1")
            .bind(locked)
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(left, 0);
}

#[tokio::test]
async fn two_sweeps_at_once_one_sweeps_the_other_walks() {
    if !needs_major(14, "the heap sweep (a TID range scan)") {
        return;
    }
    let url = migrated_db().await;
    let table = guide();
    let mut conn = connect(&url).await;
    insert_mixed(&mut conn, &table, 90_000).await;
    let (p1, p2) = (pool(&url).await, pool(&url).await);
    let opts = CleanupOptions {
        method: MethodChoice::Sweep,
        ..CleanupOptions::default()
    };
    // The application holds the first (expired) row of the table locked, so the first sweep
    // waits at its first batch, holding the table's sweep lock.
    let mut app = connect(&url).await;
    app.execute("BEGIN").await.unwrap();
    let op: String = sqlx::query_scalar(
        "SELECT operation FROM idempotency_records WHERE ctid = '(0,1)' FOR UPDATE",
    )
    .fetch_one(&mut app)
    .await
    .unwrap();
    assert_eq!(op, "expired");
    let a = tokio::spawn({
        let (table, opts) = (table.clone(), opts.clone());
        async move { maintenance::cleanup(&p1, &table, &opts, &CancellationToken::new(), |_| {}).await }
    });
    let mut waiting = false;
    for _ in 0..200 {
        waiting = sqlx::query_scalar(
            "SELECT count(*) > 0 FROM pg_stat_activity
              WHERE datname = current_database() AND wait_event_type = 'Lock'
                AND query LIKE 'DELETE%ctid >=%'",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap();
        if waiting {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(waiting, "the first sweep waits for the locked row");
    // The second cleanup cannot take the sweep lock: it walks, skipping the locked row.
    let b = run_cleanup(&p2, &table, &opts).await;
    app.execute("COMMIT").await.unwrap();
    let a = a.await.unwrap().unwrap();
    println!(
        "sweeps: {:?} {} rows + {:?} {} rows",
        a.method, a.deleted, b.method, b.deleted
    );
    assert_eq!((b.method, b.deleted), (Method::Walk, 59_999));
    assert_eq!(a.deleted + b.deleted, 60_000);
    assert_eq!(a.method, Method::Sweep);
    assert_eq!(b.method, Method::Walk, "the table's sweep lock was taken");
    assert_eq!(left(&mut conn, &table).await, (0, 30_000));
    // The lock went with the first sweep's session: a third cleanup sweeps again.
    insert_mixed(&mut conn, &table, 30_000).await;
    let c = run_cleanup(&pool(&url).await, &table, &opts).await;
    assert_eq!((c.method, c.deleted), (Method::Sweep, 20_000));
}

#[tokio::test]
async fn a_cancelled_sweep_keeps_what_it_did_and_a_second_run_finishes() {
    if !needs_major(14, "the heap sweep (a TID range scan)") {
        return;
    }
    let url = migrated_db().await;
    let table = guide();
    let mut conn = connect(&url).await;
    // About 30 MB of heap: more than one sweep batch (a small heap goes in ranges of 16 MB).
    insert_mixed_padded(&mut conn, &table, 60_000, 400).await;
    let pool = pool(&url).await;
    // One connection: two would take both ranges of this heap before the cancel is seen.
    let opts = CleanupOptions {
        method: MethodChoice::Sweep,
        sweep_workers: 1,
        ..CleanupOptions::default()
    };
    let cancel = CancellationToken::new();
    let first = maintenance::cleanup(&pool, &table, &opts, &cancel, |_| cancel.cancel())
        .await
        .unwrap();
    assert_eq!(
        (first.method, first.stopped),
        (Method::Sweep, StopReason::Cancelled)
    );
    assert!(first.deleted > 0 && first.deleted < 40_000, "{first:?}");
    assert_eq!(
        count(&mut conn, &table, "operation = 'expired'").await,
        40_000 - first.deleted as i64
    );
    let second = run_cleanup(&pool, &table, &opts).await;
    assert_eq!(second.stopped, StopReason::CaughtUp);
    assert_eq!(first.deleted + second.deleted, 40_000);
    assert_eq!(left(&mut conn, &table).await, (0, 20_000));
}

#[tokio::test]
async fn two_cleanups_at_once_neither_fail_nor_double_count() {
    let url = migrated_db().await;
    let table = guide();
    let mut conn = connect(&url).await;
    insert_expired(&mut conn, &table, 20_000).await;
    insert_live(&mut conn, &table, 1_000).await;
    let (p1, p2) = (pool(&url).await, pool(&url).await);
    let opts = CleanupOptions {
        fixed_batch: Some(300),
        ..CleanupOptions::default()
    };
    let never = CancellationToken::new();
    let (a, b) = tokio::join!(
        maintenance::cleanup(&p1, &table, &opts, &never, |_| {}),
        maintenance::cleanup(&p2, &table, &opts, &never, |_| {}),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    println!(
        "concurrent: {} + {} rows in {} + {} batches",
        a.deleted, b.deleted, a.batches, b.batches
    );
    assert_eq!(a.deleted + b.deleted, 20_000);
    assert_eq!(left(&mut conn, &table).await, (0, 1_000));
}

#[tokio::test]
async fn a_cancelled_cleanup_keeps_what_it_did_and_a_second_run_finishes() {
    let url = migrated_db().await;
    let table = guide();
    let mut conn = connect(&url).await;
    insert_expired(&mut conn, &table, 10_000).await;
    insert_live(&mut conn, &table, 1_000).await;
    let pool = pool(&url).await;
    let opts = CleanupOptions {
        fixed_batch: Some(500),
        ..CleanupOptions::default()
    };
    let cancel = CancellationToken::new();
    let first = maintenance::cleanup(&pool, &table, &opts, &cancel, |p| {
        if p.batches == 3 {
            cancel.cancel();
        }
    })
    .await
    .unwrap();
    assert_eq!(first.stopped, StopReason::Cancelled);
    assert_eq!(first.batches, 3);
    assert_eq!(first.deleted, 1_500);
    assert_eq!(
        count(&mut conn, &table, "operation = 'expired'").await,
        8_500
    );
    assert_eq!(count(&mut conn, &table, "operation = 'live'").await, 1_000);

    let second = run_cleanup(&pool, &table, &opts).await;
    assert_eq!(second.stopped, StopReason::CaughtUp);
    assert_eq!(second.expired_at_start, Some(8_500));
    assert_eq!(first.deleted + second.deleted, 10_000);
    assert_eq!(left(&mut conn, &table).await, (0, 1_000));
}

#[tokio::test]
async fn dry_run_counts_and_deletes_nothing() {
    let url = migrated_db().await;
    let table = guide();
    let mut conn = connect(&url).await;
    insert_expired(&mut conn, &table, 300).await;
    insert_live(&mut conn, &table, 100).await;
    let s = dry_run(&pool(&url).await, &table).await;
    assert!(s.dry_run);
    assert_eq!(s.expired_at_start, Some(300));
    assert_eq!((s.deleted, s.batches), (0, 0));
    assert_eq!(count(&mut conn, &table, "true").await, 400);
}

#[tokio::test]
async fn max_duration_stops_between_batches() {
    let url = migrated_db().await;
    let table = guide();
    let mut conn = connect(&url).await;
    insert_expired(&mut conn, &table, 1_000).await;
    let s = run_cleanup(
        &pool(&url).await,
        &table,
        &CleanupOptions {
            max_duration: Some(Duration::ZERO),
            ..CleanupOptions::default()
        },
    )
    .await;
    assert_eq!(s.stopped, StopReason::MaxDuration);
    assert_eq!((s.deleted, s.batches), (0, 0));
    assert_eq!(count(&mut conn, &table, "true").await, 1_000);
}

#[tokio::test]
async fn cleanup_works_on_a_partitioned_table() {
    let url = migrated_db().await;
    let mut conn = connect(&url).await;
    conn.execute(
        r#"CREATE SCHEMA "Part s";
           CREATE TABLE "Part s".idempotency_records (
               request_id UUID NOT NULL, operation VARCHAR(100) NOT NULL,
               result_payload TEXT NOT NULL, status_code INTEGER,
               created_at TIMESTAMPTZ NOT NULL DEFAULT now(), expires_at TIMESTAMPTZ NOT NULL,
               CHECK (expires_at > created_at), PRIMARY KEY (request_id, expires_at)
           ) PARTITION BY RANGE (expires_at);
           CREATE INDEX ON "Part s".idempotency_records (expires_at);
           CREATE TABLE "Part s".p_old PARTITION OF "Part s".idempotency_records
               FOR VALUES FROM (MINVALUE) TO (now() - interval '1 day');
           CREATE TABLE "Part s".p_new PARTITION OF "Part s".idempotency_records
               FOR VALUES FROM (now() - interval '1 day') TO (MAXVALUE);
           INSERT INTO "Part s".idempotency_records (request_id, operation, result_payload, created_at, expires_at)
           SELECT gen_random_uuid(), 'expired', '{}', now() - interval '2 hours', now() - interval '1 hour'
             FROM generate_series(1, 1000);"#,
    )
    .await
    .unwrap();
    let table = TableRef::new("Part s", "idempotency_records").unwrap();
    insert_expired(&mut conn, &table, 3_000).await;
    insert_live(&mut conn, &table, 500).await;
    let old: i64 = sqlx::query_scalar(r#"SELECT count(*) FROM "Part s".p_old"#)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(old, 3_000, "expired rows in both partitions");
    let pool = pool(&url).await;
    let s = run_cleanup(
        &pool,
        &table,
        &CleanupOptions {
            fixed_batch: Some(700),
            ..CleanupOptions::default()
        },
    )
    .await;
    assert_eq!(s.deleted, 4_000);
    assert_eq!(s.stopped, StopReason::CaughtUp);
    assert_eq!(left(&mut conn, &table).await, (0, 500));
    // ANALYZE and VACUUM accept the partitioned parent too.
    maintenance::analyze(&mut conn, &table).await.unwrap();
    maintenance::vacuum(&mut conn, &table, true).await.unwrap();
}

#[tokio::test]
async fn a_read_only_session_is_refused_by_the_server() {
    let url = migrated_db().await;
    let table = guide();
    let mut conn = connect(&url).await;
    insert_expired(&mut conn, &table, 200).await;
    let ro = ConnectConfig {
        read_only: true,
        ..ConnectConfig::from_url(&url)
    }
    .pool(2)
    .await
    .unwrap();
    // Refused by the server whether the cleanup walks (200 rows) or sweeps (20,200 rows).
    for (extra, method) in [(0, MethodChoice::Walk), (20_000, MethodChoice::Sweep)] {
        insert_expired(&mut conn, &table, extra).await;
        let opts = CleanupOptions {
            method,
            ..CleanupOptions::default()
        };
        let err = maintenance::cleanup(&ro, &table, &opts, &CancellationToken::new(), |_| {})
            .await
            .unwrap_err();
        assert_eq!(
            format!("{err:#}"),
            "the session is read-only (--read-only): cleanup is disabled"
        );
        assert_eq!(count(&mut conn, &table, "true").await, 200 + extra);
    }
    // Counting is no write: a dry run works read-only.
    let s = dry_run(&ro, &table).await;
    assert_eq!(s.expired_at_start, Some(20_200));
    // ANALYZE and VACUUM are refused too (the server itself would allow them).
    let mut ro_conn = ConnectConfig {
        read_only: true,
        ..ConnectConfig::from_url(&url)
    }
    .connect()
    .await
    .unwrap();
    let err = maintenance::vacuum(&mut ro_conn, &table, false)
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "the session is read-only (--read-only): VACUUM is disabled"
    );
    let err = maintenance::analyze(&mut ro_conn, &table)
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "the session is read-only (--read-only): ANALYZE is disabled"
    );
}

#[tokio::test]
async fn a_role_without_delete_gets_a_clear_message_and_select_delete_is_enough() {
    let url = migrated_db().await;
    let table = guide();
    let mut conn = connect(&url).await;
    insert_expired(&mut conn, &table, 2_000).await;
    insert_live(&mut conn, &table, 10).await;

    let (reader, reader_url) = role_url(&url, &mut conn, "reader", "SELECT").await;
    let p = ConnectConfig::from_url(&reader_url).pool(2).await.unwrap();
    let err = maintenance::cleanup(
        &p,
        &table,
        &CleanupOptions::default(),
        &CancellationToken::new(),
        |_| {},
    )
    .await
    .unwrap_err()
    .to_string();
    assert_eq!(
        err,
        format!(
            "permission denied: role {reader} lacks DELETE on public.idempotency_records \
             (GRANT DELETE ON public.idempotency_records TO {reader})"
        )
    );
    assert_eq!(count(&mut conn, &table, "true").await, 2_010);

    // SELECT + DELETE without UPDATE: no row locks (FOR UPDATE needs UPDATE), still exact.
    let (_, deleter_url) = role_url(&url, &mut conn, "deleter", "SELECT, DELETE").await;
    let p = ConnectConfig::from_url(&deleter_url).pool(2).await.unwrap();
    let s = run_cleanup(&p, &table, &CleanupOptions::default()).await;
    assert_eq!(s.deleted, 2_000);
    assert_eq!(count(&mut conn, &table, "true").await, 10);
    // A sweep needs nothing more than SELECT and DELETE either.
    insert_expired(&mut conn, &table, 20_000).await;
    let s = run_cleanup(&p, &table, &CleanupOptions::default()).await;
    assert_eq!(
        (s.method, s.deleted),
        (bulk_method(&mut conn).await, 20_000)
    );
    assert_eq!(count(&mut conn, &table, "true").await, 10);

    // The reusable mapping of a refused write, for a server-side 42501.
    let mut rc = ConnectConfig::from_url(&reader_url)
        .connect()
        .await
        .unwrap();
    let e = sqlx::query("DELETE FROM idempotency_records")
        .execute(&mut rc)
        .await
        .unwrap_err();
    let msg = maintenance::explain_write_error_as(&e, "DELETE", &table, "cleanup").to_string();
    assert!(
        msg.starts_with(
            "permission denied: the current role lacks DELETE on public.idempotency_records"
        ),
        "{msg}"
    );
}

async fn stat_times(conn: &mut PgConnection) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
    conn.execute("SELECT pg_stat_clear_snapshot()")
        .await
        .unwrap();
    sqlx::query_as(
        "SELECT last_analyze, last_vacuum FROM pg_stat_user_tables
          WHERE relid = 'public.idempotency_records'::regclass",
    )
    .fetch_one(conn)
    .await
    .unwrap()
}

/// Stats reach pg_stat_* asynchronously: poll until `done` holds (or give up after 20 s).
async fn poll_stats(
    conn: &mut PgConnection,
    done: impl Fn(&(Option<DateTime<Utc>>, Option<DateTime<Utc>>)) -> bool,
) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let t = stat_times(conn).await;
        if done(&t) || Instant::now() > deadline {
            return t;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn analyze_and_vacuum_run_and_show_in_pg_stat() {
    let url = migrated_db().await;
    let table = guide();
    let mut conn = connect(&url).await;
    insert_expired(&mut conn, &table, 1_000).await;
    let before = stat_times(&mut conn).await;
    assert_eq!(before, (None, None));

    let mut dedicated = connect(&url).await;
    maintenance::analyze(&mut dedicated, &table).await.unwrap();
    let after_analyze = poll_stats(&mut conn, |t| t.0.is_some()).await;
    assert!(after_analyze.0.is_some(), "last_analyze set");

    maintenance::vacuum(&mut dedicated, &table, false)
        .await
        .unwrap();
    let after_vacuum = poll_stats(&mut conn, |t| t.1.is_some()).await;
    assert!(after_vacuum.1.is_some(), "last_vacuum set");
    assert_eq!(
        after_vacuum.0, after_analyze.0,
        "plain VACUUM does not analyze"
    );

    maintenance::vacuum(&mut dedicated, &table, true)
        .await
        .unwrap();
    let both = poll_stats(&mut conn, |t| t.0 > after_analyze.0 && t.1 > after_vacuum.1).await;
    assert!(
        both.0 > after_analyze.0 && both.1 > after_vacuum.1,
        "{both:?}"
    );

    // The session's statement_timeout is back afterwards.
    let timeout: String = sqlx::query_scalar("SHOW statement_timeout")
        .fetch_one(&mut dedicated)
        .await
        .unwrap();
    assert_eq!(timeout, "5s");
}

#[tokio::test]
async fn vacuum_and_analyze_by_a_non_owner_are_refused_clearly() {
    let url = migrated_db().await;
    let table = guide();
    let mut conn = connect(&url).await;
    let (reader, reader_url) = role_url(&url, &mut conn, "nonowner", "SELECT, DELETE").await;
    let mut rc = ConnectConfig::from_url(&reader_url)
        .connect()
        .await
        .unwrap();
    for (what, err) in [
        (
            "VACUUM",
            maintenance::vacuum(&mut rc, &table, true)
                .await
                .unwrap_err(),
        ),
        (
            "ANALYZE",
            maintenance::analyze(&mut rc, &table).await.unwrap_err(),
        ),
    ] {
        let err = err.to_string();
        assert!(
            err.starts_with("permission denied: only the table owner (postgres)"),
            "{err}"
        );
        assert!(
            err.contains(&format!("can {what} public.idempotency_records")),
            "{err}"
        );
        assert!(err.contains(&reader), "{err}");
    }
    assert_eq!(stat_times(&mut conn).await, (None, None), "nothing ran");
}

/// The pre-check decides as the server does (vacuum_is_permitted_for_relation): the database's
/// owner may ANALYZE and VACUUM a table it does not own, on every version (PostgreSQL 17+ adds
/// MAINTAIN, it does not take that right away), and the server really runs them.
#[tokio::test]
async fn the_database_owner_may_analyze_and_vacuum_a_table_it_does_not_own() {
    let url = migrated_db().await;
    let table = guide();
    let mut conn = connect(&url).await;
    insert_expired(&mut conn, &table, 500).await;
    let db = db_name(&url);
    let (owner, owner_url) = role_url(&url, &mut conn, "dbowner", "").await;
    conn.execute(format!("ALTER DATABASE \"{db}\" OWNER TO {owner}").as_str())
        .await
        .unwrap();
    let mut oc = ConnectConfig::from_url(&owner_url).connect().await.unwrap();
    maintenance::analyze(&mut oc, &table).await.unwrap();
    let analyzed = poll_stats(&mut conn, |t| t.0.is_some()).await;
    assert!(
        analyzed.0.is_some(),
        "the server ran ANALYZE for the database owner"
    );
    maintenance::vacuum(&mut oc, &table, false).await.unwrap();
    let vacuumed = poll_stats(&mut conn, |t| t.1.is_some()).await;
    assert!(
        vacuumed.1.is_some(),
        "the server ran VACUUM for the database owner"
    );
}

/// The dry run names the method the run then uses, whatever the server (PostgreSQL 13 has no
/// TID range scan: both say walk there) and whatever `--method` asks.
#[tokio::test]
async fn the_dry_run_names_the_method_the_run_uses() {
    for choice in [MethodChoice::Auto, MethodChoice::Sweep, MethodChoice::Walk] {
        let url = migrated_db().await;
        let table = guide();
        let mut conn = connect(&url).await;
        insert_expired(&mut conn, &table, 12_000).await;
        insert_live(&mut conn, &table, 100).await;
        let pool = pool(&url).await;
        let opts = CleanupOptions {
            method: choice,
            ..CleanupOptions::default()
        };
        let dry = run_cleanup(
            &pool,
            &table,
            &CleanupOptions {
                dry_run: true,
                ..opts.clone()
            },
        )
        .await;
        let run = run_cleanup(&pool, &table, &opts).await;
        assert_eq!(dry.method, run.method, "{choice:?}");
        assert_eq!(dry.method_reason, run.method_reason, "{choice:?}");
        assert_eq!(dry.expired_at_start, Some(run.deleted), "{choice:?}");
        let v = server_version_num(&mut conn).await;
        if v < 140_000 || choice == MethodChoice::Walk {
            assert_eq!(run.method, Method::Walk, "{choice:?}");
        } else {
            assert_eq!(run.method, Method::Sweep, "{choice:?}");
        }
        assert_eq!(left(&mut conn, &table).await, (0, 100));
    }
}

/// The sweep never lets one locked row abort the cleanup: a row that the application keeps
/// locked past the lock timeout is skipped, counted, and the run reported incomplete; the next
/// run, once the lock is gone, takes it.
#[tokio::test]
async fn a_sweep_skips_a_row_locked_past_its_timeout_and_says_so() {
    let url = migrated_db().await;
    let table = guide();
    let mut conn = connect(&url).await;
    insert_expired(&mut conn, &table, 12_000).await;
    insert_live(&mut conn, &table, 100).await;
    let mut app = connect(&url).await;
    app.execute("BEGIN").await.unwrap();
    let locked: Uuid = sqlx::query_scalar(
        "SELECT request_id FROM idempotency_records WHERE expires_at <= now()
          ORDER BY expires_at LIMIT 1 FOR UPDATE",
    )
    .fetch_one(&mut app)
    .await
    .unwrap();
    let sweep = CleanupOptions {
        method: MethodChoice::Sweep,
        ..CleanupOptions::default()
    };
    let pool = pool(&url).await;
    let s = run_cleanup(&pool, &table, &sweep).await;
    // On 13 `--method sweep` walks the index instead, and its SKIP LOCKED leaves the row too.
    let method = bulk_method(&mut conn).await;
    assert_eq!(s.method, method);
    if method == Method::Walk {
        assert_eq!(s.method_reason, NO_SWEEP_ON_13);
    }
    assert_eq!(
        (s.deleted, s.skipped, s.stopped),
        (11_999, 1, StopReason::Incomplete)
    );
    assert_eq!(left(&mut conn, &table).await, (1, 100));
    let still: i64 =
        sqlx::query_scalar("SELECT count(*) FROM idempotency_records WHERE request_id = $1")
            .bind(locked)
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(still, 1, "the locked row is left for the next run");
    app.execute("COMMIT").await.unwrap();
    let again = run_cleanup(&pool, &table, &CleanupOptions::default()).await;
    assert_eq!((again.deleted, again.stopped), (1, StopReason::CaughtUp));
    assert_eq!(left(&mut conn, &table).await, (0, 100));
}

#[tokio::test]
async fn vacuum_progress_shows_a_running_vacuum() {
    let url = migrated_db().await;
    let table = guide();
    let mut conn = connect(&url).await;
    insert_expired(&mut conn, &table, 30_000).await;
    let info = idemtop::db::table::resolve(&mut conn, &table)
        .await
        .unwrap();
    assert_eq!(
        maintenance::vacuum_progress(&mut conn, info.oid)
            .await
            .unwrap(),
        None
    );

    // Cost-based delay at its slowest, so the VACUUM stays visible until we cancel it.
    let mut dedicated = connect(&url).await;
    dedicated
        .execute("SET vacuum_cost_delay = '100ms'; SET vacuum_cost_limit = 1")
        .await
        .unwrap();
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut dedicated)
        .await
        .unwrap();
    let running = tokio::spawn(async move {
        maintenance::vacuum(&mut dedicated, &TableRef::default(), false).await
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let progress = loop {
        if let Some(p) = maintenance::vacuum_progress(&mut conn, info.oid)
            .await
            .unwrap()
        {
            if p.heap_blks_scanned > 0 {
                break p;
            }
        }
        assert!(Instant::now() < deadline, "no VACUUM progress seen");
        assert!(
            !running.is_finished(),
            "VACUUM finished before progress was seen"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(progress.pid, pid);
    assert_eq!(progress.phase, "scanning heap");
    assert!(
        progress.heap_blks_total > progress.heap_blks_scanned,
        "{progress:?}"
    );
    let _: bool = sqlx::query_scalar("SELECT pg_cancel_backend($1)")
        .bind(pid)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let err = running.await.unwrap().unwrap_err().to_string();
    assert!(
        err.contains("canceling statement due to user request"),
        "{err}"
    );
}

#[tokio::test]
async fn headless_cleanup_prints_a_summary_and_exits_0() {
    let url = migrated_db().await;
    let table = guide();
    let mut conn = connect(&url).await;
    insert_expired(&mut conn, &table, 1_234).await;
    insert_live(&mut conn, &table, 10).await;

    let (code, out, err) = idemtop(
        &[
            "--database-url",
            &url,
            "cleanup",
            "--dry-run",
            "--format",
            "json",
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        err.is_empty(),
        "no progress when stderr is not a terminal: {err}"
    );
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["dry_run"], true);
    assert_eq!(v["deleted"], 0);
    assert_eq!(v["expired_at_start"], 1_234);

    let (code, out, err) = idemtop(
        &[
            "--database-url",
            &url,
            "cleanup",
            "--batch-size",
            "500",
            "--format",
            "json",
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["deleted"], 1_234);
    assert_eq!(v["batches"], 3);
    assert_eq!(v["method"], "walk", "a fixed batch size walks the index");
    assert!(v["duration_ms"].is_u64());
    assert_eq!(v["stopped"], "caught_up");
    assert!(v["cutoff"].is_string());
    assert_eq!(count(&mut conn, &table, "true").await, 10);

    let (code, out, err) = idemtop(&["--database-url", &url, "cleanup"], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("deleted 0 expired rows in 0 batches (index walk), ")
            && out.trim_end().ends_with("(caught up)"),
        "{out}"
    );
}

#[tokio::test]
async fn headless_cleanup_failure_is_one_line_and_exit_1() {
    let url = migrated_db().await;
    let (code, out, err) = idemtop(&["--database-url", &url, "--read-only", "cleanup"], &[]);
    assert_eq!(code, 1);
    assert!(out.is_empty(), "{out}");
    assert_eq!(
        err,
        "idemtop: the session is read-only (--read-only): cleanup is disabled\n"
    );
    let (code, _, err) = idemtop(&["--database-url", &url, "--table", "nope", "cleanup"], &[]);
    assert_eq!(code, 1);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("idemtop: table public.nope does not exist"),
        "{err}"
    );
}

/// SIGTERM, SIGHUP and SIGINT stop a headless cleanup between batches: the summary is still
/// printed, what was deleted stays deleted, and the exit status says which signal (128 + N).
#[tokio::test]
async fn a_signal_stops_headless_cleanup_with_a_summary_and_its_own_exit_status() {
    for (signal, number) in [
        (libc::SIGTERM, 143),
        (libc::SIGHUP, 129),
        (libc::SIGINT, 130),
    ] {
        let url = migrated_db().await;
        let table = guide();
        let mut conn = connect(&url).await;
        insert_expired(&mut conn, &table, 20_000).await;
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_idemtop"))
            .args([
                "--database-url",
                &url,
                "cleanup",
                "--batch-size",
                "5",
                "--format",
                "json",
            ])
            .env("NO_COLOR", "1")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Wait until it has deleted something, then signal it.
        let deadline = Instant::now() + Duration::from_secs(20);
        while count(&mut conn, &table, "true").await == 20_000 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        unsafe { libc::kill(child.id() as i32, signal) };
        let out = tokio::task::spawn_blocking(move || child.wait_with_output())
            .await
            .unwrap()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(number), "signal {signal}: {stdout}");
        let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
        assert_eq!(v["stopped"], "cancelled", "signal {signal}");
        let deleted = v["deleted"].as_u64().unwrap();
        assert!(deleted > 0 && deleted < 20_000, "{deleted}");
        assert_eq!(
            count(&mut conn, &table, "true").await,
            20_000 - deleted as i64,
            "what the summary says was deleted, was"
        );
    }
}

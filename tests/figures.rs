//! Figures that account for every action: after a cleanup of most rows the next refresh is
//! within 2% of `count(*)` without an ANALYZE, and steady inserts (20% new rows) do not make the
//! estimate drift; both with the exact counts carried forward (the dashboard's sampler) and
//! from the statistics alone (a fresh `idemtop snapshot`).

mod common;

use std::time::{Duration, Instant};

use common::*;
use idemtop::db::connect::ConnectConfig;
use idemtop::db::maintenance::{self, CleanupOptions};
use idemtop::db::snapshot::{RowsBasis, Sampler, Snapshot, SnapshotOptions};
use idemtop::db::table;
use idemtop::ident::TableRef;
use sqlx::{Connection, Executor, PgConnection};
use tokio_util::sync::CancellationToken;

/// `expired` rows that expired over the last day, `live` that expire over the next one.
async fn fill(url: &str, expired: i64, live: i64) {
    let mut c = connect(url).await;
    c.execute(
        format!(
            "INSERT INTO idempotency_records (request_id, operation, result_payload, status_code, created_at, expires_at)
             SELECT gen_random_uuid(), 'op' || (g % 7), 'x', 200, now() - interval '2 days',
                    now() - interval '1 day' + g * (interval '1 day' / {expired})
               FROM generate_series(1, {expired}) g;
             INSERT INTO idempotency_records (request_id, operation, result_payload, status_code, created_at, expires_at)
             SELECT gen_random_uuid(), 'op' || (g % 7), 'x', 200, now(),
                    now() + interval '1 minute' + g * (interval '1 day' / {live})
               FROM generate_series(1, {live}) g"
        )
        .as_str(),
    )
    .await
    .unwrap();
    c.close().await.unwrap(); // a backend flushes its counters when it exits
}

/// (total, expired) by count(*).
async fn truth(c: &mut PgConnection) -> (i64, i64) {
    sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE expires_at <= now()) FROM idempotency_records",
    )
    .fetch_one(c)
    .await
    .unwrap()
}

/// Wait until pg_stat shows `ins` inserts and `del` deletes in all (counters arrive
/// asynchronously).
async fn counters_reach(c: &mut PgConnection, ins: i64, del: i64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        c.execute("SELECT pg_stat_clear_snapshot()").await.unwrap();
        let (i, d): (i64, i64) = sqlx::query_as(
            "SELECT n_tup_ins, n_tup_del FROM pg_stat_user_tables WHERE relname = 'idempotency_records'",
        )
        .fetch_one(&mut *c)
        .await
        .unwrap();
        if (i >= ins && d >= del) || Instant::now() > deadline {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn within_2_percent(s: &Snapshot, (total, expired): (i64, i64), what: &str) {
    let tol = (total as f64 * 0.02).max(1.0);
    let live = total - expired;
    for (name, shown, real) in [
        ("total", s.rows.total, total),
        ("expired", s.rows.expired, expired),
        ("live", s.rows.live, live),
    ] {
        assert!(
            (shown - real).abs() as f64 <= tol,
            "{what}: {name} shown {shown}, count(*) {real} (basis {:?})",
            s.rows.basis
        );
    }
    // The Operations panel agrees with the Rows panel.
    let ops_live: i64 = s.operations.iter().filter_map(|o| o.live).sum();
    let ops_expired: i64 = s.operations.iter().filter_map(|o| o.expired).sum();
    if !s.operations.is_empty() && s.operations.iter().all(|o| o.live.is_some()) {
        assert!(
            (ops_live - s.rows.live).abs() as f64 <= tol,
            "{what}: ops live {ops_live} vs {}",
            s.rows.live
        );
        assert!(
            (ops_expired - s.rows.expired).abs() as f64 <= tol,
            "{what}: ops expired {ops_expired} vs {}",
            s.rows.expired
        );
    }
}

async fn refresh(c: &mut PgConnection, sampler: &mut Sampler, exact_pass: bool) -> Snapshot {
    let t = TableRef::default();
    let info = table::resolve(c, &t).await.unwrap();
    let opts = SnapshotOptions {
        exact_pass,
        exact_timeout: Duration::from_secs(30),
        ..SnapshotOptions::default()
    };
    let tm = idemtop::db::snapshot::TableMapping::resolve(&[], &t, &info);
    sampler
        .take(c, &t, &info, &tm, opts, Duration::from_secs(90))
        .await
        .unwrap()
}

async fn fresh_snapshot(c: &mut PgConnection) -> Snapshot {
    refresh(c, &mut Sampler::default(), false).await
}

#[tokio::test]
async fn after_a_cleanup_the_next_refresh_counts_what_it_deleted() {
    let url = migrated_db().await;
    fill(&url, 250_000, 150_000).await;
    let mut c = connect(&url).await;
    c.execute("ANALYZE idempotency_records").await.unwrap();
    counters_reach(&mut c, 400_000, 0).await;
    let mut sampler = Sampler::default();
    let anchored = refresh(&mut c, &mut sampler, true).await;
    assert_eq!(anchored.rows.basis, RowsBasis::Exact);

    let pool = ConnectConfig::from_url(&url).pool(2).await.unwrap();
    let s = maintenance::cleanup(
        &pool,
        &TableRef::default(),
        &CleanupOptions::default(),
        &CancellationToken::new(),
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!(s.deleted, 250_000);
    pool.close().await;
    counters_reach(&mut c, 400_000, 250_000).await;

    let real = truth(&mut c).await;
    assert_eq!(real, (150_000, 0));
    let carried = refresh(&mut c, &mut sampler, false).await;
    within_2_percent(&carried, real, "carried forward");
    let fresh = fresh_snapshot(&mut c).await;
    within_2_percent(&fresh, real, "statistics only");
}

#[tokio::test]
async fn steady_inserts_do_not_make_the_estimate_drift() {
    let url = migrated_db().await;
    fill(&url, 30_000, 30_000).await;
    let mut c = connect(&url).await;
    c.execute("ANALYZE idempotency_records").await.unwrap();
    counters_reach(&mut c, 60_000, 0).await;
    let mut sampler = Sampler::default();
    refresh(&mut c, &mut sampler, true).await;

    // 20% new rows, all live, no ANALYZE.
    let mut w = connect(&url).await;
    w.execute(
        "INSERT INTO idempotency_records (request_id, operation, result_payload, status_code, expires_at)
         SELECT gen_random_uuid(), 'op1', 'x', 200, now() + interval '1 day'
           FROM generate_series(1, 12000)",
    )
    .await
    .unwrap();
    w.close().await.unwrap();
    counters_reach(&mut c, 72_000, 0).await;

    let real = truth(&mut c).await;
    let carried = refresh(&mut c, &mut sampler, false).await;
    assert_eq!(carried.rows.basis, RowsBasis::CountedSince);
    within_2_percent(&carried, real, "carried forward");
    let fresh = fresh_snapshot(&mut c).await;
    assert_eq!(fresh.rows.basis, RowsBasis::Statistics);
    within_2_percent(&fresh, real, "statistics only");
}

/// The dashboard's sampler starts its exact-pass budget with the session: its first refresh
/// never scans a large table, and `E` (allow_exact_now) counts at once.
#[tokio::test]
async fn the_dashboards_first_refresh_does_not_scan_a_large_table() {
    let url = migrated_db().await;
    fill(&url, 15_000, 15_000).await;
    let mut c = connect(&url).await;
    c.execute("ANALYZE idempotency_records").await.unwrap();
    counters_reach(&mut c, 30_000, 0).await;
    let mut sampler = Sampler::budgeted_from_start();
    let first = refresh(&mut c, &mut sampler, true).await;
    assert_eq!(first.rows.basis, RowsBasis::Statistics, "{:?}", first.rows);
    // Within the budget that started with the session: still no scan.
    let second = refresh(&mut c, &mut sampler, true).await;
    assert_ne!(second.rows.basis, RowsBasis::Exact, "{:?}", second.rows);
    sampler.allow_exact_now();
    let asked = refresh(&mut c, &mut sampler, true).await;
    assert_eq!(asked.rows.basis, RowsBasis::Exact, "{:?}", asked.rows);
    assert_eq!(asked.rows.total, 30_000);
}

//! What a watching session reuses from one refresh to the next, and what it stops doing, on a
//! real server: the planner statistics until an ANALYZE, the per-operation facts of the checks
//! until the operator asks afresh, and scheduled exact passes once one gave up at its timeout.

mod common;

use std::time::Duration;

use common::*;
use idemtop::checks::{gather_cached, GatherCache};
use idemtop::config::Config;
use idemtop::db::snapshot::{self, Sampler, SnapshotCache, SnapshotOptions, TableMapping};
use idemtop::db::table;
use idemtop::ident::TableRef;
use sqlx::Executor;

/// `n` rows of `operation`, created an hour ago, expiring `expires` from now.
fn rows(n: u32, operation: &str, expires: &str) -> String {
    format!(
        "INSERT INTO idempotency_records (request_id, operation, result_payload, status_code, created_at, expires_at)
         SELECT gen_random_uuid(), '{operation}', '{{}}', 200, now() - interval '1 hour', now() + interval '{expires}'
           FROM generate_series(1, {n}) g"
    )
}

#[tokio::test]
async fn planner_statistics_are_read_again_after_an_analyze_and_only_then() {
    let url = migrated_db().await;
    let mut conn = connect(&url).await;
    // Above the exact-row limit: figures from pg_stats. All live at first.
    conn.execute(rows(30_000, "pay", "2 hours").as_str())
        .await
        .unwrap();
    flush_stats(&mut conn).await;
    conn.execute("ANALYZE idempotency_records").await.unwrap();
    flush_stats(&mut conn).await;
    let t = TableRef::default();
    let info = table::resolve(&mut conn, &t).await.unwrap();
    let tm = TableMapping::resolve(&[], &t, &info);
    let mut cache = SnapshotCache::default();
    let opts = SnapshotOptions::default();
    let first = snapshot::take_cached(&mut conn, &t, &info, &tm, opts, &mut cache)
        .await
        .unwrap();
    assert_eq!(first.operations.len(), 1, "{:?}", first.operations);
    assert_eq!(first.operations[0].operation, "pay");

    // A second operation, analyzed: the next refresh on the same session sees it.
    conn.execute(rows(30_000, "refund", "3 hours").as_str())
        .await
        .unwrap();
    // The inserts' counters reach the statistics before ANALYZE resets them, as with autovacuum.
    flush_stats(&mut conn).await;
    conn.execute("ANALYZE idempotency_records").await.unwrap();
    flush_stats(&mut conn).await;
    let second = snapshot::take_cached(&mut conn, &t, &info, &tm, opts, &mut cache)
        .await
        .unwrap();
    let names: Vec<&str> = second
        .operations
        .iter()
        .map(|o| o.operation.as_str())
        .collect();
    assert!(
        names.contains(&"refund") && names.contains(&"pay"),
        "after ANALYZE the most common values are read again: {names:?}"
    );
    let refund = second
        .operations
        .iter()
        .find(|o| o.operation == "refund")
        .unwrap();
    assert!(
        (refund.total - 30_000).abs() <= 1_500,
        "refund estimated {} of 30,000",
        refund.total
    );
}

#[tokio::test]
async fn the_checks_reuse_their_ttl_sample_until_asked_afresh() {
    let url = migrated_db().await;
    let mut conn = connect(&url).await;
    conn.execute(rows(500, "pay", "2 hours").as_str())
        .await
        .unwrap();
    let t = TableRef::default();
    let info = table::resolve(&mut conn, &t).await.unwrap();
    let snap = snapshot::take(&mut conn, &t, &info, SnapshotOptions::default())
        .await
        .unwrap();
    let cfg = Config::default();
    let mut cache = GatherCache::default();
    let ops = |e: &idemtop::checks::Extras| -> Vec<String> {
        let mut v: Vec<String> = e
            .operations
            .as_ref()
            .expect("facts read")
            .operations
            .iter()
            .map(|o| o.operation.clone())
            .collect();
        v.sort();
        v
    };
    let first = gather_cached(&mut conn, &t, &snap, &cfg, &mut cache, false)
        .await
        .unwrap();
    assert_eq!(ops(&first), ["pay"]);
    assert!(cache.operations().is_some(), "the facts are kept");

    conn.execute(rows(500, "refund", "3 hours").as_str())
        .await
        .unwrap();
    let reused = gather_cached(&mut conn, &t, &snap, &cfg, &mut cache, false)
        .await
        .unwrap();
    assert_eq!(ops(&reused), ["pay"], "reused, not read again");
    // Grants are read every time: a new grant shows at once.
    conn.execute("CREATE ROLE refresh_cost_writer; GRANT UPDATE ON idempotency_records TO refresh_cost_writer")
        .await
        .unwrap();
    let again = gather_cached(&mut conn, &t, &snap, &cfg, &mut cache, false)
        .await
        .unwrap();
    assert!(
        again
            .grants
            .as_ref()
            .unwrap()
            .iter()
            .any(|g| g.role == "refresh_cost_writer" && g.has("UPDATE")),
        "{:?}",
        again.grants
    );
    let fresh = gather_cached(&mut conn, &t, &snap, &cfg, &mut cache, true)
        .await
        .unwrap();
    assert_eq!(ops(&fresh), ["pay", "refund"], "read afresh on demand");
    conn.execute(
        "REVOKE ALL ON idempotency_records FROM refresh_cost_writer; DROP ROLE refresh_cost_writer",
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn an_exact_pass_that_gives_up_is_not_scheduled_again_until_asked_for() {
    let url = migrated_db().await;
    let mut conn = connect(&url).await;
    conn.execute(rows(60_000, "pay", "2 hours").as_str())
        .await
        .unwrap();
    conn.execute("ANALYZE idempotency_records").await.unwrap();
    flush_stats(&mut conn).await;
    let t = TableRef::default();
    let info = table::resolve(&mut conn, &t).await.unwrap();
    let tm = TableMapping::resolve(&[], &t, &info);
    let keep = Duration::from_secs(90);
    let mut sampler = Sampler::default();
    assert!(sampler.passes_on_schedule());
    // A pass that cannot finish in its timeout gives up...
    let hopeless = SnapshotOptions {
        exact_pass: true,
        exact_timeout: Duration::from_millis(1),
        ..SnapshotOptions::default()
    };
    let s = sampler
        .take(&mut conn, &t, &info, &tm, hopeless, keep)
        .await
        .unwrap();
    assert!(!s.rows.exact, "60k rows are not scanned in 1 ms");
    assert!(!sampler.passes_on_schedule(), "no more passes on schedule");
    // ... and the next scheduled one is not made, whatever the budget says.
    let scheduled = SnapshotOptions {
        exact_pass: true,
        ..SnapshotOptions::default()
    };
    let s = sampler
        .take(&mut conn, &t, &info, &tm, scheduled, keep)
        .await
        .unwrap();
    assert!(!s.rows.exact && !s.operations_exact);
    // On demand (the dashboard's `E`) it runs, and one that finishes puts them back.
    sampler.allow_exact_now();
    let s = sampler
        .take(&mut conn, &t, &info, &tm, scheduled, keep)
        .await
        .unwrap();
    assert!(s.rows.exact && s.operations_exact);
    assert_eq!(s.rows.total, 60_000);
    assert!(sampler.passes_on_schedule());
}

#[test]
fn a_first_pass_predicted_past_its_timeout_is_not_scheduled() {
    use idemtop::db::snapshot::{assumed_scan_secs, first_pass_fits};
    let timeout = SnapshotOptions::default().exact_timeout;
    // 100 MB: well within 2 s; 4 GB (10M guide rows): not.
    assert!(first_pass_fits(assumed_scan_secs(100 << 20), timeout));
    assert!(!first_pass_fits(assumed_scan_secs(4 << 30), timeout));
    assert!(first_pass_fits(assumed_scan_secs(-1), timeout));
}

//! The idempotency store and the synthetic workload against a real server: one winner per key
//! under concurrency, expiry by the server's clock, the guide's minimal privileges (no UPDATE),
//! TTL policy, cleanup (function and plain DELETE, the periodic task), workload and backfill.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use idemtop::db::connect::ConnectConfig;
use idemtop::db::migrate;
use idemtop::ident::{Ident, TableRef};
use idemtop::store::{IdempotencyStore, RecordOutcome, TtlPolicy};
use idemtop::workload::{self, WorkloadConfig, WorkloadStats};
use sqlx::{Executor, PgPool};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const HOUR: Duration = Duration::from_secs(3600);

async fn pool(url: &str, max: u32) -> PgPool {
    ConnectConfig::from_url(url)
        .pool(max)
        .await
        .expect("connect a pool")
}

fn store(pool: &PgPool, ttl: TtlPolicy) -> IdempotencyStore {
    IdempotencyStore::new(pool.clone(), TableRef::default(), ttl)
}

async fn count(pool: &PgPool, where_: &str) -> i64 {
    sqlx::query_scalar(&format!(
        "SELECT count(*) FROM idempotency_records WHERE {where_}"
    ))
    .fetch_one(pool)
    .await
    .unwrap()
}

/// A record that expired an hour ago and was not cleaned up yet.
async fn insert_expired(pool: &PgPool, key: Uuid, payload: &str) {
    sqlx::query(
        "INSERT INTO idempotency_records
                (request_id, operation, result_payload, status_code, created_at, expires_at)
         VALUES ($1, 'create_transaction', $2, 201, now() - interval '2 hours', now() - interval '1 hour')",
    )
    .bind(key)
    .bind(payload)
    .execute(pool)
    .await
    .unwrap();
}

async fn insert_live(pool: &PgPool, key: Uuid) {
    sqlx::query(
        "INSERT INTO idempotency_records (request_id, operation, result_payload, status_code, expires_at)
         VALUES ($1, 'get_balance', '{}', 200, now() + interval '1 hour')",
    )
    .bind(key)
    .execute(pool)
    .await
    .unwrap();
}

#[tokio::test]
async fn exactly_one_of_32_concurrent_records_wins() {
    let url = migrated_db().await;
    let pool = pool(&url, 32).await;
    let store = Arc::new(store(&pool, TtlPolicy::default()));
    let key = Uuid::new_v4();
    let barrier = Arc::new(tokio::sync::Barrier::new(32));
    let mut tasks = Vec::new();
    for i in 0..32 {
        let (store, barrier) = (Arc::clone(&store), Arc::clone(&barrier));
        tasks.push(tokio::spawn(async move {
            let payload = format!(r#"{{"attempt":{i}}}"#);
            barrier.wait().await;
            let outcome = store
                .record(key, "create_transaction", Some(201), &payload)
                .await
                .unwrap();
            (payload, outcome)
        }));
    }
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap());
    }
    let winners: Vec<&String> = results
        .iter()
        .filter(|(_, o)| *o == RecordOutcome::Stored)
        .map(|(p, _)| p)
        .collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    let winner = winners[0].clone();
    for (_, outcome) in &results {
        match outcome {
            RecordOutcome::Stored => {}
            RecordOutcome::AlreadyStored(r) => {
                assert_eq!(r.payload, winner);
                assert_eq!(r.status_code, Some(201));
                assert!(r.expires_at > r.created_at);
            }
            other => panic!("unexpected outcome {other:?}"),
        }
    }
    assert_eq!(count(&pool, "true").await, 1);
    let found = store.lookup(key).await.unwrap().expect("live record");
    assert_eq!(found.payload, winner);
}

#[tokio::test]
async fn expired_record_is_absent_then_replaced() {
    let url = migrated_db().await;
    let pool = pool(&url, 4).await;
    let store = store(&pool, TtlPolicy::default());
    let key = Uuid::new_v4();
    insert_expired(&pool, key, "old").await;

    assert_eq!(store.lookup(key).await.unwrap(), None);
    assert_eq!(count(&pool, "true").await, 1, "still there before cleanup");

    let outcome = store
        .record(key, "create_transaction", Some(201), "new")
        .await
        .unwrap();
    assert_eq!(outcome, RecordOutcome::ReplacedExpired);
    assert_eq!(count(&pool, "true").await, 1);
    let found = store.lookup(key).await.unwrap().expect("the new record");
    assert_eq!(found.payload, "new");
    assert_eq!(found.status_code, Some(201));

    // Live now: recording again returns the stored one and changes nothing.
    match store
        .record(key, "create_transaction", Some(500), "again")
        .await
    {
        Ok(RecordOutcome::AlreadyStored(r)) => assert_eq!(r, found),
        other => panic!("{other:?}"),
    }
    assert_eq!(count(&pool, "result_payload = 'new'").await, 1);

    // A key nobody has seen: a plain store, NULL status allowed.
    let fresh = Uuid::new_v4();
    assert_eq!(
        store.record(fresh, "refund", None, "{}").await.unwrap(),
        RecordOutcome::Stored
    );
    assert_eq!(
        store.lookup(fresh).await.unwrap().unwrap().status_code,
        None
    );
}

#[tokio::test]
async fn concurrent_replacements_of_an_expired_key_store_one() {
    let url = migrated_db().await;
    let pool = pool(&url, 16).await;
    let store = Arc::new(store(&pool, TtlPolicy::default()));
    let key = Uuid::new_v4();
    insert_expired(&pool, key, "old").await;
    let barrier = Arc::new(tokio::sync::Barrier::new(16));
    let mut tasks = Vec::new();
    for i in 0..16 {
        let (store, barrier) = (Arc::clone(&store), Arc::clone(&barrier));
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            store
                .record(key, "payment", Some(200), &format!("p{i}"))
                .await
                .unwrap()
        }));
    }
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(t.await.unwrap());
    }
    let replaced = outcomes
        .iter()
        .filter(|o| **o == RecordOutcome::ReplacedExpired)
        .count();
    let already = outcomes
        .iter()
        .filter(|o| matches!(o, RecordOutcome::AlreadyStored(_)))
        .count();
    assert_eq!((replaced, already), (1, 15), "{outcomes:?}");
    assert_eq!(count(&pool, "true").await, 1);
    assert_eq!(count(&pool, "expires_at > now()").await, 1);
}

#[tokio::test]
async fn works_with_only_select_insert_delete() {
    let url = migrated_db().await;
    let admin = pool(&url, 2).await;
    let db = url.rsplit('/').next().unwrap().to_string();
    let role = format!("api_{db}");
    admin
        .execute(
            format!(
                "CREATE ROLE \"{role}\" LOGIN;
                 GRANT SELECT, INSERT, DELETE ON idempotency_records TO \"{role}\";
                 GRANT EXECUTE ON FUNCTION cleanup_expired_idempotency_records() TO \"{role}\";"
            )
            .as_str(),
        )
        .await
        .unwrap();
    let api_url = format!("postgres://{role}@127.0.0.1:{}/{db}", server().port());
    let api = pool(&api_url, 4).await;

    // The role really has no UPDATE.
    let can_update: bool =
        sqlx::query_scalar("SELECT has_table_privilege('idempotency_records', 'UPDATE')")
            .fetch_one(&api)
            .await
            .unwrap();
    assert!(!can_update);
    let err = sqlx::query("UPDATE idempotency_records SET status_code = 1")
        .execute(&api)
        .await
        .unwrap_err();
    assert_eq!(
        err.as_database_error().and_then(|e| e.code()).as_deref(),
        Some("42501")
    );

    let store = store(&api, TtlPolicy::default());
    let key = Uuid::new_v4();
    assert_eq!(
        store.record(key, "payment", Some(200), "p").await.unwrap(),
        RecordOutcome::Stored
    );
    assert!(matches!(
        store.record(key, "payment", Some(200), "q").await.unwrap(),
        RecordOutcome::AlreadyStored(r) if r.payload == "p"
    ));
    assert_eq!(store.lookup(key).await.unwrap().unwrap().payload, "p");

    let stale = Uuid::new_v4();
    insert_expired(&admin, stale, "old").await;
    assert_eq!(
        store
            .record(stale, "refund", Some(201), "new")
            .await
            .unwrap(),
        RecordOutcome::ReplacedExpired
    );

    // Cleanup through migration 046's function...
    for _ in 0..3 {
        insert_expired(&admin, Uuid::new_v4(), "x").await;
    }
    assert_eq!(store.cleanup_expired().await.unwrap(), 3);
    // ...and, when the role may not execute it, through a plain DELETE.
    admin
        .execute(
            format!(
                "REVOKE EXECUTE ON FUNCTION cleanup_expired_idempotency_records() FROM PUBLIC, \"{role}\""
            )
            .as_str(),
        )
        .await
        .unwrap();
    for _ in 0..2 {
        insert_expired(&admin, Uuid::new_v4(), "x").await;
    }
    assert_eq!(store.cleanup_expired().await.unwrap(), 2);
    assert_eq!(count(&admin, "true").await, 2, "the two live records");
}

#[tokio::test]
async fn ttl_policy_default_and_custom() {
    let p = TtlPolicy::default();
    assert_eq!(p.ttl_for("payment"), HOUR);
    assert_eq!(p.ttl_for("transfer"), HOUR);
    assert_eq!(p.ttl_for("create_transaction"), 24 * HOUR);

    let url = migrated_db().await;
    let pool = pool(&url, 4).await;
    let ttl_of = |key: Uuid| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, f64>(
                "SELECT extract(epoch FROM expires_at - created_at)::float8
                   FROM idempotency_records WHERE request_id = $1",
            )
            .bind(key)
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };

    let default = store(&pool, TtlPolicy::default());
    for (op, secs) in [
        ("payment", 3600.0),
        ("transfer", 3600.0),
        ("get_balance", 86400.0),
        ("create_invoice", 86400.0),
    ] {
        let key = Uuid::new_v4();
        default.record(key, op, Some(200), "{}").await.unwrap();
        assert_eq!(ttl_of(key).await, secs, "{op}");
    }

    let custom = store(
        &pool,
        TtlPolicy::uniform(Duration::from_secs(600)).with("refund", Duration::from_millis(90_500)),
    );
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    custom.record(a, "refund", Some(201), "{}").await.unwrap();
    custom.record(b, "payment", Some(200), "{}").await.unwrap();
    assert_eq!(ttl_of(a).await, 90.5);
    assert_eq!(ttl_of(b).await, 600.0);

    // A zero TTL could never satisfy chk_expires_at: refused before the database sees it.
    let zero = store(&pool, TtlPolicy::uniform(Duration::ZERO));
    let err = zero
        .record(Uuid::new_v4(), "payment", Some(200), "{}")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("TTL"), "{err:#}");
}

#[tokio::test]
async fn cleanup_returns_deleted_count_and_the_task_runs_until_cancelled() {
    let url = migrated_db().await;
    let pool = pool(&url, 4).await;
    let store = Arc::new(store(&pool, TtlPolicy::default()));
    for _ in 0..5 {
        insert_expired(&pool, Uuid::new_v4(), "x").await;
    }
    for _ in 0..3 {
        insert_live(&pool, Uuid::new_v4()).await;
    }
    assert_eq!(store.cleanup_expired().await.unwrap(), 5);
    assert_eq!(store.cleanup_expired().await.unwrap(), 0);
    assert_eq!(count(&pool, "true").await, 3);

    for _ in 0..4 {
        insert_expired(&pool, Uuid::new_v4(), "x").await;
    }
    let stats = store.cleanup_stats();
    let cancel = CancellationToken::new();
    let handle = Arc::clone(&store).spawn_cleanup_task(Duration::from_millis(200), cancel.clone());
    for _ in 0..200 {
        if stats.runs() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(stats.runs() >= 2, "the task ran: {stats:?}");
    assert_eq!(stats.deleted(), 4);
    assert_eq!(stats.failures(), 0);
    assert_eq!(count(&pool, "true").await, 3);

    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(5), handle)
        .await
        .expect("the task stops on cancel")
        .unwrap();
    let runs = stats.runs();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(stats.runs(), runs, "no run after cancel");

    // cleanup_expired goes through migration 046's function when it is there.
    pool.execute(
        "CREATE OR REPLACE FUNCTION cleanup_expired_idempotency_records()
         RETURNS TABLE (deleted_count bigint) LANGUAGE sql AS 'SELECT 42::bigint'",
    )
    .await
    .unwrap();
    assert_eq!(store.cleanup_expired().await.unwrap(), 42);
}

#[tokio::test]
async fn other_schema_and_table_names_are_quoted_and_cleaned_separately() {
    let url = migrated_db().await;
    let pool = pool(&url, 4).await;
    // Migrations 045/046 in a second schema: the function there cleans only its own table.
    pool.execute("CREATE SCHEMA \"tenant b\"").await.unwrap();
    let mut conn = connect(&url).await;
    migrate::run(&mut conn, &Ident::new("tenant b").unwrap())
        .await
        .unwrap();
    // And a table with an odd name (no cleanup function for it).
    pool.execute(
        "CREATE TABLE \"tenant b\".\"odd \"\"name\"\"\" (LIKE public.idempotency_records INCLUDING ALL)",
    )
    .await
    .unwrap();

    insert_expired(&pool, Uuid::new_v4(), "public").await;
    for table in ["idempotency_records", "odd \"name\""] {
        let t = TableRef::new("tenant b", table).unwrap();
        let s = IdempotencyStore::new(pool.clone(), t.clone(), TtlPolicy::default());
        let q = t.qualified();
        for _ in 0..2 {
            sqlx::query(&format!(
                "INSERT INTO {q} (request_id, operation, result_payload, created_at, expires_at)
                 VALUES ($1, 'payment', 'x', now() - interval '2 hours', now() - interval '1 hour')"
            ))
            .bind(Uuid::new_v4())
            .execute(&pool)
            .await
            .unwrap();
        }
        let key = Uuid::new_v4();
        assert_eq!(
            s.record(key, "payment", Some(200), "p").await.unwrap(),
            RecordOutcome::Stored
        );
        assert_eq!(s.lookup(key).await.unwrap().unwrap().payload, "p");
        assert_eq!(s.cleanup_expired().await.unwrap(), 2, "{table}");
    }
    assert_eq!(
        count(&pool, "true").await,
        1,
        "public's expired row untouched"
    );
}

#[tokio::test]
async fn workload_stores_replays_and_replaces() {
    let url = migrated_db().await;
    let pool = pool(&url, 10).await;
    // The two most common operations expire fast, so retries of them find expired records.
    let ttl = TtlPolicy::default()
        .with("get_balance", Duration::from_millis(250))
        .with("create_transaction", Duration::from_millis(250));
    let store = Arc::new(store(&pool, ttl));
    let stats = Arc::new(WorkloadStats::default());
    let cancel = CancellationToken::new();
    let cfg = WorkloadConfig {
        rate: 200.0,
        replay_share: 0.15,
        seed: 42,
    };
    let run = tokio::spawn(workload::run(
        Arc::clone(&store),
        cfg,
        Arc::clone(&stats),
        cancel.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("run stops on cancel")
        .unwrap();

    let s = stats.snapshot();
    eprintln!("workload: {s:?}");
    assert!(s.requests > 0, "{s:?}");
    assert_eq!(s.errors, 0, "{s:?}");
    assert!(s.stored > 0, "{s:?}");
    assert!(s.replays_hit > 0, "{s:?}");
    assert!(s.replaced_expired > 0, "{s:?}");
    assert_eq!(
        s.stored + s.replays_hit + s.replaced_expired + s.conflicts,
        s.requests,
        "every request ended one way: {s:?}"
    );
    let rows = count(&pool, "true").await as u64;
    assert_eq!(rows, s.stored, "{s:?}");
    let ops: i64 = sqlx::query_scalar("SELECT count(DISTINCT operation) FROM idempotency_records")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(ops >= 5, "{ops} operations");
    let statuses: i64 =
        sqlx::query_scalar("SELECT count(DISTINCT status_code) FROM idempotency_records")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(statuses >= 3, "{statuses} status codes");
}

#[tokio::test]
async fn workload_survives_a_missing_table() {
    let url = migrated_db().await;
    let pool = pool(&url, 4).await;
    let s = IdempotencyStore::new(
        pool.clone(),
        TableRef::new("public", "no_such_table").unwrap(),
        TtlPolicy::default(),
    );
    let stats = Arc::new(WorkloadStats::default());
    let cancel = CancellationToken::new();
    let run = tokio::spawn(workload::run(
        Arc::new(s),
        WorkloadConfig::default(),
        Arc::clone(&stats),
        cancel.clone(),
    ));
    for _ in 0..100 {
        if stats.snapshot().errors >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("run stops on cancel")
        .expect("run does not panic");
    assert!(stats.snapshot().errors >= 2, "{:?}", stats.snapshot());
}

#[tokio::test]
async fn backfill_inserts_skewed_history_within_the_spread() {
    let url = migrated_db().await;
    let pool = pool(&url, 2).await;
    let spread = 48 * HOUR;
    let before: chrono::DateTime<chrono::Utc> = sqlx::query_scalar("SELECT now()")
        .fetch_one(&pool)
        .await
        .unwrap();
    let n = workload::backfill(&pool, &TableRef::default(), 20_000, spread, 7)
        .await
        .unwrap();
    assert_eq!(n, 20_000);
    assert_eq!(count(&pool, "true").await, 20_000);
    let oldest = before - chrono::Duration::from_std(spread).unwrap();
    let outside: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM idempotency_records WHERE created_at < $1 OR created_at > now()",
    )
    .bind(oldest)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(outside, 0);
    assert_eq!(count(&pool, "NOT (expires_at > created_at)").await, 0);
    let expired = count(&pool, "expires_at <= now()").await;
    assert!(expired > 2_000 && expired < 18_000, "{expired} expired");

    // The default TTL policy.
    assert_eq!(
        count(
            &pool,
            "operation IN ('payment', 'transfer') AND expires_at - created_at <> interval '1 hour'"
        )
        .await,
        0
    );
    assert_eq!(
        count(
            &pool,
            "operation NOT IN ('payment', 'transfer') AND expires_at - created_at <> interval '24 hours'"
        )
        .await,
        0
    );

    // The operation mix, skewed.
    let per_op: Vec<(String, i64)> = sqlx::query_as(
        "SELECT operation::text, count(*) FROM idempotency_records GROUP BY 1 ORDER BY 2 DESC",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(per_op.len(), workload::operations().len(), "{per_op:?}");
    assert_eq!(per_op[0].0, workload::operations()[0].0);
    assert!(
        per_op[0].1 > 3 * per_op[per_op.len() - 1].1,
        "skewed: {per_op:?}"
    );

    // Status codes: mostly 2xx, some 4xx, a few 5xx.
    let (ok, client, server_err): (i64, i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE status_code BETWEEN 200 AND 299),
                count(*) FILTER (WHERE status_code BETWEEN 400 AND 499),
                count(*) FILTER (WHERE status_code BETWEEN 500 AND 599)
           FROM idempotency_records",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(ok + client + server_err, 20_000);
    assert!(ok > 15_000 && client > 500 && server_err > 50 && server_err < client);

    // Payload sizes: mostly small, a long tail; valid JSON.
    let (median, p99, max): (f64, f64, i32) = sqlx::query_as(
        "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY length(result_payload)),
                percentile_cont(0.99) WITHIN GROUP (ORDER BY length(result_payload)),
                max(length(result_payload))
           FROM idempotency_records",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!((100.0..=450.0).contains(&median), "median {median}");
    assert!(p99 > 1000.0, "p99 {p99}");
    assert!(max <= 64 * 1024 + 200, "max {max}");
    assert_eq!(
        count(&pool, "result_payload::jsonb IS NULL").await,
        0,
        "every payload parses as JSON"
    );
}

/// By hand: `cargo test --release --test store -- --ignored --nocapture backfill_speed`.
#[tokio::test]
#[ignore]
async fn backfill_speed_1m() {
    let url = migrated_db().await;
    let pool = pool(&url, 2).await;
    let start = std::time::Instant::now();
    let n = workload::backfill(&pool, &TableRef::default(), 1_000_000, 48 * HOUR, 1)
        .await
        .unwrap();
    eprintln!("backfill: {n} rows in {:?}", start.elapsed());
}

/// On the partitioned layout the key is (request_id, expires_at): the database cannot enforce
/// one row per request_id, so the store serializes each key with an advisory lock instead.
#[tokio::test]
async fn partitioned_layout_still_stores_exactly_one_result_per_key() {
    let url = fresh_db().await;
    {
        let mut conn = connect(&url).await;
        migrate::run_layout(
            &mut conn,
            &Ident::new("public").unwrap(),
            migrate::Layout::Partitioned,
        )
        .await
        .unwrap();
    }
    let pool = pool(&url, 16).await;
    let store = Arc::new(store(&pool, TtlPolicy::default()));
    let key = Uuid::new_v4();
    let mut tasks = Vec::new();
    for i in 0..32 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            store
                .record(key, "payment", Some(201), &format!("{{\"n\":{i}}}"))
                .await
                .unwrap()
        }));
    }
    let mut stored = 0;
    for t in tasks {
        if matches!(t.await.unwrap(), RecordOutcome::Stored) {
            stored += 1;
        }
    }
    assert_eq!(stored, 1, "exactly one winner");
    assert_eq!(count(&pool, &format!("request_id = '{key}'")).await, 1);

    let old = Uuid::new_v4();
    insert_expired(&pool, old, "{\"old\":true}").await;
    assert!(store.lookup(old).await.unwrap().is_none());
    assert_eq!(
        store
            .record(old, "refund", Some(200), "{\"new\":true}")
            .await
            .unwrap(),
        RecordOutcome::ReplacedExpired
    );
    assert_eq!(count(&pool, &format!("request_id = '{old}'")).await, 1);
    assert_eq!(
        store.lookup(old).await.unwrap().unwrap().payload,
        "{\"new\":true}"
    );
}

/// A record that never expires (`'infinity'`, allowed by the CHECK) and one created at
/// `'-infinity'` are read without a panic, and are what they say.
#[tokio::test]
async fn infinite_timestamps_are_read_not_panicked_on() {
    let url = migrated_db().await;
    let pool = pool(&url, 2).await;
    let (forever, ancient) = (Uuid::new_v4(), Uuid::new_v4());
    sqlx::query(
        "INSERT INTO idempotency_records (request_id, operation, result_payload, status_code, created_at, expires_at)
         VALUES ($1, 'x', '{}', 200, now(), 'infinity'), ($2, 'x', '{}', 200, '-infinity', now() + interval '1 hour')",
    )
    .bind(forever)
    .bind(ancient)
    .execute(&pool)
    .await
    .unwrap();
    let s = store(&pool, TtlPolicy::default());
    let got = s.lookup(forever).await.unwrap().expect("live forever");
    assert_eq!(got.expires_at, idemtop::db::ts::Ts::Infinity);
    let got = s.lookup(ancient).await.unwrap().expect("live for an hour");
    assert_eq!(got.created_at, idemtop::db::ts::Ts::NegInfinity);
    // Recording the same key answers with the stored result instead of failing.
    let again = s
        .record(forever, "x", Some(201), "{\"again\":true}")
        .await
        .unwrap();
    assert!(
        matches!(&again, idemtop::store::RecordOutcome::AlreadyStored(r) if r.expires_at == idemtop::db::ts::Ts::Infinity),
        "{again:?}"
    );
}

//! The optional partitioned layout (`migrations/partitioned/`) against a real server: its schema,
//! inserts, the snapshot over partitions, `partitions::list`, `partitions::drop_expired` (also
//! behind a long transaction), the partitioned cleanup function, the down migrations, the psql
//! path, and the partitions screen.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use common::*;
use idemtop::db::partitions::{self, PartitionInfo, PartitionState, PARTITIONED_MIGRATOR};
use idemtop::db::snapshot::{self, SnapshotOptions};
use idemtop::db::{migrate, table};
use idemtop::ident::TableRef;
use idemtop::ui::{self, Theme};
use ratatui::backend::TestBackend;
use ratatui::Terminal;
use sqlx::{Executor, PgConnection};

/// Guards against a hang only; nothing here asserts how long anything took.
const HANG_GUARD: Duration = Duration::from_secs(60);

/// A fresh database with the partitioned set applied.
async fn partitioned_db() -> (String, PgConnection) {
    let url = fresh_db().await;
    let mut conn = connect(&url).await;
    PARTITIONED_MIGRATOR
        .run(&mut conn)
        .await
        .expect("apply the partitioned migrations");
    (url, conn)
}

/// 30 rows expired ~3 h ago, 5 just expired, 40 live (+30 min), 30 live (+20 h), 10 live (+47 h).
const SEED: &str = "
INSERT INTO idempotency_records (request_id, operation, result_payload, status_code, created_at, expires_at)
SELECT gen_random_uuid(), 'payment', repeat('x', 100), 201, now() - interval '5 hours', now() - interval '3 hours' + g * interval '1 minute'
  FROM generate_series(1, 30) g;
INSERT INTO idempotency_records (request_id, operation, result_payload, status_code, created_at, expires_at)
SELECT gen_random_uuid(), 'payment', 'x', 200, now() - interval '1 hour', now() - interval '1 second'
  FROM generate_series(1, 5) g;
INSERT INTO idempotency_records (request_id, operation, result_payload, status_code, created_at, expires_at)
SELECT gen_random_uuid(), 'create_transaction', repeat('y', 300), 200, now(), now() + interval '30 minutes'
  FROM generate_series(1, 40) g;
INSERT INTO idempotency_records (request_id, operation, result_payload, status_code, created_at, expires_at)
SELECT gen_random_uuid(), 'get_balance', '{}', 404, now(), now() + interval '20 hours'
  FROM generate_series(1, 30) g;
INSERT INTO idempotency_records (request_id, operation, result_payload, status_code, created_at, expires_at)
SELECT gen_random_uuid(), 'refund', '{}', 200, now(), now() + interval '47 hours'
  FROM generate_series(1, 10) g;
";
const SEEDED: i64 = 115;
const SEEDED_LIVE: i64 = 80;

async fn scalar_i64(conn: &mut PgConnection, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(conn).await.unwrap()
}

async fn server_now(conn: &mut PgConnection) -> DateTime<Utc> {
    sqlx::query_scalar("SELECT now()")
        .fetch_one(conn)
        .await
        .unwrap()
}

async fn table_oid(conn: &mut PgConnection) -> u32 {
    table::resolve(conn, &TableRef::default())
        .await
        .unwrap()
        .oid
}

async fn partition_names(conn: &mut PgConnection) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
          WHERE i.inhparent = 'idempotency_records'::regclass ORDER BY 1",
    )
    .fetch_all(conn)
    .await
    .unwrap()
}

type Column = (String, String, Option<i32>, String, Option<String>);

async fn columns_and_check(conn: &mut PgConnection) -> (Vec<Column>, Vec<String>) {
    let cols = sqlx::query_as(
        "SELECT column_name::text, data_type::text, character_maximum_length::int,
                is_nullable::text, column_default::text
           FROM information_schema.columns
          WHERE table_schema = 'public' AND table_name = 'idempotency_records'
          ORDER BY ordinal_position",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    let checks = sqlx::query_scalar(
        "SELECT conname || ' ' || pg_get_constraintdef(oid) FROM pg_constraint
          WHERE conrelid = 'idempotency_records'::regclass AND contype = 'c' ORDER BY conname",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    (cols, checks)
}

#[tokio::test]
async fn the_default_set_ignores_the_subfolder_and_the_partitioned_set_has_its_own_pairs() {
    let plain: Vec<(i64, String)> = migrate::MIGRATOR
        .iter()
        .map(|m| (m.version, m.description.to_string()))
        .collect();
    assert_eq!(plain.len(), 4, "{plain:?}");
    assert!(
        plain.iter().all(|(_, d)| !d.contains("partition")),
        "{plain:?}"
    );
    let part: Vec<(i64, bool, String)> = PARTITIONED_MIGRATOR
        .iter()
        .map(|m| {
            (
                m.version,
                m.migration_type.is_up_migration(),
                m.description.to_string(),
            )
        })
        .collect();
    assert_eq!(part.len(), 4, "{part:?}");
    for (v, desc) in [
        (45, "create idempotency records partitioned"),
        (46, "create idempotency partition maintenance"),
    ] {
        for up in [true, false] {
            assert!(part.contains(&(v, up, desc.to_string())), "{part:?}");
        }
    }
}

#[tokio::test]
async fn the_partitioned_schema_has_the_guides_columns_and_hourly_range_partitions() {
    let (_url, mut conn) = partitioned_db().await;
    let plain_url = migrated_db().await;
    let mut plain = connect(&plain_url).await;
    // Same columns, types, nullability, default and CHECK as the plain migration 045.
    assert_eq!(
        columns_and_check(&mut conn).await,
        columns_and_check(&mut plain).await
    );
    let (_, checks) = columns_and_check(&mut conn).await;
    assert_eq!(checks, ["chk_expires_at CHECK ((expires_at > created_at))"]);

    let key: String =
        sqlx::query_scalar("SELECT pg_get_partkeydef('idempotency_records'::regclass)")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(key, "RANGE (expires_at)");
    let pk: String = sqlx::query_scalar(
        "SELECT conname || ' ' || pg_get_constraintdef(oid) FROM pg_constraint
          WHERE conrelid = 'idempotency_records'::regclass AND contype = 'p'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(
        pk,
        "idempotency_records_pkey PRIMARY KEY (request_id, expires_at)"
    );
    let indexes: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT c.relname::text, c.relkind::text, pg_get_indexdef(c.oid)
           FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
          WHERE i.indrelid = 'idempotency_records'::regclass ORDER BY 1",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let names: Vec<&str> = indexes.iter().map(|i| i.0.as_str()).collect();
    assert_eq!(
        names,
        [
            "idempotency_records_pkey",
            "idx_idempotency_expires",
            "idx_idempotency_operation"
        ]
    );
    assert!(
        indexes.iter().all(|i| i.1 == "I"),
        "partitioned indexes: {indexes:?}"
    );
    assert!(
        indexes[1].2.ends_with("USING btree (expires_at)"),
        "{indexes:?}"
    );
    assert!(
        indexes[2].2.ends_with("USING btree (operation)"),
        "{indexes:?}"
    );

    // 97 hourly partitions: the 48 hours before the current hour, it, and the 48 after.
    let now = server_now(&mut conn).await;
    let oid = table_oid(&mut conn).await;
    let parts = partitions::list(&mut conn, oid).await.unwrap();
    assert_eq!(parts.len(), 97);
    for w in parts.windows(2) {
        assert_eq!(
            w[0].upper, w[1].lower,
            "contiguous: {} {}",
            w[0].name, w[1].name
        );
    }
    for p in &parts {
        let (lo, hi) = (p.lower.unwrap(), p.upper.unwrap());
        assert_eq!(hi - lo, chrono::Duration::hours(1), "{}", p.name);
        assert_eq!(
            p.name,
            format!("idempotency_records_p{}", lo.format("%Y%m%d%H"))
        );
        assert!(!p.is_default && !p.detach_pending && p.blocked_by.is_none());
        assert_eq!((p.rows, p.rows_exact), (0, true));
    }
    assert!(parts[0].lower.unwrap() <= now - chrono::Duration::hours(48));
    assert!(parts[96].upper.unwrap() >= now + chrono::Duration::hours(48));
    assert_eq!(parts.iter().filter(|p| p.straddles_now).count(), 1);
    let until = partitions::covered_until(&parts, now).unwrap();
    assert!(until >= now + chrono::Duration::hours(48));
}

#[tokio::test]
async fn inserts_land_in_their_hour_and_request_id_is_unique_only_per_expiry() {
    let (_url, mut conn) = partitioned_db().await;
    conn.execute(SEED).await.unwrap();
    assert_eq!(
        scalar_i64(&mut conn, "SELECT count(*) FROM idempotency_records").await,
        SEEDED
    );
    // Every row is in the partition named after its expiry hour (UTC).
    let misplaced = scalar_i64(
        &mut conn,
        "SELECT count(*) FROM idempotency_records
          WHERE tableoid::regclass::text <> 'idempotency_records_p' || to_char(expires_at AT TIME ZONE 'UTC', 'YYYYMMDDHH24')",
    )
    .await;
    assert_eq!(misplaced, 0);

    // Beyond the newest partition: no default partition, the insert fails loudly.
    let err = conn
        .execute(
            "INSERT INTO idempotency_records (request_id, operation, result_payload, expires_at)
             VALUES (gen_random_uuid(), 'x', '{}', now() + interval '60 hours')",
        )
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "23514", "{err}");
    // The CHECK still holds.
    let err = conn
        .execute(
            "INSERT INTO idempotency_records (request_id, operation, result_payload, created_at, expires_at)
             VALUES (gen_random_uuid(), 'x', '{}', now(), now() - interval '1 hour')",
        )
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "23514", "{err}");

    // The trade-off the README states: the key is (request_id, expires_at).
    conn.execute(
        "INSERT INTO idempotency_records (request_id, operation, result_payload, expires_at)
         VALUES ('550e8400-e29b-41d4-a716-446655440000', 'retry', '{}', now() + interval '24 hours')",
    )
    .await
    .unwrap();
    conn.execute(
        "INSERT INTO idempotency_records (request_id, operation, result_payload, expires_at)
         VALUES ('550e8400-e29b-41d4-a716-446655440000', 'retry', '{}', now() + interval '25 hours')",
    )
    .await
    .expect("same request_id with another expiry is accepted: uniqueness is per (request_id, expires_at)");
    let err = conn
        .execute(
            "INSERT INTO idempotency_records (request_id, operation, result_payload, expires_at)
             SELECT request_id, operation, result_payload, expires_at FROM idempotency_records
              WHERE request_id = '550e8400-e29b-41d4-a716-446655440000' LIMIT 1",
        )
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "23505", "{err}");
}

fn sqlstate(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Database(db) => db.code().map(|c| c.to_string()).unwrap_or_default(),
        _ => String::new(),
    }
}

#[tokio::test]
async fn the_snapshot_sums_over_the_partitions() {
    let (_url, mut conn) = partitioned_db().await;
    conn.execute(SEED).await.unwrap();
    // Index scans on some partitions, flushed to the statistics.
    conn.execute(
        "SET enable_seqscan = off; SET enable_bitmapscan = off;
         SELECT * FROM idempotency_records WHERE request_id = '550e8400-e29b-41d4-a716-446655440000';
         SELECT * FROM idempotency_records WHERE operation = 'refund';",
    )
    .await
    .unwrap();
    flush_stats(&mut conn).await;
    let t = TableRef::default();
    let mut reader = connect(&_url).await;
    let info = table::resolve(&mut reader, &t).await.unwrap();
    assert!(info.partitioned);
    let s = snapshot::take(&mut reader, &t, &info, SnapshotOptions::default())
        .await
        .unwrap();
    assert!(s.partitioned);
    assert!(s.rows.exact);
    assert_eq!(s.rows.total, SEEDED);
    assert_eq!(s.rows.expired, SEEDED - SEEDED_LIVE);
    assert_eq!(s.rows.live, SEEDED_LIVE);
    assert_eq!(s.horizon.within_1h, 40);
    assert_eq!(s.horizon.later, 10);
    assert!(s.sizes.total_bytes > 0 && s.sizes.table_bytes > 0 && s.sizes.index_bytes > 0);
    let names: Vec<&str> = s.indexes.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "idempotency_records_pkey",
            "idx_idempotency_expires",
            "idx_idempotency_operation"
        ]
    );
    assert!(
        s.indexes.iter().all(|i| i.size_bytes > 0),
        "{:?}",
        s.indexes
    );
    assert!(s.expected_indexes.iter().all(|e| !e.missing()));
    // Scans are the sums over the partitions' indexes.
    for i in &s.indexes {
        let summed: i64 = sqlx::query_scalar(
            "SELECT coalesce(sum(s.idx_scan), 0)::int8 FROM pg_stat_user_indexes s
               JOIN pg_inherits inh ON inh.inhrelid = s.indexrelid
              WHERE inh.inhparent = to_regclass($1)",
        )
        .bind(&i.name)
        .fetch_one(&mut reader)
        .await
        .unwrap();
        assert_eq!(i.idx_scan, summed, "{}", i.name);
    }
    // flush_stats made the scans visible on every version (13 and 14 through the collector).
    let pkey = &s.indexes[0];
    assert!(
        pkey.idx_scan >= 97,
        "one probe per partition: {}",
        pkey.idx_scan
    );
    assert!(s.indexes[2].idx_scan >= 1);
    assert!(s.cleanup_function);
}

#[tokio::test]
async fn list_shows_bounds_rows_and_which_partitions_are_fully_expired() {
    let (_url, mut conn) = partitioned_db().await;
    conn.execute(SEED).await.unwrap();
    let oid = table_oid(&mut conn).await;
    let parts = partitions::list(&mut conn, oid).await.unwrap();
    let now = server_now(&mut conn).await;
    let holding = |t: DateTime<Utc>| -> &PartitionInfo {
        parts
            .iter()
            .find(|p| p.lower.unwrap() <= t && t < p.upper.unwrap())
            .unwrap()
    };
    // Rows that expired 3 h ago: their partition is fully expired.
    let old = holding(now - chrono::Duration::minutes(179));
    assert!(old.fully_expired && !old.straddles_now, "{old:?}");
    assert_eq!(old.state(), PartitionState::Expired);
    let current = holding(now);
    assert!(current.straddles_now && !current.fully_expired);
    assert_eq!(current.state(), PartitionState::Current);
    let later = holding(now + chrono::Duration::hours(47));
    assert_eq!(later.state(), PartitionState::Future);
    assert!(later.rows == 10 && later.rows_exact, "{later:?}");
    for p in &parts {
        assert_eq!(p.fully_expired, p.upper.unwrap() <= now, "{p:?}");
        assert!(p.rows_exact, "a small table is counted exactly");
        assert!(
            p.size_bytes > 0,
            "every partition has at least its index pages: {p:?}"
        );
    }
    let total = partitions::totals(&parts);
    assert_eq!(total.rows, SEEDED);
    assert!(total.rows_exact);
    let expired_in_droppable = scalar_i64(
        &mut conn,
        &format!(
            "SELECT count(*) FROM idempotency_records WHERE expires_at < '{}'",
            current.lower.unwrap().to_rfc3339()
        ),
    )
    .await;
    assert_eq!(total.droppable_rows, expired_in_droppable);
    assert!(total.droppable_rows >= 30);

    // Not partitioned: nothing to list.
    let plain_url = migrated_db().await;
    let mut plain = connect(&plain_url).await;
    let oid = table_oid(&mut plain).await;
    assert!(partitions::list(&mut plain, oid).await.unwrap().is_empty());
}

#[tokio::test]
async fn drop_expired_drops_exactly_the_fully_expired_partitions_and_keeps_every_live_row() {
    let (_url, mut conn) = partitioned_db().await;
    conn.execute(SEED).await.unwrap();
    let before = scalar_i64(&mut conn, "SELECT count(*) FROM idempotency_records").await;
    let names_before = partition_names(&mut conn).await;
    let t = TableRef::default();
    let out = tokio::time::timeout(
        HANG_GUARD,
        partitions::drop_expired(&mut conn, &t, Duration::from_secs(2)),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(out.iter().all(|d| d.dropped && d.note.is_none()), "{out:?}");
    assert!(out.len() >= 45, "about 48 past hours: {}", out.len());
    let now = server_now(&mut conn).await;
    let oid = table_oid(&mut conn).await;
    let parts = partitions::list(&mut conn, oid).await.unwrap();
    assert!(
        parts.iter().all(|p| p.upper.unwrap() > now),
        "no fully expired partition left"
    );
    let names_after = partition_names(&mut conn).await;
    // Exactly the dropped ones are gone.
    let mut gone: Vec<String> = names_before
        .iter()
        .filter(|n| !names_after.contains(n))
        .cloned()
        .collect();
    let mut dropped: Vec<String> = out.iter().map(|d| d.name.clone()).collect();
    gone.sort();
    dropped.sort();
    assert_eq!(gone, dropped);
    for n in &dropped {
        let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
            .bind(n)
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert!(!exists, "{n} was dropped, not only detached");
    }
    // Every live row is still there; the dropped rows are the ones gone.
    let after = scalar_i64(&mut conn, "SELECT count(*) FROM idempotency_records").await;
    let live = scalar_i64(
        &mut conn,
        "SELECT count(*) FROM idempotency_records WHERE expires_at > now()",
    )
    .await;
    assert_eq!(live, SEEDED_LIVE);
    assert_eq!(out.iter().map(|d| d.rows).sum::<i64>(), before - after);
    assert!(out.iter().map(|d| d.rows).sum::<i64>() >= 30);
    assert!(out.iter().filter(|d| d.rows > 0).all(|d| d.size_bytes > 0));
    // Idempotent.
    let again = partitions::drop_expired(&mut conn, &t, Duration::from_secs(2))
        .await
        .unwrap();
    assert!(again.is_empty(), "{again:?}");
    // The session's settings are restored.
    let lt: String = sqlx::query_scalar("SHOW lock_timeout")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(lt, "0");
}

#[tokio::test]
async fn drop_expired_gives_up_within_its_lock_timeout_behind_a_long_transaction_then_finishes() {
    let (url, mut conn) = partitioned_db().await;
    conn.execute(SEED).await.unwrap();
    let t = TableRef::default();
    let oid = table_oid(&mut conn).await;

    // A long transaction that has read the table (holds ACCESS SHARE on it and its partitions).
    let mut reader = connect(&url).await;
    reader
        .execute("BEGIN; SELECT count(*) FROM idempotency_records;")
        .await
        .unwrap();
    let out = tokio::time::timeout(
        HANG_GUARD,
        partitions::drop_expired(&mut conn, &t, Duration::from_millis(300)),
    )
    .await
    .expect("drop_expired returns instead of waiting behind the reader")
    .unwrap();
    assert!(!out.is_empty());
    assert!(out.iter().all(|d| !d.dropped && d.rows == 0), "{out:?}");
    let first = out[0].note.as_deref().unwrap();
    assert!(first.contains("lock_timeout (300 ms)"), "{first}");
    assert!(first.contains("pid "), "names the blocker: {first}");
    assert!(
        out[1..]
            .iter()
            .all(|d| d.note.as_deref().unwrap().starts_with("not tried")),
        "{out:?}"
    );
    // 14+ detaches CONCURRENTLY: its first phase commits, then it waits for the reader and
    // leaves the partition half-detached, its rows no longer showing through the table. 13 has
    // only the plain DETACH, which waits for the table's ACCESS EXCLUSIVE lock and changes
    // nothing.
    let concurrently = server_version_num(&mut conn).await >= 140_000;
    let parts = partitions::list(&mut conn, oid).await.unwrap();
    let pending: Vec<PartitionInfo> = parts.into_iter().filter(|p| p.detach_pending).collect();
    if concurrently {
        assert!(first.contains("detach-pending"), "{first}");
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].name, out[0].name);
        assert_eq!(pending[0].state(), PartitionState::DetachPending);
    } else {
        assert!(first.contains("nothing was changed"), "{first}");
        assert!(pending.is_empty(), "{pending:?}");
    }
    let live = scalar_i64(
        &mut conn,
        "SELECT count(*) FROM idempotency_records WHERE expires_at > now()",
    )
    .await;
    assert_eq!(live, SEEDED_LIVE);

    // The reader ends: the next run finishes the pending detach and drops everything expired.
    reader.execute("COMMIT").await.unwrap();
    let before = scalar_i64(&mut conn, "SELECT count(*) FROM idempotency_records").await
        + pending.iter().map(|p| p.rows).sum::<i64>();
    let out = partitions::drop_expired(&mut conn, &t, Duration::from_millis(300))
        .await
        .unwrap();
    assert!(out.iter().all(|d| d.dropped), "{out:?}");
    assert!(pending.iter().all(|p| out.iter().any(|d| d.name == p.name)));
    let after = scalar_i64(&mut conn, "SELECT count(*) FROM idempotency_records").await;
    assert_eq!(out.iter().map(|d| d.rows).sum::<i64>(), before - after);
    assert!(partitions::list(&mut conn, oid)
        .await
        .unwrap()
        .iter()
        .all(|p| !p.fully_expired && !p.detach_pending));
    let live = scalar_i64(
        &mut conn,
        "SELECT count(*) FROM idempotency_records WHERE expires_at > now()",
    )
    .await;
    assert_eq!(live, SEEDED_LIVE);
}

#[tokio::test]
async fn behind_an_exclusive_lock_list_does_not_probe_and_drop_expired_changes_nothing() {
    let (url, mut conn) = partitioned_db().await;
    conn.execute(SEED).await.unwrap();
    let t = TableRef::default();
    let oid = table_oid(&mut conn).await;
    let names_before = partition_names(&mut conn).await;
    let mut locker = connect(&url).await;
    locker
        .execute("BEGIN; LOCK TABLE idempotency_records IN ACCESS EXCLUSIVE MODE;")
        .await
        .unwrap();

    let parts = tokio::time::timeout(HANG_GUARD, partitions::list(&mut conn, oid))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(parts.len(), names_before.len());
    assert!(parts.iter().all(|p| p
        .blocked_by
        .as_deref()
        .is_some_and(|b| b.contains("AccessExclusiveLock held"))));
    assert!(parts.iter().all(|p| p.size_bytes == 0 && !p.rows_exact));
    assert!(
        parts.iter().any(|p| p.fully_expired),
        "bounds come from the catalog all the same"
    );

    let out = tokio::time::timeout(
        HANG_GUARD,
        partitions::drop_expired(&mut conn, &t, Duration::from_millis(200)),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(out.iter().all(|d| !d.dropped), "{out:?}");
    assert!(
        out[0]
            .note
            .as_deref()
            .unwrap()
            .contains("nothing was changed"),
        "{out:?}"
    );
    locker.execute("ROLLBACK").await.unwrap();
    assert_eq!(partition_names(&mut conn).await, names_before);
    assert!(partitions::list(&mut conn, oid)
        .await
        .unwrap()
        .iter()
        .all(|p| !p.detach_pending));
}

#[tokio::test]
async fn with_a_default_partition_drop_expired_detaches_without_concurrently() {
    let (_url, mut conn) = partitioned_db().await;
    conn.execute(SEED).await.unwrap();
    conn.execute(
        "CREATE TABLE idempotency_records_default PARTITION OF idempotency_records DEFAULT",
    )
    .await
    .unwrap();
    conn.execute(
        "INSERT INTO idempotency_records (request_id, operation, result_payload, expires_at)
         VALUES (gen_random_uuid(), 'far', '{}', now() + interval '100 days')",
    )
    .await
    .unwrap();
    let t = TableRef::default();
    let out = partitions::drop_expired(&mut conn, &t, Duration::from_secs(2))
        .await
        .unwrap();
    assert!(!out.is_empty() && out.iter().all(|d| d.dropped), "{out:?}");
    let oid = table_oid(&mut conn).await;
    let parts = partitions::list(&mut conn, oid).await.unwrap();
    let last = parts.last().unwrap();
    assert!(last.is_default && last.state() == PartitionState::Default);
    assert_eq!((last.rows, last.lower, last.upper), (1, None, None));
    assert!(!last.fully_expired && !last.straddles_now);
    let live = scalar_i64(
        &mut conn,
        "SELECT count(*) FROM idempotency_records WHERE expires_at > now()",
    )
    .await;
    assert_eq!(live, SEEDED_LIVE + 1);
}

#[tokio::test]
async fn the_cleanup_function_removes_exactly_the_expired_rows_and_returns_their_count() {
    let (_url, mut conn) = partitioned_db().await;
    conn.execute(SEED).await.unwrap();
    let before = scalar_i64(&mut conn, "SELECT count(*) FROM idempotency_records").await;
    let expired = scalar_i64(
        &mut conn,
        "SELECT count(*) FROM idempotency_records WHERE expires_at <= now()",
    )
    .await;
    assert_eq!(expired, SEEDED - SEEDED_LIVE);
    let deleted = scalar_i64(
        &mut conn,
        "SELECT deleted_count FROM cleanup_expired_idempotency_records()",
    )
    .await;
    assert_eq!(deleted, expired);
    assert_eq!(
        scalar_i64(
            &mut conn,
            "SELECT count(*) FROM idempotency_records WHERE expires_at <= now()"
        )
        .await,
        0
    );
    assert_eq!(
        scalar_i64(&mut conn, "SELECT count(*) FROM idempotency_records").await,
        before - expired
    );
    // Fully expired partitions were dropped, the straddling one kept; partitions stay ahead.
    let now = server_now(&mut conn).await;
    let oid = table_oid(&mut conn).await;
    let parts = partitions::list(&mut conn, oid).await.unwrap();
    assert!(parts.iter().all(|p| !p.fully_expired), "{parts:?}");
    assert_eq!(parts.iter().filter(|p| p.straddles_now).count(), 1);
    assert!(partitions::covered_until(&parts, now).unwrap() >= now + chrono::Duration::hours(48));
    // Nothing left: 0, and it does not recreate past hours.
    let n = parts.len();
    assert_eq!(
        scalar_i64(
            &mut conn,
            "SELECT deleted_count FROM cleanup_expired_idempotency_records()"
        )
        .await,
        0
    );
    assert!(partitions::list(&mut conn, oid).await.unwrap().len() <= n + 1);
}

#[tokio::test]
async fn the_cleanup_function_deletes_instead_of_dropping_behind_a_long_transaction() {
    let (url, mut conn) = partitioned_db().await;
    conn.execute(SEED).await.unwrap();
    let expired = scalar_i64(
        &mut conn,
        "SELECT count(*) FROM idempotency_records WHERE expires_at <= now()",
    )
    .await;
    let mut reader = connect(&url).await;
    reader
        .execute("BEGIN; LOCK TABLE idempotency_records IN ACCESS SHARE MODE;")
        .await
        .unwrap();
    // The function's own lock_timeout (1 s) bounds the wait; the contract holds all the same.
    let deleted = tokio::time::timeout(
        HANG_GUARD,
        scalar_i64(
            &mut conn,
            "SELECT deleted_count FROM cleanup_expired_idempotency_records()",
        ),
    )
    .await
    .unwrap();
    assert_eq!(deleted, expired);
    assert_eq!(
        scalar_i64(
            &mut conn,
            "SELECT count(*) FROM idempotency_records WHERE expires_at <= now()"
        )
        .await,
        0
    );
    let oid = table_oid(&mut conn).await;
    assert!(
        partitions::list(&mut conn, oid)
            .await
            .unwrap()
            .iter()
            .any(|p| p.fully_expired),
        "not dropped"
    );
    reader.execute("COMMIT").await.unwrap();
    // The next run drops the emptied partitions.
    assert_eq!(
        scalar_i64(
            &mut conn,
            "SELECT deleted_count FROM cleanup_expired_idempotency_records()"
        )
        .await,
        0
    );
    assert!(partitions::list(&mut conn, oid)
        .await
        .unwrap()
        .iter()
        .all(|p| !p.fully_expired));
}

#[tokio::test]
async fn ensure_ahead_creates_the_missing_hours_once() {
    let (_url, mut conn) = partitioned_db().await;
    let t = TableRef::default();
    let created = partitions::ensure_ahead(&mut conn, &t, 60).await.unwrap();
    assert!(
        (12..=13).contains(&created),
        "hours 49..=60 ahead: {created}"
    );
    assert_eq!(
        partitions::ensure_ahead(&mut conn, &t, 60).await.unwrap(),
        0
    );
    let now = server_now(&mut conn).await;
    let oid = table_oid(&mut conn).await;
    let parts = partitions::list(&mut conn, oid).await.unwrap();
    assert!(partitions::covered_until(&parts, now).unwrap() >= now + chrono::Duration::hours(60));
    conn.execute(
        "INSERT INTO idempotency_records (request_id, operation, result_payload, expires_at)
         VALUES (gen_random_uuid(), 'x', '{}', now() + interval '59 hours')",
    )
    .await
    .unwrap();
    // Another table, or no function: nothing to do.
    assert_eq!(
        partitions::ensure_ahead(&mut conn, &TableRef::new("public", "other").unwrap(), 60)
            .await
            .unwrap(),
        0
    );
    let plain_url = migrated_db().await;
    let mut plain = connect(&plain_url).await;
    assert_eq!(
        partitions::ensure_ahead(&mut plain, &t, 60).await.unwrap(),
        0
    );
    // And a plain table has nothing to drop.
    assert!(
        partitions::drop_expired(&mut plain, &t, Duration::from_secs(1))
            .await
            .unwrap()
            .is_empty()
    );
}

async fn user_objects(conn: &mut PgConnection) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT relname::text FROM pg_class WHERE relnamespace = 'public'::regnamespace
            AND relname NOT LIKE '\\_sqlx\\_migrations%'
         UNION ALL
         SELECT proname::text FROM pg_proc WHERE pronamespace = 'public'::regnamespace
         ORDER BY 1",
    )
    .fetch_all(conn)
    .await
    .unwrap()
}

#[tokio::test]
async fn the_down_migrations_remove_everything() {
    let (_url, mut conn) = partitioned_db().await;
    conn.execute(SEED).await.unwrap();
    assert!(user_objects(&mut conn).await.len() > 97 * 4);
    PARTITIONED_MIGRATOR.undo(&mut conn, 0).await.unwrap();
    assert_eq!(user_objects(&mut conn).await, Vec::<String>::new());
    // And up again.
    PARTITIONED_MIGRATOR.run(&mut conn).await.unwrap();
    assert_eq!(partition_names(&mut conn).await.len(), 97);
}

#[tokio::test]
async fn psql_single_transaction_applies_and_reverts_the_set() {
    let url = fresh_db().await;
    let psql = server().binaries().psql();
    let run_file = |file: &str| {
        let out = std::process::Command::new(&psql)
            .args([
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "--single-transaction",
                "-d",
            ])
            .arg(&url)
            .arg("-f")
            .arg(PathBuf::from("migrations/partitioned").join(file))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let quiet = run_file("045_create_idempotency_records_partitioned.up.sql");
    assert_eq!(quiet, "", "no result rows printed");
    run_file("046_create_idempotency_partition_maintenance.up.sql");
    let mut conn = connect(&url).await;
    assert_eq!(partition_names(&mut conn).await.len(), 97);
    conn.execute(SEED).await.unwrap();
    assert_eq!(
        scalar_i64(
            &mut conn,
            "SELECT deleted_count FROM cleanup_expired_idempotency_records()"
        )
        .await,
        SEEDED - SEEDED_LIVE
    );
    // Applying 045 again fails with the one-sentence message and changes nothing.
    let again = std::process::Command::new(&psql)
        .args([
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "--single-transaction",
            "-d",
        ])
        .arg(&url)
        .arg("-f")
        .arg("migrations/partitioned/045_create_idempotency_records_partitioned.up.sql")
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("migration 045 is already applied"));
    run_file("046_create_idempotency_partition_maintenance.down.sql");
    run_file("045_create_idempotency_records_partitioned.down.sql");
    assert_eq!(user_objects(&mut conn).await, Vec::<String>::new());
}

fn render(partitioned: bool, parts: Option<&[PartitionInfo]>, now: DateTime<Utc>) -> String {
    render_at(130, partitioned, parts, now)
}

fn render_at(
    width: u16,
    partitioned: bool,
    parts: Option<&[PartitionInfo]>,
    now: DateTime<Utc>,
) -> String {
    let mut term = Terminal::new(TestBackend::new(width, 20)).unwrap();
    term.draw(|f| {
        let state = idemtop::app::PartitionsState {
            parts: parts.map(<[PartitionInfo]>::to_vec),
            ..Default::default()
        };
        ui::partitions::draw(f, f.area(), partitioned, &state, now, &Theme::new(false))
    })
    .unwrap();
    term.backend().to_string()
}

#[tokio::test]
async fn the_partitions_screen_shows_states_and_totals() {
    let (_url, mut conn) = partitioned_db().await;
    conn.execute(SEED).await.unwrap();
    let oid = table_oid(&mut conn).await;
    let parts = partitions::list(&mut conn, oid).await.unwrap();
    let now = server_now(&mut conn).await;
    // Start the view at the rows that expired 3 h ago.
    let first = parts.iter().position(|p| p.rows > 0).unwrap();
    let screen = render(true, Some(&parts[first..]), now);
    for needle in [
        "Partitions: ",
        "expired (droppable)",
        "current",
        "idempotency_records_p",
        "lower (UTC)",
        "rows",
    ] {
        assert!(screen.contains(needle), "{needle} not on screen:\n{screen}");
    }
    let full = render(true, Some(&parts), now);
    assert!(
        full.contains(&format!("Partitions: 97 · {SEEDED} rows")),
        "{full}"
    );
    assert!(full.contains("droppable ("), "{full}");
    assert!(full.contains("inserts ok until"), "{full}");

    // 80 columns: names lose the shared prefix, never their hour.
    let narrow = render_at(80, true, Some(&parts[first..]), now);
    let hour = &parts[first].name["idempotency_records_".len()..];
    assert!(narrow.contains(&format!("…{hour} ")), "{narrow}");
    assert!(narrow.contains("expired (droppable)"), "{narrow}");

    let plain = render(false, None, now);
    assert!(plain.contains("not partitioned"), "{plain}");
    assert!(
        plain.contains("migrations/partitioned/README.md"),
        "{plain}"
    );
    assert!(render(true, None, now).contains("Loading partitions"));

    // Hostile names are shown defused.
    let mut hostile = parts[..1].to_vec();
    hostile[0].name = "p\u{1b}[2Jx".into();
    let shown = render(true, Some(&hostile), now);
    assert!(
        !shown.contains('\u{1b}') && shown.contains("p␛[2Jx"),
        "{shown}"
    );
}

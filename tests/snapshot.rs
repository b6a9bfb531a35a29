//! The snapshot against a real server seeded with known rows: the exact figures in the JSON of
//! `idemtop snapshot` and on the rendered dashboard; estimates on a larger table; a locked
//! table not probed; readable failures.

mod common;

use std::time::{Duration, Instant};

use common::*;
use idemtop::app::{update, App, DbEvent, Event, Request, SessionInfo};
use idemtop::db::snapshot::{self, SnapshotOptions};
use idemtop::db::table;
use idemtop::ident::TableRef;
use idemtop::ui::{self, Theme};
use ratatui::backend::TestBackend;
use ratatui::Terminal;
use sqlx::{Connection, Executor};

/// 30 expired rows (oldest expired 3 h ago) and 70 live ones, in three operations.
const SEED: &str = "
INSERT INTO idempotency_records (request_id, operation, result_payload, status_code, created_at, expires_at)
SELECT gen_random_uuid(), 'payment', repeat('x', 100), 201, now() - interval '5 hours', now() - interval '3 hours' + g * interval '1 minute'
  FROM generate_series(1, 30) g;
INSERT INTO idempotency_records (request_id, operation, result_payload, status_code, created_at, expires_at)
SELECT gen_random_uuid(), 'create_transaction', repeat('y', 300), CASE WHEN g <= 5 THEN 500 ELSE 200 END, now(), now() + interval '30 minutes'
  FROM generate_series(1, 40) g;
INSERT INTO idempotency_records (request_id, operation, result_payload, status_code, created_at, expires_at)
SELECT gen_random_uuid(), 'get_balance', '{}', 404, now(), now() + interval '20 hours'
  FROM generate_series(1, 30) g;
";

#[tokio::test]
async fn snapshot_json_has_the_exact_figures() {
    let url = migrated_db().await;
    let mut conn = connect(&url).await;
    conn.execute(SEED).await.unwrap();
    let (code, out, err) = idemtop(
        &["--database-url", &url, "snapshot", "--format", "json"],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["table"], "public.idempotency_records");
    assert!(v["taken_at"].as_str().unwrap().starts_with("20"));
    assert_eq!(v["rows"]["total"], 100);
    assert_eq!(v["rows"]["live"], 70);
    assert_eq!(v["rows"]["expired"], 30);
    assert_eq!(v["rows"]["exact"], true);
    let oldest = v["rows"]["oldest_expired_at"].as_str().unwrap();
    let oldest: chrono::DateTime<chrono::Utc> = oldest.parse().unwrap();
    let lag = (chrono::Utc::now() - oldest).num_minutes();
    assert!((178..=180).contains(&lag), "cleanup lag {lag} min");
    for key in ["total_bytes", "table_bytes", "index_bytes", "toast_bytes"] {
        assert!(v["sizes"][key].as_i64().is_some(), "{key}");
    }
    assert!(v["sizes"]["total_bytes"].as_i64().unwrap() > 0);
    for key in [
        "n_live_tup",
        "n_dead_tup",
        "last_vacuum",
        "last_autovacuum",
        "last_analyze",
        "last_autoanalyze",
    ] {
        assert!(v["vacuum"].get(key).is_some(), "vacuum.{key}");
    }
    let ops = v["operations"].as_array().unwrap();
    let find = |name: &str| ops.iter().find(|o| o["operation"] == name).unwrap().clone();
    assert_eq!(ops[0]["operation"], "create_transaction", "sorted by count");
    assert_eq!(find("create_transaction")["total"], 40);
    assert_eq!(find("create_transaction")["live"], 40);
    assert_eq!(find("create_transaction")["status"]["s5xx"], 5);
    assert_eq!(find("payment")["expired"], 30);
    assert_eq!(find("payment")["live"], 0);
    assert_eq!(find("get_balance")["status"]["s4xx"], 30);
    assert_eq!(find("create_transaction")["avg_payload_bytes"], 300.0);
    assert_eq!(v["horizon"]["within_1h"], 40);
    assert_eq!(v["horizon"]["within_24h"], 30);
    let idx = v["indexes"].as_array().unwrap();
    let names: Vec<&str> = idx.iter().map(|i| i["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "idempotency_records_pkey",
            "idx_idempotency_expires",
            "idx_idempotency_operation"
        ]
    );
    for i in idx {
        for key in ["size_bytes", "idx_scan", "idx_tup_read", "idx_tup_fetch"] {
            assert!(i[key].as_i64().is_some(), "{key}");
        }
    }
    assert_eq!(v["cleanup_function"], true);

    let (code, text, _) = idemtop(&["--database-url", &url, "snapshot"], &[]);
    assert_eq!(code, 0);
    assert!(
        text.contains("rows     total 100  live 70  expired 30"),
        "{text}"
    );
}

#[tokio::test]
async fn the_dashboard_shows_the_same_figures() {
    let url = migrated_db().await;
    let mut conn = connect(&url).await;
    conn.execute(SEED).await.unwrap();
    let t = TableRef::default();
    let info = table::resolve(&mut conn, &t).await.unwrap();
    let snap = snapshot::take(&mut conn, &t, &info, SnapshotOptions::default())
        .await
        .unwrap();
    let t0 = Instant::now();
    let mut app = App::new(
        SessionInfo {
            target: "x".into(),
            table: t.to_string(),
            read_only: false,
        },
        Duration::from_secs(2),
        t0,
    );
    let Some(Request::Refresh { generation, .. }) =
        update(&mut app, Event::Tick(t0)).first().cloned()
    else {
        panic!()
    };
    update(
        &mut app,
        Event::Db(DbEvent::Snapshot {
            generation,
            result: Ok(Box::new(snap)),
        }),
    );
    let mut term = Terminal::new(TestBackend::new(100, 30)).unwrap();
    term.draw(|f| ui::draw(f, &app, &Theme::new(false)))
        .unwrap();
    let screen = term.backend().to_string();
    for needle in [
        "live 70  expired 30",
        "total 100",
        "30.0% expired",
        "cleanup lag 2h 5",
        "≤1h 40",
        "≤24h 30",
        "create_transaction",
        "Rows (exact)",
    ] {
        assert!(screen.contains(needle), "{needle} not on screen:\n{screen}");
    }
}

#[tokio::test]
async fn a_large_table_is_estimated_from_statistics_and_says_so() {
    let url = migrated_db().await;
    let mut conn = connect(&url).await;
    // 150k rows: 4k expired (under the exact-count cap), 146k live.
    conn.execute(
        "INSERT INTO idempotency_records (request_id, operation, result_payload, status_code, created_at, expires_at)
         SELECT gen_random_uuid(), CASE WHEN g % 10 < 6 THEN 'create_transaction' ELSE 'refund' END, '{}', 200,
                now() - interval '2 days', now() - interval '1 day' + (g % 1000) * interval '1 second'
           FROM generate_series(1, 4000) g;
         INSERT INTO idempotency_records (request_id, operation, result_payload, status_code, created_at, expires_at)
         SELECT gen_random_uuid(), CASE WHEN g % 10 < 6 THEN 'create_transaction' ELSE 'refund' END, '{}', 200,
                now(), now() + (g % 86400) * interval '1 second' + interval '1 minute'
           FROM generate_series(1, 146000) g;",
    )
    .await
    .unwrap();
    flush_stats(&mut conn).await;
    conn.execute("ANALYZE idempotency_records").await.unwrap();
    // ANALYZE reports n_live_tup too: on 13 and 14 through the statistics collector.
    flush_stats(&mut conn).await;
    let t = TableRef::default();
    let info = table::resolve(&mut conn, &t).await.unwrap();
    let s = snapshot::take(&mut conn, &t, &info, SnapshotOptions::default())
        .await
        .unwrap();
    assert!(!s.rows.exact, "a 150k-row table is estimated");
    assert!(
        s.rows.expired_exact,
        "a 4k backlog is still counted exactly"
    );
    assert_eq!(s.rows.expired, 4_000);
    assert!(
        (s.rows.total - 150_000).abs() <= 150_000 / 50,
        "total {} within 2%",
        s.rows.total
    );
    assert!(!s.operations_exact);
    let ct = s
        .operations
        .iter()
        .find(|o| o.operation == "create_transaction")
        .unwrap();
    assert!(
        (ct.total - 90_000).abs() <= 4_500,
        "mcv estimate {}",
        ct.total
    );
    assert_eq!(ct.live, None, "unknown per-operation split is not invented");
    assert!(!s.horizon.exact);
    // The exact pass on request.
    let s = snapshot::take(
        &mut conn,
        &t,
        &info,
        SnapshotOptions {
            exact_pass: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(s.rows.exact && s.operations_exact);
    assert_eq!(s.rows.total, 150_000);
    assert_eq!(s.rows.live, 146_000);
    let (_, out, _) = idemtop(
        &["--database-url", &url, "snapshot", "--format", "json"],
        &[],
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["rows"]["exact"], false);

    // A backlog far above the cap: statistics say so, and the count is not even attempted.
    conn.execute(
        "INSERT INTO idempotency_records (request_id, operation, result_payload, status_code, created_at, expires_at)
         SELECT gen_random_uuid(), 'refund', '{}', 200, now() - interval '3 days', now() - interval '2 days' + (g % 5000) * interval '1 second'
           FROM generate_series(1, 100000) g;",
    )
    .await
    .unwrap();
    flush_stats(&mut conn).await;
    // ANALYZE in a transaction of its own, as autovacuum runs it: the inserts' counters are
    // flushed before it resets n_mod_since_analyze.
    conn.execute("ANALYZE idempotency_records").await.unwrap();
    // ANALYZE reports n_live_tup too: on 13 and 14 through the statistics collector.
    flush_stats(&mut conn).await;
    let s = snapshot::take(&mut conn, &t, &info, SnapshotOptions::default())
        .await
        .unwrap();
    assert!(!s.rows.expired_exact);
    assert!(
        (s.rows.expired - 104_000).abs() <= 104_000 / 20,
        "expired {} estimated within 5% (total {}, n_live_tup {})",
        s.rows.expired,
        s.rows.total,
        s.vacuum.n_live_tup
    );
}

#[tokio::test]
async fn a_missing_index_is_flagged_and_a_renamed_one_found() {
    let url = migrated_db().await;
    let mut conn = connect(&url).await;
    conn.execute("DROP INDEX idx_idempotency_operation; ALTER INDEX idx_idempotency_expires RENAME TO by_expiry")
        .await
        .unwrap();
    let t = TableRef::default();
    let info = table::resolve(&mut conn, &t).await.unwrap();
    let s = snapshot::take(&mut conn, &t, &info, SnapshotOptions::default())
        .await
        .unwrap();
    assert_eq!(s.expected_indexes[0].found_as.as_deref(), Some("by_expiry"));
    assert!(s.expected_indexes[1].missing());
    let (_, text, _) = idemtop(&["--database-url", &url, "snapshot"], &[]);
    assert!(
        text.contains("idx_idempotency_operation        MISSING (index on operation)"),
        "{text}"
    );
}

#[tokio::test]
async fn a_table_under_an_access_exclusive_lock_is_not_probed() {
    let url = migrated_db().await;
    let mut locker = connect(&url).await;
    let mut tx = locker.begin().await.unwrap();
    tx.execute("LOCK TABLE idempotency_records IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let started = Instant::now();
    let (code, out, err) = idemtop(
        &["--database-url", &url, "snapshot", "--format", "json"],
        &[],
    );
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "did not queue behind the lock"
    );
    tx.rollback().await.unwrap();
    assert_eq!(code, 4, "exit 4: locked, nothing measured; {err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["locked"]["mode"], "AccessExclusiveLock");
    assert_eq!(v["locked"]["granted"], true);
    let why = v["error"].as_str().expect("the error says why");
    assert!(why.contains("AccessExclusiveLock held by pid"), "{why}");
    assert!(
        v.get("sizes").is_none(),
        "no size that was not measured: {v}"
    );
}

#[tokio::test]
async fn unreachable_server_or_missing_table_exit_non_zero_with_one_line() {
    let (code, out, err) = idemtop(
        &[
            "--database-url",
            "postgres://x:pw@127.0.0.1:1/db",
            "snapshot",
        ],
        &[],
    );
    assert_ne!(code, 0);
    assert!(out.is_empty());
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("connection refused"));
    let url = fresh_db().await;
    let (code, _, err) = idemtop(
        &["--database-url", &url, "snapshot", "--format", "json"],
        &[],
    );
    assert_ne!(code, 0);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("table public.idempotency_records does not exist"),
        "{err}"
    );
}

#[tokio::test]
async fn another_schema_and_table_name_can_be_watched() {
    let url = fresh_db().await;
    let mut conn = connect(&url).await;
    conn.execute(
        r#"CREATE SCHEMA "Billing"; CREATE TABLE "Billing"."idem keys" (LIKE public.pg_class);"#,
    )
    .await
    .ok();
    conn.execute(
        r#"DROP TABLE IF EXISTS "Billing"."idem keys"; CREATE SCHEMA IF NOT EXISTS "Billing";"#,
    )
    .await
    .unwrap();
    let (code, out, err) = idemtop(
        &[
            "--database-url",
            &url,
            "--schema",
            "Billing",
            "migrate",
            "run",
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("applied  045"));
    conn.execute(r#"ALTER TABLE "Billing".idempotency_records RENAME TO "idem keys"; INSERT INTO "Billing"."idem keys" (request_id, operation, result_payload, expires_at) VALUES (gen_random_uuid(), 'op', '{}', now() + interval '1 hour')"#)
        .await
        .unwrap();
    let (code, out, err) = idemtop(
        &[
            "--database-url",
            &url,
            "--schema",
            "Billing",
            "--table",
            "idem keys",
            "snapshot",
            "--format",
            "json",
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["table"], "Billing.idem keys");
    assert_eq!(v["rows"]["live"], 1);
}

/// The refresh reads the table model once per connection, reuses it while the table keeps its
/// oid, reads it again on `r` (reread), after a snapshot found the table recreated, and after a
/// query failed on an undefined column.
#[tokio::test]
async fn the_table_model_is_read_once_and_again_when_it_may_have_changed() {
    let url = migrated_db().await;
    let table = TableRef::default();
    let cfg = idemtop::db::connect::ConnectConfig::from_url(&url);
    let mut session = idemtop::worker::RefreshSession::default();
    let first = session.model(&cfg, &table, false).await.unwrap();
    assert!(first.column("expires_at").is_some());
    assert_eq!(first.primary_key, ["request_id"]);
    assert!(first.index_leading_with("expires_at").is_some());

    let mut conn = connect(&url).await;
    conn.execute("ALTER TABLE idempotency_records ADD COLUMN tenant text")
        .await
        .unwrap();
    let cached = session.model(&cfg, &table, false).await.unwrap();
    assert!(
        cached.column("tenant").is_none(),
        "same oid: the model is reused"
    );
    let reread = session.model(&cfg, &table, true).await.unwrap();
    assert!(reread.column("tenant").is_some(), "r reads it again");

    // Dropped and recreated: another oid, read again without being asked.
    conn.execute(
        "ALTER TABLE idempotency_records RENAME TO old_records;
         CREATE TABLE idempotency_records (request_id text PRIMARY KEY,
             expires_at timestamp NOT NULL, created_at timestamp NOT NULL DEFAULT localtimestamp)",
    )
    .await
    .unwrap();
    // The next snapshot's first statement sees the other oid (no query of its own for it)...
    let stale = session.model(&cfg, &table, false).await.unwrap();
    assert_eq!(stale.oid, first.oid, "not checked on its own round trip");
    let tm = snapshot::TableMapping::resolve(&[], &table, &stale);
    let err = snapshot::take_mapped(
        session.connection(&cfg).await.unwrap(),
        &table,
        &stale,
        &tm,
        SnapshotOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(snapshot::ModelChanged::is_in(&err), "{err:#}");
    // ... and the model is read again.
    session.forget_model_on(&err);
    let recreated = session.model(&cfg, &table, false).await.unwrap();
    assert_ne!(recreated.oid, first.oid);
    assert_eq!(
        recreated.column("expires_at").unwrap().kind,
        idemtop::db::table::ColumnKind::Timestamp
    );
    assert!(recreated.column("operation").is_none());

    // An undefined-column error makes the next refresh read it again.
    conn.execute("ALTER TABLE idempotency_records ADD COLUMN operation text")
        .await
        .unwrap();
    let err = sqlx::query("SELECT nope FROM idempotency_records")
        .execute(&mut conn)
        .await
        .unwrap_err();
    session.forget_model_on(&anyhow::Error::new(err));
    let after = session.model(&cfg, &table, false).await.unwrap();
    assert!(after.column("operation").is_some());
}

/// A role that may connect but not read the table is told which privilege it lacks and the
/// GRANT that fixes it, by name.
#[tokio::test]
async fn a_missing_privilege_names_the_role_and_the_grant() {
    let url = migrated_db().await;
    let mut conn = connect(&url).await;
    let db = url.rsplit('/').next().unwrap().to_owned();
    let role = format!("nogrant_{db}");
    conn.execute(format!("CREATE ROLE {role} LOGIN").as_str())
        .await
        .unwrap();
    let role_url = server()
        .url_for(&db)
        .replace("postgres@", &format!("{role}@"));
    let (code, out, err) = idemtop(&["--database-url", &role_url, "snapshot"], &[]);
    assert_eq!(code, 1, "{out}");
    assert!(
        err.contains(&format!(
            "permission denied: role {role} lacks SELECT on public.idempotency_records (GRANT SELECT ON public.idempotency_records TO {role};"
        )),
        "{err}"
    );
}

//! The health checks against real servers, each in the levels a test can reach (cleanup lag,
//! expired backlog, bloat, indexes, the cleanup function, pg_cron, grants, retention, cached
//! 5xx results, replay rate); `evaluate` on fixed snapshots for the thresholds and the exit
//! codes; the configuration file; `idemtop check`'s output; the metrics endpoint over HTTP
//! (also with its server stopped); the Health screen.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use idemtop::checks::{self, CheckResult, Extras, Level, OperationFact, OperationFacts, RoleGrant};
use idemtop::commands::check as check_cmd;
use idemtop::commands::metrics;
use idemtop::config::Config;
use idemtop::db::connect::ConnectConfig;
use idemtop::db::cron::{CronJob, CronRun, CronStatus};
use idemtop::db::migrate;
use idemtop::db::snapshot::{Snapshot, SnapshotOptions};
use idemtop::fixtures;
use idemtop::ident::{Ident, TableRef};
use idemtop::pgtemp::{PgBinaries, TempPostgres};
use idemtop::ui::{health, Theme};
use ratatui::backend::TestBackend;
use ratatui::Terminal;
use sqlx::{Executor, PgConnection};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

// ---------------------------------------------------------------------------------------------
// helpers

async fn snapshot_of(conn: &mut PgConnection, t: &TableRef) -> Snapshot {
    idemtop::worker::refresh(conn, t, SnapshotOptions::default())
        .await
        .expect("snapshot")
}

/// Snapshot, gather, evaluate (no previous snapshot).
async fn checks_in(conn: &mut PgConnection, t: &TableRef, cfg: &Config) -> Vec<CheckResult> {
    let snap = snapshot_of(conn, t).await;
    let extras = checks::gather(conn, t, &snap, cfg).await.expect("gather");
    checks::evaluate(&snap, None, &extras, cfg)
}

async fn checks_of(url: &str, cfg: &Config) -> Vec<CheckResult> {
    let mut conn = connect(url).await;
    checks_in(&mut conn, &TableRef::default(), cfg).await
}

fn find<'a>(checks: &'a [CheckResult], id: &str) -> &'a CheckResult {
    checks
        .iter()
        .find(|c| c.id == id)
        .unwrap_or_else(|| panic!("no check {id} in {checks:#?}"))
}

/// `n` rows of `op`, created `created_h` hours ago with a TTL of `ttl_h` hours, status `status`.
/// Insert `n` rows of `op` into the guide's table, created `created_h` hours ago with a TTL of
/// `ttl_h` hours and status `status`.
async fn insert(
    conn: &mut PgConnection,
    n: i64,
    op: &str,
    created_h: f64,
    ttl_h: f64,
    status: i32,
) {
    insert_into(conn, &TableRef::default(), n, op, created_h, ttl_h, status).await
}

async fn insert_into(
    conn: &mut PgConnection,
    table: &TableRef,
    n: i64,
    op: &str,
    created_h: f64,
    ttl_h: f64,
    status: i32,
) {
    sqlx::query(&format!(
        "INSERT INTO {} (request_id, operation, result_payload, status_code, created_at, expires_at)
         SELECT gen_random_uuid(), $2, '{{}}', $5,
                now() - make_interval(secs => $3 * 3600),
                now() - make_interval(secs => $3 * 3600) + make_interval(secs => $4 * 3600)
           FROM generate_series(1, $1)",
        table.qualified()
    ))
    .bind(n)
    .bind(op)
    .bind(created_h)
    .bind(ttl_h)
    .bind(status)
    .execute(conn)
    .await
    .unwrap();
}

fn has_pg_cron() -> bool {
    let found = PgBinaries::find()
        .map(|b| b.has_extension("pg_cron"))
        .unwrap_or(false);
    if !found {
        eprintln!("pg_cron is not installed for this server (postgresql-<major>-cron): skipped");
    }
    found
}

// ---------------------------------------------------------------------------------------------
// the checks on a real server

#[tokio::test]
async fn a_fresh_healthy_table_passes_every_check() {
    let url = migrated_db().await;
    let mut conn = connect(&url).await;
    insert(&mut conn, 20, "create_transaction", 0.0, 24.0, 201).await;
    insert(&mut conn, 5, "payment", 0.0, 1.0, 200).await;
    let cfg = Config::default();
    let (snap, results) = checks::run_once(&mut conn, &TableRef::default(), &cfg)
        .await
        .unwrap();
    assert_eq!(results.len(), checks::CHECK_IDS.len());
    for c in &results {
        assert_eq!(c.level, Level::Ok, "{c:#?}");
        assert_eq!(c.detail.lines().count(), 1, "{c:#?}");
    }
    assert_eq!(find(&results, "cleanup_lag").value, "none");
    assert_eq!(find(&results, "retention").value, "within policy");
    assert_eq!(find(&results, "cleanup_function").value, "present");
    assert!(find(&results, "pg_cron")
        .detail
        .contains("application-level cleanup"));
    // run_once took two snapshots, so the replay rate is known.
    assert_ne!(find(&results, "replay_rate").value, "n/a");

    assert_eq!(check_cmd::worst(&results).exit_code(), 0);
    let text = check_cmd::render_text(&snap.table, snap.taken_at, &results);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), results.len() + 1);
    // The summary comes first (Nagios reads the first line), then one line per check.
    assert!(
        lines[0].starts_with("OK: public.idempotency_records at 20"),
        "{text}"
    );
    assert!(lines[0].ends_with("0 critical, 0 warning, 0 unknown, 12 ok"));
    assert_eq!(find(&results, "xmin_horizon").value, "not held");
    assert!(lines[1].starts_with("OK "), "{text}");
    assert!(lines[1].contains("  — "), "{text}");
}

#[tokio::test]
async fn cleanup_lag_and_expired_backlog_by_age_and_share() {
    let url = migrated_db().await;
    let mut conn = connect(&url).await;
    let cfg = Config::default();
    // 100 live rows, 50 that expired 2 h ago: lag above 1.5 x 1 h, a third expired.
    insert(&mut conn, 100, "create_transaction", 0.0, 24.0, 201).await;
    insert(&mut conn, 50, "get_balance", 3.0, 1.0, 200).await;
    let r = checks_of(&url, &cfg).await;
    let lag = find(&r, "cleanup_lag");
    assert_eq!(lag.level, Level::Warning, "{lag:#?}");
    assert!(lag.value.starts_with("2h"), "{lag:#?}");
    assert!(
        lag.advice.contains("cleanup_expired_idempotency_records()"),
        "{lag:#?}"
    );
    // 50 expired rows: below min_rows (100), not judged.
    assert_eq!(find(&r, "expired_backlog").level, Level::Ok);

    // 200 more rows expired 5 h ago: lag above 3 x 1 h; 250 of 350 expired.
    insert(&mut conn, 200, "get_balance", 6.0, 1.0, 200).await;
    let r = checks_of(&url, &cfg).await;
    let lag = find(&r, "cleanup_lag");
    assert_eq!(lag.level, Level::Critical, "{lag:#?}");
    assert!(lag.value.starts_with("5h"), "{lag:#?}");
    assert!(lag.detail.contains("250 expired rows wait"), "{lag:#?}");
    let backlog = find(&r, "expired_backlog");
    assert_eq!(backlog.level, Level::Critical, "{backlog:#?}");
    assert_eq!(backlog.value, "71.4% (250 of 350)");
    assert_eq!(r[0].level, Level::Critical, "worst first");
    assert_eq!(check_cmd::worst(&r).exit_code(), 2);

    // 25 % < share <= 50 %: warning.
    insert(&mut conn, 250, "create_transaction", 0.0, 24.0, 201).await;
    let r = checks_of(&url, &cfg).await;
    assert_eq!(find(&r, "expired_backlog").level, Level::Warning);

    // After the cleanup: ok again.
    conn.execute("SELECT * FROM cleanup_expired_idempotency_records()")
        .await
        .unwrap();
    let r = checks_of(&url, &cfg).await;
    assert_eq!(find(&r, "cleanup_lag").level, Level::Ok);
    assert_eq!(find(&r, "expired_backlog").level, Level::Ok);
}

#[tokio::test]
async fn dead_tuples_and_a_missing_vacuum_are_flagged_until_vacuum() {
    let url = migrated_db().await;
    let mut conn = connect(&url).await;
    // Autovacuum must not clean up behind the test's back.
    conn.execute("ALTER TABLE idempotency_records SET (autovacuum_enabled = false)")
        .await
        .unwrap();
    insert(&mut conn, 2000, "create_transaction", 0.0, 24.0, 201).await;
    conn.execute("DELETE FROM idempotency_records WHERE ctid IN (SELECT ctid FROM idempotency_records LIMIT 300)")
        .await
        .unwrap();
    flush_stats(&mut conn).await;
    let mut cfg = Config::default();
    cfg.thresholds.bloat.min_dead_tuples = 100;
    // 300 dead of 2000: 15 %, and never vacuumed.
    let r = checks_of(&url, &cfg).await;
    let b = find(&r, "bloat");
    assert_eq!(b.level, Level::Warning, "{b:#?}");
    assert_eq!(b.value, "15.0% dead (300)");
    assert!(b.detail.contains("never vacuumed"), "{b:#?}");
    assert!(
        b.advice
            .contains("VACUUM (ANALYZE) \"public\".\"idempotency_records\""),
        "{b:#?}"
    );

    conn.execute("DELETE FROM idempotency_records WHERE ctid IN (SELECT ctid FROM idempotency_records LIMIT 700)")
        .await
        .unwrap();
    flush_stats(&mut conn).await;
    let r = checks_of(&url, &cfg).await;
    let b = find(&r, "bloat");
    assert_eq!(b.level, Level::Critical, "{b:#?}");
    assert_eq!(b.value, "50.0% dead (1,000)");

    // The default minimum (10k dead tuples) does not judge 1,000.
    let r = checks_of(&url, &Config::default()).await;
    assert_eq!(find(&r, "bloat").level, Level::Ok);

    conn.execute("VACUUM idempotency_records").await.unwrap();
    // VACUUM reports its counts at once, but on 13 and 14 through the statistics collector.
    flush_stats(&mut conn).await;
    let r = checks_of(&url, &cfg).await;
    let b = find(&r, "bloat");
    assert_eq!(b.level, Level::Ok, "{b:#?}");
    assert!(b.detail.contains("last vacuum"), "{b:#?}");
}

#[tokio::test]
async fn indexes_missing_renamed_and_invalid() {
    let url = migrated_db().await;
    let mut conn = connect(&url).await;
    let cfg = Config::default();
    let r = checks_of(&url, &cfg).await;
    assert_eq!(find(&r, "indexes").level, Level::Ok);

    conn.execute("DROP INDEX idx_idempotency_operation")
        .await
        .unwrap();
    let r = checks_of(&url, &cfg).await;
    let i = find(&r, "indexes");
    assert_eq!(i.level, Level::Warning, "{i:#?}");
    assert_eq!(i.value, "1 missing");
    assert!(
        i.detail
            .contains("idx_idempotency_operation (on operation) is missing"),
        "{i:#?}"
    );
    assert!(
        i.advice.contains(
            "CREATE INDEX CONCURRENTLY idx_idempotency_operation ON \"public\".\"idempotency_records\" (operation);"
        ),
        "{i:#?}"
    );

    // Under another name it is found: ok, with a note.
    conn.execute("CREATE INDEX by_operation ON idempotency_records (operation); ALTER INDEX idx_idempotency_expires RENAME TO by_expiry")
        .await
        .unwrap();
    let r = checks_of(&url, &cfg).await;
    let i = find(&r, "indexes");
    assert_eq!(i.level, Level::Ok, "{i:#?}");
    assert!(
        i.detail
            .contains("idx_idempotency_expires exists as by_expiry"),
        "{i:#?}"
    );
    assert!(
        i.detail
            .contains("idx_idempotency_operation exists as by_operation"),
        "{i:#?}"
    );

    // A failed CREATE UNIQUE INDEX CONCURRENTLY leaves an invalid index behind.
    insert(&mut conn, 3, "same", 0.0, 24.0, 200).await;
    let failed = conn
        .execute("CREATE UNIQUE INDEX CONCURRENTLY broken_idx ON idempotency_records (operation)")
        .await;
    assert!(failed.is_err());
    let r = checks_of(&url, &cfg).await;
    let i = find(&r, "indexes");
    assert_eq!(i.level, Level::Critical, "{i:#?}");
    assert!(i.detail.contains("broken_idx is INVALID"), "{i:#?}");
    assert!(
        i.advice
            .contains("REINDEX INDEX CONCURRENTLY \"public\".broken_idx;"),
        "{i:#?}"
    );

    // Never scanned: noted on a young table, a warning once it has seen enough inserts.
    conn.execute("DROP INDEX broken_idx").await.unwrap();
    let mut busy = cfg.clone();
    busy.thresholds.indexes.unused_after_inserts = 1;
    flush_stats(&mut conn).await;
    let r = checks_of(&url, &busy).await;
    let i = find(&r, "indexes");
    assert_eq!(i.level, Level::Warning, "{i:#?}");
    assert!(i.detail.contains("was never scanned"), "{i:#?}");
    let r = checks_of(&url, &cfg).await;
    assert!(find(&r, "indexes").detail.contains("not scanned yet"));
}

#[tokio::test]
async fn a_dropped_cleanup_function_is_flagged() {
    let url = migrated_db().await;
    let mut conn = connect(&url).await;
    conn.execute("DROP FUNCTION cleanup_expired_idempotency_records()")
        .await
        .unwrap();
    insert(&mut conn, 150, "get_balance", 6.0, 1.0, 200).await;
    let r = checks_of(&url, &Config::default()).await;
    let f = find(&r, "cleanup_function");
    // No pg_cron job calls it here (see the pg_cron test for the critical case).
    assert_eq!(f.level, Level::Warning, "{f:#?}");
    assert_eq!(f.value, "missing");
    assert!(f.advice.contains("idemtop migrate run"), "{f:#?}");
    assert!(
        f.advice
            .contains("046_create_idempotency_cleanup_job.up.sql"),
        "{f:#?}"
    );
    // The cleanup advice falls back to a DELETE.
    assert!(find(&r, "cleanup_lag")
        .advice
        .contains("DELETE FROM \"public\".\"idempotency_records\" WHERE expires_at <= now()"));
}

#[tokio::test]
async fn grants_beyond_select_insert_delete_are_critical() {
    let url = migrated_db().await;
    let mut conn = connect(&url).await;
    let cfg = Config::default();
    let n = std::process::id();
    let api = format!("api_{n}");
    let bad = format!("somerole_{n}");
    conn.execute(
        format!(
            "CREATE ROLE {api}; CREATE ROLE {bad}; CREATE ROLE \"Odd {n}\";
             GRANT SELECT, INSERT, DELETE ON idempotency_records TO {api};"
        )
        .as_str(),
    )
    .await
    .unwrap();
    let r = checks_of(&url, &cfg).await;
    let g = find(&r, "grants");
    assert_eq!(g.level, Level::Ok, "{g:#?}");
    assert!(
        g.detail.contains(&format!("INSERT/DELETE: {api}")),
        "{g:#?}"
    );
    assert!(g.detail.contains(&format!("SELECT: {api}")), "{g:#?}");
    assert!(g.detail.contains("owner postgres"), "{g:#?}");

    conn.execute(format!("GRANT UPDATE ON idempotency_records TO {bad}").as_str())
        .await
        .unwrap();
    let r = checks_of(&url, &cfg).await;
    let g = find(&r, "grants");
    assert_eq!(g.level, Level::Critical, "{g:#?}");
    assert_eq!(g.value, format!("{bad}: UPDATE"));
    assert!(g.detail.contains(&format!("{bad} (UPDATE)")), "{g:#?}");
    assert!(
        g.advice.contains(&format!(
            "REVOKE UPDATE ON \"public\".\"idempotency_records\" FROM {bad};"
        )),
        "{g:#?}"
    );
    assert_eq!(r[0].id, "grants", "critical sorts first");

    // ALL PRIVILEGES, a column-level UPDATE, TRUNCATE to PUBLIC, pg_write_all_data (a role
    // that PostgreSQL 14 introduced: on 13 that part is left out).
    let write_all = server_version_num(&mut conn).await >= 140_000;
    if !write_all {
        eprintln!("PostgreSQL 13 has no pg_write_all_data role: that part of the test is skipped");
    }
    let grant_write_all = if write_all {
        format!("GRANT pg_write_all_data TO {bad};")
    } else {
        String::new()
    };
    conn.execute(
        format!(
            "REVOKE UPDATE ON idempotency_records FROM {bad};
             GRANT ALL ON idempotency_records TO \"Odd {n}\";
             GRANT UPDATE (status_code) ON idempotency_records TO {api};
             GRANT TRUNCATE ON idempotency_records TO PUBLIC;
             {grant_write_all}"
        )
        .as_str(),
    )
    .await
    .unwrap();
    let r = checks_of(&url, &cfg).await;
    let g = find(&r, "grants");
    assert_eq!(g.level, Level::Critical, "{g:#?}");
    for needle in [
        format!("Odd {n} (ALL PRIVILEGES)"),
        format!("{api} (UPDATE (status_code))"),
        "PUBLIC (TRUNCATE)".to_string(),
    ] {
        assert!(g.detail.contains(&needle), "{needle} in {g:#?}");
    }
    assert_eq!(
        g.detail
            .contains(&format!("{bad} via pg_write_all_data (UPDATE)")),
        write_all,
        "{g:#?}"
    );
    assert_eq!(
        g.advice
            .contains(&format!("REVOKE pg_write_all_data FROM {bad};")),
        write_all,
        "{g:#?}"
    );
    for needle in [
        format!("REVOKE ALL PRIVILEGES ON \"public\".\"idempotency_records\" FROM \"Odd {n}\"; GRANT SELECT, INSERT, DELETE ON \"public\".\"idempotency_records\" TO \"Odd {n}\";"),
        format!("REVOKE UPDATE ON \"public\".\"idempotency_records\" FROM {api};"),
        "REVOKE TRUNCATE ON \"public\".\"idempotency_records\" FROM PUBLIC;".to_string(),
    ] {
        assert!(g.advice.contains(&needle), "{needle} in {g:#?}");
    }
    // The advice works.
    conn.execute(
        format!(
            "REVOKE ALL PRIVILEGES ON idempotency_records FROM \"Odd {n}\";
             REVOKE UPDATE ON idempotency_records FROM {api};
             REVOKE TRUNCATE ON idempotency_records FROM PUBLIC;
             {}",
            grant_write_all
                .replace("GRANT", "REVOKE")
                .replace(" TO ", " FROM ")
        )
        .as_str(),
    )
    .await
    .unwrap();
    let r = checks_of(&url, &cfg).await;
    assert_eq!(
        find(&r, "grants").level,
        Level::Ok,
        "{:#?}",
        find(&r, "grants")
    );
}

#[tokio::test]
async fn rows_longer_than_their_ttl_policy_break_retention() {
    let url = migrated_db().await;
    let mut conn = connect(&url).await;
    // Within policy: payment 1 h, get_balance 24 h.
    insert(&mut conn, 40, "payment", 0.0, 1.0, 201).await;
    insert(&mut conn, 50, "get_balance", 0.0, 24.0, 200).await;
    let cfg = Config::default();
    let r = checks_of(&url, &cfg).await;
    let ret = find(&r, "retention");
    assert_eq!(ret.level, Level::Ok, "{ret:#?}");
    assert!(
        ret.detail.contains("payment 1h, transfer 1h, others 24h"),
        "{ret:#?}"
    );
    assert!(ret.detail.contains("exact"), "{ret:#?}");

    // 10 payment rows kept for 48 h: 10 of 100 rows.
    insert(&mut conn, 10, "payment", 0.0, 48.0, 201).await;
    let r = checks_of(&url, &cfg).await;
    let ret = find(&r, "retention");
    assert_eq!(ret.level, Level::Warning, "{ret:#?}");
    assert_eq!(ret.value, "payment TTL 2d > 1h");
    assert!(ret.detail.starts_with("10 rows (10.0%)"), "{ret:#?}");
    assert!(
        ret.detail
            .contains("payment 10 rows (TTL median 1h, max 2d; policy 1h)"),
        "{ret:#?}"
    );
    assert!(
        ret.advice.contains("UPDATE \"public\".\"idempotency_records\" SET expires_at = created_at + INTERVAL '1 hour' WHERE operation IN ('payment') AND expires_at > created_at + INTERVAL '1 hour';"),
        "{ret:#?}"
    );
    // The facts behind it.
    let mut c = connect(&url).await;
    let t = TableRef::default();
    let snap = snapshot_of(&mut c, &t).await;
    let extras = checks::gather(&mut c, &t, &snap, &cfg).await.unwrap();
    let facts = extras.operations.unwrap();
    assert!(!facts.sampled);
    let pay = facts
        .operations
        .iter()
        .find(|o| o.operation == "payment")
        .unwrap();
    assert_eq!((pay.rows, pay.over_policy), (50, 10));
    assert_eq!(pay.policy_secs, 3600.0);
    assert_eq!(pay.ttl_min_secs, 3600.0);
    assert_eq!(pay.ttl_max_secs, 48.0 * 3600.0);

    // The advice fixes it; a more generous policy in the config accepts it too.
    conn.execute(
        "UPDATE idempotency_records SET expires_at = created_at + INTERVAL '1 hour'
          WHERE operation IN ('payment') AND expires_at > created_at + INTERVAL '1 hour'",
    )
    .await
    .unwrap();
    assert_eq!(
        find(&checks_of(&url, &cfg).await, "retention").level,
        Level::Ok
    );
    // Above half the rows: critical (110 of 210).
    insert(&mut conn, 110, "payment", 0.0, 48.0, 201).await;
    let r = checks_of(&url, &cfg).await;
    assert_eq!(find(&r, "retention").level, Level::Critical);
}

#[tokio::test]
async fn stored_5xx_results_per_operation() {
    let url = migrated_db().await;
    let mut conn = connect(&url).await;
    insert(&mut conn, 97, "charge", 0.0, 24.0, 201).await;
    insert(&mut conn, 3, "charge", 0.0, 24.0, 503).await;
    insert(&mut conn, 200, "get_balance", 0.0, 24.0, 200).await;
    // Too few rows to judge, however bad.
    insert(&mut conn, 5, "rare", 0.0, 24.0, 500).await;
    let cfg = Config::default();
    let r = checks_of(&url, &cfg).await;
    let f = find(&r, "cached_failures");
    assert_eq!(f.level, Level::Warning, "{f:#?}");
    assert_eq!(f.value, "charge 3.0% 5xx");
    assert!(f.detail.contains("charge 3 of 100 (3.0%)"), "{f:#?}");
    assert!(f.detail.contains("(exact)"), "{f:#?}");
    assert!(!f.detail.contains("rare"), "{f:#?}");
    assert!(f.advice.contains("DELETE FROM \"public\".\"idempotency_records\" WHERE status_code BETWEEN 500 AND 599 AND operation IN ('charge');"), "{f:#?}");

    insert(&mut conn, 30, "refund", 0.0, 24.0, 500).await;
    insert(&mut conn, 70, "refund", 0.0, 24.0, 200).await;
    let r = checks_of(&url, &cfg).await;
    let f = find(&r, "cached_failures");
    assert_eq!(f.level, Level::Critical, "{f:#?}");
    assert_eq!(f.value, "refund 30.0% 5xx", "the worst operation first");
    assert!(f.detail.contains("charge 3 of 100"), "{f:#?}");
}

#[tokio::test]
async fn a_large_table_is_sampled_and_says_so() {
    let url = migrated_db().await;
    let mut conn = connect(&url).await;
    // 120k rows (above the exact-count limit): a third are 'payment' rows kept for 48 h, about
    // a tenth of the 'charge' rows store a 500.
    conn.execute(
        "INSERT INTO idempotency_records (request_id, operation, result_payload, status_code, created_at, expires_at)
         SELECT gen_random_uuid(), CASE WHEN g % 3 = 0 THEN 'payment' ELSE 'charge' END, '{}',
                CASE WHEN g % 3 <> 0 AND g % 10 = 1 THEN 500 ELSE 200 END, now(),
                now() + CASE WHEN g % 3 = 0 THEN interval '48 hours' ELSE interval '24 hours' END
           FROM generate_series(1, 120000) g;
         ANALYZE idempotency_records;",
    )
    .await
    .unwrap();
    let cfg = Config::default();
    let t = TableRef::default();
    let snap = snapshot_of(&mut conn, &t).await;
    assert!(!snap.rows.exact);
    let extras = checks::gather(&mut conn, &t, &snap, &cfg).await.unwrap();
    let facts = extras.operations.as_ref().unwrap();
    assert!(facts.sampled);
    assert!(facts.sample_percent < 100.0);
    let scanned: i64 = facts.operations.iter().map(|o| o.rows).sum();
    assert!(scanned > 0 && scanned < 120_000, "{scanned} rows sampled");
    let r = checks::evaluate(&snap, None, &extras, &cfg);
    let f = find(&r, "cached_failures");
    assert_eq!(f.level, Level::Critical, "{f:#?}");
    assert!(f.value.starts_with("charge "), "{f:#?}");
    assert!(f.detail.contains("sampled"), "{f:#?}");
    let ret = find(&r, "retention");
    assert_eq!(ret.level, Level::Warning, "a third of the rows: {ret:#?}");
    assert!(ret.detail.contains("sampled"), "{ret:#?}");
    assert!(
        ret.detail.starts_with('~'),
        "estimated counts are marked: {ret:#?}"
    );

    // After an exact pass the counts are exact, but the TTL facts still come from a bounded
    // sample: never a scan of the whole table (issue 18).
    let exact = idemtop::worker::refresh(
        &mut conn,
        &t,
        SnapshotOptions {
            exact_pass: true,
            ..SnapshotOptions::default()
        },
    )
    .await
    .expect("snapshot with the exact pass");
    assert!(exact.rows.exact, "{:?}", exact.rows);
    let extras = checks::gather(&mut conn, &t, &exact, &cfg).await.unwrap();
    let facts = extras.operations.as_ref().unwrap();
    assert!(facts.sampled, "{facts:?}");
    let scanned: i64 = facts.operations.iter().map(|o| o.rows).sum();
    assert!(
        scanned > 0 && scanned <= 40_000,
        "{scanned} rows read after the exact pass"
    );
}

#[tokio::test]
async fn replay_rate_counts_primary_key_scans_per_insert() {
    let url = migrated_db().await;
    let mut conn = connect(&url).await;
    let t = TableRef::default();
    let cfg = Config::default();
    let before = snapshot_of(&mut conn, &t).await;
    // 10 new keys by INSERT ... ON CONFLICT (one pkey scan each, conflicting or not), 2 of
    // them inserted twice (conflicts: a scan, no insert), and 8 plain lookups by key.
    conn.execute("SET enable_seqscan = off").await.unwrap();
    for i in 0..10 {
        let insert = format!(
            "INSERT INTO idempotency_records (request_id, operation, result_payload, status_code, expires_at)
             VALUES ('00000000-0000-0000-0000-{i:012}', 'op', '{{}}', 200, now() + interval '1 hour')
             ON CONFLICT (request_id) DO NOTHING"
        );
        conn.execute(insert.as_str()).await.unwrap();
        if i < 2 {
            conn.execute(insert.as_str()).await.unwrap();
        }
        if i < 8 {
            let n: i64 = sqlx::query_scalar(&format!(
                "SELECT count(*) FROM idempotency_records WHERE request_id = '00000000-0000-0000-0000-{i:012}'"
            ))
            .fetch_one(&mut conn)
            .await
            .unwrap();
            assert_eq!(n, 1);
        }
    }
    flush_stats(&mut conn).await;
    let after = snapshot_of(&mut conn, &t).await;
    let extras = checks::gather(&mut conn, &t, &after, &cfg).await.unwrap();
    let r = checks::evaluate(&after, Some(&before), &extras, &cfg);
    let rr = find(&r, "replay_rate");
    assert_eq!(rr.level, Level::Ok, "informational: {rr:#?}");
    // (10 + 2 + 8) scans / 10 inserts.
    assert_eq!(rr.value, "2.00 scans/insert", "{rr:#?}");
    assert!(rr.detail.starts_with("20 primary-key scans"), "{rr:#?}");
    assert!(rr.detail.contains("ON CONFLICT"), "{rr:#?}");
    // Without a previous snapshot it is unknown.
    let r = checks::evaluate(&after, None, &extras, &cfg);
    assert_eq!(find(&r, "replay_rate").level, Level::Unknown);
    // Plain INSERTs: their uniqueness check is not an index scan.
    insert(&mut conn, 5, "op", 0.0, 1.0, 200).await;
    flush_stats(&mut conn).await;
    let last = snapshot_of(&mut conn, &t).await;
    let r = checks::evaluate(&last, Some(&after), &extras, &cfg);
    let rr = find(&r, "replay_rate");
    assert_eq!(rr.value, "0.00 scans/insert", "{rr:#?}");
    assert!(rr.detail.contains("unusually low"), "{rr:#?}");
}

#[tokio::test]
async fn pg_cron_job_missing_scheduled_disabled_and_failing() {
    if !has_pg_cron() {
        return;
    }
    // The shared server's pg_cron lives in database `postgres`: the table goes into a
    // schema of its own there.
    let url = server().url();
    let mut conn = connect(&url).await;
    conn.execute("CREATE EXTENSION IF NOT EXISTS pg_cron; DROP SCHEMA IF EXISTS checkcron CASCADE; CREATE SCHEMA checkcron")
        .await
        .unwrap();
    migrate::run(&mut conn, &Ident::new("checkcron").unwrap())
        .await
        .unwrap();
    let t = TableRef::new("checkcron", "idempotency_records").unwrap();
    let cfg = Config::default();
    let mut conn = connect(&url).await;

    // Ready, no job, nothing expired: something else cleans up.
    let r = checks_in(&mut conn, &t, &cfg).await;
    let c = find(&r, "pg_cron");
    assert_eq!((c.level, c.value.as_str()), (Level::Ok, "no job"), "{c:#?}");
    assert!(
        c.advice
            .contains("SELECT cron.schedule('cleanup-idempotency', '0 * * * *'"),
        "{c:#?}"
    );

    // No job, and expired rows pile up: the pg_cron check judges the job (there is none, the
    // same verdict as before); the backlog is cleanup_lag's judgement, not this check's.
    insert_into(&mut conn, &t, 10, "x", 6.0, 1.0, 200).await;
    let r = checks_in(&mut conn, &t, &cfg).await;
    let c = find(&r, "pg_cron");
    assert_eq!((c.level, c.value.as_str()), (Level::Ok, "no job"), "{c:#?}");
    assert!(c.detail.contains("cleanup_lag"), "{c:#?}");
    assert_ne!(
        find(&r, "cleanup_lag").level,
        Level::Ok,
        "the lag is judged there"
    );

    // Scheduled (on a date that does not come during the test): ok, no run yet.
    let jobid: i64 = sqlx::query_scalar(
        "SELECT cron.schedule('cleanup-idempotency', '0 3 1 1 *', 'SELECT checkcron.cleanup_expired_idempotency_records()')",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    let r = checks_in(&mut conn, &t, &cfg).await;
    let c = find(&r, "pg_cron");
    assert_eq!(c.level, Level::Ok, "{c:#?}");
    assert!(c.detail.contains("no finished run yet"), "{c:#?}");

    // The last run failed: critical, with its message.
    let run = |status: &str, msg: &str, ago_min: i32| {
        format!(
            "INSERT INTO cron.job_run_details (jobid, job_pid, database, username, command, status, return_message, start_time, end_time)
             VALUES ({jobid}, 1, 'postgres', 'postgres', 'x', '{status}', '{msg}', now() - interval '{ago_min} minutes', now() - interval '{ago_min} minutes')"
        )
    };
    conn.execute(run("succeeded", "1 row", 120).as_str())
        .await
        .unwrap();
    conn.execute(
        run(
            "failed",
            "ERROR:  permission denied for table idempotency_records",
            60,
        )
        .as_str(),
    )
    .await
    .unwrap();
    let r = checks_in(&mut conn, &t, &cfg).await;
    let c = find(&r, "pg_cron");
    assert_eq!(c.level, Level::Critical, "{c:#?}");
    assert_eq!(c.value, "1 failed");
    assert!(
        c.detail
            .contains("the last run failed (1h 00m ago): ERROR:  permission denied"),
        "{c:#?}"
    );
    assert!(
        c.advice.contains(&format!("WHERE jobid = {jobid}")),
        "{c:#?}"
    );

    // A later run succeeded: a warning about the earlier failure.
    conn.execute(run("succeeded", "1 row", 1).as_str())
        .await
        .unwrap();
    let r = checks_in(&mut conn, &t, &cfg).await;
    let c = find(&r, "pg_cron");
    assert_eq!(c.level, Level::Warning, "{c:#?}");
    assert!(c.detail.contains("1 of the last 3 runs failed"), "{c:#?}");

    // Disabled.
    conn.execute(format!("SELECT cron.alter_job({jobid}, active := false)").as_str())
        .await
        .unwrap();
    let r = checks_in(&mut conn, &t, &cfg).await;
    let c = find(&r, "pg_cron");
    assert_eq!(
        (c.level, c.value.as_str()),
        (Level::Warning, "disabled"),
        "{c:#?}"
    );
    assert!(c
        .advice
        .contains(&format!("SELECT cron.alter_job({jobid}, active := true);")));

    // A job that calls the cleanup function makes its absence critical.
    conn.execute("DROP FUNCTION checkcron.cleanup_expired_idempotency_records()")
        .await
        .unwrap();
    let r = checks_in(&mut conn, &t, &cfg).await;
    let f = find(&r, "cleanup_function");
    assert_eq!(f.level, Level::Critical, "{f:#?}");
    assert!(
        f.detail
            .contains("the pg_cron job 'cleanup-idempotency' calls it"),
        "{f:#?}"
    );

    conn.execute(
        format!("SELECT cron.unschedule({jobid}); DROP SCHEMA checkcron CASCADE").as_str(),
    )
    .await
    .unwrap();
}

// ---------------------------------------------------------------------------------------------
// evaluate() on fixed snapshots

fn extras_ok() -> Extras {
    Extras {
        table: TableRef::default(),
        owner: Some("app_owner".into()),
        grants: Ok(vec![]),
        operations: Ok(OperationFacts {
            sampled: false,
            sample_percent: 100.0,
            operations: vec![],
            read_at: None,
        }),
        cron: Ok(CronStatus::NotAvailable),
    }
}

fn level(snap: &Snapshot, extras: &Extras, cfg: &Config, id: &str) -> Level {
    find(&checks::evaluate(snap, None, extras, cfg), id).level
}

#[test]
fn cleanup_lag_thresholds_follow_the_schedule() {
    let cfg = Config::default();
    let e = extras_ok();
    let mut s = fixtures::snapshot(0, 1000);
    for (lag, want) in [
        (5_400.0, Level::Ok),
        (5_401.0, Level::Warning),
        (10_800.0, Level::Warning),
        (10_801.0, Level::Critical),
    ] {
        s.rows.cleanup_lag_secs = lag;
        assert_eq!(level(&s, &e, &cfg, "cleanup_lag"), want, "lag {lag}");
    }
    // A 15-minute schedule tightens the limits.
    let mut quick = cfg.clone();
    quick.thresholds.cleanup_lag.schedule_secs = 900;
    s.rows.cleanup_lag_secs = 3_000.0;
    assert_eq!(level(&s, &e, &quick, "cleanup_lag"), Level::Critical);
    s.rows.oldest_expired_at = None;
    assert_eq!(level(&s, &e, &quick, "cleanup_lag"), Level::Ok);
    // A table under an AccessExclusive lock was not probed: unknown.
    s.blocked_by = Some("AccessExclusiveLock held by pid 7".into());
    assert_eq!(level(&s, &e, &cfg, "cleanup_lag"), Level::Unknown);
}

#[test]
fn bloat_ratio_minimum_and_vacuum_age() {
    let cfg = Config::default();
    let e = extras_ok();
    let mut s = fixtures::snapshot(0, 1000);
    s.vacuum.n_live_tup = 100_000;
    s.vacuum.n_dead_tup = 9_999;
    s.vacuum.last_autovacuum = Some(fixtures::at(-100 * 3600));
    assert_eq!(level(&s, &e, &cfg, "bloat"), Level::Ok, "below the minimum");
    s.vacuum.n_dead_tup = 12_000; // 10.7 %
    s.vacuum.last_autovacuum = Some(fixtures::at(-3600));
    assert_eq!(level(&s, &e, &cfg, "bloat"), Level::Warning);
    s.vacuum.n_dead_tup = 30_000; // 23 %
    assert_eq!(level(&s, &e, &cfg, "bloat"), Level::Critical);
    s.vacuum.n_dead_tup = 10_500; // 9.5 %, vacuum 30 h ago
    s.vacuum.last_autovacuum = Some(fixtures::at(-30 * 3600));
    assert_eq!(level(&s, &e, &cfg, "bloat"), Level::Warning);
    s.vacuum.last_autovacuum = Some(fixtures::at(-73 * 3600));
    assert_eq!(level(&s, &e, &cfg, "bloat"), Level::Critical);
    s.vacuum.last_vacuum = Some(fixtures::at(-60));
    assert_eq!(
        level(&s, &e, &cfg, "bloat"),
        Level::Ok,
        "the newer manual VACUUM counts"
    );
}

#[test]
fn cached_failures_and_retention_thresholds() {
    let cfg = Config::default();
    let mut e = extras_ok();
    let s = fixtures::snapshot(0, 1000);
    let fact = |op: &str, rows: i64, over: i64, s5xx: i64| OperationFact {
        operation: op.into(),
        rows,
        ttl_min_secs: 3600.0,
        ttl_median_secs: 3600.0,
        ttl_max_secs: if over > 0 { 7200.0 } else { 3600.0 },
        policy_secs: 3600.0,
        over_policy: over,
        s5xx,
    };
    let mut set = |ops: Vec<OperationFact>| {
        e.operations = Ok(OperationFacts {
            sampled: false,
            sample_percent: 100.0,
            operations: ops,
            read_at: None,
        });
        let r = checks::evaluate(&s, None, &e, &cfg);
        (
            find(&r, "cached_failures").level,
            find(&r, "retention").level,
        )
    };
    assert_eq!(set(vec![fact("a", 1000, 0, 10)]), (Level::Ok, Level::Ok)); // 1 %: not above
    assert_eq!(
        set(vec![fact("a", 1000, 1, 11)]),
        (Level::Warning, Level::Warning)
    );
    assert_eq!(
        set(vec![fact("a", 1000, 501, 51)]),
        (Level::Critical, Level::Critical)
    );
    assert_eq!(
        set(vec![fact("a", 9, 0, 9)]),
        (Level::Ok, Level::Ok),
        "below min_rows"
    );
    // Without the facts: from the snapshot's exact status counts, or unknown.
    e.operations = Err("gave up after 2 s (statement_timeout)".into());
    let r = checks::evaluate(&s, None, &e, &cfg);
    // The fixture's payment stores 41 5xx of 8,200 (0.5 %), create_transaction 12 of 18,000.
    assert_eq!(find(&r, "cached_failures").level, Level::Ok);
    assert_eq!(find(&r, "retention").level, Level::Unknown);
    assert!(find(&r, "retention").detail.contains("statement_timeout"));
    let mut estimated = s.clone();
    estimated.operations_exact = false;
    let r = checks::evaluate(&estimated, None, &e, &cfg);
    assert_eq!(find(&r, "cached_failures").level, Level::Unknown);
}

#[test]
fn pg_cron_states_and_grants_from_facts() {
    let cfg = Config::default();
    let s = fixtures::snapshot(0, 1000);
    let mut e = extras_ok();
    for st in [
        CronStatus::NotAvailable,
        CronStatus::NotPreloaded,
        CronStatus::OtherDatabase {
            database: "postgres".into(),
        },
    ] {
        e.cron = Ok(st);
        assert_eq!(level(&s, &e, &cfg, "pg_cron"), Level::Ok);
    }
    e.cron = Err("permission denied for pg_cron".into());
    assert_eq!(level(&s, &e, &cfg, "pg_cron"), Level::Unknown);
    let job = CronJob {
        jobid: 3,
        schedule: "0 * * * *".into(),
        command: "SELECT cleanup_expired_idempotency_records()".into(),
        database: "app".into(),
        active: true,
    };
    let run = |status: &str| CronRun {
        runid: 1,
        status: status.into(),
        start_time: Some(fixtures::at(-600)),
        end_time: Some(fixtures::at(-599)),
        return_message: "".into(),
    };
    e.cron = Ok(CronStatus::Ready {
        job: Some(job.clone()),
        runs: vec![run("succeeded"), run("running")],
    });
    assert_eq!(level(&s, &e, &cfg, "pg_cron"), Level::Ok);
    e.cron = Ok(CronStatus::Ready {
        job: Some(CronJob {
            database: "other".into(),
            ..job.clone()
        }),
        runs: vec![],
    });
    let r = checks::evaluate(&s, None, &e, &cfg);
    assert_eq!(find(&r, "pg_cron").level, Level::Warning);
    assert!(find(&r, "pg_cron")
        .detail
        .contains("runs in database other, the table is in app"));

    e.grants = Ok(vec![RoleGrant {
        role: "api".into(),
        privileges: vec!["DELETE".into(), "INSERT".into(), "SELECT".into()],
        update_columns: vec![],
        via: None,
    }]);
    assert_eq!(level(&s, &e, &cfg, "grants"), Level::Ok);
    e.grants = Err("permission denied".into());
    assert_eq!(level(&s, &e, &cfg, "grants"), Level::Unknown);
}

#[test]
fn nagios_exit_codes_and_worst_first() {
    assert_eq!(Level::Ok.exit_code(), 0);
    assert_eq!(Level::Warning.exit_code(), 1);
    assert_eq!(Level::Critical.exit_code(), 2);
    assert_eq!(Level::Unknown.exit_code(), 3);
    assert_eq!(Level::worst([Level::Ok, Level::Unknown]).exit_code(), 3);
    assert_eq!(
        Level::worst([Level::Unknown, Level::Warning]).exit_code(),
        1
    );
    assert_eq!(
        Level::worst([Level::Warning, Level::Critical, Level::Unknown]).exit_code(),
        2
    );
    assert_eq!(serde_json::to_value(Level::Critical).unwrap(), "critical");

    let cfg = Config::default();
    let mut s = fixtures::snapshot(0, 1000);
    s.rows.cleanup_lag_secs = 20_000.0;
    s.cleanup_function = false;
    let r = checks::evaluate(&s, None, &extras_ok(), &cfg);
    let levels: Vec<Level> = r.iter().map(|c| c.level).collect();
    let mut sorted = levels.clone();
    sorted.sort();
    assert_eq!(levels, sorted, "worst first");
    assert_eq!(r[0].id, "cleanup_lag");
    assert_eq!(
        find(&r, "cleanup_function").level,
        Level::Warning,
        "no pg_cron job calls it"
    );
    assert_eq!(
        find(&r, "replay_rate").level,
        Level::Unknown,
        "no previous snapshot"
    );
    assert_eq!(r.last().unwrap().level, Level::Ok);
    assert_eq!(check_cmd::worst(&r), Level::Critical);

    let v = check_cmd::render_json(&s.table, s.taken_at, &r);
    assert_eq!(v["table"], "public.idempotency_records");
    assert_eq!(v["status"], "critical");
    assert!(v["taken_at"]
        .as_str()
        .unwrap()
        .starts_with("2026-01-01T12:00:00"));
    let first = &v["checks"][0];
    for key in ["id", "name", "level", "value", "detail", "advice"] {
        assert!(first[key].is_string(), "{key} in {first}");
    }
    assert_eq!(first["level"], "critical");
    assert_eq!(
        v["checks"].as_array().unwrap().len(),
        checks::CHECK_IDS.len()
    );
}

#[test]
fn text_from_the_database_is_sanitized() {
    let cfg = Config::default();
    let s = fixtures::snapshot(0, 1000);
    let mut e = extras_ok();
    e.grants = Ok(vec![RoleGrant {
        role: "evil\u{1b}[2J".into(),
        privileges: vec!["UPDATE".into()],
        update_columns: vec![],
        via: None,
    }]);
    let r = checks::evaluate(&s, None, &e, &cfg);
    let g = find(&r, "grants");
    assert_eq!(g.level, Level::Critical);
    for text in [&g.value, &g.detail, &g.advice] {
        assert!(!text.contains('\u{1b}'), "{text}");
    }
    assert!(g.advice.contains("FROM \"evil␛[2J\";"), "{g:#?}");
}

// ---------------------------------------------------------------------------------------------
// configuration

#[test]
fn default_config_round_trips_through_its_toml() {
    let text = Config::default_toml();
    let parsed = Config::from_toml_str(&text, "default").unwrap();
    assert_eq!(parsed, Config::default());
    assert!(
        text.lines().filter(|l| l.starts_with('#')).count() > 20,
        "commented"
    );
    for section in [
        "[thresholds.cleanup_lag]",
        "[thresholds.bloat]",
        "[retention.per_operation]",
        "[colors]",
    ] {
        assert!(text.contains(section), "{section}");
    }
    assert_eq!(
        Config::default().ttl_policy(),
        idemtop::store::TtlPolicy::default()
    );
    assert_eq!(
        Config::from_toml_str("", "empty").unwrap(),
        Config::default()
    );
}

#[test]
fn a_partial_file_overrides_only_what_it_says() {
    let cfg = Config::from_toml_str(
        "refresh_interval_secs = 5\n[thresholds.cleanup_lag]\nschedule_secs = 900\n[retention.per_operation]\nrefund = 2.5\n[colors]\nok = \"#00ff00\"\n",
        "partial.toml",
    )
    .unwrap();
    let d = Config::default();
    assert_eq!(cfg.refresh_interval_secs, 5);
    assert_eq!(cfg.thresholds.cleanup_lag.schedule_secs, 900);
    assert_eq!(
        cfg.thresholds.cleanup_lag.warning_factor,
        d.thresholds.cleanup_lag.warning_factor
    );
    assert_eq!(cfg.thresholds.bloat, d.thresholds.bloat);
    // A per_operation table replaces the default map (payment and transfer are not kept).
    assert_eq!(
        cfg.retention.per_operation,
        BTreeMap::from([("refund".to_string(), 2.5)])
    );
    assert_eq!(cfg.retention.default_hours, 24.0);
    assert_eq!(
        cfg.ttl_policy().ttl_for("refund"),
        Duration::from_secs(9000)
    );
    assert_eq!(cfg.colors.ok, "#00ff00");
    assert_eq!(cfg.colors.critical, "red");
    let theme = Theme::from_config(true, &cfg.colors);
    assert_eq!(theme.ok().fg, Some(ratatui::style::Color::Rgb(0, 255, 0)));
    assert_eq!(theme.crit().fg, Some(ratatui::style::Color::Red));
    assert_eq!(Theme::from_config(true, &d.colors), Theme::new(true));
}

#[test]
fn config_errors_are_one_readable_line() {
    let err = Config::from_toml_str(
        "refresh_interval_secs = 2\n[thresholds.bloat]\nwarning_ratoi = 0.1\n",
        "/etc/idemtop.toml",
    )
    .unwrap_err()
    .to_string();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(
            "config file /etc/idemtop.toml, line 3, column 1: unknown field `warning_ratoi`"
        ),
        "{err}"
    );

    let err = Config::from_toml_str("refresh_interval_secs = \"fast\"\n", "c.toml")
        .unwrap_err()
        .to_string();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("c.toml, line 1, column 25"), "{err}");

    let err = Config::from_toml_str("[colors]\nok = \"grene\"\n", "c.toml")
        .unwrap_err()
        .to_string();
    assert!(err.contains("colors.ok: unknown colour \"grene\""), "{err}");

    let err = Config::from_toml_str("[thresholds.expired_share]\nwarning = 0.9\n", "c.toml")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(
            "thresholds.expired_share: the warning threshold (0.9) is above the critical one (0.5)"
        ),
        "{err}"
    );

    let missing = std::env::temp_dir().join("idemtop-no-such-config.toml");
    let err = Config::load(Some(&missing)).unwrap_err().to_string();
    assert_eq!(
        err,
        format!("config file {} does not exist", missing.display())
    );
}

#[test]
fn config_files_are_read_from_disk() {
    let dir = std::env::temp_dir().join(format!("idemtop-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("config.toml");
    std::fs::write(&path, "[retention]\ndefault_hours = 12\n").unwrap();
    let cfg = Config::load(Some(&path)).unwrap();
    assert_eq!(cfg.retention.default_hours, 12.0);
    assert_eq!(
        cfg.ttl_policy().ttl_for("anything"),
        Duration::from_secs(12 * 3600)
    );
    std::fs::write(&path, "[retention\n").unwrap();
    let err = Config::load(Some(&path)).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!("config file {}, line 1", path.display())),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------------------
// the metrics endpoint

/// GET (or another method) over plain TCP, one request with `Connection: close`; returns
/// (status code, headers, body).
async fn http(addr: std::net::SocketAddr, method: &str, path: &str) -> (u16, String, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(
        format!("{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.unwrap();
    let raw = String::from_utf8(raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").expect("a head and a body");
    let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
    let len: usize = header(head, "content-length")
        .expect("Content-Length")
        .parse()
        .unwrap();
    if method != "HEAD" {
        assert_eq!(len, body.len(), "Content-Length matches");
    }
    (status, head.to_string(), body.to_string())
}

/// A header's value (names are case-insensitive).
fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// A fleet of one target, named `orders`, on `url`.
fn one_target(url: &str) -> Vec<idemtop::fleet::Target> {
    vec![idemtop::fleet::Target {
        name: "orders".into(),
        connect: ConnectConfig::from_url(url),
        table: TableRef::default(),
    }]
}

/// A parsed sample: name, labels (unescaped), value.
type Sample = (String, Vec<(String, String)>, f64);

/// Parse the text exposition format strictly enough to catch mistakes.
fn parse_exposition(body: &str) -> (Vec<Sample>, Vec<String>, Vec<String>) {
    let (mut samples, mut helps, mut types) = (Vec::new(), Vec::new(), Vec::new());
    let is_name = |s: &str| {
        !s.is_empty()
            && s.chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    assert!(body.ends_with('\n'));
    for line in body.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            helps.push(rest.split(' ').next().unwrap().to_string());
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut p = rest.split(' ');
            types.push(p.next().unwrap().to_string());
            assert!(matches!(p.next(), Some("gauge" | "counter")), "{line}");
            continue;
        }
        assert!(!line.starts_with('#'), "unexpected comment {line}");
        let name_end = line
            .find(['{', ' '])
            .unwrap_or_else(|| panic!("no value: {line}"));
        let name = &line[..name_end];
        assert!(is_name(name), "metric name {name:?}");
        let mut labels = Vec::new();
        let mut rest = &line[name_end..];
        if let Some(r) = rest.strip_prefix('{') {
            let mut chars = r.char_indices().peekable();
            let end;
            loop {
                // label name
                let start = chars.peek().unwrap().0;
                let mut key_end = start;
                while let Some(&(i, c)) = chars.peek() {
                    if c == '=' {
                        key_end = i;
                        break;
                    }
                    chars.next();
                }
                let key = &r[start..key_end];
                assert!(is_name(key), "label name {key:?} in {line}");
                assert_eq!(chars.next().map(|x| x.1), Some('='));
                assert_eq!(chars.next().map(|x| x.1), Some('"'), "{line}");
                let mut value = String::new();
                loop {
                    let (_, c) = chars
                        .next()
                        .unwrap_or_else(|| panic!("unterminated {line}"));
                    match c {
                        '\\' => match chars.next().unwrap().1 {
                            '\\' => value.push('\\'),
                            '"' => value.push('"'),
                            'n' => value.push('\n'),
                            other => panic!("bad escape \\{other} in {line}"),
                        },
                        '"' => break,
                        '\n' => panic!("raw newline in {line}"),
                        c => value.push(c),
                    }
                }
                labels.push((key.to_string(), value));
                match chars.next() {
                    Some((_, ',')) => continue,
                    Some((i, '}')) => {
                        end = i;
                        break;
                    }
                    other => panic!("{other:?} in {line}"),
                }
            }
            rest = &r[end + 1..];
        }
        let value = rest.strip_prefix(' ').unwrap_or_else(|| panic!("{line}"));
        let v: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("value {value:?} in {line}"));
        samples.push((name.to_string(), labels, v));
    }
    (samples, helps, types)
}

/// The value of the sample `name` of the target `orders` with exactly `labels` besides its
/// `target` label.
fn value_of(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|(n, l, _)| {
            n == name
                && l.first()
                    .is_some_and(|(k, v)| k == "target" && v == "orders")
                && l.len() == labels.len() + 1
                && labels
                    .iter()
                    .all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v))
        })
        .map(|s| s.2)
}

#[tokio::test]
async fn the_metrics_endpoint_answers_prometheus_text() {
    let url = migrated_db().await;
    let mut conn = connect(&url).await;
    insert(&mut conn, 7, "payment", 6.0, 1.0, 201).await;
    insert(&mut conn, 12, "create_transaction", 0.0, 24.0, 201).await;
    insert(&mut conn, 3, "we\"ird\nop\\x", 0.0, 24.0, 200).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(metrics::serve(
        listener,
        one_target(&url),
        Config::default(),
        shutdown.clone(),
    ));

    let (status, head, body) = http(addr, "GET", "/metrics").await;
    assert_eq!(status, 200, "{head}");
    assert_eq!(
        header(&head, "content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8"),
        "{head}"
    );
    let (samples, helps, types) = parse_exposition(&body);
    for (name, labels, _) in &samples {
        assert_eq!(
            labels.first().map(|(k, v)| (k.as_str(), v.as_str())),
            Some(("target", "orders")),
            "{name} is labelled with its target first"
        );
    }
    let names: std::collections::BTreeSet<&str> = samples.iter().map(|s| s.0.as_str()).collect();
    for name in [
        "idemtop_up",
        "idemtop_rows",
        "idemtop_rows_exact",
        "idemtop_size_bytes",
        "idemtop_dead_tuples",
        "idemtop_cleanup_lag_seconds",
        "idemtop_operation_rows",
        "idemtop_index_scans_total",
        "idemtop_index_size_bytes",
        "idemtop_check_level",
        "idemtop_scrape_duration_seconds",
    ] {
        assert!(names.contains(name), "{name} in\n{body}");
    }
    for name in &names {
        assert!(helps.iter().any(|h| h == name), "HELP for {name}");
        assert!(types.iter().any(|t| t == name), "TYPE for {name}");
    }
    assert!(helps
        .iter()
        .any(|h| h == "idemtop_last_vacuum_timestamp_seconds"));
    assert_eq!(value_of(&samples, "idemtop_up", &[]), Some(1.0));
    assert_eq!(
        value_of(&samples, "idemtop_rows", &[("state", "expired")]),
        Some(7.0)
    );
    assert_eq!(
        value_of(&samples, "idemtop_rows", &[("state", "total")]),
        Some(22.0)
    );
    assert_eq!(value_of(&samples, "idemtop_rows_exact", &[]), Some(1.0));
    assert_eq!(
        value_of(
            &samples,
            "idemtop_operation_rows",
            &[("operation", "we\"ird\nop\\x")]
        ),
        Some(3.0)
    );
    assert!(
        body.contains(
            "idemtop_operation_rows{target=\"orders\",operation=\"we\\\"ird\\nop\\\\x\"} 3\n"
        ),
        "escaped label in\n{body}"
    );
    let lag = value_of(&samples, "idemtop_cleanup_lag_seconds", &[]).unwrap();
    assert!((5.0 * 3600.0..6.0 * 3600.0).contains(&lag), "{lag}");
    assert_eq!(
        value_of(&samples, "idemtop_check_level", &[("check", "cleanup_lag")]),
        Some(2.0)
    );
    assert_eq!(
        value_of(&samples, "idemtop_check_level", &[("check", "grants")]),
        Some(0.0)
    );
    assert!(
        value_of(
            &samples,
            "idemtop_index_size_bytes",
            &[("index", "idempotency_records_pkey")]
        )
        .unwrap()
            > 0.0
    );
    // The first scrape has no previous snapshot: the rate check is pending, left out of
    // idemtop_check_level (an alert on >= 2 must not fire on every exporter restart) and
    // counted in idemtop_check_pending; the second scrape has its level.
    assert_eq!(
        value_of(&samples, "idemtop_check_level", &[("check", "replay_rate")]),
        None
    );
    assert_eq!(
        value_of(
            &samples,
            "idemtop_check_pending",
            &[("check", "replay_rate")]
        ),
        Some(1.0)
    );
    let (_, _, body) = http(addr, "GET", "/metrics?second").await;
    let (samples, _, _) = parse_exposition(&body);
    assert_eq!(
        value_of(&samples, "idemtop_check_level", &[("check", "replay_rate")]),
        Some(0.0)
    );

    let (status, _, _) = http(addr, "GET", "/").await;
    assert_eq!(status, 404);
    let (status, head, _) = http(addr, "POST", "/metrics").await;
    assert_eq!(status, 405);
    assert_eq!(header(&head, "allow"), Some("GET, HEAD"), "{head}");

    // HEAD: the headers of a scrape, no body (keep-alive, HEAD, limits and shutdown are
    // tested in tests/prometheus.rs).
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"HEAD /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.unwrap();
    let raw = String::from_utf8(raw).unwrap();
    assert!(raw.starts_with("HTTP/1.1 200 OK\r\n"), "{raw}");
    assert!(raw.ends_with("\r\n\r\n"), "no body after the head: {raw}");

    // Fifty scrapes at once are all answered, each a complete exposition (they share the
    // collections that run while they wait, instead of queueing one query round each).
    let scrapes: Vec<_> = (0..50)
        .map(|_| tokio::spawn(async move { http(addr, "GET", "/metrics").await }))
        .collect();
    for s in scrapes {
        let (status, _, body) = s.await.unwrap();
        assert_eq!(status, 200);
        let (samples, _, _) = parse_exposition(&body);
        assert_eq!(value_of(&samples, "idemtop_up", &[]), Some(1.0));
    }

    shutdown.cancel();
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn with_the_database_down_the_endpoint_says_up_0() {
    let mut pg = tokio::task::spawn_blocking(TempPostgres::start)
        .await
        .unwrap()
        .expect("start a server of our own");
    let url = pg.url();
    let mut conn = connect(&url).await;
    migrate::run(&mut conn, &Ident::new("public").unwrap())
        .await
        .unwrap();
    drop(conn);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(metrics::serve(
        listener,
        one_target(&url),
        Config::default(),
        shutdown.clone(),
    ));
    let (status, _, body) = http(addr, "GET", "/metrics").await;
    assert_eq!(status, 200);
    let (samples, _, _) = parse_exposition(&body);
    assert_eq!(value_of(&samples, "idemtop_up", &[]), Some(1.0), "{body}");

    let pg = tokio::task::spawn_blocking(move || {
        pg.stop();
        pg
    })
    .await
    .unwrap();
    let (status, _, body) = http(addr, "GET", "/metrics").await;
    assert_eq!(status, 200, "still answers");
    let (samples, helps, _) = parse_exposition(&body);
    assert_eq!(value_of(&samples, "idemtop_up", &[]), Some(0.0), "{body}");
    assert!(helps.iter().any(|h| h == "idemtop_up"));
    assert!(value_of(&samples, "idemtop_scrape_duration_seconds", &[]).is_some());
    assert!(!body.contains("idemtop_rows"), "no stale figures: {body}");

    shutdown.cancel();
    server.await.unwrap().unwrap();
    drop(pg);
}

// ---------------------------------------------------------------------------------------------
// the Health screen

fn screen(checks: Option<&[CheckResult]>, selected: usize, expanded: bool) -> String {
    let mut term = Terminal::new(TestBackend::new(100, 20)).unwrap();
    term.draw(|f| {
        health::draw(
            f,
            f.area(),
            checks,
            None,
            selected,
            expanded,
            &Theme::new(false),
        )
    })
    .unwrap();
    term.backend().to_string()
}

#[test]
fn the_health_screen_lists_and_explains_the_checks() {
    assert!(screen(None, 0, false).contains("running the checks…"));
    let mut s = fixtures::snapshot(0, 1000);
    s.rows.cleanup_lag_secs = 20_000.0;
    let mut e = extras_ok();
    e.grants = Ok(vec![RoleGrant {
        role: "evil\u{1b}]0;x\u{7}".into(),
        privileges: vec!["UPDATE".into()],
        update_columns: vec![],
        via: None,
    }]);
    let r = checks::evaluate(&s, None, &e, &Config::default());
    let text = screen(Some(&r), 0, false);
    assert!(text.contains("CRITICAL  Cleanup lag"), "{text}");
    assert!(text.contains("5h 33m"), "{text}");
    assert!(text.contains("2 critical"), "{text}");
    assert!(!text.contains('\u{1b}'), "{text}");
    let lines: Vec<&str> = text.lines().collect();
    let crit = lines
        .iter()
        .position(|l| l.contains("Cleanup lag"))
        .unwrap();
    let ok = lines
        .iter()
        .position(|l| l.contains("Cleanup function"))
        .unwrap();
    assert!(crit < ok, "worst first:\n{text}");
    assert!(lines[ok].contains("OK "), "{text}");
    let text = screen(Some(&r), 1, true);
    assert!(text.contains("What to do: REVOKE UPDATE"), "{text}");
    assert!(text.contains("Grants (grants)"), "{text}");
    // A selection past the end stays on the last check.
    let text = screen(Some(&r), 99, true);
    assert!(
        text.contains(&format!("({})", r.last().unwrap().id)),
        "{text}"
    );
}

// ---------------------------------------------------------------------------------------------
// `idemtop check` (the runner; the binary is wired by the CLI)

fn global(url: &str) -> idemtop::cli::Global {
    use clap::Parser;
    idemtop::cli::Cli::try_parse_from(["idemtop", "--database-url", url])
        .expect("parse the global flags")
        .global
}

#[tokio::test]
async fn the_check_runner_exits_like_a_nagios_plugin() {
    let cfg = Config::default();
    let args = check_cmd::CheckArgs {
        format: idemtop::cli::Format::Json,
        timeout: 15,
    };
    // Cannot connect, no table: unknown (3).
    let code = check_cmd::run(&global("postgres://x:pw@127.0.0.1:1/db"), &cfg, &args)
        .await
        .unwrap();
    assert_eq!(code, 3);
    let url = fresh_db().await;
    assert_eq!(check_cmd::run(&global(&url), &cfg, &args).await.unwrap(), 3);
    // Healthy: 0; a stored 5xx share above 5 %: critical (2).
    let url = migrated_db().await;
    assert_eq!(check_cmd::run(&global(&url), &cfg, &args).await.unwrap(), 0);
    let mut conn = connect(&url).await;
    insert(&mut conn, 20, "charge", 0.0, 24.0, 500).await;
    assert_eq!(check_cmd::run(&global(&url), &cfg, &args).await.unwrap(), 2);
}

/// The per-operation facts are reused by a session for up to 10 minutes: a verdict resting on
/// facts read a minute or more before the snapshot says how long ago they were read.
#[test]
fn retention_and_cached_failures_say_how_old_their_sample_is() {
    let cfg = Config::default();
    let s = fixtures::snapshot(0, 1000);
    let mut e = extras_ok();
    let facts = |read_at| OperationFacts {
        sampled: true,
        sample_percent: 2.5,
        operations: vec![OperationFact {
            operation: "a".into(),
            rows: 1000,
            ttl_min_secs: 3600.0,
            ttl_median_secs: 3600.0,
            ttl_max_secs: 7200.0,
            policy_secs: 3600.0,
            over_policy: 200,
            s5xx: 100,
        }],
        read_at,
    };
    e.operations = Ok(facts(Some(s.taken_at - chrono::Duration::seconds(420))));
    let r = checks::evaluate(&s, None, &e, &cfg);
    for id in ["retention", "cached_failures"] {
        let d = &find(&r, id).detail;
        assert!(
            d.contains("sampled 2.500% of the table's pages, read 7m 00s ago"),
            "{id}: {d}"
        );
    }
    // Read with the snapshot: no age to give.
    e.operations = Ok(facts(Some(s.taken_at)));
    let r = checks::evaluate(&s, None, &e, &cfg);
    for id in ["retention", "cached_failures"] {
        let d = &find(&r, id).detail;
        assert!(
            d.contains("sampled 2.500% of the table's pages"),
            "{id}: {d}"
        );
        assert!(!d.contains(" ago"), "{id}: {d}");
    }
}

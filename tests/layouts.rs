//! The fixture matrix of issue 12: the table layouts idemtop meets, each in a fresh database
//! with a mix of expired and live rows, through snapshot, check, the record browser, the dry
//! run and the cleanup by every method (auto, walk, sweep, each on a fresh copy).
//!
//! Layouts: the guide's plain table (a backlog auto sweeps); RANGE on `expires_at` (hourly);
//! RANGE on `created_at` (daily, 24 h TTL, live rows in yesterday's partition); HASH on
//! `request_id`; LIST on `operation`; `timestamp without time zone` columns written as local
//! wall-clock times under a database TimeZone east (Asia/Tokyo) and west (America/Los_Angeles)
//! of UTC, plain and RANGE-partitioned on local hours; `'infinity'` and `'-infinity'` on the
//! guide table and on a RANGE table from MINVALUE to MAXVALUE. Plus: a sweep that meets a row
//! locked by another session.
//!
//! For each: nothing panics, snapshot and check print JSON, no live row is ever deleted (exact
//! ids compared), the dry run equals the run (count, method, partitions dropped) and counts what
//! psql counts, and nothing expired is left. Rows never expire within five minutes of the test's
//! clock, so the dry run's and the run's cutoffs (seconds apart) see the same rows.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Utc};

use common::*;
use idemtop::db::connect::ConnectConfig;
use idemtop::db::maintenance::{
    self, CleanupOptions, CleanupSummary, Method, MethodChoice, StopReason,
};
use idemtop::db::partitions::DropProof;
use idemtop::db::plan::PartitionAction;
use idemtop::db::records::{self, RecordFilter, Sort};
use idemtop::ident::TableRef;
use sqlx::{Connection, Executor, PgConnection, PgPool};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// The guide's table (migrations 045/046), with a backlog the auto method sweeps.
    Plain,
    /// RANGE (expires_at), hourly partitions.
    RangeExpires,
    /// RANGE (created_at), daily partitions, 24 h TTL.
    RangeCreated,
    /// HASH (request_id), 4 partitions.
    Hash,
    /// LIST (operation), with a DEFAULT partition.
    List,
    /// `timestamp without time zone`, database TimeZone Asia/Tokyo (UTC+9).
    TzEast,
    /// `timestamp without time zone`, database TimeZone America/Los_Angeles (UTC-8/-7).
    TzWest,
    /// As `TzWest`, RANGE (expires_at) in hourly partitions whose bounds are local times.
    TzWestRange,
    /// The guide's table with `'infinity'` expiries and `'-infinity'` creation times.
    Infinity,
    /// RANGE (expires_at) from MINVALUE to MAXVALUE, no CHECK: `expires_at = '-infinity'` too.
    RangeInfinite,
}

impl Layout {
    fn zone(self) -> Option<&'static str> {
        match self {
            Layout::TzEast => Some("Asia/Tokyo"),
            Layout::TzWest | Layout::TzWestRange => Some("America/Los_Angeles"),
            _ => None,
        }
    }

    fn partitioned(self) -> bool {
        matches!(
            self,
            Layout::RangeExpires
                | Layout::RangeCreated
                | Layout::Hash
                | Layout::List
                | Layout::RangeInfinite
                | Layout::TzWestRange
        )
    }

    fn has_infinity(self) -> bool {
        matches!(self, Layout::Infinity | Layout::RangeInfinite)
    }
}

struct Fixture {
    url: String,
    db: String,
    table: TableRef,
    /// RANGE layouts: the UTC hour the partitions were laid out from.
    base: Option<DateTime<Utc>>,
    /// Hourly RANGE (expires_at): the partition that held the build's now().
    current: Option<String>,
}

fn guide() -> TableRef {
    TableRef::default()
}

fn db_name(url: &str) -> String {
    url.rsplit('/').next().unwrap().to_string()
}

/// The guide's columns, with `ts` as the type of both timestamps.
fn columns(ts: &str) -> String {
    format!(
        "request_id uuid NOT NULL, operation varchar(100) NOT NULL, result_payload text NOT NULL,
         status_code integer, created_at {ts} NOT NULL DEFAULT now(), expires_at {ts} NOT NULL"
    )
}

const GUIDE_INDEXES: &str = "
CREATE INDEX idx_idempotency_expires ON idempotency_records (expires_at);
CREATE INDEX idx_idempotency_operation ON idempotency_records (operation);";

async fn exec(conn: &mut PgConnection, sql: &str) {
    conn.execute(sql)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{sql}"));
}

/// `n` rows of `op`: `created_at = {now} + from + g * step` seconds (g = 0..n), `expires_at =
/// created_at + ttl` seconds, except those expiring within five minutes of `{now}`. `now` is
/// `now()`, or `localtimestamp` for `timestamp without time zone` columns (what an application
/// whose sessions use the database's TimeZone writes).
async fn spread(
    conn: &mut PgConnection,
    now: &str,
    op: &str,
    n: i64,
    from_secs: f64,
    step_secs: f64,
    ttl_secs: f64,
) -> u64 {
    sqlx::query(&format!(
        "INSERT INTO idempotency_records
                (request_id, operation, result_payload, status_code, created_at, expires_at)
         SELECT gen_random_uuid(), $1, '{{\"ok\":true}}', 200 + (g % 4) * 100, c,
                c + $5::float8 * interval '1 second'
           FROM (SELECT g, {now} + ($3::float8 + g * $4::float8) * interval '1 second' AS c
                   FROM generate_series(0, $2::int8 - 1) g) s
          WHERE abs(extract(epoch FROM c + $5::float8 * interval '1 second' - {now})) > 300"
    ))
    .bind(op)
    .bind(n)
    .bind(from_secs)
    .bind(step_secs)
    .bind(ttl_secs)
    .execute(conn)
    .await
    .unwrap()
    .rows_affected()
}

const H: f64 = 3600.0;
const DAY: f64 = 86_400.0;

/// Rows with `'infinity'` and `'-infinity'` the guide's CHECK (expires_at > created_at) allows.
/// One `'infinity'` expiry only: a value stored twice would be one of the statistics' most
/// common values instead of the last bound of the histogram.
const INFINITE_ROWS: &str = "
INSERT INTO idempotency_records (request_id, operation, result_payload, status_code, created_at, expires_at)
VALUES (gen_random_uuid(), 'forever', '{}', 200, '-infinity', 'infinity'),
       (gen_random_uuid(), 'ancient', '{}', 200, '-infinity', now() - interval '1 day'),
       (gen_random_uuid(), 'ancient', '{}', 500, '-infinity', now() + interval '1 day');";

/// A fresh database holding `layout`, filled.
async fn build(layout: Layout) -> Fixture {
    let url = match layout {
        Layout::Plain | Layout::Infinity => migrated_db().await,
        _ => fresh_db().await,
    };
    let db = db_name(&url);
    let mut conn = connect(&url).await;
    let tstz = columns("timestamptz");
    let mut base = None;
    let mut current = None;
    if matches!(
        layout,
        Layout::RangeExpires | Layout::RangeCreated | Layout::TzWestRange
    ) {
        // A run that crossed the hour between its dry run and its run would find one more
        // hourly partition expired: start a fresh hour when this one is about to end.
        let left: f64 = sqlx::query_scalar(
            "SELECT extract(epoch FROM date_trunc('hour', now(), 'UTC') + interval '1 hour' - now())::float8",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap();
        if left < 30.0 {
            tokio::time::sleep(Duration::from_secs_f64(left + 1.0)).await;
        }
        let hour: DateTime<Utc> = sqlx::query_scalar("SELECT date_trunc('hour', now(), 'UTC')")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        base = Some(hour);
        current = Some(format!("idempotency_records_p{}", hour.format("%Y%m%d%H")));
    }
    // As SQL text, for the DDL.
    let base_sql = base.map(|b| format!("'{}'::timestamptz", b.to_rfc3339()));
    match layout {
        Layout::Plain => {
            // 12,000 expired a day or more ago, 500 in the last hours, 4,000 live: the backlog
            // is 75% of the table and over 10,000 rows, so auto sweeps.
            spread(&mut conn, "now()", "payment", 12_000, -3.0 * DAY, 7.2, DAY).await;
            spread(&mut conn, "now()", "refund", 500, -30.0 * H, 36.0, DAY).await;
            spread(&mut conn, "now()", "payment", 4_000, -2.0 * H, 1.8, DAY).await;
        }
        Layout::Infinity => {
            // Over 10,000 rows: the snapshot reads the statistics too, whose expires_at
            // histogram then ends with 'infinity'.
            spread(&mut conn, "now()", "payment", 8_000, -3.0 * DAY, 10.8, DAY).await;
            spread(&mut conn, "now()", "payment", 3_000, -2.0 * H, 2.4, DAY).await;
            exec(&mut conn, INFINITE_ROWS).await;
        }
        Layout::RangeExpires => {
            exec(
                &mut conn,
                &format!(
                    "CREATE TABLE idempotency_records ({tstz},
                         PRIMARY KEY (request_id, expires_at),
                         CONSTRAINT chk_expires_at CHECK (expires_at > created_at)
                     ) PARTITION BY RANGE (expires_at);
                     {GUIDE_INDEXES}
                     DO $$
                     DECLARE h timestamptz := {}; lo timestamptz;
                     BEGIN
                         FOR i IN -10 .. 14 LOOP
                             lo := h + make_interval(hours => i);
                             EXECUTE format('CREATE TABLE %I PARTITION OF idempotency_records FOR VALUES FROM (%L) TO (%L)',
                                            'idempotency_records_p' || to_char(lo AT TIME ZONE 'UTC', 'YYYYMMDDHH24'),
                                            lo, lo + interval '1 hour');
                         END LOOP;
                     END $$;",
                    base_sql.as_deref().unwrap()
                ),
            )
            .await;
            // Expiring from 9.5 h ago to 13.5 h ahead, one a minute, 14 h TTL.
            spread(
                &mut conn,
                "now()",
                "payment",
                1_380,
                -23.5 * H,
                60.0,
                14.0 * H,
            )
            .await;
        }
        Layout::RangeCreated => {
            exec(
                &mut conn,
                &format!(
                    "CREATE TABLE idempotency_records ({tstz},
                         PRIMARY KEY (request_id, created_at),
                         CONSTRAINT chk_expires_at CHECK (expires_at > created_at)
                     ) PARTITION BY RANGE (created_at);
                     {GUIDE_INDEXES}
                     DO $$
                     DECLARE d timestamptz := {} - interval '12 hours'; lo timestamptz;
                     BEGIN
                         FOR i IN -4 .. 2 LOOP
                             lo := d + make_interval(days => i);
                             EXECUTE format('CREATE TABLE %I PARTITION OF idempotency_records FOR VALUES FROM (%L) TO (%L)',
                                            'idempotency_records_d' || to_char(lo AT TIME ZONE 'UTC', 'YYYYMMDDHH24'),
                                            lo, lo + interval '1 day');
                         END LOOP;
                     END $$;",
                    base_sql.as_deref().unwrap()
                ),
            )
            .await;
            // Created every 3 minutes from 4 days before the first partition's start until a
            // minute ago, each living 24 h. The days start 12 h before the current hour (not at
            // midnight), so that at any time of day yesterday's partition holds rows created
            // less than 24 h ago (live) and rows created before (expired).
            sqlx::query(
                "INSERT INTO idempotency_records
                        (request_id, operation, result_payload, status_code, created_at, expires_at)
                 SELECT gen_random_uuid(), 'payment', '{}', 201, c, c + $2::float8 * interval '1 second'
                   FROM generate_series($3::timestamptz - interval '12 hours' - interval '4 days',
                                        now() - interval '1 minute',
                                        $1::float8 * interval '1 second') c
                  WHERE abs(extract(epoch FROM c + $2::float8 * interval '1 second' - now())) > 300",
            )
            .bind(180.0f64)
            .bind(DAY)
            .bind(base.unwrap())
            .execute(&mut conn)
            .await
            .unwrap();
        }
        Layout::Hash => {
            exec(
                &mut conn,
                &format!(
                    "CREATE TABLE idempotency_records ({tstz},
                         PRIMARY KEY (request_id),
                         CONSTRAINT chk_expires_at CHECK (expires_at > created_at)
                     ) PARTITION BY HASH (request_id);
                     {GUIDE_INDEXES}
                     CREATE TABLE idempotency_records_h0 PARTITION OF idempotency_records FOR VALUES WITH (MODULUS 4, REMAINDER 0);
                     CREATE TABLE idempotency_records_h1 PARTITION OF idempotency_records FOR VALUES WITH (MODULUS 4, REMAINDER 1);
                     CREATE TABLE idempotency_records_h2 PARTITION OF idempotency_records FOR VALUES WITH (MODULUS 4, REMAINDER 2);
                     CREATE TABLE idempotency_records_h3 PARTITION OF idempotency_records FOR VALUES WITH (MODULUS 4, REMAINDER 3);"
                ),
            )
            .await;
            spread(&mut conn, "now()", "payment", 1_000, -3.0 * DAY, 86.4, DAY).await;
            spread(&mut conn, "now()", "refund", 500, -2.0 * H, 14.4, DAY).await;
        }
        Layout::List => {
            exec(
                &mut conn,
                &format!(
                    "CREATE TABLE idempotency_records ({tstz},
                         PRIMARY KEY (request_id, operation),
                         CONSTRAINT chk_expires_at CHECK (expires_at > created_at)
                     ) PARTITION BY LIST (operation);
                     {GUIDE_INDEXES}
                     CREATE TABLE idempotency_records_payment PARTITION OF idempotency_records FOR VALUES IN ('payment');
                     CREATE TABLE idempotency_records_refund PARTITION OF idempotency_records FOR VALUES IN ('refund');
                     CREATE TABLE idempotency_records_other PARTITION OF idempotency_records DEFAULT;"
                ),
            )
            .await;
            for op in ["payment", "refund", "capture"] {
                spread(&mut conn, "now()", op, 400, -3.0 * DAY, 216.0, DAY).await;
                spread(&mut conn, "now()", op, 200, -2.0 * H, 36.0, DAY).await;
            }
            // One operation whose rows are all expired, one whose rows are all live.
            spread(&mut conn, "now()", "void", 100, -3.0 * DAY, 60.0, H).await;
            spread(&mut conn, "now()", "auth", 100, -H, 30.0, DAY).await;
        }
        Layout::TzEast | Layout::TzWest | Layout::TzWestRange => {
            let zone = layout.zone().unwrap();
            exec(
                &mut conn,
                &format!("ALTER DATABASE \"{db}\" SET timezone = '{zone}'"),
            )
            .await;
            // Reconnect: the new session's TimeZone is the database's, as the application's is.
            drop(conn);
            conn = connect(&url).await;
            let tz: String = sqlx::query_scalar("SELECT current_setting('TimeZone')")
                .fetch_one(&mut conn)
                .await
                .unwrap();
            assert_eq!(tz, zone, "the session uses the database's TimeZone");
            let ts = columns("timestamp without time zone");
            let now = "localtimestamp";
            if layout == Layout::TzWestRange {
                // Hourly partitions of local wall-clock hours, named after them.
                let hour: chrono::NaiveDateTime =
                    sqlx::query_scalar("SELECT date_trunc('hour', localtimestamp)")
                        .fetch_one(&mut conn)
                        .await
                        .unwrap();
                current = Some(format!("idempotency_records_p{}", hour.format("%Y%m%d%H")));
                exec(
                    &mut conn,
                    &format!(
                        "CREATE TABLE idempotency_records ({ts},
                             PRIMARY KEY (request_id, expires_at),
                             CONSTRAINT chk_expires_at CHECK (expires_at > created_at)
                         ) PARTITION BY RANGE (expires_at);
                         {GUIDE_INDEXES}
                         DO $$
                         DECLARE h timestamp := '{}'::timestamp; lo timestamp;
                         BEGIN
                             FOR i IN -13 .. 13 LOOP
                                 lo := h + make_interval(hours => i);
                                 EXECUTE format('CREATE TABLE %I PARTITION OF idempotency_records FOR VALUES FROM (%L) TO (%L)',
                                                'idempotency_records_p' || to_char(lo, 'YYYYMMDDHH24'),
                                                lo, lo + interval '1 hour');
                             END LOOP;
                         END $$;",
                        hour.format("%Y-%m-%d %H:%M:%S")
                    ),
                )
                .await;
                spread(&mut conn, now, "payment", 600, -24.0 * H, 60.0, 12.0 * H).await;
                spread(&mut conn, now, "payment", 300, -H, 12.0, 12.0 * H).await;
            } else {
                exec(
                    &mut conn,
                    &format!(
                        "CREATE TABLE idempotency_records ({ts},
                             PRIMARY KEY (request_id),
                             CONSTRAINT chk_expires_at CHECK (expires_at > created_at));
                         {GUIDE_INDEXES}"
                    ),
                )
                .await;
                spread(&mut conn, now, "payment", 800, -3.0 * DAY, 108.0, DAY).await;
                spread(&mut conn, now, "payment", 300, -H, 12.0, DAY).await;
            }
            // Expiring every 2 minutes from 11 h ago to 11 h ahead (local time), 12 h TTL: the
            // zone's offset window, where reading the values as UTC would get them wrong.
            spread(&mut conn, now, "window", 660, -23.0 * H, 120.0, 12.0 * H).await;
        }
        Layout::RangeInfinite => {
            exec(
                &mut conn,
                &format!(
                    "CREATE TABLE idempotency_records ({tstz},
                         PRIMARY KEY (request_id, expires_at)
                     ) PARTITION BY RANGE (expires_at);
                     {GUIDE_INDEXES}
                     DO $$
                     DECLARE h timestamptz := date_trunc('hour', now(), 'UTC');
                     BEGIN
                         EXECUTE format('CREATE TABLE idempotency_records_old PARTITION OF idempotency_records FOR VALUES FROM (MINVALUE) TO (%L)',
                                        h - interval '2 hours');
                         EXECUTE format('CREATE TABLE idempotency_records_now PARTITION OF idempotency_records FOR VALUES FROM (%L) TO (%L)',
                                        h - interval '2 hours', h + interval '2 hours');
                         EXECUTE format('CREATE TABLE idempotency_records_later PARTITION OF idempotency_records FOR VALUES FROM (%L) TO (MAXVALUE)',
                                        h + interval '2 hours');
                     END $$;"
                ),
            )
            .await;
            // Expiring from 2 days ago to 2 h ago (old), 1 h ago to 1 h ahead (now), 4 h to
            // 51 h ahead (later).
            spread(&mut conn, "now()", "payment", 300, -2.0 * DAY - H, 553.0, H).await;
            spread(&mut conn, "now()", "payment", 120, -2.0 * H, 60.0, H).await;
            spread(
                &mut conn,
                "now()",
                "payment",
                300,
                -2.0 * DAY,
                564.0,
                2.0 * DAY + 4.0 * H,
            )
            .await;
            exec(&mut conn, INFINITE_ROWS).await;
            // Without the CHECK, '-infinity' can be an expiry too (expired since forever).
            exec(
                &mut conn,
                "INSERT INTO idempotency_records (request_id, operation, result_payload, status_code, created_at, expires_at)
                 VALUES (gen_random_uuid(), 'never', '{}', 410, now() - interval '1 day', '-infinity'),
                        (gen_random_uuid(), 'never', '{}', 410, '-infinity', '-infinity');",
            )
            .await;
        }
    }
    if layout.has_infinity() {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM idempotency_records WHERE NOT isfinite(expires_at) OR NOT isfinite(created_at)",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap();
        assert!(n >= 3, "{layout:?}: infinite rows in place");
    }
    exec(&mut conn, "ANALYZE idempotency_records").await;
    Fixture {
        url,
        db,
        table: guide(),
        base,
        current,
    }
}

/// What the table holds before a cleanup, judged on the server's clock in a session that uses
/// the database's TimeZone (as psql and the application do).
struct Before {
    live: BTreeSet<Uuid>,
    expired: u64,
    total: u64,
}

async fn ids(conn: &mut PgConnection, cond: &str) -> BTreeSet<Uuid> {
    sqlx::query_scalar::<_, Uuid>(&format!(
        "SELECT request_id FROM idempotency_records WHERE {cond}"
    ))
    .fetch_all(conn)
    .await
    .unwrap()
    .into_iter()
    .collect()
}

async fn count(conn: &mut PgConnection, cond: &str) -> u64 {
    let n: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM idempotency_records WHERE {cond}"
    ))
    .fetch_one(conn)
    .await
    .unwrap();
    n as u64
}

async fn before(fx: &Fixture, layout: Layout) -> Before {
    let mut conn = connect(&fx.url).await;
    let live = ids(&mut conn, "expires_at > now()").await;
    let expired = count(&mut conn, "expires_at <= now()").await;
    let total = count(&mut conn, "true").await;
    assert_eq!(
        live.len() as u64 + expired,
        total,
        "{layout:?}: every row is live or expired"
    );
    assert!(
        expired > 0 && !live.is_empty(),
        "{layout:?}: a mix of expired and live rows"
    );
    if let Some(zone) = layout.zone() {
        // psql, in the database's TimeZone, agrees...
        let psql = server()
            .psql(
                &fx.db,
                "SELECT current_setting('TimeZone'), count(*) FROM idempotency_records WHERE expires_at <= now()",
            )
            .unwrap();
        assert_eq!(psql.trim(), format!("{zone}|{expired}"), "{layout:?}");
        // ...and the fixture has rows that a session reading the values as UTC would misjudge.
        let mut utc = PgConnection::connect(&fx.url).await.unwrap();
        let utc_expired = count(&mut utc, "expires_at <= now()").await;
        match layout {
            Layout::TzEast => assert!(utc_expired < expired, "{utc_expired} vs {expired}"),
            _ => assert!(utc_expired > expired, "{utc_expired} vs {expired}"),
        }
    }
    Before {
        live,
        expired,
        total,
    }
}

async fn pool(url: &str) -> PgPool {
    ConnectConfig::from_url(url).pool(4).await.unwrap()
}

async fn cleanup(
    pool: &PgPool,
    table: &TableRef,
    method: MethodChoice,
    dry_run: bool,
) -> CleanupSummary {
    let opts = CleanupOptions {
        method,
        dry_run,
        ..CleanupOptions::default()
    };
    maintenance::cleanup(pool, table, &opts, &CancellationToken::new(), |_| {})
        .await
        .unwrap_or_else(|e| panic!("cleanup ({method:?}, dry run {dry_run}): {e:#}"))
}

fn drops(s: &CleanupSummary) -> Vec<String> {
    s.partitions
        .iter()
        .filter(|p| p.planned.action == PartitionAction::Drop)
        .map(|p| p.planned.name.clone())
        .collect()
}

fn partition<'a>(s: &'a CleanupSummary, name: &str) -> &'a maintenance::PartitionOutcome {
    s.partitions
        .iter()
        .find(|p| p.planned.name == name)
        .unwrap_or_else(|| panic!("no partition {name} in {:#?}", s.partitions))
}

async fn partition_names(conn: &mut PgConnection) -> BTreeSet<String> {
    sqlx::query_scalar::<_, String>(
        "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
          WHERE i.inhparent = 'idempotency_records'::regclass",
    )
    .fetch_all(conn)
    .await
    .unwrap()
    .into_iter()
    .collect()
}

/// `sweeps`: the server has TID range scans (PostgreSQL 14+); 13 always walks.
fn expected_method(layout: Layout, choice: MethodChoice, sweeps: bool) -> Method {
    match (layout, choice) {
        _ if layout.partitioned() || !sweeps => Method::Walk,
        (_, MethodChoice::Walk) => Method::Walk,
        (_, MethodChoice::Sweep) => Method::Sweep,
        // Only the plain fixture has a backlog large enough (>= 10,000 rows and >= 25%).
        (Layout::Plain, MethodChoice::Auto) => Method::Sweep,
        (_, MethodChoice::Auto) => Method::Walk,
    }
}

fn no_panic(what: &str, stderr: &str) {
    assert!(!stderr.contains("panicked"), "{what} panicked:\n{stderr}");
}

/// snapshot and check through the binary.
fn binary_reads(layout: Layout, fx: &Fixture) {
    let (rc, out, err) = idemtop(
        &["--database-url", &fx.url, "snapshot", "--format", "json"],
        &[],
    );
    no_panic("snapshot", &err);
    assert_eq!(rc, 0, "{layout:?}: snapshot failed: {err}");
    let snap: serde_json::Value = serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("{layout:?}: snapshot JSON: {e}\n{out}"));
    assert!(snap.is_object(), "{layout:?}: {snap}");

    let config_home = std::env::temp_dir().join(format!("idemtop-layouts-{}", fx.db));
    let (rc, out, err) = idemtop(
        &["--database-url", &fx.url, "check", "--format", "json"],
        &[("XDG_CONFIG_HOME", config_home.to_str().unwrap())],
    );
    no_panic("check", &err);
    assert!((0..=3).contains(&rc), "{layout:?}: check exit {rc}: {err}");
    let check: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| {
        panic!("{layout:?}: check JSON (exit {rc}): {e}\nstdout: {out}\nstderr: {err}")
    });
    assert!(check.is_object(), "{layout:?}: {check}");
}

/// The record browser: the first page in every order and the detail of its first row.
async fn browse(layout: Layout, fx: &Fixture, b: &Before) {
    let mut conn = connect(&fx.url).await;
    for sort in Sort::ALL {
        let page = records::page(
            &mut conn,
            &fx.table,
            &RecordFilter::default(),
            sort,
            None,
            50,
        )
        .await
        .unwrap_or_else(|e| panic!("{layout:?}: records page ({sort:?}): {e:#}"));
        assert_eq!(
            page.rows.len() as u64,
            b.total.min(50),
            "{layout:?} {sort:?}"
        );
        assert!(
            page.next.is_some(),
            "{layout:?} {sort:?}: more than one page"
        );
        let first = &page.rows[0];
        let rec = records::get(&mut conn, &fx.table, first.request_id, 1024)
            .await
            .unwrap_or_else(|e| panic!("{layout:?}: records get: {e:#}"))
            .unwrap_or_else(|| panic!("{layout:?}: record {} not found", first.request_id));
        assert_eq!(rec.summary.request_id, first.request_id);
    }
    // A live row's detail agrees with the live set.
    let id = *b.live.iter().next().unwrap();
    let rec = records::get(&mut conn, &fx.table, id, 1024)
        .await
        .unwrap()
        .expect("a live row");
    assert!(
        rec.summary.expires_at
            > idemtop::db::ts::Ts::At(chrono::Utc::now() - chrono::Duration::minutes(1))
    );
}

/// The dry run of the binary, compared with the library's.
fn binary_dry_run(layout: Layout, fx: &Fixture, lib: &CleanupSummary) {
    let (rc, out, err) = idemtop(
        &[
            "--database-url",
            &fx.url,
            "cleanup",
            "--dry-run",
            "--format",
            "json",
        ],
        &[],
    );
    no_panic("cleanup --dry-run", &err);
    assert_eq!(rc, 0, "{layout:?}: cleanup --dry-run: {err}");
    let v: serde_json::Value = serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("{layout:?}: dry run JSON: {e}\n{out}"));
    assert_eq!(v["dry_run"], true);
    assert_eq!(v["deleted"], 0);
    assert_eq!(
        v["expired_at_start"].as_u64(),
        lib.expired_at_start,
        "{layout:?}: {v}"
    );
    assert_eq!(v["method"], lib.method.as_str(), "{layout:?}: {v}");
    let bin_drops: Vec<String> = v["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["action"] == "drop")
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(bin_drops, drops(lib), "{layout:?}");
    assert_eq!(
        v["partitions"].as_array().unwrap().len(),
        lib.partitions.len(),
        "{layout:?}"
    );
}

/// What the plan must say about the partitions of `layout` (`names`: before the run).
async fn check_plan(
    layout: Layout,
    fx: &Fixture,
    conn: &mut PgConnection,
    dry: &CleanupSummary,
    names: &BTreeSet<String>,
) {
    let planned: BTreeSet<String> = dry
        .partitions
        .iter()
        .map(|p| p.planned.name.clone())
        .collect();
    assert_eq!(
        &planned, names,
        "{layout:?}: every partition is in the plan"
    );
    match layout {
        Layout::Plain | Layout::Infinity | Layout::TzEast | Layout::TzWest => {
            assert!(dry.partitions.is_empty(), "{layout:?}");
        }
        Layout::Hash | Layout::List => {
            assert!(!dry.partitions.is_empty());
            for p in &dry.partitions {
                assert_eq!(
                    p.planned.action,
                    PartitionAction::RowByRow,
                    "{layout:?}: {p:?}"
                );
                assert_eq!(p.planned.proof, None);
            }
        }
        Layout::RangeExpires | Layout::TzWestRange => {
            let current = fx.current.clone().unwrap();
            let p = partition(dry, &current);
            assert_eq!(p.planned.action, PartitionAction::RowByRow, "{p:?}");
            let d = drops(dry);
            // The hours from 10 h ago to the last full hour.
            assert!(d.len() >= 9, "{d:?}");
            for p in dry
                .partitions
                .iter()
                .filter(|p| p.planned.action == PartitionAction::Drop)
            {
                assert_eq!(p.planned.proof, Some(DropProof::UpperBound), "{p:?}");
                assert!(p.planned.name < current, "{p:?}");
            }
            for p in dry.partitions.iter().filter(|p| p.planned.name >= current) {
                assert_eq!(p.planned.action, PartitionAction::RowByRow, "{p:?}");
            }
        }
        Layout::RangeCreated => {
            let day =
                |k: i64| fx.base.unwrap() - chrono::Duration::hours(12) + chrono::Duration::days(k);
            let name = |k: i64| format!("idempotency_records_d{}", day(k).format("%Y%m%d%H"));
            let (three_days, yesterday, today) = (name(-3), name(-1), name(0));
            let p = partition(dry, &three_days);
            assert_eq!(p.planned.action, PartitionAction::Drop, "{p:?}");
            assert_eq!(p.planned.proof, Some(DropProof::Checked), "{p:?}");
            assert!(p.planned.rows > 0, "{p:?}");
            // Yesterday's partition holds rows created less than 24 h ago: live.
            let p = partition(dry, &yesterday);
            assert_eq!(p.planned.action, PartitionAction::RowByRow, "{p:?}");
            let live_there: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM idempotency_records
                  WHERE created_at >= $1 AND created_at < $2 AND expires_at > now()",
            )
            .bind(day(-1))
            .bind(day(0))
            .fetch_one(&mut *conn)
            .await
            .unwrap();
            assert!(live_there > 0, "yesterday's partition holds live rows");
            let p = partition(dry, &today);
            assert_eq!(p.planned.action, PartitionAction::RowByRow, "{p:?}");
            for p in dry
                .partitions
                .iter()
                .filter(|p| p.planned.action == PartitionAction::Drop)
            {
                assert_eq!(p.planned.proof, Some(DropProof::Checked), "{p:?}");
                assert!(p.planned.name < yesterday, "{p:?}");
            }
        }
        Layout::RangeInfinite => {
            let p = partition(dry, "idempotency_records_old");
            assert_eq!(p.planned.action, PartitionAction::Drop, "{p:?}");
            assert_eq!(p.planned.proof, Some(DropProof::UpperBound), "{p:?}");
            for name in ["idempotency_records_now", "idempotency_records_later"] {
                let p = partition(dry, name);
                assert_eq!(p.planned.action, PartitionAction::RowByRow, "{p:?}");
            }
        }
    }
}

/// One fresh copy of `layout` cleaned by `method`, after a dry run with the same options; with
/// `inspect`, snapshot, check, the record browser and the binary's dry run first.
async fn case(layout: Layout, method: MethodChoice, inspect: bool) {
    let fx = build(layout).await;
    let b = before(&fx, layout).await;
    if inspect {
        binary_reads(layout, &fx);
        if !layout.has_infinity() {
            browse(layout, &fx, &b).await;
        }
    }
    let mut conn = connect(&fx.url).await;
    let names_before = if layout.partitioned() {
        partition_names(&mut conn).await
    } else {
        BTreeSet::new()
    };
    let pool = pool(&fx.url).await;

    let dry = cleanup(&pool, &fx.table, method, true).await;
    assert!(dry.dry_run);
    assert_eq!(dry.deleted, 0);
    assert_eq!(
        dry.expired_at_start,
        Some(b.expired),
        "{layout:?} {method:?}: the dry run counts what psql counts as expired"
    );
    assert_eq!(
        dry.method,
        expected_method(
            layout,
            method,
            server_version_num(&mut conn).await >= 140_000
        ),
        "{layout:?} {method:?}: {}",
        dry.method_reason
    );
    check_plan(layout, &fx, &mut conn, &dry, &names_before).await;
    if inspect {
        binary_dry_run(layout, &fx, &dry);
    }
    // The dry run changed nothing.
    assert_eq!(ids(&mut conn, "expires_at > now()").await, b.live);
    assert_eq!(count(&mut conn, "true").await, b.total);

    let run = cleanup(&pool, &fx.table, method, false).await;
    let ctx = format!("{layout:?} {method:?}: dry {dry:#?}\nrun {run:#?}");
    assert_eq!(run.stopped, StopReason::CaughtUp, "{ctx}");
    assert_eq!(run.skipped, 0, "{ctx}");
    assert_eq!(run.expired_at_start, dry.expired_at_start, "{ctx}");
    assert_eq!(Some(run.deleted), dry.expired_at_start, "{ctx}");
    assert_eq!(run.method, dry.method, "{ctx}");
    assert_eq!(drops(&run), drops(&dry), "{ctx}");
    let mut dropped_rows = 0;
    for p in run
        .partitions
        .iter()
        .filter(|p| p.planned.action == PartitionAction::Drop)
    {
        let d = p.dropped.as_ref().unwrap_or_else(|| panic!("{ctx}"));
        assert!(d.dropped, "{layout:?}: {p:?}");
        if p.planned.rows_exact {
            assert_eq!(d.rows, p.planned.rows, "{p:?}");
        }
        dropped_rows += d.rows;
    }
    for p in run
        .partitions
        .iter()
        .filter(|p| p.planned.action == PartitionAction::RowByRow)
    {
        assert!(p.dropped.is_none(), "{layout:?}: {p:?}");
    }

    // No live row went; every expired one did.
    assert_eq!(ids(&mut conn, "expires_at > now()").await, b.live, "{ctx}");
    let left: i64 =
        sqlx::query_scalar("SELECT count(*) FROM idempotency_records WHERE expires_at <= $1")
            .bind(run.cutoff)
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(left, 0, "{ctx}");
    assert_eq!(count(&mut conn, "true").await, b.live.len() as u64, "{ctx}");
    if layout.partitioned() {
        let names_after = partition_names(&mut conn).await;
        let gone: BTreeSet<String> = names_before.difference(&names_after).cloned().collect();
        assert_eq!(gone, drops(&run).into_iter().collect(), "{ctx}");
        if matches!(layout, Layout::Hash | Layout::List) {
            assert_eq!(dropped_rows, 0);
            assert_eq!(names_after, names_before);
        }
    }
    pool.close().await;
}

/// Every method on a fresh copy; the first (auto) also goes through snapshot, check, records
/// and the binary's dry run.
async fn matrix(layout: Layout) {
    case(layout, MethodChoice::Auto, true).await;
    case(layout, MethodChoice::Walk, false).await;
    case(layout, MethodChoice::Sweep, false).await;
}

#[tokio::test]
async fn plain_guide_table() {
    matrix(Layout::Plain).await;
}

#[tokio::test]
async fn range_on_expires_at_hourly() {
    matrix(Layout::RangeExpires).await;
}

#[tokio::test]
async fn range_on_created_at_daily_keeps_past_partitions_with_live_rows() {
    matrix(Layout::RangeCreated).await;
}

#[tokio::test]
async fn hash_on_request_id_is_cleaned_row_by_row() {
    matrix(Layout::Hash).await;
}

#[tokio::test]
async fn list_on_operation_is_cleaned_row_by_row() {
    matrix(Layout::List).await;
}

#[tokio::test]
async fn timestamp_without_zone_east_of_utc() {
    matrix(Layout::TzEast).await;
}

#[tokio::test]
async fn timestamp_without_zone_west_of_utc() {
    matrix(Layout::TzWest).await;
}

#[tokio::test]
async fn timestamp_without_zone_west_of_utc_range_partitioned_on_local_hours() {
    matrix(Layout::TzWestRange).await;
}

#[tokio::test]
async fn infinity_on_the_guide_table() {
    matrix(Layout::Infinity).await;
}

#[tokio::test]
async fn infinity_in_range_partitions_from_minvalue_to_maxvalue() {
    matrix(Layout::RangeInfinite).await;
}

/// The record browser on rows with `'infinity'` and `'-infinity'`: every order's first page
/// (the `expires_at` orders start or end with them) and each infinite row's detail.
async fn browse_infinite(layout: Layout) {
    let fx = build(layout).await;
    let mut conn = connect(&fx.url).await;
    for sort in Sort::ALL {
        let page = records::page(
            &mut conn,
            &fx.table,
            &RecordFilter::default(),
            sort,
            None,
            50,
        )
        .await
        .unwrap_or_else(|e| panic!("{layout:?}: records page ({sort:?}): {e:#}"));
        assert_eq!(page.rows.len(), 50, "{layout:?} {sort:?}");
    }
    let infinite = ids(
        &mut conn,
        "NOT isfinite(expires_at) OR NOT isfinite(created_at)",
    )
    .await;
    assert!(infinite.len() >= 3);
    for id in infinite {
        let rec = records::get(&mut conn, &fx.table, id, 1024)
            .await
            .unwrap_or_else(|e| panic!("{layout:?}: records get {id}: {e:#}"));
        assert!(rec.is_some(), "{layout:?}: {id}");
    }
}

#[tokio::test]
async fn records_browse_infinite_rows() {
    browse_infinite(Layout::Infinity).await;
    browse_infinite(Layout::RangeInfinite).await;
}

/// Another session holds a row lock on one expired row: the sweep skips it, finishes, says
/// `incomplete` (library and binary: exit 3), deletes every other expired row and no live
/// one; once the lock is gone the next cleanup takes it and is caught up.
#[tokio::test]
async fn sweep_skips_a_locked_expired_row() {
    let fx = build(Layout::Plain).await;
    let b = before(&fx, Layout::Plain).await;
    assert!(b.expired >= 10_000);
    let pool = pool(&fx.url).await;

    // The expired row in the heap's first page: the sweep's first range meets it.
    let mut holder = connect(&fx.url).await;
    let locked: Uuid = sqlx::query_scalar(
        "SELECT request_id FROM idempotency_records WHERE expires_at <= now() ORDER BY ctid LIMIT 1",
    )
    .fetch_one(&mut holder)
    .await
    .unwrap();
    let mut tx = holder.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM idempotency_records WHERE request_id = $1 FOR UPDATE")
        .bind(locked)
        .execute(&mut *tx)
        .await
        .unwrap();

    let run = cleanup(&pool, &fx.table, MethodChoice::Sweep, false).await;
    let ctx = format!("{run:#?}");
    // PostgreSQL 13 has no sweep: `--method sweep` walks the index, whose SKIP LOCKED leaves
    // the row behind just the same.
    let sweeps = server_version_num(&mut connect(&fx.url).await).await >= 140_000;
    let method = if sweeps { Method::Sweep } else { Method::Walk };
    assert_eq!(run.method, method, "{ctx}");
    assert_eq!(run.stopped, StopReason::Incomplete, "{ctx}");
    assert_eq!(run.skipped, 1, "{ctx}");
    assert_eq!(run.deleted, b.expired - 1, "{ctx}");
    let mut conn = connect(&fx.url).await;
    assert_eq!(
        ids(&mut conn, "expires_at <= now()").await,
        BTreeSet::from([locked])
    );
    assert_eq!(ids(&mut conn, "expires_at > now()").await, b.live);

    // The binary, with the row still locked: exit 3, "incomplete".
    let (rc, out, err) = idemtop(
        &[
            "--database-url",
            &fx.url,
            "cleanup",
            "--method",
            "sweep",
            "--format",
            "json",
        ],
        &[],
    );
    no_panic("cleanup --method sweep", &err);
    assert_eq!(rc, 3, "stdout {out}\nstderr {err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["stopped"], "incomplete", "{v}");
    assert_eq!(v["skipped"], 1, "{v}");
    assert_eq!(v["deleted"], 0, "{v}");
    assert_eq!(v["method"], if sweeps { "sweep" } else { "walk" }, "{v}");
    assert_eq!(
        count(&mut conn, &format!("request_id = '{locked}'")).await,
        1
    );

    // Released: the next cleanup takes it.
    tx.rollback().await.unwrap();
    let run = cleanup(&pool, &fx.table, MethodChoice::Sweep, false).await;
    assert_eq!(run.stopped, StopReason::CaughtUp, "{run:#?}");
    assert_eq!((run.deleted, run.skipped), (1, 0), "{run:#?}");
    assert_eq!(count(&mut conn, "expires_at <= now()").await, 0);
    assert_eq!(ids(&mut conn, "expires_at > now()").await, b.live);
    pool.close().await;
}

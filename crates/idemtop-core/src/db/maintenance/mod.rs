//! Maintenance: batched cleanup of expired rows, ANALYZE, VACUUM.
//!
//! Cleanup takes its cutoff once, from the server's clock, and only ever deletes rows with
//! `expires_at <= cutoff`: it can never delete a live row, and it stops when it has caught up
//! instead of chasing rows that expire while it runs. Each batch is its own short transaction
//! that walks `idx_idempotency_expires` by keyset (`expires_at >= last seen`), locks its rows
//! with `FOR UPDATE SKIP LOCKED` (so concurrent cleanups neither block each other nor count a
//! row twice) and deletes them by `(request_id, expires_at)`, which is also the key of a table
//! partitioned by range on `expires_at`. The batch size adapts so that a batch takes about
//! [`CleanupOptions::target_batch`].
//!
//! When the backlog is a large share of a plain table (a first cleanup, or one after an outage
//! of the hourly job), walking the index costs about three page visits per row in `expires_at`
//! order, where one DELETE reads each page once. Cleanup then *sweeps* instead: it walks the
//! heap in physical order by ranges of pages (a TID range scan, PostgreSQL 14+), each range its
//! own tiny transaction (about [`CleanupOptions::sweep_batch`], 2 ms by default) that deletes the
//! range's rows with `expires_at <= cutoff`. It reads each page once, like the single DELETE,
//! and because every commit flushes only a small piece of WAL, the application's commits never
//! queue behind a large flush. Two connections sweep at once ([`CleanupOptions::sweep_workers`]):
//! while one waits for its commit's flush, the other deletes. Where the role may, the sweep's
//! sessions compress their full-page images (`wal_compression`), most of a mass delete's WAL.
//! A backlog the planner puts at a large share is swept without being counted first; the sweep
//! counts what it deletes. The sweep covers the pages that existed at the start, so it
//! deletes exactly the rows the single DELETE would (those that existed, expired by the cutoff).

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use chrono::{DateTime, Utc};
use serde::{Serialize, Serializer};
use sqlx::postgres::types::Oid;
use sqlx::{PgConnection, PgPool};
use tokio_util::sync::CancellationToken;

use crate::db::connect::db_sqlstate;
use crate::db::ts::Ts;
use crate::ident::{display_quoted as sql_ident, TableRef};
use crate::sanitize;

mod cleanup;
mod errors;
pub mod plan;
mod rule;
mod sweep;
pub mod unindexed;
mod vacuum;
mod walk;

pub use cleanup::*;
pub use errors::*;
pub use rule::{DeleteRule, ReferenceEffect};
pub(crate) use sweep::*;
pub use vacuum::*;
use walk::*;

/// `statement_timeout` of one cleanup batch (its own transaction).
const BATCH_STATEMENT_TIMEOUT: &str = "30s";
/// `lock_timeout` of one cleanup batch: a batch never waits long behind DDL.
const BATCH_LOCK_TIMEOUT: &str = "5s";
/// The expired-row count at the start stops counting here (so it stays cheap).
pub const COUNT_CAP: u64 = 10_000_001;
/// How long dropping a partition may wait for its lock before it is left for the next run.
const PARTITION_LOCK_TIMEOUT: Duration = Duration::from_secs(2);

/// How often in a row a batch may fail with a transient error (lock or statement timeout,
/// deadlock, serialization failure) before cleanup gives up.
const MAX_RETRIES: u32 = 3;

/// How [`cleanup`] runs.
#[derive(Debug, Clone, PartialEq)]
pub struct CleanupOptions {
    /// Wanted duration of one batch; the batch size adapts towards it.
    pub target_batch: Duration,
    /// Rows in the first batch.
    pub initial_batch: u32,
    /// Smallest batch the adaptation chooses.
    pub min_batch: u32,
    /// Largest batch the adaptation chooses.
    pub max_batch: u32,
    /// Stop (between batches) once this much time has passed.
    pub max_duration: Option<Duration>,
    /// Only count the expired rows; delete nothing.
    pub dry_run: bool,
    /// Always this many rows per batch (`--batch-size`): disables the adaptation (and the
    /// sweep, whose batches are ranges of pages).
    pub fixed_batch: Option<u32>,
    /// Walk the index, sweep the heap, or choose by the size of the backlog.
    pub method: MethodChoice,
    /// Wanted duration of one sweep batch (a range of heap pages); the range adapts towards it.
    pub sweep_batch: Duration,
    /// Connections that sweep at once (`--sweep-workers`, at least 1): while one waits for its
    /// commit's WAL flush, another deletes.
    pub sweep_workers: u32,
    /// Each sweep batch waits for its own WAL flush (the default); `false`
    /// (`--sweep-async-commit`): the batches commit asynchronously with one waiting commit at
    /// the end, faster, but the WAL may run ahead of the disk and the server's other commits
    /// wait behind it.
    pub sweep_sync_commit: bool,
    /// The `[[table]]` sections of the configuration: the table's mapping says what may be
    /// deleted ([`DeleteRule`]); without one, its detected shape does.
    pub tables: Vec<crate::db::shape::TableEntry>,
}

/// `--method` of cleanup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MethodChoice {
    /// Sweep when the backlog is at least [`SWEEP_MIN_SHARE`] of a plain table and at least
    /// [`SWEEP_MIN_ROWS`] rows, the server can range-scan tuple ids and no other sweep of the
    /// table runs; otherwise walk the index.
    #[default]
    Auto,
    /// Always walk `idx_idempotency_expires`.
    Walk,
    /// Sweep whenever the table and the server allow it (a plain table, PostgreSQL 14+, no
    /// fixed batch size, no other sweep of the table running); otherwise walk.
    Sweep,
}

/// How a cleanup actually ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Keyset batches along `idx_idempotency_expires`.
    Walk,
    /// Ranges of heap pages in physical order.
    Sweep,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Walk => "walk",
            Method::Sweep => "sweep",
        }
    }
}

/// Auto sweeps when the expired rows are at least this share of the table's rows.
pub const SWEEP_MIN_SHARE: f64 = 0.25;
/// Auto never sweeps for fewer expired rows than this (the walk is quick enough).
pub const SWEEP_MIN_ROWS: u64 = 10_000;
/// Pages in the first sweep batch.
const SWEEP_INITIAL_PAGES: u64 = 128;
/// Largest sweep batch, in pages (80 MB).
const SWEEP_MAX_PAGES: u64 = 10_240;
/// Connections of a sweep by default (`--sweep-workers`).
pub const DEFAULT_SWEEP_WORKERS: u32 = 2;
/// Most connections a sweep may use.
pub const MAX_SWEEP_WORKERS: u32 = 8;
/// Progress is reported at most this often (the sweep runs hundreds of batches a second).
const PROGRESS_EVERY: Duration = Duration::from_millis(100);

impl Default for CleanupOptions {
    fn default() -> Self {
        Self {
            target_batch: Duration::from_millis(100),
            initial_batch: 2000,
            min_batch: 100,
            max_batch: 50_000,
            max_duration: None,
            dry_run: false,
            fixed_batch: None,
            method: MethodChoice::Auto,
            sweep_batch: Duration::from_millis(2),
            sweep_workers: DEFAULT_SWEEP_WORKERS,
            sweep_sync_commit: true,
            tables: Vec::new(),
        }
    }
}

/// Reported after every batch.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CleanupProgress {
    /// Rows deleted so far.
    pub deleted: u64,
    /// Batches run so far.
    pub batches: u64,
    /// Expired rows counted at the start (capped at [`COUNT_CAP`]) minus those deleted.
    /// `None` when the backlog could not be counted at the start (never a 0 that was not
    /// counted).
    pub remaining_estimate: Option<u64>,
    #[serde(rename = "elapsed_ms", serialize_with = "ser_ms")]
    pub elapsed: Duration,
    /// Rows deleted per second since the first batch started.
    pub rows_per_sec: f64,
    /// Rows per batch: the row limit of the batch just run (walk) or the rows it deleted
    /// (sweep).
    pub batch_size: u32,
    /// Duration of the batch just run (its whole transaction).
    #[serde(rename = "last_batch_ms", serialize_with = "ser_ms")]
    pub last_batch: Duration,
    /// `walk` or `sweep`.
    pub method: Method,
    /// Sweep only: heap pages done, of `pages_total` (the table's size at the start).
    pub pages_done: Option<u64>,
    pub pages_total: Option<u64>,
}

/// Why [`cleanup`] stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// No expired row (as of the cutoff) is left that another cleanup is not already deleting.
    CaughtUp,
    /// The cancellation token fired; stopped between batches.
    Cancelled,
    /// `max_duration` passed; stopped between batches.
    MaxDuration,
    /// Went through every batch, but expired rows (as of the cutoff) are left: locked by other
    /// sessions past the lock timeout, or being deleted by another cleanup (`skipped` counts
    /// them). The next run takes them.
    Incomplete,
}

impl StopReason {
    pub fn describe(self) -> &'static str {
        match self {
            StopReason::CaughtUp => "caught up",
            StopReason::Cancelled => "cancelled",
            StopReason::MaxDuration => "max duration reached",
            StopReason::Incomplete => "incomplete: expired rows were left behind",
        }
    }
}

/// What [`cleanup`] did. JSON: `deleted`, `batches`, `duration_ms`, `cutoff` (RFC 3339),
/// `stopped` (`caught_up`, `cancelled`, `max_duration`, `incomplete`), `dry_run`,
/// `expired_at_start`, `method` (`walk`, `sweep`), `method_reason`, `skipped`, `partitions`,
/// `wal_compression`, `sweep_connections`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CleanupSummary {
    pub deleted: u64,
    pub batches: u64,
    #[serde(rename = "duration_ms", serialize_with = "ser_ms")]
    pub duration: Duration,
    /// The server's `now()` when cleanup started: only rows with `expires_at <= cutoff` go.
    pub cutoff: DateTime<Utc>,
    pub stopped: StopReason,
    pub dry_run: bool,
    /// Expired rows (as of the cutoff) when cleanup started, capped at [`COUNT_CAP`].
    pub expired_at_start: Option<u64>,
    /// How the rows were found: `walk` (the index) or `sweep` (the heap in physical order).
    pub method: Method,
    /// Why that method.
    pub method_reason: String,
    /// Expired rows (as of the cutoff) left behind because they were locked by another session
    /// (or deleted by another cleanup at the same time); `stopped` is then `incomplete`.
    pub skipped: u64,
    /// Each partition: what the plan said and, after a run, what happened.
    pub partitions: Vec<PartitionOutcome>,
    /// Which rows may go, in words (`expires_at <= cutoff`, `created_at + 72h <= cutoff, never
    /// a row in flight`).
    pub rule: String,
    /// The foreign keys of other tables that point at this one, and what deleting does to them.
    pub references: Vec<ReferenceEffect>,
    /// The `wal_compression` a sweep's sessions set for their full-page images (the role may
    /// set it and the server did not compress); `null` otherwise.
    pub wal_compression: Option<String>,
    /// The connections that swept (`--sweep-workers` asks; fewer when the server or the pool
    /// gave fewer within a second); `null` when the rows were not swept.
    pub sweep_connections: Option<u32>,
}

/// One partition in a cleanup summary. JSON: the plan's fields (`name`, `action`, `proof`,
/// `rows`, `rows_exact`, `reason`), then after a run `dropped` (bool) and `note`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PartitionOutcome {
    #[serde(flatten)]
    pub planned: super::plan::PlannedPartition,
    #[serde(
        rename = "dropped",
        serialize_with = "ser_dropped",
        skip_serializing_if = "Option::is_none"
    )]
    pub dropped: Option<crate::db::partitions::DroppedPartition>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

fn ser_dropped<S: Serializer>(
    d: &Option<crate::db::partitions::DroppedPartition>,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.serialize_bool(d.as_ref().is_some_and(|d| d.dropped))
}

fn ser_ms<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_millis().min(u64::MAX as u128) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adaptive() -> CleanupOptions {
        CleanupOptions {
            target_batch: Duration::from_millis(100),
            min_batch: 100,
            max_batch: 50_000,
            ..CleanupOptions::default()
        }
    }

    #[test]
    fn batch_size_follows_the_target_and_grows_at_most_2x() {
        let o = adaptive();
        // 1000 rows in 10 ms = 100k rows/s: 10k rows would take 100 ms, but growth is capped.
        assert_eq!(
            next_batch_size(1000, 1000, Duration::from_millis(10), &o),
            2000
        );
        // 1000 rows in 200 ms: half as many next time.
        assert_eq!(
            next_batch_size(1000, 1000, Duration::from_millis(200), &o),
            500
        );
        // Never below min or above max.
        assert_eq!(
            next_batch_size(1000, 1000, Duration::from_secs(60), &o),
            100
        );
        assert_eq!(
            next_batch_size(40_000, 40_000, Duration::from_millis(1), &o),
            50_000
        );
        // A zero duration counts as "fast".
        assert_eq!(next_batch_size(1000, 1000, Duration::ZERO, &o), 2000);
    }

    #[test]
    fn fixed_batch_never_adapts() {
        let o = CleanupOptions {
            fixed_batch: Some(7),
            ..adaptive()
        };
        assert_eq!(initial_batch_size(&o), 7);
        assert_eq!(next_batch_size(7, 7, Duration::from_millis(1), &o), 7);
        assert_eq!(next_batch_size(7, 7, Duration::from_secs(9), &o), 7);
    }

    #[test]
    fn initial_batch_is_clamped() {
        let o = CleanupOptions {
            initial_batch: 10,
            ..adaptive()
        };
        assert_eq!(initial_batch_size(&o), 100);
    }

    #[test]
    fn identifiers_in_hints_are_quoted_only_when_needed() {
        assert_eq!(sql_ident("reader"), "reader");
        assert_eq!(sql_ident("Reader"), "\"Reader\"");
        assert_eq!(sql_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(sql_ident("user"), "\"user\"");
    }

    #[test]
    fn summary_json_has_the_documented_fields() {
        let s = CleanupSummary {
            deleted: 3,
            batches: 1,
            duration: Duration::from_millis(1500),
            cutoff: DateTime::<Utc>::UNIX_EPOCH,
            stopped: StopReason::MaxDuration,
            dry_run: false,
            expired_at_start: Some(3),
            method: Method::Sweep,
            method_reason: "--method sweep".into(),
            skipped: 0,
            partitions: Vec::new(),
            rule: "expires_at <= cutoff".into(),
            references: Vec::new(),
            wal_compression: Some("lz4".into()),
            sweep_connections: Some(2),
        };
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["method"], "sweep");
        assert_eq!(v["deleted"], 3);
        assert_eq!(v["batches"], 1);
        assert_eq!(v["duration_ms"], 1500);
        assert_eq!(v["stopped"], "max_duration");
        assert_eq!(v["cutoff"], "1970-01-01T00:00:00Z");
        assert_eq!(v["wal_compression"], "lz4");
        assert_eq!(v["sweep_connections"], 2);
    }

    #[test]
    fn sweep_range_follows_the_target_duration() {
        let target = Duration::from_millis(2);
        let big = sweep_floor_pages(1_000_000);
        assert_eq!(big, SWEEP_MIN_PAGES);
        let next = |c, took| next_sweep_pages(c, took, target, big);
        // Twice as slow as wanted: half the pages.
        assert_eq!(next(512, Duration::from_millis(4)), 256);
        // Much faster than wanted: at most double.
        assert_eq!(next(256, Duration::from_micros(10)), 512);
        assert_eq!(next(256, Duration::ZERO), 512);
        // Never below the floor (a commit's fixed cost) or above the cap.
        assert_eq!(next(512, Duration::from_secs(1)), SWEEP_MIN_PAGES);
        assert_eq!(
            next(SWEEP_MAX_PAGES, Duration::from_micros(1)),
            SWEEP_MAX_PAGES
        );
        // A floor out of range is brought back into it.
        assert_eq!(
            next_sweep_pages(512, Duration::from_secs(1), target, 0),
            SWEEP_MIN_PAGES
        );
        assert_eq!(
            next_sweep_pages(512, Duration::from_secs(1), target, u64::MAX),
            SWEEP_MAX_PAGES
        );
    }

    #[test]
    fn a_small_heap_is_swept_in_a_few_bounded_batches() {
        let target = Duration::from_millis(2);
        for pages in [1, 100, 1_350, 2_048, 2_049, 4_481, 8_000, SMALL_SWEEP_PAGES] {
            let floor = sweep_floor_pages(pages);
            // At most 4 ranges, each at most 16 MB of heap.
            assert!(pages.div_ceil(floor) <= 4, "{pages}");
            assert!(
                floor <= SMALL_SWEEP_RANGE && floor * 8192 <= 16 << 20,
                "{pages}"
            );
            assert!(floor >= SWEEP_MIN_PAGES);
            // However slow a batch, the range stays at the floor.
            assert_eq!(
                next_sweep_pages(floor, Duration::from_secs(1), target, floor),
                floor
            );
        }
        // 30k rows of the benchmark (1,350 pages): one range; 100k (4,481): three of 1,494.
        assert_eq!(sweep_floor_pages(1_350), 1_350);
        assert_eq!(sweep_floor_pages(2_049), 1_025);
        assert_eq!(sweep_floor_pages(4_481), 1_494);
        assert_eq!(sweep_floor_pages(SMALL_SWEEP_PAGES), SMALL_SWEEP_RANGE);
        assert_eq!(sweep_floor_pages(10), SWEEP_MIN_PAGES);
        // A larger heap keeps the small floor and the time target.
        assert_eq!(sweep_floor_pages(SMALL_SWEEP_PAGES + 1), SWEEP_MIN_PAGES);
        assert_eq!(sweep_floor_pages(1_250_000), SWEEP_MIN_PAGES);
    }

    #[test]
    fn the_sweep_session_bounds_the_count_of_what_is_left_as_its_own_transaction_would() {
        assert_eq!(
            format!("{}s", cleanup::LEFT_BEHIND_TIMEOUT.as_secs()),
            BATCH_STATEMENT_TIMEOUT
        );
    }

    #[test]
    fn auto_sweeps_only_a_large_share_of_the_table() {
        assert!(sweep_share_ok(6_000_000, 10_000_000.0));
        assert!(sweep_share_ok(25_000, 100_000.0));
        assert!(!sweep_share_ok(24_999, 100_000.0));
        // An hourly cleanup of a 48-hour table walks the index.
        assert!(!sweep_share_ok(200_000, 9_600_000.0));
        // Too few rows to matter, whatever the share.
        assert!(!sweep_share_ok(SWEEP_MIN_ROWS - 1, 0.0));
        // A stale estimate below the expired count is no reason to walk.
        assert!(sweep_share_ok(50_000, 10_000.0));
    }

    fn guide_rule() -> DeleteRule {
        DeleteRule {
            column: "expires_at".into(),
            quoted: "\"expires_at\"".into(),
            shift: Duration::ZERO,
            inflight: None,
            stale_after: None,
            created: None,
            key: vec!["\"request_id\"".into()],
            indexed: true,
            references: Vec::new(),
            source: crate::db::shape::MappingSource::Detected,
        }
    }

    #[test]
    fn sweep_statement_is_a_tid_range_delete_bounded_by_the_cutoff() {
        let t = TableRef::new("My s", "idempotency_records").unwrap();
        assert_eq!(
            sweep_sql(&t, &guide_rule(), "$1::int8", "$2::int8", "$3"),
            "DELETE FROM \"My s\".\"idempotency_records\" WHERE ctid >= format('(%s,0)', $1::int8)::tid \
             AND ctid < format('(%s,0)', $2::int8)::tid AND \"expires_at\" <= $3"
        );
        assert_ne!(sweep_lock_key(1), sweep_lock_key(2));
    }
}

//! One refresh of the table's health: what the dashboard, `idemtop snapshot`, the checks and the
//! metrics endpoint all show, computed by this one module.
//!
//! Cheap at any size: sizes come from the size functions, counters from `pg_stat_*`, row counts
//! from an exact aggregate only while the table is small, otherwise from `n_live_tup`, the
//! `expires_at` histogram and the `operation` most-common-values in `pg_stats`. The expired count
//! is exact whenever the backlog is small, by an index-only count bounded by [`EXPIRED_COUNT_CAP`].
//! Relations under an AccessExclusive lock (held or requested) are not probed at all: the size
//! functions and counts would queue behind it.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgConnection;

use crate::db::shape::{ExpirySql, Role};
use crate::db::table::TableInfo;
use crate::db::ts::Ts;
use crate::ident::TableRef;

/// Tables up to this many rows (estimated) are counted exactly on every refresh.
pub const EXACT_ROW_LIMIT: f64 = 10_000.0;
/// The expired count is exact while the backlog is below this; beyond, it is estimated. The
/// count reads one index entry per expired row on every refresh (about 0.1 ms per 1,000): the
/// cap keeps that under half a millisecond, and a backlog this small (right after a cleanup)
/// exact.
pub const EXPIRED_COUNT_CAP: i64 = 5_000;
/// The indexes migration 045 creates: (name, column).
pub const EXPECTED_INDEXES: [(&str, &str); 2] = [
    ("idx_idempotency_expires", "expires_at"),
    ("idx_idempotency_operation", "operation"),
];

/// How hard one refresh may work.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SnapshotOptions {
    /// Run the exact per-operation aggregate even on a large table (bounded by `exact_timeout`).
    pub exact_pass: bool,
    pub exact_timeout: Duration,
    /// A key in flight (locked) longer than this is stuck (config
    /// `thresholds.inflight.stuck_after_secs`).
    pub stuck_after: Duration,
}

impl Default for SnapshotOptions {
    fn default() -> Self {
        Self {
            exact_pass: false,
            exact_timeout: Duration::from_secs(2),
            stuck_after: Duration::from_secs(600),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Snapshot {
    /// Server clock at the start of the refresh.
    pub taken_at: DateTime<Utc>,
    /// `schema.table`.
    pub table: String,
    pub database: String,
    pub server_version: String,
    pub partitioned: bool,
    /// Wall time the refresh took, as seen by idemtop (all round trips).
    pub refresh_ms: f64,
    pub sizes: Sizes,
    pub rows: Rows,
    pub horizon: Horizon,
    pub vacuum: Vacuum,
    pub counters: Counters,
    pub operations: Vec<OperationStats>,
    /// True when `operations[].live/expired/status` are exact counts.
    pub operations_exact: bool,
    /// Server time of the exact per-operation pass shown (older than `taken_at` when it is
    /// carried over from an earlier refresh); None when the breakdown is an estimate.
    pub operations_as_of: Option<DateTime<Utc>>,
    pub indexes: Vec<IndexStats>,
    pub expected_indexes: Vec<ExpectedIndex>,
    /// `cleanup_expired_idempotency_records()` (migration 046) exists in the table's schema.
    pub cleanup_function: bool,
    /// Some(description) when an AccessExclusive lock kept idemtop from probing the table.
    pub blocked_by: Option<String>,
    /// Some on a hot standby: nothing can be written, and `pg_stat_user_tables` counters are
    /// not maintained there (see [`Snapshot::counters_maintained`]).
    pub standby: Option<crate::db::horizon::Standby>,
    /// The table's mapping: the roles its columns play, what is missing and how to map it,
    /// whether cleanup may run. A figure that needs a missing role is not measured (see
    /// [`MappingReport::na`]).
    pub mapping: MappingReport,
    /// Keys in flight, for a table whose mapping has an in-flight state (`None` otherwise, or
    /// when they could not be counted in time).
    pub inflight: Option<InFlightStats>,
}

impl Snapshot {
    /// The table's activity counters (`n_live_tup`, `n_dead_tup`, vacuum times, ...) are kept
    /// by this server: false on a standby, where replay does not update them.
    pub fn counters_maintained(&self) -> bool {
        self.standby.is_none()
    }

    /// The JSON of `idemtop snapshot --format json`: the fields as serialized, except that on
    /// a standby the counters it does not maintain are null and `vacuum.counters` says why.
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or(serde_json::Value::Null);
        if !self.counters_maintained() {
            if let Some(vac) = v.get_mut("vacuum").and_then(|x| x.as_object_mut()) {
                for k in NOT_MAINTAINED_ON_STANDBY {
                    vac.insert(k.to_string(), serde_json::Value::Null);
                }
                vac.insert("counters".into(), NA_ON_STANDBY.into());
            }
            if let Some(c) = v.get_mut("counters").and_then(|x| x.as_object_mut()) {
                for (_, x) in c.iter_mut() {
                    *x = serde_json::Value::Null;
                }
            }
        }
        v
    }
}

/// What a figure that is not maintained on a standby reads as.
pub const NA_ON_STANDBY: &str = "n/a on a standby";

/// The `vacuum` fields that replay does not maintain on a standby.
pub const NOT_MAINTAINED_ON_STANDBY: [&str; 9] = [
    "n_live_tup",
    "n_dead_tup",
    "n_mod_since_analyze",
    "last_vacuum",
    "last_autovacuum",
    "last_analyze",
    "last_autoanalyze",
    "vacuum_count",
    "autovacuum_count",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Sizes {
    pub total_bytes: i64,
    /// Heap, free space map and visibility map.
    pub table_bytes: i64,
    pub index_bytes: i64,
    pub toast_bytes: i64,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Rows {
    pub total: i64,
    pub live: i64,
    pub expired: i64,
    /// All three counts are exact (otherwise estimates from statistics).
    pub exact: bool,
    /// The expired count alone is exact (cheap while the backlog is small).
    pub expired_exact: bool,
    /// How the counts were obtained: `exact` (counted now), `counted_since` (exact counts of
    /// `basis_at`, carried to now by the insert/delete counters and an exact count of the rows
    /// that expired in between), or `statistics` (pg_stats and the counters).
    pub basis: RowsBasis,
    /// Server time of the exact counts that `counted_since` carries forward.
    pub basis_at: Option<DateTime<Utc>>,
    /// `min(expires_at)` when it is in the past: the age of the cleanup backlog.
    pub oldest_expired_at: Option<DateTime<Utc>>,
    /// Seconds since `oldest_expired_at` (0 when nothing is expired).
    pub cleanup_lag_secs: f64,
}

/// How [`Rows`] were obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RowsBasis {
    Exact,
    CountedSince,
    #[default]
    Statistics,
}

/// Live rows by when they expire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Horizon {
    pub within_1h: i64,
    pub within_6h: i64,
    pub within_24h: i64,
    pub later: i64,
    pub exact: bool,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Vacuum {
    pub n_live_tup: i64,
    pub n_dead_tup: i64,
    pub n_mod_since_analyze: i64,
    pub last_vacuum: Option<DateTime<Utc>>,
    pub last_autovacuum: Option<DateTime<Utc>>,
    pub last_analyze: Option<DateTime<Utc>>,
    pub last_autoanalyze: Option<DateTime<Utc>>,
    pub vacuum_count: i64,
    pub autovacuum_count: i64,
    /// A VACUUM (manual or auto) running on the table now.
    pub running: Option<VacuumRunning>,
    /// The oldest xmin that keeps VACUUM from removing this table's dead rows, and who holds
    /// it (None when it could not be read).
    pub xmin_horizon: Option<crate::db::horizon::XminHorizon>,
}

impl Vacuum {
    /// Dead tuples as a share of all tuples (0..1).
    pub fn dead_ratio(&self) -> f64 {
        let all = self.n_live_tup + self.n_dead_tup;
        if all <= 0 {
            0.0
        } else {
            self.n_dead_tup as f64 / all as f64
        }
    }

    /// The most recent vacuum of either kind.
    pub fn last_any_vacuum(&self) -> Option<DateTime<Utc>> {
        self.last_vacuum.max(self.last_autovacuum)
    }

    pub fn last_any_analyze(&self) -> Option<DateTime<Utc>> {
        self.last_analyze.max(self.last_autoanalyze)
    }
}

/// A VACUUM running on the table now (`pg_stat_progress_vacuum`).
pub use crate::db::maintenance::VacuumProgress as VacuumRunning;

mod breakdown;
mod estimates;
mod inflight;
mod mapping;
mod sampler;
mod stats;
mod take;
#[cfg(test)]
mod tests;

use breakdown::*;
pub use estimates::*;
pub use inflight::InFlightStats;
pub use inflight::StateCount;
use inflight::*;
pub use mapping::*;
pub use sampler::*;
pub use stats::*;
pub use take::*;

/// Cumulative counters, for rates between two snapshots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Counters {
    pub n_tup_ins: i64,
    pub n_tup_del: i64,
    pub n_tup_upd: i64,
    pub seq_scan: i64,
    pub idx_scan: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OperationStats {
    /// Raw from the database: sanitize before display.
    pub operation: String,
    pub total: i64,
    /// None when only the total is known (estimate from most-common-values).
    pub live: Option<i64>,
    pub expired: Option<i64>,
    pub avg_payload_bytes: Option<f64>,
    pub status: Option<StatusCounts>,
    pub exact: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct StatusCounts {
    pub s2xx: i64,
    pub s3xx: i64,
    pub s4xx: i64,
    pub s5xx: i64,
    /// NULL or outside 200..599.
    pub other: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IndexStats {
    pub name: String,
    /// First key column (or expression) of the index.
    pub column: String,
    pub size_bytes: i64,
    pub idx_scan: i64,
    pub idx_tup_read: i64,
    pub idx_tup_fetch: i64,
    pub primary: bool,
    pub unique: bool,
    pub valid: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExpectedIndex {
    pub name: String,
    pub column: String,
    /// The index serves the expiry (cleanup and the expired count): the expiry column, or the
    /// creation column of a TTL.
    pub expiry: bool,
    /// `Some(name)` when an index leads with that column (the expected name or another).
    pub found_as: Option<String>,
}

impl ExpectedIndex {
    pub fn missing(&self) -> bool {
        self.found_as.is_none()
    }
}

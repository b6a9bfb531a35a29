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
use sqlx::{Executor, PgConnection};

use crate::db::table::TableInfo;
use crate::db::ts::Ts;
use crate::ident::TableRef;

/// Tables up to this many rows (estimated) are counted exactly on every refresh.
pub const EXACT_ROW_LIMIT: f64 = 10_000.0;
/// The expired count is exact while the backlog is below this; beyond, it is estimated.
pub const EXPIRED_COUNT_CAP: i64 = 20_000;
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
}

impl Default for SnapshotOptions {
    fn default() -> Self {
        Self {
            exact_pass: false,
            exact_timeout: Duration::from_secs(2),
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
    /// `Some(name)` when an index leads with that column (the expected name or another).
    pub found_as: Option<String>,
}

impl ExpectedIndex {
    pub fn missing(&self) -> bool {
        self.found_as.is_none()
    }
}

/// Take one snapshot. `conn` should be a session with a short `statement_timeout`. A missing
/// privilege is said in one sentence naming the role and the GRANT that fixes it.
pub async fn take(
    conn: &mut PgConnection,
    table: &TableRef,
    info: &TableInfo,
    opts: SnapshotOptions,
) -> Result<Snapshot> {
    match take_inner(conn, table, info, opts).await {
        Err(e) if crate::db::connect::sqlstate(&e).as_deref() == Some("42501") => {
            Err(crate::db::connect::permission_error(conn, &e, "SELECT", table).await)
        }
        other => other,
    }
}

async fn take_inner(
    conn: &mut PgConnection,
    table: &TableRef,
    info: &TableInfo,
    opts: SnapshotOptions,
) -> Result<Snapshot> {
    let started = Instant::now();
    // Never queue behind a lock for long, whatever the checks below miss.
    conn.execute("SET lock_timeout = '500ms'").await?;
    let oid = info.oid as i64;

    let stats = stats_row(conn, oid)
        .await
        .context("reading table statistics")?;
    let blocked_by = stats.blocked_by.clone();
    if blocked_by.is_some() {
        // Every figure below would queue behind the lock or come out as a zero that was never
        // measured: report who holds it instead (gone meanwhile: measure as usual).
        if let Some(lock) = crate::db::locks::table_lock(conn, info.oid)
            .await
            .context("reading who locks the table")?
        {
            return Err(crate::db::locks::TableLocked(lock).into());
        }
    }
    let probe = blocked_by.is_none();
    let standby = crate::db::horizon::standby(conn)
        .await
        .context("reading whether the server is a standby")?;
    let mut stats = stats;
    {
        let (holders, hidden) = crate::db::horizon::read(conn)
            .await
            .context("reading who holds the xmin horizon")?;
        let dead = standby.is_none().then_some(stats.vacuum.n_dead_tup);
        stats.vacuum.xmin_horizon = Some(crate::db::horizon::XminHorizon::judge(
            holders,
            hidden,
            dead,
            stats.vacuum.last_any_vacuum(),
            stats.now,
        ));
    }

    let sizes = if probe {
        sizes(conn, oid).await.context("reading sizes")?
    } else {
        Sizes::default()
    };
    let indexes = indexes(conn, oid, probe).await.context("reading indexes")?;
    let expected_indexes = expected(&indexes);
    let cleanup_function: bool = sqlx::query_scalar("SELECT to_regprocedure($1) IS NOT NULL")
        .bind(format!(
            "{}()",
            table.sibling(&crate::guide::cleanup_function())
        ))
        .fetch_one(&mut *conn)
        .await?;

    let estimated_total = if stats.n_live_tup > 0 || stats.reltuples < 0.0 {
        stats.n_live_tup as f64
    } else {
        stats.reltuples
    };
    let small = estimated_total <= EXACT_ROW_LIMIT;

    let mut rows = Rows::default();
    let mut horizon = Horizon::default();
    let mut operations = Vec::new();
    let mut operations_exact = false;
    if probe {
        let q = table.qualified();
        // Statistics first (pg_stats: no table access). When they already put the backlog far
        // above the cap, the capped count would only burn the cap's worth of index reads.
        let est = if small {
            None
        } else {
            Some(estimates(conn, table, stats.now).await?)
        };
        let est_expired = est
            .as_ref()
            .and_then(|e| e.expired_fraction)
            .map(|f| expired_by_counters(f, &stats, estimated_total.round() as i64) as f64);
        let count_cap = match est_expired {
            Some(n) if n > 4.0 * EXPIRED_COUNT_CAP as f64 => 0,
            _ => EXPIRED_COUNT_CAP,
        };
        // `-infinity` rows are expired but have no age: the oldest finite expiry gives the lag.
        let (oldest, expired_capped): (Option<Ts>, i64) = sqlx::query_as(&format!(
            "SELECT (SELECT min(expires_at) FROM {q} WHERE expires_at > '-infinity')::timestamptz,
                    (SELECT count(*) FROM (SELECT 1 FROM {q} WHERE expires_at <= now() LIMIT $1) s)"
        ))
        .bind(count_cap)
        .fetch_one(&mut *conn)
        .await
        .context("counting expired rows")?;
        let expired_counted = count_cap > 0 && expired_capped < count_cap;
        rows.oldest_expired_at = oldest.and_then(Ts::finite).filter(|t| *t <= stats.now);
        rows.cleanup_lag_secs = rows
            .oldest_expired_at
            .map(|t| (stats.now - t).num_milliseconds().max(0) as f64 / 1000.0)
            .unwrap_or(0.0);

        let exact = if small || opts.exact_pass {
            exact_breakdown(conn, table, small, opts.exact_timeout).await?
        } else {
            None
        };
        match exact {
            Some((ops, h)) => {
                rows.total = ops.iter().map(|o| o.total).sum();
                rows.expired = ops.iter().filter_map(|o| o.expired).sum();
                rows.live = rows.total - rows.expired;
                rows.exact = true;
                rows.expired_exact = true;
                rows.basis = RowsBasis::Exact;
                rows.basis_at = Some(stats.now);
                horizon = h;
                operations = ops;
                operations_exact = true;
            }
            None => {
                let est = match est {
                    Some(e) => e,
                    None => estimates(conn, table, stats.now).await?,
                };
                let total = estimated_total.round().max(0.0) as i64;
                rows.total = total;
                if expired_counted {
                    rows.expired = expired_capped;
                    rows.expired_exact = true;
                } else {
                    rows.expired = est
                        .expired_fraction
                        .map(|f| expired_by_counters(f, &stats, total))
                        .unwrap_or(expired_capped)
                        .max(EXPIRED_COUNT_CAP);
                }
                rows.total = rows.total.max(rows.expired);
                rows.live = rows.total - rows.expired;
                horizon = est.horizon(total, rows.live);
                operations = est.operations(total);
            }
        }
    }

    let mut snap = Snapshot {
        taken_at: stats.now,
        table: table.to_string(),
        database: info.database.clone(),
        server_version: info.server_version.clone(),
        partitioned: info.partitioned,
        refresh_ms: 0.0,
        sizes,
        rows,
        horizon,
        vacuum: stats.vacuum,
        counters: stats.counters,
        operations,
        operations_exact,
        operations_as_of: operations_exact.then_some(stats.now),
        indexes,
        expected_indexes,
        cleanup_function,
        blocked_by,
        standby,
    };
    snap.refresh_ms = started.elapsed().as_secs_f64() * 1000.0;
    Ok(snap)
}

/// The expired rows from the histogram's share `f` (rows with `expires_at <= now` among those
/// the last ANALYZE saw), corrected by what the counters say happened since: the share applies
/// to the rows of the table when its statistics were last taken (`reltuples`, set by ANALYZE or
/// VACUUM, whichever ran last), not to today's total, and the rows deleted since then (cleanup
/// deletes expired rows only) are no longer there. Rows inserted since are counted live. Without
/// this, a cleanup leaves the old share on screen until the next ANALYZE, and steady inserts
/// inflate the expired count by the share of the new rows.
fn expired_by_counters(f: f64, stats: &StatsRow, total: i64) -> i64 {
    let basis = stats.reltuples.max(0.0);
    let t = stats.n_live_tup as f64;
    let analyzed_last = match (
        stats.vacuum.last_any_analyze(),
        stats.vacuum.last_any_vacuum(),
    ) {
        (Some(a), Some(v)) => a >= v,
        (Some(_), None) => true,
        _ => false,
    };
    let deleted_since = if analyzed_last {
        // Since ANALYZE: inserts I and deletes D with I + D = n_mod_since_analyze and
        // I - D = n_live_tup - reltuples.
        let m = stats.vacuum.n_mod_since_analyze as f64;
        ((m - (t - basis)) / 2.0).clamp(0.0, m.max(0.0))
    } else {
        // Since VACUUM: D = reltuples + inserts since - n_live_tup.
        (basis + stats.n_ins_since_vacuum as f64 - t).max(0.0)
    };
    ((f * basis - deleted_since).round() as i64).clamp(0, total.max(0))
}

/// Takes snapshots one after another. It keeps the last exact counts (small tables: every
/// refresh; large ones: the periodic exact pass) as an anchor and carries them forward between
/// exact passes: total = anchor + inserts - deletes (the counters, which count every row),
/// expired = anchor + rows that expired since (counted exactly on the `expires_at` index: only
/// the rows of the last seconds) - deletes (cleanup deletes expired rows). So the figures
/// account for every action at once, do not drift between ANALYZEs, and do not alternate
/// between an estimate and the exact pass. The per-operation breakdown of the exact pass is
/// carried along, scaled to those totals, so the Rows and Operations panels agree.
#[derive(Debug, Default)]
pub struct Sampler {
    anchor: Option<Anchor>,
    /// When the last exact pass on a large table ran and what the refresh with it cost.
    last_exact_cost: Option<(std::time::Instant, Duration)>,
}

/// The last exact counts and the counters at that moment.
#[derive(Debug, Clone)]
struct Anchor {
    at: DateTime<Utc>,
    total: i64,
    expired: i64,
    ins: i64,
    del: i64,
    operations: Vec<OperationStats>,
    horizon: Horizon,
}

/// The exact pass may use at most 1/EXACT_PASS_BUDGET of the server's time: after one that
/// took 1 s, the next waits at least this many seconds.
const EXACT_PASS_BUDGET: u32 = 60;

/// At most this many rows that expired since the anchor are counted; past it the anchor is
/// too old to carry forward cheaply (the next exact pass makes a new one).
const EXPIRED_SINCE_CAP: i64 = 200_000;

impl Sampler {
    pub async fn take(
        &mut self,
        conn: &mut PgConnection,
        table: &TableRef,
        info: &TableInfo,
        opts: SnapshotOptions,
        keep: Duration,
    ) -> Result<Snapshot> {
        let mut opts = opts;
        if let (true, Some((at, cost))) = (opts.exact_pass, self.last_exact_cost) {
            if at.elapsed() < cost * EXACT_PASS_BUDGET {
                opts.exact_pass = false;
            }
        }
        let started = std::time::Instant::now();
        let mut snap = take(conn, table, info, opts).await?;
        if opts.exact_pass {
            self.last_exact_cost = Some((started, started.elapsed()));
        }
        if snap.rows.exact && snap.operations_exact {
            self.anchor = Some(Anchor {
                at: snap.taken_at,
                total: snap.rows.total,
                expired: snap.rows.expired,
                ins: snap.counters.n_tup_ins,
                del: snap.counters.n_tup_del,
                operations: snap.operations.clone(),
                horizon: snap.horizon,
            });
            return Ok(snap);
        }
        let Some(a) = self.anchor.clone() else {
            return Ok(snap);
        };
        let (di, dd) = (
            snap.counters.n_tup_ins - a.ins,
            snap.counters.n_tup_del - a.del,
        );
        let age = (snap.taken_at - a.at).to_std().unwrap_or(Duration::MAX);
        // Counters reset (stats reset, a dropped partition's counts gone) or a stale anchor:
        // the counters no longer describe what happened since; wait for the next exact pass.
        if di < 0 || dd < 0 || age > keep.max(Duration::from_secs(3600)) {
            self.anchor = None;
            return Ok(snap);
        }
        let Some(expired_since) = expired_between(conn, table, a.at).await? else {
            self.anchor = None;
            return Ok(snap);
        };
        let total = (a.total + di - dd).max(0);
        let expired = if snap.rows.expired_exact {
            snap.rows.expired
        } else {
            (a.expired + expired_since - dd).clamp(0, total)
        };
        let total = total.max(expired);
        snap.rows.total = total;
        snap.rows.expired = expired;
        snap.rows.live = total - expired;
        snap.rows.basis = RowsBasis::CountedSince;
        snap.rows.basis_at = Some(a.at);
        snap.operations = scaled(&a.operations, snap.rows.live, expired);
        snap.operations_exact = false;
        snap.operations_as_of = Some(a.at);
        if !snap.horizon.exact {
            snap.horizon = scaled_horizon(a.horizon, snap.rows.live);
        }
        Ok(snap)
    }
}

/// Rows with `anchor < expires_at <= now()`, counted on the index; `None` past
/// [`EXPIRED_SINCE_CAP`] (or when the count is refused: a lock, a timeout).
async fn expired_between(
    conn: &mut PgConnection,
    table: &TableRef,
    anchor: DateTime<Utc>,
) -> Result<Option<i64>> {
    let n: Result<i64, sqlx::Error> = sqlx::query_scalar(&format!(
        "SELECT count(*)::int8 FROM (SELECT 1 FROM {} WHERE expires_at > $1 AND expires_at <= now() LIMIT $2) s",
        table.qualified()
    ))
    .bind(anchor)
    .bind(EXPIRED_SINCE_CAP)
    .fetch_one(&mut *conn)
    .await;
    match n {
        Ok(n) if n < EXPIRED_SINCE_CAP => Ok(Some(n)),
        Ok(_) => Ok(None),
        Err(e)
            if matches!(
                crate::db::connect::db_sqlstate(&e).as_deref(),
                Some("55P03" | "57014")
            ) =>
        {
            Ok(None)
        }
        Err(e) => {
            Err(anyhow::Error::new(e).context("counting the rows expired since the exact pass"))
        }
    }
}

/// The exact pass's breakdown scaled so that its live and expired columns sum to `live` and
/// `expired` (each operation keeps its share of each).
fn scaled(ops: &[OperationStats], live: i64, expired: i64) -> Vec<OperationStats> {
    let sum_live: i64 = ops.iter().filter_map(|o| o.live).sum();
    let sum_expired: i64 = ops.iter().filter_map(|o| o.expired).sum();
    let scale = |v: Option<i64>, sum: i64, to: i64| {
        v.map(|v| {
            if sum > 0 {
                (v as f64 * to as f64 / sum as f64).round() as i64
            } else {
                0
            }
        })
    };
    let mut out: Vec<OperationStats> = ops
        .iter()
        .map(|o| {
            let live = scale(o.live, sum_live, live);
            let expired = scale(o.expired, sum_expired, expired);
            OperationStats {
                total: live.unwrap_or(0) + expired.unwrap_or(0),
                live,
                expired,
                exact: false,
                ..o.clone()
            }
        })
        .collect();
    // Largest first, as every breakdown is (a cleanup changes the order).
    out.sort_by(|a, b| b.total.cmp(&a.total).then(a.operation.cmp(&b.operation)));
    out
}

fn scaled_horizon(h: Horizon, live: i64) -> Horizon {
    let sum = h.within_1h + h.within_6h + h.within_24h + h.later;
    if sum <= 0 {
        return Horizon {
            later: live,
            exact: false,
            ..Horizon::default()
        };
    }
    let f = live as f64 / sum as f64;
    let n = |v: i64| (v as f64 * f).round() as i64;
    let (a, b, c) = (n(h.within_1h), n(h.within_6h), n(h.within_24h));
    Horizon {
        within_1h: a,
        within_6h: b,
        within_24h: c,
        later: (live - a - b - c).max(0),
        exact: false,
    }
}

/// The relations that hold the rows: the table itself, or the leaf partitions.
const RELS: &str = "rels AS (
        SELECT relid FROM pg_partition_tree($1::oid) WHERE isleaf
        UNION ALL
        SELECT $1::oid WHERE NOT EXISTS (SELECT 1 FROM pg_partition_tree($1::oid))
    )";

#[derive(sqlx::FromRow)]
struct RawStats {
    now: DateTime<Utc>,
    reltuples: Option<f64>,
    n_live_tup: Option<i64>,
    n_dead_tup: Option<i64>,
    n_mod_since_analyze: Option<i64>,
    n_ins_since_vacuum: Option<i64>,
    last_vacuum: Option<DateTime<Utc>>,
    last_autovacuum: Option<DateTime<Utc>>,
    last_analyze: Option<DateTime<Utc>>,
    last_autoanalyze: Option<DateTime<Utc>>,
    vacuum_count: Option<i64>,
    autovacuum_count: Option<i64>,
    n_tup_ins: Option<i64>,
    n_tup_del: Option<i64>,
    n_tup_upd: Option<i64>,
    seq_scan: Option<i64>,
    idx_scan: Option<i64>,
    blocked_by: Option<String>,
}

struct StatsRow {
    now: DateTime<Utc>,
    reltuples: f64,
    n_live_tup: i64,
    n_ins_since_vacuum: i64,
    vacuum: Vacuum,
    counters: Counters,
    blocked_by: Option<String>,
}

async fn stats_row(conn: &mut PgConnection, oid: i64) -> Result<StatsRow> {
    let r: RawStats = sqlx::query_as(&format!(
        "WITH {RELS},
         st AS (SELECT s.* FROM pg_stat_user_tables s JOIN rels USING (relid))
         SELECT now() AS now,
                (SELECT sum(greatest(c.reltuples, 0))::float8 FROM pg_class c JOIN rels r ON r.relid = c.oid) AS reltuples,
                (SELECT sum(n_live_tup)::int8 FROM st) AS n_live_tup,
                (SELECT sum(n_dead_tup)::int8 FROM st) AS n_dead_tup,
                (SELECT sum(n_mod_since_analyze)::int8 FROM st) AS n_mod_since_analyze,
                (SELECT sum(n_ins_since_vacuum)::int8 FROM st) AS n_ins_since_vacuum,
                (SELECT max(last_vacuum) FROM st) AS last_vacuum,
                (SELECT max(last_autovacuum) FROM st) AS last_autovacuum,
                (SELECT max(last_analyze) FROM st) AS last_analyze,
                (SELECT max(last_autoanalyze) FROM st) AS last_autoanalyze,
                (SELECT sum(vacuum_count)::int8 FROM st) AS vacuum_count,
                (SELECT sum(autovacuum_count)::int8 FROM st) AS autovacuum_count,
                (SELECT sum(n_tup_ins)::int8 FROM st) AS n_tup_ins,
                (SELECT sum(n_tup_del)::int8 FROM st) AS n_tup_del,
                (SELECT sum(n_tup_upd)::int8 FROM st) AS n_tup_upd,
                (SELECT sum(seq_scan)::int8 FROM st) AS seq_scan,
                (SELECT sum(coalesce(idx_scan, 0))::int8 FROM st) AS idx_scan,
                (SELECT string_agg(what, ', ') FROM ({locks}) l
                  WHERE l.relation = $1::oid OR l.relation IN (SELECT relid FROM rels)) AS blocked_by",
        locks = access_exclusive_locks_sql!()
    ))
    .bind(oid)
    .fetch_one(&mut *conn)
    .await?;
    let running = crate::db::maintenance::vacuum_progress(conn, oid as u32).await?;
    Ok(StatsRow {
        now: r.now,
        reltuples: r.reltuples.unwrap_or(0.0),
        n_live_tup: r.n_live_tup.unwrap_or(0),
        n_ins_since_vacuum: r.n_ins_since_vacuum.unwrap_or(0),
        vacuum: Vacuum {
            n_live_tup: r.n_live_tup.unwrap_or(0),
            n_dead_tup: r.n_dead_tup.unwrap_or(0),
            n_mod_since_analyze: r.n_mod_since_analyze.unwrap_or(0),
            last_vacuum: r.last_vacuum,
            last_autovacuum: r.last_autovacuum,
            last_analyze: r.last_analyze,
            last_autoanalyze: r.last_autoanalyze,
            vacuum_count: r.vacuum_count.unwrap_or(0),
            autovacuum_count: r.autovacuum_count.unwrap_or(0),
            running,
            xmin_horizon: None,
        },
        counters: Counters {
            n_tup_ins: r.n_tup_ins.unwrap_or(0),
            n_tup_del: r.n_tup_del.unwrap_or(0),
            n_tup_upd: r.n_tup_upd.unwrap_or(0),
            seq_scan: r.seq_scan.unwrap_or(0),
            idx_scan: r.idx_scan.unwrap_or(0),
        },
        blocked_by: r.blocked_by,
    })
}

async fn sizes(conn: &mut PgConnection, oid: i64) -> Result<Sizes> {
    let (total, table, index, toast): (Option<i64>, Option<i64>, Option<i64>, Option<i64>) =
        sqlx::query_as(&format!(
            "WITH {RELS}
             SELECT sum(pg_total_relation_size(r.relid))::int8,
                    sum(pg_table_size(r.relid) - CASE WHEN c.reltoastrelid <> 0
                        THEN pg_total_relation_size(c.reltoastrelid) ELSE 0 END)::int8,
                    sum(pg_indexes_size(r.relid))::int8,
                    sum(CASE WHEN c.reltoastrelid <> 0
                        THEN pg_total_relation_size(c.reltoastrelid) ELSE 0 END)::int8
               FROM rels r JOIN pg_class c ON c.oid = r.relid"
        ))
        .bind(oid)
        .fetch_one(&mut *conn)
        .await?;
    Ok(Sizes {
        total_bytes: total.unwrap_or(0),
        table_bytes: table.unwrap_or(0),
        index_bytes: index.unwrap_or(0),
        toast_bytes: toast.unwrap_or(0),
    })
}

async fn indexes(conn: &mut PgConnection, oid: i64, probe: bool) -> Result<Vec<IndexStats>> {
    type Row = (
        String,
        String,
        Option<i64>,
        Option<i64>,
        Option<i64>,
        Option<i64>,
        bool,
        bool,
        bool,
    );
    // On a partitioned table the parent's indexes are partitioned indexes: add up their leaves.
    let rows: Vec<Row> = sqlx::query_as(
        "WITH idx AS (
             SELECT i.indexrelid, i.indisprimary, i.indisunique, i.indisvalid
               FROM pg_index i WHERE i.indrelid = $1::oid
         ),
         leaves AS (
             -- pg_inherits, not pg_partition_tree(): it takes no lock on the indexes.
             WITH RECURSIVE tree(parent, relid) AS (
                 SELECT idx.indexrelid, idx.indexrelid FROM idx
                 UNION ALL
                 SELECT tree.parent, inh.inhrelid FROM tree JOIN pg_inherits inh ON inh.inhparent = tree.relid
             )
             SELECT parent, relid FROM tree
         )
         SELECT c.relname::text,
                coalesce((SELECT a.attname::text FROM pg_attribute a
                           WHERE a.attrelid = $1::oid AND a.attnum = (SELECT i.indkey[0] FROM pg_index i WHERE i.indexrelid = idx.indexrelid)),
                         '(expression)'),
                CASE WHEN $2 THEN (SELECT sum(pg_relation_size(l.relid))::int8 FROM leaves l JOIN pg_class lc ON lc.oid = l.relid WHERE l.parent = idx.indexrelid AND lc.relkind = 'i') END,
                (SELECT sum(s.idx_scan)::int8 FROM leaves l JOIN pg_stat_user_indexes s ON s.indexrelid = l.relid WHERE l.parent = idx.indexrelid),
                (SELECT sum(s.idx_tup_read)::int8 FROM leaves l JOIN pg_stat_user_indexes s ON s.indexrelid = l.relid WHERE l.parent = idx.indexrelid),
                (SELECT sum(s.idx_tup_fetch)::int8 FROM leaves l JOIN pg_stat_user_indexes s ON s.indexrelid = l.relid WHERE l.parent = idx.indexrelid),
                idx.indisprimary, idx.indisunique, idx.indisvalid
           FROM idx JOIN pg_class c ON c.oid = idx.indexrelid
          ORDER BY c.relname",
    )
    .bind(oid)
    .bind(probe)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| IndexStats {
            name: r.0,
            column: r.1,
            size_bytes: r.2.unwrap_or(0),
            idx_scan: r.3.unwrap_or(0),
            idx_tup_read: r.4.unwrap_or(0),
            idx_tup_fetch: r.5.unwrap_or(0),
            primary: r.6,
            unique: r.7,
            valid: r.8,
        })
        .collect())
}

/// Which of the guide's indexes exist, by name or, failing that, by leading column.
pub fn expected(indexes: &[IndexStats]) -> Vec<ExpectedIndex> {
    EXPECTED_INDEXES
        .iter()
        .map(|(name, column)| {
            let found_as = indexes
                .iter()
                .find(|i| i.name == *name)
                .or_else(|| indexes.iter().find(|i| i.column == *column))
                .map(|i| i.name.clone());
            ExpectedIndex {
                name: (*name).into(),
                column: (*column).into(),
                found_as,
            }
        })
        .collect()
}

/// Exact per-operation counts and the exact expiry horizon, in one scan. On a large table it runs
/// under `timeout` and gives up (returns None) rather than hold the refresh.
async fn exact_breakdown(
    conn: &mut PgConnection,
    table: &TableRef,
    small: bool,
    timeout: Duration,
) -> Result<Option<(Vec<OperationStats>, Horizon)>> {
    type Row = (
        String,
        i64,
        i64,
        Option<f64>,
        i64,
        i64,
        i64,
        i64,
        i64,
        i64,
        i64,
        i64,
        i64,
    );
    let sql = format!(
        "SELECT operation::text, count(*), count(*) FILTER (WHERE expires_at <= now()),
                avg(octet_length(result_payload))::float8,
                count(*) FILTER (WHERE status_code BETWEEN 200 AND 299),
                count(*) FILTER (WHERE status_code BETWEEN 300 AND 399),
                count(*) FILTER (WHERE status_code BETWEEN 400 AND 499),
                count(*) FILTER (WHERE status_code BETWEEN 500 AND 599),
                count(*) FILTER (WHERE status_code IS NULL OR status_code NOT BETWEEN 200 AND 599),
                count(*) FILTER (WHERE expires_at > now() AND expires_at <= now() + interval '1 hour'),
                count(*) FILTER (WHERE expires_at > now() + interval '1 hour' AND expires_at <= now() + interval '6 hours'),
                count(*) FILTER (WHERE expires_at > now() + interval '6 hours' AND expires_at <= now() + interval '24 hours'),
                count(*) FILTER (WHERE expires_at > now() + interval '24 hours')
           FROM {} GROUP BY operation ORDER BY count(*) DESC, operation",
        table.qualified()
    );
    let result: Result<Vec<Row>, sqlx::Error> = if small {
        sqlx::query_as(&sql).fetch_all(&mut *conn).await
    } else {
        let mut tx = crate::db::connect::begin_bounded(&mut *conn, timeout).await?;
        let r = sqlx::query_as(&sql).fetch_all(&mut *tx).await;
        let _ = tx.rollback().await;
        r
    };
    let rows = match result {
        Ok(rows) => rows,
        // 57014: statement_timeout. The estimates stand in.
        Err(sqlx::Error::Database(db)) if !small && db.code().as_deref() == Some("57014") => {
            return Ok(None)
        }
        Err(e) => return Err(e.into()),
    };
    let mut horizon = Horizon {
        exact: true,
        ..Horizon::default()
    };
    let ops = rows
        .into_iter()
        .map(|r| {
            horizon.within_1h += r.9;
            horizon.within_6h += r.10;
            horizon.within_24h += r.11;
            horizon.later += r.12;
            OperationStats {
                operation: r.0,
                total: r.1,
                live: Some(r.1 - r.2),
                expired: Some(r.2),
                avg_payload_bytes: r.3,
                status: Some(StatusCounts {
                    s2xx: r.4,
                    s3xx: r.5,
                    s4xx: r.6,
                    s5xx: r.7,
                    other: r.8,
                }),
                exact: true,
            }
        })
        .collect();
    Ok(Some((ops, horizon)))
}

/// What `pg_stats` says about the table (as of its last ANALYZE).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Estimates {
    /// `expires_at` histogram bounds.
    pub expires_histogram: Vec<DateTime<Utc>>,
    pub now: Option<DateTime<Utc>>,
    /// Share of rows with `expires_at <= now()`.
    pub expired_fraction: Option<f64>,
    /// `operation` most common values and their frequencies.
    pub operation_mcv: Vec<(String, f64)>,
}

impl Estimates {
    fn fraction_at(&self, t: DateTime<Utc>) -> Option<f64> {
        histogram_fraction(&self.expires_histogram, t)
    }

    /// The expiry horizon of the live rows, from the histogram, scaled to `live`.
    pub fn horizon(&self, total: i64, live: i64) -> Horizon {
        let Some(now) = self.now else {
            return Horizon::default();
        };
        let at = |h: i64| self.fraction_at(now + chrono::Duration::hours(h));
        let (Some(f0), Some(f1), Some(f6), Some(f24)) = (at(0), at(1), at(6), at(24)) else {
            return Horizon {
                later: live,
                ..Horizon::default()
            };
        };
        let n = |a: f64, b: f64| ((b - a).max(0.0) * total as f64).round() as i64;
        let within_1h = n(f0, f1);
        let within_6h = n(f1, f6);
        let within_24h = n(f6, f24);
        Horizon {
            within_1h,
            within_6h,
            within_24h,
            later: (live - within_1h - within_6h - within_24h).max(0),
            exact: false,
        }
    }

    /// Operations by estimated count; the rest of the table as "(other)".
    pub fn operations(&self, total: i64) -> Vec<OperationStats> {
        let mut ops: Vec<OperationStats> = self
            .operation_mcv
            .iter()
            .map(|(op, f)| OperationStats {
                operation: op.clone(),
                total: (f * total as f64).round() as i64,
                live: None,
                expired: None,
                avg_payload_bytes: None,
                status: None,
                exact: false,
            })
            .collect();
        let covered: i64 = ops.iter().map(|o| o.total).sum();
        if !ops.is_empty() && total - covered > total / 100 {
            ops.push(OperationStats {
                operation: "(other)".into(),
                total: total - covered,
                live: None,
                expired: None,
                avg_payload_bytes: None,
                status: None,
                exact: false,
            });
        }
        ops.sort_by(|a, b| b.total.cmp(&a.total).then(a.operation.cmp(&b.operation)));
        ops
    }
}

/// Share of rows at or below `t`, by linear interpolation in an equi-depth histogram.
pub fn histogram_fraction(bounds: &[DateTime<Utc>], t: DateTime<Utc>) -> Option<f64> {
    if bounds.len() < 2 {
        return None;
    }
    let buckets = (bounds.len() - 1) as f64;
    if t < bounds[0] {
        return Some(0.0);
    }
    if t >= bounds[bounds.len() - 1] {
        return Some(1.0);
    }
    let i = bounds.partition_point(|b| *b <= t) - 1;
    let (lo, hi) = (bounds[i], bounds[i + 1]);
    let span = (hi - lo).num_milliseconds() as f64;
    let within = if span > 0.0 {
        (t - lo).num_milliseconds() as f64 / span
    } else {
        1.0
    };
    Some(((i as f64 + within) / buckets).clamp(0.0, 1.0))
}

async fn estimates(
    conn: &mut PgConnection,
    table: &TableRef,
    now: DateTime<Utc>,
) -> Result<Estimates> {
    // pg_stats has one row per column; for a partitioned parent the `inherited` row covers all.
    // Bounds of a `timestamp` column are read in the session's zone (the database's); an
    // 'infinity' bound has no place on the time axis and is left out.
    let hist: Option<Vec<Ts>> = sqlx::query_scalar(
        "SELECT histogram_bounds::text::timestamptz[] FROM pg_stats
          WHERE schemaname = $1 AND tablename = $2 AND attname = 'expires_at'
          ORDER BY inherited DESC LIMIT 1",
    )
    .bind(table.schema.as_str())
    .bind(table.table.as_str())
    .fetch_optional(&mut *conn)
    .await?
    .flatten();
    type Mcv = (Option<Vec<String>>, Option<Vec<f32>>);
    let mcv: Option<Mcv> = sqlx::query_as(
        "SELECT most_common_vals::text::text[], most_common_freqs FROM pg_stats
          WHERE schemaname = $1 AND tablename = $2 AND attname = 'operation'
          ORDER BY inherited DESC LIMIT 1",
    )
    .bind(table.schema.as_str())
    .bind(table.table.as_str())
    .fetch_optional(&mut *conn)
    .await?;
    let operation_mcv = match mcv {
        Some((Some(vals), Some(freqs))) => vals
            .into_iter()
            .zip(freqs.into_iter().map(f64::from))
            .collect(),
        _ => Vec::new(),
    };
    let mut est = Estimates {
        expires_histogram: hist
            .unwrap_or_default()
            .into_iter()
            .filter_map(Ts::finite)
            .collect(),
        now: Some(now),
        expired_fraction: None,
        operation_mcv,
    };
    est.expired_fraction = est.fraction_at(now);
    Ok(est)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(h: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + chrono::Duration::hours(h)
    }

    #[test]
    fn histogram_interpolates() {
        let b = vec![t(0), t(10), t(20), t(30), t(40)];
        assert_eq!(histogram_fraction(&b, t(-1)), Some(0.0));
        assert_eq!(histogram_fraction(&b, t(40)), Some(1.0));
        assert_eq!(histogram_fraction(&b, t(20)), Some(0.5));
        assert!((histogram_fraction(&b, t(5)).unwrap() - 0.125).abs() < 1e-9);
        assert_eq!(histogram_fraction(&b[..1], t(5)), None);
    }

    #[test]
    fn horizon_from_histogram_adds_up_to_live() {
        // 100 buckets, one per hour from -50 h to +50 h: half expired.
        let b: Vec<_> = (-50..=50).map(t).collect();
        let est = Estimates {
            expires_histogram: b,
            now: Some(t(0)),
            expired_fraction: None,
            operation_mcv: vec![],
        };
        let h = est.horizon(10_000, 5_000);
        assert_eq!(h.within_1h, 100);
        assert_eq!(h.within_6h, 500);
        assert_eq!(h.within_24h, 1_800);
        assert_eq!(h.later, 5_000 - 2_400);
        assert!(!h.exact);
    }

    #[test]
    fn mcv_operations_with_other() {
        let est = Estimates {
            operation_mcv: vec![("a".into(), 0.5), ("b".into(), 0.3)],
            ..Estimates::default()
        };
        let ops = est.operations(1000);
        assert_eq!(
            ops.iter()
                .map(|o| (o.operation.as_str(), o.total))
                .collect::<Vec<_>>(),
            vec![("a", 500), ("b", 300), ("(other)", 200)]
        );
    }

    #[test]
    fn expected_indexes_found_by_name_or_column() {
        let idx = |name: &str, col: &str| IndexStats {
            name: name.into(),
            column: col.into(),
            size_bytes: 0,
            idx_scan: 0,
            idx_tup_read: 0,
            idx_tup_fetch: 0,
            primary: false,
            unique: false,
            valid: true,
        };
        let e = expected(&[
            idx("idx_idempotency_expires", "expires_at"),
            idx("by_op", "operation"),
        ]);
        assert_eq!(e[0].found_as.as_deref(), Some("idx_idempotency_expires"));
        assert_eq!(e[1].found_as.as_deref(), Some("by_op"));
        let e = expected(&[]);
        assert!(e.iter().all(ExpectedIndex::missing));
    }
}

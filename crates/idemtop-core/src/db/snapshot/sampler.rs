//! The sampler: exact counts anchored once and carried forward by the insert/delete counters, and when to make the next exact pass.

use super::*;

/// The expired rows from the histogram's share `f` (rows with `expires_at <= now` among those
/// the last ANALYZE saw), corrected by what the counters say happened since: the share applies
/// to the rows of the table when its statistics were last taken (`reltuples`, set by ANALYZE or
/// VACUUM, whichever ran last), not to today's total, and the rows deleted since then (cleanup
/// deletes expired rows only) are no longer there. Rows inserted since are counted live. Without
/// this, a cleanup leaves the old share on screen until the next ANALYZE, and steady inserts
/// inflate the expired count by the share of the new rows.
pub(super) fn expired_by_counters(f: f64, stats: &StatsRow, total: i64) -> i64 {
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
    pub(super) anchor: Option<Anchor>,
    /// When the last exact pass on a large table ran and what the refresh with it cost.
    pub(super) last_exact_cost: Option<(std::time::Instant, Duration)>,
    /// The budget starts with the session ([`Sampler::budgeted_from_start`]).
    pub(super) defer_first: bool,
    /// The last exact pass asked for by the schedule gave up at its timeout (or one is
    /// predicted to): no more are made on schedule, only on demand ([`Sampler::allow_exact_now`]).
    pub(super) passes_give_up: bool,
    /// The next pass was asked for by the operator.
    pub(super) on_demand: bool,
    /// What the next snapshot may reuse from the previous one.
    pub(super) cache: SnapshotCache,
}

/// What a first exact pass is assumed to cost before one has run: a serial scan of the heap at
/// this many bytes a second (this machine read ~1 GB/s; the margin errs towards waiting).
const ASSUMED_SCAN_BYTES_PER_SEC: f64 = 500e6;

/// The last exact counts and the counters at that moment.
#[derive(Debug, Clone)]
pub(super) struct Anchor {
    pub(super) at: DateTime<Utc>,
    pub(super) total: i64,
    pub(super) expired: i64,
    pub(super) ins: i64,
    pub(super) del: i64,
    pub(super) operations: Vec<OperationStats>,
    pub(super) horizon: Horizon,
}

/// The exact pass may use at most 1/EXACT_PASS_BUDGET of one core of the server: after one
/// that took 1 s, the next waits at least this many seconds (33 min; 0.03 s of CPU a minute,
/// a sixth of what pg_activity costs a server). The pass runs without
/// parallel workers, on the backend alone, so the backend's CPU is at most the pass's elapsed
/// time: a budget of elapsed time is a budget of server CPU (a parallel pass used ~1.8x its
/// elapsed time in CPU). A pass that gave up at its timeout counts its timeout. Between passes the
/// counts are carried forward by the counters; `E` on the dashboard counts exactly now.
pub const EXACT_PASS_BUDGET: u32 = 2000;

/// Whether a first exact pass of a heap that a serial scan reads in `scan_secs` (assumed) fits
/// in its timeout. Shared with the benchmark, which amortises the passes the dashboard makes.
pub fn first_pass_fits(scan_secs: f64, timeout: Duration) -> bool {
    scan_secs < timeout.as_secs_f64()
}

/// The assumed seconds of a serial scan of a heap of `table_bytes` (before one was measured).
pub fn assumed_scan_secs(table_bytes: i64) -> f64 {
    table_bytes.max(0) as f64 / ASSUMED_SCAN_BYTES_PER_SEC
}

/// At most this many rows that expired since the anchor are counted; past it the anchor is
/// too old to carry forward cheaply (the next exact pass makes a new one).
pub(super) const EXPIRED_SINCE_CAP: i64 = 200_000;

impl Sampler {
    /// A sampler whose exact-pass budget starts with the session (the dashboard): the first
    /// refresh reads the table's size, and the first exact pass of a large table waits as if
    /// one of that size had just run (a small table is counted exactly on every refresh
    /// anyway; `E` counts at once). Without it the first refresh asked to count exactly does.
    pub fn budgeted_from_start() -> Self {
        Self {
            defer_first: true,
            ..Self::default()
        }
    }

    /// The next exact pass asked for runs whatever the budget says (on demand: a key).
    pub fn allow_exact_now(&mut self) {
        self.last_exact_cost = None;
        self.passes_give_up = false;
        self.on_demand = true;
    }

    /// Forget what the next snapshot could reuse from the previous ones (the benchmark makes
    /// its refreshes back to back, and reads the planner statistics as often as a 2 s refresh
    /// does: one refresh in 15).
    pub fn forget_reuse(&mut self) {
        self.cache = SnapshotCache::default();
    }

    /// Whether exact passes run on schedule: not once one gave up at its timeout (it read the
    /// table for nothing, and would again), nor when the first is predicted to.
    pub fn passes_on_schedule(&self) -> bool {
        !self.passes_give_up
    }

    pub async fn take(
        &mut self,
        conn: &mut PgConnection,
        table: &TableRef,
        info: &TableInfo,
        tm: &TableMapping,
        opts: SnapshotOptions,
        keep: Duration,
    ) -> Result<Snapshot> {
        let mut opts = opts;
        let on_demand = std::mem::take(&mut self.on_demand);
        if let (true, Some((at, cost))) = (opts.exact_pass, self.last_exact_cost) {
            if at.elapsed() < cost * EXACT_PASS_BUDGET {
                opts.exact_pass = false;
            }
        }
        if self.passes_give_up && !on_demand {
            opts.exact_pass = false;
        }
        let first = std::mem::take(&mut self.defer_first);
        if first {
            opts.exact_pass = false;
        }
        let started = std::time::Instant::now();
        let mut snap = take_cached(conn, table, info, tm, opts, &mut self.cache).await?;
        if first {
            let secs = assumed_scan_secs(snap.sizes.table_bytes);
            // A table whose serial scan would take longer than the pass may: the pass would
            // give up at its timeout every time. Exact counts of it are made on demand only.
            self.passes_give_up = !first_pass_fits(secs, opts.exact_timeout);
            let assumed = Duration::from_secs_f64(secs).min(opts.exact_timeout);
            self.last_exact_cost = Some((started, assumed));
        }
        if opts.exact_pass {
            self.last_exact_cost = Some((started, started.elapsed()));
            // Gave up at its timeout: no more on schedule; one that finished (the table
            // shrank, say, and the operator counted on demand) puts them back on schedule.
            if snap.blocked_by.is_none() {
                self.passes_give_up = !snap.rows.exact;
            }
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
        let Some(expired_since) = expired_between(conn, table, tm, a.at).await? else {
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
pub(super) async fn expired_between(
    conn: &mut PgConnection,
    table: &TableRef,
    tm: &TableMapping,
    anchor: DateTime<Utc>,
) -> Result<Option<i64>> {
    // The column in expiry order, compared with both ends moved back by the TTL (index-friendly).
    let Some(e) = tm.sql.expiry.as_ref() else {
        return Ok(Some(0));
    };
    let (Some(after), Some(expired)) = (e.live_at("$1::timestamptz"), e.expired_at("now()")) else {
        return Ok(Some(0));
    };
    let n: Result<i64, sqlx::Error> = sqlx::query_scalar(&format!(
        "SELECT count(*)::int8 FROM (SELECT 1 FROM {} WHERE {after} AND {expired} LIMIT $2) s",
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
pub(super) fn scaled(ops: &[OperationStats], live: i64, expired: i64) -> Vec<OperationStats> {
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

pub(super) fn scaled_horizon(h: Horizon, live: i64) -> Horizon {
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

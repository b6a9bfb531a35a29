//! Estimates from the planner statistics: row counts and the expired share by histogram.

use super::*;

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
    pub(super) fn fraction_at(&self, t: DateTime<Utc>) -> Option<f64> {
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

/// What the snapshot reads of `pg_stats`: the histogram bounds of the column in expiry order
/// and the most common values of a single operation column.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct PlannerStats {
    histogram: Vec<Ts>,
    operation_mcv: Vec<(String, f64)>,
}

/// When the planner statistics read are reused: same table, same columns, no ANALYZE since
/// (by the counters), and read less than [`PLANNER_STATS_REUSE`] ago (an ANALYZE's counter can
/// move a moment before its statistics are committed).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct PlannerKey {
    oid: u32,
    expiry_column: String,
    operation: Option<String>,
    analyze_count: i64,
}

/// At most this old, planner statistics read on an earlier refresh are reused.
pub(super) const PLANNER_STATS_REUSE: Duration = Duration::from_secs(30);

/// What one refresh may reuse from an earlier one on the same session (see
/// [`super::take_cached`]); empty for a one-off snapshot.
#[derive(Debug, Default, Clone)]
pub struct SnapshotCache {
    planner: Option<(PlannerKey, Instant, PlannerStats)>,
}

impl SnapshotCache {
    fn planner(&self, key: &PlannerKey) -> Option<&PlannerStats> {
        match &self.planner {
            Some((k, at, p)) if k == key && at.elapsed() < PLANNER_STATS_REUSE => Some(p),
            _ => None,
        }
    }
}

/// The expiry histogram and the operation MCVs in one round trip.
async fn read_planner_stats(
    conn: &mut PgConnection,
    table: &TableRef,
    expiry_column: &str,
    operation: Option<&str>,
) -> Result<PlannerStats> {
    // pg_stats has one row per column; for a partitioned parent the `inherited` row covers all.
    // Bounds of a `timestamp` column are read in the session's zone (the database's).
    type Row = (Option<Vec<Ts>>, Option<Vec<String>>, Option<Vec<f32>>);
    let (hist, vals, freqs): Row = sqlx::query_as(
        "SELECT h.b, m.v, m.f FROM (SELECT 1) one
           LEFT JOIN LATERAL (
               SELECT histogram_bounds::text::timestamptz[] AS b FROM pg_stats
                WHERE schemaname = $1 AND tablename = $2 AND attname = $3
                ORDER BY inherited DESC LIMIT 1) h ON true
           LEFT JOIN LATERAL (
               SELECT most_common_vals::text::text[] AS v, most_common_freqs AS f FROM pg_stats
                WHERE schemaname = $1 AND tablename = $2 AND attname = $4
                ORDER BY inherited DESC LIMIT 1) m ON true",
    )
    .bind(table.schema.as_str())
    .bind(table.table.as_str())
    .bind(expiry_column)
    .bind(operation.unwrap_or(""))
    .fetch_one(&mut *conn)
    .await?;
    let operation_mcv = match (vals, freqs) {
        (Some(vals), Some(freqs)) => vals
            .into_iter()
            .zip(freqs.into_iter().map(f64::from))
            .collect(),
        _ => Vec::new(),
    };
    Ok(PlannerStats {
        histogram: hist.unwrap_or_default(),
        operation_mcv,
    })
}

pub(super) async fn estimates(
    conn: &mut PgConnection,
    table: &TableRef,
    info: &TableInfo,
    tm: &TableMapping,
    stats: &StatsRow,
    cache: &mut SnapshotCache,
) -> Result<Estimates> {
    // The histogram of the column in expiry order (the expiry column, or the creation column
    // of a TTL, its bounds moved by the TTL); the most common values of a single operation
    // column. Nothing for what is not mapped.
    let expiry = tm
        .sql
        .expiry
        .as_ref()
        .and_then(|e| Some((e.column()?.to_owned(), e.shift())));
    let operation = match tm.mapping.operation_columns() {
        [one] => Some(one.clone()),
        _ => None,
    };
    let (expiry_column, shift) = match expiry {
        Some((c, s)) => (c, chrono::Duration::from_std(s).unwrap_or_default()),
        None => (String::new(), chrono::Duration::zero()),
    };
    // A partitioned parent's own ANALYZE is not in its leaves' counters: read every time.
    let key = (!info.partitioned).then(|| PlannerKey {
        oid: info.oid,
        expiry_column: expiry_column.clone(),
        operation: operation.clone(),
        analyze_count: stats.analyze_count,
    });
    let planner = match key.as_ref().and_then(|k| cache.planner(k)) {
        Some(p) => p.clone(),
        None => {
            let p = read_planner_stats(conn, table, &expiry_column, operation.as_deref()).await?;
            if let Some(k) = key {
                cache.planner = Some((k, Instant::now(), p.clone()));
            }
            p
        }
    };
    // An 'infinity' bound has no place on the time axis and is left out.
    let mut est = Estimates {
        expires_histogram: planner
            .histogram
            .into_iter()
            .filter_map(Ts::finite)
            .filter_map(|t| t.checked_add_signed(shift))
            .collect(),
        now: Some(stats.now),
        expired_fraction: None,
        operation_mcv: planner.operation_mcv,
    };
    est.expired_fraction = est.fraction_at(stats.now);
    Ok(est)
}

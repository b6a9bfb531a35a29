//! One snapshot: every figure of the table read in one pass, with how each was measured.

use super::*;

/// The table's name no longer names the table the model was read for (dropped, or dropped and
/// recreated): read the model again ([`crate::refresh::RefreshSession`] does, once).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelChanged(pub String);

impl std::fmt::Display for ModelChanged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "table {} was dropped or recreated since its model was read",
            crate::sanitize::line(&self.0)
        )
    }
}

impl std::error::Error for ModelChanged {}

impl ModelChanged {
    /// Whether `e`'s chain holds a [`ModelChanged`].
    pub fn is_in(e: &anyhow::Error) -> bool {
        e.chain()
            .any(|c| c.downcast_ref::<ModelChanged>().is_some())
    }
}

/// Take one snapshot of a table with no `[[table]]` section (its detected mapping).
pub async fn take(
    conn: &mut PgConnection,
    table: &TableRef,
    info: &TableInfo,
    opts: SnapshotOptions,
) -> Result<Snapshot> {
    let tm = TableMapping::resolve(&[], table, info);
    take_mapped(conn, table, info, &tm, opts).await
}

/// Take one snapshot, every query asking the table's mapping `tm` for its columns. `conn`
/// should be a session with a short `statement_timeout`. A missing privilege is said in one
/// sentence naming the role and the GRANT that fixes it.
pub async fn take_mapped(
    conn: &mut PgConnection,
    table: &TableRef,
    info: &TableInfo,
    tm: &TableMapping,
    opts: SnapshotOptions,
) -> Result<Snapshot> {
    take_cached(conn, table, info, tm, opts, &mut SnapshotCache::default()).await
}

/// [`take_mapped`] on a session that takes snapshots one after another: what `cache` holds
/// from the previous one is reused while it still holds ([`SnapshotCache`]).
pub async fn take_cached(
    conn: &mut PgConnection,
    table: &TableRef,
    info: &TableInfo,
    tm: &TableMapping,
    opts: SnapshotOptions,
    cache: &mut SnapshotCache,
) -> Result<Snapshot> {
    match take_inner(conn, table, info, tm, opts, cache).await {
        Err(e) if crate::db::connect::sqlstate(&e).as_deref() == Some("42501") => {
            Err(crate::db::connect::permission_error(conn, &e, "SELECT", table).await)
        }
        other => other,
    }
}

pub(super) async fn take_inner(
    conn: &mut PgConnection,
    table: &TableRef,
    info: &TableInfo,
    tm: &TableMapping,
    opts: SnapshotOptions,
    cache: &mut SnapshotCache,
) -> Result<Snapshot> {
    let started = Instant::now();
    let oid = info.oid as i64;

    // Also sets the session's lock_timeout (500 ms): never queue behind a lock for long,
    // whatever the checks below miss.
    let cleanup_fn = format!("{}()", table.sibling(&crate::guide::cleanup_function()));
    let stats = stats_row(conn, oid, info.partitioned, &table.qualified(), &cleanup_fn)
        .await
        .context("reading table statistics")?;
    if stats.current_oid != Some(oid) {
        return Err(ModelChanged(table.to_string()).into());
    }
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
    let standby = stats.standby.clone();
    let cleanup_function = stats.cleanup_function;
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
        sizes(conn, oid, info.partitioned)
            .await
            .context("reading sizes")?
    } else {
        Sizes::default()
    };
    let indexes = indexes(conn, oid, probe, info.partitioned)
        .await
        .context("reading indexes")?;
    let expected_indexes = expected_for(&indexes, tm, table);

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
            Some(estimates(conn, table, info, tm, &stats, cache).await?)
        };
        let est_expired = est
            .as_ref()
            .and_then(|e| e.expired_fraction)
            .map(|f| expired_by_counters(f, &stats, estimated_total.round() as i64) as f64);
        // The estimate is within a few percent (tests/figures.rs): past 1.5x the cap the count
        // would only read the cap's worth of index entries and give up (2 ms a refresh at 100k
        // rows, most of the refresh's server time).
        let count_cap = match est_expired {
            Some(n) if n > 1.5 * EXPIRED_COUNT_CAP as f64 => 0,
            _ => EXPIRED_COUNT_CAP,
        };
        // `-infinity` rows are expired but have no age: the oldest finite expiry gives the lag.
        // The column in expiry order is the expiry column, or the creation column of a TTL
        // (its oldest value plus the TTL is the oldest expiry). A permanent ledger has nothing
        // expired; an unmapped expiry is not counted at all (the report says n/a).
        let (oldest, expired_capped, expired_counted) = match &tm.sql.expiry {
            Some(
                e @ (ExpirySql::Column { quoted: col, .. } | ExpirySql::Ttl { quoted: col, .. }),
            ) => {
                let expired = e.expired_at("now()").unwrap_or_else(|| "false".into());
                let (oldest, n): (Option<Ts>, i64) = sqlx::query_as(&format!(
                    "SELECT (SELECT min({col}) FROM {q} WHERE {col} > '-infinity')::timestamptz,
                            (SELECT count(*) FROM (SELECT 1 FROM {q} WHERE {expired} LIMIT $1) s)"
                ))
                .bind(count_cap)
                .fetch_one(&mut *conn)
                .await
                .context("counting expired rows")?;
                let shift = chrono::Duration::from_std(e.shift()).unwrap_or_default();
                let oldest = oldest
                    .and_then(Ts::finite)
                    .and_then(|t| t.checked_add_signed(shift));
                (oldest, n, count_cap > 0 && n < count_cap)
            }
            Some(ExpirySql::Permanent) | None => (None, 0, true),
        };
        rows.oldest_expired_at = oldest.filter(|t| *t <= stats.now);
        rows.cleanup_lag_secs = rows
            .oldest_expired_at
            .map(|t| (stats.now - t).num_milliseconds().max(0) as f64 / 1000.0)
            .unwrap_or(0.0);

        let exact = if small || opts.exact_pass {
            exact_breakdown(conn, table, info, tm, small, opts.exact_timeout).await?
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
                // Without an operation column the pass counted one group: the totals stand,
                // the breakdown is n/a.
                if tm.has(Role::Operation) {
                    operations = ops;
                }
                operations_exact = true;
            }
            None => {
                let est = match est {
                    Some(e) => e,
                    None => estimates(conn, table, info, tm, &stats, cache).await?,
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

    // The in-flight figures stand alone: a failure of their query leaves that panel without
    // figures (said there), never the whole snapshot; only a lost connection or a missing
    // privilege (said for the whole table above) ends the refresh.
    let inflight = if probe {
        match inflight(conn, table, tm, opts.stuck_after, opts.exact_timeout).await {
            Ok(f) => f,
            Err(e)
                if crate::db::connect::is_connection_lost(&e)
                    || crate::db::connect::sqlstate(&e).as_deref() == Some("42501") =>
            {
                return Err(e)
            }
            Err(e) => {
                tracing::warn!("keys in flight not counted: {e:#}");
                None
            }
        }
    } else {
        None
    };
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
        mapping: tm.report.clone(),
        inflight,
    };
    snap.refresh_ms = started.elapsed().as_secs_f64() * 1000.0;
    Ok(snap)
}

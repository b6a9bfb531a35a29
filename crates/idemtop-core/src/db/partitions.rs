//! Partition-based cleanup for a table partitioned by RANGE on `expires_at` (the optional
//! migration set in `migrations/partitioned/`, see its README): list the partitions with their
//! bounds, sizes and rows; drop the fully expired ones without ever queueing the application's
//! queries behind a lock; keep partitions created ahead.
//!
//! Everything is decided on the server's clock (`now()`), never the client's. Identifiers are
//! quoted ([`TableRef::qualified`]), values bound.

use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::migrate::Migrator;
use sqlx::{Connection, Executor, PgConnection};

use crate::db::connect::db_sqlstate;
use crate::db::table;
use crate::ident::TableRef;
use crate::sanitize;

/// The partitioned layout's migrations 045 and 046 (`migrations/partitioned/`), reversible. An
/// alternative to [`crate::db::migrate::MIGRATOR`], never applied together with it.
pub static PARTITIONED_MIGRATOR: Migrator = sqlx::migrate!("../../migrations/partitioned");

/// A partition whose heap is at most this big is counted exactly (`count(*)`); a bigger one is
/// estimated from the statistics (`n_live_tup`, else `reltuples`).
pub const EXACT_COUNT_MAX_BYTES: i64 = 8 * 1024 * 1024;
/// At most this many heap bytes are counted exactly per [`list`] call, over all partitions.
pub const EXACT_COUNT_BUDGET_BYTES: i64 = 32 * 1024 * 1024;
/// `lock_timeout` of [`list`]'s probes (sizes, counts): a refresh never waits long behind DDL.
const PROBE_LOCK_TIMEOUT: &str = "500ms";
/// Most hours [`ensure_ahead`] asks for (the SQL function refuses more than a year).
const MAX_HOURS_AHEAD: u32 = 24 * 366;

/// One partition of the watched table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct PartitionInfo {
    /// Raw from the catalog: sanitize before display.
    pub name: String,
    /// Inclusive lower bound; None when unbounded (MINVALUE), for the DEFAULT partition, or when
    /// the partition key is not a single timestamp column.
    pub lower: Option<DateTime<Utc>>,
    /// Exclusive upper bound; None as for `lower` (MAXVALUE).
    pub upper: Option<DateTime<Utc>>,
    pub is_default: bool,
    /// Rows: exact (`count(*)`) when `rows_exact`, else estimated from statistics.
    pub rows: i64,
    pub rows_exact: bool,
    /// `pg_total_relation_size` (heap, indexes, TOAST); 0 when not probed (`blocked_by`).
    pub size_bytes: i64,
    /// The table is partitioned by RANGE on `expires_at`: the bounds say when rows expire.
    pub by_expiry: bool,
    /// `by_expiry` and `upper <= now()` on the server: every row is expired, the partition can
    /// be dropped whole.
    pub fully_expired: bool,
    /// `lower <= now() < upper`: holds both expired and live rows.
    pub straddles_now: bool,
    /// Left half-detached by an interrupted `DETACH PARTITION ... CONCURRENTLY` (PostgreSQL 14+);
    /// queries on the table no longer see its rows. [`drop_expired`] finishes it.
    pub detach_pending: bool,
    /// Some(description) when an AccessExclusive lock (held or requested) on the partition or the
    /// table kept its size and rows from being probed (they would queue behind it).
    pub blocked_by: Option<String>,
    #[serde(skip)]
    pub oid: i64,
    /// Raw from the catalog: sanitize before display.
    #[serde(skip)]
    pub schema: String,
    /// `r` (a table) or `p` (itself partitioned).
    #[serde(skip)]
    pub relkind: String,
}

/// Where a partition stands, as the screen shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PartitionState {
    /// Every row expired: dropped by the next partition cleanup.
    Expired,
    /// Holds the rows expiring now.
    Current,
    /// All rows expire later.
    Future,
    Default,
    DetachPending,
    /// Bounds not understood (not a single timestamp key).
    Unknown,
    /// Partitioned by something other than the expiry: its rows are cleaned one by one, or the
    /// partition is dropped after a check under its lock finds no live row.
    RowByRow,
}

impl PartitionState {
    pub fn label(self) -> &'static str {
        match self {
            PartitionState::Expired => "expired (droppable)",
            PartitionState::Current => "current",
            PartitionState::Future => "future",
            PartitionState::Default => "default",
            PartitionState::DetachPending => "detach pending",
            PartitionState::Unknown => "?",
            PartitionState::RowByRow => "by row",
        }
    }
}

impl PartitionInfo {
    pub fn state(&self) -> PartitionState {
        if self.detach_pending {
            PartitionState::DetachPending
        } else if self.is_default {
            PartitionState::Default
        } else if !self.by_expiry {
            PartitionState::RowByRow
        } else if self.fully_expired {
            PartitionState::Expired
        } else if self.straddles_now {
            PartitionState::Current
        } else if self.lower.is_some() {
            PartitionState::Future
        } else {
            PartitionState::Unknown
        }
    }
}

/// Sums over a partition list (for titles and summaries).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct PartitionTotals {
    pub partitions: usize,
    pub rows: i64,
    /// Every partition's rows are exact.
    pub rows_exact: bool,
    pub size_bytes: i64,
    /// Fully expired (or detach-pending and expired) partitions: what [`drop_expired`] removes.
    pub droppable: usize,
    pub droppable_rows: i64,
    pub droppable_bytes: i64,
}

pub fn totals(parts: &[PartitionInfo]) -> PartitionTotals {
    let mut t = PartitionTotals {
        partitions: parts.len(),
        rows_exact: true,
        ..PartitionTotals::default()
    };
    for p in parts {
        t.rows += p.rows;
        t.rows_exact &= p.rows_exact;
        t.size_bytes += p.size_bytes;
        if p.fully_expired {
            t.droppable += 1;
            t.droppable_rows += p.rows;
            t.droppable_bytes += p.size_bytes;
        }
    }
    t
}

/// (lower, upper); None is unbounded.
type Bounds = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// Until when inserts work: the upper bound of the run of adjacent partitions starting with the
/// one holding `now`. None when no partition holds `now` (an insert expiring now would fail,
/// unless there is a DEFAULT partition) or the run is unbounded (MAXVALUE).
pub fn covered_until(parts: &[PartitionInfo], now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let mut ranges: Vec<Bounds> = parts
        .iter()
        .filter(|p| !p.is_default && !p.detach_pending && (p.lower.is_some() || p.upper.is_some()))
        .map(|p| (p.lower, p.upper))
        .collect();
    ranges.sort_by_key(|r| r.0);
    let mut end = ranges
        .iter()
        .find(|(lo, hi)| lo.is_none_or(|l| l <= now) && hi.is_none_or(|h| h > now))?
        .1?;
    loop {
        match ranges.iter().find(|(lo, _)| *lo == Some(end)) {
            Some((_, Some(hi))) => end = *hi,
            Some((_, None)) => return None,
            None => return Some(end),
        }
    }
}

#[derive(sqlx::FromRow)]
struct RawPart {
    oid: i64,
    schema: String,
    name: String,
    relkind: String,
    is_default: bool,
    detach_pending: bool,
    lower: Option<DateTime<Utc>>,
    upper: Option<DateTime<Utc>>,
    by_expiry: bool,
    fully_expired: bool,
    straddles_now: bool,
    reltuples: f64,
    n_live_tup: Option<i64>,
    blocked_by: Option<String>,
}

/// The direct partitions of `table_oid` with their bounds, from the catalogs only (no lock on any
/// partition). Bounds are parsed on the server from `pg_get_expr(relpartbound)` (there is no
/// structured form of them in SQL), only when the key is one timestamp/date column.
const PARTS_SQL: &str = concat!(
    r#"
WITH key AS (
    SELECT coalesce(bool_and(pt.partstrat = 'r' AND pt.partnatts = 1
                             AND a.atttypid IN ('timestamptz'::regtype, 'timestamp'::regtype, 'date'::regtype)),
                    false) AS timed,
           -- Only a range on the expiry column itself proves, by its upper bound, that every
           -- row of a partition has expired (a range on created_at proves nothing about TTLs).
           coalesce(bool_and(pt.partstrat = 'r' AND pt.partnatts = 1 AND a.attname = 'expires_at'
                             AND a.atttypid IN ('timestamptz'::regtype, 'timestamp'::regtype)),
                    false) AS by_expiry
      FROM pg_partitioned_table pt
      LEFT JOIN pg_attribute a ON a.attrelid = pt.partrelid AND a.attnum = pt.partattrs[0]
     WHERE pt.partrelid = $1::oid
),
locks AS (
"#,
    access_exclusive_locks_sql!(),
    r#"
),
raw AS (
    SELECT c.oid, n.nspname::text AS schema, c.relname::text AS name, c.relkind::text AS relkind,
           coalesce(pg_get_expr(c.relpartbound, 0) = 'DEFAULT', false) AS is_default,
           coalesce((to_jsonb(inh) ->> 'inhdetachpending')::boolean, false) AS detach_pending,
           k.timed AND b IS NOT NULL AS known,
           k.by_expiry AND b IS NOT NULL AS proves_expiry,
           b[1] = 'MINVALUE' AS from_min, b[2] = 'MAXVALUE' AS to_max,
           -- A bound of 'infinity' is valid: read as unbounded (NULL), never decoded.
           CASE WHEN k.timed AND b[1] ~ '^''[^'']*''$' AND isfinite(btrim(b[1], '''')::timestamptz)
                THEN btrim(b[1], '''')::timestamptz END AS lower,
           CASE WHEN k.timed AND b[2] ~ '^''[^'']*''$' AND isfinite(btrim(b[2], '''')::timestamptz)
                THEN btrim(b[2], '''')::timestamptz END AS upper,
           k.by_expiry,
           greatest(c.reltuples, 0)::float8 AS reltuples,
           s.n_live_tup,
           coalesce(lp.what, lt.what) AS blocked_by
      FROM pg_inherits inh
      JOIN pg_class c ON c.oid = inh.inhrelid
      JOIN pg_namespace n ON n.oid = c.relnamespace
      CROSS JOIN key k
      LEFT JOIN LATERAL regexp_match(pg_get_expr(c.relpartbound, 0),
                                     '^FOR VALUES FROM \((.*)\) TO \((.*)\)$') b ON true
      LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
      LEFT JOIN locks lp ON lp.relation = c.oid
      LEFT JOIN locks lt ON lt.relation = $1::oid
     WHERE inh.inhparent = $1::oid
)
SELECT oid::int8 AS oid, schema, name, relkind, is_default, detach_pending, lower, upper, by_expiry,
       coalesce(proves_expiry AND upper <= now(), false) AS fully_expired,
       coalesce(known AND NOT is_default AND (from_min OR lower <= now()) AND (to_max OR upper > now()), false)
           AS straddles_now,
       reltuples, n_live_tup, blocked_by
  FROM raw
 ORDER BY is_default, from_min DESC NULLS LAST, lower NULLS LAST, name
"#
);

async fn catalog(conn: &mut PgConnection, table_oid: u32) -> Result<Vec<RawPart>> {
    Ok(sqlx::query_as(PARTS_SQL)
        .bind(i64::from(table_oid))
        .fetch_all(&mut *conn)
        .await?)
}

/// The partitions of the table `table_oid` (empty when it is not partitioned), ordered by lower
/// bound (the DEFAULT partition last).
///
/// Sizes come from `pg_total_relation_size`. Rows are exact (`count(*)`, `rows_exact`) for a
/// partition whose heap is at most [`EXACT_COUNT_MAX_BYTES`], while the partitions counted so far
/// stay within [`EXACT_COUNT_BUDGET_BYTES`]; otherwise estimated from `n_live_tup` (or
/// `reltuples`). A partition under an AccessExclusive lock (held or requested, on it or on the
/// table) is not probed at all (`blocked_by`); the probes also run under a 500 ms `lock_timeout`.
pub async fn list(conn: &mut PgConnection, table_oid: u32) -> Result<Vec<PartitionInfo>> {
    let raw = catalog(conn, table_oid)
        .await
        .context("reading the partitions")?;
    if raw.is_empty() {
        return Ok(Vec::new());
    }
    let probe: Vec<i64> = raw
        .iter()
        .filter(|r| r.blocked_by.is_none())
        .map(|r| r.oid)
        .collect();
    let sizes: Vec<(i64, Option<i64>, Option<i64>)> = {
        let mut tx = conn.begin().await?;
        sqlx::query("SELECT set_config('lock_timeout', $1, true)")
            .bind(PROBE_LOCK_TIMEOUT)
            .execute(&mut *tx)
            .await?;
        let rows = sqlx::query_as(
            "SELECT o, pg_total_relation_size(o::oid)::int8, pg_relation_size(o::oid)::int8
               FROM unnest($1::int8[]) o",
        )
        .bind(&probe)
        .fetch_all(&mut *tx)
        .await;
        match rows {
            Ok(rows) => {
                tx.commit().await?;
                rows
            }
            // Locked since the pg_locks check: no sizes this time, rows estimated.
            Err(e) if db_sqlstate(&e).as_deref() == Some("55P03") => Vec::new(),
            Err(e) => return Err(anyhow::Error::new(e).context("reading partition sizes")),
        }
    };
    let mut budget = EXACT_COUNT_BUDGET_BYTES;
    let mut out = Vec::with_capacity(raw.len());
    for r in raw {
        let (total, heap) = sizes
            .iter()
            .find(|s| s.0 == r.oid)
            .map(|s| (s.1, s.2))
            .unwrap_or((None, None));
        let estimate = match r.n_live_tup {
            Some(n) if n > 0 || r.reltuples <= 0.0 => n,
            _ => r.reltuples.round() as i64,
        };
        let (rows, rows_exact) = match heap {
            // Not probed, or dropped since the catalog was read.
            None => (estimate, false),
            Some(0) if r.relkind == "r" => (0, true),
            Some(h) if r.relkind == "r" && h <= EXACT_COUNT_MAX_BYTES && h <= budget => {
                match count_rows(conn, &r.schema, &r.name).await? {
                    Some(n) => {
                        budget -= h;
                        (n, true)
                    }
                    None => (estimate, false),
                }
            }
            Some(_) => (estimate, false),
        };
        out.push(PartitionInfo {
            name: r.name,
            lower: r.lower,
            upper: r.upper,
            is_default: r.is_default,
            rows,
            rows_exact,
            size_bytes: total.unwrap_or(0),
            by_expiry: r.by_expiry,
            fully_expired: r.fully_expired,
            straddles_now: r.straddles_now,
            detach_pending: r.detach_pending,
            blocked_by: r.blocked_by,
            oid: r.oid,
            schema: r.schema,
            relkind: r.relkind,
        });
    }
    Ok(out)
}

/// `count(*)` of one partition under a short lock_timeout; None when it went away or is locked.
async fn count_rows(conn: &mut PgConnection, schema: &str, name: &str) -> Result<Option<i64>> {
    let Ok(part) = TableRef::new(schema, name) else {
        return Ok(None);
    };
    // One simple-protocol query string is one implicit transaction: SET LOCAL covers the count.
    let sql = format!(
        "SET LOCAL lock_timeout = '{PROBE_LOCK_TIMEOUT}'; SELECT count(*)::int8 FROM {}",
        part.qualified()
    );
    match conn.fetch_optional(sql.as_str()).await {
        Ok(Some(row)) => Ok(Some(sqlx::Row::try_get::<i64, _>(&row, 0)?)),
        Ok(None) => Ok(None),
        // 42P01: dropped meanwhile; 55P03: locked meanwhile. The estimate stands in.
        Err(e) if matches!(db_sqlstate(&e).as_deref(), Some("42P01" | "55P03")) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// What [`drop_expired`] did with one fully expired partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DroppedPartition {
    /// Raw from the catalog: sanitize before display.
    pub name: String,
    /// Rows it held (exact: counted under its lock, after it was detached); 0 when not dropped.
    pub rows: i64,
    /// `pg_total_relation_size` when it was dropped; 0 when not dropped.
    pub size_bytes: i64,
    /// Detached and dropped. When false, `note` says why and what is left.
    pub dropped: bool,
    /// Why it was skipped (lock timeout, ...), already sanitized.
    pub note: Option<String>,
}

/// Why a partition may be dropped whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DropProof {
    /// The table is partitioned by RANGE on `expires_at` and the partition's upper bound is at
    /// or before the cutoff: every row it can hold has expired.
    UpperBound,
    /// Another key (a range on a creation time): a check found no row with `expires_at` after
    /// the cutoff (nor NULL); [`drop_planned`] repeats it in the transaction that holds the
    /// partition's lock and drops nothing if a live row appeared meanwhile.
    Checked,
}

/// One partition that a cleanup plan drops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DropStep {
    pub oid: i64,
    /// Raw from the catalog.
    pub schema: String,
    pub name: String,
    pub proof: DropProof,
    /// Left half-detached by an interrupted `DETACH ... CONCURRENTLY`.
    pub detach_pending: bool,
}

/// Detach and drop every fully expired partition (upper bound <= the server's `now()`) of a table
/// partitioned by RANGE on `expires_at`, on this dedicated connection. Partitions of any other
/// key are never dropped here (see [`crate::db::plan`], which also drops checked ones).
pub async fn drop_expired(
    conn: &mut PgConnection,
    table: &TableRef,
    lock_timeout: Duration,
) -> Result<Vec<DroppedPartition>> {
    let info = table::resolve(conn, table).await?;
    if !info.partitioned {
        return Ok(Vec::new());
    }
    let cutoff: DateTime<Utc> = sqlx::query_scalar("SELECT now()")
        .fetch_one(&mut *conn)
        .await?;
    let steps: Vec<DropStep> = list(conn, info.oid)
        .await?
        .into_iter()
        .filter(|p| p.fully_expired && p.upper.is_some_and(|u| u <= cutoff))
        .map(|p| DropStep {
            oid: p.oid,
            schema: p.schema,
            name: p.name,
            proof: DropProof::UpperBound,
            detach_pending: p.detach_pending,
        })
        .collect();
    drop_planned(conn, table, &steps, cutoff, lock_timeout).await
}

/// Drop the partitions of a plan, in order, on this dedicated connection (not inside a
/// transaction).
///
/// [`DropProof::UpperBound`]: on PostgreSQL 14+ (and no DEFAULT partition) each is detached with
/// `ALTER TABLE ... DETACH PARTITION ... CONCURRENTLY`, which takes only a SHARE UPDATE EXCLUSIVE
/// lock on the table and then waits for the transactions that use it; otherwise with a plain
/// `DETACH PARTITION` (ACCESS EXCLUSIVE). Then, in one transaction, it locks the detached table,
/// counts its rows, measures it and drops it.
///
/// [`DropProof::Checked`]: in one transaction, lock the table (ACCESS EXCLUSIVE on the parent
/// only, so no insert can route a row there meanwhile) and the partition, check again that no row
/// has `expires_at > cutoff` or NULL, then detach, count and drop; when the check finds a live
/// row, roll back and leave the partition to the row-by-row cleanup.
///
/// Every lock wait is bounded by `lock_timeout`: when it expires the partition is skipped with a
/// note (a concurrent detach interrupted in its second phase stays "detach pending": its rows
/// are already invisible, and the next call finishes it with `DETACH PARTITION ... FINALIZE`),
/// and the partitions after it are not tried (each would wait again). Errors other than lock
/// timeouts are returned.
pub async fn drop_planned(
    conn: &mut PgConnection,
    table: &TableRef,
    steps: &[DropStep],
    cutoff: DateTime<Utc>,
    lock_timeout: Duration,
) -> Result<Vec<DroppedPartition>> {
    if steps.is_empty() {
        return Ok(Vec::new());
    }
    let info = table::resolve(conn, table).await?;
    let (saved_lock, saved_statement): (String, String) = sqlx::query_as(
        "SELECT current_setting('lock_timeout'), current_setting('statement_timeout')",
    )
    .fetch_one(&mut *conn)
    .await?;
    let ms = lock_timeout.as_millis().clamp(1, i32::MAX as u128) as i64;
    // Waits are bounded by lock_timeout; the work itself (catalog changes, counting one detached
    // partition) must not be cut short by the session's statement_timeout.
    sqlx::query(
        "SELECT set_config('lock_timeout', $1, false), set_config('statement_timeout', '0', false)",
    )
    .bind(format!("{ms}ms"))
    .execute(&mut *conn)
    .await?;
    let result = drop_inner(conn, table, &info, steps, cutoff, ms).await;
    let restore = sqlx::query(
        "SELECT set_config('lock_timeout', $1, false), set_config('statement_timeout', $2, false)",
    )
    .bind(&saved_lock)
    .bind(&saved_statement)
    .execute(&mut *conn)
    .await;
    let out = result?;
    restore.context("restoring lock_timeout and statement_timeout")?;
    Ok(out)
}

/// How long the check for live rows under the table's lock may take: the application's queries
/// wait behind that lock meanwhile.
const CHECK_UNDER_LOCK_TIMEOUT: &str = "1s";

async fn drop_inner(
    conn: &mut PgConnection,
    table: &TableRef,
    info: &table::TableInfo,
    steps: &[DropStep],
    cutoff: DateTime<Utc>,
    lock_ms: i64,
) -> Result<Vec<DroppedPartition>> {
    let has_default: bool = sqlx::query_scalar(
        "SELECT coalesce((SELECT partdefid <> 0 FROM pg_partitioned_table WHERE partrelid = $1::oid), false)",
    )
    .bind(i64::from(info.oid))
    .fetch_one(&mut *conn)
    .await?;
    let concurrently = info.server_version_num >= 140_000 && !has_default;
    let parent = table.qualified();
    let mut out = Vec::with_capacity(steps.len());
    let mut stop: Option<String> = None;
    for p in steps {
        let shown = sanitize::line(&p.name);
        let skip = |note: String| DroppedPartition {
            name: p.name.clone(),
            rows: 0,
            size_bytes: 0,
            dropped: false,
            note: Some(note),
        };
        if let Some(why) = &stop {
            out.push(skip(format!("not tried: {why}")));
            continue;
        }
        let Ok(part) = TableRef::new(&p.schema, &p.name).map(|t| t.qualified()) else {
            out.push(skip("skipped: its name is not a usable identifier".into()));
            continue;
        };
        if p.proof == DropProof::Checked {
            match check_and_drop(conn, &parent, &part, p.oid, cutoff, lock_ms).await {
                Ok(Some((rows, size_bytes))) => out.push(DroppedPartition {
                    name: p.name.clone(),
                    rows,
                    size_bytes,
                    dropped: true,
                    note: None,
                }),
                Ok(None) => out.push(skip(
                    "not dropped: it holds a row that is not expired (checked under its lock); \
                     its expired rows are deleted one by one"
                        .into(),
                )),
                Err(e) if matches!(db_sqlstate(&e).as_deref(), Some("55P03" | "57014")) => {
                    let who = lock_holders(conn, info.oid).await.unwrap_or_default();
                    out.push(skip(format!(
                        "skipped: could not lock {table} and check the partition within \
                         {lock_ms} ms{who}; nothing was changed, its expired rows are deleted one by one"
                    )));
                    stop = Some(format!(
                        "an earlier partition hit the lock timeout on {table}"
                    ));
                }
                Err(e) => {
                    return Err(
                        explain(e, table).context(format!("dropping partition {shown} failed"))
                    )
                }
            }
            continue;
        }

        // 1. Detach.
        let detach = if p.detach_pending {
            format!("ALTER TABLE {parent} DETACH PARTITION {part} FINALIZE")
        } else if concurrently {
            format!("ALTER TABLE {parent} DETACH PARTITION {part} CONCURRENTLY")
        } else {
            format!("ALTER TABLE {parent} DETACH PARTITION {part}")
        };
        // Executor::execute(&str): simple protocol, autocommit (DETACH ... CONCURRENTLY and
        // FINALIZE refuse to run in a transaction block); sqlx::raw_sql would make the future
        // non-Send.
        if let Err(e) = conn.execute(detach.as_str()).await {
            if db_sqlstate(&e).as_deref() != Some("55P03") {
                return Err(
                    explain(e, table).context(format!("detaching partition {shown} failed"))
                );
            }
            let pending = is_detach_pending(conn, p.oid).await.unwrap_or(false);
            let who = lock_holders(conn, info.oid).await.unwrap_or_default();
            let note = if pending {
                format!(
                    "skipped: lock_timeout ({lock_ms} ms) expired while waiting for transactions \
                     using {table} to finish{who}; it stays detach-pending (its rows are no longer \
                     visible) and the next run finishes the detach and drops it"
                )
            } else {
                format!(
                    "skipped: could not lock {table} within lock_timeout ({lock_ms} ms){who}; \
                     nothing was changed"
                )
            };
            out.push(skip(note));
            stop = Some(format!(
                "an earlier partition hit the lock timeout on {table}"
            ));
            continue;
        }

        // 2. Count, measure and drop the now stand-alone table, atomically.
        match count_and_drop(conn, &part, p.oid, lock_ms).await {
            Ok((rows, size_bytes)) => out.push(DroppedPartition {
                name: p.name.clone(),
                rows,
                size_bytes,
                dropped: true,
                note: None,
            }),
            Err(e) if db_sqlstate(&e).as_deref() == Some("55P03") => {
                out.push(skip(format!(
                    "detached from {table}, but not dropped: another session still uses it \
                     (lock_timeout {lock_ms} ms); it is now a stand-alone table, drop it by hand: \
                     DROP TABLE {}",
                    sanitize::line(&part)
                )));
                stop = Some(format!(
                    "an earlier partition hit the lock timeout on {shown}"
                ));
            }
            Err(e) => {
                return Err(explain(e, table)
                    .context(format!("dropping detached partition {shown} failed")))
            }
        }
    }
    Ok(out)
}

/// SQL: whether the relation `qualified` holds a row that is not expired as of `$1` (the
/// cutoff): `expires_at` after it, or NULL (never judged expired). The one test of "no live
/// row" that both the plan and the drop use.
pub fn live_row_sql(qualified: &str) -> String {
    format!("SELECT EXISTS (SELECT 1 FROM {qualified} WHERE expires_at > $1 OR expires_at IS NULL)")
}

/// [`DropProof::Checked`]: lock the parent (only) and the partition, check that no row of the
/// partition is live (`expires_at > cutoff` or NULL), then detach, count and drop it, all in
/// one transaction. `Ok(None)`: a live row was found, nothing changed.
async fn check_and_drop(
    conn: &mut PgConnection,
    parent: &str,
    part: &str,
    oid: i64,
    cutoff: DateTime<Utc>,
    lock_ms: i64,
) -> Result<Option<(i64, i64)>, sqlx::Error> {
    let mut tx = conn.begin().await?;
    sqlx::query("SELECT set_config('lock_timeout', $1, true)")
        .bind(format!("{lock_ms}ms"))
        .execute(&mut *tx)
        .await?;
    // The application locks the parent before the partition: the same order, no deadlock.
    tx.execute(format!("LOCK TABLE ONLY {parent} IN ACCESS EXCLUSIVE MODE").as_str())
        .await?;
    tx.execute(format!("LOCK TABLE {part} IN ACCESS EXCLUSIVE MODE").as_str())
        .await?;
    sqlx::query("SELECT set_config('statement_timeout', $1, true)")
        .bind(CHECK_UNDER_LOCK_TIMEOUT)
        .execute(&mut *tx)
        .await?;
    let live: bool = sqlx::query_scalar(&live_row_sql(part))
        .bind(cutoff)
        .fetch_one(&mut *tx)
        .await?;
    if live {
        tx.rollback().await?;
        return Ok(None);
    }
    sqlx::query("SELECT set_config('statement_timeout', '0', true)")
        .execute(&mut *tx)
        .await?;
    tx.execute(format!("ALTER TABLE {parent} DETACH PARTITION {part}").as_str())
        .await?;
    let counted = measure_and_drop(&mut tx, part, oid).await?;
    tx.commit().await?;
    Ok(Some(counted))
}

/// In the transaction that holds the (detached) partition's lock: its rows and size, then DROP.
async fn measure_and_drop(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    part: &str,
    oid: i64,
) -> Result<(i64, i64), sqlx::Error> {
    let (rows, size): (i64, Option<i64>) = sqlx::query_as(&format!(
        "SELECT count(*)::int8, pg_total_relation_size($1::oid)::int8 FROM {part}"
    ))
    .bind(oid)
    .fetch_one(&mut **tx)
    .await?;
    tx.execute(format!("DROP TABLE {part}").as_str()).await?;
    Ok((rows, size.unwrap_or(0)))
}

async fn count_and_drop(
    conn: &mut PgConnection,
    part: &str,
    oid: i64,
    lock_ms: i64,
) -> Result<(i64, i64), sqlx::Error> {
    let mut tx = conn.begin().await?;
    sqlx::query("SELECT set_config('lock_timeout', $1, true)")
        .bind(format!("{lock_ms}ms"))
        .execute(&mut *tx)
        .await?;
    tx.execute(format!("LOCK TABLE {part} IN ACCESS EXCLUSIVE MODE").as_str())
        .await?;
    let counted = measure_and_drop(&mut tx, part, oid).await?;
    tx.commit().await?;
    Ok(counted)
}

async fn is_detach_pending(conn: &mut PgConnection, oid: i64) -> Result<bool> {
    Ok(sqlx::query_scalar(
        "SELECT coalesce(bool_or((to_jsonb(i) ->> 'inhdetachpending')::boolean), false)
           FROM pg_inherits i WHERE i.inhrelid = $1::oid",
    )
    .bind(oid)
    .fetch_one(&mut *conn)
    .await?)
}

/// ", held by pid 123 (AccessShareLock, idle in transaction for 42 s), ..." (up to three).
async fn lock_holders(conn: &mut PgConnection, table_oid: u32) -> Result<String> {
    let rows: Vec<(i32, String, Option<String>, Option<f64>)> = sqlx::query_as(
        "SELECT l.pid, l.mode, a.state, extract(epoch FROM now() - a.xact_start)::float8
           FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
          WHERE l.locktype = 'relation' AND l.relation = $1::oid AND l.granted
            AND l.pid <> pg_backend_pid()
          ORDER BY a.xact_start NULLS LAST, l.pid
          LIMIT 3",
    )
    .bind(i64::from(table_oid))
    .fetch_all(&mut *conn)
    .await?;
    if rows.is_empty() {
        return Ok(String::new());
    }
    let list: Vec<String> = rows
        .iter()
        .map(|(pid, mode, state, secs)| {
            let mut s = format!("pid {pid} ({}", sanitize::line(mode));
            if let Some(state) = state {
                s.push_str(&format!(", {}", sanitize::line(state)));
            }
            if let Some(secs) = secs {
                s.push_str(&format!(", transaction open for {secs:.0} s"));
            }
            s.push(')');
            s
        })
        .collect();
    Ok(format!(" (held by {})", list.join(", ")))
}

/// Create the missing hourly partitions for the next `hours_ahead` hours by calling the partitioned
/// migration's `create_idempotency_partitions(hours_ahead, 0)` (never recreating past hours);
/// returns how many it created. Returns 0 without doing anything when that function is not in the
/// table's schema, or the watched table is not the `idempotency_records` it manages.
pub async fn ensure_ahead(
    conn: &mut PgConnection,
    table: &TableRef,
    hours_ahead: u32,
) -> Result<u32> {
    if table.table.as_str() != "idempotency_records" {
        return Ok(0);
    }
    let present: bool = sqlx::query_scalar(
        "SELECT to_regprocedure(quote_ident($1) || '.create_idempotency_partitions(integer, integer)') IS NOT NULL",
    )
    .bind(table.schema.as_str())
    .fetch_one(&mut *conn)
    .await?;
    if !present {
        return Ok(0);
    }
    if hours_ahead > MAX_HOURS_AHEAD {
        bail!("at most {MAX_HOURS_AHEAD} hours of partitions can be created ahead (asked for {hours_ahead})");
    }
    let created: i32 = sqlx::query_scalar(&format!(
        "SELECT {}.create_idempotency_partitions($1, 0)",
        table.schema.quoted()
    ))
    .bind(hours_ahead as i32)
    .fetch_one(&mut *conn)
    .await
    .map_err(|e| explain(e, table))
    .context("creating partitions ahead")?;
    Ok(created.max(0) as u32)
}

fn explain(e: sqlx::Error, table: &TableRef) -> anyhow::Error {
    match &e {
        sqlx::Error::Database(db) => {
            let msg = sanitize::line(db.message());
            if db.code().as_deref() == Some("42501") {
                anyhow!(
                    "{msg} (detaching and dropping partitions of {table} needs its owner's role)"
                )
            } else {
                anyhow!("{msg}")
            }
        }
        _ => anyhow::Error::new(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn h(n: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + chrono::Duration::hours(n)
    }

    fn part(lo: i64, now: i64) -> PartitionInfo {
        PartitionInfo {
            name: format!("p{lo}"),
            lower: Some(h(lo)),
            upper: Some(h(lo + 1)),
            is_default: false,
            rows: 10,
            rows_exact: true,
            size_bytes: 100,
            fully_expired: lo < now,
            straddles_now: lo <= now && now < lo + 1,
            detach_pending: false,
            blocked_by: None,
            by_expiry: true,
            ..PartitionInfo::default()
        }
    }

    #[test]
    fn states_and_totals() {
        let parts: Vec<_> = (-3..3).map(|lo| part(lo, 0)).collect();
        let states: Vec<_> = parts.iter().map(|p| p.state()).collect();
        use PartitionState::*;
        assert_eq!(states, [Expired, Expired, Expired, Current, Future, Future]);
        let t = totals(&parts);
        assert_eq!((t.partitions, t.rows, t.size_bytes), (6, 60, 600));
        assert_eq!(
            (t.droppable, t.droppable_rows, t.droppable_bytes),
            (3, 30, 300)
        );
        assert!(t.rows_exact);
    }

    #[test]
    fn coverage_stops_at_the_first_gap() {
        let mut parts: Vec<_> = (-2..5).map(|lo| part(lo, 0)).collect();
        assert_eq!(covered_until(&parts, h(0)), Some(h(5)));
        parts.remove(4); // the hour [2, 3)
        assert_eq!(covered_until(&parts, h(0)), Some(h(2)));
        assert_eq!(covered_until(&parts, h(10)), None);
    }
}

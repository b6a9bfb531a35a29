//! The cleanup plan: what a cleanup will do, decided once, by the same code for `--dry-run` and
//! for the run itself, so that the dry run prints exactly what the run then does.
//!
//! The plan reads the table model ([`crate::db::table`]) and decides:
//! - whether expiry can be judged at all, from the table's mapping ([`DeleteRule`]: an expiry
//!   column, or a TTL on the creation column, holding points in time read in a known zone);
//!   otherwise cleanup is refused with the reason (no expiry mapped, a permanent ledger, an
//!   unreadable column);
//! - the cutoff: the server's `now()`, once; only rows expired by it ever go (`expires_at <=
//!   cutoff`, or `created + ttl <= cutoff` read as `created <= cutoff - ttl`), and never a row
//!   in flight unless the mapping lets stale ones go (`inflight_stale_after`);
//! - for a partitioned table, which partitions are dropped whole, and why that is safe: a RANGE
//!   partition on `expires_at` whose upper bound is at or before the cutoff
//!   ([`DropProof::UpperBound`]), or a RANGE partition on another timestamp (a creation time)
//!   whose upper bound is past and which holds no row with `expires_at` after the cutoff
//!   ([`DropProof::Checked`], checked again under the table's lock before the drop). LIST and
//!   HASH partitions, the DEFAULT partition and anything else are cleaned row by row;
//! - how the remaining expired rows are found: the heap sweep or the index walk
//!   ([`Method`]), with the reason;
//! - how many rows that will delete: the expired rows outside the dropped partitions, counted
//!   (up to [`COUNT_CAP`]), plus the rows of the dropped partitions.

use anyhow::{anyhow, Result};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::postgres::types::Oid;
use sqlx::{PgConnection, PgPool};

use super::{
    sweep_lock_key, sweep_share_ok, CleanupOptions, DeleteRule, Method, MethodChoice, COUNT_CAP,
    SWEEP_MIN_ROWS,
};
use crate::db::partitions::{self, DropProof, DropStep, PartitionInfo};
use crate::db::table::{self, PartitionStrategy, TableInfo};
use crate::ident::TableRef;

/// `statement_timeout` of the plan's count of expired rows: 30 s, or less when
/// `--max-duration` leaves less (at least 1 ms: 0 would mean no timeout at all).
fn plan_timeout(opts: &CleanupOptions, started: std::time::Instant) -> std::time::Duration {
    let cap = std::time::Duration::from_secs(30);
    let left = match opts.max_duration {
        Some(max) => max.saturating_sub(started.elapsed()).min(cap),
        None => cap,
    };
    left.max(std::time::Duration::from_millis(1))
}

/// What a cleanup will do.
#[derive(Debug, Clone)]
pub struct CleanupPlan {
    pub info: TableInfo,
    /// What may be deleted (the table's mapping).
    pub rule: DeleteRule,
    /// The server's `now()` when the plan was made.
    pub cutoff: DateTime<Utc>,
    /// Every partition (empty for a plain table), in the order they are handled.
    pub partitions: Vec<PlannedPartition>,
    /// Expired rows (as of the cutoff) outside the partitions to drop, counted up to
    /// [`COUNT_CAP`]; `None` when the count did not finish within its timeout, or was not made
    /// (a sweep chosen on the planner's estimate: it counts what it deletes).
    pub row_by_row: Option<u64>,
    /// How the expired rows outside dropped partitions are found.
    pub method: Method,
    /// Why that method, in a few words.
    pub method_reason: String,
    /// The role may detach and drop partitions (owns the table).
    pub can_drop: bool,
}

/// One partition in the plan. JSON: `name`, `action` (`drop`, `row_by_row`), `proof`
/// (`upper_bound`, `checked`, or absent), `rows`, `rows_exact`, `reason`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedPartition {
    /// Raw from the catalog: sanitize before display.
    pub name: String,
    pub action: PartitionAction,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proof: Option<DropProof>,
    /// Rows it holds (for a drop: all of them go).
    pub rows: i64,
    pub rows_exact: bool,
    /// Why it is dropped or cleaned row by row.
    pub reason: String,
    #[serde(skip)]
    pub schema: String,
    #[serde(skip)]
    pub step: Option<DropStep>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PartitionAction {
    Drop,
    RowByRow,
}

impl CleanupPlan {
    /// The partitions to drop, in order.
    pub fn drop_steps(&self) -> Vec<DropStep> {
        self.partitions
            .iter()
            .filter_map(|p| p.step.clone())
            .collect()
    }

    /// Rows in the partitions to drop.
    pub fn rows_in_drops(&self) -> u64 {
        self.partitions
            .iter()
            .filter(|p| p.action == PartitionAction::Drop)
            .map(|p| p.rows.max(0) as u64)
            .sum()
    }

    /// Every expired row the cleanup will remove (capped as the count is); `None` when the
    /// count did not finish in time (never a zero that was not counted).
    pub fn expired(&self) -> Option<u64> {
        Some(self.row_by_row? + self.rows_in_drops())
    }
}

/// Make the plan. Refuses (an error naming the reason) when the table's expiry cannot be judged.
pub async fn make(pool: &PgPool, table: &TableRef, opts: &CleanupOptions) -> Result<CleanupPlan> {
    let mut conn = pool.acquire().await?;
    make_on(&mut conn, table, opts).await
}

/// [`make`] on one connection (the cleanup then goes on with it: no other connection to open,
/// no statement to prepare twice).
pub async fn make_on(
    conn: &mut PgConnection,
    table: &TableRef,
    opts: &CleanupOptions,
) -> Result<CleanupPlan> {
    let started = std::time::Instant::now();
    let info = table::resolve(&mut *conn, table).await?;
    // Under an ACCESS EXCLUSIVE lock every count would wait behind it and time out: say who
    // holds it instead of planning on figures that were never read.
    if let Some(lock) = crate::db::locks::table_lock(&mut *conn, info.oid).await? {
        return Err(crate::db::locks::TableLocked(lock).into());
    }
    let rule = DeleteRule::resolve(&opts.tables, table, &info).map_err(|why| anyhow!(why))?;
    let expiry_indexed = rule.indexed;
    // The cutoff and whether the role owns the table, in one round trip.
    let (cutoff, can_drop): (DateTime<Utc>, bool) = sqlx::query_as(
        "SELECT now(), pg_has_role(c.relowner, 'USAGE') FROM pg_class c WHERE c.oid = $1",
    )
    .bind(Oid(info.oid))
    .fetch_one(&mut *conn)
    .await?;

    let mut planned = Vec::new();
    if info.partitioned {
        let parts = partitions::list(&mut *conn, info.oid).await?;
        for p in parts {
            planned.push(plan_partition(&mut *conn, &info, &rule, p, cutoff, can_drop).await?);
        }
    }
    // A backlog that the planner puts at a large share of a plain table is swept without being
    // counted first: the count read as many pages as the sweep then deletes from (0.5 s of a
    // 1.8 s cleanup of 1M expired rows), and the sweep counts what it deletes and what it left.
    // The estimate only chooses the method; which rows go is still each row's own condition.
    let swept_uncounted =
        match estimate_deletable(&mut *conn, table, &info, &rule, cutoff, opts).await {
            Some(estimate) => {
                let estimate = estimate.round() as u64;
                let (method, reason) = choose_method(
                    &mut *conn,
                    table,
                    &info,
                    opts,
                    estimate,
                    expiry_indexed,
                    &rule.column,
                )
                .await?;
                (method == Method::Sweep).then(|| {
                    format!(
                        "{reason} (the planner's estimate: {} expired rows; counted as they go)",
                        crate::format::count(estimate.min(i64::MAX as u64) as i64)
                    )
                })
            }
            None => None,
        };
    let timeout = plan_timeout(opts, started);
    if let Some(method_reason) = swept_uncounted {
        // The dry run exists to count; it still names the method and reason the run will have.
        let row_by_row = if opts.dry_run {
            count_row_by_row(&mut *conn, table, &info, &rule, &planned, cutoff, timeout).await?
        } else {
            None
        };
        return Ok(CleanupPlan {
            info,
            rule,
            cutoff,
            partitions: planned,
            row_by_row,
            method: Method::Sweep,
            method_reason,
            can_drop,
        });
    }
    let row_by_row =
        count_row_by_row(&mut *conn, table, &info, &rule, &planned, cutoff, timeout).await?;
    // Without the expiry index, say what the cleanup will read before it starts.
    let heap_bytes: Option<i64> = if expiry_indexed {
        None
    } else {
        sqlx::query_scalar("SELECT pg_relation_size($1::oid)::int8")
            .bind(Oid(info.oid))
            .fetch_one(&mut *conn)
            .await?
    };
    let (method, mut method_reason) = choose_method(
        &mut *conn,
        table,
        &info,
        opts,
        row_by_row.unwrap_or(0),
        expiry_indexed,
        &rule.column,
    )
    .await?;
    if let Some(heap) = heap_bytes {
        let warning = super::unindexed::warning(method, heap, row_by_row);
        method_reason = if method == Method::Sweep && !opts_forced_sweep(opts) {
            warning
        } else {
            format!("{method_reason}; {warning}")
        };
    }
    Ok(CleanupPlan {
        info,
        rule,
        cutoff,
        partitions: planned,
        row_by_row,
        method,
        method_reason,
        can_drop,
    })
}

async fn plan_partition(
    conn: &mut PgConnection,
    info: &TableInfo,
    rule: &DeleteRule,
    p: PartitionInfo,
    cutoff: DateTime<Utc>,
    can_drop: bool,
) -> Result<PlannedPartition> {
    let row_by_row = |p: &PartitionInfo, reason: &str| PlannedPartition {
        name: p.name.clone(),
        action: PartitionAction::RowByRow,
        proof: None,
        rows: p.rows,
        rows_exact: p.rows_exact,
        reason: reason.to_owned(),
        schema: p.schema.clone(),
        step: None,
    };
    let strategy = info.partitioning.as_ref().map(|k| k.strategy);
    let past = p.upper.is_some_and(|u| u <= cutoff);
    let proof = if !rule.drops_partitions() {
        return Ok(row_by_row(
            &p,
            "whole partitions are dropped only for an expires_at column with nothing in flight: \
             its expired rows are deleted row by row",
        ));
    } else if p.is_default {
        return Ok(row_by_row(&p, "the DEFAULT partition can hold any row"));
    } else if p.by_expiry {
        if !past {
            return Ok(row_by_row(
                &p,
                "its upper bound is after the cutoff: it may hold live rows",
            ));
        }
        DropProof::UpperBound
    } else if strategy != Some(PartitionStrategy::Range) || p.lower.is_none() && p.upper.is_none() {
        return Ok(row_by_row(
            &p,
            "partitioned by LIST, HASH or a non-timestamp key: no bound says when its rows expire",
        ));
    } else if !past {
        return Ok(row_by_row(
            &p,
            "partitioned by another timestamp than expires_at, and new rows may still go here",
        ));
    } else {
        match has_live_row(conn, &p, cutoff).await? {
            Some(false) => DropProof::Checked,
            Some(true) => return Ok(row_by_row(
                &p,
                "holds rows that are not expired (partitioned by another column than expires_at)",
            )),
            None => {
                return Ok(row_by_row(
                    &p,
                    "could not check it for live rows in time (locked, or too slow)",
                ))
            }
        }
    };
    if !can_drop {
        return Ok(row_by_row(
            &p,
            "could be dropped, but dropping needs the table's owner: its rows are deleted instead",
        ));
    }
    if p.blocked_by.is_some() {
        return Ok(row_by_row(
            &p,
            "could be dropped, but another session holds an ACCESS EXCLUSIVE lock on it",
        ));
    }
    let reason = match proof {
        DropProof::UpperBound => "its upper bound is at or before the cutoff: every row expired",
        DropProof::Checked => {
            "no row expires after the cutoff (checked now, and again under its lock before the drop)"
        }
    };
    Ok(PlannedPartition {
        name: p.name.clone(),
        action: PartitionAction::Drop,
        proof: Some(proof),
        rows: p.rows,
        rows_exact: p.rows_exact,
        reason: reason.to_owned(),
        schema: p.schema.clone(),
        step: Some(DropStep {
            oid: p.oid,
            schema: p.schema.clone(),
            name: p.name.clone(),
            proof,
            detach_pending: p.detach_pending,
        }),
    })
}

/// Whether the partition holds a row with `expires_at > cutoff` or NULL; `None` when the check
/// could not finish (locked, or timed out).
async fn has_live_row(
    conn: &mut PgConnection,
    p: &PartitionInfo,
    cutoff: DateTime<Utc>,
) -> Result<Option<bool>> {
    let Ok(part) = TableRef::new(&p.schema, &p.name) else {
        return Ok(None);
    };
    let mut tx = crate::db::connect::begin_bounded(conn, std::time::Duration::from_secs(5)).await?;
    sqlx::query("SELECT set_config('lock_timeout', '500ms', true)")
        .execute(&mut *tx)
        .await?;
    let live: Result<bool, sqlx::Error> =
        sqlx::query_scalar(&partitions::live_row_sql(&part.qualified()))
            .bind(cutoff)
            .fetch_one(&mut *tx)
            .await;
    match live {
        Ok(live) => {
            tx.commit().await?;
            Ok(Some(live))
        }
        Err(e)
            if matches!(
                crate::db::connect::db_sqlstate(&e).as_deref(),
                Some("55P03" | "57014" | "42P01")
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// The planner's estimate of the rows the rule lets go (`EXPLAIN` of the count's scan: no row
/// is read), when it may choose the method alone: an automatic choice for a plain table with
/// the expiry index (a dry run chooses the same way, then counts). `None` otherwise, or when
/// EXPLAIN fails (the count then decides, as before).
async fn estimate_deletable(
    conn: &mut PgConnection,
    table: &TableRef,
    info: &TableInfo,
    rule: &DeleteRule,
    cutoff: DateTime<Utc>,
    opts: &CleanupOptions,
) -> Option<f64> {
    if info.partitioned || !rule.indexed || opts.method != MethodChoice::Auto {
        return None;
    }
    let sql = format!(
        "EXPLAIN (FORMAT JSON) SELECT 1 FROM {} WHERE {}",
        table.qualified(),
        rule.deletable("", "$1", "$2", "$3")
    );
    let q = sqlx::query_scalar::<_, sqlx::types::Json<serde_json::Value>>(&sql)
        .bind(rule.bound(cutoff));
    match rule.bind_scalar(q, cutoff).fetch_one(&mut *conn).await {
        Ok(plan) => plan_rows(&plan.0),
        Err(e) => {
            tracing::info!("no planner estimate of the backlog ({e}): counting it");
            None
        }
    }
}

/// `Plan Rows` of the top node of an `EXPLAIN (FORMAT JSON)` document.
pub(super) fn plan_rows(plan: &serde_json::Value) -> Option<f64> {
    plan.get(0)?
        .get("Plan")?
        .get("Plan Rows")?
        .as_f64()
        .filter(|r| r.is_finite() && *r >= 0.0)
}

/// Expired rows outside the partitions to drop, counted up to [`COUNT_CAP`]; `None` when the
/// count timed out.
async fn count_row_by_row(
    conn: &mut PgConnection,
    table: &TableRef,
    info: &TableInfo,
    rule: &DeleteRule,
    planned: &[PlannedPartition],
    cutoff: DateTime<Utc>,
    timeout: std::time::Duration,
) -> Result<Option<u64>> {
    let targets: Vec<TableRef> = if info.partitioned {
        planned
            .iter()
            .filter(|p| p.action == PartitionAction::RowByRow)
            .filter_map(|p| TableRef::new(&p.schema, &p.name).ok())
            .collect()
    } else {
        vec![table.clone()]
    };
    let mut total = 0u64;
    for t in targets {
        let mut tx = crate::db::connect::begin_bounded(conn, timeout).await?;
        let sql = format!(
            "SELECT count(*)::int8 FROM (SELECT 1 FROM {} WHERE {} LIMIT $2) s",
            t.qualified(),
            rule.deletable("", "$1", "$3", "$4")
        );
        let q = sqlx::query_scalar(&sql)
            .bind(rule.bound(cutoff))
            .bind(COUNT_CAP.saturating_sub(total) as i64);
        let n: Result<i64, sqlx::Error> = rule.bind_scalar(q, cutoff).fetch_one(&mut *tx).await;
        match n {
            Ok(n) => {
                tx.commit().await?;
                total += n.max(0) as u64;
                if total >= COUNT_CAP {
                    break;
                }
            }
            Err(e) if crate::db::connect::db_sqlstate(&e).as_deref() == Some("57014") => {
                tracing::warn!("counting the expired rows timed out; no count");
                return Ok(None);
            }
            Err(e) => {
                return Err(super::explain_write_error_as(
                    &e, "SELECT", table, "cleanup",
                ))
            }
        }
    }
    Ok(Some(total))
}

/// `--method sweep` (its reason says so, and is kept).
fn opts_forced_sweep(opts: &CleanupOptions) -> bool {
    opts.method == MethodChoice::Sweep
}

/// Sweep or walk, and why. The sweep needs a plain table, PostgreSQL 14+ (TID range scans), no
/// fixed batch size, and no other sweep of the table running; auto sweeps when the backlog is
/// at least a quarter of the table and at least [`SWEEP_MIN_ROWS`] rows, or when no index leads
/// with the expiry column (the walk would then read the whole table for every batch).
async fn choose_method(
    conn: &mut PgConnection,
    table: &TableRef,
    info: &TableInfo,
    opts: &CleanupOptions,
    expired: u64,
    expiry_indexed: bool,
    column: &str,
) -> Result<(Method, String)> {
    let walk = |why: &str| Ok((Method::Walk, why.to_owned()));
    if info.partitioned {
        return walk("a partitioned table is walked partition by partition along the index");
    }
    if opts.fixed_batch.is_some() {
        return walk("--batch-size fixes the rows per batch");
    }
    if opts.method == MethodChoice::Walk {
        return walk("--method walk");
    }
    if info.server_version_num < 140_000 {
        return walk("PostgreSQL 13 has no TID range scan to sweep with");
    }
    let key = sweep_lock_key(info.oid);
    // Another sweep's advisory lock, and the table's row estimate (for the share below), in one
    // round trip.
    let (other_sweep, reltuples): (bool, f64) = sqlx::query_as(
        "SELECT EXISTS (SELECT 1 FROM pg_locks
                         WHERE locktype = 'advisory' AND classid = $1 AND objid = $2
                           AND objsubid = 1 AND granted
                           AND database = (SELECT oid FROM pg_database WHERE datname = current_database())),
                (SELECT reltuples::float8 FROM pg_class WHERE oid = $3)",
    )
    .bind(Oid((key >> 32) as u32))
    .bind(Oid(key as u32))
    .bind(Oid(info.oid))
    .fetch_one(&mut *conn)
    .await?;
    if other_sweep {
        return walk("another cleanup is sweeping this table");
    }
    if opts.method == MethodChoice::Sweep {
        return Ok((Method::Sweep, "--method sweep".into()));
    }
    if !expiry_indexed {
        return Ok((
            Method::Sweep,
            format!(
                "no index leads with {}: the walk would read the table for every batch",
                crate::sanitize::line(column)
            ),
        ));
    }
    if expired < SWEEP_MIN_ROWS {
        return walk("a small backlog: the index walk is quick");
    }
    let rows = if reltuples >= 0.0 {
        reltuples
    } else {
        // Never analyzed: count, but never past the point where the share is too small.
        let limit = (expired as f64 / super::SWEEP_MIN_SHARE).ceil() as i64 + 1;
        let n: i64 = sqlx::query_scalar(&format!(
            "SELECT count(*)::int8 FROM (SELECT 1 FROM {} LIMIT $1) s",
            table.qualified()
        ))
        .bind(limit)
        .fetch_one(&mut *conn)
        .await?;
        n as f64
    };
    if sweep_share_ok(expired, rows) {
        Ok((
            Method::Sweep,
            "the backlog is a large share of the table: one pass over the heap".into(),
        ))
    } else {
        walk("the backlog is a small share of the table: the index walk reads only it")
    }
}

#[cfg(test)]
mod tests {
    use super::plan_rows;

    #[test]
    fn plan_rows_reads_the_top_node_and_refuses_what_is_not_a_count() {
        let doc = serde_json::json!([{"Plan": {"Node Type": "Seq Scan", "Plan Rows": 1234.0}}]);
        assert_eq!(plan_rows(&doc), Some(1234.0));
        assert_eq!(plan_rows(&serde_json::json!([{"Plan": {}}])), None);
        assert_eq!(plan_rows(&serde_json::json!([])), None);
        assert_eq!(
            plan_rows(&serde_json::json!({"Plan": {"Plan Rows": 1}})),
            None
        );
        assert_eq!(
            plan_rows(&serde_json::json!([{"Plan": {"Plan Rows": -1.0}}])),
            None
        );
    }
}

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

mod drop;
mod list;
#[cfg(test)]
mod tests;

pub use drop::*;
pub use list::*;

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

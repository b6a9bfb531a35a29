//! Dropping expired partitions: only provably expired ones, checked again under lock right before DETACH/DROP.

use super::*;

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
pub(super) const CHECK_UNDER_LOCK_TIMEOUT: &str = "1s";

pub(super) async fn drop_inner(
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
pub(super) async fn check_and_drop(
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
pub(super) async fn measure_and_drop(
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

pub(super) async fn count_and_drop(
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

pub(super) async fn is_detach_pending(conn: &mut PgConnection, oid: i64) -> Result<bool> {
    Ok(sqlx::query_scalar(
        "SELECT coalesce(bool_or((to_jsonb(i) ->> 'inhdetachpending')::boolean), false)
           FROM pg_inherits i WHERE i.inhrelid = $1::oid",
    )
    .bind(oid)
    .fetch_one(&mut *conn)
    .await?)
}

/// ", held by pid 123 (AccessShareLock, idle in transaction for 42 s), ..." (up to three).
pub(super) async fn lock_holders(conn: &mut PgConnection, table_oid: u32) -> Result<String> {
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

//! The index walk: keyset batches along the expiry column's index (or the creation column's, for a TTL), FOR UPDATE SKIP LOCKED, adaptive batch size.

use super::*;

/// How the index walk deletes.
pub(super) struct WalkHow {
    /// `FOR UPDATE SKIP LOCKED` (needs UPDATE on some column).
    pub(super) lock_rows: bool,
    /// Delete by tuple id (a plain table) rather than by key (a partitioned one).
    pub(super) by_ctid: bool,
    /// Rows already gone with dropped partitions, counted in `deleted`.
    pub(super) already_deleted: u64,
}

/// Walk `idx_idempotency_expires` in keyset batches, each its own transaction, the batch size
/// adapted to `target_batch`. Returns (deleted, batches, why it stopped).
pub(super) async fn walk<F: FnMut(&CleanupProgress)>(
    pool: &PgPool,
    run: &Run<'_>,
    how: &WalkHow,
    reporter: &mut Reporter<'_, F>,
) -> Result<(u64, u64, StopReason)> {
    let opts = run.opts;
    let deleting = Instant::now();
    let mut batch_size = initial_batch_size(opts);
    let mut last_seen: Option<Ts> = None;
    let (mut deleted, mut batches, mut retries) = (how.already_deleted, 0u64, 0u32);
    loop {
        if let Some(stopped) = run.should_stop() {
            return Ok((deleted, batches, stopped));
        }
        let t0 = Instant::now();
        let batch = match delete_batch(
            pool, run.table, run.rule, how, last_seen, run.cutoff, batch_size,
        )
        .await
        {
            Ok(b) => {
                retries = 0;
                b
            }
            // Without row locks (no UPDATE privilege for FOR UPDATE SKIP LOCKED) a row that
            // another session keeps locked stops the walk: what is left is counted and the
            // run reported incomplete, not failed.
            Err(e)
                if !how.lock_rows
                    && retries >= MAX_RETRIES
                    && db_sqlstate(&e).as_deref() == Some("55P03") =>
            {
                tracing::warn!("an expired row stays locked by another session: stopping here");
                return Ok((deleted, batches, StopReason::Incomplete));
            }
            Err(e) if is_transient(&e) && retries < MAX_RETRIES => {
                retries += 1;
                tracing::warn!("cleanup batch of {batch_size} rows failed, retrying: {e}");
                if db_sqlstate(&e).as_deref() == Some("57014") {
                    batch_size = clamp_batch((batch_size / 4).max(1), opts);
                }
                run.retry_pause(retries).await;
                continue;
            }
            Err(e) => return Err(run.failed(&e, deleted, batches)),
        };
        let took = t0.elapsed();
        if batch.candidates == 0 {
            return Ok((deleted, batches, StopReason::CaughtUp));
        }
        deleted += batch.deleted;
        batches += 1;
        if batch.max_expires.is_some() {
            last_seen = batch.max_expires;
        }
        reporter.report(CleanupProgress {
            batch_size,
            last_batch: took,
            ..run.progress(deleted, batches, deleting)
        });
        batch_size = next_batch_size(batch_size, batch.deleted, took, opts);
    }
}

/// One batch, in its own transaction.
pub(super) async fn delete_batch(
    pool: &PgPool,
    table: &TableRef,
    rule: &DeleteRule,
    how: &WalkHow,
    last_seen: Option<Ts>,
    cutoff: DateTime<Utc>,
    limit: u32,
) -> Result<Batch, sqlx::Error> {
    let t = table.qualified();
    let lock = if how.lock_rows {
        "FOR UPDATE SKIP LOCKED"
    } else {
        ""
    };
    // On a plain table the batch is deleted by its tuple ids (a TID scan: no primary-key probe
    // per row, about twice as fast); the ids come from the same statement, so they cannot
    // point at another row. A partitioned table has no unique ctid: join on the key instead,
    // and the DELETE's own range condition lets the planner read exactly the batch's slice of
    // the expiry index whatever join it picks. Either way the DELETE repeats the whole
    // condition (expired by the cutoff, not in flight), so no live or in-flight row can go.
    // `col` is the column in expiry order: the expiry column, or the creation column of a TTL
    // (compared with `cutoff - ttl`, $2).
    let col = &rule.quoted;
    let (key, delete) = if how.by_ctid {
        (
            "ctid".to_owned(),
            format!(
                "DELETE FROM {t}
                  WHERE ctid = ANY (ARRAY(SELECT ctid FROM batch)) AND {}
                 RETURNING {col}",
                rule.deletable("", "$2", "$4", "$5")
            ),
        )
    } else {
        let join: Vec<String> = rule.key.iter().map(|k| format!("d.{k} = b.{k}")).collect();
        (
            rule.key.join(", "),
            format!(
                "DELETE FROM {t} AS d USING batch AS b
                  WHERE {} AND d.{col} = b.{col}
                    AND d.{col} >= coalesce($1, '-infinity')
                    AND d.{col} <= (SELECT max({col}) FROM batch)
                    AND {}
                 RETURNING d.{col}",
                join.join(" AND "),
                rule.deletable("d.", "$2", "$4", "$5")
            ),
        )
    };
    let key = if key.split(", ").any(|k| k == col.as_str()) {
        key
    } else {
        format!("{key}, {col}")
    };
    let sql = format!(
        "WITH batch AS (
             SELECT {key} FROM {t}
              WHERE {col} >= coalesce($1, '-infinity') AND {}
              ORDER BY {col}
              LIMIT $3
              {lock}
         ), del AS ({delete})
         SELECT (SELECT count(*) FROM batch)::int8,
                (SELECT max({col}) FROM batch)::timestamptz,
                (SELECT count(*) FROM del)::int8",
        rule.deletable("", "$2", "$4", "$5")
    );
    let mut tx = pool.begin().await?;
    sqlx::query(
        "SELECT set_config('statement_timeout', $1, true), set_config('lock_timeout', $2, true)",
    )
    .bind(BATCH_STATEMENT_TIMEOUT)
    .bind(BATCH_LOCK_TIMEOUT)
    .execute(&mut *tx)
    .await?;
    let q = sqlx::query_as(&sql)
        .bind(last_seen)
        .bind(rule.bound(cutoff))
        .bind(i64::from(limit));
    let (candidates, max_expires, deleted): (i64, Option<Ts>, i64) =
        rule.bind(q, cutoff).fetch_one(&mut *tx).await?;
    tx.commit().await?;
    Ok(Batch {
        candidates: candidates.max(0) as u64,
        deleted: deleted.max(0) as u64,
        max_expires,
    })
}

pub(super) fn initial_batch_size(opts: &CleanupOptions) -> u32 {
    match opts.fixed_batch {
        Some(n) => n.max(1),
        None => clamp_batch(opts.initial_batch, opts),
    }
}

pub(super) fn clamp_batch(n: u32, opts: &CleanupOptions) -> u32 {
    if let Some(fixed) = opts.fixed_batch {
        return fixed.max(1);
    }
    let min = opts.min_batch.max(1);
    let max = opts.max_batch.max(min);
    n.clamp(min, max)
}

/// The next batch size: the rate of the last batch times the target duration, at most twice
/// the last size, within `[min_batch, max_batch]`. A fixed batch size never changes.
pub(super) fn next_batch_size(
    current: u32,
    rows: u64,
    took: Duration,
    opts: &CleanupOptions,
) -> u32 {
    if let Some(fixed) = opts.fixed_batch {
        return fixed.max(1);
    }
    let grown = f64::from(current) * 2.0;
    let proposed = if rows == 0 || took.is_zero() {
        grown
    } else {
        rows as f64 * opts.target_batch.as_secs_f64() / took.as_secs_f64()
    };
    let n = proposed.min(grown).round().clamp(1.0, f64::from(u32::MAX)) as u32;
    clamp_batch(n, opts)
}

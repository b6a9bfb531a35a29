//! One cleanup run: the cutoff, the method chosen, the progress reports and the summary.

use super::*;

/// One batch's outcome.
pub(super) struct Batch {
    /// Rows the batch selected (and locked, when it could).
    pub(super) candidates: u64,
    /// Rows it deleted.
    pub(super) deleted: u64,
    /// Largest `expires_at` it selected: where the next batch starts (`>=`, as several rows
    /// can share one `expires_at`).
    pub(super) max_expires: Option<Ts>,
}

/// Delete every row expired by the cutoff (the server's `now()` at the start) that the table's
/// mapping lets go ([`DeleteRule`]: never a row in flight unless stale ones may go), in short
/// batches, until caught up, cancelled or `max_duration` passed, following the plan that
/// [`super::plan::make`] makes (a dry run returns that plan's figures and does nothing).
/// `progress` is called after every batch. What was deleted stays deleted when it stops early
/// or fails.
pub async fn cleanup(
    pool: &PgPool,
    table: &TableRef,
    opts: &CleanupOptions,
    cancel: &CancellationToken,
    mut progress: impl FnMut(&CleanupProgress) + Send,
) -> Result<CleanupSummary> {
    let started = Instant::now();
    // One connection plans, checks the privileges and sweeps (and counts what is left): each
    // connection opened and each statement prepared again costs a round trip or more, which a
    // small backlog notices.
    let mut conn = pool.acquire().await?;
    // --max-duration bounds the whole run: the plan's count gets what is left of it (a count
    // that does not finish leaves the backlog uncounted, never zero), and the batches stop when
    // it is over. The client-side bound below only catches a server that answers nothing.
    let plan = match opts.max_duration {
        Some(max) => tokio::time::timeout(
            max + Duration::from_secs(10),
            super::plan::make_on(&mut conn, table, opts),
        )
        .await
        .map_err(|_| {
            anyhow!(
                "cleanup stopped before deleting anything: the server did not answer the plan's queries within --max-duration ({} s) + 10 s",
                max.as_secs_f64()
            )
        })??,
        None => super::plan::make_on(&mut conn, table, opts).await?,
    };
    if opts.dry_run && plan.row_by_row.is_none() {
        bail!("the dry run could not count the expired rows within its 30 s statement timeout: it has no figure to give (the run itself would start deleting anyway)");
    }
    let privs = privileges(&mut conn, plan.info.oid).await?;
    let planned: Vec<PartitionOutcome> = plan
        .partitions
        .iter()
        .map(|p| PartitionOutcome {
            planned: p.clone(),
            dropped: None,
            note: None,
        })
        .collect();
    let expired_at_start = plan.expired();
    let summary = |deleted, batches, stopped, method, skipped, partitions| CleanupSummary {
        deleted,
        batches,
        duration: started.elapsed(),
        cutoff: plan.cutoff,
        stopped,
        dry_run: opts.dry_run,
        expired_at_start,
        method,
        method_reason: plan.method_reason.clone(),
        skipped,
        partitions,
        rule: plan.rule.describe(),
        references: plan.rule.references.clone(),
        wal_compression: None,
        sweep_connections: None,
    };
    if opts.dry_run {
        return Ok(summary(0, 0, StopReason::CaughtUp, plan.method, 0, planned));
    }
    if plan.info.in_recovery {
        bail!("the server is a hot standby (in recovery): nothing can be deleted there; run cleanup on the primary");
    }
    let mut missing = Vec::new();
    if !privs.schema_usage {
        return Err(anyhow!(
            "permission denied: role {role} lacks USAGE on schema {schema} (GRANT USAGE ON SCHEMA {qs} TO {qr})",
            role = sanitize::line(&privs.role),
            schema = sanitize::line(table.schema.as_str()),
            qs = sql_ident(table.schema.as_str()),
            qr = sql_ident(&privs.role),
        ));
    }
    if !privs.select {
        missing.push("SELECT");
    }
    if !privs.delete {
        missing.push("DELETE");
    }
    if !missing.is_empty() {
        return Err(privilege_error(&privs.role, &missing.join(", "), table));
    }
    // The sweep goes on with this connection; anything else gives it back to the pool first
    // (the partitions below and the walk take their own: a pool of one must not wait on it).
    let sweep_conn = if plan.method == Method::Sweep {
        Some(conn.detach())
    } else {
        conn.return_to_pool().await;
        None
    };
    // Partitions that provably hold no live row go whole (DETACH, DROP: no row-by-row DELETE,
    // almost no WAL); the batches below then see only the rest.
    let mut partitions = planned;
    let steps = plan.drop_steps();
    if !steps.is_empty() {
        let mut conn = pool.acquire().await?;
        let done = crate::db::partitions::drop_planned(
            &mut conn,
            table,
            &steps,
            plan.cutoff,
            PARTITION_LOCK_TIMEOUT,
        )
        .await;
        // The dedicated settings of drop_planned must not go back into the pool.
        conn.close_on_drop();
        for d in done.context("dropping expired partitions")? {
            if let Some(o) = partitions.iter_mut().find(|o| o.planned.name == d.name) {
                if let Some(note) = &d.note {
                    tracing::warn!("partition {}: {note}", d.name);
                }
                o.note = d.note.clone();
                o.dropped = Some(d);
            }
        }
    }
    if plan.info.partitioned && plan.can_drop {
        let mut conn = pool.acquire().await?;
        if let Err(e) = crate::db::partitions::ensure_ahead(&mut conn, table, 48).await {
            tracing::warn!("could not create partitions ahead: {e:#}");
        }
    }
    let dropped_rows: u64 = partitions
        .iter()
        .filter_map(|o| o.dropped.as_ref())
        .filter(|d| d.dropped)
        .map(|d| d.rows.max(0) as u64)
        .sum();
    let run = Run {
        table,
        rule: &plan.rule,
        cutoff: plan.cutoff,
        opts,
        cancel,
        started,
        expired_at_start,
    };
    let mut reporter = Reporter::new(&mut progress);
    let sweeper = match sweep_conn {
        Some(c) => {
            start_sweep(
                c,
                table,
                &plan.rule,
                plan.info.oid,
                plan.info.server_version_num,
                opts.sweep_sync_commit,
            )
            .await?
        }
        None => None,
    };
    let helpers = match &sweeper {
        Some(s) => {
            sweep_helpers(
                pool,
                opts.sweep_workers.clamp(1, MAX_SWEEP_WORKERS),
                s.wal_compression.as_deref(),
                opts.sweep_sync_commit,
            )
            .await
        }
        None => Vec::new(),
    };
    let wal_compression = sweeper.as_ref().and_then(|s| s.wal_compression.clone());
    // The lead connection and its helpers; `None` when the rows are walked.
    let sweep_connections = sweeper.as_ref().map(|_| 1 + helpers.len() as u32);
    // The sweep's connection, kept to count what is left (then closed: that releases the
    // sweep's advisory lock).
    let mut swept = None;
    let mut met_lock = false;
    let (outcome, method) = match sweeper {
        Some(sweeper) => {
            let outcome =
                sweep(sweeper, helpers, &run, &mut reporter)
                    .await
                    .map(|(c, o, locked)| {
                        swept = Some(c);
                        met_lock = locked;
                        o
                    });
            (outcome, Method::Sweep)
        }
        None => {
            let how = WalkHow {
                // FOR UPDATE needs UPDATE on some column; without it batches run without row
                // locks, which is still correct (the DELETE counts only what it deleted), only
                // concurrent cleanups may then wait for each other's batches.
                lock_rows: privs.update,
                by_ctid: !plan.info.partitioned,
                already_deleted: dropped_rows,
            };
            (walk(pool, &run, &how, &mut reporter).await, Method::Walk)
        }
    };
    reporter.flush();
    let (deleted, batches, mut stopped) = outcome?;
    // What is left of the expired rows (as of the cutoff) was skipped: locked by another
    // session, being deleted by another cleanup, or written during the run. Counted, never
    // assumed zero.
    let mut skipped = 0;
    let finished = matches!(stopped, StopReason::CaughtUp | StopReason::Incomplete);
    let recount = finished
        && match swept.as_mut() {
            Some(c) => sweep_needs_recount(c, &plan, met_lock).await,
            None => true,
        };
    if recount {
        let left = match swept.as_mut() {
            Some(c) => left_behind_on(c, table, &plan.rule, plan.cutoff, true).await,
            None => left_behind(pool, table, &plan.rule, plan.cutoff).await,
        };
        match left {
            Ok(0) => {}
            Ok(n) => {
                skipped = n;
                stopped = StopReason::Incomplete;
            }
            Err(e) => {
                tracing::warn!("could not count the rows left behind: {e:#}");
                stopped = StopReason::Incomplete;
            }
        }
    }
    if let Some(c) = swept {
        let _ = sqlx::Connection::close(c).await;
    }
    let mut done = summary(deleted, batches, stopped, method, skipped, partitions);
    done.wal_compression = wal_compression;
    done.sweep_connections = sweep_connections;
    // A sweep chosen on the planner's estimate did not count first: what it deleted and what
    // the count after it found left are the backlog at the start (every expired row of the
    // pages that existed then). Stopped early, the backlog stays uncounted.
    let counted_after = match done.stopped {
        StopReason::CaughtUp => true,
        StopReason::Incomplete => skipped > 0,
        StopReason::Cancelled | StopReason::MaxDuration => false,
    };
    if plan.row_by_row.is_none() && method == Method::Sweep && counted_after {
        done.expired_at_start = Some(deleted + skipped + plan.rows_in_drops());
    }
    Ok(done)
}

/// Whether what a sweep left must be counted. A sweep deletes every row of the pages that
/// existed at its start that the rule lets go, as the single DELETE would; an expired row can
/// only be left where a range met a locked row, where the rule keeps rows in flight (one may
/// finish after its page was swept), or where an UPDATE moved an expired row to a page already
/// swept. In a table that statistics show never updated (`n_tup_upd` 0: the guide's immutable
/// records), with no row in flight and no lock met, there is nothing to count: the count would
/// read every dead tuple the sweep left and prune its page (a third of a sweep's time).
async fn sweep_needs_recount(
    conn: &mut PgConnection,
    plan: &super::plan::CleanupPlan,
    met_lock: bool,
) -> bool {
    if met_lock || plan.rule.inflight.is_some() {
        return true;
    }
    let updated: Result<i64, sqlx::Error> = sqlx::query_scalar(
        "SELECT (pg_stat_get_tuples_updated($1::oid) + pg_stat_get_xact_tuples_updated($1::oid))::int8",
    )
    .bind(Oid(plan.info.oid))
    .fetch_one(&mut *conn)
    .await;
    !matches!(updated, Ok(0))
}

/// Expired rows (as of `cutoff`) still there after a cleanup, counted up to [`COUNT_CAP`].
pub(super) async fn left_behind(
    pool: &PgPool,
    table: &TableRef,
    rule: &DeleteRule,
    cutoff: DateTime<Utc>,
) -> Result<u64> {
    let mut conn = pool.acquire().await?;
    left_behind_on(&mut conn, table, rule, cutoff, false).await
}

/// [`left_behind`] on the given connection. `session_bounded`: the connection's session
/// already has the 30 s statement timeout (the sweep's): the count runs alone, without the
/// three round trips of a bounded transaction.
pub(super) async fn left_behind_on(
    conn: &mut PgConnection,
    table: &TableRef,
    rule: &DeleteRule,
    cutoff: DateTime<Utc>,
    session_bounded: bool,
) -> Result<u64> {
    let sql = format!(
        "SELECT count(*)::int8 FROM (SELECT 1 FROM {} WHERE {} LIMIT $2) s",
        table.qualified(),
        rule.deletable("", "$1", "$3", "$4")
    );
    let q = sqlx::query_scalar(&sql)
        .bind(rule.bound(cutoff))
        .bind(COUNT_CAP as i64);
    let q = rule.bind_scalar(q, cutoff);
    let n: i64 = if session_bounded {
        q.fetch_one(&mut *conn).await?
    } else {
        let mut tx = crate::db::connect::begin_bounded(conn, LEFT_BEHIND_TIMEOUT).await?;
        let n = q.fetch_one(&mut *tx).await?;
        tx.commit().await?;
        n
    };
    Ok(n.max(0) as u64)
}

/// `statement_timeout` of the count of what is left (the sweep's session has the same).
pub(super) const LEFT_BEHIND_TIMEOUT: Duration = Duration::from_secs(30);

/// What both ways of finding the rows share.
pub(super) struct Run<'a> {
    pub(super) table: &'a TableRef,
    pub(super) rule: &'a DeleteRule,
    pub(super) cutoff: DateTime<Utc>,
    pub(super) opts: &'a CleanupOptions,
    pub(super) cancel: &'a CancellationToken,
    pub(super) started: Instant,
    pub(super) expired_at_start: Option<u64>,
}

impl Run<'_> {
    /// Checked before every batch: cancelled, or `max_duration` passed.
    pub(super) fn should_stop(&self) -> Option<StopReason> {
        if self.cancel.is_cancelled() {
            Some(StopReason::Cancelled)
        } else if self
            .opts
            .max_duration
            .is_some_and(|max| self.started.elapsed() >= max)
        {
            Some(StopReason::MaxDuration)
        } else {
            None
        }
    }

    /// The pause before the `retries`-th retry of a failed batch (cut short by cancelling).
    pub(super) async fn retry_pause(&self, retries: u32) {
        tokio::select! {
            _ = self.cancel.cancelled() => {}
            _ = tokio::time::sleep(Duration::from_millis(200 * u64::from(retries))) => {}
        }
    }

    /// A batch failed for good: the readable error, saying what was deleted before it.
    pub(super) fn failed(&self, e: &sqlx::Error, deleted: u64, batches: u64) -> anyhow::Error {
        let err = explain_cleanup_error(e, self.table);
        if deleted > 0 {
            err.context(format!(
                "cleanup stopped after deleting {deleted} expired rows in {batches} batches"
            ))
        } else {
            err
        }
    }

    /// The progress report after a batch; `deleting` is when the first batch started.
    pub(super) fn progress(
        &self,
        deleted: u64,
        batches: u64,
        deleting: Instant,
    ) -> CleanupProgress {
        CleanupProgress {
            deleted,
            batches,
            remaining_estimate: self.expired_at_start.map(|n| n.saturating_sub(deleted)),
            elapsed: self.started.elapsed(),
            rows_per_sec: match deleting.elapsed().as_secs_f64() {
                secs if secs > 0.0 => deleted as f64 / secs,
                _ => 0.0,
            },
            batch_size: 0,
            last_batch: Duration::ZERO,
            method: Method::Walk,
            pages_done: None,
            pages_total: None,
        }
    }
}

/// Calls the progress callback after every walk batch, and after a sweep batch at most every
/// [`PROGRESS_EVERY`], always with the latest figures; [`Reporter::flush`] delivers the last.
pub(super) struct Reporter<'a, F: FnMut(&CleanupProgress)> {
    pub(super) f: &'a mut F,
    pub(super) last: Option<Instant>,
    pub(super) pending: Option<CleanupProgress>,
}

impl<'a, F: FnMut(&CleanupProgress)> Reporter<'a, F> {
    pub(super) fn new(f: &'a mut F) -> Self {
        Self {
            f,
            last: None,
            pending: None,
        }
    }

    pub(super) fn report(&mut self, p: CleanupProgress) {
        let every = match p.method {
            Method::Walk => Duration::ZERO,
            Method::Sweep => PROGRESS_EVERY,
        };
        if self.last.is_none_or(|t| t.elapsed() >= every) {
            (self.f)(&p);
            self.last = Some(Instant::now());
            self.pending = None;
        } else {
            self.pending = Some(p);
        }
    }

    pub(super) fn flush(&mut self) {
        if let Some(p) = self.pending.take() {
            (self.f)(&p);
            self.last = Some(Instant::now());
        }
    }
}

/// The auto rule: the expired rows are at least [`SWEEP_MIN_SHARE`] of the table's rows
/// (which, being an estimate, may be below the exact expired count).
pub(crate) fn sweep_share_ok(expired: u64, table_rows: f64) -> bool {
    expired >= SWEEP_MIN_ROWS && expired as f64 >= SWEEP_MIN_SHARE * table_rows.max(expired as f64)
}

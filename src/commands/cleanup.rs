//! `idemtop cleanup`: delete the expired rows in short, adaptive batches, without the
//! dashboard. Progress goes to stderr (only when it is a terminal), the summary to stdout.
//! SIGINT, SIGTERM or SIGHUP stops between batches and still prints the summary (exit 128 + the
//! signal's number); a second signal exits at once.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use anyhow::Result;
use tokio_util::sync::CancellationToken;

use crate::db::maintenance::{
    self, CleanupOptions, CleanupProgress, CleanupSummary, Method, MethodChoice, StopReason,
};
use crate::db::plan::PartitionAction;
use crate::options::{Format, Global};
use crate::sanitize;

#[derive(clap::Args, Debug, Clone)]
pub struct CleanupArgs {
    /// Rows per batch; disables the adaptive batch size.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub batch_size: Option<u32>,

    /// Only count the expired rows; delete nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Stop (between batches) after this many seconds.
    #[arg(long, value_name = "SECS")]
    pub max_duration: Option<u64>,

    /// Wanted duration of one index-walk batch; the batch size adapts towards it.
    #[arg(long, default_value_t = 100, value_name = "MS",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub target_batch_ms: u64,

    /// How to find the expired rows: `walk` the expires_at index in keyset batches, `sweep`
    /// the heap in physical order by ranges of pages (a plain table on PostgreSQL 14+), or
    /// `auto`: sweep when the backlog is at least a quarter of the table.
    #[arg(long, value_enum, default_value_t = MethodArg::Auto)]
    pub method: MethodArg,

    /// Wanted duration of one sweep batch (a range of pages, its own transaction). Small
    /// batches keep each commit's WAL flush small, so the application's commits never wait
    /// long behind one.
    #[arg(long, default_value_t = 2, value_name = "MS",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub sweep_batch_ms: u64,

    /// Connections that sweep at once (1-8): while one waits for its commit's WAL flush,
    /// another deletes.
    #[arg(long, default_value_t = maintenance::DEFAULT_SWEEP_WORKERS, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=i64::from(maintenance::MAX_SWEEP_WORKERS)))]
    pub sweep_workers: u32,

    /// Each sweep batch waits for its own WAL flush (the default; the flag is kept for scripts
    /// that pass it).
    #[arg(long, conflicts_with = "sweep_async_commit")]
    pub sweep_sync_commit: bool,

    /// Sweep batches commit without waiting for their WAL flush, one commit at the end waits
    /// for all of them: faster (1.13x the single DELETE at 10M rows against 0.93x), but the
    /// WAL can then run ahead of the disk, and the application's commits wait behind it
    /// (insert p99 4.6x idle against 2.5x; stalls of 60-90 ms seen on a faster-compressing
    /// table).
    #[arg(long)]
    pub sweep_async_commit: bool,

    /// Format of the summary on stdout.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// `--method`.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum MethodArg {
    Auto,
    Walk,
    Sweep,
}

impl CleanupArgs {
    pub fn options(&self) -> CleanupOptions {
        CleanupOptions {
            target_batch: Duration::from_millis(self.target_batch_ms),
            method: match self.method {
                MethodArg::Auto => MethodChoice::Auto,
                MethodArg::Walk => MethodChoice::Walk,
                MethodArg::Sweep => MethodChoice::Sweep,
            },
            sweep_batch: Duration::from_millis(self.sweep_batch_ms),
            sweep_workers: self.sweep_workers,
            sweep_sync_commit: !self.sweep_async_commit,
            max_duration: self.max_duration.map(Duration::from_secs),
            dry_run: self.dry_run,
            fixed_batch: self.batch_size,
            ..CleanupOptions::default()
        }
    }
}

/// Run the cleanup; returns the exit status ([`exit_code`]; 1 failed, the error already
/// printed as one line on stderr).
pub async fn run(
    global: &Global,
    config: &crate::config::Config,
    args: &CleanupArgs,
) -> Result<i32> {
    let signals = Signals::new();
    match execute(global, config, args, &signals).await {
        Ok(summary) => {
            println!("{}", render_summary(&summary, args.format));
            Ok(exit_code(&summary, signals.received()))
        }
        Err(e) => {
            eprintln!("idemtop: {}", sanitize::line(&format!("{e:#}")));
            Ok(1)
        }
    }
}

/// SIGINT, SIGTERM and SIGHUP: the first stops the cleanup between batches (the summary is
/// still printed, and the exit status says which signal), a second one exits at once.
struct Signals {
    cancel: CancellationToken,
    received: std::sync::Arc<std::sync::atomic::AtomicI32>,
    task: tokio::task::JoinHandle<()>,
}

impl Signals {
    fn new() -> Signals {
        use std::sync::atomic::Ordering;
        use tokio::signal::unix::{signal, SignalKind};
        let cancel = CancellationToken::new();
        let received = std::sync::Arc::new(std::sync::atomic::AtomicI32::new(0));
        let task = tokio::spawn({
            let cancel = cancel.clone();
            let received = received.clone();
            async move {
                let kinds = [
                    (SignalKind::interrupt(), libc::SIGINT),
                    (SignalKind::terminate(), libc::SIGTERM),
                    (SignalKind::hangup(), libc::SIGHUP),
                ];
                let mut streams = Vec::new();
                for (kind, number) in kinds {
                    match signal(kind) {
                        Ok(s) => streams.push((s, number)),
                        Err(e) => tracing::warn!("cannot listen for signal {number}: {e}"),
                    }
                }
                loop {
                    let waits = streams
                        .iter_mut()
                        .map(|(s, n)| Box::pin(async move { s.recv().await.map(|_| *n) }));
                    let (got, _, _) = futures::future::select_all(waits).await;
                    let Some(number) = got else { return };
                    if received.swap(number, Ordering::SeqCst) != 0 {
                        eprintln!(
                            "\nidemtop: signalled twice: exiting now (the running batch is rolled back)"
                        );
                        std::process::exit(128 + number);
                    }
                    eprintln!("\nidemtop: signal {number}: stopping after the current batch");
                    cancel.cancel();
                }
            }
        });
        Signals {
            cancel,
            received,
            task,
        }
    }

    /// The first signal received, if any.
    fn received(&self) -> Option<i32> {
        match self.received.load(std::sync::atomic::Ordering::SeqCst) {
            0 => None,
            n => Some(n),
        }
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn execute(
    global: &Global,
    config: &crate::config::Config,
    args: &CleanupArgs,
    signals: &Signals,
) -> Result<CleanupSummary> {
    let table = global.table_ref()?;
    let pool = global.connect_config_for(config)?.pool(2).await?;
    if !args.dry_run {
        if let Some(w) = unindexed_notice(&pool, &table, args).await {
            eprintln!("idemtop: {}", sanitize::line(&w));
        }
    }
    let cancel = signals.cancel.clone();
    let show = std::io::stderr().is_terminal();
    let mut shown = false;
    let opts = CleanupOptions {
        tables: config.tables.clone(),
        ..args.options()
    };
    let result = maintenance::cleanup(&pool, &table, &opts, &cancel, |p| {
        if show {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K{}", render_progress(p));
            let _ = err.flush();
            shown = true;
        }
    })
    .await;
    if shown {
        eprint!("\r\x1b[2K");
    }
    pool.close().await;
    result
}

/// Before a cleanup of a table no index on `expires_at` serves: what it will read (the plan,
/// made inside the run, chooses the same way; `--dry-run` prints its reason). None when the
/// index is there, or when the table cannot be read yet (the run then says why).
async fn unindexed_notice(
    pool: &sqlx::PgPool,
    table: &crate::ident::TableRef,
    args: &CleanupArgs,
) -> Option<String> {
    let mut conn = pool.acquire().await.ok()?;
    let info = crate::db::table::resolve(&mut conn, table).await.ok()?;
    if info.expiry(table).ok()?.indexed {
        return None;
    }
    let heap: i64 = sqlx::query_scalar("SELECT pg_relation_size($1::oid)::int8")
        .bind(sqlx::postgres::types::Oid(info.oid))
        .fetch_one(&mut *conn)
        .await
        .ok()?;
    let walk = args.method == MethodArg::Walk
        || args.batch_size.is_some()
        || info.partitioned
        || info.server_version_num < 140_000;
    let method = if walk { Method::Walk } else { Method::Sweep };
    Some(maintenance::unindexed::warning(method, heap, None))
}

/// One line of progress: `deleted 12000 (~8000 left), 6 batches, last batch 4000 rows in 95 ms, 41000 rows/s, 0.3 s`
/// (the batch's row limit), and for a sweep `, pages 1200/5000`.
pub fn render_progress(p: &CleanupProgress) -> String {
    let pages = match (p.pages_done, p.pages_total) {
        (Some(done), Some(total)) => format!(", pages {done}/{total}"),
        _ => String::new(),
    };
    format!(
        "deleted {} ({}), {} {}, last batch {} rows in {} ms, {:.0} rows/s, {:.1} s{pages}",
        p.deleted,
        match p.remaining_estimate {
            Some(n) => format!("~{n} left"),
            None => "backlog not counted".to_string(),
        },
        p.batches,
        plural(p.batches, "batch", "batches"),
        p.batch_size,
        p.last_batch.as_millis(),
        p.rows_per_sec,
        p.elapsed.as_secs_f64()
    )
}

fn method_words(m: Method) -> &'static str {
    match m {
        Method::Walk => "index walk",
        Method::Sweep => "heap sweep",
    }
}

/// The final summary: text (a first line, then one line per partition), or one JSON object
/// (`deleted`, `batches`, `duration_ms`, `cutoff`, `stopped`, `dry_run`, `expired_at_start`,
/// `method`, `method_reason`, `skipped`, `partitions`, `rule`, `references`); the text names
/// every table whose foreign keys point at this one and what deleting does to them.
pub fn render_summary(s: &CleanupSummary, format: Format) -> String {
    match format {
        Format::Json => serde_json::to_string(s).expect("a summary always serializes"),
        Format::Text => {
            let mut out = summary_line(s);
            for p in &s.partitions {
                let verb = match (s.dry_run, p.planned.action, &p.dropped) {
                    (_, PartitionAction::Drop, Some(d)) if d.dropped => "dropped",
                    (_, PartitionAction::Drop, Some(_)) => "not dropped",
                    (true, PartitionAction::Drop, None) => "would drop",
                    (false, PartitionAction::Drop, None) => "drop planned",
                    (_, PartitionAction::RowByRow, _) => "row by row",
                };
                let rows = match &p.dropped {
                    Some(d) if d.dropped => format!("{} rows", d.rows),
                    _ if p.planned.rows_exact => format!("{} rows", p.planned.rows),
                    _ => format!("~{} rows", p.planned.rows),
                };
                out.push_str(&format!(
                    "\n  partition {}: {verb}, {rows}: {}",
                    sanitize::line(&p.planned.name),
                    p.note.as_deref().unwrap_or(&p.planned.reason)
                ));
            }
            for r in &s.references {
                out.push_str(&format!(
                    "\n  referenced by {}",
                    sanitize::line(&r.describe())
                ));
            }
            out
        }
    }
}

fn summary_line(s: &CleanupSummary) -> String {
    let secs = s.duration.as_secs_f64();
    if s.dry_run {
        let expired = s.expired_at_start.unwrap_or(0);
        let count = match s.expired_at_start {
            None => "an uncounted number of".to_string(),
            Some(n) if n >= maintenance::COUNT_CAP => {
                format!("more than {}", maintenance::COUNT_CAP - 1)
            }
            Some(n) => n.to_string(),
        };
        return format!(
            "dry run: {count} expired {} would be deleted ({}) by {} ({}), nothing was deleted, {secs:.2} s",
            plural(expired, "row", "rows"),
            s.rule.replace(
                "cutoff",
                &s.cutoff.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
            ),
            method_words(s.method),
            s.method_reason,
        );
    }
    let why = match s.stopped {
        StopReason::CaughtUp => "caught up".to_string(),
        StopReason::Incomplete => format!(
            "incomplete: {} expired {} left behind, locked by other sessions; the next run takes them",
            s.skipped,
            plural(s.skipped, "row", "rows")
        ),
        other => format!(
            "{}; about {} expired rows left",
            other.describe(),
            match s.expired_at_start {
                Some(n) => n.saturating_sub(s.deleted).to_string(),
                None => "an uncounted number of".to_string(),
            }
        ),
    };
    let unindexed = match s.method_reason.find("no index leads with expires_at") {
        Some(_) => format!("; {}", s.method_reason),
        None => String::new(),
    };
    let connections = match s.sweep_connections {
        Some(n) => format!(
            " on {n} {}",
            plural(u64::from(n), "connection", "connections")
        ),
        None => String::new(),
    };
    format!(
        "deleted {} expired {} in {} {} ({}{connections}{unindexed}), {secs:.2} s ({why})",
        s.deleted,
        plural(s.deleted, "row", "rows"),
        s.batches,
        plural(s.batches, "batch", "batches"),
        method_words(s.method),
    )
}

/// Exit status of a finished run: 0 caught up (or a dry run), 3 incomplete (rows left behind
/// locked, or `--max-duration` reached), 128 + the signal's number when a signal stopped it.
pub fn exit_code(s: &CleanupSummary, signal: Option<i32>) -> i32 {
    if let Some(sig) = signal {
        return 128 + sig;
    }
    match s.stopped {
        StopReason::CaughtUp => 0,
        StopReason::Incomplete | StopReason::MaxDuration => EXIT_INCOMPLETE,
        // Cancelled without a signal: only the dashboard cancels that way.
        StopReason::Cancelled => EXIT_INCOMPLETE,
    }
}

/// `idemtop cleanup` exit status when expired rows were left (locked rows skipped, or
/// `--max-duration` reached).
pub const EXIT_INCOMPLETE: i32 = 3;

fn plural(n: u64, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 {
        one
    } else {
        many
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use clap::Parser;

    fn summary(stopped: StopReason, dry_run: bool) -> CleanupSummary {
        CleanupSummary {
            deleted: if dry_run { 0 } else { 1234 },
            batches: if dry_run { 0 } else { 5 },
            duration: Duration::from_millis(420),
            cutoff: Utc.with_ymd_and_hms(2025, 1, 2, 3, 4, 5).unwrap(),
            stopped,
            dry_run,
            expired_at_start: Some(2000),
            method: Method::Walk,
            method_reason: "a small backlog: the index walk is quick".into(),
            skipped: 0,
            partitions: Vec::new(),
            rule: "expires_at <= cutoff".into(),
            references: Vec::new(),
            wal_compression: None,
            sweep_connections: None,
        }
    }

    #[test]
    fn text_summary_is_one_line() {
        assert_eq!(
            render_summary(&summary(StopReason::CaughtUp, false), Format::Text),
            "deleted 1234 expired rows in 5 batches (index walk), 0.42 s (caught up)"
        );
        assert_eq!(
            render_summary(&summary(StopReason::Cancelled, false), Format::Text),
            "deleted 1234 expired rows in 5 batches (index walk), 0.42 s (cancelled; about 766 expired rows left)"
        );
        assert_eq!(
            render_summary(&summary(StopReason::CaughtUp, true), Format::Text),
            "dry run: 2000 expired rows would be deleted (expires_at <= 2025-01-02T03:04:05.000Z) by index walk (a small backlog: the index walk is quick), nothing was deleted, 0.42 s"
        );
        let mut left = summary(StopReason::Incomplete, false);
        left.skipped = 1;
        assert_eq!(
            render_summary(&left, Format::Text),
            "deleted 1234 expired rows in 5 batches (index walk), 0.42 s (incomplete: 1 expired row left behind, locked by other sessions; the next run takes them)"
        );
        let mut swept = summary(StopReason::CaughtUp, false);
        swept.method = Method::Sweep;
        swept.sweep_connections = Some(2);
        assert!(
            render_summary(&swept, Format::Text).contains("(heap sweep on 2 connections)"),
            "{}",
            render_summary(&swept, Format::Text)
        );
    }

    #[test]
    fn progress_never_shows_an_uncounted_backlog_as_zero() {
        let mut p = CleanupProgress {
            deleted: 12_000,
            batches: 6,
            remaining_estimate: Some(8_000),
            elapsed: Duration::from_millis(300),
            rows_per_sec: 41_000.0,
            batch_size: 4_000,
            last_batch: Duration::from_millis(95),
            method: Method::Walk,
            pages_done: None,
            pages_total: None,
        };
        assert_eq!(
            render_progress(&p),
            "deleted 12000 (~8000 left), 6 batches, last batch 4000 rows in 95 ms, 41000 rows/s, 0.3 s"
        );
        p.remaining_estimate = None;
        assert!(render_progress(&p).starts_with("deleted 12000 (backlog not counted), "));
    }

    #[test]
    fn exit_codes_tell_done_incomplete_and_signalled_apart() {
        assert_eq!(exit_code(&summary(StopReason::CaughtUp, false), None), 0);
        assert_eq!(exit_code(&summary(StopReason::CaughtUp, true), None), 0);
        assert_eq!(exit_code(&summary(StopReason::Incomplete, false), None), 3);
        assert_eq!(exit_code(&summary(StopReason::MaxDuration, false), None), 3);
        assert_eq!(
            exit_code(&summary(StopReason::Cancelled, false), Some(libc::SIGTERM)),
            143
        );
        assert_eq!(
            exit_code(&summary(StopReason::Cancelled, false), Some(libc::SIGHUP)),
            129
        );
    }

    #[test]
    fn json_summary_has_the_documented_fields() {
        let out = render_summary(&summary(StopReason::MaxDuration, false), Format::Json);
        assert_eq!(out.lines().count(), 1);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["deleted"], 1234);
        assert_eq!(v["batches"], 5);
        assert_eq!(v["duration_ms"], 420);
        assert_eq!(v["dry_run"], false);
        assert_eq!(v["stopped"], "max_duration");
        assert_eq!(v["cutoff"], "2025-01-02T03:04:05Z");
        assert_eq!(v["expired_at_start"], 2000);
        assert_eq!(v["method"], "walk");
        assert_eq!(
            v["method_reason"],
            "a small backlog: the index walk is quick"
        );
        assert_eq!(v["skipped"], 0);
        assert_eq!(v["partitions"], serde_json::json!([]));
    }

    #[derive(Parser)]
    struct Harness {
        #[command(flatten)]
        args: CleanupArgs,
    }

    #[test]
    fn flags_map_to_options() {
        let h = Harness::try_parse_from([
            "x",
            "--batch-size",
            "500",
            "--dry-run",
            "--max-duration",
            "30",
            "--target-batch-ms",
            "250",
            "--format",
            "json",
            "--method",
            "sweep",
            "--sweep-batch-ms",
            "5",
            "--sweep-workers",
            "1",
            "--sweep-async-commit",
        ])
        .unwrap();
        let o = h.args.options();
        assert_eq!(o.fixed_batch, Some(500));
        assert!(o.dry_run);
        assert_eq!(o.max_duration, Some(Duration::from_secs(30)));
        assert_eq!(o.target_batch, Duration::from_millis(250));
        assert_eq!(o.method, MethodChoice::Sweep);
        assert_eq!(o.sweep_batch, Duration::from_millis(5));
        assert_eq!(o.sweep_workers, 1);
        assert!(!o.sweep_sync_commit);
        assert_eq!(h.args.format, Format::Json);
        let s = Harness::try_parse_from(["x", "--sweep-sync-commit"])
            .unwrap()
            .args;
        assert!(s.options().sweep_sync_commit);
        assert!(
            Harness::try_parse_from(["x", "--sweep-sync-commit", "--sweep-async-commit"]).is_err()
        );
        let d = Harness::try_parse_from(["x"]).unwrap().args;
        assert_eq!(d.options(), CleanupOptions::default());
        assert!(d.options().sweep_sync_commit);
        assert_eq!(d.format, Format::Text);
        assert!(Harness::try_parse_from(["x", "--batch-size", "0"]).is_err());
        assert!(Harness::try_parse_from(["x", "--sweep-workers", "0"]).is_err());
        assert!(Harness::try_parse_from(["x", "--sweep-workers", "9"]).is_err());
    }
}

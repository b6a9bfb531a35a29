//! `idemtop bench`: builds a data set on a throwaway server and measures, in one run, what the
//! issue is about: the cost of one dashboard refresh against the migration guide's monitoring
//! queries, records paging by keyset against OFFSET, the guide's one-statement cleanup against
//! idemtop's batched cleanup under a concurrent insert load, the dashboard's memory, and the
//! dashboard's responsiveness while the table is locked.
//!
//! Server time is read from `pg_stat_statements` (planning plus execution of every top-level
//! statement of the measuring role) and server CPU from `/proc` (the serving backend's
//! `schedstat`, plus what the postmaster accumulated from exited children: parallel workers).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use chrono::{DateTime, Utc};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use serde::Serialize;
use sqlx::{Executor, PgConnection, PgPool};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use idemtop::app::{self, App, DbEvent, Event, Request, SessionInfo};
use idemtop::ui::{self, Theme};
use idemtop::worker::Worker;
use idemtop_core::db::connect::ConnectConfig;
use idemtop_core::db::records::{self, Cursor, RecordFilter, Sort};
use idemtop_core::db::snapshot::SnapshotOptions;
use idemtop_core::db::{maintenance, migrate};
use idemtop_core::ident::{Ident, TableRef};
use idemtop_testkit::pgtemp::{PgBinaries, TempPgOptions, TempPostgres};

/// The role whose statements are counted as "server time" (pg_stat_statements.userid).
const PROBE_ROLE: &str = "idemtop_bench";
/// Rows per records page (the dashboard's page size).
const PAGE_ROWS: u32 = idemtop::app::records::PAGE_SIZE;

/// The guide's "Monitoring" and "Performance Issues" queries, verbatim.
pub const GUIDE_QUERIES: [(&str, &str); 6] = [
    (
        "table size growth",
        "SELECT
    pg_size_pretty(pg_total_relation_size('idempotency_records')) as total_size,
    pg_size_pretty(pg_relation_size('idempotency_records')) as table_size,
    pg_size_pretty(pg_indexes_size('idempotency_records')) as index_size;",
    ),
    ("record count", "SELECT COUNT(*) FROM idempotency_records;"),
    (
        "expired record count",
        "SELECT COUNT(*) FROM idempotency_records WHERE expires_at <= NOW();",
    ),
    (
        "operations breakdown",
        "SELECT operation, COUNT(*)
FROM idempotency_records
GROUP BY operation
ORDER BY COUNT(*) DESC;",
    ),
    (
        "index usage",
        "SELECT
    schemaname,
    tablename,
    indexname,
    idx_scan,
    idx_tup_read,
    idx_tup_fetch
FROM pg_stat_user_indexes
WHERE tablename = 'idempotency_records';",
    ),
    (
        "bloat",
        "SELECT
    schemaname,
    tablename,
    pg_size_pretty(pg_total_relation_size(schemaname||'.'||tablename)) AS size,
    n_live_tup,
    n_dead_tup
FROM pg_stat_user_tables
WHERE tablename = 'idempotency_records';",
    ),
];

/// The same two statistics-view queries with the columns those views really have (`relname`,
/// `indexrelname`): the guide's text fails with "column tablename does not exist".
const GUIDE_QUERY_FIXES: [(&str, &str); 2] = [
    (
        "index usage",
        "SELECT
    schemaname,
    relname AS tablename,
    indexrelname AS indexname,
    idx_scan,
    idx_tup_read,
    idx_tup_fetch
FROM pg_stat_user_indexes
WHERE relname = 'idempotency_records';",
    ),
    (
        "bloat",
        "SELECT
    schemaname,
    relname AS tablename,
    pg_size_pretty(pg_total_relation_size(schemaname||'.'||relname)) AS size,
    n_live_tup,
    n_dead_tup
FROM pg_stat_user_tables
WHERE relname = 'idempotency_records';",
    ),
];

/// The guide's INSERT (its "Test Insert" form, with `gen_random_uuid()` and the 24 h TTL of its
/// "Usage" example); `{table}` is the schema-qualified table under test.
const GUIDE_INSERT: &str = "INSERT INTO {table} (
    request_id,
    operation,
    result_payload,
    status_code,
    expires_at
) VALUES (
    gen_random_uuid(),
    'create_transaction',
    '{\"transaction_id\": \"...\", \"amount\": \"100.50\"}',
    201,
    NOW() + INTERVAL '24 hours'
)";

/// The physical order of the rows in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    /// In `created_at` order, as in a table that was filled over time (the default).
    Time,
    /// As `workload::backfill` writes them: `created_at` random within each 100k-row chunk,
    /// so the expired rows are spread over every page of the table.
    Random,
}

impl Layout {
    pub fn describe(self) -> &'static str {
        match self {
            Layout::Time => "rows stored in created_at order (a table filled over time)",
            Layout::Random => "rows in backfill order (created_at random within 100k-row chunks)",
        }
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    pub rows: u64,
    pub layout: Layout,
    /// Inserts per second of the concurrent load during cleanup.
    pub insert_rate: f64,
    pub skip_cleanup: bool,
    /// `created_at` is spread uniformly over this much of the past.
    pub spread: Duration,
    /// The idemtop binary to run under tmux for the memory measurement; None: in-process.
    pub dashboard_bin: Option<PathBuf>,
    /// How long the dashboard memory run lasts.
    pub dashboard_secs: u64,
    /// How long the stall test holds the ACCESS EXCLUSIVE lock.
    pub lock_secs: u64,
    /// How long the idle insert latency is measured before each cleanup.
    pub idle_secs: u64,
    pub seed: u64,
    /// The command line, for the report.
    pub command: String,
}

impl Default for BenchConfig {
    fn default() -> Self {
        Self {
            rows: 1_000_000,
            layout: Layout::Time,
            insert_rate: 200.0,
            skip_cleanup: false,
            spread: Duration::from_secs(48 * 3600),
            dashboard_bin: None,
            dashboard_secs: 20,
            lock_secs: 4,
            idle_secs: 8,
            seed: 7,
            command: "idemtop bench".into(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Report

#[derive(Debug, Clone, Serialize, Default)]
pub struct Stats {
    pub n: usize,
    pub median_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub min_ms: f64,
}

impl Stats {
    pub fn of(samples: &[f64]) -> Stats {
        let mut v: Vec<f64> = samples.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return Stats::default();
        }
        v.sort_by(|a, b| a.total_cmp(b));
        let pick = |q: f64| {
            let rank = (q * v.len() as f64).ceil() as usize;
            v[rank.clamp(1, v.len()) - 1]
        };
        let median = if v.len() % 2 == 1 {
            v[v.len() / 2]
        } else {
            (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
        };
        Stats {
            n: v.len(),
            median_ms: median,
            p95_ms: pick(0.95),
            p99_ms: pick(0.99),
            max_ms: v[v.len() - 1],
            min_ms: v[0],
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub command: String,
    pub started_at: DateTime<Utc>,
    pub total_secs: f64,
    pub server: ServerInfo,
    pub data: DataSet,
    pub refresh: RefreshReport,
    pub paging: PagingReport,
    pub dashboard_memory: MemoryReport,
    pub ui_stall: StallReport,
    pub cleanup: Option<CleanupReport>,
    pub targets: Vec<TargetCheck>,
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ServerInfo {
    pub version: String,
    pub cores: usize,
    pub memory_gb: f64,
    /// As read back from the running server (`SHOW`).
    pub settings: Vec<(String, String)>,
    /// How "server time" was measured.
    pub server_time_source: String,
    pub cpu_source: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct DataSet {
    pub rows: i64,
    pub expired: i64,
    pub expired_share: f64,
    pub spread_hours: f64,
    pub layout: Layout,
    pub operations: i64,
    pub avg_payload_bytes: f64,
    pub total_bytes: i64,
    pub table_bytes: i64,
    pub index_bytes: i64,
    pub backfill_secs: f64,
    pub vacuum_analyze_secs: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct RefreshSide {
    pub what: String,
    pub statements: usize,
    pub reps: usize,
    /// Server time per refresh (planning + execution of all its statements).
    pub server: Stats,
    /// Wall time per refresh as the client sees it (all round trips).
    pub client: Stats,
    /// Server CPU per refresh: the backend, plus parallel workers.
    pub cpu_ms: f64,
    pub cpu_backend_ms: f64,
    pub cpu_workers_ms: f64,
    /// Per statement, costliest first (from pg_stat_statements).
    pub breakdown: Vec<StatementCost>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StatementCost {
    /// The statement's text, whitespace collapsed, cut at 120 characters.
    pub query: String,
    pub calls_per_refresh: f64,
    /// Server time (planning + execution) per refresh.
    pub ms_per_refresh: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct RefreshReport {
    pub guide: RefreshSide,
    pub idemtop: RefreshSide,
    /// The dashboard's periodic exact per-operation pass (every 30 s, bounded by 2 s).
    pub idemtop_exact_pass: RefreshSide,
    pub ratio_server: f64,
    pub ratio_cpu: f64,
    /// Guide statements that failed verbatim and ran corrected (name, error).
    pub guide_fixed: Vec<(String, String)>,
    /// What idemtop's estimate-mode refresh showed, against the exact figures.
    pub estimate_total: i64,
    pub estimate_expired: i64,
    pub estimate_expired_exact: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct PageMeasure {
    pub label: String,
    pub sort: String,
    pub method: String,
    /// Rows before the page.
    pub depth_rows: i64,
    pub server: Stats,
    pub client: Stats,
}

#[derive(Debug, Clone, Serialize)]
pub struct PagingReport {
    pub page_rows: u32,
    pub pages: Vec<PageMeasure>,
    /// The keyset page after a cursor at depth k returned the same rows as OFFSET k+1.
    pub keyset_matches_offset: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct MemoryReport {
    /// "tmux (real binary under a pseudo-terminal)" or "in-process (TestBackend)".
    pub method: String,
    pub secs: f64,
    pub rss_start_kb: u64,
    pub rss_end_kb: u64,
    pub rss_max_kb: u64,
    pub hwm_kb: u64,
    pub page_keys: usize,
    pub details_opened: usize,
    pub note: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct StallReport {
    pub lock_secs: f64,
    /// From the LOCK request to its release.
    pub stall_window_secs: f64,
    pub keys_during_stall: usize,
    pub key_to_frame_stall: Stats,
    pub key_to_frame_all: Stats,
    pub draw_stall: Stats,
    pub draw_all: Stats,
    pub frames: usize,
    pub refreshes_requested_stall: usize,
    pub refreshes_completed_stall: usize,
    pub refresh_max_ms_stall: f64,
    pub blocked_snapshots: usize,
    pub max_refreshes_in_flight: usize,
    /// Ticks at which a refresh was due but not sent because one was in flight.
    pub ticks_skipped_in_flight: usize,
    /// Page loads asked for during the stall: key to data.
    pub page_key_to_data_stall: Stats,
    pub pages_waiting_at_end: usize,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Latency {
    pub n: usize,
    pub failed: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct CleanupSide {
    pub what: String,
    pub copy_secs: f64,
    pub deleted: u64,
    pub duration_secs: f64,
    pub rows_per_sec: f64,
    pub wal_bytes: i64,
    pub batches: Option<u64>,
    /// idemtop's side: `walk` or `sweep` (see `maintenance::Method`).
    pub method: Option<String>,
    pub idle: Latency,
    pub during: Latency,
    pub p99_vs_idle: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct CleanupReport {
    pub insert_rate: f64,
    pub guide: CleanupSide,
    pub idemtop: CleanupSide,
    pub throughput_ratio: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct TargetCheck {
    pub name: String,
    pub value: String,
    pub target: String,
    pub pass: Option<bool>,
}

// ---------------------------------------------------------------------------------------------
// Measuring helpers

fn clk_tck() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// (utime + stime, cutime + cstime) in clock ticks, from /proc/<pid>/stat.
fn proc_ticks(pid: i32) -> Option<(u64, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Field 3 (state) is f[0]; utime is field 14.
    let n = |i: usize| f.get(i - 3).and_then(|v| v.parse::<u64>().ok());
    Some((n(14)? + n(15)?, n(16)? + n(17)?))
}

/// Nanoseconds on CPU, from /proc/<pid>/schedstat (more precise than ticks).
fn proc_cpu_ns(pid: i32) -> Option<u64> {
    if let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/schedstat")) {
        if let Some(v) = s.split_whitespace().next().and_then(|v| v.parse().ok()) {
            return Some(v);
        }
    }
    proc_ticks(pid).map(|(t, _)| (t as f64 * 1e9 / clk_tck()) as u64)
}

fn status_kb(pid: u32, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// CPU of one backend plus what the postmaster reaped (parallel workers).
#[derive(Clone, Copy)]
struct CpuProbe {
    backend: i32,
    postmaster: i32,
}

#[derive(Clone, Copy)]
struct CpuSample {
    backend_ns: u64,
    reaped_ticks: u64,
}

impl CpuProbe {
    fn sample(&self) -> CpuSample {
        CpuSample {
            backend_ns: proc_cpu_ns(self.backend).unwrap_or(0),
            reaped_ticks: proc_ticks(self.postmaster).map(|t| t.1).unwrap_or(0),
        }
    }

    /// (backend ms, workers ms) between two samples.
    fn delta(a: CpuSample, b: CpuSample) -> (f64, f64) {
        (
            b.backend_ns.saturating_sub(a.backend_ns) as f64 / 1e6,
            b.reaped_ticks.saturating_sub(a.reaped_ticks) as f64 * 1000.0 / clk_tck(),
        )
    }
}

/// Reads the cumulated server time of [`PROBE_ROLE`] from pg_stat_statements.
struct ServerClock {
    admin: PgConnection,
    pgss: bool,
}

impl ServerClock {
    async fn ms(&mut self) -> Result<f64> {
        if !self.pgss {
            return Ok(f64::NAN);
        }
        let v: f64 = sqlx::query_scalar(
            "SELECT coalesce(sum(total_exec_time + total_plan_time), 0)::float8
               FROM pg_stat_statements(false)
              WHERE userid = (SELECT oid FROM pg_roles WHERE rolname = $1)",
        )
        .bind(PROBE_ROLE)
        .fetch_one(&mut self.admin)
        .await?;
        Ok(v)
    }

    /// Statements run by the measuring role so far.
    async fn calls(&mut self) -> Result<i64> {
        if !self.pgss {
            return Ok(0);
        }
        let v: i64 = sqlx::query_scalar(
            "SELECT coalesce(sum(calls), 0)::int8 FROM pg_stat_statements(false)
              WHERE userid = (SELECT oid FROM pg_roles WHERE rolname = $1)",
        )
        .bind(PROBE_ROLE)
        .fetch_one(&mut self.admin)
        .await?;
        Ok(v)
    }

    /// Per statement of the measuring role: queryid -> (calls, ms, text).
    async fn per_statement(&mut self) -> Result<HashMap<i64, (i64, f64, String)>> {
        if !self.pgss {
            return Ok(HashMap::new());
        }
        let rows: Vec<(i64, i64, f64, String)> = sqlx::query_as(
            "SELECT queryid, calls, (total_exec_time + total_plan_time)::float8, query
               FROM pg_stat_statements(true)
              WHERE userid = (SELECT oid FROM pg_roles WHERE rolname = $1) AND queryid IS NOT NULL",
        )
        .bind(PROBE_ROLE)
        .fetch_all(&mut self.admin)
        .await?;
        Ok(rows.into_iter().map(|r| (r.0, (r.1, r.2, r.3))).collect())
    }

    /// Server time of `f` (falls back to the client's wall time without pg_stat_statements),
    /// and the client's wall time.
    async fn time<T, F>(&mut self, f: F) -> Result<(T, f64, f64)>
    where
        F: std::future::Future<Output = Result<T>>,
    {
        let s0 = self.ms().await?;
        let t0 = Instant::now();
        let out = f.await?;
        let wall = t0.elapsed().as_secs_f64() * 1000.0;
        let s1 = self.ms().await?;
        let server = if self.pgss { s1 - s0 } else { wall };
        Ok((out, server, wall))
    }
}

fn log(started: Instant, msg: &str) {
    eprintln!("[{:>7.1}s] {msg}", started.elapsed().as_secs_f64());
}

// ---------------------------------------------------------------------------------------------
// The run

struct Env {
    pg: TempPostgres,
    admin_url: String,
    probe_url: String,
    table: TableRef,
    postmaster: i32,
    pgss: bool,
}

impl Env {
    async fn admin(&self) -> Result<PgConnection> {
        ConnectConfig::from_url(self.admin_url.clone())
            .with_statement_timeout(Duration::ZERO)
            .with_application_name("idemtop bench admin")
            .connect()
            .await
    }

    fn probe_cfg(&self, app_name: &str, timeout: Duration) -> ConnectConfig {
        ConnectConfig::from_url(self.probe_url.clone())
            .with_statement_timeout(timeout)
            .with_application_name(app_name)
    }

    async fn clock(&self) -> Result<ServerClock> {
        Ok(ServerClock {
            admin: self.admin().await?,
            pgss: self.pgss,
        })
    }

    async fn cpu_probe(&self, conn: &mut PgConnection) -> Result<CpuProbe> {
        let backend: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&mut *conn)
            .await?;
        Ok(CpuProbe {
            backend,
            postmaster: self.postmaster,
        })
    }
}

/// The usual production rule for `shared_buffers`: a quarter of the machine's memory, at least
/// 256 MB, at most 8 GB. (With less than the heap that a cleanup dirties, evicted pages are
/// written back by the kernel during the run and that writeback competes with every commit's
/// WAL flush: on a 23 GB machine with 1 GB, insert p99 during a 10M-row cleanup is 12x idle for
/// idemtop's sweep and 25x for the single DELETE; see README.md, Performance.)
fn shared_buffers_mb(mem_gb: f64) -> u64 {
    ((mem_gb * 1024.0 / 4.0) as u64).clamp(256, 8192)
}

fn server_settings(rows: u64, pgss: bool) -> Vec<(String, String)> {
    let big = rows > 2_000_000;
    let shared_buffers = format!("{}MB", shared_buffers_mb(machine_memory_gb()));
    let mut s: Vec<(&str, &str)> = vec![
        ("shared_buffers", shared_buffers.as_str()),
        ("max_wal_size", if big { "8GB" } else { "2GB" }),
        ("min_wal_size", "256MB"),
        ("checkpoint_timeout", "15min"),
        // Production durability (the throwaway server defaults to fsync=off).
        ("fsync", "on"),
        ("synchronous_commit", "on"),
        ("full_page_writes", "on"),
        // Deterministic runs: vacuum only where the bench says so.
        ("autovacuum", "off"),
        ("track_io_timing", "on"),
        ("maintenance_work_mem", "256MB"),
        ("max_connections", "100"),
    ];
    if pgss {
        s.extend([
            ("shared_preload_libraries", "pg_stat_statements"),
            ("compute_query_id", "on"),
            ("pg_stat_statements.track_planning", "on"),
            ("pg_stat_statements.max", "10000"),
        ]);
    }
    s.into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

const SHOWN_SETTINGS: [&str; 15] = [
    "shared_buffers",
    "max_wal_size",
    "checkpoint_timeout",
    "fsync",
    "synchronous_commit",
    "full_page_writes",
    "wal_level",
    "wal_compression",
    "autovacuum",
    "track_io_timing",
    "work_mem",
    "maintenance_work_mem",
    "max_parallel_workers_per_gather",
    "jit",
    "shared_preload_libraries",
];

fn machine_memory_gb() -> f64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0 / 1024.0)
        .unwrap_or(0.0)
}

/// Bytes free where the throwaway server will live.
fn free_bytes(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs fills the struct we pass; the path is a valid C string.
    unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        if libc::statvfs(path.as_ptr(), &mut st) != 0 {
            return None;
        }
        Some(st.f_bavail as u64 * st.f_frsize as u64)
    }
}

/// The run needs about 1.3 KB per row (the table, a staging copy or a cleanup copy, their WAL)
/// plus max_wal_size of headroom.
fn check_disk(cfg: &BenchConfig) -> Result<()> {
    let dir = std::env::temp_dir();
    let wal = if cfg.rows > 2_000_000 {
        8u64 << 30
    } else {
        2u64 << 30
    };
    let need = cfg.rows.saturating_mul(1300).saturating_add(wal);
    if let Some(free) = free_bytes(&dir) {
        if free < need {
            bail!(
                "not enough disk in {}: {} free, about {} needed for {} rows (set TMPDIR to a larger disk)",
                dir.display(),
                idemtop_core::format::bytes(free as i64),
                idemtop_core::format::bytes(need as i64),
                cfg.rows
            );
        }
    }
    Ok(())
}

/// Run the whole benchmark. Progress goes to stderr; the server is stopped on return.
pub async fn run(cfg: &BenchConfig) -> Result<Report> {
    let started = Instant::now();
    let started_at = Utc::now();
    if cfg.rows < 1_000 {
        bail!("--rows must be at least 1000");
    }
    if !(cfg.insert_rate.is_finite() && cfg.insert_rate > 0.0 && cfg.insert_rate <= 10_000.0) {
        bail!("--insert-rate must be between 0 and 10000 inserts per second");
    }
    check_disk(cfg)?;
    let bins = PgBinaries::find()?;
    let pgss = bins.has_extension("pg_stat_statements")
        && bins
            .bin
            .parent()
            .map(|p| p.join("lib").join("pg_stat_statements.so").exists())
            .unwrap_or(false);
    let opts = TempPgOptions {
        settings: server_settings(cfg.rows, pgss),
        keep: false,
    };
    log(
        started,
        &format!(
            "starting a throwaway PostgreSQL from {}",
            bins.bin.display()
        ),
    );
    let pg = tokio::task::spawn_blocking(move || TempPostgres::start_with(opts))
        .await
        .context("starting the throwaway server")??;
    let postmaster: i32 = std::fs::read_to_string(pg.dir().join("data").join("postmaster.pid"))
        .ok()
        .and_then(|s| s.lines().next().and_then(|l| l.trim().parse().ok()))
        .unwrap_or(0);
    let admin_url = pg.url();
    let probe_url = format!("postgres://{PROBE_ROLE}@127.0.0.1:{}/postgres", pg.port());
    let env = Env {
        pg,
        admin_url,
        probe_url,
        table: TableRef::default(),
        postmaster,
        pgss,
    };
    let result = run_on(cfg, &env, started, started_at).await;
    log(started, "stopping the throwaway server");
    let Env { pg, .. } = env;
    tokio::task::spawn_blocking(move || drop(pg)).await.ok();
    result
}

async fn run_on(
    cfg: &BenchConfig,
    env: &Env,
    started: Instant,
    started_at: DateTime<Utc>,
) -> Result<Report> {
    let mut notes = Vec::new();
    let mut admin = env.admin().await?;
    admin
        .execute(format!("CREATE ROLE {PROBE_ROLE} LOGIN SUPERUSER").as_str())
        .await?;
    if env.pgss {
        admin
            .execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            .await?;
    } else {
        notes.push(
            "pg_stat_statements is not installed: server time is the client's wall time".into(),
        );
    }
    let mut settings = Vec::new();
    for name in SHOWN_SETTINGS {
        let v: String = sqlx::query_scalar("SELECT current_setting($1)")
            .bind(name)
            .fetch_one(&mut admin)
            .await?;
        settings.push((name.to_string(), v));
    }
    let version: String = sqlx::query_scalar("SELECT current_setting('server_version')")
        .fetch_one(&mut admin)
        .await?;
    let server = ServerInfo {
        version,
        cores: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        memory_gb: machine_memory_gb(),
        settings,
        server_time_source: if env.pgss {
            "pg_stat_statements: total_plan_time + total_exec_time of the measuring role".into()
        } else {
            "client wall time (pg_stat_statements unavailable)".into()
        },
        cpu_source: "/proc/<backend>/schedstat + postmaster cutime/cstime (parallel workers)"
            .into(),
    };

    // ---- data set
    migrate::run(&mut admin, &env.table.schema).await?;
    drop(admin);
    let data = build_data(cfg, env, started).await?;
    log(
        started,
        &format!(
            "data set: {} rows, {:.1}% expired, {} total",
            data.rows,
            data.expired_share * 100.0,
            idemtop_core::format::bytes(data.total_bytes)
        ),
    );

    log(
        started,
        "1/5 refresh cost: guide queries vs idemtop refresh",
    );
    let refresh = measure_refresh(env, &data).await?;
    log(started, "2/5 records paging: keyset vs OFFSET");
    let paging = measure_paging(env, &data).await?;
    log(started, "3/5 dashboard memory");
    let dashboard_memory = measure_memory(cfg, env).await?;
    log(started, "4/5 dashboard under a locked table");
    let ui_stall = measure_stall(cfg, env).await?;
    let cleanup = if cfg.skip_cleanup {
        None
    } else {
        log(
            started,
            "5/5 cleanup: guide's DELETE vs batched cleanup, with inserts",
        );
        Some(measure_cleanup(cfg, env, started).await?)
    };
    if !refresh.guide_fixed.is_empty() {
        notes.push(format!(
            "the guide's {} queries fail verbatim (column \"tablename\" does not exist in \
             pg_stat_user_indexes/pg_stat_user_tables); measured with relname/indexrelname",
            refresh
                .guide_fixed
                .iter()
                .map(|(n, _)| format!("\"{n}\""))
                .collect::<Vec<_>>()
                .join(" and ")
        ));
    }
    if cfg.rows < 10_000_000 {
        notes.push(format!(
            "the targets are stated for 10M rows; this run has {} rows",
            idemtop_core::format::count(data.rows)
        ));
    }
    let targets = targets(
        &refresh,
        &paging,
        &dashboard_memory,
        &ui_stall,
        cleanup.as_ref(),
    );
    Ok(Report {
        command: cfg.command.clone(),
        started_at,
        total_secs: started.elapsed().as_secs_f64(),
        server,
        data,
        refresh,
        paging,
        dashboard_memory,
        ui_stall,
        cleanup,
        targets,
        notes,
    })
}

async fn build_data(cfg: &BenchConfig, env: &Env, started: Instant) -> Result<DataSet> {
    let admin_cfg = ConnectConfig::from_url(env.admin_url.clone())
        .with_statement_timeout(Duration::ZERO)
        .with_application_name("idemtop bench backfill");
    let pool = admin_cfg.pool(4).await?;
    let parallel = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 4) as u64;
    log(
        started,
        &format!(
            "backfilling {} rows over {} h ({} parallel streams)",
            cfg.rows,
            cfg.spread.as_secs_f64() / 3600.0,
            parallel
        ),
    );
    let t0 = Instant::now();
    // For the time layout: generate into an unindexed staging table, then copy in order.
    let stage = TableRef::new("bench_stage", "idempotency_records").map_err(|e| anyhow!("{e}"))?;
    let target = match cfg.layout {
        Layout::Random => env.table.clone(),
        Layout::Time => {
            let mut admin = env.admin().await?;
            admin
                .execute(
                    format!(
                        "CREATE SCHEMA bench_stage;
                         CREATE UNLOGGED TABLE {} (LIKE {} INCLUDING DEFAULTS)",
                        stage.qualified(),
                        env.table.qualified()
                    )
                    .as_str(),
                )
                .await?;
            stage.clone()
        }
    };
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..parallel {
        let n = cfg.rows / parallel + u64::from(i < cfg.rows % parallel);
        let pool = pool.clone();
        let table = target.clone();
        let spread = cfg.spread;
        let seed = cfg.seed.wrapping_add(i * 1_000_003);
        tasks.spawn(async move {
            idemtop_testkit::workload::backfill(&pool, &table, n, spread, seed).await
        });
    }
    let mut inserted = 0;
    while let Some(r) = tasks.join_next().await {
        inserted += r.context("backfill task")??;
    }
    log(
        started,
        &format!(
            "generated {inserted} rows in {:.1} s",
            t0.elapsed().as_secs_f64()
        ),
    );
    pool.close().await;
    let mut admin = env.admin().await?;
    if cfg.layout == Layout::Time {
        log(started, "storing them in created_at order");
        admin.execute("SET work_mem = '512MB'").await?;
        admin
            .execute(
                format!(
                    "INSERT INTO {} SELECT * FROM {} ORDER BY created_at; DROP SCHEMA bench_stage CASCADE",
                    env.table.qualified(),
                    stage.qualified()
                )
                .as_str(),
            )
            .await?;
        admin.execute("RESET work_mem").await?;
    }
    let backfill_secs = t0.elapsed().as_secs_f64();
    log(
        started,
        &format!("data set built in {backfill_secs:.1} s; VACUUM ANALYZE"),
    );
    let t1 = Instant::now();
    admin
        .execute("VACUUM ANALYZE public.idempotency_records")
        .await?;
    let vacuum_analyze_secs = t1.elapsed().as_secs_f64();
    admin.execute("CHECKPOINT").await?;
    let (rows, expired, avg, ops): (i64, i64, Option<f64>, i64) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE expires_at <= now()),
                avg(octet_length(result_payload))::float8, count(DISTINCT operation)
           FROM public.idempotency_records",
    )
    .fetch_one(&mut admin)
    .await?;
    let (total, table, index): (i64, i64, i64) = sqlx::query_as(
        "SELECT pg_total_relation_size('public.idempotency_records'),
                pg_table_size('public.idempotency_records'),
                pg_indexes_size('public.idempotency_records')",
    )
    .fetch_one(&mut admin)
    .await?;
    Ok(DataSet {
        rows,
        expired,
        expired_share: if rows > 0 {
            expired as f64 / rows as f64
        } else {
            0.0
        },
        spread_hours: cfg.spread.as_secs_f64() / 3600.0,
        layout: cfg.layout,
        operations: ops,
        avg_payload_bytes: avg.unwrap_or(0.0),
        total_bytes: total,
        table_bytes: table,
        index_bytes: index,
        backfill_secs,
        vacuum_analyze_secs,
    })
}

// ---------------------------------------------------------------------------------------------
// 1. Refresh cost

async fn measure_refresh(env: &Env, data: &DataSet) -> Result<RefreshReport> {
    let mut clock = env.clock().await?;

    // The guide's queries: one session, as a monitoring script would run them.
    let mut guide_conn = env
        .probe_cfg("bench guide monitoring", Duration::ZERO)
        .connect()
        .await?;
    let mut queries: Vec<(String, String)> = Vec::new();
    let mut fixed = Vec::new();
    for (name, sql) in GUIDE_QUERIES {
        match guide_conn.fetch_all(sql).await {
            Ok(_) => queries.push((name.into(), sql.into())),
            Err(e) => {
                let fix = GUIDE_QUERY_FIXES
                    .iter()
                    .find(|(n, _)| *n == name)
                    .ok_or_else(|| anyhow!("the guide's query \"{name}\" failed: {e}"))?;
                guide_conn
                    .fetch_all(fix.1)
                    .await
                    .with_context(|| format!("the corrected query \"{name}\""))?;
                fixed.push((name.to_string(), first_line(&e.to_string())));
                queries.push((name.into(), fix.1.into()));
            }
        }
    }
    let guide_reps = if data.rows > 3_000_000 { 7 } else { 10 };
    let guide = refresh_side(
        "guide monitoring queries",
        guide_reps,
        1,
        &mut clock,
        env,
        &mut guide_conn,
        |conn| {
            let queries = queries.clone();
            Box::pin(async move {
                for (_, sql) in &queries {
                    (&mut *conn).fetch_all(sql.as_str()).await?;
                }
                Ok(())
            })
        },
    )
    .await?;
    drop(guide_conn);

    // idemtop's refresh: what the worker does on every tick of the dashboard.
    let mut conn = env
        .probe_cfg("bench idemtop refresh", Duration::from_secs(5))
        .connect()
        .await?;
    let table = env.table.clone();
    let last = Arc::new(Mutex::new(None));
    let idemtop = {
        let last = Arc::clone(&last);
        refresh_side(
            "idemtop refresh (estimate mode)",
            40,
            3,
            &mut clock,
            env,
            &mut conn,
            move |conn| {
                let table = table.clone();
                let last = Arc::clone(&last);
                Box::pin(async move {
                    let snap =
                        idemtop_core::refresh::refresh(conn, &table, SnapshotOptions::default())
                            .await?;
                    if let Ok(mut g) = last.lock() {
                        *g = Some(snap);
                    }
                    Ok(())
                })
            },
        )
        .await?
    };
    let snap = last
        .lock()
        .ok()
        .and_then(|mut g| g.take())
        .ok_or_else(|| anyhow!("no snapshot taken"))?;
    let table = env.table.clone();
    let exact = refresh_side(
        "idemtop exact pass (every 30 s)",
        3,
        0,
        &mut clock,
        env,
        &mut conn,
        move |conn| {
            let table = table.clone();
            Box::pin(async move {
                let opts = SnapshotOptions {
                    exact_pass: true,
                    ..SnapshotOptions::default()
                };
                idemtop_core::refresh::refresh(conn, &table, opts).await?;
                Ok(())
            })
        },
    )
    .await?;
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::NAN };
    Ok(RefreshReport {
        ratio_server: ratio(guide.server.median_ms, idemtop.server.median_ms),
        ratio_cpu: ratio(guide.cpu_ms, idemtop.cpu_ms),
        guide,
        idemtop,
        idemtop_exact_pass: exact,
        guide_fixed: fixed,
        estimate_total: snap.rows.total,
        estimate_expired: snap.rows.expired,
        estimate_expired_exact: snap.rows.expired_exact,
    })
}

type BoxFut<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>> + Send + 'a>>;

#[allow(clippy::too_many_arguments)]
async fn refresh_side<F>(
    what: &str,
    reps: usize,
    warmup: usize,
    clock: &mut ServerClock,
    env: &Env,
    conn: &mut PgConnection,
    mut once: F,
) -> Result<RefreshSide>
where
    F: for<'c> FnMut(&'c mut PgConnection) -> BoxFut<'c>,
{
    let cpu = env.cpu_probe(conn).await?;
    for _ in 0..warmup {
        once(conn).await?;
    }
    let mut server = Vec::new();
    let mut client = Vec::new();
    let mut cpu_backend = 0.0;
    let mut cpu_workers = 0.0;
    let calls0 = clock.calls().await?;
    let per0 = clock.per_statement().await?;
    for _ in 0..reps {
        let c0 = cpu.sample();
        let ((), s, w) = clock.time(once(conn)).await?;
        // Let the postmaster reap parallel workers before reading its children's CPU.
        if s > 50.0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let c1 = cpu.sample();
        let (b, wk) = CpuProbe::delta(c0, c1);
        cpu_backend += b;
        cpu_workers += wk;
        server.push(s);
        client.push(w);
    }
    let n = reps.max(1) as f64;
    let statements = ((clock.calls().await? - calls0) as f64 / n).round() as usize;
    let mut breakdown: Vec<StatementCost> = clock
        .per_statement()
        .await?
        .into_iter()
        .filter_map(|(id, (calls, ms, text))| {
            let (c0, m0) = per0.get(&id).map(|x| (x.0, x.1)).unwrap_or((0, 0.0));
            (calls > c0).then(|| StatementCost {
                query: text
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
                    .chars()
                    .take(120)
                    .collect(),
                calls_per_refresh: (calls - c0) as f64 / n,
                ms_per_refresh: (ms - m0) / n,
            })
        })
        .collect();
    breakdown.sort_by(|a, b| b.ms_per_refresh.total_cmp(&a.ms_per_refresh));
    Ok(RefreshSide {
        what: what.into(),
        statements,
        reps,
        server: Stats::of(&server),
        client: Stats::of(&client),
        cpu_ms: (cpu_backend + cpu_workers) / n,
        cpu_backend_ms: cpu_backend / n,
        cpu_workers_ms: cpu_workers / n,
        breakdown,
    })
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").to_string()
}

// ---------------------------------------------------------------------------------------------
// 2. Records paging

type PageRow = (
    Uuid,
    String,
    Option<i32>,
    DateTime<Utc>,
    DateTime<Utc>,
    i64,
    DateTime<Utc>,
);

async fn measure_paging(env: &Env, data: &DataSet) -> Result<PagingReport> {
    let mut clock = env.clock().await?;
    let mut conn = env
        .probe_cfg("bench records paging", Duration::ZERO)
        .connect()
        .await?;
    let t = env.table.qualified();
    let filter = RecordFilter::default();
    let offset_sql = format!(
        "SELECT request_id, operation::text AS operation, status_code, created_at, expires_at,
                octet_length(result_payload)::int8 AS payload_bytes, now() AS server_now
           FROM {t} ORDER BY expires_at ASC, request_id ASC LIMIT $1 OFFSET $2"
    );
    let big = data.rows > 3_000_000;
    let keyset_reps = 11;
    let offset_reps = if big { 3 } else { 5 };
    let mut pages = Vec::new();
    let mut matches = true;
    for depth in [0.0, 0.5, 0.9] {
        let k = ((data.rows as f64) * depth) as i64;
        let label = format!("{:.0}% depth", depth * 100.0);
        // The cursor: the row just before the page, found once, outside the timing.
        let cursor = if k > 0 {
            let (expires_at, request_id): (DateTime<Utc>, Uuid) = sqlx::query_as(&format!(
                "SELECT expires_at, request_id FROM {t}
                  ORDER BY expires_at, request_id OFFSET $1 LIMIT 1"
            ))
            .bind(k - 1)
            .fetch_one(&mut conn)
            .await?;
            Some(Cursor {
                sort: Sort::ExpiringSoonest,
                key: expires_at.into(),
                request_id,
                expires_at: expires_at.into(),
            })
        } else {
            None
        };
        let mut server = Vec::new();
        let mut client = Vec::new();
        let mut keyset_ids = Vec::new();
        for i in 0..keyset_reps + 1 {
            let c = cursor.clone();
            let f = filter.clone();
            let table = env.table.clone();
            let conn_ref = &mut conn;
            let (page, s, w) = clock
                .time(async move {
                    records::page(
                        conn_ref,
                        &table,
                        &f,
                        Sort::ExpiringSoonest,
                        c.as_ref(),
                        PAGE_ROWS,
                    )
                    .await
                })
                .await?;
            if i > 0 {
                server.push(s);
                client.push(w);
            } else {
                keyset_ids = page.rows.iter().map(|r| r.request_id).collect();
            }
        }
        pages.push(PageMeasure {
            label: label.clone(),
            sort: Sort::ExpiringSoonest.label().into(),
            method: "keyset".into(),
            depth_rows: k,
            server: Stats::of(&server),
            client: Stats::of(&client),
        });
        if k == 0 {
            continue;
        }
        let mut server = Vec::new();
        let mut client = Vec::new();
        for i in 0..offset_reps + 1 {
            let sql = offset_sql.clone();
            let conn_ref = &mut conn;
            let (rows, s, w) = clock
                .time(async move {
                    let rows: Vec<PageRow> = sqlx::query_as(&sql)
                        .bind(i64::from(PAGE_ROWS) + 1)
                        .bind(k)
                        .fetch_all(conn_ref)
                        .await?;
                    Ok(rows)
                })
                .await?;
            if i > 0 {
                server.push(s);
                client.push(w);
            } else {
                let ids: Vec<Uuid> = rows.iter().take(PAGE_ROWS as usize).map(|r| r.0).collect();
                matches &= ids == keyset_ids;
            }
        }
        pages.push(PageMeasure {
            label,
            sort: Sort::ExpiringSoonest.label().into(),
            method: "OFFSET".into(),
            depth_rows: k,
            server: Stats::of(&server),
            client: Stats::of(&client),
        });
    }
    // Newest first: created_at has no index in the guide's schema.
    let mut server = Vec::new();
    let mut client = Vec::new();
    for i in 0..(if big { 3 } else { 5 }) + 1 {
        let f = filter.clone();
        let table = env.table.clone();
        let conn_ref = &mut conn;
        let (_, s, w) = clock
            .time(async move {
                records::page(conn_ref, &table, &f, Sort::Newest, None, PAGE_ROWS).await
            })
            .await?;
        if i > 0 {
            server.push(s);
            client.push(w);
        }
    }
    pages.push(PageMeasure {
        label: "first page".into(),
        sort: Sort::Newest.label().into(),
        method: "keyset (created_at unindexed)".into(),
        depth_rows: 0,
        server: Stats::of(&server),
        client: Stats::of(&client),
    });
    Ok(PagingReport {
        page_rows: PAGE_ROWS,
        pages,
        keyset_matches_offset: matches,
    })
}

// ---------------------------------------------------------------------------------------------
// 3. Dashboard memory

fn key(c: char) -> KeyEvent {
    KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE)
}

fn special(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

/// The browsing script, after the records screen is open in an indexed order: 50 pages
/// forward with a detail opened every 10 pages, then every screen and the help.
/// (offset from its start, key), page-downs, details.
fn browse_script() -> (Vec<(Duration, KeyEvent)>, usize, usize) {
    let mut out = Vec::new();
    let mut t = 0.0;
    let mut push = |t: &mut f64, k: KeyEvent, gap: f64| {
        out.push((Duration::from_secs_f64(*t), k));
        *t += gap;
    };
    let (mut pages, mut details) = (0, 0);
    for i in 0..50 {
        push(&mut t, key('n'), 0.2);
        pages += 1;
        if i % 10 == 9 {
            push(&mut t, key('j'), 0.1);
            push(&mut t, special(KeyCode::Enter), 0.4);
            push(&mut t, key('j'), 0.1);
            push(&mut t, special(KeyCode::Esc), 0.2);
            details += 1;
        }
    }
    for _ in 0..5 {
        push(&mut t, special(KeyCode::Tab), 0.3);
    }
    push(&mut t, key('?'), 0.3);
    push(&mut t, special(KeyCode::Esc), 0.2);
    push(&mut t, key('1'), 0.2);
    (out, pages, details)
}

async fn measure_memory(cfg: &BenchConfig, env: &Env) -> Result<MemoryReport> {
    let tmux_ok = Command::new("tmux")
        .arg("-V")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    let bin = cfg.dashboard_bin.clone().filter(|b| b.is_file());
    match (tmux_ok, bin) {
        (true, Some(bin)) => match memory_tmux(cfg, env, &bin).await {
            Ok(r) => Ok(r),
            Err(e) => {
                let mut r = memory_in_process(cfg, env).await?;
                r.note = format!("tmux run failed ({e:#}); {}", r.note);
                Ok(r)
            }
        },
        (tmux_ok, _) => {
            let mut r = memory_in_process(cfg, env).await?;
            r.note = if tmux_ok {
                format!("no idemtop binary to run under tmux; {}", r.note)
            } else {
                format!("tmux not installed; {}", r.note)
            };
            Ok(r)
        }
    }
}

/// A private tmux server (its own socket), killed on drop.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn cmd(&self, args: &[&str]) -> Result<String> {
        let out = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .arg("-f")
            .arg("/dev/null")
            .args(args)
            .output()
            .context("running tmux")?;
        if !out.status.success() {
            bail!(
                "tmux {}: {}",
                args.first().copied().unwrap_or(""),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn send(&self, k: &KeyEvent) -> Result<()> {
        let name = match k.code {
            KeyCode::Char(c) => c.to_string(),
            KeyCode::Enter => "Enter".into(),
            KeyCode::Esc => "Escape".into(),
            KeyCode::Tab => "Tab".into(),
            other => bail!("no tmux name for {other:?}"),
        };
        self.cmd(&["send-keys", "-t", "bench", &name]).map(|_| ())
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .arg("kill-server")
            .output();
    }
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

async fn memory_tmux(cfg: &BenchConfig, env: &Env, bin: &Path) -> Result<MemoryReport> {
    let tmux = Tmux {
        socket: format!("idemtop-bench-{}", std::process::id()),
    };
    let shell = format!(
        "exec {} --database-url {} --interval 2",
        shell_quote(&bin.display().to_string()),
        shell_quote(&env.admin_url)
    );
    tmux.cmd(&[
        "new-session",
        "-d",
        "-s",
        "bench",
        "-x",
        "120",
        "-y",
        "36",
        &shell,
    ])?;
    // Deliver Esc at once (tmux otherwise holds it 500 ms to see whether a sequence follows).
    tmux.cmd(&["set-option", "-g", "escape-time", "0"])?;
    let pid: u32 = tmux
        .cmd(&["display-message", "-p", "-t", "bench", "#{pane_pid}"])?
        .trim()
        .parse()
        .context("reading the dashboard's pid")?;
    let start = Instant::now();
    let mut rss = RssWatch::default();
    let records_title = |tmux: &Tmux| -> Result<String> {
        let screen = tmux.cmd(&["capture-pane", "-p", "-t", "bench"])?;
        Ok(screen
            .lines()
            .find(|l| l.contains("Records ·"))
            .map(|l| {
                l.trim_matches(|c: char| matches!(c, '┌' | '─' | '┐' | ' '))
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default())
    };
    // Started: the first refreshes are in.
    rss.wait(pid, Duration::from_secs(3)).await?;
    let rss_start = rss.last;
    // The records screen, in an order that walks an index (the default order may not).
    tmux.send(&key('2'))?;
    rss.wait(pid, Duration::from_millis(1500)).await?;
    for _ in 0..4 {
        if records_title(&tmux)?.contains("expiring") {
            break;
        }
        tmux.send(&key('s'))?;
        rss.wait(pid, Duration::from_millis(2500)).await?;
    }
    let (script, pages, details) = browse_script();
    let t0 = Instant::now();
    let mut title_line = String::new();
    for (i, (at, k)) in script.iter().enumerate() {
        let due = (t0 + *at).saturating_duration_since(Instant::now());
        rss.wait(pid, due).await?;
        if i + 8 == script.len() {
            // After the 50 pages, before the screen switches: page 51 of the records list.
            rss.wait(pid, Duration::from_millis(500)).await?;
            title_line = records_title(&tmux)?;
        }
        tmux.send(k)?;
    }
    let rest = Duration::from_secs(cfg.dashboard_secs).saturating_sub(start.elapsed());
    rss.wait(pid, rest.max(Duration::from_secs(1))).await?;
    let hwm = status_kb(pid, "VmHWM:").unwrap_or(0);
    let _ = tmux.send(&key('q'));
    for _ in 0..30 {
        if status_kb(pid, "VmRSS:").is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(tmux);
    let seen = title_line.contains("expiring") && title_line.contains("page 51");
    Ok(MemoryReport {
        method: "tmux: the real idemtop binary under a 120x36 pseudo-terminal".into(),
        secs: start.elapsed().as_secs_f64(),
        rss_start_kb: rss_start,
        rss_end_kb: rss.last,
        rss_max_kb: rss.max,
        hwm_kb: hwm,
        page_keys: pages,
        details_opened: details,
        note: if seen {
            format!("after paging the pane showed: {title_line}")
        } else {
            format!("WARNING: expected page 51 of the records list after paging, the pane showed: {title_line}")
        },
    })
}

/// Samples a process's VmRSS while waiting.
#[derive(Default)]
struct RssWatch {
    last: u64,
    max: u64,
}

impl RssWatch {
    async fn wait(&mut self, pid: u32, d: Duration) -> Result<()> {
        let until = Instant::now() + d;
        loop {
            let Some(kb) = status_kb(pid, "VmRSS:") else {
                bail!("the dashboard (pid {pid}) exited early");
            };
            self.last = kb;
            self.max = self.max.max(kb);
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(());
            }
            tokio::time::sleep(left.min(Duration::from_millis(100))).await;
        }
    }
}

async fn memory_in_process(cfg: &BenchConfig, env: &Env) -> Result<MemoryReport> {
    let (script, pages, details) = browse_script();
    // The records screen first (in its default order), then the script.
    let script: Vec<(Duration, KeyEvent)> = std::iter::once((Duration::from_secs(3), key('2')))
        .chain(
            script
                .into_iter()
                .map(|(t, k)| (t + Duration::from_secs(5), k)),
        )
        .collect();
    let total = Duration::from_secs(
        cfg.dashboard_secs
            .max(script.last().map(|(t, _)| t.as_secs() + 2).unwrap_or(5)),
    );
    let me = std::process::id();
    let rss0 = status_kb(me, "VmRSS:").unwrap_or(0);
    let run = drive(env, script, total, Duration::from_secs(2), Instant::now()).await?;
    Ok(MemoryReport {
        method: "in-process: App + Worker + update + ui::draw into a 120x36 TestBackend".into(),
        secs: total.as_secs_f64(),
        rss_start_kb: rss0,
        rss_end_kb: status_kb(me, "VmRSS:").unwrap_or(0),
        rss_max_kb: run.rss_max_kb,
        hwm_kb: status_kb(me, "VmHWM:").unwrap_or(0),
        page_keys: pages,
        details_opened: details,
        note: "RSS of the whole bench process (includes the bench's own pools and buffers)".into(),
    })
}

// ---------------------------------------------------------------------------------------------
// The dashboard loop, in-process (memory fallback and the stall test)

#[derive(Default)]
struct DriveRun {
    /// (typed at, latency ms), offsets from the start.
    key_to_frame: Vec<(Duration, f64)>,
    draws: Vec<(Duration, f64)>,
    /// (requested at, took ms, blocked) of completed refreshes.
    refreshes: Vec<(Duration, f64, bool)>,
    refresh_requests: Vec<Duration>,
    max_in_flight: usize,
    skipped_ticks: Vec<Duration>,
    /// (typed at, key to data ms)
    page_loads: Vec<(Duration, f64)>,
    pages_waiting: usize,
    rss_max_kb: u64,
}

/// The dashboard's loop as `watch::run_with_pool` runs it, with a TestBackend instead of the
/// terminal and a scripted typist instead of the keyboard. Maintenance requests are dropped.
async fn drive(
    env: &Env,
    script: Vec<(Duration, KeyEvent)>,
    total: Duration,
    interval: Duration,
    start: Instant,
) -> Result<DriveRun> {
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;

    let cfg = env.probe_cfg("idemtop", Duration::from_secs(5));
    let pool = cfg.pool(4).await?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let worker = Worker::new(
        cfg.clone(),
        pool.clone(),
        env.table.clone(),
        idemtop_core::config::Config::default(),
        tx,
    );
    let session = SessionInfo {
        target: cfg.describe(),
        table: env.table.to_string(),
        read_only: false,
    };
    let mut app = App::new(session, interval, start);
    let theme = Theme::new(false);
    let mut term = Terminal::new(TestBackend::new(120, 36))?;
    let (ktx, mut krx) = tokio::sync::mpsc::unbounded_channel::<(KeyEvent, Instant)>();
    let typist = tokio::spawn(async move {
        for (at, k) in script {
            tokio::time::sleep_until(tokio::time::Instant::from_std(start + at)).await;
            if ktx.send((k, Instant::now())).is_err() {
                break;
            }
        }
        // Keep the channel open until the end.
        std::future::pending::<()>().await;
    });
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut run = DriveRun::default();
    let mut outstanding: HashMap<u64, Instant> = HashMap::new();
    let mut page_waits: HashMap<u64, Instant> = HashMap::new();
    let me = std::process::id();
    let result = async {
        let mut pending_key: Option<Instant> = None;
        loop {
            let t = Instant::now();
            term.draw(|f| ui::draw(f, &app, &theme))?;
            let done = Instant::now();
            run.draws
                .push((t - start, (done - t).as_secs_f64() * 1000.0));
            if let Some(k) = pending_key.take() {
                run.key_to_frame
                    .push((k - start, (done - k).as_secs_f64() * 1000.0));
            }
            if done - start >= total {
                break;
            }
            let mut typed = None;
            let event = tokio::select! {
                Some((k, at)) = krx.recv() => {
                    pending_key = Some(at);
                    typed = Some(at);
                    Event::Key(k)
                }
                Some(db) = rx.recv() => Event::Db(db),
                _ = tick.tick() => {
                    let now = Instant::now();
                    if app.refresh.in_flight.is_some() && !app.refresh.paused && now >= app.refresh.due {
                        run.skipped_ticks.push(now - start);
                    }
                    if let Some(kb) = status_kb(me, "VmRSS:") {
                        run.rss_max_kb = run.rss_max_kb.max(kb);
                    }
                    Event::Tick(now)
                }
            };
            let now = Instant::now();
            match &event {
                Event::Db(DbEvent::Snapshot { generation, result }) => {
                    if let Some(t0) = outstanding.remove(generation) {
                        let blocked = matches!(result, Ok(s) if s.blocked_by.is_some());
                        run.refreshes.push((
                            t0 - start,
                            (now - t0).as_secs_f64() * 1000.0,
                            blocked,
                        ));
                    }
                }
                Event::Db(DbEvent::Page { generation, .. }) => {
                    if let Some(t0) = page_waits.remove(generation) {
                        run.page_loads
                            .push((t0 - start, (now - t0).as_secs_f64() * 1000.0));
                    }
                }
                _ => {}
            }
            for req in app::update(&mut app, event) {
                match &req {
                    Request::Refresh { generation, .. } => {
                        outstanding.insert(*generation, now);
                        run.refresh_requests.push(now - start);
                        run.max_in_flight = run.max_in_flight.max(outstanding.len());
                    }
                    Request::LoadPage(p) => {
                        page_waits.insert(p.generation, typed.unwrap_or(now));
                    }
                    Request::Run(_) => continue,
                    _ => {}
                }
                worker.handle(req);
            }
            if app.quit {
                break;
            }
        }
        anyhow::Ok(())
    }
    .await;
    typist.abort();
    run.pages_waiting = page_waits.len();
    drop(worker);
    let _ = tokio::time::timeout(Duration::from_secs(10), pool.close()).await;
    result?;
    Ok(run)
}

// ---------------------------------------------------------------------------------------------
// 4. The dashboard while the table is locked

async fn measure_stall(cfg: &BenchConfig, env: &Env) -> Result<StallReport> {
    let lock_at = Duration::from_secs(5);
    let hold = Duration::from_secs(cfg.lock_secs.max(1));
    let total = lock_at + hold + Duration::from_secs(3);
    // Keys every 100 ms: records, moves, pages, screen switches. Nothing that writes.
    let cycle = ['j', 'j', 'k', 'n', 'j', 'p', 'k', '1', 'j', 'k', '2'];
    let mut script = vec![(Duration::from_millis(300), key('2'))];
    let mut t = Duration::from_millis(1000);
    let mut i = 0;
    while t < total - Duration::from_millis(300) {
        script.push((t, key(cycle[i % cycle.len()])));
        i += 1;
        t += Duration::from_millis(100);
    }
    // The locker: another session takes ACCESS EXCLUSIVE for `hold`.
    let mut locker = env.admin().await?;
    let table = env.table.qualified();
    let start = Instant::now();
    let lock_task = tokio::spawn(async move {
        tokio::time::sleep_until(tokio::time::Instant::from_std(start + lock_at)).await;
        let requested = Instant::now();
        locker.execute("BEGIN").await?;
        locker
            .execute(format!("LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE").as_str())
            .await?;
        let acquired = Instant::now();
        tokio::time::sleep(hold).await;
        locker.execute("ROLLBACK").await?;
        let released = Instant::now();
        anyhow::Ok((requested - start, acquired - start, released - start))
    });
    let run = drive(env, script, total, Duration::from_secs(1), start).await?;
    let (requested, acquired, released) = lock_task.await.context("lock task")??;
    let in_window = |t: &Duration| *t >= requested && *t <= released;
    let stall_keys: Vec<f64> = run
        .key_to_frame
        .iter()
        .filter(|(t, _)| in_window(t))
        .map(|x| x.1)
        .collect();
    let all_keys: Vec<f64> = run.key_to_frame.iter().map(|x| x.1).collect();
    let stall_draws: Vec<f64> = run
        .draws
        .iter()
        .filter(|(t, _)| in_window(t))
        .map(|x| x.1)
        .collect();
    let all_draws: Vec<f64> = run.draws.iter().map(|x| x.1).collect();
    let stall_refreshes: Vec<&(Duration, f64, bool)> =
        run.refreshes.iter().filter(|r| in_window(&r.0)).collect();
    Ok(StallReport {
        lock_secs: (released - acquired).as_secs_f64(),
        stall_window_secs: (released - requested).as_secs_f64(),
        keys_during_stall: stall_keys.len(),
        key_to_frame_stall: Stats::of(&stall_keys),
        key_to_frame_all: Stats::of(&all_keys),
        draw_stall: Stats::of(&stall_draws),
        draw_all: Stats::of(&all_draws),
        frames: run.draws.len(),
        refreshes_requested_stall: run.refresh_requests.iter().filter(|t| in_window(t)).count(),
        refreshes_completed_stall: stall_refreshes.len(),
        refresh_max_ms_stall: stall_refreshes.iter().map(|r| r.1).fold(0.0, f64::max),
        blocked_snapshots: run.refreshes.iter().filter(|r| r.2).count(),
        max_refreshes_in_flight: run.max_in_flight,
        ticks_skipped_in_flight: run.skipped_ticks.iter().filter(|t| in_window(t)).count(),
        page_key_to_data_stall: Stats::of(
            &run.page_loads
                .iter()
                .filter(|(t, _)| in_window(t))
                .map(|x| x.1)
                .collect::<Vec<_>>(),
        ),
        pages_waiting_at_end: run.pages_waiting,
    })
}

// ---------------------------------------------------------------------------------------------
// 5. Cleanup under an insert load

/// Inserts at `rate` per second (open loop: each insert starts at its scheduled time on a pool
/// of connections; latency is measured from the scheduled time) until `stop`. Returns
/// (scheduled at, latency ms, ok).
async fn insert_load(
    pool: PgPool,
    sql: String,
    rate: f64,
    stop: CancellationToken,
) -> Vec<(Instant, f64, bool)> {
    let period = Duration::from_secs_f64(1.0 / rate);
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = tokio::task::JoinSet::new();
    let sql = Arc::new(sql);
    loop {
        let at = tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            at = ticker.tick() => at.into_std(),
        };
        let pool = pool.clone();
        let sql = Arc::clone(&sql);
        tasks.spawn(async move {
            let ok = sqlx::query(sql.as_str()).execute(&pool).await.is_ok();
            (at, at.elapsed().as_secs_f64() * 1000.0, ok)
        });
    }
    let mut out = Vec::new();
    while let Some(r) = tasks.join_next().await {
        if let Ok(x) = r {
            out.push(x);
        }
    }
    out
}

fn latency_of(samples: &[(Instant, f64, bool)], from: Instant, to: Instant) -> Latency {
    let window: Vec<&(Instant, f64, bool)> = samples
        .iter()
        .filter(|s| s.0 >= from && s.0 <= to)
        .collect();
    let ok: Vec<f64> = window.iter().filter(|s| s.2).map(|s| s.1).collect();
    let st = Stats::of(&ok);
    Latency {
        n: window.len(),
        failed: window.iter().filter(|s| !s.2).count(),
        p50_ms: st.median_ms,
        p99_ms: st.p99_ms,
        max_ms: st.max_ms,
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Variant {
    Guide,
    Idemtop,
}

async fn measure_cleanup(cfg: &BenchConfig, env: &Env, started: Instant) -> Result<CleanupReport> {
    let guide = cleanup_variant(cfg, env, Variant::Guide, started).await?;
    let idemtop = cleanup_variant(cfg, env, Variant::Idemtop, started).await?;
    Ok(CleanupReport {
        insert_rate: cfg.insert_rate,
        throughput_ratio: if guide.rows_per_sec > 0.0 {
            idemtop.rows_per_sec / guide.rows_per_sec
        } else {
            f64::NAN
        },
        guide,
        idemtop,
    })
}

async fn cleanup_variant(
    cfg: &BenchConfig,
    env: &Env,
    variant: Variant,
    started: Instant,
) -> Result<CleanupSide> {
    let schema_name = match variant {
        Variant::Guide => "bench_guide",
        Variant::Idemtop => "bench_idemtop",
    };
    let schema = Ident::new(schema_name).map_err(|e| anyhow!("{e}"))?;
    let table = TableRef::new(schema_name, "idempotency_records").map_err(|e| anyhow!("{e}"))?;
    let q = table.qualified();
    let mut admin = env.admin().await?;
    admin
        .execute(
            format!(
                "DROP SCHEMA IF EXISTS {} CASCADE; CREATE SCHEMA {}",
                schema.quoted(),
                schema.quoted()
            )
            .as_str(),
        )
        .await?;
    {
        // The table, its indexes and migration 046's function, in that schema.
        let mut m = env.admin().await?;
        migrate::run(&mut m, &schema).await?;
    }
    log(started, &format!("  copying the data set into {q}"));
    let t0 = Instant::now();
    admin
        .execute(format!("INSERT INTO {q} SELECT * FROM {}", env.table.qualified()).as_str())
        .await?;
    let copy_secs = t0.elapsed().as_secs_f64();
    admin
        .execute(format!("VACUUM ANALYZE {q}").as_str())
        .await?;
    admin.execute("CHECKPOINT").await?;

    let inserter = ConnectConfig::from_url(env.admin_url.clone())
        .with_statement_timeout(Duration::ZERO)
        .with_application_name("bench inserts")
        .pool(16)
        .await?;
    let insert_sql = GUIDE_INSERT.replace("{table}", &q);
    // Warm the pool and the plan cache, then measure idle latency.
    {
        let stop = CancellationToken::new();
        let h = tokio::spawn(insert_load(
            inserter.clone(),
            insert_sql.clone(),
            cfg.insert_rate,
            stop.clone(),
        ));
        tokio::time::sleep(Duration::from_secs(1)).await;
        stop.cancel();
        let _ = h.await;
    }
    // Let the checkpoint's writes settle.
    tokio::time::sleep(Duration::from_secs(2)).await;
    log(
        started,
        &format!("  idle insert latency ({} s)", cfg.idle_secs),
    );
    let stop = CancellationToken::new();
    let h = tokio::spawn(insert_load(
        inserter.clone(),
        insert_sql.clone(),
        cfg.insert_rate,
        stop.clone(),
    ));
    let i0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(cfg.idle_secs.max(1))).await;
    let i1 = Instant::now();
    stop.cancel();
    let idle_samples = h.await.context("insert task")?;
    let idle = latency_of(&idle_samples, i0, i1);

    let what = match variant {
        Variant::Guide => "guide: SELECT * FROM cleanup_expired_idempotency_records()",
        Variant::Idemtop => "idemtop: maintenance::cleanup (default options)",
    };
    log(started, &format!("  cleanup: {what}"));
    let lsn0: String = sqlx::query_scalar("SELECT pg_current_wal_lsn()::text")
        .fetch_one(&mut admin)
        .await?;
    let stop = CancellationToken::new();
    let h = tokio::spawn(insert_load(
        inserter.clone(),
        insert_sql,
        cfg.insert_rate,
        stop.clone(),
    ));
    // Let the load settle into its schedule.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let c0 = Instant::now();
    let (deleted, batches, method) = match variant {
        Variant::Guide => {
            let mut conn = env
                .probe_cfg("bench guide cleanup", Duration::ZERO)
                .connect()
                .await?;
            conn.execute(format!("SET search_path TO {}", schema.quoted()).as_str())
                .await?;
            let n: i64 = sqlx::query_scalar("SELECT * FROM cleanup_expired_idempotency_records()")
                .fetch_one(&mut conn)
                .await?;
            (n.max(0) as u64, None, None)
        }
        Variant::Idemtop => {
            let pool = env
                .probe_cfg("idemtop cleanup", Duration::from_secs(5))
                .pool(4)
                .await?;
            let token = CancellationToken::new();
            let s = maintenance::cleanup(
                &pool,
                &table,
                &maintenance::CleanupOptions::default(),
                &token,
                |_| {},
            )
            .await?;
            pool.close().await;
            (
                s.deleted,
                Some(s.batches),
                Some(s.method.as_str().to_string()),
            )
        }
    };
    let c1 = Instant::now();
    let wal: i64 =
        sqlx::query_scalar("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1::pg_lsn)::int8")
            .bind(&lsn0)
            .fetch_one(&mut admin)
            .await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.cancel();
    let samples = h.await.context("insert task")?;
    let during = latency_of(&samples, c0, c1);
    inserter.close().await;
    admin
        .execute(format!("DROP SCHEMA {} CASCADE", schema.quoted()).as_str())
        .await?;
    admin.execute("CHECKPOINT").await?;
    let duration_secs = (c1 - c0).as_secs_f64();
    Ok(CleanupSide {
        what: what.into(),
        copy_secs,
        deleted,
        duration_secs,
        rows_per_sec: if duration_secs > 0.0 {
            deleted as f64 / duration_secs
        } else {
            0.0
        },
        wal_bytes: wal,
        batches,
        method,
        p99_vs_idle: if idle.p99_ms > 0.0 {
            during.p99_ms / idle.p99_ms
        } else {
            f64::NAN
        },
        idle,
        during,
    })
}

// ---------------------------------------------------------------------------------------------
// Targets and the printed table

fn targets(
    refresh: &RefreshReport,
    paging: &PagingReport,
    mem: &MemoryReport,
    stall: &StallReport,
    cleanup: Option<&CleanupReport>,
) -> Vec<TargetCheck> {
    let mut out = Vec::new();
    let mut check = |name: &str, value: String, target: &str, pass: Option<bool>| {
        out.push(TargetCheck {
            name: name.into(),
            value,
            target: target.into(),
            pass,
        })
    };
    check(
        "refresh server time (median)",
        format!("{:.2} ms", refresh.idemtop.server.median_ms),
        "<= 5 ms",
        Some(refresh.idemtop.server.median_ms <= 5.0),
    );
    check(
        "refresh: guide / idemtop server time",
        format!("{:.0}x", refresh.ratio_server),
        ">= 150x",
        Some(refresh.ratio_server >= 150.0),
    );
    let worst_keyset = paging
        .pages
        .iter()
        .filter(|p| p.method == "keyset")
        .map(|p| p.server.median_ms)
        .fold(0.0, f64::max);
    check(
        "records page, any depth (keyset, median)",
        format!("{worst_keyset:.2} ms"),
        "<= 5 ms",
        Some(worst_keyset <= 5.0),
    );
    match cleanup {
        Some(c) => {
            check(
                "cleanup throughput vs single DELETE",
                format!("{:.2}x", c.throughput_ratio),
                ">= 0.5x",
                Some(c.throughput_ratio >= 0.5),
            );
            check(
                "insert p99 during cleanup vs idle",
                format!(
                    "{:.1}x ({:.1} / {:.1} ms)",
                    c.idemtop.p99_vs_idle, c.idemtop.during.p99_ms, c.idemtop.idle.p99_ms
                ),
                "<= 3x",
                Some(c.idemtop.p99_vs_idle <= 3.0),
            );
        }
        None => {
            check(
                "cleanup throughput vs single DELETE",
                "skipped".into(),
                ">= 0.5x",
                None,
            );
            check(
                "insert p99 during cleanup vs idle",
                "skipped".into(),
                "<= 3x",
                None,
            );
        }
    }
    let rss_mb = mem.rss_max_kb as f64 / 1024.0;
    check(
        "dashboard RSS (max)",
        format!("{rss_mb:.1} MB"),
        "<= 30 MB",
        Some(rss_mb <= 30.0),
    );
    check(
        "refreshes never overlap (max in flight)",
        format!("{}", stall.max_refreshes_in_flight),
        "<= 1",
        Some(stall.max_refreshes_in_flight <= 1),
    );
    check(
        "key to frame while locked (max)",
        format!("{:.1} ms", stall.key_to_frame_stall.max_ms),
        "<= 100 ms (guideline)",
        Some(stall.key_to_frame_stall.n > 0 && stall.key_to_frame_stall.max_ms <= 100.0),
    );
    out
}

fn mb(bytes: i64) -> String {
    idemtop_core::format::bytes(bytes)
}

/// The report as a readable table.
pub fn render(r: &Report) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let d = &r.data;
    let _ = writeln!(s, "idemtop bench");
    let _ = writeln!(s, "  command : {}", r.command);
    let _ = writeln!(
        s,
        "  server  : PostgreSQL {} on {} cores, {:.0} GB RAM; {}",
        r.server.version,
        r.server.cores,
        r.server.memory_gb,
        r.server
            .settings
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let _ = writeln!(
        s,
        "  data    : {} rows, {} expired ({:.1}%), created_at over {:.0} h, {}, {} operations, \
         payload avg {:.0} B; table {} + indexes {} = {}; built in {:.0} s, VACUUM ANALYZE {:.0} s",
        idemtop_core::format::count(d.rows),
        idemtop_core::format::count(d.expired),
        d.expired_share * 100.0,
        d.spread_hours,
        d.layout.describe(),
        d.operations,
        d.avg_payload_bytes,
        mb(d.table_bytes),
        mb(d.index_bytes),
        mb(d.total_bytes),
        d.backfill_secs,
        d.vacuum_analyze_secs
    );
    let _ = writeln!(
        s,
        "  timing  : {}; CPU: {}",
        r.server.server_time_source, r.server.cpu_source
    );
    let _ = writeln!(s);

    let rf = &r.refresh;
    let _ = writeln!(s, "1. Refresh cost (warm, per refresh)          server median   p95        client median   server CPU");
    for side in [&rf.guide, &rf.idemtop, &rf.idemtop_exact_pass] {
        let _ = writeln!(
            s,
            "   {:<40} {:>10.2} ms {:>8.2} ms {:>10.2} ms {:>10.2} ms   ({} reps{})",
            side.what,
            side.server.median_ms,
            side.server.p95_ms,
            side.client.median_ms,
            side.cpu_ms,
            side.reps,
            if side.statements > 0 {
                format!(", {} statements", side.statements)
            } else {
                String::new()
            }
        );
    }
    for st in rf.idemtop.breakdown.iter().take(3) {
        let _ = writeln!(
            s,
            "     idemtop statement {:>6.2} ms/refresh: {}",
            st.ms_per_refresh,
            st.query.chars().take(90).collect::<String>()
        );
    }
    let _ = writeln!(
        s,
        "   ratio guide/idemtop: server time {:.0}x, server CPU {:.0}x; idemtop estimated {} rows, {} expired{}",
        rf.ratio_server,
        rf.ratio_cpu,
        idemtop_core::format::count(rf.estimate_total),
        idemtop_core::format::count(rf.estimate_expired),
        if rf.estimate_expired_exact { " (exact)" } else { " (estimate)" }
    );
    let _ = writeln!(s);

    let _ = writeln!(
        s,
        "2. Records page ({} rows)                      server median   p95        client median",
        r.paging.page_rows
    );
    for p in &r.paging.pages {
        let _ = writeln!(
            s,
            "   {:<17} {:<22} {:>10.2} ms {:>8.2} ms {:>10.2} ms   ({} at row {})",
            p.sort,
            format!("{} {}", p.method.split(' ').next().unwrap_or(""), p.label),
            p.server.median_ms,
            p.server.p95_ms,
            p.client.median_ms,
            p.method,
            idemtop_core::format::count(p.depth_rows)
        );
    }
    let _ = writeln!(
        s,
        "   keyset page equals the OFFSET page at the same depth: {}",
        if r.paging.keyset_matches_offset {
            "yes"
        } else {
            "NO"
        }
    );
    let _ = writeln!(s);

    let m = &r.dashboard_memory;
    let _ = writeln!(
        s,
        "3. Dashboard memory: {} for {:.0} s ({} page-downs, {} details, every screen)",
        m.method, m.secs, m.page_keys, m.details_opened
    );
    let _ = writeln!(
        s,
        "   VmRSS after start {:.1} MB, at end {:.1} MB, max {:.1} MB, VmHWM {:.1} MB; {}",
        m.rss_start_kb as f64 / 1024.0,
        m.rss_end_kb as f64 / 1024.0,
        m.rss_max_kb as f64 / 1024.0,
        m.hwm_kb as f64 / 1024.0,
        m.note
    );
    let _ = writeln!(s);

    let u = &r.ui_stall;
    let _ = writeln!(
        s,
        "4. Dashboard while another session holds ACCESS EXCLUSIVE for {:.1} s (in-process, TestBackend 120x36)",
        u.lock_secs
    );
    let _ = writeln!(
        s,
        "   key to frame: stall p99 {:.2} ms, max {:.2} ms ({} keys); whole run max {:.2} ms; frame draw max {:.2} ms (stall), {:.2} ms (all, {} frames)",
        u.key_to_frame_stall.p99_ms,
        u.key_to_frame_stall.max_ms,
        u.keys_during_stall,
        u.key_to_frame_all.max_ms,
        u.draw_stall.max_ms,
        u.draw_all.max_ms,
        u.frames
    );
    let _ = writeln!(
        s,
        "   refreshes during the stall: {} sent, {} done (max {:.0} ms), {} saw the lock and skipped the probes; \
         {} due ticks skipped while one was in flight; max in flight {}",
        u.refreshes_requested_stall,
        u.refreshes_completed_stall,
        u.refresh_max_ms_stall,
        u.blocked_snapshots,
        u.ticks_skipped_in_flight,
        u.max_refreshes_in_flight
    );
    let _ = writeln!(
        s,
        "   record pages asked for during the stall: key to data median {:.0} ms, max {:.0} ms ({} loads; they wait for the lock)",
        u.page_key_to_data_stall.median_ms,
        u.page_key_to_data_stall.max_ms,
        u.page_key_to_data_stall.n
    );
    let _ = writeln!(s);

    match &r.cleanup {
        Some(c) => {
            let _ = writeln!(
                s,
                "5. Cleanup on a fresh copy each, with {:.0} inserts/s (the guide's INSERT)",
                c.insert_rate
            );
            let _ = writeln!(s, "   {:<58} {:>10} {:>8} {:>10} {:>9}  insert p50/p99/max during   idle p50/p99/max      p99 vs idle", "", "deleted", "secs", "rows/s", "WAL");
            for side in [&c.guide, &c.idemtop] {
                let _ = writeln!(
                    s,
                    "   {:<58} {:>10} {:>8.2} {:>10.0} {:>9}  {:>6.1}/{:>6.1}/{:>7.1} ms   {:>5.1}/{:>5.1}/{:>6.1} ms   {:>5.1}x{}",
                    side.what,
                    idemtop_core::format::count(side.deleted as i64),
                    side.duration_secs,
                    side.rows_per_sec,
                    mb(side.wal_bytes),
                    side.during.p50_ms,
                    side.during.p99_ms,
                    side.during.max_ms,
                    side.idle.p50_ms,
                    side.idle.p99_ms,
                    side.idle.max_ms,
                    side.p99_vs_idle,
                    match side.batches {
                        Some(b) => format!(
                            "  ({b} batches, {})",
                            side.method.as_deref().unwrap_or("?")
                        ),
                        None => String::new(),
                    }
                );
            }
            let _ = writeln!(s, "   throughput idemtop/guide: {:.2}x", c.throughput_ratio);
        }
        None => {
            let _ = writeln!(s, "5. Cleanup: skipped (--skip-cleanup)");
        }
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "Targets                                         value                         target                 result");
    for t in &r.targets {
        let _ = writeln!(
            s,
            "  {:<45} {:<29} {:<22} {}",
            t.name,
            t.value,
            t.target,
            match t.pass {
                Some(true) => "PASS",
                Some(false) => "FAIL",
                None => "-",
            }
        );
    }
    for n in &r.notes {
        let _ = writeln!(s, "note: {n}");
    }
    let _ = writeln!(s, "total {:.0} s", r.total_secs);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        let s = Stats::of(&v);
        assert_eq!(s.n, 100);
        assert_eq!(s.median_ms, 50.5);
        assert_eq!(s.p95_ms, 95.0);
        assert_eq!(s.p99_ms, 99.0);
        assert_eq!(s.max_ms, 100.0);
        assert_eq!(Stats::of(&[]).n, 0);
        assert_eq!(Stats::of(&[3.0, 1.0, 2.0]).median_ms, 2.0);
    }

    #[test]
    fn proc_stat_of_self_parses() {
        let me = std::process::id() as i32;
        assert!(proc_ticks(me).is_some());
        assert!(proc_cpu_ns(me).is_some());
        assert!(status_kb(me as u32, "VmRSS:").unwrap() > 0);
    }

    #[test]
    fn settings_override_the_unsafe_defaults() {
        let s = server_settings(10_000_000, true);
        let get = |k: &str| {
            s.iter()
                .rev()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("fsync"), Some("on"));
        let sb = format!("{}MB", shared_buffers_mb(machine_memory_gb()));
        assert_eq!(get("shared_buffers"), Some(sb.as_str()));
        assert_eq!(shared_buffers_mb(23.4), 5990);
        assert_eq!(shared_buffers_mb(0.5), 256);
        assert_eq!(shared_buffers_mb(256.0), 8192);
        assert_eq!(get("shared_preload_libraries"), Some("pg_stat_statements"));
    }
}

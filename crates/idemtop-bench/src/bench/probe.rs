//! Measuring the server: CPU of its backends from /proc, its statement clock, settings, disk and memory.

use super::*;

// ---------------------------------------------------------------------------------------------
// Measuring helpers

pub(super) fn clk_tck() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// (utime + stime, cutime + cstime) in clock ticks, from /proc/<pid>/stat.
pub(super) fn proc_ticks(pid: i32) -> Option<(u64, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Field 3 (state) is f[0]; utime is field 14.
    let n = |i: usize| f.get(i - 3).and_then(|v| v.parse::<u64>().ok());
    Some((n(14)? + n(15)?, n(16)? + n(17)?))
}

/// Nanoseconds on CPU, from /proc/<pid>/schedstat (more precise than ticks).
pub(super) fn proc_cpu_ns(pid: i32) -> Option<u64> {
    if let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/schedstat")) {
        if let Some(v) = s.split_whitespace().next().and_then(|v| v.parse().ok()) {
            return Some(v);
        }
    }
    proc_ticks(pid).map(|(t, _)| (t as f64 * 1e9 / clk_tck()) as u64)
}

pub(super) fn status_kb(pid: u32, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// CPU of one backend plus what the postmaster reaped (parallel workers).
#[derive(Clone, Copy)]
pub(super) struct CpuProbe {
    pub(super) backend: i32,
    pub(super) postmaster: i32,
}

#[derive(Clone, Copy)]
pub(super) struct CpuSample {
    pub(super) backend_ns: u64,
    pub(super) reaped_ticks: u64,
}

impl CpuProbe {
    pub(super) fn sample(&self) -> CpuSample {
        CpuSample {
            backend_ns: proc_cpu_ns(self.backend).unwrap_or(0),
            reaped_ticks: proc_ticks(self.postmaster).map(|t| t.1).unwrap_or(0),
        }
    }

    /// (backend ms, workers ms) between two samples.
    pub(super) fn delta(a: CpuSample, b: CpuSample) -> (f64, f64) {
        (
            b.backend_ns.saturating_sub(a.backend_ns) as f64 / 1e6,
            b.reaped_ticks.saturating_sub(a.reaped_ticks) as f64 * 1000.0 / clk_tck(),
        )
    }
}

/// Reads the cumulated server time of [`PROBE_ROLE`] from pg_stat_statements.
pub(super) struct ServerClock {
    pub(super) admin: PgConnection,
    pub(super) pgss: bool,
}

impl ServerClock {
    pub(super) async fn ms(&mut self) -> Result<f64> {
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
    pub(super) async fn calls(&mut self) -> Result<i64> {
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
    pub(super) async fn per_statement(&mut self) -> Result<HashMap<i64, (i64, f64, String)>> {
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
    pub(super) async fn time<T, F>(&mut self, f: F) -> Result<(T, f64, f64)>
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

pub(super) fn log(started: Instant, msg: &str) {
    eprintln!("[{:>7.1}s] {msg}", started.elapsed().as_secs_f64());
}

// ---------------------------------------------------------------------------------------------
// The run

pub(super) struct Env {
    pub(super) pg: TempPostgres,
    pub(super) admin_url: String,
    pub(super) probe_url: String,
    pub(super) table: TableRef,
    pub(super) postmaster: i32,
    pub(super) pgss: bool,
}

impl Env {
    pub(super) async fn admin(&self) -> Result<PgConnection> {
        ConnectConfig::from_url(self.admin_url.clone())
            .with_statement_timeout(Duration::ZERO)
            .with_application_name("idemtop bench admin")
            .connect()
            .await
    }

    pub(super) fn probe_cfg(&self, app_name: &str, timeout: Duration) -> ConnectConfig {
        ConnectConfig::from_url(self.probe_url.clone())
            .with_statement_timeout(timeout)
            .with_application_name(app_name)
    }

    pub(super) async fn clock(&self) -> Result<ServerClock> {
        Ok(ServerClock {
            admin: self.admin().await?,
            pgss: self.pgss,
        })
    }

    pub(super) async fn cpu_probe(&self, conn: &mut PgConnection) -> Result<CpuProbe> {
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
pub(super) fn shared_buffers_mb(mem_gb: f64) -> u64 {
    ((mem_gb * 1024.0 / 4.0) as u64).clamp(256, 8192)
}

pub(super) fn server_settings(rows: u64, pgss: bool) -> Vec<(String, String)> {
    let big = rows > 2_000_000;
    let shared_buffers = format!("{}MB", shared_buffers_mb(machine_memory_gb()));
    let mut s: Vec<(&str, &str)> = vec![
        ("shared_buffers", shared_buffers.as_str()),
        // 4 GB at 10M rows: the run's disk (two copies of the table at most) stays under 13 GB
        // on a machine it shares (8 GB before; more checkpoints now, for both cleanups alike).
        ("max_wal_size", if big { "4GB" } else { "2GB" }),
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

pub(super) const SHOWN_SETTINGS: [&str; 15] = [
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

pub(super) fn machine_memory_gb() -> f64 {
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
pub(super) fn free_bytes(dir: &Path) -> Option<u64> {
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

/// The run needs about 900 bytes per row (the table with its indexes, ~445 bytes a row, and a
/// staging or cleanup copy of it) plus max_wal_size of headroom.
pub(super) fn check_disk(cfg: &BenchConfig) -> Result<()> {
    let dir = std::env::temp_dir();
    let wal = if cfg.rows > 2_000_000 {
        4u64 << 30
    } else {
        2u64 << 30
    };
    let need = cfg.rows.saturating_mul(900).saturating_add(wal);
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

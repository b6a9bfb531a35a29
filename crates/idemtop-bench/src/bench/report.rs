//! The report: every figure of one run, serialisable to JSON.

use super::*;

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

/// Every part's figures; `None`: the part was not run (`--only`, `--skip-cleanup`).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub command: String,
    pub started_at: DateTime<Utc>,
    pub total_secs: f64,
    pub server: ServerInfo,
    pub data: DataSet,
    pub refresh: Option<RefreshReport>,
    pub paging: Option<PagingReport>,
    pub dashboard_memory: Option<MemoryReport>,
    pub ui_stall: Option<StallReport>,
    pub keyframe: Option<KeyFrameReport>,
    pub watch: Option<WatchReport>,
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
    /// Every sample (server ms, client ms), to merge the blocks of several rounds.
    #[serde(skip)]
    pub raw: Vec<(f64, f64)>,
}

impl RefreshSide {
    /// Blocks of the same side, measured in different rounds, as one.
    pub fn merge(blocks: Vec<RefreshSide>) -> Option<RefreshSide> {
        let mut it = blocks.into_iter();
        let mut out = it.next()?;
        for b in it {
            let (n0, n1) = (out.reps as f64, b.reps as f64);
            let w = |a: f64, c: f64| (a * n0 + c * n1) / (n0 + n1).max(1.0);
            out.cpu_ms = w(out.cpu_ms, b.cpu_ms);
            out.cpu_backend_ms = w(out.cpu_backend_ms, b.cpu_backend_ms);
            out.cpu_workers_ms = w(out.cpu_workers_ms, b.cpu_workers_ms);
            out.reps += b.reps;
            out.raw.extend(b.raw);
        }
        let server: Vec<f64> = out.raw.iter().map(|r| r.0).collect();
        let client: Vec<f64> = out.raw.iter().map(|r| r.1).collect();
        out.server = Stats::of(&server);
        out.client = Stats::of(&client);
        Some(out)
    }
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
    /// The checks' gather (every 30 s with the exact pass's request, and on the Health screen),
    /// reusing the TTL sample of an earlier one.
    pub idemtop_gather: RefreshSide,
    /// The checks' gather that reads the TTL sample (every 10 min, and on `r`).
    pub idemtop_gather_sample: RefreshSide,
    /// Seconds between exact passes in steady state: max(30 s, EXACT_PASS_BUDGET x the pass's
    /// duration); None when the dashboard makes none on schedule at this size (see
    /// `exact_schedule`).
    pub exact_interval_secs: Option<f64>,
    /// Whether and how often the dashboard makes the exact pass on its own, and why.
    pub exact_schedule: String,
    /// Per 2 s refresh, amortised: the refresh (the planner statistics read every 15th) + the
    /// exact pass x 2 s / its interval (when scheduled) + the gather x 2 s / 30 s + its TTL
    /// sample x 2 s / 600 s. CPU (backend + parallel workers, from /proc) and server time.
    pub amortised_cpu_ms: f64,
    pub amortised_server_ms: f64,
    /// The guide's queries against that amortised cost: the headline ratios.
    pub ratio_cpu_amortised: f64,
    pub ratio_server_amortised: f64,
    /// Medians of each round's block, guide and idemtop (the order alternates per round).
    pub rounds: Vec<(String, f64, f64)>,
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
    /// `during.p99_ms` over the run's idle p99 (`CleanupReport::idle_p99_ms`).
    pub p99_vs_idle: f64,
    /// The latencies (ms) of the inserts that succeeded during the cleanup, for the p99 of all
    /// repetitions pooled.
    #[serde(skip)]
    pub during_ms: Vec<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CleanupReport {
    pub insert_rate: f64,
    /// The repetition whose throughput ratio is the median (of `runs`).
    pub guide: CleanupSide,
    pub idemtop: CleanupSide,
    /// Median of the repetitions' ratios.
    pub throughput_ratio: f64,
    pub throughput_ratio_min: f64,
    pub throughput_ratio_max: f64,
    /// Median and largest of idemtop's insert p99 / idle over the repetitions.
    pub p99_vs_idle_median: f64,
    pub p99_vs_idle_max: f64,
    /// The p99 of the inserts during every repetition of idemtop's cleanup, pooled, over the
    /// idle p99 (`idle_p99_ms`): the figure the target judges. A short cleanup sees few inserts
    /// (an 80 ms one about 16 at 200 a second, whose p99 is their slowest), so the bench repeats
    /// it until at least [`super::cleanup::P99_MIN_SAMPLES`] are pooled (at most
    /// [`super::cleanup::MAX_CLEANUP_REPS`] repetitions; `--quick` keeps its own).
    pub p99_pooled_vs_idle: f64,
    pub p99_pooled_samples: usize,
    /// The idle p99 every `p99_vs_idle` divides by: the median of all idle windows' p99 (one
    /// before each cleanup), and their range.
    pub idle_p99_ms: f64,
    pub idle_p99_min_ms: f64,
    pub idle_p99_max_ms: f64,
    /// Every repetition: (which ran first, guide, idemtop, ratio).
    pub runs: Vec<CleanupRun>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CleanupRun {
    pub first: String,
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

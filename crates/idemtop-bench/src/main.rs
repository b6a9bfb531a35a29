//! `idemtop-bench` (also reached as `idemtop bench`): a throwaway server, a generated data set,
//! and the measurements of idemtop against the migration guide's queries in one run (see
//! [`bench`]). Prints one table; `--json FILE` writes the report.
//!
//! The benchmark is its own binary so that it does not ship inside `idemtop`: build it with
//! `cargo build --release -p idemtop-bench` (then `idemtop bench ...` finds it beside `idemtop`).

mod bench;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Parser;

use bench::{BenchConfig, Layout, Part, Parts};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LayoutArg {
    Time,
    Random,
}

#[derive(Parser, Debug, Clone)]
#[command(
    name = "idemtop-bench",
    version,
    about = "Measure idemtop against the migration guide's queries on a throwaway PostgreSQL"
)]
pub struct BenchArgs {
    /// Rows of generated history (created_at over the last 48 h: ~60% already expired).
    /// Default 1,000,000 (30,000 with --quick).
    #[arg(long, value_name = "N")]
    pub rows: Option<u64>,
    /// The CI size: 30,000 rows, 5 s steady-state windows, short memory and lock runs; about
    /// two minutes on 2 cores. Targets that depend on the size are scaled to it.
    #[arg(long)]
    pub quick: bool,
    /// Seconds of each tool's window in the steady-state comparison (3 rounds; default 100,
    /// 5 with --quick).
    #[arg(long, value_name = "SECS")]
    pub watch_secs: Option<u64>,
    /// Repetitions of the cleanup comparison (the order alternates).
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub cleanup_reps: usize,
    /// Physical order of the rows: `time` (created_at order, as a table filled over time) or
    /// `random` (the generator's order: expired rows on every page).
    #[arg(long, value_enum, default_value_t = LayoutArg::Time)]
    pub layout: LayoutArg,
    /// Also write the full report as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Skip the cleanup comparison (the longest part: two copies of the data set).
    #[arg(long)]
    pub skip_cleanup: bool,
    /// Run only these parts (a comma list of refresh, paging, memory, stall, keyframe, watch,
    /// cleanup; default all). The data set is built either way.
    #[arg(long, value_name = "PARTS", value_parser = Parts::parse, hide = true)]
    pub only: Option<Parts>,
    /// Single-row inserts per second running during the cleanup comparison.
    #[arg(long, default_value_t = 200.0, value_name = "N")]
    pub insert_rate: f64,
    /// idemtop's side of the cleanup comparison: `idemtop cleanup --sweep-workers N` (default:
    /// its default).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=8))]
    pub sweep_workers: Option<u32>,
    /// idemtop's side of the cleanup comparison: `--sweep-batch-ms MS`.
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..))]
    pub sweep_batch_ms: Option<u64>,
    /// idemtop's side of the cleanup comparison: `--sweep-sync-commit` (its default).
    #[arg(long, conflicts_with = "sweep_async_commit")]
    pub sweep_sync_commit: bool,
    /// idemtop's side of the cleanup comparison: `--sweep-async-commit`.
    #[arg(long)]
    pub sweep_async_commit: bool,
    /// Hours over which created_at is spread (48: ~59.6% expired with the guide's TTLs).
    #[arg(long, default_value_t = 48.0, value_name = "H", hide = true)]
    pub spread_hours: f64,
    /// Seconds of the dashboard memory run.
    #[arg(long, default_value_t = 20, value_name = "SECS", hide = true)]
    pub dashboard_secs: u64,
    /// The idemtop binary of the memory, key-to-frame and steady-state runs and of the
    /// cleanup's idemtop side (default: the `idemtop` beside this executable; without one the
    /// cleanup runs the same code in process).
    #[arg(long, value_name = "PATH", hide = true)]
    pub dashboard_bin: Option<PathBuf>,
}

impl BenchArgs {
    /// The parts to run: `--only` (default all), less the cleanup with `--skip-cleanup`.
    pub fn parts(&self) -> Parts {
        let p = self.only.unwrap_or(Parts::ALL);
        if self.skip_cleanup {
            p.without(Part::Cleanup)
        } else {
            p
        }
    }

    pub fn rows(&self) -> u64 {
        self.rows
            .unwrap_or(if self.quick { 30_000 } else { 1_000_000 })
    }

    /// The command line that reproduces this run.
    pub fn command_line(&self) -> String {
        let mut s = format!(
            "idemtop-bench --rows {} --insert-rate {}",
            self.rows(),
            self.insert_rate
        );
        if self.quick {
            s.push_str(" --quick");
        }
        if let Some(w) = self.watch_secs {
            s.push_str(&format!(" --watch-secs {w}"));
        }
        if self.cleanup_reps != 3 {
            s.push_str(&format!(" --cleanup-reps {}", self.cleanup_reps));
        }
        if self.layout == LayoutArg::Random {
            s.push_str(" --layout random");
        }
        if self.skip_cleanup {
            s.push_str(" --skip-cleanup");
        }
        if let Some(p) = self.only.filter(|p| !p.is_all()) {
            s.push_str(&format!(" --only {p}"));
        }
        if let Some(w) = self.sweep_workers {
            s.push_str(&format!(" --sweep-workers {w}"));
        }
        if let Some(b) = self.sweep_batch_ms {
            s.push_str(&format!(" --sweep-batch-ms {b}"));
        }
        if self.sweep_sync_commit {
            s.push_str(" --sweep-sync-commit");
        }
        if self.sweep_async_commit {
            s.push_str(" --sweep-async-commit");
        }
        if let Some(j) = &self.json {
            s.push_str(&format!(" --json {}", j.display()));
        }
        if (self.spread_hours - 48.0).abs() > f64::EPSILON {
            s.push_str(&format!(" --spread-hours {}", self.spread_hours));
        }
        s
    }
}

/// The dashboard binary for the tmux run: `--dashboard-bin`, else the `idemtop` beside this
/// executable (cargo builds both into the same directory).
fn dashboard_bin(args: &BenchArgs) -> Option<PathBuf> {
    if let Some(b) = &args.dashboard_bin {
        return Some(b.clone());
    }
    let exe = std::env::current_exe().ok()?;
    let beside = exe.parent()?.join("idemtop");
    beside.is_file().then_some(beside)
}

fn main() -> std::process::ExitCode {
    let args = BenchArgs::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("idemtop-bench: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("idemtop-bench: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

pub async fn run(args: &BenchArgs) -> Result<()> {
    if !(args.spread_hours.is_finite() && args.spread_hours >= 25.0) {
        bail!("--spread-hours must be at least 25 (the longest TTL is 24 h)");
    }
    if args.parts() == Parts::NONE {
        bail!("--skip-cleanup with --only cleanup leaves nothing to run");
    }
    let quick = args.quick;
    let cfg = BenchConfig {
        rows: args.rows(),
        layout: match args.layout {
            LayoutArg::Time => Layout::Time,
            LayoutArg::Random => Layout::Random,
        },
        insert_rate: args.insert_rate,
        parts: args.parts(),
        spread: Duration::from_secs_f64(args.spread_hours * 3600.0),
        dashboard_bin: dashboard_bin(args),
        dashboard_secs: if quick {
            args.dashboard_secs.min(15)
        } else {
            args.dashboard_secs
        },
        command: args.command_line(),
        watch_secs: args.watch_secs.unwrap_or(if quick { 3 } else { 100 }),
        cleanup_reps: args.cleanup_reps,
        cleanup_options: {
            let d = idemtop_core::db::maintenance::CleanupOptions::default();
            idemtop_core::db::maintenance::CleanupOptions {
                sweep_workers: args.sweep_workers.unwrap_or(d.sweep_workers),
                sweep_batch: args
                    .sweep_batch_ms
                    .map_or(d.sweep_batch, Duration::from_millis),
                sweep_sync_commit: !args.sweep_async_commit,
                ..d
            }
        },
        quick,
        ..if quick {
            BenchConfig {
                dashboard_secs: 15,
                lock_secs: 2,
                idle_secs: 1,
                watch_rounds: 3,
                keyframe_keys: 10,
                cardinality_rows: 50_000,
                ..BenchConfig::default()
            }
        } else {
            BenchConfig::default()
        }
    };
    let report = bench::run(&cfg).await?;
    println!("{}", bench::render(&report));
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!("idemtop-bench: report written to {}", path.display());
    }
    Ok(())
}

//! `idemtop bench ARGS...`: runs the benchmark, which is its own binary (`idemtop-bench`, crate
//! `crates/idemtop-bench`) so that it does not ship inside `idemtop`. Looks for it beside this
//! executable, then on PATH, and runs it with the same arguments; says how to build it when it
//! is in neither place.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Result};

/// The name of the benchmark's binary.
pub const BENCH_BIN: &str = "idemtop-bench";

/// Where `idemtop-bench` is: beside `exe` (cargo builds both into one directory), else on `path`
/// (the PATH variable).
pub fn find_bench(exe: Option<&Path>, path: Option<&std::ffi::OsStr>) -> Option<PathBuf> {
    let beside = exe.and_then(|e| e.parent()).map(|d| d.join(BENCH_BIN));
    if let Some(b) = beside.filter(|b| b.is_file()) {
        return Some(b);
    }
    std::env::split_paths(path?)
        .map(|d| d.join(BENCH_BIN))
        .find(|b| b.is_file())
}

/// Run the benchmark with `args`; its exit code.
pub fn run(args: &[OsString]) -> Result<i32> {
    let exe = std::env::current_exe().ok();
    let bin = find_bench(exe.as_deref(), std::env::var_os("PATH").as_deref()).ok_or_else(|| {
        anyhow!(
            "the benchmark is a separate binary, {BENCH_BIN}, found neither beside idemtop nor \
             on PATH; build it with `cargo build --release -p idemtop-bench` and run \
             `./target/release/idemtop bench ...` (or `./target/release/idemtop-bench ...`)"
        )
    })?;
    let status = std::process::Command::new(&bin)
        .args(args)
        .status()
        .map_err(|e| anyhow!("cannot run {}: {e}", bin.display()))?;
    Ok(status.code().unwrap_or(1))
}

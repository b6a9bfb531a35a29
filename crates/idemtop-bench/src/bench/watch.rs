//! Steady-state watching, tool against tool: each tool alone on the server (2 s refresh, an
//! insert load running), in windows whose order rotates from round to round, measuring the
//! server CPU of the tool's own backends from `/proc` (each tool connects as its own role) plus
//! what the postmaster reaped in the window (parallel workers, exited backends; autovacuum is off
//! and every other session of the bench stays connected, so nothing else is reaped).
//!
//! Tools: idemtop (the real binary in tmux, default settings: exact passes, checks, everything
//! the dashboard sends), pg_activity (in tmux, when installed), the guide's monitoring queries
//! every 2 s (as `psql`'s `\watch 2` would run them), and a baseline (the load alone: what is
//! reaped without any tool).

use super::*;

/// One tool's window.
#[derive(Debug, Clone, Serialize)]
pub struct WatchWindow {
    pub round: usize,
    /// Position in the round (0: first).
    pub position: usize,
    pub secs: f64,
    pub backend_cpu_ms: f64,
    pub reaped_cpu_ms: f64,
    /// (backend + reaped) per minute, seconds.
    pub cpu_s_per_min: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct WatchTool {
    pub name: String,
    pub how: String,
    pub windows: Vec<WatchWindow>,
    /// Median over the windows, and the spread.
    pub cpu_s_per_min_median: f64,
    pub cpu_s_per_min_min: f64,
    pub cpu_s_per_min_max: f64,
    /// The median per 2 s refresh, ms.
    pub cpu_ms_per_refresh: f64,
    /// What the tool does less often than a window shows, per minute (idemtop: its TTL sample
    /// every 10 min and its scheduled exact passes, at their cost measured in part 1).
    pub periodic_s_per_min: f64,
    pub periodic_note: Option<String>,
}

impl WatchTool {
    /// Steady state: the median window plus the periodic work the windows do not hold.
    pub fn steady_s_per_min(&self) -> f64 {
        self.cpu_s_per_min_median + self.periodic_s_per_min
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct WatchReport {
    pub window_secs: u64,
    pub rounds: usize,
    pub insert_rate: f64,
    pub refresh_secs: u64,
    pub tools: Vec<WatchTool>,
    /// Why pg_activity was not run, when it was not.
    pub pg_activity_missing: Option<String>,
}

impl WatchReport {
    pub fn tool(&self, name: &str) -> Option<&WatchTool> {
        self.tools.iter().find(|t| t.name == name)
    }

    /// Add to idemtop's windows what the dashboard does less often than a window (which starts
    /// after the warm-up) shows: the checks' TTL sample (every 10 min) and the scheduled exact
    /// pass, each at its server CPU measured in part 1.
    pub fn add_periodic(&mut self, refresh: &RefreshReport) {
        let Some(t) = self.tools.iter_mut().find(|t| t.name == "idemtop") else {
            return;
        };
        let sample_every = idemtop_core::checks::OPERATION_FACTS_REUSE.as_secs_f64();
        let sample = refresh.idemtop_gather_sample.cpu_ms / 1000.0 * 60.0 / sample_every;
        let exact = refresh.exact_interval_secs.map_or(0.0, |i| {
            refresh.idemtop_exact_pass.cpu_ms / 1000.0 * 60.0 / i
        });
        t.periodic_s_per_min = sample + exact;
        t.periodic_note = Some(format!(
            "+ {:.3} s/min periodic: TTL sample {:.1} ms every {:.0} s, exact pass {}",
            sample + exact,
            refresh.idemtop_gather_sample.cpu_ms,
            sample_every,
            match refresh.exact_interval_secs {
                Some(i) => format!("{:.0} ms every {i:.0} s", refresh.idemtop_exact_pass.cpu_ms),
                None => "not scheduled at this size".to_string(),
            }
        ));
    }
}

/// Seconds each tool runs before its window starts: its start-up (connections, the table
/// model, the first checks) is not steady state.
fn warmup(cfg: &BenchConfig) -> Duration {
    Duration::from_secs(if cfg.quick { 2 } else { 10 })
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Tool {
    Idemtop,
    PgActivity,
    Guide,
    Baseline,
}

impl Tool {
    fn name(self) -> &'static str {
        match self {
            Tool::Idemtop => "idemtop",
            Tool::PgActivity => "pg_activity",
            Tool::Guide => "guide queries",
            Tool::Baseline => "baseline (load only)",
        }
    }

    fn role(self) -> &'static str {
        match self {
            Tool::Idemtop => "watch_idemtop",
            Tool::PgActivity => "watch_pg_activity",
            Tool::Guide => "watch_guide",
            Tool::Baseline => "watch_nobody",
        }
    }
}

const REFRESH_SECS: u64 = 2;

/// The pids of `role`'s backends.
async fn pids_of(admin: &mut PgConnection, role: &str) -> Result<Vec<i32>> {
    Ok(
        sqlx::query_scalar("SELECT pid FROM pg_stat_activity WHERE usename = $1")
            .bind(role)
            .fetch_all(&mut *admin)
            .await?,
    )
}

pub(super) async fn measure_watch(
    cfg: &BenchConfig,
    env: &Env,
    started: Instant,
) -> Result<WatchReport> {
    let mut admin = env.admin().await?;
    for t in [Tool::Idemtop, Tool::PgActivity, Tool::Guide, Tool::Baseline] {
        admin
            .execute(format!("CREATE ROLE {} LOGIN SUPERUSER", t.role()).as_str())
            .await?;
    }
    let pg_activity = which("pg_activity");
    let tmux_ok = which("tmux").is_some();
    let bin = cfg.dashboard_bin.clone().filter(|b| b.is_file());
    // The baseline shows what is reaped with no tool at all (nothing, when the bench is right);
    // the quick run leaves it out to stay short.
    let mut tools = if cfg.quick {
        vec![Tool::Guide]
    } else {
        vec![Tool::Baseline, Tool::Guide]
    };
    let mut notes_missing = None;
    match (&bin, tmux_ok) {
        (Some(_), true) => tools.push(Tool::Idemtop),
        _ => bail!("the steady-state comparison needs tmux and the idemtop binary"),
    }
    match (&pg_activity, tmux_ok) {
        (Some(_), true) => tools.push(Tool::PgActivity),
        _ => {
            notes_missing = Some(
                "pg_activity is not installed (apt-get install pg-activity, or pip install \
                 pg_activity): not compared"
                    .to_string(),
            )
        }
    }
    // The insert load runs through every window.
    let inserter = ConnectConfig::from_url(env.admin_url.clone())
        .with_statement_timeout(Duration::ZERO)
        .with_application_name("bench inserts")
        .pool(8)
        .await?;
    let stop = CancellationToken::new();
    let load = tokio::spawn(insert_load(
        inserter.clone(),
        GUIDE_INSERT.replace("{table}", &env.table.qualified()),
        cfg.watch_insert_rate,
        stop.clone(),
    ));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut windows: Vec<(Tool, WatchWindow)> = Vec::new();
    let rounds = cfg.watch_rounds.max(1);
    let result = async {
        for round in 0..rounds {
            let n = tools.len();
            for position in 0..n {
                let tool = tools[(position + round) % n];
                log(
                    started,
                    &format!(
                        "  round {}/{rounds}: {} for {} s",
                        round + 1,
                        tool.name(),
                        cfg.watch_secs
                    ),
                );
                let w = window(
                    cfg,
                    env,
                    &mut admin,
                    tool,
                    bin.as_deref(),
                    pg_activity.as_deref(),
                )
                .await
                .with_context(|| format!("the {} window", tool.name()))?;
                windows.push((
                    tool,
                    WatchWindow {
                        round,
                        position,
                        ..w
                    },
                ));
            }
        }
        Ok::<(), anyhow::Error>(())
    }
    .await;
    stop.cancel();
    let _ = load.await;
    inserter.close().await;
    result?;
    let tools = tools
        .iter()
        .map(|&t| {
            let ws: Vec<WatchWindow> = windows
                .iter()
                .filter(|(tool, _)| *tool == t)
                .map(|(_, w)| w.clone())
                .collect();
            let per_min: Vec<f64> = ws.iter().map(|w| w.cpu_s_per_min).collect();
            let st = Stats::of(&per_min);
            WatchTool {
                name: t.name().into(),
                how: match t {
                    Tool::Idemtop => {
                        "the real binary in tmux, --interval 2, default settings, started before \
                         the window (its start-up is not steady state)"
                    }
                    Tool::PgActivity => {
                        "pg_activity --refresh 2 in tmux, started before the window"
                    }
                    Tool::Guide => "the guide's 6 monitoring queries every 2 s on one connection",
                    Tool::Baseline => "no tool: what is reaped while only the load runs",
                }
                .into(),
                cpu_s_per_min_median: st.median_ms,
                cpu_s_per_min_min: st.min_ms,
                cpu_s_per_min_max: st.max_ms,
                cpu_ms_per_refresh: st.median_ms * 1000.0 / (60.0 / REFRESH_SECS as f64),
                periodic_s_per_min: 0.0,
                periodic_note: None,
                windows: ws,
            }
        })
        .collect();
    Ok(WatchReport {
        window_secs: cfg.watch_secs,
        rounds,
        insert_rate: cfg.watch_insert_rate,
        refresh_secs: REFRESH_SECS,
        tools,
        pg_activity_missing: notes_missing,
    })
}

/// A program on the PATH.
pub(super) fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// One window: start the tool, let it run `watch_secs`, read its backends' CPU, stop it.
async fn window(
    cfg: &BenchConfig,
    env: &Env,
    admin: &mut PgConnection,
    tool: Tool,
    bin: Option<&Path>,
    pg_activity: Option<&Path>,
) -> Result<WatchWindow> {
    let role = tool.role();
    let url = format!("postgres://{role}@127.0.0.1:{}/postgres", env.pg.port());
    let mut seen: HashMap<i32, u64> = HashMap::new();
    let stop = CancellationToken::new();
    let mut _tmux = None;
    let mut guide = None;
    match tool {
        Tool::Idemtop | Tool::PgActivity => {
            let tmux = Tmux {
                socket: format!("idemtop-bench-watch-{}", std::process::id()),
            };
            let shell = match tool {
                Tool::Idemtop => format!(
                    "exec {} --database-url {} --interval {REFRESH_SECS}",
                    shell_quote(&bin.unwrap_or(Path::new("idemtop")).display().to_string()),
                    shell_quote(&url)
                ),
                _ => format!(
                    "exec {} --refresh {REFRESH_SECS} -h 127.0.0.1 -p {} -U {role} -d postgres",
                    shell_quote(
                        &pg_activity
                            .unwrap_or(Path::new("pg_activity"))
                            .display()
                            .to_string()
                    ),
                    env.pg.port()
                ),
            };
            tmux.cmd(&[
                "new-session",
                "-d",
                "-s",
                "bench",
                "-x",
                "160",
                "-y",
                "40",
                &shell,
            ])?;
            _tmux = Some(tmux);
        }
        Tool::Guide => {
            let mut conn = ConnectConfig::from_url(url.clone())
                .with_statement_timeout(Duration::ZERO)
                .with_application_name("guide watch")
                .connect()
                .await?;
            let stop = stop.clone();
            guide = Some(tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(REFRESH_SECS));
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = tick.tick() => {}
                    }
                    for (_, sql) in GUIDE_QUERIES.iter().take(4) {
                        let _ = (&mut conn).fetch_all(*sql).await;
                    }
                    for (_, sql) in GUIDE_QUERY_FIXES {
                        let _ = (&mut conn).fetch_all(sql).await;
                    }
                }
                let _ = sqlx::Connection::close(conn).await;
            }));
        }
        Tool::Baseline => {}
    }
    // The warm-up, then the window: each backend's CPU is counted from the window's start (a
    // backend that exits in the window is counted whole in what the postmaster reaps: an upper
    // bound).
    tokio::time::sleep(warmup(cfg)).await;
    let mut at_start: HashMap<i32, u64> = HashMap::new();
    for pid in pids_of(admin, role).await? {
        if let Some(ns) = proc_cpu_ns(pid) {
            at_start.insert(pid, ns);
        }
    }
    let reaped0 = proc_ticks(env.postmaster).map(|t| t.1).unwrap_or(0);
    let t0 = Instant::now();
    let until = t0 + Duration::from_secs(cfg.watch_secs.max(1));
    loop {
        for pid in pids_of(admin, role).await? {
            if let Some(ns) = proc_cpu_ns(pid) {
                seen.insert(pid, ns);
            }
        }
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        tokio::time::sleep(left.min(Duration::from_millis(500))).await;
    }
    let secs = t0.elapsed().as_secs_f64();
    let reaped1 = proc_ticks(env.postmaster).map(|t| t.1).unwrap_or(0);
    // A backend that exited in the window is counted whole in what was reaped.
    seen.retain(|pid, _| proc_cpu_ns(*pid).is_some());
    stop.cancel();
    if let Some(g) = guide {
        let _ = g.await;
    }
    drop(_tmux);
    // Let the tool's backends exit before the next window starts counting what is reaped.
    for _ in 0..50 {
        if pids_of(admin, role).await?.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let backend_cpu_ms = seen
        .iter()
        .map(|(pid, ns)| ns.saturating_sub(at_start.get(pid).copied().unwrap_or(0)))
        .sum::<u64>() as f64
        / 1e6;
    let reaped_cpu_ms = reaped1.saturating_sub(reaped0) as f64 * 1000.0 / clk_tck();
    Ok(WatchWindow {
        round: 0,
        position: 0,
        secs,
        backend_cpu_ms,
        reaped_cpu_ms,
        cpu_s_per_min: (backend_cpu_ms + reaped_cpu_ms) / 1000.0 * 60.0 / secs.max(1e-3),
    })
}

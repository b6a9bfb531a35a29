//! Key to frame on the real binary in a pseudo-terminal (tmux): the time from `send-keys` to
//! the first capture of the pane that shows the key's effect (the help opened or closed). The
//! pane is polled as fast as `tmux capture-pane` answers (a few ms), so each figure is an upper
//! bound that includes tmux's own path (pty, parsing) and one poll.
//!
//! Two runs: while another session holds an ACCESS EXCLUSIVE lock on the table (so every
//! refresh hangs on it until its lock timeout), and on a table of 10,000 distinct operations
//! (after an exact pass, `E`, brought all of them in), with the dashboard's RSS.

use super::*;

#[derive(Debug, Clone, Serialize)]
pub struct KeyFrameRun {
    pub what: String,
    pub keys: usize,
    pub key_to_frame: Stats,
    /// Keys whose effect never showed within 2 s.
    pub missed: usize,
    pub rss_max_kb: u64,
    pub note: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct KeyFrameReport {
    pub method: String,
    pub locked: Option<KeyFrameRun>,
    pub operations_10k: Option<KeyFrameRun>,
    /// Why a run did not happen.
    pub skipped: Vec<String>,
}

/// A line of the help overlay, whichever layout it has (scrolled or in two columns).
const HELP_TITLE: &str = "show or hide this help";

pub(super) async fn measure_keyframe(
    cfg: &BenchConfig,
    env: &Env,
    started: Instant,
) -> Result<KeyFrameReport> {
    let mut report = KeyFrameReport {
        method: "tmux send-keys -> first capture-pane showing the change (real binary, 120x36)"
            .into(),
        locked: None,
        operations_10k: None,
        skipped: Vec::new(),
    };
    let bin = match (
        watch::which("tmux"),
        cfg.dashboard_bin.clone().filter(|b| b.is_file()),
    ) {
        (Some(_), Some(b)) => b,
        _ => {
            report
                .skipped
                .push("needs tmux and the idemtop binary: not measured".into());
            return Ok(report);
        }
    };
    log(started, "  key to frame while the table is locked");
    report.locked = Some(locked_run(cfg, env, &bin).await?);
    log(started, "  key to frame with 10,000 operations");
    report.operations_10k = Some(cardinality_run(cfg, env, &bin).await?);
    Ok(report)
}

/// Start the binary on `schema` in a private tmux server; waits for the first frame.
fn start(env: &Env, bin: &Path, schema: &str, tag: &str) -> Result<(Tmux, u32)> {
    let tmux = Tmux {
        socket: format!("idemtop-bench-kf-{tag}-{}", std::process::id()),
    };
    let shell = format!(
        "exec {} --database-url {} --schema {} --interval 2",
        shell_quote(&bin.display().to_string()),
        shell_quote(&env.probe_url),
        shell_quote(schema)
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
    tmux.cmd(&["set-option", "-g", "escape-time", "0"])?;
    let pid: u32 = tmux
        .cmd(&["display-message", "-p", "-t", "bench", "#{pane_pid}"])?
        .trim()
        .parse()
        .context("reading the dashboard's pid")?;
    Ok((tmux, pid))
}

/// Press `?` (it toggles the help) `n` times; each time, poll until the help shows (or is gone).
async fn presses(tmux: &Tmux, pid: u32, n: usize) -> Result<(Vec<f64>, usize, u64)> {
    let mut out = Vec::new();
    let mut missed = 0;
    let mut rss = 0;
    for i in 0..n {
        let open = i % 2 == 0;
        let k = key('?');
        let t0 = Instant::now();
        tmux.send(&k)?;
        let mut shown = false;
        while t0.elapsed() < Duration::from_secs(2) {
            let screen = tmux.cmd(&["capture-pane", "-p", "-t", "bench"])?;
            if screen.contains(HELP_TITLE) == open {
                shown = true;
                break;
            }
        }
        if shown {
            out.push(t0.elapsed().as_secs_f64() * 1000.0);
        } else {
            missed += 1;
        }
        rss = rss.max(status_kb(pid, "VmRSS:").unwrap_or(0));
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    Ok((out, missed, rss))
}

async fn locked_run(cfg: &BenchConfig, env: &Env, bin: &Path) -> Result<KeyFrameRun> {
    let (tmux, pid) = start(env, bin, env.table.schema.as_str(), "lock")?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut locker = env.admin().await?;
    locker.execute("BEGIN").await?;
    locker
        .execute(
            format!(
                "LOCK TABLE {} IN ACCESS EXCLUSIVE MODE",
                env.table.qualified()
            )
            .as_str(),
        )
        .await?;
    // A refresh is now queued behind the lock.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (samples, missed, rss) = presses(&tmux, pid, cfg.keyframe_keys).await?;
    let screen = tmux.cmd(&["capture-pane", "-p", "-t", "bench"])?;
    locker.execute("ROLLBACK").await?;
    let _ = tmux.send(&key('q'));
    drop(tmux);
    Ok(KeyFrameRun {
        what: "while another session holds ACCESS EXCLUSIVE on the table".into(),
        keys: cfg.keyframe_keys,
        key_to_frame: Stats::of(&samples),
        missed,
        rss_max_kb: rss,
        note: if screen.to_lowercase().contains("lock") {
            "the pane said the table is locked".into()
        } else {
            "WARNING: the pane did not mention the lock".into()
        },
    })
}

async fn cardinality_run(cfg: &BenchConfig, env: &Env, bin: &Path) -> Result<KeyFrameRun> {
    const OPS: i64 = 10_000;
    let schema = "bench_card";
    let mut admin = env.admin().await?;
    admin
        .execute(format!("DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}").as_str())
        .await?;
    {
        let s = Ident::new(schema).map_err(|e| anyhow!("{e}"))?;
        let mut m = env.admin().await?;
        migrate::run(&mut m, &s).await?;
    }
    let rows = cfg.cardinality_rows.max(OPS);
    admin
        .execute(
            format!(
                "INSERT INTO {schema}.idempotency_records
                        (request_id, operation, result_payload, status_code, created_at, expires_at)
                 SELECT gen_random_uuid(), 'operation_' || (g % {OPS}), '{{\"ok\":true}}',
                        200 + (g % 7 = 0)::int * 300, c, c + (1 + g % 24) * interval '1 hour'
                   FROM generate_series(1, {rows}) g,
                        LATERAL (SELECT now() - (g % 172800) * interval '1 s' AS c) t;
                 ANALYZE {schema}.idempotency_records"
            )
            .as_str(),
        )
        .await?;
    let (tmux, pid) = start(env, bin, schema, "card")?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    // Count exactly: every operation comes in.
    tmux.send(&key('E'))?;
    let mut all = false;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let screen = tmux.cmd(&["capture-pane", "-p", "-t", "bench"])?;
        if screen.contains("Operations") && !screen.contains("from pg_stats") {
            all = true;
            break;
        }
    }
    // Scroll the operations list too: j moves the selection.
    for _ in 0..20 {
        tmux.send(&key('j'))?;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (samples, missed, rss) = presses(&tmux, pid, cfg.keyframe_keys).await?;
    let rss = rss.max(status_kb(pid, "VmHWM:").unwrap_or(0));
    let _ = tmux.send(&key('q'));
    drop(tmux);
    admin
        .execute(format!("DROP SCHEMA {schema} CASCADE").as_str())
        .await?;
    Ok(KeyFrameRun {
        what: format!(
            "{} distinct operations ({} rows), after an exact pass",
            idemtop_core::format::count(OPS),
            idemtop_core::format::count(rows)
        ),
        keys: cfg.keyframe_keys,
        key_to_frame: Stats::of(&samples),
        missed,
        rss_max_kb: rss,
        note: if all {
            "after E the operations are exact (10,000 kept by the worker; the dashboard keeps the top 50 and (other))".into()
        } else {
            "WARNING: the exact pass did not show within 10 s; measured on the estimates".into()
        },
    })
}

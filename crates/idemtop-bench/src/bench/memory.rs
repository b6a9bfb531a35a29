//! The dashboard memory while browsing, in tmux on the real binary or in process.

use super::*;

// ---------------------------------------------------------------------------------------------
// 3. Dashboard memory

pub(super) fn key(c: char) -> KeyEvent {
    KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE)
}

pub(super) fn special(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

/// The browsing script, after the records screen is open in an indexed order: 50 pages
/// forward with a detail opened every 10 pages, then every screen and the help.
/// (offset from its start, key), page-downs, details.
pub(super) fn browse_script() -> (Vec<(Duration, KeyEvent)>, usize, usize) {
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

pub(super) async fn measure_memory(cfg: &BenchConfig, env: &Env) -> Result<MemoryReport> {
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
pub(super) struct Tmux {
    pub(super) socket: String,
}

impl Tmux {
    pub(super) fn cmd(&self, args: &[&str]) -> Result<String> {
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

    pub(super) fn send(&self, k: &KeyEvent) -> Result<()> {
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

pub(super) fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

pub(super) async fn memory_tmux(cfg: &BenchConfig, env: &Env, bin: &Path) -> Result<MemoryReport> {
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
pub(super) struct RssWatch {
    pub(super) last: u64,
    pub(super) max: u64,
}

impl RssWatch {
    pub(super) async fn wait(&mut self, pid: u32, d: Duration) -> Result<()> {
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

pub(super) async fn memory_in_process(cfg: &BenchConfig, env: &Env) -> Result<MemoryReport> {
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

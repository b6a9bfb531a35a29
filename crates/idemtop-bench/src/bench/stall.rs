//! Driving the dashboard event loop, and its responsiveness while the table is locked.

use super::*;

// ---------------------------------------------------------------------------------------------
// The dashboard loop, in-process (memory fallback and the stall test)

#[derive(Default)]
pub(super) struct DriveRun {
    /// (typed at, latency ms), offsets from the start.
    pub(super) key_to_frame: Vec<(Duration, f64)>,
    pub(super) draws: Vec<(Duration, f64)>,
    /// (requested at, took ms, blocked) of completed refreshes.
    pub(super) refreshes: Vec<(Duration, f64, bool)>,
    pub(super) refresh_requests: Vec<Duration>,
    pub(super) max_in_flight: usize,
    pub(super) skipped_ticks: Vec<Duration>,
    /// (typed at, key to data ms)
    pub(super) page_loads: Vec<(Duration, f64)>,
    pub(super) pages_waiting: usize,
    pub(super) rss_max_kb: u64,
}

/// The dashboard's loop as `watch::run_with_pool` runs it, with a TestBackend instead of the
/// terminal and a scripted typist instead of the keyboard. Maintenance requests are dropped.
pub(super) async fn drive(
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
                // A refresh that found the table locked is done too (it said who holds it).
                Event::Db(DbEvent::Locked { generation, .. }) => {
                    if let Some(t0) = outstanding.remove(generation) {
                        run.refreshes
                            .push((t0 - start, (now - t0).as_secs_f64() * 1000.0, true));
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

pub(super) async fn measure_stall(cfg: &BenchConfig, env: &Env) -> Result<StallReport> {
    // The lock comes once the dashboard is up and refreshing (sooner in the quick run).
    let lock_at = Duration::from_secs(if cfg.quick { 3 } else { 5 });
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

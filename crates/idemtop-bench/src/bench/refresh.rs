//! The cost of a dashboard refresh against the guide monitoring queries.

use super::*;

// ---------------------------------------------------------------------------------------------
// 1. Refresh cost

pub(super) async fn measure_refresh(env: &Env, data: &DataSet) -> Result<RefreshReport> {
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
    // idemtop: what the dashboard's worker sends on every refresh in steady state: the
    // sampler's snapshot (its first statement also checks that the table still has the oid its
    // model was read with).
    let mut conn = env
        .probe_cfg("bench idemtop refresh", Duration::from_secs(5))
        .connect()
        .await?;
    let table = env.table.clone();
    let info = idemtop_core::db::table::resolve(&mut conn, &table).await?;
    let state = Arc::new(tokio::sync::Mutex::new((
        info.clone(),
        idemtop_core::db::snapshot::Sampler::default(),
        None::<idemtop_core::db::snapshot::Snapshot>,
        0usize,
    )));
    let big = data.rows > 3_000_000;
    let (guide_reps, idemtop_reps) = (if big { 3 } else { 4 }, 14);
    let mut guide_blocks = Vec::new();
    let mut idemtop_blocks = Vec::new();
    let mut rounds = Vec::new();
    for round in 0..3 {
        let guide_first = round % 2 == 0;
        let mut g = None;
        let mut i = None;
        for side in 0..2 {
            if (side == 0) == guide_first {
                let queries = queries.clone();
                g = Some(
                    refresh_side(
                        "guide monitoring queries",
                        guide_reps,
                        usize::from(round == 0),
                        &mut clock,
                        env,
                        &mut guide_conn,
                        move |conn| {
                            let queries = queries.clone();
                            Box::pin(async move {
                                for (_, sql) in &queries {
                                    (&mut *conn).fetch_all(sql.as_str()).await?;
                                }
                                Ok(())
                            })
                        },
                    )
                    .await?,
                );
            } else {
                let state = Arc::clone(&state);
                let table = table.clone();
                i = Some(
                    refresh_side(
                        "idemtop refresh (steady state, between exact passes)",
                        idemtop_reps,
                        if round == 0 { 3 } else { 0 },
                        &mut clock,
                        env,
                        &mut conn,
                        move |conn| {
                            let state = Arc::clone(&state);
                            let table = table.clone();
                            Box::pin(async move {
                                let mut g = state.lock().await;
                                let (info, sampler, last, n) = &mut *g;
                                // The dashboard reads pg_stats again every 30 s (or after an
                                // ANALYZE): one refresh in 15 at its 2 s interval.
                                if *n % REFRESHES_PER_PLANNER_READ == 0 {
                                    sampler.forget_reuse();
                                }
                                *n += 1;
                                let tm = idemtop_core::db::snapshot::TableMapping::resolve(
                                    &[],
                                    &table,
                                    info,
                                );
                                let snap = sampler
                                    .take(
                                        conn,
                                        &table,
                                        info,
                                        &tm,
                                        SnapshotOptions::default(),
                                        Duration::from_secs(90),
                                    )
                                    .await?;
                                *last = Some(snap);
                                Ok(())
                            })
                        },
                    )
                    .await?,
                );
            }
        }
        let (g, i) = (
            g.ok_or_else(|| anyhow!("no guide block"))?,
            i.ok_or_else(|| anyhow!("no idemtop block"))?,
        );
        rounds.push((
            if guide_first {
                "guide first"
            } else {
                "idemtop first"
            }
            .to_string(),
            g.server.median_ms,
            i.server.median_ms,
        ));
        guide_blocks.push(g);
        idemtop_blocks.push(i);
    }
    // The guide's backend carries the CPU of every guide query: when it exits, the postmaster
    // reaps it and adds that CPU to its children's. Wait until it has gone, or the next
    // measurement (the exact pass) counts it as its own parallel workers.
    let guide_pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut guide_conn)
        .await?;
    let _ = sqlx::Connection::close(guide_conn).await;
    for _ in 0..100 {
        let alive: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1)")
                .bind(guide_pid)
                .fetch_one(&mut conn)
                .await?;
        if !alive {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Gone from pg_stat_activity a moment before it exits and is reaped.
    tokio::time::sleep(Duration::from_millis(300)).await;
    settle(env).await;
    let guide = RefreshSide::merge(guide_blocks).ok_or_else(|| anyhow!("no guide block"))?;
    let idemtop = RefreshSide::merge(idemtop_blocks).ok_or_else(|| anyhow!("no idemtop block"))?;
    let snap = state
        .lock()
        .await
        .2
        .take()
        .ok_or_else(|| anyhow!("no snapshot taken"))?;
    let finished = Arc::new(std::sync::Mutex::new(Vec::<bool>::new()));
    let exact = {
        let table = table.clone();
        let info = info.clone();
        let finished = Arc::clone(&finished);
        refresh_side(
            "idemtop exact pass (serial; within its CPU budget)",
            3,
            0,
            &mut clock,
            env,
            &mut conn,
            move |conn| {
                let table = table.clone();
                let info = info.clone();
                let finished = Arc::clone(&finished);
                Box::pin(async move {
                    let opts = SnapshotOptions {
                        exact_pass: true,
                        ..SnapshotOptions::default()
                    };
                    let s = idemtop_core::db::snapshot::take(conn, &table, &info, opts).await?;
                    if let Ok(mut f) = finished.lock() {
                        f.push(s.rows.exact);
                    }
                    Ok(())
                })
            },
        )
        .await?
    };
    let gather_cache = Arc::new(tokio::sync::Mutex::new(
        idemtop_core::checks::GatherCache::default(),
    ));
    // The sample-reading gather first (it fills the cache the reusing one reads from).
    let mut gathers = Vec::new();
    for (what, fresh) in [
        ("idemtop checks' gather with its TTL sample (10 min)", true),
        ("idemtop checks' gather, sample reused (every 30 s)", false),
    ] {
        let table = table.clone();
        let snap = snap.clone();
        let cache = Arc::clone(&gather_cache);
        gathers.push(
            refresh_side(what, 3, 0, &mut clock, env, &mut conn, move |conn| {
                let table = table.clone();
                let snap = snap.clone();
                let cache = Arc::clone(&cache);
                Box::pin(async move {
                    let mut cache = cache.lock().await;
                    idemtop_core::checks::gather_cached(
                        conn,
                        &table,
                        &snap,
                        &idemtop_core::config::Config::default(),
                        &mut cache,
                        fresh,
                    )
                    .await?;
                    Ok(())
                })
            })
            .await?,
        );
    }
    let gather = gathers.pop().ok_or_else(|| anyhow!("no gather measured"))?;
    let gather_sample = gathers.pop().ok_or_else(|| anyhow!("no gather measured"))?;
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::NAN };
    // The dashboard schedules no exact pass on a table whose serial scan is predicted to take
    // longer than the pass may (from its size), nor after one gave up at its timeout: then the
    // pass runs on `E` only, and steady state has none.
    let budget = f64::from(idemtop_core::db::snapshot::EXACT_PASS_BUDGET);
    let timeout = SnapshotOptions::default().exact_timeout;
    let assumed = idemtop_core::db::snapshot::assumed_scan_secs(snap.sizes.table_bytes);
    let gave_up = finished
        .lock()
        .map(|f| f.iter().any(|x| !x))
        .unwrap_or(true);
    let (exact_interval_secs, exact_schedule) = if !idemtop_core::db::snapshot::first_pass_fits(
        assumed, timeout,
    ) {
        (
                None,
                format!(
                    "not scheduled: a serial scan of the {} heap is assumed to take {:.1} s, past the pass's {} s timeout (measured here: {}); on E only",
                    idemtop_core::format::bytes(snap.sizes.table_bytes.max(0)),
                    assumed,
                    timeout.as_secs(),
                    if gave_up { "it gave up" } else { "it finished" }
                ),
            )
    } else if gave_up {
        (
            None,
            format!(
                "not scheduled after the first: it gave up at its {} s timeout; on E only",
                timeout.as_secs()
            ),
        )
    } else {
        let every = (exact.client.median_ms / 1000.0 * budget).max(30.0);
        (
            Some(every),
            format!(
                "every {every:.0} s ({}x its {:.0} ms, at least 30 s)",
                budget, exact.client.median_ms
            ),
        )
    };
    let refresh_secs = 2.0;
    let exact_server = exact.server.median_ms.max(exact.cpu_ms);
    let per_exact = |cost: f64| exact_interval_secs.map_or(0.0, |i| cost * refresh_secs / i);
    let sample_every = idemtop_core::checks::OPERATION_FACTS_REUSE.as_secs_f64();
    let amortised_cpu_ms = idemtop.cpu_ms
        + per_exact(exact.cpu_ms)
        + gather.cpu_ms * refresh_secs / 30.0
        + gather_sample.cpu_ms * refresh_secs / sample_every;
    let amortised_server_ms = idemtop.server.median_ms
        + per_exact(exact_server)
        + gather.server.median_ms * refresh_secs / 30.0
        + gather_sample.server.median_ms * refresh_secs / sample_every;
    Ok(RefreshReport {
        ratio_server: ratio(guide.server.median_ms, idemtop.server.median_ms),
        ratio_cpu: ratio(guide.cpu_ms, idemtop.cpu_ms),
        ratio_cpu_amortised: ratio(guide.cpu_ms, amortised_cpu_ms),
        ratio_server_amortised: ratio(guide.server.median_ms, amortised_server_ms),
        amortised_cpu_ms,
        amortised_server_ms,
        exact_interval_secs,
        exact_schedule,
        rounds,
        guide,
        idemtop,
        idemtop_exact_pass: exact,
        idemtop_gather: gather,
        idemtop_gather_sample: gather_sample,
        guide_fixed: fixed,
        estimate_total: snap.rows.total,
        estimate_expired: snap.rows.expired,
        estimate_expired_exact: snap.rows.expired_exact,
    })
}

/// At a 2 s refresh the planner statistics are read every 30 s: one refresh in 15.
const REFRESHES_PER_PLANNER_READ: usize = 15;

pub(super) type BoxFut<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>> + Send + 'a>>;

#[allow(clippy::too_many_arguments)]
pub(super) async fn refresh_side<F>(
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
        settle(env).await;
        let c0 = cpu.sample();
        let ((), s, w) = clock.time(once(conn)).await?;
        // Let the postmaster reap parallel workers before reading its children's CPU.
        settle(env).await;
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
        raw: server.iter().copied().zip(client.iter().copied()).collect(),
    })
}

/// Wait until the postmaster has reaped every child that was exiting (parallel workers of the
/// statement just run, or of the other side's last one): two reads of its children's CPU 30 ms
/// apart agree (at most 1 s). Without this, one side's workers were reaped, and counted, in the
/// other side's measurement.
pub(super) async fn settle(env: &Env) {
    let read = || proc_ticks(env.postmaster).map(|t| t.1).unwrap_or(0);
    let mut last = read();
    for _ in 0..33 {
        tokio::time::sleep(Duration::from_millis(30)).await;
        let now = read();
        if now == last {
            return;
        }
        last = now;
    }
}

pub(super) fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").to_string()
}

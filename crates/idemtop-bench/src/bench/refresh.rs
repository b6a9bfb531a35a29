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

pub(super) fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").to_string()
}

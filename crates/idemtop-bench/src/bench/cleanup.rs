//! The batched cleanup against the guide single DELETE under a concurrent insert load.

use super::*;

// ---------------------------------------------------------------------------------------------
// 5. Cleanup under an insert load

/// Inserts at `rate` per second (open loop: each insert starts at its scheduled time on a pool
/// of connections; latency is measured from the scheduled time) until `stop`. Returns
/// (scheduled at, latency ms, ok).
pub(super) async fn insert_load(
    pool: PgPool,
    sql: String,
    rate: f64,
    stop: CancellationToken,
) -> Vec<(Instant, f64, bool)> {
    let period = Duration::from_secs_f64(1.0 / rate);
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = tokio::task::JoinSet::new();
    let sql = Arc::new(sql);
    loop {
        let at = tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            at = ticker.tick() => at.into_std(),
        };
        let pool = pool.clone();
        let sql = Arc::clone(&sql);
        tasks.spawn(async move {
            let ok = sqlx::query(sql.as_str()).execute(&pool).await.is_ok();
            (at, at.elapsed().as_secs_f64() * 1000.0, ok)
        });
    }
    let mut out = Vec::new();
    while let Some(r) = tasks.join_next().await {
        if let Ok(x) = r {
            out.push(x);
        }
    }
    out
}

pub(super) fn latency_of(samples: &[(Instant, f64, bool)], from: Instant, to: Instant) -> Latency {
    let window: Vec<&(Instant, f64, bool)> = samples
        .iter()
        .filter(|s| s.0 >= from && s.0 <= to)
        .collect();
    let st = Stats::of(&succeeded(samples, from, to));
    Latency {
        n: window.len(),
        failed: window.iter().filter(|s| !s.2).count(),
        p50_ms: st.median_ms,
        p99_ms: st.p99_ms,
        max_ms: st.max_ms,
    }
}

/// The latencies (ms) of the inserts scheduled in `from..=to` that succeeded.
fn succeeded(samples: &[(Instant, f64, bool)], from: Instant, to: Instant) -> Vec<f64> {
    samples
        .iter()
        .filter(|s| s.0 >= from && s.0 <= to && s.2)
        .map(|s| s.1)
        .collect()
}

#[derive(Clone, Copy, PartialEq)]
pub(super) enum Variant {
    Guide,
    Idemtop,
}

/// Inserts during idemtop's cleanups (all repetitions pooled) that the p99 target wants.
pub(super) const P99_MIN_SAMPLES: usize = 150;
/// Most repetitions of the cleanup comparison a run makes to reach [`P99_MIN_SAMPLES`].
pub(super) const MAX_CLEANUP_REPS: usize = 12;

pub(super) async fn measure_cleanup(
    cfg: &BenchConfig,
    env: &Env,
    started: Instant,
) -> Result<CleanupReport> {
    // Each repetition runs both, the order alternating: the side that runs second finds a
    // warmer cache and a later checkpoint.
    // A short cleanup sees few inserts: repeat it until their p99 rests on enough of them.
    let reps = cfg.cleanup_reps.max(1);
    let max_reps = if cfg.quick {
        reps
    } else {
        reps.max(MAX_CLEANUP_REPS)
    };
    let mut runs: Vec<CleanupRun> = Vec::new();
    for rep in 0..max_reps {
        let pooled: usize = runs.iter().map(|r| r.idemtop.during_ms.len()).sum();
        if rep >= reps && pooled >= P99_MIN_SAMPLES {
            break;
        }
        let guide_first = rep % 2 == 0;
        log(
            started,
            &if rep < reps {
                format!(
                    "  repetition {}/{reps} ({} first)",
                    rep + 1,
                    if guide_first { "guide" } else { "idemtop" }
                )
            } else {
                format!(
                    "  repetition {} ({} first): {pooled} inserts during idemtop's cleanups so far, {P99_MIN_SAMPLES} wanted for their p99",
                    rep + 1,
                    if guide_first { "guide" } else { "idemtop" }
                )
            },
        );
        let (guide, idemtop) = if guide_first {
            let g = cleanup_variant(cfg, env, Variant::Guide, started).await?;
            (
                g,
                cleanup_variant(cfg, env, Variant::Idemtop, started).await?,
            )
        } else {
            let i = cleanup_variant(cfg, env, Variant::Idemtop, started).await?;
            (cleanup_variant(cfg, env, Variant::Guide, started).await?, i)
        };
        let throughput_ratio = if guide.rows_per_sec > 0.0 {
            idemtop.rows_per_sec / guide.rows_per_sec
        } else {
            f64::NAN
        };
        runs.push(CleanupRun {
            first: if guide_first { "guide" } else { "idemtop" }.into(),
            guide,
            idemtop,
            throughput_ratio,
        });
    }
    // Insert p99 during a cleanup is compared with the idle p99 of the server, the median of
    // every idle window of the run (one before each cleanup, both sides): the idle latency is
    // the server's and the disk's, not a side's, and one disturbed window (a p99 of 60 ms once
    // made a ratio of 0.1x) must neither flatter nor spoil a side.
    let idle: Vec<f64> = runs
        .iter()
        .flat_map(|r| [r.guide.idle.p99_ms, r.idemtop.idle.p99_ms])
        .collect();
    let idle_st = Stats::of(&idle);
    for r in &mut runs {
        for side in [&mut r.guide, &mut r.idemtop] {
            side.p99_vs_idle = if idle_st.median_ms > 0.0 {
                side.during.p99_ms / idle_st.median_ms
            } else {
                f64::NAN
            };
        }
    }
    let ratios: Vec<f64> = runs.iter().map(|r| r.throughput_ratio).collect();
    let st = Stats::of(&ratios);
    let p99: Vec<f64> = runs.iter().map(|r| r.idemtop.p99_vs_idle).collect();
    let p99 = Stats::of(&p99);
    let pooled: Vec<f64> = runs
        .iter()
        .flat_map(|r| r.idemtop.during_ms.iter().copied())
        .collect();
    let pooled = Stats::of(&pooled);
    let mid = runs
        .iter()
        .min_by(|a, b| {
            (a.throughput_ratio - st.median_ms)
                .abs()
                .total_cmp(&(b.throughput_ratio - st.median_ms).abs())
        })
        .cloned()
        .ok_or_else(|| anyhow!("no cleanup repetition"))?;
    Ok(CleanupReport {
        insert_rate: cfg.insert_rate,
        guide: mid.guide,
        idemtop: mid.idemtop,
        throughput_ratio: st.median_ms,
        throughput_ratio_min: st.min_ms,
        throughput_ratio_max: st.max_ms,
        p99_vs_idle_median: p99.median_ms,
        p99_vs_idle_max: p99.max_ms,
        p99_pooled_vs_idle: if idle_st.median_ms > 0.0 {
            pooled.p99_ms / idle_st.median_ms
        } else {
            f64::NAN
        },
        p99_pooled_samples: pooled.n,
        idle_p99_ms: idle_st.median_ms,
        idle_p99_min_ms: idle_st.min_ms,
        idle_p99_max_ms: idle_st.max_ms,
        runs,
    })
}

pub(super) async fn cleanup_variant(
    cfg: &BenchConfig,
    env: &Env,
    variant: Variant,
    started: Instant,
) -> Result<CleanupSide> {
    let schema_name = match variant {
        Variant::Guide => "bench_guide",
        Variant::Idemtop => "bench_idemtop",
    };
    let schema = Ident::new(schema_name).map_err(|e| anyhow!("{e}"))?;
    let table = TableRef::new(schema_name, "idempotency_records").map_err(|e| anyhow!("{e}"))?;
    let q = table.qualified();
    let mut admin = env.admin().await?;
    admin
        .execute(
            format!(
                "DROP SCHEMA IF EXISTS {} CASCADE; CREATE SCHEMA {}",
                schema.quoted(),
                schema.quoted()
            )
            .as_str(),
        )
        .await?;
    {
        // The table, its indexes and migration 046's function, in that schema.
        let mut m = env.admin().await?;
        migrate::run(&mut m, &schema).await?;
    }
    log(started, &format!("  copying the data set into {q}"));
    let t0 = Instant::now();
    admin
        .execute(format!("INSERT INTO {q} SELECT * FROM {}", env.table.qualified()).as_str())
        .await?;
    let copy_secs = t0.elapsed().as_secs_f64();
    admin
        .execute(format!("VACUUM ANALYZE {q}").as_str())
        .await?;
    admin.execute("CHECKPOINT").await?;

    let inserter = ConnectConfig::from_url(env.admin_url.clone())
        .with_statement_timeout(Duration::ZERO)
        .with_application_name("bench inserts")
        .pool(16)
        .await?;
    let insert_sql = GUIDE_INSERT.replace("{table}", &q);
    // Warm the pool and the plan cache, then measure idle latency.
    {
        let stop = CancellationToken::new();
        let h = tokio::spawn(insert_load(
            inserter.clone(),
            insert_sql.clone(),
            cfg.insert_rate,
            stop.clone(),
        ));
        tokio::time::sleep(Duration::from_millis(if cfg.quick { 500 } else { 1000 })).await;
        stop.cancel();
        let _ = h.await;
    }
    // Let the checkpoint's writes settle (a quick run's copy is a few MB).
    tokio::time::sleep(Duration::from_millis(if cfg.quick { 700 } else { 2000 })).await;
    log(
        started,
        &format!("  idle insert latency ({} s)", cfg.idle_secs),
    );
    let stop = CancellationToken::new();
    let h = tokio::spawn(insert_load(
        inserter.clone(),
        insert_sql.clone(),
        cfg.insert_rate,
        stop.clone(),
    ));
    let i0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(cfg.idle_secs.max(1))).await;
    let i1 = Instant::now();
    stop.cancel();
    let idle_samples = h.await.context("insert task")?;
    let idle = latency_of(&idle_samples, i0, i1);

    // idemtop's side runs the real binary where there is one (as a cron job runs it: its
    // start-up and connections inside the timed window, its own process beside the inserts'),
    // else the same code in this process.
    let bin = cfg.dashboard_bin.clone().filter(|b| b.is_file());
    let what = match variant {
        Variant::Guide => "guide: SELECT * FROM cleanup_expired_idempotency_records()".to_string(),
        Variant::Idemtop => format!(
            "idemtop: {} ({})",
            if bin.is_some() {
                "idemtop cleanup (real binary)"
            } else {
                "maintenance::cleanup"
            },
            if cfg.cleanup_options == maintenance::CleanupOptions::default() {
                "defaults"
            } else {
                "options of the command line"
            }
        ),
    };
    log(started, &format!("  cleanup: {what}"));
    let lsn0: String = sqlx::query_scalar("SELECT pg_current_wal_lsn()::text")
        .fetch_one(&mut admin)
        .await?;
    let stop = CancellationToken::new();
    let h = tokio::spawn(insert_load(
        inserter.clone(),
        insert_sql,
        cfg.insert_rate,
        stop.clone(),
    ));
    // Let the load settle into its schedule.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let c0 = Instant::now();
    let (deleted, batches, method) = match (variant, bin.as_deref()) {
        (Variant::Guide, _) => {
            let mut conn = env
                .probe_cfg("bench guide cleanup", Duration::ZERO)
                .connect()
                .await?;
            conn.execute(format!("SET search_path TO {}", schema.quoted()).as_str())
                .await?;
            let n: i64 = sqlx::query_scalar("SELECT * FROM cleanup_expired_idempotency_records()")
                .fetch_one(&mut conn)
                .await?;
            (n.max(0) as u64, None, None)
        }
        (Variant::Idemtop, Some(bin)) => {
            cleanup_by_binary(env, bin, schema_name, &cfg.cleanup_options).await?
        }
        (Variant::Idemtop, None) => {
            let pool = env
                .probe_cfg("idemtop cleanup", Duration::from_secs(5))
                .pool(4)
                .await?;
            let token = CancellationToken::new();
            let s =
                maintenance::cleanup(&pool, &table, &cfg.cleanup_options, &token, |_| {}).await?;
            pool.close().await;
            (
                s.deleted,
                Some(s.batches),
                // The method, and the compression of its full-page images when the role could
                // set it (the bench's role is a superuser; another role needs GRANT SET ON
                // PARAMETER wal_compression).
                Some(match &s.wal_compression {
                    Some(c) => {
                        format!("{}, wal_compression={c} in its sessions", s.method.as_str())
                    }
                    None => s.method.as_str().to_string(),
                }),
            )
        }
    };
    let c1 = Instant::now();
    let wal: i64 =
        sqlx::query_scalar("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1::pg_lsn)::int8")
            .bind(&lsn0)
            .fetch_one(&mut admin)
            .await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.cancel();
    let samples = h.await.context("insert task")?;
    let during = latency_of(&samples, c0, c1);
    let during_ms = succeeded(&samples, c0, c1);
    inserter.close().await;
    admin
        .execute(format!("DROP SCHEMA {} CASCADE", schema.quoted()).as_str())
        .await?;
    admin.execute("CHECKPOINT").await?;
    let duration_secs = (c1 - c0).as_secs_f64();
    Ok(CleanupSide {
        what,
        copy_secs,
        deleted,
        duration_secs,
        rows_per_sec: if duration_secs > 0.0 {
            deleted as f64 / duration_secs
        } else {
            0.0
        },
        wal_bytes: wal,
        batches,
        method,
        p99_vs_idle: if idle.p99_ms > 0.0 {
            during.p99_ms / idle.p99_ms
        } else {
            f64::NAN
        },
        idle,
        during,
        during_ms,
    })
}

/// idemtop's side of the cleanup on the real binary: `idemtop cleanup --format=json` with the
/// sweep options of the bench's command line. Returns (deleted, batches, method as printed).
async fn cleanup_by_binary(
    env: &Env,
    bin: &Path,
    schema: &str,
    opts: &maintenance::CleanupOptions,
) -> Result<(u64, Option<u64>, Option<String>)> {
    let mut cmd = tokio::process::Command::new(bin);
    cmd.arg("cleanup")
        .arg("--database-url")
        .arg(&env.probe_url)
        .arg("--schema")
        .arg(schema)
        .arg("--format=json")
        .arg("--sweep-workers")
        .arg(opts.sweep_workers.to_string())
        .arg("--sweep-batch-ms")
        .arg(opts.sweep_batch.as_millis().max(1).to_string());
    if !opts.sweep_sync_commit {
        cmd.arg("--sweep-async-commit");
    }
    cmd.stdin(std::process::Stdio::null()).kill_on_drop(true);
    let out = cmd
        .output()
        .await
        .with_context(|| format!("running {} cleanup", bin.display()))?;
    if !out.status.success() {
        bail!(
            "{} cleanup failed ({}): {}",
            bin.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    cleanup_summary_fields(&out.stdout)
}

/// (deleted, batches, method) from `idemtop cleanup --format=json`'s summary; the method says
/// when the sweep compressed its full-page images.
fn cleanup_summary_fields(json: &[u8]) -> Result<(u64, Option<u64>, Option<String>)> {
    let v: serde_json::Value =
        serde_json::from_slice(json).context("reading idemtop cleanup's JSON summary")?;
    let deleted = v["deleted"]
        .as_u64()
        .ok_or_else(|| anyhow!("idemtop cleanup's JSON summary has no `deleted`"))?;
    let method = v["method"]
        .as_str()
        .map(|m| match v["wal_compression"].as_str() {
            Some(c) => format!("{m}, wal_compression={c} in its sessions"),
            None => m.to_string(),
        });
    Ok((deleted, v["batches"].as_u64(), method))
}

#[cfg(test)]
mod summary_tests {
    use super::cleanup_summary_fields;

    #[test]
    fn the_binary_summary_gives_deleted_batches_and_method() {
        let (d, b, m) = cleanup_summary_fields(
            br#"{"deleted": 5978327, "batches": 3472, "method": "sweep", "wal_compression": "lz4"}"#,
        )
        .unwrap();
        assert_eq!((d, b), (5_978_327, Some(3472)));
        assert_eq!(
            m.as_deref(),
            Some("sweep, wal_compression=lz4 in its sessions")
        );
        let (_, b, m) = cleanup_summary_fields(
            br#"{"deleted": 0, "batches": 0, "method": "walk", "wal_compression": null}"#,
        )
        .unwrap();
        assert_eq!((b, m.as_deref()), (Some(0), Some("walk")));
        assert!(cleanup_summary_fields(br#"{"batches": 1}"#).is_err());
        assert!(cleanup_summary_fields(b"not json").is_err());
    }
}

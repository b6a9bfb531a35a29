//! Building the data set: the guide schema, rows over the spread, statistics.

use super::*;

pub(super) async fn build_data(cfg: &BenchConfig, env: &Env, started: Instant) -> Result<DataSet> {
    let admin_cfg = ConnectConfig::from_url(env.admin_url.clone())
        .with_statement_timeout(Duration::ZERO)
        .with_application_name("idemtop bench backfill");
    let pool = admin_cfg.pool(4).await?;
    let parallel = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 4) as u64;
    log(
        started,
        &format!(
            "backfilling {} rows over {} h ({} parallel streams)",
            cfg.rows,
            cfg.spread.as_secs_f64() / 3600.0,
            parallel
        ),
    );
    let t0 = Instant::now();
    // For the time layout: generate into an unindexed staging table, then copy in order.
    let stage = TableRef::new("bench_stage", "idempotency_records").map_err(|e| anyhow!("{e}"))?;
    let target = match cfg.layout {
        Layout::Random => env.table.clone(),
        Layout::Time => {
            let mut admin = env.admin().await?;
            admin
                .execute(
                    format!(
                        "CREATE SCHEMA bench_stage;
                         CREATE UNLOGGED TABLE {} (LIKE {} INCLUDING DEFAULTS)",
                        stage.qualified(),
                        env.table.qualified()
                    )
                    .as_str(),
                )
                .await?;
            stage.clone()
        }
    };
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..parallel {
        let n = cfg.rows / parallel + u64::from(i < cfg.rows % parallel);
        let pool = pool.clone();
        let table = target.clone();
        let spread = cfg.spread;
        let seed = cfg.seed.wrapping_add(i * 1_000_003);
        tasks.spawn(async move {
            idemtop_testkit::workload::backfill(&pool, &table, n, spread, seed).await
        });
    }
    let mut inserted = 0;
    while let Some(r) = tasks.join_next().await {
        inserted += r.context("backfill task")??;
    }
    log(
        started,
        &format!(
            "generated {inserted} rows in {:.1} s",
            t0.elapsed().as_secs_f64()
        ),
    );
    pool.close().await;
    let mut admin = env.admin().await?;
    if cfg.layout == Layout::Time {
        log(started, "storing them in created_at order");
        admin.execute("SET work_mem = '512MB'").await?;
        admin
            .execute(
                format!(
                    "INSERT INTO {} SELECT * FROM {} ORDER BY created_at; DROP SCHEMA bench_stage CASCADE",
                    env.table.qualified(),
                    stage.qualified()
                )
                .as_str(),
            )
            .await?;
        admin.execute("RESET work_mem").await?;
    }
    let backfill_secs = t0.elapsed().as_secs_f64();
    log(
        started,
        &format!("data set built in {backfill_secs:.1} s; VACUUM ANALYZE"),
    );
    // The INSERT's counters reach pg_stat when this session next reports (up to a second after
    // it goes idle): after VACUUM they would add the rows again, and n_live_tup (the estimates'
    // total) would be twice the table. Flush them first (PostgreSQL 15+; older ones wait).
    let flushed = admin
        .execute("SELECT pg_stat_force_next_flush()")
        .await
        .is_ok();
    if !flushed {
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    admin.execute("SELECT 1").await?;
    let t1 = Instant::now();
    admin
        .execute("VACUUM ANALYZE public.idempotency_records")
        .await?;
    let vacuum_analyze_secs = t1.elapsed().as_secs_f64();
    admin.execute("CHECKPOINT").await?;
    let (rows, expired, avg, ops): (i64, i64, Option<f64>, i64) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE expires_at <= now()),
                avg(octet_length(result_payload))::float8, count(DISTINCT operation)
           FROM public.idempotency_records",
    )
    .fetch_one(&mut admin)
    .await?;
    let (total, table, index): (i64, i64, i64) = sqlx::query_as(
        "SELECT pg_total_relation_size('public.idempotency_records'),
                pg_table_size('public.idempotency_records'),
                pg_indexes_size('public.idempotency_records')",
    )
    .fetch_one(&mut admin)
    .await?;
    Ok(DataSet {
        rows,
        expired,
        expired_share: if rows > 0 {
            expired as f64 / rows as f64
        } else {
            0.0
        },
        spread_hours: cfg.spread.as_secs_f64() / 3600.0,
        layout: cfg.layout,
        operations: ops,
        avg_payload_bytes: avg.unwrap_or(0.0),
        total_bytes: total,
        table_bytes: table,
        index_bytes: index,
        backfill_secs,
        vacuum_analyze_secs,
    })
}

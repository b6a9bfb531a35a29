//! `idemtop demo`: the whole product with nothing set up. A throwaway PostgreSQL, the
//! migrations, pg_cron when the machine has it, backfilled history, live synthetic API traffic
//! through the idempotency store, and the dashboard on top. Quitting stops the traffic and the
//! server and removes every file it made (unless `--keep`).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use sqlx::Executor;
use tokio_util::sync::CancellationToken;

use crate::app::SessionInfo;
use crate::config::Config;
use crate::db::connect::ConnectConfig;
use crate::db::migrate;
use crate::ident::TableRef;
use crate::options::{Global, MigrateLayout};
use crate::pgtemp::{PgBinaries, TempPgOptions, TempPostgres};
use crate::store::IdempotencyStore;
use crate::workload::{self, WorkloadConfig, WorkloadStats};

#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Synthetic API requests per second.
    #[arg(long, default_value_t = 40.0, value_name = "N")]
    pub rate: f64,
    /// Rows of history to backfill first, spread over the last 48 hours (part already expired).
    #[arg(long, default_value_t = 60_000, value_name = "N")]
    pub seed_rows: u64,
    /// Keep the server (and its directory) after quitting, and print how to reach it.
    #[arg(long)]
    pub keep: bool,
    /// No dashboard: run the server and the traffic until Ctrl-C (connect from another terminal).
    #[arg(long)]
    pub no_ui: bool,
    /// Table layout: the guide's plain table, or hourly partitions on expires_at.
    #[arg(long, value_enum, default_value_t = MigrateLayout::Plain)]
    pub layout: MigrateLayout,
}

pub async fn run(global: &Global, config: &Config, args: &DemoArgs) -> Result<()> {
    let bins = PgBinaries::find()?;
    let cron = bins.has_extension("pg_cron");
    let mut opts = TempPgOptions {
        keep: args.keep,
        ..TempPgOptions::default()
    };
    if cron {
        opts = opts
            .setting("shared_preload_libraries", "pg_cron")
            .setting("cron.database_name", "postgres");
    }
    eprintln!(
        "idemtop demo: starting a throwaway PostgreSQL from {} …",
        bins.bin.display()
    );
    let pg = tokio::task::spawn_blocking(move || TempPostgres::start_with(opts))
        .await
        .context("starting the throwaway server")??;
    let url = pg.url();
    let cfg = ConnectConfig {
        url: Some(url.clone()),
        read_only: global.read_only,
        statement_timeout: Duration::from_millis(global.statement_timeout),
        timestamp_zone: global.timestamp_zone.clone(),
        ..ConnectConfig::default()
    };
    let table = TableRef::default();
    let admin = ConnectConfig::from_url(url.clone())
        .with_statement_timeout(Duration::ZERO)
        .with_application_name("idemtop demo setup");
    let mut conn = admin.connect().await?;
    migrate::run_layout(&mut conn, &table.schema, args.layout.into()).await?;
    if cron {
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_cron")
            .await?;
    }
    let pool = admin.pool(8).await?;
    if args.seed_rows > 0 {
        eprintln!(
            "idemtop demo: backfilling {} rows of history …",
            args.seed_rows
        );
        workload::backfill(
            &pool,
            &table,
            args.seed_rows,
            Duration::from_secs(48 * 3600),
            7,
        )
        .await?;
        conn.execute(format!("ANALYZE {}", table.qualified()).as_str())
            .await?;
    }
    drop(conn);

    let store = Arc::new(IdempotencyStore::new(
        admin
            .clone()
            .with_application_name("demo api")
            .pool(8)
            .await?,
        table.clone(),
        config.ttl_policy(),
    ));
    let stats = Arc::new(WorkloadStats::default());
    let cancel = CancellationToken::new();
    let traffic = tokio::spawn(workload::run(
        Arc::clone(&store),
        WorkloadConfig {
            rate: args.rate,
            ..WorkloadConfig::default()
        },
        Arc::clone(&stats),
        cancel.clone(),
    ));

    let result = if args.no_ui {
        eprintln!(
            "idemtop demo: {} requests/s against {url}\n  watch it: idemtop --database-url {url}\n  Ctrl-C stops",
            args.rate
        );
        tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")
    } else {
        let session = SessionInfo {
            target: format!("demo {}", cfg.describe()),
            table: table.to_string(),
            read_only: global.read_only,
        };
        let watch_pool = cfg.pool(4).await?;
        crate::commands::watch::run_with_pool(
            cfg,
            watch_pool,
            table,
            session,
            config.clone(),
            global.refresh_interval(config),
            global.theme(config),
        )
        .await
    };
    cancel.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(3), traffic).await;
    let s = stats.snapshot();
    eprintln!(
        "idemtop demo: {} requests, {} stored, {} replays answered from the store, {} expired keys reused, {} errors",
        s.requests, s.stored, s.replays_hit, s.replaced_expired, s.errors
    );
    pool.close().await;
    store.pool().close().await;
    if args.keep {
        let (dir, _port) = pg.into_kept();
        eprintln!(
            "idemtop demo: server kept: {url}\n  data in {}\n  stop it with: kill $(head -1 {}/data/postmaster.pid) && rm -rf {}",
            dir.display(),
            dir.display(),
            dir.display()
        );
    } else {
        drop(pg);
        eprintln!("idemtop demo: server stopped and its files removed");
    }
    result
}

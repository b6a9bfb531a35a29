//! Shared by the integration tests: one throwaway PostgreSQL per test binary (started on first
//! use, stopped and removed by its watchdog when the binary exits, pass or fail), and a fresh
//! database per test so tests never see each other's rows.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

use idemtop::db::connect::ConnectConfig;
use idemtop::db::migrate;
use idemtop::ident::Ident;
use idemtop::pgtemp::{TempPgOptions, TempPostgres};
use sqlx::{Executor, PgConnection};

pub mod shapes;

static SERVER: OnceLock<TempPostgres> = OnceLock::new();
static DB_SEQ: AtomicU32 = AtomicU32::new(0);

/// The binary's shared throwaway server.
pub fn server() -> &'static TempPostgres {
    SERVER.get_or_init(|| {
        let mut opts = TempPgOptions::default();
        if idemtop::pgtemp::PgBinaries::find()
            .map(|b| b.has_extension("pg_cron"))
            .unwrap_or(false)
        {
            opts = opts
                .setting("shared_preload_libraries", "pg_cron")
                .setting("cron.database_name", "postgres");
        }
        TempPostgres::start_with(opts).expect("start a throwaway PostgreSQL for the tests")
    })
}

/// A new, empty database on the shared server; returns its URL.
pub async fn fresh_db() -> String {
    let pg = server();
    let name = format!(
        "t{}_{}",
        std::process::id(),
        DB_SEQ.fetch_add(1, Ordering::Relaxed)
    );
    let mut admin = ConnectConfig::from_url(pg.url())
        .connect()
        .await
        .expect("connect to the postgres database");
    admin
        .execute(format!("CREATE DATABASE \"{name}\"").as_str())
        .await
        .expect("create a test database");
    pg.url_for(&name)
}

/// A fresh database with migrations 045 and 046 applied.
pub async fn migrated_db() -> String {
    let url = fresh_db().await;
    let mut conn = connect(&url).await;
    migrate::run(&mut conn, &Ident::new("public").unwrap())
        .await
        .expect("apply the migrations");
    url
}

pub async fn connect(url: &str) -> PgConnection {
    ConnectConfig::from_url(url)
        .connect()
        .await
        .expect("connect to the test database")
}

/// Run the idemtop binary with arguments; returns (exit code, stdout, stderr).
pub fn idemtop(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_idemtop"));
    cmd.args(args)
        .env_remove("DATABASE_URL")
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run the idemtop binary");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `server_version_num` of the server behind `conn`, e.g. 130023 or 180004.
pub async fn server_version_num(conn: &mut PgConnection) -> i32 {
    sqlx::query_scalar("SELECT current_setting('server_version_num')::int")
        .fetch_one(conn)
        .await
        .expect("read server_version_num")
}

/// The major version of the shared test server, e.g. 13 (from its data directory).
pub fn server_major() -> u32 {
    server().version().parse().expect("PG_VERSION is a number")
}

/// True when the shared server is at least `major`; otherwise prints why the test (or the rest
/// of it) is skipped, so `cargo test -- --nocapture` shows it.
pub fn needs_major(major: u32, what: &str) -> bool {
    let have = server_major();
    if have < major {
        eprintln!("skipped on PostgreSQL {have}: {what} needs PostgreSQL {major}+");
        return false;
    }
    true
}

/// Make this session's table statistics visible to other sessions (and to its own next
/// transactions) now.
///
/// PostgreSQL 15+ has `pg_stat_force_next_flush()`. On 13 and 14 a backend sends its counters
/// to the statistics collector when it goes idle, but only when its last report is at least
/// 500 ms old (PGSTAT_STAT_INTERVAL), and a reader accepts a statistics file up to 500 ms old:
/// so wait past the interval, run a statement (the backend reports before it answers), then
/// wait until the collector has written a statistics file after that report.
pub async fn flush_stats(conn: &mut PgConnection) {
    if server_version_num(conn).await >= 150_000 {
        conn.execute("SELECT pg_stat_force_next_flush()")
            .await
            .expect("pg_stat_force_next_flush");
        return;
    }
    tokio::time::sleep(std::time::Duration::from_millis(550)).await;
    let reported: chrono::DateTime<chrono::Utc> = sqlx::query_scalar("SELECT clock_timestamp()")
        .fetch_one(&mut *conn)
        .await
        .expect("a statement that makes the backend report its statistics");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        // Each statement is its own transaction: it reads the newest statistics file.
        let fresh: bool =
            sqlx::query_scalar("SELECT pg_stat_get_snapshot_timestamp() > $1 + interval '100 ms'")
                .bind(reported)
                .fetch_one(&mut *conn)
                .await
                .expect("read the statistics snapshot's time");
        if fresh {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the statistics collector wrote no file within 10 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

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

//! Foundation: migrations 045/046 against a real server, the three ways to apply them,
//! readable connection errors, and the throwaway server's own lifecycle.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::*;
use idemtop::db::connect::ConnectConfig;
use idemtop::db::migrate::{self, Outcome};
use idemtop::ident::{Ident, TableRef};
use idemtop::pgtemp::TempPostgres;
use sqlx::{Executor, PgConnection, Row};

fn public() -> Ident {
    Ident::new("public").unwrap()
}

type Column = (String, String, Option<i32>, String, Option<String>);

async fn columns(conn: &mut PgConnection) -> Vec<Column> {
    sqlx::query_as(
        "SELECT column_name::text, data_type::text, character_maximum_length::int,
                is_nullable::text, column_default::text
           FROM information_schema.columns
          WHERE table_schema = 'public' AND table_name = 'idempotency_records'
          ORDER BY ordinal_position",
    )
    .fetch_all(conn)
    .await
    .unwrap()
}

/// Everything the guide specifies, as the catalogs report it.
async fn schema_fingerprint(
    conn: &mut PgConnection,
) -> (Vec<Column>, Vec<String>, Vec<String>, Vec<String>) {
    let cols = columns(conn).await;
    let constraints: Vec<String> = sqlx::query_scalar(
        "SELECT conname || ' ' || pg_get_constraintdef(oid) FROM pg_constraint
          WHERE conrelid = to_regclass('public.idempotency_records') ORDER BY conname",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    let indexes: Vec<String> = sqlx::query_scalar(
        "SELECT indexdef FROM pg_indexes
          WHERE schemaname = 'public' AND tablename = 'idempotency_records' ORDER BY indexname",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    let functions: Vec<String> = sqlx::query_scalar(
        "SELECT proname || '(' || pg_get_function_arguments(oid) || ') -> ' || pg_get_function_result(oid)
           FROM pg_proc WHERE proname = 'cleanup_expired_idempotency_records'",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    (cols, constraints, indexes, functions)
}

fn guide_columns() -> Vec<Column> {
    let c = |n: &str, t: &str, len: Option<i32>, null: &str, def: Option<&str>| {
        (
            n.to_string(),
            t.to_string(),
            len,
            null.to_string(),
            def.map(str::to_string),
        )
    };
    vec![
        c("request_id", "uuid", None, "NO", None),
        c("operation", "character varying", Some(100), "NO", None),
        c("result_payload", "text", None, "NO", None),
        c("status_code", "integer", None, "YES", None),
        c(
            "created_at",
            "timestamp with time zone",
            None,
            "NO",
            Some("now()"),
        ),
        c("expires_at", "timestamp with time zone", None, "NO", None),
    ]
}

/// The guide's constraints as `pg_constraint` lists them on this server: PostgreSQL 18 also
/// records each NOT NULL there (the primary key's column included), named `<table>_<column>_not_null`.
fn guide_constraints(server_version_num: i32) -> Vec<String> {
    let mut expected = vec![
        "chk_expires_at CHECK ((expires_at > created_at))".to_string(),
        "idempotency_records_pkey PRIMARY KEY (request_id)".to_string(),
    ];
    if server_version_num >= 180_000 {
        for column in [
            "created_at",
            "expires_at",
            "operation",
            "request_id",
            "result_payload",
        ] {
            expected.push(format!(
                "idempotency_records_{column}_not_null NOT NULL {column}"
            ));
        }
        expected.sort();
    }
    expected
}

async fn assert_guide_schema(conn: &mut PgConnection) {
    let fp = schema_fingerprint(conn).await;
    let version = server_version_num(conn).await;
    assert_eq!(fp.0, guide_columns());
    assert_eq!(fp.1, guide_constraints(version));
    assert_eq!(
        fp.2,
        vec![
            "CREATE UNIQUE INDEX idempotency_records_pkey ON public.idempotency_records USING btree (request_id)".to_string(),
            "CREATE INDEX idx_idempotency_expires ON public.idempotency_records USING btree (expires_at)".to_string(),
            "CREATE INDEX idx_idempotency_operation ON public.idempotency_records USING btree (operation)".to_string(),
        ]
    );
    assert_eq!(
        fp.3,
        vec!["cleanup_expired_idempotency_records() -> TABLE(deleted_count bigint)".to_string()]
    );
}

async fn user_objects(conn: &mut PgConnection) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT relname::text FROM pg_class WHERE relnamespace = 'public'::regnamespace
         UNION ALL
         SELECT proname::text FROM pg_proc WHERE pronamespace = 'public'::regnamespace
         ORDER BY 1",
    )
    .fetch_all(conn)
    .await
    .unwrap()
}

#[tokio::test]
async fn schema_after_up_is_the_guides() {
    let url = migrated_db().await;
    let mut conn = connect(&url).await;
    assert_guide_schema(&mut conn).await;
}

#[tokio::test]
async fn down_then_up_round_trips_and_leaves_an_empty_schema() {
    let url = fresh_db().await;
    let mut conn = connect(&url).await;
    let first = migrate::run(&mut conn, &public()).await.unwrap();
    assert!(matches!(first[0], Outcome::Applied { version: 45, .. }));
    assert!(matches!(first[1], Outcome::Applied { version: 46, .. }));
    let before = schema_fingerprint(&mut conn).await;

    let r1 = migrate::revert(&mut conn, &public()).await.unwrap();
    assert!(
        matches!(r1, Outcome::Reverted { version: 46, .. }),
        "{r1:?}"
    );
    assert!(
        schema_fingerprint(&mut conn).await.3.is_empty(),
        "function removed"
    );
    let r2 = migrate::revert(&mut conn, &public()).await.unwrap();
    assert!(
        matches!(r2, Outcome::Reverted { version: 45, .. }),
        "{r2:?}"
    );
    assert_eq!(user_objects(&mut conn).await, Vec::<String>::new());
    assert_eq!(
        migrate::revert(&mut conn, &public()).await.unwrap(),
        Outcome::NothingToRevert
    );

    migrate::run(&mut conn, &public()).await.unwrap();
    assert_eq!(schema_fingerprint(&mut conn).await, before);
}

#[tokio::test]
async fn applying_twice_says_already_applied() {
    let url = migrated_db().await;
    let mut conn = connect(&url).await;
    let again = migrate::run(&mut conn, &public()).await.unwrap();
    assert!(again
        .iter()
        .all(|o| matches!(o, Outcome::AlreadyApplied { .. })));
    assert!(again[0].to_string().contains("already applied"));

    // Outside sqlx's bookkeeping (psql, or another tool) the file itself says so.
    let pg = server();
    let db = url.rsplit('/').next().unwrap();
    let sql = std::fs::read_to_string("migrations/045_create_idempotency_records.up.sql").unwrap();
    let err = pg.psql(db, &sql).unwrap_err().to_string();
    assert!(
        err.contains("migration 045 is already applied: table idempotency_records already exists"),
        "{err}"
    );
}

#[tokio::test]
async fn a_failing_migration_leaves_nothing_half_applied() {
    let url = fresh_db().await;
    let mut conn = connect(&url).await;
    // An unrelated index already holds the name 045 wants for its second index.
    conn.execute("CREATE TABLE other (operation text); CREATE INDEX idx_idempotency_operation ON other (operation);")
        .await
        .unwrap();
    let err = migrate::run(&mut conn, &public()).await.unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("migration 045"), "{msg}");
    assert!(msg.contains("already exists"), "{msg}");
    let table: Option<String> =
        sqlx::query_scalar("SELECT to_regclass('idempotency_records')::text")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(
        table, None,
        "the table created before the failure was rolled back"
    );
    let status = migrate::status(&mut conn, &public()).await.unwrap();
    assert!(status.iter().all(|s| !s.applied));
    assert!(
        !tracking_table(&mut conn).await,
        "a run that applied nothing leaves no empty _sqlx_migrations"
    );
}

#[tokio::test]
async fn check_constraint_rejects_expiry_not_after_creation() {
    let url = migrated_db().await;
    let mut conn = connect(&url).await;
    for expires in ["now()", "now() - interval '1 second'"] {
        let err = conn
            .execute(
                format!(
                    "INSERT INTO idempotency_records (request_id, operation, result_payload, status_code, created_at, expires_at)
                     VALUES (gen_random_uuid(), 'op', '{{}}', 200, now(), {expires})"
                )
                .as_str(),
            )
            .await
            .unwrap_err();
        let db = err.as_database_error().expect("a database error");
        assert_eq!(db.code().as_deref(), Some("23514"));
        assert_eq!(db.constraint(), Some("chk_expires_at"));
    }
}

#[tokio::test]
async fn cleanup_function_deletes_only_expired_rows_and_counts_them() {
    let url = migrated_db().await;
    let mut conn = connect(&url).await;
    conn.execute(
        "INSERT INTO idempotency_records (request_id, operation, result_payload, status_code, created_at, expires_at)
         SELECT gen_random_uuid(), 'expired', '{}', 200, now() - interval '2 days', now() - interval '1 day' - g * interval '1 minute'
           FROM generate_series(1, 7) g;
         INSERT INTO idempotency_records (request_id, operation, result_payload, status_code, created_at, expires_at)
         SELECT gen_random_uuid(), 'live', '{}', 201, now(), now() + interval '1 hour'
           FROM generate_series(1, 5) g;",
    )
    .await
    .unwrap();
    let row = sqlx::query("SELECT * FROM cleanup_expired_idempotency_records()")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(row.columns().len(), 1);
    let deleted: i64 = row.try_get("deleted_count").unwrap();
    assert_eq!(deleted, 7);
    let left: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT operation::text FROM idempotency_records")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert_eq!(left, vec!["live".to_string()]);
    let live: i64 = sqlx::query_scalar("SELECT count(*) FROM idempotency_records")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(live, 5);
    let again: i64 =
        sqlx::query_scalar("SELECT deleted_count FROM cleanup_expired_idempotency_records()")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(again, 0);
}

#[tokio::test]
async fn psql_applies_each_file_in_order_and_reverts_them() {
    let url = fresh_db().await;
    let db = url.rsplit('/').next().unwrap().to_string();
    let pg = server();
    let psql = pg.binaries().psql();
    let run_file = |file: &str| {
        let out = std::process::Command::new(&psql)
            .args([
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "--single-transaction",
                "-d",
            ])
            .arg(&url)
            .arg("-f")
            .arg(PathBuf::from("migrations").join(file))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run_file("045_create_idempotency_records.up.sql");
    run_file("046_create_idempotency_cleanup_job.up.sql");
    let mut conn = connect(&url).await;
    assert_guide_schema(&mut conn).await;
    run_file("046_create_idempotency_cleanup_job.down.sql");
    run_file("045_create_idempotency_records.down.sql");
    assert_eq!(user_objects(&mut conn).await, Vec::<String>::new());
    let _ = db;
}

#[tokio::test]
async fn migrate_cli_run_then_revert_twice_leaves_an_empty_schema() {
    let url = fresh_db().await;
    let (code, out, err) = idemtop(&["--database-url", &url, "migrate", "run"], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("applied  045 create idempotency records"),
        "{out}"
    );
    assert!(
        out.contains("applied  046 create idempotency cleanup job"),
        "{out}"
    );
    let (_, out, _) = idemtop(&["--database-url", &url, "migrate", "run"], &[]);
    assert!(
        out.contains("045 create idempotency records: already applied"),
        "{out}"
    );
    let (_, out, _) = idemtop(&["--database-url", &url, "migrate", "status"], &[]);
    let mut lines = out.lines();
    let db = url.rsplit('/').next().unwrap();
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("migrations in postgres@127.0.0.1:"),
        "{out}"
    );
    assert!(out
        .lines()
        .next()
        .unwrap()
        .contains(&format!("/{db}, schema public:")));
    assert!(lines.all(|l| l.ends_with("applied")), "{out}");
    for expected in ["reverted 046", "reverted 045"] {
        let (code, out, err) = idemtop(&["migrate", "revert"], &[("DATABASE_URL", &url)]);
        assert_eq!(code, 0, "{err}");
        assert!(out.starts_with(expected), "{out}");
    }
    let mut conn = connect(&url).await;
    assert_eq!(user_objects(&mut conn).await, Vec::<String>::new());
}

#[tokio::test]
async fn pg_environment_variables_are_the_fallback() {
    let url = migrated_db().await;
    let db = url.rsplit('/').next().unwrap();
    let port = server().port().to_string();
    let (code, out, err) = idemtop(
        &["migrate", "status"],
        &[
            ("PGHOST", "127.0.0.1"),
            ("PGPORT", &port),
            ("PGUSER", "postgres"),
            ("PGDATABASE", db),
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("045 create idempotency records"), "{out}");
}

/// idemtop's sessions never JIT-compile: its statements are short or frequent, and on a large
/// table the server's default would spend 20-200 ms compiling a cleanup's planning EXPLAIN.
/// Both ways of connecting (one connection, a pool) carry the setting.
#[tokio::test]
async fn idemtop_sessions_have_jit_off_and_their_timeouts() {
    let url = migrated_db().await;
    let cfg = ConnectConfig::from_url(url.clone()).with_statement_timeout(Duration::from_secs(7));
    let mut one = cfg.connect().await.unwrap();
    let pool = cfg.pool(1).await.unwrap();
    let mut pooled = pool.acquire().await.unwrap();
    for conn in [&mut one, &mut *pooled] {
        let (jit, timeout): (String, String) =
            sqlx::query_as("SELECT current_setting('jit'), current_setting('statement_timeout')")
                .fetch_one(&mut *conn)
                .await
                .unwrap();
        assert_eq!((jit.as_str(), timeout.as_str()), ("off", "7s"));
    }
    // A plain connection (sqlx's own, not idemtop's) keeps the server's default.
    let mut plain = <PgConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    let jit: String = sqlx::query_scalar("SELECT current_setting('jit')")
        .fetch_one(&mut plain)
        .await
        .unwrap();
    assert_eq!(jit, "on");
}

#[tokio::test]
async fn bad_url_gives_one_readable_line_without_the_password() {
    // Nothing listens on port 1.
    let (code, out, err) = idemtop(
        &[
            "--database-url",
            "postgres://alice:hunter2@127.0.0.1:1/app",
            "migrate",
            "status",
        ],
        &[],
    );
    assert_ne!(code, 0);
    assert!(out.is_empty());
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("cannot connect to alice@127.0.0.1:1/app: connection refused"),
        "{err}"
    );
    assert!(!err.contains("hunter2"));

    let (code, _, err) = idemtop(
        &[
            "--database-url",
            "postgres://alice:hunter2@host:port/x",
            "migrate",
            "status",
        ],
        &[],
    );
    assert_ne!(code, 0);
    assert!(err.contains("invalid database URL"), "{err}");
    assert!(!err.contains("hunter2"));

    // The database does not exist.
    let url = server().url_for("no_such_db");
    let err = ConnectConfig::from_url(url)
        .connect()
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("database \"no_such_db\" does not exist"),
        "{err}"
    );
}

#[tokio::test]
async fn missing_table_and_schema_give_readable_errors() {
    let url = fresh_db().await;
    let mut conn = connect(&url).await;
    let err = idemtop::db::table::resolve(&mut conn, &TableRef::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("table public.idempotency_records does not exist in database"),
        "{err}"
    );
    assert!(err.contains("idemtop migrate run"), "{err}");
    let err = idemtop::db::table::resolve(&mut conn, &TableRef::new("nope", "t").unwrap())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("schema nope does not exist"), "{err}");
}

#[tokio::test]
async fn odd_table_names_are_quoted_not_pasted() {
    let url = fresh_db().await;
    let mut conn = connect(&url).await;
    let odd = r#"Idem "records"; DROP TABLE x"#;
    conn.execute(
        format!(
            "CREATE TABLE {} (request_id uuid primary key)",
            Ident::new(odd).unwrap().quoted()
        )
        .as_str(),
    )
    .await
    .unwrap();
    let info = idemtop::db::table::resolve(&mut conn, &TableRef::new("public", odd).unwrap())
        .await
        .unwrap();
    assert!(!info.partitioned);
    assert_eq!(info.owner, "postgres");
}

#[test]
fn throwaway_server_is_removed_on_drop() {
    let started = Instant::now();
    let pg = TempPostgres::start().unwrap();
    let startup = started.elapsed();
    let dir = pg.dir().to_path_buf();
    let port = pg.port();
    assert!(dir.join("data/PG_VERSION").exists());
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
    assert!(startup < Duration::from_secs(20), "started in {startup:?}");
    drop(pg);
    assert!(!dir.exists(), "{} removed", dir.display());
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}

#[test]
fn throwaway_server_is_removed_when_a_test_panics() {
    let dir_port = std::sync::Mutex::new(None);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let pg = TempPostgres::start().unwrap();
        *dir_port.lock().unwrap() = Some((pg.dir().to_path_buf(), pg.port()));
        panic!("a failing test");
    }));
    assert!(result.is_err());
    let (dir, port) = dir_port.into_inner().unwrap().unwrap();
    assert!(!dir.exists());
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}

/// Run by `throwaway_server_is_removed_when_its_owner_is_killed` in a child process.
#[test]
#[ignore = "helper: run in a child process by another test"]
fn child_holding_a_server() {
    let pg = TempPostgres::start().unwrap();
    println!("DIR={} PORT={}", pg.dir().display(), pg.port());
    std::thread::sleep(Duration::from_secs(60));
    drop(pg);
}

#[test]
fn throwaway_server_is_removed_when_its_owner_is_killed() {
    use std::io::{BufRead, BufReader};
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_holding_a_server",
            "--ignored",
            "--nocapture",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = lines
        .find_map(|l| l.ok().filter(|l| l.starts_with("DIR=")))
        .expect("the child reports its server");
    let (dir, port) = line
        .trim_start_matches("DIR=")
        .split_once(" PORT=")
        .unwrap();
    let dir = PathBuf::from(dir);
    let port: u16 = port.parse().unwrap();
    assert!(dir.exists());
    child.kill().unwrap(); // SIGKILL: no destructor runs.
    child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while (dir.exists() || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok())
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!dir.exists(), "watchdog removed {}", dir.display());
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}

// ---------------------------------------------------------------------------------------------
// The three ways mix: idemtop, sqlx's migrator (what `sqlx migrate run` runs) and psql.

/// Apply one migration file with psql, as the README says; returns (success, stderr).
fn psql_file(url: &str, file: &str) -> (bool, String) {
    let out = std::process::Command::new(server().binaries().psql())
        .args([
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "--single-transaction",
            "-d",
        ])
        .arg(url)
        .arg("-f")
        .arg(PathBuf::from("migrations").join(file))
        .output()
        .expect("run psql");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn psql_ok(url: &str, file: &str) {
    let (ok, err) = psql_file(url, file);
    assert!(ok, "{file}: {err}");
}

const UP_045: &str = "045_create_idempotency_records.up.sql";
const UP_046: &str = "046_create_idempotency_cleanup_job.up.sql";
const DOWN_045: &str = "045_create_idempotency_records.down.sql";
const DOWN_046: &str = "046_create_idempotency_cleanup_job.down.sql";

async fn tracking_table(conn: &mut PgConnection) -> bool {
    sqlx::query_scalar("SELECT to_regclass('public._sqlx_migrations') IS NOT NULL")
        .fetch_one(conn)
        .await
        .unwrap()
}

/// `_sqlx_migrations` as (version, description, success, checksum).
async fn recorded(conn: &mut PgConnection) -> Vec<(i64, String, bool, Vec<u8>)> {
    sqlx::query_as(
        "SELECT version, description, success, checksum FROM public._sqlx_migrations ORDER BY version",
    )
    .fetch_all(conn)
    .await
    .unwrap()
}

/// What sqlx itself would write for the embedded migrations.
fn as_sqlx_records() -> Vec<(i64, String, bool, Vec<u8>)> {
    migrate::MIGRATOR
        .iter()
        .filter(|m| m.migration_type.is_up_migration())
        .map(|m| {
            (
                m.version,
                m.description.to_string(),
                true,
                m.checksum.to_vec(),
            )
        })
        .collect()
}

#[tokio::test]
async fn applied_with_psql_then_idemtop_status_and_run_see_it_applied_and_sqlx_agrees() {
    let url = fresh_db().await;
    psql_ok(&url, UP_045);
    psql_ok(&url, UP_046);
    let mut conn = connect(&url).await;
    assert!(!tracking_table(&mut conn).await);

    // status finds both migrations' objects, records them, and names the database it checked.
    let (code, out, err) = idemtop(&["--database-url", &url, "migrate", "status"], &[]);
    assert_eq!(code, 0, "{err}");
    let db = url.rsplit('/').next().unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(
        lines[0].starts_with("migrations in postgres@127.0.0.1:")
            && lines[0].ends_with(&format!("/{db}, schema public:")),
        "{out}"
    );
    assert!(
        lines[1].starts_with("045 create idempotency records")
            && lines[1].ends_with(
                "applied: found table public.idempotency_records, now recorded in _sqlx_migrations"
            ),
        "{out}"
    );
    assert!(
        lines[2].ends_with(
            "applied: found function public.cleanup_expired_idempotency_records(), now recorded in _sqlx_migrations"
        ),
        "{out}"
    );
    assert_eq!(recorded(&mut conn).await, as_sqlx_records());

    // run skips both with one sentence each and exit 0; nothing else changes.
    let before = schema_fingerprint(&mut conn).await;
    let (code, out, err) = idemtop(&["--database-url", &url, "migrate", "run"], &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "skipped  045 create idempotency records: already applied\n\
         skipped  046 create idempotency cleanup job: already applied\n"
    );
    assert_eq!(schema_fingerprint(&mut conn).await, before);
    // sqlx's own migrator (what `sqlx migrate run` does) accepts the records: same checksums.
    migrate::MIGRATOR.run(&mut conn).await.unwrap();
    assert_eq!(recorded(&mut conn).await, as_sqlx_records());
    assert_guide_schema(&mut conn).await;
    // A second status has nothing left to record.
    let (_, out, _) = idemtop(&["--database-url", &url, "migrate", "status"], &[]);
    assert!(
        out.lines().skip(1).all(|l| l.ends_with(" applied")),
        "{out}"
    );
}

#[tokio::test]
async fn applied_with_psql_then_idemtop_run_records_it_and_applies_the_rest() {
    let url = fresh_db().await;
    psql_ok(&url, UP_045);
    let (code, out, err) = idemtop(&["--database-url", &url, "migrate", "run"], &[]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        "skipped  045 create idempotency records: already applied \
         (table public.idempotency_records exists), now recorded in _sqlx_migrations",
        "{out}"
    );
    assert!(
        lines[1].starts_with("applied  046 create idempotency cleanup job"),
        "{out}"
    );
    let mut conn = connect(&url).await;
    assert_eq!(recorded(&mut conn).await, as_sqlx_records());
    assert_guide_schema(&mut conn).await;
}

#[tokio::test]
async fn applied_by_sqlx_or_idemtop_then_psql_sees_it_applied() {
    // sqlx's migrator, as `sqlx migrate run --source migrations` applies them.
    let url = fresh_db().await;
    let mut conn = connect(&url).await;
    migrate::MIGRATOR.run(&mut conn).await.unwrap();
    // psql re-applying a file is refused by the file itself, and changes nothing.
    let before = schema_fingerprint(&mut conn).await;
    for (file, says) in [
        (UP_045, "migration 045 is already applied: table idempotency_records already exists"),
        (
            UP_046,
            "migration 046 is already applied: function cleanup_expired_idempotency_records() already exists",
        ),
    ] {
        let (ok, err) = psql_file(&url, file);
        assert!(!ok);
        assert!(err.contains(says), "{err}");
    }
    assert_eq!(schema_fingerprint(&mut conn).await, before);
    // idemtop agrees with sqlx's bookkeeping.
    let (code, out, _) = idemtop(&["--database-url", &url, "migrate", "status"], &[]);
    assert_eq!(code, 0);
    assert!(
        out.lines().skip(1).all(|l| l.ends_with(" applied")),
        "{out}"
    );

    // Reverted with psql behind sqlx's back: status says so, and run applies them again.
    psql_ok(&url, DOWN_046);
    psql_ok(&url, DOWN_045);
    let (code, out, _) = idemtop(&["--database-url", &url, "migrate", "status"], &[]);
    assert_eq!(code, 0);
    assert!(
        out.contains(
            "applied: recorded in _sqlx_migrations, but table public.idempotency_records is missing \
             (`idemtop migrate run` applies it again)"
        ),
        "{out}"
    );
    let (code, out, err) = idemtop(&["--database-url", &url, "migrate", "run"], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with(
            "applied  045 create idempotency records again: it was recorded as applied but \
             table public.idempotency_records was missing"
        ),
        "{out}"
    );
    assert!(
        out.contains("applied  046 create idempotency cleanup job again"),
        "{out}"
    );
    assert_guide_schema(&mut conn).await;
    assert_eq!(recorded(&mut conn).await, as_sqlx_records());
    migrate::MIGRATOR.run(&mut conn).await.unwrap();
}

#[tokio::test]
async fn migrate_refuses_another_table_name_and_a_read_only_session_in_one_sentence() {
    let url = fresh_db().await;
    let (code, out, err) = idemtop(
        &[
            "--database-url",
            &url,
            "--table",
            "idem_keys",
            "migrate",
            "run",
        ],
        &[],
    );
    assert_eq!(code, 1);
    assert!(out.is_empty());
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("the migrations create the guide's table idempotency_records and cannot name it idem_keys"),
        "{err}"
    );

    // --schema is honoured: the table and the bookkeeping go there.
    let mut conn = connect(&url).await;
    conn.execute("CREATE SCHEMA billing").await.unwrap();
    let (code, _, err) = idemtop(
        &[
            "--database-url",
            &url,
            "--schema",
            "billing",
            "migrate",
            "run",
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let where_: Vec<String> = sqlx::query_scalar(
        "SELECT relname::text FROM pg_class WHERE relnamespace = 'billing'::regnamespace
            AND relkind = 'r' ORDER BY 1",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(where_, ["_sqlx_migrations", "idempotency_records"]);
    assert!(!tracking_table(&mut conn).await, "nothing in public");

    // --read-only: run and revert refuse, naming why, instead of a failed CREATE TABLE.
    for action in ["run", "revert"] {
        let (code, _, err) = idemtop(
            &[
                "--database-url",
                &url,
                "--read-only",
                "--schema",
                "billing",
                "migrate",
                action,
            ],
            &[],
        );
        assert_eq!(code, 1);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.contains(&format!(
                "the session is read-only (--read-only, default_transaction_read_only or a hot standby): \
                 migrate {action} changes the schema, so nothing was done"
            )),
            "{err}"
        );
        assert!(!err.contains("cannot execute"), "{err}");
    }
    // A read-only status reports what psql applied without recording it.
    psql_ok(&url, UP_045);
    let (code, out, err) = idemtop(
        &["--database-url", &url, "--read-only", "migrate", "status"],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(
            "applied: found table public.idempotency_records; not recorded in _sqlx_migrations (read-only session)"
        ),
        "{out}"
    );
    assert!(out.contains("046 create idempotency cleanup job"), "{out}");
    assert!(out.lines().last().unwrap().ends_with(" pending"), "{out}");
    assert!(!tracking_table(&mut conn).await);
}

#[tokio::test]
async fn the_other_layout_is_named_not_recorded() {
    let url = fresh_db().await;
    let (code, _, err) = idemtop(
        &[
            "--database-url",
            &url,
            "migrate",
            "run",
            "--layout",
            "partitioned",
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let mut conn = connect(&url).await;
    let before = recorded(&mut conn).await;
    let (code, out, _) = idemtop(&["--database-url", &url, "migrate", "status"], &[]);
    assert_eq!(code, 0);
    assert!(
        out.contains("applied (file changed since)"),
        "the partitioned files' checksums differ from the plain ones: {out}"
    );
    let (code, _, err) = idemtop(&["--database-url", &url, "migrate", "run"], &[]);
    assert_eq!(code, 1);
    assert!(err.contains("was applied from a different file"), "{err}");
    assert_eq!(recorded(&mut conn).await, before);

    // Applied with psql (no bookkeeping): the plain layout names the partitioned table.
    let url = fresh_db().await;
    for f in [
        "partitioned/045_create_idempotency_records_partitioned.up.sql",
        "partitioned/046_create_idempotency_partition_maintenance.up.sql",
    ] {
        psql_ok(&url, f);
    }
    let (code, out, _) = idemtop(&["--database-url", &url, "migrate", "status"], &[]);
    assert_eq!(code, 0);
    assert!(
        out.contains(
            "pending: public.idempotency_records is partitioned, made by the partitioned layout (use --layout partitioned)"
        ),
        "{out}"
    );
    let (code, _, err) = idemtop(&["--database-url", &url, "migrate", "run"], &[]);
    assert_eq!(code, 1);
    assert!(
        err.contains("migration 045 create idempotency records cannot be applied: public.idempotency_records is partitioned"),
        "{err}"
    );
    let mut conn = connect(&url).await;
    assert!(
        !tracking_table(&mut conn).await,
        "no empty _sqlx_migrations left"
    );
    let (code, out, err) = idemtop(
        &[
            "--database-url",
            &url,
            "migrate",
            "status",
            "--layout",
            "partitioned",
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("now recorded in _sqlx_migrations"), "{out}");
    assert_eq!(recorded(&mut conn).await.len(), 2);
}

//! pg_cron against real servers: every state of [`cron::status`] a test can reach (not created,
//! ready, in another database, not preloaded), scheduling and unscheduling the hourly cleanup
//! job in pg_cron's own database and in another one, the job's runs, and a role without
//! access to pg_cron.

mod common;

use common::*;
use idemtop::db::connect::ConnectConfig;
use idemtop::db::cron::{self, CronJob, CronStatus, HOURLY, JOB_NAME};
use idemtop::db::migrate;
use idemtop::ident::Ident;
use idemtop::ident::TableRef;
use idemtop::pgtemp::{PgBinaries, TempPgOptions, TempPostgres};
use sqlx::{Executor, PgConnection};

fn has_pg_cron() -> bool {
    let found = PgBinaries::find()
        .map(|b| b.has_extension("pg_cron"))
        .unwrap_or(false);
    if !found {
        eprintln!("pg_cron is not installed for this server (postgresql-<major>-cron): skipped");
    }
    found
}

fn job_of(status: &CronStatus) -> Option<CronJob> {
    match status {
        CronStatus::Ready { job, .. } => job.clone(),
        other => panic!("expected Ready, got {other:?}"),
    }
}

/// A server of our own whose pg_cron lives in database `app`, which holds the migrations.
async fn cron_server() -> (TempPostgres, String) {
    let pg = tokio::task::spawn_blocking(|| {
        TempPostgres::start_with(
            TempPgOptions::default()
                .setting("shared_preload_libraries", "pg_cron")
                .setting("cron.database_name", "app"),
        )
    })
    .await
    .unwrap()
    .expect("start a server with pg_cron");
    let mut admin = connect(&pg.url()).await;
    admin.execute("CREATE DATABASE app").await.unwrap();
    let url = pg.url_for("app");
    let mut conn = connect(&url).await;
    migrate::run(&mut conn, &Ident::new("public").unwrap())
        .await
        .unwrap();
    (pg, url)
}

#[tokio::test]
async fn schedule_show_and_unschedule_the_hourly_job() {
    if !has_pg_cron() {
        return;
    }
    let (_pg, url) = cron_server().await;
    let mut conn = connect(&url).await;

    let st = cron::status(&mut conn).await.unwrap();
    assert_eq!(
        st,
        CronStatus::NotCreated {
            database: "app".into()
        }
    );
    let hint = cron::enable_hint(&st).unwrap();
    assert!(hint.contains("CREATE EXTENSION pg_cron"), "{hint}");
    let err = cron::schedule_hourly(&mut conn, &TableRef::default())
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(err, hint, "scheduling says what is missing");

    conn.execute("CREATE EXTENSION pg_cron").await.unwrap();
    assert_eq!(
        cron::status(&mut conn).await.unwrap(),
        CronStatus::Ready {
            job: None,
            runs: vec![]
        }
    );
    assert_eq!(
        cron::enable_hint(&cron::status(&mut conn).await.unwrap()),
        None
    );
    assert!(
        !cron::unschedule(&mut conn).await.unwrap(),
        "nothing to remove yet"
    );

    let jobid = cron::schedule_hourly(&mut conn, &TableRef::default())
        .await
        .unwrap();
    let job = job_of(&cron::status(&mut conn).await.unwrap()).expect("the job is there");
    assert_eq!(
        job,
        CronJob {
            jobid,
            schedule: "0 * * * *".into(),
            command: "SELECT \"public\".\"cleanup_expired_idempotency_records\"()".into(),
            database: "app".into(),
            active: true,
        }
    );
    assert_eq!(
        (job.schedule.as_str(), job.command.as_str()),
        (HOURLY, cron::command(&TableRef::default()).as_str())
    );
    // Scheduling again updates the same job instead of adding a second one.
    assert_eq!(
        cron::schedule_hourly(&mut conn, &TableRef::default())
            .await
            .unwrap(),
        jobid
    );
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM cron.job WHERE jobname = $1")
        .bind(JOB_NAME)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(n, 1);

    // The last 10 runs, newest first (pg_cron 1.4 cannot run a job within a test's time, so
    // the rows are written as pg_cron would).
    conn.execute(
        format!(
            "INSERT INTO cron.job_run_details (jobid, runid, job_pid, database, username, command, status, return_message, start_time, end_time)
             SELECT {jobid}, g, 1000 + g, 'app', 'postgres', 'SELECT 1',
                    CASE WHEN g = 12 THEN 'failed' ELSE 'succeeded' END,
                    CASE WHEN g = 12 THEN 'ERROR: boom' ELSE '1 row' END,
                    now() - (13 - g) * interval '1 hour', now() - (13 - g) * interval '1 hour' + interval '1 second'
               FROM generate_series(1, 12) g"
        )
        .as_str(),
    )
    .await
    .unwrap();
    let CronStatus::Ready { runs, .. } = cron::status(&mut conn).await.unwrap() else {
        panic!("not ready");
    };
    assert_eq!(
        runs.iter().map(|r| r.runid).collect::<Vec<_>>(),
        (3..=12).rev().collect::<Vec<i64>>()
    );
    assert_eq!(runs[0].status, "failed");
    assert_eq!(runs[0].return_message, "ERROR: boom");
    assert!(runs[0].start_time.unwrap() < runs[0].end_time.unwrap());
    assert!(runs[0].start_time > runs[1].start_time);

    assert!(cron::unschedule(&mut conn).await.unwrap());
    assert_eq!(job_of(&cron::status(&mut conn).await.unwrap()), None);
    assert!(!cron::unschedule(&mut conn).await.unwrap());
}

#[tokio::test]
async fn a_role_without_access_to_pg_cron_gets_a_readable_error() {
    if !has_pg_cron() {
        return;
    }
    let (pg, url) = cron_server().await;
    let mut conn = connect(&url).await;
    conn.execute("CREATE EXTENSION pg_cron; CREATE ROLE watcher LOGIN")
        .await
        .unwrap();
    let watcher_url = pg.url_for("app").replace("postgres@", "watcher@");
    let mut wc: PgConnection = ConnectConfig::from_url(&watcher_url)
        .connect()
        .await
        .unwrap();
    // Not allowed to read pg_cron's settings: the refusal itself shows pg_cron is loaded.
    let err = cron::status(&mut wc).await.unwrap_err().to_string();
    assert!(err.starts_with("permission denied for pg_cron"), "{err}");
    assert!(err.contains("GRANT USAGE ON SCHEMA cron TO"), "{err}");

    conn.execute("GRANT USAGE ON SCHEMA cron TO watcher")
        .await
        .unwrap();
    assert_eq!(
        cron::status(&mut wc).await.unwrap(),
        CronStatus::Ready {
            job: None,
            runs: vec![]
        }
    );
}

#[tokio::test]
async fn from_another_database_it_points_to_pg_crons_and_can_schedule_there() {
    if !has_pg_cron() {
        return;
    }
    // The shared server preloads pg_cron with cron.database_name = postgres.
    let url = migrated_db().await;
    let db = url.rsplit('/').next().unwrap().to_string();
    let mut conn = connect(&url).await;
    let st = cron::status(&mut conn).await.unwrap();
    assert_eq!(
        st,
        CronStatus::OtherDatabase {
            database: "postgres".into()
        }
    );
    let hint = cron::enable_hint(&st).unwrap();
    assert!(hint.contains("connect to postgres"), "{hint}");
    assert!(cron::schedule_hourly(&mut conn, &TableRef::default())
        .await
        .is_err());

    // A role that may not read pg_cron's settings cannot tell where it lives; it says so.
    let role = format!("peek_{db}");
    conn.execute(format!("CREATE ROLE {role} LOGIN").as_str())
        .await
        .unwrap();
    let mut peek = ConnectConfig::from_url(url.replace("postgres@", &format!("{role}@")))
        .connect()
        .await
        .unwrap();
    let err = cron::status(&mut peek).await.unwrap_err().to_string();
    assert!(
        err.starts_with(&format!("pg_cron is loaded but not created in database {db}, and role {role} may not read cron.database_name")),
        "{err}"
    );

    // In pg_cron's database (no migrations there) the job runs the cleanup in the table's one.
    let mut cron_db = connect(&server().url()).await;
    cron_db
        .execute("CREATE EXTENSION IF NOT EXISTS pg_cron")
        .await
        .unwrap();
    let err = cron::schedule_hourly(&mut cron_db, &TableRef::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(
            "public.idempotency_records has no cleanup function: \"public\".\"cleanup_expired_idempotency_records\"() does not exist in database postgres"
        ),
        "{err}"
    );
    let jobid = cron::schedule_hourly_in(&mut cron_db, &db, &TableRef::default())
        .await
        .unwrap();
    let job = job_of(&cron::status(&mut cron_db).await.unwrap()).unwrap();
    assert_eq!(job.jobid, jobid);
    assert_eq!(job.database, db);
    assert_eq!(job.schedule, HOURLY);
    assert!(cron::unschedule(&mut cron_db).await.unwrap());
    assert_eq!(job_of(&cron::status(&mut cron_db).await.unwrap()), None);
}

#[tokio::test]
async fn without_pg_cron_preloaded_status_says_how_to_enable_it() {
    let pg = tokio::task::spawn_blocking(TempPostgres::start)
        .await
        .unwrap()
        .unwrap();
    let mut conn = connect(&pg.url()).await;
    let st = cron::status(&mut conn).await.unwrap();
    let hint = cron::enable_hint(&st).unwrap();
    if PgBinaries::find().unwrap().has_extension("pg_cron") {
        assert_eq!(st, CronStatus::NotPreloaded);
        assert!(
            hint.contains("shared_preload_libraries = 'pg_cron'"),
            "{hint}"
        );
    } else {
        assert_eq!(st, CronStatus::NotAvailable);
        assert!(hint.contains("postgresql-<major>-cron"), "{hint}");
    }
    let err = cron::schedule_hourly(&mut conn, &TableRef::default())
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(err, hint);
    let err = cron::unschedule(&mut conn).await.unwrap_err().to_string();
    assert_eq!(err, hint);
}

/// `S` schedules the cleanup function of the watched table, named with its schema; it refuses a
/// table that has no cleanup function of its own, and a function whose search_path is not pinned
/// (an earlier 046), which pg_cron could run against a same-named table in another schema.
#[tokio::test]
async fn the_job_cleans_the_watched_table_and_no_other() {
    if !has_pg_cron() {
        return;
    }
    let (_pg, url) = cron_server().await;
    let mut conn = connect(&url).await;
    conn.execute("CREATE EXTENSION pg_cron").await.unwrap();
    conn.execute("CREATE SCHEMA billing").await.unwrap();
    migrate::run(&mut conn, &Ident::new("billing").unwrap())
        .await
        .unwrap();
    let billing = TableRef::new("billing", "idempotency_records").unwrap();

    // The migration pinned the function's search_path to its own schema.
    let config: Vec<String> = sqlx::query_scalar(
        "SELECT unnest(proconfig) FROM pg_proc
          WHERE oid = 'billing.cleanup_expired_idempotency_records()'::regprocedure",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(config, ["search_path=billing, pg_temp"]);

    cron::schedule_hourly(&mut conn, &billing).await.unwrap();
    let job = job_of(&cron::status(&mut conn).await.unwrap()).unwrap();
    assert_eq!(
        job.command,
        "SELECT \"billing\".\"cleanup_expired_idempotency_records\"()"
    );
    // Run as pg_cron would (its own search_path, here public first): it cleans billing's rows.
    for schema in ["public", "billing"] {
        conn.execute(
            format!(
                "INSERT INTO {schema}.idempotency_records (request_id, operation, result_payload, created_at, expires_at)
                 VALUES (gen_random_uuid(), 'x', '{{}}', now() - interval '2 days', now() - interval '1 day')"
            )
            .as_str(),
        )
        .await
        .unwrap();
    }
    conn.execute("SET search_path = public").await.unwrap();
    conn.execute(job.command.as_str()).await.unwrap();
    let left: (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM billing.idempotency_records),
                (SELECT count(*) FROM public.idempotency_records)",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(left, (0, 1), "billing's job cleaned billing only");

    // A table with no cleanup function of its own is refused in one sentence.
    conn.execute("CREATE TABLE billing.other (LIKE billing.idempotency_records)")
        .await
        .unwrap();
    let other = TableRef::new("billing", "other").unwrap();
    let err = cron::schedule_hourly(&mut conn, &other)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("billing.other has no cleanup function: \"billing\".\"cleanup_expired_idempotency_records\"() never names table other"),
        "{err}"
    );
    let nowhere = TableRef::new("nowhere", "idempotency_records").unwrap();
    let err = cron::schedule_hourly(&mut conn, &nowhere)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("nowhere.idempotency_records has no cleanup function"),
        "{err}"
    );

    // An earlier 046 (no pinned search_path) is refused with the ALTER FUNCTION that fixes it.
    conn.execute("ALTER FUNCTION billing.cleanup_expired_idempotency_records() RESET search_path")
        .await
        .unwrap();
    let err = cron::schedule_hourly(&mut conn, &billing)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.ends_with("SET search_path = \"billing\", pg_temp"),
        "{err}"
    );
}

//! pg_cron: the `cleanup-idempotency` job, its runs, scheduling it.
//!
//! pg_cron lives in exactly one database of a server (`cron.database_name`, default
//! `postgres`) and needs `shared_preload_libraries = 'pg_cron'`. [`status`] says which of the
//! steps to get there is missing, [`enable_hint`] says how to take it.

use anyhow::{anyhow, bail, Result};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgConnection;

use crate::ident::TableRef;
use crate::sanitize;

/// Name of idemtop's job in `cron.job`.
pub const JOB_NAME: &str = "cleanup-idempotency";
/// Every hour, on the hour.
pub const HOURLY: &str = "0 * * * *";
/// What the job runs for `table`: migration 046's function in the table's schema, named with
/// its schema, so that pg_cron's own search_path cannot pick another one.
pub fn command(table: &TableRef) -> String {
    format!(
        "SELECT {}()",
        table.sibling(&crate::guide::cleanup_function())
    )
}

/// Where pg_cron stands for the connected database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum CronStatus {
    /// The extension is not installed on the server (no `pg_cron.control`): install the
    /// `postgresql-<major>-cron` package.
    NotAvailable,
    /// Installed, but not in `shared_preload_libraries`.
    NotPreloaded,
    /// Loaded, and this is its database, but `CREATE EXTENSION pg_cron` was not run yet.
    NotCreated {
        /// `cron.database_name`.
        database: String,
    },
    /// Loaded, but it lives in another database (`cron.database_name`): connect there.
    OtherDatabase { database: String },
    /// Usable here; our job if it exists, and its last 10 runs, newest first.
    Ready {
        job: Option<CronJob>,
        runs: Vec<CronRun>,
    },
}

/// A row of `cron.job`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CronJob {
    pub jobid: i64,
    pub schedule: String,
    pub command: String,
    /// Database the job runs in.
    pub database: String,
    pub active: bool,
}

/// A row of `cron.job_run_details`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CronRun {
    pub runid: i64,
    /// `starting`, `running`, `sending`, `connecting`, `succeeded`, `failed`.
    pub status: String,
    pub start_time: Option<DateTime<Utc>>,
    pub end_time: Option<DateTime<Utc>>,
    pub return_message: String,
}

/// Where pg_cron stands, as seen from the connected database. Run it outside a transaction
/// (a role that may not read pg_cron's settings probes them, which can raise an error).
pub async fn status(conn: &mut PgConnection) -> Result<CronStatus> {
    let (available, can_read_settings, current, created): (bool, bool, String, bool) =
        sqlx::query_as(
            "SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_cron'),
                    pg_has_role('pg_read_all_settings', 'USAGE')
                    OR (SELECT rolsuper FROM pg_roles WHERE rolname = current_user),
                    current_database()::text,
                    EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_cron')",
        )
        .fetch_one(&mut *conn)
        .await?;
    if !available {
        return Ok(CronStatus::NotAvailable);
    }
    let cron_db = if can_read_settings {
        let libs: String = sqlx::query_scalar("SELECT current_setting('shared_preload_libraries')")
            .fetch_one(&mut *conn)
            .await?;
        if !preloads_pg_cron(&libs) {
            return Ok(CronStatus::NotPreloaded);
        }
        let db: Option<String> =
            sqlx::query_scalar("SELECT current_setting('cron.database_name', true)")
                .fetch_one(&mut *conn)
                .await?;
        db.unwrap_or_else(|| "postgres".into())
    } else {
        // pg_cron's settings are readable only by superusers and pg_read_all_settings, but the
        // refusal itself tells that pg_cron defined them, i.e. that it is loaded. (Set in the
        // configuration without pg_cron loaded, the name would be a readable placeholder.)
        let probe: Result<Option<String>, sqlx::Error> =
            sqlx::query_scalar("SELECT current_setting('cron.database_name', true)")
                .fetch_one(&mut *conn)
                .await;
        match probe {
            Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some("42501") => {}
            Err(e) => return Err(e.into()),
            Ok(_) => return Ok(CronStatus::NotPreloaded),
        }
        if !created {
            let role: String = sqlx::query_scalar("SELECT current_user::text")
                .fetch_one(&mut *conn)
                .await?;
            bail!(
                "pg_cron is loaded but not created in database {}, and role {} may not read \
                 cron.database_name to tell where it lives (that needs pg_read_all_settings): \
                 ask a superuser (SHOW cron.database_name)",
                sanitize::line(&current),
                sanitize::line(&role)
            );
        }
        current.clone()
    };
    if current != cron_db {
        return Ok(CronStatus::OtherDatabase { database: cron_db });
    }
    if !created {
        return Ok(CronStatus::NotCreated { database: cron_db });
    }
    let job = find_job(conn).await?;
    let runs = match &job {
        Some(job) => runs(conn, job.jobid).await?,
        None => Vec::new(),
    };
    Ok(CronStatus::Ready { job, runs })
}

/// Does a `shared_preload_libraries` value name pg_cron?
fn preloads_pg_cron(libs: &str) -> bool {
    libs.split(',')
        .map(|l| l.trim().trim_matches('"'))
        .map(|l| l.rsplit('/').next().unwrap_or(l))
        .any(|l| l == "pg_cron" || l == "pg_cron.so")
}

/// A readable error for pg_cron's tables and functions (USAGE on schema `cron` is granted
/// per role).
fn cron_error(e: sqlx::Error) -> anyhow::Error {
    if let sqlx::Error::Database(db) = &e {
        if db.code().as_deref() == Some("42501") {
            return anyhow!(
                "permission denied for pg_cron ({}): a superuser must run GRANT USAGE ON SCHEMA cron TO <role>",
                sanitize::line(db.message())
            );
        }
        return anyhow!("pg_cron: {}", sanitize::line(db.message()));
    }
    e.into()
}

async fn find_job(conn: &mut PgConnection) -> Result<Option<CronJob>> {
    let row: Option<(i64, String, String, String, bool)> = sqlx::query_as(
        "SELECT jobid::int8, schedule::text, command::text, database::text, active
           FROM cron.job WHERE jobname = $1 ORDER BY jobid LIMIT 1",
    )
    .bind(JOB_NAME)
    .fetch_optional(&mut *conn)
    .await
    .map_err(cron_error)?;
    Ok(
        row.map(|(jobid, schedule, command, database, active)| CronJob {
            jobid,
            schedule,
            command,
            database,
            active,
        }),
    )
}

type RunRow = (
    i64,
    Option<String>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    Option<String>,
);

async fn runs(conn: &mut PgConnection, jobid: i64) -> Result<Vec<CronRun>> {
    let rows: Vec<RunRow> = sqlx::query_as(
        "SELECT runid::int8, status::text, start_time, end_time, return_message::text
           FROM cron.job_run_details WHERE jobid = $1 ORDER BY runid DESC LIMIT 10",
    )
    .bind(jobid)
    .fetch_all(&mut *conn)
    .await
    .map_err(cron_error)?;
    Ok(rows
        .into_iter()
        .map(
            |(runid, status, start_time, end_time, return_message)| CronRun {
                runid,
                status: status.unwrap_or_default(),
                start_time,
                end_time,
                return_message: return_message.unwrap_or_default(),
            },
        )
        .collect())
}

/// One sentence on how to make pg_cron usable here; `None` when it is.
pub fn enable_hint(status: &CronStatus) -> Option<String> {
    match status {
        CronStatus::NotAvailable => Some(
            "pg_cron is not installed on the database server: install it there (Debian/Ubuntu: \
             apt-get install postgresql-<major>-cron, <major> being the server's major version \
             from SHOW server_version), add pg_cron to shared_preload_libraries and restart the server"
                .into(),
        ),
        CronStatus::NotPreloaded => Some(
            "pg_cron is installed but not loaded: set shared_preload_libraries = 'pg_cron' (and \
             cron.database_name = '<database>') in postgresql.conf, restart the server, then run \
             CREATE EXTENSION pg_cron in that database"
                .into(),
        ),
        CronStatus::NotCreated { database } => Some(format!(
            "pg_cron is loaded but not created: run CREATE EXTENSION pg_cron; as a superuser in \
             database {} (cron.database_name)",
            sanitize::line(database)
        )),
        CronStatus::OtherDatabase { database } => Some(format!(
            "pg_cron lives in database {db} (cron.database_name): connect to {db} to see or \
             schedule the cleanup job (it can run the cleanup in this database with \
             cron.schedule_in_database)",
            db = sanitize::line(database)
        )),
        CronStatus::Ready { .. } => None,
    }
}

async fn require_ready(conn: &mut PgConnection) -> Result<()> {
    let st = status(conn).await?;
    if let Some(hint) = enable_hint(&st) {
        bail!("{hint}");
    }
    Ok(())
}

/// Schedule (or re-schedule) [`JOB_NAME`] to run [`command`] for `table` every hour in the
/// connected database, which must be pg_cron's database and hold a cleanup function for that
/// very table ([`check_cleanup_function`]). Returns the job id.
pub async fn schedule_hourly(conn: &mut PgConnection, table: &TableRef) -> Result<i64> {
    require_ready(conn).await?;
    check_cleanup_function(conn, table).await?;
    let jobid: i64 = sqlx::query_scalar("SELECT cron.schedule($1, $2, $3)::int8")
        .bind(JOB_NAME)
        .bind(HOURLY)
        .bind(command(table))
        .fetch_one(&mut *conn)
        .await
        .map_err(cron_error)?;
    Ok(jobid)
}

/// That migration 046's function in `table`'s schema exists and cleans that table: its body
/// names the table, and its `search_path` is pinned to the table's schema (so that a job run
/// with pg_cron's search_path cannot clean a same-named table elsewhere). One sentence when not.
pub async fn check_cleanup_function(conn: &mut PgConnection, table: &TableRef) -> Result<()> {
    let func = table.sibling(&crate::guide::cleanup_function());
    let found: Option<(String, Option<Vec<String>>)> = sqlx::query_as(
        "SELECT p.prosrc, p.proconfig
           FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
          WHERE n.nspname = $1 AND p.proname = $2 AND p.pronargs = 0",
    )
    .bind(table.schema.as_str())
    .bind(crate::guide::cleanup_function().as_str())
    .fetch_optional(&mut *conn)
    .await?;
    let db: String = sqlx::query_scalar("SELECT current_database()::text")
        .fetch_one(&mut *conn)
        .await?;
    let Some((body, config)) = found else {
        bail!(
            "{table} has no cleanup function: {}() does not exist in database {} (apply migration \
             046 in that schema with `idemtop migrate run --schema ...`; when pg_cron lives in \
             another database, schedule there with cron.schedule_in_database)",
            sanitize::line(&func),
            sanitize::line(&db)
        );
    };
    if !body
        .to_lowercase()
        .contains(&table.table.as_str().to_lowercase())
    {
        bail!(
            "{table} has no cleanup function: {}() never names table {} (it cleans another \
             table); pg_cron would not clean {table}",
            sanitize::line(&func),
            sanitize::line(table.table.as_str())
        );
    }
    let pinned = config.unwrap_or_default().iter().find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        k.eq_ignore_ascii_case("search_path").then(|| v.to_owned())
    });
    let first = pinned
        .as_deref()
        .and_then(|p| p.split(',').next())
        .map(|s| s.trim().trim_matches('"').to_owned());
    if first.as_deref() != Some(table.schema.as_str()) {
        bail!(
            "{}() does not pin its search_path to schema {} (applied from an earlier migration \
             046?): a pg_cron job could clean a same-named table in another schema. Pin it \
             first: ALTER FUNCTION {}() SET search_path = {}, pg_temp",
            sanitize::line(&func),
            sanitize::line(table.schema.as_str()),
            sanitize::line(&func),
            table.schema.quoted(),
        );
    }
    Ok(())
}

/// Like [`schedule_hourly`], but the job runs in `database` (where the table and migration
/// 046's function live) while pg_cron lives in the connected database
/// (`cron.schedule_in_database`, pg_cron 1.4+). The function cannot be checked from here (it is
/// in the other database): the job names it with the table's schema. Returns the job id.
pub async fn schedule_hourly_in(
    conn: &mut PgConnection,
    database: &str,
    table: &TableRef,
) -> Result<i64> {
    require_ready(conn).await?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(database)
            .fetch_one(&mut *conn)
            .await?;
    if !exists {
        bail!("database {} does not exist", sanitize::line(database));
    }
    let jobid: i64 = sqlx::query_scalar("SELECT cron.schedule_in_database($1, $2, $3, $4)::int8")
        .bind(JOB_NAME)
        .bind(HOURLY)
        .bind(command(table))
        .bind(database)
        .fetch_one(&mut *conn)
        .await
        .map_err(cron_error)?;
    Ok(jobid)
}

/// Remove [`JOB_NAME`]; `false` when there was no such job.
pub async fn unschedule(conn: &mut PgConnection) -> Result<bool> {
    require_ready(conn).await?;
    let Some(job) = find_job(conn).await? else {
        return Ok(false);
    };
    let removed: bool = sqlx::query_scalar("SELECT cron.unschedule($1::int8)")
        .bind(job.jobid)
        .fetch_one(&mut *conn)
        .await
        .map_err(cron_error)?;
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_pg_cron_in_shared_preload_libraries() {
        assert!(preloads_pg_cron("pg_cron"));
        assert!(preloads_pg_cron("pg_stat_statements, \"pg_cron\""));
        assert!(preloads_pg_cron("$libdir/pg_cron.so"));
        assert!(!preloads_pg_cron(""));
        assert!(!preloads_pg_cron("pg_cronx,auto_explain"));
    }

    #[test]
    fn every_state_but_ready_has_a_hint() {
        for st in [
            CronStatus::NotAvailable,
            CronStatus::NotPreloaded,
            CronStatus::NotCreated {
                database: "postgres".into(),
            },
            CronStatus::OtherDatabase {
                database: "postgres".into(),
            },
        ] {
            let hint = enable_hint(&st).unwrap();
            assert_eq!(hint.lines().count(), 1, "{hint}");
        }
        assert!(enable_hint(&CronStatus::NotAvailable)
            .unwrap()
            .contains("-cron"));
        assert!(enable_hint(&CronStatus::NotCreated {
            database: "app".into()
        })
        .unwrap()
        .contains("CREATE EXTENSION pg_cron; as a superuser in database app"));
        assert_eq!(
            enable_hint(&CronStatus::Ready {
                job: None,
                runs: vec![]
            }),
            None
        );
    }
}

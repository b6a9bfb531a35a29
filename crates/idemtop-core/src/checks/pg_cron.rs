//! pg_cron: a job runs the cleanup, and its last runs succeeded.

use super::*;

pub(super) fn pg_cron(snap: &Snapshot, extras: &Extras) -> CheckResult {
    const ID: &str = "pg_cron";
    const NAME: &str = "pg_cron job";
    let schedule_sql = format!(
        "SELECT cron.schedule('{}', '{}', $${}$$);",
        cron::JOB_NAME,
        cron::HOURLY,
        cron::command(&extras.table)
    );
    let status = match &extras.cron {
        Err(e) => {
            return unknown(
                ID,
                NAME,
                format!("cannot read pg_cron's state: {e}"),
                "Connect as a role that may read pg_cron's settings and tables \
                 (pg_read_all_settings, GRANT USAGE ON SCHEMA cron), or ignore: cleanup_lag \
                 tells whether cleanup runs.",
            )
        }
        Ok(s) => s,
    };
    let app_level =
        "application-level cleanup (the guide's recommended option) is fine: cleanup_lag tells whether it runs";
    match status {
        CronStatus::NotAvailable | CronStatus::NotPreloaded | CronStatus::NotCreated { .. } => {
            let what = match status {
                CronStatus::NotAvailable => "pg_cron is not installed on the server",
                CronStatus::NotPreloaded => "pg_cron is installed but not loaded",
                _ => "pg_cron is loaded but not created in this database",
            };
            result(
                ID,
                NAME,
                Level::Ok,
                "not used",
                format!("{what}; {app_level}"),
                format!(
                    "Only if you want database-level cleanup: {}",
                    cron::enable_hint(status).unwrap_or_default()
                ),
            )
        }
        CronStatus::OtherDatabase { database } => result(
            ID,
            NAME,
            Level::Ok,
            format!("in {database}"),
            format!(
                "pg_cron lives in database {database} (cron.database_name): its jobs are not \
                 visible from here; {app_level}"
            ),
            cron::enable_hint(status).unwrap_or_default(),
        ),
        CronStatus::Ready { job: None, .. } => result(
            ID,
            NAME,
            Level::Ok,
            "no job",
            format!(
                "pg_cron is ready but has no job '{}': the database does not clean up by itself \
                 (whether expired rows are cleaned, by anyone, is the cleanup_lag check's judgement)",
                cron::JOB_NAME
            ),
            format!("To let the database clean up itself: {schedule_sql}"),
        ),
        CronStatus::Ready {
            job: Some(job),
            runs,
        } => {
            let mut level = Level::Ok;
            let mut problems = Vec::new();
            let mut advice = Vec::new();
            if !job.active {
                level = Level::Warning;
                problems.push("the job is disabled (active = false)".to_string());
                advice.push(format!(
                    "SELECT cron.alter_job({}, active := true);",
                    job.jobid
                ));
            }
            if !runs_cleanup(&job.command) {
                level = level.min(Level::Warning);
                problems.push(format!(
                    "its command does not run the cleanup: {}",
                    job.command
                ));
                advice.push(format!(
                    "SELECT cron.alter_job({}, command := $$SELECT {CLEANUP_FUNCTION}()$$);",
                    job.jobid
                ));
            }
            if job.database != snap.database {
                level = level.min(Level::Warning);
                problems.push(format!(
                    "it runs in database {}, the table is in {}",
                    job.database, snap.database
                ));
                advice.push(format!(
                    "SELECT cron.alter_job({}, database := '{}');",
                    job.jobid,
                    snap.database.replace('\'', "''")
                ));
            }
            let finished: Vec<_> = runs
                .iter()
                .filter(|r| r.status == "succeeded" || r.status == "failed")
                .collect();
            let failed = finished.iter().filter(|r| r.status == "failed").count();
            let last = finished.first();
            if let Some(last) = last.filter(|r| r.status == "failed") {
                level = Level::Critical;
                problems.push(format!(
                    "the last run failed{}: {}",
                    last.start_time
                        .map(|t| format!(" ({})", format::ago(Some(t), snap.taken_at)))
                        .unwrap_or_default(),
                    last.return_message.trim()
                ));
            } else if failed > 0 {
                level = level.min(Level::Warning);
                problems.push(format!(
                    "{failed} of the last {} runs failed",
                    finished.len()
                ));
            }
            if failed > 0 {
                advice.push(format!(
                    "Read the errors: SELECT start_time, status, return_message FROM \
                     cron.job_run_details WHERE jobid = {} ORDER BY runid DESC LIMIT 10; then run \
                     the command by hand in database {} to see it fail (a missing function: \
                     re-apply migration 046).",
                    job.jobid, job.database
                ));
            }
            let last_text = match last {
                Some(r) => format!(
                    "last run {} {}",
                    r.status,
                    format::ago(r.start_time, snap.taken_at)
                ),
                None => "no finished run yet".to_string(),
            };
            let value = if !job.active {
                "disabled".to_string()
            } else if level == Level::Ok {
                format!("{} ok", job.schedule)
            } else if failed > 0 {
                format!("{failed} failed")
            } else {
                "misconfigured".to_string()
            };
            let detail = if problems.is_empty() {
                format!(
                    "job {} '{}' runs '{}' on schedule {}; {last_text}",
                    job.jobid,
                    cron::JOB_NAME,
                    job.command,
                    job.schedule
                )
            } else {
                format!(
                    "job {} '{}' ({}): {}; {last_text}",
                    job.jobid,
                    cron::JOB_NAME,
                    job.schedule,
                    problems.join("; ")
                )
            };
            result(ID, NAME, level, value, detail, advice.join(" "))
        }
    }
}

pub(super) const CHECK: Check = Check {
    id: "pg_cron",
    eval: |f| pg_cron(f.snap, f.extras),
};

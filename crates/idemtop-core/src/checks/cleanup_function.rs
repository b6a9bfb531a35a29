//! Cleanup function: migration 046's function exists and is the guide's.

use super::*;

pub(super) fn cleanup_function(snap: &Snapshot, extras: &Extras) -> CheckResult {
    const ID: &str = "cleanup_function";
    const NAME: &str = "Cleanup function (046)";
    if snap.cleanup_function {
        return result(
            ID,
            NAME,
            Level::Ok,
            "present",
            format!("{CLEANUP_FUNCTION}() exists in the table's schema"),
            "",
        );
    }
    let job_calls_it = matches!(
        &extras.cron,
        Ok(CronStatus::Ready { job: Some(j), .. })
            if j.command.to_ascii_lowercase().contains(CLEANUP_FUNCTION)
    );
    let (level, why) = if job_calls_it {
        (
            Level::Critical,
            format!(
                "the pg_cron job '{}' calls it, so every run fails",
                cron::JOB_NAME
            ),
        )
    } else {
        (
            Level::Warning,
            "cleanup must run another way (application task, `idemtop cleanup`)".to_string(),
        )
    };
    result(
        ID,
        NAME,
        level,
        "missing",
        format!("{CLEANUP_FUNCTION}() (migration 046) does not exist in the table's schema: {why}"),
        format!(
            "Re-create it (the guide: cleanup function not found): `idemtop migrate run`, or psql \
             -v ON_ERROR_STOP=1 --single-transaction -f \
             migrations/046_create_idempotency_cleanup_job.up.sql; until then delete expired rows \
             with `idemtop cleanup` or DELETE FROM {} WHERE expires_at <= now();",
            extras.table.qualified()
        ),
    )
}

pub(super) const CHECK: Check = Check {
    id: "cleanup_function",
    eval: |f| cleanup_function(f.snap, f.extras),
};

//! Cleanup lag: how long the oldest expired row has waited for a cleanup.

use super::*;

pub(super) fn cleanup_lag_level(snap: &Snapshot, cfg: &Config) -> Level {
    let t = &cfg.thresholds.cleanup_lag;
    if snap.rows.oldest_expired_at.is_none() {
        return Level::Ok;
    }
    level_above(
        snap.rows.cleanup_lag_secs,
        t.warning_secs(),
        t.critical_secs(),
    )
}

pub(super) fn cleanup_lag(snap: &Snapshot, extras: &Extras, cfg: &Config) -> CheckResult {
    const ID: &str = "cleanup_lag";
    const NAME: &str = "Cleanup lag";
    if let Some(r) = not_probed(ID, NAME, snap) {
        return r;
    }
    let t = &cfg.thresholds.cleanup_lag;
    let limits = format!(
        "cleanup is meant to run every {}: warning above {}, critical above {}",
        format::duration_secs(t.schedule_secs as f64),
        format::duration_secs(t.warning_secs()),
        format::duration_secs(t.critical_secs())
    );
    let Some(oldest) = snap.rows.oldest_expired_at else {
        return result(
            ID,
            NAME,
            Level::Ok,
            "none",
            format!("no expired rows wait for cleanup ({limits})"),
            "",
        );
    };
    let lag = snap.rows.cleanup_lag_secs;
    let level = cleanup_lag_level(snap, cfg);
    let advice = if level == Level::Ok {
        String::new()
    } else {
        format!(
            "Run the cleanup now: {} (or `idemtop cleanup`), then find out why the scheduled \
             cleanup did not run: the pg_cron job '{}' (SELECT * FROM cron.job_run_details \
             ORDER BY runid DESC LIMIT 10) or the application's hourly cleanup task and its logs.",
            cleanup_statement(snap, extras),
            cron::JOB_NAME
        )
    };
    result(
        ID,
        NAME,
        level,
        format::duration_secs(lag),
        format!(
            "the oldest expired row expired {} ({} UTC), {} expired rows wait; {limits}",
            format::ago(Some(oldest), snap.taken_at),
            oldest.format("%Y-%m-%d %H:%M:%S"),
            approx(snap.rows.expired, snap.rows.expired_exact)
        ),
        advice,
    )
}

pub(super) const CHECK: Check = Check {
    id: "cleanup_lag",
    eval: |f| cleanup_lag(f.snap, f.extras, f.cfg),
};

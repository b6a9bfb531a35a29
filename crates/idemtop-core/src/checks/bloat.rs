//! Bloat: dead tuples against live ones, and whether autovacuum keeps up.

use super::*;

pub(super) fn bloat(snap: &Snapshot, extras: &Extras, cfg: &Config) -> CheckResult {
    const ID: &str = "bloat";
    const NAME: &str = "Dead tuples and vacuum";
    let t = &cfg.thresholds.bloat;
    let va = &cfg.thresholds.vacuum_age;
    let v = &snap.vacuum;
    let ratio = v.dead_ratio();
    let value = format!("{} dead ({})", format::percent(ratio), count(v.n_dead_tup));
    let last = v.last_any_vacuum();
    let last_text = format!("last vacuum {}", format::ago(last, snap.taken_at));
    let running = v
        .running
        .as_ref()
        .map(|r| {
            format!(
                "; a VACUUM is running now ({}, {})",
                r.phase,
                format::percent(r.fraction())
            )
        })
        .unwrap_or_default();
    if v.n_dead_tup < t.min_dead_tuples {
        return result(
            ID,
            NAME,
            Level::Ok,
            value,
            format!(
                "{} dead tuples: not judged below {}; {last_text}{running}",
                count(v.n_dead_tup),
                count(t.min_dead_tuples)
            ),
            "",
        );
    }
    let ratio_level = level_above(ratio, t.warning_ratio, t.critical_ratio);
    let (age_level, age_text) = match last {
        None => (Level::Warning, "never vacuumed".to_string()),
        Some(at) => {
            let h = (snap.taken_at - at).num_seconds() as f64 / 3600.0;
            (
                level_above(h, va.warning_hours, va.critical_hours),
                last_text.clone(),
            )
        }
    };
    let level = ratio_level.min(age_level);
    let mut detail = format!(
        "dead tuples {} of all tuples (warning above {}, critical above {}); {age_text} \
         (warning after {}h, critical after {}h){running}",
        format::percent(ratio),
        format::percent(t.warning_ratio),
        format::percent(t.critical_ratio),
        va.warning_hours,
        va.critical_hours
    );
    if age_level != Level::Ok && last.is_none() {
        detail.push_str("; autovacuum has not processed the table yet");
    }
    let advice = if level == Level::Ok {
        String::new()
    } else {
        format!(
            "VACUUM (ANALYZE) {t}; (the guide: vacuum if needed). If autovacuum cannot keep up \
             with the cleanup's deletes, make it run sooner for this table: ALTER TABLE {t} SET \
             (autovacuum_vacuum_scale_factor = 0.05); and check that nothing holds back the xmin \
             horizon (long transactions in pg_stat_activity, stale replication slots).",
            t = extras.table.qualified()
        )
    };
    result(ID, NAME, level, value, detail, advice)
}

pub(super) const CHECK: Check = Check {
    id: "bloat",
    eval: |f| bloat(f.snap, f.extras, f.cfg),
};

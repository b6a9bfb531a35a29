//! In flight: keys held by requests that never finished (a crash between taking the key and
//! storing the result), on tables whose mapping has an in-flight state. n/a on the others.

use super::*;

pub(super) fn inflight(snap: &Snapshot, cfg: &Config) -> CheckResult {
    const ID: &str = "inflight";
    const NAME: &str = "Keys in flight";
    if let Some(r) = not_probed(ID, NAME, snap) {
        return r;
    }
    let Some(f) = &snap.inflight else {
        if snap.mapping.is_guide() {
            return result(
                ID,
                NAME,
                Level::Ok,
                "none",
                "the guide's table stores finished requests only: no key is ever in flight",
                "",
            );
        }
        return unknown(
            ID,
            NAME,
            "the keys in flight could not be counted in time",
            "",
        );
    };
    let t = &cfg.thresholds.inflight;
    let after = format::duration_secs(t.stuck_after_secs);
    let oldest = match (&f.oldest_key, f.oldest_age_secs) {
        (Some(k), Some(age)) => format!(
            "; the oldest, {}, for {}",
            sanitize::line(k),
            format::duration_secs(age)
        ),
        _ => String::new(),
    };
    let by = if f.stuck_by == "locked_at" {
        "locked"
    } else {
        "in flight since created"
    };
    let detail = format!(
        "{} in flight{oldest}; {} {by} longer than {after}",
        count(f.in_flight),
        count(f.stuck)
    );
    let level = level_above(f.stuck as f64, t.warning - 0.5, t.critical - 0.5);
    let level = if f.stuck == 0 { Level::Ok } else { level };
    let advice = if level == Level::Ok {
        String::new()
    } else {
        format!(
            "A key stuck in flight blocks its retries until it is released: find the request in the \
             application's logs; the service's own recovery (or a stale-lock release) should finish \
             or release it. Cleanup never deletes keys in flight unless the table's [[table]] \
             section says inflight_stale_after = \"...\" (stuck after {after}: thresholds.inflight)."
        )
    };
    result(
        ID,
        NAME,
        level,
        format!("{} stuck, {} in flight", count(f.stuck), count(f.in_flight)),
        detail,
        advice,
    )
}

pub(super) const CHECK: Check = Check {
    id: "inflight",
    eval: |f| inflight(f.snap, f.cfg),
};

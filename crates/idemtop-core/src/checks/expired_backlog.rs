//! Expired backlog: the share of rows that are expired and still stored.

use super::*;

pub(super) fn expired_backlog(snap: &Snapshot, extras: &Extras, cfg: &Config) -> CheckResult {
    const ID: &str = "expired_backlog";
    const NAME: &str = "Expired backlog";
    if let Some(r) = not_probed(ID, NAME, snap) {
        return r;
    }
    let t = &cfg.thresholds.expired_share;
    let r = &snap.rows;
    if r.total <= 0 {
        return result(ID, NAME, Level::Ok, "empty", "the table holds no rows", "");
    }
    let share = r.expired as f64 / r.total as f64;
    let value = format!(
        "{} ({} of {})",
        format::percent(share),
        approx(r.expired, r.expired_exact),
        approx(r.total, r.exact)
    );
    let limits = format!(
        "warning above {}, critical above {}",
        format::percent(t.warning),
        format::percent(t.critical)
    );
    if r.expired < t.min_rows {
        return result(
            ID,
            NAME,
            Level::Ok,
            value,
            format!(
                "{} expired rows: too few to judge (from {} on; {limits})",
                count(r.expired),
                count(t.min_rows)
            ),
            "",
        );
    }
    let level = level_above(share, t.warning, t.critical);
    let advice = if level == Level::Ok {
        String::new()
    } else {
        format!(
            "Delete the expired rows: {} (or `idemtop cleanup`); after a large cleanup run \
             ANALYZE {t} so the planner sees the new size, and VACUUM {t} so the space is reused.",
            cleanup_statement(snap, extras),
            t = extras.table.qualified()
        )
    };
    result(
        ID,
        NAME,
        level,
        value,
        format!("expired rows that cleanup has not deleted yet, as a share of all rows; {limits}"),
        advice,
    )
}

pub(super) const CHECK: Check = Check {
    id: "expired_backlog",
    eval: |f| expired_backlog(f.snap, f.extras, f.cfg),
};

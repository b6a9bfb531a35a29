//! Cached failures: the share of stored 5xx results.

use super::*;

pub(super) fn cached_failures(snap: &Snapshot, extras: &Extras, cfg: &Config) -> CheckResult {
    const ID: &str = "cached_failures";
    const NAME: &str = "Cached 5xx results";
    let t = &cfg.thresholds.cached_failures;
    // (operation, rows, 5xx rows), how they were counted, exactly or not, and the scale.
    let (ops, how, exact, scale): (Vec<(String, i64, i64)>, String, bool, f64) =
        match &extras.operations {
            Ok(f) => (
                f.operations
                    .iter()
                    .map(|o| (o.operation.clone(), o.rows, o.s5xx))
                    .collect(),
                f.describe_at(snap.taken_at),
                !f.sampled,
                f.scale(),
            ),
            Err(_) if snap.operations_exact => (
                snap.operations
                    .iter()
                    .filter_map(|o| o.status.map(|s| (o.operation.clone(), o.total, s.s5xx)))
                    .collect(),
                "exact".into(),
                true,
                1.0,
            ),
            Err(e) => {
                return unknown(
                    ID,
                    NAME,
                    format!("cannot count the stored status codes: {e}"),
                    "",
                )
            }
        };
    let est = |n: i64| approx((n as f64 * scale).round() as i64, exact);
    let mut judged: Vec<(String, i64, i64, f64, Level)> = ops
        .into_iter()
        .filter(|(_, rows, _)| *rows >= t.min_rows.max(1))
        .map(|(op, rows, s5)| {
            let share = s5 as f64 / rows as f64;
            (
                op,
                rows,
                s5,
                share,
                level_above(share, t.warning, t.critical),
            )
        })
        .collect();
    judged.sort_by(|a, b| a.4.cmp(&b.4).then(b.3.total_cmp(&a.3)));
    let total_5xx: i64 = judged.iter().map(|j| j.2).sum();
    let level = Level::worst(judged.iter().map(|j| j.4));
    let limits = format!(
        "warning above {}, critical above {} of an operation's rows (from {} rows on)",
        format::percent(t.warning),
        format::percent(t.critical),
        t.min_rows
    );
    if level == Level::Ok {
        return result(
            ID,
            NAME,
            Level::Ok,
            if total_5xx == 0 {
                "none".to_string()
            } else {
                format!("{} rows", est(total_5xx))
            },
            format!("no operation stores a notable share of 5xx results; {limits} ({how})"),
            "",
        );
    }
    let bad: Vec<&(String, i64, i64, f64, Level)> =
        judged.iter().filter(|j| j.4 != Level::Ok).collect();
    let worst = bad[0];
    let value = format!("{} {} 5xx", worst.0, format::percent(worst.3));
    let list = bad
        .iter()
        .take(5)
        .map(|(op, rows, s5, share, _)| {
            format!(
                "{op} {} of {} ({})",
                est(*s5),
                est(*rows),
                format::percent(*share)
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    let ops_sql = bad
        .iter()
        .map(|j| sql_literal(&j.0))
        .collect::<Vec<_>>()
        .join(", ");
    result(
        ID,
        NAME,
        level,
        value,
        format!("stored 5xx results: {list}; {limits} ({how})"),
        format!(
            "A stored server error is replayed to every retry of that request until it expires, \
             so the client can never succeed: store only final outcomes (2xx, 4xx) and let a \
             5xx be retried. Remove the cached failures: DELETE FROM {} WHERE status_code \
             BETWEEN 500 AND 599 AND operation IN ({ops_sql});",
            extras.table.qualified()
        ),
    )
}

pub(super) const CHECK: Check = Check {
    id: "cached_failures",
    eval: |f| cached_failures(f.snap, f.extras, f.cfg),
};

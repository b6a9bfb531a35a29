//! Retention: stored TTLs against the policy per operation.

use super::*;

pub(super) fn retention(snap: &Snapshot, extras: &Extras, cfg: &Config) -> CheckResult {
    const ID: &str = "retention";
    const NAME: &str = "Retention (TTL policy)";
    let facts = match &extras.operations {
        Err(e) => return unknown(ID, NAME, format!("cannot read the TTLs: {e}"), ""),
        Ok(f) => f,
    };
    let t = &cfg.thresholds.retention_excess;
    let policy_text = {
        let mut p: Vec<String> = cfg
            .retention
            .per_operation
            .iter()
            .map(|(op, h)| format!("{op} {}", ttl_text(h * 3600.0)))
            .collect();
        p.push(format!(
            "others {}",
            ttl_text(cfg.retention.default_hours * 3600.0)
        ));
        p.join(", ")
    };
    let rows: i64 = facts.operations.iter().map(|o| o.rows).sum();
    let over: i64 = facts.operations.iter().map(|o| o.over_policy).sum();
    let scale = facts.scale();
    let est = |n: i64| approx((n as f64 * scale).round() as i64, !facts.sampled);
    if rows == 0 || over == 0 {
        return result(
            ID,
            NAME,
            Level::Ok,
            "within policy",
            format!(
                "every TTL (expires_at - created_at) is within its operation's policy ({policy_text}; {})",
                facts.describe_at(snap.taken_at)
            ),
            "",
        );
    }
    let share = over as f64 / rows as f64;
    let level = if share > t.critical {
        Level::Critical
    } else if share > t.warning {
        Level::Warning
    } else {
        Level::Ok
    };
    let offenders: Vec<&OperationFact> = facts
        .operations
        .iter()
        .filter(|o| o.over_policy > 0)
        .collect();
    let value = offenders
        .iter()
        .take(3)
        .map(|o| {
            format!(
                "{} TTL {} > {}",
                o.operation,
                ttl_text(o.ttl_max_secs),
                ttl_text(o.policy_secs)
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let per_op = offenders
        .iter()
        .map(|o| {
            format!(
                "{} {} rows (TTL median {}, max {}; policy {})",
                o.operation,
                est(o.over_policy),
                ttl_text(o.ttl_median_secs),
                ttl_text(o.ttl_max_secs),
                ttl_text(o.policy_secs)
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    // The guide's UPDATE, per policy.
    let mut by_policy: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    for o in &offenders {
        by_policy
            .entry(o.policy_secs.round() as i64)
            .or_default()
            .push(sql_literal(&o.operation));
    }
    let mut advice: Vec<String> = by_policy
        .iter()
        .map(|(secs, ops)| {
            let interval = interval_literal(*secs);
            format!(
                "UPDATE {t} SET expires_at = created_at + {interval} WHERE operation IN ({}) \
                 AND expires_at > created_at + {interval};",
                ops.join(", "),
                t = extras.table.qualified()
            )
        })
        .collect();
    advice.insert(
        0,
        "Fix the TTL the writing service uses for these operations (data retention, GDPR), \
         then shorten the stored ones (the guide's retention policy):"
            .into(),
    );
    result(
        ID,
        NAME,
        level,
        value,
        format!(
            "{} rows ({}) live longer than their operation's TTL policy: {per_op}; policy: \
             {policy_text} ({})",
            est(over),
            format::percent(share),
            facts.describe_at(snap.taken_at)
        ),
        advice.join(" "),
    )
}

pub(super) const CHECK: Check = Check {
    id: "retention",
    eval: |f| retention(f.snap, f.extras, f.cfg),
};

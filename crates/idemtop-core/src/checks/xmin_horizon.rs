//! xmin horizon: what keeps VACUUM from removing dead rows.

use super::*;

/// What holds back the xmin horizon of the table: a backend, a prepared transaction, a slot or
/// a standby, judged by how long (and how many transactions) it has held it.
pub fn xmin_horizon(snap: &Snapshot, cfg: &Config) -> CheckResult {
    use crate::db::horizon::{HolderKind, UnremovableBasis};
    const ID: &str = "xmin_horizon";
    const NAME: &str = "xmin horizon";
    let t = &cfg.thresholds.xmin_horizon;
    let Some(h) = &snap.vacuum.xmin_horizon else {
        return unknown(
            ID,
            NAME,
            "who holds the xmin horizon was not read",
            "Look at pg_stat_activity.backend_xmin, pg_prepared_xacts, pg_replication_slots and pg_stat_replication.",
        );
    };
    let limits = format!(
        "warning after {} or {} transactions, critical after {} or {}",
        format::duration_secs(t.warning_secs),
        count(t.warning_xids as i64),
        format::duration_secs(t.critical_secs),
        count(t.critical_xids as i64)
    );
    let hidden = if h.hidden.is_empty() {
        String::new()
    } else {
        format!("; {}", h.hidden.join("; "))
    };
    let others = h
        .holders
        .iter()
        .filter(|o| Some(*o) != h.holder.as_ref())
        .count();
    let others = if others > 0 {
        format!(
            "; {others} other xmin holder(s): {}",
            h.holders
                .iter()
                .filter(|o| Some(*o) != h.holder.as_ref())
                .map(|o| o.describe())
                .collect::<Vec<_>>()
                .join("; ")
        )
    } else {
        String::new()
    };
    let Some(holder) = &h.holder else {
        return result(
            ID,
            NAME,
            Level::Ok,
            "not held",
            format!(
                "nothing holds the xmin horizon back: VACUUM can remove every dead row ({limits}){others}{hidden}"
            ),
            if h.hidden.is_empty() {
                String::new()
            } else {
                "Grant the monitoring role pg_read_all_stats to see every session.".to_string()
            },
        );
    };
    let by_secs = holder.age_secs.map_or(Level::Ok, |a| {
        level_above(a, t.warning_secs, t.critical_secs)
    });
    let by_xids = level_above(holder.age_xids as f64, t.warning_xids, t.critical_xids);
    let level = by_secs.min(by_xids);
    let value = match (holder.kind, holder.pid, holder.age_secs) {
        (HolderKind::Backend, Some(pid), Some(a)) => {
            format!("pid {pid}, {}", format::duration_secs(a.max(0.0)))
        }
        (_, _, Some(a)) => format!(
            "{}, {}",
            holder.kind.as_str(),
            format::duration_secs(a.max(0.0))
        ),
        _ => format!("{}, {} xids", holder.kind.as_str(), count(holder.age_xids)),
    };
    let how = match h.basis {
        UnremovableBasis::AllDeadRows => {
            " (the holder began before the last VACUUM: every dead row counted is newer than the horizon)"
        }
        UnremovableBasis::Prorated => {
            " (estimated: the dead rows counted, times the share of the time since the last VACUUM that the holder was there)"
        }
        UnremovableBasis::NotMaintained => " (n/a on a standby: the dead-row counter is not maintained there)",
        UnremovableBasis::NoHolder => "",
    };
    let detail = format!(
        "{}{how}; it holds xmin {} ({} transactions old); {limits}{others}{hidden}",
        h.describe(),
        holder
            .xmin
            .as_deref()
            .map(sanitize::line)
            .unwrap_or_default(),
        count(holder.age_xids),
    );
    let table = extras_free_table(snap);
    let advice = match holder.kind {
        HolderKind::Backend => format!(
            "End that transaction in the application (commit or roll back); if it is stuck, cancel \
             its query (C on the dashboard: SELECT pg_cancel_backend({pid});) or end the session \
             (T: SELECT pg_terminate_backend({pid});), then VACUUM {table}. To prevent it: \
             ALTER ROLE ... SET idle_in_transaction_session_timeout = '5min';",
            pid = holder.pid.unwrap_or(0)
        ),
        HolderKind::PreparedXact => format!(
            "A prepared transaction lives until its transaction manager commits or rolls it back. \
             If it is orphaned, run (idemtop never does): {} (or COMMIT PREPARED with the same gid), \
             then VACUUM {table}.",
            holder.operator_sql().unwrap_or_default()
        ),
        HolderKind::ReplicationSlot => format!(
            "The slot's consumer is behind or gone. If the slot is no longer used, drop it \
             (idemtop never does): {} then VACUUM {table}.",
            holder.operator_sql().unwrap_or_default()
        ),
        HolderKind::StandbyFeedback => format!(
            "A query on that standby holds a snapshot, relayed by hot_standby_feedback: end it on \
             the standby (pg_stat_activity there), or turn hot_standby_feedback off there (its \
             queries may then be cancelled by replay); then VACUUM {table}."
        ),
    };
    result(
        ID,
        NAME,
        level,
        value,
        detail,
        if level == Level::Ok && h.unremovable.unwrap_or(0) == 0 {
            String::new()
        } else {
            advice
        },
    )
}

pub(super) const CHECK: Check = Check {
    id: "xmin_horizon",
    eval: |f| xmin_horizon(f.snap, f.cfg),
};

//! Replay rate: primary-key scans per inserted row between two snapshots.

use super::*;

pub(super) fn replay_rate(snap: &Snapshot, prev: Option<&Snapshot>, cfg: &Config) -> CheckResult {
    const ID: &str = "replay_rate";
    const NAME: &str = "Replay rate";
    let t = &cfg.thresholds.replay_rate;
    let note = "PostgreSQL counts INSERT ... ON CONFLICT's uniqueness check as one primary-key \
                scan per row, a plain INSERT's as none";
    let Some(prev) = prev else {
        return pending(
            ID,
            NAME,
            "needs two refreshes to compare counters; not counted until then",
        );
    };
    let pkey = |s: &Snapshot| s.indexes.iter().find(|i| i.primary).map(|i| i.idx_scan);
    let (Some(now_scans), Some(prev_scans)) = (pkey(snap), pkey(prev)) else {
        return result(
            ID,
            NAME,
            Level::Unknown,
            "n/a",
            "the table has no primary key index",
            "",
        );
    };
    let scans = now_scans - prev_scans;
    let inserts = snap.counters.n_tup_ins - prev.counters.n_tup_ins;
    let secs = (snap.taken_at - prev.taken_at).num_milliseconds() as f64 / 1000.0;
    if scans < 0 || inserts < 0 {
        return result(
            ID,
            NAME,
            Level::Unknown,
            "n/a",
            "the statistics were reset between the refreshes",
            "",
        );
    }
    let window = format!("in {}", format::duration_secs(secs.max(0.0)));
    if inserts == 0 {
        let detail = if scans == 0 {
            format!("idle: no key lookups and no inserts {window}")
        } else {
            format!(
                "{} primary-key lookups and no inserts {window}: every request was a replay \
                 (or a lookup of a key never stored)",
                count(scans)
            )
        };
        return result(ID, NAME, Level::Ok, "no inserts", detail, "");
    }
    let ratio = scans as f64 / inserts as f64;
    let per_sec = |n: i64| {
        if secs > 0.0 {
            format!(" ({})", format::rate(Some(n as f64 / secs)))
        } else {
            String::new()
        }
    };
    let judgement = if ratio > t.high {
        format!(
            "; unusually high (above {}): clients retry a lot, or keys are looked up repeatedly",
            t.high
        )
    } else if ratio < t.low {
        format!(
            "; unusually low (below {}): writers insert without looking the key up first",
            t.low
        )
    } else {
        String::new()
    };
    result(
        ID,
        NAME,
        Level::Ok,
        format!("{ratio:.2} scans/insert"),
        format!(
            "{} primary-key scans{} for {} inserts{} {window}{judgement} ({note})",
            count(scans),
            per_sec(scans),
            count(inserts),
            per_sec(inserts)
        ),
        "",
    )
}

pub(super) const CHECK: Check = Check {
    id: "replay_rate",
    eval: |f| replay_rate(f.snap, f.prev, f.cfg),
};

//! Indexes: the guide's indexes present, valid and used.

use super::*;

pub(super) fn indexes(snap: &Snapshot, extras: &Extras, cfg: &Config) -> CheckResult {
    const ID: &str = "indexes";
    const NAME: &str = "Indexes";
    let mut level = Level::Ok;
    let mut problems: Vec<String> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    let mut advice: Vec<String> = Vec::new();
    let large = snap.rows.total as f64 > EXACT_ROW_LIMIT;
    let mut missing = 0;
    for e in &snap.expected_indexes {
        match &e.found_as {
            None => {
                missing += 1;
                let l = if e.expiry && large {
                    Level::Critical
                } else {
                    Level::Warning
                };
                level = level.min(l);
                let why = if e.expiry {
                    "cleanup and the expired count scan the whole table"
                } else {
                    "per-operation monitoring queries scan the whole table"
                };
                problems.push(format!("{} (on {}) is missing: {why}", e.name, e.column));
                advice.push(format!(
                    "CREATE INDEX CONCURRENTLY {} ON {} ({});",
                    quote_ident(&e.name),
                    extras.table.qualified(),
                    quote_ident(&e.column)
                ));
            }
            Some(found) if found != &e.name => {
                notes.push(format!("{} exists as {}", e.name, found));
            }
            Some(_) => {}
        }
    }
    for i in snap.indexes.iter().filter(|i| !i.valid) {
        level = Level::Critical;
        problems.push(format!(
            "{} is INVALID (a failed CREATE INDEX CONCURRENTLY or REINDEX): never used by \
             queries, still updated by every write",
            i.name
        ));
        advice.push(format!(
            "REINDEX INDEX CONCURRENTLY {}; (or DROP INDEX CONCURRENTLY {} and create it again)",
            sibling(extras, &i.name),
            sibling(extras, &i.name)
        ));
    }
    let min_inserts = cfg.thresholds.indexes.unused_after_inserts;
    for i in snap
        .indexes
        .iter()
        .filter(|i| i.valid && i.idx_scan == 0 && !i.unique && !i.primary)
    {
        if index_unused(i, snap.counters.n_tup_ins, min_inserts) {
            level = level.min(Level::Warning);
            problems.push(format!(
                "{} ({}) was never scanned in {} inserts since the statistics were reset",
                i.name,
                format::bytes(i.size_bytes),
                count(snap.counters.n_tup_ins)
            ));
            advice.push(format!(
                "Check whether queries need {n} (pg_stat_user_indexes.idx_scan); an unused index \
                 costs every write: DROP INDEX CONCURRENTLY {n};",
                n = sibling(extras, &i.name)
            ));
        } else {
            notes.push(format!("{} not scanned yet", i.name));
        }
    }
    let value = if problems.is_empty() {
        format!("{} ok", snap.indexes.len())
    } else if missing > 0 {
        format!("{missing} missing")
    } else {
        format!("{} problem(s)", problems.len())
    };
    let mut detail = if problems.is_empty() && snap.expected_indexes.is_empty() {
        format!("{} indexes, all valid", snap.indexes.len())
    } else if problems.is_empty() {
        format!(
            "{} indexes, the expected {} present and valid",
            snap.indexes.len(),
            snap.expected_indexes
                .iter()
                .map(|e| e.name.as_str())
                .collect::<Vec<_>>()
                .join(" and ")
        )
    } else {
        problems.join("; ")
    };
    if !notes.is_empty() {
        detail.push_str(&format!(" (note: {})", notes.join("; ")));
    }
    if level != Level::Ok {
        advice.push(format!(
            "Then ANALYZE {}; (the guide: check index usage in pg_stat_user_indexes, REINDEX \
             TABLE if needed).",
            extras.table.qualified()
        ));
    }
    result(ID, NAME, level, value, detail, advice.join(" "))
}

pub(super) const CHECK: Check = Check {
    id: "indexes",
    eval: |f| indexes(f.snap, f.extras, f.cfg),
};

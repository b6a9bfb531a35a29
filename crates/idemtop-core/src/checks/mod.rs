//! Health checks: the migration guide's advice (monitoring, grants, retention, troubleshooting),
//! checked. Shared by `idemtop check` (Nagios/Icinga exit codes), the metrics endpoint and the
//! dashboard's Health screen.
//!
//! Two halves: [`gather`] reads the few facts a [`Snapshot`] lacks (grants, the TTL and status
//! distribution per operation, pg_cron), each cheap and bounded; [`evaluate`] is pure and turns
//! a snapshot, the previous one and those facts into [`CheckResult`]s, worst first.
//!
//! About `replay_rate`: it is primary-key index scans per inserted row between two snapshots.
//! PostgreSQL 15 counts the uniqueness pre-check of `INSERT ... ON CONFLICT` as one scan of the
//! primary key per row attempted (conflicting or not; verified against a 15 server: four
//! `ON CONFLICT DO NOTHING` inserts, one of them a conflict, gave `idx_scan` 4 and `n_tup_ins`
//! 3), while a plain `INSERT`'s uniqueness check is not counted as a scan at all, and a skipped
//! conflicting row is not counted in `n_tup_ins`. So with the store's pattern (look the key up,
//! then `INSERT ... ON CONFLICT DO NOTHING`) a new request costs two scans and one insert, a
//! replay one scan and no insert: the ratio grows with the share of replays.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Result;
use serde::Serialize;
use sqlx::PgConnection;

use crate::config::Config;
use crate::db::connect::is_connection_lost;
use crate::db::cron::{self, CronStatus};
use crate::db::snapshot::{Snapshot, EXACT_ROW_LIMIT};
use crate::format::{self, approx, count};
use crate::guide::CLEANUP_FUNCTION;
use crate::ident::TableRef;
use crate::sanitize;

mod advice;
mod gather;
mod sample;

pub use advice::quote_ident;
use advice::*;
pub use gather::{
    gather, gather_cached, run_once, Extras, GatherCache, OperationFact, OperationFacts, RoleGrant,
    OPERATION_FACTS_REUSE,
};
pub use xmin_horizon::xmin_horizon;

/// The bound on each of [`gather`]'s table scans (a local `statement_timeout`).
pub const GATHER_TIMEOUT: Duration = Duration::from_secs(2);
/// A table of more rows than this is sampled (`TABLESAMPLE SYSTEM`) for about this many rows.
pub const SAMPLE_ROWS: f64 = 20_000.0;
/// Time between the two snapshots of [`run_once`] (for the replay rate).
pub const RATE_WINDOW: Duration = Duration::from_secs(1);

/// Nagios/Icinga states. Ordered worst first (`Critical < Warning < Unknown < Ok`), so a plain
/// sort puts the worst check first and [`Level::worst`] is the minimum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Ok,
    Warning,
    Critical,
    Unknown,
}

impl Level {
    /// Higher is worse. Unknown ranks between ok and warning: a check that could not run never
    /// hides a warning or critical one.
    fn severity(self) -> u8 {
        match self {
            Level::Ok => 0,
            Level::Unknown => 1,
            Level::Warning => 2,
            Level::Critical => 3,
        }
    }

    /// The plugin exit code: 0 ok, 1 warning, 2 critical, 3 unknown.
    pub fn exit_code(self) -> i32 {
        match self {
            Level::Ok => 0,
            Level::Warning => 1,
            Level::Critical => 2,
            Level::Unknown => 3,
        }
    }

    /// `ok`, `warning`, `critical`, `unknown` (as in the JSON).
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::Warning => "warning",
            Level::Critical => "critical",
            Level::Unknown => "unknown",
        }
    }

    /// `OK`, `WARNING`, `CRITICAL`, `UNKNOWN`.
    pub fn label(self) -> &'static str {
        match self {
            Level::Ok => "OK",
            Level::Warning => "WARNING",
            Level::Critical => "CRITICAL",
            Level::Unknown => "UNKNOWN",
        }
    }

    /// The worst of `levels`; `Ok` when there are none.
    pub fn worst(levels: impl IntoIterator<Item = Level>) -> Level {
        levels.into_iter().min().unwrap_or(Level::Ok)
    }
}

impl Ord for Level {
    fn cmp(&self, other: &Self) -> Ordering {
        other.severity().cmp(&self.severity())
    }
}

impl PartialOrd for Level {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// One check's outcome. Text in it that came from the database is already sanitized.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckResult {
    /// Stable snake_case id (`cleanup_lag`): for scripts, metrics labels, config.
    pub id: &'static str,
    pub name: String,
    pub level: Level,
    /// One short human value ("5h 02m", "12.5% 5xx").
    pub value: String,
    /// One line: what was found.
    pub detail: String,
    /// What to do about it (from the guide's troubleshooting); may be empty when ok.
    pub advice: String,
    /// The check has no data yet (a rate needs two refreshes): shown as UNKNOWN with the
    /// reason, but left out of the overall status, `check`'s exit code and the alerting
    /// metric until it has one.
    pub pending: bool,
    /// The check needs a role the table's mapping leaves out ("n/a: no status column (map
    /// one in config)"), or judges something only the guide's table has: shown as UNKNOWN with
    /// the value `n/a` and the reason, and, like a pending one, not counted.
    pub not_applicable: bool,
}

impl CheckResult {
    /// Counted in the overall status, `check`'s exit code and the alerting metric: neither
    /// pending nor n/a.
    pub fn counted(&self) -> bool {
        !self.pending && !self.not_applicable
    }
}

/// The one judgement of "unused index", shared by the Indexes check, the dashboard's Indexes
/// panel and `/metrics`: a valid index that is not unique (a unique index enforces something
/// even when never scanned) and was never scanned while the table took at least
/// `min_inserts` inserts (config `thresholds.indexes.unused_after_inserts`). Before that many
/// inserts, "not scanned yet" is no verdict.
pub fn index_unused(i: &crate::db::snapshot::IndexStats, n_tup_ins: i64, min_inserts: i64) -> bool {
    i.valid && i.idx_scan == 0 && !i.unique && !i.primary && n_tup_ins >= min_inserts
}

/// The worst level of `checks`, leaving out the pending ones (ok when there are none).
pub fn worst(checks: &[CheckResult]) -> Level {
    Level::worst(checks.iter().filter(|c| c.counted()).map(|c| c.level))
}

pub(super) fn result(
    id: &'static str,
    name: &str,
    level: Level,
    value: impl Into<String>,
    detail: impl Into<String>,
    advice: impl Into<String>,
) -> CheckResult {
    CheckResult {
        pending: false,
        not_applicable: false,
        id,
        name: name.into(),
        level,
        value: sanitize::line(&value.into()),
        detail: sanitize::line(&detail.into()),
        advice: sanitize::line(&advice.into()),
    }
}

/// A check whose facts could not be read: unknown, saying why.
/// A check without data yet: UNKNOWN, said why, and not counted (see [`CheckResult::pending`]).
pub(super) fn pending(id: &'static str, name: &str, detail: impl Into<String>) -> CheckResult {
    CheckResult {
        pending: true,
        ..result(id, name, Level::Unknown, "pending", detail, "")
    }
}

/// A check the table's mapping gives nothing to judge: UNKNOWN, value `n/a`, the reason, not
/// counted (see [`CheckResult::not_applicable`]).
pub(super) fn not_applicable(id: &'static str, name: &str, why: impl Into<String>) -> CheckResult {
    CheckResult {
        not_applicable: true,
        ..result(id, name, Level::Unknown, "n/a", why, "")
    }
}

/// Why a check does not apply to the table as mapped, if it does not: the roles it needs, or
/// the guide's own objects (migration 046's function, its pg_cron job).
pub fn not_applicable_why(id: &str, m: &crate::db::snapshot::MappingReport) -> Option<String> {
    use crate::db::shape::Role;
    let need = |roles: &[Role]| roles.iter().find_map(|r| m.na(*r));
    let expiring = || {
        if m.columns.permanent {
            Some("n/a: a permanent ledger (permanent = true): rows never expire".to_string())
        } else {
            need(&[Role::Expiry])
        }
    };
    match id {
        "cleanup_lag" | "expired_backlog" => need(&[Role::Expiry]),
        "retention" => expiring()
            .or_else(|| need(&[Role::Created]))
            .or_else(|| {
                m.columns.ttl.as_ref().map(|t| {
                    format!(
                        "n/a: every row expires the mapping's ttl = {} after its creation: no per-row TTL to judge",
                        sanitize::line(t)
                    )
                })
            }),
        "cached_failures" => need(&[Role::Status]),
        // The guide's table stores finished requests only: nothing to be stuck, judged OK.
        "inflight" if m.is_guide() => None,
        "inflight" => need(&[Role::InFlight]),
        "cleanup_function" | "pg_cron" if !m.is_guide() => Some(format!(
            "n/a: migration 046's {CLEANUP_FUNCTION}() and its pg_cron job are for the guide's table; \
             clean this one with `idemtop cleanup`{}",
            if m.cleanup_refused.is_some() {
                " (refused for it: see the mapping)"
            } else {
                ""
            }
        )),
        _ => None,
    }
}

pub(super) fn unknown(
    id: &'static str,
    name: &str,
    detail: impl Into<String>,
    advice: impl Into<String>,
) -> CheckResult {
    result(id, name, Level::Unknown, "unknown", detail, advice)
}

pub(super) fn not_probed(id: &'static str, name: &str, snap: &Snapshot) -> Option<CheckResult> {
    snap.blocked_by.as_ref().map(|b| {
        result(
            id,
            name,
            Level::Unknown,
            "not probed",
            format!("the table was not read: {b}"),
            "Wait for the lock holder to finish (pg_locks, pg_stat_activity), then look again.",
        )
    })
}

pub(super) fn level_above(v: f64, warning: f64, critical: f64) -> Level {
    if v > critical {
        Level::Critical
    } else if v > warning {
        Level::Warning
    } else {
        Level::Ok
    }
}

/// "1 critical, 2 warning, 6 ok, 1 unknown".
pub fn summary(checks: &[CheckResult]) -> String {
    let n = |l: Level| {
        checks
            .iter()
            .filter(|c| c.level == l && c.counted())
            .count()
    };
    let pending = checks.iter().filter(|c| c.pending).count();
    let na = checks.iter().filter(|c| c.not_applicable).count();
    let mut s = format!(
        "{} critical, {} warning, {} unknown, {} ok",
        n(Level::Critical),
        n(Level::Warning),
        n(Level::Unknown),
        n(Level::Ok)
    );
    if pending > 0 {
        s.push_str(&format!(", {pending} pending"));
    }
    if na > 0 {
        s.push_str(&format!(", {na} n/a"));
    }
    s
}

/// What every check reads: the snapshot, the previous one (for rates), the gathered facts and
/// the configuration.
pub struct Facts<'a> {
    pub snap: &'a Snapshot,
    pub prev: Option<&'a Snapshot>,
    pub extras: &'a Extras,
    pub cfg: &'a Config,
}

/// One check of the registry: its stable id and its pure evaluation.
pub struct Check {
    pub id: &'static str,
    pub eval: fn(&Facts) -> CheckResult,
}

/// The registry: one file per check, listed once here. Adding a check is its file plus its
/// name in this list (the order is the order of equal-level checks in every output).
macro_rules! registry {
    ($($check:ident),* $(,)?) => {
        $(mod $check;)*
        /// Every check, in the order they are listed at equal level.
        pub const CHECKS: &[Check] = &[$($check::CHECK),*];
    };
}

registry![
    cleanup_lag,
    expired_backlog,
    bloat,
    indexes,
    cleanup_function,
    pg_cron,
    grants,
    retention,
    cached_failures,
    replay_rate,
    xmin_horizon,
    inflight,
];

/// Every check's id, in the order they are listed at equal level.
pub const CHECK_IDS: [&str; CHECKS.len()] = {
    let mut ids = [""; CHECKS.len()];
    let mut i = 0;
    while i < CHECKS.len() {
        ids[i] = CHECKS[i].id;
        i += 1;
    }
    ids
};

/// Every check, worst first (checks of equal level in [`CHECK_IDS`] order). Pure.
pub fn evaluate(
    snap: &Snapshot,
    prev: Option<&Snapshot>,
    extras: &Extras,
    cfg: &Config,
) -> Vec<CheckResult> {
    let facts = Facts {
        snap,
        prev,
        extras,
        cfg,
    };
    let mut out: Vec<CheckResult> = CHECKS
        .iter()
        .map(|c| match not_applicable_why(c.id, &snap.mapping) {
            Some(why) => {
                let name = (c.eval)(&facts).name;
                not_applicable(c.id, &name, why)
            }
            None => (c.eval)(&facts),
        })
        .collect();
    out.sort_by_key(|c| c.level);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worst_sorts_first() {
        let mut v = vec![Level::Ok, Level::Unknown, Level::Critical, Level::Warning];
        v.sort();
        assert_eq!(
            v,
            [Level::Critical, Level::Warning, Level::Unknown, Level::Ok]
        );
        assert_eq!(Level::worst([Level::Ok, Level::Unknown]), Level::Unknown);
        assert_eq!(Level::worst([]), Level::Ok);
    }

    #[test]
    fn identifiers_are_quoted_when_needed() {
        assert_eq!(quote_ident("app"), "app");
        assert_eq!(quote_ident("App"), "\"App\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_ident("user"), "\"user\"");
        assert_eq!(quote_ident("public"), "public");
    }

    #[test]
    fn ttl_texts() {
        assert_eq!(ttl_text(3600.0), "1h");
        assert_eq!(ttl_text(172_800.0), "2d");
        assert_eq!(ttl_text(86_400.0), "24h");
        assert_eq!(ttl_text(5400.0), "90m");
    }
}

//! The xmin horizon of the watched table: the oldest transaction id that VACUUM must still
//! treat as running for this table, and who holds it there. While it is held, a dead row
//! version newer than it cannot be removed ("dead row versions cannot be removed yet"), so
//! VACUUM runs and nothing comes back.
//!
//! Four kinds of holder, each read from its own view with the monitoring role's privileges:
//! a backend's snapshot or transaction (`pg_stat_activity.backend_xmin` / `backend_xid`, in
//! this database), a prepared transaction (`pg_prepared_xacts`, in this database), a
//! replication slot (`pg_replication_slots.xmin`; a logical slot's `catalog_xmin` holds back
//! only the system catalogs, so it is listed but does not hold this table), and a standby's
//! `hot_standby_feedback` (`pg_stat_replication.backend_xmin`). Without `pg_read_all_stats`
//! the first and last views hide other roles' sessions: [`XminHorizon::hidden`] says so.
//!
//! How many dead rows the holder keeps is an estimate, see [`estimate_unremovable`].

use anyhow::Result;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgConnection;

use crate::sanitize;

mod read;
mod signal;
#[cfg(test)]
mod tests;

pub use read::*;
pub use signal::*;

/// What holds the horizon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HolderKind {
    Backend,
    PreparedXact,
    ReplicationSlot,
    StandbyFeedback,
}

impl HolderKind {
    /// The `holder` label of the metrics and a word for the screen.
    pub fn as_str(self) -> &'static str {
        match self {
            HolderKind::Backend => "backend",
            HolderKind::PreparedXact => "prepared_xact",
            HolderKind::ReplicationSlot => "replication_slot",
            HolderKind::StandbyFeedback => "standby_feedback",
        }
    }
}

/// One holder of an xmin. Text is raw from the server: sanitize before display.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Holder {
    pub kind: HolderKind,
    /// The backend, the walsender of a standby, or the slot's active process.
    pub pid: Option<i32>,
    /// Role of the backend or walsender; owner of a prepared transaction.
    pub user: Option<String>,
    pub application: Option<String>,
    pub client: Option<String>,
    /// `pg_stat_activity.state` (`idle in transaction`, ...) or the walsender's state.
    pub state: Option<String>,
    pub backend_start: Option<DateTime<Utc>>,
    /// When its transaction began (a prepared transaction: when it was prepared).
    pub xact_start: Option<DateTime<Utc>>,
    pub query_start: Option<DateTime<Utc>>,
    /// Current or last statement, cut to 200 characters.
    pub query: Option<String>,
    /// The prepared transaction's gid, or the slot's name.
    pub name: Option<String>,
    /// `physical` or `logical` (slots).
    pub slot_type: Option<String>,
    /// The slot is in use.
    pub active: Option<bool>,
    /// The xid it holds (`xmin`, or `catalog_xmin` for a logical slot).
    pub xmin: Option<String>,
    /// A slot holding only `catalog_xmin`: it keeps catalog rows, not this table's.
    pub catalog_only: bool,
    /// `age(xmin)`: transactions since.
    pub age_xids: i64,
    /// Seconds since its transaction began (unknown for slots and standbys).
    pub age_secs: Option<f64>,
    /// A slot's retained WAL (`pg_current_wal_lsn() - restart_lsn`) or a standby's replay gap
    /// (`sent_lsn - replay_lsn`), in bytes.
    pub lag_bytes: Option<i64>,
}

/// How [`XminHorizon::unremovable`] was estimated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UnremovableBasis {
    /// Nothing holds the horizon: VACUUM can remove every dead row.
    NoHolder,
    /// The holder began before the last VACUUM (or when it began is unknown): the dead rows
    /// counted now are those that VACUUM had to leave plus those deleted since, all newer
    /// than the horizon.
    AllDeadRows,
    /// The holder began after the last VACUUM: the dead rows counted, scaled by the share of
    /// the time since that VACUUM during which the holder was there (deletes spread evenly).
    Prorated,
    /// The dead-row counter is not maintained here (a standby).
    NotMaintained,
}

/// The table's xmin horizon and who holds it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct XminHorizon {
    /// The oldest holder that keeps this table's dead rows (catalog-only slots excluded).
    pub holder: Option<Holder>,
    /// Every holder seen, oldest first (at most [`MAX_HOLDERS`]).
    pub holders: Vec<Holder>,
    /// `n_dead_tup` (None on a standby, where it is not maintained).
    pub dead_rows: Option<i64>,
    /// Dead rows not yet removable because of the holder: an estimate (see `basis`).
    pub unremovable: Option<i64>,
    pub basis: UnremovableBasis,
    /// What this role cannot see, one sentence each (empty when nothing is hidden).
    pub hidden: Vec<String>,
}

/// Holders listed at most.
pub const MAX_HOLDERS: usize = 10;

impl Holder {
    /// The backend idemtop may signal: a plain backend (not a prepared transaction, slot or
    /// standby), with its pid and start time.
    pub fn signal_target(&self) -> Option<SignalTarget> {
        match (self.kind, self.pid, self.backend_start) {
            (HolderKind::Backend, Some(pid), Some(backend_start)) => Some(SignalTarget {
                pid,
                backend_start,
                xact_start: self.xact_start,
            }),
            _ => None,
        }
    }

    /// One line: `pid 4242 (alice, psql, idle in transaction for 3h 02m)`,
    /// `prepared transaction 'gid' (owner bob, 2h 10m)`, `replication slot 's' (logical,
    /// inactive, catalog_xmin only)`, `standby 'walreceiver' via walsender pid 99 (10.0.0.2)`.
    pub fn describe(&self) -> String {
        let s = |o: &Option<String>| o.as_deref().map(sanitize::line).filter(|v| !v.is_empty());
        let age = self
            .age_secs
            .map(|a| crate::format::duration_secs(a.max(0.0)));
        match self.kind {
            HolderKind::Backend => {
                let mut who: Vec<String> = [s(&self.user), s(&self.application)]
                    .into_iter()
                    .flatten()
                    .collect();
                match (s(&self.state), &age) {
                    (Some(st), Some(a)) => who.push(format!("{st} for {a}")),
                    (Some(st), None) => who.push(st),
                    (None, Some(a)) => who.push(format!("in a transaction for {a}")),
                    (None, None) => {}
                }
                let pid = self.pid.map_or("?".to_string(), |p| p.to_string());
                if who.is_empty() {
                    format!("pid {pid}")
                } else {
                    format!("pid {pid} ({})", who.join(", "))
                }
            }
            HolderKind::PreparedXact => {
                let mut s2 = format!(
                    "prepared transaction '{}'",
                    s(&self.name).unwrap_or_default()
                );
                let mut parts = Vec::new();
                if let Some(o) = s(&self.user) {
                    parts.push(format!("owner {o}"));
                }
                if let Some(a) = age {
                    parts.push(format!("prepared {a} ago"));
                }
                if !parts.is_empty() {
                    s2.push_str(&format!(" ({})", parts.join(", ")));
                }
                s2
            }
            HolderKind::ReplicationSlot => {
                let mut parts = vec![s(&self.slot_type).unwrap_or_else(|| "?".into())];
                parts.push(
                    if self.active == Some(true) {
                        "active"
                    } else {
                        "inactive"
                    }
                    .into(),
                );
                if self.catalog_only {
                    parts.push("catalog_xmin only: holds back the catalogs, not this table".into());
                }
                if let Some(b) = self.lag_bytes {
                    parts.push(format!("{} of WAL retained", crate::format::bytes(b)));
                }
                format!(
                    "replication slot '{}' ({})",
                    s(&self.name).unwrap_or_default(),
                    parts.join(", ")
                )
            }
            HolderKind::StandbyFeedback => {
                let mut s2 = format!(
                    "standby '{}' (hot_standby_feedback) via walsender pid {}",
                    s(&self.application).unwrap_or_default(),
                    self.pid.map_or("?".to_string(), |p| p.to_string())
                );
                if let Some(c) = s(&self.client) {
                    s2.push_str(&format!(" from {c}"));
                }
                s2
            }
        }
    }

    /// The statement the operator may run to release a slot or a prepared transaction
    /// (idemtop never runs it): literals quoted.
    pub fn operator_sql(&self) -> Option<String> {
        let name = self.name.as_deref()?;
        match self.kind {
            HolderKind::ReplicationSlot => Some(format!(
                "SELECT pg_drop_replication_slot({});",
                sql_literal(name)
            )),
            HolderKind::PreparedXact => Some(format!("ROLLBACK PREPARED {};", sql_literal(name))),
            _ => None,
        }
    }
}

/// A string as an SQL literal: `'it''s'` (standard_conforming_strings on; a backslash needs
/// no escape then). Control characters are replaced so the line can be shown and pasted.
pub fn sql_literal(s: &str) -> String {
    let clean: String = s
        .chars()
        .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
        .collect();
    format!("'{}'", clean.replace('\'', "''"))
}

/// The backend the operator saw, identified beyond its pid: a pid is reused, so before a
/// signal idemtop checks that the same backend (same `backend_start`) is still in the same
/// transaction (same `xact_start`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignalTarget {
    pub pid: i32,
    pub backend_start: DateTime<Utc>,
    pub xact_start: Option<DateTime<Utc>>,
}

/// The estimate of the dead rows a holder keeps. `n_dead_tup` after a VACUUM is what that
/// VACUUM could not remove (PostgreSQL sets it to the recently-dead rows it left), and every
/// delete since adds to it. So when the holder began before the last VACUUM, all of them are
/// newer than the horizon; when it began later, only the rows deleted since it began are, and
/// those are estimated by the share of the time. Without a holder, none.
pub fn estimate_unremovable(
    dead: i64,
    last_vacuum: Option<DateTime<Utc>>,
    holder_since: Option<DateTime<Utc>>,
    has_holder: bool,
    now: DateTime<Utc>,
) -> (i64, UnremovableBasis) {
    if !has_holder {
        return (0, UnremovableBasis::NoHolder);
    }
    let dead = dead.max(0);
    match (last_vacuum, holder_since) {
        (Some(v), Some(since)) if since > v && now > v => {
            let share = (now - since).num_milliseconds().max(0) as f64
                / (now - v).num_milliseconds().max(1) as f64;
            (
                (dead as f64 * share.clamp(0.0, 1.0)).round() as i64,
                UnremovableBasis::Prorated,
            )
        }
        _ => (dead, UnremovableBasis::AllDeadRows),
    }
}

/// The server is a hot standby, and how far behind its primary it is.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Standby {
    /// `now() - pg_last_xact_replay_timestamp()` (None before anything was replayed). On an
    /// idle primary it grows although nothing is missing.
    pub replay_lag_secs: Option<f64>,
    pub receive_lsn: Option<String>,
    pub replay_lsn: Option<String>,
    /// WAL received but not yet replayed, in bytes.
    pub receive_replay_gap_bytes: Option<i64>,
}

impl Standby {
    /// `standby, replay lag 3 s, 0 B received not replayed`.
    pub fn describe(&self) -> String {
        let mut s = "standby".to_string();
        match self.replay_lag_secs {
            Some(l) => s.push_str(&format!(
                ", replay lag {}",
                crate::format::duration_secs(l.max(0.0))
            )),
            None => s.push_str(", nothing replayed yet"),
        }
        if let Some(g) = self.receive_replay_gap_bytes {
            s.push_str(&format!(
                ", {} received not replayed",
                crate::format::bytes(g.max(0))
            ));
        }
        s
    }
}

/// Why writes are refused on a standby, in one sentence.
pub const STANDBY_REFUSAL: &str =
    "the server is a hot standby (in recovery): nothing can be written there; act on the primary";

//! A target's row on the Overview: who it is, what its last refresh found, where it stands.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::checks::{self, CheckResult, Level};
use crate::db::snapshot::Snapshot;

/// Who a target is, as the Overview shows it. Built from the configuration, never from the
/// database; sanitized anyway when drawn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetInfo {
    pub name: String,
    /// `user@host:port/database`, without the password.
    pub connection: String,
    /// `schema.table`.
    pub table: String,
}

impl TargetInfo {
    /// `host:port/database`: the connection without the user.
    pub fn server(&self) -> &str {
        self.connection
            .split_once('@')
            .map_or(self.connection.as_str(), |(_, s)| s)
    }
}

/// What one refresh of a target found: the figures of its row.
#[derive(Debug, Clone, PartialEq)]
pub struct Figures {
    pub rows: i64,
    pub rows_exact: bool,
    pub expired: i64,
    /// How long the oldest expired row has waited for cleanup; `None`: nothing expired.
    pub cleanup_lag_secs: Option<f64>,
    /// The worst level of the checks (pending ones left out).
    pub level: Level,
    /// The worst check when it is not ok: (its name, its value).
    pub worst: Option<(String, String)>,
    pub taken_at: DateTime<Utc>,
}

impl Figures {
    pub fn new(snap: &Snapshot, results: &[CheckResult]) -> Self {
        let level = checks::worst(results);
        let worst = results
            .iter()
            .find(|c| !c.pending && c.level == level && level != Level::Ok)
            .map(|c| (c.name.clone(), c.value.clone()));
        Self {
            rows: snap.rows.total,
            rows_exact: snap.rows.exact,
            expired: snap.rows.expired,
            cleanup_lag_secs: snap
                .rows
                .oldest_expired_at
                .map(|_| snap.rows.cleanup_lag_secs),
            level,
            worst,
            taken_at: snap.taken_at,
        }
    }

    /// Expired rows as a share of all rows (0 for an empty table).
    pub fn expired_share(&self) -> f64 {
        if self.rows > 0 {
            (self.expired as f64 / self.rows as f64).clamp(0.0, 1.0)
        } else {
            0.0
        }
    }
}

/// Why a target's refresh measured nothing: one sanitized line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetError {
    pub message: String,
    /// The server cannot be reached or did not answer in time: down, retried with backoff.
    pub connection_lost: bool,
}

/// The state of a target's row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowState {
    /// No result yet.
    Connecting,
    /// The last refresh measured the table.
    Ok,
    /// The server answered but the last refresh measured nothing (the table is locked or
    /// missing, a permission is lacking...): the figures shown, if any, are older.
    Stale { reason: String },
    /// The server cannot be reached (refused, no answer in time): retried with backoff.
    Down {
        reason: String,
        /// Failed attempts in a row.
        failures: u32,
    },
}

/// Where a row stands, worst first: the Overview's order (then by name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Standing {
    Critical,
    Warning,
    Down,
    Stale,
    /// Measured, and some check could not be judged.
    Unknown,
    Connecting,
    Ok,
}

impl Standing {
    pub const ALL: [Standing; 7] = [
        Standing::Critical,
        Standing::Warning,
        Standing::Down,
        Standing::Stale,
        Standing::Unknown,
        Standing::Connecting,
        Standing::Ok,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Standing::Critical => "critical",
            Standing::Warning => "warning",
            Standing::Down => "down",
            Standing::Stale => "stale",
            Standing::Unknown => "unknown",
            Standing::Connecting => "connecting",
            Standing::Ok => "ok",
        }
    }
}

/// One target's row: who, what was last measured, and its refresh schedule.
#[derive(Debug, Clone)]
pub struct Row {
    pub info: TargetInfo,
    pub state: RowState,
    /// The last good figures (kept, marked, while the target is stale or down).
    pub figures: Option<Figures>,
    /// When the last good figures arrived.
    pub updated_at: Option<Instant>,
    /// Generation of the refresh in flight; a result of another generation is dropped.
    pub in_flight: Option<u64>,
    pub generation: u64,
    /// When the next refresh (or reconnection attempt) is due.
    pub due: Instant,
    /// How long the last refresh took, whatever its outcome.
    pub took: Option<Duration>,
}

impl Row {
    pub fn new(info: TargetInfo, now: Instant) -> Self {
        Self {
            info,
            state: RowState::Connecting,
            figures: None,
            updated_at: None,
            in_flight: None,
            generation: 0,
            due: now,
            took: None,
        }
    }

    pub fn standing(&self) -> Standing {
        match (&self.state, &self.figures) {
            (RowState::Connecting, _) => Standing::Connecting,
            (RowState::Down { .. }, _) => Standing::Down,
            (RowState::Stale { .. }, _) => Standing::Stale,
            (RowState::Ok, None) => Standing::Connecting,
            (RowState::Ok, Some(f)) => match f.level {
                Level::Critical => Standing::Critical,
                Level::Warning => Standing::Warning,
                Level::Unknown => Standing::Unknown,
                Level::Ok => Standing::Ok,
            },
        }
    }
}

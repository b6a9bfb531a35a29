//! The thresholds of the checks (`[thresholds.*]`), each with the defaults the guide suggests.

use super::*;

/// The health checks' limits. Shares and ratios are fractions (0.25 = 25 %).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Thresholds {
    pub cleanup_lag: CleanupLag,
    pub expired_share: ExpiredShare,
    pub bloat: Bloat,
    pub vacuum_age: VacuumAge,
    pub retention_excess: RetentionExcess,
    pub cached_failures: CachedFailures,
    pub replay_rate: ReplayRate,
    pub indexes: Indexes,
    pub xmin_horizon: XminHorizonAge,
    pub free_space: FreeSpace,
    pub inflight: InFlightStuck,
}

/// Keys in flight for too long (a request that crashed holding its key): a key counts as stuck
/// when it has been locked (`locked_at`, Stripe-style) or, without a lock column, in flight
/// since its creation for longer than `stuck_after_secs`. The `inflight` check warns from
/// `warning` stuck keys on and is critical from `critical` on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InFlightStuck {
    pub stuck_after_secs: f64,
    pub warning: f64,
    pub critical: f64,
}

impl Default for InFlightStuck {
    fn default() -> Self {
        Self {
            stuck_after_secs: 600.0,
            warning: 1.0,
            critical: 50.0,
        }
    }
}

/// Free space in the heap (measured with pgstattuple, `B` on the Health screen) above which a
/// rewrite is advised: VACUUM keeps free space for reuse, it does not give it back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FreeSpace {
    /// Percent of the heap.
    pub rewrite_percent: f64,
}

impl Default for FreeSpace {
    fn default() -> Self {
        Self {
            rewrite_percent: 30.0,
        }
    }
}

/// How long something may hold the xmin horizon back (the oldest transaction, prepared
/// transaction, slot or standby that keeps VACUUM from removing dead rows). By the holder's
/// transaction age in seconds when known (backends, prepared transactions), and by its age in
/// transaction ids for every holder (slots and standbys have no start time).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct XminHorizonAge {
    pub warning_secs: f64,
    pub critical_secs: f64,
    pub warning_xids: f64,
    pub critical_xids: f64,
}

impl Default for XminHorizonAge {
    fn default() -> Self {
        Self {
            warning_secs: 3600.0,
            critical_secs: 6.0 * 3600.0,
            warning_xids: 10_000_000.0,
            critical_xids: 100_000_000.0,
        }
    }
}

/// Age of the oldest expired row, relative to how often cleanup is meant to run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CleanupLag {
    pub schedule_secs: u64,
    pub warning_factor: f64,
    pub critical_factor: f64,
}

impl Default for CleanupLag {
    fn default() -> Self {
        Self {
            schedule_secs: 3600,
            warning_factor: 1.5,
            critical_factor: 3.0,
        }
    }
}

impl CleanupLag {
    pub fn warning_secs(&self) -> f64 {
        self.schedule_secs as f64 * self.warning_factor
    }
    pub fn critical_secs(&self) -> f64 {
        self.schedule_secs as f64 * self.critical_factor
    }
}

/// Expired rows as a share of all rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExpiredShare {
    pub warning: f64,
    pub critical: f64,
    /// Below this many expired rows the share is not judged.
    pub min_rows: i64,
}

impl Default for ExpiredShare {
    fn default() -> Self {
        Self {
            warning: 0.25,
            critical: 0.50,
            min_rows: 100,
        }
    }
}

/// Dead tuples as a share of all tuples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Bloat {
    pub warning_ratio: f64,
    pub critical_ratio: f64,
    /// Below this many dead tuples neither the ratio nor the vacuum age matters.
    pub min_dead_tuples: i64,
}

impl Default for Bloat {
    fn default() -> Self {
        Self {
            warning_ratio: 0.10,
            critical_ratio: 0.20,
            min_dead_tuples: 10_000,
        }
    }
}

/// Time since the last VACUUM or autovacuum, judged only when there are dead tuples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VacuumAge {
    pub warning_hours: f64,
    pub critical_hours: f64,
}

impl Default for VacuumAge {
    fn default() -> Self {
        Self {
            warning_hours: 24.0,
            critical_hours: 72.0,
        }
    }
}

/// Rows whose TTL (expires_at - created_at) is longer than their operation's policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionExcess {
    /// Warning above this share of rows (0 = any row).
    pub warning: f64,
    pub critical: f64,
    /// A TTL within this many seconds over the policy still counts as within it.
    pub slack_secs: f64,
}

impl Default for RetentionExcess {
    fn default() -> Self {
        Self {
            warning: 0.0,
            critical: 0.5,
            slack_secs: 60.0,
        }
    }
}

/// Stored 5xx results per operation (a cached server error is replayed to every retry).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CachedFailures {
    pub warning: f64,
    pub critical: f64,
    /// Operations with fewer rows than this are not judged.
    pub min_rows: i64,
}

impl Default for CachedFailures {
    fn default() -> Self {
        Self {
            warning: 0.01,
            critical: 0.05,
            min_rows: 10,
        }
    }
}

/// Primary-key index scans per inserted row between two refreshes. Informational: outside the
/// bounds the detail says so, the level stays ok.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReplayRate {
    pub low: f64,
    pub high: f64,
}

impl Default for ReplayRate {
    fn default() -> Self {
        Self {
            low: 0.5,
            high: 20.0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Indexes {
    /// A non-unique index never scanned is flagged once the table has seen this many inserts
    /// (since the statistics were reset); before that it is only noted.
    pub unused_after_inserts: i64,
}

impl Default for Indexes {
    fn default() -> Self {
        Self {
            unused_after_inserts: 100_000,
        }
    }
}

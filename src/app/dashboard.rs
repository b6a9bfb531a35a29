//! Dashboard state: the newest snapshot, the one before (for rates), the first (for growth),
//! and a short history for the sparklines. Pure: fed by `update`, read by `ui`.

use std::collections::{BTreeMap, VecDeque};

use crate::db::snapshot::Snapshot;

/// Points kept for the sparklines (at 2 s, six minutes).
pub const HISTORY_LEN: usize = 180;

/// Per-second rates between two snapshots, from counter deltas over the server-clock interval.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rates {
    pub ins_per_s: Option<f64>,
    pub del_per_s: Option<f64>,
    /// Per index name.
    pub idx_scans_per_s: BTreeMap<String, f64>,
    /// A counter went backwards (statistics reset, failover): that interval has no rate.
    pub reset: bool,
    pub interval_secs: f64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HistoryPoint {
    pub live: i64,
    pub expired: i64,
    pub ins_per_s: Option<f64>,
}

#[derive(Debug, Clone, Default)]
pub struct DashboardState {
    pub current: Option<Snapshot>,
    /// Total size when idemtop started, for growth.
    pub first_total_bytes: Option<i64>,
    pub rates: Rates,
    pub history: VecDeque<HistoryPoint>,
    /// The last refresh failed (cleared by the next good one).
    pub error: Option<String>,
    /// The last refresh found the table locked (cleared by the next good one): who holds it.
    pub lock: Option<crate::db::locks::TableLock>,
    /// When the lock above was read (its transaction age ticks from there).
    pub lock_at: Option<std::time::Instant>,
    /// When the refreshes first found the table locked, in this run of locked refreshes.
    pub lock_since: Option<std::time::Instant>,
    /// When the last good snapshot arrived (this machine's monotonic clock): the age of the
    /// figures on screen.
    pub updated_at: Option<std::time::Instant>,
    pub selected_op: usize,
}

impl DashboardState {
    /// A new snapshot arrived.
    pub fn apply(&mut self, mut snap: Snapshot) {
        // Once per snapshot, never per draw: the top operations and "(other)".
        snap.operations = super::top_operations::fold(
            std::mem::take(&mut snap.operations),
            super::top_operations::TOP_OPERATIONS,
        );
        self.rates = match &self.current {
            Some(prev) => rates(prev, &snap),
            None => Rates::default(),
        };
        self.history.push_back(HistoryPoint {
            live: snap.rows.live,
            expired: snap.rows.expired,
            ins_per_s: self.rates.ins_per_s,
        });
        while self.history.len() > HISTORY_LEN {
            self.history.pop_front();
        }
        self.first_total_bytes.get_or_insert(snap.sizes.total_bytes);
        self.current = Some(snap);
        self.error = None;
        self.lock = None;
        self.lock_at = None;
        self.lock_since = None;
        let n = self.current.as_ref().map_or(0, |s| s.operations.len());
        self.selected_op = self.selected_op.min(n.saturating_sub(1));
    }

    /// A refresh failed: keep the last good data, marked stale.
    pub fn fail(&mut self, error: String) {
        self.error = Some(error);
    }

    /// The last refresh failed or found the table locked: what is on screen is the last good
    /// data.
    pub fn stale(&self) -> bool {
        self.current.is_some() && (self.error.is_some() || self.lock.is_some())
    }

    /// Total size growth since idemtop started (bytes, may be negative).
    pub fn growth_bytes(&self) -> Option<i64> {
        Some(self.current.as_ref()?.sizes.total_bytes - self.first_total_bytes?)
    }

    pub fn selected_operation(&self) -> Option<&str> {
        self.current
            .as_ref()?
            .operations
            .get(self.selected_op)
            .map(|o| o.operation.as_str())
            .filter(|o| *o != super::top_operations::OTHER)
    }
}

/// Rates from counter deltas. A negative delta is a counter reset: no rate for that interval.
pub fn rates(prev: &Snapshot, cur: &Snapshot) -> Rates {
    let dt = (cur.taken_at - prev.taken_at).num_milliseconds() as f64 / 1000.0;
    if dt <= 0.0 {
        return Rates::default();
    }
    let mut reset = false;
    let mut rate = |a: i64, b: i64| {
        if b < a {
            reset = true;
            None
        } else {
            Some((b - a) as f64 / dt)
        }
    };
    let ins_per_s = rate(prev.counters.n_tup_ins, cur.counters.n_tup_ins);
    let del_per_s = rate(prev.counters.n_tup_del, cur.counters.n_tup_del);
    let mut idx_scans_per_s = BTreeMap::new();
    for idx in &cur.indexes {
        if let Some(p) = prev.indexes.iter().find(|p| p.name == idx.name) {
            if let Some(r) = rate(p.idx_scan, idx.idx_scan) {
                idx_scans_per_s.insert(idx.name.clone(), r);
            }
        }
    }
    Rates {
        ins_per_s,
        del_per_s,
        idx_scans_per_s,
        reset,
        interval_secs: dt,
    }
}

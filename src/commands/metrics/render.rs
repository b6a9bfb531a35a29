//! The text exposition format 0.0.4 of one target's scrape, and of several merged into one
//! answer: every family's `# HELP` and `# TYPE` once, its samples together, each sample labelled
//! `target="…"` when the scrape is a fleet's. Label values are escaped as the format says
//! (backslash, double quote, newline) after every control character (ESC, BEL, CR, C1...) was
//! made visible: `curl /metrics` in a terminal must not run escape sequences.

use std::fmt::Write as _;

use crate::checks::{self, CheckResult, Level};
use crate::db::snapshot::Snapshot;

/// A label value escaped for the exposition format: backslash, double quote, newline.
pub fn escape_label(v: &str) -> String {
    // Text from the database first loses its control characters (ESC, BEL, CR, C1...: shown
    // visibly, as everywhere else): `curl /metrics` in a terminal must not run escape sequences.
    let v = crate::sanitize::text(v);
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// A float as the exposition format writes it (`+Inf`, `-Inf`, `NaN`).
fn num(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v}")
    }
}

/// One metric family of a scrape: its name, type and help, and its sample lines.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    pub name: &'static str,
    pub kind: &'static str,
    pub help: &'static str,
    /// Whole sample lines, without the newline.
    pub samples: Vec<String>,
}

/// One target's scrape as families, in their order; [`merge`] makes the text.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Exposition {
    pub families: Vec<Family>,
}

/// The text of several scrapes in one answer: each family once (in the order of first
/// appearance), with the samples of every scrape that has it.
pub fn merge<'a>(parts: impl IntoIterator<Item = &'a Exposition>) -> String {
    let mut merged: Vec<&Family> = Vec::new();
    let mut samples: Vec<Vec<&str>> = Vec::new();
    for part in parts {
        for f in &part.families {
            let at = match merged.iter().position(|m| m.name == f.name) {
                Some(at) => at,
                None => {
                    merged.push(f);
                    samples.push(Vec::new());
                    merged.len() - 1
                }
            };
            samples[at].extend(f.samples.iter().map(String::as_str));
        }
    }
    let mut out = String::new();
    for (f, lines) in merged.iter().zip(samples) {
        let _ = writeln!(out, "# HELP {} {}", f.name, f.help);
        let _ = writeln!(out, "# TYPE {} {}", f.name, f.kind);
        for l in lines {
            out.push_str(l);
            out.push('\n');
        }
    }
    out
}

struct Out {
    /// `target="…"`, escaped, or empty for an unlabelled scrape.
    target: String,
    families: Vec<Family>,
}

impl Out {
    fn family(&mut self, name: &'static str, kind: &'static str, help: &'static str) {
        self.families.push(Family {
            name,
            kind,
            help,
            samples: Vec::new(),
        });
    }

    /// Samples `(name, holder kind, value)`, each labelled `holder`.
    fn family_once_samples<'a>(
        &mut self,
        samples: impl Iterator<Item = (&'static str, &'a str, f64)>,
    ) {
        for (name, holder, v) in samples {
            self.sample(name, &[("holder", holder)], v);
        }
    }

    /// A sample of the family opened last (`name` is that family's).
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        let mut line = String::from(name);
        if !labels.is_empty() || !self.target.is_empty() {
            line.push('{');
            line.push_str(&self.target);
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 || !self.target.is_empty() {
                    line.push(',');
                }
                let _ = write!(line, "{k}=\"{}\"", escape_label(v));
            }
            line.push('}');
        }
        let _ = write!(line, " {}", num(value));
        debug_assert_eq!(self.families.last().map(|f| f.name), Some(name));
        if let Some(f) = self.families.last_mut() {
            f.samples.push(line);
        }
    }
}

/// The exposition text of one unlabelled scrape: `None` when the database could not be read.
pub fn render(
    found: Option<(&Snapshot, &[CheckResult])>,
    locked: Option<&crate::db::locks::TableLock>,
    scrape_secs: f64,
) -> String {
    merge([&render_target(None, found, locked, scrape_secs)])
}

/// One scrape's families, every sample labelled `target="…"` when `target` is given: `found`
/// is `None` when the database could not be read.
pub fn render_target(
    target: Option<&str>,
    found: Option<(&Snapshot, &[CheckResult])>,
    locked: Option<&crate::db::locks::TableLock>,
    scrape_secs: f64,
) -> Exposition {
    let mut o = Out {
        target: target
            .map(|t| format!("target=\"{}\"", escape_label(t)))
            .unwrap_or_default(),
        families: Vec::new(),
    };
    o.family(
        "idemtop_up",
        "gauge",
        "1 when the last scrape reached the database and the table, 0 when they could not be read.",
    );
    let up = found.is_some() || locked.is_some();
    o.sample("idemtop_up", &[], if up { 1.0 } else { 0.0 });
    o.family(
        "idemtop_table_locked",
        "gauge",
        "1 when an ACCESS EXCLUSIVE lock on the table (held or requested) kept this scrape from measuring it: no figure is served then.",
    );
    o.sample(
        "idemtop_table_locked",
        &[],
        if locked.is_some() { 1.0 } else { 0.0 },
    );
    if let Some(lock) = locked {
        o.family(
            "idemtop_table_lock_waiting_sessions",
            "gauge",
            "Sessions waiting behind the lock on the table.",
        );
        o.sample(
            "idemtop_table_lock_waiting_sessions",
            &[],
            lock.waiting as f64,
        );
    }
    if let Some((s, checks)) = found {
        o.family(
            "idemtop_rows",
            "gauge",
            "Rows of the table by state (estimates unless idemtop_rows_exact is 1).",
        );
        for (state, v) in [
            ("live", s.rows.live),
            ("expired", s.rows.expired),
            ("total", s.rows.total),
        ] {
            o.sample("idemtop_rows", &[("state", state)], v as f64);
        }
        o.family(
            "idemtop_rows_exact",
            "gauge",
            "1 when the row counts are exact, 0 when estimated from statistics.",
        );
        o.sample("idemtop_rows_exact", &[], f64::from(u8::from(s.rows.exact)));
        o.family(
            "idemtop_size_bytes",
            "gauge",
            "On-disk size of the table: total, heap (table), indexes, TOAST.",
        );
        for (kind, v) in [
            ("total", s.sizes.total_bytes),
            ("table", s.sizes.table_bytes),
            ("index", s.sizes.index_bytes),
            ("toast", s.sizes.toast_bytes),
        ] {
            o.sample("idemtop_size_bytes", &[("kind", kind)], v as f64);
        }
        o.family(
            "idemtop_dead_tuples",
            "gauge",
            "Dead tuples (pg_stat_user_tables.n_dead_tup; absent on a standby, which does not maintain it).",
        );
        if s.counters_maintained() {
            o.sample("idemtop_dead_tuples", &[], s.vacuum.n_dead_tup as f64);
        }
        o.family(
            "idemtop_standby",
            "gauge",
            "1 when the server is a hot standby (in recovery): nothing can be written, and the table's activity counters are not maintained (their metrics are absent).",
        );
        o.sample(
            "idemtop_standby",
            &[],
            f64::from(u8::from(s.standby.is_some())),
        );
        if let Some(sb) = &s.standby {
            o.family(
                "idemtop_standby_replay_lag_seconds",
                "gauge",
                "now() - pg_last_xact_replay_timestamp() on a standby (grows while the primary is idle).",
            );
            if let Some(l) = sb.replay_lag_secs {
                o.sample("idemtop_standby_replay_lag_seconds", &[], l);
            }
            o.family(
                "idemtop_standby_receive_replay_gap_bytes",
                "gauge",
                "WAL received by the standby but not yet replayed.",
            );
            if let Some(g) = sb.receive_replay_gap_bytes {
                o.sample("idemtop_standby_receive_replay_gap_bytes", &[], g as f64);
            }
        }
        if let Some(h) = &s.vacuum.xmin_horizon {
            o.family(
                "idemtop_xmin_horizon_age_xids",
                "gauge",
                "Age in transaction ids of the oldest xmin holding back this table's VACUUM, by holder kind (backend, prepared_xact, replication_slot, standby_feedback); absent when nothing holds it.",
            );
            o.family_once_samples(h.holder.iter().map(|x| {
                (
                    "idemtop_xmin_horizon_age_xids",
                    x.kind.as_str(),
                    x.age_xids as f64,
                )
            }));
            o.family(
                "idemtop_xmin_horizon_age_seconds",
                "gauge",
                "Transaction age in seconds of the oldest xmin holder (backends and prepared transactions; slots and standbys have no start time).",
            );
            o.family_once_samples(h.holder.iter().filter_map(|x| {
                x.age_secs
                    .map(|a| ("idemtop_xmin_horizon_age_seconds", x.kind.as_str(), a))
            }));
            o.family(
                "idemtop_xmin_horizon_unremovable_dead_tuples",
                "gauge",
                "Estimated dead tuples of the table that VACUUM cannot remove yet because of the xmin holder (absent on a standby).",
            );
            if let Some(n) = h.unremovable {
                o.sample(
                    "idemtop_xmin_horizon_unremovable_dead_tuples",
                    &[],
                    n as f64,
                );
            }
        }
        o.family(
            "idemtop_cleanup_lag_seconds",
            "gauge",
            "Age of the oldest expired row, 0 when nothing is expired.",
        );
        o.sample("idemtop_cleanup_lag_seconds", &[], s.rows.cleanup_lag_secs);
        o.family(
            "idemtop_last_vacuum_timestamp_seconds",
            "gauge",
            "Unix time of the last VACUUM or autovacuum of the table (absent when never).",
        );
        if let Some(t) = s
            .vacuum
            .last_any_vacuum()
            .filter(|_| s.counters_maintained())
        {
            o.sample(
                "idemtop_last_vacuum_timestamp_seconds",
                &[],
                t.timestamp_millis() as f64 / 1000.0,
            );
        }
        o.family(
            "idemtop_operation_rows",
            "gauge",
            "Rows per operation (estimated from pg_stats on a large table).",
        );
        for op in &s.operations {
            o.sample(
                "idemtop_operation_rows",
                &[("operation", &op.operation)],
                op.total as f64,
            );
        }
        o.family(
            "idemtop_index_scans_total",
            "counter",
            "Index scans per index of the table (pg_stat_user_indexes.idx_scan).",
        );
        for i in &s.indexes {
            o.sample(
                "idemtop_index_scans_total",
                &[("index", &i.name)],
                i.idx_scan as f64,
            );
        }
        o.family(
            "idemtop_index_size_bytes",
            "gauge",
            "Size of each index of the table.",
        );
        for i in &s.indexes {
            o.sample(
                "idemtop_index_size_bytes",
                &[("index", &i.name)],
                i.size_bytes as f64,
            );
        }
        o.family(
            "idemtop_check_level",
            "gauge",
            "Level of each health check: 0 ok, 1 warning, 2 critical, 3 unknown.",
        );
        // A pending check (a rate before its second sample) has no level yet: it is left out
        // here, so that an alert on `>= 2` does not fire on every exporter restart, and
        // counted in idemtop_check_pending.
        for id in checks::CHECK_IDS {
            let found = checks.iter().find(|c| c.id == id);
            if found.is_some_and(|c| c.pending) {
                continue;
            }
            let level = found.map(|c| c.level).unwrap_or(Level::Unknown);
            o.sample(
                "idemtop_check_level",
                &[("check", id)],
                f64::from(level.exit_code()),
            );
        }
        o.family(
            "idemtop_check_pending",
            "gauge",
            "1 for a check that has no data yet (a rate needs two scrapes); its idemtop_check_level is absent until then.",
        );
        for c in checks.iter().filter(|c| c.pending) {
            o.sample("idemtop_check_pending", &[("check", c.id)], 1.0);
        }
    }
    o.family(
        "idemtop_scrape_duration_seconds",
        "gauge",
        "Time this scrape took, database queries included.",
    );
    o.sample("idemtop_scrape_duration_seconds", &[], scrape_secs);
    Exposition {
        families: o.families,
    }
}

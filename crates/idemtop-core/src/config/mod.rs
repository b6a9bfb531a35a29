//! idemtop's configuration file: refresh interval, the health checks' thresholds, the retention
//! policy (the guide's TTLs), the colours, the fleet of watched tables (`[[target]]`) and the
//! column mappings of tables of other shapes (`[[table]]`, [`crate::db::shape::TableEntry`]).
//!
//! Looked up at `--config PATH`, else `$XDG_CONFIG_HOME/idemtop/config.toml`, else
//! `~/.config/idemtop/config.toml`. Every key is optional (a partial file overrides only what it
//! says); an unknown key is an error, so a typo is reported instead of silently ignored.
//! `idemtop --print-config` prints [`Config::default_toml`], the commented defaults.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use serde::{Deserialize, Serialize};

use crate::guide::TtlPolicy;

mod colors;
#[cfg(test)]
mod tests;
mod thresholds;

pub use colors::*;
pub use thresholds::*;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Dashboard refresh interval, seconds.
    pub refresh_interval_secs: u64,
    pub thresholds: Thresholds,
    pub retention: Retention,
    pub colors: Colors,
    /// `[[table]]`: which column of a table plays which role, for tables whose shape differs
    /// from the guide's (`idemtop schema` prints a section ready to paste).
    #[serde(rename = "table", skip_serializing_if = "Vec::is_empty")]
    pub tables: Vec<crate::db::shape::TableEntry>,
    /// The fleet: one `[[target]]` table per watched table, resolved by the binary's `fleet` module. Empty
    /// means one implicit target from the global flags.
    #[serde(rename = "target", skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<TargetEntry>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            refresh_interval_secs: 2,
            thresholds: Thresholds::default(),
            retention: Retention::default(),
            colors: Colors::default(),
            tables: Vec::new(),
            targets: Vec::new(),
        }
    }
}

/// One `[[target]]` entry as written in the file. How it is checked and turned into a
/// connection and a table is the binary's `fleet` module's business.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TargetEntry {
    /// Its name in `check`'s output, the `target` label of the metrics, `/probe?target=`
    /// and `--target`.
    pub name: String,
    /// A `postgres://` URL (a password in it is allowed, never required: the passfile is read).
    pub url: Option<String>,
    /// A libpq service name, looked up in `pg_service.conf`. Neither `url` nor `service`: the
    /// `PG*` environment.
    pub service: Option<String>,
    /// Default `public`.
    pub schema: Option<String>,
    /// Default `idempotency_records`.
    pub table: Option<String>,
}

/// How long a stored result may live, per operation (the guide: 24 h, 1 h for payment and
/// transfer).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Retention {
    pub default_hours: f64,
    pub per_operation: BTreeMap<String, f64>,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            default_hours: 24.0,
            per_operation: [("payment".to_string(), 1.0), ("transfer".to_string(), 1.0)]
                .into_iter()
                .collect(),
        }
    }
}

fn hours(h: f64) -> Duration {
    Duration::from_secs_f64((h * 3600.0).max(0.0))
}

impl Retention {
    pub fn ttl_policy(&self) -> TtlPolicy {
        TtlPolicy {
            default: hours(self.default_hours),
            per_operation: self
                .per_operation
                .iter()
                .map(|(op, h)| (op.clone(), hours(*h)))
                .collect(),
        }
    }

    /// The policy TTL of `operation`, in seconds.
    pub fn ttl_secs(&self, operation: &str) -> f64 {
        self.per_operation
            .get(operation)
            .copied()
            .unwrap_or(self.default_hours)
            * 3600.0
    }
}

/// The largest configuration file read (a config of many targets stays far below).
pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

impl Config {
    /// `$XDG_CONFIG_HOME/idemtop/config.toml`, else `~/.config/idemtop/config.toml`.
    pub fn default_path() -> Option<PathBuf> {
        default_path_from(
            std::env::var_os("XDG_CONFIG_HOME"),
            std::env::var_os("HOME"),
        )
    }

    /// The configuration for this run: `explicit` (`--config`) must exist; the default file
    /// may be missing (then the defaults apply).
    pub fn load(explicit: Option<&Path>) -> Result<Config> {
        match explicit {
            Some(path) => Self::load_file(path),
            None => match Self::default_path() {
                Some(path) if path.exists() => Self::load_file(&path),
                _ => Ok(Config::default()),
            },
        }
    }

    /// Read and check one file: at most [`MAX_CONFIG_BYTES`], read with that bound (a device
    /// such as `/dev/zero` or a huge file is refused, never read to the end).
    pub fn load_file(path: &Path) -> Result<Config> {
        use std::io::Read;
        let shown = crate::sanitize::line(&path.display().to_string());
        let file = std::fs::File::open(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                anyhow!("config file {shown} does not exist")
            } else {
                anyhow!("cannot read config file {shown}: {e}")
            }
        })?;
        let mut bytes = Vec::new();
        file.take(MAX_CONFIG_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| anyhow!("cannot read config file {shown}: {e}"))?;
        if bytes.len() as u64 > MAX_CONFIG_BYTES {
            bail!(
                "config file {shown} is larger than {} KiB: not a configuration file?",
                MAX_CONFIG_BYTES / 1024
            );
        }
        let text = String::from_utf8(bytes)
            .map_err(|_| anyhow!("config file {shown} is not UTF-8 text"))?;
        Self::from_toml_str(&text, &shown)
    }

    /// Parse and check TOML text; `origin` names it in errors (the file name).
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Config> {
        let cfg: Config = toml::from_str(text).map_err(|e| {
            let msg = crate::sanitize::line(e.message().trim());
            match e.span() {
                Some(span) => {
                    let (line, col) = line_col(text, span.start);
                    anyhow!("config file {origin}, line {line}, column {col}: {msg}")
                }
                None => anyhow!("config file {origin}: {msg}"),
            }
        })?;
        cfg.validate()
            .map_err(|e| anyhow!("config file {origin}: {e}"))?;
        Ok(cfg)
    }

    /// Values that parse but make no sense.
    pub fn validate(&self) -> Result<()> {
        if self.refresh_interval_secs == 0 {
            bail!("refresh_interval_secs must be at least 1");
        }
        let t = &self.thresholds;
        let pairs = [
            (
                "thresholds.cleanup_lag",
                t.cleanup_lag.warning_factor,
                t.cleanup_lag.critical_factor,
            ),
            (
                "thresholds.expired_share",
                t.expired_share.warning,
                t.expired_share.critical,
            ),
            (
                "thresholds.bloat",
                t.bloat.warning_ratio,
                t.bloat.critical_ratio,
            ),
            (
                "thresholds.vacuum_age",
                t.vacuum_age.warning_hours,
                t.vacuum_age.critical_hours,
            ),
            (
                "thresholds.retention_excess",
                t.retention_excess.warning,
                t.retention_excess.critical,
            ),
            (
                "thresholds.cached_failures",
                t.cached_failures.warning,
                t.cached_failures.critical,
            ),
            (
                "thresholds.xmin_horizon (secs)",
                t.xmin_horizon.warning_secs,
                t.xmin_horizon.critical_secs,
            ),
            (
                "thresholds.xmin_horizon (xids)",
                t.xmin_horizon.warning_xids,
                t.xmin_horizon.critical_xids,
            ),
            (
                "thresholds.replay_rate",
                t.replay_rate.low,
                t.replay_rate.high,
            ),
        ];
        for (name, warning, critical) in pairs {
            if !(warning.is_finite() && critical.is_finite()) || warning < 0.0 || critical < 0.0 {
                bail!("{name}: thresholds must be finite and not negative");
            }
            if warning > critical {
                bail!("{name}: the warning threshold ({warning}) is above the critical one ({critical})");
            }
        }
        if t.cleanup_lag.schedule_secs == 0 {
            bail!("thresholds.cleanup_lag.schedule_secs must be at least 1");
        }
        let r = &self.retention;
        if !(r.default_hours.is_finite() && r.default_hours > 0.0) {
            bail!("retention.default_hours must be a positive number of hours");
        }
        for (op, h) in &r.per_operation {
            if !(h.is_finite() && *h > 0.0) {
                bail!(
                    "retention.per_operation.{}: must be a positive number of hours",
                    crate::sanitize::line(op)
                );
            }
        }
        for (name, value) in [
            ("colors.ok", &self.colors.ok),
            ("colors.warning", &self.colors.warning),
            ("colors.critical", &self.colors.critical),
            ("colors.accent", &self.colors.accent),
        ] {
            parse_color(value).map_err(|e| anyhow!("{name}: {e}"))?;
        }
        crate::db::shape::TableEntry::validate_all(&self.tables).map_err(|e| anyhow!(e))?;
        Ok(())
    }

    /// The TTL policy of the retention section.
    pub fn ttl_policy(&self) -> TtlPolicy {
        self.retention.ttl_policy()
    }

    /// The defaults as a commented TOML file (`idemtop --print-config`); parses back to
    /// `Config::default()`.
    pub fn default_toml() -> String {
        let d = Config::default();
        let t = &d.thresholds;
        let mut per_op = String::new();
        for (op, h) in &d.retention.per_operation {
            per_op.push_str(&format!("{op} = {}\n", float(*h)));
        }
        format!(
            r##"# idemtop configuration: idemtop --config PATH, else $XDG_CONFIG_HOME/idemtop/config.toml,
# else ~/.config/idemtop/config.toml. Every key is optional: a missing key keeps the default
# shown here. Unknown keys are errors. Shares and ratios are fractions (0.25 = 25 %).

# Dashboard refresh interval, in seconds.
refresh_interval_secs = {refresh}

# cleanup_lag: age of the oldest expired row (how long expired rows wait for cleanup),
# relative to how often cleanup is meant to run (the guide: every hour). Warning above
# warning_factor x schedule_secs, critical above critical_factor x schedule_secs.
[thresholds.cleanup_lag]
schedule_secs = {cl_sched}
warning_factor = {cl_w}
critical_factor = {cl_c}

# expired_backlog: expired rows as a share of all rows; not judged below min_rows expired rows.
[thresholds.expired_share]
warning = {es_w}
critical = {es_c}
min_rows = {es_min}

# bloat: dead tuples as a share of all tuples (n_dead_tup / (n_live_tup + n_dead_tup)),
# judged only from min_dead_tuples dead tuples on (the guide: VACUUM ANALYZE if needed).
[thresholds.bloat]
warning_ratio = {b_w}
critical_ratio = {b_c}
min_dead_tuples = {b_min}

# bloat: hours since the last VACUUM or autovacuum, judged only when there are at least
# thresholds.bloat.min_dead_tuples dead tuples.
[thresholds.vacuum_age]
warning_hours = {va_w}
critical_hours = {va_c}

# retention: share of rows whose TTL (expires_at - created_at) exceeds their operation's
# policy ([retention] below) by more than slack_secs. Warning above `warning` (0 = any row),
# critical above `critical`.
[thresholds.retention_excess]
warning = {re_w}
critical = {re_c}
slack_secs = {re_slack}

# cached_failures: stored 5xx results as a share of an operation's rows (a cached server
# error is replayed to every retry). Operations with fewer than min_rows rows are not judged.
[thresholds.cached_failures]
warning = {cf_w}
critical = {cf_c}
min_rows = {cf_min}

# replay_rate: primary-key index scans per inserted row between two refreshes (lookups and
# INSERT ... ON CONFLICT checks per new record). Informational: outside low..high the detail
# says so, the level stays ok.
[thresholds.replay_rate]
low = {rr_low}
high = {rr_high}

# indexes: a non-unique index that was never scanned is flagged (warning) once the table has
# seen this many inserts since the statistics were reset; before that it is only noted.
[thresholds.indexes]
unused_after_inserts = {ix_unused}

# xmin_horizon: how long a transaction, prepared transaction, replication slot or standby
# (hot_standby_feedback) may hold the xmin horizon back, keeping VACUUM from removing dead
# rows. By transaction age in seconds (backends and prepared transactions) and by age in
# transaction ids (every holder: slots and standbys have no start time).
[thresholds.free_space]       # B on Health: advise a rewrite (pg_repack / VACUUM FULL) above
rewrite_percent = {fs_rw}

[thresholds.xmin_horizon]
warning_secs = {xh_ws}
critical_secs = {xh_cs}
warning_xids = {xh_wx}
critical_xids = {xh_cx}

# The retention policy (the guide's TTLs): hours a stored result may live, per operation;
# every other operation gets default_hours. The retention check flags rows kept longer.
[retention]
default_hours = {ret_default}

[retention.per_operation]
{per_op}
# Colours: names (black, red, green, yellow, blue, magenta, cyan, gray, darkgray, lightred,
# lightgreen, lightyellow, lightblue, lightmagenta, lightcyan, white) or "#rrggbb".
# --no-color and NO_COLOR turn every colour off.
[colors]
ok = "{c_ok}"
warning = "{c_warn}"
critical = "{c_crit}"
accent = "{c_accent}"

# A table of another shape than the guide's: one [[table]] section per table says which
# column plays which role. `idemtop schema --table NAME` prints one ready to paste.
# [[table]]
# schema = "public"
# table = "idempotency_keys"
# key = ["user_id", "idempotency_key"]
# created = "created_at"
# ttl = "72h"

# The fleet: one [[target]] per watched table, for `idemtop check` and `idemtop metrics`
# (`--target NAME` picks one, for every command). Without any, the one target comes from
# --database-url / DATABASE_URL / PG*, --schema and --table. A connection is `url`, or
# `service` (a libpq service in pg_service.conf), or neither (the PG* environment); a
# password is never needed here: ~/.pgpass or PGPASSFILE is read.
# [[target]]
# name = "orders"
# url = "postgres://monitor@db1.internal/orders"
# [[target]]
# name = "billing"
# service = "billing"
# schema = "billing"
# table = "idem_keys"
"##,
            refresh = d.refresh_interval_secs,
            cl_sched = t.cleanup_lag.schedule_secs,
            cl_w = float(t.cleanup_lag.warning_factor),
            cl_c = float(t.cleanup_lag.critical_factor),
            es_w = float(t.expired_share.warning),
            es_c = float(t.expired_share.critical),
            es_min = t.expired_share.min_rows,
            b_w = float(t.bloat.warning_ratio),
            b_c = float(t.bloat.critical_ratio),
            b_min = t.bloat.min_dead_tuples,
            va_w = float(t.vacuum_age.warning_hours),
            va_c = float(t.vacuum_age.critical_hours),
            re_w = float(t.retention_excess.warning),
            re_c = float(t.retention_excess.critical),
            re_slack = float(t.retention_excess.slack_secs),
            cf_w = float(t.cached_failures.warning),
            cf_c = float(t.cached_failures.critical),
            cf_min = t.cached_failures.min_rows,
            rr_low = float(t.replay_rate.low),
            rr_high = float(t.replay_rate.high),
            ix_unused = t.indexes.unused_after_inserts,
            fs_rw = t.free_space.rewrite_percent,
            xh_ws = float(t.xmin_horizon.warning_secs),
            xh_cs = float(t.xmin_horizon.critical_secs),
            xh_wx = float(t.xmin_horizon.warning_xids),
            xh_cx = float(t.xmin_horizon.critical_xids),
            ret_default = float(d.retention.default_hours),
            c_ok = d.colors.ok,
            c_warn = d.colors.warning,
            c_crit = d.colors.critical,
            c_accent = d.colors.accent,
        )
    }
}

/// A float as TOML writes it (always with a decimal point).
fn float(v: f64) -> String {
    let s = format!("{v}");
    if s.contains(['.', 'e', 'E']) || !v.is_finite() {
        s
    } else {
        format!("{s}.0")
    }
}

fn default_path_from(
    xdg: Option<std::ffi::OsString>,
    home: Option<std::ffi::OsString>,
) -> Option<PathBuf> {
    // The XDG spec: a relative $XDG_CONFIG_HOME is invalid and ignored.
    if let Some(x) = xdg.map(PathBuf::from).filter(|p| p.is_absolute()) {
        return Some(x.join("idemtop").join("config.toml"));
    }
    home.filter(|h| !h.is_empty()).map(|h| {
        PathBuf::from(h)
            .join(".config")
            .join("idemtop")
            .join("config.toml")
    })
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let mut end = offset;
    while end > 0 && !text.is_char_boundary(end) {
        end -= 1;
    }
    let before = &text[..end];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rsplit_once('\n')
        .map(|(_, l)| l)
        .unwrap_or(before)
        .chars()
        .count()
        + 1;
    (line, col)
}

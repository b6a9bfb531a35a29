//! `idemtop check`: every health check once, as a Nagios/Icinga plugin. Exit code = worst level
//! (0 ok, 1 warning, 2 critical, 3 unknown); cannot connect, no table, or the table locked: 3,
//! with an UNKNOWN status on stdout in the requested format (JSON: `status`, `error`, `locked`).
//!
//! Over a fleet (several `[[target]]`s, see [`crate::fleet`]) every target is checked at once,
//! each under its own `--timeout`; a target that cannot be checked is UNKNOWN on its own and
//! never holds up the others. The first line is the fleet's: the worst state wins, with how
//! many targets are in each state and which are the worst; then one line per target and the
//! checks that are not OK. As JSON: `status`, `counts` and a `targets` array of the
//! single-target documents.

use anyhow::Result;
use chrono::{DateTime, Utc};
use serde_json::json;

use crate::checks::{self, CheckResult, Level};
use crate::config::Config;
use crate::db::locks::TableLock;
use crate::fleet::{self, Target};
use crate::options::{Format, Global};
use crate::sanitize;

#[derive(clap::Args, Debug, Clone)]
pub struct CheckArgs {
    /// Output: one line per check and a summary (text), or one JSON document.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,

    /// Seconds each target may take, connecting included (1..=3600); a target that takes
    /// longer is UNKNOWN. Targets are checked at once, each with its own timeout.
    #[arg(long, default_value_t = 15, value_name = "SECS",
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub timeout: u64,
}

/// What checking one target gave.
#[derive(Debug, Clone)]
pub struct TargetReport {
    /// The target's name.
    pub name: String,
    /// `user@host:port/database`, without the password.
    pub server: String,
    /// `schema.table`, sanitized.
    pub table: String,
    pub outcome: Outcome,
}

#[derive(Debug, Clone)]
pub enum Outcome {
    Checked {
        taken_at: DateTime<Utc>,
        checks: Vec<CheckResult>,
    },
    /// Nothing could be checked: one sanitized line, and the blocker when the table is locked.
    Failed {
        error: String,
        locked: Option<Box<TableLock>>,
    },
}

impl TargetReport {
    pub fn level(&self) -> Level {
        match &self.outcome {
            Outcome::Checked { checks, .. } => worst(checks),
            Outcome::Failed { .. } => Level::Unknown,
        }
    }

    /// The checks' summary ("1 critical, 0 warning, ...") or why there are none.
    fn summary(&self) -> String {
        match &self.outcome {
            Outcome::Checked { checks, .. } => checks::summary(checks),
            Outcome::Failed { error, .. } => error.clone(),
        }
    }

    /// What makes the target as bad as it is: its worst check, or why it could not be checked.
    fn why(&self) -> String {
        match &self.outcome {
            Outcome::Checked { checks, .. } => {
                let level = worst(checks);
                checks
                    .iter()
                    .find(|c| !c.pending && c.level == level)
                    .map(|c| format!("{}: {}", sanitize::line(&c.name), sanitize::line(&c.value)))
                    .unwrap_or_default()
            }
            Outcome::Failed { error, .. } => cut(error, 80),
        }
    }

    /// The single-target JSON document, with the target's name and server.
    pub fn to_json(&self) -> serde_json::Value {
        let mut doc = match &self.outcome {
            Outcome::Checked { taken_at, checks } => render_json(&self.table, *taken_at, checks),
            Outcome::Failed { error, locked } => json!({
                "table": self.table,
                "taken_at": null,
                "status": Level::Unknown.as_str(),
                "error": error,
                "locked": locked,
                "checks": [],
            }),
        };
        if let Some(obj) = doc.as_object_mut() {
            obj.insert("target".into(), json!(self.name));
            obj.insert("server".into(), json!(self.server));
        }
        doc
    }
}

pub async fn run(global: &Global, config: &Config, args: &CheckArgs) -> Result<i32> {
    // When nothing can be checked, UNKNOWN is said on stdout in the requested format (Nagios
    // reads the first line of stdout; scripts parse the JSON), and once more on stderr.
    let targets = match fleet::targets(config, global) {
        Ok(t) => t,
        Err(e) => {
            let shown = if config.targets.is_empty() {
                format!("{}.{}", global.schema, global.table)
            } else {
                "targets".to_string()
            };
            let report = TargetReport {
                name: String::new(),
                server: String::new(),
                table: sanitize::line(&shown),
                outcome: failed(&e),
            };
            if let Outcome::Failed { error, .. } = &report.outcome {
                eprintln!("idemtop: UNKNOWN: {error}");
            }
            print_single(&report, args.format, false);
            return Ok(Level::Unknown.exit_code());
        }
    };
    let deadline = std::time::Duration::from_secs(args.timeout);
    let outcomes = fleet::each(&targets, deadline, |t| check_target(t, config)).await;
    let reports: Vec<TargetReport> = targets
        .iter()
        .zip(outcomes)
        .map(|(t, outcome)| {
            let (table, outcome) = match outcome {
                Ok((table, taken_at, checks)) => (table, Outcome::Checked { taken_at, checks }),
                Err(e) => (t.table.to_string(), failed(&e)),
            };
            TargetReport {
                name: t.name.clone(),
                server: t.describe(),
                table: sanitize::line(&table),
                outcome,
            }
        })
        .collect();
    for r in &reports {
        if let Outcome::Failed { error, .. } = &r.outcome {
            match reports.len() {
                1 => eprintln!("idemtop: UNKNOWN: {error}"),
                _ => eprintln!("idemtop: target {}: UNKNOWN: {error}", r.name),
            }
        }
    }
    match reports.as_slice() {
        [one] => print_single(one, args.format, true),
        many => match args.format {
            Format::Text => print!("{}", render_fleet_text(many)),
            Format::Json => println!(
                "{}",
                serde_json::to_string_pretty(&render_fleet_json(many))?
            ),
        },
    }
    Ok(fleet_level(&reports).exit_code())
}

/// One target: the snapshot's table name, when it was taken, and the checks.
async fn check_target(
    t: &Target,
    config: &Config,
) -> Result<(String, DateTime<Utc>, Vec<CheckResult>)> {
    use sqlx::Connection;
    let mut conn = t.connect.connect().await?;
    let (snap, results) = checks::run_once(&mut conn, &t.table, config).await?;
    let _ = conn.close().await;
    Ok((snap.table, snap.taken_at, results))
}

fn failed(e: &anyhow::Error) -> Outcome {
    Outcome::Failed {
        error: sanitize::line(format!("{e:#}").lines().next().unwrap_or("")),
        locked: crate::db::locks::locked_in(e).cloned().map(Box::new),
    }
}

/// The one-target output, as before fleets: text, or the JSON document (naming the target and
/// its server when `named`: not when the configuration itself failed).
fn print_single(r: &TargetReport, format: Format, named: bool) {
    match (&r.outcome, format) {
        (Outcome::Checked { taken_at, checks }, Format::Text) => {
            print!("{}", render_text(&r.table, *taken_at, checks))
        }
        (Outcome::Failed { error, .. }, Format::Text) => {
            println!("UNKNOWN: {}: {error}", r.table)
        }
        (_, Format::Json) => {
            let mut doc = r.to_json();
            if let (false, Some(obj)) = (named, doc.as_object_mut()) {
                obj.remove("target");
                obj.remove("server");
            }
            println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default())
        }
    }
}

/// The worst level of `checks`, pending ones left out (ok when there are none).
pub fn worst(checks: &[CheckResult]) -> Level {
    checks::worst(checks)
}

/// The fleet's level: the worst target's.
pub fn fleet_level(reports: &[TargetReport]) -> Level {
    Level::worst(reports.iter().map(TargetReport::level))
}

/// At most `max` characters of `s`, with `…` when cut.
fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// "1 critical, 0 warning, 2 unknown, 17 ok" over targets.
fn fleet_counts(reports: &[TargetReport]) -> [(Level, usize); 4] {
    [Level::Critical, Level::Warning, Level::Unknown, Level::Ok]
        .map(|l| (l, reports.iter().filter(|r| r.level() == l).count()))
}

/// The fleet's status line (Nagios reads it): the worst state, how many targets are in each
/// state, and the worst targets (at most three named) with their worst check or error.
pub fn fleet_summary(reports: &[TargetReport]) -> String {
    let level = fleet_level(reports);
    let counts = fleet_counts(reports)
        .iter()
        .map(|(l, n)| format!("{n} {}", l.as_str()))
        .collect::<Vec<_>>()
        .join(", ");
    let mut line = format!("{}: {} targets: {counts}", level.label(), reports.len());
    let worst: Vec<&TargetReport> = reports.iter().filter(|r| r.level() == level).collect();
    if level != Level::Ok {
        let named: Vec<String> = worst
            .iter()
            .take(3)
            .map(|r| format!("{} ({})", r.name, r.why()))
            .collect();
        line.push_str(&format!("; worst: {}", named.join(", ")));
        if worst.len() > 3 {
            line.push_str(&format!(" and {} more", worst.len() - 3));
        }
    }
    line
}

/// The fleet as text: the status line; one line per target, worst first; then every check
/// that is not OK, by target.
pub fn render_fleet_text(reports: &[TargetReport]) -> String {
    let mut order: Vec<&TargetReport> = reports.iter().collect();
    order.sort_by_key(|r| r.level());
    let name_w = reports.iter().map(|r| r.name.len()).max().unwrap_or(0);
    let table_w = reports
        .iter()
        .map(|r| r.table.chars().count())
        .max()
        .unwrap_or(0);
    let server_w = reports
        .iter()
        .map(|r| r.server.chars().count())
        .max()
        .unwrap_or(0);
    let mut out = fleet_summary(reports);
    out.push('\n');
    for r in &order {
        out.push_str(&format!(
            "{:<8}  {:<name_w$}  {:<table_w$}  {:<server_w$}  {}\n",
            r.level().label(),
            r.name,
            r.table,
            r.server,
            r.summary()
        ));
    }
    let mut details = String::new();
    for r in &order {
        if let Outcome::Checked { checks, .. } = &r.outcome {
            for c in checks.iter().filter(|c| c.level != Level::Ok || c.pending) {
                details.push_str(&format!(
                    "{:<name_w$}  {:<8}  {}  {}  — {}\n",
                    r.name,
                    c.level.label(),
                    sanitize::line(&c.name),
                    sanitize::line(&c.value),
                    sanitize::line(&c.detail),
                ));
            }
        }
    }
    if !details.is_empty() {
        out.push('\n');
        out.push_str(&details);
    }
    out
}

/// `{"status", "counts": {"ok", "warning", "critical", "unknown"}, "targets": [...]}`, each
/// target the single-target document with `target` and `server`, in the configuration's order.
pub fn render_fleet_json(reports: &[TargetReport]) -> serde_json::Value {
    let counts: serde_json::Map<String, serde_json::Value> = fleet_counts(reports)
        .iter()
        .map(|(l, n)| (l.as_str().to_string(), json!(n)))
        .collect();
    json!({
        "status": fleet_level(reports).as_str(),
        "counts": counts,
        "targets": reports.iter().map(TargetReport::to_json).collect::<Vec<_>>(),
    })
}

/// One line per check, worst first (`LEVEL  name  value  — detail`), then a summary line.
pub fn render_text(table: &str, taken_at: DateTime<Utc>, checks: &[CheckResult]) -> String {
    let name_w = checks
        .iter()
        .map(|c| c.name.chars().count())
        .max()
        .unwrap_or(0);
    let value_w = checks
        .iter()
        .map(|c| c.value.chars().count())
        .max()
        .unwrap_or(0)
        .min(40);
    // The summary first: Nagios/Icinga take the first line as the status text.
    let mut out = format!(
        "{}: {} at {}: {}\n",
        worst(checks).label(),
        sanitize::line(table),
        taken_at.format("%Y-%m-%d %H:%M:%S UTC"),
        checks::summary(checks)
    );
    for c in checks {
        out.push_str(&format!(
            "{:<8}  {:<name_w$}  {:<value_w$}  — {}\n",
            c.level.label(),
            sanitize::line(&c.name),
            sanitize::line(&c.value),
            sanitize::line(&c.detail),
        ));
    }
    out
}

/// `{"table", "taken_at", "status", "checks": [{"id", "name", "level", "value", "detail", "advice"}]}`.
pub fn render_json(
    table: &str,
    taken_at: DateTime<Utc>,
    checks: &[CheckResult],
) -> serde_json::Value {
    json!({
        "table": table,
        "taken_at": taken_at,
        "status": worst(checks).as_str(),
        "checks": checks,
    })
}

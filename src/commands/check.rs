//! `idemtop check`: every health check once, as a Nagios/Icinga plugin. Exit code = worst level
//! (0 ok, 1 warning, 2 critical, 3 unknown); cannot connect, no table, or the table locked: 3,
//! with an UNKNOWN status on stdout in the requested format (JSON: `status`, `error`, `locked`).

use anyhow::Result;
use chrono::{DateTime, Utc};
use serde_json::json;

use crate::checks::{self, CheckResult, Level};
use crate::config::Config;
use crate::options::{Format, Global};
use crate::sanitize;

#[derive(clap::Args, Debug, Clone)]
pub struct CheckArgs {
    /// Output: one line per check and a summary (text), or one JSON document.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

pub async fn run(global: &Global, config: &Config, args: &CheckArgs) -> Result<i32> {
    let shown_table = global
        .table_ref()
        .map(|t| t.to_string())
        .unwrap_or_else(|_| format!("{}.{}", global.schema, global.table));
    // Nothing could be checked: UNKNOWN, said on stdout in the requested format (Nagios reads
    // the first line of stdout; scripts parse the JSON), and once more on stderr.
    let format = args.format;
    let unknown = |e: anyhow::Error| {
        let msg = sanitize::line(format!("{e:#}").lines().next().unwrap_or(""));
        let lock = crate::db::locks::locked_in(&e).cloned();
        match format {
            Format::Text => println!("UNKNOWN: {}: {msg}", sanitize::line(&shown_table)),
            Format::Json => println!(
                "{}",
                serde_json::to_string_pretty(&json!({
                    "table": shown_table,
                    "taken_at": null,
                    "status": Level::Unknown.as_str(),
                    "error": msg,
                    "locked": lock,
                    "checks": [],
                }))
                .unwrap_or_default()
            ),
        }
        eprintln!("idemtop: UNKNOWN: {msg}");
        Ok(Level::Unknown.exit_code())
    };
    let table = match global.table_ref() {
        Ok(t) => t,
        Err(e) => return unknown(e),
    };
    let connect = match global.connect_config_for(config) {
        Ok(c) => c,
        Err(e) => return unknown(e),
    };
    let mut conn = match connect.connect().await {
        Ok(c) => c,
        Err(e) => return unknown(e),
    };
    let (snap, results) = match checks::run_once(&mut conn, &table, config).await {
        Ok(r) => r,
        Err(e) => return unknown(e),
    };
    // The mapping: its message on stderr (text; the table's own is said nothing about), the
    // whole report as `mapping` (JSON).
    match args.format {
        Format::Text => {
            if let Some(m) = crate::commands::snapshot::mapping_message(&snap) {
                eprintln!("{m}");
            }
            print!("{}", render_text(&snap.table, snap.taken_at, &results))
        }
        Format::Json => {
            let mut doc = render_json(&snap.table, snap.taken_at, &results);
            if let Some(map) = doc.as_object_mut() {
                map.insert("mapping".into(), serde_json::to_value(&snap.mapping)?);
            }
            println!("{}", serde_json::to_string_pretty(&doc)?)
        }
    }
    Ok(worst(&results).exit_code())
}

/// The worst level of `checks`, pending ones left out (ok when there are none).
pub fn worst(checks: &[CheckResult]) -> Level {
    checks::worst(checks)
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

/// `{"table", "taken_at", "status", "checks": [{"id", "name", "level", "value", "detail", "advice",
/// "pending", "not_applicable"}]}` (`idemtop check` adds `mapping`, as in the snapshot).
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

//! Command-line interface: global connection flags, then a subcommand (default: `watch`).

use clap::{Parser, Subcommand};

pub use crate::options::{Format, Global, MigrateAction, MigrateLayout};

#[derive(Debug, Parser)]
#[command(
    name = "idemtop",
    version,
    about = "A terminal dashboard for PostgreSQL idempotency-key tables",
    long_about = "idemtop watches a PostgreSQL idempotency-key table (migration 045 of the \
                  idempotency guide): live health, maintenance (cleanup, ANALYZE, VACUUM) and a \
                  record browser. Without a subcommand it opens the dashboard (`watch`)."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Open the live dashboard (the default).
    Watch,
    /// Print one snapshot of the table's health (text or JSON) and exit.
    Snapshot {
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Also run the exact per-operation counts on a large table (bounded by a timeout).
        #[arg(long)]
        exact: bool,
    },
    /// Measure idemtop against the guide's naive queries on a throwaway server it fills itself
    /// (runs the separate `idemtop-bench` binary with these arguments; `idemtop bench --help`).
    #[command(disable_help_flag = true)]
    Bench {
        #[arg(
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "ARGS"
        )]
        args: Vec<std::ffi::OsString>,
    },
    /// A throwaway PostgreSQL with live synthetic traffic, and the dashboard on it.
    Demo(crate::commands::demo::DemoArgs),
    /// Run every health check once; exit 0 ok, 1 warning, 2 critical, 3 unknown (Nagios).
    Check(crate::commands::check::CheckArgs),
    /// Serve Prometheus metrics (snapshot figures and check levels) on /metrics.
    Metrics(crate::commands::metrics::MetricsArgs),
    /// Delete expired rows in short batches (for cron jobs and scripts).
    Cleanup(crate::commands::cleanup::CleanupArgs),
    /// Detect the table's shape and print its column mapping as a `[[table]]` config section;
    /// without --table and no guide-shaped table, list the tables that look like idempotency
    /// tables.
    Schema(crate::commands::schema::SchemaArgs),
    /// Apply, revert or list the embedded migrations (045 table, 046 cleanup function).
    Migrate {
        #[command(subcommand)]
        action: MigrateAction,
        /// `partitioned`: the optional layout of migrations/partitioned (range on expires_at).
        #[arg(long, value_enum, default_value_t = MigrateLayout::Plain, global = true)]
        layout: MigrateLayout,
    },
}

/// Whether `--table` was given on the command line `args` (as the process received them), rather
/// than left at its default.
pub fn table_given<I, T>(args: I) -> bool
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    use clap::parser::ValueSource;
    use clap::CommandFactory;
    let Ok(m) = Cli::command().try_get_matches_from(args) else {
        return false;
    };
    let given = |m: &clap::ArgMatches| m.value_source("table") == Some(ValueSource::CommandLine);
    given(&m) || m.subcommand().is_some_and(|(_, sub)| given(sub))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_zero_statement_timeout_is_refused_not_unbounded() {
        let err = Cli::try_parse_from(["idemtop", "--statement-timeout", "0", "snapshot"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("0 is not in 1..=3600000"), "{err}");
        let ok =
            Cli::try_parse_from(["idemtop", "--statement-timeout", "250", "snapshot"]).unwrap();
        assert_eq!(
            ok.global.connect_config().statement_timeout,
            Duration::from_millis(250)
        );
    }

    #[test]
    fn a_table_given_on_the_command_line_is_told_from_the_default() {
        assert!(!table_given(["idemtop", "schema"]));
        assert!(table_given(["idemtop", "schema", "--table", "t"]));
        assert!(table_given(["idemtop", "--table", "t", "schema"]));
        assert!(table_given([
            "idemtop",
            "--table",
            "idempotency_records",
            "schema"
        ]));
        assert!(!table_given(["idemtop", "--schema", "s", "schema"]));
    }

    #[test]
    fn the_timestamp_zone_reaches_the_connection() {
        let cli = Cli::try_parse_from(["idemtop", "--timestamp-zone", "Asia/Tokyo"]).unwrap();
        assert_eq!(
            cli.global.connect_config().timestamp_zone.as_deref(),
            Some("Asia/Tokyo")
        );
    }
}

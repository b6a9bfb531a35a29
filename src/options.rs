//! The options every command reads: the connection and table flags (`Global`), the output
//! format, and `migrate`'s action and layout. The subcommands take these, never the parser
//! (`cli`), so that the parser may name the subcommands' own arguments without a cycle.

use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};

use crate::db::connect::ConnectConfig;
use crate::ident::TableRef;

#[derive(Debug, Clone, Args)]
pub struct Global {
    /// PostgreSQL URL (postgres://user[:password]@host[:port]/db). Without it, libpq's PG*
    /// variables (PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE, ...) are used.
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    pub database_url: Option<String>,

    /// Schema of the watched table.
    #[arg(long, default_value = "public", global = true)]
    pub schema: String,

    /// Name of the watched table.
    #[arg(long, default_value = "idempotency_records", global = true)]
    pub table: String,

    /// statement_timeout for idemtop's queries, in milliseconds (1..=3600000). There is no
    /// "0 = no timeout": an unbounded query could hold the dashboard and its locks forever.
    #[arg(long, default_value_t = 5000, global = true, value_name = "MS",
          value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    pub statement_timeout: u64,

    /// Time zone in which `timestamp without time zone` columns are read (e.g. Europe/Berlin).
    /// Default: the database's own TimeZone, as psql uses it (ALTER ROLE/DATABASE settings, else
    /// the server's configuration when this role may read it).
    #[arg(long, global = true, value_name = "ZONE")]
    pub timestamp_zone: Option<String>,

    /// Read-only session: every write is refused by the server itself.
    #[arg(long, global = true)]
    pub read_only: bool,

    /// No colours (also when NO_COLOR is set).
    #[arg(long, global = true)]
    pub no_color: bool,

    /// Dashboard refresh interval in seconds (+/- change it live) [default: 2, or the config's].
    #[arg(long, global = true, value_name = "SECS")]
    pub interval: Option<u64>,

    /// Configuration file (thresholds, retention policy, interval, colours)
    /// [default: $XDG_CONFIG_HOME/idemtop/config.toml or ~/.config/idemtop/config.toml].
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<std::path::PathBuf>,

    /// Print the default configuration (TOML, commented) and exit.
    #[arg(long, global = true)]
    pub print_config: bool,

    /// Work on this one of the configuration's [[target]] entries (by its name). Without it,
    /// `check` and `metrics` cover every target, and the other commands use the flags above.
    #[arg(long, global = true, value_name = "NAME")]
    pub target: Option<String>,

    /// The table's mapping on the command line, instead of a `[[table]]` section (the same
    /// keys; with any of these flags they are the whole mapping of --schema.--table): the key
    /// column(s), comma-separated.
    #[arg(
        long = "key",
        global = true,
        value_name = "COL[,COL]",
        value_delimiter = ',',
        help_heading = "Table mapping"
    )]
    pub map_key: Vec<String>,
    /// Mapping: the expiry column (a timestamp).
    #[arg(
        long = "expires",
        global = true,
        value_name = "COL",
        help_heading = "Table mapping"
    )]
    pub map_expires: Option<String>,
    /// Mapping: no expiry column; a row expires this long after --created (e.g. 72h, 30d).
    #[arg(
        long = "ttl",
        global = true,
        value_name = "DURATION",
        help_heading = "Table mapping"
    )]
    pub map_ttl: Option<String>,
    /// Mapping: a permanent ledger, nothing ever expires (cleanup is refused).
    #[arg(long = "permanent", global = true, help_heading = "Table mapping")]
    pub map_permanent: bool,
    /// Mapping: the creation column (a timestamp).
    #[arg(
        long = "created",
        global = true,
        value_name = "COL",
        help_heading = "Table mapping"
    )]
    pub map_created: Option<String>,
    /// Mapping: the stored status code column.
    #[arg(
        long = "status",
        global = true,
        value_name = "COL",
        help_heading = "Table mapping"
    )]
    pub map_status: Option<String>,
    /// Mapping: the stored response column.
    #[arg(
        long = "payload",
        global = true,
        value_name = "COL",
        help_heading = "Table mapping"
    )]
    pub map_payload: Option<String>,
    /// Mapping: the operation column(s), comma-separated (several are joined for display).
    #[arg(
        long = "operation",
        global = true,
        value_name = "COL[,COL]",
        value_delimiter = ',',
        help_heading = "Table mapping"
    )]
    pub map_operation: Vec<String>,
}

impl Global {
    /// The mapping given by the `--key`, `--expires`, `--ttl`, `--permanent`, `--created`,
    /// `--status`, `--payload` and `--operation` flags, as the `[[table]]` section of
    /// --schema.--table; `None` when none of them is given. Checked as a section is.
    pub fn mapping_from_flags(&self) -> anyhow::Result<Option<crate::db::shape::TableEntry>> {
        let given = !self.map_key.is_empty()
            || self.map_expires.is_some()
            || self.map_ttl.is_some()
            || self.map_permanent
            || self.map_created.is_some()
            || self.map_status.is_some()
            || self.map_payload.is_some()
            || !self.map_operation.is_empty();
        if !given {
            return Ok(None);
        }
        let trimmed = |v: &[String]| -> Vec<String> {
            v.iter()
                .map(|c| c.trim().to_string())
                .filter(|c| !c.is_empty())
                .collect()
        };
        let fields = crate::db::shape::MappingFields {
            key: trimmed(&self.map_key),
            expires: self.map_expires.clone(),
            ttl: self.map_ttl.clone(),
            permanent: self.map_permanent,
            created: self.map_created.clone(),
            status: self.map_status.clone(),
            payload: self.map_payload.clone(),
            operation: trimmed(&self.map_operation),
            ..Default::default()
        };
        let mapping = crate::db::shape::Mapping::try_from(fields).map_err(|e| {
            anyhow::anyhow!(
                "the table mapping flags (--key, --expires, --ttl, --permanent, --created, \
                 --status, --payload, --operation): {}",
                crate::sanitize::line(&e)
            )
        })?;
        Ok(Some(crate::db::shape::TableEntry {
            schema: self.schema.clone(),
            table: self.table.clone(),
            mapping,
        }))
    }

    pub fn table_ref(&self) -> anyhow::Result<TableRef> {
        TableRef::new(&self.schema, &self.table)
            .map_err(|e| anyhow::anyhow!("invalid --schema/--table: {e}"))
    }

    pub fn connect_config(&self) -> ConnectConfig {
        ConnectConfig {
            url: self.database_url.clone(),
            read_only: self.read_only,
            statement_timeout: Duration::from_millis(self.statement_timeout),
            application_name: "idemtop".into(),
            timestamp_zone: self.timestamp_zone.clone(),
        }
    }

    /// [`Global::connect_config`], with the zone of `timestamp without time zone` columns from
    /// the table's `[[table]]` section (`timestamp_zone`) when `--timestamp-zone` is not given:
    /// every session then reads the table's timestamps in the zone the service writes them in.
    pub fn connect_config_for(
        &self,
        config: &crate::config::Config,
    ) -> anyhow::Result<ConnectConfig> {
        let mut c = self.connect_config();
        zone_from_config(&mut c, config, &self.table_ref()?);
        Ok(c)
    }

    /// `--interval`, else the configuration's `refresh_interval_secs`.
    pub fn refresh_interval(&self, config: &crate::config::Config) -> Duration {
        Duration::from_secs(self.interval.unwrap_or(config.refresh_interval_secs).max(1))
    }

    /// The theme: colours from the configuration, none with `--no-color`/`NO_COLOR`.
    pub fn theme(&self, config: &crate::config::Config) -> crate::ui::Theme {
        crate::ui::Theme::from_config(self.color(), &config.colors)
    }

    /// `--no-color`, or `NO_COLOR` set to anything non-empty (no-color.org).
    pub fn color(&self) -> bool {
        !self.no_color && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
    }
}

/// `migrate --layout`: which migration set ([`crate::db::migrate::Layout`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum MigrateLayout {
    #[default]
    Plain,
    Partitioned,
}

impl From<MigrateLayout> for crate::db::migrate::Layout {
    fn from(l: MigrateLayout) -> Self {
        match l {
            MigrateLayout::Plain => Self::Plain,
            MigrateLayout::Partitioned => Self::Partitioned,
        }
    }
}

#[derive(Debug, Clone, Copy, Subcommand, PartialEq, Eq)]
pub enum MigrateAction {
    /// Apply every pending migration, each in its own transaction.
    Run,
    /// Revert the newest applied migration.
    Revert,
    /// List the migrations and whether each is applied.
    Status,
}

#[derive(Debug, Clone, Copy, Default, ValueEnum, PartialEq, Eq)]
pub enum Format {
    #[default]
    Text,
    Json,
}

/// `timestamp without time zone` columns are read in the zone of the table's `[[table]]`
/// section (`timestamp_zone`) unless `--timestamp-zone` already set one.
pub fn zone_from_config(c: &mut ConnectConfig, config: &crate::config::Config, table: &TableRef) {
    if c.timestamp_zone.is_none() {
        c.timestamp_zone = crate::db::shape::configured(&config.tables, table)
            .and_then(|e| e.mapping.timestamp_zone())
            .map(str::to_owned);
    }
}

//! The fleet: every table idemtop watches, as [`Target`]s, and running one piece of work on each
//! of them at once with its own deadline ([`each`]). No UI, no output: `idemtop check`,
//! `idemtop metrics` and the dashboard's Overview build on this.
//!
//! Targets come from the configuration's `[[target]]` entries ([`crate::config::TargetEntry`]):
//!
//! ```toml
//! [[target]]
//! name = "orders"                                   # unique; letters, digits, . _ - : /
//! url = "postgres://monitor@db1.internal/orders"    # or: service = "orders" (pg_service.conf)
//! schema = "public"                                 # default public
//! table = "idempotency_records"                     # default idempotency_records
//! ```
//!
//! A target's connection is its `url`, or its libpq `service` ([`service`]), or, with neither,
//! the `PG*` environment. A password is never needed in the file: sqlx reads the passfile
//! (`PGPASSFILE`, else `~/.pgpass`) for a connection that has none, matching its host, port,
//! database and user, as libpq does. The session settings (`--statement-timeout`,
//! `--read-only`, `--timestamp-zone`) come from the global flags for every target.
//!
//! Without any `[[target]]`, there is one implicit target from the global flags
//! (`--database-url` / `DATABASE_URL` / `PG*`, `--schema`, `--table`), named after its database
//! and table (`app/public.idempotency_records`). `--target NAME` picks one target either way.

pub mod collect;
pub mod service;

use std::future::Future;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use sqlx::postgres::PgConnectOptions;

use crate::config::{Config, TargetEntry};
use crate::db::connect::{ConnectConfig, NotResponding};
use crate::ident::TableRef;
use crate::options::Global;
use crate::sanitize;

/// The longest target name.
pub const MAX_NAME_LEN: usize = 64;

/// One watched table: where it is and what it is called.
#[derive(Debug, Clone)]
pub struct Target {
    /// Unique in the fleet; safe in a URL query, a metric label and a terminal
    /// ([`validate_name`]).
    pub name: String,
    pub connect: ConnectConfig,
    pub table: TableRef,
}

impl Target {
    /// `user@host:port/database`, without the password.
    pub fn describe(&self) -> String {
        self.connect.describe()
    }
}

/// The targets of this run: the configuration's `[[target]]` entries in their order (or the
/// implicit one from the global flags), or only `--target`'s. A configuration error (a bad or
/// repeated name, both `url` and `service`, an undefined service, an unknown `--target`) is one
/// readable error; nothing is connected to here.
pub fn targets(config: &Config, global: &Global) -> Result<Vec<Target>> {
    let mut all = targets_unzoned(config, global)?;
    for t in &mut all {
        crate::options::zone_from_config(&mut t.connect, config, &t.table);
    }
    Ok(all)
}

fn targets_unzoned(config: &Config, global: &Global) -> Result<Vec<Target>> {
    let wanted = global.target.as_deref();
    if config.targets.is_empty() {
        let only = implicit(global)?;
        if let Some(w) = wanted.filter(|w| *w != only.name) {
            bail!(
                "unknown target \"{}\": the configuration has no [[target]], and the one target \
                 (from the global flags) is \"{}\"",
                sanitize::line(w),
                only.name
            );
        }
        return Ok(vec![only]);
    }
    check_entries(&config.targets)?;
    let chosen: Vec<&TargetEntry> = match wanted {
        None => config.targets.iter().collect(),
        Some(w) => {
            let Some(e) = config.targets.iter().find(|e| e.name == w) else {
                bail!(
                    "unknown target \"{}\": the configuration's targets are {}",
                    sanitize::line(w),
                    list_names(config.targets.iter().map(|e| e.name.as_str()))
                );
            };
            vec![e]
        }
    };
    chosen.into_iter().map(|e| resolve(e, global)).collect()
}

/// The global flags of a one-table command (the dashboard, `snapshot`, `cleanup`...) with
/// `--target`'s connection and table in place of `--database-url`, `--schema` and `--table`;
/// the flags unchanged without `--target`.
pub fn global_for_target(config: &Config, global: &Global) -> Result<Global> {
    if global.target.is_none() {
        return Ok(global.clone());
    }
    let mut chosen = targets(config, global)?;
    let Some(t) = chosen.pop() else {
        bail!("no target");
    };
    Ok(Global {
        database_url: t.connect.url,
        schema: t.table.schema.as_str().to_string(),
        table: t.table.table.as_str().to_string(),
        ..global.clone()
    })
}

/// `"a", "b", "c"` (at most 20 names, then how many more).
pub fn list_names<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let names: Vec<&str> = names.collect();
    let mut out: Vec<String> = names
        .iter()
        .take(20)
        .map(|n| format!("\"{}\"", sanitize::line(n)))
        .collect();
    if names.len() > 20 {
        out.push(format!("and {} more", names.len() - 20));
    }
    out.join(", ")
}

/// A target name: 1 to [`MAX_NAME_LEN`] characters, ASCII letters, digits and `. _ - : /`,
/// beginning with a letter or digit. Such a name needs no quoting in a URL query, a metric
/// label, a Nagios line or a shell.
pub fn validate_name(name: &str) -> Result<()> {
    if name.is_empty() {
        bail!("a target needs a name (name = \"...\")");
    }
    let shown = sanitize::line(name);
    if name.chars().count() > MAX_NAME_LEN {
        bail!("target name \"{shown}\" is longer than {MAX_NAME_LEN} characters");
    }
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        bail!("target name \"{shown}\" must begin with a letter or a digit");
    }
    if let Some(bad) = name.chars().find(|c| !name_char(*c)) {
        bail!(
            "target name \"{shown}\" has {}: use letters, digits and . _ - : /",
            describe_char(bad)
        );
    }
    Ok(())
}

fn name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':' | '/')
}

fn describe_char(c: char) -> String {
    if c.is_control() || c.is_whitespace() || !c.is_ascii() {
        format!("the character U+{:04X}", c as u32)
    } else {
        format!("the character '{c}'")
    }
}

/// Every entry on its own (its name, one connection kind, its identifiers), then the names
/// together (no two alike, ignoring case: `Orders` and `orders` would be confusing).
fn check_entries(entries: &[TargetEntry]) -> Result<()> {
    for (i, e) in entries.iter().enumerate() {
        let at = || match e.name.is_empty() {
            true => format!("[[target]] number {}", i + 1),
            false => format!("target \"{}\"", sanitize::line(&e.name)),
        };
        validate_name(&e.name).map_err(|err| anyhow!("[[target]] number {}: {err}", i + 1))?;
        if e.url.is_some() && e.service.is_some() {
            bail!("{}: give either url or service, not both", at());
        }
        if e.url.as_deref().is_some_and(str::is_empty) || e.service.as_deref() == Some("") {
            bail!(
                "{}: an empty url or service (leave it out for the PG* environment)",
                at()
            );
        }
        table_of(e).map_err(|err| anyhow!("{}: {err}", at()))?;
        if let Some(first) = entries[..i]
            .iter()
            .find(|o| o.name.eq_ignore_ascii_case(&e.name))
        {
            bail!(
                "{}: the name is used twice (also by \"{}\"); target names must be unique",
                at(),
                sanitize::line(&first.name)
            );
        }
    }
    Ok(())
}

fn table_of(e: &TargetEntry) -> Result<TableRef> {
    TableRef::new(
        e.schema.as_deref().unwrap_or("public"),
        e.table.as_deref().unwrap_or("idempotency_records"),
    )
    .map_err(|err| anyhow!("invalid schema or table: {err}"))
}

/// One entry, checked by [`check_entries`], as a target: the service looked up, the URL
/// parsed (so that a malformed one is a configuration error, not a failed connection).
fn resolve(e: &TargetEntry, global: &Global) -> Result<Target> {
    let at = || format!("target \"{}\"", e.name);
    let url = match (&e.url, &e.service) {
        (Some(url), _) => {
            let scheme_ok = ["postgres://", "postgresql://"].iter().any(|s| {
                url.get(..s.len())
                    .is_some_and(|p| p.eq_ignore_ascii_case(s))
            });
            if !scheme_ok || url.parse::<PgConnectOptions>().is_err() {
                // The URL itself is never echoed: it may hold a password.
                bail!(
                    "{}: invalid url: expected postgres://user@host[:port]/database",
                    at()
                );
            }
            Some(url.clone())
        }
        (None, Some(name)) => {
            let svc = service::lookup(name).map_err(|err| anyhow!("{}: {err}", at()))?;
            Some(svc.url())
        }
        (None, None) => None,
    };
    Ok(Target {
        name: e.name.clone(),
        connect: ConnectConfig {
            url,
            ..global.connect_config()
        },
        table: table_of(e).map_err(|err| anyhow!("{}: {err}", at()))?,
    })
}

/// The target of the global flags, named after its database and table.
fn implicit(global: &Global) -> Result<Target> {
    let table = global.table_ref()?;
    let connect = global.connect_config();
    Ok(Target {
        name: implicit_name(connect.url.as_deref(), &table),
        connect,
        table,
    })
}

/// `database/schema.table`, every character outside [`validate_name`]'s set replaced by `_`;
/// the database is the URL's (or `PGDATABASE`, else the user name, as libpq defaults it).
pub fn implicit_name(url: Option<&str>, table: &TableRef) -> String {
    let opts = match url {
        Some(u) => u.parse::<PgConnectOptions>().ok(),
        None => Some(PgConnectOptions::new_without_pgpass()),
    };
    let db = opts
        .map(|o| o.get_database().unwrap_or(o.get_username()).to_string())
        .unwrap_or_else(|| "database".into());
    let raw = format!("{db}/{}.{}", table.schema.as_str(), table.table.as_str());
    let mut name: String = raw
        .chars()
        .map(|c| if name_char(c) { c } else { '_' })
        .take(MAX_NAME_LEN)
        .collect();
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        name.replace_range(..1, "t");
    }
    name
}

/// Run `work` on every target at once, each under its own `deadline`; the results in the
/// targets' order. A target that overruns gets a [`NotResponding`] error (its future is dropped,
/// which closes its connection); the others are not held up by it.
pub async fn each<'a, T, F, Fut>(
    targets: &'a [Target],
    deadline: Duration,
    work: F,
) -> Vec<Result<T>>
where
    F: Fn(&'a Target) -> Fut,
    Fut: Future<Output = Result<T>> + 'a,
{
    let runs = targets.iter().map(|t| {
        let fut = work(t);
        async move {
            match tokio::time::timeout(deadline, fut).await {
                Ok(r) => r,
                Err(_) => Err(anyhow::Error::new(NotResponding(format!(
                    "{}: no answer within {} s",
                    t.describe(),
                    secs(deadline)
                )))),
            }
        }
    });
    futures::future::join_all(runs).await
}

/// A duration in seconds, `1.5` or `8`.
fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{s:.0}")
    } else {
        format!("{s}")
    }
}

#[cfg(test)]
mod tests;

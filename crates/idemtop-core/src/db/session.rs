//! The session's TimeZone: the database's own, as psql would have it.
//!
//! sqlx sends `TimeZone=UTC` in every startup packet, which overrides the server's setting. For
//! `timestamptz` columns that changes nothing but how values are printed; for a
//! `timestamp without time zone` column it changes what `col <= now()` means: the value is read
//! in the session's zone. An application that writes local wall-clock times (its sessions use the
//! database's TimeZone, like psql's) would see idemtop count its rows as expired hours early or
//! late. So every idemtop session sets its TimeZone back to the one the application's sessions
//! get, found in this order:
//!
//! 1. the zone the operator gives (`--timestamp-zone`, config `timestamp_zone`);
//! 2. `ALTER ROLE ... IN DATABASE ... SET timezone`, `ALTER ROLE ... SET`, `ALTER DATABASE ... SET`
//!    (`pg_db_role_setting`, readable by every role);
//! 3. `postgresql.conf` / `ALTER SYSTEM` (`pg_file_settings`: superusers and
//!    `pg_read_all_settings` only), else the server's built-in default (GMT) when that view shows
//!    no setting;
//! 4. otherwise the zone is not known: the session keeps `log_timezone` (which initdb sets to the
//!    same zone as `timezone`) as a best guess, marked [`ZoneSource::Guessed`], and cleanup
//!    refuses to judge a `timestamp without time zone` expiry column by a guess.

use anyhow::{bail, Context, Result};
use serde::Serialize;
use sqlx::PgConnection;

/// Where the session's TimeZone came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ZoneSource {
    /// `--timestamp-zone` / config.
    Given,
    /// `ALTER ROLE ... IN DATABASE ... SET timezone`.
    RoleInDatabase,
    /// `ALTER ROLE ... SET timezone`.
    Role,
    /// `ALTER DATABASE ... SET timezone`.
    Database,
    /// `postgresql.conf` or `ALTER SYSTEM`.
    ConfigFile,
    /// No setting anywhere: the server's built-in default.
    BuiltIn,
    /// Not readable with this role's privileges: `log_timezone`, a guess.
    Guessed,
}

impl ZoneSource {
    /// Certain enough to judge `timestamp without time zone` values by.
    pub fn is_known(self) -> bool {
        self != ZoneSource::Guessed
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ZoneSource::Given => "given",
            ZoneSource::RoleInDatabase => "role_in_database",
            ZoneSource::Role => "role",
            ZoneSource::Database => "database",
            ZoneSource::ConfigFile => "config_file",
            ZoneSource::BuiltIn => "built_in",
            ZoneSource::Guessed => "guessed",
        }
    }

    pub fn parse(s: &str) -> Option<ZoneSource> {
        [
            ZoneSource::Given,
            ZoneSource::RoleInDatabase,
            ZoneSource::Role,
            ZoneSource::Database,
            ZoneSource::ConfigFile,
            ZoneSource::BuiltIn,
            ZoneSource::Guessed,
        ]
        .into_iter()
        .find(|z| z.as_str() == s)
    }

    pub fn describe(self) -> &'static str {
        match self {
            ZoneSource::Given => "given with --timestamp-zone",
            ZoneSource::RoleInDatabase => "ALTER ROLE ... IN DATABASE ... SET timezone",
            ZoneSource::Role => "ALTER ROLE ... SET timezone",
            ZoneSource::Database => "ALTER DATABASE ... SET timezone",
            ZoneSource::ConfigFile => "the server's configuration file",
            ZoneSource::BuiltIn => "the server's built-in default",
            ZoneSource::Guessed => {
                "a guess (log_timezone): this role cannot read the server's timezone setting"
            }
        }
    }
}

/// The TimeZone the session now uses, and where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionZone {
    pub zone: String,
    pub source: ZoneSource,
}

/// The `timezone=` entry of a `pg_db_role_setting.setconfig` array.
fn zone_in(config: Option<&[String]>) -> Option<String> {
    config?.iter().rev().find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        k.eq_ignore_ascii_case("timezone").then(|| v.to_owned())
    })
}

/// Find the zone the application's sessions get (see the module docs) and set this session's
/// TimeZone to it. `given` (an operator's zone) is checked by the server: an unknown zone name is
/// an error.
pub async fn align_timezone(conn: &mut PgConnection, given: Option<&str>) -> Result<SessionZone> {
    let found = match given {
        Some(zone) => SessionZone {
            zone: zone.to_owned(),
            source: ZoneSource::Given,
        },
        None => find_zone(conn)
            .await
            .context("reading the database's TimeZone")?,
    };
    // The source rides along in a custom setting of the session, so that whoever reads the
    // table model on this connection (a pooled one too) learns it without another lookup.
    let set = sqlx::query(
        "SELECT set_config('TimeZone', $1, false), set_config('idemtop.timezone_source', $2, false)",
    )
    .bind(&found.zone)
    .bind(found.source.as_str())
        .execute(&mut *conn)
        .await;
    if let Err(e) = set {
        let why = crate::sanitize::line(&e.to_string());
        bail!(
            "cannot use time zone {:?} ({}): {why}",
            crate::sanitize::line(&found.zone),
            found.source.describe()
        );
    }
    Ok(found)
}

async fn find_zone(conn: &mut PgConnection) -> Result<SessionZone> {
    type Row = (
        Option<Vec<String>>,
        Option<Vec<String>>,
        Option<Vec<String>>,
        bool,
        String,
    );
    let (role_db, role, db, can_read_file, log_zone): Row = sqlx::query_as(
        "SELECT (SELECT setconfig FROM pg_db_role_setting s
                  WHERE s.setdatabase = d.oid AND s.setrole = r.oid),
                (SELECT setconfig FROM pg_db_role_setting s
                  WHERE s.setdatabase = 0 AND s.setrole = r.oid),
                (SELECT setconfig FROM pg_db_role_setting s
                  WHERE s.setdatabase = d.oid AND s.setrole = 0),
                has_table_privilege('pg_catalog.pg_file_settings', 'SELECT'),
                current_setting('log_timezone')
           FROM pg_database d, pg_roles r
          WHERE d.datname = current_database() AND r.rolname = session_user",
    )
    .fetch_one(&mut *conn)
    .await?;
    for (config, source) in [
        (role_db, ZoneSource::RoleInDatabase),
        (role, ZoneSource::Role),
        (db, ZoneSource::Database),
    ] {
        if let Some(zone) = zone_in(config.as_deref()) {
            return Ok(SessionZone { zone, source });
        }
    }
    if can_read_file {
        let file: Option<String> = sqlx::query_scalar(
            "SELECT setting FROM pg_file_settings
              WHERE lower(name) = 'timezone' AND applied AND error IS NULL
              ORDER BY seqno DESC LIMIT 1",
        )
        .fetch_optional(&mut *conn)
        .await?;
        return Ok(match file {
            Some(zone) => SessionZone {
                zone,
                source: ZoneSource::ConfigFile,
            },
            None => SessionZone {
                zone: "GMT".into(),
                source: ZoneSource::BuiltIn,
            },
        });
    }
    Ok(SessionZone {
        zone: log_zone,
        source: ZoneSource::Guessed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zone_entry_is_found_case_insensitively_last_wins() {
        let cfg = vec![
            "search_path=app".to_string(),
            "timezone=Europe/Paris".to_string(),
            "TimeZone=Asia/Tokyo".to_string(),
        ];
        assert_eq!(zone_in(Some(&cfg)).as_deref(), Some("Asia/Tokyo"));
        assert_eq!(zone_in(Some(&cfg[..1])), None);
        assert_eq!(zone_in(None), None);
    }

    #[test]
    fn only_a_guess_is_unknown() {
        assert!(!ZoneSource::Guessed.is_known());
        assert!(ZoneSource::Database.is_known());
        assert!(ZoneSource::BuiltIn.is_known());
    }
}

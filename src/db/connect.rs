//! Connection settings: `--database-url` / `DATABASE_URL`, else libpq's `PG*` variables.
//! Every error is turned into one readable sentence that names the target but never the password.

use std::time::Duration;

use anyhow::{anyhow, Result};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool};

use crate::db::session;
use crate::sanitize;

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct ConnectConfig {
    /// A `postgres://` URL; `None` means libpq's `PGHOST`, `PGPORT`, `PGUSER`, `PGPASSWORD`,
    /// `PGDATABASE`, `PGSSLMODE`... (and `~/.pgpass`).
    pub url: Option<String>,
    /// Session is read-only (`default_transaction_read_only=on`): even a bug cannot write.
    pub read_only: bool,
    /// `statement_timeout` for every statement of this session (0 = none).
    pub statement_timeout: Duration,
    /// `application_name`, so the operator's sessions are recognisable in `pg_stat_activity`.
    pub application_name: String,
    /// The zone that `timestamp without time zone` values are read in; `None`: the database's
    /// own TimeZone, found by [`crate::db::session::align_timezone`].
    pub timestamp_zone: Option<String>,
}

impl Default for ConnectConfig {
    fn default() -> Self {
        Self {
            url: None,
            read_only: false,
            statement_timeout: Duration::from_secs(5),
            application_name: "idemtop".into(),
            timestamp_zone: None,
        }
    }
}

impl ConnectConfig {
    pub fn from_url(url: impl Into<String>) -> Self {
        Self {
            url: Some(url.into()),
            ..Self::default()
        }
    }

    pub fn with_statement_timeout(mut self, timeout: Duration) -> Self {
        self.statement_timeout = timeout;
        self
    }

    pub fn with_application_name(mut self, name: &str) -> Self {
        self.application_name = name.into();
        self
    }

    pub fn options(&self) -> Result<PgConnectOptions> {
        let base = match &self.url {
            Some(url) => url.parse::<PgConnectOptions>().map_err(|e| {
                // The parse error never echoes the URL, but say so plainly anyway.
                anyhow!(
                    "invalid database URL ({}): expected postgres://user[:password]@host[:port]/database",
                    sanitize::line(&first_line(&e.to_string()))
                )
            })?,
            None => PgConnectOptions::new(),
        };
        let mut settings = vec![
            (
                "statement_timeout",
                format!("{}", self.statement_timeout.as_millis()),
            ),
            ("idle_in_transaction_session_timeout", "60000".to_string()),
        ];
        if self.read_only {
            settings.push(("default_transaction_read_only", "on".to_string()));
        }
        Ok(base
            .application_name(&self.application_name)
            .options(settings)
            .log_statements(tracing::log::LevelFilter::Trace)
            .log_slow_statements(tracing::log::LevelFilter::Debug, Duration::from_secs(2)))
    }

    /// `user@host:port/database`: what we connect to, without the password.
    pub fn describe(&self) -> String {
        match self.options() {
            Ok(o) => describe_options(&o),
            Err(_) => "(invalid database URL)".into(),
        }
    }

    /// One connection, with readable errors, its TimeZone aligned with the database's
    /// ([`session::align_timezone`]).
    pub async fn connect(&self) -> Result<PgConnection> {
        let opts = self.options()?;
        let target = describe_options(&opts);
        let mut conn =
            tokio::time::timeout(Duration::from_secs(10), PgConnection::connect_with(&opts))
                .await
                .map_err(|_| anyhow!("cannot connect to {target}: no answer within 10 s"))?
                .map_err(|e| connect_error(&e, &target))?;
        session::align_timezone(&mut conn, self.timestamp_zone.as_deref()).await?;
        Ok(conn)
    }

    /// A small pool. One connection is made first, so a wrong URL, a refused connection or a
    /// bad password is reported at once and readably; the pool itself connects lazily.
    pub async fn pool(&self, max: u32) -> Result<PgPool> {
        let first = self.connect().await?;
        let _ = first.close().await;
        let zone = self.timestamp_zone.clone();
        Ok(PgPoolOptions::new()
            .after_connect(move |conn, _| {
                let zone = zone.clone();
                Box::pin(async move {
                    session::align_timezone(conn, zone.as_deref())
                        .await
                        .map(drop)
                        .map_err(|e| sqlx::Error::Configuration(e.into()))
                })
            })
            .max_connections(max)
            .min_connections(0)
            .acquire_timeout(Duration::from_secs(5))
            .test_before_acquire(true)
            .connect_lazy_with(self.options()?))
    }
}

pub fn describe_options(o: &PgConnectOptions) -> String {
    let host = match o.get_socket() {
        Some(sock) => sock.display().to_string(),
        None => format!("{}:{}", o.get_host(), o.get_port()),
    };
    format!(
        "{}@{}/{}",
        sanitize::line(o.get_username()),
        sanitize::line(&host),
        sanitize::line(o.get_database().unwrap_or(o.get_username()))
    )
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").to_owned()
}

/// A connection failure as one sentence naming the target.
pub fn connect_error(e: &sqlx::Error, target: &str) -> anyhow::Error {
    use std::io::ErrorKind;
    let why = match e {
        sqlx::Error::Io(io) => match io.kind() {
            ErrorKind::ConnectionRefused => {
                "connection refused (is the server running and listening there?)".to_string()
            }
            ErrorKind::NotFound => "no such socket (is the server running?)".to_string(),
            _ => io.to_string(),
        },
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.to_string()).unwrap_or_default();
            let msg = sanitize::line(db.message());
            match code.as_str() {
                "28P01" => format!("authentication failed: {msg}"),
                "28000" => format!("not allowed to connect: {msg}"),
                "3D000" => format!("{msg} (check the database name in the URL or PGDATABASE)"),
                "57P03" => format!("the server is starting up or shutting down: {msg}"),
                "53300" => format!("too many connections: {msg}"),
                _ => msg,
            }
        }
        sqlx::Error::Tls(t) => format!("TLS error: {}", sanitize::line(&t.to_string())),
        sqlx::Error::Configuration(c) => {
            format!("invalid settings: {}", sanitize::line(&c.to_string()))
        }
        sqlx::Error::PoolTimedOut => "timed out waiting for a connection".to_string(),
        other => sanitize::line(&other.to_string()),
    };
    anyhow!("cannot connect to {target}: {why}")
}

/// SQLSTATE of the database error inside `e`, if any (e.g. "42501" insufficient_privilege).
pub fn sqlstate(e: &anyhow::Error) -> Option<String> {
    e.chain()
        .find_map(|c| c.downcast_ref::<sqlx::Error>())
        .and_then(db_sqlstate)
}

/// The SQLSTATE of a server error (`None` for I/O, protocol and other client-side errors).
pub fn db_sqlstate(e: &sqlx::Error) -> Option<String> {
    match e {
        sqlx::Error::Database(db) => db.code().map(|c| c.to_string()),
        _ => None,
    }
}

/// True when the error means the connection itself is gone (server restart, network).
pub fn is_connection_lost(e: &anyhow::Error) -> bool {
    e.chain().any(|c| match c.downcast_ref::<sqlx::Error>() {
        Some(sqlx::Error::Io(_))
        | Some(sqlx::Error::PoolTimedOut)
        | Some(sqlx::Error::PoolClosed)
        | Some(sqlx::Error::Protocol(_)) => true,
        Some(sqlx::Error::Database(db)) => db
            .code()
            .map(|c| c.starts_with("57P") || c.starts_with("08"))
            .unwrap_or(false),
        _ => false,
    })
}

/// Begin a transaction whose statements give up after `timeout` (`statement_timeout` set
/// locally, the value bound): for a scan whose cost grows with the table.
pub async fn begin_bounded(
    conn: &mut PgConnection,
    timeout: Duration,
) -> Result<sqlx::Transaction<'_, sqlx::Postgres>, sqlx::Error> {
    let mut tx = sqlx::Connection::begin(conn).await?;
    sqlx::query("SELECT set_config('statement_timeout', $1, true)")
        .bind(format!("{}ms", timeout.as_millis()))
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_never_shows_the_password() {
        let cfg = ConnectConfig::from_url("postgres://alice:hunter2@example.org:6543/shop");
        let d = cfg.describe();
        assert_eq!(d, "alice@example.org:6543/shop");
        assert!(!d.contains("hunter2"));
    }

    #[test]
    fn bad_url_is_one_readable_error_without_the_password() {
        let cfg = ConnectConfig::from_url("postgres://alice:hunter2@example.org:notaport/shop");
        let err = cfg.options().unwrap_err().to_string();
        assert!(err.starts_with("invalid database URL"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }
}

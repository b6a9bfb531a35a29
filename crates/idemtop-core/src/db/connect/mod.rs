//! Connection settings: `--database-url` / `DATABASE_URL`, else libpq's `PG*` variables.
//! Every error is turned into one readable sentence that names the target but never the password.
//!
//! TLS follows libpq: `sslmode` (default `prefer`), `sslrootcert`, `sslcert` and `sslkey` from
//! the URL's query string, else `PGSSLMODE`, `PGSSLROOTCERT`, `PGSSLCERT`, `PGSSLKEY`, else the
//! files in `~/.postgresql/`. sqlx parses these itself; [`plan_tls`] adds what libpq does and
//! sqlx does not (see there).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, Result};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgSslMode};
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool};

use crate::db::session;
use crate::sanitize;

mod errors;
#[cfg(test)]
mod tests;
mod tls;
mod tls_plan;

pub use errors::*;
use tls::*;
pub use tls_plan::*;

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

    /// What sqlx connects with: the URL or the `PG*` variables, libpq's TLS rules, the
    /// session settings. A TLS setting that cannot work (a missing root certificate for
    /// `verify-full`, an unknown `sslmode`...) is an error here, naming the target.
    pub fn options(&self) -> Result<PgConnectOptions> {
        let base = self.base_options()?;
        let params = TlsParams::gather(self.url.as_deref(), |name| std::env::var(name).ok());
        let plan = plan_tls(&params, is_socket(&base), home_dir().as_deref())
            .map_err(|why| anyhow!("cannot connect to {}: {why}", describe_options(&base)))?;
        Ok(plan.apply(base))
    }

    /// [`options`](Self::options) before the TLS rules.
    fn base_options(&self) -> Result<PgConnectOptions> {
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
            // idemtop's statements are short, or (the exact pass, a cleanup's batches) run
            // often. With the server's default (`jit` on, `jit_above_cost` 100000), the
            // planning EXPLAIN of a cleanup of a 10M-row table took 20-30 ms compiling, and
            // 200 ms on a backend's first use of LLVM, against 1 ms without; the one scan JIT
            // sped up (a full per-operation pass, 6-8% at 10M rows) runs there only on demand.
            ("jit", "off".to_string()),
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
        match self.base_options() {
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
                .map_err(|_| {
                    anyhow::Error::new(CannotConnect(format!(
                        "cannot connect to {target}: no answer within 10 s"
                    )))
                })?
                .map_err(|e| connect_error_in(&e, &target, Some(opts.get_ssl_mode())))?;
        session::align_timezone(&mut conn, self.timestamp_zone.as_deref()).await?;
        Ok(conn)
    }

    /// A small pool. One connection is made first, so a wrong URL, a refused connection or a
    /// bad password is reported at once; it stays in the pool (a command's first query does
    /// not open another). When it fails, [`Self::connect`] says why, readably.
    pub async fn pool(&self, max: u32) -> Result<PgPool> {
        let pool = self.pool_lazy(max)?;
        match pool.acquire().await {
            Ok(mut first) => {
                first.return_to_pool().await;
                Ok(pool)
            }
            Err(_) => {
                pool.close().await;
                let first = self.connect().await?;
                let _ = first.close().await;
                self.pool_lazy(max)
            }
        }
    }

    /// A small pool that connects only when a connection is first asked for (nothing is
    /// awaited here: the Overview opens a target's dashboard without waiting on its server).
    pub fn pool_lazy(&self, max: u32) -> Result<PgPool> {
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

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
    connect_error_in(e, target, None)
}

/// [`connect_error`] for a connection attempted with `mode`, which some TLS advice depends on.
fn connect_error_in(e: &sqlx::Error, target: &str, mode: Option<PgSslMode>) -> anyhow::Error {
    use std::io::ErrorKind;
    if let Some(why) = tls_failure(e, mode) {
        return CannotConnect(format!("cannot connect to {target}: {why}")).into();
    }
    let why = match e {
        sqlx::Error::Io(io) => match io.kind() {
            ErrorKind::ConnectionRefused => {
                "connection refused (is the server running and listening there?)".to_string()
            }
            ErrorKind::NotFound => "no such socket (is the server running?)".to_string(),
            _ => sanitize::line(&io.to_string()),
        },
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.to_string()).unwrap_or_default();
            let msg = sanitize::line(db.message());
            match code.as_str() {
                "28P01" => format!("authentication failed: {msg}"),
                // pg_hba.conf has no line for this kind of connection. The server says which
                // kind: "no encryption" (PostgreSQL 14+) or "SSL off" for plaintext, "SSL
                // encryption" or "SSL on" for TLS.
                "28000"
                    if msg.contains("no pg_hba.conf entry")
                        && (msg.contains("no encryption") || msg.contains("SSL off")) =>
                {
                    format!(
                        "the server requires TLS for this connection (pg_hba.conf allows it \
                         only encrypted): connect with sslmode=require, or better verify-full \
                         with sslrootcert naming the server's CA ({msg})"
                    )
                }
                "28000"
                    if msg.contains("no pg_hba.conf entry")
                        && (msg.contains("SSL encryption") || msg.contains("SSL on")) =>
                {
                    format!(
                        "the server refuses TLS for this connection (pg_hba.conf allows it only \
                         unencrypted, and idemtop does not fall back to plaintext after TLS was \
                         refused): connect with sslmode=disable if that is acceptable ({msg})"
                    )
                }
                "28000" if msg.contains("certificate") => format!(
                    "not allowed to connect: {msg} (the server wants a client certificate \
                     signed by a CA it trusts: set sslcert and sslkey)"
                ),
                "28000" => format!("not allowed to connect: {msg}"),
                "3D000" => format!("{msg} (check the database name in the URL or PGDATABASE)"),
                "57P03" => format!("the server is starting up or shutting down: {msg}"),
                "53300" => format!("too many connections: {msg}"),
                _ => msg,
            }
        }
        sqlx::Error::Tls(t) => format!("TLS error: {}", sanitize::line(&t.to_string())),
        sqlx::Error::Configuration(c) if c.to_string().contains("no keys found") => {
            "the sslkey file holds no private key (expected PEM: BEGIN PRIVATE KEY, BEGIN RSA \
             PRIVATE KEY or BEGIN EC PRIVATE KEY; encrypted keys are not supported)"
                .to_string()
        }
        sqlx::Error::Configuration(c) => {
            format!("invalid settings: {}", sanitize::line(&c.to_string()))
        }
        sqlx::Error::PoolTimedOut => "timed out waiting for a connection".to_string(),
        other => sanitize::line(&other.to_string()),
    };
    CannotConnect(format!("cannot connect to {target}: {why}")).into()
}

/// A connection attempt failed (refused, no answer, authentication, TLS, ...): one sentence
/// naming the target. Counts as a lost connection ([`is_connection_lost`]): the dashboard
/// says "disconnected" and retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CannotConnect(pub String);

impl std::fmt::Display for CannotConnect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CannotConnect {}

/// The server did not answer within the client-side deadline (frozen, or the network is
/// gone): counts as a lost connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotResponding(pub String);

impl std::fmt::Display for NotResponding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NotResponding {}

/// The TLS part of a connection failure as a sentence, `None` when it is not about TLS.
fn tls_failure(e: &sqlx::Error, mode: Option<PgSslMode>) -> Option<String> {
    use rustls::{AlertDescription, CertificateError};
    if let sqlx::Error::Tls(t) = e {
        if t.to_string().contains("server does not support TLS") {
            let mode = mode.map(mode_name).unwrap_or("require");
            return Some(format!(
                "the server does not support TLS (ssl is off there), but sslmode={mode} requires \
                 it: turn ssl on in the server, or connect with sslmode=prefer to allow plaintext"
            ));
        }
    }
    let err = rustls_error(e)?;
    let why = match err {
        rustls::Error::InvalidCertificate(cert) => match cert {
            CertificateError::UnknownIssuer => "the server's certificate is not signed by a \
                trusted CA (unknown CA): set sslrootcert to the certificate of the CA that signed \
                it"
            .to_string(),
            CertificateError::NotValidForNameContext { expected, presented } => {
                let names: Vec<String> = presented.iter().map(|n| presented_name(n)).collect();
                let names = if names.is_empty() {
                    "no host name at all in its subjectAltName".to_string()
                } else {
                    names.join(", ")
                };
                hostname_mismatch(Some((&expected.to_str(), &names)), mode)
            }
            CertificateError::NotValidForName => hostname_mismatch(None, mode),
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "the server's certificate has expired".to_string()
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "the server's certificate is not valid yet (check the clocks)".to_string()
            }
            CertificateError::Revoked => "the server's certificate is revoked".to_string(),
            CertificateError::BadSignature => {
                "the server's certificate has a bad signature".to_string()
            }
            other => format!(
                "the server's certificate was rejected: {} (check it against sslrootcert)",
                sanitize::line(&rustls::Error::InvalidCertificate(other.clone()).to_string())
            ),
        },
        rustls::Error::AlertReceived(
            alert @ (AlertDescription::CertificateRequired
            | AlertDescription::UnknownCA
            | AlertDescription::BadCertificate
            | AlertDescription::CertificateUnknown
            | AlertDescription::DecryptError
            | AlertDescription::AccessDenied),
        ) => format!(
            "the server rejected our TLS client certificate ({}): set sslcert and sslkey to a \
             certificate signed by a CA in the server's ssl_ca_file",
            sanitize::line(&format!("{alert:?}"))
        ),
        rustls::Error::AlertReceived(
            alert @ (AlertDescription::HandshakeFailure | AlertDescription::ProtocolVersion),
        ) => format!(
            "no TLS version or cipher in common with the server ({}): idemtop needs TLS 1.2 or newer",
            sanitize::line(&format!("{alert:?}"))
        ),
        other => format!("TLS error: {}", sanitize::line(&other.to_string())),
    };
    Some(why)
}

/// `names`: the host name connected to and the names the certificate lists, when known.
fn hostname_mismatch(names: Option<(&str, &str)>, mode: Option<PgSslMode>) -> String {
    let mut why = match names {
        Some((expected, listed)) => format!(
            "the server's certificate does not match the host name {} (hostname mismatch: it \
             is for {}): connect by a name it lists",
            sanitize::line(expected),
            sanitize::line(listed)
        ),
        None => "the server's certificate does not match the host name connected to (hostname \
                 mismatch): connect by a name it lists"
            .to_string(),
    };
    if matches!(mode, Some(PgSslMode::VerifyCa)) {
        // sqlx 0.8.6 misses the error variant rustls 0.23.24 introduced for a name mismatch,
        // so its verify-ca checks the host name too (launchbadge/sqlx#3793, fixed after 0.8.6).
        why.push_str(
            " (unlike libpq, sqlx 0.8.6 checks the name for sslmode=verify-ca too, and so for \
             require when a root certificate is present)",
        );
    }
    why
}

/// `DnsName("db.example.org")` -> `db.example.org`, `IpAddress(10.0.0.1)` -> `10.0.0.1`.
fn presented_name(name: &str) -> String {
    for prefix in ["DnsName(", "IpAddress(", "UriName("] {
        if let Some(inner) = name.strip_prefix(prefix).and_then(|r| r.strip_suffix(')')) {
            return inner.trim_matches('"').to_owned();
        }
    }
    name.to_owned()
}

/// The rustls error inside a sqlx error: handshake failures arrive as I/O errors wrapping it.
fn rustls_error(e: &sqlx::Error) -> Option<&rustls::Error> {
    match e {
        sqlx::Error::Io(io) => io.get_ref()?.downcast_ref::<rustls::Error>(),
        sqlx::Error::Tls(t) => t.downcast_ref::<rustls::Error>(),
        _ => None,
    }
}

fn mode_name(mode: PgSslMode) -> &'static str {
    match mode {
        PgSslMode::Disable => "disable",
        PgSslMode::Allow => "allow",
        PgSslMode::Prefer => "prefer",
        PgSslMode::Require => "require",
        PgSslMode::VerifyCa => "verify-ca",
        PgSslMode::VerifyFull => "verify-full",
    }
}

/// A certificate or key as given: a file, or (from a `PGSSL*` variable) the PEM text itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertSource {
    File(PathBuf),
    Pem,
}

impl CertSource {
    /// sqlx's rule for the variables: text that begins and ends like PEM is PEM, else a path.
    fn from_env(value: &str) -> Self {
        let t = value.trim();
        if t.starts_with("-----BEGIN") && t.ends_with("-----") {
            CertSource::Pem
        } else {
            CertSource::File(PathBuf::from(value))
        }
    }
}

/// libpq's TLS parameters as given: the URL's query string wins over the `PGSSL*` variables,
/// as in libpq and sqlx. Empty variables count as unset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsParams {
    pub sslmode: Option<String>,
    pub sslrootcert: Option<CertSource>,
    pub sslcert: Option<CertSource>,
    pub sslkey: Option<CertSource>,
}

impl TlsParams {
    pub fn gather(url: Option<&str>, env: impl Fn(&str) -> Option<String>) -> Self {
        let env = |name: &str| env(name).filter(|v| !v.is_empty());
        let mut p = TlsParams {
            sslmode: env("PGSSLMODE"),
            sslrootcert: env("PGSSLROOTCERT").map(|v| CertSource::from_env(&v)),
            sslcert: env("PGSSLCERT").map(|v| CertSource::from_env(&v)),
            sslkey: env("PGSSLKEY").map(|v| CertSource::from_env(&v)),
        };
        // The same names as sqlx's URL parser; in the URL a value is always a file name.
        if let Some(url) = url.and_then(|u| url::Url::parse(u).ok()) {
            for (key, value) in url.query_pairs() {
                let file = || Some(CertSource::File(PathBuf::from(value.as_ref())));
                match key.as_ref() {
                    "sslmode" | "ssl-mode" => p.sslmode = Some(value.clone().into_owned()),
                    "sslrootcert" | "ssl-root-cert" | "ssl-ca" => p.sslrootcert = file(),
                    "sslcert" | "ssl-cert" => p.sslcert = file(),
                    "sslkey" | "ssl-key" => p.sslkey = file(),
                    _ => {}
                }
            }
        }
        p
    }
}

/// Roots to trust beyond what sqlx was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootPlan {
    /// `sslrootcert=system`: the operating system's store only (sqlx always adds it).
    System,
    /// libpq's default `~/.postgresql/root.crt`.
    File(PathBuf),
}

/// What [`plan_tls`] decided, to be applied to sqlx's options.
#[derive(Debug, Clone)]
pub struct TlsPlan {
    pub mode: PgSslMode,
    pub root: Option<RootPlan>,
    /// libpq's default client certificate and key (`~/.postgresql/postgresql.crt`, `.key`), when
    /// none was given and they exist.
    pub default_cert: Option<PathBuf>,
    pub default_key: Option<PathBuf>,
}

impl TlsPlan {
    pub fn apply(&self, mut o: PgConnectOptions) -> PgConnectOptions {
        o = o.ssl_mode(self.mode);
        match &self.root {
            // sqlx would read a file called "system"; no PEM at all leaves it the system store.
            Some(RootPlan::System) => o = o.ssl_root_cert_from_pem(Vec::new()),
            Some(RootPlan::File(f)) => o = o.ssl_root_cert(f),
            None => {}
        }
        if let Some(c) = &self.default_cert {
            o = o.ssl_client_cert(c);
        }
        if let Some(k) = &self.default_key {
            o = o.ssl_client_key(k);
        }
        o
    }
}

/// libpq's TLS rules on top of what sqlx does with the same parameters:
///
/// - `sslmode` from `PGSSLMODE` is checked (sqlx silently takes `prefer` for a typo);
/// - `allow` becomes `prefer`: sqlx implements `allow` as `disable`, which cannot reach a
///   server that requires TLS, while `prefer` reaches every server `allow` reaches (it only
///   tries TLS first);
/// - Unix sockets never use TLS (`disable`), as in libpq; the server refuses TLS there anyway;
/// - the root certificate defaults to `~/.postgresql/root.crt`; `verify-ca`/`verify-full`
///   without one is an error (sqlx would silently trust the system store instead), and
///   `require` with one present is `verify-ca`;
/// - `sslrootcert=system` trusts the system store, needs `verify-full` and makes it the default;
/// - the client certificate and key default to `~/.postgresql/postgresql.crt` and `.key`; a
///   key must not be readable by group or others (0600; 0640 if owned by root).
///
/// Differences that remain: `prefer` never verifies the certificate and does not retry in
/// plaintext when the TLS attempt fails; a missing `sslcert` file or an `sslkey` without
/// certificate is an error (libpq ignores them, sqlx refuses them); besides `sslrootcert`,
/// sqlx also trusts the system store.
pub fn plan_tls(p: &TlsParams, socket: bool, home: Option<&Path>) -> Result<TlsPlan, String> {
    let system = p.sslrootcert == Some(CertSource::File(PathBuf::from("system")));
    let mode = match p.sslmode.as_deref() {
        Some(m) => m.parse::<PgSslMode>().map_err(|_| {
            format!(
                "invalid sslmode \"{}\" (expected disable, allow, prefer, require, verify-ca or \
                 verify-full)",
                sanitize::line(m)
            )
        })?,
        None if system => PgSslMode::VerifyFull,
        None => PgSslMode::Prefer,
    };
    if system && !matches!(mode, PgSslMode::VerifyFull) {
        return Err(format!(
            "sslmode={} is too weak for sslrootcert=system: use sslmode=verify-full",
            mode_name(mode)
        ));
    }
    let mode = match mode {
        PgSslMode::Allow => PgSslMode::Prefer,
        m => m,
    };
    let mut plan = TlsPlan {
        mode,
        root: None,
        default_cert: None,
        default_key: None,
    };
    if socket || matches!(mode, PgSslMode::Disable) {
        plan.mode = PgSslMode::Disable;
        return Ok(plan);
    }
    let dot_pg = home.map(|h| h.join(".postgresql"));

    // The root certificate.
    let verify = matches!(mode, PgSslMode::VerifyCa | PgSslMode::VerifyFull);
    if system {
        plan.root = Some(RootPlan::System);
    } else {
        let (path, present) = match &p.sslrootcert {
            Some(CertSource::Pem) => (None, true),
            Some(CertSource::File(f)) => (Some(f.clone()), f.exists()),
            None => match &dot_pg {
                Some(d) => {
                    let f = d.join("root.crt");
                    let present = f.exists();
                    if present {
                        plan.root = Some(RootPlan::File(f.clone()));
                    }
                    (Some(f), present)
                }
                None => (None, false),
            },
        };
        if !present && verify {
            let which = match &path {
                Some(f) => format!(
                    "root certificate file \"{}\" does not exist",
                    sanitize::line(&f.display().to_string())
                ),
                None => "no root certificate (sslrootcert is unset and there is no home \
                         directory for ~/.postgresql/root.crt)"
                    .to_string(),
            };
            return Err(format!(
                "sslmode={} needs the CA that signed the server's certificate: {which}; set \
                 sslrootcert to it, use the system's trusted roots with sslrootcert=system, or \
                 use sslmode=require, which does not verify the certificate",
                mode_name(mode)
            ));
        }
        if present && matches!(mode, PgSslMode::Require) {
            plan.mode = PgSslMode::VerifyCa;
        }
    }

    // The client certificate and key.
    let default = |name: &str| dot_pg.as_ref().map(|d| d.join(name));
    let cert_present = match &p.sslcert {
        Some(CertSource::Pem) => true,
        Some(CertSource::File(f)) if f.exists() => true,
        Some(CertSource::File(f)) => {
            return Err(format!(
                "client certificate file \"{}\" (sslcert) does not exist",
                sanitize::line(&f.display().to_string())
            ))
        }
        None => match default("postgresql.crt").filter(|f| f.exists()) {
            Some(f) => {
                plan.default_cert = Some(f);
                true
            }
            None => false,
        },
    };
    if !cert_present {
        if p.sslkey.is_some() {
            return Err("sslkey is set but there is no client certificate: set sslcert too".into());
        }
        return Ok(plan);
    }
    let key = match &p.sslkey {
        Some(CertSource::Pem) => None,
        Some(CertSource::File(f)) => Some(f.clone()),
        None => {
            let f = default("postgresql.key").ok_or_else(|| {
                "a client certificate is set but no private key: set sslkey".to_string()
            })?;
            plan.default_key = Some(f.clone());
            Some(f)
        }
    };
    if let Some(key) = key {
        check_key_file(&key)?;
    }
    Ok(plan)
}

/// libpq's checks of a private key file: it exists, is a plain file, and is not readable by
/// group or others (0600 or less; 0640 or less when owned by root).
fn check_key_file(key: &Path) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let shown = sanitize::line(&key.display().to_string());
    let meta = std::fs::metadata(key).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            format!("a client certificate is set but its private key file \"{shown}\" (sslkey) does not exist")
        } else {
            format!("cannot read the private key file \"{shown}\" (sslkey): {}", sanitize::line(&e.to_string()))
        }
    })?;
    if !meta.is_file() {
        return Err(format!(
            "the private key \"{shown}\" (sslkey) is not a regular file"
        ));
    }
    let mode = meta.mode();
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    if (meta.uid() == euid && mode & 0o077 != 0) || (meta.uid() == 0 && mode & 0o037 != 0) {
        return Err(format!(
            "the private key file \"{shown}\" (sslkey) has group or world access (mode {:04o}): \
             it must be 0600 or less if owned by the current user, 0640 or less if owned by root \
             (chmod 600 it)",
            mode & 0o7777
        ));
    }
    Ok(())
}

/// True when sqlx will connect through a Unix socket (a host that is a directory).
fn is_socket(o: &PgConnectOptions) -> bool {
    o.get_socket().is_some() || o.get_host().starts_with('/')
}

/// libpq's home directory: `$HOME`, else the user database's.
fn home_dir() -> Option<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    if let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        return Some(PathBuf::from(home));
    }
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: a zeroed passwd is a valid value to be overwritten by getpwuid_r.
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: getpwuid_r writes into `pw` and `buf` (its length given) and sets `found` to
    // `&pw` or NULL; the strings it points to live in `buf`, which outlives their use here.
    let rc = unsafe {
        libc::getpwuid_r(
            libc::geteuid(),
            &mut pw,
            buf.as_mut_ptr(),
            buf.len(),
            &mut found,
        )
    };
    if rc != 0 || found.is_null() || pw.pw_dir.is_null() {
        return None;
    }
    // SAFETY: pw_dir points to a NUL-terminated string inside `buf`.
    let dir = unsafe { std::ffi::CStr::from_ptr(pw.pw_dir) };
    Some(PathBuf::from(std::ffi::OsStr::from_bytes(dir.to_bytes())))
}

/// A permission error (SQLSTATE 42501) as one sentence naming the role, what it lacks and the
/// GRANT that fixes it (with the server's own words after it).
pub async fn permission_error(
    conn: &mut PgConnection,
    e: &anyhow::Error,
    privilege: &str,
    table: &crate::ident::TableRef,
) -> anyhow::Error {
    let role: String = sqlx::query_scalar("SELECT current_user::text")
        .fetch_one(&mut *conn)
        .await
        .unwrap_or_else(|_| "<role>".into());
    let said = e
        .chain()
        .find_map(|c| match c.downcast_ref::<sqlx::Error>() {
            Some(sqlx::Error::Database(db)) => Some(sanitize::line(db.message())),
            _ => None,
        })
        .unwrap_or_else(|| sanitize::line(&e.to_string()));
    anyhow!(
        "permission denied: role {} lacks {privilege} on {table} (GRANT {privilege} ON {}.{} TO {}; the server said: {said})",
        sanitize::line(&role),
        crate::ident::display_quoted(table.schema.as_str()),
        crate::ident::display_quoted(table.table.as_str()),
        crate::ident::display_quoted(&role),
    )
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
    e.chain()
        .any(|c| c.is::<CannotConnect>() || c.is::<NotResponding>() || sqlx_lost(c))
}

fn sqlx_lost(c: &(dyn std::error::Error + 'static)) -> bool {
    match c.downcast_ref::<sqlx::Error>() {
        Some(sqlx::Error::Io(_))
        | Some(sqlx::Error::PoolTimedOut)
        | Some(sqlx::Error::PoolClosed)
        | Some(sqlx::Error::Protocol(_)) => true,
        Some(sqlx::Error::Database(db)) => db
            .code()
            .map(|c| c.starts_with("57P") || c.starts_with("08"))
            .unwrap_or(false),
        _ => false,
    }
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

    /// A refused connection is a lost connection (the dashboard says "disconnected" and
    /// retries), not a failed refresh on a live one.
    #[tokio::test]
    async fn a_failed_connect_counts_as_a_lost_connection() {
        let err = ConnectConfig::from_url("postgres://nobody@127.0.0.1:1/none")
            .connect()
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cannot connect to nobody@127.0.0.1:1/none"),
            "{err}"
        );
        assert!(is_connection_lost(&err));
        assert!(!is_connection_lost(&anyhow!(
            "column \"nope\" does not exist"
        )));
    }

    #[test]
    fn describe_never_shows_the_password() {
        let cfg = ConnectConfig::from_url("postgres://alice:hunter2@example.org:6543/shop");
        let d = cfg.describe();
        assert_eq!(d, "alice@example.org:6543/shop");
        assert!(!d.contains("hunter2"));
    }

    /// A scratch directory removed on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(tag: &str) -> Self {
            use std::sync::atomic::{AtomicU32, Ordering};
            static SEQ: AtomicU32 = AtomicU32::new(0);
            let dir = std::env::temp_dir().join(format!(
                "idemtop-connect-{tag}-{}-{}",
                std::process::id(),
                SEQ.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(dir.join(".postgresql")).unwrap();
            Scratch(dir)
        }

        fn file(&self, name: &str, mode: u32) -> PathBuf {
            use std::os::unix::fs::PermissionsExt;
            let path = self.0.join(name);
            std::fs::write(&path, "-----BEGIN X-----\n-----END X-----\n").unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            path
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn params(url: Option<&str>, env: &[(&str, &str)]) -> TlsParams {
        TlsParams::gather(url, |name| {
            env.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        })
    }

    fn file(path: &str) -> Option<CertSource> {
        Some(CertSource::File(PathBuf::from(path)))
    }

    #[test]
    fn tls_parameters_come_from_the_url_before_the_variables() {
        let p = params(
            Some(
                "postgres://u@h/db?sslmode=verify-full&ssl-root-cert=%2Fca%20dir%2Fca.crt&sslkey=k",
            ),
            &[
                ("PGSSLMODE", "require"),
                ("PGSSLROOTCERT", "/env/ca.crt"),
                ("PGSSLCERT", "/env/c.crt"),
                ("PGSSLKEY", ""),
            ],
        );
        assert_eq!(p.sslmode.as_deref(), Some("verify-full"));
        assert_eq!(p.sslrootcert, file("/ca dir/ca.crt"));
        assert_eq!(p.sslcert, file("/env/c.crt"));
        assert_eq!(p.sslkey, file("k"));

        // Without a URL: the variables; an empty one is unset; PEM text is PEM.
        let p = params(
            None,
            &[
                ("PGSSLMODE", ""),
                (
                    "PGSSLROOTCERT",
                    "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n",
                ),
            ],
        );
        assert_eq!(p.sslmode, None);
        assert_eq!(p.sslrootcert, Some(CertSource::Pem));
    }

    #[test]
    fn sslmode_follows_libpq() {
        let home = Scratch::new("mode");
        let plan = |mode: Option<&str>, socket: bool| {
            let p = TlsParams {
                sslmode: mode.map(str::to_owned),
                ..TlsParams::default()
            };
            plan_tls(&p, socket, Some(&home.0)).map(|plan| plan.mode)
        };
        assert!(matches!(plan(None, false), Ok(PgSslMode::Prefer)));
        assert!(matches!(plan(Some("allow"), false), Ok(PgSslMode::Prefer)));
        assert!(matches!(
            plan(Some("DISABLE"), false),
            Ok(PgSslMode::Disable)
        ));
        assert!(matches!(
            plan(Some("require"), false),
            Ok(PgSslMode::Require)
        ));
        // Unix sockets never use TLS.
        assert!(matches!(
            plan(Some("require"), true),
            Ok(PgSslMode::Disable)
        ));
        let err = plan(Some("verify_full\u{1b}[2J"), false).unwrap_err();
        assert!(
            err.starts_with("invalid sslmode \"verify_full␛[2J\""),
            "{err}"
        );
        assert!(!err.contains('\u{1b}'));
    }

    #[test]
    fn verification_needs_a_root_certificate_and_finds_libpqs_default() {
        let home = Scratch::new("root");
        let with = |mode: &str, root: Option<CertSource>| TlsParams {
            sslmode: Some(mode.into()),
            sslrootcert: root,
            ..TlsParams::default()
        };
        let err = plan_tls(&with("verify-full", None), false, Some(&home.0)).unwrap_err();
        assert!(
            err.contains(&format!(
                "\"{}\" does not exist",
                home.0.join(".postgresql/root.crt").display()
            )) && err.contains("sslrootcert=system"),
            "{err}"
        );
        let err = plan_tls(&with("verify-ca", None), false, None).unwrap_err();
        assert!(err.contains("no home directory"), "{err}");
        let err =
            plan_tls(&with("verify-ca", file("/nonexistent/ca.crt")), false, None).unwrap_err();
        assert!(
            err.contains("\"/nonexistent/ca.crt\" does not exist"),
            "{err}"
        );
        // require with a missing root certificate does not verify, as in libpq.
        let plan = plan_tls(&with("require", file("/nonexistent/ca.crt")), false, None).unwrap();
        assert!(matches!(plan.mode, PgSslMode::Require));

        // With ~/.postgresql/root.crt: used, and require becomes verify-ca.
        let root = home.file(".postgresql/root.crt", 0o644);
        let plan = plan_tls(&with("verify-full", None), false, Some(&home.0)).unwrap();
        assert!(matches!(plan.mode, PgSslMode::VerifyFull));
        assert_eq!(plan.root, Some(RootPlan::File(root.clone())));
        let plan = plan_tls(&with("require", None), false, Some(&home.0)).unwrap();
        assert!(matches!(plan.mode, PgSslMode::VerifyCa));
        // prefer never verifies.
        let plan = plan_tls(&with("prefer", None), false, Some(&home.0)).unwrap();
        assert!(matches!(plan.mode, PgSslMode::Prefer));
        // A given root certificate wins over the default and is left to sqlx.
        let ca = home.file("ca.crt", 0o644);
        let plan = plan_tls(
            &with("require", Some(CertSource::File(ca))),
            false,
            Some(&home.0),
        )
        .unwrap();
        assert!(matches!(plan.mode, PgSslMode::VerifyCa));
        assert_eq!(plan.root, None);
    }

    #[test]
    fn sslrootcert_system_means_verify_full() {
        let system = |mode: Option<&str>| TlsParams {
            sslmode: mode.map(str::to_owned),
            sslrootcert: file("system"),
            ..TlsParams::default()
        };
        let plan = plan_tls(&system(None), false, None).unwrap();
        assert!(matches!(plan.mode, PgSslMode::VerifyFull));
        assert_eq!(plan.root, Some(RootPlan::System));
        for weak in ["disable", "prefer", "require", "verify-ca"] {
            let err = plan_tls(&system(Some(weak)), false, None).unwrap_err();
            assert_eq!(
                err,
                format!(
                    "sslmode={weak} is too weak for sslrootcert=system: use sslmode=verify-full"
                )
            );
        }
    }

    #[test]
    fn client_certificates_follow_libpq() {
        let home = Scratch::new("client");
        let base = TlsParams {
            sslmode: Some("require".into()),
            ..TlsParams::default()
        };
        // Nothing given, nothing in ~/.postgresql: no client certificate.
        let plan = plan_tls(&base, false, Some(&home.0)).unwrap();
        assert_eq!((plan.default_cert, plan.default_key), (None, None));
        // A key alone: sqlx refuses it, so say so.
        let key_only = TlsParams {
            sslkey: file("/k.key"),
            ..base.clone()
        };
        let err = plan_tls(&key_only, false, Some(&home.0)).unwrap_err();
        assert!(err.contains("set sslcert too"), "{err}");
        // A missing certificate file.
        let missing = TlsParams {
            sslcert: file("/nonexistent/c.crt"),
            ..base.clone()
        };
        let err = plan_tls(&missing, false, Some(&home.0)).unwrap_err();
        assert!(
            err.contains("\"/nonexistent/c.crt\" (sslcert) does not exist"),
            "{err}"
        );

        // libpq's defaults: the certificate without its key is an error...
        let cert = home.file(".postgresql/postgresql.crt", 0o644);
        let err = plan_tls(&base, false, Some(&home.0)).unwrap_err();
        assert!(
            err.contains("postgresql.key\" (sslkey) does not exist"),
            "{err}"
        );
        // ... a key others can read is refused ...
        let key = home.file(".postgresql/postgresql.key", 0o640);
        let err = plan_tls(&base, false, Some(&home.0)).unwrap_err();
        assert!(err.contains("group or world access (mode 0640)"), "{err}");
        // ... and a private one is used.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        let plan = plan_tls(&base, false, Some(&home.0)).unwrap();
        assert_eq!(
            (plan.default_cert, plan.default_key),
            (Some(cert), Some(key))
        );
        // disable needs none of it.
        let disable = TlsParams {
            sslmode: Some("disable".into()),
            ..key_only
        };
        assert!(plan_tls(&disable, false, Some(&home.0)).is_ok());
    }

    #[test]
    fn tls_errors_in_the_settings_name_the_target_but_not_the_password() {
        let cfg = ConnectConfig::from_url(
            "postgres://alice:hunter2@example.org/shop?sslmode=verify-full&sslrootcert=%2Fnonexistent%2Fca.crt",
        );
        let err = cfg.options().unwrap_err().to_string();
        assert!(
            err.starts_with(
                "cannot connect to alice@example.org:5432/shop: sslmode=verify-full needs"
            ),
            "{err}"
        );
        assert!(!err.contains("hunter2"));
        // describe() is about the target only.
        assert_eq!(cfg.describe(), "alice@example.org:5432/shop");
    }

    #[test]
    fn bad_url_is_one_readable_error_without_the_password() {
        let cfg = ConnectConfig::from_url("postgres://alice:hunter2@example.org:notaport/shop");
        let err = cfg.options().unwrap_err().to_string();
        assert!(err.starts_with("invalid database URL"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }
}

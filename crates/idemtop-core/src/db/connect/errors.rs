//! Connection and query errors in a sentence: cannot connect, not responding, lost, permission.

use super::*;

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

pub(super) fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").to_owned()
}

/// A connection failure as one sentence naming the target.
pub fn connect_error(e: &sqlx::Error, target: &str) -> anyhow::Error {
    connect_error_in(e, target, None)
}

/// [`connect_error`] for a connection attempted with `mode`, which some TLS advice depends on.
pub(super) fn connect_error_in(
    e: &sqlx::Error,
    target: &str,
    mode: Option<PgSslMode>,
) -> anyhow::Error {
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

pub(super) fn sqlx_lost(c: &(dyn std::error::Error + 'static)) -> bool {
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

/// [`begin_bounded`] without parallel workers (`max_parallel_workers_per_gather = 0`, local to
/// the transaction), in the same round trip: for the periodic scans of a monitoring tool, whose
/// cost is the server CPU it takes from the application. Parallel workers finish sooner but use
/// more CPU in all (their start, their shares' merge), and a timeout bounds wall time only.
pub async fn begin_bounded_serial(
    conn: &mut PgConnection,
    timeout: Duration,
) -> Result<sqlx::Transaction<'_, sqlx::Postgres>, sqlx::Error> {
    let mut tx = sqlx::Connection::begin(conn).await?;
    sqlx::query(
        "SELECT set_config('statement_timeout', $1, true), \
                set_config('max_parallel_workers_per_gather', '0', true)",
    )
    .bind(format!("{}ms", timeout.as_millis()))
    .execute(&mut *tx)
    .await?;
    Ok(tx)
}

//! Who keeps the watched table locked: the session holding (or first awaiting) an ACCESS
//! EXCLUSIVE lock on the table or one of its partitions, and how many sessions wait behind it.
//!
//! While such a lock is held or requested, every query that touches the table (even a size
//! function) would queue behind it. idemtop then measures nothing on the table: a refresh or a
//! headless command reports [`TableLocked`] instead of figures, so no zero is ever shown that
//! was not measured, and names the blocker as pg_activity does.

use std::fmt;

use anyhow::Result;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::postgres::types::Oid;
use sqlx::PgConnection;

use crate::sanitize;

/// The session that holds (or, when none holds it yet, first requested) an ACCESS EXCLUSIVE
/// lock on the table, and the queue behind it. Text fields are raw from the server: sanitize
/// before display.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TableLock {
    /// The relation locked: the table or one of its partitions.
    pub relation: String,
    /// `AccessExclusiveLock`.
    pub mode: String,
    /// Held (true) or only requested (false: it waits for others, and queues everyone after it).
    pub granted: bool,
    pub pid: i32,
    pub user: Option<String>,
    pub application: Option<String>,
    pub client: Option<String>,
    /// `pg_stat_activity.state`: `active`, `idle in transaction`, ...
    pub state: Option<String>,
    /// Seconds since its transaction started.
    pub xact_secs: Option<f64>,
    /// Its current (or last) statement, cut to 200 characters.
    pub query: Option<String>,
    /// Other sessions waiting for a lock on the table or its partitions.
    pub waiting: i64,
    /// Server clock when this was seen.
    pub seen_at: DateTime<Utc>,
}

impl TableLock {
    /// One line: `AccessExclusiveLock held by pid 4242 (alice, psql, idle in transaction for
    /// 42 s); 3 sessions wait`.
    pub fn describe(&self) -> String {
        let mut who = Vec::new();
        for part in [&self.user, &self.application, &self.state] {
            if let Some(p) = part.as_deref().filter(|p| !p.is_empty()) {
                who.push(sanitize::line(p));
            }
        }
        let mut s = format!(
            "{} {} by pid {}",
            sanitize::line(&self.mode),
            if self.granted { "held" } else { "requested" },
            self.pid
        );
        if !who.is_empty() {
            s.push_str(&format!(" ({}", who.join(", ")));
            if let Some(secs) = self.xact_secs {
                s.push_str(&format!(" for {}", crate::format::duration_secs(secs)));
            }
            s.push(')');
        }
        s.push_str(&format!(
            " on {}; {} {} wait",
            sanitize::line(&self.relation),
            self.waiting,
            if self.waiting == 1 {
                "session"
            } else {
                "sessions"
            }
        ));
        s
    }
}

/// The error of a refresh or command that did not measure because of a [`TableLock`].
#[derive(Debug, Clone, PartialEq)]
pub struct TableLocked(pub TableLock);

impl fmt::Display for TableLocked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the table is locked, nothing measured: {}",
            self.0.describe()
        )
    }
}

impl std::error::Error for TableLocked {}

/// The lock in `e`'s chain, if it is a [`TableLocked`].
pub fn locked_in(e: &anyhow::Error) -> Option<&TableLock> {
    e.chain()
        .find_map(|c| c.downcast_ref::<TableLocked>())
        .map(|l| &l.0)
}

/// The ACCESS EXCLUSIVE lock on the table `oid` or its partitions, held or requested, if any.
/// Reads only `pg_locks` and `pg_stat_activity` (no lock on the table itself).
pub async fn table_lock(conn: &mut PgConnection, oid: u32) -> Result<Option<TableLock>> {
    type Row = (
        String,
        String,
        bool,
        i32,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<f64>,
        Option<String>,
        i64,
        DateTime<Utc>,
    );
    let row: Option<Row> = sqlx::query_as(
        "WITH rels AS (
             SELECT $1::oid AS relid
             UNION ALL
             SELECT relid FROM pg_partition_tree($1::oid) WHERE relid <> $1::oid
         ),
         l AS (
             SELECT l.* FROM pg_locks l JOIN rels r ON r.relid = l.relation
              WHERE l.locktype = 'relation'
                AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
                AND l.pid <> pg_backend_pid()
         )
         SELECT l.relation::regclass::text, l.mode, l.granted, l.pid,
                a.usename::text, a.application_name, host(a.client_addr), a.state,
                extract(epoch FROM now() - a.xact_start)::float8,
                left(a.query, 200),
                (SELECT count(DISTINCT w.pid) FROM l w WHERE NOT w.granted AND w.pid <> l.pid)::int8,
                now()
           FROM l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
          WHERE l.mode = 'AccessExclusiveLock'
          ORDER BY l.granted DESC, a.xact_start NULLS LAST, l.pid
          LIMIT 1",
    )
    .bind(Oid(oid))
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.map(
        |(
            relation,
            mode,
            granted,
            pid,
            user,
            application,
            client,
            state,
            xact_secs,
            query,
            waiting,
            seen_at,
        )| TableLock {
            relation,
            mode,
            granted,
            pid,
            user,
            application,
            client,
            state,
            xact_secs,
            query,
            waiting,
            seen_at,
        },
    ))
}

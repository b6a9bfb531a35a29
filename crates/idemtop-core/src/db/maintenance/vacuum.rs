//! ANALYZE and VACUUM, their privilege check and VACUUM progress.

use super::*;

/// Who may run ANALYZE/VACUUM on the table, checked up front because PostgreSQL itself only
/// warns ("skipping ...") and succeeds when the role may not.
pub(super) async fn check_maintain(
    conn: &mut PgConnection,
    table: &TableRef,
    command: &str,
) -> Result<crate::db::table::TableInfo> {
    let info = crate::db::table::resolve(conn, table).await?;
    let read_only: String = sqlx::query_scalar("SELECT current_setting('transaction_read_only')")
        .fetch_one(&mut *conn)
        .await?;
    if read_only == "on" {
        bail!("the session is read-only (--read-only): {command} is disabled");
    }
    // As the server decides (vacuum_is_permitted_for_relation): from PG 17 the MAINTAIN
    // privilege (owners, superusers, pg_maintain and grantees hold it) or the database owner;
    // before, the table owner or the database owner (and superusers).
    let sql = if info.server_version_num >= 170000 {
        "SELECT current_user::text,
                has_table_privilege(c.oid, 'MAINTAIN')
                OR (pg_has_role(d.datdba, 'USAGE') AND NOT c.relisshared)
           FROM pg_class c, pg_database d
          WHERE c.oid = $1 AND d.datname = current_database()"
    } else {
        "SELECT current_user::text,
                pg_has_role(c.relowner, 'USAGE')
                OR (pg_has_role(d.datdba, 'USAGE') AND NOT c.relisshared)
           FROM pg_class c, pg_database d
          WHERE c.oid = $1 AND d.datname = current_database()"
    };
    let (role, allowed): (String, bool) = sqlx::query_as(sql)
        .bind(Oid(info.oid))
        .fetch_one(&mut *conn)
        .await?;
    if !allowed {
        let who = if info.server_version_num >= 170000 {
            format!(
                "only the table owner ({}), the database owner, a superuser or a role with the MAINTAIN privilege \
                 (or pg_maintain) can {command} {table}; role {} has none of these (GRANT MAINTAIN ON {} TO {})",
                sanitize::line(&info.owner),
                sanitize::line(&role),
                qualified_for_humans(table),
                sql_ident(&role)
            )
        } else {
            format!(
                "only the table owner ({}), the database owner or a superuser can {command} {table}; \
                 role {} is none of these",
                sanitize::line(&info.owner),
                sanitize::line(&role)
            )
        };
        bail!("permission denied: {who}");
    }
    Ok(info)
}

/// Run a maintenance command outside any transaction with no statement timeout, then restore
/// the session's timeout.
pub(super) async fn run_unbounded(
    conn: &mut PgConnection,
    table: &TableRef,
    command: &str,
    sql: &str,
) -> Result<Duration> {
    // `Executor::execute(&str)` (simple protocol, no transaction); `sqlx::raw_sql` would make
    // the future non-Send for tokio::spawn (higher-ranked Executor bound).
    use sqlx::Executor as _;
    conn.execute("SET statement_timeout = 0").await?;
    let t0 = Instant::now();
    let result = conn.execute(sql).await;
    let took = t0.elapsed();
    let reset = conn.execute("RESET statement_timeout").await;
    result.map_err(|e| explain_write_error_as(&e, command, table, command))?;
    reset.context("restoring statement_timeout")?;
    Ok(took)
}

/// `ANALYZE` the table on this (dedicated) connection, outside any transaction; returns how
/// long it took.
pub async fn analyze(conn: &mut PgConnection, table: &TableRef) -> Result<Duration> {
    check_maintain(conn, table, "ANALYZE").await?;
    run_unbounded(
        conn,
        table,
        "ANALYZE",
        &format!("ANALYZE {}", table.qualified()),
    )
    .await
}

/// `VACUUM` (with `analyze`: `VACUUM (ANALYZE)`) the table on this (dedicated) connection,
/// outside any transaction; returns how long it took. Watch it with [`vacuum_progress`].
pub async fn vacuum(conn: &mut PgConnection, table: &TableRef, analyze: bool) -> Result<Duration> {
    check_maintain(conn, table, "VACUUM").await?;
    let sql = if analyze {
        format!("VACUUM (ANALYZE) {}", table.qualified())
    } else {
        format!("VACUUM {}", table.qualified())
    };
    run_unbounded(conn, table, "VACUUM", &sql).await
}

/// A running VACUUM of the table, from `pg_stat_progress_vacuum`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VacuumProgress {
    pub phase: String,
    pub heap_blks_total: i64,
    pub heap_blks_scanned: i64,
    pub heap_blks_vacuumed: i64,
    pub index_vacuum_count: i64,
    pub pid: i32,
}

impl VacuumProgress {
    /// Progress through the heap scan (0..1).
    pub fn fraction(&self) -> f64 {
        if self.heap_blks_total <= 0 {
            0.0
        } else {
            (self.heap_blks_scanned as f64 / self.heap_blks_total as f64).clamp(0.0, 1.0)
        }
    }
}

/// The VACUUM running on the table whose oid is `$1` (or, for a partitioned table, on one of
/// its partitions): at most one row of `phase, total, scanned, vacuumed, index_passes, pid`.
/// Also read by every refresh, inside its statistics statement.
pub const VACUUM_PROGRESS_SQL: &str = "SELECT phase::text AS phase, heap_blks_total::int8 AS total,
                heap_blks_scanned::int8 AS scanned, heap_blks_vacuumed::int8 AS vacuumed,
                index_vacuum_count::int8 AS index_passes, pid::int4 AS pid
           FROM pg_stat_progress_vacuum
          WHERE relid = $1::oid
             OR relid IN (SELECT relid FROM pg_partition_tree($1::oid::regclass))
          ORDER BY (relid = $1::oid) DESC, pid
          LIMIT 1";

/// The VACUUM running on the table (or, for a partitioned table, on one of its partitions),
/// if any. Use another connection than the one running the VACUUM.
pub async fn vacuum_progress(
    conn: &mut PgConnection,
    table_oid: u32,
) -> Result<Option<VacuumProgress>> {
    let row: Option<(String, i64, i64, i64, i64, i32)> = sqlx::query_as(VACUUM_PROGRESS_SQL)
        .bind(Oid(table_oid))
        .fetch_optional(conn)
        .await?;
    Ok(row.map(
        |(
            phase,
            heap_blks_total,
            heap_blks_scanned,
            heap_blks_vacuumed,
            index_vacuum_count,
            pid,
        )| {
            VacuumProgress {
                phase,
                heap_blks_total,
                heap_blks_scanned,
                heap_blks_vacuumed,
                index_vacuum_count,
                pid,
            }
        },
    ))
}

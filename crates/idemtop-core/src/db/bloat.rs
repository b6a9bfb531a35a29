//! Free space that VACUUM does not give back: exact figures on demand from `pgstattuple` (or
//! the cheaper `pgstattuple_approx`), when the extension is installed (installing it is the
//! operator's call), bounded by a statement timeout; and the advice when a rewrite is needed
//! (`pg_repack` online, or `VACUUM FULL` under an ACCESS EXCLUSIVE lock).

use std::time::Duration;

use anyhow::{bail, Result};
use serde::Serialize;
use sqlx::PgConnection;

use crate::ident::TableRef;

/// The heap as pgstattuple measures it (the table alone, not its indexes or TOAST).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BloatFigures {
    /// `pgstattuple` (exact, reads every page) or `pgstattuple_approx` (skips all-visible pages).
    pub method: &'static str,
    pub table_len: i64,
    pub tuple_count: i64,
    pub tuple_len: i64,
    pub dead_tuple_count: i64,
    pub dead_tuple_len: i64,
    pub free_space: i64,
    pub free_percent: f64,
}

/// What `B` reports: the figures, and the rewrite advice when the free space is above the
/// configured threshold (`thresholds.free_space.rewrite_percent`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SpaceReport {
    pub figures: BloatFigures,
    pub advice: Option<String>,
}

/// Measure (exactly, bounded by `timeout`) and judge against `threshold_percent`.
pub async fn report(
    conn: &mut PgConnection,
    table: &TableRef,
    threshold_percent: f64,
    timeout: Duration,
) -> Result<SpaceReport> {
    let figures = measure(conn, table, false, timeout).await?;
    let (database, version): (String, i32) = sqlx::query_as(
        "SELECT current_database()::text, current_setting('server_version_num')::int",
    )
    .fetch_one(&mut *conn)
    .await?;
    let advice = rewrite_advice(
        &figures,
        threshold_percent,
        table,
        &database,
        &(version / 10_000).to_string(),
    );
    Ok(SpaceReport { figures, advice })
}

/// Whether `pgstattuple` is installed in this database.
pub async fn available(conn: &mut PgConnection) -> Result<bool> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pgstattuple')",
    )
    .fetch_one(&mut *conn)
    .await?)
}

/// Measure the table's heap, under `timeout`. `approx` uses `pgstattuple_approx`. Without the
/// extension: one sentence saying how to install it.
pub async fn measure(
    conn: &mut PgConnection,
    table: &TableRef,
    approx: bool,
    timeout: Duration,
) -> Result<BloatFigures> {
    if !available(conn).await? {
        bail!(
            "pgstattuple is not installed in this database: CREATE EXTENSION pgstattuple; \
             (PostgreSQL contrib, part of Debian's postgresql package; a superuser or the \
             database owner decides) -- until then idemtop shows estimates"
        );
    }
    let sql = if approx {
        "SELECT table_len, approx_tuple_count::int8, approx_tuple_len, dead_tuple_count,
                dead_tuple_len, approx_free_space, approx_free_percent
           FROM pgstattuple_approx($1::regclass)"
    } else {
        "SELECT table_len, tuple_count, tuple_len, dead_tuple_count, dead_tuple_len,
                free_space, free_percent
           FROM pgstattuple($1::regclass)"
    };
    let mut tx = crate::db::connect::begin_bounded(&mut *conn, timeout).await?;
    type Row = (i64, i64, i64, i64, i64, i64, f64);
    let r: Result<Row, sqlx::Error> = sqlx::query_as(sql)
        .bind(table.qualified())
        .fetch_one(&mut *tx)
        .await;
    let _ = tx.rollback().await;
    let r = match r {
        Err(e) if crate::db::connect::db_sqlstate(&e).as_deref() == Some("57014") => bail!(
            "pgstattuple gave up after {} s (statement_timeout): try the approximate figures",
            timeout.as_secs_f64()
        ),
        other => other?,
    };
    Ok(BloatFigures {
        method: if approx {
            "pgstattuple_approx"
        } else {
            "pgstattuple"
        },
        table_len: r.0,
        tuple_count: r.1,
        tuple_len: r.2,
        dead_tuple_count: r.3,
        dead_tuple_len: r.4,
        free_space: r.5,
        free_percent: r.6,
    })
}

/// The `pg_repack` command line that rewrites this table online (Debian:
/// `postgresql-<major>-repack`, and `CREATE EXTENSION pg_repack` in the database).
pub fn repack_command(table: &TableRef, database: &str) -> String {
    let shell = |s: &str| format!("'{}'", s.replace('\'', "'\\''"));
    format!(
        "pg_repack --table={} -d {}",
        shell(&format!(
            "{}.{}",
            table.schema.as_str(),
            table.table.as_str()
        )),
        shell(database)
    )
}

/// What to do when `free_percent` stays above `threshold` after VACUUM: the rewrite, online
/// or under a lock. None below the threshold.
pub fn rewrite_advice(
    f: &BloatFigures,
    threshold_percent: f64,
    table: &TableRef,
    database: &str,
    server_major: &str,
) -> Option<String> {
    (f.free_percent > threshold_percent).then(|| {
        format!(
            "{:.1}% of the table is free space that VACUUM keeps for reuse but does not give back: \
             rewrite it online with `{}` (Debian: apt install postgresql-{}-repack, then CREATE \
             EXTENSION pg_repack; it takes an ACCESS EXCLUSIVE lock only briefly), or with \
             VACUUM FULL {} (holds an ACCESS EXCLUSIVE lock for the whole rewrite: every read \
             and write of the table waits)",
            f.free_percent,
            repack_command(table, database),
            server_major,
            table.qualified()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repack_command_is_quoted_for_the_shell() {
        let t = TableRef::new("public", "idempotency_records").unwrap();
        assert_eq!(
            repack_command(&t, "app's db"),
            "pg_repack --table='public.idempotency_records' -d 'app'\\''s db'"
        );
    }
}

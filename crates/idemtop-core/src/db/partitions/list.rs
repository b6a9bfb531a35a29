//! The partitions of a table from the catalog, their bounds, rows and state.

use super::*;

#[derive(sqlx::FromRow)]
pub(super) struct RawPart {
    pub(super) oid: i64,
    pub(super) schema: String,
    pub(super) name: String,
    pub(super) relkind: String,
    pub(super) is_default: bool,
    pub(super) detach_pending: bool,
    pub(super) lower: Option<DateTime<Utc>>,
    pub(super) upper: Option<DateTime<Utc>>,
    pub(super) by_expiry: bool,
    pub(super) fully_expired: bool,
    pub(super) straddles_now: bool,
    pub(super) reltuples: f64,
    pub(super) n_live_tup: Option<i64>,
    pub(super) blocked_by: Option<String>,
}

/// The direct partitions of `table_oid` with their bounds, from the catalogs only (no lock on any
/// partition). Bounds are parsed on the server from `pg_get_expr(relpartbound)` (there is no
/// structured form of them in SQL), only when the key is one timestamp/date column.
pub(super) const PARTS_SQL: &str = concat!(
    r#"
WITH key AS (
    SELECT coalesce(bool_and(pt.partstrat = 'r' AND pt.partnatts = 1
                             AND a.atttypid IN ('timestamptz'::regtype, 'timestamp'::regtype, 'date'::regtype)),
                    false) AS timed,
           -- Only a range on the expiry column itself proves, by its upper bound, that every
           -- row of a partition has expired (a range on created_at proves nothing about TTLs).
           coalesce(bool_and(pt.partstrat = 'r' AND pt.partnatts = 1 AND a.attname = 'expires_at'
                             AND a.atttypid IN ('timestamptz'::regtype, 'timestamp'::regtype)),
                    false) AS by_expiry
      FROM pg_partitioned_table pt
      LEFT JOIN pg_attribute a ON a.attrelid = pt.partrelid AND a.attnum = pt.partattrs[0]
     WHERE pt.partrelid = $1::oid
),
locks AS (
"#,
    access_exclusive_locks_sql!(),
    r#"
),
raw AS (
    SELECT c.oid, n.nspname::text AS schema, c.relname::text AS name, c.relkind::text AS relkind,
           coalesce(pg_get_expr(c.relpartbound, 0) = 'DEFAULT', false) AS is_default,
           coalesce((to_jsonb(inh) ->> 'inhdetachpending')::boolean, false) AS detach_pending,
           k.timed AND b IS NOT NULL AS known,
           k.by_expiry AND b IS NOT NULL AS proves_expiry,
           b[1] = 'MINVALUE' AS from_min, b[2] = 'MAXVALUE' AS to_max,
           -- A bound of 'infinity' is valid: read as unbounded (NULL), never decoded.
           CASE WHEN k.timed AND b[1] ~ '^''[^'']*''$' AND isfinite(btrim(b[1], '''')::timestamptz)
                THEN btrim(b[1], '''')::timestamptz END AS lower,
           CASE WHEN k.timed AND b[2] ~ '^''[^'']*''$' AND isfinite(btrim(b[2], '''')::timestamptz)
                THEN btrim(b[2], '''')::timestamptz END AS upper,
           k.by_expiry,
           greatest(c.reltuples, 0)::float8 AS reltuples,
           s.n_live_tup,
           coalesce(lp.what, lt.what) AS blocked_by
      FROM pg_inherits inh
      JOIN pg_class c ON c.oid = inh.inhrelid
      JOIN pg_namespace n ON n.oid = c.relnamespace
      CROSS JOIN key k
      LEFT JOIN LATERAL regexp_match(pg_get_expr(c.relpartbound, 0),
                                     '^FOR VALUES FROM \((.*)\) TO \((.*)\)$') b ON true
      LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
      LEFT JOIN locks lp ON lp.relation = c.oid
      LEFT JOIN locks lt ON lt.relation = $1::oid
     WHERE inh.inhparent = $1::oid
)
SELECT oid::int8 AS oid, schema, name, relkind, is_default, detach_pending, lower, upper, by_expiry,
       coalesce(proves_expiry AND upper <= now(), false) AS fully_expired,
       coalesce(known AND NOT is_default AND (from_min OR lower <= now()) AND (to_max OR upper > now()), false)
           AS straddles_now,
       reltuples, n_live_tup, blocked_by
  FROM raw
 ORDER BY is_default, from_min DESC NULLS LAST, lower NULLS LAST, name
"#
);

pub(super) async fn catalog(conn: &mut PgConnection, table_oid: u32) -> Result<Vec<RawPart>> {
    Ok(sqlx::query_as(PARTS_SQL)
        .bind(i64::from(table_oid))
        .fetch_all(&mut *conn)
        .await?)
}

/// The partitions of the table `table_oid` (empty when it is not partitioned), ordered by lower
/// bound (the DEFAULT partition last).
///
/// Sizes come from `pg_total_relation_size`. Rows are exact (`count(*)`, `rows_exact`) for a
/// partition whose heap is at most [`EXACT_COUNT_MAX_BYTES`], while the partitions counted so far
/// stay within [`EXACT_COUNT_BUDGET_BYTES`]; otherwise estimated from `n_live_tup` (or
/// `reltuples`). A partition under an AccessExclusive lock (held or requested, on it or on the
/// table) is not probed at all (`blocked_by`); the probes also run under a 500 ms `lock_timeout`.
pub async fn list(conn: &mut PgConnection, table_oid: u32) -> Result<Vec<PartitionInfo>> {
    let raw = catalog(conn, table_oid)
        .await
        .context("reading the partitions")?;
    if raw.is_empty() {
        return Ok(Vec::new());
    }
    let probe: Vec<i64> = raw
        .iter()
        .filter(|r| r.blocked_by.is_none())
        .map(|r| r.oid)
        .collect();
    let sizes: Vec<(i64, Option<i64>, Option<i64>)> = {
        let mut tx = conn.begin().await?;
        sqlx::query("SELECT set_config('lock_timeout', $1, true)")
            .bind(PROBE_LOCK_TIMEOUT)
            .execute(&mut *tx)
            .await?;
        let rows = sqlx::query_as(
            "SELECT o, pg_total_relation_size(o::oid)::int8, pg_relation_size(o::oid)::int8
               FROM unnest($1::int8[]) o",
        )
        .bind(&probe)
        .fetch_all(&mut *tx)
        .await;
        match rows {
            Ok(rows) => {
                tx.commit().await?;
                rows
            }
            // Locked since the pg_locks check: no sizes this time, rows estimated.
            Err(e) if db_sqlstate(&e).as_deref() == Some("55P03") => Vec::new(),
            Err(e) => return Err(anyhow::Error::new(e).context("reading partition sizes")),
        }
    };
    let mut budget = EXACT_COUNT_BUDGET_BYTES;
    let mut out = Vec::with_capacity(raw.len());
    for r in raw {
        let (total, heap) = sizes
            .iter()
            .find(|s| s.0 == r.oid)
            .map(|s| (s.1, s.2))
            .unwrap_or((None, None));
        let estimate = match r.n_live_tup {
            Some(n) if n > 0 || r.reltuples <= 0.0 => n,
            _ => r.reltuples.round() as i64,
        };
        let (rows, rows_exact) = match heap {
            // Not probed, or dropped since the catalog was read.
            None => (estimate, false),
            Some(0) if r.relkind == "r" => (0, true),
            Some(h) if r.relkind == "r" && h <= EXACT_COUNT_MAX_BYTES && h <= budget => {
                match count_rows(conn, &r.schema, &r.name).await? {
                    Some(n) => {
                        budget -= h;
                        (n, true)
                    }
                    None => (estimate, false),
                }
            }
            Some(_) => (estimate, false),
        };
        out.push(PartitionInfo {
            name: r.name,
            lower: r.lower,
            upper: r.upper,
            is_default: r.is_default,
            rows,
            rows_exact,
            size_bytes: total.unwrap_or(0),
            by_expiry: r.by_expiry,
            fully_expired: r.fully_expired,
            straddles_now: r.straddles_now,
            detach_pending: r.detach_pending,
            blocked_by: r.blocked_by,
            oid: r.oid,
            schema: r.schema,
            relkind: r.relkind,
        });
    }
    Ok(out)
}

/// `count(*)` of one partition under a short lock_timeout; None when it went away or is locked.
pub(super) async fn count_rows(
    conn: &mut PgConnection,
    schema: &str,
    name: &str,
) -> Result<Option<i64>> {
    let Ok(part) = TableRef::new(schema, name) else {
        return Ok(None);
    };
    // One simple-protocol query string is one implicit transaction: SET LOCAL covers the count.
    let sql = format!(
        "SET LOCAL lock_timeout = '{PROBE_LOCK_TIMEOUT}'; SELECT count(*)::int8 FROM {}",
        part.qualified()
    );
    match conn.fetch_optional(sql.as_str()).await {
        Ok(Some(row)) => Ok(Some(sqlx::Row::try_get::<i64, _>(&row, 0)?)),
        Ok(None) => Ok(None),
        // 42P01: dropped meanwhile; 55P03: locked meanwhile. The estimate stands in.
        Err(e) if matches!(db_sqlstate(&e).as_deref(), Some("42P01" | "55P03")) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

//! The exact per-operation pass (bounded by a timeout and a budget).

use super::*;

/// Exact per-operation counts and the exact expiry horizon, in one scan. On a large table it runs
/// under `timeout` and gives up (returns None) rather than hold the refresh.
pub(super) async fn exact_breakdown(
    conn: &mut PgConnection,
    table: &TableRef,
    small: bool,
    timeout: Duration,
) -> Result<Option<(Vec<OperationStats>, Horizon)>> {
    type Row = (
        String,
        i64,
        i64,
        Option<f64>,
        i64,
        i64,
        i64,
        i64,
        i64,
        i64,
        i64,
        i64,
        i64,
    );
    let sql = format!(
        "SELECT operation::text, count(*), count(*) FILTER (WHERE expires_at <= now()),
                avg(octet_length(result_payload))::float8,
                count(*) FILTER (WHERE status_code BETWEEN 200 AND 299),
                count(*) FILTER (WHERE status_code BETWEEN 300 AND 399),
                count(*) FILTER (WHERE status_code BETWEEN 400 AND 499),
                count(*) FILTER (WHERE status_code BETWEEN 500 AND 599),
                count(*) FILTER (WHERE status_code IS NULL OR status_code NOT BETWEEN 200 AND 599),
                count(*) FILTER (WHERE expires_at > now() AND expires_at <= now() + interval '1 hour'),
                count(*) FILTER (WHERE expires_at > now() + interval '1 hour' AND expires_at <= now() + interval '6 hours'),
                count(*) FILTER (WHERE expires_at > now() + interval '6 hours' AND expires_at <= now() + interval '24 hours'),
                count(*) FILTER (WHERE expires_at > now() + interval '24 hours')
           FROM {} GROUP BY operation ORDER BY count(*) DESC, operation",
        table.qualified()
    );
    let result: Result<Vec<Row>, sqlx::Error> = if small {
        sqlx::query_as(&sql).fetch_all(&mut *conn).await
    } else {
        // Never parallel: the workers' CPU would escape the budget that bounds the pass.
        let mut tx = crate::db::connect::begin_bounded_serial(&mut *conn, timeout).await?;
        let r = sqlx::query_as(&sql).fetch_all(&mut *tx).await;
        let _ = tx.rollback().await;
        r
    };
    let rows = match result {
        Ok(rows) => rows,
        // 57014: statement_timeout. The estimates stand in.
        Err(sqlx::Error::Database(db)) if !small && db.code().as_deref() == Some("57014") => {
            return Ok(None)
        }
        Err(e) => return Err(e.into()),
    };
    let mut horizon = Horizon {
        exact: true,
        ..Horizon::default()
    };
    let ops = rows
        .into_iter()
        .map(|r| {
            horizon.within_1h += r.9;
            horizon.within_6h += r.10;
            horizon.within_24h += r.11;
            horizon.later += r.12;
            OperationStats {
                operation: r.0,
                total: r.1,
                live: Some(r.1 - r.2),
                expired: Some(r.2),
                avg_payload_bytes: r.3,
                status: Some(StatusCounts {
                    s2xx: r.4,
                    s3xx: r.5,
                    s4xx: r.6,
                    s5xx: r.7,
                    other: r.8,
                }),
                exact: true,
            }
        })
        .collect();
    Ok(Some((ops, horizon)))
}

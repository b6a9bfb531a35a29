//! The exact per-operation pass (bounded by a timeout and a budget).

use super::*;

/// Exact per-operation counts and the exact expiry horizon, in one scan. On a large table it runs
/// under `timeout` and gives up (returns None) rather than hold the refresh.
pub(super) async fn exact_breakdown(
    conn: &mut PgConnection,
    table: &TableRef,
    info: &TableInfo,
    tm: &TableMapping,
    small: bool,
    timeout: Duration,
) -> Result<Option<(Vec<OperationStats>, Horizon)>> {
    type Row = (
        Option<String>,
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
    // Every role from the mapping; what is not mapped is a constant (NULL), and the figures
    // that need it are dropped below (the report says n/a).
    let m = &tm.sql;
    let op = m.operation.clone().unwrap_or_else(|| "'(all)'".into());
    let expired = m
        .expiry
        .as_ref()
        .and_then(|e| e.expired_at("now()"))
        .unwrap_or_else(|| "false".into());
    let at = m.expires_at().unwrap_or_else(|| "NULL::timestamptz".into());
    let payload = match (m.payload.as_deref(), tm.mapping.payload()) {
        (Some(q), Some(name)) => {
            if info
                .column(name)
                .is_some_and(|c| c.kind == crate::db::table::ColumnKind::Bytea)
            {
                format!("octet_length({q})")
            } else {
                format!("octet_length({q}::text)")
            }
        }
        _ => "NULL::int".into(),
    };
    let status = m.status.clone().unwrap_or_else(|| "NULL::int".into());
    let sql = format!(
        "SELECT {op} AS op, count(*), count(*) FILTER (WHERE {expired}),
                avg({payload})::float8,
                count(*) FILTER (WHERE {status} BETWEEN 200 AND 299),
                count(*) FILTER (WHERE {status} BETWEEN 300 AND 399),
                count(*) FILTER (WHERE {status} BETWEEN 400 AND 499),
                count(*) FILTER (WHERE {status} BETWEEN 500 AND 599),
                count(*) FILTER (WHERE {status} IS NULL OR {status} NOT BETWEEN 200 AND 599),
                count(*) FILTER (WHERE {at} > now() AND {at} <= now() + interval '1 hour'),
                count(*) FILTER (WHERE {at} > now() + interval '1 hour' AND {at} <= now() + interval '6 hours'),
                count(*) FILTER (WHERE {at} > now() + interval '6 hours' AND {at} <= now() + interval '24 hours'),
                count(*) FILTER (WHERE {at} > now() + interval '24 hours' OR ({at} IS NULL AND NOT {expired}))
           FROM {} GROUP BY 1 ORDER BY count(*) DESC, 1",
        table.qualified()
    );
    let has_status = tm.has(Role::Status);
    let has_payload = tm.has(Role::Payload);
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
                operation: r.0.unwrap_or_else(|| "(null)".into()),
                total: r.1,
                live: Some(r.1 - r.2),
                expired: Some(r.2),
                avg_payload_bytes: r.3.filter(|_| has_payload),
                status: has_status.then_some(StatusCounts {
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

//! Keys in flight, for a table whose mapping has an in-flight state: rows by state, the oldest
//! key in flight and its age, and the keys stuck (locked, or in flight, longer than the
//! threshold). One bounded scan; a table that takes longer gets no figure, never a zero.

use super::*;

/// JSON (`inflight`): `by_state` (`state`, `rows`, `in_flight`), `in_flight`, `oldest_key`,
/// `oldest_since`, `oldest_age_secs`, `stuck`, `stuck_after_secs`, `stuck_by` (`locked_at` or
/// `created`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InFlightStats {
    pub by_state: Vec<StateCount>,
    /// Rows in flight.
    pub in_flight: i64,
    /// The key (its columns joined by `,`) of the row in flight the longest. Raw: sanitize.
    pub oldest_key: Option<String>,
    /// Since when it is in flight (its lock time, else its creation time).
    pub oldest_since: Option<DateTime<Utc>>,
    pub oldest_age_secs: Option<f64>,
    /// Keys in flight (locked) for longer than `stuck_after_secs`.
    pub stuck: i64,
    pub stuck_after_secs: f64,
    /// What the age is counted from: `locked_at` (the mapping's lock column) or `created`.
    pub stuck_by: String,
}

/// Rows in one state. `state` is raw from the database (sanitize before display): the state
/// column's value, or `in flight` / `done` for a NULL rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StateCount {
    pub state: String,
    pub rows: i64,
    pub in_flight: bool,
}

/// The in-flight figures of a table with an in-flight state (`None` without one, when the
/// table was not probed, or when the scan did not finish within `timeout`).
pub(super) async fn inflight(
    conn: &mut PgConnection,
    table: &TableRef,
    tm: &TableMapping,
    stuck_after: Duration,
    timeout: Duration,
) -> Result<Option<InFlightStats>> {
    let m = &tm.sql;
    let Some(i) = &m.inflight else {
        return Ok(None);
    };
    // Age from the lock column when there is one (a request holds the key), else from the
    // creation time; without either there is no age to tell.
    let (since, stuck_by) = match (&m.locked_at, &m.created) {
        (Some(l), Some(c)) => (format!("coalesce({l}, {c})"), "locked_at"),
        (Some(l), None) => (l.clone(), "locked_at"),
        (None, Some(c)) => (c.clone(), "created"),
        (None, None) => ("NULL::timestamptz".to_string(), "created"),
    };
    let key = if m.key.is_empty() {
        "NULL::text".to_string()
    } else {
        format!(
            "concat_ws(',', {})",
            m.key
                .iter()
                .map(|k| format!("{k}::text"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let flying = i.in_flight("$1");
    let state = i.state("$1");
    let q = table.qualified();
    let by_state_sql = format!(
        "SELECT {state} AS state, count(*)::int8, bool_or({flying}) FROM {q} GROUP BY 1 ORDER BY 2 DESC, 1"
    );
    let oldest_sql = format!(
        "SELECT {key}, ({since})::timestamptz,
                (SELECT count(*)::int8 FROM {q} WHERE {flying} AND ({since})::timestamptz <= now() - make_interval(secs => $2)),
                now()
           FROM {q} WHERE {flying}
          ORDER BY ({since})::timestamptz ASC NULLS LAST LIMIT 1"
    );
    let done = i.done_values();
    let mut tx = crate::db::connect::begin_bounded(&mut *conn, timeout).await?;
    type ByState = Vec<(Option<String>, i64, Option<bool>)>;
    let by_state: Result<ByState, sqlx::Error> = sqlx::query_as(&by_state_sql)
        .bind(&done)
        .fetch_all(&mut *tx)
        .await;
    let by_state = match by_state {
        Ok(r) => r,
        Err(e) if crate::db::connect::db_sqlstate(&e).as_deref() == Some("57014") => {
            let _ = tx.rollback().await;
            return Ok(None);
        }
        Err(e) => return Err(anyhow::Error::new(e).context("counting the keys in flight")),
    };
    type Oldest = (Option<String>, Option<DateTime<Utc>>, i64, DateTime<Utc>);
    let oldest: Result<Option<Oldest>, sqlx::Error> = sqlx::query_as(&oldest_sql)
        .bind(&done)
        .bind(stuck_after.as_secs_f64())
        .fetch_optional(&mut *tx)
        .await;
    let oldest = match oldest {
        Ok(r) => r,
        Err(e) if crate::db::connect::db_sqlstate(&e).as_deref() == Some("57014") => {
            let _ = tx.rollback().await;
            return Ok(None);
        }
        Err(e) => return Err(anyhow::Error::new(e).context("finding the oldest key in flight")),
    };
    let _ = tx.rollback().await;
    let by_state: Vec<StateCount> = by_state
        .into_iter()
        .map(|(s, rows, f)| StateCount {
            state: s.unwrap_or_else(|| "(null)".into()),
            rows,
            in_flight: f.unwrap_or(false),
        })
        .collect();
    let in_flight = by_state
        .iter()
        .filter(|s| s.in_flight)
        .map(|s| s.rows)
        .sum();
    let (oldest_key, oldest_since, stuck, now) = match oldest {
        Some((k, since, stuck, now)) => (k, since, stuck, Some(now)),
        None => (None, None, 0, None),
    };
    Ok(Some(InFlightStats {
        by_state,
        in_flight,
        oldest_key,
        oldest_age_secs: oldest_since
            .zip(now)
            .map(|(s, n)| (n - s).num_milliseconds().max(0) as f64 / 1000.0),
        oldest_since,
        stuck,
        stuck_after_secs: stuck_after.as_secs_f64(),
        stuck_by: stuck_by.into(),
    }))
}

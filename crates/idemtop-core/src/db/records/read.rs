//! Reading records: a page, its plan, whether a sort is served by an index, one record by key.

use super::*;

/// One page of at most `limit` records (clamped to 1..=[`MAX_PAGE_ROWS`]) in `sort` order,
/// strictly after `after` (the previous page's `next`), keyset-paginated: the query compares
/// the row value `(sort column, request_id)` with the cursor and orders by the same pair, so
/// the server reads only about one page of rows from the index (for the `Expiring*` orders,
/// `idx_idempotency_expires`) and the client holds one page in memory.
///
/// `Page::next` is `None` exactly when no further row matched when the page was read.
pub async fn page(
    conn: &mut PgConnection,
    table: &TableRef,
    filter: &RecordFilter,
    sort: Sort,
    after: Option<&Cursor>,
    limit: u32,
) -> Result<Page> {
    check_cursor(sort, after)?;
    let limit = clamp_limit(limit) as usize;
    // One extra row tells whether there is a next page.
    let q = page_query(table, filter, sort, after, limit as i64 + 1);
    type Rows = Vec<(Uuid, String, Option<i32>, Ts, Ts, i64, i64, DateTime<Utc>)>;
    // Each result is bound first so that no query temporary lives across the error path's
    // await (keeps these futures `Send` for tokio::spawn).
    let res: Result<Rows, sqlx::Error> = sqlx::query_as_with(&q.sql, args_of(&q))
        .fetch_all(&mut *conn)
        .await;
    let rows: Rows = match res {
        Ok(r) => r,
        Err(e) => return Err(explain_error(conn, e, "SELECT", table, "read records from").await),
    };
    let mut server_now = None;
    let mut out = Vec::with_capacity(rows.len().min(limit));
    for (id, op, st, created, expires, bytes, xmin, now) in rows {
        server_now = Some(now);
        out.push(summary_of((id, op, st, created, expires, bytes, xmin)));
    }
    let more = out.len() > limit;
    out.truncate(limit);
    let server_now = match server_now {
        Some(t) => t,
        None => {
            let res = sqlx::query_scalar::<_, DateTime<Utc>>("SELECT now()")
                .fetch_one(&mut *conn)
                .await;
            match res {
                Ok(t) => t,
                Err(e) => {
                    return Err(explain_error(conn, e, "SELECT", table, "read records from").await)
                }
            }
        }
    };
    let next = if more {
        out.last().map(|r| Cursor::after(sort, r))
    } else {
        None
    };
    Ok(Page {
        rows: out,
        next,
        server_now,
    })
}

/// The query [`page`] would run, and the server's plan for it (`EXPLAIN (FORMAT JSON)`, with
/// the same bound values): the tests check with it that every sort walks its index.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PagePlan {
    pub sql: String,
    pub plan: serde_json::Value,
}

pub async fn explain_page(
    conn: &mut PgConnection,
    table: &TableRef,
    filter: &RecordFilter,
    sort: Sort,
    after: Option<&Cursor>,
    limit: u32,
) -> Result<PagePlan> {
    check_cursor(sort, after)?;
    let mut q = page_query(table, filter, sort, after, clamp_limit(limit) as i64 + 1);
    let sql = q.sql.clone();
    q.sql = format!("EXPLAIN (FORMAT JSON) {sql}");
    let res: Result<serde_json::Value, sqlx::Error> = sqlx::query_scalar_with(&q.sql, args_of(&q))
        .fetch_one(&mut *conn)
        .await;
    let plan: serde_json::Value = match res {
        Ok(plan) => plan,
        Err(e) => {
            return Err(explain_error(conn, e, "SELECT", table, "explain the page query on").await)
        }
    };
    Ok(PagePlan { sql, plan })
}

/// Whether a valid, non-partial btree index whose FIRST column is `sort`'s column exists on
/// the table (on a partitioned table: a partitioned index), so the order is index-backed. In
/// the guide's schema this holds for the `Expiring*` orders (`idx_idempotency_expires`) and not
/// for `Newest`/`Oldest` (there is no index on `created_at`): those are still keyset-paginated
/// and correct, but each page sorts the matching rows (top-N) instead of walking an index.
pub async fn sort_is_indexed(
    conn: &mut PgConnection,
    table: &TableRef,
    sort: Sort,
) -> Result<bool> {
    let row: Option<(bool,)> = sqlx::query_as(
        "SELECT EXISTS (
                SELECT 1
                  FROM pg_index i
                  JOIN pg_class ic ON ic.oid = i.indexrelid
                  JOIN pg_am am ON am.oid = ic.relam
                  JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
                 WHERE i.indrelid = c.oid
                   AND am.amname = 'btree'
                   AND i.indisvalid
                   AND i.indpred IS NULL
                   AND a.attname = $3)
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')",
    )
    .bind(table.schema.as_str())
    .bind(table.table.as_str())
    .bind(sort.column())
    .fetch_optional(&mut *conn)
    .await?;
    match row {
        Some((indexed,)) => Ok(indexed),
        None => bail!("table {table} does not exist"),
    }
}

/// The record with key `request_id`, or `None`. At most `max_payload_bytes` bytes of the
/// payload leave the server: it cuts the payload to that many characters (reading only that
/// slice of a TOASTed value), converts it to UTF-8 bytes and cuts again to that many bytes;
/// the client then drops a character split by the cut. The full size comes from
/// `octet_length`, so a 100 MB payload is never transferred (nor decompressed) whole.
///
/// On a partitioned table, where the same key may be stored more than once (with different
/// `expires_at`), the copy that expires latest is returned.
pub async fn get(
    conn: &mut PgConnection,
    table: &TableRef,
    request_id: Uuid,
    max_payload_bytes: usize,
) -> Result<Option<Record>> {
    let max = i32::try_from(max_payload_bytes).unwrap_or(i32::MAX);
    let sql = format!(
        "SELECT {SUMMARY_COLUMNS},
                substr(convert_to(substr(result_payload, 1, $2), 'UTF8'), 1, $2) AS head
           FROM {}
          WHERE request_id = $1
          ORDER BY expires_at DESC
          LIMIT 1",
        table.qualified()
    );
    type Row = (Uuid, String, Option<i32>, Ts, Ts, i64, i64, Vec<u8>);
    let res: Result<Option<Row>, sqlx::Error> = sqlx::query_as(&sql)
        .bind(request_id)
        .bind(max)
        .fetch_optional(&mut *conn)
        .await;
    let row: Option<Row> = match res {
        Ok(r) => r,
        Err(e) => return Err(explain_error(conn, e, "SELECT", table, "read a record from").await),
    };
    Ok(
        row.map(|(id, op, st, created, expires, bytes, xmin, head)| {
            let (payload, kept) = utf8_head(head);
            Record {
                summary: summary_of((id, op, st, created, expires, bytes, xmin)),
                payload,
                payload_truncated_bytes: (bytes - kept as i64).max(0),
            }
        }),
    )
}

/// Bytes cut at an arbitrary byte position -> the longest valid UTF-8 prefix, and how many of
/// the bytes it kept. Invalid bytes inside (only possible in a SQL_ASCII database) become
/// U+FFFD rather than an error.
pub(super) fn utf8_head(bytes: Vec<u8>) -> (String, usize) {
    match String::from_utf8(bytes) {
        Ok(s) => {
            let n = s.len();
            (s, n)
        }
        Err(e) => {
            let err = e.utf8_error();
            let mut bytes = e.into_bytes();
            if err.error_len().is_none() {
                // Only the last character is incomplete: the cut split it.
                bytes.truncate(err.valid_up_to());
                let n = bytes.len();
                match String::from_utf8(bytes) {
                    Ok(s) => (s, n),
                    Err(e) => (String::from_utf8_lossy(e.as_bytes()).into_owned(), n),
                }
            } else {
                // Drop a trailing incomplete character, then replace what is invalid.
                let mut end = bytes.len();
                for back in 1..=bytes.len().min(3) {
                    let i = bytes.len() - back;
                    let lead = bytes[i];
                    if lead & 0xC0 == 0x80 {
                        continue; // a continuation byte: look further back for its lead
                    }
                    let needs = match lead {
                        0xF0..=0xF7 => 4,
                        0xE0..=0xEF => 3,
                        0xC0..=0xDF => 2,
                        _ => 1,
                    };
                    if needs > back {
                        end = i;
                    }
                    break;
                }
                bytes.truncate(end);
                (String::from_utf8_lossy(&bytes).into_owned(), end)
            }
        }
    }
}

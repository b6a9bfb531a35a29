//! Record browser data layer: keyset pages, look-up by key, delete one record.
//!
//! Everything here is read-only except [`delete`]; records are immutable, so this module never
//! changes a row in place. Pagination is keyset only: a page continues strictly after the last
//! row of the previous one, compared as the row value `(sort column, request_id)`; there is no
//! row-skipping offset, so a page costs the same at row 10 as at row 10 million and rows
//! inserted or deleted meanwhile never make a page repeat or skip an older row.
//!
//! The queries work on the plain table of migration 045 and on a table declaratively
//! partitioned by range of `expires_at` (where only `(request_id, expires_at)` is unique).
//!
//! **All text returned from this module is raw from the database** (operation names, payloads,
//! parts of server messages): it may contain ESC sequences and other control characters. Pass
//! it through [`crate::sanitize`] before it reaches a terminal.

use std::fmt;

use anyhow::{anyhow, bail, Result};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::db::ts::Ts;
use crate::ident::TableRef;
use crate::sanitize;

/// The largest page [`page`] returns; bigger limits are clamped to it (memory stays bounded).
pub const MAX_PAGE_ROWS: u32 = 10_000;

/// Order of the record list. Every order is total: ties on the timestamp are broken by
/// `request_id` in the same direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
pub enum Sort {
    /// `created_at DESC, request_id DESC`
    Newest,
    /// `created_at ASC, request_id ASC`
    Oldest,
    /// `expires_at ASC, request_id ASC` (walks `idx_idempotency_expires` forwards)
    ExpiringSoonest,
    /// `expires_at DESC, request_id DESC` (walks `idx_idempotency_expires` backwards)
    /// The default: walks `idx_idempotency_expires`, and with one TTL per operation it is
    /// close to newest first.
    #[default]
    ExpiringLatest,
}

impl Sort {
    pub const ALL: [Sort; 4] = [
        Sort::Newest,
        Sort::Oldest,
        Sort::ExpiringSoonest,
        Sort::ExpiringLatest,
    ];

    /// The timestamp column this order sorts by.
    pub fn column(self) -> &'static str {
        match self {
            Sort::Newest | Sort::Oldest => "created_at",
            Sort::ExpiringSoonest | Sort::ExpiringLatest => "expires_at",
        }
    }

    pub fn descending(self) -> bool {
        matches!(self, Sort::Newest | Sort::ExpiringLatest)
    }

    pub fn label(self) -> &'static str {
        match self {
            Sort::Newest => "newest first",
            Sort::Oldest => "oldest first",
            Sort::ExpiringSoonest => "expiring soonest",
            Sort::ExpiringLatest => "expiring latest (≈ newest)",
        }
    }

    /// The next order in [`Sort::ALL`], wrapping around (for a "cycle sort" key).
    pub fn next(self) -> Sort {
        let i = Sort::ALL.iter().position(|s| *s == self).unwrap_or(0);
        Sort::ALL[(i + 1) % Sort::ALL.len()]
    }

    /// The sort key of `row` under this order.
    pub fn key_of(self, row: &RecordSummary) -> Ts {
        match self {
            Sort::Newest | Sort::Oldest => row.created_at,
            Sort::ExpiringSoonest | Sort::ExpiringLatest => row.expires_at,
        }
    }
}

/// HTTP status class of a stored result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum StatusClass {
    /// 200-299
    Success,
    /// 300-399
    Redirect,
    /// 400-499
    ClientError,
    /// 500-599
    ServerError,
    /// NULL (no status stored), or anything outside 200-599 (1xx, garbage such as 0 or 999).
    Other,
}

impl StatusClass {
    pub const ALL: [StatusClass; 5] = [
        StatusClass::Success,
        StatusClass::Redirect,
        StatusClass::ClientError,
        StatusClass::ServerError,
        StatusClass::Other,
    ];

    pub fn of(code: Option<i32>) -> StatusClass {
        match code {
            Some(200..=299) => StatusClass::Success,
            Some(300..=399) => StatusClass::Redirect,
            Some(400..=499) => StatusClass::ClientError,
            Some(500..=599) => StatusClass::ServerError,
            _ => StatusClass::Other,
        }
    }

    /// "2xx", "3xx", "4xx", "5xx", "other".
    pub fn label(self) -> &'static str {
        match self {
            StatusClass::Success => "2xx",
            StatusClass::Redirect => "3xx",
            StatusClass::ClientError => "4xx",
            StatusClass::ServerError => "5xx",
            StatusClass::Other => "other",
        }
    }

    /// The SQL condition selecting this class (fixed text, no user input).
    fn sql(self) -> &'static str {
        match self {
            StatusClass::Success => "status_code BETWEEN 200 AND 299",
            StatusClass::Redirect => "status_code BETWEEN 300 AND 399",
            StatusClass::ClientError => "status_code BETWEEN 400 AND 499",
            StatusClass::ServerError => "status_code BETWEEN 500 AND 599",
            StatusClass::Other => "(status_code IS NULL OR status_code < 200 OR status_code > 599)",
        }
    }
}

/// Live or expired, judged by the SERVER's clock (`now()`), never the client's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
pub enum Liveness {
    #[default]
    Any,
    /// `expires_at > now()`
    Live,
    /// `expires_at <= now()` (what `cleanup_expired_idempotency_records()` would delete)
    Expired,
}

impl Liveness {
    pub fn label(self) -> &'static str {
        match self {
            Liveness::Any => "any",
            Liveness::Live => "live",
            Liveness::Expired => "expired",
        }
    }
}

/// Which records to list. `Default` lists everything.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct RecordFilter {
    /// Exact operation name (bound as a value).
    pub operation: Option<String>,
    pub status: Option<StatusClass>,
    pub liveness: Liveness,
}

/// One row of the list, without the payload.
///
/// The timestamps are [`Ts`]: `'infinity'` and `'-infinity'` are valid values of both columns
/// (the guide's CHECK accepts `expires_at = 'infinity'` and `created_at = '-infinity'`), and
/// PostgreSQL orders them after / before every finite time, as `Ts` does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordSummary {
    pub request_id: Uuid,
    /// Raw from the database: sanitize before display.
    pub operation: String,
    pub status_code: Option<i32>,
    pub created_at: Ts,
    pub expires_at: Ts,
    /// `octet_length(result_payload)`: the payload's size in bytes as a client would receive
    /// it (in the database encoding, UTF-8 on practically every server), not its compressed
    /// on-disk size (`pg_column_size`). It is what "payload truncated, N more bytes" and
    /// "this record is 80 MB" mean to the operator, and it is cheap: for text PostgreSQL takes
    /// it from the TOAST pointer without fetching or decompressing the value.
    pub payload_bytes: i64,
    /// `xmin` of the row version that was read (the inserting transaction's id, as int8): with
    /// the key and the timestamps it names exactly the row the operator saw (see [`RowVersion`]).
    pub xmin: i64,
}

impl RecordSummary {
    pub fn status_class(&self) -> StatusClass {
        StatusClass::of(self.status_code)
    }

    /// Live at the server time `now`: `expires_at > now` (`infinity` is always live,
    /// `-infinity` never), the comparison the store and cleanup use.
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        !self.expires_at.at_or_before(now)
    }

    /// The row version this summary was read from, for acting on exactly that row.
    pub fn version(&self) -> RowVersion {
        RowVersion {
            request_id: self.request_id,
            xmin: self.xmin,
            created_at: self.created_at,
            expires_at: self.expires_at,
        }
    }
}

/// Exactly the row version an operator was shown, so that an action applies to it and to
/// nothing else. The application reuses an expired key by DELETE + INSERT: the new row has the
/// same `request_id` but another `xmin` (the inserting transaction), `created_at` and usually
/// `expires_at`. `xmin` alone is not enough (one transaction inserts many rows with the same
/// `xmin`; a table partitioned on `expires_at` may hold one key twice), so all four must match.
/// `xmin` survives VACUUM and freezing; it changes only with a new row version (the guide never
/// updates a row) or a dump and restore, when an action then safely matches nothing.
/// `ctid` is not used: VACUUM FULL and CLUSTER move rows.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct RowVersion {
    pub request_id: Uuid,
    pub xmin: i64,
    pub created_at: Ts,
    pub expires_at: Ts,
}

/// What [`delete`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum DeleteOutcome {
    /// The row version that was shown is deleted.
    Deleted,
    /// A row with this key exists, but not the version that was shown (the application reused
    /// the key, or the row was rewritten): nothing was deleted.
    Changed,
    /// No row has this key any more: nothing was deleted.
    Gone,
}

/// A keyset position: continue strictly after the row with this sort key and request id.
///
/// `expires_at` is a last tie-breaker for the `created_at` orders: on a partitioned table the
/// same request id may be stored twice (with different `expires_at`, possibly the same
/// `created_at`), and only `(request_id, expires_at)` is unique there. For the `Expiring*`
/// orders it equals `key`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cursor {
    /// The order the cursor belongs to; [`page`] refuses a cursor of another order.
    pub sort: Sort,
    /// The value of the sort column (`created_at` or `expires_at`) of the last row seen.
    /// `±infinity` is bound as such: PostgreSQL compares it with the row values correctly.
    pub key: Ts,
    pub request_id: Uuid,
    pub expires_at: Ts,
}

impl Cursor {
    /// The position just after `row` in `sort` order.
    pub fn after(sort: Sort, row: &RecordSummary) -> Cursor {
        Cursor {
            sort,
            key: sort.key_of(row),
            request_id: row.request_id,
            expires_at: row.expires_at,
        }
    }
}

/// One page of records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Page {
    pub rows: Vec<RecordSummary>,
    /// Where the next page starts; `None` when this page is the last one.
    pub next: Option<Cursor>,
    /// The server's clock when the page was read (the `now()` the liveness filter used).
    pub server_now: DateTime<Utc>,
}

/// One record with (the head of) its payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Record {
    pub summary: RecordSummary,
    /// Raw from the database: sanitize before display. At most `max_payload_bytes` bytes, cut
    /// on a character boundary.
    pub payload: String,
    /// How many bytes of the payload were left out (0 if none).
    pub payload_truncated_bytes: i64,
}

/// The role lacks a privilege (SQLSTATE 42501). `Display` is one readable sentence, e.g.
/// "permission denied: role reader lacks DELETE on public.idempotency_records".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PermissionDenied {
    pub role: String,
    /// `SELECT`, `DELETE`, `USAGE`...
    pub privilege: String,
    /// `schema.table` or `schema schema` (sanitized).
    pub object: String,
}

impl fmt::Display for PermissionDenied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "permission denied: role {} lacks {} on {}",
            self.role, self.privilege, self.object
        )
    }
}

impl std::error::Error for PermissionDenied {}

/// Parse what the operator typed as a request id: surrounding whitespace is ignored; the
/// hyphenated (`67e55044-10b1-426f-9247-bb680e5fe0c8`), simple (32 hex digits), braced
/// (`{...}`) and URN (`urn:uuid:...`) forms are accepted, in either case. Never asks the server.
pub fn parse_request_id(input: &str) -> Result<Uuid, String> {
    let s = input.trim();
    if s.is_empty() {
        return Err("no request id given: expected 8-4-4-4-12 hex digits (a UUID)".into());
    }
    Uuid::parse_str(s).map_err(|_| {
        "not a UUID: expected 8-4-4-4-12 hex digits, e.g. 67e55044-10b1-426f-9247-bb680e5fe0c8"
            .to_string()
    })
}

/// A bound value of a dynamically assembled query.
#[derive(Debug, Clone)]
enum Bind {
    Ts(Ts),
    Id(Uuid),
    Text(String),
    Int(i64),
}

/// SQL text (fixed fragments and the quoted table name only) plus its bound values.
struct Query {
    sql: String,
    binds: Vec<Bind>,
}

impl Query {
    fn bind(&mut self, b: Bind) -> String {
        self.binds.push(b);
        format!("${}", self.binds.len())
    }
}

/// The timestamps are cast: a `timestamp without time zone` column is read as a point in time
/// in the session's zone (the database's, as psql reads it); a `timestamptz` one is unchanged.
/// The aliases differ from the column names so that `ORDER BY created_at/expires_at` keeps
/// naming the table's columns (and their indexes), not these expressions.
const SUMMARY_COLUMNS: &str = "request_id, operation::text AS operation, status_code, \
     created_at::timestamptz AS created_at_tz, expires_at::timestamptz AS expires_at_tz, \
     octet_length(result_payload)::int8 AS payload_bytes, xmin::text::int8 AS xmin";

fn page_query(
    table: &TableRef,
    filter: &RecordFilter,
    sort: Sort,
    after: Option<&Cursor>,
    fetch: i64,
) -> Query {
    let mut q = Query {
        sql: String::new(),
        binds: Vec::new(),
    };
    let col = sort.column();
    let (cmp, dir) = if sort.descending() {
        ("<", "DESC")
    } else {
        (">", "ASC")
    };
    // (sort column, request_id) is unique on the plain table; on a partitioned one only
    // (request_id, expires_at) is, so the created_at orders break the last tie by expires_at.
    let by_expiry = col == "expires_at";
    let mut conds: Vec<String> = Vec::new();
    if let Some(c) = after {
        let k = q.bind(Bind::Ts(c.key));
        let id = q.bind(Bind::Id(c.request_id));
        if by_expiry {
            conds.push(format!(
                "({col}, request_id) {cmp} ({k}::timestamptz, {id}::uuid)"
            ));
        } else {
            let e = q.bind(Bind::Ts(c.expires_at));
            conds.push(format!(
                "({col}, request_id, expires_at) {cmp} ({k}::timestamptz, {id}::uuid, {e}::timestamptz)"
            ));
        }
    }
    if let Some(op) = &filter.operation {
        let p = q.bind(Bind::Text(op.clone()));
        conds.push(format!("operation = {p}::text"));
    }
    if let Some(st) = filter.status {
        conds.push(st.sql().to_string());
    }
    match filter.liveness {
        Liveness::Any => {}
        Liveness::Live => conds.push("expires_at > now()".into()),
        Liveness::Expired => conds.push("expires_at <= now()".into()),
    }
    let mut sql = format!(
        "SELECT {SUMMARY_COLUMNS}, now() AS server_now FROM {}",
        table.qualified()
    );
    if !conds.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&conds.join(" AND "));
    }
    let lim = q.bind(Bind::Int(fetch));
    let order = if by_expiry {
        format!("{col} {dir}, request_id {dir}")
    } else {
        format!("{col} {dir}, request_id {dir}, expires_at {dir}")
    };
    sql.push_str(&format!(" ORDER BY {order} LIMIT {lim}"));
    q.sql = sql;
    q
}

fn clamp_limit(limit: u32) -> u32 {
    limit.clamp(1, MAX_PAGE_ROWS)
}

fn check_cursor(sort: Sort, after: Option<&Cursor>) -> Result<()> {
    if let Some(c) = after {
        if c.sort != sort {
            bail!(
                "internal error: a cursor of order \"{}\" cannot continue order \"{}\"",
                c.sort.label(),
                sort.label()
            );
        }
    }
    Ok(())
}

type SummaryRow = (Uuid, String, Option<i32>, Ts, Ts, i64, i64);

fn summary_of(r: SummaryRow) -> RecordSummary {
    RecordSummary {
        request_id: r.0,
        operation: r.1,
        status_code: r.2,
        created_at: r.3,
        expires_at: r.4,
        payload_bytes: r.5,
        xmin: r.6,
    }
}

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

fn args_of(q: &Query) -> sqlx::postgres::PgArguments {
    use sqlx::Arguments;
    let mut args = sqlx::postgres::PgArguments::default();
    for b in &q.binds {
        // Adding a value of a supported type cannot fail; keep going if it ever did: the
        // server would then report the missing parameter as a readable error.
        let _ = match b {
            Bind::Ts(v) => args.add(*v),
            Bind::Id(v) => args.add(*v),
            Bind::Text(v) => args.add(v.clone()),
            Bind::Int(v) => args.add(*v),
        };
    }
    args
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
fn utf8_head(bytes: Vec<u8>) -> (String, usize) {
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

/// Delete exactly the row version that was shown ([`RowVersion`]: key, `xmin` and both
/// timestamps, all bound as values), never "whatever row holds the key now". When the key was
/// reused meanwhile (the application deleted the expired row and inserted a new, live one), the
/// new row does not match: nothing is deleted and the outcome is [`DeleteOutcome::Changed`].
/// Works on a partitioned table too (`xmin` is the row's, in whichever partition it is). A
/// role without DELETE privilege gets a [`PermissionDenied`] error; a read-only session says so.
pub async fn delete(
    conn: &mut PgConnection,
    table: &TableRef,
    version: &RowVersion,
) -> Result<DeleteOutcome> {
    let sql = format!(
        "DELETE FROM {} WHERE request_id = $1 AND xmin::text::int8 = $2 \
            AND created_at = $3 AND expires_at = $4",
        table.qualified()
    );
    let res = sqlx::query(&sql)
        .bind(version.request_id)
        .bind(version.xmin)
        .bind(version.created_at)
        .bind(version.expires_at)
        .execute(&mut *conn)
        .await;
    match res {
        Ok(done) if done.rows_affected() > 0 => return Ok(DeleteOutcome::Deleted),
        Ok(_) => {}
        Err(e) => {
            return Err(explain_error(conn, e, "DELETE", table, "delete a record from").await)
        }
    }
    let sql = format!(
        "SELECT EXISTS (SELECT 1 FROM {} WHERE request_id = $1)",
        table.qualified()
    );
    let res: Result<bool, sqlx::Error> = sqlx::query_scalar(&sql)
        .bind(version.request_id)
        .fetch_one(&mut *conn)
        .await;
    match res {
        Ok(true) => Ok(DeleteOutcome::Changed),
        Ok(false) => Ok(DeleteOutcome::Gone),
        Err(e) => Err(explain_error(conn, e, "SELECT", table, "read a record from").await),
    }
}

/// A failed statement as a readable error. Permission and read-only failures become one
/// sentence; anything else keeps the `sqlx::Error` in the chain (so callers can still ask for
/// its SQLSTATE or whether the connection was lost), with a sentence of context on top.
async fn explain_error(
    conn: &mut PgConnection,
    e: sqlx::Error,
    privilege: &str,
    table: &TableRef,
    doing: &str,
) -> anyhow::Error {
    let (code, message) = match &e {
        sqlx::Error::Database(db) => (
            db.code().map(|c| c.to_string()).unwrap_or_default(),
            db.message().to_string(),
        ),
        _ => (String::new(), String::new()),
    };
    match code.as_str() {
        "42501" => {
            let role = sqlx::query_scalar::<_, String>("SELECT current_user::text")
                .fetch_one(&mut *conn)
                .await
                .map(|r| sanitize::line(&r))
                .unwrap_or_else(|_| "(this role)".into());
            let (privilege, object) = if message.contains("for schema") {
                (
                    "USAGE".to_string(),
                    format!("schema {}", sanitize::line(table.schema.as_str())),
                )
            } else {
                (privilege.to_string(), table.to_string())
            };
            anyhow::Error::new(PermissionDenied {
                role,
                privilege,
                object,
            })
        }
        "25006" => anyhow!(
            "cannot {doing} {table}: the session is read-only (--read-only, or a standby server)"
        ),
        "42P01" => anyhow!("table {table} does not exist"),
        _ => anyhow::Error::new(e).context(format!("cannot {doing} {table}")),
    }
}

/// Compile-time check: the futures of this module can run on `tokio::spawn`.
#[allow(dead_code)]
fn _futures_are_send(pool: sqlx::PgPool, t: TableRef) {
    fn is_send<T: Send>(_: T) {}
    is_send(async move {
        let mut c = pool.acquire().await?;
        let f = RecordFilter::default();
        let p = page(&mut c, &t, &f, Sort::Newest, None, 10).await?;
        explain_page(&mut c, &t, &f, Sort::Newest, p.next.as_ref(), 10).await?;
        sort_is_indexed(&mut c, &t, Sort::Newest).await?;
        if let Some(r) = get(&mut c, &t, Uuid::nil(), 10).await? {
            delete(&mut c, &t, &r.summary.version()).await?;
        }
        anyhow::Ok(())
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_classes() {
        assert_eq!(StatusClass::of(Some(200)), StatusClass::Success);
        assert_eq!(StatusClass::of(Some(299)), StatusClass::Success);
        assert_eq!(StatusClass::of(Some(301)), StatusClass::Redirect);
        assert_eq!(StatusClass::of(Some(404)), StatusClass::ClientError);
        assert_eq!(StatusClass::of(Some(599)), StatusClass::ServerError);
        for other in [None, Some(0), Some(102), Some(199), Some(600), Some(-1)] {
            assert_eq!(StatusClass::of(other), StatusClass::Other, "{other:?}");
        }
        assert_eq!(StatusClass::Success.label(), "2xx");
        assert_eq!(StatusClass::Other.label(), "other");
    }

    #[test]
    fn utf8_head_cuts_on_a_char_boundary() {
        let euro = "€€".as_bytes().to_vec(); // 6 bytes
        assert_eq!(utf8_head(euro[..5].to_vec()), ("€".to_string(), 3));
        assert_eq!(utf8_head(euro.clone()), ("€€".to_string(), 6));
        assert_eq!(utf8_head(Vec::new()), (String::new(), 0));
        // Invalid inside, incomplete at the end.
        let mut bad = vec![b'a', 0xff, b'b'];
        bad.extend_from_slice(&"€".as_bytes()[..2]);
        let (s, n) = utf8_head(bad);
        assert_eq!(s, "a\u{FFFD}b");
        assert_eq!(n, 3);
    }

    #[test]
    fn page_sql_is_keyset_with_bound_values() {
        let t = TableRef::new("s", "t\"; DROP TABLE x; --").unwrap();
        let c = Cursor {
            sort: Sort::ExpiringLatest,
            key: Ts::Infinity,
            request_id: Uuid::nil(),
            expires_at: Ts::Infinity,
        };
        let f = RecordFilter {
            operation: Some("o'; DROP TABLE x; --".into()),
            status: Some(StatusClass::Other),
            liveness: Liveness::Live,
        };
        let q = page_query(&t, &f, Sort::ExpiringLatest, Some(&c), 51);
        assert!(q
            .sql
            .contains("(expires_at, request_id) < ($1::timestamptz, $2::uuid)"));
        assert!(q
            .sql
            .ends_with("ORDER BY expires_at DESC, request_id DESC LIMIT $4"));
        assert!(!q.sql.contains("o'"));
        assert!(q.sql.contains(r#"FROM "s"."t""; DROP TABLE x; --""#));
        assert_eq!(q.binds.len(), 4);
    }

    #[test]
    fn sorts_cycle() {
        let mut s = Sort::Newest;
        for _ in 0..4 {
            s = s.next();
        }
        assert_eq!(s, Sort::Newest);
    }
}

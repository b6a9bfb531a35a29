//! The page query: keyset SQL for each sort order, with every value bound.

use super::*;

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
pub(super) enum Bind {
    Ts(Ts),
    Id(Uuid),
    Text(String),
    Int(i64),
}

/// SQL text (fixed fragments and the quoted table name only) plus its bound values.
pub(super) struct Query {
    pub(super) sql: String,
    pub(super) binds: Vec<Bind>,
}

impl Query {
    pub(super) fn bind(&mut self, b: Bind) -> String {
        self.binds.push(b);
        format!("${}", self.binds.len())
    }
}

/// The timestamps are cast: a `timestamp without time zone` column is read as a point in time
/// in the session's zone (the database's, as psql reads it); a `timestamptz` one is unchanged.
/// The aliases differ from the column names so that `ORDER BY created_at/expires_at` keeps
/// naming the table's columns (and their indexes), not these expressions.
pub(super) const SUMMARY_COLUMNS: &str = "request_id, operation::text AS operation, status_code, \
     created_at::timestamptz AS created_at_tz, expires_at::timestamptz AS expires_at_tz, \
     octet_length(result_payload)::int8 AS payload_bytes, xmin::text::int8 AS xmin";

pub(super) fn page_query(
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

pub(super) fn clamp_limit(limit: u32) -> u32 {
    limit.clamp(1, MAX_PAGE_ROWS)
}

pub(super) fn check_cursor(sort: Sort, after: Option<&Cursor>) -> Result<()> {
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

pub(super) type SummaryRow = (Uuid, String, Option<i32>, Ts, Ts, i64, i64);

pub(super) fn summary_of(r: SummaryRow) -> RecordSummary {
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

pub(super) fn args_of(q: &Query) -> sqlx::postgres::PgArguments {
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

//! Records of any table shape, by its mapping: the key typed by the operator in any of the key's
//! types (text, uuid, an integer, hex for bytea, `a,b` for a composite key), pages in keyset
//! order of the mapped key (or newest first, when an index leads with the creation column),
//! one record by key. Every name is quoted, every value bound with its own type.
//!
//! The guide's table keeps its own typed path (the functions of this module's parent).

use sqlx::{Arguments, Row};

use super::*;
use crate::db::shape::{quote, Role};
use crate::db::snapshot::TableMapping;
use crate::db::table::{ColumnKind, TableInfo};

/// One value of a key column.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub enum KeyPart {
    Uuid(Uuid),
    Int(i64),
    /// Raw from the operator or the database: sanitize before display.
    Text(String),
    Bytes(Vec<u8>),
}

impl fmt::Display for KeyPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyPart::Uuid(u) => write!(f, "{u}"),
            KeyPart::Int(i) => write!(f, "{i}"),
            KeyPart::Text(s) => f.write_str(s),
            KeyPart::Bytes(b) => {
                f.write_str("\\x")?;
                for byte in b {
                    write!(f, "{byte:02x}")?;
                }
                Ok(())
            }
        }
    }
}

/// A whole key: one part per key column, in key order. Shown as the parts joined by `,` (the
/// form [`parse_key`] reads back).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct MappedKey(pub Vec<KeyPart>);

impl fmt::Display for MappedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

/// A key column as the queries use it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyColumn {
    pub name: String,
    pub quoted: String,
    pub kind: ColumnKind,
}

impl KeyColumn {
    /// How a value of this column is typed at the `/` prompt.
    pub fn form(&self) -> &'static str {
        match self.kind {
            ColumnKind::Uuid => "a UUID",
            ColumnKind::Integer => "an integer",
            ColumnKind::Bytea => "hex bytes (\\x0a1b... or 0a1b...)",
            _ => "text",
        }
    }
}

/// The key's columns, each of a type the browser can bind; `Err` says why the records of this
/// table cannot be listed (no key mapped, a column of another type).
pub fn key_columns(tm: &TableMapping, info: &TableInfo) -> Result<Vec<KeyColumn>, String> {
    if !tm.has(Role::Key) || tm.mapping.key_columns().is_empty() {
        return Err(crate::db::shape::not_mapped(Role::Key));
    }
    tm.mapping
        .key_columns()
        .iter()
        .map(|name| {
            let c = info.column(name).ok_or_else(|| {
                format!("the key column {} does not exist", sanitize::line(name))
            })?;
            match c.kind {
                ColumnKind::Uuid | ColumnKind::Integer | ColumnKind::Text | ColumnKind::Bytea => {
                    Ok(KeyColumn {
                        name: name.clone(),
                        quoted: quote(name),
                        kind: c.kind,
                    })
                }
                _ => Err(format!(
                    "the key column {} is of type {}: the record browser pages by keys of text, uuid, integer or bytea columns",
                    sanitize::line(name),
                    sanitize::line(&c.type_name)
                )),
            }
        })
        .collect()
}

/// What the operator typed at `/`, read as the mapped key: one value per key column, separated
/// by commas for a composite key (the last column takes the rest, commas included); a UUID in
/// any of its forms, an integer, hex for bytea (`\x0a1b` or `0a1b`), text as typed (surrounding
/// whitespace dropped). Never asks the server.
pub fn parse_key(input: &str, cols: &[KeyColumn]) -> Result<MappedKey, String> {
    let names = || {
        cols.iter()
            .map(|c| sanitize::line(&c.name))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if cols.is_empty() {
        return Err(crate::db::shape::not_mapped(Role::Key));
    }
    let input = input.trim();
    if input.is_empty() {
        return Err(format!("no key given: expected {}", expected(cols)));
    }
    let parts: Vec<&str> = if cols.len() == 1 {
        vec![input]
    } else {
        input.splitn(cols.len(), ',').map(str::trim).collect()
    };
    if parts.len() != cols.len() {
        return Err(format!(
            "the key is ({}): expected {} values separated by commas ({})",
            names(),
            cols.len(),
            expected(cols)
        ));
    }
    let mut out = Vec::with_capacity(cols.len());
    for (c, p) in cols.iter().zip(parts) {
        let bad = |why: &str| format!("{} is {}: {why}", sanitize::line(&c.name), c.form());
        out.push(match c.kind {
            ColumnKind::Uuid => KeyPart::Uuid(parse_request_id(p).map_err(|e| bad(&e))?),
            ColumnKind::Integer => KeyPart::Int(
                p.parse::<i64>()
                    .map_err(|_| bad(&format!("{:?} is not an integer", sanitize::line(p))))?,
            ),
            ColumnKind::Bytea => KeyPart::Bytes(parse_hex(p).map_err(|e| bad(&e))?),
            _ => KeyPart::Text(p.to_owned()),
        });
    }
    Ok(MappedKey(out))
}

fn expected(cols: &[KeyColumn]) -> String {
    cols.iter()
        .map(|c| format!("{} as {}", sanitize::line(&c.name), c.form()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `\x0a1b`, `\\x0a1b` or `0a1b` (either case) as bytes.
pub fn parse_hex(s: &str) -> Result<Vec<u8>, String> {
    let h = s
        .strip_prefix("\\\\x")
        .or_else(|| s.strip_prefix("\\x"))
        .or_else(|| s.strip_prefix("0x"))
        .unwrap_or(s);
    if h.len() % 2 != 0 {
        return Err("an odd number of hex digits".into());
    }
    (0..h.len())
        .step_by(2)
        .map(|i| {
            h.get(i..i + 2)
                .and_then(|d| u8::from_str_radix(d, 16).ok())
                .ok_or_else(|| "not hex digits (0-9, a-f)".to_string())
        })
        .collect()
}

/// The orders of a mapped table's record list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
pub enum MappedSort {
    /// By the key, ascending (the key's unique index).
    #[default]
    Key,
    /// `created DESC, key DESC`.
    Newest,
    /// `created ASC, key ASC`.
    Oldest,
}

impl MappedSort {
    pub const ALL: [MappedSort; 3] = [MappedSort::Key, MappedSort::Newest, MappedSort::Oldest];

    pub fn label(self) -> &'static str {
        match self {
            MappedSort::Key => "by key",
            MappedSort::Newest => "newest first",
            MappedSort::Oldest => "oldest first",
        }
    }
}

/// Each order, and whether it is offered: an order no index serves would sort the whole table
/// for every page, so it is not offered and the reason says which index it needs.
pub fn sorts(tm: &TableMapping, info: &TableInfo) -> Vec<(MappedSort, Result<(), String>)> {
    let key: Vec<String> = tm.mapping.key_columns().to_vec();
    let key_indexed = !key.is_empty()
        && info.indexes.iter().any(|i| {
            i.valid
                && !i.partial
                && i.columns.len() >= key.len()
                && i.columns[..key.len()]
                    .iter()
                    .zip(&key)
                    .all(|(c, k)| c.as_deref() == Some(k.as_str()))
        });
    let created = tm.mapping.created();
    MappedSort::ALL
        .into_iter()
        .map(|s| {
            let ok = match s {
                MappedSort::Key if key.is_empty() => Err(crate::db::shape::not_mapped(Role::Key)),
                MappedSort::Key if !key_indexed => Err(format!(
                    "not offered: no index leads with the key ({})",
                    sanitize::line(&key.join(", "))
                )),
                MappedSort::Key => Ok(()),
                MappedSort::Newest | MappedSort::Oldest => match created {
                    None => Err(crate::db::shape::not_mapped(Role::Created)),
                    Some(c) if info.index_leading_with(c).is_none() => Err(format!(
                        "not offered: no index leads with {} (each page would sort the whole table; \
                         an index on it offers this order)",
                        sanitize::line(c)
                    )),
                    Some(_) if key.is_empty() => Err(crate::db::shape::not_mapped(Role::Key)),
                    Some(_) => Ok(()),
                },
            };
            (s, ok)
        })
        .collect()
}

/// One row of a mapped table's list (no payload).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MappedRow {
    pub key: MappedKey,
    /// Raw from the database: sanitize before display. `None` without an operation mapped.
    pub operation: Option<String>,
    pub status: Option<i32>,
    pub created_at: Option<Ts>,
    /// When it expires (the expiry column, or created + ttl); `None` when it never does or
    /// expiry is not mapped.
    pub expires_at: Option<Ts>,
    /// `None` without an in-flight state mapped.
    pub in_flight: Option<bool>,
    pub payload_bytes: Option<i64>,
}

/// Where the next page of a mapped list starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MappedCursor {
    pub sort: MappedSort,
    pub created_at: Option<Ts>,
    pub key: MappedKey,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MappedPage {
    pub rows: Vec<MappedRow>,
    pub next: Option<MappedCursor>,
    pub server_now: DateTime<Utc>,
}

/// One record with the head of its payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MappedRecord {
    pub row: MappedRow,
    /// Raw: sanitize before display. Bytes that are not UTF-8 are replaced.
    pub payload: Option<String>,
    pub payload_truncated_bytes: i64,
}

/// The select list of a mapped row: key columns (cast to the type they are read as), then
/// operation, status, created, expires, in flight, payload size. `$done` is the placeholder of
/// the done values.
fn select_list(tm: &TableMapping, info: &TableInfo, cols: &[KeyColumn], done: &str) -> String {
    let m = &tm.sql;
    let mut out: Vec<String> = cols
        .iter()
        .enumerate()
        .map(|(i, c)| match c.kind {
            ColumnKind::Integer => format!("{}::int8 AS _k{i}", c.quoted),
            ColumnKind::Text => format!("{}::text AS _k{i}", c.quoted),
            _ => format!("{} AS _k{i}", c.quoted),
        })
        .collect();
    let or_null = |e: &Option<String>, ty: &str| match e {
        Some(e) => format!("({e})::{ty}"),
        None => format!("NULL::{ty}"),
    };
    out.push(or_null(&m.operation, "text"));
    out.push(or_null(&m.status, "int4"));
    out.push(or_null(&m.created, "timestamptz"));
    out.push(or_null(&m.expires_at(), "timestamptz"));
    out.push(match &m.inflight {
        Some(i) => i.in_flight(done),
        None => format!("(CASE WHEN {done}::text[] IS NULL THEN false END)"),
    });
    out.push(match (&m.payload, tm.mapping.payload()) {
        (Some(p), Some(name))
            if info
                .column(name)
                .is_some_and(|c| c.kind == ColumnKind::Bytea) =>
        {
            format!("octet_length({p})::int8")
        }
        (Some(p), Some(_)) => format!("octet_length({p}::text)::int8"),
        _ => "NULL::int8".into(),
    });
    out.join(", ")
}

fn row_of(r: &sqlx::postgres::PgRow, cols: &[KeyColumn]) -> Result<MappedRow, sqlx::Error> {
    let mut key = Vec::with_capacity(cols.len());
    for (i, c) in cols.iter().enumerate() {
        key.push(match c.kind {
            ColumnKind::Uuid => KeyPart::Uuid(r.try_get(i)?),
            ColumnKind::Integer => KeyPart::Int(r.try_get(i)?),
            ColumnKind::Bytea => KeyPart::Bytes(r.try_get(i)?),
            _ => KeyPart::Text(r.try_get(i)?),
        });
    }
    let n = cols.len();
    Ok(MappedRow {
        key: MappedKey(key),
        operation: r.try_get(n)?,
        status: r.try_get(n + 1)?,
        created_at: r.try_get(n + 2)?,
        expires_at: r.try_get(n + 3)?,
        in_flight: r.try_get(n + 4)?,
        payload_bytes: r.try_get(n + 5)?,
    })
}

fn add_part(args: &mut sqlx::postgres::PgArguments, p: &KeyPart) {
    // Adding a value of a supported type cannot fail; the server would report a missing one.
    let _ = match p {
        KeyPart::Uuid(v) => args.add(*v),
        KeyPart::Int(v) => args.add(*v),
        KeyPart::Text(v) => args.add(v.clone()),
        KeyPart::Bytes(v) => args.add(v.clone()),
    };
}

fn placeholder(i: usize, c: &KeyColumn) -> String {
    match c.kind {
        ColumnKind::Uuid => format!("${i}::uuid"),
        ColumnKind::Integer => format!("${i}::int8"),
        ColumnKind::Bytea => format!("${i}::bytea"),
        _ => format!("${i}::text"),
    }
}

/// A page of a mapped table's records in `sort` order, strictly after `after`, keyset-paginated
/// on `(created,) key...`. A key or order the table cannot serve is an error naming why.
#[allow(clippy::too_many_arguments)]
pub async fn mapped_page(
    conn: &mut PgConnection,
    table: &TableRef,
    info: &TableInfo,
    tm: &TableMapping,
    sort: MappedSort,
    after: Option<&MappedCursor>,
    limit: u32,
) -> Result<MappedPage> {
    let cols = key_columns(tm, info).map_err(|e| anyhow!("records of {table}: {e}"))?;
    if let Some((_, Err(why))) = sorts(tm, info).into_iter().find(|(s, _)| *s == sort) {
        bail!("{} is {why}", sort.label());
    }
    let limit = clamp_limit(limit) as usize;
    let mut args = sqlx::postgres::PgArguments::default();
    let _ = args.add(tm.sql.done_values());
    let mut order_cols: Vec<String> = Vec::new();
    let mut cmp_left: Vec<String> = Vec::new();
    let mut cmp_right: Vec<String> = Vec::new();
    let mut n = 1;
    let desc = sort == MappedSort::Newest;
    if sort != MappedSort::Key {
        let created = tm.sql.created.clone().unwrap_or_default();
        order_cols.push(created.clone());
        if let Some(c) = after {
            n += 1;
            let _ = args.add(c.created_at.unwrap_or(Ts::NegInfinity));
            cmp_left.push(created);
            cmp_right.push(format!("${n}::timestamptz"));
        }
    }
    for c in &cols {
        order_cols.push(c.quoted.clone());
    }
    if let Some(a) = after {
        if a.key.0.len() != cols.len() || a.sort != sort {
            bail!("internal error: a cursor of another list cannot continue this one");
        }
        for (c, p) in cols.iter().zip(&a.key.0) {
            n += 1;
            add_part(&mut args, p);
            cmp_left.push(c.quoted.clone());
            cmp_right.push(placeholder(n, c));
        }
    }
    let dir = if desc { "DESC" } else { "ASC" };
    let mut sql = format!(
        "SELECT {}, now() AS server_now FROM {}",
        select_list(tm, info, &cols, "$1"),
        table.qualified()
    );
    if !cmp_left.is_empty() {
        sql.push_str(&format!(
            " WHERE ({}) {} ({})",
            cmp_left.join(", "),
            if desc { "<" } else { ">" },
            cmp_right.join(", ")
        ));
    }
    n += 1;
    let _ = args.add(limit as i64 + 1);
    sql.push_str(&format!(
        " ORDER BY {} LIMIT ${n}",
        order_cols
            .iter()
            .map(|c| format!("{c} {dir}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let res = sqlx::query_with(&sql, args).fetch_all(&mut *conn).await;
    let rows = match res {
        Ok(r) => r,
        Err(e) => return Err(explain_error(conn, e, "SELECT", table, "read records from").await),
    };
    let mut out = Vec::with_capacity(rows.len().min(limit));
    let mut server_now = None;
    for r in &rows {
        out.push(row_of(r, &cols).map_err(|e| {
            anyhow!(
                "reading a record of {table}: {}",
                sanitize::line(&e.to_string())
            )
        })?);
        server_now = Some(r.try_get::<DateTime<Utc>, _>(cols.len() + 6)?);
    }
    let more = out.len() > limit;
    out.truncate(limit);
    let server_now = match server_now {
        Some(t) => t,
        None => {
            sqlx::query_scalar("SELECT now()")
                .fetch_one(&mut *conn)
                .await?
        }
    };
    let next = if more {
        out.last().map(|r| MappedCursor {
            sort,
            created_at: r.created_at,
            key: r.key.clone(),
        })
    } else {
        None
    };
    Ok(MappedPage {
        rows: out,
        next,
        server_now,
    })
}

/// The record with `key`, with at most `max_payload_bytes` of its payload; `None` when no row
/// has it.
pub async fn mapped_get(
    conn: &mut PgConnection,
    table: &TableRef,
    info: &TableInfo,
    tm: &TableMapping,
    key: &MappedKey,
    max_payload_bytes: usize,
) -> Result<Option<MappedRecord>> {
    let cols = key_columns(tm, info).map_err(|e| anyhow!("records of {table}: {e}"))?;
    if key.0.len() != cols.len() {
        bail!("the key has {} columns, not {}", cols.len(), key.0.len());
    }
    let max = i32::try_from(max_payload_bytes).unwrap_or(i32::MAX);
    let mut args = sqlx::postgres::PgArguments::default();
    let _ = args.add(tm.sql.done_values());
    let _ = args.add(max);
    let mut conds = Vec::new();
    for (i, (c, p)) in cols.iter().zip(&key.0).enumerate() {
        add_part(&mut args, p);
        conds.push(format!("{} = {}", c.quoted, placeholder(i + 3, c)));
    }
    let head = match (&tm.sql.payload, tm.mapping.payload()) {
        (Some(p), Some(name))
            if info
                .column(name)
                .is_some_and(|c| c.kind == ColumnKind::Bytea) =>
        {
            format!("substr({p}, 1, $2)")
        }
        (Some(p), Some(_)) => {
            format!("substr(convert_to(substr({p}::text, 1, $2), 'UTF8'), 1, $2)")
        }
        _ => "NULL::bytea".into(),
    };
    let sql = format!(
        "SELECT {}, now(), {head} FROM {} WHERE {} LIMIT 1",
        select_list(tm, info, &cols, "$1"),
        table.qualified(),
        conds.join(" AND ")
    );
    let res = sqlx::query_with(&sql, args)
        .fetch_optional(&mut *conn)
        .await;
    let row = match res {
        Ok(r) => r,
        Err(e) => return Err(explain_error(conn, e, "SELECT", table, "read a record from").await),
    };
    let Some(r) = row else { return Ok(None) };
    let summary = row_of(&r, &cols).map_err(|e| {
        anyhow!(
            "reading a record of {table}: {}",
            sanitize::line(&e.to_string())
        )
    })?;
    let head: Option<Vec<u8>> = r.try_get(cols.len() + 7)?;
    let (payload, kept) = match head {
        Some(h) => {
            let (s, n) = utf8_head(h);
            (Some(s), n as i64)
        }
        None => (None, 0),
    };
    let truncated = summary
        .payload_bytes
        .map(|b| (b - kept).max(0))
        .unwrap_or(0);
    Ok(Some(MappedRecord {
        row: summary,
        payload,
        payload_truncated_bytes: truncated,
    }))
}

#[cfg(test)]
#[path = "mapped_tests.rs"]
mod mapped_tests;

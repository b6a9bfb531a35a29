//! The tables of a database that look like idempotency tables, each with its detected shape
//! (`idemtop schema` without a table to show).

use anyhow::Result;
use serde::Serialize;
use sqlx::PgConnection;

use super::detect::{detect, norm, Detection, CREATED_NAMES, STATUS_NAMES};
use crate::db::table;
use crate::ident::TableRef;

/// At most this many candidates are read and listed.
pub const MAX_CANDIDATES: usize = 50;

/// A table that looks like an idempotency table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Candidate {
    /// Why it is listed, in words.
    pub reason: &'static str,
    pub detection: Detection,
}

/// Column names of a stored response (a bare `payload` or `body` is too common to count).
const RESPONSE_NAMES: &[&str] = &[
    "resultpayload",
    "responsebody",
    "responsepayload",
    "response",
    "responsejson",
    "responsedata",
    "result",
];

fn named_like_idempotency(name: &str) -> bool {
    norm(name).contains("idempot")
}

/// The first, cheap test on names only: named like an idempotency table (the table or one of
/// its columns), or a creation time beside a stored response or status.
pub fn looks_like_candidate(table: &str, columns: &[String]) -> bool {
    if named_like_idempotency(table) || columns.iter().any(|c| named_like_idempotency(c)) {
        return true;
    }
    let has = |names: &[&str]| columns.iter().any(|c| names.contains(&norm(c).as_str()));
    has(CREATED_NAMES) && (has(STATUS_NAMES) || has(RESPONSE_NAMES))
}

/// Why a detected table is a candidate, if it is one: named like an idempotency table, or a key,
/// a creation time and a stored response or status were all found (types checked). A column
/// named like an idempotency key is not enough: a table that references the keys has one too.
fn reason(d: &Detection) -> Option<&'static str> {
    if named_like_idempotency(&d.table) {
        return Some("named like an idempotency table");
    }
    let m = &d.mapping;
    (!m.key_columns().is_empty()
        && m.created().is_some()
        && (m.status().is_some() || m.payload().is_some()))
    .then_some("has a key, a creation time and a stored response")
}

/// The candidate tables of the connected database (ordinary and partitioned tables outside the
/// system schemas; partitions are not listed apart from their parent), by schema and name, at
/// most [`MAX_CANDIDATES`]; the `bool` says whether more were left out.
pub async fn candidates(conn: &mut PgConnection) -> Result<(Vec<Candidate>, bool)> {
    let tables: Vec<(String, String, Vec<String>)> = sqlx::query_as(
        r"SELECT n.nspname::text, c.relname::text, array_agg(a.attname::text ORDER BY a.attnum)
            FROM pg_class c
            JOIN pg_namespace n ON n.oid = c.relnamespace
            JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
           WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
             AND n.nspname NOT LIKE 'pg\_%' AND n.nspname <> 'information_schema'
           GROUP BY n.nspname, c.relname
           ORDER BY 1, 2",
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut found = Vec::new();
    let mut more = false;
    for (schema, name, columns) in tables {
        if !looks_like_candidate(&name, &columns) {
            continue;
        }
        // A name idemtop cannot use (a control character in it) cannot be watched either.
        let Ok(table_ref) = TableRef::new(&schema, &name) else {
            continue;
        };
        let info = match table::resolve(conn, &table_ref).await {
            Ok(info) => info,
            Err(e) => {
                // Dropped meanwhile: not a candidate any more.
                tracing::debug!("candidate {table_ref} not read: {e:#}");
                continue;
            }
        };
        let d = detect(&schema, &name, &info);
        if let Some(reason) = reason(&d) {
            if found.len() == MAX_CANDIDATES {
                more = true;
                break;
            }
            found.push(Candidate {
                reason,
                detection: d,
            });
        }
    }
    Ok((found, more))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn names_make_a_candidate_and_a_plain_table_is_not_one() {
        assert!(looks_like_candidate("idempotent_action", &cols(&["key"])));
        assert!(looks_like_candidate("keys", &cols(&["IdempotencyKey"])));
        assert!(looks_like_candidate(
            "api_requests",
            &cols(&["id", "createdAt", "response_body"])
        ));
        assert!(!looks_like_candidate(
            "webhook_events",
            &cols(&["id", "created_at", "payload"])
        ));
        assert!(!looks_like_candidate("users", &cols(&["id", "email"])));
    }
}

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

mod delete;
mod mapped;
mod query;
mod read;
#[cfg(test)]
mod tests;

pub use delete::*;
pub use mapped::*;
pub use query::*;
pub use read::*;

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

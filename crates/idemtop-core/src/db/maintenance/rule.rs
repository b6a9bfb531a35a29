//! What cleanup may delete, from the table's effective mapping ([`crate::db::shape::effective`]):
//! the expiry (a column, or a TTL on the creation column), never a row in flight unless the
//! mapping says stale in-flight rows may go, and what the foreign keys of other tables do.
//!
//! Every statement of a cleanup asks the rule for its condition ([`DeleteRule::deletable`]);
//! the placeholders are the caller's, the values ([`DeleteRule::bound`], the done values, the
//! stale bound) are bound by it with [`DeleteRule::bind`].

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::db::shape::{self, Effective, Expiry, ExpirySql, InFlightSql, MappedSql, TableEntry};
use crate::db::table::{ColumnKind, OnDelete, TableInfo};
use crate::ident::TableRef;
use crate::sanitize;

/// What a cleanup of one table may delete.
#[derive(Debug, Clone, PartialEq)]
pub struct DeleteRule {
    /// The column in expiry order (the expiry column, or the creation column of a TTL), raw.
    pub column: String,
    /// The same, quoted.
    pub quoted: String,
    /// A row expires this long after the column's value (zero for an expiry column).
    pub shift: Duration,
    /// How a row in flight is told (`None`: the mapping says nothing is ever in flight).
    pub inflight: Option<InFlightSql>,
    /// In-flight rows created this long ago may go (`inflight_stale_after`).
    pub stale_after: Option<Duration>,
    /// The creation column, quoted (for the stale age).
    pub created: Option<String>,
    /// The key's columns, quoted (partitioned tables delete by key).
    pub key: Vec<String>,
    /// An index leads with [`DeleteRule::column`].
    pub indexed: bool,
    /// What the foreign keys of other tables do when a row goes.
    pub references: Vec<ReferenceEffect>,
    /// Where the mapping came from (`config`, `detected`), for the summary.
    pub source: shape::MappingSource,
}

/// A foreign key of another table that points at the cleaned table, and what deleting a row
/// does to it. JSON: `table`, `constraint`, `on_delete` (`set_null`, `restrict`, ...), `effect`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReferenceEffect {
    /// `schema.table`, sanitized.
    pub table: String,
    pub constraint: String,
    pub on_delete: OnDelete,
    /// What it does, in words.
    pub effect: String,
}

impl ReferenceEffect {
    pub fn of(info: &TableInfo) -> Vec<ReferenceEffect> {
        info.referenced_by
            .iter()
            .map(|r| ReferenceEffect {
                table: sanitize::line(&r.table),
                constraint: sanitize::line(&r.constraint),
                on_delete: r.on_delete,
                effect: match r.on_delete {
                    OnDelete::SetNull => "its reference is set to NULL".into(),
                    OnDelete::SetDefault => "its reference is set to its default".into(),
                    OnDelete::Cascade => "its referencing rows are DELETED too".into(),
                    OnDelete::Restrict | OnDelete::NoAction => {
                        "a row it still references cannot be deleted: the batch fails".into()
                    }
                },
            })
            .collect()
    }

    /// `public.rides (rides_fkey, ON DELETE SET NULL): its reference is set to NULL`.
    pub fn describe(&self) -> String {
        format!(
            "{} ({}, ON DELETE {}): {}",
            self.table,
            self.constraint,
            self.on_delete.sql(),
            self.effect
        )
    }
}

/// `cleanup refused: ...` reasons start here.
fn refuse(why: String) -> String {
    format!("cleanup refused: {why}")
}

impl DeleteRule {
    /// The rule for `table`, from its `[[table]]` entry or its detected shape; `Err` says why
    /// cleanup is refused, in one sentence: expiry unmapped, permanent, or unreadable (not a
    /// timestamp, or a `timestamp without time zone` read in a zone that is not known).
    pub fn resolve(
        entries: &[TableEntry],
        table: &TableRef,
        info: &TableInfo,
    ) -> Result<DeleteRule, String> {
        let eff = shape::effective(entries, table, info).map_err(refuse)?;
        Self::of(&eff, table, info)
    }

    pub fn of(eff: &Effective, table: &TableRef, info: &TableInfo) -> Result<DeleteRule, String> {
        let m = &eff.mapping;
        let sql = MappedSql::of(m);
        let expiry = match (m.expiry(), sql.expiry) {
            (None, _) | (_, None) => {
                return Err(refuse(format!(
                    "{table} has no mapped expiry: idemtop cannot tell expired rows from live ones \
                     (map it in the config file's [[table]] section: {})",
                    shape::Role::Expiry.how_to_map()
                )))
            }
            (Some(Expiry::Permanent), _) | (_, Some(ExpirySql::Permanent)) => {
                return Err(refuse(format!(
                    "{table} is mapped as a permanent ledger (permanent = true): its rows never expire \
                     (if a job of yours deletes old keys, say ttl = \"...\" in its [[table]] section)"
                )))
            }
            (_, Some(e)) => e,
        };
        let Some(name) = expiry.column().map(str::to_owned) else {
            return Err(refuse(format!("{table} has no expiry column")));
        };
        let shown = sanitize::line(&name);
        let role = if expiry.shift().is_zero() {
            "expiry"
        } else {
            "creation (ttl)"
        };
        let Some(column) = info.column(&name) else {
            return Err(refuse(format!(
                "{table} has no column {shown} (the mapped {role} column): idemtop cannot tell expired rows from live ones"
            )));
        };
        if !column.kind.is_timestamp() {
            return Err(refuse(format!(
                "{table}.{shown} (the mapped {role} column) is of type {}, not a timestamp: \
                 idemtop cannot tell expired rows from live ones",
                sanitize::line(&column.type_name)
            )));
        }
        if column.kind == ColumnKind::Timestamp {
            match m.timestamp_zone() {
                Some(z) if z != info.zone.zone => {
                    return Err(refuse(format!(
                        "{table}.{shown} is a timestamp without time zone written in {} (the mapping's \
                         timestamp_zone), but this session reads it in {}: pass --timestamp-zone {}",
                        sanitize::line(z),
                        sanitize::line(&info.zone.zone),
                        sanitize::line(z)
                    )))
                }
                Some(_) => {}
                None if !info.zone.source.is_known() => {
                    return Err(refuse(format!(
                        "{table}.{shown} is a timestamp without time zone, and the zone it is written in is unknown: \
                         this role cannot read the server's TimeZone setting (grant it pg_read_all_settings, \
                         or name the zone with --timestamp-zone or timestamp_zone in its [[table]] section)"
                    )))
                }
                None => {}
            }
        }
        if info.partitioned && sql.key.is_empty() {
            return Err(refuse(format!(
                "{table} is partitioned and has no mapped key: rows of a partitioned table are deleted by key \
                 (map it: {})",
                shape::Role::Key.how_to_map()
            )));
        }
        Ok(DeleteRule {
            indexed: info.index_leading_with(&name).is_some(),
            quoted: shape::quote(&name),
            column: name,
            shift: expiry.shift(),
            inflight: sql.inflight,
            stale_after: m.inflight_stale_after(),
            created: sql.created,
            key: sql.key,
            references: ReferenceEffect::of(info),
            source: eff.source,
        })
    }

    /// The guide's rule: `expires_at`, nothing in flight. Partitions may then be dropped by
    /// their bounds on `expires_at`.
    pub fn drops_partitions(&self) -> bool {
        self.column == crate::db::table::EXPIRY_COLUMN
            && self.shift.is_zero()
            && self.inflight.is_none()
    }

    /// The value the column is compared with: `cutoff - ttl` (so that `created + ttl <= cutoff`
    /// reads the index on the column as `created <= cutoff - ttl`).
    pub fn bound(&self, cutoff: DateTime<Utc>) -> DateTime<Utc> {
        chrono::Duration::from_std(self.shift)
            .ok()
            .and_then(|d| cutoff.checked_sub_signed(d))
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
    }

    /// In-flight rows created at or before this may go.
    pub fn stale_bound(&self, cutoff: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let age = chrono::Duration::from_std(self.stale_after?).ok()?;
        cutoff.checked_sub_signed(age)
    }

    /// The statement binds the done values and the stale bound after its own parameters.
    pub fn binds_inflight(&self) -> bool {
        self.inflight.is_some()
    }

    /// "this row may be deleted": `col <= {bound}`, and when rows can be in flight, not in
    /// flight (or in flight but created at or before `{stale}`). `done` and `stale` are the
    /// placeholders of the done values and the stale bound, used only when
    /// [`DeleteRule::binds_inflight`]. `alias` prefixes the columns (`d.`) or is empty.
    pub fn deletable(&self, alias: &str, bound: &str, done: &str, stale: &str) -> String {
        let col = format!("{alias}{}", self.quoted);
        let expired = format!("{col} <= {bound}");
        match &self.inflight {
            None => expired,
            Some(i) => {
                let i = prefixed(i, alias);
                let stale = match &self.created {
                    Some(c) => format!("{alias}{c} <= {stale}::timestamptz"),
                    None => format!("{stale}::timestamptz < '-infinity'"),
                };
                format!(
                    "{expired} AND (NOT {} OR coalesce({stale}, false))",
                    i.in_flight(done)
                )
            }
        }
    }

    /// Bind the done values and the stale bound, when the statement uses them.
    pub fn bind<'q, O>(
        &self,
        q: sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments>,
        cutoff: DateTime<Utc>,
    ) -> sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments> {
        match &self.inflight {
            None => q,
            Some(i) => q.bind(i.done_values()).bind(self.stale_bound(cutoff)),
        }
    }

    /// [`DeleteRule::bind`] for a statement without rows.
    pub fn bind_query<'q>(
        &self,
        q: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
        cutoff: DateTime<Utc>,
    ) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
        match &self.inflight {
            None => q,
            Some(i) => q.bind(i.done_values()).bind(self.stale_bound(cutoff)),
        }
    }

    /// [`DeleteRule::bind`] for a scalar query.
    pub fn bind_scalar<'q, O>(
        &self,
        q: sqlx::query::QueryScalar<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments>,
        cutoff: DateTime<Utc>,
    ) -> sqlx::query::QueryScalar<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments> {
        match &self.inflight {
            None => q,
            Some(i) => q.bind(i.done_values()).bind(self.stale_bound(cutoff)),
        }
    }

    /// In words, for the dry run: `created_at + 72h <= cutoff, never a row in flight`.
    pub fn describe(&self) -> String {
        let col = sanitize::line(&self.column);
        let expiry = if self.shift.is_zero() {
            format!("{col} <= cutoff")
        } else {
            format!("{col} + {} <= cutoff", shape::format_ttl(self.shift))
        };
        match (&self.inflight, self.stale_after) {
            (None, _) => expiry,
            (Some(_), None) => format!("{expiry}, never a row in flight"),
            (Some(_), Some(age)) => format!(
                "{expiry}, a row in flight only when created over {} ago (inflight_stale_after)",
                shape::format_ttl(age)
            ),
        }
    }
}

/// The in-flight expression with its column prefixed by `alias`.
fn prefixed(i: &InFlightSql, alias: &str) -> InFlightSql {
    match i {
        InFlightSql::State { column, done } => InFlightSql::State {
            column: format!("{alias}{column}"),
            done: done.clone(),
        },
        InFlightSql::NullWhileInFlight { column } => InFlightSql::NullWhileInFlight {
            column: format!("{alias}{column}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(inflight: Option<InFlightSql>, stale: Option<Duration>) -> DeleteRule {
        DeleteRule {
            column: "created_at".into(),
            quoted: "\"created_at\"".into(),
            shift: Duration::from_secs(3600),
            inflight,
            stale_after: stale,
            created: Some("\"created_at\"".into()),
            key: vec!["\"k\"".into()],
            indexed: false,
            references: Vec::new(),
            source: shape::MappingSource::Config,
        }
    }

    #[test]
    fn a_ttl_moves_the_bound_back_and_in_flight_rows_stay() {
        let r = rule(
            Some(InFlightSql::State {
                column: "\"state\"".into(),
                done: vec!["finished".into()],
            }),
            None,
        );
        let cutoff = DateTime::<Utc>::UNIX_EPOCH + chrono::Duration::hours(10);
        assert_eq!(
            r.bound(cutoff),
            DateTime::<Utc>::UNIX_EPOCH + chrono::Duration::hours(9)
        );
        assert_eq!(r.stale_bound(cutoff), None);
        assert_eq!(
            r.deletable("d.", "$2", "$4", "$5"),
            "d.\"created_at\" <= $2 AND (NOT (d.\"state\" IS NULL OR NOT (d.\"state\"::text = ANY($4::text[]))) \
             OR coalesce(d.\"created_at\" <= $5::timestamptz, false))"
        );
        assert_eq!(
            r.describe(),
            "created_at + 1h <= cutoff, never a row in flight"
        );
        assert!(!r.drops_partitions());
    }

    #[test]
    fn the_guide_rule_is_the_plain_expiry_condition() {
        let r = DeleteRule {
            column: "expires_at".into(),
            quoted: "\"expires_at\"".into(),
            shift: Duration::ZERO,
            ..rule(None, None)
        };
        assert_eq!(r.deletable("", "$2", "$4", "$5"), "\"expires_at\" <= $2");
        assert!(r.drops_partitions());
        assert!(!r.binds_inflight());
    }
}

//! Detection: the known shapes by their columns' names and types, then generic heuristics.
//! Pure functions over [`TableInfo`].

use serde::Serialize;

use super::fit::Fit;
use super::known::{known, matches, near_miss, v, KnownShape};
use super::mapping::{Expiry, InFlight, Mapping, Role};
use crate::db::table::{Column, ColumnKind, OnDelete, TableInfo};
use crate::sanitize;

/// What detection found for one table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Detection {
    /// Raw names (sanitize before display).
    pub schema: String,
    pub table: String,
    /// The known shape the table has, if any.
    pub shape: Option<KnownShape>,
    pub mapping: Mapping,
    /// Every role left unmapped, in [`Role::ALL`] order (the zone only when a mapped timestamp
    /// column has no time zone).
    pub missing: Vec<Role>,
    /// What was assumed or noticed, one sentence each (raw names inside: sanitize on display).
    pub notes: Vec<String>,
    /// The mapping is a `[[table]]` section of the config file, not a detection
    /// ([`super::Effective::described`]).
    pub configured: bool,
}

/// Normalised column name for the heuristics: lower case, without `_` and `-` (so
/// `createdAt`, `created_at` and `CREATED_AT` are alike).
pub(super) fn norm(name: &str) -> String {
    name.chars()
        .filter(|c| *c != '_' && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

pub(super) const EXPIRY_NAMES: &[&str] = &[
    "expiresat",
    "expiry",
    "expires",
    "expireat",
    "expiration",
    "expirationtime",
    "expiresatutc",
    "validuntil",
];
pub(super) const CREATED_NAMES: &[&str] = &[
    "createdat",
    "created",
    "insertedat",
    "createdon",
    "creationtime",
    "createdtime",
    "createtime",
    "firstseenat",
];
pub(super) const STATUS_NAMES: &[&str] = &[
    "statuscode",
    "responsecode",
    "responsestatus",
    "responsestatuscode",
    "httpstatus",
    "httpstatuscode",
    "httpcode",
];
pub(super) const PAYLOAD_NAMES: &[&str] = &[
    "resultpayload",
    "responsebody",
    "responsepayload",
    "response",
    "responsejson",
    "responsedata",
    "result",
    "resultdata",
    "payload",
    "body",
];
const OPERATION_NAMES: &[&str] = &[
    "operation",
    "operationname",
    "requestpath",
    "path",
    "endpoint",
    "route",
    "action",
    "scope",
];
const KEY_NAMES: &[&str] = &["idempotencykey", "key", "requestid", "idemkey"];
const COMPLETED_NAMES: &[&str] = &["completedat", "finishedat", "completedon"];
const STATE_NAMES: &[&str] = &["status", "state"];

/// The first column (by the order of `names`) whose normalised name is one of `names`.
fn named<'a>(info: &'a TableInfo, names: &[&str]) -> Option<&'a Column> {
    names
        .iter()
        .find_map(|n| info.columns.iter().find(|c| norm(&c.name) == *n))
}

/// The column of role `role` named like `names`, when its type fits; a note when one is named
/// so but does not fit.
fn pick(
    info: &TableInfo,
    names: &[&str],
    fit: Fit,
    what: &str,
    notes: &mut Vec<String>,
) -> Option<String> {
    let c = named(info, names)?;
    if fit.accepts(c) {
        return Some(c.name.clone());
    }
    notes.push(format!(
        "{} looks like the {what} but is of type {}, not {}: not used",
        c.name,
        c.type_name,
        fit.describe()
    ));
    None
}

fn is_idempotency_name(name: &str) -> bool {
    let n = norm(name);
    n.contains("idempot") || KEY_NAMES.contains(&n.as_str())
}

/// Detect the shape of `info`'s table (`schema`.`table`, raw names).
pub fn detect(schema: &str, table: &str, info: &TableInfo) -> Detection {
    let mut notes = Vec::new();
    let shape = KnownShape::ALL.into_iter().find(|s| matches(*s, info));
    let mut mapping = match shape {
        Some(s) => known(s, info, &mut notes),
        None => {
            for s in KnownShape::ALL {
                if let Some(why) = near_miss(s, info) {
                    notes.push(format!(
                        "resembles {} but {why}: mapped by column names and types instead",
                        s.label()
                    ));
                }
            }
            generic(info, &mut notes)
        }
    };
    for r in &info.referenced_by {
        let effect = match r.on_delete {
            OnDelete::SetNull | OnDelete::SetDefault => "deleting a row resets that reference",
            OnDelete::Cascade => "deleting a row deletes the rows that reference it",
            OnDelete::NoAction | OnDelete::Restrict => "a row still referenced cannot be deleted",
        };
        notes.push(format!(
            "referenced by {} ({}, ON DELETE {}): {effect}",
            r.table,
            r.constraint,
            r.on_delete.sql()
        ));
    }
    let zone_needed = mapping
        .timestamp_columns()
        .into_iter()
        .filter_map(|(_, name)| info.column(name))
        .filter(|c| c.kind == ColumnKind::Timestamp)
        .map(|c| c.name.clone())
        .collect::<Vec<_>>();
    if !zone_needed.is_empty() && mapping.timestamp_zone.is_none() {
        if info.zone.source.is_known() {
            mapping.timestamp_zone = Some(info.zone.zone.clone());
            notes.push(format!(
                "{} {} timestamp without time zone: read in {} (the database's TimeZone, from {})",
                zone_needed.join(", "),
                if zone_needed.len() == 1 {
                    "is a"
                } else {
                    "are"
                },
                info.zone.zone,
                info.zone.source.describe()
            ));
        } else {
            notes.push(format!(
                "{} {} timestamp without time zone, and the zone the service writes them in is unknown ({})",
                zone_needed.join(", "),
                if zone_needed.len() == 1 { "is a" } else { "are" },
                info.zone.source.describe()
            ));
        }
    }
    let missing = Role::ALL
        .into_iter()
        .filter(|r| !mapping.has(*r))
        .filter(|r| *r != Role::Zone || !zone_needed.is_empty())
        .collect();
    Detection {
        schema: schema.to_owned(),
        table: table.to_owned(),
        shape,
        mapping,
        missing,
        notes,
        configured: false,
    }
}

/// The mapping of a table of no known shape: each role by name and type.
fn generic(info: &TableInfo, notes: &mut Vec<String>) -> Mapping {
    let mut m = Mapping::default();
    // The key: the primary key or a unique key with a column named like an idempotency key,
    // else the primary key.
    let keys: Vec<&Vec<String>> = std::iter::once(&info.primary_key)
        .chain(info.unique_keys.iter())
        .filter(|k| !k.is_empty())
        .collect();
    if let Some(k) = keys
        .iter()
        .find(|k| k.iter().any(|c| is_idempotency_name(c)))
    {
        m.key = (*k).clone();
    } else if !info.primary_key.is_empty() {
        m.key = info.primary_key.clone();
        notes.push(format!(
            "key: no key column is named like an idempotency key; the primary key ({}) is used",
            info.primary_key.join(", ")
        ));
    } else if let Some(c) = info.columns.iter().find(|c| is_idempotency_name(&c.name)) {
        notes.push(format!(
            "{} looks like the key, but no primary key or unique constraint covers it: not used",
            c.name
        ));
    }
    m.created = pick(info, CREATED_NAMES, Fit::Ts, "creation time", notes);
    if let Some(c) = pick(info, EXPIRY_NAMES, Fit::Ts, "expiry", notes) {
        m.expiry = Some(Expiry::Column(c));
    }
    m.status = pick(info, STATUS_NAMES, Fit::Int, "status code", notes);
    m.payload = pick(info, PAYLOAD_NAMES, Fit::Payload, "payload", notes);
    let method =
        named(info, &["requestmethod", "method", "httpmethod"]).filter(|c| Fit::Text.accepts(c));
    let path = named(info, &["requestpath", "path"]).filter(|c| Fit::Text.accepts(c));
    m.operation = match (method, path) {
        (Some(a), Some(b)) => vec![a.name.clone(), b.name.clone()],
        _ => pick(info, OPERATION_NAMES, Fit::Text, "operation", notes)
            .into_iter()
            .collect(),
    };
    if let Some(c) = named(info, &["recoverypoint"]).filter(|c| Fit::Text.accepts(c)) {
        m.inflight = Some(InFlight::State {
            column: c.name.clone(),
            done: v(&["finished"]),
        });
        notes.push(format!(
            "{} is taken as a Stripe-style recovery point: finished when it holds 'finished'",
            c.name
        ));
    } else if let Some(c) = named(info, COMPLETED_NAMES).filter(|c| Fit::Ts.accepts(c)) {
        if c.not_null {
            notes.push(format!(
                "{} is NOT NULL, so it cannot tell a request in flight: not used",
                c.name
            ));
        } else {
            m.inflight = Some(InFlight::CompletedAt {
                column: c.name.clone(),
            });
        }
    } else if let Some(c) = named(info, STATE_NAMES).filter(|c| Fit::Scalar.accepts(c)) {
        notes.push(format!(
            "{} may be an in-flight state, but which of its values mean finished cannot be read \
             from the table: map it with inflight_column and done_values",
            c.name
        ));
    }
    m.locked_at = named(info, &["lockedat"])
        .filter(|c| Fit::Ts.accepts(c))
        .map(|c| c.name.clone());
    m
}

impl Detection {
    /// The table as people read it: `schema.table`, sanitized.
    pub fn shown_table(&self) -> String {
        format!(
            "{}.{}",
            sanitize::line(&self.schema),
            sanitize::line(&self.table)
        )
    }

    /// Whether the table has the guide's shape.
    pub fn is_guide(&self) -> bool {
        self.shape == Some(KnownShape::Guide)
    }
}

#[cfg(test)]
#[path = "detect_tests.rs"]
mod tests;

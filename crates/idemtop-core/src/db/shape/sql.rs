//! The SQL of a mapping: every mapped column as a quoted identifier, and the expressions the
//! queries share (when a row expires, whether it is in flight). Values are never pasted in:
//! the `done_values` of a state column are a `text[]` parameter whose placeholder the caller
//! names, and a TTL is a whole number of seconds computed here, not text from the config.

use std::time::Duration;

use super::mapping::{Expiry, InFlight, Mapping, Role};

/// A column name as a quoted identifier (names in a mapping are checked when it is made, as
/// [`crate::ident::Ident`] checks them; NUL, which no identifier holds, is dropped).
pub fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('\0', "").replace('"', "\"\""))
}

/// How a mapped table expires, as SQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpirySql {
    /// A column holds the moment of expiry.
    Column { name: String, quoted: String },
    /// `created + ttl`: the column is the creation time, shifted by `ttl`.
    Ttl {
        name: String,
        quoted: String,
        ttl: Duration,
    },
    /// Rows never expire.
    Permanent,
}

impl ExpirySql {
    /// The column whose order is the expiry order (the expiry column, or the creation column of
    /// a TTL): an index on it serves expiry queries. `None` for a permanent ledger.
    pub fn column(&self) -> Option<&str> {
        match self {
            ExpirySql::Column { name, .. } | ExpirySql::Ttl { name, .. } => Some(name),
            ExpirySql::Permanent => None,
        }
    }

    /// How far the moment of expiry lies after the column's value (zero for an expiry column).
    pub fn shift(&self) -> Duration {
        match self {
            ExpirySql::Ttl { ttl, .. } => *ttl,
            _ => Duration::ZERO,
        }
    }

    /// The moment a row expires, as a `timestamptz`-comparable expression; `None` for a
    /// permanent ledger.
    pub fn at(&self) -> Option<String> {
        match self {
            ExpirySql::Column { quoted, .. } => Some(quoted.clone()),
            ExpirySql::Ttl { quoted, ttl, .. } => Some(format!(
                "({quoted} + make_interval(secs => {}))",
                ttl.as_secs()
            )),
            ExpirySql::Permanent => None,
        }
    }

    /// "not yet expired at `moment`" (the complement of [`ExpirySql::expired_at`] for non-NULL
    /// values), index-friendly in the same way.
    pub fn live_at(&self, moment: &str) -> Option<String> {
        match self {
            ExpirySql::Column { quoted, .. } => Some(format!("{quoted} > {moment}")),
            ExpirySql::Ttl { quoted, ttl, .. } => Some(format!(
                "{quoted} > ({moment}) - make_interval(secs => {})",
                ttl.as_secs()
            )),
            ExpirySql::Permanent => None,
        }
    }

    /// "expired as of `moment`" (an SQL expression of a point in time), written so that an
    /// index on the column serves it: `col <= moment` or `col <= moment - ttl`. `None` for a
    /// permanent ledger.
    pub fn expired_at(&self, moment: &str) -> Option<String> {
        match self {
            ExpirySql::Column { quoted, .. } => Some(format!("{quoted} <= {moment}")),
            ExpirySql::Ttl { quoted, ttl, .. } => Some(format!(
                "{quoted} <= ({moment}) - make_interval(secs => {})",
                ttl.as_secs()
            )),
            ExpirySql::Permanent => None,
        }
    }
}

/// A mapping's columns as SQL.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MappedSql {
    /// The key's columns, quoted, in key order (empty when unknown).
    pub key: Vec<String>,
    /// `None` when expiry is unknown.
    pub expiry: Option<ExpirySql>,
    pub created: Option<String>,
    pub status: Option<String>,
    pub payload: Option<String>,
    /// The operation's columns as one text (`concat_ws(' ', ...)`).
    pub operation: Option<String>,
    /// How a row in flight is told, when the mapping says.
    pub inflight: Option<InFlightSql>,
    pub locked_at: Option<String>,
}

/// How a row in flight is told, as SQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InFlightSql {
    /// A state column and its done values (bound as a `text[]`).
    State { column: String, done: Vec<String> },
    /// A column that is NULL while in flight (the payload, or a completion time).
    NullWhileInFlight { column: String },
}

impl InFlightSql {
    /// "this row is in flight". `done` is the placeholder of the `text[]` of done values
    /// (unused by a NULL rule, but the caller binds [`InFlightSql::done_values`] either way).
    pub fn in_flight(&self, done: &str) -> String {
        match self {
            InFlightSql::State { column, .. } => {
                format!("({column} IS NULL OR NOT ({column}::text = ANY({done}::text[])))")
            }
            InFlightSql::NullWhileInFlight { column } => {
                format!("({column} IS NULL AND {done}::text[] IS NOT NULL)")
            }
        }
    }

    /// The state as text for a breakdown by state: the state column, or `in flight` / `done`.
    pub fn state(&self, done: &str) -> String {
        match self {
            InFlightSql::State { column, .. } => format!("coalesce({column}::text, '(null)')"),
            InFlightSql::NullWhileInFlight { .. } => format!(
                "CASE WHEN {} THEN 'in flight' ELSE 'done' END",
                self.in_flight(done)
            ),
        }
    }

    /// The value to bind for the `done` placeholder.
    pub fn done_values(&self) -> Vec<String> {
        match self {
            InFlightSql::State { done, .. } => done.clone(),
            InFlightSql::NullWhileInFlight { .. } => Vec::new(),
        }
    }
}

impl MappedSql {
    pub fn of(m: &Mapping) -> MappedSql {
        let expiry = m.expiry().map(|e| match e {
            Expiry::Column(c) => ExpirySql::Column {
                name: c.clone(),
                quoted: quote(c),
            },
            Expiry::Ttl { created, ttl } => ExpirySql::Ttl {
                name: created.clone(),
                quoted: quote(created),
                ttl: *ttl,
            },
            Expiry::Permanent => ExpirySql::Permanent,
        });
        let ops = m.operation_columns();
        let operation = match ops {
            [] => None,
            [one] => Some(format!("{}::text", quote(one))),
            many => Some(format!(
                "concat_ws(' ', {})",
                many.iter()
                    .map(|c| format!("{}::text", quote(c)))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        };
        let inflight = m.inflight().map(|i| match i {
            InFlight::State { column, done } => InFlightSql::State {
                column: quote(column),
                done: done.clone(),
            },
            InFlight::NullPayload { column } | InFlight::CompletedAt { column } => {
                InFlightSql::NullWhileInFlight {
                    column: quote(column),
                }
            }
        });
        MappedSql {
            key: m.key_columns().iter().map(|c| quote(c)).collect(),
            expiry,
            created: m.created().map(quote),
            status: m.status().map(quote),
            payload: m.payload().map(quote),
            operation,
            inflight,
            locked_at: m.locked_at().map(quote),
        }
    }

    /// The moment of expiry as an expression, when rows expire.
    pub fn expires_at(&self) -> Option<String> {
        self.expiry.as_ref().and_then(ExpirySql::at)
    }

    /// The done values to bind (empty without a state column).
    pub fn done_values(&self) -> Vec<String> {
        self.inflight
            .as_ref()
            .map(InFlightSql::done_values)
            .unwrap_or_default()
    }
}

/// What a panel or check shows when the role it needs is not mapped.
pub fn not_mapped(role: Role) -> String {
    format!(
        "n/a: no {} column (map one in config)",
        match role {
            Role::InFlight => "in-flight state",
            other => other.name(),
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping(text: &str) -> Mapping {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn a_ttl_expires_from_the_creation_column_and_keeps_the_index() {
        let m = mapping(
            r#"key = ["k"]
created = "Created At"
ttl = "72h"
inflight_column = "state"
done_values = ["finished"]"#,
        );
        let s = MappedSql::of(&m);
        let e = s.expiry.as_ref().unwrap();
        assert_eq!(e.column(), Some("Created At"));
        assert_eq!(
            e.expired_at("now()").unwrap(),
            "\"Created At\" <= (now()) - make_interval(secs => 259200)"
        );
        assert_eq!(
            s.expires_at().unwrap(),
            "(\"Created At\" + make_interval(secs => 259200))"
        );
        let i = s.inflight.as_ref().unwrap();
        assert_eq!(
            i.in_flight("$1"),
            "(\"state\" IS NULL OR NOT (\"state\"::text = ANY($1::text[])))"
        );
        assert_eq!(s.done_values(), vec!["finished".to_string()]);
    }

    #[test]
    fn permanent_and_unmapped_expiry_have_no_expression() {
        let m = mapping("key = [\"k\"]\npermanent = true");
        assert_eq!(MappedSql::of(&m).expires_at(), None);
        let m = mapping("key = [\"k\"]");
        assert!(MappedSql::of(&m).expiry.is_none());
        assert_eq!(
            not_mapped(Role::Status),
            "n/a: no status column (map one in config)"
        );
    }

    #[test]
    fn several_operation_columns_are_joined() {
        let m = mapping("key = [\"k\"]\noperation = [\"request_method\", \"Path\"]");
        assert_eq!(
            MappedSql::of(&m).operation.unwrap(),
            "concat_ws(' ', \"request_method\"::text, \"Path\"::text)"
        );
    }
}

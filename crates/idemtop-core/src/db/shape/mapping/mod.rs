//! [`Mapping`]: which column plays which [`Role`], and its flat TOML form ([`MappingFields`]).

use std::time::Duration;

use serde::{Deserialize, Serialize};

mod fields;

pub use fields::{format_ttl, parse_ttl, MappingFields};

/// What a column can mean in an idempotency table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The column(s) that identify a request (one or several, of any type).
    Key,
    /// How a row expires: a timestamp column, a TTL counted from the creation time, or never.
    Expiry,
    /// When the row was written.
    Created,
    /// The stored HTTP status code.
    Status,
    /// The stored response.
    Payload,
    /// What was asked (an operation name, or method and path), for display and per-operation figures.
    Operation,
    /// How a request still in flight is told from a finished one.
    InFlight,
    /// The zone in which `timestamp without time zone` columns are written.
    Zone,
}

impl Role {
    pub const ALL: [Role; 8] = [
        Role::Key,
        Role::Expiry,
        Role::Created,
        Role::Status,
        Role::Payload,
        Role::Operation,
        Role::InFlight,
        Role::Zone,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Role::Key => "key",
            Role::Expiry => "expiry",
            Role::Created => "created",
            Role::Status => "status",
            Role::Payload => "payload",
            Role::Operation => "operation",
            Role::InFlight => "in-flight state",
            Role::Zone => "timestamp zone",
        }
    }

    /// The `[[table]]` keys that map this role, with what they take.
    pub fn how_to_map(self) -> &'static str {
        match self {
            Role::Key => {
                r#"key = ["COLUMN", ...] (the column(s) of the primary key or unique constraint that identify a request)"#
            }
            Role::Expiry => {
                r#"expires = "COLUMN" (a timestamp), or ttl = "24h" (counted from `created`), or permanent = true (rows are never deleted)"#
            }
            Role::Created => r#"created = "COLUMN" (a timestamp)"#,
            Role::Status => r#"status = "COLUMN" (an integer HTTP status code)"#,
            Role::Payload => r#"payload = "COLUMN" (text, json, jsonb or bytea)"#,
            Role::Operation => {
                r#"operation = ["COLUMN", ...] (an operation name, or method and path, joined for display)"#
            }
            Role::InFlight => {
                r#"inflight_column = "COLUMN" with done_values = ["VALUE", ...], or completed_at = "COLUMN" (NULL while in flight), or inflight_when_payload_null = true"#
            }
            Role::Zone => {
                r#"timestamp_zone = "ZONE" (e.g. "Europe/Berlin": the zone in which the service writes its timestamp without time zone columns)"#
            }
        }
    }
}

/// How a row expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expiry {
    /// A timestamp column holds the moment the row expires (the guide's `expires_at`).
    Column(String),
    /// The table has no expiry column: a row expires `ttl` after its creation time `created`
    /// (Stripe's reaper: 72 hours).
    Ttl { created: String, ttl: Duration },
    /// Rows are never deleted: a permanent ledger.
    Permanent,
}

/// How a request still in flight (its key taken, its result not yet stored) is told from a
/// finished one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InFlight {
    /// `column` holds a state; the row is finished when it holds one of `done` (compared as
    /// text), in flight otherwise.
    State { column: String, done: Vec<String> },
    /// The row is in flight while its payload column `column` is NULL.
    NullPayload { column: String },
    /// A nullable completion time: NULL while in flight.
    CompletedAt { column: String },
}

impl InFlight {
    pub fn column(&self) -> &str {
        match self {
            InFlight::State { column, .. }
            | InFlight::NullPayload { column }
            | InFlight::CompletedAt { column } => column,
        }
    }
}

/// Which column plays which role in one table: names only, never SQL. Build it from a
/// `[[table]]` section (deserialize; the fields are checked) or with [`super::detect`].
///
/// A role left unmapped (`None`, empty) is unknown: the features that need it degrade, and
/// nothing stands in for it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "MappingFields", into = "MappingFields")]
pub struct Mapping {
    pub(super) key: Vec<String>,
    pub(super) expiry: Option<Expiry>,
    pub(super) created: Option<String>,
    pub(super) status: Option<String>,
    pub(super) payload: Option<String>,
    pub(super) operation: Vec<String>,
    pub(super) inflight: Option<InFlight>,
    pub(super) locked_at: Option<String>,
    pub(super) timestamp_zone: Option<String>,
    /// Cleanup may delete a row still in flight this long after its creation time (config
    /// `inflight_stale_after`); `None`: never.
    pub(super) inflight_stale_after: Option<Duration>,
}

impl Mapping {
    /// The key's columns, in key order (empty when unknown).
    pub fn key_columns(&self) -> &[String] {
        &self.key
    }

    /// How rows expire; `None` when unknown (which is not [`Expiry::Permanent`]).
    pub fn expiry(&self) -> Option<&Expiry> {
        self.expiry.as_ref()
    }

    /// The expiry column, when rows expire by one.
    pub fn expiry_column(&self) -> Option<&str> {
        match &self.expiry {
            Some(Expiry::Column(c)) => Some(c),
            _ => None,
        }
    }

    pub fn created(&self) -> Option<&str> {
        self.created.as_deref()
    }

    pub fn status(&self) -> Option<&str> {
        self.status.as_deref()
    }

    pub fn payload(&self) -> Option<&str> {
        self.payload.as_deref()
    }

    /// The operation's columns, joined (with a space) for display; empty when unknown.
    pub fn operation_columns(&self) -> &[String] {
        &self.operation
    }

    pub fn inflight(&self) -> Option<&InFlight> {
        self.inflight.as_ref()
    }

    /// A timestamp set while a request holds the key (Stripe's and Medusa's `locked_at`).
    pub fn locked_at(&self) -> Option<&str> {
        self.locked_at.as_deref()
    }

    /// The zone of `timestamp without time zone` columns, when the mapping names one.
    pub fn timestamp_zone(&self) -> Option<&str> {
        self.timestamp_zone.as_deref()
    }

    /// How long after its creation a row still in flight may be deleted by cleanup; `None`:
    /// an in-flight row is never deleted.
    pub fn inflight_stale_after(&self) -> Option<Duration> {
        self.inflight_stale_after
    }

    /// Whether `role` is mapped (an expiry of [`Expiry::Permanent`] is).
    pub fn has(&self, role: Role) -> bool {
        match role {
            Role::Key => !self.key.is_empty(),
            Role::Expiry => self.expiry.is_some(),
            Role::Created => self.created.is_some(),
            Role::Status => self.status.is_some(),
            Role::Payload => self.payload.is_some(),
            Role::Operation => !self.operation.is_empty(),
            Role::InFlight => self.inflight.is_some(),
            Role::Zone => self.timestamp_zone.is_some(),
        }
    }

    /// The timestamp columns the mapping names (expiry, created, completed_at, locked_at), each
    /// with the `[[table]]` key that names it.
    pub fn timestamp_columns(&self) -> Vec<(&'static str, &str)> {
        let mut out = Vec::new();
        if let Some(c) = self.expiry_column() {
            out.push(("expires", c));
        }
        if let Some(c) = self.created() {
            out.push(("created", c));
        }
        if let Some(InFlight::CompletedAt { column }) = &self.inflight {
            out.push(("completed_at", column.as_str()));
        }
        if let Some(c) = self.locked_at() {
            out.push(("locked_at", c));
        }
        out
    }
}

//! Table shapes: which column of an idempotency table plays which role.
//!
//! idemtop was built for the guide's `idempotency_records`; real services keep their keys in
//! tables of other shapes (Stripe's `idempotency_keys`, Medusa's `idempotency_key`, zero2prod's
//! `idempotency`, ...). A [`Mapping`] names, for one table, the columns of each [`Role`]: the key,
//! how rows expire, when they were created, the stored status and payload, the operation, and
//! how a request still in flight is told from a finished one. It holds names only, never SQL.
//!
//! A mapping comes from the configuration file (a `[[table]]` section, [`TableEntry`]) or, when
//! there is none, from [`detect`]: pure functions over the table model
//! ([`crate::db::table::TableInfo`]) that recognise the known shapes ([`KnownShape`]) by their
//! columns' names and types, then fall back on generic heuristics. Nothing is guessed silently:
//! a role is filled only by a column whose type fits it, and every role left unfilled is listed
//! in [`Detection::missing`] with how to map it ([`Detection::message`]).
//!
//! - `mapping.rs`: [`Mapping`], [`Role`], [`Expiry`], [`InFlight`];
//! - `fields.rs`: a mapping's flat TOML form ([`MappingFields`]), its checks, TTLs as text;
//! - `known.rs`: the known shapes, by their columns;
//! - `detect.rs`: detection, the known shapes first, then generic heuristics;
//! - `entry.rs`: `[[table]]` entries, the check of a mapping against the table, the effective
//!   mapping of a table;
//! - `render.rs`: the human message and the ready-to-paste `[[table]]` section;
//! - `sql.rs`: a mapping's columns as quoted SQL, the expiry and in-flight expressions;
//! - `candidates.rs`: the tables of a database that look like idempotency tables.

mod candidates;
mod detect;
mod entry;
mod fit;
mod known;
mod mapping;
mod render;
mod sql;

pub use candidates::{candidates, looks_like_candidate, Candidate, MAX_CANDIDATES};
pub use detect::{detect, Detection};
pub use entry::{check, configured, effective, Effective, MappingSource, TableEntry};
pub use known::KnownShape;
pub use mapping::{format_ttl, parse_ttl, MappingFields};
pub use mapping::{Expiry, InFlight, Mapping, Role};
pub use render::{toml_section, toml_string};
pub use sql::{not_mapped, quote, ExpirySql, InFlightSql, MappedSql};

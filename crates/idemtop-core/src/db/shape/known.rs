//! The known shapes: each by the columns (names and types) that make it, and its mapping.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::fit::Fit;
use super::mapping::{Expiry, InFlight, Mapping};
use crate::db::table::TableInfo;

/// The table shapes idemtop knows by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KnownShape {
    /// The guide's `idempotency_records` (migration 045).
    Guide,
    /// Stripe-style `idempotency_keys` (brandur's rocket-rides-atomic).
    Stripe,
    /// Medusa v1 `idempotency_key`.
    Medusa,
    /// zero2prod's `idempotency` (Zero To Production in Rust).
    Zero2prod,
    /// Wise's idempotence4j `idempotent_action`.
    Idempotence4j,
    /// @nestarc/idempotency's `idempotency_records`.
    Nestarc,
}

impl KnownShape {
    pub const ALL: [KnownShape; 6] = [
        KnownShape::Guide,
        KnownShape::Stripe,
        KnownShape::Medusa,
        KnownShape::Zero2prod,
        KnownShape::Idempotence4j,
        KnownShape::Nestarc,
    ];

    /// The shape's name in JSON and in `idemtop schema`'s listing.
    pub fn id(self) -> &'static str {
        match self {
            KnownShape::Guide => "guide",
            KnownShape::Stripe => "stripe",
            KnownShape::Medusa => "medusa",
            KnownShape::Zero2prod => "zero2prod",
            KnownShape::Idempotence4j => "idempotence4j",
            KnownShape::Nestarc => "nestarc",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            KnownShape::Guide => "the guide's idempotency_records (migration 045)",
            KnownShape::Stripe => "Stripe-style idempotency_keys (brandur's rocket-rides-atomic)",
            KnownShape::Medusa => "Medusa v1 idempotency_key",
            KnownShape::Zero2prod => "zero2prod's idempotency (Zero To Production in Rust)",
            KnownShape::Idempotence4j => "Wise idempotence4j's idempotent_action",
            KnownShape::Nestarc => "@nestarc/idempotency's idempotency_records",
        }
    }

    /// The columns (name, type) that make the shape; all must be there.
    fn signature(self) -> &'static [(&'static str, Fit)] {
        use Fit::*;
        match self {
            KnownShape::Guide => &[
                ("request_id", Uuid),
                ("operation", Text),
                ("result_payload", Text),
                ("status_code", Int),
                ("created_at", Ts),
                ("expires_at", Ts),
            ],
            KnownShape::Stripe => &[
                ("id", Int),
                ("user_id", Int),
                ("idempotency_key", Text),
                ("created_at", Ts),
                ("locked_at", Ts),
                ("request_method", Text),
                ("request_path", Text),
                ("response_code", Int),
                ("response_body", Json),
                ("recovery_point", Text),
            ],
            KnownShape::Medusa => &[
                ("id", Text),
                ("idempotency_key", Text),
                ("created_at", Ts),
                ("locked_at", Ts),
                ("request_path", Text),
                ("response_code", Int),
                ("response_body", Json),
                ("recovery_point", Text),
            ],
            KnownShape::Zero2prod => &[
                ("user_id", Any),
                ("idempotency_key", Text),
                ("response_status_code", Int),
                ("response_headers", Array),
                ("response_body", Bytea),
                ("created_at", Ts),
            ],
            KnownShape::Idempotence4j => &[
                ("key", Text),
                ("type", Text),
                ("client", Text),
                ("created_at", Ts),
                ("completed_at", Ts),
                ("result", Bytea),
            ],
            KnownShape::Nestarc => &[
                ("key", Text),
                ("status", Text),
                ("response_code", Int),
                ("response_body", Text),
                ("created_at", Ts),
                ("expires_at", Ts),
            ],
        }
    }
}

pub(super) fn matches(shape: KnownShape, info: &TableInfo) -> bool {
    shape
        .signature()
        .iter()
        .all(|(name, fit)| info.column(name).is_some_and(|c| fit.accepts(c)))
}

/// Why the table is not quite `shape`, when most of the shape's columns are there by name.
pub(super) fn near_miss(shape: KnownShape, info: &TableInfo) -> Option<String> {
    let sig = shape.signature();
    let present = sig.iter().filter(|(n, _)| info.column(n).is_some()).count();
    if present * 3 < sig.len() * 2 || present == 0 {
        return None;
    }
    let why: Vec<String> = sig
        .iter()
        .filter_map(|(name, fit)| match info.column(name) {
            None => Some(format!("has no column {name}")),
            Some(c) if !fit.accepts(c) => Some(format!(
                "its {name} is of type {}, not {}",
                c.type_name,
                fit.describe()
            )),
            Some(_) => None,
        })
        .collect();
    (!why.is_empty()).then(|| why.join(", "))
}

fn s(name: &str) -> Option<String> {
    Some(name.to_owned())
}

pub(super) fn v(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| n.to_string()).collect()
}

/// A key of the table (primary or unique) made of exactly `cols`, in any order.
fn has_unique(info: &TableInfo, cols: &[&str]) -> bool {
    std::iter::once(&info.primary_key)
        .chain(info.unique_keys.iter())
        .any(|k| k.len() == cols.len() && cols.iter().all(|c| k.iter().any(|n| n == c)))
}

/// The mapping of a table of a known shape (its signature matched).
pub(super) fn known(shape: KnownShape, info: &TableInfo, notes: &mut Vec<String>) -> Mapping {
    let hours = |h: u64| Duration::from_secs(h * 3600);
    let mut m = Mapping {
        created: s("created_at"),
        ..Mapping::default()
    };
    match shape {
        KnownShape::Guide => {
            m.key = v(&["request_id"]);
            m.expiry = Some(Expiry::Column("expires_at".into()));
            m.status = s("status_code");
            m.payload = s("result_payload");
            m.operation = v(&["operation"]);
            notes.push(
                "the guide's table stores finished requests only: nothing is ever in flight".into(),
            );
        }
        KnownShape::Stripe | KnownShape::Medusa => {
            if shape == KnownShape::Stripe {
                m.key = v(&["user_id", "idempotency_key"]);
                m.expiry = Some(Expiry::Ttl {
                    created: "created_at".into(),
                    ttl: hours(72),
                });
                notes.push(
                    "no expiry column: rocket-rides' reaper deletes keys 72 hours after created_at, \
                     so ttl = \"72h\" (change it to your reaper's)"
                        .into(),
                );
                notes.push(
                    "id is a surrogate key; a request is identified by (user_id, idempotency_key)"
                        .into(),
                );
            } else {
                m.key = v(&["idempotency_key"]);
                m.expiry = Some(Expiry::Permanent);
                notes.push(
                    "no expiry column, and Medusa deletes nothing: a permanent ledger \
                     (set ttl = \"...\" instead of permanent if a job of yours deletes old keys)"
                        .into(),
                );
                notes.push(
                    "id is a surrogate key (ikey_...); a request is identified by idempotency_key"
                        .into(),
                );
            }
            m.status = s("response_code");
            m.payload = s("response_body");
            m.operation = if info
                .column("request_method")
                .is_some_and(|c| Fit::Text.accepts(c))
            {
                v(&["request_method", "request_path"])
            } else {
                v(&["request_path"])
            };
            m.inflight = Some(InFlight::State {
                column: "recovery_point".into(),
                done: v(&["finished"]),
            });
            m.locked_at = s("locked_at");
        }
        KnownShape::Zero2prod => {
            m.key = v(&["user_id", "idempotency_key"]);
            m.expiry = Some(Expiry::Permanent);
            notes.push(
                "no expiry column, and zero2prod deletes nothing: a permanent ledger \
                 (set ttl = \"...\" instead of permanent if a job of yours deletes old keys)"
                    .into(),
            );
            m.status = s("response_status_code");
            m.payload = s("response_body");
            notes.push("the response headers (response_headers, header_pair[]) are stored apart from the payload".into());
            if info.column("response_body").is_some_and(|c| !c.not_null) {
                m.inflight = Some(InFlight::NullPayload {
                    column: "response_body".into(),
                });
            } else {
                notes.push(
                    "response_body is NOT NULL (zero2prod's first migration, before in-flight rows): \
                     nothing can be in flight"
                        .into(),
                );
            }
        }
        KnownShape::Idempotence4j => {
            m.key = v(&["key", "type", "client"]);
            m.expiry = Some(Expiry::Ttl {
                created: "created_at".into(),
                ttl: hours(30 * 24),
            });
            notes.push(
                "no expiry column: idempotence4j's retention job deletes actions 30 days after \
                 created_at, so ttl = \"30d\" (change it to your retention period)"
                    .into(),
            );
            m.payload = s("result");
            m.operation = v(&["type", "client"]);
            m.inflight = Some(InFlight::CompletedAt {
                column: "completed_at".into(),
            });
        }
        KnownShape::Nestarc => {
            m.key = v(&["key"]);
            m.expiry = Some(Expiry::Column("expires_at".into()));
            m.status = s("response_code");
            m.payload = s("response_body");
            m.inflight = Some(InFlight::State {
                column: "status".into(),
                done: v(&["COMPLETED"]),
            });
        }
    }
    let key: Vec<&str> = m.key.iter().map(String::as_str).collect();
    if !has_unique(info, &key) {
        // A partitioned table's keys must include the partition key: the guide's partitioned
        // layout is unique on (request_id, expires_at) only.
        let wider = std::iter::once(&info.primary_key)
            .chain(info.unique_keys.iter())
            .find(|k| !k.is_empty() && key.iter().all(|c| k.iter().any(|n| n == c)));
        notes.push(match wider {
            Some(k) => format!(
                "({}) is unique only together with the other columns of ({}): two rows may share a key",
                key.join(", "),
                k.join(", ")
            ),
            None => format!(
                "no primary key or unique constraint on ({}): two rows may share a key",
                key.join(", ")
            ),
        });
    }
    m
}

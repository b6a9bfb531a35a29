//! The flat form of a [`Mapping`] as written in a `[[table]]` section ([`MappingFields`]), its
//! checked conversion, and TTLs as text.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Expiry, InFlight, Mapping};

/// The flat form of a [`Mapping`], as written in a `[[table]]` section. Every key is optional
/// here; [`Mapping`]'s conversion checks them (a key is required, the expiry and the in-flight
/// state are each given at most one way).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappingFields {
    #[serde(default)]
    pub key: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub permanent: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub operation: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inflight_column: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub done_values: Vec<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub inflight_when_payload_null: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locked_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_zone: Option<String>,
    /// Rows still in flight this long after `created` may be deleted by cleanup (a request
    /// that crashed mid-way and was never finished); without it, no in-flight row ever is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inflight_stale_after: Option<String>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl From<Mapping> for MappingFields {
    fn from(m: Mapping) -> Self {
        let mut f = MappingFields {
            key: m.key,
            created: m.created,
            status: m.status,
            payload: m.payload,
            operation: m.operation,
            locked_at: m.locked_at,
            timestamp_zone: m.timestamp_zone,
            inflight_stale_after: m.inflight_stale_after.map(format_ttl),
            ..MappingFields::default()
        };
        match m.expiry {
            Some(Expiry::Column(c)) => f.expires = Some(c),
            Some(Expiry::Ttl { ttl, .. }) => f.ttl = Some(format_ttl(ttl)),
            Some(Expiry::Permanent) => f.permanent = true,
            None => {}
        }
        match m.inflight {
            Some(InFlight::State { column, done }) => {
                f.inflight_column = Some(column);
                f.done_values = done;
            }
            Some(InFlight::NullPayload { .. }) => f.inflight_when_payload_null = true,
            Some(InFlight::CompletedAt { column }) => f.completed_at = Some(column),
            None => {}
        }
        f
    }
}

impl TryFrom<MappingFields> for Mapping {
    type Error = String;

    /// Every contradiction is refused with one sentence naming the keys.
    fn try_from(f: MappingFields) -> Result<Self, String> {
        if f.key.is_empty() {
            return Err(
                r#"key: name the column(s) of the idempotency key, e.g. key = ["idempotency_key"]"#
                    .into(),
            );
        }
        for (field, name) in f
            .key
            .iter()
            .map(|n| ("key", n))
            .chain(f.operation.iter().map(|n| ("operation", n)))
            .chain(
                [
                    ("expires", &f.expires),
                    ("created", &f.created),
                    ("status", &f.status),
                    ("payload", &f.payload),
                    ("inflight_column", &f.inflight_column),
                    ("completed_at", &f.completed_at),
                    ("locked_at", &f.locked_at),
                ]
                .into_iter()
                .filter_map(|(k, v)| v.as_ref().map(|v| (k, v))),
            )
        {
            crate::ident::Ident::new(name).map_err(|e| format!("{field}: {e}"))?;
        }
        for (field, list) in [("key", &f.key), ("operation", &f.operation)] {
            if let Some(dup) = list
                .iter()
                .enumerate()
                .find(|(i, n)| list[..*i].contains(n))
            {
                return Err(format!(
                    "{field}: column {:?} is named twice",
                    crate::sanitize::line(dup.1)
                ));
            }
        }
        let ways = [f.expires.is_some(), f.ttl.is_some(), f.permanent];
        if ways.iter().filter(|w| **w).count() > 1 {
            let given: Vec<&str> = ["expires", "ttl", "permanent"]
                .into_iter()
                .zip(ways)
                .filter_map(|(k, w)| w.then_some(k))
                .collect();
            return Err(format!(
                "contradictory expiry: {} are {} given; a row expires by a column (expires), \
                 a TTL from its creation time (ttl) or never (permanent = true): keep one",
                given.join(" and "),
                if given.len() == 2 { "both" } else { "all" }
            ));
        }
        let expiry = match (f.expires, f.ttl, f.permanent) {
            (Some(c), _, _) => Some(Expiry::Column(c)),
            (None, Some(t), _) => {
                let ttl = parse_ttl(&t).map_err(|e| format!("ttl: {e}"))?;
                let Some(created) = f.created.clone() else {
                    return Err(
                        r#"ttl counts from the creation time: also name it with created = "COLUMN""#.into(),
                    );
                };
                Some(Expiry::Ttl { created, ttl })
            }
            (None, None, true) => Some(Expiry::Permanent),
            (None, None, false) => None,
        };
        let ways = [
            f.inflight_column.is_some(),
            f.inflight_when_payload_null,
            f.completed_at.is_some(),
        ];
        if ways.iter().filter(|w| **w).count() > 1 {
            return Err(
                "contradictory in-flight state: give only one of inflight_column (with done_values), \
                 completed_at and inflight_when_payload_null"
                    .into(),
            );
        }
        if !f.done_values.is_empty() && f.inflight_column.is_none() {
            return Err(
                r#"done_values needs the column they are values of: inflight_column = "COLUMN""#
                    .into(),
            );
        }
        let inflight = if let Some(column) = f.inflight_column {
            if f.done_values.is_empty() {
                return Err(format!(
                    r#"inflight_column = {:?}: also say which of its values mean finished, e.g. done_values = ["COMPLETED"]"#,
                    crate::sanitize::line(&column)
                ));
            }
            Some(InFlight::State {
                column,
                done: f.done_values,
            })
        } else if f.inflight_when_payload_null {
            let Some(column) = f.payload.clone() else {
                return Err(
                    r#"inflight_when_payload_null needs the payload column: payload = "COLUMN""#
                        .into(),
                );
            };
            Some(InFlight::NullPayload { column })
        } else {
            f.completed_at
                .map(|column| InFlight::CompletedAt { column })
        };
        let inflight_stale_after = match &f.inflight_stale_after {
            None => None,
            Some(t) => {
                let age = parse_ttl(t).map_err(|e| format!("inflight_stale_after: {e}"))?;
                if inflight.is_none() {
                    return Err(
                        "inflight_stale_after needs an in-flight state (inflight_column, completed_at or inflight_when_payload_null)"
                            .into(),
                    );
                }
                if f.created.is_none() {
                    return Err(
                        r#"inflight_stale_after counts from the creation time: also name it with created = "COLUMN""#
                            .into(),
                    );
                }
                Some(age)
            }
        };
        if let Some(zone) = &f.timestamp_zone {
            if zone.trim().is_empty() || zone.len() > 100 || zone.chars().any(char::is_control) {
                return Err(format!(
                    "timestamp_zone {:?} is not a time zone name (e.g. \"UTC\", \"Europe/Berlin\")",
                    crate::sanitize::line(zone)
                ));
            }
        }
        Ok(Mapping {
            key: f.key,
            expiry,
            created: f.created,
            status: f.status,
            payload: f.payload,
            operation: f.operation,
            inflight,
            locked_at: f.locked_at,
            timestamp_zone: f.timestamp_zone,
            inflight_stale_after,
        })
    }
}

/// The longest TTL accepted: 100 years.
const MAX_TTL_SECS: u64 = 100 * 365 * 86_400;

/// A TTL as written in a `[[table]]` section: numbers with units `d`, `h`, `m`, `s`, e.g. `72h`,
/// `30d`, `1h30m`. Positive, at most 100 years.
pub fn parse_ttl(text: &str) -> Result<Duration, String> {
    let shown = crate::sanitize::line(text);
    let s = text.trim();
    if s.is_empty() {
        return Err("empty: write a duration such as \"24h\", \"30d\" or \"90m\"".into());
    }
    let mut total: u64 = 0;
    let mut digits = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit: u64 = match c {
            'd' => 86_400,
            'h' => 3_600,
            'm' => 60,
            's' => 1,
            _ => {
                return Err(format!(
                    "{shown:?} is not a duration: use numbers with units d, h, m, s (\"72h\", \"30d\", \"1h30m\")"
                ))
            }
        };
        if digits.is_empty() {
            return Err(format!("{shown:?}: a unit without a number"));
        }
        let n: u64 = digits
            .parse()
            .map_err(|_| format!("{shown:?} is too long"))?;
        digits.clear();
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .filter(|v| *v <= MAX_TTL_SECS)
            .ok_or_else(|| format!("{shown:?} is longer than 100 years"))?;
    }
    if !digits.is_empty() {
        return Err(format!(
            "{shown:?} needs a unit: \"{digits}h\", \"{digits}d\", \"{digits}m\" or \"{digits}s\""
        ));
    }
    if total == 0 {
        return Err(format!("{shown:?} is zero: a TTL must be positive"));
    }
    Ok(Duration::from_secs(total))
}

/// A TTL as [`parse_ttl`] reads it: whole weeks and more in days (`30d`), else hours (`72h`),
/// minutes (`90m`) or seconds.
pub fn format_ttl(ttl: Duration) -> String {
    let s = ttl.as_secs();
    if s >= 7 * 86_400 && s % 86_400 == 0 {
        format!("{}d", s / 86_400)
    } else if s % 3_600 == 0 && s > 0 {
        format!("{}h", s / 3_600)
    } else if s % 60 == 0 && s > 0 {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
#[path = "fields_tests.rs"]
mod tests;

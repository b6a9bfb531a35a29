//! [`Ts`]: a timestamp as PostgreSQL stores it, finite or `±infinity`.
//!
//! `'infinity'` is a valid value of every timestamp column (the guide's `CHECK (expires_at >
//! created_at)` accepts `expires_at = 'infinity'`, and `created_at = '-infinity'`), but sqlx's
//! `DateTime<Utc>` decoder panics on it (the special values are `i64::MAX`/`i64::MIN`
//! microseconds, and adding them to 2000-01-01 overflows). Every value read from a user's
//! timestamp column goes through this type instead: it decodes both special values, and an
//! out-of-range finite value becomes a decode error, never a panic.
//!
//! It decodes `timestamptz` only. A `timestamp without time zone` column is cast in SQL
//! (`col::timestamptz`), which reads it in the session's TimeZone; idemtop's sessions use the
//! database's own TimeZone ([`crate::db::session`]), as psql does.

use std::fmt;

use chrono::{DateTime, Duration as ChronoDuration, TimeZone, Utc};
use serde::{Serialize, Serializer};
use sqlx::decode::Decode;
use sqlx::encode::{Encode, IsNull};
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgHasArrayType, PgTypeInfo, PgValueFormat, PgValueRef};
use sqlx::{Postgres, Type};

/// A `timestamptz` value: `-infinity`, a point in time, or `infinity`. Ordered as PostgreSQL
/// orders them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Ts {
    NegInfinity,
    At(DateTime<Utc>),
    Infinity,
}

/// 2000-01-01T00:00:00Z, PostgreSQL's timestamp epoch, in Unix microseconds.
const PG_EPOCH_UNIX_MICROS: i64 = 946_684_800_000_000;

impl Ts {
    /// The finite value, if any.
    pub fn finite(self) -> Option<DateTime<Utc>> {
        match self {
            Ts::At(t) => Some(t),
            _ => None,
        }
    }

    pub fn is_finite(self) -> bool {
        matches!(self, Ts::At(_))
    }

    /// `self <= now`: the comparison cleanup and the records view use for "expired".
    pub fn at_or_before(self, now: DateTime<Utc>) -> bool {
        self <= Ts::At(now)
    }

    /// From PostgreSQL's binary form: microseconds since 2000-01-01 UTC.
    pub fn from_pg_micros(us: i64) -> Result<Ts, String> {
        match us {
            i64::MAX => Ok(Ts::Infinity),
            i64::MIN => Ok(Ts::NegInfinity),
            us => us
                .checked_add(PG_EPOCH_UNIX_MICROS)
                .and_then(|unix| Utc.timestamp_micros(unix).single())
                .map(Ts::At)
                .ok_or_else(|| format!("timestamp out of range ({us} µs from 2000-01-01)")),
        }
    }

    /// PostgreSQL's binary form.
    pub fn to_pg_micros(self) -> Result<i64, String> {
        match self {
            Ts::Infinity => Ok(i64::MAX),
            Ts::NegInfinity => Ok(i64::MIN),
            Ts::At(t) => t
                .timestamp_micros()
                .checked_sub(PG_EPOCH_UNIX_MICROS)
                .ok_or_else(|| format!("timestamp {t} out of PostgreSQL's range")),
        }
    }

    /// From PostgreSQL's text form (simple-protocol queries): `infinity`, `-infinity`, or
    /// `YYYY-MM-DD HH:MM:SS[.ffffff]+TZ` (ISO DateStyle, which sqlx sets).
    pub fn parse_pg_text(s: &str) -> Result<Ts, String> {
        match s.trim() {
            "infinity" => return Ok(Ts::Infinity),
            "-infinity" => return Ok(Ts::NegInfinity),
            _ => {}
        }
        let s = s.trim();
        // BC dates and years past 9999 are valid in PostgreSQL but not in RFC 3339: say so.
        if s.ends_with(" BC") {
            return Err(format!("timestamp before year 1 ({s}) is not supported"));
        }
        // "+09" / "+05:30" / "+05:30:15" offsets; add minutes where only hours are given.
        let normalized = match s.rfind(['+', '-']) {
            Some(i) if i > 10 && s[i + 1..].len() == 2 => format!("{s}:00"),
            _ => s.to_owned(),
        };
        DateTime::parse_from_str(&normalized, "%Y-%m-%d %H:%M:%S%.f%:z")
            .map(|t| Ts::At(t.with_timezone(&Utc)))
            .map_err(|e| format!("unreadable timestamp {s:?}: {e}"))
    }

    /// `self - earlier` for finite values; None when either is infinite.
    pub fn since(self, earlier: Ts) -> Option<ChronoDuration> {
        Some(self.finite()? - earlier.finite()?)
    }
}

impl From<DateTime<Utc>> for Ts {
    fn from(t: DateTime<Utc>) -> Self {
        Ts::At(t)
    }
}

/// RFC 3339 for a finite value, `infinity` / `-infinity` otherwise.
impl fmt::Display for Ts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ts::At(t) => write!(f, "{}", t.to_rfc3339()),
            Ts::Infinity => f.write_str("infinity"),
            Ts::NegInfinity => f.write_str("-infinity"),
        }
    }
}

/// JSON: an RFC 3339 string, or `"infinity"` / `"-infinity"` as PostgreSQL writes them.
impl Serialize for Ts {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Ts::At(t) => t.serialize(s),
            other => s.serialize_str(&other.to_string()),
        }
    }
}

impl Type<Postgres> for Ts {
    fn type_info() -> PgTypeInfo {
        <DateTime<Utc> as Type<Postgres>>::type_info()
    }

    fn compatible(ty: &PgTypeInfo) -> bool {
        <DateTime<Utc> as Type<Postgres>>::compatible(ty)
    }
}

impl PgHasArrayType for Ts {
    fn array_type_info() -> PgTypeInfo {
        <DateTime<Utc> as PgHasArrayType>::array_type_info()
    }
}

impl<'r> Decode<'r, Postgres> for Ts {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        match value.format() {
            PgValueFormat::Binary => {
                let bytes = value.as_bytes()?;
                let raw: [u8; 8] = bytes
                    .try_into()
                    .map_err(|_| format!("timestamptz of {} bytes, expected 8", bytes.len()))?;
                Ok(Ts::from_pg_micros(i64::from_be_bytes(raw))?)
            }
            PgValueFormat::Text => Ok(Ts::parse_pg_text(value.as_str()?)?),
        }
    }
}

impl Encode<'_, Postgres> for Ts {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        buf.extend_from_slice(&self.to_pg_micros()?.to_be_bytes());
        Ok(IsNull::No)
    }

    fn size_hint(&self) -> usize {
        8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_values_round_trip_through_the_binary_form() {
        for ts in [
            Ts::Infinity,
            Ts::NegInfinity,
            Ts::At(Utc.timestamp_micros(1_700_000_000_123_456).unwrap()),
            Ts::At(Utc.timestamp_micros(PG_EPOCH_UNIX_MICROS).unwrap()),
        ] {
            assert_eq!(Ts::from_pg_micros(ts.to_pg_micros().unwrap()).unwrap(), ts);
        }
    }

    #[test]
    fn out_of_range_is_an_error_not_a_panic() {
        assert!(Ts::from_pg_micros(i64::MAX - 1).is_err());
        assert!(Ts::from_pg_micros(i64::MIN + 1).is_err());
    }

    #[test]
    fn text_forms_parse() {
        assert_eq!(Ts::parse_pg_text("infinity").unwrap(), Ts::Infinity);
        assert_eq!(Ts::parse_pg_text("-infinity").unwrap(), Ts::NegInfinity);
        let t = Ts::parse_pg_text("2026-11-29 23:40:00.5+09").unwrap();
        assert_eq!(t.to_string(), "2026-11-29T14:40:00.500+00:00");
        let t = Ts::parse_pg_text("2026-11-29 23:40:00+05:30").unwrap();
        assert_eq!(t.to_string(), "2026-11-29T18:10:00+00:00");
        assert!(Ts::parse_pg_text("0044-03-15 12:00:00+00 BC").is_err());
        assert!(Ts::parse_pg_text("garbage").is_err());
    }

    #[test]
    fn ordering_matches_postgres() {
        let now = Utc::now();
        assert!(Ts::NegInfinity < Ts::At(now));
        assert!(Ts::At(now) < Ts::Infinity);
        assert!(Ts::NegInfinity.at_or_before(now));
        assert!(!Ts::Infinity.at_or_before(now));
    }

    #[test]
    fn json_names_the_special_values() {
        assert_eq!(
            serde_json::to_string(&Ts::Infinity).unwrap(),
            "\"infinity\""
        );
        assert_eq!(
            serde_json::to_string(&Ts::NegInfinity).unwrap(),
            "\"-infinity\""
        );
    }
}

//! `[[table]]` entries of the configuration file, the check of a mapping against the table it
//! names, and the effective mapping of a table (the configured one, else the detected one).

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::detect::{detect, Detection};
use super::fit::Fit;
use super::mapping::MappingFields;
use super::mapping::{Expiry, InFlight, Mapping};
use crate::db::table::TableInfo;
use crate::ident::TableRef;
use crate::sanitize;

/// One `[[table]]` section: the table (`schema`, default `public`, and `table`) and its
/// [`Mapping`], whose keys sit flat beside them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableEntry {
    pub schema: String,
    pub table: String,
    pub mapping: Mapping,
}

impl TableEntry {
    /// `schema.table`, sanitized, for messages.
    pub fn shown(&self) -> String {
        format!(
            "{}.{}",
            sanitize::line(&self.schema),
            sanitize::line(&self.table)
        )
    }

    pub fn table_ref(&self) -> anyhow::Result<TableRef> {
        TableRef::new(&self.schema, &self.table)
    }

    fn is(&self, table: &TableRef) -> bool {
        self.schema == table.schema.as_str() && self.table == table.table.as_str()
    }

    /// Every entry names a valid table, and no table twice.
    pub fn validate_all(entries: &[TableEntry]) -> Result<(), String> {
        for (i, e) in entries.iter().enumerate() {
            e.table_ref()
                .map_err(|err| format!("[[table]] {}: {err}", e.shown()))?;
            if entries[..i]
                .iter()
                .any(|o| o.schema == e.schema && o.table == e.table)
            {
                return Err(format!(
                    "[[table]] {} is mapped twice: keep one section per table",
                    e.shown()
                ));
            }
        }
        Ok(())
    }
}

impl<'de> Deserialize<'de> for TableEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let mut fields = toml::Table::deserialize(d)?;
        let mut name = |key: &str| match fields.remove(key) {
            None => Ok(None),
            Some(toml::Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(D::Error::custom(format!(
                "[[table]]: {key} must be a string, not {}",
                other.type_str()
            ))),
        };
        let schema = name("schema")?.unwrap_or_else(|| "public".to_owned());
        let Some(table) = name("table")? else {
            return Err(D::Error::custom(
                "[[table]]: name the table with table = \"NAME\" (and schema = \"NAME\" unless it is public)",
            ));
        };
        let shown = format!("{}.{}", sanitize::line(&schema), sanitize::line(&table));
        let mapping = Mapping::deserialize(toml::Value::Table(fields))
            .map_err(|e| D::Error::custom(format!("[[table]] {shown}: {}", e.message())))?;
        Ok(TableEntry {
            schema,
            table,
            mapping,
        })
    }
}

impl Serialize for TableEntry {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Flat<'a> {
            schema: &'a str,
            table: &'a str,
            #[serde(flatten)]
            fields: MappingFields,
        }
        Flat {
            schema: &self.schema,
            table: &self.table,
            fields: self.mapping.clone().into(),
        }
        .serialize(s)
    }
}

/// The `[[table]]` entry for `table`, if the configuration has one.
pub fn configured<'a>(entries: &'a [TableEntry], table: &TableRef) -> Option<&'a TableEntry> {
    entries.iter().find(|e| e.is(table))
}

/// Check a mapping against the table it is for: every column it names exists and its type fits
/// its role. `Err` lists every problem, one sentence each.
pub fn check(mapping: &Mapping, table: &TableRef, info: &TableInfo) -> Result<(), String> {
    let mut problems = Vec::new();
    let mut need = |key: &str, name: &str, fit: Fit| match info.column(name) {
        None => problems.push(format!(
            "{key}: {table} has no column {}",
            sanitize::line(name)
        )),
        Some(c) if !fit.accepts(c) => problems.push(format!(
            "{key}: {table}.{} is of type {}, not {}",
            sanitize::line(name),
            sanitize::line(&c.type_name),
            fit.describe()
        )),
        Some(_) => {}
    };
    for k in mapping.key_columns() {
        need("key", k, Fit::Any);
    }
    match mapping.expiry() {
        Some(Expiry::Column(c)) => need("expires", c, Fit::Ts),
        Some(Expiry::Ttl { .. } | Expiry::Permanent) | None => {}
    }
    if let Some(c) = mapping.created() {
        need("created", c, Fit::Ts);
    }
    if let Some(c) = mapping.status() {
        need("status", c, Fit::Int);
    }
    if let Some(c) = mapping.payload() {
        need("payload", c, Fit::Payload);
    }
    for c in mapping.operation_columns() {
        need("operation", c, Fit::Scalar);
    }
    match mapping.inflight() {
        Some(InFlight::State { column, .. }) => need("inflight_column", column, Fit::Scalar),
        Some(InFlight::CompletedAt { column }) => need("completed_at", column, Fit::Ts),
        Some(InFlight::NullPayload { .. }) | None => {}
    }
    if let Some(c) = mapping.locked_at() {
        need("locked_at", c, Fit::Ts);
    }
    match mapping.inflight() {
        Some(InFlight::NullPayload { column })
            if info.column(column).is_some_and(|c| c.not_null) =>
        {
            problems.push(format!(
                "inflight_when_payload_null: {table}.{} is NOT NULL, so no row is ever in flight",
                sanitize::line(column)
            ))
        }
        Some(InFlight::CompletedAt { column })
            if info.column(column).is_some_and(|c| c.not_null) =>
        {
            problems.push(format!(
                "completed_at: {table}.{} is NOT NULL, so no row is ever in flight",
                sanitize::line(column)
            ))
        }
        _ => {}
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// Where the effective mapping came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MappingSource {
    /// A `[[table]]` section of the configuration file.
    Config,
    /// Detected from the table's columns.
    Detected,
}

/// The mapping idemtop uses for a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Effective {
    pub mapping: Mapping,
    pub source: MappingSource,
    /// The detection, when the mapping comes from it (what is missing, the notes).
    pub detection: Option<Detection>,
}

impl Effective {
    /// What the mapping covers and what it leaves out, as a [`Detection`] (for its
    /// [`Detection::message`] and `missing`): the detection itself, or for a `[[table]]`
    /// section the configured mapping with the roles it leaves out.
    pub fn described(&self, table: &TableRef, info: &TableInfo) -> Detection {
        if let Some(d) = &self.detection {
            return d.clone();
        }
        let m = &self.mapping;
        let zone_needed = m
            .timestamp_columns()
            .into_iter()
            .filter_map(|(_, name)| info.column(name))
            .any(|c| c.kind == crate::db::table::ColumnKind::Timestamp);
        let missing = super::mapping::Role::ALL
            .into_iter()
            .filter(|r| !m.has(*r))
            .filter(|r| *r != super::mapping::Role::Zone || zone_needed)
            .collect();
        Detection {
            schema: table.schema.as_str().to_owned(),
            table: table.table.as_str().to_owned(),
            shape: None,
            mapping: m.clone(),
            missing,
            notes: Vec::new(),
            configured: true,
        }
    }
}

/// The mapping of `table`: its `[[table]]` entry when the configuration has one (checked
/// against the table: a column that does not exist or whose type does not fit is an error),
/// otherwise what [`detect`] finds.
pub fn effective(
    entries: &[TableEntry],
    table: &TableRef,
    info: &TableInfo,
) -> Result<Effective, String> {
    if let Some(entry) = configured(entries, table) {
        check(&entry.mapping, table, info).map_err(|e| {
            format!("the [[table]] section for {table} does not fit the table: {e}")
        })?;
        return Ok(Effective {
            mapping: entry.mapping.clone(),
            source: MappingSource::Config,
            detection: None,
        });
    }
    let d = detect(table.schema.as_str(), table.table.as_str(), info);
    Ok(Effective {
        mapping: d.mapping.clone(),
        source: MappingSource::Detected,
        detection: Some(d),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Doc {
        #[serde(default)]
        table: Vec<TableEntry>,
    }

    fn parse(text: &str) -> Result<Vec<TableEntry>, String> {
        toml::from_str::<Doc>(text)
            .map(|d| d.table)
            .map_err(|e| e.message().to_string())
    }

    #[test]
    fn an_entry_reads_flat_keys_and_writes_them_back() {
        let text = r#"
[[table]]
table = "idempotency"
key = ["user_id", "idempotency_key"]
created = "created_at"
permanent = true
status = "response_status_code"
payload = "response_body"
inflight_when_payload_null = true
"#;
        let entries = parse(text).unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].schema, "public");
        assert_eq!(entries[0].mapping.expiry(), Some(&Expiry::Permanent));
        #[derive(Serialize)]
        struct Out<'a> {
            table: &'a [TableEntry],
        }
        let again = toml::to_string(&Out { table: &entries }).unwrap();
        assert_eq!(parse(&again).unwrap(), entries);
    }

    #[test]
    fn bad_entries_say_which_table_and_why() {
        for (text, want) in [
            (
                "[[table]]\nkey = [\"k\"]",
                "[[table]]: name the table with table = \"NAME\"",
            ),
            (
                "[[table]]\ntable = 3\nkey = [\"k\"]",
                "[[table]]: table must be a string, not integer",
            ),
            (
                "[[table]]\ntable = \"t\"\nkey = [\"k\"]\nexpires = \"e\"\npermanent = true",
                "[[table]] public.t: contradictory expiry: expires and permanent",
            ),
            (
                "[[table]]\nschema = \"s\"\ntable = \"t\"\nkey = [\"k\"]\nexpiry = \"e\"",
                "[[table]] s.t: unknown field `expiry`",
            ),
        ] {
            let err = parse(text).unwrap_err();
            assert!(err.contains(want), "{text}\n=> {err}");
        }
        let twice = parse(
            "[[table]]\ntable = \"t\"\nkey = [\"k\"]\n[[table]]\ntable = \"t\"\nkey = [\"j\"]",
        )
        .unwrap();
        assert_eq!(
            TableEntry::validate_all(&twice).unwrap_err(),
            "[[table]] public.t is mapped twice: keep one section per table"
        );
    }
}

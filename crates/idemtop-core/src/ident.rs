//! SQL identifiers from the user (schema and table names): validated once, then only ever
//! used quoted (`"name"`) in SQL text or bound as values in catalog look-ups.

use std::fmt;

use anyhow::{bail, Result};

/// PostgreSQL's NAMEDATALEN - 1: longer names are silently truncated by the server, so refuse them.
const MAX_IDENT_BYTES: usize = 63;

/// A validated SQL identifier. It can hold any character a quoted PostgreSQL identifier can,
/// but never a NUL or another control character.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Ident(String);

impl Ident {
    pub fn new(raw: &str) -> Result<Self> {
        if raw.is_empty() {
            bail!("an identifier cannot be empty");
        }
        if raw.len() > MAX_IDENT_BYTES {
            bail!(
                "identifier {:?} is {} bytes long; PostgreSQL allows at most {MAX_IDENT_BYTES}",
                crate::sanitize::line(raw),
                raw.len()
            );
        }
        if raw.chars().any(char::is_control) {
            bail!(
                "identifier {:?} contains a control character",
                crate::sanitize::line(raw)
            );
        }
        Ok(Self(raw.to_owned()))
    }

    /// The name as stored in the catalogs (`pg_class.relname`), for binding as a value.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name quoted for SQL text: `"my ""odd"" name"`.
    pub fn quoted(&self) -> String {
        format!("\"{}\"", self.0.replace('"', "\"\""))
    }
}

impl fmt::Display for Ident {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A name as SQL text for people to copy (advice, GRANT statements): bare when it is a plain
/// lower-case identifier that is not a common reserved word, otherwise double-quoted; always
/// sanitized for the terminal. For SQL that idemtop runs, use [`Ident::quoted`].
pub fn display_quoted(name: &str) -> String {
    const RESERVED: [&str; 14] = [
        "user",
        "all",
        "table",
        "select",
        "group",
        "order",
        "grant",
        "to",
        "from",
        "where",
        "default",
        "check",
        "primary",
        "references",
    ];
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '$')
        && !RESERVED.contains(&name);
    if plain {
        name.to_owned()
    } else {
        crate::sanitize::line(&format!("\"{}\"", name.replace('"', "\"\"")))
    }
}

/// The table idemtop watches: `--schema` and `--table`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TableRef {
    pub schema: Ident,
    pub table: Ident,
}

impl TableRef {
    pub fn new(schema: &str, table: &str) -> Result<Self> {
        Ok(Self {
            schema: Ident::new(schema)?,
            table: Ident::new(table)?,
        })
    }

    /// `"schema"."table"`, safe to paste into SQL text.
    pub fn qualified(&self) -> String {
        format!("{}.{}", self.schema.quoted(), self.table.quoted())
    }

    /// A sibling object in the same schema (an index, a function), quoted.
    pub fn sibling(&self, name: &Ident) -> String {
        format!("{}.{}", self.schema.quoted(), name.quoted())
    }
}

impl Default for TableRef {
    fn default() -> Self {
        Self::new("public", "idempotency_records").expect("default names are valid")
    }
}

impl fmt::Display for TableRef {
    /// Human form for screens and JSON: `schema.table` (sanitized, unquoted).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{}",
            crate::sanitize::line(self.schema.as_str()),
            crate::sanitize::line(self.table.as_str())
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_embedded_quotes() {
        let id = Ident::new(r#"we"ird"#).unwrap();
        assert_eq!(id.quoted(), r#""we""ird""#);
        let t = TableRef::new("my schema", "t; DROP TABLE x").unwrap();
        assert_eq!(t.qualified(), r#""my schema"."t; DROP TABLE x""#);
    }

    #[test]
    fn rejects_empty_long_and_control() {
        assert!(Ident::new("").is_err());
        assert!(Ident::new(&"a".repeat(64)).is_err());
        assert!(Ident::new(&"a".repeat(63)).is_ok());
        assert!(Ident::new("a\u{1b}[2J").is_err());
        assert!(Ident::new("a\0b").is_err());
    }

    #[test]
    fn default_is_the_guides_table() {
        assert_eq!(
            TableRef::default().to_string(),
            "public.idempotency_records"
        );
    }
}

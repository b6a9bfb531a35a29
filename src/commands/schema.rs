//! `idemtop schema`: the detected shape of the table as a `[[table]]` section ready to paste into
//! the config file, or, without `--table` and no guide-shaped table, the tables of the database
//! that look like idempotency tables.

use anyhow::{anyhow, bail, Result};
use serde_json::{json, Value};
use sqlx::PgConnection;

use crate::config::Config;
use crate::db::shape::{self, Candidate, Detection};
use crate::db::table;
use crate::ident::TableRef;
use crate::options::{Format, Global};
use crate::sanitize;

#[derive(clap::Args, Debug, Clone)]
pub struct SchemaArgs {
    /// Output: the `[[table]]` section with comments (text), or one JSON document.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// Print the mapping of `--table` (exit 0), or the candidates when `--table` was not given and
/// the default table is missing or not of the guide's shape (exit 0; none found is an error).
/// A table named with `--table` that does not exist is an error (exit 1).
pub async fn run(
    global: &Global,
    config: &Config,
    args: &SchemaArgs,
    table_given: bool,
) -> Result<i32> {
    let table = global.table_ref()?;
    let mut conn = global.connect_config().connect().await?;
    let exists: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                         WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p'))",
    )
    .bind(table.schema.as_str())
    .bind(table.table.as_str())
    .fetch_one(&mut conn)
    .await?;
    if !exists && !table_given {
        return list_candidates(&mut conn, &table, "does not exist", args.format).await;
    }
    // Missing and named with --table: resolve says so in one sentence (exit 1).
    let info = table::resolve(&mut conn, &table).await?;
    let detection = shape::detect(table.schema.as_str(), table.table.as_str(), &info);
    if !table_given && !detection.is_guide() {
        let why = match detection.shape {
            Some(s) => format!("is not of the guide's shape (it is {})", s.label()),
            None => "is not of the guide's shape".to_owned(),
        };
        return list_candidates(&mut conn, &table, &why, args.format).await;
    }
    let configured = shape::configured(&config.tables, &table)
        .map(|entry| (entry, shape::check(&entry.mapping, &table, &info)));
    match args.format {
        Format::Text => {
            print!("{}", shape::toml_section(&detection));
            if let Some((entry, fits)) = &configured {
                let verdict = match fits {
                    Ok(()) => "it fits the table, and idemtop uses it".to_owned(),
                    Err(e) => format!("it does not fit the table: {e}"),
                };
                let same = if entry.mapping == detection.mapping {
                    "the same mapping as detected"
                } else {
                    "a mapping other than the detected one"
                };
                println!(
                    "# Note: the config file already maps {table} ({same}); {}.",
                    sanitize::line(&verdict)
                );
            }
        }
        Format::Json => {
            let mut doc = detection_json(&detection);
            if let Value::Object(map) = &mut doc {
                map.insert(
                    "configured".into(),
                    match &configured {
                        None => Value::Null,
                        Some((entry, fits)) => json!({
                            "mapping": entry.mapping,
                            "same_as_detected": entry.mapping == detection.mapping,
                            "error": fits.as_ref().err(),
                        }),
                    },
                );
            }
            println!("{}", safe_json(&doc)?);
        }
    }
    Ok(0)
}

/// The detection as JSON, with its human message and its `[[table]]` section.
fn detection_json(d: &Detection) -> Value {
    let mut doc = serde_json::to_value(d).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut doc {
        map.insert("message".into(), Value::String(d.message()));
        map.insert("toml".into(), Value::String(shape::toml_section(d)));
    }
    doc
}

async fn list_candidates(
    conn: &mut PgConnection,
    table: &TableRef,
    why: &str,
    format: Format,
) -> Result<i32> {
    let database: String = sqlx::query_scalar("SELECT current_database()::text")
        .fetch_one(&mut *conn)
        .await?;
    let database = sanitize::line(&database);
    let (found, more) = shape::candidates(conn).await?;
    if found.is_empty() {
        bail!(
            "{table} {why}, and no table in database {database} looks like an idempotency table \
             (none is named like one, none has a key, a creation time and a stored response): \
             name yours with --table (and --schema)"
        );
    }
    match format {
        Format::Json => {
            let list: Vec<Value> = found.iter().map(candidate_json).collect();
            let doc = json!({
                "table": table.to_string(),
                "database": database,
                "why_not": why,
                "candidates": list,
                "more": more,
            });
            println!("{}", safe_json(&doc)?);
        }
        Format::Text => print!("{}", render_candidates(table, &database, why, &found, more)),
    }
    Ok(0)
}

fn candidate_json(c: &Candidate) -> Value {
    let mut doc = detection_json(&c.detection);
    if let Value::Object(map) = &mut doc {
        map.insert("reason".into(), Value::String(c.reason.into()));
    }
    doc
}

/// The human listing of candidates.
pub fn render_candidates(
    table: &TableRef,
    database: &str,
    why: &str,
    found: &[Candidate],
    more: bool,
) -> String {
    let mut out = format!(
        "{table} {why} in database {database}. Tables that look like idempotency tables:\n\n"
    );
    let width = found
        .iter()
        .map(|c| c.detection.shown_table().chars().count())
        .max()
        .unwrap_or(0);
    for c in found {
        let d = &c.detection;
        let shape = d.shape.map(|s| s.id()).unwrap_or("unknown shape");
        let missing = if d.missing.is_empty() {
            "nothing missing".to_owned()
        } else {
            format!(
                "missing {}",
                d.missing
                    .iter()
                    .map(|r| r.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        out.push_str(&format!(
            "  {:<width$}  {shape:<14} {missing} ({})\n",
            d.shown_table(),
            c.reason
        ));
    }
    if more {
        out.push_str(&format!(
            "  ... and more (only the first {} are listed)\n",
            shape::MAX_CANDIDATES
        ));
    }
    out.push_str(
        "\nPrint the [[table]] section of one with: idemtop schema --schema SCHEMA --table TABLE\n",
    );
    out
}

/// JSON text whose every character the terminal would not show as itself (C1 controls, DEL,
/// bidirectional and zero-width characters; serde_json already escapes the C0 controls) is
/// written as a `\u` escape: the same document, safe to print.
pub fn safe_json(doc: &Value) -> Result<String> {
    let text = serde_json::to_string_pretty(doc).map_err(|e| anyhow!("JSON output: {e}"))?;
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c == '\n' || sanitize::is_clean(c.encode_utf8(&mut [0; 4])) {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{:04x}", u));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_escapes_what_the_terminal_would_hide_and_stays_the_same_document() {
        let doc = json!({"name": "a\u{202E}b\u{9b}c\u{7f}\u{E0041}", "plain": "ünï"});
        let text = safe_json(&doc).unwrap();
        assert!(sanitize::is_clean(&text.replace('\n', "")), "{text}");
        assert!(text.contains("\\u202e") && text.contains("\\udb40\\udc41"));
        let back: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, doc);
    }
}

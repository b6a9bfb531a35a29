//! The human forms of a detection: one message, and a ready-to-paste `[[table]]` section.

use super::detect::Detection;
use super::known::KnownShape;
use super::mapping::{format_ttl, MappingFields};
use super::mapping::{Expiry, InFlight, Mapping, Role};
use crate::sanitize;

/// A TOML basic string holding exactly `s`. Quotes and backslashes are escaped, and so is every
/// character the terminal would not show as itself (controls, bidirectional and zero-width
/// characters: `\u202E`), so the text is safe to print and still reads back to `s`.
pub fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if !sanitize::is_clean(c.encode_utf8(&mut [0; 4])) => {
                if (c as u32) <= 0xFFFF {
                    out.push_str(&format!("\\u{:04X}", c as u32));
                } else {
                    out.push_str(&format!("\\U{:08X}", c as u32));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn toml_array(items: &[String]) -> String {
    let inner: Vec<String> = items.iter().map(|s| toml_string(s)).collect();
    format!("[{}]", inner.join(", "))
}

fn names(cols: &[String], sep: &str) -> String {
    cols.iter()
        .map(|c| sanitize::line(c))
        .collect::<Vec<_>>()
        .join(sep)
}

/// What the mapping says for `role`, in words (sanitized); `None` when unmapped.
fn describe(m: &Mapping, role: Role) -> Option<String> {
    let line = |s: &str| sanitize::line(s);
    Some(match role {
        Role::Key => {
            if m.key_columns().is_empty() {
                return None;
            }
            names(m.key_columns(), ", ")
        }
        Role::Expiry => match m.expiry()? {
            Expiry::Column(c) => format!("when {} has passed", line(c)),
            Expiry::Ttl { created, ttl } => {
                format!("{} after {} (ttl)", format_ttl(*ttl), line(created))
            }
            Expiry::Permanent => "never: a permanent ledger".to_owned(),
        },
        Role::Created => line(m.created()?),
        Role::Status => line(m.status()?),
        Role::Payload => line(m.payload()?),
        Role::Operation => {
            if m.operation_columns().is_empty() {
                return None;
            }
            names(m.operation_columns(), " + ")
        }
        Role::InFlight => match m.inflight()? {
            InFlight::State { column, done } => format!(
                "until {} is {}",
                line(column),
                done.iter()
                    .map(|d| format!("'{}'", line(d)))
                    .collect::<Vec<_>>()
                    .join(" or ")
            ),
            InFlight::NullPayload { column } => format!("while {} is NULL", line(column)),
            InFlight::CompletedAt { column } => format!("while {} is NULL", line(column)),
        },
        Role::Zone => line(m.timestamp_zone()?),
    })
}

fn headline(d: &Detection) -> String {
    if d.configured {
        return format!(
            "{}: mapped by its [[table]] section of the config file",
            d.shown_table()
        );
    }
    match d.shape {
        Some(s) => format!("{}: recognised as {}", d.shown_table(), s.label()),
        None => format!(
            "{}: not one of the known shapes ({}); mapped by column names and types",
            d.shown_table(),
            KnownShape::ALL.map(KnownShape::id).join(", ")
        ),
    }
}

impl Detection {
    /// One human message: the table, what was recognised, every missing role and how to map it,
    /// and the notes. Several lines; every name sanitized.
    pub fn message(&self) -> String {
        let mut out = headline(self);
        out.push('.');
        for role in Role::ALL {
            if let Some(text) = describe(&self.mapping, role) {
                out.push_str(&format!("\n  {:<16}{text}", role.name()));
            }
        }
        if let Some(locked) = self.mapping.locked_at() {
            out.push_str(&format!(
                "\n  {:<16}{}",
                "locked at",
                sanitize::line(locked)
            ));
        }
        if self.missing.is_empty() {
            out.push_str("\nNothing is missing.");
        } else {
            out.push_str(&format!(
                "\nMissing: {}. Map {} in the table's [[table]] section of the config file \
                 (`idemtop schema` prints one to start from):",
                self.missing
                    .iter()
                    .map(|r| r.name())
                    .collect::<Vec<_>>()
                    .join(", "),
                if self.missing.len() == 1 {
                    "it"
                } else {
                    "them"
                }
            ));
            for role in &self.missing {
                out.push_str(&format!("\n  {}: {}", role.name(), role.how_to_map()));
            }
        }
        for note in &self.notes {
            out.push_str(&format!("\nNote: {}.", sanitize::line(note)));
        }
        out
    }
}

/// The detected mapping as a `[[table]]` section, ready to paste into the config file: comments
/// say what was detected, what is missing (a commented line to fill in for each) and the notes.
/// It reads back (uncommented lines only) to exactly [`Detection::mapping`].
pub fn toml_section(d: &Detection) -> String {
    let mut out = String::new();
    let comment = |out: &mut String, text: &str| {
        out.push_str("# ");
        out.push_str(&sanitize::line(text));
        out.push('\n');
    };
    comment(&mut out, &format!("{}.", headline(d)));
    for note in &d.notes {
        comment(&mut out, &format!("Note: {note}."));
    }
    if d.missing.is_empty() {
        comment(&mut out, "Every role is mapped.");
    } else {
        comment(
            &mut out,
            &format!(
                "Missing: {} (see the commented lines below).",
                d.missing
                    .iter()
                    .map(|r| r.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
    }
    out.push_str("[[table]]\n");
    out.push_str(&format!("schema = {}\n", toml_string(&d.schema)));
    out.push_str(&format!("table = {}\n", toml_string(&d.table)));
    let f: MappingFields = d.mapping.clone().into();
    let mut kv = |key: &str, value: String| out.push_str(&format!("{key} = {value}\n"));
    if !f.key.is_empty() {
        kv("key", toml_array(&f.key));
    }
    if let Some(c) = &f.expires {
        kv("expires", toml_string(c));
    }
    if let Some(c) = &f.created {
        kv("created", toml_string(c));
    }
    if let Some(t) = &f.ttl {
        kv("ttl", toml_string(t));
    }
    if f.permanent {
        kv("permanent", "true".into());
    }
    for (key, value) in [("status", &f.status), ("payload", &f.payload)] {
        if let Some(c) = value {
            kv(key, toml_string(c));
        }
    }
    if !f.operation.is_empty() {
        kv("operation", toml_array(&f.operation));
    }
    if let Some(c) = &f.inflight_column {
        kv("inflight_column", toml_string(c));
        kv("done_values", toml_array(&f.done_values));
    }
    if f.inflight_when_payload_null {
        kv("inflight_when_payload_null", "true".into());
    }
    for (key, value) in [
        ("completed_at", &f.completed_at),
        ("locked_at", &f.locked_at),
        ("timestamp_zone", &f.timestamp_zone),
    ] {
        if let Some(c) = value {
            kv(key, toml_string(c));
        }
    }
    if let Some(t) = &f.inflight_stale_after {
        kv("inflight_stale_after", toml_string(t));
    }
    for role in &d.missing {
        out.push_str(&format!(
            "# missing {}: {}\n",
            role.name(),
            role.how_to_map()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_strings_escape_what_the_terminal_would_hide_and_read_back() {
        for s in [
            "plain",
            "we\"ird\\name",
            "esc\u{1b}[2J",
            "bidi\u{202E}txt",
            "zero\u{200B}width",
            "tag\u{E0041}",
            "ünï 東京",
        ] {
            let t = toml_string(s);
            assert!(sanitize::is_clean(&t), "{t}");
            let back: toml::Value = toml::from_str(&format!("v = {t}")).unwrap();
            assert_eq!(back["v"].as_str(), Some(s));
        }
        assert_eq!(toml_string("a\u{202E}b"), "\"a\\u202Eb\"");
    }
}

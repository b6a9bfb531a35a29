//! The statements and names that checks write into their advice.

use super::*;

/// The table as written in advice, from the snapshot's `schema.table`.
pub(super) fn extras_free_table(snap: &Snapshot) -> String {
    match snap.table.split_once('.') {
        Some((schema, table)) => TableRef::new(schema, table)
            .map(|t| t.qualified())
            .unwrap_or_else(|_| sanitize::line(&snap.table)),
        None => sanitize::line(&snap.table),
    }
}

/// The statement that runs the cleanup now.
pub(super) fn cleanup_statement(snap: &Snapshot, extras: &Extras) -> String {
    if snap.cleanup_function {
        format!("SELECT * FROM {}();", sibling(extras, CLEANUP_FUNCTION))
    } else {
        format!(
            "DELETE FROM {} WHERE expires_at <= now(); (in batches on a large table)",
            extras.table.qualified()
        )
    }
}

/// An index of the table's schema as SQL text.
pub(super) fn sibling(extras: &Extras, name: &str) -> String {
    format!("{}.{}", extras.table.schema.quoted(), quote_ident(name))
}

/// Does a pg_cron job command run the cleanup?
pub(super) fn runs_cleanup(command: &str) -> bool {
    let c = command.to_ascii_lowercase();
    c.contains(CLEANUP_FUNCTION) || (c.contains("delete") && c.contains("expires_at"))
}

/// An identifier as SQL text for the advice (see [`crate::ident::display_quoted`]).
pub use crate::ident::display_quoted as quote_ident;

pub(super) fn role_sql(role: &str) -> String {
    if role == "PUBLIC" {
        "PUBLIC".into()
    } else {
        quote_ident(role)
    }
}

/// "1h", "24h", "90m", "2d": a TTL for people.
pub(super) fn ttl_text(secs: f64) -> String {
    let s = secs.round() as i64;
    if s % 86_400 == 0 && s >= 86_400 * 2 {
        format!("{}d", s / 86_400)
    } else if s % 3600 == 0 {
        format!("{}h", s / 3600)
    } else if s % 60 == 0 {
        format!("{}m", s / 60)
    } else {
        format::duration_secs(secs)
    }
}

/// `INTERVAL '1 hour'`, `INTERVAL '90 minutes'`, `INTERVAL '45 seconds'`.
pub(super) fn interval_literal(secs: i64) -> String {
    let (n, unit) = if secs % 3600 == 0 {
        (secs / 3600, "hour")
    } else if secs % 60 == 0 {
        (secs / 60, "minute")
    } else {
        (secs, "second")
    };
    format!("INTERVAL '{n} {unit}{}'", if n == 1 { "" } else { "s" })
}

pub(super) fn sql_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

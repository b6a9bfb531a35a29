//! Privileges checked before a write, and database errors explained in a sentence.

use super::*;

pub(super) struct Privileges {
    pub(super) role: String,
    pub(super) schema_usage: bool,
    pub(super) select: bool,
    pub(super) delete: bool,
    pub(super) update: bool,
}

pub(super) async fn privileges(conn: &mut PgConnection, oid: u32) -> Result<Privileges> {
    let (role, schema_usage, select, delete, update): (String, bool, bool, bool, bool) =
        sqlx::query_as(
            "SELECT current_user::text,
                    has_schema_privilege(c.relnamespace, 'USAGE'),
                    has_table_privilege(c.oid, 'SELECT'),
                    has_table_privilege(c.oid, 'DELETE'),
                    has_any_column_privilege(c.oid, 'UPDATE')
               FROM pg_class c WHERE c.oid = $1",
        )
        .bind(Oid(oid))
        .fetch_one(conn)
        .await?;
    Ok(Privileges {
        role,
        schema_usage,
        select,
        delete,
        update,
    })
}

pub(super) fn privilege_error(role: &str, privilege: &str, table: &TableRef) -> anyhow::Error {
    anyhow!(
        "permission denied: role {} lacks {privilege} on {table} (GRANT {privilege} ON {} TO {})",
        sanitize::line(role),
        qualified_for_humans(table),
        sql_ident(role)
    )
}

/// `schema.table` as SQL an operator can paste: quoted only where needed.
pub(super) fn qualified_for_humans(table: &TableRef) -> String {
    format!(
        "{}.{}",
        sql_ident(table.schema.as_str()),
        sql_ident(table.table.as_str())
    )
}

/// Lock timeout, statement timeout, deadlock, serialization failure: worth another try.
pub(super) fn is_transient(e: &sqlx::Error) -> bool {
    matches!(
        db_sqlstate(e).as_deref(),
        Some("55P03" | "57014" | "40P01" | "40001")
    )
}

pub(super) fn explain_cleanup_error(e: &sqlx::Error, table: &TableRef) -> anyhow::Error {
    match db_sqlstate(e).as_deref() {
        Some("55P03") => anyhow!(
            "cleanup of {table} gave up: could not lock the table or its rows within {BATCH_LOCK_TIMEOUT} \
             (another session holds a conflicting lock; see pg_locks)"
        ),
        Some("57014") => anyhow!(
            "cleanup of {table} gave up: a batch did not finish within {BATCH_STATEMENT_TIMEOUT} \
             even at the smallest batch size (try --batch-size with a small number)"
        ),
        // A referencing table's foreign key (ON DELETE RESTRICT / NO ACTION) still points at
        // an expired row: name the constraint, say what would let it go. PostgreSQL 18 reports
        // an ON DELETE RESTRICT key as restrict_violation (23001), earlier ones as 23503.
        Some("23503" | "23001") => {
            let constraint = match e {
                sqlx::Error::Database(db) => db.constraint().map(sanitize::line),
                _ => None,
            };
            anyhow!(
                "cleanup of {table} stopped: an expired row is still referenced by another table{} \
                 (its foreign key is ON DELETE RESTRICT / NO ACTION, so the row cannot be deleted \
                 before the rows that reference it; the dry run lists the referencing tables)",
                constraint
                    .map(|c| format!(" through {c}"))
                    .unwrap_or_default()
            )
        }
        _ => explain_write_error_as(e, "DELETE", table, "cleanup"),
    }
}

/// A failed write as one readable sentence: a missing privilege names the privilege, the
/// table and the GRANT that would fix it; a read-only session (`--read-only`) says so, naming
/// the refused feature (e.g. `"cleanup"`): "the session is read-only (--read-only): cleanup is
/// disabled". `action` is the SQL privilege/command, e.g. `"DELETE"`.
pub fn explain_write_error_as(
    e: &sqlx::Error,
    action: &str,
    table: &TableRef,
    feature: &str,
) -> anyhow::Error {
    let sqlx::Error::Database(db) = e else {
        return anyhow!("{feature} failed: {}", sanitize::line(&e.to_string()));
    };
    let msg = sanitize::line(db.message());
    match db.code().as_deref() {
        Some("25006") => anyhow!("the session is read-only (--read-only): {feature} is disabled"),
        Some("42501") => anyhow!(
            "permission denied: the current role lacks {action} on {table} \
             (GRANT {action} ON {} TO <role>; the server said: {msg})",
            qualified_for_humans(table)
        ),
        Some(code) => anyhow!("{feature} failed: {msg} (SQLSTATE {code})"),
        None => anyhow!("{feature} failed: {msg}"),
    }
}

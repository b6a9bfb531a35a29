//! Deleting one record: only the exact version shown, with a readable reason when not.

use super::*;

/// Delete exactly the row version that was shown ([`RowVersion`]: key, `xmin` and both
/// timestamps, all bound as values), never "whatever row holds the key now". When the key was
/// reused meanwhile (the application deleted the expired row and inserted a new, live one), the
/// new row does not match: nothing is deleted and the outcome is [`DeleteOutcome::Changed`].
/// Works on a partitioned table too (`xmin` is the row's, in whichever partition it is). A
/// role without DELETE privilege gets a [`PermissionDenied`] error; a read-only session says so.
pub async fn delete(
    conn: &mut PgConnection,
    table: &TableRef,
    version: &RowVersion,
) -> Result<DeleteOutcome> {
    let sql = format!(
        "DELETE FROM {} WHERE request_id = $1 AND xmin::text::int8 = $2 \
            AND created_at = $3 AND expires_at = $4",
        table.qualified()
    );
    let res = sqlx::query(&sql)
        .bind(version.request_id)
        .bind(version.xmin)
        .bind(version.created_at)
        .bind(version.expires_at)
        .execute(&mut *conn)
        .await;
    match res {
        Ok(done) if done.rows_affected() > 0 => return Ok(DeleteOutcome::Deleted),
        Ok(_) => {}
        Err(e) => {
            return Err(explain_error(conn, e, "DELETE", table, "delete a record from").await)
        }
    }
    let sql = format!(
        "SELECT EXISTS (SELECT 1 FROM {} WHERE request_id = $1)",
        table.qualified()
    );
    let res: Result<bool, sqlx::Error> = sqlx::query_scalar(&sql)
        .bind(version.request_id)
        .fetch_one(&mut *conn)
        .await;
    match res {
        Ok(true) => Ok(DeleteOutcome::Changed),
        Ok(false) => Ok(DeleteOutcome::Gone),
        Err(e) => Err(explain_error(conn, e, "SELECT", table, "read a record from").await),
    }
}

/// A failed statement as a readable error. Permission and read-only failures become one
/// sentence; anything else keeps the `sqlx::Error` in the chain (so callers can still ask for
/// its SQLSTATE or whether the connection was lost), with a sentence of context on top.
pub(super) async fn explain_error(
    conn: &mut PgConnection,
    e: sqlx::Error,
    privilege: &str,
    table: &TableRef,
    doing: &str,
) -> anyhow::Error {
    let (code, message) = match &e {
        sqlx::Error::Database(db) => (
            db.code().map(|c| c.to_string()).unwrap_or_default(),
            db.message().to_string(),
        ),
        _ => (String::new(), String::new()),
    };
    match code.as_str() {
        "42501" => {
            let role = sqlx::query_scalar::<_, String>("SELECT current_user::text")
                .fetch_one(&mut *conn)
                .await
                .map(|r| sanitize::line(&r))
                .unwrap_or_else(|_| "(this role)".into());
            let (privilege, object) = if message.contains("for schema") {
                (
                    "USAGE".to_string(),
                    format!("schema {}", sanitize::line(table.schema.as_str())),
                )
            } else {
                (privilege.to_string(), table.to_string())
            };
            anyhow::Error::new(PermissionDenied {
                role,
                privilege,
                object,
            })
        }
        "25006" => anyhow!(
            "cannot {doing} {table}: the session is read-only (--read-only, or a standby server)"
        ),
        "42P01" => anyhow!("table {table} does not exist"),
        _ => anyhow::Error::new(e).context(format!("cannot {doing} {table}")),
    }
}

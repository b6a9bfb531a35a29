//! Finding the watched table: its oid and kind, with a readable error when it is missing.

use anyhow::{bail, Result};
use sqlx::PgConnection;

use crate::ident::TableRef;

/// The watched table as the catalogs know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableInfo {
    pub oid: u32,
    /// Declaratively partitioned (`relkind = 'p'`).
    pub partitioned: bool,
    pub owner: String,
    pub database: String,
    pub server_version: String,
    pub server_version_num: i32,
}

/// Look the table up by name (bound as values, never pasted into SQL).
pub async fn resolve(conn: &mut PgConnection, table: &TableRef) -> Result<TableInfo> {
    let row: Option<(i64, String, String)> = sqlx::query_as(
        "SELECT c.oid::int8, c.relkind::text, pg_get_userbyid(c.relowner)::text
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')",
    )
    .bind(table.schema.as_str())
    .bind(table.table.as_str())
    .fetch_optional(&mut *conn)
    .await?;
    let (database, server_version, server_version_num): (String, String, i32) = sqlx::query_as(
        "SELECT current_database()::text, current_setting('server_version'),
                current_setting('server_version_num')::int",
    )
    .fetch_one(&mut *conn)
    .await?;
    let Some((oid, relkind, owner)) = row else {
        let schema_exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
                .bind(table.schema.as_str())
                .fetch_one(&mut *conn)
                .await?;
        if !schema_exists {
            bail!(
                "schema {} does not exist in database {} (check --schema)",
                crate::sanitize::line(table.schema.as_str()),
                crate::sanitize::line(&database)
            );
        }
        bail!(
            "table {table} does not exist in database {} (create it with `idemtop migrate run`, or name another with --schema/--table)",
            crate::sanitize::line(&database)
        );
    };
    Ok(TableInfo {
        oid: oid as u32,
        partitioned: relkind == "p",
        owner,
        database,
        server_version,
        server_version_num,
    })
}

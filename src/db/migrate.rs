//! The embedded migrations (`migrations/`, compiled in with `sqlx::migrate!`) and the
//! `idemtop migrate run|revert|status` commands, reporting one line per migration.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use sqlx::migrate::{Migrate, MigrateError, Migration, Migrator};
use sqlx::{Executor, PgConnection};

use crate::ident::Ident;
use crate::sanitize;

/// Migrations 045 and 046 from the migration guide, reversible.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// What happened to one migration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Applied {
        version: i64,
        description: String,
        elapsed: Duration,
    },
    AlreadyApplied {
        version: i64,
        description: String,
    },
    Reverted {
        version: i64,
        description: String,
        elapsed: Duration,
    },
    NothingToRevert,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Applied {
                version,
                description,
                elapsed,
            } => write!(
                f,
                "applied  {version:03} {description} ({} ms)",
                elapsed.as_millis()
            ),
            Outcome::AlreadyApplied {
                version,
                description,
            } => write!(f, "skipped  {version:03} {description}: already applied"),
            Outcome::Reverted {
                version,
                description,
                elapsed,
            } => write!(
                f,
                "reverted {version:03} {description} ({} ms)",
                elapsed.as_millis()
            ),
            Outcome::NothingToRevert => write!(f, "nothing to revert: no migration is applied"),
        }
    }
}

/// One row of `idemtop migrate status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub version: i64,
    pub description: String,
    pub applied: bool,
    /// The applied migration's checksum differs from the embedded file.
    pub modified: bool,
}

/// Which migration set: the guide's plain table, or the optional partitioned layout.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Layout {
    #[default]
    Plain,
    Partitioned,
}

impl Layout {
    pub fn migrator(self) -> &'static Migrator {
        match self {
            Layout::Plain => &MIGRATOR,
            Layout::Partitioned => &crate::db::partitions::PARTITIONED_MIGRATOR,
        }
    }
}

fn ups(migrator: &'static Migrator) -> impl Iterator<Item = &'static Migration> {
    migrator
        .iter()
        .filter(|m| m.migration_type.is_up_migration())
}

fn explain(e: MigrateError) -> anyhow::Error {
    match e {
        MigrateError::Execute(sqlx::Error::Database(db))
        | MigrateError::ExecuteMigration(sqlx::Error::Database(db), _) => {
            let code = db.code().map(|c| c.to_string()).unwrap_or_default();
            let msg = sanitize::line(db.message());
            if code == "42501" {
                anyhow::anyhow!("{msg} (the migration needs a role that may create tables and functions in this schema)")
            } else {
                anyhow::anyhow!("{msg}")
            }
        }
        other => anyhow::anyhow!(sanitize::line(&other.to_string())),
    }
}

/// Point the session at `schema`, so the table and `_sqlx_migrations` are created there.
async fn use_schema(conn: &mut PgConnection, schema: &Ident) -> Result<()> {
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
            .bind(schema.as_str())
            .fetch_one(&mut *conn)
            .await?;
    if !exists {
        bail!("schema {schema} does not exist (create it first: CREATE SCHEMA ...)");
    }
    conn.execute(format!("SET search_path TO {}", schema.quoted()).as_str())
        .await?;
    Ok(())
}

async fn prepare(conn: &mut PgConnection, schema: &Ident) -> Result<HashMap<i64, Vec<u8>>> {
    use_schema(conn, schema).await?;
    // Migrations may run long (index builds): no statement timeout here.
    conn.execute("SET statement_timeout = 0").await?;
    conn.ensure_migrations_table().await.map_err(explain)?;
    if let Some(v) = conn.dirty_version().await.map_err(explain)? {
        bail!(
            "migration {v:03} failed part-way earlier and is marked dirty in _sqlx_migrations; \
             check the schema by hand, then delete that row"
        );
    }
    Ok(conn
        .list_applied_migrations()
        .await
        .map_err(explain)?
        .into_iter()
        .map(|m| (m.version, m.checksum.into_owned()))
        .collect())
}

/// SHA-384 checksums of earlier revisions of the embedded migrations, still accepted as applied:
/// migration 046 (both layouts) before it pinned its function's search_path. A database with
/// such a revision works as before; scheduling pg_cron on it asks for the one ALTER FUNCTION
/// that the new revision adds ([`crate::db::cron::check_cleanup_function`]).
const EARLIER_REVISIONS: [(i64, &str); 2] = [
    (46, "b405393925e8e0a415539690248cfcb51b8a1e2e947e6ae5a06d1f3c55c1bcf0ac5c4160cfb083f9761cc7e44964aa76"),
    (46, "9daf363c1a79ae3e2812762be8cc579d91c5ededa8e57f1c8d2b18e945066c6a005c0045305378fab4879300d14b8e99"),
];

/// The applied checksum `sum` is this migration's file, or an accepted earlier revision of it.
fn same_file(m: &sqlx::migrate::Migration, sum: &[u8]) -> bool {
    if sum == &*m.checksum {
        return true;
    }
    let hex: String = sum.iter().map(|b| format!("{b:02x}")).collect();
    EARLIER_REVISIONS
        .iter()
        .any(|(v, old)| *v == m.version && *old == hex)
}

/// Apply every pending migration of the plain layout in order, each in its own transaction.
pub async fn run(conn: &mut PgConnection, schema: &Ident) -> Result<Vec<Outcome>> {
    run_layout(conn, schema, Layout::Plain).await
}

/// Apply every pending migration of `layout` in order, each in its own transaction.
pub async fn run_layout(
    conn: &mut PgConnection,
    schema: &Ident,
    layout: Layout,
) -> Result<Vec<Outcome>> {
    conn.lock().await.map_err(explain)?;
    let result = run_locked(conn, schema, layout.migrator()).await;
    let _ = conn.unlock().await;
    result
}

async fn run_locked(
    conn: &mut PgConnection,
    schema: &Ident,
    migrator: &'static Migrator,
) -> Result<Vec<Outcome>> {
    let applied = prepare(conn, schema).await?;
    let mut out = Vec::new();
    for m in ups(migrator) {
        let description = m.description.to_string();
        match applied.get(&m.version) {
            Some(sum) if !same_file(m, sum) => bail!(
                "migration {:03} {description} was applied from a different file than the one built into idemtop",
                m.version
            ),
            Some(_) => out.push(Outcome::AlreadyApplied {
                version: m.version,
                description,
            }),
            None => {
                let elapsed = conn
                    .apply(m)
                    .await
                    .map_err(explain)
                    .with_context(|| format!("migration {:03} {description} failed", m.version))?;
                out.push(Outcome::Applied {
                    version: m.version,
                    description,
                    elapsed,
                });
            }
        }
    }
    Ok(out)
}

/// Revert the newest applied migration. When none is left, `_sqlx_migrations` is dropped too,
/// so `run` then `revert` twice leaves the schema as it was.
pub async fn revert(conn: &mut PgConnection, schema: &Ident) -> Result<Outcome> {
    revert_layout(conn, schema, Layout::Plain).await
}

/// [`revert`] for `layout`.
pub async fn revert_layout(
    conn: &mut PgConnection,
    schema: &Ident,
    layout: Layout,
) -> Result<Outcome> {
    conn.lock().await.map_err(explain)?;
    let result = revert_locked(conn, schema, layout.migrator()).await;
    let _ = conn.unlock().await;
    result
}

async fn revert_locked(
    conn: &mut PgConnection,
    schema: &Ident,
    migrator: &'static Migrator,
) -> Result<Outcome> {
    let applied = prepare(conn, schema).await?;
    let Some(&newest) = applied.keys().max() else {
        drop_tracking_table(conn).await?;
        return Ok(Outcome::NothingToRevert);
    };
    let Some(down) = migrator
        .iter()
        .find(|m| m.version == newest && m.migration_type.is_down_migration())
    else {
        bail!("migration {newest:03} is applied but idemtop has no down migration for it");
    };
    let description = down.description.to_string();
    let elapsed = conn
        .revert(down)
        .await
        .map_err(explain)
        .with_context(|| format!("reverting migration {newest:03} {description} failed"))?;
    if applied.len() == 1 {
        drop_tracking_table(conn).await?;
    }
    Ok(Outcome::Reverted {
        version: newest,
        description,
        elapsed,
    })
}

async fn drop_tracking_table(conn: &mut PgConnection) -> Result<()> {
    // Only when it is empty: another tool's migrations may share it.
    let remaining: Option<i64> = sqlx::query_scalar(
        "SELECT CASE WHEN to_regclass('_sqlx_migrations') IS NULL THEN NULL ELSE 1::int8 END",
    )
    .fetch_one(&mut *conn)
    .await?;
    if remaining.is_some() {
        let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
            .fetch_one(&mut *conn)
            .await?;
        if rows == 0 {
            conn.execute("DROP TABLE _sqlx_migrations").await?;
        }
    }
    Ok(())
}

/// Which embedded migrations (plain layout) are applied.
pub async fn status(conn: &mut PgConnection, schema: &Ident) -> Result<Vec<Status>> {
    status_layout(conn, schema, Layout::Plain).await
}

/// [`status`] for `layout`.
pub async fn status_layout(
    conn: &mut PgConnection,
    schema: &Ident,
    layout: Layout,
) -> Result<Vec<Status>> {
    use_schema(conn, schema).await?;
    let tracked: Option<String> =
        sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations')::text")
            .fetch_one(&mut *conn)
            .await?;
    let applied: HashMap<i64, Vec<u8>> = if tracked.is_some() {
        conn.list_applied_migrations()
            .await
            .map_err(explain)?
            .into_iter()
            .map(|m| (m.version, m.checksum.into_owned()))
            .collect()
    } else {
        HashMap::new()
    };
    Ok(ups(layout.migrator())
        .map(|m| Status {
            version: m.version,
            description: m.description.to_string(),
            applied: applied.contains_key(&m.version),
            modified: applied
                .get(&m.version)
                .is_some_and(|sum| !same_file(m, sum)),
        })
        .collect())
}

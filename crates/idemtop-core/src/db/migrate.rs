//! The embedded migrations (`migrations/`, compiled in with `sqlx::migrate!`) and the
//! `idemtop migrate run|revert|status` commands, reporting one line per migration.
//!
//! The three documented ways of applying them (idemtop, `sqlx migrate run`, psql) mix: sqlx's
//! bookkeeping (`_sqlx_migrations`) is kept for the first two; for a migration that psql (or any
//! other tool) applied, `run` and `status` find its schema objects (045: the table, 046: the
//! cleanup function) and record it in `_sqlx_migrations` with the embedded file's checksum, so
//! idemtop and sqlx-cli then see it as applied. A migration recorded there whose objects are gone
//! (dropped by hand) is applied again by `run`.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use sqlx::migrate::{Migrate, MigrateError, Migration, Migrator};
use sqlx::{Executor, PgConnection};

use crate::ident::Ident;
use crate::sanitize;

/// Migrations 045 and 046 from the migration guide, reversible.
pub static MIGRATOR: Migrator = sqlx::migrate!("../../migrations");

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
    /// Applied by another tool (psql): its objects were found and it is now recorded in
    /// `_sqlx_migrations`; nothing else was changed.
    Recorded {
        version: i64,
        description: String,
        found: String,
    },
    /// Recorded in `_sqlx_migrations`, but its objects were gone: applied again.
    Reapplied {
        version: i64,
        description: String,
        missing: String,
        elapsed: Duration,
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
            Outcome::Recorded {
                version,
                description,
                found,
            } => write!(
                f,
                "skipped  {version:03} {description}: already applied ({found} exists), \
                 now recorded in _sqlx_migrations"
            ),
            Outcome::Reapplied {
                version,
                description,
                missing,
                elapsed,
            } => write!(
                f,
                "applied  {version:03} {description} again: it was recorded as applied but {missing} \
                 was missing ({} ms)",
                elapsed.as_millis()
            ),
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
    /// How the schema and `_sqlx_migrations` were reconciled, or why they disagree: "found table
    /// public.idempotency_records, now recorded in _sqlx_migrations", "recorded in
    /// _sqlx_migrations, but function ... is missing", "public.idempotency_records is
    /// partitioned (--layout partitioned)".
    pub note: Option<String>,
}

/// Which migration set: the guide's plain table, or the optional partitioned layout.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
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

/// What the schema holds of one migration, whatever applied it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Objects {
    /// Its objects exist: "table public.idempotency_records".
    Present(String),
    /// They do not: "table public.idempotency_records".
    Absent(String),
    /// The other layout's objects hold its names: applying it would fail, recording it would lie.
    OtherLayout(String),
}

/// Look for the objects that migration `version` of `layout` creates in `schema`: 045 the table
/// (a plain one for the plain layout, a partitioned one for the partitioned layout), 046 the
/// cleanup function.
async fn objects(
    conn: &mut PgConnection,
    schema: &Ident,
    layout: Layout,
    version: i64,
) -> Result<Objects> {
    let table = format!("{}.idempotency_records", sanitize::line(schema.as_str()));
    let relkind: Option<String> = sqlx::query_scalar(
        "SELECT relkind::text FROM pg_class
          WHERE oid = to_regclass(format('%I.%I', $1::text, 'idempotency_records'))",
    )
    .bind(schema.as_str())
    .fetch_optional(&mut *conn)
    .await?;
    let relkind = relkind.and_then(|k| k.chars().next());
    let other = |kind: Option<char>| -> Option<String> {
        match (layout, kind) {
            (Layout::Plain, Some('p')) => Some(format!(
                "{table} is partitioned, made by the partitioned layout (use --layout partitioned)"
            )),
            (Layout::Partitioned, Some('r')) => Some(format!(
                "{table} is a plain table, made by the plain layout (drop --layout partitioned)"
            )),
            (_, Some('r' | 'p')) | (_, None) => None,
            (_, Some(_)) => Some(format!("{table} exists but is not a table")),
        }
    };
    match version {
        45 => {
            let what = format!("table {table}");
            Ok(match (other(relkind), relkind) {
                (Some(why), _) => Objects::OtherLayout(why),
                (None, Some(_)) => Objects::Present(what),
                (None, None) => Objects::Absent(what),
            })
        }
        46 => {
            let what = format!(
                "function {}.cleanup_expired_idempotency_records()",
                sanitize::line(schema.as_str())
            );
            let exists: bool = sqlx::query_scalar(
                "SELECT to_regprocedure(format('%I.cleanup_expired_idempotency_records()', $1::text)) IS NOT NULL",
            )
            .bind(schema.as_str())
            .fetch_one(&mut *conn)
            .await?;
            Ok(match (other(relkind), exists) {
                (Some(why), true) => Objects::OtherLayout(why),
                (_, true) => Objects::Present(what),
                (_, false) => Objects::Absent(what),
            })
        }
        // A migration idemtop does not know the objects of: trust the bookkeeping.
        _ => Ok(Objects::Absent(String::new())),
    }
}

/// Record migration `m` as applied (by another tool) in `_sqlx_migrations`, as sqlx would have:
/// the embedded file's checksum, so that idemtop and `sqlx migrate run` both accept it.
async fn record(conn: &mut PgConnection, m: &Migration) -> Result<()> {
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
         VALUES ($1, $2, TRUE, $3, 0) ON CONFLICT (version) DO NOTHING",
    )
    .bind(m.version)
    .bind(&*m.description)
    .bind(&*m.checksum)
    .execute(&mut *conn)
    .await
    .map_err(|e| explain(MigrateError::Execute(e)))
    .with_context(|| format!("recording migration {:03} in _sqlx_migrations", m.version))?;
    Ok(())
}

/// True when the session cannot write: `--read-only` (default_transaction_read_only), or a hot
/// standby.
async fn read_only(conn: &mut PgConnection) -> Result<bool> {
    Ok(
        sqlx::query_scalar("SELECT current_setting('transaction_read_only') = 'on'")
            .fetch_one(&mut *conn)
            .await?,
    )
}

async fn refuse_read_only(conn: &mut PgConnection, what: &str) -> Result<()> {
    if read_only(conn).await? {
        bail!(
            "the session is read-only (--read-only, default_transaction_read_only or a hot \
             standby): migrate {what} changes the schema, so nothing was done"
        );
    }
    Ok(())
}

async fn tracking_table_exists(conn: &mut PgConnection) -> Result<bool> {
    Ok(
        sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
            .fetch_one(&mut *conn)
            .await?,
    )
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
    refuse_read_only(conn, "run").await?;
    use_schema(conn, schema).await?;
    let tracked_before = tracking_table_exists(conn).await?;
    conn.lock().await.map_err(explain)?;
    let result = run_locked(conn, schema, layout).await;
    if result.is_err() && !tracked_before {
        // Leave no empty _sqlx_migrations behind a run that applied nothing.
        let _ = drop_tracking_table(conn).await;
    }
    let _ = conn.unlock().await;
    result
}

async fn run_locked(
    conn: &mut PgConnection,
    schema: &Ident,
    layout: Layout,
) -> Result<Vec<Outcome>> {
    let applied = prepare(conn, schema).await?;
    let mut out = Vec::new();
    for m in ups(layout.migrator()) {
        let description = m.description.to_string();
        let version = m.version;
        let found = objects(conn, schema, layout, version).await?;
        match (applied.get(&version), found) {
            (Some(sum), _) if !same_file(m, sum) => bail!(
                "migration {version:03} {description} was applied from a different file than the one built into idemtop"
            ),
            (Some(_), Objects::Absent(missing)) if !missing.is_empty() => {
                // Recorded, but its objects were dropped by hand: apply it again, in one
                // transaction with its bookkeeping (the stale row goes first).
                sqlx::query("DELETE FROM _sqlx_migrations WHERE version = $1")
                    .bind(version)
                    .execute(&mut *conn)
                    .await?;
                let elapsed = conn.apply(m).await.map_err(explain).with_context(|| {
                    format!("migration {version:03} {description} failed")
                })?;
                out.push(Outcome::Reapplied {
                    version,
                    description,
                    missing,
                    elapsed,
                });
            }
            (Some(_), _) => out.push(Outcome::AlreadyApplied {
                version,
                description,
            }),
            (None, Objects::Present(found)) => {
                record(conn, m).await?;
                out.push(Outcome::Recorded {
                    version,
                    description,
                    found,
                });
            }
            (None, Objects::OtherLayout(why)) => {
                bail!("migration {version:03} {description} cannot be applied: {why}")
            }
            (None, Objects::Absent(_)) => {
                let elapsed = conn.apply(m).await.map_err(explain).with_context(|| {
                    format!("migration {version:03} {description} failed")
                })?;
                out.push(Outcome::Applied {
                    version,
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
    refuse_read_only(conn, "revert").await?;
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

/// [`status`] for `layout`. A migration whose objects are in the schema but that
/// `_sqlx_migrations` does not list (applied with psql) is recorded there now, unless the
/// session is read-only; the note of each row says what was found.
pub async fn status_layout(
    conn: &mut PgConnection,
    schema: &Ident,
    layout: Layout,
) -> Result<Vec<Status>> {
    use_schema(conn, schema).await?;
    let writable = !read_only(conn).await?;
    if writable {
        conn.lock().await.map_err(explain)?;
    }
    let result = status_inner(conn, schema, layout, writable).await;
    if writable {
        let _ = conn.unlock().await;
    }
    result
}

async fn status_inner(
    conn: &mut PgConnection,
    schema: &Ident,
    layout: Layout,
    writable: bool,
) -> Result<Vec<Status>> {
    let mut tracked = tracking_table_exists(conn).await?;
    let applied: HashMap<i64, Vec<u8>> = if tracked {
        conn.list_applied_migrations()
            .await
            .map_err(explain)?
            .into_iter()
            .map(|m| (m.version, m.checksum.into_owned()))
            .collect()
    } else {
        HashMap::new()
    };
    let mut out = Vec::new();
    for m in ups(layout.migrator()) {
        let found = objects(conn, schema, layout, m.version).await?;
        let mut row = Status {
            version: m.version,
            description: m.description.to_string(),
            applied: applied.contains_key(&m.version),
            modified: applied
                .get(&m.version)
                .is_some_and(|sum| !same_file(m, sum)),
            note: None,
        };
        match (row.applied, found) {
            (true, Objects::Absent(missing)) if !missing.is_empty() => {
                row.note = Some(format!(
                    "recorded in _sqlx_migrations, but {missing} is missing (`idemtop migrate run` applies it again)"
                ));
            }
            (true, _) => {}
            (false, Objects::Present(found)) if writable => {
                if !tracked {
                    conn.ensure_migrations_table().await.map_err(explain)?;
                    tracked = true;
                }
                record(conn, m).await?;
                row.applied = true;
                row.note = Some(format!("found {found}, now recorded in _sqlx_migrations"));
            }
            (false, Objects::Present(found)) => {
                row.applied = true;
                row.note = Some(format!(
                    "found {found}; not recorded in _sqlx_migrations (read-only session)"
                ));
            }
            (false, Objects::OtherLayout(why)) => row.note = Some(why),
            (false, Objects::Absent(_)) => {}
        }
        out.push(row);
    }
    Ok(out)
}

//! The table model: what idemtop knows about the watched table, read from the catalogs once per
//! connection (and again after an undefined column/table error, or on `r`). Every query, check
//! and action asks it what it may do instead of assuming the guide's layout: which columns exist
//! and with which types, the keys, how the table is partitioned, which indexes lead with which
//! column, which tables reference it, the server's version, whether it is a standby, and the
//! zone in which `timestamp without time zone` values are read.

use anyhow::{bail, Result};
use serde::Serialize;
use sqlx::postgres::types::Oid;
use sqlx::PgConnection;

use crate::db::session::{SessionZone, ZoneSource};
use crate::ident::TableRef;

/// The column whose value says when a record expires (the guide's `expires_at`).
pub const EXPIRY_COLUMN: &str = "expires_at";

/// The watched table as the catalogs know it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableInfo {
    pub oid: u32,
    /// Declaratively partitioned (`relkind = 'p'`).
    pub partitioned: bool,
    pub owner: String,
    pub database: String,
    pub server_version: String,
    pub server_version_num: i32,
    /// `pg_is_in_recovery()`: a hot standby, where nothing can be written.
    pub in_recovery: bool,
    /// The session's TimeZone and where it came from.
    pub zone: SessionZone,
    /// In column order; dropped columns left out.
    pub columns: Vec<Column>,
    /// Columns of the primary key, in key order (empty without one).
    pub primary_key: Vec<String>,
    /// Columns of each unique constraint or unique index other than the primary key.
    pub unique_keys: Vec<Vec<String>>,
    /// How the table is partitioned, when it is.
    pub partitioning: Option<Partitioning>,
    pub indexes: Vec<IndexDef>,
    /// Foreign keys of other tables that point at this one.
    pub referenced_by: Vec<Reference>,
}

/// One column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Column {
    pub name: String,
    /// `format_type()`: `timestamp with time zone`, `character varying(100)`, ...
    pub type_name: String,
    pub kind: ColumnKind,
    pub not_null: bool,
}

/// The column types idemtop reads differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnKind {
    Timestamptz,
    /// `timestamp without time zone`: read in the session's zone ([`TableInfo::zone`]).
    Timestamp,
    Date,
    Uuid,
    Text,
    Integer,
    Bytea,
    Json,
    Other,
}

impl ColumnKind {
    fn of(type_oid: u32) -> ColumnKind {
        match type_oid {
            1184 => ColumnKind::Timestamptz,
            1114 => ColumnKind::Timestamp,
            1082 => ColumnKind::Date,
            2950 => ColumnKind::Uuid,
            25 | 1043 | 1042 | 19 => ColumnKind::Text,
            20 | 21 | 23 => ColumnKind::Integer,
            17 => ColumnKind::Bytea,
            114 | 3802 => ColumnKind::Json,
            _ => ColumnKind::Other,
        }
    }

    /// A point in time (`timestamptz` or `timestamp`).
    pub fn is_timestamp(self) -> bool {
        matches!(self, ColumnKind::Timestamptz | ColumnKind::Timestamp)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PartitionStrategy {
    Range,
    List,
    Hash,
}

/// `PARTITION BY strategy (key...)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Partitioning {
    pub strategy: PartitionStrategy,
    /// Key columns in order; `None` for an expression.
    pub key: Vec<Option<String>>,
}

impl Partitioning {
    /// Partitioned by RANGE on exactly `column`.
    pub fn is_range_on(&self, column: &str) -> bool {
        self.strategy == PartitionStrategy::Range
            && self.key.len() == 1
            && self.key[0].as_deref() == Some(column)
    }
}

/// One index of the table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IndexDef {
    pub name: String,
    /// Key columns in order; `None` for an expression.
    pub columns: Vec<Option<String>>,
    pub unique: bool,
    pub primary: bool,
    /// Has a WHERE clause.
    pub partial: bool,
    /// `indisvalid`: usable by the planner (an interrupted CREATE INDEX CONCURRENTLY is not).
    pub valid: bool,
}

impl IndexDef {
    pub fn leads_with(&self, column: &str) -> bool {
        self.columns.first().and_then(|c| c.as_deref()) == Some(column)
    }
}

/// What a referencing foreign key does when a row of this table is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnDelete {
    NoAction,
    Restrict,
    Cascade,
    SetNull,
    SetDefault,
}

impl OnDelete {
    fn of(code: &str) -> OnDelete {
        match code {
            "r" => OnDelete::Restrict,
            "c" => OnDelete::Cascade,
            "n" => OnDelete::SetNull,
            "d" => OnDelete::SetDefault,
            _ => OnDelete::NoAction,
        }
    }

    pub fn sql(self) -> &'static str {
        match self {
            OnDelete::NoAction => "NO ACTION",
            OnDelete::Restrict => "RESTRICT",
            OnDelete::Cascade => "CASCADE",
            OnDelete::SetNull => "SET NULL",
            OnDelete::SetDefault => "SET DEFAULT",
        }
    }
}

/// A foreign key of another table that references this one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reference {
    /// `schema.table` of the referencing table (raw: sanitize before display).
    pub table: String,
    pub constraint: String,
    pub on_delete: OnDelete,
}

/// How cleanup may judge expiry on this table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expiry<'a> {
    pub column: &'a Column,
    /// An index leads with the expiry column.
    pub indexed: bool,
}

impl TableInfo {
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The expiry column, when cleanup can judge it: it exists, holds points in time, and a
    /// `timestamp without time zone` is read in a zone that is known, not guessed. `Err` says why
    /// not, in one sentence.
    pub fn expiry(&self, table: &TableRef) -> Result<Expiry<'_>, String> {
        let Some(column) = self.column(EXPIRY_COLUMN) else {
            return Err(format!(
                "{table} has no column {EXPIRY_COLUMN}: idemtop cannot tell expired rows from live ones"
            ));
        };
        if !column.kind.is_timestamp() {
            return Err(format!(
                "{table}.{EXPIRY_COLUMN} is of type {}, not a timestamp: idemtop cannot tell expired rows from live ones",
                crate::sanitize::line(&column.type_name)
            ));
        }
        if column.kind == ColumnKind::Timestamp && !self.zone.source.is_known() {
            return Err(format!(
                "{table}.{EXPIRY_COLUMN} is a timestamp without time zone, and the zone it is written in is unknown: \
                 this role cannot read the server's TimeZone setting (grant it pg_read_all_settings, \
                 or name the zone with --timestamp-zone)"
            ));
        }
        Ok(Expiry {
            column,
            indexed: self.index_leading_with(EXPIRY_COLUMN).is_some(),
        })
    }

    /// A valid, non-partial index whose first column is `column`.
    pub fn index_leading_with(&self, column: &str) -> Option<&IndexDef> {
        self.indexes
            .iter()
            .find(|i| i.valid && !i.partial && i.leads_with(column))
    }

    /// Partitioned by RANGE on the expiry column: a partition's upper bound proves its rows
    /// expired.
    pub fn partitioned_by_expiry(&self) -> bool {
        self.partitioning
            .as_ref()
            .is_some_and(|p| p.is_range_on(EXPIRY_COLUMN))
    }
}

/// Look the table up by name (bound as values, never pasted into SQL) and read its model.
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
    type Server = (String, String, i32, bool, String, Option<String>);
    let (database, server_version, server_version_num, in_recovery, zone, zone_source): Server =
        sqlx::query_as(
            "SELECT current_database()::text, current_setting('server_version'),
                    current_setting('server_version_num')::int, pg_is_in_recovery(),
                    current_setting('TimeZone'),
                    current_setting('idemtop.timezone_source', true)",
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
    let oid = oid as u32;
    let columns: Vec<(String, String, i64, bool)> = sqlx::query_as(
        "SELECT attname::text, format_type(atttypid, atttypmod), atttypid::int8, attnotnull
           FROM pg_attribute
          WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped
          ORDER BY attnum",
    )
    .bind(Oid(oid))
    .fetch_all(&mut *conn)
    .await?;
    // Index key columns by name (NULL for an expression), in key order.
    type IndexRow = (String, Vec<Option<String>>, bool, bool, bool, bool);
    let indexes: Vec<IndexRow> = sqlx::query_as(
        "SELECT ic.relname::text,
                ARRAY(SELECT a.attname::text
                        FROM generate_subscripts(i.indkey, 1) k
                        LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[k]
                       WHERE k < i.indnkeyatts
                       ORDER BY k),
                i.indisunique, i.indisprimary, i.indpred IS NOT NULL, i.indisvalid
           FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
          WHERE i.indrelid = $1
          ORDER BY ic.relname",
    )
    .bind(Oid(oid))
    .fetch_all(&mut *conn)
    .await?;
    let partitioning: Option<(String, Vec<Option<String>>)> = sqlx::query_as(
        "SELECT pt.partstrat::text,
                ARRAY(SELECT a.attname::text
                        FROM generate_subscripts(pt.partattrs, 1) k
                        LEFT JOIN pg_attribute a ON a.attrelid = pt.partrelid AND a.attnum = pt.partattrs[k]
                       ORDER BY k)
           FROM pg_partitioned_table pt WHERE pt.partrelid = $1",
    )
    .bind(Oid(oid))
    .fetch_optional(&mut *conn)
    .await?;
    let references: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT format('%s.%s', n.nspname, c.relname), con.conname::text, con.confdeltype::text
           FROM pg_constraint con
           JOIN pg_class c ON c.oid = con.conrelid
           JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE con.contype = 'f' AND con.confrelid = $1 AND con.conparentid = 0
          ORDER BY 1, 2",
    )
    .bind(Oid(oid))
    .fetch_all(&mut *conn)
    .await?;

    let indexes: Vec<IndexDef> = indexes
        .into_iter()
        .map(
            |(name, columns, unique, primary, partial, valid)| IndexDef {
                name,
                columns,
                unique,
                primary,
                partial,
                valid,
            },
        )
        .collect();
    let key_of = |i: &IndexDef| -> Option<Vec<String>> { i.columns.iter().cloned().collect() };
    let primary_key = indexes
        .iter()
        .find(|i| i.primary)
        .and_then(key_of)
        .unwrap_or_default();
    let unique_keys = indexes
        .iter()
        .filter(|i| i.unique && !i.primary && !i.partial && i.valid)
        .filter_map(key_of)
        .collect();
    Ok(TableInfo {
        oid,
        partitioned: relkind == "p",
        owner,
        database,
        server_version,
        server_version_num,
        in_recovery,
        zone: SessionZone {
            zone,
            source: zone_source
                .as_deref()
                .and_then(ZoneSource::parse)
                .unwrap_or(ZoneSource::Guessed),
        },
        columns: columns
            .into_iter()
            .map(|(name, type_name, type_oid, not_null)| Column {
                kind: ColumnKind::of(type_oid as u32),
                name,
                type_name,
                not_null,
            })
            .collect(),
        primary_key,
        unique_keys,
        partitioning: partitioning.map(|(strategy, key)| Partitioning {
            strategy: match strategy.as_str() {
                "l" => PartitionStrategy::List,
                "h" => PartitionStrategy::Hash,
                _ => PartitionStrategy::Range,
            },
            key,
        }),
        indexes,
        referenced_by: references
            .into_iter()
            .map(|(table, constraint, del)| Reference {
                table,
                constraint,
                on_delete: OnDelete::of(&del),
            })
            .collect(),
    })
}

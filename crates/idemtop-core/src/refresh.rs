//! One refresh of the watched table, and the session that carries what refreshes share: the
//! connection, the table model (read once per connection) and the sampler that carries exact
//! figures between exact passes. Used by the dashboard's worker, `snapshot`, `check` and
//! `metrics` alike.

use anyhow::Result;
use sqlx::PgConnection;

use crate::db::connect::ConnectConfig;
use crate::db::shape::TableEntry;
use crate::db::snapshot::{self, Sampler, Snapshot, SnapshotOptions, TableMapping};
use crate::db::table::{self, TableInfo};
use crate::ident::TableRef;

/// The refreshes' own session, made again after the server went away, with the sampler that
/// carries exact figures between exact passes and the previous snapshot (for rates in checks).
#[derive(Default)]
pub struct RefreshSession {
    pub conn: Option<PgConnection>,
    /// The table model, read once on this connection ([`RefreshSession::model`]).
    pub info: Option<TableInfo>,
    /// The table's mapping, resolved with the model (its `[[table]]` section, else detected).
    pub mapping: Option<TableMapping>,
    pub sampler: Sampler,
    /// The last snapshot taken on this session.
    pub previous: Option<Snapshot>,
}

impl RefreshSession {
    /// The session's connection, made when there is none (first use, or after it was lost).
    pub async fn connection(&mut self, connect: &ConnectConfig) -> Result<&mut PgConnection> {
        connected(&mut self.conn, connect).await
    }

    /// Drop the connection (lost, or possibly mid-query): the next use connects afresh and
    /// reads the table model again.
    pub fn disconnect(&mut self) {
        self.conn = None;
        self.info = None;
        self.mapping = None;
    }

    /// The table model and its mapping, resolved once per read of the model
    /// ([`RefreshSession::model`]): every query of a refresh asks the mapping for its columns.
    pub async fn model_mapped(
        &mut self,
        connect: &ConnectConfig,
        table: &TableRef,
        entries: &[TableEntry],
        reread: bool,
    ) -> Result<(TableInfo, TableMapping)> {
        let info = self.model(connect, table, reread).await?;
        match &self.mapping {
            Some(m) if !reread => Ok((info, m.clone())),
            _ => {
                let m = TableMapping::resolve(entries, table, &info);
                self.mapping = Some(m.clone());
                Ok((info, m))
            }
        }
    }

    /// The table model: read once per connection, and again when `reread` (the operator's `r`,
    /// after an action), after a snapshot found that the table no longer has the oid it was
    /// read with (dropped and recreated: [`snapshot::ModelChanged`], checked in the snapshot's
    /// first statement), or after a query failed on an undefined table or column
    /// ([`RefreshSession::forget_model_on`]).
    pub async fn model(
        &mut self,
        connect: &ConnectConfig,
        table: &TableRef,
        reread: bool,
    ) -> Result<TableInfo> {
        let conn = connected(&mut self.conn, connect).await?;
        if let (Some(info), false) = (&self.info, reread) {
            return Ok(info.clone());
        }
        let info = table::resolve(conn, table).await?;
        self.info = Some(info.clone());
        self.mapping = None;
        Ok(info)
    }

    /// After a failed query: an undefined table or column (42P01, 42703), or a table that is
    /// no longer the one the model was read for, means the model is out of date.
    pub fn forget_model_on(&mut self, e: &anyhow::Error) {
        if snapshot::ModelChanged::is_in(e)
            || matches!(
                crate::db::connect::sqlstate(e).as_deref(),
                Some("42P01" | "42703")
            )
        {
            self.info = None;
            self.mapping = None;
        }
    }
}

/// The connection in `conn`, made when there is none.
pub async fn connected<'a>(
    conn: &'a mut Option<PgConnection>,
    connect: &ConnectConfig,
) -> Result<&'a mut PgConnection> {
    if conn.is_none() {
        *conn = Some(connect.connect().await?);
    }
    Ok(conn.as_mut().expect("connected above"))
}

/// One refresh of a table with no `[[table]]` section: resolve the table (it may have been
/// recreated) and take a snapshot by its detected mapping.
pub async fn refresh(
    conn: &mut PgConnection,
    table: &TableRef,
    opts: SnapshotOptions,
) -> Result<Snapshot> {
    refresh_with(conn, table, &[], opts).await
}

/// One refresh: resolve the table, its mapping (its `[[table]]` section in `entries`, else
/// the detection), and take a snapshot by it.
pub async fn refresh_with(
    conn: &mut PgConnection,
    table: &TableRef,
    entries: &[TableEntry],
    opts: SnapshotOptions,
) -> Result<Snapshot> {
    let info = table::resolve(conn, table).await?;
    let tm = TableMapping::resolve(entries, table, &info);
    snapshot::take_mapped(conn, table, &info, &tm, opts).await
}
